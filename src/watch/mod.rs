//! Live status for any number of subscribers at a Graph cost that does not grow with them.
//!
//! One watcher per target, shared by all its subscribers through a `tokio::sync::watch`
//! channel: a subscriber sees the latest state, never a backlog, so a slow consumer
//! cannot make the server buffer. A WABA's watcher is a task that lists the WABA through
//! the `phone_numbers` edge (one call per 100 numbers); lone numbers share one poller
//! that reads them in Graph batch requests of up to 50. A watcher starts with its first
//! subscriber and stops when the last one leaves.
//!
//! Polls are jittered, slow down as Meta reports rising usage, and pause while Meta
//! throttles. Webhook pushes are applied at once and followed by a prompt re-read (at
//! most one every [`NUDGE_GAP`] per watcher, however many webhooks arrive).
//!
//! Every read goes through the read path (`numbers::ReadPath`), as the RPCs' do: a
//! watcher's read fills the cache a GetStatus answers from, is not sent while Meta
//! throttles the WABA, and (a WABA listing, or a lone number read alone) joins an
//! identical read in flight. Batches of lone numbers are their own reads.
//!
//! With several replicas on one PostgreSQL store, each target is polled by one replica
//! for all of them, and webhooks and writes reach every replica ([`fleet`]).

mod fleet;
mod poll;

use crate::model::{Push, Snapshot};
use crate::numbers::{self, ReadPath};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// Time between polls when Meta reports low usage.
    pub interval: Duration,
    /// Each wait is the interval times a random factor in 1 ± jitter.
    pub jitter: f64,
    /// How long WatchStatus waits for a first snapshot when the caller set no deadline
    /// (`None`: as long as it takes, for tests on a paused clock).
    pub first_snapshot_wait: Option<Duration>,
}

impl Default for WatchSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            jitter: 0.1,
            first_snapshot_wait: Some(Duration::from_secs(30)),
        }
    }
}

/// What a subscriber watches.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Target {
    Number(String),
    Waba(String),
}

impl Target {
    /// How the fleet's tables name it.
    fn key(&self) -> String {
        match self {
            Target::Number(id) => format!("number:{id}"),
            Target::Waba(id) => format!("waba:{id}"),
        }
    }

    fn from_key(key: &str) -> Option<Target> {
        match key.split_once(':')? {
            ("number", id) => Some(Target::Number(id.to_owned())),
            ("waba", id) => Some(Target::Waba(id.to_owned())),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Poll,
    Webhook,
}

/// A number's latest known state. Never changed in place: every read or push makes a
/// new one, so subscribers holding the previous view can tell by pointer what is
/// untouched, and compare fields for the rest (a read that found nothing new is not an
/// event).
#[derive(Debug, Clone)]
pub struct Observed {
    /// The latest read or push of the number (its `observed_at` moves with every read,
    /// without an event of its own).
    pub snapshot: Arc<Snapshot>,
    /// How the latest change was learnt.
    pub source: Source,
    /// When the latest change was learnt.
    pub observed_at: DateTime<Utc>,
}

/// The soonest a webhook can trigger another read of the same watcher.
pub const NUDGE_GAP: Duration = Duration::from_secs(2);

/// What orders a number's pushes and reads (the read path orders pushes among
/// themselves).
#[derive(Debug, Clone, Copy, Default)]
struct Marks {
    /// When the last push was applied: a read that started before it ([`Snapshot::since`])
    /// may predate the push, so it does not overwrite it, even if it ended later (a
    /// watcher may join a read some GetStatus started).
    pushed_at: Option<Instant>,
}

/// What merging a read into a view did.
#[derive(Debug, Clone, Copy, Default)]
struct Merged {
    /// Subscribers have something new to hear.
    changed: bool,
    /// A push landed while the read was in flight; the number needs another read.
    superseded: bool,
}

#[derive(Debug, Clone, Default)]
pub enum Health {
    /// The first read has not completed yet.
    #[default]
    Loading,
    Live,
    /// A permanent error (deleted number, lost access): the watch is over.
    Failed(numbers::Error),
    /// The server is shutting down: subscribers should reconnect elsewhere.
    Stopped,
}

/// A watcher's state, as every subscriber sees it.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub numbers: BTreeMap<String, Arc<Observed>>,
    pub health: Health,
    marks: BTreeMap<String, Marks>,
}

pub type ViewReceiver = watch::Receiver<Arc<View>>;
type ViewSender = Arc<watch::Sender<Arc<View>>>;

/// Changes a watcher's view, telling its subscribers if `change` says it changed
/// anything. Once the view says Stopped it stays so: a read or push that lands during
/// shutdown cannot hide the stop from a subscriber that has not seen it yet.
fn update(tx: &ViewSender, change: impl FnOnce(&mut View) -> bool) {
    tx.send_if_modified(|view| {
        !matches!(view.health, Health::Stopped) && change(Arc::make_mut(view))
    });
}

fn stopped_view() -> Arc<View> {
    Arc::new(View {
        health: Health::Stopped,
        ..View::default()
    })
}

/// Counts of what the hub runs, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubStats {
    pub waba_watchers: usize,
    pub number_watchers: usize,
    /// Subscriptions across all watchers.
    pub subscriptions: usize,
    /// Watchers this replica polls itself (the others follow another replica's).
    pub polling_waba_watchers: usize,
    pub polling_number_watchers: usize,
}

