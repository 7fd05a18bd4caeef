//! Tools: the scope's catalog (`GET /tools`, `search`, `stats`, `matrix` with health counters),
//! operator switches (`PATCH /tools/:entityId/:toolName/enabled`) and test calls
//! (`POST /tools/:toolId/test`), in the shapes the TS 1.x client reads (`platos-wire.md` §3.6).
//!
//! A tool id is `<entity>::<name>`: entity `builtin`, `agent.<agent id>` for an agent's HTTP
//! tools, `mcp.<server>` for an MCP server's.

use std::collections::BTreeSet;

use agentry_core::Timestamp;
use agentry_core::wire::admin as wire;
use agentry_engine::tools::{AgentTool, ToolKind};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams, page_limit};

/// The catalog entry of a tool. Endpoint URLs are shown to operators only.
fn view(tool: &AgentTool, enabled: bool, operator: bool) -> wire::Tool {
    let (category, callback_url) = match &tool.kind {
        ToolKind::Builtin(_) => ("builtin", None),
        ToolKind::Http(spec) => ("http", Some(spec.url.clone())),
        ToolKind::Mcp { .. } => ("mcp", None),
    };
    wire::Tool {
        tool_id: tool.tool_id(),
        tool_name: tool.spec.name.clone(),
        description: tool.spec.description.clone(),
        category: category.to_owned(),
        param_schema: tool.spec.parameters.clone(),
        entity_id: tool.entity_id.clone(),
        entity_pk: None,
        callback_url: if operator { callback_url } else { None },
        enabled,
        requires_approval: tool.requires_approval,
        health: None,
    }
}

/// The catalog with each tool's switch.
async fn catalog(state: &AppState, scope: &agentry_core::Scope) -> Result<Vec<(AgentTool, bool)>, ApiError> {
    let disabled: BTreeSet<_> = state.store.disabled_tools(scope).await?.into_iter().collect();
    let tools = state.engine.tool_catalog(scope).await?;
    Ok(tools
        .into_iter()
        .map(|t| {
            let enabled = !disabled.contains(&(t.entity_id.clone(), t.spec.name.clone()));
            (t, enabled)
        })
        .collect())
}

/// Query of `GET /tools`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListTools {
    /// `builtin`, `http` or `mcp`.
    category: Option<String>,
}

/// `GET /tools[?category=builtin|http|mcp]` → `{tools, total}`.
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<ListTools>,
) -> Result<Json<wire::ToolList>, ApiError> {
    let tools: Vec<wire::Tool> = catalog(&state, &principal.scope)
        .await?
        .iter()
        .map(|(tool, enabled)| view(tool, *enabled, principal.is_operator()))
        .filter(|v| query.category.as_deref().is_none_or(|c| v.category == c))
        .collect();
    Ok(Json(wire::ToolList { total: tools.len(), tools }))
}

/// Query of `GET /tools/search`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SearchTools {
    /// Words the tool's name or description contains.
    q: Option<String>,
    /// At most this many rows (default 15).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
    /// Only the tools of this agent or tool server.
    entity: Option<String>,
}

/// `GET /tools/search?q=&limit=&entity=` → `{tools, results, query, total}`: tools whose name or
/// description contain the query's words, best first (name hits count more).
pub async fn search(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<SearchTools>,
) -> Result<Json<wire::ToolSearch>, ApiError> {
    let limit = usize::try_from(page_limit(query.limit, 15, 100)?).unwrap_or(15);
    let text = query.q.clone().unwrap_or_default();
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    let mut scored: Vec<(usize, wire::Tool)> = catalog(&state, &principal.scope)
        .await?
        .iter()
        .filter(|(tool, _)| query.entity.as_deref().is_none_or(|e| tool.entity_id == e))
        .filter_map(|(tool, enabled)| {
            let name = tool.spec.name.to_lowercase();
            let description = tool.spec.description.to_lowercase();
            let score: usize = words
                .iter()
                .map(|w| 3 * usize::from(name.contains(w.as_str())) + usize::from(description.contains(w.as_str())))
                .sum();
            (words.is_empty() || score > 0).then(|| (score, view(tool, *enabled, principal.is_operator())))
        })
        .collect();
    scored.sort_by_key(|(score, _)| std::cmp::Reverse(*score));
    let total = scored.len();
    let tools: Vec<wire::Tool> = scored.into_iter().take(limit).map(|(_, v)| v).collect();
    Ok(Json(wire::ToolSearch { query: text, total, results: tools.clone(), tools }))
}

