//! The store: what must survive a restart or be shared by replicas, behind one interface
//! over three backends, chosen by `WABA_STORE` ([`StoreConfig`]):
//!
//! - `memory`: in the process ([`memory`]), for the sandbox and tests;
//! - `sqlite:PATH`: one file, for a single replica;
//! - `postgres://...`: shared by every replica.
//!
//! It keeps customers (a business token per customer WABA, its state, the onboarding
//! progress), the phone number → WABA index, the ledger of Meta's per-number limits and
//! the idempotency records of writes; on PostgreSQL it also carries the replicas' messages
//! to each other (NOTIFY), the leases that make one replica poll each watched target, and the owners'
//! latest observations.
//!
//! Why it looks like this:
//! - One [`Store`] type with an enum inside, not a trait object: three known backends,
//!   `async fn`s without boxing, and one place that says what each operation does on
//!   each. The same test suite (tests/store.rs) runs on all three.
//! - SQL is written once for both engines where they agree ([`sql`]); connections,
//!   migrations (embedded, run at open) and the clock are per engine.
//! - Every change to a customer bumps its [`Version`]; [`Store::update_if`] applies a
//!   change only at a given version, in one conditional statement, so of two replicas
//!   racing exactly one wins and the other learns it lost ([`Cas::Stale`]).
//! - Times that replicas compare come from the database's clock, not a replica's.
//! - Tokens are encrypted at rest ([`crypto`]: XChaCha20-Poly1305, the WABA id as
//!   associated data, key rotation by key id) and handed out only as `SecretString`s, by
//!   [`Store::token`]; [`Customer`] carries none. No `Debug` here shows a token, a key or
//!   a password, nor does any [`Error`].
//!
//!
//! When the database is away:
//! - At start, [`Store::open_or_wait`] tells what a wait cures (PostgreSQL refusing
//!   connections, starting up, out of connections, no answer: [`Error::is_unreachable`])
//!   from what it does not (the URL, the key files, a password or database refused), and
//!   for the first hands back a store not connected yet; [`Store::connect`] connects it
//!   with jittered backoff and runs the migrations. Every query before then fails as a
//!   query on a store that is down does: nothing is guessed.
//! - Later, a query that cannot reach the database fails (after the pool's 5 s wait) with
//!   [`Error::Database`]; the store counts as down from then ([`Store::answers`], the gauge
//!   `waba_store_up`, one log line), and [`Store::keep_watch`] asks it with the same
//!   backoff until it answers again. sqlx's pool reconnects by itself: nothing here is
//!   ever reopened. What may do without the store (the keyring choosing a token) asks
//!   [`Store::answers`] first; what must not (the ledger, idempotency records) always
//!   tries, and fails closed.
//!
//! This layer imports only `model` (checked by scripts/check-layers.py).

mod config;
mod crypto;
mod error;
mod memory;
mod sql;
mod types;

pub use config::StoreConfig;
pub use crypto::Keys;
pub use error::Error;
pub use types::{
    AttemptId, Cas, Change, Claim, ClaimId, Customer, CustomerPage, Fingerprint, IdemRecord, Lease,
    LedgerView, Observation, Progress, Rekeyed, StepFailure, TickPlan, Version,
};

use crate::model::{OnboardingStep, TokenState};
use config::Backend;
use memory::Memory;
use secrecy::SecretString;
use sql::Sql;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub use sql::{Heard, Notifications};

/// The largest payload [`Store::publish`] sends.
pub const MAX_NOTIFICATION: usize = sql::MAX_PAYLOAD;

/// The most customers one page holds; a larger limit gets pages of this size.
pub const MAX_PAGE: u32 = 1000;

/// The store. Cheap to clone: clones share one backend (one pool).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    /// Connected and migrated at least once (always, but for a PostgreSQL store opened
    /// while it could not be reached: see [`Store::open_or_wait`]).
    ready: Arc<AtomicBool>,
    /// Where it is, as a log may show it (no password).
    shown: Arc<str>,
}

