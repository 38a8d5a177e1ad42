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
//! The pool is made lazily (`connect_lazy_with`: nothing is sent until it is used), then
//! [`ready`] makes one connection of its own and runs the migrations, so a store opened
//! while the server cannot be reached is the same pool, made ready later; [`unreachable`]
//! says which errors a wait cures.
//!
//! TLS (`sslmode=require`, `verify-full`... in the URL) is rustls on ring with the
//! system's roots, as for Meta.

use crate::store::Error;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

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

/// How long one attempt to reach the server may take before it counts as unreachable
/// (a host that drops packets would otherwise hold it for the kernel's TCP timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A pool that connects when it is first used: nothing is sent yet. Only the URL is
/// checked.
pub(super) fn lazy(url: &SecretString) -> Result<PgPool, Error> {
    let options = PgConnectOptions::from_str(url.expose_secret())
        .map_err(|e| Error::PostgresUrl(e.to_string()))?;
    Ok(PgPoolOptions::new()
        .max_connections(8)
        // A store that is down says so within seconds, not after sqlx's 30 s: callers'
        // write deadlines are about that long.
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

/// Makes `pool` ready: one connection first (a pool that cannot connect reports only
/// "pool timed out" after its wait; this says why, refused, bad password, no such
/// database, at once), then the migrations.
pub(super) async fn ready(pool: &PgPool, shown: &str) -> Result<(), Error> {
    let failed = |source| Error::Connect {
        store: shown.to_owned(),
        source,
    };
    let options = pool.connect_options();
    let connection = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| {
            failed(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
            )))
        })?
        .map_err(failed)?;
    connection.close().await.map_err(failed)?;
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// Whether `e` says only that the server cannot be reached now (down, starting, shutting
/// down, out of connections, the network), something waiting cures; not a wrong URL,
/// password, database or certificate, which no wait mends.
pub(crate) fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception; 57P01-03: admin or crash shutdown, cannot
            // connect now (starting up); 53300: too many connections.
            code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}
