//! PostgreSQL: the store replicas share. What differs from SQLite: how it connects, its
//! clock expression, its migrations.
//!
//! Migrations run at every start, and several replicas may start at once: sqlx's
//! `Migrator::run` holds a session-level `pg_advisory_lock` (its key derived from
//! `current_database()`) from before it creates `_sqlx_migrations` until after the last
//! migration, each of which runs in its own transaction. So one replica migrates and the
//! others wait, then find every migration applied and go on (read in sqlx-postgres 0.8.6,
//! `migrate.rs`; tested by two concurrent opens in tests/store.rs). The lock is per
//! database, not per schema: stores in two schemas of one database migrate one after
//! the other.
//!
//! TLS (`sslmode=require`, `verify-full`... in the URL) is rustls on ring with the
//! system's roots, as for Meta.

use crate::store::Error;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use std::str::FromStr;

/// A migration this binary does not know (a newer replica's, in a rolling upgrade) is no
/// reason to refuse to start: migrations are only ever added, backward-compatible.
static MIGRATOR: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("migrations/postgres")
};

/// Now, in milliseconds since the Unix epoch, by the database's clock (the start of the
/// statement's transaction: every replica reads the same clock).
/// `floor`, as SQLite's cast truncates: both engines agree to the millisecond.
pub(super) const NOW: &str = "CAST(floor(EXTRACT(EPOCH FROM now()) * 1000) AS BIGINT)";

pub(super) async fn connect(url: &SecretString, shown: &str) -> Result<PgPool, Error> {
    let options = PgConnectOptions::from_str(url.expose_secret())
        .map_err(|e| Error::PostgresUrl(e.to_string()))?;
    let failed = |source| Error::Connect {
        store: shown.to_owned(),
        source,
    };
    // One connection first: a pool that cannot connect reports only "pool timed out"
    // after its wait; this says why (refused, bad password, no such database) at once.
    PgConnection::connect_with(&options)
        .await
        .map_err(failed)?
        .close()
        .await
        .map_err(failed)?;
    let pool = PgPoolOptions::new()
        .max_connections(8)
        // A store that is down says so within seconds, not after sqlx's 30 s: callers'
        // write deadlines are about that long.
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(failed)?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}