/// `GET /tools/stats` → `{toolCount, entityCount, lastIndexedAt}`.
pub async fn stats(State(state): State<AppState>, Auth(principal): Auth) -> Result<Json<wire::ToolStats>, ApiError> {
    let tools = catalog(&state, &principal.scope).await?;
    let entities: BTreeSet<&str> = tools.iter().map(|(t, _)| t.entity_id.as_str()).collect();
    Ok(Json(wire::ToolStats {
        tool_count: tools.len(),
        entity_count: entities.len(),
        bm25_index_size: None,
        last_indexed_at: Timestamp::now(),
    }))
}

/// `GET /tools/matrix` → `{tools, rows, environmentId, fetchedAt}`, each tool with `health`.
pub async fn matrix(State(state): State<AppState>, Auth(principal): Auth) -> Result<Json<wire::ToolMatrix>, ApiError> {
    let health = state.store.tool_health(&principal.scope).await?;
    let tools: Vec<wire::Tool> = catalog(&state, &principal.scope)
        .await?
        .iter()
        .map(|(tool, enabled)| {
            let h = health.get(&(tool.entity_id.clone(), tool.spec.name.clone())).cloned().unwrap_or_default();
            let health = wire::ToolHealth {
                total_calls: h.total_calls,
                fail_count: h.fail_count,
                total_failures: h.fail_count,
                avg_latency_ms: h.avg_latency_ms,
                p95_latency_ms: h.p95_latency_ms,
                last_called_at: h.last_called_at,
                last_status: h.last_status.map(str::to_owned),
            };
            wire::Tool { health: Some(health), ..view(tool, *enabled, principal.is_operator()) }
        })
        .collect();
    Ok(Json(wire::ToolMatrix {
        environment_id: principal.scope.environment_id.clone(),
        fetched_at: Timestamp::now(),
        rows: tools.clone(),
        tools,
    }))
}

/// Body of `PATCH …/enabled`.
pub type SetEnabled = wire::ToolSwitch;

/// `PATCH /tools/:entityId/:toolName/enabled {enabled}` (operators) → `{ok, entityId, toolName,
/// enabled}`. A switched-off tool is not offered to any agent of the scope.
pub async fn set_enabled(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path((entity_id, tool_name)): Path<(String, String)>,
    JsonBody(body): JsonBody<SetEnabled>,
) -> Result<Json<wire::ToolSwitched>, ApiError> {
    if !principal.is_operator() {
        return Err(ApiError::operator_only());
    }
    let known = catalog(&state, &principal.scope)
        .await?
        .iter()
        .any(|(t, _)| t.entity_id == entity_id && t.spec.name == tool_name);
    if !known {
        return Err(ApiError::not_found("Tool"));
    }
    state.store.set_tool_enabled(&principal.scope, &entity_id, &tool_name, body.enabled).await?;
    Ok(Json(wire::ToolSwitched { ok: true, entity_id, tool_name, enabled: body.enabled }))
}

/// Body of a test call.
pub type TestCall = wire::ToolTestCall;

/// `POST /tools/:toolId/test {params}` (operators) → `{status: "ok"|"error", elapsedMs, result?,
/// error?}`. Runs the tool now, without approval; tools that act inside a turn are refused.
pub async fn test(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(tool_id): Path<String>,
    JsonBody(body): JsonBody<TestCall>,
) -> Result<Json<wire::ToolTestResult>, ApiError> {
    if !principal.is_operator() {
        return Err(ApiError::operator_only());
    }
    let tool = catalog(&state, &principal.scope)
        .await?
        .into_iter()
        .map(|(t, _)| t)
        .find(|t| t.tool_id() == tool_id)
        .ok_or_else(|| ApiError::not_found("Tool"))?;
    if let ToolKind::Builtin(builtin) = tool.kind
        && builtin != agentry_engine::tools::BuiltinTool::CurrentTime
    {
        return Err(ApiError::invalid_field("toolId", format!("`{}` only works inside a turn", tool.spec.name)));
    }
    let params = body.params.unwrap_or_else(|| json!({}));
    if !params.is_object() {
        return Err(ApiError::invalid_field("params", "must be a JSON object"));
    }
    let (result, elapsed) = state.engine.test_tool(&principal.scope, &tool, &params).await;
    let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let (status, result, error) = match result {
        Ok(result) => ("ok", Some(result), None),
        Err(failure) => ("error", None, Some(failure.message)),
    };
    Ok(Json(wire::ToolTestResult { status: status.to_owned(), elapsed_ms, result, error }))
}
