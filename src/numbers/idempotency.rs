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
//!
//! When the store fails part way:
//! - **The claim** (nothing sent yet): the attempt makes its [`ClaimId`] once and every
//!   try of the claim carries it, so a claim made in the store whose reply was lost is
//!   found to be the attempt's own on the next try (tried again at once after a quick
//!   failure, a dropped connection; not after a slow one, a store that is down, whose
//!   wait is the write's). If no try answers, the call gets `STORE_UNAVAILABLE` and the
//!   claim is given up in the background ([`Store::idem_release`], until the store
//!   answers, for up to an hour, and once more a lease later): the key is free for the
//!   retry, on any replica, instead of holding an attempt nobody made for a day.
//! - **The outcome** (the write was sent, or refused before Meta by a guard whose store
//!   failed): the caller gets its answer at once, and the outcome is offered to the store
//!   again in the background, with backoff (a quarter second doubling to a renewal
//!   period) for up to an hour. Calls that wait on it meanwhile answer outcome unknown
//!   once its lease lapsed and one more look found nothing; every call after it is
//!   recorded gets the outcome (a definite no, recorded, frees the key as usual). Only
//!   if the store stays away longer, or this process stops first, does the key say
//!   outcome unknown until it is forgotten.
//! - **A lease renewal**: nothing is resent; callers elsewhere may answer outcome unknown.
//!
//! Fingerprints are HMACs under keys derived from the store's keys, and the record says
//! which key signed it. A replica compares under that key when it has it (current or
//! old), so a retry during a rolling key rotation is recognised on either side. A record
//! signed under a key this replica lacks cannot be told apart from another request under
//! the same `request_id`: the call is refused as `STORE_UNAVAILABLE` saying why (a retry
//! on a replica with the key, or after the rollout, gets the record's answer), never
//! `REQUEST_ID_REUSED`, and never a replay of an answer that may be another request's.
//!
//! A replayed outcome's waits ("retry after" of a refusal, a throttle, Meta's usage
//! headers) count from when it was kept, by the store's clock: the wait left, never less
//! than zero. (A definite no is replaced by the next call, so only calls that waited on
//! the attempt replay it.)

use super::{Error, Write};
use crate::graph;
use crate::store::{Claim, ClaimId, Fingerprint, Store};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use hmac::{Hmac, Mac};
use moka::ops::compute::Op;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

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
/// Tries of one claim after quick failures (a connection dropped), and the pause after
/// the first (longer after each).
const CLAIM_TRIES: u32 = 3;
const CLAIM_PAUSE: Duration = Duration::from_millis(100);
/// A failure slower than this is a store that is down: not tried again inline.
const QUICK_FAILURE: Duration = Duration::from_secs(1);
/// How long what the store must be told after the caller has its answer (an outcome, a
/// claim given up) is offered again.
const RECORD_FOR: Duration = Duration::from_secs(3600);

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
                .into_iter()
                .map(|(id, key)| (id, fingerprint_under(&key, request)))
                .collect::<Fingerprints>();
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

/// A request's fingerprints under each of the store's keys, current first.
type Fingerprints = Vec<(String, [u8; 32])>;

/// Whether a record's fingerprint is this request's.
#[derive(Debug, PartialEq, Eq)]
enum Match {
    Same,
    Other,
    /// Signed under a key this replica does not hold: it cannot tell.
    UnknownKey(String),
}

fn compare(record: &Fingerprint, ours: &Fingerprints) -> Match {
    use subtle::ConstantTimeEq;
    let same = |mac: &[u8; 32]| bool::from(mac[..].ct_eq(&record.mac));
    match &record.key_id {
        Some(id) => match ours.iter().find(|(key_id, _)| key_id == id) {
            Some((_, mac)) if same(mac) => Match::Same,
            Some(_) => Match::Other,
            None => Match::UnknownKey(id.clone()),
        },
        // Kept before records named their key: under any key this replica holds.
        None if ours.iter().any(|(_, mac)| same(mac)) => Match::Same,
        None => Match::Other,
    }
}

