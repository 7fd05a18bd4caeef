//! What operators look at: a scope's turns with what their calls added up to, cost rollups and
//! a summary — all read from the turns, the usage ledger (`model_calls`) and the tool-call
//! ledger, so they agree with `done.usage` and with each other to the micro-cent.

use std::collections::HashMap;

use agentry_core::{MicroCents, Scope, Timestamp, TokenUsage, Turn};

use crate::row::RowExt;
use crate::{Store, StoreResult, on_pool};

/// The usage sums of a set of ledger rows, as `input_tokens`, `output_tokens`,
/// `cached_input_tokens`, `reasoning_tokens`, `cost_micro_cents` (read by [`usage_from_row`]).
pub(crate) const USAGE_SUMS: &str = "CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens,
    CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens,
    CAST(COALESCE(SUM(cached_input_tokens), 0) AS BIGINT) AS cached_input_tokens,
    CAST(COALESCE(SUM(reasoning_tokens), 0) AS BIGINT) AS reasoning_tokens,
    CAST(COALESCE(SUM(cost_micro_cents), 0) AS BIGINT) AS cost_micro_cents";

/// Reads [`USAGE_SUMS`].
pub(crate) fn usage_from_row(row: &impl RowExt) -> StoreResult<TokenUsage> {
    let tokens = |column: &str| row.int(column).map(|n| u64::try_from(n).unwrap_or(0));
    Ok(TokenUsage {
        input_tokens: tokens("input_tokens")?,
        output_tokens: tokens("output_tokens")?,
        cached_input_tokens: tokens("cached_input_tokens")?,
        reasoning_tokens: tokens("reasoning_tokens")?,
        cost: MicroCents(row.int("cost_micro_cents")?),
    })
}

/// Which turns of a scope to list (newest first).
#[derive(Debug, Clone, Default)]
pub struct TurnFilter {
    /// Only this agent's.
    pub agent_id: Option<String>,
    /// Only this thread's.
    pub thread_id: Option<String>,
    /// Only turns in this state (`queued`, `running`, `waiting`, `completed`, …).
    pub status: Option<String>,
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only turns accepted at or after this.
    pub since: Option<Timestamp>,
    /// At most this many.
    pub limit: i64,
    /// After skipping this many.
    pub offset: i64,
}

/// What a turn's model and tool calls add up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Tokens and cost: the turn's ledger sum.
    pub usage: TokenUsage,
    /// Model calls made.
    pub model_calls: i64,
    /// Tool calls made.
    pub tool_calls: i64,
    /// When the first model call streamed its first token.
    pub first_token_at: Option<Timestamp>,
}

/// What a cost rollup groups the ledger by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollupBy {
    /// The agent id.
    Agent,
    /// The UTC day (`YYYY-MM-DD`).
    Day,
    /// `provider:model`.
    Model,
    /// The user id.
    User,
    /// Nothing: one row (`total`) for the whole span, each turn counted once.
    Total,
}

impl RollupBy {
    fn key_sql(self) -> &'static str {
        match self {
            RollupBy::Agent => "agent_id",
            RollupBy::Day => "CAST(CAST(started_at / 86400000 AS BIGINT) AS TEXT)",
            RollupBy::Model => "provider || ':' || model",
            RollupBy::User => "user_id",
            RollupBy::Total => "'total'",
        }
    }
}

/// One group of a cost rollup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupRow {
    /// The agent id, day (`YYYY-MM-DD`), `provider:model` or user id.
    pub key: String,
    /// Tokens and cost.
    pub usage: TokenUsage,
    /// Turns that made model calls.
    pub turns: i64,
    /// Model calls.
    pub model_calls: i64,
}

/// How a scope's turns went over a time span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnSummary {
    /// Turns accepted, by state.
    pub by_status: HashMap<String, i64>,
    /// 50th and 95th percentile of finished turns' duration (start to end), in milliseconds.
    pub p50_ms: Option<i64>,
    /// 95th percentile.
    pub p95_ms: Option<i64>,
    /// Approvals waiting for a human now.
    pub pending_approvals: i64,
}

