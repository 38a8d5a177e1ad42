//! Which replica polls what. Every [`TICK`] each replica runs one transaction (see
//! `store/sql/leases.rs`): it renews its shard leases for [`LEASE`], gives back those
//! beyond its fair share or takes free and lapsed ones up to it, tells which targets it
//! has subscribers for (every [`INTEREST_REFRESH`]), and learns the watched targets of
//! its shards, which its relay then holds (polls and publishes).
//!
//! - A replica that dies stops renewing: within [`LEASE`] its leases lapse, and within a
//!   [`TICK`] more the others, counting one replica fewer, take them. A replica that
//!   stops gives them back first ([`super::Fleet::leave`]).
//! - A replica joining makes everyone's fair share smaller: the others give back their
//!   extra shards at their next tick and it takes them at its next.
//! - While a target changes hands both may poll it for a moment (an extra call); it is
//!   never without a poller for longer than a lease.
//! - A replica whose ticks fail for a whole [`LEASE`] (the store is away) polls every
//!   target it has subscribers for itself until a tick passes again: the cost rises,
//!   nothing is missed.

use super::{Fleet, SHARDS};
use crate::store::TickPlan;
use crate::watch::{Hub, Target};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a lease lasts without renewal: a dead owner's targets are polled again within
/// this and a [`TICK`].
pub(in crate::watch) const LEASE: Duration = Duration::from_secs(10);
/// How often a replica renews its leases.
pub(in crate::watch) const TICK: Duration = Duration::from_secs(3);
/// How long a replica's word that it watches a target holds.
pub(super) const INTEREST: Duration = Duration::from_secs(60);
/// How often a replica repeats it.
const INTEREST_REFRESH: Duration = Duration::from_secs(20);
/// Every so many ticks, a replica deletes the rows nobody renews any more.
const TIDY_EVERY: u64 = 100;
/// A follower still without its owner's first observation this long after it started
/// asks again (its `Watch` may have been lost, or its owner may have just changed).
const FOLLOW_ASK: Duration = Duration::from_secs(5);
/// Every so many ticks, a replica compares the versions of the observations its followers
/// hold with the store's (one statement), and reads those it missed.
const VERSIONS_EVERY: u64 = 5;

/// The shards this replica polls: `None` for all of them (no fleet, or the store away).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(in crate::watch) struct Owned {
    shards: Option<Arc<BTreeSet<u32>>>,
}

impl Owned {
    fn of(shards: impl IntoIterator<Item = u32>) -> Owned {
        Owned {
            shards: Some(Arc::new(shards.into_iter().collect())),
        }
    }

    /// Whether this replica reads `target` from Meta itself.
    pub(in crate::watch) fn polls(&self, target: &Target) -> bool {
        self.shards
            .as_ref()
            .is_none_or(|shards| shards.contains(&shard_of(target)))
    }

    fn count(&self) -> Option<usize> {
        self.shards.as_ref().map(|s| s.len())
    }
}

/// `targets` as the store names them, with their shards, in key order (so that replicas
/// refreshing the same rows lock them in the same order).
pub(super) fn keyed(mut targets: Vec<Target>) -> (Vec<String>, Vec<i32>) {
    let mut keyed: Vec<(String, i32)> = targets
        .drain(..)
        .map(|t| (t.key(), i32::try_from(shard_of(&t)).unwrap_or_default()))
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().unzip()
}

