//! Turns and their event logs.
//!
//! A running turn holds a lease (`lease_expires_at`) that its replica renews. A turn whose lease
//! ran out belongs to a replica that died: [`Store::abandoned_turns`] finds it so the engine ends it with a recorded
//! cause, so no turn stays stuck.

use agentry_core::{LoggedEvent, Scope, Timestamp, Turn, TurnEvent, TurnInput, TurnStatus};

use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

const TURN_COLUMNS: &str = "id, thread_id, organization_id, project_id, environment_id, user_id, agent_id, status,
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

    /// The oldest queued turn of a thread: the next one to run. None while a turn of the thread
    /// waits (on an approval): the turns after it wait too.
    pub async fn next_queued_turn(&self, scope: &Scope, thread_id: &str) -> StoreResult<Option<Turn>> {
        let condition = "thread_id = $4 AND status = 'queued'
            AND NOT EXISTS (SELECT 1 FROM turns w WHERE w.thread_id = $4 AND w.status = 'waiting')
            ORDER BY created_at, id";
        self.one_turn(scope, condition, thread_id, None).await
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

    /// Moves a turn to `running` and takes its lease for `lease_ms`. Returns false when the turn
    /// is no longer queued (another runner took it, or it was cancelled).
    pub async fn start_turn(&self, turn_id: &str, lease_ms: i64) -> StoreResult<bool> {
        let now = Timestamp::now().0;
        let started = on_writer!(self, |pool| {
            sqlx::query(
                "UPDATE turns SET status = 'running', started_at = $2, lease_expires_at = $3
                 WHERE id = $1 AND status = 'queued'",
            )
            .bind(turn_id)
            .bind(now)
            .bind(now + lease_ms)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(started == 1)
    }

    /// Replaces what a turn keeps of its request (the safety policy redacted the message).
    pub async fn set_turn_input(&self, turn_id: &str, input: &TurnInput) -> StoreResult<()> {
        let input = serde_json::to_string(input).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        on_writer!(self, |pool| {
            sqlx::query("UPDATE turns SET input_json = $2 WHERE id = $1")
                .bind(turn_id)
                .bind(&input)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Parks a running turn: `waiting` with the reason and the state to resume from, no lease
    /// (nothing runs it until it is queued again). Returns false if the turn was not running.
    pub async fn park_turn(&self, turn_id: &str, reason: &str, checkpoint: &str) -> StoreResult<bool> {
        let parked = on_writer!(self, |pool| {
            sqlx::query(
                "UPDATE turns SET status = 'waiting', wait_reason = $2, checkpoint_json = $3, lease_expires_at = NULL
                 WHERE id = $1 AND status = 'running'",
            )
            .bind(turn_id)
            .bind(reason)
            .bind(checkpoint)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(parked == 1)
    }

    /// Queues a waiting turn again once none of its approvals is pending. Returns whether this
    /// call queued it (exactly one of several concurrent callers does).
    pub async fn requeue_waiting_turn(&self, turn_id: &str) -> StoreResult<bool> {
        let queued = on_writer!(self, |pool| {
            sqlx::query(
                "UPDATE turns SET status = 'queued', wait_reason = NULL
                 WHERE id = $1 AND status = 'waiting'
                   AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.turn_id = $1 AND a.status = 'pending')",
            )
            .bind(turn_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(queued == 1)
    }

    /// Extends the lease of a running or waiting turn.
    pub async fn renew_turn_lease(&self, turn_id: &str, lease_ms: i64) -> StoreResult<()> {
        on_writer!(self, |pool| {
            sqlx::query("UPDATE turns SET lease_expires_at = $2 WHERE id = $1 AND status IN ('running', 'waiting')")
                .bind(turn_id)
                .bind(Timestamp::now().0 + lease_ms)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Moves a turn to a final state, recording the cause of a failure. Only unfinished turns
    /// change; returns whether this call changed it.
    pub async fn finish_turn(&self, turn_id: &str, status: TurnStatus, error: Option<&str>) -> StoreResult<bool> {
        let changed = on_writer!(self, |pool| {
            sqlx::query(
                "UPDATE turns SET status = $2, error = $3, finished_at = $4, lease_expires_at = NULL
                 WHERE id = $1 AND status IN ('queued', 'running', 'waiting')",
            )
            .bind(turn_id)
            .bind(status.as_str())
            .bind(error)
            .bind(Timestamp::now().0)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    /// Running turns whose lease has expired (their replica died). The caller ends each one.
    pub async fn abandoned_turns(&self) -> StoreResult<Vec<Turn>> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {TURN_COLUMNS} FROM turns WHERE status = 'running' AND lease_expires_at < $1 ORDER BY created_at"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(Timestamp::now().0)
                .fetch_all(pool)
                .await?
                .iter()
                .map(turn_from_row)
                .collect()
        })
    }

    /// Threads that have queued turns nobody is running (after a restart), by scope.
    pub async fn threads_with_queued_turns(&self) -> StoreResult<Vec<(Scope, String)>> {
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT DISTINCT organization_id, project_id, environment_id, thread_id FROM turns WHERE status = 'queued'",
            )
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    Scope::new(row.text("organization_id")?, row.text("project_id")?, row.text("environment_id")?),
                    row.text("thread_id")?,
                ))
            })
            .collect()
        })
    }

    /// Appends a batch of events (of any turns) in one transaction, with multi-row inserts.
    pub async fn append_events(&self, events: &[(&Scope, &LoggedEvent)]) -> StoreResult<()> {
        /// Rows per INSERT statement (8 parameters each, well under both backends' limits).
        const ROWS_PER_STATEMENT: usize = 500;
        if events.is_empty() {
            return Ok(());
        }
        let encoded = events
            .iter()
            .map(|(_, e)| serde_json::to_string(&e.event).map_err(|err| StoreError::Corrupt(err.to_string())))
            .collect::<StoreResult<Vec<_>>>()?;
        let rows: Vec<_> = events.iter().zip(&encoded).collect();
        // SQLite resolves `$N` names by walking a list per parameter, which is quadratic over a
        // multi-row insert; its anonymous `?` placeholders bind in order at no cost.
        let anonymous = matches!(self.db, crate::Db::Sqlite { .. });
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut sql = String::from(
                    "INSERT INTO turn_events (turn_id, seq, thread_id, organization_id, project_id, environment_id, event_json, created_at) VALUES ",
                );
                for i in 0..chunk.len() {
                    let p = i * 8;
                    if i > 0 {
                        sql.push(',');
                    }
                    if anonymous {
                        sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?)");
                    } else {
                        sql.push_str(&format!(
                            "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                            p + 1,
                            p + 2,
                            p + 3,
                            p + 4,
                            p + 5,
                            p + 6,
                            p + 7,
                            p + 8
                        ));
                    }
                }
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for ((scope, event), json) in chunk {
                    query = query
                        .bind(&event.turn_id)
                        .bind(event.seq)
                        .bind(&event.thread_id)
                        .bind(&scope.organization_id)
                        .bind(&scope.project_id)
                        .bind(&scope.environment_id)
                        .bind(json.as_str())
                        .bind(event.at.0);
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Events of a turn after `after_seq`, in order, at most `limit`.
    pub async fn events_after(
        &self,
        scope: &Scope,
        turn_id: &str,
        after_seq: i64,
        limit: i64,
    ) -> StoreResult<Vec<LoggedEvent>> {
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT turn_id, seq, thread_id, event_json, created_at FROM turn_events
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND turn_id = $4 AND seq > $5
                 ORDER BY seq LIMIT $6",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(turn_id)
            .bind(after_seq)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                let json = row.text("event_json")?;
                Ok(LoggedEvent {
                    turn_id: row.text("turn_id")?,
                    thread_id: row.text("thread_id")?,
                    seq: row.int("seq")?,
                    at: Timestamp(row.int("created_at")?),
                    event: serde_json::from_str::<TurnEvent>(&json)
                        .map_err(|e| StoreError::Corrupt(format!("logged event: {e}")))?,
                })
            })
            .collect()
        })
    }

    /// Deletes the event logs of turns that finished before `before`; returns how many events went.
    pub async fn purge_event_logs(&self, before: Timestamp) -> StoreResult<u64> {
        let deleted = on_writer!(self, |pool| {
            sqlx::query(
                "DELETE FROM turn_events WHERE turn_id IN
                   (SELECT id FROM turns WHERE finished_at IS NOT NULL AND finished_at < $1)",
            )
            .bind(before.0)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(deleted)
    }
}

fn turn_from_row(row: &impl RowExt) -> StoreResult<Turn> {
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

/// Where a user's socket stream of a thread stood: the last event sent of a turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCursor {
    /// Scope of the thread.
    pub scope: Scope,
    /// The user the events went to.
    pub user_id: String,
    /// The thread.
    pub thread_id: String,
    /// The turn being streamed.
    pub turn_id: String,
    /// The last `seq` sent.
    pub seq: i64,
}

impl Store {
    /// Saves stream positions (a graceful shutdown), replacing older ones of the same user and
    /// thread, and forgets positions older than `keep_after`.
    pub async fn save_stream_cursors(&self, cursors: &[StreamCursor], keep_after: Timestamp) -> StoreResult<()> {
        let now = Timestamp::now().0;
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM stream_cursors WHERE saved_at < $1").bind(keep_after.0).execute(&mut *tx).await?;
            for cursor in cursors {
                sqlx::query(
                    "INSERT INTO stream_cursors
                       (organization_id, project_id, environment_id, user_id, thread_id, turn_id, seq, saved_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                     ON CONFLICT (organization_id, project_id, environment_id, user_id, thread_id)
                     DO UPDATE SET turn_id = excluded.turn_id, seq = excluded.seq, saved_at = excluded.saved_at",
                )
                .bind(&cursor.scope.organization_id)
                .bind(&cursor.scope.project_id)
                .bind(&cursor.scope.environment_id)
                .bind(&cursor.user_id)
                .bind(&cursor.thread_id)
                .bind(&cursor.turn_id)
                .bind(cursor.seq)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Stream positions saved after `after`.
    pub async fn stream_cursors(&self, after: Timestamp) -> StoreResult<Vec<StreamCursor>> {
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT organization_id, project_id, environment_id, user_id, thread_id, turn_id, seq
                 FROM stream_cursors WHERE saved_at >= $1",
            )
            .bind(after.0)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(StreamCursor {
                    scope: Scope::new(
                        row.text("organization_id")?,
                        row.text("project_id")?,
                        row.text("environment_id")?,
                    ),
                    user_id: row.text("user_id")?,
                    thread_id: row.text("thread_id")?,
                    turn_id: row.text("turn_id")?,
                    seq: row.int("seq")?,
                })
            })
            .collect()
        })
    }
}
