//! Turns, model calls, traces and spans, cost rollups and the summary (`/monitoring/*`, `/turns`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::event::{TokenUsage, TurnStatus};
use crate::thread::ThreadStatus;
use crate::time::Timestamp;
use crate::wire::Message;

/// A turn and what its model and tool calls added up to (`GET /turns`, `GET /monitoring/runs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnRecord {
    /// `trn_…`
    pub id: String,
    /// The agent that answered.
    pub agent_id: String,
    /// The agent's version number when the turn was sent.
    pub agent_version: Option<i64>,
    /// Its thread.
    pub thread_id: String,
    /// The user who sent the message.
    pub user_id: String,
    /// Where it stands.
    pub status: TurnStatus,
    /// What a `waiting` turn waits for.
    pub wait_reason: Option<String>,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// When it started running.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub completed_at: Option<Timestamp>,
    /// Start to end, once ended.
    pub duration_ms: Option<i64>,
    /// Start to the first streamed token.
    pub ttft_ms: Option<i64>,
    /// Cost in cents.
    pub cost_cents: f64,
    /// Cost in micro-cents, exact.
    pub cost_micro_cents: i64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Answer tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from a provider cache.
    pub cached_input_tokens: u64,
    /// Answer tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// Model calls.
    pub steps: i64,
    /// Tool calls.
    pub tool_calls: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// The trace of its spans (32 hex digits).
    pub trace_id: String,
}

/// `GET /turns/{turn_id}`: the turn with each model call it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnDetail {
    /// The turn.
    #[serde(flatten)]
    pub turn: TurnRecord,
    /// Its model calls, in order.
    pub model_calls: Vec<ModelCallRecord>,
}

/// One model call of a turn, from the usage ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelCallRecord {
    /// `mcl_…`
    pub id: String,
    /// 1-based number of the call within its turn.
    pub step: i64,
    /// Provider name (`openai`, `local`, …).
    pub provider: String,
    /// Model name.
    pub model: String,
    /// `ok`, `error` or `cancelled`.
    pub status: String,
    /// The provider's finish reason (`stop`, `tool_calls`, …).
    pub finish_reason: Option<String>,
    /// The failure, if any.
    pub error: Option<String>,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Answer tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from a provider cache.
    pub cached_input_tokens: u64,
    /// Answer tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// Cost in cents.
    pub cost_cents: f64,
    /// Cost in micro-cents, exact.
    pub cost_micro_cents: i64,
    /// When the call was made.
    pub started_at: Timestamp,
    /// Call to the first streamed token.
    pub ttft_ms: Option<i64>,
    /// Call to its end.
    pub duration_ms: i64,
}

/// `GET /turns` (1.x clients): a page of turns, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TurnList {
    /// The turns.
    pub turns: Vec<TurnRecord>,
    /// The page size applied.
    pub limit: i64,
    /// The rows skipped.
    pub offset: i64,
}

/// `GET /monitoring/runs` (0.1.x clients): the same page under its old name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TurnRunList {
    /// The turns.
    pub runs: Vec<TurnRecord>,
    /// The page size applied.
    pub limit: i64,
    /// The rows skipped.
    pub offset: i64,
}

/// One turn's trace in `GET /monitoring/traces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummary {
    /// 32 hex digits.
    pub trace_id: String,
    /// The turn's `invoke_agent` span.
    pub root_span_id: String,
    /// The turn.
    pub turn_id: String,
    /// Its thread.
    pub thread_id: String,
    /// The agent.
    pub agent_id: String,
    /// The user.
    pub user_id: String,
    /// The turn's state.
    pub status: TurnStatus,
    /// When it started (or was accepted).
    pub started_at: Timestamp,
    /// Start to end, once ended.
    pub duration_ms: Option<i64>,
    /// Cost in cents.
    pub cost_cents: f64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Answer tokens.
    pub output_tokens: u64,
    /// Model calls.
    pub steps: i64,
    /// Tool calls.
    pub tool_calls: i64,
}

/// `GET /monitoring/traces`: one trace per turn, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TraceList {
    /// The traces.
    pub traces: Vec<TraceSummary>,
    /// The page size applied.
    pub limit: i64,
    /// The rows skipped.
    pub offset: i64,
}

