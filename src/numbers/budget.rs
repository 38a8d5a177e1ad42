//! Guards on Meta's per-number limits: the service counts its own attempts in a moving
//! window and refuses, without calling Meta, before Meta would block the number.
//!
//! - Register and deregister together: 10 per number per 72 hours; the 11th blocks the
//!   number for 72 hours (133016). The guard keeps `reserve` attempts for a person.
//! - Display-name changes: 10 per number per 30 days.
//!
//! Every attempt sent counts, whatever Meta answered: Meta counts requests. With a store
//! the count is the store's ([`crate::store::Store::ledger_spend`]): one transaction per
//! attempt, shared by every replica on it and kept across restarts (not with `memory`),
//! and this replica's memory mirrors what the store said at its last attempt on the
//! number (what snapshots show as `register_budget`). A store that cannot answer refuses
//! the attempt ([`Error::StoreUnavailable`]): never a guess that could spend twice.
//! Without a store the count is this process's alone.

use super::Error;
use crate::model::RegisterBudget;
use crate::store::{AttemptId, LedgerView, Store};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Which of Meta's limits a guard spares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Limit {
    /// Register and deregister attempts.
    Register,
    /// Display-name change requests.
    DisplayName,
}

/// A guard's refusal: no call was made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    pub limit: Limit,
    pub phone_number_id: String,
    /// When an attempt will be allowed again.
    pub retry_after: Duration,
    /// Attempts counted in the window, and Meta's limit.
    pub used: u32,
    pub allowed: u32,
    pub window: Duration,
    /// Meta itself blocked the number (133016), rather than the count running out.
    pub blocked_by_meta: bool,
}

pub const REGISTER_LIMIT: u32 = 10;
pub const REGISTER_WINDOW: Duration = Duration::from_secs(72 * 3600);
pub const DISPLAY_NAME_LIMIT: u32 = 10;
pub const DISPLAY_NAME_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);
/// Above this many numbers tracked, numbers with nothing left to remember are swept.
const SWEEP_ABOVE: usize = 10_000;

/// A moment on both clocks: the monotonic one decides, the wall clock is what people
/// are told (taken once, so a budget read twice says the same).
#[derive(Debug, Clone, Copy)]
struct Moment {
    at: Instant,
    wall: DateTime<Utc>,
}

impl Moment {
    fn now() -> Self {
        Moment {
            at: Instant::now(),
            wall: Utc::now(),
        }
    }

    fn plus(self, d: Duration) -> Self {
        Moment {
            at: self.at + d,
            wall: self.wall + chrono::Duration::from_std(d).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Default)]
struct Count {
    /// When each attempt in the window was sent, oldest first.
    attempts: VecDeque<Moment>,
    /// Meta blocked the number until then.
    blocked_until: Option<Moment>,
}

impl Count {
    fn forget_before(&mut self, now: Instant, window: Duration) {
        while self.attempts.front().is_some_and(|a| a.at + window <= now) {
            self.attempts.pop_front();
        }
        if self.blocked_until.is_some_and(|until| until.at <= now) {
            self.blocked_until = None;
        }
    }

    fn is_empty(&self) -> bool {
        self.attempts.is_empty() && self.blocked_until.is_none()
    }

    /// When an attempt is allowed again with `reserve` kept back, if not now.
    fn refused_until(&self, allowed: u32, reserve: u32, window: Duration) -> Option<Moment> {
        let used = self.attempts.len() as u32;
        if used + reserve < allowed {
            return None;
        }
        // Once enough attempts have left the window.
        let freeing = (used + reserve + 1 - allowed) as usize;
        Some(self.attempts[freeing.min(self.attempts.len()) - 1].plus(window))
    }
}

/// An attempt counted by [`Ledger::spend`], to give back if it was never sent.
#[derive(Debug, Clone, Copy)]
pub struct Spent {
    at: Instant,
}

/// An attempt counted by [`Ledger::count`]: here, or in the store.
#[derive(Debug, Clone)]
pub enum Counted {
    Here(Spent),
    Shared(AttemptId),
}

#[derive(Debug)]
pub struct Ledger {
    limit: Limit,
    allowed: u32,
    window: Duration,
    /// Attempts kept back: refused once only this many are left.
    reserve: u32,
    counts: Mutex<HashMap<String, Count>>,
    /// Where the count is kept when there is a store: this process mirrors it.
    shared: Option<Store>,
}

impl Ledger {
    /// A ledger counted in this process alone.
    pub fn new(limit: Limit, reserve: u32) -> Self {
        Self::with_store(limit, reserve, None)
    }

    /// A ledger counted in `store` when there is one.
    pub fn with_store(limit: Limit, reserve: u32, shared: Option<Store>) -> Self {
        let (allowed, window) = match limit {
            Limit::Register => (REGISTER_LIMIT, REGISTER_WINDOW),
            Limit::DisplayName => (DISPLAY_NAME_LIMIT, DISPLAY_NAME_WINDOW),
        };
        Ledger {
            limit,
            allowed,
            window,
            // At least one attempt stays usable, or nothing could ever be sent.
            reserve: reserve.min(allowed - 1),
            counts: Mutex::default(),
            shared,
        }
    }

