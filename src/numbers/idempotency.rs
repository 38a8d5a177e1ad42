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
//!
//! With a store the keys are the fleet's: the first call on any replica claims the key in
//! the store ([`Store::idem_claim`]: exactly one of racing calls wins) and sends the
//! write, renewing its lease while it runs; a call on another replica waits for the
//! outcome the store then keeps (JSON), or, if the holder's lease lapses first (it died),
//! answers outcome unknown, as every later call under the key does: nothing reaches Meta
//! blindly. A store that cannot answer sends nothing ([`Error::StoreUnavailable`]).

use super::{Error, Write};
use crate::store::{Claim, Store};
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

/// How long a claim lives without renewal, and how often its holder renews it.
const LEASE: Duration = Duration::from_secs(15);
const RENEW_EVERY: Duration = Duration::from_secs(5);
/// How often a call waiting on another replica's attempt looks at its record.
const POLL: Duration = Duration::from_millis(100);

pub struct Idempotent<T: Clone> {
    write: Write,
    entries: moka::future::Cache<String, Entry<T>>,
    key: [u8; 32],
    /// The fleet's records, when there is a store.
    shared: Option<Store>,
}

impl<T: Clone> std::fmt::Debug for Idempotent<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idempotent")
            .field("write", &self.write)
            .field("remembered", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl<T> Idempotent<T>
where
    T: Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    /// Keys remembered in `store` when there is one (shared by its replicas).
    pub fn with_store(write: Write, shared: Option<Store>) -> Self {
        Self {
            shared,
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
        let shared = self.shared.clone().map(|store| {
            let fingerprints = store
                .fingerprint_keys()
                .iter()
                .map(|key| fingerprint_under(key, request))
                .collect::<Vec<_>>();
            (store, fingerprints)
        });
        let key = request_id.to_owned();
        // The initializer has no await point, so it cannot be abandoned half way.
        let entry = self
            .entries
            .get_with(request_id.to_owned(), async move {
                let attempt = match shared {
                    None => spawned(write, attempt).boxed(),
                    Some((store, fingerprints)) => {
                        spawned(write, in_store(store, write, key, fingerprints, attempt)).boxed()
                    }
                };
                Entry {
                    fingerprint,
                    attempt: attempt.shared(),
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
        fingerprint_under(&self.key, request)
    }
}

/// The request's fingerprint under `key`: its parts, each ended by a 0, signed.
fn fingerprint_under(key: &[u8; 32], request: &[&str]) -> [u8; 32] {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    for part in request {
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    mac.finalize().into_bytes().into()
}

/// One attempt under a key the store keeps for the fleet (see the module's doc).
/// `fingerprints`: the request's under each of the store's keys, current first.
async fn in_store<T, Fut>(
    store: Store,
    write: Write,
    request_id: String,
    fingerprints: Vec<[u8; 32]>,
    attempt: Fut,
) -> Result<T, Error>
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
{
    let rpc = write.key();
    let unavailable = |e: crate::store::Error| Error::StoreUnavailable(e.to_string());
    let lapsed = || Error::OutcomeUnknown {
        write,
        cause: "the replica that sent it stopped answering before it ended".into(),
    };
    let mut attempt = Some(attempt);
    let mut lapsed_once = false;
    loop {
        let claim = store
            .idem_claim(rpc, &request_id, &fingerprints[0], LEASE, REMEMBER_FOR)
            .await
            .map_err(unavailable)?;
        let mut record = match claim {
            Claim::Won(claim) => {
                let attempt = attempt.take().expect("a key is won once per call");
                let renewing =
                    tokio::spawn(renew(store.clone(), rpc, request_id.clone(), claim.clone()));
                let outcome = spawned(write, attempt).await;
                renewing.abort();
                let replaceable = outcome.as_ref().is_err_and(Error::is_definite);
                let encoded = serde_json::to_string(&outcome).unwrap_or_else(|e| {
                    // An error that does not encode (a path that is not UTF-8): kept as
                    // what it means for a retry.
                    tracing::error!(rpc, error = %e, "cannot encode the write's outcome");
                    let kept: Result<T, Error> = Err(match &outcome {
                        Err(e) if e.is_definite() => Error::StoreUnavailable(e.to_string()),
                        _ => lapsed(),
                    });
                    serde_json::to_string(&kept).unwrap_or_default()
                });
                if let Err(e) = store
                    .idem_finish(rpc, &request_id, &claim, &encoded, replaceable)
                    .await
                {
                    // Its lease lapses: later calls under the key answer outcome unknown.
                    tracing::warn!(rpc, error = %e, "cannot record the write's outcome in the store");
                }
                return outcome;
            }
            Claim::Held(record) => record,
        };
        loop {
            if record.fingerprint.is_empty() {
                break; // gone between claim and read: claim again
            }
            if !fingerprints.iter().any(|f| f[..] == record.fingerprint[..]) {
                return Err(Error::RequestIdReused);
            }
            if let Some(outcome) = &record.outcome {
                return serde_json::from_str(outcome).unwrap_or_else(|e| {
                    // Kept by a newer (or older) replica in a shape this one does not read.
                    tracing::error!(rpc, error = %e, "cannot read another replica's outcome");
                    Err(Error::OutcomeUnknown {
                        write,
                        cause: "another replica kept its outcome in a form this one cannot read"
                            .into(),
                    })
                });
            }
            if !record.lease_alive {
                if lapsed_once {
                    return Err(lapsed());
                }
                // A holder that renews late (its store connections busy) gets one more
                // look, a renewal period later.
                lapsed_once = true;
                tokio::time::sleep(RENEW_EVERY).await;
            }
            tokio::time::sleep(POLL).await;
            match store
                .idem_peek(rpc, &request_id, REMEMBER_FOR)
                .await
                .map_err(unavailable)?
            {
                Some(next) => record = next,
                None => break,
            }
        }
    }
}

/// Keeps the claim's lease alive while its attempt runs (aborted when it ends).
async fn renew(store: Store, rpc: &'static str, request_id: String, claim: crate::store::ClaimId) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match store.idem_renew(rpc, &request_id, &claim, LEASE).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => tracing::warn!(rpc, error = %e, "cannot renew the write's lease"),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph;

    /// What a replica keeps, another reads back: every kind of outcome a write can end in.
    #[test]
    fn outcomes_round_trip_between_replicas() {
        let outcomes: Vec<Result<bool, Error>> = vec![
            Ok(true),
            Err(Error::RequestIdReused),
            Err(Error::OutcomeUnknown {
                write: Write::Register,
                cause: "timeout".into(),
            }),
            Err(Error::WriteFailed(graph::Error::Graph(Box::new(
                graph::GraphError::of(133005, None, "PIN mismatch"),
            )))),
            Err(Error::Upstream(graph::Error::Timeout)),
            Err(Error::StoreUnavailable("down".into())),
        ];
        for outcome in outcomes {
            let encoded = serde_json::to_string(&outcome).unwrap();
            let decoded: Result<bool, Error> = serde_json::from_str(&encoded).unwrap();
            assert_eq!(format!("{decoded:?}"), format!("{outcome:?}"));
        }
    }
}