/// One span, OpenTelemetry-shaped (`startTimeUnixNano` is a string: it does not fit a double).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The parent span, if any.
    pub parent_span_id: Option<String>,
    /// `invoke_agent {agent}`, `chat {model}`, `execute_tool {tool}`.
    pub name: String,
    /// `internal` or `client`.
    pub kind: String,
    /// Start, Unix nanoseconds as a decimal string.
    pub start_time_unix_nano: String,
    /// End, Unix nanoseconds as a decimal string.
    pub end_time_unix_nano: String,
    /// Start.
    pub start_time: Timestamp,
    /// End.
    pub end_time: Timestamp,
    /// Length in milliseconds.
    pub duration_ms: f64,
    /// `ok` or `error`.
    pub status: String,
    /// What went wrong.
    pub error_message: Option<String>,
    /// The turn it belongs to.
    pub turn_id: String,
    /// The turn's thread.
    pub thread_id: String,
    /// The agent.
    pub agent_id: String,
    /// `gen_ai.*` and `agentry.*` attributes.
    pub attributes: Map<String, Value>,
    /// Child spans, in start order (present in a `spanTree` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(no_recursion)]
    pub children: Option<Vec<TraceSpan>>,
}

/// `GET /monitoring/traces/{trace_id}`: a trace's spans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    /// The trace, as asked.
    pub trace_id: String,
    /// Its spans, by start.
    pub spans: Vec<TraceSpan>,
    /// The same spans nested under their parents.
    pub span_tree: Vec<TraceSpan>,
}

/// A content item (table, chart, code, …) of a message in a thread's trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceContent {
    /// `<message id>_c<n>`.
    pub id: String,
    /// `json`, `code`, `table`, `chart`, `image`, `error`.
    pub content_type: String,
    /// How a UI renders it: `table`, `bar`, `line`, …
    pub ui_content_type: Option<String>,
    /// The content.
    pub content: Value,
    /// `visible` or `hidden`.
    pub user_visibility: String,
}

/// A message in a thread's trace: the message and the content items its turn produced beside
/// the text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceMessage {
    /// The message.
    #[serde(flatten)]
    pub message: Message,
    /// Its content items other than the text (absent when none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contents: Vec<TraceContent>,
}

/// What a timeline entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TimelineKind {
    /// `data` is a message.
    Message,
    /// `data` is a span.
    Span,
}

/// A timeline entry's payload: a message or a span, as `kind` says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum TimelineData {
    /// A message.
    Message(Box<TraceMessage>),
    /// A span.
    Span(Box<TraceSpan>),
}

/// One entry of a thread's timeline: messages and spans by time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// What `data` is.
    pub kind: TimelineKind,
    /// When it happened (a message's creation, a span's start).
    pub timestamp: Timestamp,
    /// The message or span.
    pub data: TimelineData,
}

/// The thread of a thread trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceThread {
    /// `thr_…`
    pub id: String,
    /// Its agent.
    pub agent_id: String,
    /// Its user.
    pub user_id: String,
    /// Its title.
    pub title: Option<String>,
    /// Active or archived.
    pub status: ThreadStatus,
    /// Turns it had.
    pub turn_count: usize,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// What a thread's trace adds up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceRollup {
    /// Messages in the thread.
    pub total_messages: usize,
    /// Spans recorded.
    pub total_spans: usize,
    /// Turns.
    pub total_turns: usize,
    /// Cost in cents.
    pub total_cost_cents: f64,
    /// Cost in micro-cents, exact.
    pub total_cost_micro_cents: i64,
    /// Prompt tokens.
    pub total_input_tokens: u64,
    /// Answer tokens.
    pub total_output_tokens: u64,
    /// Tool calls.
    pub tool_call_count: i64,
    /// The first message's time.
    pub first_message_at: Option<Timestamp>,
    /// The last message's time.
    pub last_message_at: Option<Timestamp>,
}

/// `GET /monitoring/trace/{thread_id}`: everything that happened in a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ThreadTrace {
    /// The thread id.
    pub thread_id: String,
    /// The thread.
    pub thread: TraceThread,
    /// Its messages, oldest first.
    pub messages: Vec<TraceMessage>,
    /// Its turns' spans, by start.
    pub spans: Vec<TraceSpan>,
    /// The same spans nested under their parents.
    pub span_tree: Vec<TraceSpan>,
    /// Messages and spans by time.
    pub timeline: Vec<TimelineEntry>,
    /// Totals.
    pub rollup: TraceRollup,
}

