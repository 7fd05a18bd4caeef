//! Translation of a turn's events into Erdo SSE events `{type, payload, metadata}`.
//!
//! Two framings (`erdo-wire.md` §3.3, §3.4): `Invoke` (raw bot events, what the Python SDK's
//! heuristics read: `bot started`, `step started`/`step result`, `message content delta`s, a final
//! `result` whose `output.content` holds the answer) and `Thread` (the same, message-wrapped: each
//! event also carries `metadata.path` in the forms the `@erdoai/ui` reducer accepts —
//! `message/<id>`, `content/<id>` — and the flat ids `message_id`, `message_content_id`). The text
//! of a message is one content item per text segment (a tool step ends a segment); the final
//! `result` carries the whole answer as one text item, the same item the history stores.

use agentry_core::{ContentItem, LoggedEvent, TurnEvent, TurnStatus};
use serde_json::{Map, Value, json};

/// Which event shape a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `POST /bots/{key}/invoke` and `invoke-from-thread`.
    Invoke,
    /// `POST /threads/{id}/message`: message-wrapped, with entity paths.
    Thread,
}

/// The bot answering, as the events name it.
#[derive(Debug, Clone)]
pub struct BotInfo {
    /// The agent id.
    pub id: String,
    /// `<org>.<agent id>`.
    pub key: String,
    /// Display name.
    pub name: String,
}

/// One open text segment of the answer.
struct Segment {
    id: String,
    text: String,
}

/// The state of one translated stream.
pub struct ErdoStream {
    framing: Framing,
    bot: BotInfo,
    invocation_id: String,
    message_id: String,
    segment: Option<Segment>,
    segments: usize,
    answer: String,
    /// Content items other than the answer's text (artifacts), for the final result.
    extra: Vec<Value>,
    error: Option<String>,
    step_order: u32,
}

impl ErdoStream {
    /// A stream for one invocation (turn) of `bot`.
    pub fn new(framing: Framing, bot: BotInfo, invocation_id: &str) -> Self {
        ErdoStream {
            framing,
            bot,
            invocation_id: invocation_id.to_owned(),
            message_id: format!("msg_{invocation_id}"),
            segment: None,
            segments: 0,
            answer: String::new(),
            extra: Vec::new(),
            error: None,
            step_order: 0,
        }
    }