#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("stats", &self.stats()).finish()
    }
}

struct Inner {
    reads: ReadPath,
    settings: WatchSettings,
    wabas: Mutex<HashMap<String, WabaWatcher>>,
    numbers: Mutex<HashMap<String, NumberWatcher>>,
    /// Wakes the lone-number poller: a number is due now.
    poller_wake: Notify,
    shutdown: watch::Receiver<bool>,
    /// The other replicas on the store, once joined ([`Hub::join_fleet`]).
    fleet: std::sync::OnceLock<fleet::Fleet>,
    /// What this replica polls itself: everything, unless the fleet says otherwise.
    owned: watch::Sender<fleet::Owned>,
}

struct WabaWatcher {
    tx: ViewSender,
    /// A webhook or a write asks for a prompt re-read.
    nudge: Arc<Notify>,
    /// The owner's latest observation taken, while another replica polls it.
    version: i64,
    started: Instant,
}

struct NumberWatcher {
    tx: ViewSender,
    /// Read at the poller's next wake-up rather than its next cycle.
    due: bool,
    /// Never read yet: a subscriber waits for its first snapshot.
    fresh: bool,
    /// Polled here at the last pass (rather than followed).
    polled: bool,
    /// The owner's latest observation taken, while another replica polls it.
    version: i64,
    started: Instant,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No lock is held across an await or a call that can panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// `shutdown` turning true stops every watcher.
    pub fn new(reads: ReadPath, settings: WatchSettings, shutdown: watch::Receiver<bool>) -> Self {
        let inner = Arc::new(Inner {
            reads,
            settings,
            wabas: Mutex::default(),
            numbers: Mutex::default(),
            poller_wake: Notify::new(),
            shutdown,
            fleet: std::sync::OnceLock::new(),
            owned: watch::Sender::new(fleet::Owned::default()),
        });
        tokio::spawn(poll::numbers(inner.clone()));
        tokio::spawn(stop_on_shutdown(inner.clone()));
        tokio::spawn(end_revoked(inner.clone()));
        Hub { inner }
    }

    pub fn settings(&self) -> &WatchSettings {
        &self.inner.settings
    }

