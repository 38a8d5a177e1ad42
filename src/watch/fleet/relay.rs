//! Observations from a target's owner to the replicas that follow it.
//!
//! The owner holds a subscription to each watched target of its shards, as a subscriber
//! would: its watcher polls, and every change of the view is kept in the store (the
//! whole view, as JSON) and named in a NOTIFY of a few bytes (`Observed`, with the
//! version the store gave it). A follower that hears of a version newer than its own
//! reads the view from the store and takes it as its own, keeping what a webhook told it
//! since. A follower's new watcher asks the owner to say its view again (`Watch`), so
//! its first subscriber does not wait for the next change.

use super::{Fleet, What};
use crate::model::{PhoneNumber, Snapshot};
use crate::numbers;
use crate::store::Observation;
use crate::watch::{Health, Hub, Observed, Source, Target, View, ViewReceiver, fail, lock, update};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The targets this replica polls for others.
#[derive(Debug, Default)]
pub(super) struct Relay {
    held: Mutex<HashMap<Target, Held>>,
}

#[derive(Debug)]
struct Held {
    task: JoinHandle<()>,
    /// Publishes the view again.
    again: Arc<Notify>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.task.abort(); // with it goes its subscription
    }
}

impl Relay {
    pub(super) fn held(&self) -> HashSet<Target> {
        lock(&self.held).keys().cloned().collect()
    }

    /// Polls and publishes `target`; `again`: its view is published again now (another
    /// replica has a new watcher for it). A hold that ended (the watch failed) starts
    /// again only then.
    pub(super) fn hold(&self, fleet: &Fleet, hub: &Hub, target: &Target, again: bool) {
        let mut held = lock(&self.held);
        if let Some(h) = held.get(target) {
            if !h.task.is_finished() {
                if again {
                    h.again.notify_one();
                }
                return;
            }
            if !again {
                return;
            }
        }
        let views = hub.subscribe_quietly(target);
        let again = Arc::new(Notify::new());
        let task = tokio::spawn(forward(fleet.clone(), target.clone(), views, again.clone()));
        held.insert(target.clone(), Held { task, again });
    }

    /// Holds exactly `targets` (those of this replica's shards that some replica watches).
    pub(super) fn hold_only(&self, fleet: &Fleet, hub: &Hub, targets: Vec<Target>) {
        let wanted: HashSet<&Target> = targets.iter().collect();
        let dropped: Vec<Held> = {
            let mut held = lock(&self.held);
            let gone: Vec<Target> = held
                .keys()
                .filter(|t| !wanted.contains(t))
                .cloned()
                .collect();
            gone.iter().filter_map(|t| held.remove(t)).collect()
        };
        drop(dropped);
        for target in &targets {
            self.hold(fleet, hub, target, false);
        }
    }

    pub(super) fn drop_all(&self) {
        let all = std::mem::take(&mut *lock(&self.held));
        drop(all);
    }
}

/// Publishes every change of a held target's view until the hold is dropped, the watch
/// fails (published too) or the server stops. A view the store would not keep is offered
/// again, the latest one, with backoff (a quarter second doubling to 5 s), until it is.
async fn forward(fleet: Fleet, target: Target, mut views: ViewReceiver, again: Arc<Notify>) {
    let mut failures: u32 = 0;
    loop {
        let view = views.borrow_and_update().clone();
        let (body, ended) = match &view.health {
            Health::Loading => (None, false),
            Health::Live => (Some(Body::of(&view, &target, None)), false),
            Health::Failed(e) => (Some(Body::of(&view, &target, Some(e.clone()))), true),
            Health::Stopped => return,
        };
        let wait = match body {
            Some(body) if !publish(&fleet, &target, &body).await => {
                failures += 1;
                Some(PUBLISH_RETRY_MAX.min(PUBLISH_RETRY * 2_u32.pow(failures.min(5))))
            }
            _ => {
                failures = 0;
                None
            }
        };
        if ended && wait.is_none() {
            return;
        }
        tokio::select! {
            changed = views.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = again.notified() => {}
            () = tokio::time::sleep(wait.unwrap_or(Duration::MAX)), if wait.is_some() => {}
        }
    }
}

const PUBLISH_RETRY: Duration = Duration::from_millis(125);
const PUBLISH_RETRY_MAX: Duration = Duration::from_secs(5);

/// Keeps the view and tells the followers, in one transaction; whether it went through.
async fn publish(fleet: &Fleet, target: &Target, body: &Body) -> bool {
    let Ok(json) = serde_json::to_string(body) else {
        return true; // cannot happen: nothing to try again
    };
    let told = |version| {
        fleet
            .payload(What::Observed {
                target: target.clone(),
                version,
            })
            .unwrap_or_default()
    };
    let store = &fleet.inner.store;
    match store
        .put_observation(&target.key(), &json, super::CHANNEL, &told)
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "cannot keep an observation for the other replicas; trying again");
            false
        }
    }
}

