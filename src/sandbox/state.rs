//! The simulated world: WABAs, their numbers, and Meta's rules about them.
//!
//! Pure state: every method takes `now` (and the world knows the wall-clock time it
//! started at), so the rules are tested without clocks. The lifecycle writes live in
//! `lifecycle.rs`, the business's pre-verified pool in `preverified.rs`.

use super::customers::Customers;
use super::preverified::PreVerified;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

pub const DEMO_WABA_ID: &str = "102290129340398";
/// The business portfolio that owns the demo WABA, the migration WABA and a pool of
/// pre-verified numbers.
pub const DEMO_BUSINESS_ID: &str = "104996122399160";
/// A second WABA of the demo business, holding one number ready to migrate into the
/// demo WABA ([`MIGRATABLE_NUMBER`]).
pub const MIGRATION_WABA_ID: &str = "102290129340411";
/// The migratable number as `(cc, phone_number)`: registered on [`MIGRATION_WABA_ID`],
/// no two-step PIN, display name approved, displayed `+1 555-010-0900`.
pub const MIGRATABLE_NUMBER: (&str, &str) = ("1", "5550100900");
/// The one code `request_code` "sends", by SMS, voice call or IVR, to every number.
pub const VERIFICATION_CODE: &str = "424242";
/// The two-step verification PIN of the demo numbers that have one.
pub const DEMO_PIN: &str = "123456";
const DEMO_NUMBERS: usize = 32;
/// The WABA of generated numbers for benchmarks (see [`World::add_bench_waba`]).
pub const BENCH_WABA_ID: &str = "109000000000000";
/// At most this many generated numbers.
pub const MAX_BENCH_NUMBERS: usize = 1_000_000;

/// The id of the bench WABA's `i`-th number, from 1.
pub fn bench_number_id(i: usize) -> String {
    format!("109{i:012}")
}

/// The id a number added to `waba_id` gets (`POST /{WABA_ID}/phone_numbers`), from its
/// full digits (country code first, e.g. `15550100777`): `106` and 12 digits of
/// SHA-256(`"{waba_id}/{digits}"`) (its first 8 bytes, big-endian, modulo 10^12,
/// zero-padded). Deterministic, so a walk through the sandbox can use the id literally;
/// the demo numbers' ids (`1065403522429xx`) are skipped by rehashing with `#1`, `#2`...
pub fn phone_number_id(waba_id: &str, digits: &str) -> String {
    hashed_id("106", &format!("{waba_id}/{digits}"))
}

/// The id a number added to `business_id`'s pre-verified pool gets: `107` and 12 digits
/// of SHA-256(`"{business_id}/{digits}"`), as for [`phone_number_id`].
pub fn preverified_id(business_id: &str, digits: &str) -> String {
    hashed_id("107", &format!("{business_id}/{digits}"))
}

/// `prefix` and 12 digits of SHA-256(`key`), rehashed with `#1`, `#2`... while the id is
/// one of the demo's (a demo number, WABA or business, or the partner's system user).
pub(super) fn hashed_id(prefix: &str, key: &str) -> String {
    (0u32..)
        .map(|salt| {
            let input = if salt == 0 {
                key.to_owned()
            } else {
                format!("{key}#{salt}")
            };
            let hash = Sha256::digest(input.as_bytes());
            let n = u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"));
            format!("{prefix}{:012}", n % 1_000_000_000_000)
        })
        .find(|id| {
            !id.starts_with("1065403522429")
                && ![
                    DEMO_WABA_ID,
                    MIGRATION_WABA_ID,
                    DEMO_BUSINESS_ID,
                    super::customers::PARTNER_SYSTEM_USER_ID,
                ]
                .contains(&id.as_str())
        })
        .expect("a free id")
}

/// Meta's datetime format: `2025-02-04T17:40:07+0000`.
pub fn graph_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%z").to_string()
}

pub(super) const REGISTER_WINDOW: Duration = Duration::from_secs(72 * 3600);
pub(super) const REGISTER_LIMIT: usize = 10;
pub(super) const DAY: Duration = Duration::from_secs(24 * 3600);
/// An approved display-name change must be registered within 14 days.
const NAME_CHANGE_WINDOW: Duration = Duration::from_secs(14 * 24 * 3600);
const USAGE_WINDOW: Duration = Duration::from_secs(3600);
/// Management calls per app per WABA per hour: 200 until a number is registered.
const CALLS_PER_HOUR_NEW: usize = 200;
const CALLS_PER_HOUR_ACTIVE: usize = 5000;
/// Local Storage regions per Meta's OpenAPI description.
pub(super) const REGIONS: &[&str] = &[
    "AE", "AU", "BH", "BR", "CA", "CH", "DE", "GB", "ID", "IN", "JP", "KR", "SG", "ZA",
];

