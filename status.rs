//! The one mapping from errors to `tonic::Status`, with standard error details:
//! `google.rpc.ErrorInfo` (domain `graph.facebook.com`, Meta's code, subcode,
//! fbtrace_id and details as metadata), `RetryInfo` when waiting helps, and
//! `BadRequest` for invalid input.
//!
//! Branches on Meta's `error.code`, then `error_subcode`; never on the HTTP status alone.

use crate::graph::{self, GraphError, PHONE_NODE};
use crate::model::OnboardingStep;
use crate::{customers, keyring, numbers};
use std::collections::HashMap;
use std::time::Duration;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, QuotaViolation, StatusExt};

pub const GRAPH_DOMAIN: &str = "graph.facebook.com";
/// The domain of errors the service raises itself.
pub const SERVICE_DOMAIN: &str = "waba-numbers";

const REGISTER_BLOCK: Duration = Duration::from_secs(72 * 3600);

impl From<numbers::Error> for Status {
    fn from(err: numbers::Error) -> Self {
        match err {
            numbers::Error::Upstream(e) => upstream(&e, false),
            numbers::Error::WriteFailed(e) => upstream(&e, true),
            numbers::Error::RequestIdReused => invalid_argument(vec![FieldViolation::new(
                "request_id",
                "was already used for a different request of this kind in the last 24 hours",
            )]),
            // No RetryInfo: a blind retry may spend another of the 10 attempts per 72 hours,
            // or send another SMS.
            numbers::Error::OutcomeUnknown { write, cause } => {
                let reason = match write {
                    numbers::Write::Register => "REGISTER_OUTCOME_UNKNOWN",
                    _ => "WRITE_OUTCOME_UNKNOWN",
                };
                Status::with_error_details(
                    Code::Unavailable,
                    format!(
                        "the {} request may or may not have reached Meta ({cause}); read the \
                         number (GetStatus) before trying again",
                        write.name()
                    ),
                    ErrorDetails::with_error_info(reason, SERVICE_DOMAIN, HashMap::new()),
                )
            }
            numbers::Error::Refused(ref refusal) => refused(refusal, err.to_string()),
            // Meta was not called: it said to wait, and no cached answer was allowed.
            numbers::Error::Throttled { retry_after } => {
                let mut details = ErrorDetails::with_error_info(
                    "GRAPH_RATE_LIMITED",
                    SERVICE_DOMAIN,
                    HashMap::new(),
                );
                details.set_retry_info(Some(retry_after));
                Status::with_error_details(Code::ResourceExhausted, err.to_string(), details)
            }
            numbers::Error::Credentials(e) => credentials(&e),
            numbers::Error::StoreUnavailable(_) => store_unavailable(err.to_string()),
        }
    }
}

impl From<keyring::Error> for Status {
    fn from(e: keyring::Error) -> Self {
        credentials(&e)
    }
}

impl From<customers::Error> for Status {
    fn from(err: customers::Error) -> Self {
        use customers::Error as E;
        let service = |code, reason: &str, message: String| {
            let details = ErrorDetails::with_error_info(reason, SERVICE_DOMAIN, HashMap::new());
            Status::with_error_details(code, message, details)
        };
        match err {
            E::NoStore => service(
                Code::FailedPrecondition,
                "STORE_NOT_CONFIGURED",
                err.to_string(),
            ),
            E::NotFound { .. } => service(Code::NotFound, "CUSTOMER_NOT_FOUND", err.to_string()),
            E::Store(_) => store_unavailable(err.to_string()),
            E::Unsubscribe { ref cause, .. } => {
                let status = upstream(cause, true);
                Status::with_error_details(
                    status.code(),
                    err.to_string(),
                    status.get_error_details(),
                )
            }
            E::Step { step, cause } => step_failed(step, cause),
            E::Busy { .. } => {
                let mut details =
                    ErrorDetails::with_error_info("CUSTOMER_BUSY", SERVICE_DOMAIN, HashMap::new());
                details.set_retry_info(Some(Duration::from_secs(1)));
                Status::with_error_details(Code::Aborted, err.to_string(), details)
            }
        }
    }
}

