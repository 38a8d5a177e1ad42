//! Idempotent writes: a client retrying with the same `request_id` must not send the
//! write again (another of Meta's 10 register attempts per number per 72 hours spent,
//! another SMS sent).
//!
//! Every write runs in a task of its own, so a caller that gives up cannot abort it
//! half way. With a key, the first call starts the attempt and every call with that key
//! awaits it: one upstream attempt, however many callers. The outcome is remembered for
//! a day, except a definite failure (Meta answered with an error, or a guard refused):
//! retrying after one is a deliberate new attempt. An outcome Meta may have counted
//! (success, or no answer) is never attempted again under the same key. A key reused
//! for a different request is refused. Keys are per RPC: each RPC has its own guard.

use super::{Error, Write};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use hmac::{Hmac, Mac};
use moka::ops::compute::Op;
use std::future::Future;
use std::time::Duration;

const REMEMBER_FOR: Duration = Duration::from_secs(24 * 3600);
/// Far more keys than a day of writes within Meta's limits needs: a key evicted while its
/// attempt is remembered could send the write again.
const MAX_KEYS: u64 = 1_000_000;

type Attempt<T> = Shared<BoxFuture<'static, Result<T, Error>>>;

#[derive(Clone)]
struct Entry<T: Clone> {
    /// Identifies the request without keeping its secrets.
    fingerprint: [u8; 32],
    attempt: Attempt<T>,
}

pub struct Idempotent<T: Clone> {
    write: Write,
    entries: moka::future::Cache<String, Entry<T>>,
    key: [u8; 32],
}

impl<T: Clone> std::fmt::Debug for Idempotent<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotent")
            .field("write", &self.write)
            .field("remembered", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + Sync + 'static> Idempotent<T> {
    pub fn new(write: Write) -> Self {
        Self {
            write,
            entries: moka::future::Cache::builder()
                .max_capacity(MAX_KEYS)
                .time_to_live(REMEMBER_FOR)
                .build(),
            key: rand::random(),
        }
    }

    /// Runs `attempt` in a task of its own, once per `request_id` (every time when there
    /// is none). `request` names the request (its ids, parameters and secrets): a key
    /// reused with another request is [`Error::RequestIdReused`].
    pub async fn run<Fut>(
        &self,
        request_id: Option<&str>,
        request: &[&str],
        attempt: Fut,
    ) -> Result<T, Error>
    where
        Fut: Future<Output = Result<T, Error>> + Send + 'static,
    {
        let Some(request_id) = request_id else {
            return spawned(self.write, attempt).await;
        };
        let fingerprint = self.fingerprint(request);
        let write = self.write;
        // The initializer has no await point, so it cannot be abandoned half way.
        let entry = self
            .entries
            .get_with(request_id.to_owned(), async move {
                Entry {
                    fingerprint,
                    attempt: spawned(write, attempt).boxed().shared(),
                }
            })
            .await;
        if entry.fingerprint != fingerprint {
            return Err(Error::RequestIdReused);
        }
        let outcome = entry.attempt.clone().await;
        if outcome.as_ref().is_err_and(Error::is_definite) {
            // A definite no: forget it, so that a retry is a new attempt.
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

    fn fingerprint(&self, request: &[&str]) -> [u8; 32] {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.key).expect("any key length");
        for part in request {
            mac.update(part.as_bytes());
            mac.update(&[0]);
        }
        mac.finalize().into_bytes().into()
    }
}

/// Runs the attempt to its end whatever happens to the caller.
pub(super) fn spawned<T: Send + 'static>(
    write: Write,
    attempt: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> impl Future<Output = Result<T, Error>> {
    let task = tokio::spawn(attempt);
    async move {
        task.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "write attempt task failed");
            Err(Error::OutcomeUnknown {
                write,
                cause: "the attempt failed inside the service".into(),
            })
        })
    }
}
