//! Who executes a run, decided in the store: claims, leases, the fenced end of an attempt,
//! cancel, and the sweep of runs nobody may run any more (see [`crate::runs`] for the runs).
//!
//! A replica claims due runs ([`Store::claim_runs`]: one statement under a transaction-wide
//! advisory lock on Postgres, so concurrency limits hold across replicas) and holds each under a
//! lease whose fencing token grows with every claim. Every write of an attempt carries its
//! [`RunLease`] and is refused once the token moved on. A run whose lease ran out is swept
//! ([`Store::sweep_runs`]): its attempt is `CRASHED`, and the run is queued again (after its
//! backoff) while attempts remain.

use agentry_core::Scope;
use agentry_core::task::{RetryPolicy, RunStatus};
use serde_json::Value;

use crate::row::RowExt;
use crate::runs::{RUN_COLUMNS, StoredRun, json, parse_json, run_from_row};
use crate::{Db, Store, StoreResult, on_pool, on_writer};

/// A replica's hold on a run's attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLease {
    /// The run.
    pub run_id: String,
    /// Its fencing token.
    pub token: i64,
    /// The attempt it runs.
    pub attempt: i64,
}

/// A run claimed by this replica.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    /// The run (status `EXECUTING`).
    pub run: StoredRun,
    /// The lease its writes carry.
    pub lease: RunLease,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptEnd {
    /// The run succeeded with this output.
    Completed(Value),
    /// The attempt failed: the run is queued again at `retry_in_ms` when attempts remain and
    /// it is `Some`, else it fails.
    Failed {
        /// Why.
        error: String,
        /// Wait before the next attempt (`None`: do not retry).
        retry_in_ms: Option<i64>,
    },
    /// The attempt ran past its task's longest duration (final).
    TimedOut(String),
    /// Someone cancelled the run.
    Canceled,
}

/// What asking to cancel a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunCancel {
    /// It was waiting: it is `CANCELED` now.
    Canceled,
    /// It is executing on `owner`, which is asked to stop it.
    Requested {
        /// The replica running it.
        owner: Option<String>,
    },
    /// It had already ended with this status.
    AlreadyFinal(RunStatus),
}

/// Runs swept because nobody may run them any more.
#[derive(Debug, Clone, Default)]
pub struct Swept {
    /// Runs that waited past their `ttl`: now `EXPIRED`.
    pub expired: Vec<StoredRun>,
    /// Runs whose attempt's replica stopped renewing: queued again or `CRASHED`.
    pub crashed: Vec<StoredRun>,
}

/// Runs swept per statement.
const SWEEP_BATCH: i64 = 100;

