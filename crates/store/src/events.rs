//! Turns' event logs: `seq` 1, 2, 3… per turn, appended in batches by one writer per replica.
//!
//! Appends are fenced: an event carries the fencing token of the lease its writer held, and is
//! stored only while that is still the turn's token. A refused event never takes the other
//! events of its batch with it — the batch is one statement whose join drops exactly the rows of
//! turns whose token moved on, and [`Appended::refused`] names those turns.

use std::collections::BTreeSet;

use agentry_core::{LoggedEvent, Scope, Timestamp, TurnEvent};

use crate::row::RowExt;
use crate::spans::Span;
use crate::{Db, Store, StoreError, StoreResult, on_pool, on_writer};

/// One event to append, with the scope of its turn and the writer's fencing token.
#[derive(Debug, Clone, Copy)]
pub struct EventRow<'a> {
    /// Scope of the turn.
    pub scope: &'a Scope,
    /// The event.
    pub event: &'a LoggedEvent,
    /// The fencing token of the writer's lease.
    pub token: i64,
}

/// What [`Store::append_events`] stored.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Turns whose events were not stored: their writer's lease is no longer the turn's (or the
    /// positions were already taken).
    pub refused: BTreeSet<String>,
}

impl Store {
    /// Appends a batch of events (of any turns) in one transaction, with multi-row inserts, each
    /// row only if its token is still its turn's.
    pub async fn append_events(&self, rows: &[EventRow<'_>]) -> StoreResult<Appended> {
        self.append_log(rows, &[]).await
    }

    /// [`Store::append_events`], with spans written in the same transaction (never fenced).
    pub async fn append_log(&self, rows: &[EventRow<'_>], spans: &[Span]) -> StoreResult<Appended> {
        /// Rows per INSERT statement (9 parameters each, well under both backends' limits).
        const ROWS_PER_STATEMENT: usize = 500;
        if rows.is_empty() && spans.is_empty() {
            return Ok(Appended::default());
        }
        let encoded = rows
            .iter()
            .map(|r| serde_json::to_string(&r.event.event).map_err(|err| StoreError::Corrupt(err.to_string())))
            .collect::<StoreResult<Vec<_>>>()?;
        let rows_with_json: Vec<_> = rows.iter().zip(&encoded).collect();
        // SQLite resolves `$N` names by walking a list per parameter, which is quadratic over a
        // multi-row insert; its anonymous `?` placeholders bind in order at no cost.
        let anonymous = matches!(self.db, Db::Sqlite { .. });
        let inserted = on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut inserted = 0;
            for chunk in rows_with_json.chunks(ROWS_PER_STATEMENT) {
                let mut sql = String::with_capacity(300 + chunk.len() * 48);
                sql.push_str(
                    "INSERT INTO turn_events (turn_id, seq, thread_id, organization_id, project_id, environment_id, event_json, created_at)
                     SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8
                     FROM (VALUES ",
                );
                for i in 0..chunk.len() {
                    if i > 0 {
                        sql.push(',');
                    }
                    if anonymous {
                        sql.push_str("(?, ?, ?, ?, ?, ?, ?, ?, ?)");
                    } else {
                        let p = i * 9;
                        sql.push('(');
                        for k in 1..=9 {
                            if k > 1 {
                                sql.push_str(", ");
                            }
                            sql.push('$');
                            sql.push_str(&(p + k).to_string());
                        }
                        sql.push(')');
                    }
                }
                // The WHERE (not a JOIN … ON) keeps SQLite's parser from reading the upsert's ON.
                sql.push_str(
                    ") AS v, turns t WHERE t.id = v.column1 AND t.lease_token = v.column9 ON CONFLICT DO NOTHING",
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (row, json) in chunk {
                    query = query
                        .bind(&row.event.turn_id)
                        .bind(row.event.seq)
                        .bind(&row.event.thread_id)
                        .bind(&row.scope.organization_id)
                        .bind(&row.scope.project_id)
                        .bind(&row.scope.environment_id)
                        .bind(json.as_str())
                        .bind(row.event.at.0)
                        .bind(row.token);
                }
                inserted += query.execute(&mut *tx).await?.rows_affected();
            }
            if !spans.is_empty() {
                crate::spans::insert_spans!(tx, spans, anonymous);
            }
            tx.commit().await?;
            inserted
        });
        if inserted as usize == rows.len() {
            return Ok(Appended::default());
        }
        self.refused_turns(rows, &encoded).await
    }

    /// The turns of a batch whose rows were not all stored: their token moved on, or one of
    /// their positions holds another event.
    async fn refused_turns(&self, rows: &[EventRow<'_>], encoded: &[String]) -> StoreResult<Appended> {
        let wanted: BTreeSet<(&str, i64)> = rows.iter().map(|r| (r.event.turn_id.as_str(), r.token)).collect();
        let mut refused = BTreeSet::new();
        for (turn_id, token) in &wanted {
            if self.lease_token(turn_id).await? != Some(*token) {
                refused.insert((*turn_id).to_owned());
                continue;
            }
            let ours: Vec<(i64, &str, i64)> = rows
                .iter()
                .zip(encoded)
                .filter(|(r, _)| r.event.turn_id == *turn_id)
                .map(|(r, json)| (r.event.seq, json.as_str(), r.event.at.0))
                .collect();
            let stored = self.stored_events(turn_id, &ours).await?;
            if ours.iter().any(|(seq, json, at)| !stored.contains(&(*seq, (*json).to_owned(), *at))) {
                refused.insert((*turn_id).to_owned());
            }
        }
        Ok(Appended { refused })
    }

    async fn lease_token(&self, turn_id: &str) -> StoreResult<Option<i64>> {
        on_pool!(self, |pool| {
            Ok(sqlx::query_scalar("SELECT lease_token FROM turns WHERE id = $1")
                .bind(turn_id)
                .fetch_optional(pool)
                .await?)
        })
    }

    /// What is stored at the positions of `events` (seq, JSON, time).
    async fn stored_events(&self, turn_id: &str, events: &[(i64, &str, i64)]) -> StoreResult<Vec<(i64, String, i64)>> {
        let seqs = events.iter().map(|(seq, _, _)| *seq);
        let (Some(min), Some(max)) = (seqs.clone().min(), seqs.max()) else { return Ok(Vec::new()) };
        on_pool!(self, |pool| {
            Ok(sqlx::query_as(
                "SELECT seq, event_json, created_at FROM turn_events WHERE turn_id = $1 AND seq >= $2 AND seq <= $3",
            )
            .bind(turn_id)
            .bind(min)
            .bind(max)
            .fetch_all(pool)
            .await?)
        })
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

    /// The `seq` of a turn's last logged event (0 when it has none).
    pub async fn last_event_seq(&self, scope: &Scope, turn_id: &str) -> StoreResult<i64> {
        on_pool!(self, |pool| {
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(seq) FROM turn_events
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND turn_id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(turn_id)
            .fetch_one(pool)
            .await?;
            Ok(last.unwrap_or(0))
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
