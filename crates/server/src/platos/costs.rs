//! Cost rollups from the usage ledger and the scope's summary, in the shapes of both client
//! generations and upstream (supersets: `{rollup, rows, …totals, fetchedAt}`):
//!
//! - by agent: `GET /monitoring/cost/by-agent?day` (0.1.x), `/monitoring/cost-by-agent?days&limit`;
//! - by day (the scope): `/monitoring/cost/by-scope?daysBack` (0.1.x), `/monitoring/cost?daysBack|date`;
//! - by model and by user: `/monitoring/cost/by-model`, `/monitoring/cost-by-model`,
//!   `/monitoring/cost/by-user`, `/monitoring/cost-by-user`;
//! - `GET /monitoring/summary?days` → cards: turns, cost, failures, p95 latency, pending approvals.
//!
//! Every window is in UTC days (or `since`/`until`); end users get their own spend only. Rows
//! carry exact micro-cents (`costMicroCents`) beside `costCents`, so rollups, traces and
//! `done.usage` can be compared to the micro-cent.

use agentry_core::{Principal, Timestamp, TokenUsage, TurnStatus};
use agentry_store::{RollupBy, RollupRow};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{QueryParams, time_param};

const DAY_MS: i64 = 86_400_000;

/// The time span (and size) of a rollup.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WindowQuery {
    /// One UTC day, `YYYY-MM-DD` (`date` is upstream's name).
    day: Option<String>,
    date: Option<String>,
    /// The last N UTC days, today included (`daysBack` is the 0.1.x name).
    days: Option<i64>,
    days_back: Option<i64>,
    /// An explicit span (RFC 3339, a day, or Unix milliseconds).
    since: Option<String>,
    until: Option<String>,
    /// At most this many rows.
    limit: Option<i64>,
}

/// A resolved span: `[since, until)`.
struct Window {
    since: Timestamp,
    until: Timestamp,
}

impl WindowQuery {
    /// Whether the query names a span at all.
    fn names_a_span(&self) -> bool {
        self.day.is_some()
            || self.date.is_some()
            || self.days.is_some()
            || self.days_back.is_some()
            || self.since.is_some()
            || self.until.is_some()
    }

    /// The span asked for; without one, the last `default_days` days.
    fn window(&self, default_days: i64) -> Result<Window, ApiError> {
        let today = Timestamp::now().start_of_day();
        if let Some((field, day)) = self.day.as_ref().map(|d| ("day", d)).or(self.date.as_ref().map(|d| ("date", d))) {
            let since = time_param(field, day)?.start_of_day();
            return Ok(Window { since, until: Timestamp(since.0 + DAY_MS) });
        }
        if self.since.is_some() || self.until.is_some() {
            let since = self.since.as_deref().map(|t| time_param("since", t)).transpose()?.unwrap_or(Timestamp(0));
            let until = self.until.as_deref().map(|t| time_param("until", t)).transpose()?;
            return Ok(Window { since, until: until.unwrap_or(Timestamp(today.0 + DAY_MS)) });
        }
        let (field, days) = match (self.days, self.days_back) {
            (Some(days), _) => ("days", days),
            (None, Some(days)) => ("daysBack", days),
            (None, None) => ("days", default_days),
        };
        if !(1..=366).contains(&days) {
            return Err(ApiError::invalid_field(field, format!("{days} is outside 1..=366")));
        }
        Ok(Window { since: Timestamp(today.0 - (days - 1) * DAY_MS), until: Timestamp(today.0 + DAY_MS) })
    }

    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(usize::MAX),
            Some(n) if (1..=1000).contains(&n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            Some(n) => Err(ApiError::invalid_field("limit", format!("{n} is outside 1..=1000"))),
        }
    }
}

/// Only the acting user's spend, for an end user or an API key acting as a user.
fn user_filter(principal: &Principal) -> Option<&str> {
    principal.thread_owner_filter()
}

fn usage_fields(usage: &TokenUsage, turns: i64) -> Map<String, Value> {
    let Value::Object(fields) = json!({
        "costCents": usage.cost.as_cents(),
        "costMicroCents": usage.cost.0,
        "turns": turns,
        "runs": turns,
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "cachedInputTokens": usage.cached_input_tokens,
        "reasoningTokens": usage.reasoning_tokens,
        "totalTokens": usage.input_tokens + usage.output_tokens,
    }) else {
        return Map::new();
    };
    fields
}

fn key_field(by: RollupBy) -> &'static str {
    match by {
        RollupBy::Agent => "agentId",
        RollupBy::Day => "day",
        RollupBy::Model => "model",
        RollupBy::User => "userId",
        RollupBy::Total => "total",
    }
}

