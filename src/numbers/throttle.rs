//! Throttle memory: while Meta has said a WABA (or the whole app) is throttled, no read
//! for it is sent; the read path answers from cache or refuses instead.
//!
//! Learnt from throttling answers (4, 17, 80007, 80008...; Meta's wait from the usage
//! headers of the same answer, else [`DEFAULT_PAUSE`]) and from `X-Business-Use-Case-Usage`
//! on any answer, whose keys are taken to be WABA ids (unconfirmed: graph-api.md §5). A
//! read of a number whose WABA is not known yet is throttled on the number itself.

use crate::graph::{self, UsageTracker};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// How long to hold reads back when Meta throttles without saying for how long.
pub const DEFAULT_PAUSE: Duration = Duration::from_secs(60);

/// Codes Meta uses for the app's (or the user's) own limit, not a WABA's.
const APP_CODES: &[i64] = &[4, 17];

/// What a throttle applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    App,
    Waba(String),
    /// A number whose WABA is not known.
    Number(String),
}

#[derive(Debug, Default)]
pub struct Throttle {
    until: Mutex<HashMap<Scope, Instant>>,
}

impl Throttle {
    /// Remembers a throttling answer to a read of `scope` (its WABA, or the number).
    pub fn note(&self, error: &graph::Error, scope: Scope) {
        if !error.is_throttling() {
            return;
        }
        // A bare 429 names no scope: it holds back the reads of the one it answered.
        let scope = match error.graph() {
            Some(g) if APP_CODES.contains(&g.code) => Scope::App,
            _ => scope,
        };
        // At most a day, whatever Meta's headers say: no overflow, no hold for years.
        let wait = error
            .retry_after()
            .unwrap_or(DEFAULT_PAUSE)
            .min(Duration::from_secs(24 * 3600));
        let until = Instant::now() + wait;
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, at| *at > now); // forget what has lifted
        let at = map.entry(scope).or_insert(until);
        *at = (*at).max(until);
    }

    /// How long reads of `scopes` are still held back, if they are: the longest wait of
    /// the app, the scopes named, and what the usage headers last said of a WABA named.
    pub fn wait(&self, scopes: &[Scope], usage: &UsageTracker) -> Option<Duration> {
        let now = Instant::now();
        let remembered = {
            let map = self.lock();
            std::iter::once(&Scope::App)
                .chain(scopes)
                .filter_map(|s| map.get(s))
                .map(|until| until.saturating_duration_since(now))
                .max()
        };
        let reported = scopes
            .iter()
            .filter_map(|s| match s {
                Scope::Waba(id) => usage.throttled_for(id),
                _ => None,
            })
            .max();
        remembered
            .into_iter()
            .chain(reported)
            .max()
            .filter(|w| !w.is_zero())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Scope, Instant>> {
        self.until.lock().unwrap_or_else(|p| p.into_inner())
    }
}