/// The shard a target hashes into: the same on every replica and every version.
pub(super) fn shard_of(target: &Target) -> u32 {
    let digest = Sha256::digest(target.key().as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % SHARDS
}

/// A replica's ticks, and what it remembers between them.
#[derive(Debug)]
pub(super) struct Ticks {
    /// When a tick last went through; `None`: never.
    last_ok: Option<Instant>,
    /// When this replica last said what it watches.
    last_interest: Option<Instant>,
    count: u64,
}

impl Ticks {
    /// The first tick, before the replica serves: it knows what it polls from the start.
    pub(super) async fn first(fleet: &Fleet, hub: &Hub) -> Ticks {
        let mut ticks = Ticks {
            last_ok: None,
            last_interest: None,
            count: 0,
        };
        ticks.tick(fleet, hub).await;
        ticks
    }

    pub(super) async fn run(mut self, fleet: Fleet, hub: Hub) {
        let mut stop = hub.inner.shutdown.clone();
        loop {
            tokio::select! {
                () = tokio::time::sleep(TICK) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            self.tick(&fleet, &hub).await;
        }
    }

    async fn tick(&mut self, fleet: &Fleet, hub: &Hub) {
        let shared = &fleet.inner;
        // Held through the tick: a replica leaving waits for it, then ticks no more.
        let left = shared.ticking.lock().await;
        if *left {
            return;
        }
        let refresh = self
            .last_interest
            .is_none_or(|at| at.elapsed() >= INTEREST_REFRESH);
        let watching = refresh.then(|| keyed(hub.local_targets(&shared.relay.held())));
        let plan = TickPlan {
            replica: &shared.me,
            shards: SHARDS,
            ttl: LEASE,
            watching: watching
                .as_ref()
                .map(|(keys, shards)| (keys.as_slice(), shards.as_slice())),
            interest: INTEREST,
            tidy: self.count.is_multiple_of(TIDY_EVERY),
        };
        self.count += 1;
        let started = Instant::now();
        let failure = match tokio::time::timeout(TICK, shared.store.fleet_tick(plan)).await {
            Ok(Ok(Some(lease))) => {
                self.last_ok = Some(started);
                if refresh {
                    self.last_interest = Some(started);
                }
                if hub.set_owned(Owned::of(lease.shards.iter().copied())) {
                    tracing::info!(
                        shards = lease.shards.len(),
                        replicas = lease.replicas,
                        "this replica's share of the watched targets changed"
                    );
                }
                let watched = lease.watched.iter().filter_map(|key| Target::from_key(key));
                shared.relay.hold_only(fleet, hub, watched.collect());
                metrics::gauge!("waba_fleet_replicas").set(f64::from(lease.replicas));
                metrics::gauge!("waba_fleet_shards").set(lease.shards.len() as f64);
                let followers = hub.followers(FOLLOW_ASK);
                if !followers.waiting.is_empty() {
                    fleet.ask_again(followers.waiting);
                }
                if self.count.is_multiple_of(VERSIONS_EVERY) && !followers.live.is_empty() {
                    fleet.catch_up_versions(hub, followers.live).await;
                }
                return;
            }
            Ok(Ok(None)) => return, // a store of one replica: never here
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {TICK:?}"),
        };
        // A tick before the lease is out: the switch comes within the lease.
        let lapsed = self.last_ok.is_none_or(|at| at.elapsed() >= LEASE - TICK);
        if lapsed && hub.owned().count().is_some() {
            tracing::warn!(
                error = failure,
                "cannot renew this replica's leases: it polls every target it has subscribers for until the store answers"
            );
            shared.relay.drop_all();
            hub.set_owned(Owned::default());
        } else {
            tracing::debug!(error = failure, "a lease tick failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_spread() {
        // Pinned (SHA-256 of the key, first four bytes, modulo 64): replicas of two
        // versions in a rolling upgrade must agree on every target's shard.
        assert_eq!(shard_of(&Target::Waba("102290129340398".into())), 45);
        assert_eq!(shard_of(&Target::Number("106540352242922".into())), 60);
        let used: BTreeSet<u32> = (0..1000)
            .map(|i| shard_of(&Target::Waba(format!("1022901293{i:05}"))))
            .collect();
        assert_eq!(used.len(), SHARDS as usize, "1,000 WABAs use every shard");
    }

    #[test]
    fn no_shards_means_polling_everything() {
        let target = Target::Waba("1".into());
        assert!(Owned::default().polls(&target));
        assert!(Owned::of([shard_of(&target)]).polls(&target));
        assert!(!Owned::of([]).polls(&target));
    }
}
