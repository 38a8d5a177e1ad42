//! A business portfolio's pool of pre-verified phone numbers, offered to customers in
//! Embedded Signup.

use chrono::{DateTime, Utc};

/// A number in the pool, as Meta reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreverifiedNumber {
    /// The pre-verified number id (not a phone number id).
    pub id: String,
    /// Digits with the country code.
    pub phone_number: String,
    /// `NOT_VERIFIED`, `VERIFIED` or `EXPIRED` (Meta's string; empty when not returned).
    pub code_verification_status: String,
    pub code_verification_time: Option<DateTime<Utc>>,
    pub verification_expiry_time: Option<DateTime<Utc>>,
}

/// One page of a pool.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreverifiedPage {
    pub numbers: Vec<PreverifiedNumber>,
    /// Meta's cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}