impl Store {
    /// A scope's turns, newest first.
    pub async fn list_turns(&self, scope: &Scope, filter: &TurnFilter) -> StoreResult<Vec<Turn>> {
        let sql = format!(
            "SELECT {} FROM turns
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3
               AND ($4 IS NULL OR agent_id = $4) AND ($5 IS NULL OR thread_id = $5) AND ($6 IS NULL OR status = $6)
               AND ($7 IS NULL OR user_id = $7) AND ($8 IS NULL OR created_at >= $8)
             ORDER BY created_at DESC, id DESC LIMIT $9 OFFSET $10",
            crate::turns::TURN_COLUMNS
        );
        on_pool!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(&filter.agent_id)
                .bind(&filter.thread_id)
                .bind(&filter.status)
                .bind(&filter.user_id)
                .bind(filter.since.map(|t| t.0))
                .bind(filter.limit)
                .bind(filter.offset)
                .fetch_all(pool)
                .await?
                .iter()
                .map(crate::turns::turn_from_row)
                .collect()
        })
    }

    /// What each of these turns' model and tool calls add up to (turns without calls are
    /// missing from the map).
    pub async fn turn_stats(&self, turn_ids: &[String]) -> StoreResult<HashMap<String, TurnStats>> {
        let mut stats: HashMap<String, TurnStats> = HashMap::new();
        if turn_ids.is_empty() {
            return Ok(stats);
        }
        let list = (1..=turn_ids.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
        let calls = format!(
            "SELECT turn_id, {USAGE_SUMS}, COUNT(*) AS calls, MIN(first_token_at) AS first_token_at
             FROM model_calls WHERE turn_id IN ({list}) GROUP BY turn_id"
        );
        let tools =
            format!("SELECT turn_id, COUNT(*) AS calls FROM tool_calls WHERE turn_id IN ({list}) GROUP BY turn_id");
        on_pool!(self, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(calls));
            for id in turn_ids {
                query = query.bind(id);
            }
            for row in query.fetch_all(pool).await? {
                let entry = stats.entry(row.text("turn_id")?).or_default();
                entry.usage = usage_from_row(&row)?;
                entry.model_calls = row.int("calls")?;
                entry.first_token_at = row.opt_int("first_token_at")?.map(Timestamp);
            }
            let mut query = sqlx::query(sqlx::AssertSqlSafe(tools));
            for id in turn_ids {
                query = query.bind(id);
            }
            for row in query.fetch_all(pool).await? {
                stats.entry(row.text("turn_id")?).or_default().tool_calls = row.int("calls")?;
            }
        });
        Ok(stats)
    }

    /// The ledger of a scope from `since` to before `until`, grouped (`user`: only that user's
    /// calls); the largest cost first, days in order. A row's `turns` are the turns whose first
    /// model call it holds, so each turn counts once and the rows of any grouping add up to the
    /// total.
    pub async fn cost_rollup(
        &self,
        scope: &Scope,
        by: RollupBy,
        since: Timestamp,
        until: Timestamp,
        user: Option<&str>,
    ) -> StoreResult<Vec<RollupRow>> {
        let order = if by == RollupBy::Day { "key" } else { "cost_micro_cents DESC, key" };
        let sql = format!(
            "SELECT {key} AS key, {USAGE_SUMS}, CAST(COALESCE(SUM(opens_turn), 0) AS BIGINT) AS turns,
                    COUNT(*) AS calls
             FROM model_calls
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3
               AND started_at >= $4 AND started_at < $5 AND ($6 IS NULL OR user_id = $6)
             {group}",
            key = by.key_sql(),
            // Postgres does not group by a constant: the total is one row without GROUP BY.
            group = if by == RollupBy::Total {
                String::new()
            } else {
                format!("GROUP BY {} ORDER BY {order}", by.key_sql())
            },
        );
        let mut rows: Vec<RollupRow> = on_pool!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(since.0)
                .bind(until.0)
                .bind(user)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| {
                    Ok(RollupRow {
                        key: row.text("key")?,
                        usage: usage_from_row(row)?,
                        turns: row.int("turns")?,
                        model_calls: row.int("calls")?,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?
        });
        if by == RollupBy::Day {
            // Day numbers since the epoch, as text: numeric order, then dates.
            rows.sort_by_key(|r| r.key.parse::<i64>().unwrap_or(0));
            for row in &mut rows {
                let day = row.key.parse::<i64>().unwrap_or(0);
                row.key = agentry_core::Period::Day.window_key(Timestamp(day * 86_400_000));
            }
        }
        Ok(rows)
    }

    /// How a scope's turns accepted since `since` went (`user`: only that user's).
    pub async fn turn_summary(&self, scope: &Scope, since: Timestamp, user: Option<&str>) -> StoreResult<TurnSummary> {
        let mut summary = TurnSummary::default();
        let filter = "organization_id = $1 AND project_id = $2 AND environment_id = $3 AND created_at >= $4
                      AND ($5 IS NULL OR user_id = $5)";
        let counts = format!("SELECT status, COUNT(*) AS n FROM turns WHERE {filter} GROUP BY status");
        let durations = format!(
            "SELECT finished_at - started_at AS ms FROM turns
             WHERE {filter} AND finished_at IS NOT NULL AND started_at IS NOT NULL ORDER BY ms"
        );
        let pending = "SELECT COUNT(*) AS n FROM approvals
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND status = 'pending'
               AND ($4 IS NULL OR requested_by = $4)";
        let durations: Vec<i64> = on_pool!(self, |pool| {
            for row in sqlx::query(sqlx::AssertSqlSafe(counts))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(since.0)
                .bind(user)
                .fetch_all(pool)
                .await?
            {
                summary.by_status.insert(row.text("status")?, row.int("n")?);
            }
            summary.pending_approvals = sqlx::query_scalar(pending)
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(user)
                .fetch_one(pool)
                .await?;
            sqlx::query_scalar(sqlx::AssertSqlSafe(durations))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(since.0)
                .bind(user)
                .fetch_all(pool)
                .await?
        });
        let percentile = |p: usize| (!durations.is_empty()).then(|| durations[(durations.len() - 1) * p / 100]);
        summary.p50_ms = percentile(50);
        summary.p95_ms = percentile(95);
        Ok(summary)
    }

    /// Unfinished turns of the whole installation by state (`queued`, `running`, `waiting`), for
    /// the metrics gauge every replica reports alike.
    pub async fn unfinished_turn_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        let sql =
            "SELECT status, COUNT(*) AS n FROM turns WHERE status IN ('queued', 'running', 'waiting') GROUP BY status";
        on_pool!(self, |pool| {
            sqlx::query(sql).fetch_all(pool).await?.iter().map(|row| Ok((row.text("status")?, row.int("n")?))).collect()
        })
    }
}