/// An error as Meta would answer it.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub http_status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    pub kind: &'static str,
    pub message: String,
    pub details: Option<String>,
    /// Minutes until access is regained, for rate limits.
    pub regain_in_minutes: Option<u64>,
}

impl Fault {
    pub fn new(code: i64, kind: &'static str, message: impl Into<String>) -> Self {
        Fault {
            http_status: 400,
            code,
            subcode: None,
            kind,
            message: message.into(),
            details: None,
            regain_in_minutes: None,
        }
    }

    pub fn invalid_parameter(message: impl std::fmt::Display) -> Self {
        Fault::new(100, "OAuthException", format!("(#100) {message}"))
    }

    pub fn unknown_object(id: &str) -> Self {
        Fault {
            subcode: Some(33),
            ..Fault::new(
                100,
                "GraphMethodException",
                format!(
                    "Unsupported get request. Object with ID '{id}' does not exist, cannot be loaded \
                     due to missing permissions, or does not support this operation. Please read \
                     the Graph API documentation at https://developers.facebook.com/docs/graph-api"
                ),
            )
        }
    }

    /// Meta's answer for an id it does not know, or a call the object does not
    /// support, naming the HTTP method as Meta does ("Unsupported post request...").
    pub fn unsupported(method: &str, id: &str) -> Self {
        let mut fault = Fault::unknown_object(id);
        fault.message = fault.message.replacen(
            "Unsupported get request",
            &format!("Unsupported {} request", method.to_ascii_lowercase()),
            1,
        );
        fault
    }

    pub(super) fn with_subcode(mut self, subcode: i64) -> Self {
        self.subcode = Some(subcode);
        self
    }

    pub(super) fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }
}

/// What happens to a number by itself, as time passes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scripted {
    /// The display name under review is decided.
    Name { approve: bool },
    /// A requested new display name is decided: `name` if it is still the one
    /// requested (`None`: whichever is pending).
    NewName { approve: bool, name: Option<String> },
    /// An approved new display name not re-registered within 14 days lapses.
    NewNameLapses { name: String },
    /// OTP verification completes.
    Verified,
    /// Quality moves between red (flagged) and yellow, again and again.
    Quality,
}

/// A change Meta would announce by webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    pub waba_id: String,
    /// Digits only, as webhooks name numbers.
    pub display_phone_number: String,
    pub what: Announced,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Announced {
    /// `phone_number_name_update`.
    NameDecision {
        decision: &'static str,
        requested_verified_name: String,
    },
    /// `phone_number_quality_update`.
    Quality {
        event: &'static str,
        current_limit: String,
    },
}

#[derive(Debug, Clone)]
pub struct Number {
    pub id: String,
    pub waba_id: String,
    pub display_phone_number: String,
    pub verified_name: String,
    pub name_status: String,
    pub new_name_status: String,
    pub new_display_name: String,
    pub code_verification_status: String,
    pub quality_rating: String,
    pub status: String,
    pub platform_type: String,
    pub throughput_level: String,
    pub messaging_limit_tier: String,
    /// The portfolio-level limit (`whatsapp_business_manager_messaging_limit`).
    pub messaging_limit: String,
    pub account_mode: String,
    pub is_official_business_account: bool,
    pub is_preverified_number: bool,
    pub last_onboarded_time: String,
    /// The country dial code, e.g. `1`.
    pub country_dial_code: String,
    pub(super) pin: Option<String>,
    /// Register and deregister attempts (they share one budget) in the last 72 hours.
    pub(super) register_attempts: VecDeque<Instant>,
    /// After the 11th attempt in 72 hours, registration is blocked for 72 hours.
    pub(super) register_blocked_until: Option<Instant>,
    /// A code was sent and not used yet.
    pub(super) code_requested: bool,
    /// Display-name change requests in the last 30 days.
    pub(super) name_requests: VecDeque<Instant>,
    /// The number this one is migrating from; registering here completes the move.
    pub(super) migrating_from: Option<String>,
}

