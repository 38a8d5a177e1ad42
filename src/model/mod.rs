//! The plain domain types every layer speaks: a phone number as Meta reports it, a page
//! of them, the changes Meta pushes, ids, deadlines, a customer's token state and
//! onboarding steps. Plain Rust, free of Graph JSON and of protobuf; this module imports
//! nothing of the crate, so any layer may use it.

mod customer;
mod number;
mod preverified;
mod push;

pub use customer::{OnboardingStep, TokenState};
pub use number::{
    NumbersPage, PhoneNumber, RegisterBudget, Snapshot, Windows, digits, is_graph_id,
};
pub use preverified::{PreverifiedNumber, PreverifiedPage};
pub use push::{Push, PushKind};

/// When the caller stops waiting; `None` when it set no deadline.
pub type Deadline = Option<tokio::time::Instant>;

/// How Meta delivers a verification code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CodeMethod {
    Sms,
    Voice,
}

impl CodeMethod {
    /// Meta's `code_method` value.
    pub fn as_meta(self) -> &'static str {
        match self {
            CodeMethod::Sms => "SMS",
            CodeMethod::Voice => "VOICE",
        }
    }
}

/// What Meta says of a token (`debug_token`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenInfo {
    pub is_valid: bool,
    /// `None`: it never expires.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The WABAs it may manage (`whatsapp_business_management`'s targets).
    pub managed_wabas: Vec<String>,
    /// The business portfolios it reaches (`business_management`'s targets), when listed.
    pub businesses: Vec<String>,
}
