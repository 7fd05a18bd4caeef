//! `/threads`: create, list, get, messages, artifacts, archive, unarchive, delete.
//!
//! Every lookup goes through the caller's scope and owner filter, so another user's or another
//! scope's thread answers 404 exactly like a missing one.

use agentry_core::{Principal, Thread, wire};
use agentry_store::{ArchivedFilter, ThreadQuery};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::agents::check_pin;
use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams, page_limit, page_offset};

/// Longest accepted thread title, in characters.
const MAX_TITLE_CHARS: usize = 500;

/// Body of `POST /threads`. Unknown fields are ignored (clients send extras).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateThread {
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    title: Option<String>,
}

/// `POST /threads` → 201 Thread. `agentId` absent or `"default"` means the scope's default agent.
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody<CreateThread>,
) -> Result<(StatusCode, Json<Thread>), ApiError> {
    if let Some(title) = &body.title
        && title.chars().count() > MAX_TITLE_CHARS
    {
        return Err(ApiError::invalid_field("title", format!("must be at most {MAX_TITLE_CHARS} characters")));
    }
    let thread = state.engine.create_thread(&principal, body.agent_id.as_deref(), body.title).await?;
    Ok((StatusCode::CREATED, Json(thread)))
}

/// Query of `GET /threads`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ListThreads {
    /// Only threads with this agent.
    agent_id: Option<String>,
    /// At most this many rows (default 20).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
    /// `true`/`1` include archived threads, `only` lists just them.
    archived: Option<String>,
    /// A thread id, or text its title contains (any case).
    q: Option<String>,
    /// Only this user's threads (operators; anyone acting as a user sees only their own).
    user_id: Option<String>,
}

/// `GET /threads?agentId&userId&q&archived&limit&offset` → `{threads, total, limit, offset}`, most
/// recently updated first.
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<ListThreads>,
) -> Result<Json<wire::ThreadList>, ApiError> {
    let limit = page_limit(query.limit, 20, 200)?;
    let offset = page_offset(query.offset)?;
    let archived = match query.archived.as_deref() {
        None | Some("" | "false" | "0") => ArchivedFilter::Exclude,
        Some("true" | "1") => ArchivedFilter::Include,
        Some("only") => ArchivedFilter::Only,
        Some(other) => {
            return Err(ApiError::invalid_field("archived", format!("`{other}` is not true, false or only")));
        }
    };
    let agent_id = query.agent_id.as_deref().filter(|a| !a.is_empty()).or(principal.pinned_agent_id.as_deref());
    if let Some(agent_id) = agent_id {
        check_pin(&principal, agent_id)?;
    }
    let search = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    if search.is_some_and(|q| q.chars().count() > MAX_TITLE_CHARS) {
        return Err(ApiError::invalid_field("q", format!("must be at most {MAX_TITLE_CHARS} characters")));
    }
    let owner = principal.thread_owner_filter().or(query.user_id.as_deref().filter(|u| !u.is_empty()));
    let filter = ThreadQuery { owner, agent_id, archived, search, limit, offset };
    let (threads, total) = state.store.list_threads(&principal.scope, &filter).await?;
    Ok(Json(wire::ThreadList { threads, total, limit, offset }))
}

/// `GET /threads/:id` → Thread or 404.
pub async fn get(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(thread_id): Path<String>,
) -> Result<Json<Thread>, ApiError> {
    visible_thread(&state, &principal, &thread_id).await.map(Json)
}

/// Paging of `GET /threads/:id/messages`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct Page {
    /// At most this many rows (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// Rows to skip.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

/// `GET /threads/:id/messages` → `{messages, total}` in chronological order.
pub async fn messages(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(thread_id): Path<String>,
    QueryParams(page): QueryParams<Page>,
) -> Result<Json<wire::MessagePage>, ApiError> {
    let limit = page_limit(page.limit, 50, 500)?;
    let offset = page_offset(page.offset)?;
    let thread = visible_thread(&state, &principal, &thread_id).await?;
    let (messages, total) = state.store.list_messages(&principal.scope, &thread.id, limit, offset).await?;
    let messages = messages.iter().map(wire::Message::of).collect();
    Ok(Json(wire::MessagePage { messages, total, limit, offset }))
}

/// Query of `GET /threads/:id/artifacts`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListArtifacts {
    /// At most this many rows (default 100).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// `GET /threads/:id/artifacts` → `{artifacts}`: the latest revision of each artifact the
/// thread's turns made, newest first, with `revisionCount`.
pub async fn artifacts(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(thread_id): Path<String>,
    QueryParams(query): QueryParams<ListArtifacts>,
) -> Result<Json<wire::ArtifactList>, ApiError> {
    let thread = visible_thread(&state, &principal, &thread_id).await?;
    let limit = page_limit(query.limit, 100, 500)?;
    let artifacts = state
        .store
        .list_artifacts(&thread.scope, &thread.id, limit)
        .await?
        .into_iter()
        .map(|(a, revisions)| wire::Artifact {
            id: a.id,
            thread_id: a.thread_id,
            turn_id: a.turn_id,
            artifact_key: a.artifact_key,
            kind: a.kind,
            revision: a.revision,
            revision_count: revisions,
            title: a.title,
            language: a.language,
            content: a.content,
            created_at: a.created_at,
        })
        .collect();
    Ok(Json(wire::ArtifactList { artifacts }))
}

/// `POST /threads/:id/archive` → the archived thread.
pub async fn archive(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(thread_id): Path<String>,
) -> Result<Json<Thread>, ApiError> {
    set_archived(&state, &principal, &thread_id, true).await
}

/// `POST /threads/:id/unarchive` → the active thread.
pub async fn unarchive(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(thread_id): Path<String>,
) -> Result<Json<Thread>, ApiError> {
    set_archived(&state, &principal, &thread_id, false).await
}

/// `DELETE /threads/:id` → `{deleted: true, id}`; the thread and its messages are gone.
pub async fn delete(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(thread_id): Path<String>,
) -> Result<Json<wire::Deleted>, ApiError> {
    if !state.store.delete_thread(&principal.scope, principal.thread_owner_filter(), &thread_id).await? {
        return Err(ApiError::not_found("Thread"));
    }
    Ok(Json(wire::Deleted { deleted: true, id: thread_id }))
}

async fn set_archived(
    state: &AppState,
    principal: &Principal,
    thread_id: &str,
    archived: bool,
) -> Result<Json<Thread>, ApiError> {
    state
        .store
        .set_thread_archived(&principal.scope, principal.thread_owner_filter(), thread_id, archived)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("Thread"))
}

async fn visible_thread(state: &AppState, principal: &Principal, thread_id: &str) -> Result<Thread, ApiError> {
    Ok(state.engine.visible_thread(principal, thread_id).await?)
}
