//! The only code that speaks HTTP to Meta's Graph API.
//!
//! Every call carries `Authorization: Bearer` with the token its [`Credential`] names
//! (the partner's, or a customer's business token), `appsecret_proof` for that token
//! when an app secret is configured, and an explicit `fields=` list on reads. Each
//! attempt's timeout is bounded by the caller's deadline. Reads are retried on transient
//! failures with jittered backoff; writes never are (every `register` attempt spends one
//! of 10 per number per 72 hours). On error 190 the partner's token is re-read from its
//! source and the call retried once, if that gave a different token; a customer's token
//! has no source to re-read: the 190 is the caller's to handle.

mod error;
mod fields;
mod lifecycle;
mod preverified;
mod signup;
pub mod token;
pub mod usage;
pub mod webhook;
mod wire;

pub use error::{Error, GraphError};
use fields::FieldList;
pub use fields::PHONE_NODE;
pub use lifecycle::NewNumber;
pub use token::{TokenCache, TokenSource};
pub use usage::UsageTracker;

use crate::model::{Deadline, NumbersPage, PhoneNumber, is_graph_id};
use backon::{BackoffBuilder, ExponentialBuilder};
use hmac::{Hmac, Mac};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use usage::Usage;

/// How to reach the Graph API.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// Base URL without the version, e.g. `https://graph.facebook.com`.
    pub base_url: String,
    /// Path-pinned API version, e.g. `v25.0`.
    pub version: String,
    /// The partner's own token; `None` when every call carries a customer's.
    pub token: Option<TokenSource>,
    /// How often a token file is checked for changes, at most.
    pub token_recheck: Duration,
    pub app_secret: Option<SecretString>,
    /// The Meta app's id: with the secret, for exchanging Embedded Signup codes and
    /// checking tokens.
    pub app_id: Option<String>,
    /// Upper bound for one attempt; the caller's deadline may shorten it. `None` only
    /// for tests on a paused clock, where any pending timer fires during network waits.
    pub request_timeout: Option<Duration>,
    /// Upper bound for opening a connection (`None`: as for `request_timeout`).
    pub connect_timeout: Option<Duration>,
    /// Attempts per read, the first included.
    pub read_attempts: u32,
    /// Largest response body accepted.
    pub max_body_bytes: usize,
}

impl GraphSettings {
    pub fn new(
        base_url: impl Into<String>,
        version: impl Into<String>,
        token: Option<TokenSource>,
    ) -> Self {
        Self {
            base_url: base_url.into(),
            version: version.into(),
            token,
            token_recheck: token::DEFAULT_RECHECK,
            app_secret: None,
            app_id: None,
            request_timeout: Some(Duration::from_secs(15)),
            connect_timeout: Some(Duration::from_secs(5)),
            read_attempts: 3,
            max_body_bytes: 4 << 20,
        }
    }
}

#[derive(Debug)]
pub struct GraphClient {
    http: reqwest::Client,
    api_root: String,
    /// The partner's token, if one is configured.
    tokens: Option<TokenCache>,
    app_secret: Option<SecretString>,
    app_id: Option<String>,
    request_timeout: Option<Duration>,
    read_attempts: u32,
    max_body_bytes: usize,
    usage: UsageTracker,
    /// The fields reads ask for, less those this Graph version refused.
    fields: FieldList,
}

/// Whether a failed call may be sent again.
#[derive(Clone, Copy, PartialEq)]
enum Retry {
    /// Reads: retried on transient failures.
    Transient,
    /// Writes: only after a token rotation, when Meta rejected the request unprocessed.
    Never,
}

/// At most this many operations go into one batch request (Meta's limit).
pub const MAX_BATCH: usize = 50;

