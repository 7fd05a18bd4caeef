//! Monitoring: `client.monitoring()` — turns with what they cost, traces (a trace's spans, a
//! thread's whole story), cost rollups by agent, day, model and user, and the summary cards.
//! End users get their own; operators their scope.

use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::platos::{encode, field, required};
use crate::{Client, Message, Result};

/// A turn and what its model and tool calls added up to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnRecord {
    /// `trn_…`
    pub id: String,
    /// The agent that answered.
    pub agent_id: String,
    /// The agent's version when the turn was sent.
    #[serde(default)]
    pub agent_version: Option<i64>,
    /// Its thread.
    pub thread_id: String,
    /// The user who sent the message.
    pub user_id: String,
    /// `queued`, `running`, `waiting`, `completed`, `failed`, `cancelled`.
    pub status: String,
    /// When it was accepted (RFC 3339).
    pub created_at: String,
    /// When it started running.
    #[serde(default)]
    pub started_at: Option<String>,
    /// When it ended.
    #[serde(default)]
    pub completed_at: Option<String>,
    /// Start to end, once ended.
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// Start to the first token.
    #[serde(default)]
    pub ttft_ms: Option<i64>,
    /// Cost in cents.
    pub cost_cents: f64,
    /// Cost in micro-cents, exact.
    pub cost_micro_cents: i64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Answer tokens.
    pub output_tokens: u64,
    /// Model calls.
    pub steps: i64,
    /// Tool calls.
    pub tool_calls: i64,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The trace of its spans.
    pub trace_id: String,
}

/// Which turns to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnQuery {
    /// Only this agent's.
    pub agent_id: Option<String>,
    /// Only this thread's.
    pub thread_id: Option<String>,
    /// Only turns in this state.
    pub status: Option<String>,
    /// Only this user's (operators).
    pub user_id: Option<String>,
    /// Accepted at or after (RFC 3339, `YYYY-MM-DD` or Unix milliseconds).
    pub since: Option<String>,
    /// At most this many (server default 50).
    pub limit: Option<i64>,
    /// After skipping this many.
    pub offset: Option<i64>,
}

/// One span of a trace, OpenTelemetry-shaped.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSpan {
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// The parent span, if any.
    #[serde(default)]
    pub parent_span_id: Option<String>,
    /// `invoke_agent {agent}`, `chat {model}`, `execute_tool {tool}`.
    pub name: String,
    /// `internal` or `client`.
    pub kind: String,
    /// Start (RFC 3339).
    pub start_time: String,
    /// End (RFC 3339).
    pub end_time: String,
    /// Length.
    pub duration_ms: f64,
    /// `ok` or `error`.
    pub status: String,
    /// What went wrong.
    #[serde(default)]
    pub error_message: Option<String>,
    /// The turn it belongs to.
    pub turn_id: String,
    /// `gen_ai.*` and `agentry.*` attributes.
    #[serde(default)]
    pub attributes: Map<String, Value>,
    /// Child spans (in a tree only).
    #[serde(default)]
    pub children: Vec<TraceSpan>,
}

/// What a thread's trace adds up to.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceRollup {
    /// Messages in the thread.
    pub total_messages: i64,
    /// Spans recorded.
    pub total_spans: i64,
    /// Turns.
    pub total_turns: i64,
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
}

/// Everything that happened in a thread.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadTrace {
    /// The thread.
    pub thread_id: String,
    /// Its messages, oldest first.
    pub messages: Vec<Message>,
    /// Its turns' spans, by start.
    pub spans: Vec<TraceSpan>,
    /// The same spans nested under their parents.
    pub span_tree: Vec<TraceSpan>,
    /// Totals.
    pub rollup: TraceRollup,
}

/// What a cost rollup groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostBy {
    /// Agent id.
    Agent,
    /// UTC day.
    Day,
    /// `provider:model`.
    Model,
    /// User id.
    User,
}

impl CostBy {
    fn path(self) -> &'static str {
        match self {
            CostBy::Agent => "/api/v1/agent/monitoring/cost-by-agent",
            CostBy::Day => "/api/v1/agent/monitoring/cost",
            CostBy::Model => "/api/v1/agent/monitoring/cost-by-model",
            CostBy::User => "/api/v1/agent/monitoring/cost-by-user",
        }
    }

    fn key(self) -> &'static str {
        match self {
            CostBy::Agent => "agentId",
            CostBy::Day => "day",
            CostBy::Model => "model",
            CostBy::User => "userId",
        }
    }
}

