//! The Erdo wire protocol (`erdo-wire.md`) at the root of the base URL, where `ErdoClient`, the
//! Python SDK and `@erdoai/ui` call it (`/tokens`, `/threads`, `/bots/...`; no `/v1` prefix).
//!
//! An Erdo organization is the Agentry scope `(org, "default", "default")`. [`auth`] turns an API
//! key or a scoped token into an [`auth::ErdoCaller`]; [`tokens`] mints and revokes scoped tokens;
//! [`invoke`] runs bots (`/bots/{key}/invoke[-from-thread]`); [`threads`] holds threads, their
//! messages with content items, and sending a message; [`datasets`] uploads, lists, queries and
//! downloads datasets; [`stream`] translates turn events into Erdo SSE events.

pub mod auth;
pub mod datasets;
pub mod invoke;
pub mod stream;
pub mod threads;
pub mod tokens;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::AppState;

/// The Erdo routes, to be merged at the root of the app.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tokens", post(tokens::create))
        .route("/tokens/{token_id}", delete(tokens::revoke))
        .route("/bots/{bot_key}/invoke", post(invoke::invoke))
        .route("/bots/{bot_key}/invoke-from-thread", post(invoke::invoke_from_thread))
        .route("/threads", get(threads::list).post(threads::create))
        .route("/threads/{thread_id}", get(threads::get))
        .route("/threads/{thread_id}/messages", get(threads::messages))
        .route("/threads/{thread_id}/message", post(threads::send))
        .route("/datasets", get(datasets::list).post(datasets::create))
        .route("/datasets/{slug}", get(datasets::get))
        .route("/datasets/{slug}/query", post(datasets::query))
        .route("/datasets/{dataset_id}/download", post(datasets::download))
}