/// What [`Store::open_or_wait`] found.
#[derive(Debug)]
pub enum Opened {
    /// Connected, migrated: ready.
    Ready(Store),
    /// PostgreSQL cannot be reached now (`why`); the store is not connected yet:
    /// [`Store::connect`] waits for it.
    Unreachable { store: Store, why: Error },
}

enum Inner {
    Memory(Memory),
    Sql(Sql),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            Inner::Memory(_) => f.debug_struct("Store").field("backend", &"memory").finish(),
            Inner::Sql(sql) => f
                .debug_struct("Store")
                .field("backend", &sql.backend_name())
                .field("keys", sql.keys())
                .finish(),
        }
    }
}

impl Store {
    /// Opens the configured store: reads the keys, connects, runs the migrations.
    pub async fn open(config: &StoreConfig) -> Result<Store, Error> {
        match Store::opening(config, false).await? {
            Opened::Ready(store) => Ok(store),
            Opened::Unreachable { why, .. } => Err(why),
        }
    }

    /// Opens the configured store as [`Store::open`] does, except that a PostgreSQL
    /// server that cannot be reached now (refused, no route, starting up, out of
    /// connections) is no reason to fail: the store comes back not connected, every
    /// query on it fails ([`Error::is_unreachable`]) until [`Store::connect`] has
    /// connected it. What a wait does not cure (the URL, the key files, a password or
    /// database PostgreSQL refuses) still fails here.
    pub async fn open_or_wait(config: &StoreConfig) -> Result<Opened, Error> {
        Store::opening(config, true).await
    }

    async fn opening(config: &StoreConfig, wait: bool) -> Result<Opened, Error> {
        let keys = || match &config.key_file {
            Some(file) => Keys::load(file, config.old_keys_dir.as_deref()),
            None => Err(Error::NoKeyFile {
                backend: config.backend_name(),
            }),
        };
        let (inner, shown) = match &config.backend {
            Backend::Memory => (Inner::Memory(Memory::default()), "memory".to_owned()),
            Backend::Sqlite(path) => (
                Inner::Sql(Sql::open_sqlite(path, keys()?).await?),
                format!("sqlite:{}", path.display()),
            ),
            Backend::Postgres {
                url,
                host,
                port,
                database,
                ..
            } => {
                let shown = format!(
                    "postgres at {host}:{port}/{}",
                    database.as_deref().unwrap_or("")
                );
                let sql = Sql::postgres_later(url, keys()?)?;
                let store = Store::of(Inner::Sql(sql), shown, false);
                return match store.connect_once().await {
                    Ok(()) => Ok(Opened::Ready(store)),
                    Err(why) if wait && why.is_unreachable() => {
                        // The gauge and the log say so from the start.
                        let why = observed::<()>(Err(why)).expect_err("an error stays one");
                        Ok(Opened::Unreachable { store, why })
                    }
                    Err(why) => Err(why),
                };
            }
        };
        Ok(Opened::Ready(Store::of(inner, shown, true)))
    }

    fn of(inner: Inner, shown: String, ready: bool) -> Store {
        Store {
            inner: Arc::new(inner),
            ready: Arc::new(AtomicBool::new(ready)),
            shown: shown.into(),
        }
    }

