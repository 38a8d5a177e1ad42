//! A customer of the Solution Partner, as every layer names its parts: the state of its
//! business token and the steps that take it from Embedded Signup to a registered number.
//! The store keeps them, the onboarding logic moves them, the gRPC layer shows them.

use std::fmt;

/// What is known of a customer's business token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenState {
    /// Kept, not yet checked with `debug_token` (just exchanged, or replaced).
    Unchecked,
    /// Checked: valid, and scoped to the customer's WABA.
    Active,
    /// Expired or revoked: the customer must go through Embedded Signup again.
    ReauthRequired,
}

impl TokenState {
    pub const ALL: [TokenState; 3] = [
        TokenState::Unchecked,
        TokenState::Active,
        TokenState::ReauthRequired,
    ];

    /// A stable lower-case name (what the store writes).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenState::Unchecked => "unchecked",
            TokenState::Active => "active",
            TokenState::ReauthRequired => "reauth_required",
        }
    }

    /// The state named `name` by [`TokenState::as_str`].
    pub fn from_name(name: &str) -> Option<TokenState> {
        TokenState::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for TokenState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The steps of onboarding a customer, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OnboardingStep {
    /// The Embedded Signup `code` exchanged for a business token.
    ExchangeCode,
    /// The token kept, encrypted, for the WABA.
    KeepToken,
    /// The token checked with `debug_token` (valid, scoped to the WABA).
    CheckToken,
    /// The app subscribed to the WABA's webhooks.
    SubscribeWebhooks,
    /// The WABA's numbers indexed (number → WABA).
    IndexNumbers,
    /// The given number registered for the Cloud API.
    RegisterNumber,
}

impl OnboardingStep {
    pub const ALL: [OnboardingStep; 6] = [
        OnboardingStep::ExchangeCode,
        OnboardingStep::KeepToken,
        OnboardingStep::CheckToken,
        OnboardingStep::SubscribeWebhooks,
        OnboardingStep::IndexNumbers,
        OnboardingStep::RegisterNumber,
    ];

    /// A stable lower-case name (what the store writes, what ErrorInfo may carry).
    pub fn as_str(self) -> &'static str {
        match self {
            OnboardingStep::ExchangeCode => "exchange_code",
            OnboardingStep::KeepToken => "keep_token",
            OnboardingStep::CheckToken => "check_token",
            OnboardingStep::SubscribeWebhooks => "subscribe_webhooks",
            OnboardingStep::IndexNumbers => "index_numbers",
            OnboardingStep::RegisterNumber => "register_number",
        }
    }

    /// The step named `name` by [`OnboardingStep::as_str`].
    pub fn from_name(name: &str) -> Option<OnboardingStep> {
        OnboardingStep::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for OnboardingStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in TokenState::ALL {
            assert_eq!(TokenState::from_name(state.as_str()), Some(state));
        }
        for step in OnboardingStep::ALL {
            assert_eq!(OnboardingStep::from_name(step.as_str()), Some(step));
        }
        assert_eq!(TokenState::from_name("ACTIVE"), None);
        assert_eq!(OnboardingStep::from_name("register"), None);
    }
}
