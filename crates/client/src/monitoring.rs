//! Monitoring: `client.monitoring()` — turns with what they cost, traces (a trace's spans, a
//! thread's whole story), cost rollups by agent, day, model and user, and the summary cards.
//! End users get their own; operators their scope.

pub use agentry_core::wire::monitoring::{
    CostRollup, CostRow, ModelCallRecord, Summary, SummaryCard, ThreadTrace, TimelineData, TimelineEntry, TimelineKind,
    Trace, TraceContent, TraceMessage, TraceRollup, TraceSpan, TraceThread, TurnDetail, TurnList, TurnRecord,
    UsageFigures,
};
use reqwest::Method;

use crate::platos::{encode, required};
use crate::{Client, Result};

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
        let list: TurnList = required(self.client.call(Method::GET, &path, None).await)?;
        Ok(list.turns)
    }

    /// One turn with its model calls.
    pub async fn turn(&self, turn_id: &str) -> Result<TurnDetail> {
        let path = format!("/api/v1/agent/turns/{}", encode(turn_id));
        required(self.client.call(Method::GET, &path, None).await)
    }

    /// A trace's spans, by start.
    pub async fn trace(&self, trace_id: &str) -> Result<Vec<TraceSpan>> {
        let path = format!("/api/v1/agent/monitoring/traces/{}", encode(trace_id));
        let trace: Trace = required(self.client.call(Method::GET, &path, None).await)?;
        Ok(trace.spans)
    }

    /// A thread's messages, spans (flat and as a tree) and totals.
    pub async fn thread_trace(&self, thread_id: &str) -> Result<ThreadTrace> {
        let path = format!("/api/v1/agent/monitoring/trace/{}", encode(thread_id));
        required(self.client.call(Method::GET, &path, None).await)
    }

    /// Spend grouped `by`, over the last `days` UTC days (today included).
    pub async fn cost(&self, by: CostBy, days: u32) -> Result<CostRollup> {
        let path = with_query(by.path(), &[("days", Some(days.to_string()))]);
        required(self.client.call(Method::GET, &path, None).await)
    }

    /// The overview of the last `days` days (`None`: the last 24 hours).
    pub async fn summary(&self, days: Option<u32>) -> Result<Summary> {
        let path = with_query("/api/v1/agent/monitoring/summary", &[("days", days.map(|d| d.to_string()))]);
        required(self.client.call(Method::GET, &path, None).await)
    }
}
