//! What a turn did, over REST: the turn list of both client generations
//! (`GET /monitoring/runs` → `{runs}`, `GET /turns` → `{turns}`), one turn with its model calls
//! (`GET /turns/:id`), and traces — a trace's spans (`GET /monitoring/traces/:traceId`), a
//! thread's whole story (`GET /monitoring/trace/:threadId`: messages with their content items,
//! spans, their tree, a timeline and a rollup) and a list of traces (`GET /monitoring/traces`).
//!
//! Operators see their scope; end users (and an API key acting as a user) see only that user's
//! turns, traces and threads; a turn or trace outside that is missing (404), never forbidden.

use std::collections::HashMap;

use agentry_core::wire::monitoring::{
    ModelCallRecord, ThreadTrace, TimelineData, TimelineEntry, TimelineKind, Trace, TraceContent, TraceList,
    TraceMessage, TraceRollup, TraceSpan, TraceSummary, TraceThread, TurnDetail, TurnList, TurnRunList,
};
use agentry_core::{Principal, Turn, TurnStatus};
use agentry_store::{ModelCall, Span, TurnFilter, TurnStats};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::views;
use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{QueryParams, page_limit, page_offset, time_param};

/// Filters of the turn and trace lists.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct TurnQuery {
    /// Only this agent's turns.
    agent_id: Option<String>,
    /// Only this thread's turns.
    thread_id: Option<String>,
    /// `queued`, `running`, `waiting`, `completed`, `failed` or `cancelled`.
    status: Option<String>,
    /// Only this end user's turns (operators; an end user sees only their own).
    user_id: Option<String>,
    /// Turns started at or after this: RFC 3339, `YYYY-MM-DD` or Unix milliseconds.
    since: Option<String>,
    /// At most this many rows (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
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

/// Each message with the content items (tables, charts, …: what the Erdo surface shows beside
/// the text) its turn produced; the text item repeats the message and is left out.
fn with_contents(messages: &[agentry_core::Message], items: Vec<agentry_core::ContentItem>) -> Vec<TraceMessage> {
    let mut by_message: HashMap<String, Vec<TraceContent>> = HashMap::new();
    for item in items.into_iter().filter(|item| item.content_type != "text") {
        by_message.entry(item.message_id).or_default().push(TraceContent {
            id: item.id,
            content_type: item.content_type,
            ui_content_type: item.ui_content_type,
            content: item.content,
            user_visibility: item.user_visibility,
        });
    }
    messages
        .iter()
        .map(|m| TraceMessage {
            contents: by_message.remove(&m.id).unwrap_or_default(),
            message: agentry_core::wire::Message::of(m),
        })
        .collect()
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
) -> Result<Json<TurnRunList>, ApiError> {
    let (rows, limit, offset) = turns_with_stats(&state, &principal, query).await?;
    let runs = rows.iter().map(|(turn, stats)| views::turn(turn, stats)).collect();
    Ok(Json(TurnRunList { runs, limit, offset }))
}

/// `GET /turns` (1.x) → `{turns}`.
pub async fn turns(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<TurnQuery>,
) -> Result<Json<TurnList>, ApiError> {
    let (rows, limit, offset) = turns_with_stats(&state, &principal, query).await?;
    let turns = rows.iter().map(|(turn, stats)| views::turn(turn, stats)).collect();
    Ok(Json(TurnList { turns, limit, offset }))
}

/// `GET /turns/:id` → the turn, with each model call it made.
pub async fn turn(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(turn_id): Path<String>,
) -> Result<Json<TurnDetail>, ApiError> {
    let turn = state
        .store
        .get_turn(&principal.scope, &turn_id)
        .await?
        .filter(|t| may_see(&principal, t))
        .ok_or_else(|| ApiError::not_found("Turn"))?;
    let stats = state.store.turn_stats(std::slice::from_ref(&turn.id)).await?.remove(&turn.id).unwrap_or_default();
    let calls = state.store.model_calls_of_turn(&principal.scope, &turn.id).await?;
    Ok(Json(TurnDetail { turn: views::turn(&turn, &stats), model_calls: calls.iter().map(model_call).collect() }))
}

fn model_call(call: &ModelCall) -> ModelCallRecord {
    ModelCallRecord {
        id: call.id.clone(),
        step: call.step,
        provider: call.provider.clone(),
        model: call.model.clone(),
        status: call.status.as_str().to_owned(),
        finish_reason: call.finish_reason.clone(),
        error: call.error.clone(),
        input_tokens: call.usage.input_tokens,
        output_tokens: call.usage.output_tokens,
        cached_input_tokens: call.usage.cached_input_tokens,
        reasoning_tokens: call.usage.reasoning_tokens,
        cost_cents: call.usage.cost.as_cents(),
        cost_micro_cents: call.usage.cost.0,
        started_at: call.started_at,
        ttft_ms: call.first_token_at.map(|t| t.0 - call.started_at.0),
        duration_ms: call.finished_at.0 - call.started_at.0,
    }
}

