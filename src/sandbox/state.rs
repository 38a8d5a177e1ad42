//! The simulated world: WABAs, their numbers, and Meta's rules about them.
//!
//! Pure state: every method takes `now`, so the rules are tested without clocks.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

pub const DEMO_WABA_ID: &str = "102290129340398";
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

const REGISTER_WINDOW: Duration = Duration::from_secs(72 * 3600);
const REGISTER_LIMIT: usize = 10;
const USAGE_WINDOW: Duration = Duration::from_secs(3600);
/// Management calls per app per WABA per hour: 200 until a number is registered.
const CALLS_PER_HOUR_NEW: usize = 200;
const CALLS_PER_HOUR_ACTIVE: usize = 5000;
/// Local Storage regions per Meta's OpenAPI description.
const REGIONS: &[&str] = &[
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

    fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }
}

/// What happens to a demo number by itself, as time passes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scripted {
    /// The display name under review is decided.
    Name { approve: bool },
    /// A requested new display name is decided.
    NewName { approve: bool },
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
    pub last_onboarded_time: String,
    pin: Option<String>,
    register_attempts: VecDeque<Instant>,
    /// After the 11th attempt in 72 hours, registration is blocked for 72 hours.
    register_blocked_until: Option<Instant>,
}

impl Number {
    pub fn is_pin_enabled(&self) -> bool {
        self.pin.is_some()
    }

    pub fn is_registered(&self) -> bool {
        self.platform_type == "CLOUD_API"
    }
}

/// What a register call carries.
#[derive(Debug, Default)]
pub struct RegisterParams {
    pub messaging_product: Option<String>,
    pub pin: Option<String>,
    pub data_localization_region: Option<String>,
}

#[derive(Debug, Default)]
pub struct World {
    /// WABA id → its numbers' ids, in the order they were added.
    wabas: BTreeMap<String, Vec<String>>,
    numbers: BTreeMap<String, Number>,
    /// Management calls per WABA in the last hour.
    calls: BTreeMap<String, VecDeque<Instant>>,
    /// Scripted changes: when, to which number, what.
    script: Vec<(Instant, String, Scripted)>,
    /// Time between scripted changes.
    pace: Duration,
    /// No hourly budget: calls are neither counted against it nor refused (load tests).
    pub unlimited: bool,
}

impl World {
    /// The demo WABA: numbers in varied states that change by themselves, one change
    /// every `pace` or so from `now` on: display names get decided, verification
    /// completes, and some numbers' quality keeps moving.
    pub fn demo(now: Instant, pace: Duration) -> Self {
        let mut world = World {
            pace,
            ..World::default()
        };
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
        world
    }