/// What a window's ledger adds up to, and how many turns spent in it.
async fn total(state: &AppState, principal: &Principal, window: &Window) -> Result<(TokenUsage, i64), ApiError> {
    let rows = state
        .store
        .cost_rollup(&principal.scope, RollupBy::Total, window.since, window.until, user_filter(principal))
        .await?;
    Ok(rows.into_iter().next().map_or((TokenUsage::default(), 0), |row| (row.usage, row.turns)))
}

/// A rollup and its totals.
async fn rollup(
    state: &AppState,
    principal: &Principal,
    by: RollupBy,
    query: &WindowQuery,
    default_days: i64,
) -> Result<Json<Value>, ApiError> {
    let window = query.window(default_days)?;
    let limit = query.limit()?;
    let rows: Vec<RollupRow> =
        state.store.cost_rollup(&principal.scope, by, window.since, window.until, user_filter(principal)).await?;
    // Each turn counts in one row (where its first call is), so the rows add up to the total.
    let mut total = TokenUsage::default();
    for row in &rows {
        total.add(&row.usage);
    }
    let turns: i64 = rows.iter().map(|row| row.turns).sum();
    let views: Vec<Value> = rows
        .iter()
        .take(limit)
        .map(|row| {
            let mut fields = usage_fields(&row.usage, row.turns);
            fields.insert(key_field(by).into(), json!(row.key));
            fields.insert("modelCalls".into(), json!(row.model_calls));
            Value::Object(fields)
        })
        .collect();
    let mut body = usage_fields(&total, turns);
    body.insert("rollup".into(), json!(views));
    body.insert("rows".into(), json!(views));
    body.insert("since".into(), json!(window.since));
    body.insert("until".into(), json!(window.until));
    body.insert("fetchedAt".into(), json!(Timestamp::now()));
    Ok(Json(Value::Object(body)))
}

macro_rules! rollup_route {
    ($name:ident, $by:expr, $default_days:expr, $doc:literal) => {
        #[doc = $doc]
        pub async fn $name(
            State(state): State<AppState>,
            Auth(principal): Auth,
            QueryParams(query): QueryParams<WindowQuery>,
        ) -> Result<Json<Value>, ApiError> {
            rollup(&state, &principal, $by, &query, $default_days).await
        }
    };
}

rollup_route!(by_agent, RollupBy::Agent, 1, "Cost by agent: today, a `day`, or the last `days`.");
rollup_route!(by_day, RollupBy::Day, 30, "Cost of the scope by day: the last `daysBack` (30), or a `date`.");
rollup_route!(by_model, RollupBy::Model, 30, "Cost by `provider:model` over the last `days` (30).");
rollup_route!(by_user, RollupBy::User, 30, "Cost by user over the last `days` (30).");

/// `GET /monitoring/summary?days` (default: the last 24 hours) → the cards of an overview.
pub async fn summary(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<WindowQuery>,
) -> Result<Json<Value>, ApiError> {
    let window = if query.names_a_span() {
        query.window(1)?
    } else {
        let now = Timestamp::now();
        Window { since: Timestamp(now.0 - DAY_MS), until: Timestamp(now.0 + 1) }
    };
    let user = user_filter(&principal);
    let (summary, cost) = tokio::join!(
        state.store.turn_summary(&principal.scope, window.since, user),
        total(&state, &principal, &window)
    );
    let (summary, (cost, _)) = (summary?, cost?);
    let count = |status: TurnStatus| summary.by_status.get(status.as_str()).copied().unwrap_or(0);
    let turns: i64 = summary.by_status.values().sum();
    let failed = count(TurnStatus::Failed);
    let finished = failed + count(TurnStatus::Completed) + count(TurnStatus::Cancelled);
    let failure_rate = if finished > 0 { failed as f64 / finished as f64 } else { 0.0 };
    let mut body = usage_fields(&cost, turns);
    let extra = json!({
        "byStatus": summary.by_status,
        "failures": failed,
        "failureRate": failure_rate,
        "running": count(TurnStatus::Running),
        "queued": count(TurnStatus::Queued),
        "waiting": count(TurnStatus::Waiting),
        "p50LatencyMs": summary.p50_ms,
        "p95LatencyMs": summary.p95_ms,
        "pendingApprovals": summary.pending_approvals,
        "cards": [
            { "id": "turns", "label": "Turns", "value": turns },
            { "id": "cost", "label": "Cost", "value": cost.cost.as_cents(), "unit": "cents" },
            { "id": "failures", "label": "Failures", "value": failed, "rate": failure_rate },
            { "id": "p95_latency", "label": "p95 latency", "value": summary.p95_ms, "unit": "ms" },
            { "id": "pending_approvals", "label": "Pending approvals", "value": summary.pending_approvals },
        ],
        "since": window.since,
        "until": window.until,
        "fetchedAt": Timestamp::now(),
    });
    if let Value::Object(extra) = extra {
        body.extend(extra);
    }
    Ok(Json(Value::Object(body)))
}
