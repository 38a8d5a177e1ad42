//! The in-process backend (`WABA_STORE=memory`, the sandbox's default): the same
//! behaviour as the SQL ones, for tests and demos, with nothing kept across a restart.
//!
//! One `std::sync::Mutex` over everything: every operation is a few map operations and
//! never awaits while holding it, so a plain mutex is cheaper than an async one and a
//! whole operation (a compare-and-set, an upsert of many numbers) is atomic for free.
//! Tokens stay in `SecretString`s: nothing is at rest, so nothing is encrypted. A
//! `BTreeMap` keeps customers in WABA id order, as the SQL backends page them.

use super::MAX_PAGE;
use super::types::{
    AttemptId, Cas, Change, Claim, ClaimId, Customer, CustomerPage, Fingerprint, IdemRecord,
    LedgerView, Progress, Version,
};
use crate::model::TokenState;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub(crate) struct Memory {
    state: Mutex<State>,
    /// Signs request fingerprints: nothing outlives the process, so neither does it.
    fingerprint_key: [u8; 32],
    /// The idempotency records' clock: the wall clock when the store was made, moved on
    /// by tokio's, so a test that pauses time sees leases lapse and outcomes age with it.
    origin: (DateTime<Utc>, tokio::time::Instant),
    #[cfg(test)]
    pub(crate) faults: Faults,
}

/// The id the memory backend's fingerprint key goes by.
const FINGERPRINT_KEY_ID: &str = "memory";

impl Default for Memory {
    fn default() -> Self {
        Memory {
            state: Mutex::default(),
            fingerprint_key: rand::random(),
            origin: (Utc::now(), tokio::time::Instant::now()),
            #[cfg(test)]
            faults: Faults::default(),
        }
    }
}

/// How a unit test makes the memory backend fail as a database can.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// While set, every idempotency operation fails without doing anything (down).
    pub down: std::sync::atomic::AtomicBool,
    /// The next this many claims are made, and then answer an error (the reply lost).
    pub lost_claim_replies: std::sync::atomic::AtomicU32,
}

impl Record {
    fn seen(&self, now: DateTime<Utc>) -> IdemRecord {
        IdemRecord {
            fingerprint: self.fingerprint.clone(),
            outcome: self.outcome.clone(),
            outcome_age: self
                .finished_at
                .map(|at| (now - at).to_std().unwrap_or_default()),
            lease_alive: self.outcome.is_none() && self.lease_until.is_some_and(|l| l > now),
        }
    }
}

#[derive(Default)]
struct State {
    customers: BTreeMap<String, Row>,
    numbers: HashMap<String, String>,
    /// (number, limit) → its attempts (id, when) and Meta's block.
    ledger: HashMap<(String, String), Counted>,
    /// (rpc, request_id) → its idempotency record.
    records: HashMap<(String, String), Record>,
}