    /// Adds the bench WABA with `count` generated numbers (at most
    /// [`MAX_BENCH_NUMBERS`]), all registered and healthy, none changing by itself.
    pub fn add_bench_waba(&mut self, count: usize) {
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

    /// Applies every scripted change due by `now`; returns those Meta would announce.
    pub fn settle(&mut self, now: Instant) -> Vec<Announcement> {
        let mut announced = Vec::new();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.script)
            .into_iter()
            .partition(|(at, _, _)| *at <= now);
        self.script = later;
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
                Scripted::NewName { approve } => {
                    n.new_name_status = status(approve).into();
                    Some(Announced::NameDecision {
                        decision: decision(approve),
                        requested_verified_name: n.new_display_name.clone(),
                    })
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
                    display_phone_number: n
                        .display_phone_number
                        .chars()
                        .filter(char::is_ascii_digit)
                        .collect(),
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

    /// `POST /{id}/register`, with Meta's rules: every attempt counts against 10 per
    /// 72 hours; a number with two-step verification needs its PIN.
    pub fn register(
        &mut self,
        id: &str,
        params: RegisterParams,
        now: Instant,
    ) -> Result<(), Fault> {
        let n = self
            .numbers
            .get_mut(id)
            .ok_or_else(|| Fault::unknown_object(id))?;
        match params.messaging_product.as_deref() {
            Some("whatsapp") => {}
            Some(other) => {
                return Err(Fault::invalid_parameter(format!(
                    "Invalid messaging_product: {other}"
                )));
            }
            None => {
                return Err(Fault::invalid_parameter(
                    "The parameter messaging_product is required.",
                ));
            }
        }
        let pin = params
            .pin
            .ok_or_else(|| Fault::invalid_parameter("The parameter pin is required."))?;
        if pin.len() != 6 || !pin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Fault::invalid_parameter(
                "Param pin must be a 6-digit number.",
            ));
        }
        if let Some(region) = params.data_localization_region.as_deref()
            && !REGIONS.contains(&region)
        {
            return Err(Fault::invalid_parameter(format!(
                "Param data_localization_region must be one of {}",
                REGIONS.join(", ")
            )));
        }

        let attempts = &mut n.register_attempts;
        while attempts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= REGISTER_WINDOW)
        {
            attempts.pop_front();
        }
        if attempts.len() >= REGISTER_LIMIT {
            n.register_blocked_until = Some(now + REGISTER_WINDOW);
        }
        if n.register_blocked_until.is_some_and(|until| now < until) {
            return Err(Fault::new(
                133016,
                "OAuthException",
                "(#133016) Account register deregister rate limit exceeded",
            )
            .with_details(
                "Too many register or deregister requests for this phone number; registration is \
                 blocked for 72 hours.",
            ));
        }
        attempts.push_back(now);

        if n.code_verification_status != "VERIFIED" {
            return Err(Fault::new(
                133006,
                "OAuthException",
                "(#133006) Phone number re-verification needed",
            )
            .with_details(
                "Verify the phone number (request_code, verify_code) before registering it.",
            ));
        }
        if n.pin.as_deref().is_some_and(|set| set != pin) {
            return Err(Fault::new(
                133005,
                "OAuthException",
                "(#133005) Two step verification PIN Mismatch",
            )
            .with_details(
                "The PIN does not match the two-step verification PIN set on this number.",
            ));
        }
        n.pin = Some(pin);
        n.platform_type = "CLOUD_API".into();
        n.status = "CONNECTED".into();
        n.throughput_level = "STANDARD".into();
        if n.quality_rating == "UNKNOWN" {
            n.quality_rating = "GREEN".into();
        }
        Ok(())
    }
}

