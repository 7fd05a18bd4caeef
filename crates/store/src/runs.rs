//! Runs of background tasks: a durable queue on the same fenced claim/lease machinery as turns.
//!
//! A run is inserted `QUEUED` (or `DELAYED`) with the time it may start (`trigger_runs`, with
//! idempotency per task); here too are the reads, the attempts and the run access tokens. Who
//! executes a run is decided in [`crate::run_leases`].

use agentry_core::task::{RetryPolicy, RunStatus};
use agentry_core::{Scope, Timestamp};
use serde_json::Value;

use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

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

pub(crate) const RUN_COLUMNS: &str = "id, organization_id, project_id, environment_id, task_id, status, payload_json,
    metadata_json, tags_json, idempotency_key, concurrency_key, max_attempts, attempt_count, retry_json, triggered_by,
    user_id, batch_id, schedule_id, replay_of, available_at, expires_at, output_json, error, thread_id, turn_id,
    created_at, started_at, finished_at, updated_at, lease_token";

/// `number, status, replica, error, started_at, finished_at` of an attempt.
type AttemptRow = (i64, String, String, Option<String>, i64, Option<i64>);

/// Runs inserted per statement of a batch.
pub(crate) const RUNS_PER_STATEMENT: usize = 100;
pub(crate) fn json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> StoreResult<T> {
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
