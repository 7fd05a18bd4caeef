//! Erdo threads: `POST /threads`, `GET /threads`, `GET /threads/{id}`,
//! `GET /threads/{id}/messages` (messages with typed `contents`), and `POST /threads/{id}/message`
//! (a turn streamed as message-wrapped events, then closed).
//!
//! A scoped token sees its user's threads and the threads it was granted; an API key sees its own
//! (`operator`) threads, or an external user's with `externalUserId`.

use std::collections::HashMap;

use agentry_core::wire::erdo::{CreateThread, ErdoThread, ErdoThreadList, SendMessage, ThreadMessage, ThreadMessages};
use agentry_core::{ContentItem, Thread};
use agentry_store::{ArchivedFilter, ThreadQuery};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::auth::{ErdoAuth, ErdoCaller, external_user_id};
use super::invoke::{Invocation, resolve_bot, run};
use super::stream::{BotInfo, Framing};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams, page_limit, page_offset};

/// A thread the caller may use (owned, or granted to its token); others look missing.
pub async fn visible_thread(state: &AppState, caller: &ErdoCaller, thread_id: &str) -> Result<Thread, ApiError> {
    state
        .store
        .get_thread(&caller.principal.scope, None, thread_id)
        .await?
        .filter(|thread| caller.may_see_thread(thread))
        .ok_or_else(|| ApiError::not_found("Thread"))
}

/// `POST /threads {name?, datasetIds?, botKey?}` → 201 Thread, answered by `botKey` or the org's
/// default agent.
pub async fn create(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    JsonBody(body): JsonBody<CreateThread>,
) -> Result<(StatusCode, Json<ErdoThread>), ApiError> {
    let mut datasets = Vec::new();
    for id in &body.dataset_ids {
        datasets.push(super::datasets::visible_dataset(&state, &caller, id).await?.id);
    }
    let agent_id = match &body.bot_key {
        Some(key) => Some(resolve_bot(&state, &caller, key).await?.0.spec.id),
        None => None,
    };
    let thread = state.engine.create_thread(&caller.principal, agent_id.as_deref(), body.name).await?;
    state.store.attach_datasets(&thread.id, &datasets).await?;
    Ok((StatusCode::CREATED, Json(ErdoThread::of(&thread))))
}

/// Query of `GET /threads`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListThreads {
    /// Only this external user's threads (API keys; also `externalUserId`).
    #[serde(default, alias = "externalUserId")]
    external_user_id: Option<String>,
    /// At most this many rows (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// `GET /threads` → `{threads}`, newest first. A token lists its user's threads (an
/// `externalUserId` filter is ignored); an API key lists its own, or that external user's.
pub async fn list(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    QueryParams(query): QueryParams<ListThreads>,
) -> Result<Json<ErdoThreadList>, ApiError> {
    let owner = match (caller.is_api_key(), query.external_user_id.as_deref()) {
        (true, Some(external)) if !external.is_empty() => external_user_id(caller.org(), external),
        _ => caller.principal.owner_id().to_owned(),
    };
    let query = ThreadQuery {
        owner: Some(&owner),
        agent_id: None,
        archived: ArchivedFilter::Exclude,
        search: None,
        limit: page_limit(query.limit, 50, 200)?,
        offset: page_offset(query.offset)?,
    };
    let (threads, total) = state.store.list_threads(&caller.principal.scope, &query).await?;
    Ok(Json(ErdoThreadList { threads: threads.iter().map(ErdoThread::of).collect(), total }))
}

/// `GET /threads/{id}` → Thread.
pub async fn get(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    Path(thread_id): Path<String>,
) -> Result<Json<ErdoThread>, ApiError> {
    Ok(Json(ErdoThread::of(&visible_thread(&state, &caller, &thread_id).await?)))
}

/// `GET /threads/{id}/messages` → `{messages}`, oldest first, each with its `contents`.
pub async fn messages(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    Path(thread_id): Path<String>,
) -> Result<Json<ThreadMessages>, ApiError> {
    let thread = visible_thread(&state, &caller, &thread_id).await?;
    let (messages, _) = state.store.list_messages(&thread.scope, &thread.id, 1000, 0).await?;
    let mut contents: HashMap<String, Vec<ContentItem>> = HashMap::new();
    for item in state.store.thread_contents(&thread.scope, &thread.id).await? {
        contents.entry(item.message_id.clone()).or_default().push(item);
    }
    let messages = messages.iter().map(|m| ThreadMessage::of(m, contents.remove(&m.id))).collect();
    Ok(Json(ThreadMessages { messages }))
}

/// `POST /threads/{id}/message {content, botKey?}`: a turn by `botKey` (else the thread's agent),
/// streamed as message-wrapped events, then closed.
pub async fn send(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    Path(thread_id): Path<String>,
    trace: crate::extract::TraceContext,
    JsonBody(body): JsonBody<SendMessage>,
) -> Result<Response, ApiError> {
    let thread = visible_thread(&state, &caller, &thread_id).await?;
    let key = body.bot_key.unwrap_or_else(|| format!("{}.{}", thread.scope.organization_id, thread.agent_id));
    let (agent, bot): (_, BotInfo) = resolve_bot(&state, &caller, &key).await?;
    let thread = Thread { agent_id: agent.spec.id.clone(), ..thread };
    run(&state, &caller, &thread, Invocation { trace, ..Invocation::new(body.content, Framing::Thread, bot) }).await
}
