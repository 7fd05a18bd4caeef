//! The types of the Erdo surface ([`Erdo`](crate::Erdo)), in the shapes of `@erdoai/server`'s
//! `ErdoClient` (`erdo-wire.md` §1–§3).
//!
//! Responses are read leniently: ids and times are taken in camelCase or snake_case (the server
//! sends both), and fields this SDK does not model are kept in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One message of an invocation's history (`{role, content}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// What [`Erdo::invoke`](crate::Erdo::invoke) and [`Erdo::invoke_stream`](crate::Erdo::invoke_stream)
/// send: the conversation (its last `user` message is the turn, earlier ones are history), free-form
/// bot parameters, dataset slugs and the invocation mode. Empty fields are left out of the
/// request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvokeParams {
    /// The messages; at least one must have the role `user`.
    pub messages: Vec<ChatMessage>,
    /// Bot parameters (`parameters` on the wire).
    pub parameters: Map<String, Value>,
    /// Dataset slugs to include (`dataset_slugs` on the wire).
    pub datasets: Vec<String>,
    /// How to run it; `None` is live.
    pub mode: Option<InvokeMode>,
}

/// How an invocation runs (`mode`, and `manual_mocks` for [`Manual`](Self::Manual)).
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeMode {
    /// Run the bot (the default).
    Live,
    /// Serve the recorded events of an identical earlier request to the same bot version,
    /// recording them on a miss; `refresh` runs the bot again and re-records.
    Replay {
        /// Re-record instead of serving the recording.
        refresh: bool,
    },
    /// Run nothing: answer from these mocks, one per executed action (e.g. `llm.message` →
    /// `{status, output: {content}}`).
    Manual(Map<String, Value>),
}

impl InvokeParams {
    /// One user message and nothing else.
    pub fn user(content: impl Into<String>) -> Self {
        InvokeParams { messages: vec![ChatMessage::user(content)], ..Default::default() }
    }

    /// The request body, with only the fields that are set (as the official clients send it).
    pub(crate) fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("messages".into(), serde_json::to_value(&self.messages).unwrap_or_default());
        if !self.parameters.is_empty() {
            body.insert("parameters".into(), Value::Object(self.parameters.clone()));
        }
        if !self.datasets.is_empty() {
            body.insert("dataset_slugs".into(), Value::from(self.datasets.clone()));
        }
        match &self.mode {
            None => {}
            Some(InvokeMode::Live) => {
                body.insert("mode".into(), Value::from("live"));
            }
            Some(InvokeMode::Replay { refresh: false }) => {
                body.insert("mode".into(), Value::from("replay"));
            }
            Some(InvokeMode::Replay { refresh: true }) => {
                body.insert("mode".into(), serde_json::json!({ "mode": "replay", "refresh": true }));
            }
            Some(InvokeMode::Manual(mocks)) => {
                body.insert("mode".into(), Value::from("manual"));
                body.insert("manual_mocks".into(), Value::Object(mocks.clone()));
            }
        }
        Value::Object(body)
    }
}

/// One event of an Erdo stream: `{type, payload, metadata, invocation_id}` as the server sent it
/// on one `data:` line (the `type` falls back to the block's `event:` name when the JSON has
/// none). Invoke streams: `bot started`, `step started`, `create message content`,
/// `message content delta`, `message content result`, `step result`, `status`, `error`, the final
/// `result`, and `invocation_completed`. Thread streams: `message created`, `step_started`, the
/// content events, `step_finished`, `message finished`, and the final `result`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ErdoEvent {
    /// The event type (`type` on the wire).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// An object, or a plain string for content deltas; `null` when absent.
    #[serde(default)]
    pub payload: Value,
    /// `invocation_id`, `user_visibility`, `content_type`, `message_content_id`, thread `path`, …;
    /// `null` when absent.
    #[serde(default)]
    pub metadata: Value,
    /// The invocation (turn) it belongs to, when the event names it at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invocation_id: Option<String>,
    /// Other top-level fields (e.g. `result` on `invocation_completed`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ErdoEvent {
    /// The text of a `message content delta` of text content, if this is one.
    pub fn text_delta(&self) -> Option<&str> {
        if self.kind != "message content delta" {
            return None;
        }
        match self.metadata.get("content_type").and_then(Value::as_str) {
            None | Some("text") => self.payload.as_str(),
            Some(_) => None,
        }
    }

    /// True when the payload is a bot result (an object with both `status` and `output`): the
    /// last such event of an invocation is its final result.
    pub fn is_result(&self) -> bool {
        self.payload.get("status").is_some() && self.payload.get("output").is_some()
    }

    /// The payload as a [`BotResult`], when [`is_result`](Self::is_result).
    pub fn result(&self) -> Option<BotResult> {
        BotResult::from_payload(&self.payload)
    }

    /// `metadata.user_visibility`, `visible` when absent.
    pub fn user_visibility(&self) -> &str {
        self.metadata.get("user_visibility").and_then(Value::as_str).unwrap_or("visible")
    }

    /// The invocation id: top level, else `payload.invocation_id`, else `metadata.invocation_id`.
    pub fn any_invocation_id(&self) -> Option<&str> {
        self.invocation_id
            .as_deref()
            .or_else(|| self.payload.get("invocation_id").and_then(Value::as_str))
            .or_else(|| self.metadata.get("invocation_id").and_then(Value::as_str))
    }
}

