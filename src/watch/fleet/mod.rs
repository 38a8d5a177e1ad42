//! The replicas of one PostgreSQL store work as one service:
//!
//! - **One poller per target** ([`leases`]): targets hash into [`SHARDS`] shards, each
//!   leased by one replica, which polls the watched targets of its shards for every
//!   replica's subscribers. The others follow: their watchers read nothing from Meta and
//!   take the owner's observations.
//! - **Observations** ([`relay`]): the owner keeps each change of a target's view in the
//!   store and names it in a NOTIFY; followers read it from there.
//! - **Webhooks and writes**: a webhook push (Meta delivers each to one replica only) and
//!   a write are one small NOTIFY each, sent after the webhook was acknowledged and the
//!   write answered; every other replica applies it as if it had happened there: the push
//!   to its cache and watchers, the write as an invalidation of its cache and a prompt
//!   re-read by the owner.
//!
//! What is sent while a replica's listening connection is down is lost to it (NOTIFY
//! keeps nothing): when it listens again it drops its cache and reads every followed
//! target's latest observation from the store. While the store is away, every replica
//! polls for its own subscribers ([`leases`]).

mod leases;
mod relay;

pub(super) use leases::Owned;

use super::{Hub, Target};
use crate::model::Push;
use crate::store::{Heard, MAX_NOTIFICATION, Store};
use relay::Relay;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The channel every replica listens on.
const CHANNEL: &str = "waba_numbers_changes";

/// How many targets one `Watch` names: a NOTIFY stays well under its 8,000 bytes.
const WATCH_BATCH: usize = 100;

/// How many shards the targets hash into: enough to spread over tens of replicas, few
/// enough that a tick renews them all in one statement.
pub(super) const SHARDS: u32 = 64;

#[derive(Debug, Serialize, Deserialize)]
struct Change {
    /// The replica that sent it (which skips its own).
    from: String,
    what: What,
}

#[derive(Debug, Serialize, Deserialize)]
enum What {
    Pushed(Push),
    Written {
        waba_id: Option<String>,
        phone_number_id: Option<String>,
    },
    /// A replica has new watchers for these targets: their owners poll them, and tell
    /// their current views again.
    Watch(Vec<Target>),
    /// The owner kept a new observation of the target, at this version.
    Observed {
        target: Target,
        version: i64,
    },
}

/// The watchers of a replica that another replica polls for it.
#[derive(Debug, Default)]
pub(super) struct Followers {
    /// Still without the owner's first observation, a while after they started.
    pub(super) waiting: Vec<Target>,
    /// With the version of the owner's observation they hold.
    pub(super) live: Vec<(Target, i64)>,
}

/// This replica's end of the fleet.
#[derive(Debug, Clone)]
pub(super) struct Fleet {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: Store,
    /// This replica, in what it sends and in the leases.
    me: String,
    relay: Relay,
    /// Taken by each tick; `true` once the replica has left (no tick runs after).
    ticking: tokio::sync::Mutex<bool>,
}

impl Fleet {
    /// Listens for the other replicas' changes and applies them to `hub`, takes this
    /// replica's share of the leases, and keeps both going; `None` for a store of one
    /// replica. An error: the store cannot be reached (try again later).
    pub(super) async fn join(store: Store, hub: Hub) -> Result<Option<Fleet>, crate::store::Error> {
        let Some(notifications) = store.subscribe(CHANNEL).await? else {
            return Ok(None);
        };
        let fleet = Fleet {
            inner: Arc::new(Shared {
                store,
                me: format!("{:016x}", rand::random::<u64>()),
                relay: Relay::default(),
                ticking: tokio::sync::Mutex::new(false),
            }),
        };
        let ticks = leases::Ticks::first(&fleet, &hub).await;
        tokio::spawn(ticks.run(fleet.clone(), hub.clone()));
        tokio::spawn(fleet.clone().listen(notifications, hub));
        Ok(Some(fleet))
    }

    async fn listen(self, mut notifications: crate::store::Notifications, hub: Hub) {
        let mut stop = hub.inner.shutdown.clone();
        loop {
            let heard = tokio::select! {
                heard = notifications.next() => heard,
                _ = stop.wait_for(|stop| *stop) => return,
            };
            let payload = match heard {
                Heard::Payload(payload) => payload,
                Heard::Lost => {
                    self.catch_up(&hub);
                    continue;
                }
            };
            match serde_json::from_str::<Change>(&payload) {
                Ok(change) if change.from == self.inner.me => {}
                Ok(Change { what, .. }) => self.apply(&hub, what),
                Err(e) => tracing::warn!(error = %e, "unreadable change from another replica"),
            }
        }
    }

    /// Another replica's change, applied here as if it had happened here.
    fn apply(&self, hub: &Hub, what: What) {
        match what {
            What::Pushed(push) => hub.push_here(&push),
            What::Written {
                waba_id,
                phone_number_id,
            } => {
                let reads = &hub.inner.reads;
                if let Some(id) = &phone_number_id {
                    reads.invalidate(id);
                }
                if let Some(waba_id) = &waba_id {
                    reads.invalidate_waba(waba_id);
                }
                hub.written_here(waba_id.as_deref(), phone_number_id.as_deref());
            }
            What::Watch(targets) => {
                for target in targets.iter().filter(|t| hub.inner.polls(t)) {
                    self.inner.relay.hold(self, hub, target, true);
                }
            }
            What::Observed { target, version } => {
                if hub.follows(&target, version) {
                    self.fetch(hub, vec![target]);
                }
            }
        }
    }

