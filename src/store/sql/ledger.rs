//! The ledger of Meta's per-number limits on SQL: every replica's attempts in one table.
//!
//! Spending is one transaction per attempt. Its first statement makes sure the number's
//! row exists; its second reads that row locked (`FOR UPDATE` on PostgreSQL; on SQLite
//! the first statement's write already holds the database's write lock), so of two
//! replicas spending on one number the second waits for the first's commit and counts
//! its attempt. Attempts older than the window are deleted in the same transaction, and
//! every time is the database's (`{now}`, read once in the transaction).

use super::{Pool, Sql, millis};
use crate::store::Error;
use crate::store::types::{AttemptId, LedgerView};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::time::Duration;

const ENSURE: &str = "INSERT INTO ledger_numbers (phone_number_id, kind) VALUES ($1, $2) \
    ON CONFLICT (phone_number_id, kind) DO NOTHING";
const LOCK: &str = "SELECT blocked_until, {now} AS now FROM ledger_numbers \
    WHERE phone_number_id = $1 AND kind = $2{for_update}";
const FORGET: &str =
    "DELETE FROM ledger_attempts WHERE phone_number_id = $1 AND kind = $2 AND at <= $3";
const ATTEMPTS: &str = "SELECT at FROM ledger_attempts WHERE phone_number_id = $1 AND kind = $2 \
    AND at > $3 ORDER BY at";
const BLOCKED: &str = "SELECT blocked_until, {now} AS now FROM ledger_numbers \
    WHERE phone_number_id = $1 AND kind = $2";
const NOW: &str = "SELECT {now} AS now";
const RECORD: &str =
    "INSERT INTO ledger_attempts (attempt_id, phone_number_id, kind, at) VALUES ($1, $2, $3, $4)";
const REFUND: &str = "DELETE FROM ledger_attempts WHERE attempt_id = $1";
/// Meta's block, kept if a later one is already recorded.
const BLOCK: &str = "INSERT INTO ledger_numbers (phone_number_id, kind, blocked_until) \
    VALUES ($1, $2, {now} + $3) ON CONFLICT (phone_number_id, kind) DO UPDATE SET \
    blocked_until = CASE WHEN ledger_numbers.blocked_until IS NULL \
    OR ledger_numbers.blocked_until < excluded.blocked_until \
    THEN excluded.blocked_until ELSE ledger_numbers.blocked_until END";

/// PostgreSQL's wall clock now, in milliseconds (see [`Sql::ledger_sql`]).
const CLOCK_NOW: &str = "CAST(floor(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT)";

fn time(ms: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_millis(ms).ok_or(Error::Corrupt {
        waba_id: String::new(),
        what: "ledger time",
    })
}

impl Sql {
    /// `text` for the engine. On PostgreSQL the clock is the statement's, not the
    /// transaction's start (`now()`): a spender that waited on the row lock counts its
    /// attempt when it got it, not before, so the attempt leaves this window no earlier
    /// than Meta's.
    fn ledger_sql(&self, text: &str) -> String {
        match self.pool {
            Pool::Sqlite(_) => self.sql(text).replace("{for_update}", ""),
            Pool::Postgres(_) => text
                .replace("{now}", CLOCK_NOW)
                .replace("{for_update}", " FOR UPDATE"),
        }
    }

    pub(crate) async fn ledger_spend(
        &self,
        number: &str,
        kind: &str,
        window: Duration,
        decide: impl FnOnce(&LedgerView) -> bool + Send,
    ) -> Result<(LedgerView, Option<AttemptId>), Error> {
        let (ensure, lock, forget, attempts, record) = (
            self.ledger_sql(ENSURE),
            self.ledger_sql(LOCK),
            self.ledger_sql(FORGET),
            self.ledger_sql(ATTEMPTS),
            self.ledger_sql(RECORD),
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(&ensure).bind(number).bind(kind).execute(&mut *tx).await?;
            let row = sqlx::query(&lock).bind(number).bind(kind).fetch_one(&mut *tx).await?;
            let now_ms: i64 = row.try_get("now")?;
            let blocked: Option<i64> = row.try_get("blocked_until")?;
            let since = now_ms - millis(window);
            sqlx::query(&forget).bind(number).bind(kind).bind(since).execute(&mut *tx).await?;
            let rows = sqlx::query(&attempts).bind(number).bind(kind).bind(since).fetch_all(&mut *tx).await?;
            let mut view = LedgerView {
                now: time(now_ms)?,
                attempts: rows.iter().map(|r| time(r.try_get("at")?)).collect::<Result<_, Error>>()?,
                blocked_until: blocked.filter(|b| *b > now_ms).map(time).transpose()?,
            };
            let spent = if decide(&view) {
                let id = AttemptId::new();
                sqlx::query(&record).bind(id.as_str()).bind(number).bind(kind).bind(now_ms).execute(&mut *tx).await?;
                view.attempts.push(view.now);
                Some(id)
            } else {
                None
            };
            tx.commit().await?;
            Ok((view, spent))
        })
    }

    pub(crate) async fn ledger_refund(&self, attempt: &AttemptId) -> Result<(), Error> {
        on_pool!(self, pool => {
            sqlx::query(REFUND).bind(attempt.as_str()).execute(pool).await?;
        });
        Ok(())
    }

    pub(crate) async fn ledger_block(
        &self,
        number: &str,
        kind: &str,
        for_: Duration,
    ) -> Result<(), Error> {
        let block = self.ledger_sql(BLOCK);
        on_pool!(self, pool => {
            sqlx::query(&block).bind(number).bind(kind).bind(millis(for_)).execute(pool).await?;
        });
        Ok(())
    }

    pub(crate) async fn ledger_view(
        &self,
        number: &str,
        kind: &str,
        window: Duration,
    ) -> Result<LedgerView, Error> {
        let (blocked_sql, now_sql, attempts) = (
            self.ledger_sql(BLOCKED),
            self.ledger_sql(NOW),
            self.ledger_sql(ATTEMPTS),
        );
        on_pool!(self, pool => {
            let row = sqlx::query(&blocked_sql).bind(number).bind(kind).fetch_optional(pool).await?;
            let (now_ms, blocked): (i64, Option<i64>) = match row {
                Some(row) => (row.try_get("now")?, row.try_get("blocked_until")?),
                None => (sqlx::query(&now_sql).fetch_one(pool).await?.try_get("now")?, None),
            };
            let since = now_ms - millis(window);
            let rows = sqlx::query(&attempts).bind(number).bind(kind).bind(since).fetch_all(pool).await?;
            Ok(LedgerView {
                now: time(now_ms)?,
                attempts: rows.iter().map(|r| time(r.try_get("at")?)).collect::<Result<_, Error>>()?,
                blocked_until: blocked.filter(|b| *b > now_ms).map(time).transpose()?,
            })
        })
    }
}