    /// The limit's name in the store.
    fn kind(&self) -> &'static str {
        match self.limit {
            Limit::Register => "register",
            Limit::DisplayName => "display_name",
        }
    }

    /// Counts an attempt about to be sent, or refuses it ([`Error::Refused`]), in the
    /// store when there is one (atomic across replicas), else here.
    pub async fn count(&self, id: &str, spend_reserve: bool) -> Result<Counted, Error> {
        let refused = |r| Error::Refused(Box::new(r));
        let Some(store) = &self.shared else {
            return self
                .spend(id, spend_reserve)
                .map(Counted::Here)
                .map_err(refused);
        };
        let reserve = if spend_reserve { 0 } else { self.reserve };
        let mut refusal = None;
        let decide = |view: &LedgerView| {
            refusal = self.refusal(id, view, reserve);
            refusal.is_none()
        };
        let (view, attempt) = store
            .ledger_spend(id, self.kind(), self.window, decide)
            .await
            .map_err(|e| Error::StoreUnavailable(e.to_string()))?;
        self.mirror(id, &view);
        match (attempt, refusal) {
            (Some(attempt), _) => Ok(Counted::Shared(attempt)),
            (None, Some(refusal)) => Err(refused(refusal)),
            (None, None) => Err(Error::StoreUnavailable(
                "the ledger counted nothing and refused nothing".into(),
            )),
        }
    }

    /// Gives back an attempt that was never sent.
    pub async fn uncount(&self, id: &str, counted: Counted) {
        match (counted, &self.shared) {
            (Counted::Here(spent), _) => self.refund(id, spent),
            (Counted::Shared(attempt), Some(store)) => {
                if let Err(e) = store.ledger_refund(&attempt).await {
                    // Counted once too often: it leaves the window in its time.
                    tracing::warn!(phone_number_id = id, error = %e, "cannot give back an attempt that was never sent");
                }
                if let Ok(view) = store.ledger_view(id, self.kind(), self.window).await {
                    self.mirror(id, &view);
                }
            }
            (Counted::Shared(_), None) => {}
        }
    }

    /// Meta blocked the number (133016): here, and in the store for every replica.
    pub async fn note_block(&self, id: &str, for_: Duration) {
        self.block(id, for_);
        if let Some(store) = &self.shared
            && let Err(e) = store.ledger_block(id, self.kind(), for_).await
        {
            tracing::warn!(phone_number_id = id, error = %e, "cannot record Meta's block in the store");
        }
    }