impl Number {
    pub fn is_pin_enabled(&self) -> bool {
        self.pin.is_some()
    }

    /// Digits only, country code first, as webhooks name numbers.
    pub fn digits(&self) -> String {
        self.display_phone_number
            .chars()
            .filter(char::is_ascii_digit)
            .collect()
    }

    /// A number that has left for another WABA no longer counts as being here.
    pub fn is_migrated(&self) -> bool {
        self.status == "MIGRATED"
    }

    pub fn is_registered(&self) -> bool {
        self.platform_type == "CLOUD_API"
    }
}

#[derive(Debug)]
pub struct World {
    /// WABA id → its numbers' ids, in the order they were added.
    pub(super) wabas: BTreeMap<String, Vec<String>>,
    /// WABA id → the business portfolio that owns it.
    pub(super) owners: BTreeMap<String, String>,
    pub(super) numbers: BTreeMap<String, Number>,
    /// Business id → its pre-verified numbers' ids, in the order they were added.
    pub(super) pools: BTreeMap<String, Vec<String>>,
    pub(super) preverified: BTreeMap<String, PreVerified>,
    /// Management calls per WABA in the last hour.
    calls: BTreeMap<String, VecDeque<Instant>>,
    /// Scripted changes: when, to which number, what.
    pub(super) script: Vec<(Instant, String, Scripted)>,
    /// Time between scripted changes.
    pub(super) pace: Duration,
    /// The instant the world started, and the wall-clock time it was then.
    started: (Instant, DateTime<Utc>),
    /// No hourly budget: calls are neither counted against it nor refused (load tests).
    pub unlimited: bool,
    /// Codes exchanged, business tokens, app subscriptions (`customers.rs`).
    pub(super) customers: Customers,
}

impl Default for World {
    fn default() -> Self {
        Self {
            wabas: BTreeMap::new(),
            owners: BTreeMap::new(),
            numbers: BTreeMap::new(),
            pools: BTreeMap::new(),
            preverified: BTreeMap::new(),
            calls: BTreeMap::new(),
            script: Vec::new(),
            pace: Duration::from_secs(4),
            started: (Instant::now(), DateTime::UNIX_EPOCH),
            unlimited: false,
            customers: Customers::default(),
        }
    }
}

impl World {
    /// The demo business and its WABA: numbers in varied states that change by
    /// themselves, one change every `pace` or so from `now` (when the wall clock says
    /// `wall`) on: display names get decided, verification completes, and some numbers'
    /// quality keeps moving. Besides the 32 numbers of eight kinds, two more: one
    /// onboarded 13 days ago and not registered (its 14-day deadline is tomorrow), and
    /// one registered with a new display name in review, approved 1.5 × `pace` after
    /// start. The business also has the migration WABA and a pool of two pre-verified
    /// numbers, one verified three days ago and one not verified. Its WABAs start with
    /// the app subscribed to their webhooks.
    pub fn demo(now: Instant, wall: DateTime<Utc>, pace: Duration) -> Self {
        let mut world = World {
            pace,
            started: (now, wall),
            ..World::default()
        };
        for waba in [DEMO_WABA_ID, MIGRATION_WABA_ID] {
            world.owners.insert(waba.into(), DEMO_BUSINESS_ID.into());
            world.customers.subscribe_from_start(waba);
        }
        let mut step = 0u32;
        for i in 1..=DEMO_NUMBERS {
            let n = demo_number(i);
            if let Some(scripted) = demo_script(i) {
                step += 1;
                world
                    .script
                    .push((now + pace * step, n.id.clone(), scripted));
            }
            world.add(n);
        }

        let mut deadline_tomorrow = healthy_number(DEMO_NUMBERS + 1);
        unregister(&mut deadline_tomorrow, "PENDING");
        deadline_tomorrow.last_onboarded_time = graph_time(wall - chrono::Duration::days(13));
        world.add(deadline_tomorrow);

        let mut renamed = healthy_number(DEMO_NUMBERS + 2);
        renamed.new_display_name = format!("{} Express", renamed.verified_name);
        renamed.new_name_status = "PENDING_REVIEW".into();
        renamed.name_requests.push_back(now);
        let review = Scripted::NewName {
            approve: true,
            name: Some(renamed.new_display_name.clone()),
        };
        world
            .script
            .push((now + pace * 3 / 2, renamed.id.clone(), review));
        world.add(renamed);

        let mut movable = healthy_number(1);
        let (cc, national) = MIGRATABLE_NUMBER;
        movable.id = "106540352243900".into();
        movable.waba_id = MIGRATION_WABA_ID.into();
        movable.display_phone_number = display_number(cc, national);
        movable.verified_name = "Moving Shop".into();
        movable.pin = None;
        world.add(movable);

        world.pools.insert(DEMO_BUSINESS_ID.into(), Vec::new());
        let added = wall - chrono::Duration::days(10);
        let mut verified = PreVerified::new(DEMO_BUSINESS_ID, "15550100801", added);
        verified.verified_at(wall - chrono::Duration::days(3));
        world.add_preverified_entry(verified);
        world.add_preverified_entry(PreVerified::new(DEMO_BUSINESS_ID, "15550100802", added));
        world
    }

