//! Bots: `POST /bots/{key}/invoke` and `POST /bots/{key}/invoke-from-thread`, answering
//! `text/event-stream` (see [`super::stream`]) and closing when the invocation ends. Errors
//! before the stream are non-200 with a readable JSON body (the Python SDK reports the body).
//!
//! A bot is an agent: `<org>.<agent id>`, or an unqualified id resolved in the caller's org.

use std::convert::Infallible;

use agentry_core::{Message, MessageRole, Principal, Thread, Timestamp};
use agentry_engine::NewMessage;
use agentry_store::StoredAgent;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::auth::{ErdoAuth, ErdoCaller, erdo_scope};
use super::stream::{BotInfo, ErdoStream, Framing, frame};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::JsonBody;

/// Resolves a bot key for the caller: its agent, and how the events name it. A bot of another
/// org, or one the caller's token does not grant, answers like a missing one.
pub async fn resolve_bot(state: &AppState, caller: &ErdoCaller, key: &str) -> Result<(StoredAgent, BotInfo), ApiError> {
    let (org, agent_id) = match key.split_once('.') {
        Some((org, agent)) if !org.is_empty() && !agent.is_empty() => (org, agent),
        _ => (caller.org(), key),
    };
    let qualified = format!("{org}.{agent_id}");
    if org != caller.org() || !caller.may_invoke(&qualified) {
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

/// One message of an invoke request.
#[derive(Debug, Deserialize)]
pub struct InvokeMessage {
    role: String,
    content: String,
}

/// Body of `POST /bots/{key}/invoke` as the `erdo` SDK sends it.
#[derive(Debug, Deserialize)]
pub struct InvokeBody {
    #[serde(default)]
    messages: Vec<InvokeMessage>,
    #[serde(default)]
    mode: Option<Value>,
    #[serde(default, alias = "manualMocks")]
    manual_mocks: Option<Value>,
}

/// `POST /bots/{key}/invoke`: a new conversation with the bot; earlier `messages` are its history,
/// the last user message is the turn.
pub async fn invoke(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<InvokeBody>,
) -> Result<Response, ApiError> {
    check_mode(body.mode.as_ref(), body.manual_mocks.as_ref())?;
    let (agent, bot) = resolve_bot(&state, &caller, &key).await?;
    let Some(last) = body.messages.iter().rposition(|m| m.role == "user") else {
        return Err(ApiError::invalid_field("messages", "must contain a message with role `user`"));
    };
    let thread = invocation_thread(&state, &caller.principal, &agent, &key).await?;
    for earlier in &body.messages[..last] {
        let role = match earlier.role.as_str() {
            "assistant" => MessageRole::Assistant,
            "system" => MessageRole::System,
            _ => MessageRole::User,
        };
        let message = Message {
            id: agentry_core::id::new_id(agentry_core::id::prefix::MESSAGE),
            thread_id: thread.id.clone(),
            role,
            content: earlier.content.clone(),
            created_at: Timestamp::now(),
        };
        state.store.append_message(&thread.scope, &message).await?;
    }
    let text = body.messages[last].content.clone();
    run(&state, &caller, &thread, text, Framing::Invoke, bot).await
}

/// Body of `POST /bots/{key}/invoke-from-thread`.
#[derive(Debug, Deserialize)]
pub struct InvokeFromThreadBody {
    thread_id: String,
    message: String,
    #[serde(default)]
    mode: Option<Value>,
}

/// `POST /bots/{key}/invoke-from-thread {thread_id, message}`: the bot answers in an existing
/// thread the caller may use.
pub async fn invoke_from_thread(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    Path(key): Path<String>,
    JsonBody(body): JsonBody<InvokeFromThreadBody>,
) -> Result<Response, ApiError> {
    check_mode(body.mode.as_ref(), None)?;
    let (agent, bot) = resolve_bot(&state, &caller, &key).await?;
    let thread = super::threads::visible_thread(&state, &caller, &body.thread_id).await?;
    let thread = Thread { agent_id: agent.spec.id.clone(), ..thread };
    run(&state, &caller, &thread, body.message, Framing::Invoke, bot).await
}

/// Only live invocations exist so far: anything else is refused rather than silently run live.
fn check_mode(mode: Option<&Value>, mocks: Option<&Value>) -> Result<(), ApiError> {
    let name = match mode {
        None | Some(Value::Null) => "live",
        Some(Value::String(mode)) => mode.as_str(),
        Some(Value::Object(object)) => object.get("mode").and_then(Value::as_str).unwrap_or(""),
        Some(_) => "",
    };
    if name != "live" || mocks.is_some_and(|m| !m.is_null()) {
        return Err(ApiError::invalid_field(
            "mode",
            format!("`{name}` is not supported by this server yet; invoke in live mode (omit `mode`)"),
        ));
    }
    Ok(())
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

/// Submits the turn and streams it in Erdo events until it ends.
pub async fn run(
    state: &AppState,
    caller: &ErdoCaller,
    thread: &Thread,
    text: String,
    framing: Framing,
    bot: BotInfo,
) -> Result<Response, ApiError> {
    let message = NewMessage { text, allowed_datasets: super::datasets::allowed_for(caller), ..NewMessage::default() };
    let turn = state.engine.submit(&caller.principal, thread, message).await?;
    let follower = state.engine.follow(&thread.scope, &turn, 0).await?;
    let translator = ErdoStream::new(framing, bot, &turn.id);
    let shutdown = state.shutdown.clone();
    let stream = futures_util::stream::unfold(Some((follower, translator)), move |state| {
        let mut shutdown = shutdown.clone();
        async move {
            let (mut follower, mut translator) = state?;
            let next = tokio::select! {
                next = follower.next() => next,
                _ = shutdown.changed() => return None,
            };
            match next {
                Ok(Some(event)) => {
                    let text: String = translator.translate(&event).iter().map(frame).collect();
                    Some((Ok::<_, Infallible>(text), Some((follower, translator))))
                }
                Ok(None) => None,
                Err(err) => {
                    tracing::warn!(%err, "lost the turn's event log during an Erdo stream");
                    let error =
                        serde_json::json!({"type": "error", "payload": "event log unavailable", "metadata": {}});
                    Some((Ok(frame(&error)), None))
                }
            }
        }
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}