enum Body {
    Json(serde_json::Value),
    Form(Vec<(&'static str, String)>),
}

impl<'a> Call<'a> {
    /// A read: retried on transient failures.
    fn read(endpoint: &'static str, path: String) -> Self {
        Call {
            retry: Retry::Transient,
            ..Call::write(endpoint, Method::GET, path)
        }
    }

    /// A write: sent once, never retried.
    fn write(endpoint: &'static str, method: Method, path: String) -> Self {
        Call {
            endpoint,
            method,
            path,
            query: Vec::new(),
            body: None,
            secret: None,
            retry: Retry::Never,
            auth: Auth::Partner,
        }
    }

    /// Carries the token `credential` names.
    fn by(mut self, credential: &'a Credential) -> Self {
        self.auth = match credential {
            Credential::Partner => Auth::Partner,
            Credential::Business(token) => Auth::Business(token),
        };
        self
    }

    fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }

    fn json(mut self, body: serde_json::Value) -> Self {
        self.body = Some(Body::Json(body));
        self
    }

    /// The call carries `secret` (a PIN, a code): scrubbed from whatever Meta answers.
    fn secret(mut self, secret: &'a SecretString) -> Self {
        self.secret = Some(secret);
        self
    }
}

/// Whose token a call carries: what callers of the client choose.
#[derive(Clone)]
pub enum Credential {
    /// The partner's own system-user token (`WABA_ACCESS_TOKEN`), re-read on error 190.
    Partner,
    /// A customer's business token from Embedded Signup.
    Business(Arc<SecretString>),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Partner => "Partner",
            Credential::Business(_) => "Business([redacted])",
        })
    }
}

/// Whose credentials a call carries.
#[derive(Clone, Copy)]
enum Auth<'a> {
    /// The service's own token (the partner's system user), re-read on error 190.
    Partner,
    /// A customer's business token.
    Business(&'a SecretString),
    /// The app token (`APP_ID|APP_SECRET`).
    App(&'a SecretString),
    /// None at all: the call authenticates by its parameters (the code exchange).
    Nobody,
}

impl Auth<'_> {
    /// The kind of token, for metrics (never the token).
    fn kind(self) -> &'static str {
        match self {
            Auth::Partner => "partner",
            Auth::Business(_) => "customer",
            Auth::App(_) => "app",
            Auth::Nobody => "none",
        }
    }
}

/// One Graph call. Deliberately not `Debug`: the body may hold a PIN.
struct Call<'a> {
    /// What the call is, for metrics and logs (ids stay out of labels).
    endpoint: &'static str,
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Body>,
    /// A secret the body carries (a PIN), scrubbed from whatever Meta answers.
    secret: Option<&'a SecretString>,
    retry: Retry,
    auth: Auth<'a>,
}