    /// The wall-clock time the world started at.
    pub fn started_wall(&self) -> DateTime<Utc> {
        self.started.1
    }

    /// The wall-clock time at `now`.
    pub fn wall(&self, now: Instant) -> DateTime<Utc> {
        let since = now.saturating_duration_since(self.started.0);
        self.started.1 + chrono::Duration::from_std(since).unwrap_or_default()
    }

    /// Adds the bench WABA with `count` generated numbers (at most
    /// [`MAX_BENCH_NUMBERS`]), all registered and healthy, none changing by itself.
    pub fn add_bench_waba(&mut self, count: usize) {
        if count > 0 {
            self.customers.subscribe_from_start(BENCH_WABA_ID);
        }
        for i in 1..=count.min(MAX_BENCH_NUMBERS) {
            let mut n = demo_number(1);
            n.id = bench_number_id(i);
            n.waba_id = BENCH_WABA_ID.into();
            n.display_phone_number = format!("+1 556-{i:07}");
            n.verified_name = format!("Bench Shop {i}");
            self.add(n);
        }
    }

    pub fn add(&mut self, number: Number) {
        let ids = self.wabas.entry(number.waba_id.clone()).or_default();
        ids.push(number.id.clone());
        self.numbers.insert(number.id.clone(), number);
    }

    pub fn is_waba(&self, id: &str) -> bool {
        self.wabas.contains_key(id)
    }

    /// The business portfolio owning `waba_id` (the demo business for the bench WABA).
    pub fn business_of(&self, waba_id: &str) -> &str {
        self.owners
            .get(waba_id)
            .map_or(DEMO_BUSINESS_ID, String::as_str)
    }

    /// How many numbers `waba_id` lists.
    pub fn count(&self, waba_id: &str) -> usize {
        self.wabas.get(waba_id).map_or(0, Vec::len)
    }

    /// Applies every scripted change due by `now`; returns those Meta would announce.
    pub fn settle(&mut self, now: Instant) -> Vec<Announcement> {
        let mut announced = Vec::new();
        let (mut due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.script)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.script = later;
        due.sort_by_key(|(at, _, _)| *at);
        self.expire_preverified(now);
        for (at, id, scripted) in due {
            let Some(n) = self.numbers.get_mut(&id) else {
                continue;
            };
            let decision = |approve: bool| if approve { "APPROVED" } else { "REJECTED" };
            let status = |approve: bool| if approve { "APPROVED" } else { "DECLINED" };
            let what = match scripted {
                Scripted::Name { approve } => {
                    n.name_status = status(approve).into();
                    Some(Announced::NameDecision {
                        decision: decision(approve),
                        requested_verified_name: n.verified_name.clone(),
                    })
                }
                Scripted::NewName { approve, name } => {
                    if name
                        .as_ref()
                        .is_some_and(|name| *name != n.new_display_name)
                        || n.new_name_status != "PENDING_REVIEW"
                    {
                        continue; // superseded by a later request
                    }
                    n.new_name_status = status(approve).into();
                    if approve {
                        let lapses = Scripted::NewNameLapses {
                            name: n.new_display_name.clone(),
                        };
                        self.script
                            .push((at + NAME_CHANGE_WINDOW, id.clone(), lapses));
                    }
                    Some(Announced::NameDecision {
                        decision: decision(approve),
                        requested_verified_name: n.new_display_name.clone(),
                    })
                }
                Scripted::NewNameLapses { name } => {
                    if n.new_name_status == "APPROVED" && n.new_display_name == name {
                        n.new_name_status = "EXPIRED".into();
                    }
                    None
                }
                Scripted::Verified => {
                    n.code_verification_status = "VERIFIED".into();
                    None // Meta sends no webhook for it: only a poll shows it.
                }
                Scripted::Quality => {
                    let flagged = n.status == "FLAGGED";
                    (n.quality_rating, n.status) = if flagged {
                        ("YELLOW".into(), "CONNECTED".into())
                    } else {
                        ("RED".into(), "FLAGGED".into())
                    };
                    self.script
                        .push((at + self.pace * 3, id.clone(), Scripted::Quality));
                    Some(Announced::Quality {
                        event: if flagged { "UNFLAGGED" } else { "FLAGGED" },
                        current_limit: n.messaging_limit.clone(),
                    })
                }
            };
            if let Some(what) = what {
                announced.push(Announcement {
                    waba_id: n.waba_id.clone(),
                    display_phone_number: n.digits(),
                    what,
                });
            }
        }
        announced
    }

