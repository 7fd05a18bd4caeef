//! The Erdo surface: invoke results, scoped tokens, threads and their messages, datasets.
//!
//! Erdo's wire has its own casing (`erdo-wire.md` §7): where the official clients may read either
//! spelling, the server sends both. Each such value is one Rust field in its main spelling (the
//! one Erdo's TypeScript types use, where known), plus a `…_snake` or `…_camel` twin holding the
//! same value in the other spelling; the constructors fill both from one value. Requests are read
//! in either casing (aliases) and written in the main one.

mod stream;

pub use stream::{BotResult, ErdoEvent};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::content::ContentItem;
use crate::thread::{Message, MessageRole, Thread};
use crate::time::Timestamp;

/// A thread as `POST /threads`, `GET /threads` and `GET /threads/{thread_id}` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErdoThread {
    /// `thr_…`
    pub id: String,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// The bot answering by default, `<org>.<bot>`.
    #[serde(rename = "botKey")]
    pub bot_key: String,
    /// Creation time.
    #[serde(rename = "createdAt")]
    pub created_at: Timestamp,
    /// Time of the last change (a new message).
    #[serde(rename = "updatedAt")]
    pub updated_at: Timestamp,
    /// `createdAt` again.
    #[serde(rename = "created_at")]
    pub created_at_snake: Timestamp,
    /// `updatedAt` again.
    #[serde(rename = "updated_at")]
    pub updated_at_snake: Timestamp,
}

impl ErdoThread {
    /// The view of a stored thread.
    pub fn of(thread: &Thread) -> Self {
        ErdoThread {
            id: thread.id.clone(),
            name: thread.title.clone(),
            bot_key: format!("{}.{}", thread.scope.organization_id, thread.agent_id),
            created_at: thread.created_at,
            updated_at: thread.updated_at,
            created_at_snake: thread.created_at,
            updated_at_snake: thread.updated_at,
        }
    }
}

/// `GET /threads`: the caller's threads, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErdoThreadList {
    /// The page of threads.
    pub threads: Vec<ErdoThread>,
    /// How many the caller has in all.
    pub total: i64,
}

/// A message of a thread's history (`ThreadMessage`), with its content items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ThreadMessage {
    /// `msg_…`
    pub id: String,
    /// Its thread.
    pub thread_id: String,
    /// `thread_id` again.
    #[serde(rename = "threadId")]
    pub thread_id_camel: String,
    /// Who wrote it.
    pub role: MessageRole,
    /// When it was stored.
    pub created_at: Timestamp,
    /// The same time: a stored message does not change.
    pub updated_at: Timestamp,
    /// `created_at` again.
    #[serde(rename = "createdAt")]
    pub created_at_camel: Timestamp,
    /// `updated_at` again.
    #[serde(rename = "updatedAt")]
    pub updated_at_camel: Timestamp,
    /// The content items, in order.
    pub contents: Vec<MessageContent>,
}

impl ThreadMessage {
    /// The view of a stored message with its content items; a message stored without items
    /// shows its text as one.
    pub fn of(message: &Message, items: Option<Vec<ContentItem>>) -> Self {
        let items = items.unwrap_or_else(|| vec![ContentItem::text(message, "")]);
        ThreadMessage {
            id: message.id.clone(),
            thread_id: message.thread_id.clone(),
            thread_id_camel: message.thread_id.clone(),
            role: message.role,
            created_at: message.created_at,
            updated_at: message.created_at,
            created_at_camel: message.created_at,
            updated_at_camel: message.created_at,
            contents: items.iter().map(MessageContent::of).collect(),
        }
    }

