//! The polling tasks: one per watched WABA, one for all lone numbers.

use super::{Inner, NUDGE_GAP, Target, ViewSender, fail, lock, update};
use crate::graph::MAX_BATCH;
use crate::keyring;
use crate::model::Snapshot;
use crate::numbers::{self, THROTTLE_PAUSE};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

/// A WABA can list at most this many pages per poll (100 numbers each): a guard against
/// a cursor that never ends.
const MAX_PAGES: usize = 1_000;

/// What a failed read means for the watch.
#[derive(Debug, PartialEq)]
enum Failure {
    /// Meta throttles: no call until then.
    Throttled(Duration),
    /// Meta said no for good (not found, access lost): the watch ends.
    Permanent,
    /// Anything else may pass: try again after a backoff, streams stay open.
    Retry,
}

fn classify(inner: &Inner, e: &numbers::Error) -> Failure {
    let e = match e {
        numbers::Error::Throttled { retry_after } => return Failure::Throttled(*retry_after),
        numbers::Error::Upstream(e) => e,
        // The customer's token was rejected, or nothing may read the target: only a
        // person can change that (a new onboarding).
        numbers::Error::Credentials(
            keyring::Error::ReauthRequired { .. } | keyring::Error::NoCredentials { .. },
        ) => return Failure::Permanent,
        _ => return Failure::Retry,
    };
    if e.is_throttling() {
        let wait = e
            .retry_after()
            .or_else(|| inner.reads.usage().regain_access_in());
        Failure::Throttled(wait.unwrap_or(THROTTLE_PAUSE))
    } else if e.is_permanent() {
        Failure::Permanent
    } else {
        Failure::Retry
    }
}