    pub fn number(&self, id: &str) -> Result<&Number, Fault> {
        self.numbers
            .get(id)
            .ok_or_else(|| Fault::unknown_object(id))
    }

    /// A WABA's numbers from `offset`, at most `limit`, and whether more follow.
    pub fn page(
        &self,
        waba_id: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<&Number>, bool), Fault> {
        let ids = self
            .wabas
            .get(waba_id)
            .ok_or_else(|| Fault::unknown_object(waba_id))?;
        if offset > ids.len() {
            return Err(Fault::invalid_parameter("Invalid cursor"));
        }
        let page = ids
            .iter()
            .skip(offset)
            .take(limit)
            .filter_map(|id| self.numbers.get(id))
            .collect();
        Ok((page, offset.saturating_add(limit) < ids.len()))
    }

    /// Counts a management call against the WABA's hourly budget; returns the usage in
    /// percent, or 80007 once the budget is spent. Unlimited: always 0 %.
    pub fn charge(&mut self, waba_id: &str, now: Instant) -> Result<u32, Fault> {
        if self.unlimited {
            return Ok(0);
        }
        let active = self.wabas.get(waba_id).is_some_and(|ids| {
            ids.iter()
                .any(|id| self.numbers.get(id).is_some_and(Number::is_registered))
        });
        let limit = if active {
            CALLS_PER_HOUR_ACTIVE
        } else {
            CALLS_PER_HOUR_NEW
        };
        let calls = self.calls.entry(waba_id.to_owned()).or_default();
        while calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= USAGE_WINDOW)
        {
            calls.pop_front();
        }
        if calls.len() >= limit {
            let oldest = *calls.front().expect("a full window is not empty");
            let wait = USAGE_WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(Fault {
                regain_in_minutes: Some(wait.as_secs().div_ceil(60).max(1)),
                ..Fault::new(
                    80007,
                    "OAuthException",
                    "(#80007) Rate limit hit for WhatsApp Business Account",
                )
            });
        }
        calls.push_back(now);
        Ok((calls.len() * 100 / limit) as u32)
    }
}

/// The healthy demo number `i`: registered, name approved, two-step verification on.
pub(super) fn healthy_number(i: usize) -> Number {
    Number {
        id: format!("1065403522429{i:02}"),
        waba_id: DEMO_WABA_ID.into(),
        display_phone_number: format!("+1 555-010-{i:04}"),
        verified_name: format!("Demo Shop {i:02}"),
        name_status: "APPROVED".into(),
        new_name_status: "NONE".into(),
        new_display_name: String::new(),
        code_verification_status: "VERIFIED".into(),
        quality_rating: "GREEN".into(),
        status: "CONNECTED".into(),
        platform_type: "CLOUD_API".into(),
        throughput_level: "STANDARD".into(),
        messaging_limit_tier: "TIER_1K".into(),
        messaging_limit: "TIER_2K".into(),
        account_mode: "LIVE".into(),
        is_official_business_account: false,
        is_preverified_number: false,
        last_onboarded_time: format!("2026-{:02}-{:02}T09:{i:02}:00+0000", 1 + i % 9, 1 + i % 27),
        country_dial_code: "1".into(),
        pin: Some(DEMO_PIN.into()),
        register_attempts: VecDeque::new(),
        register_blocked_until: None,
        code_requested: false,
        name_requests: VecDeque::new(),
        migrating_from: None,
    }
}

