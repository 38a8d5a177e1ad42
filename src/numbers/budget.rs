//! Guards on Meta's per-number limits: the service counts its own attempts in a moving
//! window and refuses, without calling Meta, before Meta would block the number.
//!
//! - Register and deregister together: 10 per number per 72 hours; the 11th blocks the
//!   number for 72 hours (133016). The guard keeps `reserve` attempts for a person.
//! - Display-name changes: 10 per number per 30 days.
//!
//! Every attempt sent counts, whatever Meta answered: Meta counts requests. Kept in
//! memory for now (a restart forgets the count).

use crate::model::RegisterBudget;
use chrono::Utc;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Which of Meta's limits a guard spares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Register and deregister attempts.
    Register,
    /// Display-name change requests.
    DisplayName,
}

/// A guard's refusal: no call was made.
#[derive(Debug, Clone, PartialEq, Eq)]
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

#[derive(Debug, Default)]
struct Count {
    /// When each attempt in the window was sent, oldest first.
    attempts: VecDeque<Instant>,
    /// Meta blocked the number until then.
    blocked_until: Option<Instant>,
}

impl Count {
    fn forget_before(&mut self, now: Instant, window: Duration) {
        while self.attempts.front().is_some_and(|&at| at + window <= now) {
            self.attempts.pop_front();
        }
        if self.blocked_until.is_some_and(|until| until <= now) {
            self.blocked_until = None;
        }
    }

    fn is_empty(&self) -> bool {
        self.attempts.is_empty() && self.blocked_until.is_none()
    }
}

#[derive(Debug)]
pub struct Ledger {
    limit: Limit,
    allowed: u32,
    window: Duration,
    /// Attempts kept back: refused once only this many are left.
    reserve: u32,
    counts: Mutex<HashMap<String, Count>>,
}

impl Ledger {
    pub fn new(limit: Limit, reserve: u32) -> Self {
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
        }
    }

    /// Counts an attempt about to be sent, or refuses it: atomic, so concurrent attempts
    /// cannot both take the last one.
    pub fn spend(&self, id: &str) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut counts = self.lock();
        if counts.len() > SWEEP_ABOVE {
            counts.retain(|_, c| {
                c.forget_before(now, self.window);
                !c.is_empty()
            });
        }
        let count = counts.entry(id.to_owned()).or_default();
        count.forget_before(now, self.window);
        let used = count.attempts.len() as u32;
        let refused = |retry_after: Duration, blocked_by_meta| Refusal {
            limit: self.limit,
            phone_number_id: id.to_owned(),
            retry_after,
            used,
            allowed: self.allowed,
            window: self.window,
            blocked_by_meta,
        };
        if let Some(until) = count.blocked_until {
            return Err(refused(until - now, true));
        }
        if used + self.reserve >= self.allowed {
            // Allowed again once enough attempts have left the window.
            let freeing = (used + self.reserve + 1 - self.allowed) as usize;
            let at = count.attempts[freeing.min(count.attempts.len()) - 1] + self.window;
            return Err(refused(at - now, false));
        }
        count.attempts.push_back(now);
        Ok(())
    }

    /// Meta said the number is blocked (133016): refused here until `for_` has passed.
    pub fn block(&self, id: &str, for_: Duration) {
        let until = Instant::now() + for_;
        let mut counts = self.lock();
        let count = counts.entry(id.to_owned()).or_default();
        count.blocked_until = Some(count.blocked_until.map_or(until, |u| u.max(until)));
    }

    /// The number's budget as counted now.
    pub fn budget(&self, id: &str) -> RegisterBudget {
        let now = Instant::now();
        let mut counts = self.lock();
        let (used, blocked_until) = match counts.get_mut(id) {
            Some(count) => {
                count.forget_before(now, self.window);
                let used = count.attempts.len() as u32;
                let guard_until = (used + self.reserve >= self.allowed).then(|| {
                    let freeing = (used + self.reserve + 1 - self.allowed) as usize;
                    count.attempts[freeing.min(count.attempts.len()) - 1] + self.window
                });
                (used, count.blocked_until.max(guard_until))
            }
            None => (0, None),
        };
        RegisterBudget {
            attempts_left: self.allowed.saturating_sub(used),
            reserve: self.reserve,
            blocked_until: blocked_until.map(|until| {
                Utc::now() + chrono::Duration::from_std(until - now).unwrap_or_default()
            }),
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
            ledger.spend("1").unwrap();
            tokio::time::advance(Duration::from_secs(3600)).await;
        }
        let refusal = ledger.spend("1").unwrap_err();
        assert_eq!((refusal.used, refusal.allowed), (9, 10));
        assert!(!refusal.blocked_by_meta);
        // The first attempt was 9 hours ago: it leaves the window in 63 hours.
        assert_eq!(refusal.retry_after, Duration::from_secs(63 * 3600));
        let budget = ledger.budget("1");
        assert_eq!((budget.attempts_left, budget.reserve), (1, 1));
        assert!(budget.blocked_until.is_some());
        ledger
            .spend("2")
            .expect("other numbers have their own budget");

        tokio::time::advance(refusal.retry_after).await;
        ledger
            .spend("1")
            .expect("the oldest attempt left the window");
        assert_eq!(ledger.budget("1").attempts_left, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn metas_block_is_kept_until_it_ends() {
        let ledger = Ledger::new(Limit::Register, 0);
        ledger.block("1", REGISTER_WINDOW);
        let refusal = ledger.spend("1").unwrap_err();
        assert!(refusal.blocked_by_meta);
        assert_eq!(refusal.retry_after, REGISTER_WINDOW);
        assert_eq!(ledger.budget("1").attempts_left, 10);
        tokio::time::advance(REGISTER_WINDOW).await;
        ledger.spend("1").unwrap();
        assert_eq!(ledger.budget("1").blocked_until, None);
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_reserve_all_ten_may_be_spent() {
        let ledger = Ledger::new(Limit::DisplayName, 0);
        for _ in 0..10 {
            ledger.spend("1").unwrap();
        }
        let refusal = ledger.spend("1").unwrap_err();
        assert_eq!(refusal.retry_after, DISPLAY_NAME_WINDOW);
        assert_eq!(ledger.budget("1").attempts_left, 0);
    }
}