struct Record {
    fingerprint: Fingerprint,
    claim: ClaimId,
    outcome: Option<String>,
    replaceable: bool,
    lease_until: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

fn before(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[derive(Default)]
struct Counted {
    attempts: Vec<(AttemptId, DateTime<Utc>)>,
    blocked_until: Option<DateTime<Utc>>,
}

impl Counted {
    fn view(&mut self, now: DateTime<Utc>, window: Duration) -> LedgerView {
        let since = now - chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
        self.attempts.retain(|(_, at)| *at > since);
        if self.blocked_until.is_some_and(|b| b <= now) {
            self.blocked_until = None;
        }
        LedgerView {
            now,
            attempts: self.attempts.iter().map(|(_, at)| *at).collect(),
            blocked_until: self.blocked_until,
        }
    }
}

struct Row {
    customer: Customer,
    token: SecretString,
    /// When its token's check was last claimed.
    checked_at: Option<tokio::time::Instant>,
}

impl Memory {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves maps that are still whole
        // (every change is a single insert or field write): keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn put_token(
        &self,
        waba_id: &str,
        token: &SecretString,
        onboarding: Option<&str>,
    ) -> Customer {
        let progress = Progress::exchanged(onboarding.is_some());
        let onboarding = onboarding.map(str::to_owned);
        let now = Utc::now();
        let mut state = self.state();
        let row = state
            .customers
            .entry(waba_id.to_owned())
            .and_modify(|row| {
                let c = &mut row.customer;
                c.token_state = TokenState::Unchecked;
                c.token_expires_at = None;
                c.progress = progress.clone();
                c.onboarding_request_id = onboarding.clone();
                c.version = Version(c.version.0 + 1);
                c.updated_at = now;
                row.token = token.clone();
                row.checked_at = None;
            })
            .or_insert_with(|| Row {
                customer: Customer {
                    waba_id: waba_id.to_owned(),
                    business_id: None,
                    token_state: TokenState::Unchecked,
                    token_expires_at: None,
                    webhooks_subscribed: false,
                    progress,
                    onboarded_at: None,
                    created_at: now,
                    updated_at: now,
                    version: Version(1),
                    onboarding_request_id: onboarding,
                },
                token: token.clone(),
                checked_at: None,
            });
        row.customer.clone()
    }

    pub(crate) fn customer(&self, waba_id: &str) -> Option<Customer> {
        self.state()
            .customers
            .get(waba_id)
            .map(|r| r.customer.clone())
    }

    pub(crate) fn token(&self, waba_id: &str) -> Option<SecretString> {
        self.state().customers.get(waba_id).map(|r| r.token.clone())
    }

    pub(crate) fn list(&self, limit: NonZeroU32, after: Option<&str>) -> CustomerPage {
        use std::ops::Bound::{Excluded, Unbounded};
        let limit = limit.get().min(MAX_PAGE) as usize;
        let state = self.state();
        let start = after.map_or(Unbounded, |a| Excluded(a.to_owned()));
        let mut rows = state.customers.range((start, Unbounded));
        let customers: Vec<Customer> = rows
            .by_ref()
            .take(limit)
            .map(|(_, r)| r.customer.clone())
            .collect();
        let next = match rows.next() {
            Some(_) => customers.last().map(|c| c.waba_id.clone()),
            None => None,
        };
        CustomerPage { customers, next }
    }

    pub(crate) fn claim_token_check(&self, waba_id: &str, every: std::time::Duration) -> bool {
        let now = tokio::time::Instant::now();
        let mut state = self.state();
        let Some(row) = state.customers.get_mut(waba_id) else {
            return false;
        };
        if row.checked_at.is_some_and(|at| now < at + every) {
            return false;
        }
        row.checked_at = Some(now);
        true
    }

    pub(crate) fn delete(&self, waba_id: &str) -> bool {
        self.state().customers.remove(waba_id).is_some()
    }

    pub(crate) fn update(&self, waba_id: &str, expected: Option<Version>, change: &Change) -> Cas {
        let mut state = self.state();
        let Some(row) = state.customers.get_mut(waba_id) else {
            return Cas::Missing;
        };
        let c = &mut row.customer;
        if expected.is_some_and(|v| v != c.version) {
            return Cas::Stale;
        }
        let now = Utc::now();
        match change {
            Change::TokenState(s) => c.token_state = *s,
            Change::TokenChecked {
                business_id,
                expires_at,
            } => {
                c.token_state = TokenState::Active;
                if business_id.is_some() {
                    c.business_id = business_id.clone();
                }
                c.token_expires_at = *expires_at;
            }
            Change::WebhooksSubscribed(on) => c.webhooks_subscribed = *on,
            Change::StepDone(_) | Change::StepFailed(_) => c.progress.apply(change),
            Change::Onboarded => {
                c.onboarded_at.get_or_insert(now);
            }
        }
        c.version = Version(c.version.0 + 1);
        c.updated_at = now;
        Cas::Applied(c.clone())
    }

    pub(crate) fn index_numbers(&self, waba_id: &str, numbers: &[String]) {
        let mut state = self.state();
        for number in numbers {
            state.numbers.insert(number.clone(), waba_id.to_owned());
        }
    }

    pub(crate) fn waba_of(&self, number: &str) -> Option<String> {
        self.state().numbers.get(number).cloned()
    }

    pub(crate) fn numbers_of(&self, waba_id: &str) -> Vec<String> {
        let mut numbers: Vec<String> = self
            .state()
            .numbers
            .iter()
            .filter(|(_, w)| *w == waba_id)
            .map(|(n, _)| n.clone())
            .collect();
        numbers.sort();
        numbers
    }

    /// Atomic under the one mutex, as a transaction is on SQL.
    pub(crate) fn ledger_spend(
        &self,
        number: &str,
        kind: &str,
        window: Duration,
        decide: impl FnOnce(&LedgerView) -> bool,
    ) -> (LedgerView, Option<AttemptId>) {
        let now = Utc::now();
        let mut state = self.state();
        let counted = state
            .ledger
            .entry((number.to_owned(), kind.to_owned()))
            .or_default();
        let mut view = counted.view(now, window);
        if !decide(&view) {
            return (view, None);
        }
        let id = AttemptId::new();
        counted.attempts.push((id.clone(), now));
        view.attempts.push(now);
        (view, Some(id))
    }

    pub(crate) fn ledger_refund(&self, attempt: &AttemptId) {
        for counted in self.state().ledger.values_mut() {
            counted.attempts.retain(|(id, _)| id != attempt);
        }
    }

    pub(crate) fn ledger_block(&self, number: &str, kind: &str, for_: Duration) {
        let until = Utc::now() + chrono::Duration::from_std(for_).unwrap_or(chrono::Duration::MAX);
        let mut state = self.state();
        let counted = state
            .ledger
            .entry((number.to_owned(), kind.to_owned()))
            .or_default();
        if counted.blocked_until.is_none_or(|b| b < until) {
            counted.blocked_until = Some(until);
        }
    }

    pub(crate) fn fingerprint_key(&self) -> (String, [u8; 32]) {
        (FINGERPRINT_KEY_ID.to_owned(), self.fingerprint_key)
    }

    /// Now, for idempotency records (see `origin`).
    fn clock(&self) -> DateTime<Utc> {
        let (wall, at) = self.origin;
        after(wall, tokio::time::Instant::now().duration_since(at))
    }

    /// Fails as a store that is down would, when a test says so.
    pub(crate) fn fault_before(&self) -> Result<(), super::Error> {
        #[cfg(test)]
        if self.faults.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(sqlx::Error::PoolTimedOut.into());
        }
        Ok(())
    }