/// What an unregistered number looks like.
pub(super) fn unregister(n: &mut Number, status: &str) {
    n.pin = None;
    n.platform_type = "NOT_APPLICABLE".into();
    n.throughput_level = "NOT_APPLICABLE".into();
    n.quality_rating = "UNKNOWN".into();
    n.messaging_limit_tier = "TIER_250".into();
    n.messaging_limit = "TIER_250".into();
    n.status = status.into();
}

/// `+1 555-010-0777` for cc `1` and `5550100777` (North American grouping); other
/// countries as `+{cc} {national}`.
pub(super) fn display_number(cc: &str, national: &str) -> String {
    if cc == "1" && national.len() == 10 {
        format!(
            "+1 {}-{}-{}",
            &national[..3],
            &national[3..6],
            &national[6..]
        )
    } else {
        format!("+{cc} {national}")
    }
}

/// Eight kinds of number, cycled through the demo WABA.
fn demo_number(i: usize) -> Number {
    let mut n = healthy_number(i);
    match (i - 1) % 8 {
        // Registered, approved, two-step verification on: the healthy number.
        0 => {}
        // Display name under review, verified, not registered yet.
        1 => {
            n.name_status = "PENDING_REVIEW".into();
            unregister(&mut n, "PENDING");
        }
        // Code not verified yet.
        2 => {
            n.code_verification_status = "NOT_VERIFIED".into();
            unregister(&mut n, "PENDING");
        }
        3 => {
            n.name_status = "AVAILABLE_WITHOUT_REVIEW".into();
            n.quality_rating = "YELLOW".into();
            n.messaging_limit_tier = "TIER_250".into();
        }
        4 => {
            n.name_status = "DECLINED".into();
            unregister(&mut n, "DISCONNECTED");
        }
        // A new display name requested on a registered official business account.
        5 => {
            n.new_display_name = format!("Demo Shop {i:02} Plus");
            n.new_name_status = "PENDING_REVIEW".into();
            n.is_official_business_account = true;
            n.messaging_limit_tier = "TIER_10K".into();
            n.messaging_limit = "TIER_10K".into();
        }
        6 => {
            n.code_verification_status = "EXPIRED".into();
            unregister(&mut n, "DISCONNECTED");
        }
        _ => {
            n.quality_rating = "RED".into();
            n.status = "FLAGGED".into();
            n.account_mode = "SANDBOX".into();
            n.messaging_limit_tier = "TIER_50".into();
            n.messaging_limit = "TIER_50".into();
        }
    }
    n
}

fn demo_script(i: usize) -> Option<Scripted> {
    match (i - 1) % 8 {
        // Half the reviews approve, half decline.
        1 => Some(Scripted::Name {
            approve: i % 16 != 10,
        }),
        2 => Some(Scripted::Verified),
        5 => Some(Scripted::NewName {
            approve: i % 16 != 14,
            name: None,
        }),
        7 => Some(Scripted::Quality),
        _ => None,
    }
}