impl GraphClient {
    /// Reads the token once and prepares the HTTP client.
    pub async fn new(settings: GraphSettings) -> Result<Self, Error> {
        let tokens = match settings.token {
            Some(source) => Some(TokenCache::load(source, settings.token_recheck).await?),
            None => None,
        };
        crate::tls::install_provider();
        let mut http = reqwest::Client::builder()
            .user_agent(concat!("waba-numbers/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(60));
        if let Some(timeout) = settings.connect_timeout {
            http = http.connect_timeout(timeout);
        }
        let http = http.build().map_err(Error::from_reqwest)?;
        Ok(Self {
            http,
            api_root: format!(
                "{}/{}",
                settings.base_url.trim_end_matches('/'),
                settings.version.trim_matches('/')
            ),
            tokens,
            app_secret: settings.app_secret,
            app_id: settings.app_id,
            request_timeout: settings.request_timeout,
            read_attempts: settings.read_attempts.max(1),
            max_body_bytes: settings.max_body_bytes,
            usage: UsageTracker::default(),
            fields: FieldList::default(),
        })
    }

    /// Rate-limit usage as Meta last reported it.
    pub fn usage(&self) -> &UsageTracker {
        &self.usage
    }

    /// The partner's token, if one is configured.
    pub fn tokens(&self) -> Option<&TokenCache> {
        self.tokens.as_ref()
    }

    /// The partner's token now.
    async fn partner_token(&self) -> Result<Arc<SecretString>, Error> {
        match &self.tokens {
            Some(tokens) => Ok(tokens.current().await?),
            None => Err(Error::NoPartnerToken),
        }
    }

    /// `GET /{waba_id}/phone_numbers`: one page of a WABA's numbers.
    pub async fn list_phone_numbers(
        &self,
        waba_id: &str,
        credential: &Credential,
        limit: u32,
        after: Option<&str>,
        deadline: Deadline,
    ) -> Result<NumbersPage, Error> {
        let path = format!("{}/phone_numbers", graph_id(waba_id)?);
        self.with_fields(|fields| async {
            let mut query = vec![("fields", fields), ("limit", limit.to_string())];
            if let Some(after) = after {
                query.push(("after", after.to_owned()));
            }
            let mut call = Call::read("phone_numbers", path.clone()).by(credential);
            call.query = query;
            let list: wire::ListJson = self.call_json(call, deadline).await?;
            Ok(list.into())
        })
        .await
    }

    /// `GET /{phone_number_id}?fields=...`: one number's current state.
    pub async fn phone_number(
        &self,
        id: &str,
        credential: &Credential,
        deadline: Deadline,
    ) -> Result<PhoneNumber, Error> {
        let id = graph_id(id)?;
        self.with_fields(|fields| async {
            let call = Call::read("phone_number", id.to_owned())
                .by(credential)
                .query("fields", fields);
            let number: wire::PhoneNumberJson = self.call_json(call, deadline).await?;
            Ok(number.into())
        })
        .await
    }

    /// Reads several numbers in one batch request (at most [`MAX_BATCH`]); each result
    /// stands alone, as each operation succeeds or fails on its own at Meta.
    pub async fn phone_numbers_batch(
        &self,
        ids: &[String],
        credential: &Credential,
        deadline: Deadline,
    ) -> Result<Vec<Result<PhoneNumber, Error>>, Error> {
        assert!(
            ids.len() <= MAX_BATCH,
            "at most {MAX_BATCH} operations per batch"
        );
        loop {
            let items = self
                .batch_once(ids, credential, self.fields.current(), deadline)
                .await?;
            // Every item refuses a field Meta no longer has: drop it and read again.
            let dropped = items
                .iter()
                .filter_map(|item| item.as_ref().err())
                .fold(false, |dropped, e| self.fields.drop_refused(e) | dropped);
            if !dropped {
                return Ok(items);
            }
        }
    }

    async fn batch_once(
        &self,
        ids: &[String],
        credential: &Credential,
        fields: String,
        deadline: Deadline,
    ) -> Result<Vec<Result<PhoneNumber, Error>>, Error> {
        let operations: Vec<_> = ids
            .iter()
            .map(|id| {
                let relative_url = format!("{}?fields={fields}", graph_id(id)?);
                Ok(serde_json::json!({ "method": "GET", "relative_url": relative_url }))
            })
            .collect::<Result<_, Error>>()?;
        let mut call = Call::read("batch", String::new()).by(credential);
        call.method = Method::POST;
        call.body = Some(Body::Form(vec![
            ("batch", serde_json::Value::Array(operations).to_string()),
            ("include_headers", "false".to_owned()),
        ]));
        let items: Vec<Option<wire::BatchItem>> = self.call_json(call, deadline).await?;
        if items.len() != ids.len() {
            return Err(Error::Decode(format!(
                "batch answered {} items for {} operations",
                items.len(),
                ids.len()
            )));
        }
        let token = match credential {
            Credential::Partner => self.partner_token().await?,
            Credential::Business(token) => token.clone(),
        };
        let no_usage = Usage::default();
        Ok(items
            .into_iter()
            .map(|item| {
                // Meta leaves an item null when that operation timed out.
                let item = item.ok_or(Error::Timeout)?;
                if (200..300).contains(&item.code) {
                    let number: wire::PhoneNumberJson = serde_json::from_str(&item.body)
                        .map_err(|e| Error::Decode(e.to_string()))?;
                    Ok(number.into())
                } else {
                    Err(self.error_from(item.code, item.body.as_bytes(), &no_usage, &token, None))
                }
            })
            .collect())
    }

    /// Runs a read with the current field list; when Meta refuses one of its fields,
    /// reads again without it (each field is dropped once, so this ends).
    async fn with_fields<T, F, Fut>(&self, read: F) -> Result<T, Error>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        loop {
            match read(self.fields.current()).await {
                Err(e) if self.fields.drop_refused(&e) => continue,
                other => return other,
            }
        }
    }

    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        call: Call<'_>,
        deadline: Deadline,
    ) -> Result<T, Error> {
        let body = self.call(&call, deadline).await?;
        serde_json::from_slice(&body).map_err(|e| Error::Decode(e.to_string()))
    }