    /// Why the store's count refuses an attempt now, if it does.
    fn refusal(&self, id: &str, view: &LedgerView, reserve: u32) -> Option<Refusal> {
        let used = view.attempts.len() as u32;
        let after = |until: DateTime<Utc>| (until - view.now).to_std().unwrap_or_default();
        let refusal = |retry_after, blocked_by_meta| Refusal {
            limit: self.limit,
            phone_number_id: id.to_owned(),
            retry_after,
            used,
            allowed: self.allowed,
            window: self.window,
            blocked_by_meta,
        };
        if let Some(until) = view.blocked_until {
            return Some(refusal(after(until), true));
        }
        if used + reserve < self.allowed {
            return None;
        }
        let freeing = (used + reserve + 1 - self.allowed) as usize;
        let oldest = view.attempts[freeing.min(view.attempts.len()) - 1];
        let window = chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::MAX);
        Some(refusal(after(oldest + window), false))
    }

    /// Takes the store's count of the number as this process's.
    fn mirror(&self, id: &str, view: &LedgerView) {
        let here = Moment::now();
        let moment = |wall: DateTime<Utc>| {
            let ago = (view.now - wall).to_std().unwrap_or_default();
            let ahead = (wall - view.now).to_std().unwrap_or_default();
            // Checked: an attempt older than this host's uptime has no Instant of its own.
            let at = here.at.checked_sub(ago).unwrap_or(here.at) + ahead;
            Moment { at, wall }
        };
        let count = Count {
            attempts: view.attempts.iter().map(|w| moment(*w)).collect(),
            blocked_until: view.blocked_until.map(moment),
        };
        self.lock().insert(id.to_owned(), count);
    }

    /// Counts an attempt about to be sent, or refuses it: atomic, so concurrent attempts
    /// cannot both take the last one. `spend_reserve`: a person's deliberate attempt,
    /// which may use the attempts kept back (never Meta's own block).
    pub fn spend(&self, id: &str, spend_reserve: bool) -> Result<Spent, Refusal> {
        let now = Moment::now();
        let mut counts = self.lock();
        if counts.len() > SWEEP_ABOVE {
            counts.retain(|_, c| {
                c.forget_before(now.at, self.window);
                !c.is_empty()
            });
        }
        let count = counts.entry(id.to_owned()).or_default();
        count.forget_before(now.at, self.window);
        let refused = |until: Moment, blocked_by_meta| Refusal {
            limit: self.limit,
            phone_number_id: id.to_owned(),
            retry_after: until.at - now.at,
            used: count.attempts.len() as u32,
            allowed: self.allowed,
            window: self.window,
            blocked_by_meta,
        };
        if let Some(until) = count.blocked_until {
            return Err(refused(until, true));
        }
        let reserve = if spend_reserve { 0 } else { self.reserve };
        if let Some(until) = count.refused_until(self.allowed, reserve, self.window) {
            return Err(refused(until, false));
        }
        count.attempts.push_back(now);
        Ok(Spent { at: now.at })
    }

    /// Gives back an attempt that was never sent (no token, too late to send).
    pub fn refund(&self, id: &str, spent: Spent) {
        if let Some(count) = self.lock().get_mut(id)
            && let Some(i) = count.attempts.iter().rposition(|a| a.at == spent.at)
        {
            count.attempts.remove(i);
        }
    }

    /// Meta said the number is blocked (133016): refused here until `for_` has passed.
    pub fn block(&self, id: &str, for_: Duration) {
        let until = Moment::now().plus(for_);
        let mut counts = self.lock();
        let count = counts.entry(id.to_owned()).or_default();
        if count.blocked_until.is_none_or(|b| b.at < until.at) {
            count.blocked_until = Some(until);
        }
    }

    /// The number's budget as counted now.
    pub fn budget(&self, id: &str) -> RegisterBudget {
        let now = Instant::now();
        let mut counts = self.lock();
        let (attempts_left, blocked_until) = match counts.get_mut(id) {
            Some(count) => {
                count.forget_before(now, self.window);
                let left = self.allowed.saturating_sub(count.attempts.len() as u32);
                match count.blocked_until {
                    // Meta blocks the number: nothing is left, whatever was counted.
                    Some(until) => (0, Some(until)),
                    None => (
                        left,
                        count.refused_until(self.allowed, self.reserve, self.window),
                    ),
                }
            }
            None => (self.allowed, None),
        };
        RegisterBudget {
            attempts_left,
            reserve: self.reserve,
            blocked_until: blocked_until.map(|m| m.wall),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Count>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn refuses_once_only_the_reserve_is_left_until_the_oldest_attempt_leaves() {
        let ledger = Ledger::new(Limit::Register, 1);
        for _ in 0..9 {
            ledger.spend("1", false).unwrap();
            tokio::time::advance(Duration::from_secs(3600)).await;
        }
        let refusal = ledger.spend("1", false).unwrap_err();
        assert_eq!((refusal.used, refusal.allowed), (9, 10));
        assert!(!refusal.blocked_by_meta);
        // The first attempt was 9 hours ago: it leaves the window in 63 hours.
        assert_eq!(refusal.retry_after, Duration::from_secs(63 * 3600));
        let budget = ledger.budget("1");
        assert_eq!((budget.attempts_left, budget.reserve), (1, 1));
        assert!(budget.blocked_until.is_some());
        ledger
            .spend("2", false)
            .expect("other numbers have their own budget");

        tokio::time::advance(refusal.retry_after).await;
        ledger
            .spend("1", false)
            .expect("the oldest attempt left the window");
        assert_eq!(ledger.budget("1").attempts_left, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn metas_block_is_kept_until_it_ends() {
        let ledger = Ledger::new(Limit::Register, 0);
        ledger.block("1", REGISTER_WINDOW);
        let refusal = ledger.spend("1", false).unwrap_err();
        assert!(refusal.blocked_by_meta);
        assert_eq!(refusal.retry_after, REGISTER_WINDOW);
        assert_eq!(
            ledger.budget("1").attempts_left,
            0,
            "Meta's block leaves nothing"
        );
        assert!(
            ledger.spend("1", true).is_err(),
            "not even a person's deliberate attempt"
        );
        tokio::time::advance(REGISTER_WINDOW).await;
        ledger.spend("1", false).unwrap();
        assert_eq!(ledger.budget("1").blocked_until, None);
    }

    #[test]
    fn the_mirror_takes_the_stores_count_even_of_attempts_older_than_this_host() {
        let ledger = Ledger::new(Limit::DisplayName, 0);
        let now = Utc::now();
        let view = LedgerView {
            now,
            // Older than any test machine's uptime may be: no Instant can say it.
            attempts: vec![now - chrono::Duration::days(29), now],
            blocked_until: None,
        };
        ledger.mirror("1", &view);
        assert_eq!(ledger.budget("1").attempts_left, 8);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_reserve_all_ten_may_be_spent() {
        let ledger = Ledger::new(Limit::DisplayName, 0);
        for _ in 0..10 {
            ledger.spend("1", false).unwrap();
        }
        let refusal = ledger.spend("1", false).unwrap_err();
        assert_eq!(refusal.retry_after, DISPLAY_NAME_WINDOW);
        assert_eq!(ledger.budget("1").attempts_left, 0);
    }
}
