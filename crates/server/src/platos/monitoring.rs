//! What a turn did, over REST: the turn list of both client generations
//! (`GET /monitoring/runs` → `{runs}`, `GET /turns` → `{turns}`), one turn with its model calls
//! (`GET /turns/:id`), and traces — a trace's spans (`GET /monitoring/traces/:traceId`), a
//! thread's whole story (`GET /monitoring/trace/:threadId`: messages with their content items,
//! spans, their tree, a timeline and a rollup) and a list of traces (`GET /monitoring/traces`).
//!
//! Operators see their scope; end users (and an API key acting as a user) see only that user's
//! turns, traces and threads; a turn or trace outside that is missing (404), never forbidden.

use std::collections::HashMap;

use agentry_core::{Principal, Timestamp, Turn, TurnStatus};
use agentry_store::{ModelCall, Span, TurnFilter, TurnStats};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::views;
use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{QueryParams, page_limit, page_offset, time_param};

/// Filters of the turn and trace lists.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnQuery {
    agent_id: Option<String>,
    thread_id: Option<String>,
    status: Option<String>,
    user_id: Option<String>,
    /// RFC 3339, `YYYY-MM-DD` or Unix milliseconds.
    since: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

/// The store filter for `query` as `principal` may ask it; `None` when nothing can match (an
/// end user asking for another user's turns, a token pinned to another agent).
fn turn_filter(principal: &Principal, query: TurnQuery) -> Result<Option<TurnFilter>, ApiError> {
    if let Some(status) = &query.status
        && TurnStatus::parse(status).is_none()
    {
        return Err(ApiError::invalid_field(
            "status",
            format!("`{status}` is not one of queued, running, waiting, completed, failed, cancelled"),
        ));
    }
    let since = query.since.as_deref().map(|text| time_param("since", text)).transpose()?;
    let mut filter = TurnFilter {
        agent_id: query.agent_id,
        thread_id: query.thread_id,
        status: query.status,
        user_id: query.user_id,
        since,
        limit: page_limit(query.limit, 50, 500)?,
        offset: page_offset(query.offset)?,
    };
    if let Some(own) = principal.thread_owner_filter() {
        if filter.user_id.as_deref().is_some_and(|u| u != own) {
            return Ok(None);
        }
        filter.user_id = Some(own.to_owned());
    }
    if let Some(pinned) = &principal.pinned_agent_id {
        if filter.agent_id.as_deref().is_some_and(|a| a != pinned) {
            return Ok(None);
        }
        filter.agent_id = Some(pinned.clone());
    }
    Ok(Some(filter))
}

/// Adds to each message view the content items (tables, charts, …: what the Erdo surface shows
/// beside the text) its turn produced, as `contents`; the text item repeats the message and is
/// left out.
fn attach_contents(views: &mut [Value], items: Vec<agentry_core::ContentItem>) {
    let mut by_message: HashMap<String, Vec<Value>> = HashMap::new();
    for item in items.into_iter().filter(|item| item.content_type != "text") {
        by_message.entry(item.message_id.clone()).or_default().push(json!({
            "id": item.id,
            "contentType": item.content_type,
            "uiContentType": item.ui_content_type,
            "content": item.content,
            "userVisibility": item.user_visibility,
        }));
    }
    for view in views {
        if let Some(items) = view["id"].as_str().and_then(|id| by_message.remove(id)) {
            view["contents"] = Value::Array(items);
        }
    }
}

/// Whether `principal` may see `turn` (scope already matched).
fn may_see(principal: &Principal, turn: &Turn) -> bool {
    principal.thread_owner_filter().is_none_or(|user| turn.user_id == user)
        && principal.pinned_agent_id.as_ref().is_none_or(|a| *a == turn.agent_id)
}

/// The turns a query asks for, with what their calls added up to.
async fn turns_with_stats(
    state: &AppState,
    principal: &Principal,
    query: TurnQuery,
) -> Result<(Vec<(Turn, TurnStats)>, i64, i64), ApiError> {
    let Some(filter) = turn_filter(principal, query)? else {
        return Ok((Vec::new(), 0, 0));
    };
    let turns = state.store.list_turns(&principal.scope, &filter).await?;
    let ids: Vec<String> = turns.iter().map(|t| t.id.clone()).collect();
    let mut stats = state.store.turn_stats(&ids).await?;
    let rows = turns
        .into_iter()
        .map(|turn| {
            let stats = stats.remove(&turn.id).unwrap_or_default();
            (turn, stats)
        })
        .collect();
    Ok((rows, filter.limit, filter.offset))
}