/// A view as the store keeps it for followers.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Body {
    /// A WABA's whole listing: numbers not in it are no longer the WABA's.
    complete: bool,
    /// The watch ended with this.
    #[serde(default)]
    failed: Option<numbers::Error>,
    numbers: Vec<Entry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    number: PhoneNumber,
    /// When the owner read (or pushed) it.
    read_at: DateTime<Utc>,
    /// When the owner's read began (a webhook applied later is newer than the read).
    #[serde(default)]
    started_at: Option<DateTime<Utc>>,
    /// When its latest change was learnt, and whether from a webhook.
    changed_at: DateTime<Utc>,
    webhook: bool,
}

impl Body {
    fn of(view: &View, target: &Target, failed: Option<numbers::Error>) -> Body {
        Body {
            complete: matches!(target, Target::Waba(_)),
            failed,
            numbers: view
                .numbers
                .values()
                .map(|o| Entry {
                    number: o.snapshot.number.clone(),
                    read_at: o.snapshot.observed_at,
                    started_at: chrono::Duration::from_std(o.snapshot.seen - o.snapshot.since)
                        .ok()
                        .map(|took| o.snapshot.observed_at - took),
                    changed_at: o.observed_at,
                    webhook: o.source == Source::Webhook,
                })
                .collect(),
        }
    }
}

/// Applies an observation read from the store to the follower of its target here, if it
/// is newer than what that follower holds.
pub(super) fn apply(hub: &Hub, observation: Observation) {
    let Some(target) = Target::from_key(&observation.target) else {
        return;
    };
    match serde_json::from_str::<Body>(&observation.body) {
        Ok(body) => hub.follow(&target, observation.version, body),
        Err(e) => {
            tracing::warn!(error = %e, target = observation.target, "unreadable observation from another replica")
        }
    }
}

impl Hub {
    /// Takes the owner's view of `target` as this replica's follower's, if it has one,
    /// does not poll the target itself, and has not seen `version` or a later one.
    fn follow(&self, target: &Target, version: i64, body: Body) {
        let inner = &self.inner;
        if inner.polls(target) {
            return; // what this replica reads itself wins
        }
        match target {
            Target::Waba(id) => {
                let mut wabas = lock(&inner.wabas);
                let Some(w) = wabas.get_mut(id).filter(|w| w.version < version) else {
                    return;
                };
                w.version = version;
                if let Some(e) = body.failed {
                    fail(&w.tx, e);
                    wabas.remove(id);
                    return;
                }
                update(&w.tx, |view| take(view, &body));
            }
            Target::Number(id) => {
                let mut numbers = lock(&inner.numbers);
                let Some(w) = numbers.get_mut(id).filter(|w| w.version < version) else {
                    return;
                };
                w.version = version;
                if let Some(e) = body.failed {
                    if let Some(w) = numbers.remove(id) {
                        fail(&w.tx, e);
                    }
                    return;
                }
                update(&w.tx, |view| take(view, &body));
            }
        }
    }
}

/// Takes the owner's view into a follower's; whether subscribers have something new. A
/// number a webhook changed here after the owner's read keeps what the webhook said.
fn take(view: &mut View, body: &Body) -> bool {
    let mut changed = !matches!(view.health, Health::Live);
    view.health = Health::Live;
    if body.complete {
        let listed: HashSet<&str> = body.numbers.iter().map(|e| e.number.id.as_str()).collect();
        let before = view.numbers.len();
        view.numbers.retain(|id, _| listed.contains(id.as_str()));
        view.marks.retain(|id, _| listed.contains(id.as_str()));
        changed |= view.numbers.len() != before;
    }
    let (now, wall) = (Instant::now(), Utc::now());
    for entry in &body.numbers {
        let id = &entry.number.id;
        // The owner's read, on this replica's monotonic clock (as far as the two replicas'
        // wall clocks agree).
        let on_this_clock = |t: DateTime<Utc>| {
            let age = (wall - t).to_std().unwrap_or_default();
            now.checked_sub(age).unwrap_or(now)
        };
        let seen = on_this_clock(entry.read_at);
        let since = entry.started_at.map_or(seen, on_this_clock);
        let marks = view.marks.entry(id.clone()).or_default();
        if marks.pushed_at.is_some_and(|pushed| pushed >= since) {
            continue; // a webhook here since the owner's read began: it stands
        }
        let snapshot = Arc::new(Snapshot {
            number: entry.number.clone(),
            observed_at: entry.read_at,
            seen,
            since,
        });
        let observed = match view.numbers.get(id) {
            Some(o) if o.snapshot.number == entry.number => Observed {
                snapshot,
                source: o.source,
                observed_at: o.observed_at,
            },
            _ => {
                changed = true;
                Observed {
                    snapshot,
                    source: if entry.webhook {
                        Source::Webhook
                    } else {
                        Source::Poll
                    },
                    observed_at: entry.changed_at,
                }
            }
        };
        view.numbers.insert(id.clone(), Arc::new(observed));
    }
    changed
}
