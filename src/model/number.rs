//! Domain types: plain Rust, free of Graph JSON and of protobuf.

use chrono::{DateTime, Utc};

/// A WhatsApp Business phone number as Meta reports it, and the windows the service
/// keeps track of for it (`windows`, never from Meta).
///
/// Meta's enums are open (values get added and renamed), so they are kept as Meta's
/// strings; an empty string means Meta did not return the field.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PhoneNumber {
    pub id: String,
    pub display_phone_number: String,
    pub verified_name: String,
    pub name_status: String,
    pub new_name_status: String,
    pub new_display_name: String,
    pub code_verification_status: String,
    pub quality_rating: String,
    /// The connection status (`CONNECTED`, `PENDING`, ...).
    pub status: String,
    pub platform_type: String,
    pub throughput_level: String,
    /// Deprecated by Meta (null on recent versions); kept while Meta serves it.
    pub messaging_limit_tier: String,
    /// The business portfolio's messaging limit (`whatsapp_business_manager_messaging_limit`).
    pub messaging_limit: String,
    pub account_mode: String,
    pub is_official_business_account: bool,
    pub is_pin_enabled: bool,
    pub last_onboarded_time: Option<DateTime<Utc>>,
    /// Created from a pre-verified number.
    pub is_preverified_number: bool,
    /// Also on the WhatsApp Business app (coexistence).
    pub is_on_biz_app: bool,
    pub windows: Windows,
}

/// What the service works out for a number: when it must be registered (again), and
/// how many register/deregister attempts it has left. Empty as Meta answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Windows {
    /// Register by then, or the customer goes through Embedded Signup again.
    pub register_deadline: Option<DateTime<Utc>>,
    /// Register again by then, or the approved display-name change lapses.
    pub reregister_deadline: Option<DateTime<Utc>>,
    pub register_budget: Option<RegisterBudget>,
}

/// A number's register/deregister budget as the service counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RegisterBudget {
    /// Attempts left in the moving window, of Meta's 10.
    pub attempts_left: u32,
    /// Attempts the service keeps back for a person.
    pub reserve: u32,
    /// Until when register and deregister are refused (by the guard or by Meta).
    pub blocked_until: Option<DateTime<Utc>>,
}

/// A number as the service last saw it: read from Meta, or changed by a webhook since.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub number: PhoneNumber,
    /// When the service read it from Meta or applied a webhook to it: how fresh it is,
    /// told to every caller. Never a change in itself.
    pub observed_at: DateTime<Utc>,
    /// The same moment on the monotonic (tokio) clock, for deciding freshness.
    pub seen: tokio::time::Instant,
    /// When the read that found it started (a push: when it was applied). A push that
    /// landed after this is newer than the snapshot, even if the read ended later.
    pub since: tokio::time::Instant,
}

impl Snapshot {
    /// A snapshot a read that started at `since` found, now.
    pub fn read(number: PhoneNumber, since: tokio::time::Instant) -> Self {
        Snapshot {
            number,
            observed_at: Utc::now(),
            seen: tokio::time::Instant::now(),
            since,
        }
    }

    /// A snapshot a push changed, now.
    pub fn pushed(number: PhoneNumber) -> Self {
        Snapshot::read(number, tokio::time::Instant::now())
    }

    /// How long ago it was seen.
    pub fn age(&self) -> std::time::Duration {
        self.seen.elapsed()
    }
}

/// One page of a WABA's numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumbersPage {
    pub numbers: Vec<PhoneNumber>,
    /// Meta's cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Whether `s` can be a Graph object id: digits only, no leading zero. Ids go into URL
/// paths, so anything else (`123/../me`) must never reach Meta; and one object has one
/// spelling, so `0123` cannot pass for a number with a budget of its own.
pub fn is_graph_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit())
}

impl PhoneNumber {
    /// Names of the fields (as in the proto) whose values differ from `before`.
    pub fn changed_fields(&self, before: &PhoneNumber) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut check = |name: &'static str, differs: bool| {
            if differs {
                changed.push(name);
            }
        };
        check("id", self.id != before.id);
        check(
            "display_phone_number",
            self.display_phone_number != before.display_phone_number,
        );
        check("verified_name", self.verified_name != before.verified_name);
        check("name_status", self.name_status != before.name_status);
        check(
            "new_name_status",
            self.new_name_status != before.new_name_status,
        );
        check(
            "new_display_name",
            self.new_display_name != before.new_display_name,
        );
        check(
            "code_verification_status",
            self.code_verification_status != before.code_verification_status,
        );
        check(
            "quality_rating",
            self.quality_rating != before.quality_rating,
        );
        check("status", self.status != before.status);
        check("platform_type", self.platform_type != before.platform_type);
        check(
            "throughput_level",
            self.throughput_level != before.throughput_level,
        );
        check(
            "messaging_limit_tier",
            self.messaging_limit_tier != before.messaging_limit_tier,
        );
        check(
            "messaging_limit",
            self.messaging_limit != before.messaging_limit,
        );
        check("account_mode", self.account_mode != before.account_mode);
        check(
            "is_official_business_account",
            self.is_official_business_account != before.is_official_business_account,
        );
        check(
            "is_pin_enabled",
            self.is_pin_enabled != before.is_pin_enabled,
        );
        check(
            "last_onboarded_time",
            self.last_onboarded_time != before.last_onboarded_time,
        );
        check(
            "is_preverified_number",
            self.is_preverified_number != before.is_preverified_number,
        );
        check("is_on_biz_app", self.is_on_biz_app != before.is_on_biz_app);
        let (now, then) = (&self.windows, &before.windows);
        check(
            "register_deadline",
            now.register_deadline != then.register_deadline,
        );
        check(
            "reregister_deadline",
            now.reregister_deadline != then.reregister_deadline,
        );
        check(
            "register_budget",
            now.register_budget != then.register_budget,
        );
        changed
    }

    /// The phone number's digits, as webhooks name it (`+1 555-010-0001` → `15550100001`).
    pub fn display_digits(&self) -> String {
        digits(&self.display_phone_number)
    }
}

/// Only the digits of a phone number.
pub fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_fields_names_exactly_what_differs() {
        let before = PhoneNumber {
            id: "1".into(),
            name_status: "PENDING_REVIEW".into(),
            ..PhoneNumber::default()
        };
        let mut after = before.clone();
        assert!(after.changed_fields(&before).is_empty());
        after.name_status = "APPROVED".into();
        after.is_pin_enabled = true;
        assert_eq!(
            after.changed_fields(&before),
            ["name_status", "is_pin_enabled"]
        );
    }

    #[test]
    fn the_windows_are_named_when_they_appear_or_move() {
        let before = PhoneNumber::default();
        let mut after = before.clone();
        after.windows.reregister_deadline = Some(DateTime::<Utc>::UNIX_EPOCH);
        after.windows.register_budget = Some(RegisterBudget {
            attempts_left: 9,
            reserve: 1,
            blocked_until: None,
        });
        assert_eq!(
            after.changed_fields(&before),
            ["reregister_deadline", "register_budget"]
        );
    }

    #[test]
    fn display_digits_match_the_webhook_form() {
        let n = PhoneNumber {
            display_phone_number: "+1 555-010-0001".into(),
            ..PhoneNumber::default()
        };
        assert_eq!(n.display_digits(), "15550100001");
    }
}
