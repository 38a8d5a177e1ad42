//! Who does what across the replicas of one PostgreSQL store: shard leases, the targets
//! some replica watches, the owners' latest observations, and turns (one replica at a
//! time onboards or removes a WABA). SQLite and memory are one
//! replica, which polls everything it watches: every call here answers `None` there.
//!
//! A replica's tick is one transaction of a handful of statements, however many WABAs
//! are watched: it says it is alive, renews its leases, gives back what exceeds its fair
//! share (the shard count over the live replicas, rounded up) or takes free and lapsed
//! shards up to it, refreshes the targets it watches, and reads those of its shards.
//! Every time is the database's (`{now}`, the transaction's start).

use super::{Pool, Sql, millis};
use crate::store::Error;
use crate::store::types::{Lease, Observation, TickPlan};
use sqlx::Row;
use std::time::Duration;

const ALIVE: &str = "INSERT INTO fleet_replicas (replica, seen_at) VALUES ($1, {now}) \
    ON CONFLICT (replica) DO UPDATE SET seen_at = excluded.seen_at";
const LIVE: &str = "SELECT COUNT(*) AS n FROM fleet_replicas WHERE seen_at > {now} - $1";
/// Every statement here locks shard rows in shard order (renewing, taking), and watched
/// rows in target order (the caller sorts them): two replicas' ticks wait for each other
/// rather than deadlock.
const RENEW: &str = "UPDATE fleet_shards SET expires_at = {now} + $2 WHERE shard IN \
    (SELECT shard FROM fleet_shards WHERE owner = $1 ORDER BY shard FOR UPDATE) \
    AND owner = $1 RETURNING shard";
const GIVE_BACK: &str =
    "UPDATE fleet_shards SET expires_at = 0 WHERE owner = $1 AND shard = ANY($2)";
/// Free or lapsed shards, at random (replicas claiming at once rarely want the same),
/// taken only if still lapsed when the row is locked: of two claimants one wins.
const TAKE: &str = "INSERT INTO fleet_shards (shard, owner, expires_at) \
    SELECT s, $1, {now} + $2 FROM (SELECT s FROM generate_series(0, $3 - 1) AS s \
    WHERE NOT EXISTS (SELECT 1 FROM fleet_shards f WHERE f.shard = s AND f.expires_at > {now}) \
    ORDER BY random() LIMIT $4) AS free ORDER BY s \
    ON CONFLICT (shard) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
    WHERE fleet_shards.expires_at <= {now} RETURNING shard";
/// A row some replica renewed less than half an interest ago is left as it is: each
/// watched target is written about twice per interest, however many replicas watch it.
const WATCHING: &str = "INSERT INTO fleet_watched (target, shard, until) \
    SELECT t, s, {now} + $3 FROM unnest($1::text[], $2::int[]) AS w(t, s) ORDER BY t \
    ON CONFLICT (target) DO UPDATE SET until = excluded.until \
    WHERE fleet_watched.until < excluded.until - $3 / 2";
const WATCHED: &str =
    "SELECT target FROM fleet_watched WHERE shard = ANY($1) AND until > {now} ORDER BY target";
/// Rows nobody renews: lapsed interest after a minute, replicas gone for an hour.
const FORGET_WATCHED: &str = "DELETE FROM fleet_watched WHERE until < {now} - 60000";
const FORGET_REPLICAS: &str = "DELETE FROM fleet_replicas WHERE seen_at < {now} - 3600000";
/// Observations of targets nobody has watched for a day (a removed customer's numbers),
/// and turns whose holder died an hour ago.
const FORGET_OBSERVATIONS: &str = "DELETE FROM fleet_observations WHERE updated_at < {now} - 86400000 \
    AND target NOT IN (SELECT target FROM fleet_watched)";
