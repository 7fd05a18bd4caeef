//! The one canonical event enum a turn produces. Every transport (Socket.IO `agent_event`, SSE,
//! later Erdo and OpenAI-style chunks) only translates it.
//!
//! Field names are the Platos wire names (`platos-wire.md` §4.7): camelCase, except `meta`'s
//! `thread_id`/`agent_id`, which the clients read in snake_case.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::money::MicroCents;
use crate::time::Timestamp;

/// Token counts and cost of a turn (or a model call).
///
/// The cost is an integer ([`MicroCents`]); the wire shows it as `costCents` (a number, what the
/// clients read) and exactly as `costMicroCents`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WireUsage", into = "WireUsage")]
pub struct TokenUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from a provider cache.
    pub cached_input_tokens: u64,
    /// Completion tokens spent on reasoning (when the provider reports them).
    pub reasoning_tokens: u64,
    /// Cost (zero until a price table is configured for the model).
    pub cost: MicroCents,
}

impl utoipa::PartialSchema for TokenUsage {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        WireUsage::schema()
    }
}

impl utoipa::ToSchema for TokenUsage {}

impl TokenUsage {
    /// Adds another usage to this one.
    pub fn add(&mut self, other: &TokenUsage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.cost += other.cost;
    }
}

/// The wire form of [`TokenUsage`]: token counts, `costCents` (what clients read) and
/// `costMicroCents` (exact).
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cached_input_tokens: u64,
    #[serde(default)]
    reasoning_tokens: u64,
    #[serde(default)]
    cost_cents: f64,
    #[serde(default)]
    cost_micro_cents: Option<i64>,
}

impl From<WireUsage> for TokenUsage {
    fn from(wire: WireUsage) -> Self {
        TokenUsage {
            input_tokens: wire.input_tokens,
            output_tokens: wire.output_tokens,
            cached_input_tokens: wire.cached_input_tokens,
            reasoning_tokens: wire.reasoning_tokens,
            cost: wire.cost_micro_cents.map_or_else(|| MicroCents::from_cents(wire.cost_cents), MicroCents),
        }
    }
}

impl From<TokenUsage> for WireUsage {
    fn from(usage: TokenUsage) -> Self {
        WireUsage {
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            cost_cents: usage.cost.as_cents(),
            cost_micro_cents: Some(usage.cost.0),
        }
    }
}

/// Lifecycle of a turn: `queued → running (⇄ waiting) → completed | failed | cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// Accepted, waiting for the thread's previous turn to finish.
    Queued,
    /// The model or a tool is working.
    Running,
    /// Paused on something outside the turn (an approval); the reason is stored with the turn.
    Waiting,
    /// Finished normally.
    Completed,
    /// Ended by an error (the cause is stored with the turn).
    Failed,
    /// Stopped by the user or an operator.
    Cancelled,
}

impl TurnStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnStatus::Queued => "queued",
            TurnStatus::Running => "running",
            TurnStatus::Waiting => "waiting",
            TurnStatus::Completed => "completed",
            TurnStatus::Failed => "failed",
            TurnStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the stored form.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "queued" => TurnStatus::Queued,
            "running" => TurnStatus::Running,
            "waiting" => TurnStatus::Waiting,
            "completed" => TurnStatus::Completed,
            "failed" => TurnStatus::Failed,
            "cancelled" => TurnStatus::Cancelled,
            _ => return None,
        })
    }

    /// True once the turn can no longer change.
    pub fn is_final(self) -> bool {
        matches!(self, TurnStatus::Completed | TurnStatus::Failed | TurnStatus::Cancelled)
    }
}

/// One safety finding (PII, prompt injection, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SafetyFlag {
    /// `pii`, `injection`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// `low`, `medium`, `high`.
    pub severity: String,
    /// Human explanation.
    pub detail: String,
    /// The matched text, when it is safe to show (PII is masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_text: Option<String>,
    /// For `pii`: `email`, `phone`, `credit_card`, `iban`, `national_id`, `api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pii_type: Option<String>,
    /// For `injection`: the pattern name, e.g. `ignore_previous_instructions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injection_pattern: Option<String>,
}

