//! Domain types → protobuf. The one place the two meet.

use super::pb;
use crate::customers::CustomerView;
use crate::model::{
    OnboardingStep, PhoneNumber, PreverifiedNumber, RegisterBudget, Snapshot, TokenState,
};
use chrono::{DateTime, Utc};

impl From<PhoneNumber> for pb::PhoneNumber {
    // Filling the deprecated messaging_limit_tier is deliberate: Meta still serves it.
    #[allow(deprecated)]
    fn from(n: PhoneNumber) -> Self {
        pb::PhoneNumber {
            name_status: known(
                "NAME_STATUS_",
                &n.name_status,
                pb::NameStatus::from_str_name,
            ),
            new_name_status: known(
                "NAME_STATUS_",
                &n.new_name_status,
                pb::NameStatus::from_str_name,
            ),
            code_verification_status: known(
                "VERIFICATION_STATUS_",
                &n.code_verification_status,
                pb::VerificationStatus::from_str_name,
            ),
            quality_rating: known(
                "QUALITY_RATING_",
                &n.quality_rating,
                pb::QualityRating::from_str_name,
            ),
            status: known(
                "CONNECTION_STATUS_",
                &n.status,
                pb::ConnectionStatus::from_str_name,
            ),
            platform_type: known(
                "PLATFORM_TYPE_",
                &n.platform_type,
                pb::PlatformType::from_str_name,
            ),
            throughput_level: known(
                "THROUGHPUT_LEVEL_",
                &n.throughput_level,
                pb::ThroughputLevel::from_str_name,
            ),
            messaging_limit_tier: limit(&n.messaging_limit_tier),
            messaging_limit: limit(&n.messaging_limit),
            account_mode: known(
                "ACCOUNT_MODE_",
                &n.account_mode,
                pb::AccountMode::from_str_name,
            ),
            last_onboarded_time: n.last_onboarded_time.map(timestamp),
            observed_at: None,
            is_preverified_number: n.is_preverified_number,
            is_on_biz_app: n.is_on_biz_app,
            register_deadline: n.windows.register_deadline.map(timestamp),
            reregister_deadline: n.windows.reregister_deadline.map(timestamp),
            register_budget: n.windows.register_budget.map(Into::into),
            id: n.id,
            display_phone_number: n.display_phone_number,
            verified_name: n.verified_name,
            new_display_name: n.new_display_name,
            is_official_business_account: n.is_official_business_account,
            is_pin_enabled: n.is_pin_enabled,
            name_status_raw: n.name_status,
            new_name_status_raw: n.new_name_status,
            code_verification_status_raw: n.code_verification_status,
            quality_rating_raw: n.quality_rating,
            status_raw: n.status,
            platform_type_raw: n.platform_type,
            throughput_level_raw: n.throughput_level,
            messaging_limit_tier_raw: n.messaging_limit_tier,
            messaging_limit_raw: n.messaging_limit,
            account_mode_raw: n.account_mode,
        }
    }
}

impl From<&Snapshot> for pb::PhoneNumber {
    fn from(s: &Snapshot) -> Self {
        pb::PhoneNumber {
            observed_at: Some(timestamp(s.observed_at)),
            ..s.number.clone().into()
        }
    }
}

impl From<RegisterBudget> for pb::RegisterBudget {
    fn from(b: RegisterBudget) -> Self {
        pb::RegisterBudget {
            attempts_left: b.attempts_left as i32,
            reserve: b.reserve as i32,
            blocked_until: b.blocked_until.map(timestamp),
        }
    }
}

impl From<PreverifiedNumber> for pb::PreverifiedNumber {
    fn from(n: PreverifiedNumber) -> Self {
        pb::PreverifiedNumber {
            code_verification_status: known(
                "VERIFICATION_STATUS_",
                &n.code_verification_status,
                pb::VerificationStatus::from_str_name,
            ),
            code_verification_status_raw: n.code_verification_status,
            code_verification_time: n.code_verification_time.map(timestamp),
            verification_expiry_time: n.verification_expiry_time.map(timestamp),
            id: n.id,
            phone_number: n.phone_number,
        }
    }
}

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

