//! Idempotency records: the first response to a request with an `Idempotency-Key` is kept and
//! replayed to its duplicates, so a client retrying a POST never creates a second resource.

use agentry_core::{Scope, Timestamp};

use crate::row::RowExt;
use crate::{Store, StoreResult, on_writer};

/// How long a completed record is replayed.
pub const RETENTION_MS: i64 = 24 * 3600 * 1000;
/// After this long an unfinished record (its request died mid-way) may be taken over.
pub const STALE_IN_PROGRESS_MS: i64 = 60 * 1000;

/// What to do with a request carrying an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyStart {
    /// First time this key is seen: run the request, then call [`Store::idempotency_finish`].
    Fresh,
    /// Seen and completed: answer with the recorded response.
    Replay {
        /// Recorded HTTP status.
        status: u16,
        /// Recorded JSON body.
        body: String,
    },
    /// Seen and still running.
    InProgress,
    /// Seen with a different request (method, path or body).
    Mismatch,
}

const KEY_MATCH: &str =
    "organization_id = $1 AND project_id = $2 AND environment_id = $3 AND principal = $4 AND idem_key = $5";

impl Store {
    /// Claims `key` for this request, or reports what happened to an earlier request with it.
    pub async fn idempotency_start(
        &self,
        scope: &Scope,
        principal: &str,
        key: &str,
        fingerprint: &str,
    ) -> StoreResult<IdempotencyStart> {
        let now = Timestamp::now().0;
        on_writer!(self, |pool| {
            // Forget expired records and abandoned claims so the key can be claimed afresh.
            let sql = format!(
                "DELETE FROM idempotency_keys WHERE {KEY_MATCH}
                 AND (created_at < $6 OR (status_code IS NULL AND created_at < $7))"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(principal)
                .bind(key)
                .bind(now - RETENTION_MS)
                .bind(now - STALE_IN_PROGRESS_MS)
                .execute(pool)
                .await?;
            let claimed = sqlx::query(
                "INSERT INTO idempotency_keys (organization_id, project_id, environment_id, principal, idem_key, fingerprint, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(principal)
            .bind(key)
            .bind(fingerprint)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected();
            if claimed == 1 {
                return Ok(IdempotencyStart::Fresh);
            }
            let sql = format!("SELECT fingerprint, status_code, response_body FROM idempotency_keys WHERE {KEY_MATCH}");
            let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(principal)
                .bind(key)
                .fetch_optional(pool)
                .await?
            else {
                // Finished and expired between our two statements: treat as a conflict to retry.
                return Ok(IdempotencyStart::InProgress);
            };
            if row.text("fingerprint")? != fingerprint {
                return Ok(IdempotencyStart::Mismatch);
            }
            Ok(match (row.opt_int("status_code")?, row.opt_text("response_body")?) {
                (Some(status), Some(body)) => {
                    IdempotencyStart::Replay { status: u16::try_from(status).unwrap_or(500), body }
                }
                _ => IdempotencyStart::InProgress,
            })
        })
    }

    /// Records the response of a request that [`Store::idempotency_start`] reported as fresh.
    pub async fn idempotency_finish(
        &self,
        scope: &Scope,
        principal: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> StoreResult<()> {
        on_writer!(self, |pool| {
            let sql = format!("UPDATE idempotency_keys SET status_code = $6, response_body = $7 WHERE {KEY_MATCH}");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(principal)
                .bind(key)
                .bind(i64::from(status))
                .bind(body)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Releases a claim whose request failed, so a retry runs it again.
    pub async fn idempotency_abandon(&self, scope: &Scope, principal: &str, key: &str) -> StoreResult<()> {
        on_writer!(self, |pool| {
            let sql = format!("DELETE FROM idempotency_keys WHERE {KEY_MATCH} AND status_code IS NULL");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(principal)
                .bind(key)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