    /// One attempt to connect and migrate.
    async fn connect_once(&self) -> Result<(), Error> {
        if let Inner::Sql(sql) = &*self.inner {
            sql.ready(&self.shown).await?;
        }
        self.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Connects a store [`Store::open_or_wait`] could not (at once for any other), with
    /// backoff: 0.5 s, doubling up to 15 s, each wait up to twice that (jittered, so
    /// replicas restarted together do not knock together). Ends when it is connected
    /// and migrated, or with the first error a wait does not cure.
    pub async fn connect(&self) -> Result<(), Error> {
        let mut waits = backoff();
        loop {
            match self.connect_once().await {
                Ok(()) => {
                    let _ = observed(Ok(()));
                    tracing::info!(store = %self.shown, "the store is connected");
                    return Ok(());
                }
                Err(e) if e.is_unreachable() => {
                    let wait = waits.next().unwrap_or(MAX_WAIT);
                    tracing::debug!(error = %e, ?wait, "the store cannot be reached yet");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the store is connected (it was at open, or [`Store::connect`] has
    /// connected it since).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Whether the store is believed to answer now: connected, and its last query
    /// answered (or, since it failed, [`Store::keep_watch`] has seen it answer again).
    /// What may do without the store (choosing a token) asks it only then, rather than
    /// wait for the pool to give up on each call.
    pub fn answers(&self) -> bool {
        self.is_ready() && !DOWN.load(Ordering::Relaxed)
    }

    /// Runs for the life of the service: whenever a query finds the store down, asks it
    /// (one `SELECT 1`) with backoff, as [`Store::connect`] does, until it answers, so
    /// that what relies on [`Store::answers`] finds out without a write to try it.
    pub async fn keep_watch(&self) {
        let Inner::Sql(sql) = &*self.inner else {
            return;
        };
        loop {
            WENT_DOWN.notified().await;
            let mut waits = backoff();
            while DOWN.load(Ordering::Relaxed) {
                tokio::time::sleep(waits.next().unwrap_or(MAX_WAIT)).await;
                if self.is_ready() {
                    let _ = observed(sql.ping().await);
                }
            }
        }
    }

    /// A fresh in-memory store.
    pub fn memory() -> Store {
        Store::of(Inner::Memory(Memory::default()), "memory".to_owned(), true)
    }

    /// `memory`, `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match &*self.inner {
            Inner::Memory(_) => "memory",
            Inner::Sql(sql) => sql.backend_name(),
        }
    }

    /// The id of the key new tokens are encrypted under; `None` for `memory`.
    pub fn current_key_id(&self) -> Option<&str> {
        match &*self.inner {
            Inner::Memory(_) => None,
            Inner::Sql(sql) => Some(sql.keys().current_id()),
        }
    }

    /// Keeps `token` for `waba_id`: a new customer, or a new token for a known one
    /// (marked unchecked, its expiry forgotten, its onboarding to do again; the rest of
    /// the customer kept). `onboarding`: the `request_id` of the onboarding that
    /// exchanged it, recorded in the same write with its first two steps done.
    pub async fn put_token(
        &self,
        waba_id: &str,
        token: &SecretString,
        onboarding: Option<&str>,
    ) -> Result<Customer, Error> {
        match &*self.inner {
            Inner::Memory(m) => Ok(m.put_token(waba_id, token, onboarding)),
            Inner::Sql(s) => observed(s.put_token(waba_id, token, onboarding).await),
        }
    }

    /// The customer of `waba_id`, if there is one.
    pub async fn customer(&self, waba_id: &str) -> Result<Option<Customer>, Error> {
        match &*self.inner {
            Inner::Memory(m) => Ok(m.customer(waba_id)),
            Inner::Sql(s) => observed(s.customer(waba_id).await),
        }
    }

    /// The business token of `waba_id`'s customer, decrypted.
    pub async fn token(&self, waba_id: &str) -> Result<Option<SecretString>, Error> {
        match &*self.inner {
            Inner::Memory(m) => Ok(m.token(waba_id)),
            Inner::Sql(s) => observed(s.token(waba_id).await),
        }
    }

    /// Up to `limit` customers (at most [`MAX_PAGE`]) after the WABA id `after`, in WABA
    /// id order; the order is stable, so paging sees every customer that stays.
    pub async fn list(
        &self,
        limit: NonZeroU32,
        after: Option<&str>,
    ) -> Result<CustomerPage, Error> {
        match &*self.inner {
            Inner::Memory(m) => Ok(m.list(limit, after)),
            Inner::Sql(s) => observed(s.list(limit, after).await),
        }
    }

    /// Forgets the customer and its token; whether there was one. Its numbers stay
    /// indexed: they still belong to its WABA.
    pub async fn delete(&self, waba_id: &str) -> Result<bool, Error> {
        match &*self.inner {
            Inner::Memory(m) => Ok(m.delete(waba_id)),
            Inner::Sql(s) => observed(s.delete(waba_id).await),
        }
    }

    /// Claims the check of `waba_id`'s token: `true` unless another replica (or this one)
    /// claimed it less than `every` ago, or there is no such customer. Of replicas running
    /// the daily check together, one asks Meta about each token.
    pub async fn claim_token_check(&self, waba_id: &str, every: Duration) -> Result<bool, Error> {
        match &*self.inner {
            Inner::Memory(m) => Ok(m.claim_token_check(waba_id, every)),
            Inner::Sql(s) => observed(s.claim_token_check(waba_id, every).await),
        }
    }

    /// Applies `change` whatever the customer's version; the customer as it is now, or
    /// `None` when there is no such customer.
    pub async fn update(&self, waba_id: &str, change: Change) -> Result<Option<Customer>, Error> {
        Ok(match self.apply(waba_id, None, &change).await? {
            Cas::Applied(customer) => Some(customer),
            Cas::Stale | Cas::Missing => None,
        })
    }

    /// Applies `change` only if the customer is still at `expected` (compare-and-set):
    /// of several writers racing from one version, exactly one gets [`Cas::Applied`].
    pub async fn update_if(
        &self,
        waba_id: &str,
        expected: Version,
        change: Change,
    ) -> Result<Cas, Error> {
        self.apply(waba_id, Some(expected), &change).await
    }

    async fn apply(
        &self,
        waba_id: &str,
        expected: Option<Version>,
        change: &Change,
    ) -> Result<Cas, Error> {
        match &*self.inner {
            Inner::Memory(m) => Ok(m.update(waba_id, expected, change)),
            Inner::Sql(s) => observed(s.update(waba_id, expected, change).await),
        }
    }

    /// Sets the token's state; whether the customer exists.
    pub async fn set_token_state(&self, waba_id: &str, state: TokenState) -> Result<bool, Error> {
        Ok(self
            .update(waba_id, Change::TokenState(state))
            .await?
            .is_some())
    }

    /// Records `step` done; whether the customer exists.
    pub async fn record_step_done(
        &self,
        waba_id: &str,
        step: OnboardingStep,
    ) -> Result<bool, Error> {
        Ok(self
            .update(waba_id, Change::StepDone(step))
            .await?
            .is_some())
    }

    /// Records a step's failure; whether the customer exists.
    pub async fn record_step_failed(
        &self,
        waba_id: &str,
        failure: StepFailure,
    ) -> Result<bool, Error> {
        Ok(self
            .update(waba_id, Change::StepFailed(failure))
            .await?
            .is_some())
    }

    /// Records that `numbers` belong to `waba_id` (a number seen in another WABA before
    /// moves), all at once.
    pub async fn index_numbers(&self, waba_id: &str, numbers: &[String]) -> Result<(), Error> {
        match &*self.inner {
            Inner::Memory(m) => {
                m.index_numbers(waba_id, numbers);
                Ok(())
            }
            Inner::Sql(s) => observed(s.index_numbers(waba_id, numbers).await),
        }
    }

    /// The WABA a phone number id belongs to, as last indexed.
    pub async fn waba_of(&self, phone_number_id: &str) -> Result<Option<String>, Error> {
        match &*self.inner {
            Inner::Memory(m) => Ok(m.waba_of(phone_number_id)),
            Inner::Sql(s) => observed(s.waba_of(phone_number_id).await),
        }
    }

    /// The phone number ids indexed for `waba_id`, in order.
    pub async fn numbers_of(&self, waba_id: &str) -> Result<Vec<String>, Error> {
        match &*self.inner {
            Inner::Memory(m) => Ok(m.numbers_of(waba_id)),
            Inner::Sql(s) => observed(s.numbers_of(waba_id).await),
        }
    }

    /// Counts an attempt against one of Meta's per-number limits (`kind`), if `decide`
    /// allows it, atomically with reading the count: attempts older than `window` are
    /// forgotten, `decide` sees what is left (by the store's clock), and the attempt is
    /// recorded at the store's now only if it says yes. Of several replicas spending on
    /// one number at once, each sees the attempts of those before it.
    pub async fn ledger_spend(
        &self,
        number: &str,
        kind: &str,
        window: Duration,
        decide: impl FnOnce(&LedgerView) -> bool + Send,
    ) -> Result<(LedgerView, Option<AttemptId>), Error> {
        match &*self.inner {
            Inner::Memory(m) => Ok(m.ledger_spend(number, kind, window, decide)),
            Inner::Sql(s) => observed(s.ledger_spend(number, kind, window, decide).await),
        }
    }

    /// Gives back an attempt that was never sent.
    pub async fn ledger_refund(&self, attempt: &AttemptId) -> Result<(), Error> {
        match &*self.inner {
            Inner::Memory(m) => {
                m.ledger_refund(attempt);
                Ok(())
            }
            Inner::Sql(s) => observed(s.ledger_refund(attempt).await),
        }
    }

    /// Meta blocked the number for `kind` for `for_` from now (a later block is kept).
    pub async fn ledger_block(
        &self,
        number: &str,
        kind: &str,
        for_: Duration,
    ) -> Result<(), Error> {
        match &*self.inner {
            Inner::Memory(m) => {
                m.ledger_block(number, kind, for_);
                Ok(())
            }
            Inner::Sql(s) => observed(s.ledger_block(number, kind, for_).await),
        }
    }

    /// What the ledger counts for the number now.
    pub async fn ledger_view(
        &self,
        number: &str,
        kind: &str,
        window: Duration,
    ) -> Result<LedgerView, Error> {
        match &*self.inner {
            Inner::Memory(m) => Ok(m.ledger_view(number, kind, window)),
            Inner::Sql(s) => observed(s.ledger_view(number, kind, window).await),
        }
    }

    /// Claims the idempotency key (`rpc`, `request_id`) for a request whose fingerprint
    /// is `fingerprint`, as `claim`, with a lease of `lease`: [`Claim::Won`] for exactly
    /// one of the calls racing on it, on any replica, unless a record younger than
    /// `remember` holds it (and is not a definite failure, which a new call replaces). A
    /// record `claim` already holds, without an outcome, is won again: a try whose answer
    /// was lost is retried with the same `claim` and finds its own.
    pub async fn idem_claim(
        &self,
        rpc: &str,
        request_id: &str,
        fingerprint: &Fingerprint,
        claim: &ClaimId,
        lease: Duration,
        remember: Duration,
    ) -> Result<Claim, Error> {
        match &*self.inner {
            Inner::Memory(m) => {
                m.fault_before()?;
                let key = (rpc.to_owned(), request_id.to_owned());
                let claimed = m.idem_claim(key, fingerprint, claim, lease, remember);
                m.fault_after_claim()?;
                Ok(claimed)
            }
            Inner::Sql(s) => observed(
                s.idem_claim(rpc, request_id, fingerprint, claim, lease, remember)
                    .await,
            ),
        }
    }

    /// The record of a key, if one younger than `remember` holds it.
    pub async fn idem_peek(
        &self,
        rpc: &str,
        request_id: &str,
        remember: Duration,
    ) -> Result<Option<IdemRecord>, Error> {
        match &*self.inner {
            Inner::Memory(m) => {
                m.fault_before()?;
                Ok(m.idem_peek(&(rpc.to_owned(), request_id.to_owned()), remember))
            }
            Inner::Sql(s) => observed(s.idem_peek(rpc, request_id, remember).await),
        }
    }

    /// Extends the claim's lease while its attempt runs; false if the claim is not the
    /// record's any more.
    pub async fn idem_renew(
        &self,
        rpc: &str,
        request_id: &str,
        claim: &ClaimId,
        lease: Duration,
    ) -> Result<bool, Error> {
        match &*self.inner {
            Inner::Memory(m) => {
                m.fault_before()?;
                Ok(m.idem_renew(&(rpc.to_owned(), request_id.to_owned()), claim, lease))
            }
            Inner::Sql(s) => observed(s.idem_renew(rpc, request_id, claim, lease).await),
        }
    }

    /// Records the claim's outcome (at the store's now); `replaceable`: a definite
    /// failure, which the next call under the key replaces with a new attempt. Doing it
    /// twice does no harm; once another claim holds the key it does nothing.
    pub async fn idem_finish(
        &self,
        rpc: &str,
        request_id: &str,
        claim: &ClaimId,
        outcome: &str,
        replaceable: bool,
    ) -> Result<(), Error> {
        match &*self.inner {
            Inner::Memory(m) => {
                m.fault_before()?;
                let key = (rpc.to_owned(), request_id.to_owned());
                m.idem_finish(&key, claim, outcome, replaceable);
                Ok(())
            }
            Inner::Sql(s) => observed(
                s.idem_finish(rpc, request_id, claim, outcome, replaceable)
                    .await,
            ),
        }
    }

    /// Gives the key up: forgets the record if `claim` still holds it without an outcome
    /// (its write was never sent), so the next call under the key is a new attempt.
    /// Whether there was one to forget.
    pub async fn idem_release(
        &self,
        rpc: &str,
        request_id: &str,
        claim: &ClaimId,
    ) -> Result<bool, Error> {
        match &*self.inner {
            Inner::Memory(m) => {
                m.fault_before()?;
                Ok(m.idem_release(&(rpc.to_owned(), request_id.to_owned()), claim))
            }
            Inner::Sql(s) => observed(s.idem_release(rpc, request_id, claim).await),
        }
    }

    /// The keys request fingerprints are signed with, with their ids, current first:
    /// derived from the store's keys (the same on every replica that has them); per
    /// process for `memory`.
    pub fn fingerprint_keys(&self) -> Vec<(String, [u8; 32])> {
        match &*self.inner {
            Inner::Memory(m) => vec![m.fingerprint_key()],
            Inner::Sql(s) => s.keys().mac_keys(),
        }
    }

    /// The memory backend's switches for failing like a store that is down, or one
    /// whose answers get lost (unit tests only).
    #[cfg(test)]
    pub(crate) fn faults(&self) -> &memory::Faults {
        match &*self.inner {
            Inner::Memory(m) => &m.faults,
            Inner::Sql(_) => panic!("faults are the memory backend's"),
        }
    }

    /// Sends `payload` (under [`MAX_NOTIFICATION`] bytes) to every replica listening on
    /// `channel`: PostgreSQL's NOTIFY; nothing for a store of one replica.
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<(), Error> {
        match &*self.inner {
            Inner::Memory(_) => Ok(()),
            Inner::Sql(s) => observed(s.publish(channel, payload).await),
        }
    }

    /// What other replicas publish on `channel`; `None` for a store of one replica.
    pub async fn subscribe(&self, channel: &str) -> Result<Option<Notifications>, Error> {
        match &*self.inner {
            Inner::Memory(_) => Ok(None),
            Inner::Sql(s) => s.subscribe(channel).await,
        }
    }

    /// One replica's tick of the shard leases (see `sql/leases.rs`); `None` for a store
    /// of one replica, which polls all it watches.
    pub async fn fleet_tick(&self, plan: TickPlan<'_>) -> Result<Option<Lease>, Error> {
        match &*self.inner {
            Inner::Memory(_) => Ok(None),
            Inner::Sql(s) => observed(s.fleet_tick(plan).await),
        }
    }

    /// Marks `targets` (with their shards) watched here for `interest`.
    pub async fn fleet_watching(
        &self,
        targets: &[String],
        shards: &[i32],
        interest: Duration,
    ) -> Result<(), Error> {
        match &*self.inner {
            Inner::Memory(_) => Ok(()),
            Inner::Sql(s) => observed(s.fleet_watching(targets, shards, interest).await),
        }
    }

    /// Gives back `replica`'s leases at once (it stops).
    pub async fn fleet_leave(&self, replica: &str) -> Result<(), Error> {
        match &*self.inner {
            Inner::Memory(_) => Ok(()),
            Inner::Sql(s) => observed(s.fleet_leave(replica).await),
        }
    }

    /// Keeps `body` as `target`'s latest observation for the other replicas and tells
    /// them, `payload(version)` on `channel`, in one transaction; its version (`None` for
    /// a store of one replica).
    pub async fn put_observation(
        &self,
        target: &str,
        body: &str,
        channel: &str,
        payload: &(dyn Fn(i64) -> String + Sync),
    ) -> Result<Option<i64>, Error> {
        match &*self.inner {
            Inner::Memory(_) => Ok(None),
            Inner::Sql(s) => observed(s.put_observation(target, body, channel, payload).await),
        }
    }

    /// The versions of the latest observations kept for those of `targets` that have one.
    pub async fn observation_versions(
        &self,
        targets: &[String],
    ) -> Result<Vec<(String, i64)>, Error> {
        match &*self.inner {
            Inner::Memory(_) => Ok(Vec::new()),
            Inner::Sql(s) => observed(s.observation_versions(targets).await),
        }
    }

    /// Takes the fleet-wide turn `name` for `holder` for `lease`, or renews it: whether
    /// `holder` has it (another holds it until its lease lapses). One replica's stores
    /// have no one else to take turns with: always `true`.
    pub async fn take_turn(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<bool, Error> {
        match &*self.inner {
            Inner::Memory(_) => Ok(true),
            Inner::Sql(s) => observed(s.take_turn(name, holder, lease).await),
        }
    }

    /// Gives the turn back (if `holder` has it).
    pub async fn give_turn(&self, name: &str, holder: &str) -> Result<(), Error> {
        match &*self.inner {
            Inner::Memory(_) => Ok(()),
            Inner::Sql(s) => observed(s.give_turn(name, holder).await),
        }
    }

    /// The latest observations kept for those of `targets` that have one.
    pub async fn observations(&self, targets: &[String]) -> Result<Vec<Observation>, Error> {
        match &*self.inner {
            Inner::Memory(_) => Ok(Vec::new()),
            Inner::Sql(s) => observed(s.observations(targets).await),
        }
    }

    /// Re-encrypts every token under the current key (`store rekey`). Safe while the
    /// service runs: a token replaced meanwhile is left as it is. `memory` has nothing
    /// at rest: nothing to do.
    pub async fn rekey(&self) -> Result<Rekeyed, Error> {
        match &*self.inner {
            Inner::Memory(_) => Ok(Rekeyed::default()),
            Inner::Sql(s) => s.rekey().await,
        }
    }

    /// Closes the pool: waits for queries in flight, then disconnects.
    pub async fn close(&self) {
        if let Inner::Sql(s) = &*self.inner {
            s.close().await;
        }
    }
}

/// The longest wait between two attempts to reach the store.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// The waits between attempts to reach the store: 0.5 s doubling to 15 s, each up to
/// twice as long (jitter), so at most [`MAX_WAIT`].
fn backoff() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(MAX_WAIT / 2)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Whether the last query found the store down (one store per process).
static DOWN: AtomicBool = AtomicBool::new(false);
/// Told when a query finds the store down ([`Store::keep_watch`] waits for it).
static WENT_DOWN: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Says (a gauge `waba_store_up`, a log line on each change) whether the store answers:
/// an error reaching the database marks it down, the next answer up again.
fn observed<T>(result: Result<T, Error>) -> Result<T, Error> {
    // A transaction PostgreSQL rolled back (a deadlock, a serialization failure) was
    // answered: the store is up, and the caller tries again.
    let down = matches!(&result, Err(e @ (Error::Database(_) | Error::Connect { .. })) if !e.is_conflict());
    if DOWN.swap(down, Ordering::Relaxed) != down {
        match &result {
            Err(e) => {
                WENT_DOWN.notify_one();
                tracing::error!(error = %e, "the store is down: writes that need it are refused")
            }
            Ok(_) => tracing::info!("the store answers again"),
        }
    }
    metrics::gauge!("waba_store_up").set(if down { 0.0 } else { 1.0 });
    result
}