    /// After missing what was sent for a while: the cache may hold what other replicas
    /// changed, and followed watchers may lack their owners' latest observations.
    fn catch_up(&self, hub: &Hub) {
        hub.inner.reads.invalidate_all();
        hub.written_everywhere_here();
        let followed = hub.followed();
        if !followed.is_empty() {
            self.fetch(hub, followed);
        }
    }

    /// Reads the latest observations of `targets` and applies those newer than what the
    /// followers here hold.
    fn fetch(&self, hub: &Hub, targets: Vec<Target>) {
        let fleet = self.clone();
        let hub = hub.clone();
        tokio::spawn(async move {
            let keys: Vec<String> = targets.iter().map(Target::key).collect();
            match fleet.inner.store.observations(&keys).await {
                Ok(observations) => {
                    for observation in observations {
                        relay::apply(&hub, observation);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the owners' observations; followers wait for the next")
                }
            }
        });
    }

    /// Watchers started here: their owners (maybe this replica) learn it at once, in
    /// one statement and a NOTIFY per [`WATCH_BATCH`] targets.
    pub(super) fn watching(&self, targets: Vec<Target>) {
        let fleet = self.clone();
        tokio::spawn(async move {
            let (keys, shards) = leases::keyed(targets.clone());
            if let Err(e) = fleet
                .inner
                .store
                .fleet_watching(&keys, &shards, leases::INTEREST)
                .await
            {
                tracing::warn!(error = %e, "cannot tell the fleet of new watchers; their owners learn at their next tick");
            }
            for batch in targets.chunks(WATCH_BATCH) {
                fleet.send(What::Watch(batch.to_vec()));
            }
        });
    }

    /// Asks the owners of `targets` to say their views again.
    fn ask_again(&self, targets: Vec<Target>) {
        for batch in targets.chunks(WATCH_BATCH) {
            self.send(What::Watch(batch.to_vec()));
        }
    }

    /// Reads the observations the store has newer than those `followed` holds (a
    /// notification lost, a read of it that failed).
    async fn catch_up_versions(&self, hub: &Hub, followed: Vec<(Target, i64)>) {
        let keys: Vec<String> = followed.iter().map(|(t, _)| t.key()).collect();
        let held: std::collections::HashMap<String, i64> = keys
            .iter()
            .cloned()
            .zip(followed.iter().map(|(_, v)| *v))
            .collect();
        match self.inner.store.observation_versions(&keys).await {
            Ok(versions) => {
                let missed: Vec<Target> = versions
                    .into_iter()
                    .filter(|(key, version)| held.get(key).is_some_and(|v| v < version))
                    .filter_map(|(key, _)| Target::from_key(&key))
                    .collect();
                if !missed.is_empty() {
                    tracing::debug!(
                        missed = missed.len(),
                        "reading observations this replica missed"
                    );
                    self.fetch(hub, missed);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot compare the followers' versions"),
        }
    }

    pub(super) fn pushed(&self, push: &Push) {
        self.send(What::Pushed(push.clone()));
    }

    pub(super) fn written(&self, waba_id: Option<&str>, phone_number_id: Option<&str>) {
        if waba_id.is_none() && phone_number_id.is_none() {
            return; // nothing another replica holds (a business's pre-verified pool)
        }
        self.send(What::Written {
            waba_id: waba_id.map(str::to_owned),
            phone_number_id: phone_number_id.map(str::to_owned),
        });
    }

    /// Gives back this replica's leases, so that others take its shards at once.
    pub(super) async fn leave(&self) {
        // After the tick in flight, if any: it would take the leases back.
        *self.inner.ticking.lock().await = true;
        self.inner.relay.drop_all();
        if let Err(e) = self.inner.store.fleet_leave(&self.inner.me).await {
            tracing::warn!(error = %e, "cannot give back this replica's leases; they lapse by themselves");
        }
    }

    /// Sends in the background: the webhook or the write has its answer already.
    fn send(&self, what: What) {
        let Some(payload) = self.payload(what) else {
            return;
        };
        let store = self.inner.store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.publish(CHANNEL, &payload).await {
                tracing::warn!(error = %e, "cannot tell the other replicas of a change; they learn it at their next poll");
            }
        });
    }

    /// `what` as this replica tells it; `None` if too large for a NOTIFY.
    fn payload(&self, what: What) -> Option<String> {
        let change = Change {
            from: self.inner.me.clone(),
            what,
        };
        let payload = serde_json::to_string(&change).ok()?;
        if payload.len() > MAX_NOTIFICATION {
            tracing::warn!(
                bytes = payload.len(),
                "a change too large to tell the other replicas; they learn it at their next poll"
            );
            return None;
        }
        Some(payload)
    }
}
