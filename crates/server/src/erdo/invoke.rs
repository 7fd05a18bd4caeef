//! Bots: `POST /bots/{key}/invoke` and `POST /bots/{key}/invoke-from-thread`, answering
//! `text/event-stream` (see [`super::stream`]) and closing when the invocation ends. Errors
//! before the stream are non-200 with a readable JSON body (the Python SDK reports the body).
//!
//! A bot is an agent: `<org>.<agent id>`, or an unqualified id resolved in the caller's org.
//!
//! Modes: `live` runs the bot; `replay` serves the recorded events of an identical request to the
//! same bot version (recording on a miss, re-recording with `refresh`) without running anything;
//! `manual` answers from `manual_mocks` (a mock per executed action, `llm.message`).

use std::convert::Infallible;

use agentry_core::wire::erdo::{ErdoEvent, InvokeBody, InvokeFromThread};
use agentry_core::{
    LoggedEvent, Message, MessageRole, Principal, Thread, Timestamp, TokenUsage, TurnEvent, TurnStatus,
};
use agentry_engine::NewMessage;
use agentry_store::StoredAgent;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::auth::{ErdoAuth, ErdoCaller, erdo_scope};
use super::stream::{BotInfo, ErdoStream, Framing, frame};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{JsonBody, TraceContext};

/// Resolves a bot key for the caller: its agent, and how the events name it. A key not qualified
/// with the caller's org is an agent id of the caller's org (agent ids may contain dots), so a bot
/// of another org, like one the caller's token does not grant, answers like a missing one.
pub async fn resolve_bot(state: &AppState, caller: &ErdoCaller, key: &str) -> Result<(StoredAgent, BotInfo), ApiError> {
    let org = caller.org();
    let agent_id = match key.split_once('.') {
        Some((prefix, agent)) if prefix == org && !agent.is_empty() => agent,
        _ => key,
    };
    let qualified = format!("{org}.{agent_id}");
    if !caller.may_invoke(&qualified) {
        return Err(ApiError::not_found(&format!("Bot `{key}`")));
    }
    let agent = state
        .store
        .get_agent(&erdo_scope(org), agent_id)
        .await?
        .ok_or_else(|| ApiError::not_found(&format!("Bot `{key}`")))?;
    let bot = BotInfo { id: agent.spec.id.clone(), key: qualified, name: agent.spec.name.clone() };
    Ok((agent, bot))
}

/// How an invocation runs (`erdo-wire.md` §5).
enum Mode {
    /// Run the bot.
    Live,
    /// Serve the recorded answer of an identical request (same bot version); record on a miss
    /// or when `refresh` is set.
    Replay { refresh: bool },
    /// Answer from the caller's mocks; nothing is run.
    Manual(Map<String, Value>),
}

impl Mode {
    fn parse(mode: Option<&Value>, mocks: Option<&Value>) -> Result<Mode, ApiError> {
        let (name, refresh) = match mode {
            None | Some(Value::Null) => ("live", false),
            Some(Value::String(mode)) => (mode.as_str(), false),
            Some(Value::Object(object)) => (
                object.get("mode").and_then(Value::as_str).unwrap_or(""),
                object.get("refresh").and_then(Value::as_bool).unwrap_or(false),
            ),
            Some(_) => ("", false),
        };
        let mocks = mocks.filter(|m| !m.is_null());
        match (name, mocks) {
            ("live", None) => Ok(Mode::Live),
            ("replay", None) => Ok(Mode::Replay { refresh }),
            ("manual", Some(Value::Object(mocks))) => Ok(Mode::Manual(mocks.clone())),
            ("manual", _) => Err(ApiError::invalid_field("manual_mocks", "manual mode needs an object of mocks")),
            ("live" | "replay", Some(_)) => {
                Err(ApiError::invalid_field("manual_mocks", "mocks are only used in manual mode"))
            }
            (other, _) => Err(ApiError::invalid_field("mode", format!("`{other}` is not live, replay or manual"))),
        }
    }
}