/// Tokens, cost and turns of a rollup row, its total or the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageFigures {
    /// Cost in cents.
    pub cost_cents: f64,
    /// Cost in micro-cents, exact.
    pub cost_micro_cents: i64,
    /// Turns that spent.
    pub turns: i64,
    /// The same, as 0.1.x clients name it.
    pub runs: i64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Answer tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from a provider cache.
    pub cached_input_tokens: u64,
    /// Answer tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// Prompt and answer tokens.
    pub total_tokens: u64,
}

impl UsageFigures {
    /// The figures of `usage` spent by `turns` turns.
    pub fn of(usage: &TokenUsage, turns: i64) -> UsageFigures {
        UsageFigures {
            cost_cents: usage.cost.as_cents(),
            cost_micro_cents: usage.cost.0,
            turns,
            runs: turns,
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            total_tokens: usage.input_tokens + usage.output_tokens,
        }
    }
}

/// One group of a cost rollup: its key under the grouping's name (`agentId`, `day`, `model` or
/// `userId`) and what it spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostRow {
    /// The agent (by-agent rollups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// The UTC day, `YYYY-MM-DD` (by-day rollups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    /// `provider:model` (by-model rollups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The user (by-user rollups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// What the group spent.
    #[serde(flatten)]
    pub usage: UsageFigures,
    /// Model calls.
    pub model_calls: i64,
}

impl CostRow {
    /// The group's key, whichever grouping it is.
    pub fn key(&self) -> &str {
        [&self.agent_id, &self.day, &self.model, &self.user_id].into_iter().flatten().next().map_or("", String::as_str)
    }
}

/// A cost rollup: its groups (largest cost first, days in order) and what they add up to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostRollup {
    /// The window's total.
    #[serde(flatten)]
    pub total: UsageFigures,
    /// The groups.
    pub rollup: Vec<CostRow>,
    /// The same groups, as upstream names them.
    pub rows: Vec<CostRow>,
    /// The window's start.
    pub since: Timestamp,
    /// The window's end (exclusive).
    pub until: Timestamp,
    /// When the rollup was read.
    pub fetched_at: Timestamp,
}

/// One card of the overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SummaryCard {
    /// `turns`, `cost`, `failures`, `p95_latency`, `pending_approvals`.
    pub id: String,
    /// What a page shows as its title.
    pub label: String,
    /// The figure (none for a latency without finished turns).
    #[schema(value_type = Option<f64>)]
    pub value: Option<serde_json::Number>,
    /// `cents` or `ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The failure rate, on the failures card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
}

/// `GET /monitoring/summary`: the overview of a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// What the window's model calls spent.
    #[serde(flatten)]
    pub usage: UsageFigures,
    /// Turns accepted in the window, by state.
    pub by_status: BTreeMap<String, i64>,
    /// Failed turns.
    pub failures: i64,
    /// Failed of finished turns, 0 to 1.
    pub failure_rate: f64,
    /// Turns running now.
    pub running: i64,
    /// Turns queued now.
    pub queued: i64,
    /// Turns waiting (on an approval) now.
    pub waiting: i64,
    /// Median turn duration.
    pub p50_latency_ms: Option<i64>,
    /// 95th percentile turn duration.
    pub p95_latency_ms: Option<i64>,
    /// Approvals waiting for a human now.
    pub pending_approvals: i64,
    /// The same figures as cards.
    pub cards: Vec<SummaryCard>,
    /// The window's start.
    pub since: Timestamp,
    /// The window's end.
    pub until: Timestamp,
    /// When it was read.
    pub fetched_at: Timestamp,
}

impl std::ops::Deref for TurnDetail {
    type Target = TurnRecord;

    fn deref(&self) -> &TurnRecord {
        &self.turn
    }
}

impl std::ops::Deref for TraceMessage {
    type Target = Message;

    fn deref(&self) -> &Message {
        &self.message
    }
}

impl TraceSpan {
    /// The span's children (none outside a `spanTree`).
    pub fn child_spans(&self) -> &[TraceSpan] {
        self.children.as_deref().unwrap_or_default()
    }
}