/// `GET /monitoring/runs` (0.1.x) → `{runs}`.
pub async fn runs(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<TurnQuery>,
) -> Result<Json<Value>, ApiError> {
    let (rows, limit, offset) = turns_with_stats(&state, &principal, query).await?;
    let runs: Vec<Value> = rows.iter().map(|(turn, stats)| views::turn(turn, stats)).collect();
    Ok(Json(json!({ "runs": runs, "limit": limit, "offset": offset })))
}

/// `GET /turns` (1.x) → `{turns}`.
pub async fn turns(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<TurnQuery>,
) -> Result<Json<Value>, ApiError> {
    let (rows, limit, offset) = turns_with_stats(&state, &principal, query).await?;
    let turns: Vec<Value> = rows.iter().map(|(turn, stats)| views::turn(turn, stats)).collect();
    Ok(Json(json!({ "turns": turns, "limit": limit, "offset": offset })))
}

/// `GET /turns/:id` → the turn, with each model call it made.
pub async fn turn(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(turn_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let turn = state
        .store
        .get_turn(&principal.scope, &turn_id)
        .await?
        .filter(|t| may_see(&principal, t))
        .ok_or_else(|| ApiError::not_found("Turn"))?;
    let stats = state.store.turn_stats(std::slice::from_ref(&turn.id)).await?.remove(&turn.id).unwrap_or_default();
    let calls = state.store.model_calls_of_turn(&principal.scope, &turn.id).await?;
    let mut view = views::turn(&turn, &stats);
    if let Value::Object(fields) = &mut view {
        fields.insert("modelCalls".into(), calls.iter().map(model_call).collect());
    }
    Ok(Json(view))
}

fn model_call(call: &ModelCall) -> Value {
    json!({
        "id": call.id,
        "step": call.step,
        "provider": call.provider,
        "model": call.model,
        "status": call.status.as_str(),
        "finishReason": call.finish_reason,
        "error": call.error,
        "inputTokens": call.usage.input_tokens,
        "outputTokens": call.usage.output_tokens,
        "cachedInputTokens": call.usage.cached_input_tokens,
        "reasoningTokens": call.usage.reasoning_tokens,
        "costCents": call.usage.cost.as_cents(),
        "costMicroCents": call.usage.cost.0,
        "startedAt": call.started_at,
        "ttftMs": call.first_token_at.map(|t| t.0 - call.started_at.0),
        "durationMs": call.finished_at.0 - call.started_at.0,
    })
}

/// `GET /monitoring/traces` → `{traces}`: one per turn (the turn's trace), newest first, with
/// the list filters of the turns.
pub async fn traces(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<TurnQuery>,
) -> Result<Json<Value>, ApiError> {
    let (rows, limit, offset) = turns_with_stats(&state, &principal, query).await?;
    let traces: Vec<Value> = rows
        .iter()
        .map(|(turn, stats)| {
            json!({
                "traceId": turn.trace_id(),
                "rootSpanId": turn.span_id(),
                "turnId": turn.id,
                "threadId": turn.thread_id,
                "agentId": turn.agent_id,
                "userId": turn.user_id,
                "status": turn.status.as_str(),
                "startedAt": turn.started_at.unwrap_or(turn.created_at),
                "durationMs": views::turn_duration_ms(turn),
                "costCents": stats.usage.cost.as_cents(),
                "inputTokens": stats.usage.input_tokens,
                "outputTokens": stats.usage.output_tokens,
                "steps": stats.model_calls,
                "toolCalls": stats.tool_calls,
            })
        })
        .collect();
    Ok(Json(json!({ "traces": traces, "limit": limit, "offset": offset })))
}

/// `GET /monitoring/traces/:traceId` (0.1.x) → `{traceId, spans, spanTree}`.
pub async fn trace(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(trace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let user = principal.thread_owner_filter();
    let spans: Vec<Span> = state
        .store
        .spans_of_trace(&principal.scope, &trace_id.to_ascii_lowercase(), user)
        .await?
        .into_iter()
        .filter(|s| principal.pinned_agent_id.as_ref().is_none_or(|a| *a == s.agent_id))
        .collect();
    if spans.is_empty() {
        return Err(ApiError::not_found("Trace"));
    }
    Ok(Json(json!({
        "traceId": trace_id,
        "spans": spans.iter().map(views::span).collect::<Vec<_>>(),
        "spanTree": span_tree(&spans),
    })))
}

/// `GET /monitoring/trace/:threadId` (1.x) → `{threadId, thread, messages, spans, spanTree,
/// timeline, rollup}`: everything that happened in a thread.
pub async fn thread_trace(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(thread_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    /// The most messages and turns one view reads.
    const MOST: i64 = 1000;
    let thread = state.engine.visible_thread(&principal, &thread_id).await?;
    let scope = &thread.scope;
    let (messages, _) = state.store.list_messages(scope, &thread.id, MOST, 0).await?;
    let spans = state.store.spans_of_thread(scope, &thread.id).await?;
    let filter = TurnFilter { thread_id: Some(thread.id.clone()), limit: MOST, ..TurnFilter::default() };
    let turns = state.store.list_turns(scope, &filter).await?;
    let ids: Vec<String> = turns.iter().map(|t| t.id.clone()).collect();
    let stats = state.store.turn_stats(&ids).await?;
    let mut usage = agentry_core::TokenUsage::default();
    let mut tool_calls = 0;
    for stat in stats.values() {
        usage.add(&stat.usage);
        tool_calls += stat.tool_calls;
    }
    let mut message_views: Vec<Value> =
        messages.iter().map(|m| serde_json::to_value(agentry_core::wire::Message::of(m)).unwrap_or_default()).collect();
    attach_contents(&mut message_views, state.store.thread_contents(scope, &thread.id).await?);
    let span_views: Vec<Value> = spans.iter().map(views::span).collect();
    let mut timeline: Vec<(i64, u8, Value)> = messages
        .iter()
        .zip(&message_views)
        .map(|(m, view)| (m.created_at.0, 0, json!({ "kind": "message", "timestamp": m.created_at, "data": view })))
        .chain(spans.iter().zip(&span_views).map(|(s, view)| {
            let at = Timestamp(s.start_ns.div_euclid(1_000_000));
            (at.0, 1, json!({ "kind": "span", "timestamp": at, "data": view }))
        }))
        .collect();
    timeline.sort_by_key(|(at, order, _)| (*at, *order));
    Ok(Json(json!({
        "threadId": thread.id,
        "thread": {
            "id": thread.id,
            "agentId": thread.agent_id,
            "userId": thread.user_id,
            "title": thread.title,
            "status": thread.status,
            "turnCount": turns.len(),
            "createdAt": thread.created_at,
            "updatedAt": thread.updated_at,
        },
        "messages": message_views,
        "spans": span_views,
        "spanTree": span_tree(&spans),
        "timeline": timeline.into_iter().map(|(_, _, entry)| entry).collect::<Vec<_>>(),
        "rollup": {
            "totalMessages": messages.len(),
            "totalSpans": spans.len(),
            "totalTurns": turns.len(),
            "totalCostCents": usage.cost.as_cents(),
            "totalCostMicroCents": usage.cost.0,
            "totalInputTokens": usage.input_tokens,
            "totalOutputTokens": usage.output_tokens,
            "toolCallCount": tool_calls,
            "firstMessageAt": messages.first().map(|m| m.created_at),
            "lastMessageAt": messages.last().map(|m| m.created_at),
        },
    })))
}

/// Spans nested under their parents (`children`), in start order; a span whose parent is not
/// among them (a turn joining a caller's trace) is a root.
fn span_tree(spans: &[Span]) -> Vec<Value> {
    let mut children: HashMap<&str, Vec<&Span>> = HashMap::new();
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut roots = Vec::new();
    for span in spans {
        match span.parent_span_id.as_deref().filter(|p| ids.contains(p)) {
            Some(parent) => children.entry(parent).or_default().push(span),
            None => roots.push(span),
        }
    }
    fn node(span: &Span, children: &HashMap<&str, Vec<&Span>>) -> Value {
        let mut view = views::span(span);
        let kids: Vec<Value> =
            children.get(span.span_id.as_str()).into_iter().flatten().map(|c| node(c, children)).collect();
        if let Value::Object(fields) = &mut view {
            fields.insert("children".into(), Value::Array(kids));
        }
        view
    }
    roots.into_iter().map(|r| node(r, &children)).collect()
}
