//! Translation of a turn's events into Erdo SSE events `{type, payload, metadata}`.
//!
//! Two framings (`erdo-wire.md` §3.3, §3.4): `Invoke` (raw bot events, what the Python SDK's
//! heuristics read: `bot started`, `step started`/`step result`, `message content delta`s, a final
//! `result` whose `output.content` holds the answer) and `Thread` (the same, message-wrapped: each
//! event also carries `metadata.path` in the forms the `@erdoai/ui` reducer accepts —
//! `message/<id>`, `content/<id>` — and the flat ids `message_id`, `message_content_id`). The text
//! of a message is one content item per text segment (a tool step ends a segment); the final
//! `result` carries the whole answer as one text item, the same item the history stores.

use agentry_core::wire::erdo::{BotResult, ErdoEvent};
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
    artifacts: usize,
    answer: String,
    /// The answer's content items in order (text segments, tables, charts, artifacts).
    items: Vec<Value>,
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
            artifacts: 0,
            answer: String::new(),
            items: Vec::new(),
            error: None,
            step_order: 0,
        }
    }

    /// The Erdo events for one turn event (none, one or several).
    pub fn translate(&mut self, logged: &LoggedEvent) -> Vec<ErdoEvent> {
        let mut out = Vec::new();
        match &logged.event {
            TurnEvent::Meta { message_id, .. } => {
                if !message_id.is_empty() {
                    self.message_id = message_id.clone();
                }
                out.extend(self.started());
            }
            TurnEvent::Status { status } => {
                out.push(self.event("status", json!({"status": status}), None, Map::new()));
            }
            TurnEvent::Token { text } if !text.is_empty() => {
                if self.segment.is_none() {
                    out.push(self.open_segment());
                }
                if let Some(segment) = &mut self.segment {
                    segment.text.push_str(text);
                }
                let id = self.segment.as_ref().map(|s| s.id.clone()).unwrap_or_default();
                out.push(self.content_event("message content delta", &id, "text", "markdown", json!(text)));
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
                let (content_type, ui) = match kind.as_str() {
                    "json" => ("json", "json"),
                    "code" | "html" | "svg" | "csv" => ("code", "code"),
                    "image" => ("image", "image"),
                    _ => ("text", "markdown"),
                };
                self.artifacts += 1;
                let id = format!("{}_a{}", self.message_id, self.artifacts);
                let item = json!({"id": id, "content_type": content_type, "ui_content_type": ui,
                                  "content": final_content, "title": title, "artifact_key": artifact_key});
                out.extend(self.whole_item(&id, content_type, ui, json!(final_content), item));
            }
            TurnEvent::Content { item } => {
                let ui = item.ui_content_type.clone().unwrap_or_else(|| item.content_type.clone());
                // In results the structured fields sit beside the item's ids, where renderers
                // look for them (`tableColumns`, `chartConfig`, …).
                let mut flat = json!({"id": item.id, "content_type": item.content_type, "ui_content_type": ui,
                                      "content": item.content});
                if let (Value::Object(flat), Value::Object(fields)) = (&mut flat, &item.content) {
                    flat.extend(fields.clone());
                }
                out.extend(self.whole_item(&item.id, &item.content_type, &ui, item.content.clone(), flat));
            }
            TurnEvent::Error { message, .. } => {
                self.error = Some(message.clone());
                out.push(self.event("error", Value::String(message.clone()), None, Map::new()));
            }
            TurnEvent::Done { status, .. } => {
                out.extend(self.close_segment());
                out.extend(self.finished(*status));
            }
            TurnEvent::Token { .. }
            | TurnEvent::Thinking { .. }
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

    /// The opening events. Threads: the message first (the legacy reducer wants no bot event
    /// outside a content item) and a root agent step (what the flat reducer renders under).
    fn started(&mut self) -> Vec<ErdoEvent> {
        match self.framing {
            Framing::Thread => {
                let path = format!("message/{}", self.message_id);
                let root = json!({"step_id": self.root_step_id(), "type": "agent",
                                  "name": self.bot.name, "key": self.bot.key});
                vec![
                    self.event("message created", json!({"role": "assistant"}), Some(path), Map::new()),
                    self.event("step_started", root, None, Map::new()),
                ]
            }
            Framing::Invoke => {
                let started = json!({
                    "invocation_id": self.invocation_id,
                    "bot_id": self.bot.id,
                    "bot_key": self.bot.key,
                    "bot_name": self.bot.name,
                });
                let bot = self.event("bot started", started, None, Map::new());
                let step_id = self.llm_step_id();
                vec![bot, self.step_started("llm", "llm.message", &step_id)]
            }
        }
    }

    /// The closing events: the final `result` (and, for invoke, `invocation_completed`).
    fn finished(&mut self, status: TurnStatus) -> Vec<ErdoEvent> {
        let result = self.result(status);
        match self.framing {
            Framing::Thread => {
                let root = json!({"step_id": self.root_step_id(), "status": result.status});
                let path = format!("message/{}", self.message_id);
                vec![
                    self.event("step_finished", root, None, Map::new()),
                    self.event("message finished", json!({}), Some(path), Map::new()),
                    self.event("result", json!(result), None, Map::new()),
                ]
            }
            Framing::Invoke => {
                let result = json!(result);
                let mut step = result.clone();
                step["step_id"] = json!(self.llm_step_id());
                step["key"] = json!("llm");
                let mut completed = Map::new();
                completed.insert("result".into(), result.clone());
                vec![
                    self.event("step result", step, None, hidden()),
                    self.event("result", result, None, Map::new()),
                    ErdoEvent {
                        kind: "invocation_completed".into(),
                        invocation_id: Some(self.invocation_id.clone()),
                        extra: completed,
                        ..ErdoEvent::default()
                    },
                ]
            }
        }
    }

    /// The bot Result of the invocation: the answer's content items in order.
    fn result(&self, status: TurnStatus) -> BotResult {
        let ok = status == TurnStatus::Completed && self.error.is_none();
        BotResult {
            status: if ok { "success" } else { "error" }.into(),
            parameters: json!({}),
            output: json!({"content": self.items}),
            message: Some(self.answer.clone()),
            error: self.error.clone(),
        }
    }

    fn root_step_id(&self) -> String {
        format!("{}_agent", self.invocation_id)
    }

    fn llm_step_id(&self) -> String {
        format!("{}_llm", self.invocation_id)
    }

    fn step_started(&mut self, key: &str, action_type: &str, step_id: &str) -> ErdoEvent {
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

    /// A content item that arrives whole (a table, a chart, an artifact): created, then its result.
    fn whole_item(&mut self, id: &str, content_type: &str, ui: &str, content: Value, item: Value) -> Vec<ErdoEvent> {
        let mut out: Vec<ErdoEvent> = self.close_segment().into_iter().collect();
        out.push(self.content_event("create message content", id, content_type, ui, json!("")));
        out.push(self.content_event("message content result", id, content_type, ui, content));
        self.items.push(item);
        out
    }

    /// Each model step's text is the answer's next text item, `<message id>_c<n>`: the id the
    /// engine stores it under.
    fn open_segment(&mut self) -> ErdoEvent {
        self.segments += 1;
        let id = ContentItem::id_for(&self.message_id, self.segments);
        let event = self.content_event("create message content", &id, "text", "markdown", json!(""));
        self.segment = Some(Segment { id, text: String::new() });
        event
    }

    fn close_segment(&mut self) -> Option<ErdoEvent> {
        let segment = self.segment.take()?;
        if !self.answer.is_empty() {
            self.answer.push_str("\n\n");
        }
        self.answer.push_str(&segment.text);
        self.items.push(json!({"id": segment.id, "content_type": "text", "ui_content_type": "markdown",
                               "content": segment.text}));
        Some(self.content_event("message content result", &segment.id, "text", "markdown", json!(segment.text)))
    }

    fn content_event(&self, kind: &str, content_id: &str, content_type: &str, ui: &str, payload: Value) -> ErdoEvent {
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
    fn event(&self, kind: &str, payload: Value, path: Option<String>, mut metadata: Map<String, Value>) -> ErdoEvent {
        metadata.insert("invocation_id".into(), json!(self.invocation_id));
        metadata.insert("message_id".into(), json!(self.message_id));
        let visibility = metadata.entry("user_visibility").or_insert_with(|| json!("visible")).clone();
        metadata.entry("visibility").or_insert(visibility);
        if self.framing == Framing::Thread {
            metadata.insert("path".into(), json!(path.unwrap_or_default()));
        }
        ErdoEvent {
            kind: kind.to_owned(),
            payload: Some(payload),
            metadata: Some(Value::Object(metadata)),
            invocation_id: Some(self.invocation_id.clone()),
            extra: Map::new(),
        }
    }
}

fn hidden() -> Map<String, Value> {
    let mut metadata = Map::new();
    metadata.insert("user_visibility".into(), json!("hidden"));
    metadata
}

/// One SSE frame: `event: <type>` and the event as one `data:` line.
pub fn frame(event: &ErdoEvent) -> String {
    let data = serde_json::to_string(event).unwrap_or_default();
    format!("event: {}\ndata: {data}\n\n", event.kind)
}