/// Everything a turn tells its listeners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnEvent {
    /// First event of a turn.
    #[serde(rename_all = "camelCase")]
    Meta {
        /// The thread (snake_case on the wire, as the clients read it).
        #[serde(rename = "thread_id")]
        thread_id: String,
        /// The agent answering.
        #[serde(rename = "agent_id")]
        agent_id: String,
        /// Version of the agent used for this turn.
        agent_version_id: String,
        /// Id the turn's answer will be stored under (known up front so streams can name it).
        #[serde(default)]
        message_id: String,
    },
    /// Phase hint: `thinking`, `generating`, `executing`, `waiting`.
    #[serde(rename_all = "camelCase")]
    Status {
        /// The phase.
        status: String,
    },
    /// A text delta of the answer.
    #[serde(rename_all = "camelCase")]
    Token {
        /// The delta.
        text: String,
    },
    /// A reasoning delta.
    #[serde(rename_all = "camelCase")]
    Thinking {
        /// The delta.
        text: String,
    },
    /// A tool step finished; the next text starts a new bubble.
    #[serde(rename_all = "camelCase")]
    MessageBoundary {},
    /// The model called a tool.
    #[serde(rename_all = "camelCase")]
    ToolCall {
        /// Tool name.
        name: String,
        /// Arguments (a JSON object).
        params: Value,
        /// Id pairing the call with its result.
        call_id: String,
    },
    /// A tool returned.
    #[serde(rename_all = "camelCase")]
    ToolResult {
        /// Tool name.
        name: String,
        /// What the tool returned (or the error).
        result: Value,
        /// Id of the call.
        call_id: String,
        /// True when the tool failed; the result holds the error and the turn goes on.
        #[serde(default, skip_serializing_if = "is_false")]
        is_error: bool,
    },
    /// A human must approve something before the turn continues.
    #[serde(rename_all = "camelCase")]
    ApprovalNeeded {
        /// Approval id.
        approval_id: String,
        /// What is to be approved.
        action: String,
        /// Details shown to the approver.
        details: Value,
        /// The tool whose call waits.
        tool_name: String,
        /// The waiting tool call.
        call_id: String,
        /// The agent that asked.
        agent_id: String,
        /// When the approval times out.
        timeout_at: Timestamp,
    },
    /// An approval was decided.
    #[serde(rename_all = "camelCase")]
    ApprovalResolved {
        /// Approval id.
        approval_id: String,
        /// `approved`, `rejected`, `timed_out`.
        status: String,
        /// Who decided.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        responded_by: Option<String>,
        /// The approver's comment.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// An artifact starts streaming.
    #[serde(rename_all = "camelCase")]
    ArtifactStart {
        /// Artifact revision id.
        artifact_id: String,
        /// Stable key across revisions.
        artifact_key: String,
        /// `markdown`, `code`, `html`, …
        kind: String,
        /// Revision number.
        revision: i64,
        /// Optional title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// Language of code artifacts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        /// `generate` or `revise`.
        op: String,
    },
    /// A chunk of artifact content.
    #[serde(rename_all = "camelCase")]
    ArtifactDelta {
        /// Artifact revision id.
        artifact_id: String,
        /// Stable key.
        artifact_key: String,
        /// Content chunk.
        chunk: String,
    },
    /// An artifact revision is stored.
    #[serde(rename_all = "camelCase")]
    ArtifactCommitted {
        /// Artifact revision id.
        artifact_id: String,
        /// Stable key.
        artifact_key: String,
        /// Kind.
        kind: String,
        /// Revision number.
        revision: i64,
        /// Optional title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        /// Language of code artifacts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
        /// The stored content.
        final_content: String,
        /// When it was stored.
        created_at: Timestamp,
    },
    /// An artifact could not be produced.
    #[serde(rename_all = "camelCase")]
    ArtifactError {
        /// Artifact revision id, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        artifact_id: Option<String>,
        /// Key, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        artifact_key: Option<String>,
        /// Machine code.
        code: String,
        /// Explanation.
        message: String,
    },
    /// Safety findings on the output.
    #[serde(rename_all = "camelCase")]
    SafetyFlags {
        /// The findings.
        flags: Vec<SafetyFlag>,
    },
    /// A typed content item of the answer (a table, a chart) produced by a tool.
    #[serde(rename_all = "camelCase")]
    Content {
        /// The item, as it is stored with the answer.
        item: crate::content::ContentItem,
    },
    /// Cumulative usage so far.
    #[serde(rename_all = "camelCase")]
    Usage {
        /// The usage.
        usage: TokenUsage,
    },
    /// The assistant message was stored.
    #[serde(rename_all = "camelCase")]
    MessagePersisted {
        /// Stored message id.
        message_id: String,
        /// Its thread.
        thread_id: String,
        /// Cost of the turn in cents.
        cost_cents: f64,
    },
    /// Something went wrong; a `done` follows.
    #[serde(rename_all = "camelCase")]
    Error {
        /// Machine code, e.g. `provider_unavailable`, `turn_in_progress`, `safety_blocked`.
        code: String,
        /// Explanation.
        message: String,
        /// The safety findings that blocked the message (`safety_blocked` only).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        flags: Vec<SafetyFlag>,
    },
    /// The last event of every turn.
    #[serde(rename_all = "camelCase")]
    Done {
        /// Total usage of the turn.
        usage: TokenUsage,
        /// How the turn ended.
        status: TurnStatus,
        /// True when the turn was cancelled.
        #[serde(default, skip_serializing_if = "is_false")]
        stopped: bool,
    },
}