    /// The text of its visible `text` items, joined by a blank line.
    pub fn text(&self) -> String {
        self.contents
            .iter()
            .filter(|c| c.content_type == "text" && c.user_visibility != "hidden")
            .filter_map(MessageContent::text)
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

/// `GET /threads/{thread_id}/messages`: the thread's messages, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ThreadMessages {
    /// The messages.
    pub messages: Vec<ThreadMessage>,
}

/// A content item of a stored message (`ThreadMessageContent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageContent {
    /// `<message id>_c<n>`: the id the stream's `message_content_id` used.
    pub id: String,
    /// Its message.
    pub message_id: String,
    /// `text`, `json`, `code`, `table`, `chart`, `image`, `error`.
    pub content_type: String,
    /// How a UI renders it (`markdown`, `table`, `bar`, …).
    pub ui_content_type: Option<String>,
    /// Erdo's content type for the bot's history; always null here.
    pub history_content_type: Option<String>,
    /// A string for text, structured JSON for the others.
    pub content: Value,
    /// `visible` or `hidden`.
    pub user_visibility: String,
    /// Always `visible`.
    pub bot_visibility: String,
    /// When it was stored.
    pub created_at: Timestamp,
    /// `created_at` again.
    #[serde(rename = "createdAt")]
    pub created_at_camel: Timestamp,
    /// The invocation (turn) that produced it, empty for none; UIs fetch chart and table data
    /// by it.
    pub created_by_invocation_id: String,
}

impl MessageContent {
    /// The view of a stored content item.
    pub fn of(item: &ContentItem) -> Self {
        MessageContent {
            id: item.id.clone(),
            message_id: item.message_id.clone(),
            content_type: item.content_type.clone(),
            ui_content_type: item.ui_content_type.clone(),
            history_content_type: None,
            content: item.content.clone(),
            user_visibility: item.user_visibility.clone(),
            bot_visibility: "visible".into(),
            created_at: item.created_at,
            created_at_camel: item.created_at,
            created_by_invocation_id: item.created_by_invocation_id.clone(),
        }
    }

    /// The content when it is a string.
    pub fn text(&self) -> Option<&str> {
        self.content.as_str()
    }
}

/// Body of `POST /threads`: a thread answered by `botKey`, or the organization's default bot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ErdoCreateThread)]
pub struct CreateThread {
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Datasets (ids or slugs) to attach to it.
    #[serde(default, alias = "dataset_ids", skip_serializing_if = "Vec::is_empty")]
    pub dataset_ids: Vec<String>,
    /// The bot answering in it.
    #[serde(default, alias = "bot_key", skip_serializing_if = "Option::is_none")]
    pub bot_key: Option<String>,
}

/// Body of `POST /threads/{thread_id}/message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ErdoSendMessage)]
pub struct SendMessage {
    /// The user's message.
    pub content: String,
    /// The bot answering (a scoped token must grant it); default: the thread's bot.
    #[serde(default, alias = "bot_key", skip_serializing_if = "Option::is_none")]
    pub bot_key: Option<String>,
}

/// Body of `POST /tokens`. Requests may use snake_case too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CreateToken)]
pub struct TokenParams {
    /// Bot keys it may invoke (`analyst`, qualified with the caller's org, or `my-org.analyst`);
    /// none or empty: every bot of the org.
    #[serde(default, alias = "bot_keys", skip_serializing_if = "Option::is_none")]
    pub bot_keys: Option<Vec<String>>,
    /// Dataset ids it may use.
    #[serde(default, alias = "dataset_ids", skip_serializing_if = "Option::is_none")]
    pub dataset_ids: Option<Vec<String>>,
    /// Pre-existing threads it may use besides its user's own.
    #[serde(default, alias = "thread_ids", skip_serializing_if = "Option::is_none")]
    pub thread_ids: Option<Vec<String>>,
    /// The creator's own user id: every token with the same one acts as the same user and sees
    /// the same threads; without one each token is a fresh, isolated user.
    #[serde(default, alias = "external_user_id", skip_serializing_if = "Option::is_none")]
    pub external_user_id: Option<String>,
    /// Lifetime in seconds, 1..=86400 (default 3600).
    #[serde(default, alias = "expires_in_seconds", skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<i64>,
}

/// `POST /tokens`: a minted scoped token. Its `Debug` output hides the secret.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScopedToken {
    /// `stk_…`: the token's id, to revoke it.
    #[serde(rename = "tokenId")]
    pub token_id: String,
    /// `tokenId` again.
    #[serde(rename = "token_id")]
    pub token_id_snake: String,
    /// The secret, shown once and never stored: a bearer credential for a browser or an end
    /// user's process.
    pub token: String,
    /// When it stops working.
    #[serde(rename = "expiresAt")]
    pub expires_at: Timestamp,
    /// `expiresAt` again.
    #[serde(rename = "expires_at")]
    pub expires_at_snake: Timestamp,
}