/// A failed onboarding step: the status of what failed, its ErrorInfo naming the step
/// (metadata `onboarding_step`).
fn step_failed(step: OnboardingStep, cause: customers::Cause) -> Status {
    use customers::Cause as C;
    let message = format!("onboarding step {step} failed: {cause}");
    let status = match cause {
        // The exchange and the subscription are writes (sent once); the check a read.
        C::Graph(e) => upstream(&e, step != OnboardingStep::CheckToken),
        C::Numbers(e) => Status::from(e),
        // No RetryInfo: a step whose record failed (its effect at Meta done) is for a
        // person to look at, not a reflex to repeat.
        C::Store(m) => {
            let details =
                ErrorDetails::with_error_info("STORE_UNAVAILABLE", SERVICE_DOMAIN, HashMap::new());
            Status::with_error_details(Code::Unavailable, m, details)
        }
        C::Denied(m) => {
            let details =
                ErrorDetails::with_error_info("TOKEN_NOT_GRANTED", SERVICE_DOMAIN, HashMap::new());
            Status::with_error_details(Code::PermissionDenied, m, details)
        }
        C::NotInWaba { .. } => {
            let details = ErrorDetails::with_error_info(
                "PHONE_NUMBER_NOT_IN_WABA",
                SERVICE_DOMAIN,
                HashMap::new(),
            );
            Status::with_error_details(Code::NotFound, String::new(), details)
        }
    };
    let mut details = status.get_error_details();
    let mut info = details.error_info().cloned().unwrap_or_else(|| {
        tonic_types::ErrorInfo::new("ONBOARDING_STEP_FAILED", SERVICE_DOMAIN, HashMap::new())
    });
    info.metadata
        .insert("onboarding_step".to_owned(), step.as_str().to_owned());
    details.set_error_info(info.reason, info.domain, info.metadata);
    Status::with_error_details(status.code(), message, details)
}

fn store_unavailable(message: String) -> Status {
    let mut details =
        ErrorDetails::with_error_info("STORE_UNAVAILABLE", SERVICE_DOMAIN, HashMap::new());
    details.set_retry_info(Some(Duration::from_secs(1)));
    Status::with_error_details(Code::Unavailable, message, details)
}

/// No token may make the call: FAILED_PRECONDITION `NO_CREDENTIALS_FOR_WABA`; the
/// customer's was rejected: UNAUTHENTICATED `CUSTOMER_REAUTH_REQUIRED` (metadata
/// `waba_id`), with no RetryInfo (only a person can fix it); the store cannot say:
/// UNAVAILABLE `STORE_UNAVAILABLE`.
fn credentials(e: &keyring::Error) -> Status {
    let (code, reason, metadata, retry) = match e {
        keyring::Error::NoCredentials { .. } => (
            Code::FailedPrecondition,
            "NO_CREDENTIALS_FOR_WABA",
            HashMap::new(),
            None,
        ),
        keyring::Error::ReauthRequired { waba_id } => (
            Code::Unauthenticated,
            "CUSTOMER_REAUTH_REQUIRED",
            HashMap::from([("waba_id".to_owned(), waba_id.clone())]),
            None,
        ),
        keyring::Error::Store(_) => (
            Code::Unavailable,
            "STORE_UNAVAILABLE",
            HashMap::new(),
            Some(Duration::from_secs(1)),
        ),
    };
    let mut details = ErrorDetails::with_error_info(reason, SERVICE_DOMAIN, metadata);
    if let Some(delay) = retry {
        details.set_retry_info(Some(delay));
    }
    Status::with_error_details(code, e.to_string(), details)
}

/// A guard spared one of Meta's limits: RESOURCE_EXHAUSTED with RetryInfo (when it is
/// allowed again) and QuotaFailure (which limit, for which number).
fn refused(r: &numbers::Refusal, message: String) -> Status {
    let (reason, quota) = match r.limit {
        numbers::Limit::Register => (
            "REGISTER_BUDGET_GUARD",
            "register and deregister attempts per number per 72 hours",
        ),
        numbers::Limit::DisplayName => (
            "DISPLAY_NAME_CHANGE_LIMIT",
            "display-name changes per number per 30 days",
        ),
    };
    let metadata = HashMap::from([
        ("phone_number_id".to_owned(), r.phone_number_id.clone()),
        ("attempts_counted".to_owned(), r.used.to_string()),
        ("limit".to_owned(), r.allowed.to_string()),
        ("blocked_by_meta".to_owned(), r.blocked_by_meta.to_string()),
    ]);
    let mut details = ErrorDetails::with_error_info(reason, SERVICE_DOMAIN, metadata);
    details.set_retry_info(Some(r.retry_after));
    details.set_quota_failure(vec![QuotaViolation::new(
        format!("phone_number:{}", r.phone_number_id),
        format!("{} of {} {quota} counted", r.used, r.allowed),
    )]);
    Status::with_error_details(Code::ResourceExhausted, message, details)
}

