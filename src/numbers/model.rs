//! Domain types: plain Rust, free of Graph JSON and of protobuf.

use chrono::{DateTime, Utc};

/// A WhatsApp Business phone number as Meta reports it.
///
/// Meta's enums are open (values get added and renamed), so they are kept as Meta's
/// strings; an empty string means Meta did not return the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    pub messaging_limit_tier: String,
    pub account_mode: String,
    pub is_official_business_account: bool,
    pub is_pin_enabled: bool,
    pub last_onboarded_time: Option<DateTime<Utc>>,
}

/// One page of a WABA's numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NumbersPage {
    pub numbers: Vec<PhoneNumber>,
    /// Meta's cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Whether `s` can be a Graph object id: digits only. Ids go into URL paths, so
/// anything else (`123/../me`) must never reach Meta.
pub fn is_graph_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit())
}
