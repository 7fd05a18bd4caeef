//! Threads and their messages.
//!
//! Every lookup is by `(scope, owner, id)`: `owner` is the end user whose threads the caller may
//! see, or `None` for an operator who sees every user of the scope.

use agentry_core::{Message, MessageRole, Scope, Thread, ThreadStatus, Timestamp};

use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

/// Inserts a message and bumps its thread's `updated_at`, on an open transaction or connection
/// (a macro: the statements are compiled for each backend). `$steps` is
/// [`encode_tool_steps`]' result.
macro_rules! insert_message {
    ($conn:expr, $scope:expr, $message:expr, $steps:expr) => {{
        let (scope, message) = ($scope, $message);
        sqlx::query(
            "INSERT INTO messages (id, thread_id, organization_id, project_id, environment_id, role, content,
                created_at, turn_id, tool_steps_json)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&message.id)
        .bind(&message.thread_id)
        .bind(&scope.organization_id)
        .bind(&scope.project_id)
        .bind(&scope.environment_id)
        .bind(message.role.as_str())
        .bind(&message.content)
        .bind(message.created_at.0)
        .bind(&message.turn_id)
        .bind(&$steps)
        .execute($conn)
        .await?;
        sqlx::query(
            "UPDATE threads SET updated_at = $5
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4",
        )
        .bind(&scope.organization_id)
        .bind(&scope.project_id)
        .bind(&scope.environment_id)
        .bind(&message.thread_id)
        .bind(message.created_at.0)
        .execute($conn)
        .await?;
    }};
}
pub(crate) use insert_message;

/// Which threads a listing includes, by archive state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ArchivedFilter {
    /// Active threads only (the default).
    #[default]
    Exclude,
    /// Active and archived.
    Include,
    /// Archived only.
    Only,
}

/// A thread listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadQuery<'a> {
    /// Only threads owned by this user (`None`: all users, operators only).
    pub owner: Option<&'a str>,
    /// Only threads of this agent.
    pub agent_id: Option<&'a str>,
    /// Archive filter.
    pub archived: ArchivedFilter,
    /// Only the thread with this id, or threads whose title contains this text (any case).
    pub search: Option<&'a str>,
    /// Page size.
    pub limit: i64,
    /// Rows to skip.
    pub offset: i64,
}

const THREAD_COLUMNS: &str = "id, organization_id, project_id, environment_id, user_id, agent_id, title, status, archived_at, created_at, updated_at";

/// `WHERE` clause matching one thread visible to the caller; binds $1..$5 = scope, id, owner.
const THREAD_MATCH: &str = "organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4
     AND ($5 IS NULL OR user_id = $5)";