    /// Loses a claim's reply, when a test says so: the claim is made all the same.
    pub(crate) fn fault_after_claim(&self) -> Result<(), super::Error> {
        #[cfg(test)]
        {
            use std::sync::atomic::Ordering::SeqCst;
            let lost = &self.faults.lost_claim_replies;
            if lost
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
                return Err(sqlx::Error::Io(reset).into());
            }
        }
        Ok(())
    }

    pub(crate) fn idem_claim(
        &self,
        key: (String, String),
        fingerprint: &Fingerprint,
        claim: &ClaimId,
        lease: Duration,
        remember: Duration,
    ) -> Claim {
        let now = self.clock();
        let mut state = self.state();
        let free = state.records.get(&key).is_none_or(|r| {
            r.created_at <= before(now, remember)
                || r.replaceable
                || (r.claim == *claim && r.outcome.is_none())
        });
        if free {
            let record = Record {
                fingerprint: fingerprint.clone(),
                claim: claim.clone(),
                outcome: None,
                replaceable: false,
                lease_until: Some(after(now, lease)),
                created_at: now,
                finished_at: None,
            };
            state.records.insert(key, record);
            return Claim::Won(claim.clone());
        }
        Claim::Held(state.records[&key].seen(now))
    }

    pub(crate) fn idem_peek(
        &self,
        key: &(String, String),
        remember: Duration,
    ) -> Option<IdemRecord> {
        let now = self.clock();
        let state = self.state();
        let record = state
            .records
            .get(key)
            .filter(|r| r.created_at > before(now, remember))?;
        Some(record.seen(now))
    }

    pub(crate) fn idem_renew(
        &self,
        key: &(String, String),
        claim: &ClaimId,
        lease: Duration,
    ) -> bool {
        let now = self.clock();
        match self.state().records.get_mut(key) {
            Some(r) if r.claim == *claim && r.outcome.is_none() => {
                r.lease_until = Some(after(now, lease));
                true
            }
            _ => false,
        }
    }

    pub(crate) fn idem_finish(
        &self,
        key: &(String, String),
        claim: &ClaimId,
        outcome: &str,
        replaceable: bool,
    ) {
        let now = self.clock();
        if let Some(r) = self.state().records.get_mut(key)
            && r.claim == *claim
        {
            r.outcome = Some(outcome.to_owned());
            r.replaceable = replaceable;
            r.lease_until = None;
            r.finished_at = Some(now);
        }
    }

    pub(crate) fn idem_release(&self, key: &(String, String), claim: &ClaimId) -> bool {
        let mut state = self.state();
        let ours = state
            .records
            .get(key)
            .is_some_and(|r| r.claim == *claim && r.outcome.is_none());
        if ours {
            state.records.remove(key);
        }
        ours
    }

    pub(crate) fn ledger_view(&self, number: &str, kind: &str, window: Duration) -> LedgerView {
        let now = Utc::now();
        let mut state = self.state();
        match state.ledger.get_mut(&(number.to_owned(), kind.to_owned())) {
            Some(counted) => counted.view(now, window),
            None => LedgerView {
                now,
                attempts: Vec::new(),
                blocked_until: None,
            },
        }
    }
}