impl Store {
    /// Claims up to `limit` due runs for `owner` under leases of `lease_ms`, oldest first, never
    /// letting a task (per concurrency key) run more than its limit at once; each claim starts an
    /// attempt. Runs past their `ttl` are left to [`Store::sweep_runs`].
    pub async fn claim_runs(&self, owner: &str, lease_ms: i64, limit: i64) -> StoreResult<Vec<ClaimedRun>> {
        let now = self.now_sql();
        let sql = format!(
            "UPDATE task_runs SET status = 'EXECUTING', lease_owner = $1, lease_token = lease_token + 1,
                 lease_expires_at = {now} + $2, attempt_count = attempt_count + 1,
                 started_at = COALESCE(started_at, {now}), updated_at = {now}
             WHERE id IN (
                 SELECT c.id FROM (
                     SELECT r.id, r.available_at, r.concurrency_limit,
                            ROW_NUMBER() OVER (PARTITION BY r.organization_id, r.project_id, r.environment_id,
                                                            r.task_id, r.concurrency_key
                                               ORDER BY r.available_at, r.id) AS position,
                            CASE WHEN r.concurrency_limit IS NULL THEN 0 ELSE (
                                SELECT COUNT(*) FROM task_runs e
                                WHERE e.task_id = r.task_id AND e.concurrency_key = r.concurrency_key
                                  AND e.status IN ('EXECUTING', 'WAITING') AND e.organization_id = r.organization_id
                                  AND e.project_id = r.project_id AND e.environment_id = r.environment_id
                            ) END AS busy
                     FROM task_runs r
                     WHERE r.status IN ('QUEUED', 'DELAYED') AND r.available_at <= {now} AND r.cancel_requested = 0
                       AND (r.expires_at IS NULL OR r.attempt_count > 0 OR r.expires_at > {now})
                 ) c
                 WHERE c.concurrency_limit IS NULL OR c.busy + c.position <= c.concurrency_limit
                 ORDER BY c.available_at, c.id
                 LIMIT $3)
             RETURNING {RUN_COLUMNS}"
        );
        let is_postgres = matches!(self.db, Db::Postgres(_));
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            if is_postgres {
                // Claims take turns across replicas, so a concurrency limit counts every claim.
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('agentry:task_runs:claim', 0))")
                    .execute(&mut *tx)
                    .await?;
            }
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .bind(lease_ms)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            let mut claimed = Vec::with_capacity(rows.len());
            for row in &rows {
                let run = run_from_row(row)?;
                let lease =
                    RunLease { run_id: run.id.clone(), token: row.int("lease_token")?, attempt: run.attempt_count };
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO task_run_attempts (run_id, number, status, replica, started_at)
                     VALUES ($1, $2, 'EXECUTING', $3, {now})"
                )))
                .bind(&run.id)
                .bind(run.attempt_count)
                .bind(owner)
                .execute(&mut *tx)
                .await?;
                claimed.push(ClaimedRun { run, lease });
            }
            tx.commit().await?;
            Ok(claimed)
        })
    }

    /// Renews `owner`'s leases on the runs `run_ids` (the runs it executes), expired or not as
    /// long as nobody swept them; returns `(run id, token, cancel requested)` of each renewed.
    pub async fn renew_run_leases(
        &self,
        owner: &str,
        lease_ms: i64,
        run_ids: &[&str],
    ) -> StoreResult<Vec<(String, i64, bool)>> {
        let mut held = Vec::with_capacity(run_ids.len());
        for chunk in run_ids.chunks(500) {
            let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
            let sql = format!(
                "UPDATE task_runs SET lease_expires_at = {now} + $2
                 WHERE lease_owner = $1 AND status IN ('EXECUTING', 'WAITING') AND id IN ({marks})
                 RETURNING id, lease_token, cancel_requested",
                now = self.now_sql(),
                marks = marks.join(", ")
            );
            on_writer!(self, |pool| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner).bind(lease_ms);
                for id in chunk {
                    query = query.bind(*id);
                }
                for row in &query.fetch_all(pool).await? {
                    held.push((row.text("id")?, row.int("lease_token")?, row.int("cancel_requested")? != 0));
                }
            });
        }
        Ok(held)
    }

    /// Moves an executing run to `WAITING` (its turn waits for an approval) or back.
    pub async fn set_run_waiting(&self, lease: &RunLease, waiting: bool) -> StoreResult<bool> {
        let (to, from) = if waiting { ("WAITING", "EXECUTING") } else { ("EXECUTING", "WAITING") };
        let sql = format!(
            "UPDATE task_runs SET status = '{to}', updated_at = {now}
             WHERE id = $1 AND lease_token = $2 AND status = '{from}'",
            now = self.now_sql()
        );
        on_writer!(self, |pool| {
            Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&lease.run_id)
                .bind(lease.token)
                .execute(pool)
                .await?
                .rows_affected()
                == 1)
        })
    }

    /// Records the turn an `agent` run started.
    pub async fn set_run_turn(&self, lease: &RunLease, thread_id: &str, turn_id: &str) -> StoreResult<bool> {
        on_writer!(self, |pool| {
            Ok(sqlx::query("UPDATE task_runs SET thread_id = $3, turn_id = $4 WHERE id = $1 AND lease_token = $2")
                .bind(&lease.run_id)
                .bind(lease.token)
                .bind(thread_id)
                .bind(turn_id)
                .execute(pool)
                .await?
                .rows_affected()
                == 1)
        })
    }

    /// Ends an attempt held by `lease`: the run completes, fails, times out, is cancelled, or
    /// (a failure with attempts left) is queued again. Returns the run as stored, or `None`
    /// (writing nothing) when the lease was lost.
    pub async fn finish_attempt(&self, lease: &RunLease, end: &AttemptEnd) -> StoreResult<Option<StoredRun>> {
        let now = self.now_sql();
        let (run_status, attempt_status, output, error, retry_in) = match end {
            AttemptEnd::Completed(output) => ("'COMPLETED'", RunStatus::Completed, Some(json(output)?), None, None),
            AttemptEnd::Failed { error, retry_in_ms } => (
                "CASE WHEN attempt_count < max_attempts AND cancel_requested = 0 AND $5 IS NOT NULL
                      THEN 'QUEUED' ELSE 'FAILED' END",
                RunStatus::Failed,
                None,
                Some(error.as_str()),
                *retry_in_ms,
            ),
            AttemptEnd::TimedOut(error) => ("'TIMED_OUT'", RunStatus::TimedOut, None, Some(error.as_str()), None),
            AttemptEnd::Canceled => ("'CANCELED'", RunStatus::Canceled, None, Some("canceled"), None),
        };
        let sql = format!(
            "UPDATE task_runs SET status = {run_status}, output_json = COALESCE($3, output_json), error = $4,
                 available_at = CASE WHEN $5 IS NULL THEN available_at ELSE {now} + $5 END,
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = {now},
                 finished_at = CASE WHEN {run_status} = 'QUEUED' THEN NULL ELSE {now} END
             WHERE id = $1 AND lease_token = $2 AND status IN ('EXECUTING', 'WAITING')
             RETURNING {RUN_COLUMNS}"
        );
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&lease.run_id)
                .bind(lease.token)
                .bind(&output)
                .bind(error)
                .bind(retry_in)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else { return Ok(None) };
            let run = run_from_row(&row)?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE task_run_attempts SET status = $3, error = $4, finished_at = {now}
                 WHERE run_id = $1 AND number = $2"
            )))
            .bind(&lease.run_id)
            .bind(lease.attempt)
            .bind(attempt_status.as_str())
            .bind(error)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Some(run))
        })
    }

    /// Asks to cancel a run: a waiting one is `CANCELED` at once, an executing one is marked for
    /// its replica to stop. `None` when the run is not the caller's to see.
    pub async fn cancel_run(&self, scope: &Scope, id: &str, user: Option<&str>) -> StoreResult<Option<RunCancel>> {
        let Some(run) = self.get_run(scope, id, user).await? else { return Ok(None) };
        let now = self.now_sql();
        let canceled = on_writer!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE task_runs SET status = 'CANCELED', cancel_requested = 1, finished_at = {now}, updated_at = {now},
                     error = 'canceled'
                 WHERE id = $1 AND status IN ('QUEUED', 'DELAYED')"
            )))
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if canceled == 1 {
            return Ok(Some(RunCancel::Canceled));
        }
        let owner: Option<(Option<String>,)> = on_writer!(self, |pool| {
            sqlx::query_as(
                "UPDATE task_runs SET cancel_requested = 1 WHERE id = $1 AND status IN ('EXECUTING', 'WAITING')
                 RETURNING lease_owner",
            )
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        match owner {
            Some((owner,)) => Ok(Some(RunCancel::Requested { owner })),
            None => {
                let now = self.get_run(scope, id, user).await?.map_or(run.status, |r| r.status);
                Ok(Some(if now.is_final() { RunCancel::AlreadyFinal(now) } else { RunCancel::Canceled }))
            }
        }
    }

    /// Expires runs that waited past their `ttl`, and ends the attempts of runs whose lease ran
    /// out (`CRASHED`): each such run is queued again after its backoff while attempts remain,
    /// else it is `CRASHED`. Each change is one conditional statement, so replicas sweeping at
    /// once change each run once.
    pub async fn sweep_runs(&self) -> StoreResult<Swept> {
        let now = self.now_sql();
        let mut swept = Swept::default();
        on_writer!(self, |pool| {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE task_runs SET status = 'EXPIRED', finished_at = {now}, updated_at = {now},
                     error = 'expired: not started within its ttl'
                 WHERE id IN (SELECT id FROM task_runs WHERE status IN ('QUEUED', 'DELAYED') AND attempt_count = 0
                              AND expires_at IS NOT NULL AND expires_at <= {now} LIMIT {SWEEP_BATCH})
                 RETURNING {RUN_COLUMNS}"
            )))
            .fetch_all(pool)
            .await?;
            for row in &rows {
                swept.expired.push(run_from_row(row)?);
            }
        });
        let stale: Vec<(String, i64, i64, String)> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT id, lease_token, attempt_count, retry_json FROM task_runs
                 WHERE status IN ('EXECUTING', 'WAITING') AND lease_expires_at < {now}
                 ORDER BY lease_expires_at LIMIT {SWEEP_BATCH}"
            )))
            .fetch_all(pool)
            .await?
        });
        for (id, token, attempt, retry) in stale {
            let retry: RetryPolicy = parse_json("retry_json", &retry)?;
            let wait = i64::try_from(retry.jittered_delay(u32::try_from(attempt).unwrap_or(u32::MAX)).as_millis())
                .unwrap_or(i64::MAX);
            let error = "crashed: the replica running this attempt stopped renewing its lease";
            on_writer!(self, |pool| {
                let mut tx = pool.begin().await?;
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE task_runs SET
                         status = CASE WHEN attempt_count < max_attempts AND cancel_requested = 0 THEN 'QUEUED'
                                       WHEN cancel_requested = 1 THEN 'CANCELED' ELSE 'CRASHED' END,
                         available_at = {now} + $3, error = $4, lease_owner = NULL, lease_expires_at = NULL,
                         lease_token = lease_token + 1, updated_at = {now},
                         finished_at = CASE WHEN attempt_count < max_attempts AND cancel_requested = 0 THEN NULL
                                            ELSE {now} END
                     WHERE id = $1 AND lease_token = $2 AND status IN ('EXECUTING', 'WAITING')
                       AND lease_expires_at < {now}
                     RETURNING {RUN_COLUMNS}"
                )))
                .bind(&id)
                .bind(token)
                .bind(wait)
                .bind(error)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(row) = row {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "UPDATE task_run_attempts SET status = 'CRASHED', error = $3, finished_at = {now}
                         WHERE run_id = $1 AND number = $2"
                    )))
                    .bind(&id)
                    .bind(attempt)
                    .bind(error)
                    .execute(&mut *tx)
                    .await?;
                    swept.crashed.push(run_from_row(&row)?);
                }
                tx.commit().await?;
            });
        }
        Ok(swept)
    }

    /// Whether the lease with `token` on a run was lost (another token holds it, or it ended).
    pub async fn run_lease_lost(&self, run_id: &str, token: i64) -> StoreResult<bool> {
        let row: Option<(i64, String)> = on_writer!(self, |pool| {
            sqlx::query_as("SELECT lease_token, status FROM task_runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.is_none_or(|(current, _)| current != token))
    }
}