impl Store {
    /// Inserts a new thread.
    pub async fn insert_thread(&self, thread: &Thread) -> StoreResult<()> {
        on_writer!(self, |pool| {
            let sql =
                format!("INSERT INTO threads ({THREAD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&thread.id)
                .bind(&thread.scope.organization_id)
                .bind(&thread.scope.project_id)
                .bind(&thread.scope.environment_id)
                .bind(&thread.user_id)
                .bind(&thread.agent_id)
                .bind(&thread.title)
                .bind(thread.status.as_str())
                .bind(thread.archived_at.map(|t| t.0))
                .bind(thread.created_at.0)
                .bind(thread.updated_at.0)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// One thread, if it exists in the scope and the caller may see it.
    pub async fn get_thread(&self, scope: &Scope, owner: Option<&str>, id: &str) -> StoreResult<Option<Thread>> {
        on_pool!(self, |pool| {
            let sql = format!("SELECT {THREAD_COLUMNS} FROM threads WHERE {THREAD_MATCH}");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(id)
                .bind(owner)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(thread_from_row)
                .transpose()
        })
    }

    /// A page of threads, most recently updated first, and the total matching count.
    pub async fn list_threads(&self, scope: &Scope, query: &ThreadQuery<'_>) -> StoreResult<(Vec<Thread>, i64)> {
        let archived = match query.archived {
            ArchivedFilter::Exclude => " AND status = 'active'",
            ArchivedFilter::Include => "",
            ArchivedFilter::Only => " AND status = 'archived'",
        };
        let filter = format!(
            "organization_id = $1 AND project_id = $2 AND environment_id = $3
             AND ($4 IS NULL OR user_id = $4) AND ($5 IS NULL OR agent_id = $5)
             AND ($6 IS NULL OR id = $6 OR LOWER(COALESCE(title, '')) LIKE $7 ESCAPE '!'){archived}"
        );
        let pattern = query.search.map(|text| format!("%{}%", escape_like(&text.to_lowercase())));
        on_pool!(self, |pool| {
            let page_sql = format!(
                "SELECT {THREAD_COLUMNS} FROM threads WHERE {filter} ORDER BY updated_at DESC, id DESC LIMIT $8 OFFSET $9"
            );
            let threads = sqlx::query(sqlx::AssertSqlSafe(page_sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(query.owner)
                .bind(query.agent_id)
                .bind(query.search)
                .bind(&pattern)
                .bind(query.limit)
                .bind(query.offset)
                .fetch_all(pool)
                .await?
                .iter()
                .map(thread_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            let total: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM threads WHERE {filter}")))
                    .bind(&scope.organization_id)
                    .bind(&scope.project_id)
                    .bind(&scope.environment_id)
                    .bind(query.owner)
                    .bind(query.agent_id)
                    .bind(query.search)
                    .bind(&pattern)
                    .fetch_one(pool)
                    .await?;
            Ok((threads, total))
        })
    }

    /// Archives or unarchives a thread; returns it after the change, or `None` if not visible.
    pub async fn set_thread_archived(
        &self,
        scope: &Scope,
        owner: Option<&str>,
        id: &str,
        archived: bool,
    ) -> StoreResult<Option<Thread>> {
        let now = Timestamp::now().0;
        let (status, archived_at) =
            if archived { (ThreadStatus::Archived, Some(now)) } else { (ThreadStatus::Active, None) };
        let updated = on_writer!(self, |pool| {
            let sql = format!("UPDATE threads SET status = $6, archived_at = $7, updated_at = $8 WHERE {THREAD_MATCH}");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(id)
                .bind(owner)
                .bind(status.as_str())
                .bind(archived_at)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if updated == 0 {
            return Ok(None);
        }
        self.get_thread(scope, owner, id).await
    }

    /// Deletes a thread and its messages. Returns false when it was not visible.
    pub async fn delete_thread(&self, scope: &Scope, owner: Option<&str>, id: &str) -> StoreResult<bool> {
        let deleted = on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let sql = format!("DELETE FROM threads WHERE {THREAD_MATCH}");
            let deleted = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(id)
                .bind(owner)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted > 0 {
                // Also covered by ON DELETE CASCADE; explicit so it holds without foreign-key enforcement.
                for sql in [
                    "DELETE FROM messages WHERE thread_id = $1",
                    "DELETE FROM turn_events WHERE thread_id = $1",
                    "DELETE FROM turns WHERE thread_id = $1",
                ] {
                    sqlx::query(sql).bind(id).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            deleted
        });
        Ok(deleted > 0)
    }

    /// Appends a message to a thread (which the caller has already resolved in its scope) and
    /// bumps the thread's `updated_at`.
    pub async fn append_message(&self, scope: &Scope, message: &Message) -> StoreResult<()> {
        let steps = encode_tool_steps(message)?;
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            insert_message!(&mut *tx, scope, message, steps);
            tx.commit().await?;
        });
        Ok(())
    }

    /// The last `limit` messages of a thread, in chronological order (a turn's history).
    pub async fn recent_messages(&self, scope: &Scope, thread_id: &str, limit: i64) -> StoreResult<Vec<Message>> {
        let mut messages = on_pool!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND thread_id = $4
                 ORDER BY created_at DESC, id DESC LIMIT $5"
            )))
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(thread_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .iter()
            .map(message_from_row)
            .collect::<StoreResult<Vec<_>>>()?
        });
        messages.reverse();
        Ok(messages)
    }

    /// A page of a thread's messages in chronological order, and the total count.
    pub async fn list_messages(
        &self,
        scope: &Scope,
        thread_id: &str,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<Message>, i64)> {
        on_pool!(self, |pool| {
            let messages = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND thread_id = $4
                 ORDER BY created_at, id LIMIT $5 OFFSET $6"
            )))
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(thread_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?
            .iter()
            .map(message_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
            let total: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM messages
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND thread_id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(thread_id)
            .fetch_one(pool)
            .await?;
            Ok((messages, total))
        })
    }
}

fn thread_from_row(row: &impl RowExt) -> StoreResult<Thread> {
    Ok(Thread {
        id: row.text("id")?,
        agent_id: row.text("agent_id")?,
        user_id: row.text("user_id")?,
        scope: Scope::new(row.text("organization_id")?, row.text("project_id")?, row.text("environment_id")?),
        title: row.opt_text("title")?,
        status: ThreadStatus::parse(&row.text("status")?),
        archived_at: row.opt_int("archived_at")?.map(Timestamp),
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

fn message_from_row(row: &impl RowExt) -> StoreResult<Message> {
    let role = row.text("role")?;
    let tool_steps = match row.opt_text("tool_steps_json")? {
        Some(json) => serde_json::from_str(&json).map_err(|e| StoreError::Corrupt(format!("tool steps: {e}")))?,
        None => Vec::new(),
    };
    Ok(Message {
        id: row.text("id")?,
        thread_id: row.text("thread_id")?,
        role: MessageRole::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("message role `{role}`")))?,
        content: row.text("content")?,
        created_at: Timestamp(row.int("created_at")?),
        turn_id: row.opt_text("turn_id")?,
        tool_steps,
    })
}

const MESSAGE_COLUMNS: &str = "id, thread_id, role, content, created_at, turn_id, tool_steps_json";

/// The stored form of a message's tool steps (`None` when it has none).
pub(crate) fn encode_tool_steps(message: &Message) -> StoreResult<Option<String>> {
    if message.tool_steps.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&message.tool_steps).map(Some).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// `text` with the `LIKE` wildcards and the escape character (`!`) escaped.
fn escape_like(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '!') {
            escaped.push('!');
        }
        escaped.push(c);
    }
    escaped
}
