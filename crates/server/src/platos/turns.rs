//! Turns over HTTP: the SSE lanes (`POST /threads/:id/stream`, `GET /agents/:id/chat/stream`),
//! the non-streaming `POST /threads/:id/messages`, and `POST /threads/:id/cancel`.
//!
//! SSE frames are `id: <seq>` + `data: <event JSON>`; a request carrying `Last-Event-ID` resumes
//! the thread's latest turn after that `seq` instead of starting a new one. A client that goes
//! away does not stop the turn: it can come back with `Last-Event-ID`.

use std::collections::BTreeMap;
use std::convert::Infallible;

use agentry_core::{LoggedEvent, Principal, Thread, wire};
use agentry_engine::{NewMessage, TurnFollower};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams};

/// Body of the turn-starting routes.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendMessage {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    dynamic_blocks: BTreeMap<String, String>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// `POST /threads/:id/stream`: starts a turn (or resumes with `Last-Event-ID`) as SSE.
pub async fn stream(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(thread_id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SendMessage>,
) -> Result<Response, ApiError> {
    let thread = state.engine.visible_thread(&principal, &thread_id).await?;
    let follower = match last_event_id(&headers)? {
        Some(after) => resume(&state, &thread, after).await?,
        None => start(&state, &principal, &thread, body, &headers).await?,
    };
    Ok(sse(&state, follower))
}

/// Query of `GET /agents/:id/chat/stream`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ChatQuery {
    /// What the user says.
    message: Option<String>,
    /// The thread to continue; without it a new thread is started with the agent.
    thread_id: Option<String>,
    /// Resume the thread's stream after this event (as the `Last-Event-ID` header does).
    last_event_id: Option<i64>,
}

/// `GET /agents/:id/chat/stream?message=…&threadId=…`: the same as a GET; creates a thread with
/// the agent when `threadId` is absent.
pub async fn chat_stream(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(agent_id): Path<String>,
    QueryParams(query): QueryParams<ChatQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    super::agents::check_pin(&principal, &agent_id)?;
    let resume_from = last_event_id(&headers)?.or(query.last_event_id);
    if resume_from.is_some() && query.thread_id.is_none() {
        // Without a thread a reconnecting EventSource would start a second conversation.
        return Err(ApiError::invalid_field("threadId", "is required to resume with Last-Event-ID"));
    }
    let thread = match &query.thread_id {
        Some(id) => state.engine.visible_thread(&principal, id).await?,
        None => state.engine.create_thread(&principal, Some(&agent_id), None).await?,
    };
    let follower = match resume_from {
        Some(after) => resume(&state, &thread, after).await?,
        None => {
            let body = SendMessage { message: query.message, ..SendMessage::default() };
            start(&state, &principal, &thread, body, &headers).await?
        }
    };
    Ok(sse(&state, follower))
}

/// `POST /threads/:id/messages`: runs a turn and answers when it ends:
/// `{text, threadId, turnId, messageId, status, usage, costCents, events}`.
pub async fn send_and_wait(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(thread_id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SendMessage>,
) -> Result<Json<wire::TurnOutcome>, ApiError> {
    let thread = state.engine.visible_thread(&principal, &thread_id).await?;
    let result = state.engine.run_to_completion(&principal, &thread, new_message(body, &headers)?).await?;
    Ok(Json(wire::TurnOutcome {
        text: result.text,
        thread_id: result.thread_id,
        turn_id: result.turn_id,
        message_id: result.message_id,
        status: result.status,
        error: result.error.map(|(code, message)| wire::TurnError { code, message }),
        usage: result.usage,
        cost_cents: result.usage.cost.as_cents(),
        events: result.events,
    }))
}

/// `POST /threads/:id/cancel` → `{cancelled}`: stops the thread's running and queued turns.
pub async fn cancel(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(thread_id): Path<String>,
) -> Result<Json<wire::Cancelled>, ApiError> {
    let thread = state.engine.visible_thread(&principal, &thread_id).await?;
    let cancelled = state.engine.cancel_thread(&thread.scope, &thread.id).await?;
    Ok(Json(wire::Cancelled { cancelled, thread_id: thread.id }))
}

async fn start(
    state: &AppState,
    principal: &Principal,
    thread: &Thread,
    body: SendMessage,
    headers: &HeaderMap,
) -> Result<TurnFollower, ApiError> {
    let (_, follower) = state.engine.send(principal, thread, new_message(body, headers)?).await?;
    Ok(follower)
}

/// The message of a turn-starting request (its idempotency key from the body or the header).
fn new_message(body: SendMessage, headers: &HeaderMap) -> Result<NewMessage, ApiError> {
    let Some(text) = body.message else {
        return Err(ApiError::invalid_field("message", "is required"));
    };
    let header_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    Ok(NewMessage {
        text,
        trace_parent: crate::extract::TraceContext::from_headers(headers).0,
        dynamic_blocks: body.dynamic_blocks,
        idempotency_key: body.idempotency_key.or(header_key),
        ..NewMessage::default()
    })
}

async fn resume(state: &AppState, thread: &Thread, after: i64) -> Result<TurnFollower, ApiError> {
    let turn = state.store.latest_turn(&thread.scope, &thread.id).await?.ok_or_else(|| ApiError::not_found("Turn"))?;
    Ok(state.engine.follow(&thread.scope, &turn, after).await?)
}

fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    match headers.get("last-event-id").map(|v| v.to_str().map(str::trim)) {
        None => Ok(None),
        Some(Ok("")) => Ok(None),
        Some(Ok(value)) => value.parse::<i64>().map(Some).map_err(|_| {
            ApiError::invalid_field("Last-Event-ID", format!("`{value}` is not an event sequence number"))
        }),
        Some(Err(_)) => Err(ApiError::invalid_field("Last-Event-ID", "must be ASCII")),
    }
}

/// The SSE response of a follower: one frame per event, heartbeats while quiet, closed after
/// `done` (or at server shutdown).
fn sse(state: &AppState, follower: TurnFollower) -> Response {
    let shutdown = state.shutdown.clone();
    let stream = futures_util::stream::unfold(Some(follower), move |follower| {
        let mut shutdown = shutdown.clone();
        async move {
            let mut follower = follower?;
            let next = tokio::select! {
                next = follower.next() => next,
                _ = shutdown.changed() => return None,
            };
            match next {
                Ok(Some(event)) => Some((Ok::<_, Infallible>(frame(&event)), Some(follower))),
                Ok(None) => None,
                Err(err) => {
                    tracing::warn!(%err, "lost the turn's event log during SSE");
                    let error =
                        json!({ "type": "error", "code": "service_unavailable", "message": "event log unavailable" });
                    Some((Ok(Event::default().data(error.to_string())), None))
                }
            }
        }
    });
    let heartbeat = Event::default().data(json!({ "type": "heartbeat" }).to_string());
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(state.options.sse_heartbeat).event(heartbeat))
        .into_response();
    response.headers_mut().insert("x-accel-buffering", axum::http::HeaderValue::from_static("no"));
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-cache"));
    response
}

fn frame(event: &LoggedEvent) -> Event {
    Event::default().id(event.seq.to_string()).data(event.to_wire().to_string())
}
