//! Approvals: `GET /monitoring/approvals[/:id]`, `POST /approvals/:id/resolve` (and the 0.1.x
//! path `/monitoring/approvals/:id/resolve`); and the safety ledger, `GET /monitoring/safety-events`.
//!
//! The resolve body is accepted in both shapes the wire knows: the clients'
//! `{response: "approve"|"reject", reason}` and upstream's `{approved, comment, editedArgs}`.
//! Listed approvals carry `id == approvalId`, under `approvals` (what clients read) and `rows`.

use agentry_core::wire::approvals as wire;
use agentry_core::{Approval, ApprovalDecision, ApprovalStatus, Timestamp};
use agentry_store::ApprovalFilter;
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams, page_limit, page_offset};

/// Query of `GET /monitoring/approvals`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ListApprovals {
    /// `pending`, `approved`, `rejected`, `timed_out`, `cancelled`, or `all` (the default).
    status: Option<String>,
    /// Only this agent's approvals.
    agent_id: Option<String>,
    /// Only this thread's approvals.
    thread_id: Option<String>,
    /// At most this many rows (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// `GET /monitoring/approvals` → `{approvals, rows, total, pendingCount, limit, offset}`, newest
/// first. Operators see the scope's approvals, end users those of their own turns.
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<ListApprovals>,
) -> Result<Json<wire::ApprovalPage>, ApiError> {
    let status = match query.status.as_deref() {
        None | Some("") | Some("all") => None,
        Some(status) => Some(ApprovalStatus::parse(status).ok_or_else(|| {
            ApiError::invalid_field("status", "must be pending, approved, rejected, timed_out or cancelled")
        })?),
    };
    let limit = page_limit(query.limit, 50, 200)?;
    let offset = page_offset(query.offset)?;
    let owner = principal.thread_owner_filter();
    let filter = ApprovalFilter {
        status,
        agent_id: query.agent_id.as_deref(),
        thread_id: query.thread_id.as_deref(),
        requested_by: owner,
        limit,
        offset,
    };
    let (approvals, total, pending) = state.store.list_approvals(&principal.scope, &filter).await?;
    let views: Vec<wire::Approval> = approvals.iter().map(view).collect();
    Ok(Json(wire::ApprovalPage {
        approvals: views.clone(),
        rows: views,
        total,
        pending_count: pending,
        limit,
        offset,
        fetched_at: Timestamp::now(),
    }))
}

/// `GET /monitoring/approvals/:id` → the approval.
pub async fn get(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(approval_id): Path<String>,
) -> Result<Json<wire::Approval>, ApiError> {
    let approval = state.engine.visible_approval(&principal, &approval_id).await?;
    Ok(Json(view(&approval)))
}

/// Body of a resolve, in either wire shape.
pub type Resolve = wire::ResolveApproval;

/// `POST /approvals/:id/resolve` → the settled approval plus `{resolved, approvalId, approved}`.
/// 409 when it was settled already, 403 for a user who neither asked nor is an operator.
pub async fn resolve(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(approval_id): Path<String>,
    JsonBody(body): JsonBody<Resolve>,
) -> Result<Json<wire::ResolvedApproval>, ApiError> {
    let decision = decision(body)?;
    let approved = decision.approved;
    let edited = decision.edited_args.is_some() && approved;
    let approval = state.engine.resolve_approval(&principal, &approval_id, decision).await?;
    Ok(Json(wire::ResolvedApproval {
        approval: view(&approval),
        resolved: true,
        approved,
        edited_args_applied: edited,
    }))
}

/// Reads a decision from either body shape (`approved` wins over `response`).
pub fn decision(body: Resolve) -> Result<ApprovalDecision, ApiError> {
    let approved = match (body.approved, body.response.as_deref()) {
        (Some(approved), _) => approved,
        (None, Some("approve" | "approved")) => true,
        (None, Some("reject" | "rejected")) => false,
        (None, Some(_)) => return Err(ApiError::invalid_field("response", "must be \"approve\" or \"reject\"")),
        (None, None) => {
            return Err(ApiError::validation(
                "a decision is required: {\"response\": \"approve\"|\"reject\"} or {\"approved\": true|false}",
                Vec::new(),
            ));
        }
    };
    Ok(ApprovalDecision { approved, comment: body.comment.or(body.reason), edited_args: body.edited_args })
}

/// The approval in the shape both client generations read (`platos-wire.md` §3.3).
pub fn view(approval: &Approval) -> wire::Approval {
    wire::Approval::of(approval, Timestamp::now())
}

/// Query of `GET /monitoring/safety-events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListSafetyEvents {
    /// At most this many rows (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// `GET /monitoring/safety-events` (operators) → `{events, rows}`: the scope's safety detector
/// hits, newest first, with what the policy did (`flag`, `redact`, `block`).
pub async fn safety_events(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<ListSafetyEvents>,
) -> Result<Json<wire::SafetyEventList>, ApiError> {
    if !principal.is_operator() {
        return Err(ApiError::operator_only());
    }
    let limit = page_limit(query.limit, 100, 1000)?;
    let events: Vec<wire::SafetyEvent> = state
        .store
        .safety_events(&principal.scope, limit)
        .await?
        .into_iter()
        .map(|e| wire::SafetyEvent {
            thread_id: e.thread_id,
            turn_id: e.turn_id,
            agent_id: e.agent_id,
            direction: e.direction,
            action: e.action,
            detector: e.flag_type.clone(),
            kind: e.flag_type,
            severity: e.severity,
            detail: e.detail,
            created_at: e.created_at,
        })
        .collect();
    Ok(Json(wire::SafetyEventList { events: events.clone(), rows: events }))
}