/// `POST /bots/{key}/invoke`: a new conversation with the bot; earlier `messages` are its history,
/// the last user message is the turn.
pub async fn invoke(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    Path(key): Path<String>,
    trace: TraceContext,
    JsonBody(body): JsonBody<InvokeBody>,
) -> Result<Response, ApiError> {
    let mode = Mode::parse(body.mode.as_ref(), body.manual_mocks.as_ref())?;
    let (agent, bot) = resolve_bot(&state, &caller, &key).await?;
    let Some(last) = body.messages.iter().rposition(|m| m.role == "user") else {
        return Err(ApiError::invalid_field("messages", "must contain a message with role `user`"));
    };
    if let Mode::Manual(mocks) = &mode {
        return Ok(replayed(manual_events(mocks, &body.messages[last].content)?, bot));
    }
    // Every grant is checked before anything runs or is replayed: a replayed answer goes only to
    // a caller who could have produced it live.
    let mut about = Vec::new();
    for slug in &body.dataset_slugs {
        let slug = slug.split_once('.').filter(|(org, _)| *org == caller.org()).map_or(slug.as_str(), |(_, s)| s);
        about.push(super::datasets::visible_dataset(&state, &caller, slug).await?.id);
    }
    let recording = match mode {
        Mode::Live | Mode::Manual(_) => None,
        Mode::Replay { refresh } => {
            // Keyed by what the caller may read too, so a narrower grant never shares a recording
            // made by a wider one.
            let mut readable = super::datasets::allowed_for(&caller, &about);
            if let Some(ids) = &mut readable {
                ids.sort();
                ids.dedup();
            }
            let request = json!({
                "bot": bot.key,
                "version": agent.current_version_id,
                "messages": body.messages,
                "parameters": body.parameters,
                "datasets": about,
                "readable": readable,
            });
            let key = agentry_core::sha256_hex(request.to_string().as_bytes());
            if !refresh && let Some(events) = state.store.recording(&caller.principal.scope, &key).await? {
                return Ok(replayed(events, bot));
            }
            Some(key)
        }
    };
    let thread = invocation_thread(&state, &caller.principal, &agent, &key).await?;
    for earlier in &body.messages[..last] {
        let role = match earlier.role.as_str() {
            "assistant" => MessageRole::Assistant,
            "system" => MessageRole::System,
            _ => MessageRole::User,
        };
        let message = Message::new(&thread.id, role, earlier.content.clone(), None);
        state.store.append_message(&thread.scope, &message).await?;
    }
    let text = body.messages[last].content.clone();
    let invocation = Invocation { record: recording, about, trace, ..Invocation::new(text, Framing::Invoke, bot) };
    run(&state, &caller, &thread, invocation).await
}

/// The events of a manual invocation: the answer the `llm.message` (or `llm`) mock gives.
fn manual_events(mocks: &Map<String, Value>, question: &str) -> Result<Vec<TurnEvent>, ApiError> {
    let mock = mocks.get("llm.message").or_else(|| mocks.get("llm")).ok_or_else(|| {
        ApiError::invalid_field("manual_mocks", "manual mode needs a mock for every executed action: `llm.message`")
    })?;
    let content = match mock.pointer("/output/content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => {
            items.iter().filter_map(|i| i.get("content").and_then(Value::as_str)).collect::<Vec<_>>().join("\n\n")
        }
        _ => mock.get("message").and_then(Value::as_str).unwrap_or_default().to_owned(),
    };
    let ok = mock.get("status").and_then(Value::as_str).is_none_or(|s| s == "success");
    let mut events = vec![TurnEvent::Status { status: "manual".into() }, TurnEvent::Token { text: content }];
    if !ok {
        let error = mock.get("error").and_then(Value::as_str).unwrap_or("the mock failed");
        events.push(TurnEvent::error("manual_mock", format!("{error} (answering: {question})")));
    }
    let status = if ok { TurnStatus::Completed } else { TurnStatus::Failed };
    events.push(TurnEvent::Done { usage: TokenUsage::default(), status, stopped: false });
    Ok(events)
}

/// Streams recorded or mocked events as a new invocation, without running anything.
fn replayed(events: Vec<TurnEvent>, bot: BotInfo) -> Response {
    let invocation = agentry_core::id::new_id("inv");
    let message_id = agentry_core::id::new_id(agentry_core::id::prefix::MESSAGE);
    let mut translator = ErdoStream::new(Framing::Invoke, bot, &invocation);
    let meta = TurnEvent::Meta {
        thread_id: String::new(),
        agent_id: String::new(),
        agent_version_id: String::new(),
        message_id,
    };
    let body: String = std::iter::once(meta)
        .chain(events.into_iter().filter(|e| !matches!(e, TurnEvent::Meta { .. })))
        .enumerate()
        .flat_map(|(i, event)| {
            let logged = LoggedEvent {
                turn_id: invocation.clone(),
                thread_id: String::new(),
                seq: i64::try_from(i).unwrap_or(i64::MAX) + 1,
                at: Timestamp::now(),
                event,
            };
            translator.translate(&logged)
        })
        .map(|event| frame(&event))
        .collect();
    sse_response(Body::from(body))
}

/// `POST /bots/{key}/invoke-from-thread {thread_id, message}`: the bot answers in an existing
/// thread the caller may use (live only: a thread's history makes every request different).
pub async fn invoke_from_thread(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    Path(key): Path<String>,
    trace: TraceContext,
    JsonBody(body): JsonBody<InvokeFromThread>,
) -> Result<Response, ApiError> {
    if !matches!(Mode::parse(body.mode.as_ref(), None)?, Mode::Live) {
        return Err(ApiError::invalid_field(
            "mode",
            "invoke-from-thread runs live; replay and manual work with invoke",
        ));
    }
    let (agent, bot) = resolve_bot(&state, &caller, &key).await?;
    let thread = super::threads::visible_thread(&state, &caller, &body.thread_id).await?;
    let thread = Thread { agent_id: agent.spec.id.clone(), ..thread };
    run(&state, &caller, &thread, Invocation { trace, ..Invocation::new(body.message, Framing::Invoke, bot) }).await
}

