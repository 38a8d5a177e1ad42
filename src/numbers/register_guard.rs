//! Register idempotency: a client retrying with the same `request_id` must not spend
//! another of Meta's 10 register attempts per number per 72 hours.
//!
//! The first call with a key starts the attempt in a task of its own, which every call
//! with that key then awaits: one upstream attempt, however many callers, and a caller
//! that gives up cannot abort it. The outcome is remembered for a day, except a definite
//! failure (Meta answered with an error): retrying after one is a deliberate new attempt.
//! An outcome Meta may have counted (success, or no answer) is never attempted again
//! under the same key. A key reused for a different request (number, PIN, region) is
//! refused.

use super::{Error, Registration};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use hmac::{Hmac, Mac};
use moka::ops::compute::Op;
use secrecy::ExposeSecret;
use sha2::Sha256;
use std::future::Future;
use std::time::Duration;

const REMEMBER_FOR: Duration = Duration::from_secs(24 * 3600);
const MAX_KEYS: u64 = 100_000;

type Attempt = Shared<BoxFuture<'static, Result<bool, Error>>>;

#[derive(Clone)]
struct Entry {
    /// Identifies the request without keeping its PIN.
    fingerprint: [u8; 32],
    attempt: Attempt,
}

pub struct RegisterGuard {
    entries: moka::future::Cache<String, Entry>,
    key: [u8; 32],
}

impl std::fmt::Debug for RegisterGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterGuard")
            .field("remembered", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl RegisterGuard {
    pub fn new() -> Self {
        Self {
            entries: moka::future::Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_live(REMEMBER_FOR)
                .build(),
            key: rand::random(),
        }
    }

    /// Runs `attempt` once per request_id (every time when there is none).
    pub async fn run<Fut>(&self, r: &Registration, attempt: Fut) -> Result<bool, Error>
    where
        Fut: Future<Output = Result<bool, Error>> + Send + 'static,
    {
        let Some(request_id) = r.request_id.as_deref() else {
            return attempt.await;
        };
        let fingerprint = self.fingerprint(r);
        // The initializer has no await point, so it cannot be abandoned half way.
        let entry = self
            .entries
            .get_with(request_id.to_owned(), async move {
                let task = tokio::spawn(attempt);
                let attempt = async move {
                    task.await.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "register attempt task failed");
                        Err(Error::RegisterOutcomeUnknown(e.to_string()))
                    })
                };
                Entry {
                    fingerprint,
                    attempt: attempt.boxed().shared(),
                }
            })
            .await;
        if entry.fingerprint != fingerprint {
            return Err(Error::RequestIdReused);
        }
        let outcome = entry.attempt.clone().await;
        if matches!(outcome, Err(Error::Upstream(_))) {
            // Meta answered no: forget it, so that a retry is a new attempt.
            let ours = entry.attempt;
            self.entries
                .entry_by_ref(request_id)
                .and_compute_with(|current| async move {
                    match current {
                        Some(e) if e.value().attempt.ptr_eq(&ours) => Op::Remove,
                        _ => Op::Nop,
                    }
                })
                .await;
        }
        outcome
    }

    fn fingerprint(&self, r: &Registration) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        for part in [
            r.phone_number_id.as_str(),
            r.data_localization_region.as_deref().unwrap_or_default(),
            r.pin.expose_secret(),
        ] {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        mac.finalize().into_bytes().into()
    }
}