fn is_false(value: &bool) -> bool {
    !*value
}

impl TurnEvent {
    /// An `error` event without safety flags.
    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Self {
        TurnEvent::Error { code: code.into(), message: message.into(), flags: Vec::new() }
    }

    /// True for the event that ends a turn.
    pub fn is_done(&self) -> bool {
        matches!(self, TurnEvent::Done { .. })
    }
}

/// An event as logged: its turn, thread, position and time.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// The turn it belongs to.
    pub turn_id: String,
    /// The turn's thread.
    pub thread_id: String,
    /// Position within the turn: 1, 2, 3… without gaps.
    pub seq: i64,
    /// When it was produced.
    pub at: Timestamp,
    /// The event.
    pub event: TurnEvent,
}

impl LoggedEvent {
    /// The wire object: the event's fields plus `threadId`, `turnId`, `seq` and `ts` (Unix
    /// milliseconds when the event was produced).
    pub fn to_wire(&self) -> Value {
        let mut value = serde_json::to_value(&self.event).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            map.insert("threadId".into(), Value::String(self.thread_id.clone()));
            map.insert("turnId".into(), Value::String(self.turn_id.clone()));
            map.insert("seq".into(), Value::from(self.seq));
            map.insert("ts".into(), Value::from(self.at.0));
        }
        value
    }
}

/// On the wire (SSE `data`, `POST /threads/{thread_id}/messages` `events`) a logged event is
/// [`LoggedEvent::to_wire`]; read back, the event is parsed from the same object.
impl Serialize for LoggedEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_wire().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for LoggedEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let wire = Value::deserialize(deserializer)?;
        let text = |key: &str| wire.get(key).and_then(Value::as_str).map(str::to_owned);
        let number = |key: &str| wire.get(key).and_then(Value::as_i64);
        let (Some(turn_id), Some(thread_id), Some(seq), Some(at)) =
            (text("turnId"), text("threadId"), number("seq"), number("ts"))
        else {
            return Err(D::Error::custom("a stream event needs turnId, threadId, seq and ts"));
        };
        let event = TurnEvent::deserialize(wire).map_err(D::Error::custom)?;
        Ok(LoggedEvent { turn_id, thread_id, seq, at: Timestamp(at), event })
    }
}

