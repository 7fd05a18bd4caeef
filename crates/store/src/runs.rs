//! Runs of background tasks: a durable queue on the same fenced claim/lease machinery as turns.
//!
//! A run is inserted `QUEUED` (or `DELAYED`) with the time it may start; a replica claims due runs
//! ([`Store::claim_runs`]: one statement under a transaction-wide advisory lock on Postgres, so
//! concurrency limits hold across replicas) and holds each under a lease whose fencing token grows
//! with every claim. Every write of an attempt carries its [`RunLease`] and is refused once the
//! token moved on. A run whose lease ran out is swept ([`Store::sweep_runs`]): its attempt is
//! `CRASHED`, and the run is queued again (after its backoff) while attempts remain.

use agentry_core::task::{RetryPolicy, RunStatus};
use agentry_core::{Scope, Timestamp};
use serde_json::Value;

use crate::row::RowExt;
use crate::{Db, Store, StoreError, StoreResult, on_pool, on_writer};

/// A run to insert.
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Its id (`run_…`).
    pub id: String,
    /// Its scope.
    pub scope: Scope,
    /// The task it runs.
    pub task_id: String,
    /// What the task gets.
    pub payload: Value,
    /// The caller's metadata, returned with the run.
    pub metadata: Value,
    /// The caller's tags.
    pub tags: Vec<String>,
    /// A second trigger with this key returns the first run.
    pub idempotency_key: Option<String>,
    /// Groups runs for the concurrency limit ('' for none).
    pub concurrency_key: String,
    /// Most runs of its task (and key) executing at once.
    pub concurrency_limit: Option<u32>,
    /// Attempts it gets.
    pub max_attempts: u32,
    /// Its task's backoff between attempts.
    pub retry: RetryPolicy,
    /// Who triggered it (`user:…`, `operator`, `schedule:…`, `agent:…`).
    pub triggered_by: String,
    /// The end user it belongs to, if any (who may read it).
    pub user_id: Option<String>,
    /// Its batch.
    pub batch_id: Option<String>,
    /// The schedule that fired it.
    pub schedule_id: Option<String>,
    /// The run it replays.
    pub replay_of: Option<String>,
    /// Milliseconds before it may start (`DELAYED` when more than 0).
    pub delay_ms: i64,
    /// Milliseconds it may wait to start before it expires.
    pub ttl_ms: Option<i64>,
    /// When it was triggered.
    pub created_at: Timestamp,
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRun {
    /// Its id.
    pub id: String,
    /// Its scope.
    pub scope: Scope,
    /// Its task.
    pub task_id: String,
    /// Where it is.
    pub status: RunStatus,
    /// What the task gets.
    pub payload: Value,
    /// The caller's metadata.
    pub metadata: Value,
    /// The caller's tags.
    pub tags: Vec<String>,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// Its concurrency key ('' for none).
    pub concurrency_key: String,
    /// Attempts it gets.
    pub max_attempts: i64,
    /// Attempts started so far.
    pub attempt_count: i64,
    /// Its backoff.
    pub retry: RetryPolicy,
    /// Who triggered it.
    pub triggered_by: String,
    /// The end user it belongs to.
    pub user_id: Option<String>,
    /// Its batch.
    pub batch_id: Option<String>,
    /// The schedule that fired it.
    pub schedule_id: Option<String>,
    /// The run it replays.
    pub replay_of: Option<String>,
    /// When it may start (next).
    pub available_at: Timestamp,
    /// When it expires if not started.
    pub expires_at: Option<Timestamp>,
    /// What it produced.
    pub output: Option<Value>,
    /// Why its last attempt failed.
    pub error: Option<String>,
    /// (`agent` tasks) the turn's thread.
    pub thread_id: Option<String>,
    /// (`agent` tasks) the turn.
    pub turn_id: Option<String>,
    /// When it was triggered.
    pub created_at: Timestamp,
    /// When its first attempt started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// One attempt of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAttempt {
    /// 1, 2, …
    pub number: i64,
    /// `EXECUTING`, `COMPLETED`, `FAILED`, `CRASHED`, `TIMED_OUT`, `CANCELED`.
    pub status: RunStatus,
    /// The replica that ran it.
    pub replica: String,
    /// Why it failed.
    pub error: Option<String>,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

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

/// Which runs a list shows.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this task's.
    pub task_id: Option<String>,
    /// Only runs with one of these statuses.
    pub statuses: Vec<RunStatus>,
    /// Only this user's (end users and operators acting as one).
    pub user_id: Option<String>,
    /// Only this batch's.
    pub batch_id: Option<String>,
    /// Only this schedule's.
    pub schedule_id: Option<String>,
    /// At most this many, newest first.
    pub limit: i64,
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

pub(crate) const RUN_COLUMNS: &str = "id, organization_id, project_id, environment_id, task_id, status, payload_json,
    metadata_json, tags_json, idempotency_key, concurrency_key, max_attempts, attempt_count, retry_json, triggered_by,
    user_id, batch_id, schedule_id, replay_of, available_at, expires_at, output_json, error, thread_id, turn_id,
    created_at, started_at, finished_at, updated_at, lease_token";

/// `number, status, replica, error, started_at, finished_at` of an attempt.
type AttemptRow = (i64, String, String, Option<String>, i64, Option<i64>);

/// Runs inserted per statement of a batch.
pub(crate) const RUNS_PER_STATEMENT: usize = 100;
/// Runs swept per statement.
const SWEEP_BATCH: i64 = 100;

pub(crate) fn json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn parse_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("task_runs.{column}: {e}")))
}

