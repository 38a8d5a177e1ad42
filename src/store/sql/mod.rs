//! The SQL backends: SQLite and PostgreSQL behind one set of queries.
//!
//! The two dialects agree on almost everything this store needs: `$n` parameters (sqlx
//! binds SQLite's `$n` by number), `INSERT ... ON CONFLICT ... DO UPDATE`, `RETURNING`,
//! `|` and `&` on integers, `CASE`, `COALESCE`. So every query is written once, here; the
//! engine-specific parts are the connection, the migrations, and the clock (`{now}` in a
//! query is replaced by the engine's expression for now in milliseconds: see
//! `sqlite.rs`, `postgres.rs`). Each engine has its own pool type, so [`on_pool!`]
//! writes a query's code once and has the compiler check it for both.
//!
//! Compare-and-set is a conditional `UPDATE ... WHERE version = $n RETURNING ...`: one
//! statement, so the check and the write are atomic on both engines without a
//! transaction or a lock held across round trips; exactly one of several racing writers
//! with the same version sees its row come back. The next shared state (claims, leases)
//! follows the same shape: a conditional update against the database's clock, whose
//! returned row says who won.
//!
//! Times are integers (milliseconds since the epoch) in both engines: one type, exact
//! comparisons, one decoding path; always written by the database's clock, never by a
//! replica's.

mod postgres;
mod sqlite;

pub(crate) use postgres::unreachable;

use super::crypto::{Keys, Sealed};
use super::types::{Cas, Change, Customer, CustomerPage, Progress, Rekeyed, StepFailure, Version};
use super::{Error, MAX_PAGE};
use crate::model::{OnboardingStep, TokenState};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::{ColumnIndex, Decode, Row, Type};
use std::fmt;
use std::num::NonZeroU32;
use std::path::Path;

pub(crate) struct Sql {
    pool: Pool,
    keys: Keys,
}

enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl fmt::Debug for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sql")
            .field("backend", &self.backend_name())
            .field("keys", &self.keys)
            .finish()
    }
}

