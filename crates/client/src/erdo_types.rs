//! The types of the Erdo surface ([`Erdo`](crate::Erdo)), in the shapes of `@erdoai/server`'s
//! `ErdoClient` (`erdo-wire.md` §1–§3).
//!
//! What the server answers and accepts is `agentry_core::wire::erdo`, re-exported here (one
//! definition for the server, this SDK and `/openapi.json`); what stays here is this SDK's own:
//! the invocation builder ([`InvokeParams`], [`InvokeMode`]) and what [`Erdo::invoke`](crate::Erdo::invoke)
//! collects from a stream ([`InvokeResult`], [`StepInfo`]).

use agentry_core::wire::erdo::InvokeBody;
pub use agentry_core::wire::erdo::{
    BotResult, ChatMessage, ErdoEvent, ErdoThread, MessageContent, ScopedToken, ThreadMessage, TokenParams,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

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
    pub(crate) fn body(&self) -> InvokeBody {
        let parameters = if self.parameters.is_empty() { Value::Null } else { Value::Object(self.parameters.clone()) };
        let (mode, manual_mocks) = match &self.mode {
            None => (None, None),
            Some(InvokeMode::Live) => (Some(Value::from("live")), None),
            Some(InvokeMode::Replay { refresh: false }) => (Some(Value::from("replay")), None),
            Some(InvokeMode::Replay { refresh: true }) => (Some(json!({ "mode": "replay", "refresh": true })), None),
            Some(InvokeMode::Manual(mocks)) => (Some(Value::from("manual")), Some(Value::Object(mocks.clone()))),
        };
        InvokeBody {
            messages: self.messages.clone(),
            parameters,
            dataset_slugs: self.datasets.clone(),
            mode,
            manual_mocks,
        }
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
                out.bot_id = event.payload_field("bot_id").and_then(Value::as_str).map(str::to_owned);
            }
            if let (Some(key), Some(action)) = (
                event.payload_field("key").and_then(Value::as_str),
                event.payload_field("action_type").and_then(Value::as_str),
            ) && !out.steps.iter().any(|s| s.key == key)
            {
                out.steps.push(StepInfo { key: key.into(), action: action.into(), status: "completed".into() });
            }
            if event.kind == "error" {
                last_error = Some(match event.payload.as_ref().unwrap_or(&Value::Null) {
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
            let role = event.metadata_field("role").and_then(Value::as_str).unwrap_or("assistant");
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn request_bodies_leave_out_what_is_not_set() {
        let body = |params: &InvokeParams| serde_json::to_value(params.body()).unwrap();
        assert_eq!(body(&InvokeParams::user("hi")), json!({"messages": [{"role": "user", "content": "hi"}]}));
        let mut params = InvokeParams { datasets: vec!["sales".into()], ..InvokeParams::user("hi") };
        params.parameters.insert("k".into(), json!(1));
        assert_eq!(body(&params)["dataset_slugs"], json!(["sales"]));
        assert_eq!(body(&params)["parameters"], json!({"k": 1}));
        params.mode = Some(InvokeMode::Replay { refresh: true });
        assert_eq!(body(&params)["mode"], json!({"mode": "replay", "refresh": true}));
        params.mode = Some(InvokeMode::Manual(json!({"llm.message": {}}).as_object().unwrap().clone()));
        assert_eq!(
            (body(&params)["mode"].clone(), body(&params)["manual_mocks"].clone()),
            (json!("manual"), json!({"llm.message": {}}))
        );
        let token =
            TokenParams { bot_keys: Some(vec!["echo".into()]), expires_in_seconds: Some(60), ..Default::default() };
        assert_eq!(serde_json::to_value(&token).unwrap(), json!({"botKeys": ["echo"], "expiresInSeconds": 60}));
    }
}