pub(crate) fn run_from_row(row: &impl RowExt) -> StoreResult<StoredRun> {
    let status = row.text("status")?;
    let ts = |c: &str| row.opt_int(c).map(|v| v.map(Timestamp));
    Ok(StoredRun {
        id: row.text("id")?,
        scope: Scope::new(row.text("organization_id")?, row.text("project_id")?, row.text("environment_id")?),
        task_id: row.text("task_id")?,
        status: RunStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("run status `{status}`")))?,
        payload: parse_json("payload_json", &row.text("payload_json")?)?,
        metadata: parse_json("metadata_json", &row.text("metadata_json")?)?,
        tags: parse_json("tags_json", &row.text("tags_json")?)?,
        idempotency_key: row.opt_text("idempotency_key")?,
        concurrency_key: row.text("concurrency_key")?,
        max_attempts: row.int("max_attempts")?,
        attempt_count: row.int("attempt_count")?,
        retry: parse_json("retry_json", &row.text("retry_json")?)?,
        triggered_by: row.text("triggered_by")?,
        user_id: row.opt_text("user_id")?,
        batch_id: row.opt_text("batch_id")?,
        schedule_id: row.opt_text("schedule_id")?,
        replay_of: row.opt_text("replay_of")?,
        available_at: Timestamp(row.int("available_at")?),
        expires_at: ts("expires_at")?,
        output: row.opt_text("output_json")?.map(|t| parse_json("output_json", &t)).transpose()?,
        error: row.opt_text("error")?,
        thread_id: row.opt_text("thread_id")?,
        turn_id: row.opt_text("turn_id")?,
        created_at: Timestamp(row.int("created_at")?),
        started_at: ts("started_at")?,
        finished_at: ts("finished_at")?,
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

/// Inserts runs (`$1`… per row, 24 columns), skipping those whose idempotency key is taken.
macro_rules! insert_runs {
    ($conn:expr, $store:expr, $runs:expr) => {{
        let now = $store.now_sql();
        for chunk in $runs.chunks($crate::runs::RUNS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO task_runs (id, organization_id, project_id, environment_id, task_id, status, payload_json,
                     metadata_json, tags_json, idempotency_key, concurrency_key, concurrency_limit, max_attempts, retry_json,
                     triggered_by, user_id, batch_id, schedule_id, replay_of, available_at, expires_at, created_at,
                     updated_at, attempt_count, lease_token, cancel_requested) VALUES ",
            );
            for i in 0..chunk.len() {
                let p = i * 22;
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for k in 1..=19 {
                    sql.push_str(&format!("${}, ", p + k));
                }
                sql.push_str(&format!(
                    "{now} + ${a}, CASE WHEN ${b} IS NULL THEN NULL ELSE {now} + ${a} + ${b} END, ${c}, ${c}, 0, 0, 0)",
                    a = p + 20,
                    b = p + 21,
                    c = p + 22
                ));
            }
            sql.push_str(" ON CONFLICT DO NOTHING");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for run in chunk {
                let run: &$crate::runs::NewRun = run;
                let status = if run.delay_ms > 0 { agentry_core::task::RunStatus::Delayed } else { agentry_core::task::RunStatus::Queued };
                query = query
                    .bind(&run.id)
                    .bind(&run.scope.organization_id)
                    .bind(&run.scope.project_id)
                    .bind(&run.scope.environment_id)
                    .bind(&run.task_id)
                    .bind(status.as_str())
                    .bind($crate::runs::json(&run.payload)?)
                    .bind($crate::runs::json(&run.metadata)?)
                    .bind($crate::runs::json(&run.tags)?)
                    .bind(&run.idempotency_key)
                    .bind(&run.concurrency_key)
                    .bind(run.concurrency_limit.map(i64::from))
                    .bind(i64::from(run.max_attempts))
                    .bind($crate::runs::json(&run.retry)?)
                    .bind(&run.triggered_by)
                    .bind(&run.user_id)
                    .bind(&run.batch_id)
                    .bind(&run.schedule_id)
                    .bind(&run.replay_of)
                    .bind(run.delay_ms.max(0))
                    .bind(run.ttl_ms)
                    .bind(run.created_at.0);
            }
            query.execute(&mut *$conn).await?;
        }
    }};
}
pub(crate) use insert_runs;