    /// The Erdo events for one turn event (none, one or several).
    pub fn translate(&mut self, logged: &LoggedEvent) -> Vec<Value> {
        let mut out = Vec::new();
        match &logged.event {
            TurnEvent::Meta { message_id, .. } => {
                if !message_id.is_empty() {
                    self.message_id = message_id.clone();
                }
                if self.framing == Framing::Thread {
                    let path = format!("message/{}", self.message_id);
                    out.push(self.event("message created", json!({"role": "assistant"}), Some(path), Map::new()));
                }
                let started = json!({
                    "invocation_id": self.invocation_id,
                    "bot_id": self.bot.id,
                    "bot_key": self.bot.key,
                    "bot_name": self.bot.name,
                });
                out.push(self.event("bot started", started, None, Map::new()));
                if self.framing == Framing::Invoke {
                    out.push(self.step_started("llm", "llm.message", &self.llm_step_id()));
                }
            }
            TurnEvent::Status { status } => {
                out.push(self.event("status", json!({"status": status}), None, Map::new()));
            }
            TurnEvent::Token { text } => {
                if self.segment.is_none() {
                    out.push(self.open_segment());
                }
                if let Some(segment) = &mut self.segment {
                    segment.text.push_str(text);
                }
                let id = self.segment.as_ref().map(|s| s.id.clone()).unwrap_or_default();
                out.push(self.content_event("message content delta", &id, "text", Value::String(text.clone())));
            }
            TurnEvent::ToolCall { name, call_id, .. } => {
                out.extend(self.close_segment());
                if self.framing == Framing::Invoke {
                    out.push(self.step_started(name, &format!("tool.{name}"), call_id));
                }
            }
            TurnEvent::ToolResult { name, result, call_id, is_error } => {
                if self.framing == Framing::Invoke {
                    let status = if *is_error { "error" } else { "success" };
                    let payload = json!({
                        "step_id": call_id,
                        "key": name,
                        "status": status,
                        "parameters": {},
                        "output": {"content": [{"content_type": "json", "content": result}]},
                        "error": if *is_error { Some(result.to_string()) } else { None },
                    });
                    out.push(self.event("step result", payload, None, hidden()));
                }
            }
            TurnEvent::ApprovalNeeded { approval_id, action, details, .. } => {
                let payload = json!({"status": "requires info", "message": action,
                                     "details": {"approvalId": approval_id, "details": details}});
                out.push(self.event("status", payload, None, Map::new()));
            }
            TurnEvent::ArtifactCommitted { artifact_key, kind, title, final_content, .. } => {
                out.extend(self.close_segment());
                let (content_type, ui) = match kind.as_str() {
                    "json" => ("json", "json"),
                    "code" | "html" | "svg" | "csv" => ("code", "code"),
                    "image" => ("image", "image"),
                    _ => ("text", "markdown"),
                };
                let id = self.next_content_id();
                let item = json!({"id": id, "content_type": content_type, "ui_content_type": ui,
                                  "content": final_content, "title": title, "artifact_key": artifact_key});
                out.push(self.content_event_typed(
                    "create message content",
                    &id,
                    content_type,
                    ui,
                    Value::String(String::new()),
                ));
                out.push(self.content_event_typed(
                    "message content result",
                    &id,
                    content_type,
                    ui,
                    Value::String(final_content.clone()),
                ));
                self.extra.push(item);
            }
            TurnEvent::Content { item } => {
                out.extend(self.close_segment());
                let ui = item.ui_content_type.clone().unwrap_or_else(|| item.content_type.clone());
                let kind = item.content_type.clone();
                out.push(self.content_event_typed("create message content", &item.id, &kind, &ui, json!("")));
                out.push(self.content_event_typed(
                    "message content result",
                    &item.id,
                    &kind,
                    &ui,
                    item.content.clone(),
                ));
                // In results the structured fields sit beside the item's ids, where renderers
                // look for them (`tableColumns`, `chartConfig`, …).
                let mut flat =
                    json!({"id": item.id, "content_type": kind, "ui_content_type": ui, "content": item.content});
                if let (Value::Object(flat), Value::Object(fields)) = (&mut flat, &item.content) {
                    flat.extend(fields.clone());
                }
                self.extra.push(flat);
            }
            TurnEvent::Error { message, .. } => {
                self.error = Some(message.clone());
                out.push(self.event("error", Value::String(message.clone()), None, Map::new()));
            }
            TurnEvent::Done { status, .. } => {
                out.extend(self.close_segment());
                if self.framing == Framing::Thread {
                    let path = format!("message/{}", self.message_id);
                    out.push(self.event("message finished", json!({}), Some(path), Map::new()));
                }
                let result = self.result(*status);
                if self.framing == Framing::Invoke {
                    let mut step = result.clone();
                    step["step_id"] = json!(self.llm_step_id());
                    step["key"] = json!("llm");
                    out.push(self.event("step result", step, None, hidden()));
                }
                out.push(self.event("result", result.clone(), None, Map::new()));
                out.push(
                    json!({"type": "invocation_completed", "invocation_id": self.invocation_id, "result": result}),
                );
            }
            TurnEvent::Thinking { .. }
            | TurnEvent::MessageBoundary {}
            | TurnEvent::ApprovalResolved { .. }
            | TurnEvent::ArtifactStart { .. }
            | TurnEvent::ArtifactDelta { .. }
            | TurnEvent::ArtifactError { .. }
            | TurnEvent::SafetyFlags { .. }
            | TurnEvent::Usage { .. }
            | TurnEvent::MessagePersisted { .. } => {}
        }
        out
    }

