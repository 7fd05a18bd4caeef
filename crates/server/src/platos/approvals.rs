//! Approvals: `GET /monitoring/approvals[/:id]`, `POST /approvals/:id/resolve` (and the 0.1.x
//! path `/monitoring/approvals/:id/resolve`); and the safety ledger, `GET /monitoring/safety-events`.
//!
//! The resolve body is accepted in both shapes the wire knows: the clients'
//! `{response: "approve"|"reject", reason}` and upstream's `{approved, comment, editedArgs}`.
//! Listed approvals carry `id == approvalId`, under `approvals` (what clients read) and `rows`.

use agentry_core::{Approval, ApprovalDecision, ApprovalStatus, Timestamp};
use agentry_store::ApprovalFilter;
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams, page_limit, page_offset};

/// Query of `GET /monitoring/approvals`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListApprovals {
    status: Option<String>,
    agent_id: Option<String>,
    thread_id: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// `GET /monitoring/approvals` → `{approvals, rows, total, pendingCount, limit, offset}`, newest
/// first. Operators see the scope's approvals, end users those of their own turns.
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<ListApprovals>,
) -> Result<Json<Value>, ApiError> {
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
    let views: Vec<Value> = approvals.iter().map(view).collect();
    Ok(Json(json!({
        "approvals": views,
        "rows": views,
        "total": total,
        "pendingCount": pending,
        "limit": limit,
        "offset": offset,
        "fetchedAt": Timestamp::now(),
    })))
}

/// `GET /monitoring/approvals/:id` → the approval.
pub async fn get(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(approval_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let approval = state.engine.visible_approval(&principal, &approval_id).await?;
    Ok(Json(view(&approval)))
}

/// Body of a resolve, in either wire shape.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resolve {
    response: Option<String>,
    reason: Option<String>,
    approved: Option<bool>,
    comment: Option<String>,
    edited_args: Option<Value>,
}

/// `POST /approvals/:id/resolve` → the settled approval plus `{resolved, approvalId, approved}`.
/// 409 when it was settled already, 403 for a user who neither asked nor is an operator.
pub async fn resolve(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(approval_id): Path<String>,
    JsonBody(body): JsonBody<Resolve>,
) -> Result<Json<Value>, ApiError> {
    let decision = decision(body)?;
    let approved = decision.approved;
    let edited = decision.edited_args.is_some() && approved;
    let approval = state.engine.resolve_approval(&principal, &approval_id, decision).await?;
    let mut body = view(&approval);
    body["resolved"] = json!(true);
    body["approved"] = json!(approved);
    body["editedArgsApplied"] = json!(edited);
    Ok(Json(body))
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
pub fn view(approval: &Approval) -> Value {
    let now = Timestamp::now();
    let resolution = match approval.status {
        ApprovalStatus::Approved | ApprovalStatus::Rejected => json!({
            "response": if approval.status == ApprovalStatus::Approved { "approve" } else { "reject" },
            "reason": approval.comment,
            "resolvedByUserId": approval.responded_by,
        }),
        _ => Value::Null,
    };
    let pending = approval.status == ApprovalStatus::Pending;
    json!({
        "id": approval.id,
        "approvalId": approval.id,
        "scope": approval.scope,
        "organizationId": approval.scope.organization_id,
        "projectId": approval.scope.project_id,
        "environmentId": approval.scope.environment_id,
        "agentId": approval.agent_id,
        "threadId": approval.thread_id,
        "turnId": approval.turn_id,
        "runId": approval.turn_id,
        "source": if approval.tool_name == "request_approval" { "request_approval" } else { "tool_call" },
        "question": approval.action,
        "action": approval.action,
        "context": approval.details,
        "details": approval.details,
        "toolName": approval.tool_name,
        "callId": approval.call_id,
        "args": approval.args,
        "editedArgs": approval.edited_args,
        "requestedBy": approval.requested_by,
        "status": approval.status.as_str(),
        "timeoutSeconds": approval.timeout_secs,
        "createdAt": approval.created_at,
        "deadlineAt": approval.deadline_at,
        "timeoutAt": approval.deadline_at,
        "secondsRemaining": if pending { ((approval.deadline_at.0 - now.0).max(0)) / 1000 } else { 0 },
        "expired": approval.status == ApprovalStatus::TimedOut,
        "resolvedAt": approval.resolved_at,
        "respondedBy": approval.responded_by,
        "comment": approval.comment,
        "resolution": resolution,
    })
}

/// Query of `GET /monitoring/safety-events`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ListSafetyEvents {
    limit: Option<i64>,
}

/// `GET /monitoring/safety-events` (operators) → `{events, rows}`: the scope's safety detector
/// hits, newest first, with what the policy did (`flag`, `redact`, `block`).
pub async fn safety_events(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<ListSafetyEvents>,
) -> Result<Json<Value>, ApiError> {
    if !principal.is_operator() {
        return Err(ApiError::operator_only());
    }
    let limit = page_limit(query.limit, 100, 1000)?;
    let events: Vec<Value> = state
        .store
        .safety_events(&principal.scope, limit)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "threadId": e.thread_id,
                "turnId": e.turn_id,
                "agentId": e.agent_id,
                "direction": e.direction,
                "action": e.action,
                "detector": e.flag_type,
                "type": e.flag_type,
                "severity": e.severity,
                "detail": e.detail,
                "createdAt": e.created_at,
            })
        })
        .collect();
    Ok(Json(json!({ "events": events, "rows": events })))
}
