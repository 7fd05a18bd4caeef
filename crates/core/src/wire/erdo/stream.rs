//! What an Erdo event stream carries (`POST /bots/{bot_key}/invoke[-from-thread]`,
//! `POST /threads/{thread_id}/message`): one [`ErdoEvent`] per `data:` line, the final `result`
//! carrying a [`BotResult`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One event of an Erdo stream: `{type, payload, metadata, invocation_id}` on one `data:` line
/// (`invocation_completed` has `{type, invocation_id, result}` instead). Invoke streams:
/// `bot started`, `step started`, `create message content`, `message content delta`,
/// `message content result`, `step result`, `status`, `error`, the final `result`, and
/// `invocation_completed`. Thread streams: `message created`, `step_started`, the content events,
/// `step_finished`, `message finished`, and the final `result`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErdoEvent {
    /// The event type (`type` on the wire; a reader takes the SSE `event:` name when it is
    /// missing).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// An object, or a plain string for content deltas; `None` when absent (or null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// `invocation_id`, `message_id`, `user_visibility`, `content_type`, `message_content_id`,
    /// a thread stream's `path`, …; `None` when absent (or null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// The invocation (turn) it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    /// Other top-level fields (`result` on `invocation_completed`).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

impl ErdoEvent {
    /// A field of the payload (an object).
    pub fn payload_field(&self, name: &str) -> Option<&Value> {
        self.payload.as_ref()?.get(name)
    }

    /// A field of the metadata.
    pub fn metadata_field(&self, name: &str) -> Option<&Value> {
        self.metadata.as_ref()?.get(name)
    }

    /// The text of a `message content delta` of text content, if this is one.
    pub fn text_delta(&self) -> Option<&str> {
        if self.kind != "message content delta" {
            return None;
        }
        match self.metadata_field("content_type").and_then(Value::as_str) {
            None | Some("text") => self.payload.as_ref()?.as_str(),
            Some(_) => None,
        }
    }

    /// True when the payload is a bot result (an object with both `status` and `output`): the
    /// last such event of an invocation is its final result.
    pub fn is_result(&self) -> bool {
        self.payload_field("status").is_some() && self.payload_field("output").is_some()
    }

    /// The payload as a [`BotResult`], when [`is_result`](Self::is_result).
    pub fn result(&self) -> Option<BotResult> {
        BotResult::from_payload(self.payload.as_ref()?)
    }

    /// `metadata.user_visibility`, `visible` when absent.
    pub fn user_visibility(&self) -> &str {
        self.metadata_field("user_visibility").and_then(Value::as_str).unwrap_or("visible")
    }

    /// The invocation id: top level, else `payload.invocation_id`, else `metadata.invocation_id`.
    pub fn any_invocation_id(&self) -> Option<&str> {
        self.invocation_id
            .as_deref()
            .or_else(|| self.payload_field("invocation_id").and_then(Value::as_str))
            .or_else(|| self.metadata_field("invocation_id").and_then(Value::as_str))
    }
}

/// A bot's result (the Go `Result` of Erdo): the payload of the final `result` event, and the
/// `result` of `invocation_completed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BotResult {
    /// `success` or `error` (Erdo also knows `skipped`, `break`, `requires info`, `go to step`).
    pub status: String,
    /// Parameters the bot produced (`{}` when none).
    #[serde(default)]
    pub parameters: Value,
    /// `{content: [content item…]}`; see [`texts`](Self::texts).
    #[serde(default)]
    pub output: Value,
    /// The bot's message: the whole answer.
    #[serde(default)]
    pub message: Option<String>,
    /// What went wrong, when `status` is `error`.
    #[serde(default)]
    pub error: Option<String>,
}

impl BotResult {
    /// Reads a payload with both `status` and `output`; a non-string `message` or `error` is kept
    /// as its JSON text.
    pub fn from_payload(payload: &Value) -> Option<BotResult> {
        let status = payload.get("status")?;
        let output = payload.get("output")?.clone();
        let text = |name: &str| match payload.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => Some(other.to_string()),
        };
        Some(BotResult {
            status: status.as_str().map(str::to_owned).unwrap_or_else(|| status.to_string()),
            parameters: payload.get("parameters").cloned().unwrap_or(Value::Null),
            output,
            message: text("message"),
            error: text("error"),
        })
    }

    /// True when `status` is `success`.
    pub fn is_success(&self) -> bool {
        self.status == "success"
    }

    /// The content items of `output.content` (empty when there are none).
    pub fn content(&self) -> &[Value] {
        self.output.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The text of every `text` content item, in order.
    pub fn texts(&self) -> Vec<&str> {
        self.content()
            .iter()
            .filter(|item| item.get("content_type").and_then(Value::as_str).unwrap_or("text") == "text")
            .filter_map(|item| item.get("content").and_then(Value::as_str))
            .collect()
    }
}