const FORGET_TURNS: &str = "DELETE FROM turns WHERE until < {now} - 3600000";
const LEAVE_SHARDS: &str = "DELETE FROM fleet_shards WHERE owner = $1";
const LEAVE: &str = "DELETE FROM fleet_replicas WHERE replica = $1";
const OBSERVE: &str = "INSERT INTO fleet_observations (target, version, body, updated_at) \
    VALUES ($1, 1, $2, {now}) ON CONFLICT (target) DO UPDATE SET \
    version = fleet_observations.version + 1, body = excluded.body, \
    updated_at = excluded.updated_at RETURNING version";
/// A turn free, lapsed, or already the holder's (a renewal).
const TAKE_TURN: &str = "INSERT INTO turns (name, holder, until) VALUES ($1, $2, {now} + $3) \
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until \
    WHERE turns.until <= {now} OR turns.holder = excluded.holder RETURNING holder";
const GIVE_TURN: &str = "DELETE FROM turns WHERE name = $1 AND holder = $2";
const VERSIONS: &str = "SELECT target, version FROM fleet_observations WHERE target = ANY($1)";
const OBSERVATIONS: &str =
    "SELECT target, version, body FROM fleet_observations WHERE target = ANY($1)";

impl Sql {
    fn pg(&self) -> Option<&sqlx::PgPool> {
        match &self.pool {
            Pool::Postgres(pool) => Some(pool),
            Pool::Sqlite(_) => None,
        }
    }

