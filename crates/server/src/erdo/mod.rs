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

use crate::AppState;
use crate::routes::{self, Endpoint, Verb, at};

/// The Erdo routes, to be merged at the root of the app.
pub fn routes() -> Router<AppState> {
    routes::router(endpoints())
}

/// The Erdo endpoints (at the root).
pub fn endpoints() -> Vec<Endpoint> {
    use Verb::*;
    vec![
        at(Post, "/tokens", tokens::create),
        at(Delete, "/tokens/{token_id}", tokens::revoke),
        at(Post, "/bots/{bot_key}/invoke", invoke::invoke),
        at(Post, "/bots/{bot_key}/invoke-from-thread", invoke::invoke_from_thread),
        at(Get, "/threads", threads::list),
        at(Post, "/threads", threads::create),
        at(Get, "/threads/{thread_id}", threads::get),
        at(Get, "/threads/{thread_id}/messages", threads::messages),
        at(Post, "/threads/{thread_id}/message", threads::send),
        at(Get, "/datasets", datasets::list),
        at(Post, "/datasets", datasets::create),
        at(Get, "/datasets/{slug}", datasets::get),
        at(Post, "/datasets/{slug}/query", datasets::query),
        at(Post, "/datasets/{dataset_id}/download", datasets::download),
    ]
}
