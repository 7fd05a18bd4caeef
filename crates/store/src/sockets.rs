//! What socket clients have confirmed, kept where any replica finds it: stream positions per
//! user and thread (for a bare `resume_stream`), and the state of disconnected Socket.IO
//! sessions (for connection state recovery).

use agentry_core::{Scope, Timestamp};

use crate::row::RowExt;
use crate::{Store, StoreResult, on_pool, on_writer};

/// Where a user's view of a thread stands: the last event of a turn the client confirmed.
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
    /// The last `seq` confirmed.
    pub seq: i64,
}

/// A disconnected Socket.IO session, by its private id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSession {
    /// The private id the client presents to recover.
    pub pid: String,
    /// Scope of its principal.
    pub scope: Scope,
    /// Owner id of its principal.
    pub user_id: String,
    /// What it followed (the transport's own encoding).
    pub state_json: String,
    /// When it can no longer be recovered.
    pub expires_at: Timestamp,
}

impl Store {
    /// Saves stream positions, replacing older ones of the same user and thread.
    pub async fn save_stream_cursors(&self, cursors: &[StreamCursor]) -> StoreResult<()> {
        if cursors.is_empty() {
            return Ok(());
        }
        let now = Timestamp::now().0;
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
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

    /// The position saved for a user's view of a thread after `after`, if any.
    pub async fn stream_cursor(
        &self,
        scope: &Scope,
        user_id: &str,
        thread_id: &str,
        after: Timestamp,
    ) -> StoreResult<Option<StreamCursor>> {
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT turn_id, seq FROM stream_cursors
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND user_id = $4
                   AND thread_id = $5 AND saved_at >= $6",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(user_id)
            .bind(thread_id)
            .bind(after.0)
            .fetch_optional(pool)
            .await?
            .map(|row| {
                Ok(StreamCursor {
                    scope: scope.clone(),
                    user_id: user_id.to_owned(),
                    thread_id: thread_id.to_owned(),
                    turn_id: row.text("turn_id")?,
                    seq: row.int("seq")?,
                })
            })
            .transpose()
        })
    }

    /// Keeps a disconnected session for recovery until its expiry.
    pub async fn save_socket_session(&self, session: &SocketSession) -> StoreResult<()> {
        on_writer!(self, |pool| {
            sqlx::query(
                "INSERT INTO socket_sessions (pid, organization_id, project_id, environment_id, user_id, state_json, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (pid) DO UPDATE SET state_json = excluded.state_json, expires_at = excluded.expires_at",
            )
            .bind(&session.pid)
            .bind(&session.scope.organization_id)
            .bind(&session.scope.project_id)
            .bind(&session.scope.environment_id)
            .bind(&session.user_id)
            .bind(&session.state_json)
            .bind(session.expires_at.0)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Removes and returns an unexpired session of this principal (scope and owner must match: a
    /// session is recovered only by whoever it belonged to).
    pub async fn take_socket_session(
        &self,
        pid: &str,
        scope: &Scope,
        user_id: &str,
    ) -> StoreResult<Option<SocketSession>> {
        let row = on_writer!(self, |pool| {
            sqlx::query(
                "DELETE FROM socket_sessions
                 WHERE pid = $1 AND organization_id = $2 AND project_id = $3 AND environment_id = $4 AND user_id = $5
                   AND expires_at > $6
                 RETURNING state_json, expires_at",
            )
            .bind(pid)
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(user_id)
            .bind(Timestamp::now().0)
            .fetch_optional(pool)
            .await?
            .map(|row| Ok::<_, crate::StoreError>((row.text("state_json")?, row.int("expires_at")?)))
            .transpose()?
        });
        Ok(row.map(|(state_json, expires_at)| SocketSession {
            pid: pid.to_owned(),
            scope: scope.clone(),
            user_id: user_id.to_owned(),
            state_json,
            expires_at: Timestamp(expires_at),
        }))
    }

    /// Forgets positions saved before `before` and sessions that expired.
    pub async fn purge_socket_state(&self, before: Timestamp) -> StoreResult<()> {
        on_writer!(self, |pool| {
            sqlx::query("DELETE FROM stream_cursors WHERE saved_at < $1").bind(before.0).execute(pool).await?;
            sqlx::query("DELETE FROM socket_sessions WHERE expires_at < $1")
                .bind(Timestamp::now().0)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