/// A fresh thread for a stateless invocation, archived so it stays out of the user's thread list.
async fn invocation_thread(
    state: &AppState,
    principal: &Principal,
    agent: &StoredAgent,
    key: &str,
) -> Result<Thread, ApiError> {
    let title = Some(format!("Invocation of {key}"));
    let thread = state.engine.create_thread(principal, Some(&agent.spec.id), title).await?;
    state.store.set_thread_archived(&thread.scope, principal.thread_owner_filter(), &thread.id, true).await?;
    Ok(thread)
}

/// What to run and how to stream it.
pub struct Invocation {
    /// The user's message.
    pub text: String,
    /// Invoke or thread events.
    pub framing: Framing,
    /// The bot answering.
    pub bot: BotInfo,
    /// For `replay`: the request key a completed turn's events are recorded under.
    pub record: Option<String>,
    /// Datasets (ids) the request names.
    pub about: Vec<String>,
    /// The caller's trace, which the turn joins.
    pub trace: TraceContext,
}

impl Invocation {
    /// A live invocation of `bot` with `text`.
    pub fn new(text: String, framing: Framing, bot: BotInfo) -> Self {
        Invocation { text, framing, bot, record: None, about: Vec::new(), trace: TraceContext::default() }
    }
}

/// Submits the turn and streams it in Erdo events until it ends. With `record`, a completed
/// turn's events are saved under that request key (for `replay`) before the stream ends.
pub async fn run(
    state: &AppState,
    caller: &ErdoCaller,
    thread: &Thread,
    invocation: Invocation,
) -> Result<Response, ApiError> {
    let Invocation { text, framing, bot, record, about, trace } = invocation;
    // The thread's datasets (attached to it, or uploaded into it) and those the request names.
    let mut datasets = state.store.thread_dataset_ids(&thread.scope, &thread.id).await?;
    for id in about {
        if !datasets.contains(&id) {
            datasets.push(id);
        }
    }
    let message = NewMessage {
        text,
        allowed_datasets: super::datasets::allowed_for(caller, &datasets),
        datasets,
        trace_parent: trace.0,
        ..NewMessage::default()
    };
    let turn = state.engine.submit(&caller.principal, thread, message).await?;
    let follower = state.engine.follow(&thread.scope, &turn, 0).await?;
    let stream = Streaming {
        follower,
        translator: ErdoStream::new(framing, bot, &turn.id),
        record: record.map(|key| (state.store.clone(), thread.scope.clone(), key, Vec::new())),
    };
    let shutdown = state.shutdown.clone();
    let heartbeat = state.options.sse_heartbeat;
    let body = futures_util::stream::unfold(Some(stream), move |stream| {
        let mut shutdown = shutdown.clone();
        async move {
            let mut stream = stream?;
            // A comment line while the turn is quiet (a slow tool, a wait for approval) keeps
            // proxies from cutting the stream; every client skips it.
            let next = tokio::select! {
                next = stream.follower.next() => next,
                _ = tokio::time::sleep(heartbeat) => return Some((Ok(": keep-alive\n\n".to_owned()), Some(stream))),
                _ = shutdown.changed() => return None,
            };
            match next {
                Ok(Some(event)) => {
                    stream.remember(&event.event).await;
                    let text: String = stream.translator.translate(&event).iter().map(frame).collect();
                    Some((Ok::<_, Infallible>(text), Some(stream)))
                }
                Ok(None) => None,
                Err(err) => {
                    tracing::warn!(%err, "lost the turn's event log during an Erdo stream");
                    let error = ErdoEvent {
                        kind: "error".into(),
                        payload: Some(json!("event log unavailable")),
                        metadata: Some(json!({})),
                        ..ErdoEvent::default()
                    };
                    Some((Ok(frame(&error)), None))
                }
            }
        }
    });
    Ok(sse_response(Body::from_stream(body)))
}

/// A turn being streamed, and what is recorded of it.
struct Streaming {
    follower: agentry_engine::TurnFollower,
    translator: ErdoStream,
    record: Option<(agentry_store::Store, agentry_core::Scope, String, Vec<TurnEvent>)>,
}

impl Streaming {
    /// Keeps the event for the recording; saves it when the turn completed.
    async fn remember(&mut self, event: &TurnEvent) {
        let Some((store, scope, key, events)) = &mut self.record else { return };
        events.push(event.clone());
        if let TurnEvent::Done { status, .. } = event {
            if *status == TurnStatus::Completed
                && let Err(err) = store.save_recording(scope, key, events).await
            {
                tracing::warn!(%err, "cannot record the invocation for replay");
            }
            self.record = None;
        }
    }
}

fn sse_response(body: Body) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