/// A bot's result (the Go `Result` of Erdo): the payload of the final `result` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BotResult {
    /// `success`, `error`, `skipped`, `break`, `requires info`, `go to step`.
    pub status: String,
    /// Parameters the bot produced (`{}` when none).
    #[serde(default)]
    pub parameters: Value,
    /// `{content: [ContentItem…]}`; see [`texts`](Self::texts).
    #[serde(default)]
    pub output: Value,
    /// The bot's message (Agentry: the whole answer).
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

/// A step of an invocation (from `step started` payloads, deduplicated by key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepInfo {
    /// The step's key.
    pub key: String,
    /// Its action type (`llm.message`, `tool.<name>`, …).
    pub action: String,
    /// `completed` for every step of a finished stream, as the official clients report it.
    pub status: String,
}

/// What [`Erdo::invoke`](crate::Erdo::invoke) collects from a whole invocation stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InvokeResult {
    /// A final result arrived and its status is `success`. (The Python SDK reports `true` for any
    /// stream that was read; here HTTP and network failures are `Err`s, so this flag is about the
    /// bot's outcome.)
    pub success: bool,
    /// The bot's id, from `bot started`.
    pub bot_id: Option<String>,
    /// The invocation id: the first one an event names.
    pub invocation_id: Option<String>,
    /// The final result: the last event whose payload has both `status` and `output`.
    pub result: Option<BotResult>,
    /// The final result's `text` content items, as messages (`role` from the result event's
    /// `metadata.role`, else `assistant`).
    pub messages: Vec<ChatMessage>,
    /// Every event, in order.
    pub events: Vec<ErdoEvent>,
    /// The steps that ran.
    pub steps: Vec<StepInfo>,
    /// Why it did not succeed: the result's `error`, else the last `error` event's text, else a
    /// note that no result arrived. `None` on success.
    pub error: Option<String>,
}

impl InvokeResult {
    /// Builds the result from an invocation's events, the way the official clients read them.
    pub fn from_events(events: Vec<ErdoEvent>) -> Self {
        let mut out = InvokeResult::default();
        let mut last_error = None;
        let mut result_event = None;
        for (i, event) in events.iter().enumerate() {
            if out.invocation_id.is_none() {
                out.invocation_id = event.any_invocation_id().map(str::to_owned);
            }
            if event.kind == "bot started" && out.bot_id.is_none() {
                out.bot_id = event.payload.get("bot_id").and_then(Value::as_str).map(str::to_owned);
            }
            if let (Some(key), Some(action)) = (
                event.payload.get("key").and_then(Value::as_str),
                event.payload.get("action_type").and_then(Value::as_str),
            ) && !out.steps.iter().any(|s| s.key == key)
            {
                out.steps.push(StepInfo { key: key.into(), action: action.into(), status: "completed".into() });
            }
            if event.kind == "error" {
                last_error = Some(match &event.payload {
                    Value::String(text) => text.clone(),
                    other => {
                        other.get("message").and_then(Value::as_str).map_or_else(|| other.to_string(), str::to_owned)
                    }
                });
            }
            if event.is_result() {
                result_event = Some(i);
            }
        }
        if let Some(i) = result_event {
            let event = &events[i];
            let result = event.result();
            let role = event.metadata.get("role").and_then(Value::as_str).unwrap_or("assistant");
            if let Some(result) = &result {
                out.messages =
                    result.texts().into_iter().map(|t| ChatMessage { role: role.into(), content: t.into() }).collect();
            }
            out.result = result;
        }
        out.success = out.result.as_ref().is_some_and(BotResult::is_success);
        if !out.success {
            out.error = out.result.as_ref().and_then(|r| r.error.clone()).or(last_error).or_else(|| {
                Some(match &out.result {
                    Some(result) => format!("the bot finished with status `{}`", result.status),
                    None => "the stream ended without a result".to_owned(),
                })
            });
        }
        out.events = events;
        out
    }

