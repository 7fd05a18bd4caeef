//! Budget caps over REST, both client generations: `GET /budgets` and
//! `/monitoring/budget/caps` (`{caps}`), `GET /budgets/status` and `/monitoring/budget/status`
//! (`{caps: [status], blocked, reason}`), and the operators' writes: `POST /budgets` (create, or
//! replace the cap with the same scope type, target and period), `PUT /budgets/:id`,
//! `DELETE /budgets/:id`, `POST /budgets/:id/override {minutes}` (0 clears).
//!
//! End users see the caps that apply to them and their own status; operators see the scope's.

use agentry_core::budget::{CapScope, DEFAULT_ALERT_THRESHOLDS, Period, validate_cap};
use agentry_core::id::{new_id, prefix};
use agentry_core::wire::budgets as wire;
use agentry_core::{BudgetCap, MicroCents, Principal, Timestamp};
use agentry_store::Charge;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};

/// Body of a cap create or update (camelCase; `runsLimit` is the 0.1.x name of `turnsLimit`).
pub type CapBody = wire::NewBudgetCap;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct StatusQuery {
    /// Only the caps that apply to this agent's turns.
    agent_id: Option<String>,
    /// Only the caps that apply to this end user's turns (operators).
    user_id: Option<String>,
}

/// Body of an override.
pub type OverrideBody = wire::CapOverride;

/// `GET /budgets` → `{caps}`: the scope's caps (an end user: those that apply to them).
pub async fn list(State(state): State<AppState>, Auth(principal): Auth) -> Result<Json<wire::BudgetCapList>, ApiError> {
    let caps = state.store.list_budget_caps(&principal.scope).await?;
    let caps = caps.iter().filter(|c| visible(&principal, c)).map(wire::BudgetCap::of).collect();
    Ok(Json(wire::BudgetCapList { caps, fetched_at: Timestamp::now() }))
}

/// `GET /budgets/status?agentId&userId` → each cap that applies, with what its current window
/// counted, and whether a turn would be blocked now.
pub async fn status(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<StatusQuery>,
) -> Result<Json<wire::BudgetStatus>, ApiError> {
    // End users read their own status; operators anyone's (or the acting user's).
    let user = match principal.is_operator() {
        true => query.user_id.or_else(|| principal.user_id.clone()),
        false => Some(principal.owner_id().to_owned()),
    };
    let now = Timestamp::now();
    let caps: Vec<BudgetCap> = state
        .store
        .list_budget_caps(&principal.scope)
        .await?
        .into_iter()
        .filter(|c| c.enabled && visible(&principal, c))
        .filter(|c| match c.scope_type {
            CapScope::Scope => true,
            CapScope::Agent => query.agent_id.as_deref().is_none_or(|a| a == c.target_id),
            CapScope::User => user.as_deref().is_none_or(|u| c.target_id == "*" || c.target_id == u),
        })
        .collect();
    let charges: Vec<Charge> = caps
        .iter()
        .map(|c| {
            let subject = if c.target_id == "*" { user.clone().unwrap_or_default() } else { String::new() };
            Charge::new(c, subject, now, Some(c.limit.0))
        })
        .collect();
    let states = state.store.budget_windows(&charges).await?;
    let mut blocked_by = None;
    let rows: Vec<wire::CapStatus> = caps
        .iter()
        .zip(&charges)
        .zip(&states)
        .map(|((cap, Charge { window, .. }), counted)| {
            let override_active = cap.override_active(now);
            let used = counted.spent.0 + counted.reserved.0;
            let percent = if cap.limit.0 > 0 { used as f64 * 100.0 / cap.limit.0 as f64 } else { 0.0 };
            let over_money = used >= cap.limit.0;
            let over_turns = cap.turns_limit.is_some_and(|limit| counted.turns >= limit);
            let blocked = !override_active && (over_money || over_turns);
            if blocked && blocked_by.is_none() {
                let why = if over_turns { "turn limit" } else { "spend limit" };
                blocked_by = Some(format!("budget cap {} reached its {why} for {}", cap.id, window.window_key));
            }
            let crossed: Vec<u32> = cap
                .alert_thresholds
                .iter()
                .copied()
                .filter(|t| cap.limit.0 > 0 && counted.spent.0 * 100 >= cap.limit.0 * i64::from(*t))
                .collect();
            wire::CapStatus {
                cap: wire::BudgetCap::of(cap),
                window_key: window.window_key.clone(),
                subject: window.subject.clone(),
                spent_cents: counted.spent.as_cents(),
                reserved_cents: counted.reserved.as_cents(),
                spent_micro_cents: counted.spent.0,
                reserved_micro_cents: counted.reserved.0,
                turns: counted.turns,
                runs: counted.turns,
                percent,
                runs_percent: cap.turns_limit.filter(|l| *l > 0).map(|l| counted.turns as f64 * 100.0 / l as f64),
                crossed_thresholds: crossed,
                blocked,
                override_active,
            }
        })
        .collect();
    Ok(Json(wire::BudgetStatus { caps: rows, blocked: blocked_by.is_some(), reason: blocked_by }))
}

/// `POST /budgets` → `{cap}`: creates a cap, or replaces the one with the same scope type, target
/// and period (operators).
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody<CapBody>,
) -> Result<(StatusCode, Json<wire::BudgetCapAnswer>), ApiError> {
    require_operator(&principal)?;
    let now = Timestamp::now();
    let cap = cap_from_body(&principal, new_id(prefix::BUDGET_CAP), body, now)?;
    check_priced(&state, &cap).await?;
    let stored = state.store.upsert_budget_cap(&cap).await?;
    state.engine.budget_changed(&principal.scope);
    Ok((StatusCode::CREATED, Json(wire::BudgetCapAnswer { cap: wire::BudgetCap::of(&stored) })))
}