/// `GET /monitoring/traces` → `{traces}`: one per turn (the turn's trace), newest first, with
/// the list filters of the turns.
pub async fn traces(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<TurnQuery>,
) -> Result<Json<TraceList>, ApiError> {
    let (rows, limit, offset) = turns_with_stats(&state, &principal, query).await?;
    let traces = rows
        .iter()
        .map(|(turn, stats)| TraceSummary {
            trace_id: turn.trace_id(),
            root_span_id: turn.span_id(),
            turn_id: turn.id.clone(),
            thread_id: turn.thread_id.clone(),
            agent_id: turn.agent_id.clone(),
            user_id: turn.user_id.clone(),
            status: turn.status,
            started_at: turn.started_at.unwrap_or(turn.created_at),
            duration_ms: views::turn_duration_ms(turn),
            cost_cents: stats.usage.cost.as_cents(),
            input_tokens: stats.usage.input_tokens,
            output_tokens: stats.usage.output_tokens,
            steps: stats.model_calls,
            tool_calls: stats.tool_calls,
        })
        .collect();
    Ok(Json(TraceList { traces, limit, offset }))
}

/// `GET /monitoring/traces/:traceId` (0.1.x) → `{traceId, spans, spanTree}`.
pub async fn trace(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(trace_id): Path<String>,
) -> Result<Json<Trace>, ApiError> {
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
    Ok(Json(Trace { spans: spans.iter().map(views::span).collect(), span_tree: span_tree(&spans), trace_id }))
}

/// `GET /monitoring/trace/:threadId` (1.x) → `{threadId, thread, messages, spans, spanTree,
/// timeline, rollup}`: everything that happened in a thread.
pub async fn thread_trace(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(thread_id): Path<String>,
) -> Result<Json<ThreadTrace>, ApiError> {
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
    let message_views = with_contents(&messages, state.store.thread_contents(scope, &thread.id).await?);
    let span_views: Vec<TraceSpan> = spans.iter().map(views::span).collect();
    let mut timeline: Vec<(i64, u8, TimelineEntry)> = messages
        .iter()
        .zip(&message_views)
        .map(|(m, view)| {
            let data = TimelineData::Message(Box::new(view.clone()));
            (m.created_at.0, 0, TimelineEntry { kind: TimelineKind::Message, timestamp: m.created_at, data })
        })
        .chain(span_views.iter().map(|view| {
            let data = TimelineData::Span(Box::new(view.clone()));
            (view.start_time.0, 1, TimelineEntry { kind: TimelineKind::Span, timestamp: view.start_time, data })
        }))
        .collect();
    timeline.sort_by_key(|(at, order, _)| (*at, *order));
    Ok(Json(ThreadTrace {
        thread: TraceThread {
            id: thread.id.clone(),
            agent_id: thread.agent_id.clone(),
            user_id: thread.user_id.clone(),
            title: thread.title.clone(),
            status: thread.status,
            turn_count: turns.len(),
            created_at: thread.created_at,
            updated_at: thread.updated_at,
        },
        rollup: TraceRollup {
            total_messages: messages.len(),
            total_spans: spans.len(),
            total_turns: turns.len(),
            total_cost_cents: usage.cost.as_cents(),
            total_cost_micro_cents: usage.cost.0,
            total_input_tokens: usage.input_tokens,
            total_output_tokens: usage.output_tokens,
            tool_call_count: tool_calls,
            first_message_at: messages.first().map(|m| m.created_at),
            last_message_at: messages.last().map(|m| m.created_at),
        },
        thread_id: thread.id,
        messages: message_views,
        span_tree: span_tree(&spans),
        spans: span_views,
        timeline: timeline.into_iter().map(|(_, _, entry)| entry).collect(),
    }))
}

/// Spans nested under their parents (`children`), in start order; a span whose parent is not
/// among them (a turn joining a caller's trace) is a root.
fn span_tree(spans: &[Span]) -> Vec<TraceSpan> {
    let mut children: HashMap<&str, Vec<&Span>> = HashMap::new();
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut roots = Vec::new();
    for span in spans {
        match span.parent_span_id.as_deref().filter(|p| ids.contains(p)) {
            Some(parent) => children.entry(parent).or_default().push(span),
            None => roots.push(span),
        }
    }
    fn node(span: &Span, children: &HashMap<&str, Vec<&Span>>) -> TraceSpan {
        let kids = children.get(span.span_id.as_str()).into_iter().flatten().map(|c| node(c, children)).collect();
        TraceSpan { children: Some(kids), ..views::span(span) }
    }
    roots.into_iter().map(|r| node(r, &children)).collect()
}