/// INVALID_ARGUMENT with one `BadRequest` field violation per problem.
pub fn invalid_argument(violations: Vec<FieldViolation>) -> Status {
    let summary = violations
        .iter()
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {summary}"),
        ErrorDetails::with_bad_request(violations),
    )
}

/// Meta's error (or one on the way to Meta) as a status. For a write, `UNAVAILABLE`
/// carries no `RetryInfo`: trying again is a decision (another SMS, another of the 10
/// register attempts), not a reflex; only Meta's explicit "wait five minutes" (133015)
/// keeps its delay.
pub(super) fn upstream(err: &graph::Error, write: bool) -> Status {
    use graph::Error as E;
    let (code, reason, retry) = match err {
        E::Graph(g) => return from_graph(g, write),
        E::DeadlineExceeded | E::TooLate => (Code::DeadlineExceeded, "DEADLINE_EXCEEDED", None),
        E::Token(_) => (Code::Internal, "ACCESS_TOKEN_UNAVAILABLE", None),
        E::InvalidId => (Code::InvalidArgument, "INVALID_ID", None),
        E::AppCredentialsMissing => (Code::FailedPrecondition, "APP_CREDENTIALS_MISSING", None),
        E::NoPartnerToken => (Code::FailedPrecondition, "NO_CREDENTIALS_FOR_WABA", None),
        // Too many calls, said without Meta's body: its Retry-After, else Meta's usual minute.
        E::RateLimited { retry_after } => (
            Code::ResourceExhausted,
            "GRAPH_RATE_LIMITED",
            Some(retry_after.unwrap_or(Duration::from_secs(60))),
        ),
        // Unavailable, but no RetryInfo: a refused certificate does not pass by itself.
        E::CertificateRejected(_) => (Code::Unavailable, "GRAPH_CERTIFICATE_REJECTED", None),
        _ if err.is_transient() => (
            Code::Unavailable,
            "GRAPH_UNAVAILABLE",
            Some(Duration::from_secs(1)),
        ),
        // An answer that cannot be read: a 4xx without Meta's body, a wrong shape, too big.
        _ => (Code::Internal, "GRAPH_UNEXPECTED_RESPONSE", None),
    };
    let mut metadata = HashMap::new();
    match err {
        E::Http { status } => {
            metadata.insert("http_status".to_owned(), status.to_string());
        }
        E::RateLimited { .. } => {
            metadata.insert("http_status".to_owned(), "429".to_owned());
        }
        _ => {}
    }
    let mut details = ErrorDetails::with_error_info(reason, SERVICE_DOMAIN, metadata);
    if let Some(delay) = retry {
        details.set_retry_info(Some(delay));
    }
    let message = match err {
        // The path and cause are for operators, not callers.
        E::Token(e) => {
            tracing::error!(error = %e, "access token unavailable");
            "the service cannot read its access token".to_owned()
        }
        other => other.to_string(),
    };
    Status::with_error_details(code, message, details)
}

fn from_graph(g: &GraphError, write: bool) -> Status {
    let (code, reason) = classify(g);
    let retry = match code {
        Code::Unavailable if write && g.code != 133015 => None,
        Code::ResourceExhausted => Some(g.retry_after.unwrap_or(match g.code {
            133016 => REGISTER_BLOCK,
            _ => Duration::from_secs(60),
        })),
        Code::Unavailable => Some(match g.code {
            133015 => Duration::from_secs(300),
            _ => g.retry_after.unwrap_or(Duration::from_secs(1)),
        }),
        _ => None,
    };

    let mut metadata = HashMap::from([
        ("graph_code".to_owned(), g.code.to_string()),
        ("http_status".to_owned(), g.http_status.to_string()),
    ]);
    let optional = [
        ("graph_subcode", g.subcode.map(|s| s.to_string())),
        ("fbtrace_id", g.fbtrace_id.clone()),
        ("details", g.details.clone()),
        ("graph_type", g.kind.clone()),
        ("is_transient", g.is_transient.map(|t| t.to_string())),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            metadata.insert(key.to_owned(), value);
        }
    }
    let mut details = ErrorDetails::with_error_info(reason, GRAPH_DOMAIN, metadata);
    if let Some(delay) = retry {
        details.set_retry_info(Some(delay));
    }
    if let Some(user_message) = &g.user_message {
        details.set_localized_message("en-US", user_message.clone());
    }
    let message = if g.message.is_empty() {
        format!("Graph API error {}", g.code)
    } else {
        format!("Graph API error {}: {}", g.code, g.message)
    };
    Status::with_error_details(code, message, details)
}