    /// The bot Result of the invocation: the whole answer as one text item, then the rest.
    fn result(&self, status: TurnStatus) -> Value {
        let mut content = Vec::new();
        if !self.answer.is_empty() {
            content.push(json!({
                "id": ContentItem::id_for(&self.message_id, 0),
                "content_type": "text",
                "ui_content_type": "markdown",
                "content": self.answer,
            }));
        }
        content.extend(self.extra.iter().cloned());
        let ok = status == TurnStatus::Completed && self.error.is_none();
        json!({
            "status": if ok { "success" } else { "error" },
            "parameters": {},
            "output": {"content": content},
            "message": self.answer,
            "error": self.error,
        })
    }

    fn llm_step_id(&self) -> String {
        format!("{}_llm", self.invocation_id)
    }

    fn step_started(&mut self, key: &str, action_type: &str, step_id: &str) -> Value {
        self.step_order += 1;
        let payload = json!({
            "step_id": step_id,
            "key": key,
            "action_type": action_type,
            "bot_id": self.bot.id,
            "step_order": self.step_order,
            "content_type": "text",
            "execution_mode": "all",
            "output_behaviour": "step_output_visible",
            "output_channels": [],
        });
        self.event("step started", payload, None, Map::new())
    }

    /// Content ids follow the stored history: `_c0` is the whole answer, segments and other
    /// items come after it.
    fn next_content_id(&mut self) -> String {
        self.segments += 1;
        ContentItem::id_for(&self.message_id, self.segments)
    }

    fn open_segment(&mut self) -> Value {
        let id = self.next_content_id();
        let event = self.content_event("create message content", &id, "text", Value::String(String::new()));
        self.segment = Some(Segment { id, text: String::new() });
        event
    }

    fn close_segment(&mut self) -> Option<Value> {
        let segment = self.segment.take()?;
        if !self.answer.is_empty() {
            self.answer.push_str("\n\n");
        }
        self.answer.push_str(&segment.text);
        Some(self.content_event("message content result", &segment.id, "text", Value::String(segment.text)))
    }

    fn content_event(&self, kind: &str, content_id: &str, content_type: &str, payload: Value) -> Value {
        self.content_event_typed(kind, content_id, content_type, "markdown", payload)
    }

    fn content_event_typed(&self, kind: &str, content_id: &str, content_type: &str, ui: &str, payload: Value) -> Value {
        let mut metadata = Map::new();
        metadata.insert("message_content_id".into(), json!(content_id));
        metadata.insert("content_type".into(), json!(content_type));
        metadata.insert("ui_content_type".into(), json!(ui));
        metadata.insert("bot_visibility".into(), json!("visible"));
        metadata.insert("role".into(), json!("assistant"));
        let path = (self.framing == Framing::Thread).then(|| format!("content/{content_id}"));
        self.event(kind, payload, path, metadata)
    }

    /// `{type, payload, metadata, invocation_id}` with the ids every consumer looks for.
    fn event(&self, kind: &str, payload: Value, path: Option<String>, mut metadata: Map<String, Value>) -> Value {
        metadata.insert("invocation_id".into(), json!(self.invocation_id));
        metadata.insert("message_id".into(), json!(self.message_id));
        let visibility = metadata.entry("user_visibility").or_insert_with(|| json!("visible")).clone();
        metadata.entry("visibility").or_insert(visibility);
        if self.framing == Framing::Thread {
            metadata.insert("path".into(), json!(path.unwrap_or_default()));
        }
        json!({"type": kind, "payload": payload, "metadata": metadata, "invocation_id": self.invocation_id})
    }
}

fn hidden() -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert("user_visibility".into(), json!("hidden"));
    metadata
}

/// One SSE frame: `event: <type>` and the event as one `data:` line.
pub fn frame(event: &Value) -> String {
    let kind = event.get("type").and_then(Value::as_str).unwrap_or("message");
    format!("event: {kind}\ndata: {event}\n\n")
}