/// The demo world, started at a fixed wall-clock time (2026-11-30T00:53:20Z).
#[cfg(test)]
pub(super) fn test_world(now: Instant, pace: Duration) -> World {
    let wall = DateTime::from_timestamp(1_796_000_000, 0).expect("a valid time");
    World::demo(now, wall, pace)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "106540352242902"; // verified, unregistered, no PIN
    use super::test_world as demo;

    #[test]
    fn demo_waba_is_varied_and_paginates() {
        let world = demo(Instant::now(), Duration::from_secs(20));
        let (first, more) = world.page(DEMO_WABA_ID, 0, 25).unwrap();
        assert_eq!((first.len(), more), (25, true));
        let (rest, more) = world.page(DEMO_WABA_ID, 25, 25).unwrap();
        assert_eq!((rest.len(), more), (9, false));
        let all: Vec<_> = first.iter().chain(&rest).collect();
        for status in [
            "APPROVED",
            "PENDING_REVIEW",
            "DECLINED",
            "AVAILABLE_WITHOUT_REVIEW",
        ] {
            assert!(all.iter().any(|n| n.name_status == status), "{status}");
        }
        for status in ["VERIFIED", "NOT_VERIFIED", "EXPIRED"] {
            assert!(
                all.iter().any(|n| n.code_verification_status == status),
                "{status}"
            );
        }
        assert!(all.iter().any(|n| n.is_registered()) && all.iter().any(|n| !n.is_registered()));
        assert_eq!(world.page("1", 0, 25).unwrap_err().subcode, Some(33));
        assert_eq!(
            world.page(DEMO_WABA_ID, usize::MAX, 25).unwrap_err().code,
            100
        );
    }

    #[test]
    fn the_demo_changes_by_itself_and_announces_what_meta_would() {
        let start = Instant::now();
        let mut world = demo(start, Duration::from_secs(20));
        assert_eq!(world.number(ID).unwrap().name_status, "PENDING_REVIEW");
        assert!(world.settle(start + Duration::from_secs(19)).is_empty());
        let first = world.settle(start + Duration::from_secs(20));
        let approved = Announcement {
            waba_id: DEMO_WABA_ID.into(),
            display_phone_number: "15550100002".into(),
            what: Announced::NameDecision {
                decision: "APPROVED",
                requested_verified_name: "Demo Shop 02".into(),
            },
        };
        assert_eq!(first, [approved]);
        assert_eq!(world.number(ID).unwrap().name_status, "APPROVED");

        let later = world.settle(start + Duration::from_secs(3600));
        let numbers = || world.numbers.values();
        assert_eq!(
            numbers()
                .filter(|n| n.name_status == "PENDING_REVIEW")
                .count(),
            0
        );
        assert!(numbers().any(|n| n.new_name_status == "DECLINED"));
        assert_eq!(
            world
                .number("106540352242903")
                .unwrap()
                .code_verification_status,
            "VERIFIED"
        );
        assert!(later.iter().any(|a| matches!(
            a.what,
            Announced::Quality {
                event: "UNFLAGGED",
                ..
            }
        )));
        // Quality keeps moving.
        let again = world.settle(start + Duration::from_secs(7200));
        assert!(
            again
                .iter()
                .any(|a| matches!(a.what, Announced::Quality { .. }))
        );
    }

    #[test]
    fn hourly_call_budget_throttles_with_80007() {
        let now = Instant::now();
        let mut world = World::default();
        let mut n = demo_number(2);
        n.waba_id = "5".into();
        world.add(n); // unregistered only: 200 calls an hour
        for _ in 0..CALLS_PER_HOUR_NEW {
            world.charge("5", now).unwrap();
        }
        let fault = world.charge("5", now).unwrap_err();
        assert_eq!((fault.code, fault.regain_in_minutes), (80007, Some(60)));
        world.charge("5", now + USAGE_WINDOW).unwrap();
    }

    #[test]
    fn an_unlimited_world_never_throttles_and_reports_no_usage() {
        let now = Instant::now();
        let mut world = World {
            unlimited: true,
            ..World::default()
        };
        let mut n = demo_number(2);
        n.waba_id = "5".into();
        world.add(n); // unregistered only: 200 calls an hour when limited
        for _ in 0..CALLS_PER_HOUR_ACTIVE * 2 {
            assert_eq!(world.charge("5", now), Ok(0));
        }
        assert!(world.calls.is_empty(), "nothing is kept per call");
    }

    #[test]
    fn the_bench_waba_holds_the_generated_numbers_unchanging() {
        let start = Instant::now();
        let mut world = demo(start, Duration::from_secs(1));
        world.add_bench_waba(1000);
        let (numbers, more) = world.page(BENCH_WABA_ID, 0, usize::MAX).unwrap();
        assert_eq!((numbers.len(), more), (1000, false));
        assert_eq!(numbers[0].id, "109000000000001");
        assert_eq!(numbers[999].id, bench_number_id(1000));
        let displays: std::collections::BTreeSet<_> =
            numbers.iter().map(|n| &n.display_phone_number).collect();
        assert_eq!(displays.len(), 1000, "display numbers are distinct");
        assert!(numbers.iter().all(|n| n.is_registered()));
        // The demo WABA is still there, and only its numbers change.
        assert_eq!(world.page(DEMO_WABA_ID, 0, 100).unwrap().0.len(), 34);
        let announced = world.settle(start + Duration::from_secs(3600));
        assert!(announced.iter().all(|a| a.waba_id == DEMO_WABA_ID));
        assert_eq!(
            world.number(&bench_number_id(7)).unwrap().name_status,
            "APPROVED"
        );
    }
}
