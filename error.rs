//! What can go wrong talking to the Graph API, and which of it is worth retrying.

use std::time::Duration;

/// Meta's error envelope (`{"error": {...}}`), kept whole so nothing Meta said is lost.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GraphError {
    pub http_status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    /// Meta's `type`, e.g. `OAuthException`. Not reliable for classification.
    pub kind: Option<String>,
    pub message: String,
    /// `error_data.details` (or `error_data` itself when Meta sends a string).
    pub details: Option<String>,
    pub fbtrace_id: Option<String>,
    pub is_transient: Option<bool>,
    pub user_title: Option<String>,
    pub user_message: Option<String>,
    /// From `estimated_time_to_regain_access` in the usage headers of the same response.
    pub retry_after: Option<Duration>,
}

/// Codes that mean "too many calls": retrying soon only makes it worse.
pub const THROTTLING_CODES: &[i64] = &[4, 17, 341, 613, 80007, 80008, 130429];

/// Codes Meta documents as temporary (graph-api.md §4.2 "Practical rules"), less 133015,
/// whose wait (5 minutes) no backoff of ours covers.
const TRANSIENT_CODES: &[i64] = &[1, 2, 131000, 131016, 131057, 133004];

impl GraphError {
    /// Meta's error `code` (and `subcode`) with nothing else said, for unit tests.
    #[cfg(test)]
    pub fn of(code: i64, subcode: Option<i64>, message: &str) -> Self {
        GraphError {
            http_status: 400,
            code,
            subcode,
            kind: None,
            message: message.into(),
            details: None,
            fbtrace_id: None,
            is_transient: None,
            user_title: None,
            user_message: None,
            retry_after: None,
        }
    }

    pub fn is_throttling(&self) -> bool {
        THROTTLING_CODES.contains(&self.code)
    }

    /// Worth another attempt after a short backoff (throttling is not: it lasts minutes).
    /// Meta's own `is_transient`, when present, wins over the code.
    pub fn is_transient(&self) -> bool {
        !self.is_throttling()
            && self
                .is_transient
                .unwrap_or_else(|| TRANSIENT_CODES.contains(&self.code))
    }
}

#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    #[error("Graph API error {}: {}", .0.code, .0.message)]
    Graph(Box<GraphError>),
    #[error("Graph API answered HTTP {status} without an error body")]
    Http { status: u16 },
    /// HTTP 429 without Meta's error body (a proxy's, or Meta's own in some versions):
    /// too many calls, with the wait its `Retry-After` header gave, if any.
    #[error("Graph API answered HTTP 429 (too many requests) without an error body")]
    RateLimited { retry_after: Option<Duration> },
    #[error("the Graph API did not answer in time")]
    Timeout,
    #[error("the caller's deadline passed before the Graph API answered")]
    DeadlineExceeded,
    /// Nothing was sent: the caller's deadline had passed already.
    #[error("the caller's deadline passed before the call could be sent")]
    TooLate,
    /// Connection refused, reset, DNS... The text never includes the URL (it carries appsecret_proof).
    #[error("cannot reach the Graph API: {0}")]
    Transport(String),
    /// The TLS handshake refused the server's certificate (unknown issuer, wrong name,
    /// expired): nothing was sent, and it will not pass by itself.
    #[error("the Graph API's TLS certificate was refused: {0}")]
    CertificateRejected(String),
    #[error("unexpected response from the Graph API: {0}")]
    Decode(String),
    #[error("Graph API response larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error("access token unavailable: {0}")]
    Token(#[from] super::token::TokenError),
    #[error("not a Graph object id")]
    InvalidId,
    /// Exchanging codes and checking tokens need the app's id and secret.
    #[error("WABA_APP_ID and WABA_APP_SECRET are needed for this call")]
    AppCredentialsMissing,
    /// The call was to carry the partner's token, and none is configured.
    #[error("no partner access token is configured (WABA_ACCESS_TOKEN or WABA_ACCESS_TOKEN_FILE)")]
    NoPartnerToken,
}

/// What a failed call means, decided here once: the retry policy, the watchers, the
/// register guard, the metrics and the gRPC mapping all ask these.
impl Error {
    /// An HTTP 5xx without Meta's error body: a proxy or Meta itself failed before
    /// answering. It may pass, and nobody knows whether a write it carried was processed.
    fn is_unanswered_server_error(&self) -> bool {
        matches!(self, Error::Http { status } if *status >= 500)
    }

    /// Meta says too many calls (one of its codes, or a bare HTTP 429): nothing helps but
    /// waiting ([`Error::retry_after`]).
    pub fn is_throttling(&self) -> bool {
        matches!(self, Error::RateLimited { .. })
            || self.graph().is_some_and(GraphError::is_throttling)
    }