/// One group of a rollup.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CostRow {
    /// The agent id, day, model or user id.
    #[serde(skip)]
    pub key: String,
    /// Cost in cents.
    pub cost_cents: f64,
    /// Cost in micro-cents, exact.
    pub cost_micro_cents: i64,
    /// Turns that spent.
    pub turns: i64,
    /// Model calls.
    pub model_calls: i64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Answer tokens.
    pub output_tokens: u64,
}

/// A rollup and its totals.
#[derive(Debug, Clone, PartialEq)]
pub struct CostRollup {
    /// The groups, largest cost first (days in order).
    pub rows: Vec<CostRow>,
    /// Everything in the window, exact.
    pub cost_micro_cents: i64,
    /// Turns in the window.
    pub turns: i64,
}

/// The overview cards.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Turns accepted in the window.
    pub turns: i64,
    /// Cost in cents.
    pub cost_cents: f64,
    /// Failed turns.
    pub failures: i64,
    /// Failed of finished turns.
    pub failure_rate: f64,
    /// 95th percentile turn duration.
    #[serde(default)]
    pub p95_latency_ms: Option<i64>,
    /// Approvals waiting for a human now.
    pub pending_approvals: i64,
}

/// The monitoring namespace ([`Client::monitoring`]).
pub struct Monitoring<'c> {
    pub(crate) client: &'c Client,
}

fn with_query(path: &str, pairs: &[(&str, Option<String>)]) -> String {
    let query: Vec<String> = pairs.iter().filter_map(|(k, v)| Some(format!("{k}={}", encode(v.as_deref()?)))).collect();
    if query.is_empty() { path.to_owned() } else { format!("{path}?{}", query.join("&")) }
}

impl Monitoring<'_> {
    /// Turns, newest first.
    pub async fn turns(&self, query: &TurnQuery) -> Result<Vec<TurnRecord>> {
        let path = with_query(
            "/api/v1/agent/turns",
            &[
                ("agentId", query.agent_id.clone()),
                ("threadId", query.thread_id.clone()),
                ("status", query.status.clone()),
                ("userId", query.user_id.clone()),
                ("since", query.since.clone()),
                ("limit", query.limit.map(|n| n.to_string())),
                ("offset", query.offset.map(|n| n.to_string())),
            ],
        );
        let body: Value = required(self.client.call(Method::GET, &path, None).await)?;
        field(body, "turns")
    }

    /// One turn.
    pub async fn turn(&self, turn_id: &str) -> Result<TurnRecord> {
        let path = format!("/api/v1/agent/turns/{}", encode(turn_id));
        required(self.client.call(Method::GET, &path, None).await)
    }

    /// A trace's spans, by start.
    pub async fn trace(&self, trace_id: &str) -> Result<Vec<TraceSpan>> {
        let path = format!("/api/v1/agent/monitoring/traces/{}", encode(trace_id));
        let body: Value = required(self.client.call(Method::GET, &path, None).await)?;
        field(body, "spans")
    }

    /// A thread's messages, spans (flat and as a tree) and totals.
    pub async fn thread_trace(&self, thread_id: &str) -> Result<ThreadTrace> {
        let path = format!("/api/v1/agent/monitoring/trace/{}", encode(thread_id));
        required(self.client.call(Method::GET, &path, None).await)
    }

    /// Spend grouped `by`, over the last `days` UTC days (today included).
    pub async fn cost(&self, by: CostBy, days: u32) -> Result<CostRollup> {
        let path = with_query(by.path(), &[("days", Some(days.to_string()))]);
        /// The answer's parts the SDK reads.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Answer {
            rows: Vec<Value>,
            cost_micro_cents: i64,
            turns: i64,
        }
        let answer: Answer = required(self.client.call(Method::GET, &path, None).await)?;
        let rows = answer
            .rows
            .into_iter()
            .map(|row| {
                let key = row.get(by.key()).and_then(Value::as_str).unwrap_or_default().to_owned();
                let parsed: CostRow =
                    serde_json::from_value(row).map_err(|e| crate::Error::Protocol(format!("a cost row: {e}")))?;
                Ok(CostRow { key, ..parsed })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CostRollup { rows, cost_micro_cents: answer.cost_micro_cents, turns: answer.turns })
    }

    /// The overview of the last `days` days (`None`: the last 24 hours).
    pub async fn summary(&self, days: Option<u32>) -> Result<Summary> {
        let path = with_query("/api/v1/agent/monitoring/summary", &[("days", days.map(|d| d.to_string()))]);
        required(self.client.call(Method::GET, &path, None).await)
    }
}