    /// Joins the other replicas on a PostgreSQL store: one of them polls each watched
    /// target for all, and webhook pushes and writes here reach their watchers and
    /// caches, and theirs ours (see `fleet`).
    /// Until it joins (the store is away at start, say), the replica polls all it watches
    /// for its own subscribers, and tries again in the background, backing off to 30 s.
    pub async fn join_fleet(&self) {
        let Some(store) = self.inner.reads.keys().store().cloned() else {
            return;
        };
        match fleet::Fleet::join(store.clone(), self.clone()).await {
            Ok(fleet) => return self.joined(fleet),
            Err(e) => {
                tracing::warn!(error = %e, "cannot join the other replicas on the store yet: this replica polls all it watches, and tries again in the background");
            }
        }
        let hub = self.clone();
        tokio::spawn(async move {
            let mut wait = Duration::from_secs(1);
            let mut shutdown = hub.inner.shutdown.clone();
            loop {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
                match fleet::Fleet::join(store.clone(), hub.clone()).await {
                    Ok(fleet) => return hub.joined(fleet),
                    Err(e) => tracing::debug!(error = %e, "cannot join the other replicas yet"),
                }
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        });
    }

    fn joined(&self, fleet: Option<fleet::Fleet>) {
        if let Some(fleet) = fleet {
            let _ = self.inner.fleet.set(fleet);
            tracing::info!("sharing the watched targets with the other replicas on the store");
        }
    }

    /// Hands this replica's targets to the others at once (the server stops).
    pub async fn leave_fleet(&self) {
        if let Some(fleet) = self.inner.fleet.get() {
            fleet.leave().await;
        }
    }

    /// Joins each target's watcher, starting those that have no subscriber yet. Numbers
    /// new to the hub are read together, in batches.
    pub fn subscribe_all(&self, targets: &[Target]) -> Vec<ViewReceiver> {
        let mut started = Vec::new();
        let receivers = targets
            .iter()
            .map(|t| {
                let (views, new) = self.join_or_start(t);
                if new {
                    started.push(t.clone());
                }
                views
            })
            .collect();
        self.inner.poller_wake.notify_one();
        if let Some(fleet) = self.inner.fleet.get()
            && !started.is_empty()
        {
            fleet.watching(started);
        }
        receivers
    }

    /// Joins the target's watcher, starting it if it is the first subscriber.
    pub fn subscribe(&self, target: &Target) -> ViewReceiver {
        self.subscribe_all(std::slice::from_ref(target)).remove(0)
    }

    /// [`Hub::subscribe`] for the fleet's relay, which the fleet need not be told of.
    fn subscribe_quietly(&self, target: &Target) -> ViewReceiver {
        let (views, _) = self.join_or_start(target);
        self.inner.poller_wake.notify_one();
        views
    }

    /// Joins the target's watcher; whether it was started for this subscriber.
    fn join_or_start(&self, target: &Target) -> (ViewReceiver, bool) {
        match target {
            Target::Waba(id) => {
                let mut wabas = lock(&self.inner.wabas);
                if let Some(w) = wabas.get(id).filter(|w| !failed(&w.tx)) {
                    return (w.tx.subscribe(), false);
                }
                if self.inner.stopping() {
                    return (watch::channel(stopped_view()).1, false);
                }
                let (tx, rx) = watch::channel(Arc::new(View::default()));
                let watcher = WabaWatcher {
                    tx: Arc::new(tx),
                    nudge: Arc::new(Notify::new()),
                    version: 0,
                    started: Instant::now(),
                };
                let task = poll::waba(
                    self.inner.clone(),
                    id.clone(),
                    watcher.tx.clone(),
                    watcher.nudge.clone(),
                );
                wabas.insert(id.clone(), watcher);
                tokio::spawn(task);
                (rx, true)
            }
            Target::Number(id) => {
                let mut numbers = lock(&self.inner.numbers);
                if let Some(w) = numbers.get(id).filter(|w| !failed(&w.tx)) {
                    return (w.tx.subscribe(), false);
                }
                if self.inner.stopping() {
                    return (watch::channel(stopped_view()).1, false);
                }
                let (tx, rx) = watch::channel(Arc::new(View::default()));
                let watcher = NumberWatcher {
                    tx: Arc::new(tx),
                    due: true,
                    fresh: true,
                    polled: false,
                    version: 0,
                    started: Instant::now(),
                };
                numbers.insert(id.clone(), watcher);
                (rx, true)
            }
        }
    }

    /// Applies a webhook push to the cache and to every watcher that holds its number, at
    /// once, then has the number re-read promptly. A push about the whole account (no
    /// number) has every number that may belong to it re-read. A push older than one of
    /// its kind already applied changes nothing (the number is re-read all the same).
    pub fn push(&self, push: &Push) {
        self.push_here(push);
        if let Some(fleet) = self.inner.fleet.get() {
            fleet.pushed(push);
        }
    }

    /// [`Hub::push`], on this replica only.
    fn push_here(&self, push: &Push) {
        let reads = &self.inner.reads;
        let accepted = reads.push(push);
        let fresh = accepted.as_ref().is_some_and(|a| a.fresh);
        let id = accepted.map(|a| a.id);
        let apply = |tx: &ViewSender, id: &str| {
            if !fresh {
                return;
            }
            update(tx, |view| {
                let (Some(observed), Some(marks)) = (view.numbers.get(id), view.marks.get_mut(id))
                else {
                    return false;
                };
                let mut number = observed.snapshot.number.clone();
                if !reads.apply(push, &mut number) {
                    return false;
                }
                let snapshot = Snapshot::pushed(number);
                marks.pushed_at = Some(snapshot.since);
                let observed = Observed {
                    observed_at: snapshot.observed_at,
                    snapshot: Arc::new(snapshot),
                    source: Source::Webhook,
                };
                view.numbers.insert(id.to_owned(), Arc::new(observed));
                true
            });
        };
        if let Some(waba) = lock(&self.inner.wabas).get(&push.waba_id) {
            if let Some(id) = &id {
                apply(&waba.tx, id);
            }
            waba.nudge.notify_one();
        }
        let mut numbers = lock(&self.inner.numbers);
        match &id {
            Some(id) => {
                if let Some(watcher) = numbers.get_mut(id) {
                    apply(&watcher.tx, id);
                    watcher.due = true;
                }
            }
            // A lone number's WABA is not known here: re-read them all (in batches).
            None if push.digits().is_none() => numbers.values_mut().for_each(|w| w.due = true),
            None => return,
        }
        drop(numbers);
        self.inner.poller_wake.notify_one();
    }

    /// A write to a number (or, with only `waba_id`, to a WABA) went to Meta: its watchers
    /// re-read it promptly, so subscribers see what the write changed, and the number's
    /// windows, without waiting for the next poll.
    pub fn written(&self, waba_id: Option<&str>, phone_number_id: Option<&str>) {
        self.written_here(waba_id, phone_number_id);
        if let Some(fleet) = self.inner.fleet.get() {
            fleet.written(waba_id, phone_number_id);
        }
    }

    /// [`Hub::written`], on this replica only.
    fn written_here(&self, waba_id: Option<&str>, phone_number_id: Option<&str>) {
        let waba_id = waba_id
            .map(str::to_owned)
            .or_else(|| phone_number_id.and_then(|id| self.inner.reads.waba_of(id)));
        if let Some(waba) =
            waba_id.and_then(|w| lock(&self.inner.wabas).get(&w).map(|w| w.nudge.clone()))
        {
            waba.notify_one();
        }
        let Some(id) = phone_number_id else { return };
        let mut numbers = lock(&self.inner.numbers);
        if let Some(watcher) = numbers.get_mut(id) {
            watcher.due = true;
            drop(numbers);
            self.inner.poller_wake.notify_one();
        }
    }

    /// Stops the number watchers of `targets` that nobody subscribes to any more, at once
    /// (a WABA watcher notices by itself).
    pub fn release(&self, targets: &[Target]) {
        let mut numbers = lock(&self.inner.numbers);
        for target in targets {
            if let Target::Number(id) = target
                && numbers.get(id).is_some_and(|w| w.tx.receiver_count() == 0)
            {
                numbers.remove(id);
            }
        }
    }

    pub fn stats(&self) -> HubStats {
        let owned = self.owned();
        let wabas = lock(&self.inner.wabas);
        let numbers = lock(&self.inner.numbers);
        let subscriptions = wabas.values().map(|w| w.tx.receiver_count()).sum::<usize>()
            + numbers
                .values()
                .map(|w| w.tx.receiver_count())
                .sum::<usize>();
        let polled = |target: Target| owned.polls(&target);
        HubStats {
            waba_watchers: wabas.len(),
            number_watchers: numbers.len(),
            subscriptions,
            polling_waba_watchers: wabas
                .keys()
                .filter(|id| polled(Target::Waba((*id).clone())))
                .count(),
            polling_number_watchers: numbers
                .keys()
                .filter(|id| polled(Target::Number((*id).clone())))
                .count(),
        }
    }

    fn owned(&self) -> fleet::Owned {
        self.inner.owned.borrow().clone()
    }

    /// Takes the fleet's word on what this replica polls; whether it changed. Watchers
    /// that now poll read at once; those that now follow stop reading.
    fn set_owned(&self, owned: fleet::Owned) -> bool {
        let changed = self.inner.owned.send_if_modified(|o| {
            let changed = *o != owned;
            *o = owned;
            changed
        });
        if changed {
            self.inner.poller_wake.notify_one();
        }
        changed
    }

    /// The targets this replica's own subscribers watch (not only the fleet's relay,
    /// which holds those in `held`).
    fn local_targets(&self, held: &HashSet<Target>) -> Vec<Target> {
        let own = |target: Target, receivers: usize| {
            let relayed = usize::from(held.contains(&target));
            (receivers > relayed).then_some(target)
        };
        let mut targets: Vec<Target> = lock(&self.inner.wabas)
            .iter()
            .filter_map(|(id, w)| own(Target::Waba(id.clone()), w.tx.receiver_count()))
            .collect();
        targets.extend(
            lock(&self.inner.numbers)
                .iter()
                .filter_map(|(id, w)| own(Target::Number(id.clone()), w.tx.receiver_count())),
        );
        targets
    }

    /// The targets watched here that another replica polls.
    fn followed(&self) -> Vec<Target> {
        let f = self.followers(Duration::ZERO);
        f.waiting
            .into_iter()
            .chain(f.live.into_iter().map(|(t, _)| t))
            .collect()
    }

    /// What this replica follows: the watchers still waiting for the owner's first word
    /// after `waiting_for`, and the others with the version they hold.
    fn followers(&self, waiting_for: Duration) -> fleet::Followers {
        let owned = self.owned();
        let mut followers = fleet::Followers::default();
        let mut sort = |target: Target, tx: &ViewSender, started: Instant, version: i64| {
            if owned.polls(&target) {
                return;
            }
            match tx.borrow().health {
                Health::Loading if started.elapsed() >= waiting_for => {
                    followers.waiting.push(target)
                }
                Health::Loading => {}
                _ => followers.live.push((target, version)),
            }
        };
        for (id, w) in lock(&self.inner.wabas).iter() {
            sort(Target::Waba(id.clone()), &w.tx, w.started, w.version);
        }
        for (id, w) in lock(&self.inner.numbers).iter() {
            sort(Target::Number(id.clone()), &w.tx, w.started, w.version);
        }
        followers
    }

    /// Whether `target` is followed here and `version` of its owner's observation is
    /// news to it.
    fn follows(&self, target: &Target, version: i64) -> bool {
        if self.inner.polls(target) {
            return false;
        }
        match target {
            Target::Waba(id) => lock(&self.inner.wabas)
                .get(id)
                .is_some_and(|w| w.version < version),
            Target::Number(id) => lock(&self.inner.numbers)
                .get(id)
                .is_some_and(|w| w.version < version),
        }
    }

    /// Every watcher here that polls reads again soon (writes and pushes may have been
    /// missed).
    fn written_everywhere_here(&self) {
        for w in lock(&self.inner.wabas).values() {
            w.nudge.notify_one();
        }
        for w in lock(&self.inner.numbers).values_mut() {
            w.due = true;
        }
        self.inner.poller_wake.notify_one();
    }
}

fn failed(tx: &ViewSender) -> bool {
    matches!(tx.borrow().health, Health::Failed(_))
}

/// When Meta rejects a customer's token, the watchers of its WABA and of its numbers read
/// at once: the read fails without a call (the token is marked), and their streams end
/// with CUSTOMER_REAUTH_REQUIRED.
async fn end_revoked(inner: Arc<Inner>) {
    let mut revoked = inner.reads.keys().revocations();
    let mut shutdown = inner.shutdown.clone();
    loop {
        let waba_id = tokio::select! {
            received = revoked.recv() => match received {
                Ok(waba_id) => waba_id,
                // Missed some: whichever they were, their watchers find out at their next read.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        if let Some(w) = lock(&inner.wabas).get(&waba_id) {
            w.nudge.notify_one();
        }
        let keys = inner.reads.keys();
        let mut numbers = lock(&inner.numbers);
        for (id, watcher) in numbers.iter_mut() {
            if keys.known_waba_of(id).as_deref() == Some(waba_id.as_str()) {
                watcher.due = true;
            }
        }
        drop(numbers);
        inner.poller_wake.notify_one();
    }
}

/// When the server stops, every view says so: subscribers end with UNAVAILABLE (those
/// still waiting for a first snapshot too) and clients reconnect to another replica.
async fn stop_on_shutdown(inner: Arc<Inner>) {
    let mut shutdown = inner.shutdown.clone();
    // An error means the server is gone without saying so: stop all the same.
    let _ = shutdown.wait_for(|stop| *stop).await;
    // Under the lock, so that a watcher started concurrently is either stopped here or
    // starts stopped (see `join`).
    let wabas = lock(&inner.wabas);
    let numbers = lock(&inner.numbers);
    for tx in wabas
        .values()
        .map(|w| &w.tx)
        .chain(numbers.values().map(|w| &w.tx))
    {
        tx.send_replace(stopped_view());
    }
}

/// Ends a watch: its subscribers get the error's status.
fn fail(tx: &ViewSender, e: numbers::Error) {
    update(tx, |view| {
        view.health = Health::Failed(e);
        true
    });
}

impl Inner {
    fn stopping(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Whether this replica reads `target` from Meta itself (rather than following
    /// another replica's reads of it).
    fn polls(&self, target: &Target) -> bool {
        self.owned.borrow().polls(target)
    }

    /// Merges the numbers a read found into a view. With
    /// `complete` (a whole WABA listing), numbers no longer listed leave the view. A number
    /// read unchanged keeps its event-less place but takes the newer snapshot, so that a
    /// subscriber arriving later learns how fresh it is.
    fn merge(&self, view: &mut View, read: Vec<Arc<Snapshot>>, complete: bool) -> Merged {
        let mut merged = Merged {
            changed: !matches!(view.health, Health::Live),
            superseded: false,
        };
        view.health = Health::Live;
        if complete {
            let listed: HashSet<&str> = read.iter().map(|s| s.number.id.as_str()).collect();
            let before = view.numbers.len();
            view.numbers.retain(|id, _| listed.contains(id.as_str()));
            view.marks.retain(|id, _| listed.contains(id.as_str()));
            merged.changed |= view.numbers.len() != before;
        }
        for snapshot in read {
            let id = &snapshot.number.id;
            let marks = view.marks.entry(id.clone()).or_default();
            if marks.pushed_at.is_some_and(|at| at >= snapshot.since) {
                merged.superseded = true; // keep what the push said; read again
                continue;
            }
            let observed = match view.numbers.get(id) {
                Some(o) if o.snapshot.number == snapshot.number => Observed {
                    snapshot: snapshot.clone(),
                    source: o.source,
                    observed_at: o.observed_at,
                },
                _ => {
                    merged.changed = true;
                    Observed {
                        observed_at: snapshot.observed_at,
                        snapshot: snapshot.clone(),
                        source: Source::Poll,
                    }
                }
            };
            view.numbers.insert(id.clone(), Arc::new(observed));
        }
        merged
    }
}