/// `PUT /budgets/:id` → `{cap}`: changes a cap (operators).
pub async fn update(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(cap_id): Path<String>,
    JsonBody(body): JsonBody<CapBody>,
) -> Result<Json<wire::BudgetCapAnswer>, ApiError> {
    require_operator(&principal)?;
    let existing = state
        .store
        .get_budget_cap(&principal.scope, &cap_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Budget cap"))?;
    let mut cap = cap_from_body(&principal, cap_id, body, Timestamp::now())?;
    cap.created_at = existing.created_at;
    check_priced(&state, &cap).await?;
    let stored = match state.store.update_budget_cap(&cap).await {
        Ok(stored) => stored.ok_or_else(|| ApiError::not_found("Budget cap"))?,
        Err(err) if err.is_unique_violation() => {
            return Err(ApiError::conflict("CAP_EXISTS", "another cap has this scope type, target and period"));
        }
        Err(err) => return Err(err.into()),
    };
    state.engine.budget_changed(&principal.scope);
    Ok(Json(wire::BudgetCapAnswer { cap: wire::BudgetCap::of(&stored) }))
}

/// `DELETE /budgets/:id` → `{deleted}` (operators).
pub async fn delete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(cap_id): Path<String>,
) -> Result<Json<agentry_core::wire::Deleted>, ApiError> {
    require_operator(&principal)?;
    if !state.store.delete_budget_cap(&principal.scope, &cap_id).await? {
        return Err(ApiError::not_found("Budget cap"));
    }
    state.engine.budget_changed(&principal.scope);
    Ok(Json(agentry_core::wire::Deleted { deleted: true, id: cap_id }))
}

/// `POST /budgets/:id/override {minutes}` → `{cap}`: lifts the cap's block for `minutes` (0
/// restores it) (operators).
pub async fn override_cap(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(cap_id): Path<String>,
    JsonBody(body): JsonBody<OverrideBody>,
) -> Result<Json<wire::BudgetCapAnswer>, ApiError> {
    require_operator(&principal)?;
    if body.minutes > 7 * 24 * 60 {
        return Err(ApiError::invalid_field("minutes", "must be at most 10080 (7 days)"));
    }
    let until = (body.minutes > 0).then(|| Timestamp(Timestamp::now().0 + i64::from(body.minutes) * 60_000));
    let by = principal.user_id.clone().unwrap_or_else(|| "operator".to_owned());
    let cap = state
        .store
        .set_budget_override(&principal.scope, &cap_id, until, &by)
        .await?
        .ok_or_else(|| ApiError::not_found("Budget cap"))?;
    state.engine.budget_changed(&principal.scope);
    Ok(Json(wire::BudgetCapAnswer { cap: wire::BudgetCap::of(&cap) }))
}

fn require_operator(principal: &Principal) -> Result<(), ApiError> {
    if principal.is_operator() { Ok(()) } else { Err(ApiError::operator_only()) }
}

/// An end user sees scope and agent caps and the user caps that are theirs (or everyone's).
fn visible(principal: &Principal, cap: &BudgetCap) -> bool {
    principal.is_operator()
        || cap.scope_type != CapScope::User
        || cap.target_id == "*"
        || cap.target_id == principal.owner_id()
}

fn cap_from_body(principal: &Principal, id: String, body: CapBody, now: Timestamp) -> Result<BudgetCap, ApiError> {
    let scope_type = CapScope::parse(&body.scope_type)
        .ok_or_else(|| ApiError::invalid_field("scopeType", "must be scope, agent or user"))?;
    let period = Period::parse(&body.period)
        .ok_or_else(|| ApiError::invalid_field("period", "must be hour, day, week or month"))?;
    if !body.limit_cents.is_finite() {
        return Err(ApiError::invalid_field("limitCents", "must be a number"));
    }
    let cap = BudgetCap {
        id,
        scope: principal.scope.clone(),
        scope_type,
        target_id: body.target_id.unwrap_or_default(),
        period,
        limit: MicroCents::from_cents(body.limit_cents),
        turns_limit: body.turns_limit,
        alert_thresholds: body.alert_thresholds.unwrap_or_else(|| DEFAULT_ALERT_THRESHOLDS.to_vec()),
        alert_webhook_url: body.alert_webhook_url.filter(|u| !u.trim().is_empty()),
        alert_emails: body.alert_emails.unwrap_or_default(),
        enabled: body.enabled.unwrap_or(true),
        override_until: None,
        override_by: None,
        created_at: now,
        updated_at: now,
    };
    validate_cap(&cap).map_err(|err| ApiError::invalid_field(err.field, err.problem))?;
    Ok(cap)
}

/// A money cap cannot count what an unpriced model spends: refuse it, naming the agents.
async fn check_priced(state: &AppState, cap: &BudgetCap) -> Result<(), ApiError> {
    if !cap.enabled {
        return Ok(());
    }
    let unpriced = state.engine.unpriced_agents_under(cap).await?;
    if unpriced.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = unpriced.iter().map(|(agent, model)| format!("`{agent}` ({model})")).collect();
    Err(ApiError::invalid_field(
        "limitCents",
        format!(
            "this cap applies to agents whose model has no price, so their spend cannot be counted: {}; give \
             those models a price ([prices] or a provider's prices) first",
            names.join(", ")
        ),
    ))
}
