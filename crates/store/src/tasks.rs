//! Tasks per scope (as declared in task files), batches of runs, and the threads of keyed
//! `agent` tasks.

use agentry_core::task::{RunStatus, TaskSpec};
use agentry_core::{Scope, Timestamp};

use crate::runs::{NewRun, insert_runs};
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

/// A task as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTask {
    /// Its scope.
    pub scope: Scope,
    /// What the file declared.
    pub spec: TaskSpec,
    /// When it was first applied.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A batch and how many of its runs are in each status.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBatch {
    /// Its id.
    pub id: String,
    /// Its task.
    pub task_id: String,
    /// Its runs, in trigger order.
    pub run_ids: Vec<String>,
    /// Runs per status.
    pub counts: Vec<(RunStatus, i64)>,
    /// When it was triggered.
    pub created_at: Timestamp,
}

impl StoredBatch {
    /// `COMPLETED` once every run ended, else `PENDING`.
    pub fn status(&self) -> &'static str {
        if self.counts.iter().all(|(status, n)| *n == 0 || status.is_final()) { "COMPLETED" } else { "PENDING" }
    }
}

fn task_from(row: (String, String, String, String, i64, i64)) -> StoreResult<StoredTask> {
    let (org, project, env, spec, created_at, updated_at) = row;
    let spec: TaskSpec = serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt(format!("task: {e}")))?;
    Ok(StoredTask {
        scope: Scope::new(org, project, env),
        spec,
        created_at: Timestamp(created_at),
        updated_at: Timestamp(updated_at),
    })
}

impl Store {
    /// Creates or replaces a task of `scope`; returns whether anything changed.
    pub async fn apply_task(&self, scope: &Scope, spec: &TaskSpec) -> StoreResult<bool> {
        let mut spec = spec.clone();
        (spec.organization, spec.project, spec.environment) = (None, None, None);
        let spec_json = serde_json::to_string(&spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if self.get_task(scope, &spec.id).await?.is_some_and(|t| t.spec == spec) {
            return Ok(false);
        }
        let now = Timestamp::now().0;
        on_writer!(self, |pool| {
            sqlx::query(
                "INSERT INTO tasks (organization_id, project_id, environment_id, id, spec_json, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6)
                 ON CONFLICT (organization_id, project_id, environment_id, id)
                 DO UPDATE SET spec_json = excluded.spec_json, updated_at = excluded.updated_at",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(&spec.id)
            .bind(&spec_json)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(true)
    }

    /// A task of the scope.
    pub async fn get_task(&self, scope: &Scope, id: &str) -> StoreResult<Option<StoredTask>> {
        let row: Option<(String, String, String, String, i64, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT organization_id, project_id, environment_id, spec_json, created_at, updated_at FROM tasks
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        row.map(task_from).transpose()
    }

    /// The scope's tasks, by id.
    pub async fn list_tasks(&self, scope: &Scope) -> StoreResult<Vec<StoredTask>> {
        let rows: Vec<(String, String, String, String, i64, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT organization_id, project_id, environment_id, spec_json, created_at, updated_at FROM tasks
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 ORDER BY id",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(task_from).collect()
    }

    /// Records a batch and inserts its runs, in one transaction.
    pub async fn create_batch(&self, scope: &Scope, id: &str, task_id: &str, runs: &[NewRun]) -> StoreResult<()> {
        on_writer!(self, |pool| {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            sqlx::query(
                "INSERT INTO task_batches (id, organization_id, project_id, environment_id, task_id, run_count, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(task_id)
            .bind(runs.len() as i64)
            .bind(Timestamp::now().0)
            .execute(&mut *tx)
            .await?;
            insert_runs!(&mut *tx, self, runs);
            tx.commit().await?;
        });
        Ok(())
    }

    /// A batch of the scope with its runs' statuses (`user`: only that user's runs count).
    pub async fn get_batch(&self, scope: &Scope, id: &str, user: Option<&str>) -> StoreResult<Option<StoredBatch>> {
        let batch: Option<(String, i64)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT task_id, created_at FROM task_batches
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        let Some((task_id, created_at)) = batch else { return Ok(None) };
        let runs: Vec<(String, String)> = on_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT id, status FROM task_runs
                 WHERE batch_id = $1 AND organization_id = $2 AND project_id = $3 AND environment_id = $4
                   AND ($5 IS NULL OR user_id = $5)
                 ORDER BY id",
            )
            .bind(id)
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(user)
            .fetch_all(pool)
            .await?
        });
        if runs.is_empty() && user.is_some() {
            return Ok(None);
        }
        let mut counts: Vec<(RunStatus, i64)> = RunStatus::ALL.iter().map(|s| (*s, 0)).collect();
        for (_, status) in &runs {
            if let Some(entry) = counts.iter_mut().find(|(s, _)| s.as_str() == status) {
                entry.1 += 1;
            }
        }
        Ok(Some(StoredBatch {
            id: id.to_owned(),
            task_id,
            run_ids: runs.into_iter().map(|(id, _)| id).collect(),
            counts,
            created_at: Timestamp(created_at),
        }))
    }

    /// The thread of a keyed `agent` task for `key`, recording `candidate` as it when there is
    /// none yet (the first run of a key wins).
    pub async fn task_thread(&self, scope: &Scope, task_id: &str, key: &str, candidate: &str) -> StoreResult<String> {
        on_writer!(self, |pool| {
            sqlx::query(
                "INSERT INTO task_threads (organization_id, project_id, environment_id, task_id, thread_key, thread_id)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(task_id)
            .bind(key)
            .bind(candidate)
            .execute(pool)
            .await?;
            let (thread,): (String,) = sqlx::query_as(
                "SELECT thread_id FROM task_threads WHERE organization_id = $1 AND project_id = $2
                   AND environment_id = $3 AND task_id = $4 AND thread_key = $5",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(task_id)
            .bind(key)
            .fetch_one(pool)
            .await?;
            Ok(thread)
        })
    }
}