impl Store {
    /// Inserts runs; a run whose idempotency key its task already has is not inserted, and the
    /// first run with that key is returned in its place. Returns each run as stored, with whether
    /// it is new, in the order given.
    pub async fn trigger_runs(&self, runs: &[NewRun]) -> StoreResult<Vec<(StoredRun, bool)>> {
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            insert_runs!(&mut *tx, self, runs);
            tx.commit().await?;
        });
        let ids: Vec<&str> = runs.iter().filter(|r| r.idempotency_key.is_none()).map(|r| r.id.as_str()).collect();
        let mut by_id = self.runs_by_ids(&ids).await?;
        let mut out = Vec::with_capacity(runs.len());
        for run in runs {
            let stored = match &run.idempotency_key {
                Some(key) => self.run_by_idempotency_key(&run.scope, &run.task_id, key).await?,
                None => by_id.remove(&run.id),
            };
            let stored = stored.ok_or_else(|| StoreError::Corrupt(format!("run {} vanished", run.id)))?;
            let fresh = stored.id == run.id;
            out.push((stored, fresh));
        }
        Ok(out)
    }

    /// Runs by id (no scope: the ids were just minted by the caller).
    async fn runs_by_ids(&self, ids: &[&str]) -> StoreResult<std::collections::HashMap<String, StoredRun>> {
        let mut out = std::collections::HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT {RUN_COLUMNS} FROM task_runs WHERE id IN ({})", marks.join(", "));
            on_writer!(self, |pool| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for id in chunk {
                    query = query.bind(*id);
                }
                for row in &query.fetch_all(pool).await? {
                    let run = run_from_row(row)?;
                    out.insert(run.id.clone(), run);
                }
            });
        }
        Ok(out)
    }

    async fn run_by_idempotency_key(&self, scope: &Scope, task_id: &str, key: &str) -> StoreResult<Option<StoredRun>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM task_runs
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND task_id = $4 AND idempotency_key = $5"
        );
        on_writer!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(task_id)
                .bind(key)
                .fetch_optional(pool)
                .await?
                .map(|row| run_from_row(&row))
                .transpose()
        })
    }

    /// A run of the scope (`user`: only if it is that user's).
    pub async fn get_run(&self, scope: &Scope, id: &str, user: Option<&str>) -> StoreResult<Option<StoredRun>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM task_runs
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4
               AND ($5 IS NULL OR user_id = $5)"
        );
        on_writer!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(id)
                .bind(user)
                .fetch_optional(pool)
                .await?
                .map(|row| run_from_row(&row))
                .transpose()
        })
    }

    /// A scope's runs, newest first.
    pub async fn list_runs(&self, scope: &Scope, filter: &RunFilter) -> StoreResult<Vec<StoredRun>> {
        let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
        let status_list = if statuses.is_empty() {
            String::from("TRUE")
        } else {
            let marks: Vec<String> = (0..statuses.len()).map(|i| format!("${}", i + 9)).collect();
            format!("status IN ({})", marks.join(", "))
        };
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM task_runs
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3
               AND ($4 IS NULL OR task_id = $4) AND ($5 IS NULL OR user_id = $5)
               AND ($6 IS NULL OR batch_id = $6) AND ($7 IS NULL OR schedule_id = $7) AND {status_list}
             ORDER BY created_at DESC, id DESC LIMIT $8"
        );
        on_pool!(self, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(&filter.task_id)
                .bind(&filter.user_id)
                .bind(&filter.batch_id)
                .bind(&filter.schedule_id)
                .bind(filter.limit.clamp(1, 1_000));
            for status in &statuses {
                query = query.bind(*status);
            }
            query.fetch_all(pool).await?.iter().map(run_from_row).collect()
        })
    }

    /// The attempts of a run, in order.
    pub async fn run_attempts(&self, run_id: &str) -> StoreResult<Vec<RunAttempt>> {
        let rows: Vec<AttemptRow> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT number, status, replica, error, started_at, finished_at FROM task_run_attempts
                 WHERE run_id = $1 ORDER BY number",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(number, status, replica, error, started_at, finished_at)| {
                Ok(RunAttempt {
                    number,
                    status: RunStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("attempt status `{status}`")))?,
                    replica,
                    error,
                    started_at: Timestamp(started_at),
                    finished_at: finished_at.map(Timestamp),
                })
            })
            .collect()
    }

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

    /// Records a token (by its SHA-256) that reads one run until `expires_at`; forgets expired ones.
    pub async fn add_run_access_token(&self, run_id: &str, token_hash: &str, expires_at: Timestamp) -> StoreResult<()> {
        on_writer!(self, |pool| {
            sqlx::query("DELETE FROM run_access_tokens WHERE expires_at < $1")
                .bind(Timestamp::now().0)
                .execute(pool)
                .await?;
            sqlx::query("INSERT INTO run_access_tokens (token_hash, run_id, expires_at) VALUES ($1, $2, $3)")
                .bind(token_hash)
                .bind(run_id)
                .bind(expires_at.0)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The run an unexpired access token (by its SHA-256) reads.
    pub async fn run_by_access_token(&self, token_hash: &str) -> StoreResult<Option<StoredRun>> {
        let sql = format!(
            "SELECT {columns} FROM task_runs r JOIN run_access_tokens a ON a.run_id = r.id
             WHERE a.token_hash = $1 AND a.expires_at > $2",
            columns = RUN_COLUMNS.split(',').map(|c| format!("r.{}", c.trim())).collect::<Vec<_>>().join(", ")
        );
        on_pool!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(token_hash)
                .bind(Timestamp::now().0)
                .fetch_optional(pool)
                .await?
                .map(|row| run_from_row(&row))
                .transpose()
        })
    }
}