/// Keeps a WABA's view fresh until its last subscriber leaves or the server stops.
pub async fn waba(inner: Arc<Inner>, waba_id: String, tx: ViewSender, nudge: Arc<Notify>) {
    let target = Target::Waba(waba_id.clone());
    let mut shutdown = inner.shutdown.clone();
    let mut owned = inner.owned.subscribe();
    let mut failures = 0;
    loop {
        if !inner.polls(&target) {
            if follow(&inner, &target, &tx, &mut owned).await {
                continue; // this replica polls it now: at once
            }
            return;
        }
        let (delay, paused) = match read_waba(&inner, &waba_id).await {
            Ok(numbers) => {
                failures = 0;
                let mut superseded = false;
                update(&tx, |view| {
                    let merged = inner.merge(view, numbers, true);
                    superseded = merged.superseded;
                    merged.changed
                });
                let percent = inner
                    .reads
                    .usage()
                    .business(&waba_id)
                    .and_then(|o| o.percent());
                let next = if superseded {
                    NUDGE_GAP
                } else {
                    inner.next_poll(percent)
                };
                (next, false)
            }
            Err(e) => match classify(&inner, &e) {
                Failure::Throttled(pause) => {
                    tracing::warn!(waba_id, ?pause, error = %e, "throttled by Meta; pausing this WABA's polls");
                    (pause, true)
                }
                Failure::Retry => {
                    failures += 1;
                    tracing::debug!(waba_id, error = %e, "failed to read the WABA; retrying");
                    (inner.backoff(failures), false)
                }
                Failure::Permanent => {
                    tracing::info!(waba_id, error = %e, "ending the WABA's watch");
                    fail(&tx, e);
                    retire(&inner, &waba_id, &tx, true);
                    return;
                }
            },
        };
        // A webhook asks for a prompt re-read: not while Meta throttles, and not sooner
        // than NUDGE_GAP after this read, however many webhooks arrive.
        let earliest_nudge = Instant::now() + NUDGE_GAP;
        let mut wake_at = Instant::now() + delay;
        loop {
            tokio::select! {
                () = sleep_until(wake_at) => break,
                () = nudge.notified(), if !paused => {
                    if Instant::now() >= earliest_nudge {
                        break;
                    }
                    wake_at = wake_at.min(earliest_nudge);
                }
                () = tx.closed() => {
                    if retire(&inner, &waba_id, &tx, false) {
                        return;
                    }
                }
                _ = owned.changed() => {
                    if !inner.polls(&target) {
                        break; // another replica polls it now
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Waits while another replica polls the WABA for this one (the fleet updates the view,
/// and asks the owner again while it has said nothing); whether this replica polls it now
/// (`false`: the watch is over).
async fn follow(
    inner: &Inner,
    target: &Target,
    tx: &ViewSender,
    owned: &mut tokio::sync::watch::Receiver<super::fleet::Owned>,
) -> bool {
    let Target::Waba(waba_id) = target else {
        return false;
    };
    let mut shutdown = inner.shutdown.clone();
    loop {
        tokio::select! {
            _ = owned.changed() => {
                if inner.polls(target) {
                    return true;
                }
            }
            () = tx.closed() => {
                if retire(inner, waba_id, tx, false) {
                    return false;
                }
            }
            _ = shutdown.changed() => return false,
        }
    }
}

/// Lists a WABA from Meta now, every page (a listing in flight is joined).
async fn read_waba(inner: &Inner, waba_id: &str) -> Result<Vec<Arc<Snapshot>>, numbers::Error> {
    let mut numbers = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = inner
            .reads
            .page(waba_id, 100, cursor.as_deref(), Some(Duration::ZERO), None)
            .await?;
        numbers.extend(page.numbers.iter().cloned());
        match &page.next_cursor {
            Some(next) => cursor = Some(next.clone()),
            None => break,
        }
    }
    Ok(numbers)
}

/// Which lone numbers a pass of the poller reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Every number: the regular cycle.
    Full,
    /// Those marked due: new, named by a webhook, or to retry.
    Due,
    /// Only numbers not yet tried. Their subscribers wait for a first snapshot, so
    /// this pass is not held back by [`NUDGE_GAP`]: it exists to space out webhook
    /// re-reads, and a first read is one Meta must serve however it is timed. A first
    /// read that fails is retried with the rest, after the backoff.
    New,
}

/// Keeps every lone number's view fresh: all of them each cycle, in batches, and a
/// number sooner when it is new or a webhook named it.
pub async fn numbers(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.clone();
    let mut next_cycle = Instant::now() + inner.next_poll(None);
    // When to read the numbers marked due (after a failure, a pause, or too soon a nudge).
    let mut retry_at: Option<Instant> = None;
    let mut paused_until: Option<Instant> = None;
    let mut last_pass = Instant::now() - NUDGE_GAP;
    let mut failures = 0;
    loop {
        // With nothing to watch there is no cycle to wait for; while Meta throttles,
        // neither cycles nor nudges run, only the end of the pause.
        let idle = lock(&inner.numbers).is_empty();
        let paused = paused_until.is_some_and(|until| Instant::now() < until);
        let pass = tokio::select! {
            () = sleep_until(next_cycle), if !idle && !paused => Pass::Full,
            () = sleep_until(retry_at.unwrap_or(next_cycle)), if retry_at.is_some() => Pass::Due,
            () = inner.poller_wake.notified(), if !paused => {
                if idle {
                    next_cycle = Instant::now() + inner.next_poll(None);
                }
                if Instant::now() >= last_pass + NUDGE_GAP {
                    Pass::Due
                } else {
                    // The rest waits for the gap (or a longer backoff); new numbers are
                    // read now.
                    let gap_end = last_pass + NUDGE_GAP;
                    retry_at = Some(retry_at.map_or(gap_end, |at| at.max(gap_end)));
                    Pass::New
                }
            }
            _ = shutdown.changed() => return,
        };
        paused_until = None; // over: passes run only when not paused, or at its end
        if pass != Pass::New {
            retry_at = None;
            last_pass = Instant::now();
        }

        let ids = take_due(&inner, pass);
        if pass == Pass::New && ids.is_empty() {
            continue; // a webhook nudge, held back until the gap has passed
        }
        let mut retry = false;
        let mut chunks = ids.chunks(MAX_BATCH);
        for chunk in chunks.by_ref() {
            let results = inner.reads.numbers_now(chunk).await;
            for (id, result) in chunk.iter().zip(results) {
                let failure = match result {
                    Ok(snapshot) => {
                        retry |= inner.update_number(id, snapshot);
                        continue;
                    }
                    Err(e) => (classify(&inner, &e), e),
                };
                match failure {
                    (Failure::Throttled(pause), e) => {
                        tracing::warn!(?pause, error = %e, "throttled by Meta; pausing number polls");
                        paused_until = Some(Instant::now() + pause);
                        inner.mark_due(id);
                    }
                    (Failure::Retry, e) => {
                        tracing::debug!(phone_number_id = %id, error = %e, "failed to read the number; retrying");
                        retry = true;
                        inner.mark_due(id);
                    }
                    (Failure::Permanent, e) => inner.fail_number(id, e),
                }
            }
            if paused_until.is_some() {
                break; // no more calls while Meta throttles
            }
        }
        for id in chunks.flatten() {
            inner.mark_due(id);
        }

        if retry {
            failures += 1;
        } else if pass != Pass::New {
            failures = 0; // a pass of new numbers says nothing of those failing
        }
        if retry {
            let at = Instant::now() + inner.backoff(failures);
            retry_at = Some(retry_at.map_or(at, |r| r.min(at)));
        }
        if let Some(until) = paused_until {
            retry_at = Some(until);
            next_cycle = next_cycle.max(until);
        }
        if pass == Pass::Full {
            let usage = inner.reads.usage().max_percent();
            next_cycle = next_cycle.max(Instant::now() + inner.next_poll(usage));
        }
    }
}

/// The lone numbers `pass` reads, no longer due: those this replica polls (a number
/// it has just taken from another replica is read as a new one). Watchers nobody
/// subscribes to any more are dropped here.
fn take_due(inner: &Inner, pass: Pass) -> Vec<String> {
    let owned = inner.owned.borrow().clone();
    let mut numbers = lock(&inner.numbers);
    numbers.retain(|_, w| w.tx.receiver_count() > 0);
    numbers
        .iter_mut()
        .filter_map(|(id, w)| {
            let polls = owned.polls(&Target::Number(id.clone()));
            if polls && !w.polled {
                // Taken from another replica (or never polled): read now, as a new one.
                w.fresh = true;
                w.due = true;
            }
            w.polled = polls;
            polls.then_some((id, w))
        })
        .filter(|(_, w)| match pass {
            Pass::Full => true,
            Pass::Due => w.due,
            Pass::New => w.fresh,
        })
        .map(|(id, w)| {
            w.due = false;
            w.fresh = false;
            id.clone()
        })
        .collect()
}

impl Inner {
    /// Merges a fresh read of a lone number; tells whether it must be read again (a push
    /// landed while the read was in flight).
    fn update_number(&self, id: &str, snapshot: Arc<Snapshot>) -> bool {
        let mut numbers = lock(&self.numbers);
        let Some(w) = numbers.get_mut(id) else {
            return false;
        };
        let mut superseded = false;
        update(&w.tx, |view| {
            let merged = self.merge(view, vec![snapshot], false);
            superseded = merged.superseded;
            merged.changed
        });
        w.due |= superseded;
        superseded
    }

    fn mark_due(&self, id: &str) {
        if let Some(w) = lock(&self.numbers).get_mut(id) {
            w.due = true;
        }
    }

    fn fail_number(&self, id: &str, e: numbers::Error) {
        tracing::info!(phone_number_id = id, error = %e, "ending the number's watch");
        if let Some(w) = lock(&self.numbers).remove(id) {
            fail(&w.tx, e);
        }
    }

    /// The wait before the next poll: the interval, stretched as usage rises, jittered.
    fn next_poll(&self, usage_percent: Option<u32>) -> Duration {
        self.jittered(self.settings.interval * slowdown(usage_percent))
    }

    /// The wait before retrying after `failures` failed reads in a row.
    fn backoff(&self, failures: u32) -> Duration {
        let exponential = Duration::from_secs(1 << failures.min(10));
        self.jittered(exponential.min(self.settings.interval))
    }

    fn jittered(&self, base: Duration) -> Duration {
        let spread = self.settings.jitter.clamp(0.0, 1.0);
        base.mul_f64(1.0 + spread * (rand::random::<f64>() * 2.0 - 1.0))
    }
}

/// How many times the interval to wait at a usage level Meta reported (percent of the
/// limit): polls thin out well before Meta would throttle.
fn slowdown(usage_percent: Option<u32>) -> u32 {
    match usage_percent.unwrap_or(0) {
        0..50 => 1,
        50..75 => 2,
        75..90 => 4,
        _ => 8,
    }
}

/// Removes a WABA watcher if nobody subscribes to it any more (or `always`); tells
/// whether it is gone. Under the map's lock, so a subscriber arriving meanwhile either
/// finds the watcher still running or starts a new one.
fn retire(inner: &Inner, waba_id: &str, tx: &ViewSender, always: bool) -> bool {
    let mut wabas = lock(&inner.wabas);
    if !wabas.get(waba_id).is_some_and(|w| Arc::ptr_eq(&w.tx, tx)) {
        return true; // replaced already
    }
    if always || tx.receiver_count() == 0 {
        wabas.remove(waba_id);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_thin_out_as_usage_rises() {
        assert_eq!(slowdown(None), 1);
        assert_eq!(slowdown(Some(49)), 1);
        assert_eq!(slowdown(Some(60)), 2);
        assert_eq!(slowdown(Some(80)), 4);
        assert_eq!(slowdown(Some(95)), 8);
        assert_eq!(slowdown(Some(100)), 8);
    }
}