/// Runs `$body` with `$pool` bound to the engine's pool: the same code, type-checked
/// once per engine.
macro_rules! on_pool {
    ($sql:expr, $pool:ident => $body:expr) => {
        match &$sql.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

// After the macro: it is in scope by text order.
mod idempotency;
mod leases;
mod ledger;
mod notify;

pub(crate) use notify::MAX_PAYLOAD;
pub use notify::{Heard, Notifications};

const COLUMNS: &str = "waba_id, business_id, token_state, token_expires_at, \
    webhooks_subscribed, steps_done, failed_step, failure_code, failure_message, \
    onboarded_at, created_at, updated_at, version, onboarding_request_id";

/// A new customer, or a new token for one: unchecked, its expiry unknown, its onboarding
/// to be done again (a check passed by the old token says nothing of the new) from the
/// steps `$5` (what the onboarding `$6` has done); the business, subscription and times
/// are kept.
const PUT_TOKEN: &str = "INSERT INTO customers (waba_id, token_ciphertext, token_nonce, \
    token_key_id, token_state, steps_done, onboarding_request_id, created_at, updated_at) \
    VALUES ($1, $2, $3, $4, 'unchecked', $5, $6, {now}, {now}) \
    ON CONFLICT (waba_id) DO UPDATE SET token_ciphertext = excluded.token_ciphertext, \
    token_nonce = excluded.token_nonce, token_key_id = excluded.token_key_id, \
    token_state = 'unchecked', token_expires_at = NULL, token_checked_at = NULL, \
    steps_done = excluded.steps_done, \
    onboarding_request_id = excluded.onboarding_request_id, failed_step = NULL, \
    failure_code = NULL, failure_message = NULL, version = customers.version + 1, updated_at = excluded.updated_at \
    RETURNING {columns}";

const GET: &str = "SELECT {columns} FROM customers WHERE waba_id = $1";
const EXISTS: &str = "SELECT 1 FROM customers WHERE waba_id = $1";
const TOKEN: &str =
    "SELECT token_ciphertext, token_nonce, token_key_id FROM customers WHERE waba_id = $1";
const LIST: &str = "SELECT {columns} FROM customers WHERE ($1 IS NULL OR waba_id > $1) \
    ORDER BY waba_id LIMIT $2";
const DELETE: &str = "DELETE FROM customers WHERE waba_id = $1";
/// The token's check, unless some replica did it less than `$2` ms ago.
const CLAIM_TOKEN_CHECK: &str = "UPDATE customers SET token_checked_at = {now} \
    WHERE waba_id = $1 AND (token_checked_at IS NULL OR token_checked_at <= {now} - $2)";
/// `$1` the WABA, `$2` the expected version or NULL; `{set}` from [`set_clause`].
const UPDATE: &str = "UPDATE customers SET {set}, version = version + 1, updated_at = {now} \
    WHERE waba_id = $1 AND ($2 IS NULL OR version = $2) RETURNING {columns}";
const TOKENS_PAGE: &str = "SELECT waba_id, token_ciphertext, token_nonce, token_key_id \
    FROM customers WHERE ($1 IS NULL OR waba_id > $1) ORDER BY waba_id LIMIT $2";
/// Re-encryption: only if the ciphertext is still the one read (its nonce is unique), so a
/// token put meanwhile is never overwritten with the old one.
const REKEY: &str = "UPDATE customers SET token_ciphertext = $2, token_nonce = $3, \
    token_key_id = $4 WHERE waba_id = $1 AND token_nonce = $5";
const NOT_CURRENT: &str = "SELECT COUNT(*) AS n FROM customers WHERE token_key_id <> $1";
const INDEX_NUMBER: &str = "INSERT INTO phone_numbers (phone_number_id, waba_id, updated_at) \
    VALUES ($1, $2, {now}) ON CONFLICT (phone_number_id) DO UPDATE \
    SET waba_id = excluded.waba_id, updated_at = excluded.updated_at";
const WABA_OF: &str = "SELECT waba_id FROM phone_numbers WHERE phone_number_id = $1";
const NUMBERS_OF: &str =
    "SELECT phone_number_id FROM phone_numbers WHERE waba_id = $1 ORDER BY phone_number_id";

/// A duration as the milliseconds the SQL times count in (saturating).
fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The `SET` part of a change; its parameters start at `$3`, bound by [`bind_change!`].
fn set_clause(change: &Change) -> &'static str {
    match change {
        Change::TokenState(_) => "token_state = $3",
        Change::TokenChecked { .. } => {
            "token_state = 'active', business_id = COALESCE($3, business_id), token_expires_at = $4"
        }
        Change::WebhooksSubscribed(_) => "webhooks_subscribed = $3",
        // Every right-hand side reads the row as it was: the failure is cleared only
        // when it was this step's.
        Change::StepDone(_) => {
            "steps_done = steps_done | $3, \
             failure_code = CASE WHEN failed_step = $4 THEN NULL ELSE failure_code END, \
             failure_message = CASE WHEN failed_step = $4 THEN NULL ELSE failure_message END, \
             failed_step = CASE WHEN failed_step = $4 THEN NULL ELSE failed_step END"
        }
        Change::StepFailed(_) => {
            "steps_done = steps_done & $3, failed_step = $4, failure_code = $5, \
             failure_message = $6"
        }
        Change::Onboarded => "onboarded_at = COALESCE(onboarded_at, {now})",
    }
}

macro_rules! bind_change {
    ($query:expr, $change:expr) => {
        match $change {
            Change::TokenState(state) => $query.bind(state.as_str()),
            Change::TokenChecked {
                business_id,
                expires_at,
            } => $query
                .bind(business_id.as_deref())
                .bind(expires_at.map(|t| t.timestamp_millis())),
            Change::WebhooksSubscribed(on) => $query.bind(*on),
            Change::StepDone(step) => $query.bind(bit(*step)).bind(step.as_str()),
            Change::StepFailed(failure) => $query
                .bind(!bit(failure.step))
                .bind(failure.step.as_str())
                .bind(failure.code)
                .bind(failure.message.as_str()),
            Change::Onboarded => $query,
        }
    };
}

fn bit(step: OnboardingStep) -> i64 {
    super::types::step_bit(step) as i64
}

impl Sql {
    pub(crate) async fn open_sqlite(path: &Path, keys: Keys) -> Result<Sql, Error> {
        let pool = Pool::Sqlite(sqlite::connect(path).await?);
        Ok(Sql { pool, keys })
    }

    /// A PostgreSQL store not connected yet: [`Sql::ready`] connects it.
    pub(crate) fn postgres_later(url: &SecretString, keys: Keys) -> Result<Sql, Error> {
        let pool = Pool::Postgres(postgres::lazy(url)?);
        Ok(Sql { pool, keys })
    }

    /// Connects and runs the migrations (a no-op for SQLite, connected at open).
    pub(crate) async fn ready(&self, shown: &str) -> Result<(), Error> {
        match &self.pool {
            Pool::Sqlite(_) => Ok(()),
            Pool::Postgres(pool) => postgres::ready(pool, shown).await,
        }
    }

    /// One statement that needs nothing but a connection: whether the store answers.
    pub(crate) async fn ping(&self) -> Result<(), Error> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub(crate) fn backend_name(&self) -> &'static str {
        match self.pool {
            Pool::Sqlite(_) => "sqlite",
            Pool::Postgres(_) => "postgres",
        }
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// `text` with the engine's clock and the customer columns filled in.
    fn sql(&self, text: &str) -> String {
        let now = match self.pool {
            Pool::Sqlite(_) => sqlite::NOW,
            Pool::Postgres(_) => postgres::NOW,
        };
        text.replace("{columns}", COLUMNS).replace("{now}", now)
    }

    pub(crate) async fn put_token(
        &self,
        waba_id: &str,
        token: &SecretString,
        onboarding: Option<&str>,
    ) -> Result<Customer, Error> {
        let sealed = self.keys.seal(waba_id, token)?;
        let sql = self.sql(PUT_TOKEN);
        let done = Progress::exchanged(onboarding.is_some()).bits();
        on_pool!(self, pool => {
            let row = sqlx::query(&sql)
                .bind(waba_id)
                .bind(sealed.ciphertext.as_slice())
                .bind(sealed.nonce.as_slice())
                .bind(sealed.key_id.as_str())
                .bind(done)
                .bind(onboarding)
                .fetch_one(pool)
                .await?;
            customer(&row)
        })
    }

    pub(crate) async fn customer(&self, waba_id: &str) -> Result<Option<Customer>, Error> {
        let sql = self.sql(GET);
        on_pool!(self, pool => {
            let row = sqlx::query(&sql).bind(waba_id).fetch_optional(pool).await?;
            row.map(|r| customer(&r)).transpose()
        })
    }

    pub(crate) async fn token(&self, waba_id: &str) -> Result<Option<SecretString>, Error> {
        let sealed = on_pool!(self, pool => {
            let row = sqlx::query(TOKEN).bind(waba_id).fetch_optional(pool).await?;
            row.map(|r| sealed(&r)).transpose()?
        });
        sealed.map(|s| self.keys.open(waba_id, &s)).transpose()
    }

    pub(crate) async fn list(
        &self,
        limit: NonZeroU32,
        after: Option<&str>,
    ) -> Result<CustomerPage, Error> {
        let limit = limit.get().min(MAX_PAGE) as usize;
        let sql = self.sql(LIST);
        let mut customers = on_pool!(self, pool => {
            let rows = sqlx::query(&sql)
                .bind(after)
                .bind(limit as i64 + 1)
                .fetch_all(pool)
                .await?;
            rows.iter().map(customer).collect::<Result<Vec<_>, _>>()?
        });
        let next = if customers.len() > limit {
            customers.truncate(limit);
            customers.last().map(|c| c.waba_id.clone())
        } else {
            None
        };
        Ok(CustomerPage { customers, next })
    }

    pub(crate) async fn claim_token_check(
        &self,
        waba_id: &str,
        every: std::time::Duration,
    ) -> Result<bool, Error> {
        let sql = self.sql(CLAIM_TOKEN_CHECK);
        let claimed = on_pool!(self, pool => {
            sqlx::query(&sql).bind(waba_id).bind(millis(every)).execute(pool).await?.rows_affected()
        });
        Ok(claimed > 0)
    }

    pub(crate) async fn delete(&self, waba_id: &str) -> Result<bool, Error> {
        let deleted = on_pool!(self, pool => {
            sqlx::query(DELETE).bind(waba_id).execute(pool).await?.rows_affected()
        });
        Ok(deleted > 0)
    }

    pub(crate) async fn update(
        &self,
        waba_id: &str,
        expected: Option<Version>,
        change: &Change,
    ) -> Result<Cas, Error> {
        let sql = self.sql(&UPDATE.replace("{set}", set_clause(change)));
        let updated = on_pool!(self, pool => {
            let query = sqlx::query(&sql).bind(waba_id).bind(expected.map(|v| v.0));
            let row = bind_change!(query, change).fetch_optional(pool).await?;
            row.map(|r| customer(&r)).transpose()?
        });
        if let Some(customer) = updated {
            return Ok(Cas::Applied(customer));
        }
        if expected.is_none() {
            return Ok(Cas::Missing);
        }
        let exists = on_pool!(self, pool => {
            sqlx::query(EXISTS).bind(waba_id).fetch_optional(pool).await?.is_some()
        });
        Ok(if exists { Cas::Stale } else { Cas::Missing })
    }

    pub(crate) async fn index_numbers(
        &self,
        waba_id: &str,
        numbers: &[String],
    ) -> Result<(), Error> {
        let sql = self.sql(INDEX_NUMBER);
        // In one order for every writer: two replicas indexing overlapping numbers lock
        // their rows in the same order, so they cannot deadlock.
        let mut numbers: Vec<&String> = numbers.iter().collect();
        numbers.sort();
        numbers.dedup();
        // One transaction: all of them or none, and one commit (one fsync) for the lot.
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            for number in numbers {
                sqlx::query(&sql).bind(number.as_str()).bind(waba_id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    pub(crate) async fn waba_of(&self, number: &str) -> Result<Option<String>, Error> {
        Ok(on_pool!(self, pool => {
            let row = sqlx::query(WABA_OF).bind(number).fetch_optional(pool).await?;
            row.map(|r| r.try_get::<String, _>("waba_id")).transpose()?
        }))
    }

    pub(crate) async fn numbers_of(&self, waba_id: &str) -> Result<Vec<String>, Error> {
        Ok(on_pool!(self, pool => {
            let rows = sqlx::query(NUMBERS_OF).bind(waba_id).fetch_all(pool).await?;
            rows.iter()
                .map(|r| r.try_get::<String, _>("phone_number_id"))
                .collect::<Result<Vec<_>, _>>()?
        }))
    }

    /// Re-encrypts, a page at a time, every token not under the current key.
    pub(crate) async fn rekey(&self) -> Result<Rekeyed, Error> {
        const PAGE: i64 = 100;
        let mut done = Rekeyed::default();
        let mut after: Option<String> = None;
        loop {
            let page: Vec<(String, Sealed)> = on_pool!(self, pool => {
                let rows = sqlx::query(TOKENS_PAGE)
                    .bind(after.as_deref())
                    .bind(PAGE)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get::<String, _>("waba_id")?, sealed(r)?)))
                    .collect::<Result<Vec<_>, Error>>()?
            });
            let Some((last, _)) = page.last() else {
                done.left = on_pool!(self, pool => {
                    let row = sqlx::query(NOT_CURRENT)
                        .bind(self.keys.current_id())
                        .fetch_one(pool)
                        .await?;
                    u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or_default()
                });
                return Ok(done);
            };
            after = Some(last.clone());
            for (waba_id, old) in &page {
                done.total += 1;
                if self.keys.is_current(old) {
                    continue;
                }
                // One token no key opens must not hold back every other's rotation.
                let Ok(token) = self.keys.open(waba_id, old) else {
                    done.unreadable.push(waba_id.clone());
                    continue;
                };
                let new = self.keys.seal(waba_id, &token)?;
                let changed = on_pool!(self, pool => {
                    sqlx::query(REKEY)
                        .bind(waba_id.as_str())
                        .bind(new.ciphertext.as_slice())
                        .bind(new.nonce.as_slice())
                        .bind(new.key_id.as_str())
                        .bind(old.nonce.as_slice())
                        .execute(pool)
                        .await?
                        .rows_affected()
                });
                done.changed += changed;
            }
        }
    }

    pub(crate) async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// Reads a customer row. Everything the database sends is checked: an unknown state or
/// step, an impossible time, is an error naming the WABA, never a panic.
fn customer<'r, R>(row: &'r R) -> Result<Customer, Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i32: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    let waba_id: String = row.try_get("waba_id")?;
    let time = |column: &'static str| -> Result<Option<DateTime<Utc>>, Error> {
        row.try_get::<Option<i64>, _>(column)?
            .map(|ms| {
                DateTime::from_timestamp_millis(ms).ok_or_else(|| Error::corrupt(&waba_id, column))
            })
            .transpose()
    };
    let required = |column: &'static str| -> Result<DateTime<Utc>, Error> {
        time(column)?.ok_or_else(|| Error::corrupt(&waba_id, column))
    };
    let state: String = row.try_get("token_state")?;
    let token_state =
        TokenState::from_name(&state).ok_or_else(|| Error::corrupt(&waba_id, "token_state"))?;
    let failure = match row.try_get::<Option<String>, _>("failed_step")? {
        None => None,
        Some(name) => Some(StepFailure {
            step: OnboardingStep::from_name(&name)
                .ok_or_else(|| Error::corrupt(&waba_id, "failed_step"))?,
            code: row
                .try_get::<Option<i32>, _>("failure_code")?
                .unwrap_or_default(),
            message: row
                .try_get::<Option<String>, _>("failure_message")?
                .unwrap_or_default(),
        }),
    };
    Ok(Customer {
        business_id: row.try_get("business_id")?,
        token_state,
        token_expires_at: time("token_expires_at")?,
        webhooks_subscribed: row.try_get("webhooks_subscribed")?,
        progress: Progress::from_parts(row.try_get("steps_done")?, failure),
        onboarded_at: time("onboarded_at")?,
        created_at: required("created_at")?,
        updated_at: required("updated_at")?,
        version: Version(row.try_get("version")?),
        onboarding_request_id: row.try_get("onboarding_request_id")?,
        waba_id,
    })
}

fn sealed<'r, R>(row: &'r R) -> Result<Sealed, Error>
where
    R: Row,
    &'static str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(Sealed {
        ciphertext: row.try_get("token_ciphertext")?,
        nonce: row.try_get("token_nonce")?,
        key_id: row.try_get("token_key_id")?,
    })
}
