//! WatchStatus: one subscriber's stream over the shared watchers.
//!
//! The stream pulls the latest view of each target when the client is ready for more
//! and compares it with the view this subscriber last received, so `changed_fields` is
//! right however many intermediate states a slow client skipped, and nothing queues up.
//! Views are shared, never copied per subscriber: a subscriber holds one `Arc` per
//! target. When the client goes away tonic drops the stream, and with it the
//! subscriptions.

use super::pb;
use crate::watch::{Health, Hub, Observed, Source, Target, View};
use futures_util::stream::{self, Stream, StreamExt};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::WatchStream;
use tonic::Status;

/// Subscribes to every target and waits for their first state, so that an id Meta does
/// not know fails the call (NOT_FOUND) before the stream starts.
pub async fn open(
    hub: &Hub,
    targets: Vec<Target>,
    deadline: Option<Instant>,
    shutdown: watch::Receiver<bool>,
) -> Result<impl Stream<Item = Result<pb::StatusEvent, Status>> + Send + 'static, Status> {
    let wait = hub.settings().first_snapshot_wait;
    let until = deadline.or_else(|| wait.map(|w| Instant::now() + w));
    let receivers = hub.subscribe_all(&targets);
    // Released at once if the call fails before the stream starts.
    metrics::gauge!("waba_watch_streams").increment(1);
    let mut subscriber = Subscriber {
        hub: hub.clone(),
        targets: targets.clone(),
        views: StreamMap::new(),
        seen: HashMap::new(),
        pending: VecDeque::new(),
        shutdown,
        done: false,
    };
    for (target, mut rx) in targets.into_iter().zip(receivers) {
        let mut stopping = subscriber.shutdown.clone();
        let loaded = async {
            tokio::select! {
                first = rx.wait_for(|v| !matches!(v.health, Health::Loading)) => first
                    .map(|view| view.clone())
                    .map_err(|_| Status::unavailable("the watcher stopped")),
                _ = stopping.wait_for(|stop| *stop) => {
                    Err(Status::unavailable("the server is shutting down; reconnect"))
                }
            }
        };
        let first = match until {
            Some(until) => tokio::time::timeout_at(until, loaded)
                .await
                .map_err(|_| Status::deadline_exceeded("no first snapshot before the deadline"))?,
            None => loaded.await,
        }?;
        if let Health::Failed(e) = &first.health {
            return Err(e.clone().into());
        }
        subscriber.views.insert(target, WatchStream::new(rx));
    }
    Ok(stream::unfold(subscriber, Subscriber::next).boxed())
}

struct Subscriber {
    hub: Hub,
    /// Everything this subscriber subscribed to.
    targets: Vec<Target>,
    views: StreamMap<Target, WatchStream<Arc<View>>>,
    /// The view of each target this subscriber last received.
    seen: HashMap<Target, Arc<View>>,
    pending: VecDeque<Pending>,
    shutdown: watch::Receiver<bool>,
    done: bool,
}

impl Drop for Subscriber {
    /// The client went away (or the stream ended): its watchers learn at once.
    fn drop(&mut self) {
        metrics::gauge!("waba_watch_streams").decrement(1);
        drop(std::mem::take(&mut self.views));
        self.hub.release(&self.targets);
    }
}

/// An event to send, built when the client is ready for it.
struct Pending {
    observed: Arc<Observed>,
    source: pb::EventSource,
    changed: Vec<&'static str>,
}

type Next = Option<(Result<pb::StatusEvent, Status>, Subscriber)>;

impl Subscriber {
    async fn next(mut self) -> Next {
        loop {
            if let Some(p) = self.pending.pop_front() {
                if self.pending.is_empty() {
                    // A burst (a WABA's first snapshot, say) leaves no memory behind.
                    self.pending.shrink_to_fit();
                }
                return Some((Ok(event(&p.observed, p.source, p.changed)), self));
            }
            if self.done {
                return None;
            }
            let update = tokio::select! {
                biased;
                _ = self.shutdown.wait_for(|stopping| *stopping) => None,
                update = self.views.next() => Some(update),
            };
            match update {
                None => {
                    self.done = true;
                    let status = Status::unavailable("the server is shutting down; reconnect");
                    return Some((Err(status), self));
                }
                Some(None) => return None,
                Some(Some((target, view))) => {
                    if let Health::Failed(e) = &view.health {
                        self.done = true;
                        return Some((Err(e.clone().into()), self));
                    }
                    self.absorb(target, view);
                }
            }
        }
    }

    /// Queues an event for each number new to this subscriber or changed since the
    /// view of `target` it last received.
    fn absorb(&mut self, target: Target, view: Arc<View>) {
        let before = self.seen.insert(target, view.clone());
        for (id, now) in &view.numbers {
            let previous = before.as_ref().and_then(|b| b.numbers.get(id));
            let (source, changed) = match previous {
                None => (pb::EventSource::Initial, Vec::new()),
                Some(previous) if Arc::ptr_eq(previous, now) => continue,
                Some(previous) => {
                    let changed = now.number.changed_fields(&previous.number);
                    if changed.is_empty() {
                        continue;
                    }
                    (source_of(now), changed)
                }
            };
            self.pending.push_back(Pending {
                observed: now.clone(),
                source,
                changed,
            });
        }
    }
}

fn source_of(observed: &Observed) -> pb::EventSource {
    match observed.source {
        Source::Poll => pb::EventSource::Poll,
        Source::Webhook => pb::EventSource::Webhook,
    }
}

fn event(
    observed: &Observed,
    source: pb::EventSource,
    changed: Vec<&'static str>,
) -> pb::StatusEvent {
    pb::StatusEvent {
        phone_number: Some(observed.number.clone().into()),
        changed_fields: changed.into_iter().map(str::to_owned).collect(),
        source: source.into(),
        observed_at: Some(super::convert::timestamp(observed.observed_at)),
    }
}
