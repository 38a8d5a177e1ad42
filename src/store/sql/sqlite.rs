//! SQLite: one file for a single replica. What differs from PostgreSQL: how it connects,
//! its clock expression, its migrations.
//!
//! - WAL journal: readers never wait for the writer. `synchronous = FULL`: a token is
//!   on disk when `put_token` returns (an Embedded Signup code cannot be exchanged twice,
//!   so losing the token it gave is losing the customer). Writes are rare; the cost is
//!   nothing that matters here.
//! - The file is created when missing. A backup is a copy made with `sqlite3 FILE
//!   ".backup COPY"` (or `VACUUM INTO`), not a `cp` of a live file and its `-wal`.
//! - Migrations run at open. sqlx takes no lock on SQLite (its `Migrate::lock` is a no-op
//!   there): one process per file, which is what this backend is for.

use crate::store::Error;
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteSynchronous;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use std::path::Path;
use std::time::Duration;

/// A migration this binary does not know (a newer replica's, in a rolling upgrade) is no
/// reason to refuse to start: migrations are only ever added, backward-compatible.
static MIGRATOR: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("migrations/sqlite")
};

/// Now, in milliseconds since the Unix epoch, by SQLite's clock.
pub(super) const NOW: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

pub(super) async fn connect(path: &Path) -> Result<SqlitePool, Error> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|source| Error::Connect {
            store: format!("sqlite:{}", path.display()),
            source,
        })?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}
