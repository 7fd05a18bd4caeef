//! The usage ledger: one row per model call — completed, failed or stopped — with its tokens and
//! its cost in integer micro-cents. A turn's usage, and every cost view, is a sum over it.

use agentry_core::{MicroCents, Scope, Timestamp, TokenUsage};

use crate::row::RowExt;
use crate::{Store, StoreResult, on_pool, on_writer};

/// How a model call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    /// The model finished its answer.
    Completed,
    /// The provider failed.
    Failed,
    /// The turn was stopped during the call.
    Stopped,
}

impl CallStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Completed => "completed",
            CallStatus::Failed => "failed",
            CallStatus::Stopped => "stopped",
        }
    }
}

/// One model call, as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelCall {
    /// `mcl_…`
    pub id: String,
    /// Scope of the turn.
    pub scope: Scope,
    /// The turn.
    pub turn_id: String,
    /// Its thread.
    pub thread_id: String,
    /// The agent.
    pub agent_id: String,
    /// The user the turn answers.
    pub user_id: String,
    /// 1-based number of the call within its turn.
    pub step: i64,
    /// Provider name (`openai`, `scripted`, …).
    pub provider: String,
    /// Model name.
    pub model: String,
    /// How it ended.
    pub status: CallStatus,
    /// Tokens and cost.
    pub usage: TokenUsage,
    /// The provider's finish reason, when known (`stop`, `tool_calls`, …).
    pub finish_reason: Option<String>,
    /// The failure, if any.
    pub error: Option<String>,
    /// When the request was sent.
    pub started_at: Timestamp,
    /// When the first token arrived.
    pub first_token_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Timestamp,
}

/// Inserts a ledger row on a pool or transaction, ignoring a second insert of the same call; the
/// statement's result says whether it was written (a macro: compiled for each backend). The row
/// `opens_turn` when its turn had no call yet: rollups count turns by it. (A turn's calls are
/// recorded one after another — one step at a time, on the replica holding the turn.)
macro_rules! insert_model_call {
    ($conn:expr, $call:expr) => {{
        let call: &$crate::ledger::ModelCall = $call;
        let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO model_calls (id, organization_id, project_id, environment_id, turn_id, thread_id, agent_id,
                user_id, step, provider, model, status, input_tokens, output_tokens, cached_input_tokens,
                reasoning_tokens, cost_micro_cents, finish_reason, error, started_at, first_token_at, finished_at,
                opens_turn)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
                CASE WHEN EXISTS (SELECT 1 FROM model_calls WHERE turn_id = $5) THEN 0 ELSE 1 END)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&call.id)
        .bind(&call.scope.organization_id)
        .bind(&call.scope.project_id)
        .bind(&call.scope.environment_id)
        .bind(&call.turn_id)
        .bind(&call.thread_id)
        .bind(&call.agent_id)
        .bind(&call.user_id)
        .bind(call.step)
        .bind(&call.provider)
        .bind(&call.model)
        .bind(call.status.as_str())
        .bind(tokens(call.usage.input_tokens))
        .bind(tokens(call.usage.output_tokens))
        .bind(tokens(call.usage.cached_input_tokens))
        .bind(tokens(call.usage.reasoning_tokens))
        .bind(call.usage.cost.0)
        .bind(&call.finish_reason)
        .bind(&call.error)
        .bind(call.started_at.0)
        .bind(call.first_token_at.map(|t| t.0))
        .bind(call.finished_at.0)
        .execute($conn)
        .await?
    }};
}
pub(crate) use insert_model_call;

impl Store {
    /// Records a model call (once: a second record of the same call is ignored).
    pub async fn record_model_call(&self, call: &ModelCall) -> StoreResult<()> {
        on_writer!(self, |pool| {
            insert_model_call!(pool, call);
        });
        Ok(())
    }

    /// The sum of a turn's model calls.
    pub async fn turn_usage(&self, scope: &Scope, turn_id: &str) -> StoreResult<TokenUsage> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {} FROM model_calls
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND turn_id = $4",
                crate::monitoring::USAGE_SUMS
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(turn_id)
                .fetch_one(pool)
                .await?;
            crate::monitoring::usage_from_row(&row)
        })
    }

    /// A turn's model calls in the order they were made.
    pub async fn model_calls_of_turn(&self, scope: &Scope, turn_id: &str) -> StoreResult<Vec<ModelCall>> {
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT * FROM model_calls
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND turn_id = $4
                 ORDER BY started_at, id",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(turn_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                let tokens = |column: &str| row.int(column).map(|n| u64::try_from(n).unwrap_or(0));
                let status = match row.text("status")?.as_str() {
                    "completed" => CallStatus::Completed,
                    "stopped" => CallStatus::Stopped,
                    _ => CallStatus::Failed,
                };
                Ok(ModelCall {
                    id: row.text("id")?,
                    scope: scope.clone(),
                    turn_id: row.text("turn_id")?,
                    thread_id: row.text("thread_id")?,
                    agent_id: row.text("agent_id")?,
                    user_id: row.text("user_id")?,
                    step: row.int("step")?,
                    provider: row.text("provider")?,
                    model: row.text("model")?,
                    status,
                    usage: TokenUsage {
                        input_tokens: tokens("input_tokens")?,
                        output_tokens: tokens("output_tokens")?,
                        cached_input_tokens: tokens("cached_input_tokens")?,
                        reasoning_tokens: tokens("reasoning_tokens")?,
                        cost: MicroCents(row.int("cost_micro_cents")?),
                    },
                    finish_reason: row.opt_text("finish_reason")?,
                    error: row.opt_text("error")?,
                    started_at: Timestamp(row.int("started_at")?),
                    first_token_at: row.opt_int("first_token_at")?.map(Timestamp),
                    finished_at: Timestamp(row.int("finished_at")?),
                })
            })
            .collect()
        })
    }
}
