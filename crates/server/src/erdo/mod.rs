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
    use agentry_core::wire::erdo as wire;
    vec![
        at(Post, "/tokens", tokens::create)
            .doc("Mint a scoped token for a browser (`botKeys`, `datasetIds`, `externalUserId`, `expiresInSeconds`)")
            .body::<wire::TokenParams>()
            .answers::<wire::ScopedToken>()
            .status(201),
        at(Delete, "/tokens/{token_id}", tokens::revoke).doc("Revoke a scoped token").answers::<wire::RevokedToken>(),
        at(Post, "/bots/{bot_key}/invoke", invoke::invoke)
            .doc("Run a bot; its events as SSE, the last `result` holding the answer")
            .body::<wire::InvokeBody>()
            .streams_of::<wire::ErdoEvent>(),
        at(Post, "/bots/{bot_key}/invoke-from-thread", invoke::invoke_from_thread)
            .doc("Run a bot in an existing thread; its events as SSE")
            .body::<wire::InvokeFromThread>()
            .streams_of::<wire::ErdoEvent>(),
        at(Get, "/threads", threads::list)
            .query::<threads::ListThreads>()
            .doc("The caller's threads")
            .answers::<wire::ErdoThreadList>(),
        at(Post, "/threads", threads::create)
            .doc("Create a thread")
            .body::<wire::CreateThread>()
            .answers::<wire::ErdoThread>()
            .status(201),
        at(Get, "/threads/{thread_id}", threads::get).doc("A thread").answers::<wire::ErdoThread>(),
        at(Get, "/threads/{thread_id}/messages", threads::messages)
            .doc("A thread's messages with their content items")
            .answers::<wire::ThreadMessages>(),
        at(Post, "/threads/{thread_id}/message", threads::send)
            .doc("Send a message; the bot's answer as SSE")
            .body::<wire::SendMessage>()
            .streams_of::<wire::ErdoEvent>(),
        at(Get, "/datasets", datasets::list).doc("Datasets the caller may read").answers::<wire::DatasetList>(),
        at(Post, "/datasets", datasets::create)
            .doc("Upload a dataset: JSON `{slug, content|data}` or multipart `slug` + `file`")
            .body::<datasets::JsonUpload>()
            .answers::<wire::Dataset>()
            .status(201),
        at(Get, "/datasets/{slug}", datasets::get).doc("A dataset's columns and row count").answers::<wire::Dataset>(),
        at(Post, "/datasets/{slug}/query", datasets::query)
            .doc("Read-only SQL or `filters` over the dataset")
            .body::<datasets::QueryBody>()
            .answers::<wire::DatasetQueryResult>(),
        at(Post, "/datasets/{dataset_id}/download", datasets::download)
            .doc("The dataset (or a query of it) as CSV")
            .body::<datasets::DownloadBody>(),
    ]
}