/// Meta's code (then subcode) → gRPC code and an ErrorInfo reason.
fn classify(g: &GraphError) -> (Code, &'static str) {
    match (g.code, g.subcode) {
        (190, _) => (Code::Unauthenticated, "ACCESS_TOKEN_INVALID"),
        (0 | 102 | 104, _) => (Code::Unauthenticated, "GRAPH_AUTH_FAILED"),
        (368, _) => (Code::PermissionDenied, "ACCOUNT_BLOCKED"),
        (3 | 10 | 200..=299 | 131005, _) => (Code::PermissionDenied, "GRAPH_PERMISSION_DENIED"),
        (100, Some(33)) | (33 | 803, _) => (Code::NotFound, "OBJECT_NOT_FOUND"),
        // Phone-migration subcodes, whatever the code.
        (_, Some(2388012)) => (Code::AlreadyExists, "PHONE_NUMBER_ALREADY_EXISTS"),
        (_, Some(2388000..=2388999)) => (Code::FailedPrecondition, "MIGRATION_PRECONDITION_FAILED"),
        // We asked for a field this Graph version does not have: our fault, not the caller's.
        (100, _) if g.message.contains("nonexisting field") && g.message.contains(PHONE_NODE) => {
            (Code::Internal, "GRAPH_FIELD_NOT_SUPPORTED")
        }
        // The id names another kind of object (a WABA id given as a phone number id, say).
        (100, _) if g.message.contains("nonexisting field") => {
            (Code::InvalidArgument, "WRONG_OBJECT_TYPE")
        }
        (100, _) if g.message.contains("appsecret_proof") => {
            (Code::FailedPrecondition, "APPSECRET_PROOF_REJECTED")
        }
        (133005, _) => (Code::InvalidArgument, "PIN_MISMATCH"),
        (136025, _) => (Code::InvalidArgument, "VERIFY_CODE_REJECTED"),
        (100 | 131008 | 131009 | 135000, _) => (Code::InvalidArgument, "GRAPH_INVALID_PARAMETER"),
        (133016, _) => (Code::ResourceExhausted, "REGISTER_LIMIT_REACHED"),
        (133008 | 133009, _) => (Code::ResourceExhausted, "PIN_GUESS_LIMIT_REACHED"),
        _ if g.is_throttling() => (Code::ResourceExhausted, "GRAPH_RATE_LIMITED"),
        (2 | 131016 | 131057 | 133004 | 133015, _) => (Code::Unavailable, "GRAPH_UNAVAILABLE"),
        (133006, _) => (Code::FailedPrecondition, "REVERIFICATION_REQUIRED"),
        (133010, _) => (Code::FailedPrecondition, "NOT_REGISTERED"),
        (131031 | 131045 | 133000 | 136024 | 200000 | 300, _) => {
            (Code::FailedPrecondition, "GRAPH_PRECONDITION_FAILED")
        }
        (1 | 131000, _) => (Code::Internal, "GRAPH_INTERNAL_ERROR"),
        _ => (Code::Unknown, "GRAPH_ERROR"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(code: i64, subcode: Option<i64>) -> GraphError {
        GraphError::of(code, subcode, "")
    }

    #[test]
    fn every_documented_code_maps_as_the_table_says() {
        use Code::*;
        let table: &[(i64, Option<i64>, Code)] = &[
            (190, Some(463), Unauthenticated),
            (0, None, Unauthenticated),
            (102, None, Unauthenticated),
            (104, None, Unauthenticated),
            (10, None, PermissionDenied),
            (200, None, PermissionDenied),
            (299, None, PermissionDenied),
            (3, None, PermissionDenied),
            (131005, None, PermissionDenied),
            (368, None, PermissionDenied),
            (100, Some(33), NotFound),
            (33, None, NotFound),
            (803, None, NotFound),
            (100, None, InvalidArgument),
            (131008, None, InvalidArgument),
            (131009, None, InvalidArgument),
            (133005, None, InvalidArgument),
            (135000, None, InvalidArgument),
            (136025, None, InvalidArgument),
            (4, None, ResourceExhausted),
            (17, None, ResourceExhausted),
            (341, None, ResourceExhausted),
            (613, None, ResourceExhausted),
            (80007, None, ResourceExhausted),
            (80008, None, ResourceExhausted),
            (130429, None, ResourceExhausted),
            (133008, None, ResourceExhausted),
            (133009, None, ResourceExhausted),
            (133016, None, ResourceExhausted),
            (2, None, Unavailable),
            (131016, None, Unavailable),
            (131057, None, Unavailable),
            (133004, None, Unavailable),
            (133015, None, Unavailable),
            (131031, None, FailedPrecondition),
            (131045, None, FailedPrecondition),
            (133000, None, FailedPrecondition),
            (133006, None, FailedPrecondition),
            (133010, None, FailedPrecondition),
            (136024, None, FailedPrecondition),
            (200000, None, FailedPrecondition),
            (100, Some(2388093), FailedPrecondition),
            (100, Some(2388012), AlreadyExists),
            (1, None, Internal),
            (131000, None, Internal),
            (999999, None, Unknown),
        ];
        for &(code, subcode, expected) in table {
            assert_eq!(
                classify(&graph(code, subcode)).0,
                expected,
                "code {code}/{subcode:?}"
            );
        }
    }

    #[test]
    fn a_refused_field_is_ours_on_a_phone_node_and_the_callers_elsewhere() {
        let mut g = graph(100, None);
        g.message = "(#100) Tried accessing nonexisting field (x) on node type (WhatsAppBusinessPhoneNumber)".into();
        assert_eq!(classify(&g), (Code::Internal, "GRAPH_FIELD_NOT_SUPPORTED"));
        g.message =
            "(#100) Tried accessing nonexisting field (x) on node type (WhatsAppBusinessAccount)"
                .into();
        assert_eq!(classify(&g), (Code::InvalidArgument, "WRONG_OBJECT_TYPE"));
    }

    #[test]
    fn metas_unavailable_answer_to_a_write_invites_no_retry_but_a_stated_wait() {
        let read = from_graph(&graph(2, None), false);
        assert!(read.get_details_retry_info().is_some());
        let write = from_graph(&graph(2, None), true);
        assert_eq!(write.code(), Code::Unavailable);
        assert!(write.get_details_retry_info().is_none());
        let wait = from_graph(&graph(133015, None), true);
        assert_eq!(
            wait.get_details_retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn missing_appsecret_proof_is_a_configuration_problem() {
        let mut g = graph(100, None);
        g.message = "API calls from the server require an appsecret_proof argument".into();
        assert_eq!(classify(&g).0, Code::FailedPrecondition);
    }

    #[test]
    fn rate_limits_carry_retry_info_from_usage_headers_or_the_72h_block() {
        let mut g = graph(80007, None);
        g.retry_after = Some(Duration::from_secs(19 * 60));
        let status = from_graph(&g, false);
        assert_eq!(
            status.get_details_retry_info().unwrap().retry_delay,
            g.retry_after
        );
        let status = from_graph(&graph(133016, None), false);
        assert_eq!(
            status.get_details_retry_info().unwrap().retry_delay,
            Some(REGISTER_BLOCK)
        );
        assert!(
            from_graph(&graph(100, None), false)
                .get_details_retry_info()
                .is_none()
        );
    }

    #[test]
    fn a_bare_429_waits_as_told_and_a_refused_certificate_invites_no_retry() {
        let limited = graph::Error::RateLimited {
            retry_after: Some(Duration::from_secs(7)),
        };
        for write in [false, true] {
            let status = upstream(&limited, write);
            assert_eq!(status.code(), Code::ResourceExhausted);
            assert_eq!(
                status.get_details_retry_info().unwrap().retry_delay,
                Some(Duration::from_secs(7))
            );
        }
        let unsaid = upstream(&graph::Error::RateLimited { retry_after: None }, false);
        assert_eq!(
            unsaid.get_details_retry_info().unwrap().retry_delay,
            Some(Duration::from_secs(60))
        );
        let refused = graph::Error::CertificateRejected("invalid peer certificate".into());
        assert!(!refused.is_transient() && !refused.outcome_unknown() && refused.was_not_sent());
        let status = upstream(&refused, false);
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.get_details_retry_info().is_none());
        assert!(status.message().contains("certificate was refused"));
    }
}