    /// Sends `call`, retrying as its [`Retry`] allows, and returns the body of the 2xx answer.
    async fn call(&self, call: &Call<'_>, deadline: Deadline) -> Result<Vec<u8>, Error> {
        let mut backoff = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(3))
            .with_max_times(self.read_attempts as usize - 1)
            .with_jitter()
            .build();
        let mut token_refreshed = false;
        loop {
            let token = match call.auth {
                Auth::Partner => self.partner_token().await?,
                Auth::Business(token) | Auth::App(token) => Arc::new(token.clone()),
                Auth::Nobody => Arc::new(SecretString::default()),
            };
            let err = match self.send_once(call, &token, deadline).await {
                Ok(body) => return Ok(body),
                Err(err) => err,
            };
            let partner = matches!(call.auth, Auth::Partner);
            if partner && err.is_token_rejected() && !token_refreshed {
                token_refreshed = true;
                let Some(tokens) = &self.tokens else {
                    return Err(err);
                };
                let refreshed = tokens.refresh(&token).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "cannot re-read the access token after error 190");
                    false
                });
                if refreshed {
                    tracing::info!(
                        "Graph API rejected the access token; retrying with the reloaded one"
                    );
                    continue;
                }
                return Err(err);
            }
            if call.retry == Retry::Never || !err.is_transient() {
                return Err(err);
            }
            let Some(delay) = backoff.next() else {
                return Err(err);
            };
            if deadline.is_some_and(|d| Instant::now() + delay >= d) {
                return Err(err);
            }
            tracing::debug!(error = %err, ?delay, path = %call.path, "transient Graph error; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn send_once(
        &self,
        call: &Call<'_>,
        token: &SecretString,
        deadline: Deadline,
    ) -> Result<Vec<u8>, Error> {
        let left = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::TooLate);
                }
                Some(left)
            }
            None => None,
        };
        let timeout = [left, self.request_timeout].into_iter().flatten().min();
        let mut query = call.query.clone();
        let authenticated = !matches!(call.auth, Auth::Nobody);
        if let Some(secret) = self.app_secret.as_ref().filter(|_| authenticated) {
            // Per token: a proof is only good for the token it was made from.
            query.push(("appsecret_proof", appsecret_proof(secret, token)));
        }
        let mut request = self
            .http
            .request(
                call.method.clone(),
                format!("{}/{}", self.api_root, call.path),
            )
            .query(&query);
        if authenticated {
            request = request.bearer_auth(token.expose_secret());
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        match &call.body {
            Some(Body::Json(body)) => request = request.json(body),
            Some(Body::Form(fields)) => request = request.form(fields),
            None => {}
        }
        let started = Instant::now();
        let outcome = self.exchange(request).await;
        let past_deadline = deadline.is_some_and(|d| Instant::now() >= d);
        let result = match outcome {
            Err(Error::Timeout) if past_deadline => Err(Error::DeadlineExceeded),
            Err(err) => Err(err),
            Ok((status, usage, body)) => {
                self.usage.record(&usage);
                if (200..300).contains(&status) {
                    Ok(body)
                } else {
                    Err(self.error_from(status, &body, &usage, token, call.secret))
                }
            }
        };
        let elapsed = started.elapsed();
        let label = result
            .as_ref()
            .map_or_else(Error::metric_label, |_| "ok".into());
        crate::metrics::graph_call(
            call.endpoint,
            call.auth.kind(),
            label,
            elapsed.as_secs_f64(),
        );
        match &result {
            Ok(_) => tracing::debug!(
                endpoint = call.endpoint, method = %call.method, path = %call.path,
                elapsed_ms = elapsed.as_millis() as u64, "Graph API call"
            ),
            Err(Error::Graph(g)) => tracing::warn!(
                endpoint = call.endpoint, path = %call.path, code = g.code,
                subcode = g.subcode.unwrap_or_default(),
                fbtrace_id = g.fbtrace_id.as_deref().unwrap_or_default(), graph_message = %g.message,
                "Graph API error"
            ),
            Err(e) => {
                tracing::warn!(endpoint = call.endpoint, path = %call.path, error = %e, "Graph API call failed")
            }
        }
        result
    }

    /// Sends the request and reads the status, usage headers and a size-bounded body.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Usage, Vec<u8>), Error> {
        let mut response = request.send().await.map_err(Error::from_reqwest)?;
        let status = response.status().as_u16();
        let usage = Usage::from_headers(response.headers());
        let limit = self.max_body_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(Error::BodyTooLarge { limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(Error::from_reqwest)? {
            if body.len() + chunk.len() > limit {
                return Err(Error::BodyTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, usage, body))
    }

    fn error_from(
        &self,
        status: u16,
        body: &[u8],
        usage: &Usage,
        token: &SecretString,
        call_secret: Option<&SecretString>,
    ) -> Error {
        let Ok(wire::ErrorEnvelope { error: e }) = serde_json::from_slice(body) else {
            return match status {
                429 => Error::RateLimited {
                    retry_after: usage.retry_after,
                },
                _ => Error::Http { status },
            };
        };
        // Meta does not echo credentials, but nothing it says may carry one onward.
        let proof = self.app_secret.as_ref().map(|s| appsecret_proof(s, token));
        let secrets: Vec<&str> = [
            Some(token.expose_secret()),
            self.app_secret.as_ref().map(|s| s.expose_secret()),
            proof.as_deref(),
            call_secret.map(|s| s.expose_secret()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let clean = |s: String| redact(s, &secrets);
        let details = e.details().map(clean);
        let retry_after = usage.regain_access_in().or(usage.retry_after);
        Error::Graph(Box::new(GraphError {
            http_status: status,
            code: e.code,
            subcode: e.error_subcode,
            kind: e.kind,
            message: clean(e.message),
            details,
            fbtrace_id: e.fbtrace_id,
            is_transient: e.is_transient,
            user_title: e.error_user_title.map(clean),
            user_message: e.error_user_msg.map(clean),
            retry_after,
        }))
    }
}

/// `appsecret_proof`: lowercase hex HMAC-SHA256 of the token, keyed by the app secret.
pub fn appsecret_proof(app_secret: &SecretString, token: &SecretString) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.expose_secret().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(token.expose_secret().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn graph_id(id: &str) -> Result<&str, Error> {
    if is_graph_id(id) {
        Ok(id)
    } else {
        Err(Error::InvalidId)
    }
}

fn redact(mut text: String, secrets: &[&str]) -> String {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "[redacted]");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appsecret_proof_matches_metas_definition() {
        // echo -n token | openssl dgst -sha256 -hmac secret
        let proof = appsecret_proof(&"secret".into(), &"token".into());
        assert_eq!(
            proof,
            "e941110e3d2bfe82621f0e3e1434730d7305d106c5f68c87165d0b27a4611a4a"
        );
    }

    #[test]
    fn redact_removes_every_secret() {
        let text = redact("bad token abc, proof def".into(), &["abc", "def", ""]);
        assert_eq!(text, "bad token [redacted], proof [redacted]");
    }
}
