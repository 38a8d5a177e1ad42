//! WatchStatus: one subscriber's stream over the shared watchers.
//!
//! The stream pulls the latest view of each target when the client is ready for more
//! and compares it with the view this subscriber last received, so `changed_fields` is
//! right however many intermediate states a slow client skipped, and nothing queues up.
//! Views are shared, never copied per subscriber: a subscriber holds one `Arc` per
//! target. When the client goes away tonic drops the stream, and with it the
//! subscriptions.
//!
//! Ten thousand idle streams are mostly this struct, so it is a plain `Stream` rather
//! than a future-holding combinator: a few hundred bytes a stream (see the README's
//! benchmark).

use super::pb;
use crate::watch::{Health, Hub, Observed, Source, Target, View};
use futures_util::{Stream, StreamExt};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::time::Instant;
use tokio_stream::wrappers::WatchStream;
use tonic::Status;

/// Subscribes to every target and waits for their first state, so that an id Meta does
/// not know fails the call (NOT_FOUND) before the stream starts.
pub async fn open(
    hub: &Hub,
    targets: Vec<Target>,
    deadline: Option<Instant>,
) -> Result<Pin<Box<Subscription>>, Status> {
    let wait = hub.settings().first_snapshot_wait;
    let until = deadline.or_else(|| wait.map(|w| Instant::now() + w));
    let mut subscription = Box::pin(Subscription::new(hub, targets));
    let loaded = std::future::poll_fn(|cx| subscription.poll_loaded(cx));
    match until {
        Some(until) => tokio::time::timeout_at(until, loaded)
            .await
            .map_err(|_| Status::deadline_exceeded("no first snapshot before the deadline"))??,
        None => loaded.await?,
    }
    Ok(subscription)
}

/// One WatchStatus call's subscriptions, and the events it has yet to send.
pub struct Subscription {
    hub: Hub,
    /// Everything this subscriber subscribed to, released when it goes.
    targets: Box<[Target]>,
    /// One per target, in the same order.
    feeds: Box<[Feed]>,
    pending: VecDeque<Pending>,
    /// The status to end with once the events already queued have gone out (boxed:
    /// every idle stream carries the field).
    ending: Option<Box<Status>>,
    done: bool,
}

struct Feed {
    views: WatchStream<Arc<View>>,
    /// The view of this target this subscriber last absorbed; `None` until its first.
    seen: Option<Arc<View>>,
}

/// An event to send, built when the client is ready for it.
struct Pending {
    observed: Arc<Observed>,
    source: pb::EventSource,
    changed: Vec<&'static str>,
}

impl Subscription {
    fn new(hub: &Hub, targets: Vec<Target>) -> Self {
        let feeds = hub
            .subscribe_all(&targets)
            .into_iter()
            .map(|rx| Feed {
                views: WatchStream::new(rx),
                seen: None,
            })
            .collect();
        metrics::gauge!("waba_watch_streams").increment(1);
        Subscription {
            hub: hub.clone(),
            targets: targets.into_boxed_slice(),
            feeds,
            pending: VecDeque::new(),
            ending: None,
            done: false,
        }
    }

    /// Ready once every target has its first state (queued as INITIAL events), or with
    /// the status the call fails with.
    fn poll_loaded(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        let mut loaded = true;
        for i in 0..self.feeds.len() {
            while self.feeds[i].seen.is_none() {
                match self.feeds[i].views.poll_next_unpin(cx) {
                    Poll::Pending => {
                        loaded = false;
                        break;
                    }
                    Poll::Ready(view) => {
                        if let Some(view) = view.as_ref()
                            && matches!(view.health, Health::Loading)
                        {
                            continue;
                        }
                        // On an error the call fails and the subscription is dropped.
                        self.absorb(i, view)?;
                    }
                }
            }
        }
        if loaded {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// Takes in a target's new view: queues an event for each number new to this
    /// subscriber or changed since the view of the target it last absorbed. `None` (the
    /// watcher is gone) and views that end the watch give the status to end with.
    fn absorb(&mut self, feed: usize, view: Option<Arc<View>>) -> Result<(), Status> {
        let view = view.ok_or_else(|| Status::unavailable("the watcher stopped; reconnect"))?;
        match &view.health {
            Health::Loading | Health::Live => {}
            Health::Failed(e) => return Err(e.clone().into()),
            Health::Stopped => {
                return Err(Status::unavailable(
                    "the server is shutting down; reconnect",
                ));
            }
        }
        let before = self.feeds[feed].seen.replace(view.clone());
        for (id, now) in &view.numbers {
            let previous = before.as_ref().and_then(|b| b.numbers.get(id));
            let (source, changed) = match previous {
                None => (pb::EventSource::Initial, Vec::new()),
                Some(previous) if Arc::ptr_eq(previous, now) => continue,
                Some(previous) => {
                    let changed = now
                        .snapshot
                        .number
                        .changed_fields(&previous.snapshot.number);
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
        Ok(())
    }
}

impl Stream for Subscription {
    type Item = Result<pb::StatusEvent, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(p) = this.pending.pop_front() {
                if this.pending.is_empty() {
                    // A burst (a WABA's first snapshot, say) leaves no memory behind.
                    this.pending.shrink_to_fit();
                }
                return Poll::Ready(Some(Ok(event(&p.observed, p.source, p.changed))));
            }
            if let Some(status) = this.ending.take() {
                this.done = true;
                return Poll::Ready(Some(Err(*status)));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let mut absorbed = false;
            for i in 0..this.feeds.len() {
                if let Poll::Ready(view) = this.feeds[i].views.poll_next_unpin(cx) {
                    absorbed = true;
                    if let Err(status) = this.absorb(i, view) {
                        // Events other targets queued in this pass still go first.
                        this.ending = Some(Box::new(status));
                        break;
                    }
                }
            }
            if !absorbed {
                return Poll::Pending;
            }
        }
    }
}

impl Drop for Subscription {
    /// The client went away (or the stream ended): its watchers learn at once.
    fn drop(&mut self) {
        metrics::gauge!("waba_watch_streams").decrement(1);
        self.feeds = Box::default();
        self.hub.release(&self.targets);
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
        phone_number: Some(observed.snapshot.as_ref().into()),
        changed_fields: changed.into_iter().map(str::to_owned).collect(),
        source: source.into(),
        observed_at: Some(super::convert::timestamp(observed.observed_at)),
    }
}
