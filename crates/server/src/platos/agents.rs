//! `/agents`: list, get and versions for every caller; create, replace and delete for operators.

use agentry_core::{AgentSpec, AgentSpecError, Principal, wire};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::views;
use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams, page_limit, page_offset};

/// `GET /agents` → `{agents, total}`; a token pinned to one agent sees only that agent.
pub async fn list(State(state): State<AppState>, Auth(principal): Auth) -> Result<Json<wire::AgentList>, ApiError> {
    let agents: Vec<wire::Agent> = state
        .store
        .list_agents(&principal.scope)
        .await?
        .iter()
        .filter(|a| principal.may_use_agent(&a.spec.id))
        .map(views::agent)
        .collect();
    Ok(Json(wire::AgentList { total: agents.len(), agents }))
}

/// `GET /agents/:id` → the agent, or 404.
pub async fn get(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(agent_id): Path<String>,
) -> Result<Json<wire::Agent>, ApiError> {
    check_pin(&principal, &agent_id)?;
    let agent =
        state.store.get_agent(&principal.scope, &agent_id).await?.ok_or_else(|| ApiError::not_found("Agent"))?;
    Ok(Json(views::agent(&agent)))
}

/// Paging of `GET /agents/:id/versions` (`take` is upstream's name for `limit`).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct VersionsQuery {
    /// At most this many rows (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// `limit` by upstream's name.
    #[param(minimum = 1, maximum = 200)]
    take: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// `GET /agents/:id/versions` → `{versions, pageSize}`, newest first.
pub async fn versions(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(agent_id): Path<String>,
    QueryParams(query): QueryParams<VersionsQuery>,
) -> Result<Json<wire::AgentVersionPage>, ApiError> {
    check_pin(&principal, &agent_id)?;
    let limit = page_limit(query.limit.or(query.take), 50, 200)?;
    let offset = page_offset(query.offset)?;
    let agent =
        state.store.get_agent(&principal.scope, &agent_id).await?.ok_or_else(|| ApiError::not_found("Agent"))?;
    let versions = state
        .store
        .list_agent_versions(&principal.scope, &agent_id, limit, offset)
        .await?
        .ok_or_else(|| ApiError::not_found("Agent"))?;
    let versions = versions.iter().map(|v| views::version(v, &agent.current_version_id)).collect();
    Ok(Json(wire::AgentVersionPage { versions, page_size: limit, offset }))
}

/// `POST /agents` (operator): creates the agent, or a new version of it → 201 when created.
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<(StatusCode, Json<wire::Agent>), ApiError> {
    apply(&state, &principal, body).await
}

/// `PUT /agents/:id` (operator): creates or replaces the agent named by the path.
pub async fn replace(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(agent_id): Path<String>,
    JsonBody(mut body): JsonBody<Map<String, Value>>,
) -> Result<(StatusCode, Json<wire::Agent>), ApiError> {
    match body.get("id") {
        None => {
            body.insert("id".into(), Value::String(agent_id));
        }
        Some(Value::String(id)) if *id == agent_id => {}
        Some(_) => return Err(ApiError::invalid_field("id", "must match the agent id in the path")),
    }
    apply(&state, &principal, body).await
}

/// `DELETE /agents/:id` (operator) → `{deleted: true, id}` or 404.
pub async fn delete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(agent_id): Path<String>,
) -> Result<Json<wire::Deleted>, ApiError> {
    require_operator(&principal)?;
    if !state.store.delete_agent(&principal.scope, &agent_id).await? {
        return Err(ApiError::not_found("Agent"));
    }
    Ok(Json(wire::Deleted { deleted: true, id: agent_id }))
}

async fn apply(
    state: &AppState,
    principal: &Principal,
    mut body: Map<String, Value>,
) -> Result<(StatusCode, Json<wire::Agent>), ApiError> {
    require_operator(principal)?;
    let note = match body.remove("note") {
        None | Some(Value::Null) => None,
        Some(Value::String(note)) => Some(note),
        Some(_) => return Err(ApiError::invalid_field("note", "must be a string")),
    };
    let spec: AgentSpec = serde_path_to_error::deserialize(Value::Object(body)).map_err(|err| {
        let path = err.path().to_string();
        ApiError::invalid_field(if path == "." { "body" } else { &path }, err.into_inner())
    })?;
    let problems = spec.problems();
    if !problems.is_empty() {
        let errors: Vec<String> =
            problems.iter().map(|AgentSpecError::Invalid { field, problem }| format!("{field}: {problem}")).collect();
        return Err(ApiError::validation(
            format!("the agent has {} problem(s): {}", errors.len(), errors.join("; ")),
            errors,
        ));
    }
    state.engine.check_agent(&spec).map_err(|(field, err)| ApiError::invalid_field(field, err))?;
    state
        .engine
        .check_agent_budget(&principal.scope, &spec)
        .await
        .map_err(|err| ApiError::invalid_field("model", err))?;
    // The scope comes from the credentials; a body naming another one is a mistake, not a request.
    if (spec.organization.is_some() || spec.project.is_some() || spec.environment.is_some())
        && spec.declared_scope() != principal.scope
    {
        return Err(ApiError::invalid_field(
            "organization",
            "agents are created in the caller's scope; omit organization/project/environment",
        ));
    }
    let applied = state.store.apply_agent(&principal.scope, &spec, "api", note.as_deref()).await?;
    let status =
        if applied.changed && applied.agent.version_number == 1 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(views::agent(&applied.agent))))
}

fn require_operator(principal: &Principal) -> Result<(), ApiError> {
    if principal.is_operator() { Ok(()) } else { Err(ApiError::operator_only()) }
}

/// A token pinned to one agent may not address another (403, as upstream).
pub(super) fn check_pin(principal: &Principal, agent_id: &str) -> Result<(), ApiError> {
    if principal.may_use_agent(agent_id) {
        Ok(())
    } else {
        Err(ApiError::forbidden("AGENT_SCOPE_MISMATCH", "this session token is pinned to another agent"))
    }
}