    /// How long Meta said to wait: from the usage headers of the same answer, else its
    /// `Retry-After` header.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after } => *retry_after,
            _ => self.graph().and_then(|g| g.retry_after),
        }
    }

    /// Trying again soon may succeed: Meta's transient codes (or its `is_transient`), a
    /// 5xx without a body, a timeout, a connection that failed. Reads only: writes are
    /// never retried.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Graph(e) => e.is_transient(),
            Error::Timeout | Error::Transport(_) => true,
            _ => self.is_unanswered_server_error(),
        }
    }

    /// Nobody knows whether Meta processed the request: it was sent, and no readable
    /// answer came back (a timeout, a lost connection, a 5xx without a body, an answer
    /// that could not be read).
    pub fn outcome_unknown(&self) -> bool {
        match self {
            Error::Timeout
            | Error::DeadlineExceeded
            | Error::Transport(_)
            | Error::BodyTooLarge { .. }
            | Error::Decode(_) => true,
            Error::Graph(_)
            | Error::RateLimited { .. }
            | Error::CertificateRejected(_)
            | Error::Token(_)
            | Error::InvalidId
            | Error::TooLate
            | Error::AppCredentialsMissing
            | Error::NoPartnerToken => false,
            Error::Http { .. } => self.is_unanswered_server_error(),
        }
    }

    /// Meta rejected the token itself (190: expired, revoked, or the user changed their
    /// password): no call with it will pass until it is replaced.
    pub fn is_token_rejected(&self) -> bool {
        self.graph().is_some_and(|g| g.code == 190)
    }

    /// Meta says the token may not act on the object (10, 200-299): access was removed.
    pub fn is_permission_denied(&self) -> bool {
        self.graph()
            .is_some_and(|g| g.code == 10 || (200..300).contains(&g.code))
    }

    /// Meta blocks the number's register and deregister for 72 hours (133016: it used its
    /// 10 attempts).
    pub fn is_register_limit(&self) -> bool {
        self.graph().is_some_and(|g| g.code == 133016)
    }

    /// The request never left the service (no token, an invalid id, too late to send, a
    /// certificate refused before the request went): Meta saw nothing, and nothing of its
    /// limits was spent.
    pub fn was_not_sent(&self) -> bool {
        matches!(
            self,
            Error::Token(_)
                | Error::CertificateRejected(_)
                | Error::InvalidId
                | Error::TooLate
                | Error::AppCredentialsMissing
                | Error::NoPartnerToken
        )
    }

    /// Meta said no for good: the same read will fail again (an object that does not
    /// exist, access lost, an id that is not one). Watches of it end.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Graph(g) => !g.is_throttling() && !g.is_transient(),
            Error::InvalidId => true,
            _ => false,
        }
    }

    /// `graph_<code>`, `http_<status>`, `timeout`... for `waba_graph_requests_total`.
    pub fn metric_label(&self) -> String {
        match self {
            Error::Graph(g) => format!("graph_{}", g.code),
            Error::Http { status } => format!("http_{status}"),
            Error::RateLimited { .. } => "http_429".into(),
            Error::CertificateRejected(_) => "certificate_rejected".into(),
            Error::Timeout => "timeout".into(),
            Error::DeadlineExceeded => "deadline_exceeded".into(),
            Error::Transport(_) => "unreachable".into(),
            Error::Decode(_) | Error::BodyTooLarge { .. } => "bad_response".into(),
            Error::Token(_)
            | Error::InvalidId
            | Error::TooLate
            | Error::AppCredentialsMissing
            | Error::NoPartnerToken => "not_sent".into(),
        }
    }

    pub fn graph(&self) -> Option<&GraphError> {
        match self {
            Error::Graph(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn from_reqwest(err: reqwest::Error) -> Self {
        if err.is_timeout() {
            return Error::Timeout;
        }
        // A body that broke off (a reset, a close before its end; reqwest says "error
        // decoding response body", having no decoder of ours to run) is a failed
        // connection like any other, not an answer that could not be read: `Transport`.
        // Unreadable answers are `Decode`, from our own parsing of a whole body.
        let broke_off = err.is_body() || err.is_decode();
        // Display of a reqwest error includes the URL, and the URL carries appsecret_proof.
        let err = err.without_url();
        let mut text = match broke_off {
            true => format!("the answer broke off: {err}"),
            false => err.to_string(),
        };
        let mut certificate = None;
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            certificate = certificate.or_else(|| refused_certificate(cause));
            source = cause.source();
        }
        match certificate {
            Some(why) => Error::CertificateRejected(why),
            None => Error::Transport(text),
        }
    }
}

/// What rustls said, when `cause` is its refusal of the server's certificate. rustls's
/// error reaches us inside `io::Error`s, whose `source` skips it: look inside.
fn refused_certificate(mut cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    // reqwest wraps tokio-rustls's io::Error in one of its own.
    let tls = loop {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            break tls;
        }
        cause = cause.downcast_ref::<std::io::Error>()?.get_ref()?;
    };
    matches!(
        tls,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
    )
    .then(|| tls.to_string())
}