/// One attempt under a key the store keeps for the fleet (see the module's doc).
async fn in_store<T, Fut>(
    store: Store,
    write: Write,
    request_id: String,
    fingerprints: Fingerprints,
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
    let (key_id, mac) = &fingerprints[0];
    let ours = Fingerprint {
        key_id: Some(key_id.clone()),
        mac: mac.to_vec(),
    };
    // One claim for the attempt, whichever of its tries gets through.
    let claim = ClaimId::new();
    let mut attempt = Some(attempt);
    let mut lapsed_once = false;
    loop {
        let mut record = match claim_key(&store, rpc, &request_id, &ours, &claim).await {
            Ok(Claim::Won(claim)) => {
                let attempt = attempt.take().expect("a key is won once per call");
                return hold(store, write, request_id, claim, attempt).await;
            }
            Ok(Claim::Held(record)) => record,
            Err(e) => {
                // The claim may be in the store with its answer lost: given up, so the
                // key is not left held by a write that was never sent.
                tokio::spawn(release(store, rpc, request_id, claim));
                return Err(unavailable(e));
            }
        };
        loop {
            if record.fingerprint.mac.is_empty() {
                break; // gone between claim and read: claim again
            }
            match compare(&record.fingerprint, &fingerprints) {
                Match::Same => {}
                Match::Other => return Err(Error::RequestIdReused),
                Match::UnknownKey(id) => {
                    return Err(Error::StoreUnavailable(format!(
                        "the record of this request_id is signed under store key {id}, which \
                         this replica does not hold (a key rotation not yet on every replica?), \
                         so it cannot tell whether it is this request; try again"
                    )));
                }
            }
            if let Some(outcome) = &record.outcome {
                let age = record.outcome_age.unwrap_or_default();
                return replayed::<T>(outcome, age).unwrap_or_else(|e| {
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
                // A holder that renews late (its store connections busy), or records its
                // outcome late (see `record_later`), gets one more look, a renewal
                // period later.
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

/// Claims the key as `claim`, trying again (as the same claim) after a quick failure: a
/// claim made in the store whose answer was lost is found to be this call's own. A slow
/// failure (a store that is down: the pool's wait) is not tried again.
async fn claim_key(
    store: &Store,
    rpc: &'static str,
    request_id: &str,
    fingerprint: &Fingerprint,
    claim: &ClaimId,
) -> Result<Claim, crate::store::Error> {
    let mut tries = 1;
    loop {
        let started = Instant::now();
        let claimed = store
            .idem_claim(rpc, request_id, fingerprint, claim, LEASE, REMEMBER_FOR)
            .await;
        match claimed {
            Err(e) if tries < CLAIM_TRIES && started.elapsed() < QUICK_FAILURE => {
                tracing::warn!(rpc, error = %e, "claiming the key failed; trying again as the same claim");
                tokio::time::sleep(CLAIM_PAUSE * tries).await;
                tries += 1;
            }
            claimed => return claimed,
        }
    }
}

/// Sends the write under a key won, renewing its lease while it runs, and records the
/// outcome: now, or, if the store cannot take it, in the background (`record_later`).
async fn hold<T, Fut>(
    store: Store,
    write: Write,
    request_id: String,
    claim: ClaimId,
    attempt: Fut,
) -> Result<T, Error>
where
    T: serde::Serialize + Send + 'static,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
{
    let rpc = write.key();
    let renewing = tokio::spawn(renew(store.clone(), rpc, request_id.clone(), claim.clone()));
    let outcome = spawned(write, attempt).await;
    renewing.abort();
    let replaceable = outcome.as_ref().is_err_and(Error::is_definite);
    let encoded = serde_json::to_string(&outcome).unwrap_or_else(|e| {
        // An error that does not encode (a path that is not UTF-8): kept as what it
        // means for a retry.
        tracing::error!(rpc, error = %e, "cannot encode the write's outcome");
        let kept: Result<T, Error> = Err(match &outcome {
            Err(e) if e.is_definite() => Error::StoreUnavailable(e.to_string()),
            _ => Error::OutcomeUnknown {
                write,
                cause: "its outcome could not be kept".into(),
            },
        });
        serde_json::to_string(&kept).unwrap_or_default()
    });
    if let Err(e) = store
        .idem_finish(rpc, &request_id, &claim, &encoded, replaceable)
        .await
    {
        tracing::warn!(rpc, error = %e, "cannot record the write's outcome in the store; trying again in the background");
        tokio::spawn(record_later(
            store,
            rpc,
            request_id,
            claim,
            encoded,
            replaceable,
        ));
    }
    outcome
}

/// Pauses between tries of what the store must be told after the caller has its answer:
/// doubling from a quarter second to a renewal period (so a store back up has it within
/// one, as a waiting call's last look expects), for [`RECORD_FOR`] in all.
fn pauses() -> impl Iterator<Item = Duration> {
    use backon::{BackoffBuilder, ExponentialBuilder};
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(250))
        .with_max_delay(RENEW_EVERY)
        .without_max_times()
        .with_total_delay(Some(RECORD_FOR))
        .build()
}

/// Records an outcome the store could not take when the write ended, until it does (or
/// [`RECORD_FOR`] has passed): the key's record otherwise says outcome unknown for a day.
async fn record_later(
    store: Store,
    rpc: &'static str,
    request_id: String,
    claim: ClaimId,
    encoded: String,
    replaceable: bool,
) {
    for pause in pauses() {
        tokio::time::sleep(pause).await;
        match store
            .idem_finish(rpc, &request_id, &claim, &encoded, replaceable)
            .await
        {
            Ok(()) => {
                tracing::info!(rpc, "recorded the write's outcome in the store after all");
                return;
            }
            Err(e) => tracing::debug!(rpc, error = %e, "still cannot record the write's outcome"),
        }
    }
    tracing::error!(
        rpc,
        "gave up recording the write's outcome: its key answers outcome unknown until it is forgotten"
    );
}

/// Gives up a claim whose write was never sent, until the store answers (or
/// [`RECORD_FOR`] has passed); once more a lease later, in case a try of the claim still
/// on its way landed after.
async fn release(store: Store, rpc: &'static str, request_id: String, claim: ClaimId) {
    let mut pauses = pauses();
    loop {
        match store.idem_release(rpc, &request_id, &claim).await {
            Ok(true) => return,
            Ok(false) => break,
            Err(e) => tracing::debug!(rpc, error = %e, "cannot give up the key's claim yet"),
        }
        let Some(pause) = pauses.next() else {
            tracing::error!(
                rpc,
                "gave up giving up a claim: its key answers outcome unknown until it is forgotten"
            );
            return;
        };
        tokio::time::sleep(pause).await;
    }
    tokio::time::sleep(LEASE).await;
    let _ = store.idem_release(rpc, &request_id, &claim).await;
}

/// An outcome another call kept `age` ago, as it holds now: every wait it asks for
/// ("retry after") counts from when it was kept, never below zero.
fn replayed<T: serde::de::DeserializeOwned>(
    encoded: &str,
    age: Duration,
) -> Result<Result<T, Error>, serde_json::Error> {
    let outcome: Result<T, Error> = serde_json::from_str(encoded)?;
    Ok(outcome.map_err(|e| aged(e, age)))
}

fn aged(mut e: Error, age: Duration) -> Error {
    let less = |d: &mut Duration| *d = d.saturating_sub(age);
    match &mut e {
        Error::Throttled { retry_after } => less(retry_after),
        Error::Refused(refusal) => less(&mut refusal.retry_after),
        Error::Upstream(graph::Error::Graph(g)) | Error::WriteFailed(graph::Error::Graph(g)) => {
            if let Some(retry_after) = &mut g.retry_after {
                less(retry_after);
            }
        }
        _ => {}
    }
    e
}

/// Keeps the claim's lease alive while its attempt runs (aborted when it ends).
async fn renew(store: Store, rpc: &'static str, request_id: String, claim: ClaimId) {
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

#[cfg(test)]
mod fleet_tests {
    //! The fleet's records under a store that fails as a database can (the memory
    //! backend's faults, tokio's paused clock), and under rotated keys (SQLite).
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

    fn replica(store: &Store) -> Idempotent<bool> {
        Idempotent::with_store(Write::Register, Some(store.clone()))
    }

    /// An attempt that counts itself in `sent` and answers `true`.
    fn counted(sent: &Arc<AtomicU32>) -> impl Future<Output = Result<bool, Error>> + use<> {
        let sent = sent.clone();
        async move {
            sent.fetch_add(1, SeqCst);
            Ok(true)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_whose_reply_was_lost_is_the_attempts_own() {
        let store = Store::memory();
        store.faults().lost_claim_replies.store(1, SeqCst);
        let sent = Arc::new(AtomicU32::new(0));
        let outcome = replica(&store).run(Some("k"), &["1"], counted(&sent)).await;
        assert!(outcome.unwrap(), "not held by its own lost claim");
        assert_eq!(sent.load(SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_that_never_answered_is_given_up_for_the_next_call() {
        let store = Store::memory();
        store.faults().lost_claim_replies.store(CLAIM_TRIES, SeqCst);
        let sent = Arc::new(AtomicU32::new(0));
        let first = replica(&store).run(Some("k"), &["1"], counted(&sent)).await;
        assert!(
            matches!(first, Err(Error::StoreUnavailable(_))),
            "{first:?}"
        );
        assert_eq!(sent.load(SeqCst), 0);
        // The retry, on another replica: the key was never used, so it is sent.
        let retry = replica(&store).run(Some("k"), &["1"], counted(&sent)).await;
        assert!(retry.unwrap());
        assert_eq!(sent.load(SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outcome_the_store_could_not_take_is_recorded_once_it_can() {
        let store = Store::memory();
        let sent = Arc::new(AtomicU32::new(0));
        let goes_down = {
            let (store, sent) = (store.clone(), sent.clone());
            async move {
                sent.fetch_add(1, SeqCst);
                // Meta answered; then the store goes away before it hears the outcome.
                store.faults().down.store(true, SeqCst);
                Ok(true)
            }
        };
        let first = replica(&store).run(Some("k"), &["1"], goes_down).await;
        assert!(first.unwrap());
        tokio::time::sleep(Duration::from_secs(60)).await;
        store.faults().down.store(false, SeqCst);
        tokio::time::sleep(RENEW_EVERY * 2).await;
        // Another replica, well after the lease lapsed: the outcome, not "unknown".
        let later = replica(&store).run(Some("k"), &["1"], counted(&sent)).await;
        assert!(later.unwrap(), "the outcome was recorded after all");
        assert_eq!(sent.load(SeqCst), 1, "sent once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_replayed_later_asks_for_the_wait_left() {
        use crate::numbers::{Limit, Refusal};
        let refusal = |retry_after| {
            Err::<bool, _>(Error::Refused(Box::new(Refusal {
                limit: Limit::Register,
                phone_number_id: "1".into(),
                retry_after,
                used: 9,
                allowed: 10,
                window: Duration::from_secs(72 * 3600),
                blocked_by_meta: false,
            })))
        };
        let encoded = serde_json::to_string(&refusal(Duration::from_secs(100))).unwrap();
        let wait = |outcome: Result<bool, Error>| match outcome {
            Err(Error::Refused(r)) => r.retry_after,
            other => panic!("{other:?}"),
        };
        let replay = |age| replayed::<bool>(&encoded, age).unwrap();
        assert_eq!(wait(replay(Duration::ZERO)), Duration::from_secs(100));
        assert_eq!(
            wait(replay(Duration::from_secs(40))),
            Duration::from_secs(60)
        );
        assert_eq!(wait(replay(Duration::from_secs(400))), Duration::ZERO);
        let mut meta = graph::GraphError::of(80008, None, "too many calls");
        meta.retry_after = Some(Duration::from_secs(30));
        let throttled = serde_json::to_string(&Err::<bool, _>(Error::WriteFailed(
            graph::Error::Graph(Box::new(meta)),
        )))
        .unwrap();
        match replayed::<bool>(&throttled, Duration::from_secs(10)).unwrap() {
            Err(Error::WriteFailed(e)) => {
                assert_eq!(e.retry_after(), Some(Duration::from_secs(20)))
            }
            other => panic!("{other:?}"),
        }
    }

    fn write_key(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
        use base64::Engine;
        let path = dir.join(name);
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
        std::fs::write(&path, key).unwrap();
        path
    }

    /// A rolling key rotation: one replica on the new key (the old one among its old
    /// keys), one still on the old key alone, one SQLite file.
    #[tokio::test]
    async fn a_retry_across_a_rolling_key_rotation_is_not_called_another_request() {
        use crate::store::StoreConfig;
        let dir = tempfile::tempdir().unwrap();
        let old_keys = dir.path().join("old");
        std::fs::create_dir(&old_keys).unwrap();
        let key_a = write_key(dir.path(), "a.key");
        std::fs::copy(&key_a, old_keys.join("a.key")).unwrap();
        let key_b = write_key(dir.path(), "b.key");
        let spec = format!("sqlite:{}", dir.path().join("store.db").display());
        let open = |key: &std::path::Path, old: Option<&std::path::Path>| {
            let config =
                StoreConfig::parse(&spec, Some(key.to_owned()), old.map(Into::into)).unwrap();
            async move { Store::open(&config).await.unwrap() }
        };
        let on_old = open(&key_a, None).await;
        let on_new = open(&key_b, Some(&old_keys)).await;
        let (old, new) = (replica(&on_old), replica(&on_new));
        let sent = Arc::new(AtomicU32::new(0));

        // Kept by the old key's replica: the new one knows that key, and finds its request.
        assert!(old.run(Some("k1"), &["1"], counted(&sent)).await.unwrap());
        assert!(new.run(Some("k1"), &["1"], counted(&sent)).await.unwrap());
        assert_eq!(sent.load(SeqCst), 1);
        let other = new.run(Some("k1"), &["2"], counted(&sent)).await;
        assert!(matches!(other, Err(Error::RequestIdReused)), "{other:?}");

        // Kept by the new key's replica: the old one cannot tell, and says so.
        assert!(new.run(Some("k2"), &["1"], counted(&sent)).await.unwrap());
        let retry = old.run(Some("k2"), &["1"], counted(&sent)).await;
        match retry {
            Err(Error::StoreUnavailable(why)) => {
                let key_id = on_new.current_key_id().unwrap();
                assert!(why.contains(key_id), "{why}");
            }
            other => panic!("a retry across the rotation: {other:?}"),
        }
        assert_eq!(sent.load(SeqCst), 2, "nothing sent for the retry");
        on_old.close().await;
        on_new.close().await;
    }

    #[test]
    fn a_fingerprint_matches_under_the_key_it_names() {
        let ours: Fingerprints = vec![("b".into(), [2; 32]), ("a".into(), [1; 32])];
        let record = |key: Option<&str>, mac: u8| Fingerprint {
            key_id: key.map(Into::into),
            mac: vec![mac; 32],
        };
        assert_eq!(compare(&record(Some("a"), 1), &ours), Match::Same);
        assert_eq!(compare(&record(Some("b"), 2), &ours), Match::Same);
        assert_eq!(compare(&record(Some("a"), 2), &ours), Match::Other);
        assert_eq!(
            compare(&record(Some("c"), 1), &ours),
            Match::UnknownKey("c".into())
        );
        assert_eq!(
            compare(&record(None, 1), &ours),
            Match::Same,
            "kept before key ids"
        );
        assert_eq!(compare(&record(None, 3), &ours), Match::Other);
    }
}
