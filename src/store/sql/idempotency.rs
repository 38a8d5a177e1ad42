//! Idempotency records on SQL: a key is claimed by one conditional upsert, so of calls
//! racing on one key (on any replica) exactly one sees its claim come back; the others
//! read the record and wait for its outcome. A claim replaces a record only when it is
//! older than the caller's memory, or a definite failure (`replaceable`): retrying after a
//! definite no is a new attempt, as in one process. A record the same claim id already
//! holds without an outcome is the caller's own (a try whose reply was lost, retried):
//! it wins it again instead of waiting on itself.

use super::{Pool, Sql, millis};
use crate::store::Error;
use crate::store::types::{Claim, ClaimId, Fingerprint, IdemRecord};
use sqlx::Row;
use std::time::Duration;

const CLAIM: &str = "INSERT INTO idempotency (rpc, request_id, fingerprint, fingerprint_key, \
    claim, outcome, replaceable, lease_until, created_at, finished_at) \
    VALUES ($1, $2, $3, $7, $4, NULL, 0, {now} + $5, {now}, NULL) \
    ON CONFLICT (rpc, request_id) DO UPDATE SET fingerprint = excluded.fingerprint, \
    fingerprint_key = excluded.fingerprint_key, claim = excluded.claim, outcome = NULL, \
    replaceable = 0, lease_until = excluded.lease_until, created_at = excluded.created_at, \
    finished_at = NULL \
    WHERE idempotency.created_at <= {now} - $6 OR idempotency.replaceable = 1 \
    OR (idempotency.claim = excluded.claim AND idempotency.outcome IS NULL) \
    RETURNING claim";
const PEEK: &str = "SELECT fingerprint, fingerprint_key, outcome, \
    CASE WHEN outcome IS NULL AND lease_until > {now} THEN 1 ELSE 0 END AS alive, \
    CASE WHEN finished_at IS NULL THEN NULL ELSE {now} - finished_at END AS outcome_age \
    FROM idempotency WHERE rpc = $1 AND request_id = $2 AND created_at > {now} - $3";
const RENEW: &str = "UPDATE idempotency SET lease_until = {now} + $4 \
    WHERE rpc = $1 AND request_id = $2 AND claim = $3 AND outcome IS NULL";
const FINISH: &str = "UPDATE idempotency SET outcome = $4, replaceable = $5, lease_until = NULL, \
    finished_at = {now} WHERE rpc = $1 AND request_id = $2 AND claim = $3";
const RELEASE: &str = "DELETE FROM idempotency \
    WHERE rpc = $1 AND request_id = $2 AND claim = $3 AND outcome IS NULL";

impl Sql {
    pub(crate) async fn idem_claim(
        &self,
        rpc: &str,
        request_id: &str,
        fingerprint: &Fingerprint,
        claim: &ClaimId,
        lease: Duration,
        remember: Duration,
    ) -> Result<Claim, Error> {
        let sql = self.sql(CLAIM);
        let won = on_pool!(self, pool => {
            sqlx::query(&sql)
                .bind(rpc)
                .bind(request_id)
                .bind(fingerprint.mac.as_slice())
                .bind(claim.as_str())
                .bind(millis(lease))
                .bind(millis(remember))
                .bind(fingerprint.key_id.as_deref())
                .fetch_optional(pool)
                .await?
                .is_some()
        });
        if won {
            return Ok(Claim::Won(claim.clone()));
        }
        match self.idem_peek(rpc, request_id, remember).await? {
            Some(record) => Ok(Claim::Held(record)),
            // Replaced or gone between the two statements: as if held by a call that ended.
            None => Ok(Claim::Held(IdemRecord {
                fingerprint: Fingerprint {
                    key_id: None,
                    mac: Vec::new(),
                },
                outcome: None,
                outcome_age: None,
                lease_alive: true,
            })),
        }
    }

    pub(crate) async fn idem_peek(
        &self,
        rpc: &str,
        request_id: &str,
        remember: Duration,
    ) -> Result<Option<IdemRecord>, Error> {
        let sql = self.sql(PEEK);
        on_pool!(self, pool => {
            let row = sqlx::query(&sql)
                .bind(rpc)
                .bind(request_id)
                .bind(millis(remember))
                .fetch_optional(pool)
                .await?;
            row.map(|row| -> Result<IdemRecord, Error> {
                let age: Option<i64> = row.try_get("outcome_age")?;
                Ok(IdemRecord {
                    fingerprint: Fingerprint {
                        key_id: row.try_get("fingerprint_key")?,
                        mac: row.try_get("fingerprint")?,
                    },
                    outcome: row.try_get("outcome")?,
                    outcome_age: age.map(|ms| Duration::from_millis(ms.max(0) as u64)),
                    lease_alive: row.try_get::<i32, _>("alive")? == 1,
                })
            })
            .transpose()
        })
    }

    pub(crate) async fn idem_renew(
        &self,
        rpc: &str,
        request_id: &str,
        claim: &ClaimId,
        lease: Duration,
    ) -> Result<bool, Error> {
        let sql = self.sql(RENEW);
        Ok(on_pool!(self, pool => {
            sqlx::query(&sql)
                .bind(rpc)
                .bind(request_id)
                .bind(claim.as_str())
                .bind(millis(lease))
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }

    pub(crate) async fn idem_finish(
        &self,
        rpc: &str,
        request_id: &str,
        claim: &ClaimId,
        outcome: &str,
        replaceable: bool,
    ) -> Result<(), Error> {
        let sql = self.sql(FINISH);
        on_pool!(self, pool => {
            sqlx::query(&sql)
                .bind(rpc)
                .bind(request_id)
                .bind(claim.as_str())
                .bind(outcome)
                .bind(i32::from(replaceable))
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub(crate) async fn idem_release(
        &self,
        rpc: &str,
        request_id: &str,
        claim: &ClaimId,
    ) -> Result<bool, Error> {
        Ok(on_pool!(self, pool => {
            sqlx::query(RELEASE)
                .bind(rpc)
                .bind(request_id)
                .bind(claim.as_str())
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }
}