    /// The answer: the messages' texts joined by a blank line.
    pub fn text(&self) -> String {
        self.messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>().join("\n\n")
    }
}

/// What [`Erdo::create_token`](crate::Erdo::create_token) mints. Empty lists are left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenParams {
    /// Bot keys it may invoke (`analyst` or `my-org.analyst`); empty: every bot of the org.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bot_keys: Vec<String>,
    /// Dataset ids it may use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dataset_ids: Vec<String>,
    /// Pre-existing threads it may use besides its user's own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thread_ids: Vec<String>,
    /// Your own user id: every token minted with the same one acts as the same user and sees the
    /// same threads; without one each token is a fresh, isolated user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_user_id: Option<String>,
    /// Lifetime (server default 3600, at most 86400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in_seconds: Option<u64>,
}

/// A minted scoped token. Its `Debug` output hides the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>", rename_all = "camelCase")]
pub struct ScopedToken {
    /// The token's id, to [revoke](crate::Erdo::revoke_token) it.
    pub token_id: String,
    /// The secret, shown once: give it to the browser or build a client with
    /// [`erdo_token`](crate::ClientBuilder::erdo_token).
    pub token: String,
    /// ISO-8601 expiry.
    pub expires_at: String,
}

impl std::fmt::Debug for ScopedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopedToken")
            .field("token_id", &self.token_id)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl TryFrom<Map<String, Value>> for ScopedToken {
    type Error = String;

    fn try_from(map: Map<String, Value>) -> Result<Self, String> {
        let mut fields = Fields(map);
        Ok(ScopedToken {
            token_id: fields.required(&["tokenId", "token_id"])?,
            token: fields.required(&["token"])?,
            expires_at: fields.string(&["expiresAt", "expires_at"]).unwrap_or_default(),
        })
    }
}