    pub(crate) async fn fleet_tick(&self, plan: TickPlan<'_>) -> Result<Option<Lease>, Error> {
        let Some(pool) = self.pg() else {
            return Ok(None);
        };
        let q = |text: &str| self.sql(text);
        let ttl = millis(plan.ttl);
        let shards = i32::try_from(plan.shards).unwrap_or(i32::MAX);
        let mut tx = pool.begin().await?;
        sqlx::query(&q(ALIVE))
            .bind(plan.replica)
            .execute(&mut *tx)
            .await?;
        let live: i64 = sqlx::query(&q(LIVE))
            .bind(ttl)
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
        let live = u32::try_from(live.max(1)).unwrap_or(u32::MAX);
        let fair = plan.shards.div_ceil(live);
        let mut mine: Vec<i32> = sqlx::query(&q(RENEW))
            .bind(plan.replica)
            .bind(ttl)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| row.try_get("shard"))
            .collect::<Result<_, _>>()?;
        mine.sort_unstable();
        let fair_len = usize::try_from(fair).unwrap_or(usize::MAX);
        if mine.len() > fair_len {
            let extra = mine.split_off(fair_len);
            sqlx::query(&q(GIVE_BACK))
                .bind(plan.replica)
                .bind(&extra)
                .execute(&mut *tx)
                .await?;
        } else if mine.len() < fair_len {
            let want = i64::try_from(fair_len - mine.len()).unwrap_or(i64::MAX);
            let taken = sqlx::query(&q(TAKE))
                .bind(plan.replica)
                .bind(ttl)
                .bind(shards)
                .bind(want)
                .fetch_all(&mut *tx)
                .await?;
            for row in taken {
                mine.push(row.try_get("shard")?);
            }
            mine.sort_unstable();
        }
        if let Some((targets, target_shards)) = plan.watching
            && !targets.is_empty()
        {
            sqlx::query(&q(WATCHING))
                .bind(targets)
                .bind(target_shards)
                .bind(millis(plan.interest))
                .execute(&mut *tx)
                .await?;
        }
        let watched = if mine.is_empty() {
            Vec::new()
        } else {
            sqlx::query(&q(WATCHED))
                .bind(&mine)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| row.try_get("target"))
                .collect::<Result<_, _>>()?
        };
        if plan.tidy {
            sqlx::query(&q(FORGET_WATCHED)).execute(&mut *tx).await?;
            sqlx::query(&q(FORGET_REPLICAS)).execute(&mut *tx).await?;
            sqlx::query(&q(FORGET_OBSERVATIONS))
                .execute(&mut *tx)
                .await?;
            sqlx::query(&q(FORGET_TURNS)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Some(Lease {
            shards: mine
                .into_iter()
                .filter_map(|s| u32::try_from(s).ok())
                .collect(),
            replicas: live,
            watched,
        }))
    }

    /// Marks `targets` (with their shards) watched for `interest`, at once (a new
    /// watcher's owner should not wait for the next tick to learn of it).
    pub(crate) async fn fleet_watching(
        &self,
        targets: &[String],
        shards: &[i32],
        interest: Duration,
    ) -> Result<(), Error> {
        let Some(pool) = self.pg() else {
            return Ok(());
        };
        sqlx::query(&self.sql(WATCHING))
            .bind(targets)
            .bind(shards)
            .bind(millis(interest))
            .execute(pool)
            .await?;
        Ok(())
    }

    /// Gives back every lease of `replica` and forgets it: a replica that stops hands
    /// its shards over at once instead of after their expiry.
    pub(crate) async fn fleet_leave(&self, replica: &str) -> Result<(), Error> {
        let Some(pool) = self.pg() else {
            return Ok(());
        };
        let mut tx = pool.begin().await?;
        sqlx::query(LEAVE_SHARDS)
            .bind(replica)
            .execute(&mut *tx)
            .await?;
        sqlx::query(LEAVE).bind(replica).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Keeps `body` as `target`'s latest observation and, in the same transaction, sends
    /// `payload(version)` on `channel` (PostgreSQL sends a NOTIFY at commit): kept and
    /// told, or neither. Its new version.
    pub(crate) async fn put_observation(
        &self,
        target: &str,
        body: &str,
        channel: &str,
        payload: &(dyn Fn(i64) -> String + Sync),
    ) -> Result<Option<i64>, Error> {
        let Some(pool) = self.pg() else {
            return Ok(None);
        };
        let mut tx = pool.begin().await?;
        let version: i64 = sqlx::query(&self.sql(OBSERVE))
            .bind(target)
            .bind(body)
            .fetch_one(&mut *tx)
            .await?
            .try_get("version")?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(channel)
            .bind(payload(version))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(version))
    }

    /// The versions of the latest observations of those of `targets` that have one.
    pub(crate) async fn observation_versions(
        &self,
        targets: &[String],
    ) -> Result<Vec<(String, i64)>, Error> {
        let Some(pool) = self.pg() else {
            return Ok(Vec::new());
        };
        sqlx::query(VERSIONS)
            .bind(targets)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("target")?, row.try_get("version")?)))
            .collect()
    }

    /// Takes (or renews) the turn `name` for `holder` for `lease`: whether it has it.
    pub(crate) async fn take_turn(
        &self,
        name: &str,
        holder: &str,
        lease: Duration,
    ) -> Result<bool, Error> {
        let Some(pool) = self.pg() else {
            return Ok(true);
        };
        let row = sqlx::query(&self.sql(TAKE_TURN))
            .bind(name)
            .bind(holder)
            .bind(millis(lease))
            .fetch_optional(pool)
            .await?;
        Ok(row.is_some())
    }

    pub(crate) async fn give_turn(&self, name: &str, holder: &str) -> Result<(), Error> {
        let Some(pool) = self.pg() else {
            return Ok(());
        };
        sqlx::query(GIVE_TURN)
            .bind(name)
            .bind(holder)
            .execute(pool)
            .await?;
        Ok(())
    }

    /// The latest observations of those of `targets` that have one.
    pub(crate) async fn observations(&self, targets: &[String]) -> Result<Vec<Observation>, Error> {
        let Some(pool) = self.pg() else {
            return Ok(Vec::new());
        };
        sqlx::query(OBSERVATIONS)
            .bind(targets)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(Observation {
                    target: row.try_get("target")?,
                    version: row.try_get("version")?,
                    body: row.try_get("body")?,
                })
            })
            .collect()
    }
}