/// Eight kinds of number, cycled through the demo WABA.
fn demo_number(i: usize) -> Number {
    let mut n = Number {
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
        last_onboarded_time: format!("2026-{:02}-{:02}T09:{i:02}:00+0000", 1 + i % 9, 1 + i % 27),
        pin: Some(DEMO_PIN.into()),
        register_attempts: VecDeque::new(),
        register_blocked_until: None,
    };
    let unregistered = |n: &mut Number, status: &str| {
        n.pin = None;
        n.platform_type = "NOT_APPLICABLE".into();
        n.throughput_level = "NOT_APPLICABLE".into();
        n.quality_rating = "UNKNOWN".into();
        n.messaging_limit_tier = "TIER_250".into();
        n.messaging_limit = "TIER_250".into();
        n.status = status.into();
    };
    match (i - 1) % 8 {
        // Registered, approved, two-step verification on: the healthy number.
        0 => {}
        // Display name under review, verified, not registered yet.
        1 => {
            n.name_status = "PENDING_REVIEW".into();
            unregistered(&mut n, "PENDING");
        }
        // Code not verified yet.
        2 => {
            n.code_verification_status = "NOT_VERIFIED".into();
            unregistered(&mut n, "PENDING");
        }
        3 => {
            n.name_status = "AVAILABLE_WITHOUT_REVIEW".into();
            n.quality_rating = "YELLOW".into();
            n.messaging_limit_tier = "TIER_250".into();
        }
        4 => {
            n.name_status = "DECLINED".into();
            unregistered(&mut n, "DISCONNECTED");
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
            unregistered(&mut n, "DISCONNECTED");
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
        }),
        7 => Some(Scripted::Quality),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "106540352242902"; // verified, unregistered, no PIN
    const WITH_PIN: &str = "106540352242901";

    fn register(world: &mut World, id: &str, pin: &str, now: Instant) -> Result<(), Fault> {
        let params = RegisterParams {
            messaging_product: Some("whatsapp".into()),
            pin: Some(pin.into()),
            data_localization_region: None,
        };
        world.register(id, params, now)
    }

    #[test]
    fn demo_waba_is_varied_and_paginates() {
        let world = World::demo(Instant::now(), Duration::from_secs(20));
        let (first, more) = world.page(DEMO_WABA_ID, 0, 25).unwrap();
        assert_eq!((first.len(), more), (25, true));
        let (rest, more) = world.page(DEMO_WABA_ID, 25, 25).unwrap();
        assert_eq!((rest.len(), more), (7, false));
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
        let mut world = World::demo(start, Duration::from_secs(20));
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
    fn register_sets_the_pin_then_requires_it() {
        let now = Instant::now();
        let mut world = World::demo(now, Duration::from_secs(20));
        register(&mut world, ID, "654321", now).unwrap();
        let n = world.number(ID).unwrap();
        assert!(n.is_registered() && n.is_pin_enabled());
        assert_eq!(
            register(&mut world, ID, "111111", now).unwrap_err().code,
            133005
        );
        assert_eq!(
            register(&mut world, WITH_PIN, "000000", now)
                .unwrap_err()
                .code,
            133005
        );
        register(&mut world, WITH_PIN, DEMO_PIN, now).unwrap();
    }

    #[test]
    fn the_eleventh_register_attempt_in_72_hours_is_refused() {
        let start = Instant::now();
        let mut world = World::demo(start, Duration::from_secs(20));
        for i in 0..10 {
            let at = start + Duration::from_secs(i * 60);
            let _ = register(
                &mut world,
                WITH_PIN,
                if i % 2 == 0 { "000000" } else { DEMO_PIN },
                at,
            );
        }
        let refused_at = start + Duration::from_secs(3600);
        let eleventh = register(&mut world, WITH_PIN, DEMO_PIN, refused_at);
        assert_eq!(eleventh.unwrap_err().code, 133016);
        // Blocked for 72 hours from the refusal, not from the first attempt.
        let still_blocked = register(&mut world, WITH_PIN, DEMO_PIN, start + REGISTER_WINDOW);
        assert_eq!(still_blocked.unwrap_err().code, 133016);
        register(&mut world, WITH_PIN, DEMO_PIN, refused_at + REGISTER_WINDOW).unwrap();
    }

    #[test]
    fn register_checks_its_parameters_and_the_verification() {
        let now = Instant::now();
        let mut world = World::demo(now, Duration::from_secs(20));
        let missing = world
            .register(ID, RegisterParams::default(), now)
            .unwrap_err();
        assert_eq!(missing.code, 100);
        assert_eq!(
            register(&mut world, ID, "12345", now).unwrap_err().code,
            100
        );
        let not_verified = "106540352242903";
        assert_eq!(
            register(&mut world, not_verified, "123456", now)
                .unwrap_err()
                .code,
            133006
        );
        assert_eq!(
            register(&mut world, "999", "123456", now)
                .unwrap_err()
                .subcode,
            Some(33)
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
        let mut world = World::demo(start, Duration::from_secs(1));
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
        assert_eq!(world.page(DEMO_WABA_ID, 0, 100).unwrap().0.len(), 32);
        let announced = world.settle(start + Duration::from_secs(3600));
        assert!(announced.iter().all(|a| a.waba_id == DEMO_WABA_ID));
        assert_eq!(
            world.number(&bench_number_id(7)).unwrap().name_status,
            "APPROVED"
        );
    }
}