impl ScopedToken {
    /// The answer for a token just minted.
    pub fn new(token_id: &str, token: String, expires_at: Timestamp) -> Self {
        ScopedToken {
            token_id: token_id.to_owned(),
            token_id_snake: token_id.to_owned(),
            token,
            expires_at,
            expires_at_snake: expires_at,
        }
    }
}

impl std::fmt::Debug for ScopedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedToken")
            .field("token_id", &self.token_id)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// `DELETE /tokens/{token_id}`: the token no longer works.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevokedToken {
    /// Always true.
    pub revoked: bool,
    /// The revoked token.
    #[serde(rename = "tokenId")]
    pub token_id: String,
    /// `tokenId` again.
    #[serde(rename = "token_id")]
    pub token_id_snake: String,
}

impl RevokedToken {
    /// The answer for a revoked token.
    pub fn new(token_id: &str) -> Self {
        RevokedToken { revoked: true, token_id: token_id.to_owned(), token_id_snake: token_id.to_owned() }
    }
}

/// A dataset as `POST /datasets`, `GET /datasets` and `GET /datasets/{slug}` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dataset {
    /// `dst_…`
    pub id: String,
    /// Unique in the organization; how clients and bots name it.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The thread it was uploaded into, if any.
    pub thread_id: Option<String>,
    /// `thread_id` again.
    #[serde(rename = "threadId")]
    pub thread_id_camel: Option<String>,
    /// The columns, in upload order: `[{name, value_type}]`.
    pub columns: Value,
    /// How many rows it has.
    pub row_count: i64,
    /// `row_count` again.
    #[serde(rename = "rowCount")]
    pub row_count_camel: i64,
    /// Upload time.
    pub created_at: Timestamp,
    /// `created_at` again.
    #[serde(rename = "createdAt")]
    pub created_at_camel: Timestamp,
}

/// `GET /datasets`: the datasets the caller may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DatasetList {
    /// The datasets.
    pub datasets: Vec<Dataset>,
}

/// `POST /datasets/{slug}/query`: the rows a query selected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DatasetQueryResult {
    /// The result's column names.
    pub columns: Vec<String>,
    /// How many rows `rows` holds.
    pub row_count: usize,
    /// Whether the query had more rows than the limit.
    pub truncated: bool,
    /// The rows, each a value per column: numbers, strings, booleans or null.
    pub rows: Vec<Vec<Value>>,
}

/// One message of an invocation's history (`{role, content}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = InvokeMessage)]
pub struct ChatMessage {
    /// `user`, `assistant` or `system`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage { role: "user".into(), content: content.into() }
    }

    /// An `assistant` message (earlier history).
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage { role: "assistant".into(), content: content.into() }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage { role: "system".into(), content: content.into() }
    }
}

/// Body of `POST /bots/{bot_key}/invoke` as the `erdo` SDK sends it: the fields that are set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvokeBody {
    /// The conversation: its last `user` message is the turn, earlier ones are history.
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
    /// Free-form bot parameters.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub parameters: Value,
    /// Slugs of datasets the bot may read (`my-dataset` or `my-org.my-dataset`).
    #[serde(default, alias = "datasets", skip_serializing_if = "Vec::is_empty")]
    pub dataset_slugs: Vec<String>,
    /// `live` (default), `replay`, `manual`, or `{"mode": "replay", "refresh": true}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Value>,
    /// For `manual`: a mock result per executed action (`llm.message` → `{status, output}`).
    #[serde(default, alias = "manualMocks", skip_serializing_if = "Option::is_none")]
    pub manual_mocks: Option<Value>,
}

/// Body of `POST /bots/{bot_key}/invoke-from-thread` as the `erdo` SDK sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = InvokeFromThreadBody)]
pub struct InvokeFromThread {
    /// The thread the bot answers in.
    pub thread_id: String,
    /// The user's message.
    pub message: String,
    /// What the `erdo` SDK always sends (`{}`); not used.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub parameters: Value,
    /// Only `live` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Value>,
}

#[cfg(test)]
mod tests;
