//! Turns: their rows and the queries that read them. Who runs a turn, and every write of a
//! running turn, is in [`crate::leases`]; its event log in [`crate::events`].

use agentry_core::{Scope, Timestamp, Turn, TurnInput, TurnStatus};

use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

pub(crate) const TURN_COLUMNS: &str =
    "id, thread_id, organization_id, project_id, environment_id, user_id, agent_id, status,
    wait_reason, error, input_json, idempotency_key, created_at, started_at, finished_at, checkpoint_json";

impl Store {
    /// Records a new turn.
    pub async fn insert_turn(&self, turn: &Turn) -> StoreResult<()> {
        let input = serde_json::to_string(&turn.input).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        on_writer!(self, |pool| {
            let sql = format!(
                "INSERT INTO turns ({TURN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&turn.id)
                .bind(&turn.thread_id)
                .bind(&turn.scope.organization_id)
                .bind(&turn.scope.project_id)
                .bind(&turn.scope.environment_id)
                .bind(&turn.user_id)
                .bind(&turn.agent_id)
                .bind(turn.status.as_str())
                .bind(&turn.wait_reason)
                .bind(&turn.error)
                .bind(&input)
                .bind(&turn.idempotency_key)
                .bind(turn.created_at.0)
                .bind(turn.started_at.map(|t| t.0))
                .bind(turn.finished_at.map(|t| t.0))
                .bind(&turn.checkpoint)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// One turn of the scope.
    pub async fn get_turn(&self, scope: &Scope, turn_id: &str) -> StoreResult<Option<Turn>> {
        self.one_turn(scope, "id = $4", turn_id, None).await
    }

    /// The most recent turn of a thread.
    pub async fn latest_turn(&self, scope: &Scope, thread_id: &str) -> StoreResult<Option<Turn>> {
        self.one_turn(scope, "thread_id = $4 ORDER BY created_at DESC, id DESC", thread_id, None).await
    }

    /// The turn of a thread started with this idempotency key, if any.
    pub async fn turn_by_idempotency_key(
        &self,
        scope: &Scope,
        thread_id: &str,
        key: &str,
    ) -> StoreResult<Option<Turn>> {
        self.one_turn(scope, "thread_id = $4 AND idempotency_key = $5", thread_id, Some(key)).await
    }

    /// The turns of a thread that have not finished (queued, running, waiting), oldest first.
    pub async fn unfinished_turns(&self, scope: &Scope, thread_id: &str) -> StoreResult<Vec<Turn>> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {TURN_COLUMNS} FROM turns
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND thread_id = $4
                   AND status IN ('queued', 'running', 'waiting')
                 ORDER BY created_at, id"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(thread_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(turn_from_row)
                .collect()
        })
    }

    async fn one_turn(
        &self,
        scope: &Scope,
        condition: &str,
        arg: &str,
        arg2: Option<&str>,
    ) -> StoreResult<Option<Turn>> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {TURN_COLUMNS} FROM turns
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND {condition} LIMIT 1"
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(arg);
            if let Some(arg2) = arg2 {
                query = query.bind(arg2);
            }
            query.fetch_optional(pool).await?.as_ref().map(turn_from_row).transpose()
        })
    }

    /// Turns that were running on `owner` (used by a test that plays a dead replica).
    pub async fn running_turns_of(&self, owner: &str) -> StoreResult<Vec<Turn>> {
        on_pool!(self, |pool| {
            let sql = format!("SELECT {TURN_COLUMNS} FROM turns WHERE status = 'running' AND lease_owner = $1");
            sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner).fetch_all(pool).await?.iter().map(turn_from_row).collect()
        })
    }
}

pub(crate) fn turn_from_row(row: &impl RowExt) -> StoreResult<Turn> {
    let status = row.text("status")?;
    let input: TurnInput =
        serde_json::from_str(&row.text("input_json")?).map_err(|e| StoreError::Corrupt(format!("turn input: {e}")))?;
    Ok(Turn {
        id: row.text("id")?,
        thread_id: row.text("thread_id")?,
        scope: Scope::new(row.text("organization_id")?, row.text("project_id")?, row.text("environment_id")?),
        user_id: row.text("user_id")?,
        agent_id: row.text("agent_id")?,
        status: TurnStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("turn status `{status}`")))?,
        wait_reason: row.opt_text("wait_reason")?,
        error: row.opt_text("error")?,
        input,
        idempotency_key: row.opt_text("idempotency_key")?,
        created_at: Timestamp(row.int("created_at")?),
        started_at: row.opt_int("started_at")?.map(Timestamp),
        finished_at: row.opt_int("finished_at")?.map(Timestamp),
        checkpoint: row.opt_text("checkpoint_json")?,
    })
}
