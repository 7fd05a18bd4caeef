//! Trace spans of turns, OpenTelemetry-shaped: the turn (`invoke_agent`), each model call
//! (`chat`), each tool call (`execute_tool`).
//!
//! Spans are written by the replica's log writer in the same transaction as the events of the
//! same moment (see [`Store::append_log`]), so a turn's spans are stored by the time its `done`
//! is. A span is never fenced: it records work that happened, whichever replica did it; its id
//! is derived from what it describes, so writing it twice keeps one row.

use agentry_core::Scope;
use serde_json::{Map, Value};

use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

/// One span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The parent span (the turn's for model and tool calls; the caller's, or none, for a turn).
    pub parent_span_id: Option<String>,
    /// Tenancy of the turn.
    pub scope: Scope,
    /// The turn's thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The agent answering.
    pub agent_id: String,
    /// The user who sent the message.
    pub user_id: String,
    /// `invoke_agent {agent}`, `chat {model}`, `execute_tool {tool}`.
    pub name: String,
    /// OpenTelemetry span kind.
    pub kind: SpanKind,
    /// Unix nanoseconds.
    pub start_ns: i64,
    /// Unix nanoseconds.
    pub end_ns: i64,
    /// Whether the work succeeded.
    pub status: SpanStatus,
    /// What went wrong, when it did not.
    pub error: Option<String>,
    /// `gen_ai.*` and `agentry.*` attributes.
    pub attributes: Map<String, Value>,
}

impl Span {
    /// Its length in milliseconds.
    pub fn duration_ms(&self) -> f64 {
        (self.end_ns - self.start_ns).max(0) as f64 / 1e6
    }
}

/// OpenTelemetry span kinds used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Work inside Agentry (a turn, a tool call).
    Internal,
    /// A call out to a model provider.
    Client,
}

impl SpanKind {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Internal => "internal",
            SpanKind::Client => "client",
        }
    }
}

/// Whether a span's work succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanStatus {
    /// It did.
    Ok,
    /// It did not (`error` says why).
    Error,
}

impl SpanStatus {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanStatus::Ok => "ok",
            SpanStatus::Error => "error",
        }
    }
}

/// Columns of `spans`, in insert order.
const SPAN_COLUMNS: &str = "span_id, trace_id, parent_span_id, organization_id, project_id, environment_id, thread_id,
    turn_id, agent_id, user_id, name, kind, start_ns, end_ns, status, error, attributes_json";

/// Inserts spans on a transaction, in multi-row statements, keeping a span already stored (a
/// macro: compiled for each backend). `$anonymous`: SQLite's `?` placeholders.
macro_rules! insert_spans {
    ($tx:expr, $spans:expr, $anonymous:expr) => {{
        /// 17 parameters a row: well under both backends' limits.
        const ROWS_PER_STATEMENT: usize = 500;
        let spans: &[$crate::spans::Span] = $spans;
        let attributes: Vec<String> =
            spans.iter().map(|s| serde_json::Value::Object(s.attributes.clone()).to_string()).collect();
        for (chunk, attributes) in spans.chunks(ROWS_PER_STATEMENT).zip(attributes.chunks(ROWS_PER_STATEMENT)) {
            let sql = $crate::spans::insert_sql(chunk.len(), $anonymous);
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (span, attributes) in chunk.iter().zip(attributes) {
                query = query
                    .bind(&span.span_id)
                    .bind(&span.trace_id)
                    .bind(&span.parent_span_id)
                    .bind(&span.scope.organization_id)
                    .bind(&span.scope.project_id)
                    .bind(&span.scope.environment_id)
                    .bind(&span.thread_id)
                    .bind(&span.turn_id)
                    .bind(&span.agent_id)
                    .bind(&span.user_id)
                    .bind(&span.name)
                    .bind(span.kind.as_str())
                    .bind(span.start_ns)
                    .bind(span.end_ns)
                    .bind(span.status.as_str())
                    .bind(&span.error)
                    .bind(attributes.as_str());
            }
            query.execute(&mut *$tx).await?;
        }
    }};
}
pub(crate) use insert_spans;

/// `INSERT INTO spans … VALUES (…), (…) ON CONFLICT DO NOTHING` for `rows` rows.
pub(crate) fn insert_sql(rows: usize, anonymous: bool) -> String {
    let mut sql = format!("INSERT INTO spans ({SPAN_COLUMNS}) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for k in 1..=17 {
            if k > 1 {
                sql.push_str(", ");
            }
            if anonymous {
                sql.push('?');
            } else {
                sql.push('$');
                sql.push_str(&(i * 17 + k).to_string());
            }
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (span_id) DO NOTHING");
    sql
}

impl Store {
    /// The spans of a trace in a scope, oldest first; `user`: only that user's turns.
    pub async fn spans_of_trace(&self, scope: &Scope, trace_id: &str, user: Option<&str>) -> StoreResult<Vec<Span>> {
        self.spans_where(scope, "trace_id", trace_id, user).await
    }

    /// The spans of a thread's turns in a scope, oldest first.
    pub async fn spans_of_thread(&self, scope: &Scope, thread_id: &str) -> StoreResult<Vec<Span>> {
        self.spans_where(scope, "thread_id", thread_id, None).await
    }

    async fn spans_where(
        &self,
        scope: &Scope,
        column: &str,
        value: &str,
        user: Option<&str>,
    ) -> StoreResult<Vec<Span>> {
        let sql = format!(
            "SELECT {SPAN_COLUMNS} FROM spans
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND {column} = $4
               AND ($5 IS NULL OR user_id = $5)
             ORDER BY start_ns, span_id"
        );
        on_pool!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(value)
                .bind(user)
                .fetch_all(pool)
                .await?
                .iter()
                .map(span_from_row)
                .collect()
        })
    }

    /// Deletes spans that started before `before_ns`; returns how many went.
    pub async fn purge_spans(&self, before_ns: i64) -> StoreResult<u64> {
        on_writer!(self, |pool| {
            Ok(sqlx::query("DELETE FROM spans WHERE start_ns < $1")
                .bind(before_ns)
                .execute(pool)
                .await?
                .rows_affected())
        })
    }
}

fn span_from_row(row: &impl RowExt) -> StoreResult<Span> {
    let corrupt = |what: &str, value: &str| StoreError::Corrupt(format!("span {what} `{value}`"));
    let kind = row.text("kind")?;
    let status = row.text("status")?;
    let attributes = row.text("attributes_json")?;
    Ok(Span {
        trace_id: row.text("trace_id")?,
        span_id: row.text("span_id")?,
        parent_span_id: row.opt_text("parent_span_id")?,
        scope: Scope::new(row.text("organization_id")?, row.text("project_id")?, row.text("environment_id")?),
        thread_id: row.text("thread_id")?,
        turn_id: row.text("turn_id")?,
        agent_id: row.text("agent_id")?,
        user_id: row.text("user_id")?,
        name: row.text("name")?,
        kind: match kind.as_str() {
            "internal" => SpanKind::Internal,
            "client" => SpanKind::Client,
            _ => return Err(corrupt("kind", &kind)),
        },
        start_ns: row.int("start_ns")?,
        end_ns: row.int("end_ns")?,
        status: match status.as_str() {
            "ok" => SpanStatus::Ok,
            "error" => SpanStatus::Error,
            _ => return Err(corrupt("status", &status)),
        },
        error: row.opt_text("error")?,
        attributes: match serde_json::from_str(&attributes) {
            Ok(Value::Object(map)) => map,
            _ => return Err(corrupt("attributes", &attributes)),
        },
    })
}