impl utoipa::PartialSchema for LoggedEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, Type};
        let position = ObjectBuilder::new()
            .property("threadId", ObjectBuilder::new().schema_type(Type::String))
            .property("turnId", ObjectBuilder::new().schema_type(Type::String))
            .property(
                "seq",
                ObjectBuilder::new().schema_type(Type::Integer).description(Some("Position in the turn: 1, 2, 3…")),
            )
            .property(
                "ts",
                ObjectBuilder::new().schema_type(Type::Integer).description(Some("Unix milliseconds it was produced")),
            )
            .required("threadId")
            .required("turnId")
            .required("seq")
            .required("ts");
        AllOfBuilder::new()
            .item(utoipa::openapi::Ref::from_schema_name("TurnEvent"))
            .item(position)
            .description(Some("A turn event with its turn, thread, position and time (`type` names its kind)"))
            .into()
    }
}

impl utoipa::ToSchema for LoggedEvent {
    fn name() -> std::borrow::Cow<'static, str> {
        "StreamEvent".into()
    }

    fn schemas(schemas: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>)>) {
        schemas.push(("TurnEvent".into(), <TurnEvent as utoipa::PartialSchema>::schema()));
        <TurnEvent as utoipa::ToSchema>::schemas(schemas);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_use_the_platos_wire_names() {
        let meta = TurnEvent::Meta {
            thread_id: "t".into(),
            agent_id: "a".into(),
            agent_version_id: "v".into(),
            message_id: "m".into(),
        };
        assert_eq!(
            serde_json::to_value(&meta).unwrap(),
            json!({"type": "meta", "thread_id": "t", "agent_id": "a", "agentVersionId": "v", "messageId": "m"})
        );
        let call = TurnEvent::ToolCall { name: "n".into(), params: json!({}), call_id: "c".into() };
        assert_eq!(
            serde_json::to_value(&call).unwrap(),
            json!({"type": "tool_call", "name": "n", "params": {}, "callId": "c"})
        );
        let done = TurnEvent::Done { usage: TokenUsage::default(), status: TurnStatus::Completed, stopped: false };
        assert_eq!(
            serde_json::to_value(&done).unwrap(),
            json!({"type": "done", "status": "completed",
                   "usage": {"inputTokens": 0, "outputTokens": 0, "cachedInputTokens": 0, "reasoningTokens": 0,
                              "costCents": 0.0, "costMicroCents": 0}})
        );
        assert_eq!(serde_json::to_value(TurnEvent::MessageBoundary {}).unwrap(), json!({"type": "message_boundary"}));
    }

    #[test]
    fn events_round_trip_through_json() {
        let events = vec![
            TurnEvent::Token { text: " hi".into() },
            TurnEvent::ToolResult { name: "n".into(), result: json!({"x": 1}), call_id: "c".into(), is_error: true },
            TurnEvent::error("provider_unavailable", "down"),
            TurnEvent::Done {
                usage: TokenUsage { input_tokens: 3, ..Default::default() },
                status: TurnStatus::Cancelled,
                stopped: true,
            },
        ];
        for event in events {
            let text = serde_json::to_string(&event).unwrap();
            assert_eq!(serde_json::from_str::<TurnEvent>(&text).unwrap(), event, "{text}");
        }
    }

    #[test]
    fn wire_form_adds_thread_turn_and_seq() {
        let logged = LoggedEvent {
            turn_id: "trn_1".into(),
            thread_id: "thr_1".into(),
            seq: 7,
            at: Timestamp(0),
            event: TurnEvent::Token { text: "x".into() },
        };
        assert_eq!(
            logged.to_wire(),
            json!({"type": "token", "text": "x", "threadId": "thr_1", "turnId": "trn_1", "seq": 7, "ts": 0})
        );
    }
}
