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

use agentry_core::wire::monitoring::{CostRollup, CostRow, Summary, SummaryCard, UsageFigures};
use agentry_core::{Principal, Timestamp, TokenUsage, TurnStatus};
use agentry_store::{RollupBy, RollupRow};
use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{QueryParams, time_param};

const DAY_MS: i64 = 86_400_000;

/// The time span (and size) of a rollup.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct WindowQuery {
    /// One UTC day, `YYYY-MM-DD`.
    day: Option<String>,
    /// `day` by upstream's name.
    date: Option<String>,
    /// The last N UTC days, today included.
    #[param(minimum = 1, maximum = 366)]
    days: Option<i64>,
    /// `days` by the 0.1.x name.
    #[param(minimum = 1, maximum = 366)]
    days_back: Option<i64>,
    /// The start of an explicit span: RFC 3339, a day, or Unix milliseconds.
    since: Option<String>,
    /// The end of an explicit span (exclusive), as `since`.
    until: Option<String>,
    /// At most this many rows (default: all).
    #[param(minimum = 1, maximum = 1000)]
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
) -> Result<Json<CostRollup>, ApiError> {
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
    let views: Vec<CostRow> = rows
        .iter()
        .take(limit)
        .map(|row| {
            let key = Some(row.key.clone());
            let mut view = CostRow {
                agent_id: None,
                day: None,
                model: None,
                user_id: None,
                usage: UsageFigures::of(&row.usage, row.turns),
                model_calls: row.model_calls,
            };
            match by {
                RollupBy::Agent => view.agent_id = key,
                RollupBy::Day => view.day = key,
                RollupBy::Model => view.model = key,
                RollupBy::User => view.user_id = key,
                RollupBy::Total => {}
            }
            view
        })
        .collect();
    Ok(Json(CostRollup {
        total: UsageFigures::of(&total, turns),
        rollup: views.clone(),
        rows: views,
        since: window.since,
        until: window.until,
        fetched_at: Timestamp::now(),
    }))
}

macro_rules! rollup_route {
    ($name:ident, $by:expr, $default_days:expr, $doc:literal) => {
        #[doc = $doc]
        pub async fn $name(
            State(state): State<AppState>,
            Auth(principal): Auth,
            QueryParams(query): QueryParams<WindowQuery>,
        ) -> Result<Json<CostRollup>, ApiError> {
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
) -> Result<Json<Summary>, ApiError> {
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
    let (running, queued, waiting) =
        (count(TurnStatus::Running), count(TurnStatus::Queued), count(TurnStatus::Waiting));
    let card = |id: &str, label: &str, value: Option<serde_json::Number>| SummaryCard {
        id: id.into(),
        label: label.into(),
        value,
        unit: None,
        rate: None,
    };
    let cards = vec![
        card("turns", "Turns", Some(turns.into())),
        SummaryCard {
            unit: Some("cents".into()),
            ..card("cost", "Cost", serde_json::Number::from_f64(cost.cost.as_cents()))
        },
        SummaryCard { rate: Some(failure_rate), ..card("failures", "Failures", Some(failed.into())) },
        SummaryCard { unit: Some("ms".into()), ..card("p95_latency", "p95 latency", summary.p95_ms.map(Into::into)) },
        card("pending_approvals", "Pending approvals", Some(summary.pending_approvals.into())),
    ];
    Ok(Json(Summary {
        usage: UsageFigures::of(&cost, turns),
        by_status: summary.by_status.into_iter().collect(),
        failures: failed,
        failure_rate,
        running,
        queued,
        waiting,
        p50_latency_ms: summary.p50_ms,
        p95_latency_ms: summary.p95_ms,
        pending_approvals: summary.pending_approvals,
        cards,
        since: window.since,
        until: window.until,
        fetched_at: Timestamp::now(),
    }))
}