/// An Erdo thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>", rename_all = "camelCase")]
pub struct ErdoThread {
    /// The thread id.
    pub id: String,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// The bot answering by default (`<org>.<bot>`).
    pub bot_key: Option<String>,
    /// ISO-8601 creation time.
    pub created_at: String,
    /// ISO-8601 time of the last change.
    pub updated_at: String,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl TryFrom<Map<String, Value>> for ErdoThread {
    type Error = String;

    fn try_from(map: Map<String, Value>) -> Result<Self, String> {
        let mut fields = Fields(map);
        Ok(ErdoThread {
            id: fields.required(&["id"])?,
            name: fields.string(&["name"]),
            bot_key: fields.string(&["botKey", "bot_key"]),
            created_at: fields.string(&["createdAt", "created_at"]).unwrap_or_default(),
            updated_at: fields.string(&["updatedAt", "updated_at"]).unwrap_or_default(),
            extra: fields.0,
        })
    }
}

/// A message of a thread's history, with its typed content items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>", rename_all = "camelCase")]
pub struct ThreadMessage {
    /// The message id.
    pub id: String,
    /// `user` or `assistant` (also `system`, `tool`).
    pub role: String,
    /// ISO-8601 creation time.
    pub created_at: String,
    /// The content items, in order.
    pub contents: Vec<MessageContent>,
    /// Other fields (`thread_id`, `updated_at`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ThreadMessage {
    /// The text of its visible `text` items, joined by a blank line.
    pub fn text(&self) -> String {
        self.contents
            .iter()
            .filter(|c| c.content_type == "text" && c.user_visibility.as_deref() != Some("hidden"))
            .filter_map(MessageContent::text)
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

impl TryFrom<Map<String, Value>> for ThreadMessage {
    type Error = String;

    fn try_from(map: Map<String, Value>) -> Result<Self, String> {
        let mut fields = Fields(map);
        let contents = match fields.take(&["contents"]) {
            None => Vec::new(),
            Some(items) => serde_json::from_value(items).map_err(|e| format!("contents: {e}"))?,
        };
        Ok(ThreadMessage {
            id: fields.required(&["id"])?,
            role: fields.required(&["role"])?,
            created_at: fields.string(&["createdAt", "created_at"]).unwrap_or_default(),
            contents,
            extra: fields.0,
        })
    }
}

/// A content item of a stored message (`ThreadMessageContent`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct MessageContent {
    /// The item id (the same id the stream's `message_content_id` used).
    pub id: String,
    /// `text`, `json`, `code`, `table`, `chart`, `image`, `error`.
    pub content_type: String,
    /// How a UI renders it (`markdown`, `table`, `bar_chart`, …).
    pub ui_content_type: Option<String>,
    /// A string for text, structured JSON for the others.
    pub content: Value,
    /// `visible` or `hidden`.
    pub user_visibility: Option<String>,
    /// The invocation that produced it (UIs fetch chart and table data by it).
    pub created_by_invocation_id: Option<String>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessageContent {
    /// The content when it is a string.
    pub fn text(&self) -> Option<&str> {
        self.content.as_str()
    }
}

impl TryFrom<Map<String, Value>> for MessageContent {
    type Error = String;

    fn try_from(map: Map<String, Value>) -> Result<Self, String> {
        let mut fields = Fields(map);
        // `ui_content_type` may be a Go NullString `{String, Valid}`.
        let ui_content_type = match fields.take(&["ui_content_type", "uiContentType"]) {
            Some(Value::String(text)) => Some(text),
            Some(Value::Object(null_string)) if null_string.get("Valid") == Some(&Value::Bool(true)) => {
                null_string.get("String").and_then(Value::as_str).map(str::to_owned)
            }
            _ => None,
        };
        Ok(MessageContent {
            id: fields.string(&["id"]).unwrap_or_default(),
            content_type: fields.string(&["content_type", "contentType"]).unwrap_or_else(|| "text".into()),
            ui_content_type,
            content: fields.take(&["content"]).unwrap_or(Value::Null),
            user_visibility: fields.string(&["user_visibility", "userVisibility"]),
            created_by_invocation_id: fields.string(&["created_by_invocation_id", "createdByInvocationId"]),
            extra: fields.0,
        })
    }
}

/// A JSON object read field by field; what is left over becomes `extra`.
struct Fields(Map<String, Value>);

impl Fields {
    /// Removes every spelling; returns the first non-null value.
    fn take(&mut self, names: &[&str]) -> Option<Value> {
        let mut found = None;
        for name in names {
            if let Some(value) = self.0.remove(*name)
                && found.is_none()
                && !value.is_null()
            {
                found = Some(value);
            }
        }
        found
    }

    fn string(&mut self, names: &[&str]) -> Option<String> {
        match self.take(names)? {
            Value::String(text) => Some(text),
            other => Some(other.to_string()),
        }
    }

    fn required(&mut self, names: &[&str]) -> Result<String, String> {
        self.string(names).ok_or_else(|| format!("missing field `{}`", names[0]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(value: Value) -> ErdoEvent {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn invoke_results_are_collected_like_the_official_clients() {
        let result = json!({"status": "success", "parameters": {}, "message": "hi there",
            "output": {"content": [{"id": "c0", "content_type": "text", "content": "hi there"},
                                    {"content_type": "json", "content": {"a": 1}}]}, "error": null});
        let events = vec![
            event(json!({"type": "bot started", "invocation_id": "trn_1",
                "payload": {"invocation_id": "trn_1", "bot_id": "echo", "bot_name": "Echo"}, "metadata": {}})),
            event(json!({"type": "step started", "payload": {"key": "llm", "action_type": "llm.message"}})),
            event(json!({"type": "message content delta", "payload": "hi",
                "metadata": {"content_type": "text", "user_visibility": "visible"}})),
            event(
                json!({"type": "step result", "payload": {"status": "success", "output": {"content": []}, "key": "llm"},
                "metadata": {"user_visibility": "hidden"}}),
            ),
            event(json!({"type": "result", "payload": result, "metadata": {"role": "assistant"}})),
            event(json!({"type": "invocation_completed", "invocation_id": "trn_1", "result": result})),
        ];
        assert_eq!(events[2].text_delta(), Some("hi"));
        assert_eq!(events[5].extra["result"]["status"], "success");
        let collected = InvokeResult::from_events(events);
        assert!(collected.success);
        assert_eq!(collected.error, None);
        assert_eq!(collected.invocation_id.as_deref(), Some("trn_1"));
        assert_eq!(collected.bot_id.as_deref(), Some("echo"));
        assert_eq!(collected.messages, vec![ChatMessage::assistant("hi there")]);
        assert_eq!(collected.result.as_ref().unwrap().message.as_deref(), Some("hi there"));
        assert_eq!(collected.steps.len(), 1);
        assert_eq!(collected.events.len(), 6);

        let failed = InvokeResult::from_events(vec![
            event(json!({"type": "error", "payload": "provider down"})),
            event(json!({"type": "result", "payload": {"status": "error", "output": {"content": []}, "error": null}})),
        ]);
        assert!(!failed.success);
        assert_eq!(failed.error.as_deref(), Some("provider down"));
        let empty = InvokeResult::from_events(Vec::new());
        assert_eq!(empty.error.as_deref(), Some("the stream ended without a result"));
    }

    #[test]
    fn responses_are_read_in_either_casing() {
        let token: ScopedToken = serde_json::from_value(
            json!({"token_id": "stk_1", "token": "erdo_st_x", "expires_at": "2026-01-01T00:00:00Z"}),
        )
        .unwrap();
        assert_eq!((token.token_id.as_str(), token.expires_at.as_str()), ("stk_1", "2026-01-01T00:00:00Z"));
        assert!(!format!("{token:?}").contains("erdo_st_x"));

        let thread: ErdoThread = serde_json::from_value(json!({"id": "thr_1", "name": null, "botKey": "default.echo",
            "createdAt": "a", "created_at": "a", "updatedAt": "b", "updated_at": "b", "other": 1}))
        .unwrap();
        assert_eq!(
            (thread.name, thread.bot_key.as_deref(), thread.updated_at.as_str()),
            (None, Some("default.echo"), "b")
        );
        assert_eq!(thread.extra, json!({"other": 1}).as_object().unwrap().clone());

        let message: ThreadMessage = serde_json::from_value(json!({"id": "m", "role": "assistant", "created_at": "t",
            "contents": [{"id": "m_c0", "content_type": "text", "content": "hello", "user_visibility": "visible",
                          "ui_content_type": {"String": "markdown", "Valid": true}, "created_by_invocation_id": "trn"},
                         {"id": "m_c1", "content_type": "text", "content": "secret", "user_visibility": "hidden"}]}))
        .unwrap();
        assert_eq!(message.text(), "hello");
        assert_eq!(message.contents[0].ui_content_type.as_deref(), Some("markdown"));
        assert!(serde_json::from_value::<ThreadMessage>(json!({"role": "user"})).is_err());
    }

    #[test]
    fn request_bodies_leave_out_what_is_not_set() {
        assert_eq!(InvokeParams::user("hi").body(), json!({"messages": [{"role": "user", "content": "hi"}]}));
        let mut params = InvokeParams { datasets: vec!["sales".into()], ..InvokeParams::user("hi") };
        params.parameters.insert("k".into(), json!(1));
        assert_eq!(params.body()["dataset_slugs"], json!(["sales"]));
        assert_eq!(params.body()["parameters"], json!({"k": 1}));
        params.mode = Some(InvokeMode::Replay { refresh: true });
        assert_eq!(params.body()["mode"], json!({"mode": "replay", "refresh": true}));
        params.mode = Some(InvokeMode::Manual(json!({"llm.message": {}}).as_object().unwrap().clone()));
        assert_eq!(
            (params.body()["mode"].clone(), params.body()["manual_mocks"].clone()),
            (json!("manual"), json!({"llm.message": {}}))
        );
        let token = TokenParams { bot_keys: vec!["echo".into()], expires_in_seconds: Some(60), ..Default::default() };
        assert_eq!(serde_json::to_value(&token).unwrap(), json!({"botKeys": ["echo"], "expiresInSeconds": 60}));
    }
}