/// `TIER_2K`, `UNTIERED`... as a `MessagingLimitTier`.
fn limit(raw: &str) -> i32 {
    let name = raw.strip_prefix("TIER_").unwrap_or(raw);
    known(
        "MESSAGING_LIMIT_TIER_",
        name,
        pb::MessagingLimitTier::from_str_name,
    )
}

/// Meta's string as a proto enum value (named `{prefix}{raw}`); an unknown value is 0
/// (`*_UNSPECIFIED`), its raw string kept beside it.
fn known<E: Into<i32>>(prefix: &str, raw: &str, from_name: fn(&str) -> Option<E>) -> i32 {
    if raw.is_empty() {
        return 0;
    }
    from_name(&format!("{prefix}{raw}")).map_or(0, Into::into)
}

impl From<CustomerView> for pb::Customer {
    fn from(view: CustomerView) -> Self {
        let c = view.customer;
        let token_state = match c.token_state {
            TokenState::Active => pb::TokenState::Active,
            TokenState::ReauthRequired => pb::TokenState::ReauthRequired,
            TokenState::Unchecked => pb::TokenState::Unchecked,
        };
        let steps = OnboardingStep::ALL
            .into_iter()
            .map(|step| {
                let failure = c.progress.failure.as_ref().filter(|f| f.step == step);
                let state = if c.progress.is_done(step) {
                    pb::StepState::Done
                } else if failure.is_some() {
                    pb::StepState::Failed
                } else if step == OnboardingStep::RegisterNumber && c.onboarded_at.is_some() {
                    // Onboarding completed without it: no number was given.
                    pb::StepState::Skipped
                } else {
                    pb::StepState::Pending
                };
                pb::StepProgress {
                    step: onboarding_step(step) as i32,
                    state: state as i32,
                    error: failure.map(|f| tonic_types::pb::Status {
                        code: f.code,
                        message: f.message.clone(),
                        details: Vec::new(),
                    }),
                }
            })
            .collect();
        pb::Customer {
            business_id: c.business_id.unwrap_or_default(),
            token_state: token_state as i32,
            webhooks_subscribed: c.webhooks_subscribed,
            phone_number_ids: view.phone_number_ids,
            onboarded_at: c.onboarded_at.map(timestamp),
            token_expires_at: c.token_expires_at.map(timestamp),
            steps,
            waba_id: c.waba_id,
        }
    }
}

fn onboarding_step(step: OnboardingStep) -> pb::OnboardingStep {
    match step {
        OnboardingStep::ExchangeCode => pb::OnboardingStep::ExchangeCode,
        OnboardingStep::KeepToken => pb::OnboardingStep::KeepToken,
        OnboardingStep::CheckToken => pb::OnboardingStep::CheckToken,
        OnboardingStep::SubscribeWebhooks => pb::OnboardingStep::SubscribeWebhooks,
        OnboardingStep::IndexNumbers => pb::OnboardingStep::IndexNumbers,
        OnboardingStep::RegisterNumber => pb::OnboardingStep::RegisterNumber,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_map_and_unknown_ones_stay_readable() {
        let n = PhoneNumber {
            name_status: "APPROVED".into(),
            new_name_status: "SOMETHING_META_ADDS_LATER".into(),
            messaging_limit_tier: "TIER_1K".into(),
            messaging_limit: "UNTIERED".into(),
            quality_rating: "NA".into(),
            ..PhoneNumber::default()
        };
        let p = pb::PhoneNumber::from(n);
        assert_eq!(p.name_status(), pb::NameStatus::Approved);
        assert_eq!(p.new_name_status(), pb::NameStatus::Unspecified);
        assert_eq!(p.new_name_status_raw, "SOMETHING_META_ADDS_LATER");
        #[allow(deprecated)]
        let tier = p.messaging_limit_tier();
        assert_eq!(tier, pb::MessagingLimitTier::MessagingLimitTier1k);
        assert_eq!(p.messaging_limit(), pb::MessagingLimitTier::Untiered);
        assert_eq!(p.messaging_limit_raw, "UNTIERED");
        assert_eq!(p.quality_rating(), pb::QualityRating::Na);
        assert_eq!(p.status(), pb::ConnectionStatus::Unspecified);
        assert_eq!(p.status_raw, "");
    }
}
