//! Prometheus metrics of the runtime: turns, model and tool calls, tokens, cost, refusals and
//! span export, in one registry the HTTP layer adds its own families to and `/metrics` encodes.
//!
//! Labels stay low-cardinality: agent ids, `provider:model`, tool names, states — never user,
//! thread or turn ids.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A family of histograms sharing one set of buckets.
pub type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Buckets for latencies from 1 ms to about 2 minutes.
pub fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

/// An agent and how its turn ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TurnLabels {
    /// The agent id.
    pub agent: String,
    /// `completed`, `failed`, `cancelled`.
    pub status: String,
}

/// A model.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// `provider:model`.
    pub model: String,
}

/// A model call and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelCallLabels {
    /// `provider:model`.
    pub model: String,
    /// `completed`, `failed`, `stopped`.
    pub status: String,
}

/// Tokens of one kind spent by an agent on a model.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// The agent id.
    pub agent: String,
    /// `provider:model`.
    pub model: String,
    /// `input`, `output`, `cached_input`, `reasoning`.
    pub kind: String,
}

/// What an agent spent on a model.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    /// The agent id.
    pub agent: String,
    /// `provider:model`.
    pub model: String,
}

/// A tool call and how it ended.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    /// The tool's name.
    pub tool: String,
    /// `ok`, `error`, `refused`.
    pub status: String,
}

/// Why something was refused.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `budget_cap`, `rate_limit`; for spans `queue_full`, `export_failed`.
    pub reason: String,
}

/// A turn state.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// `queued`, `running`, `waiting`.
    pub state: String,
}

/// The runtime's metric families.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Turns ended.
    pub turns: Family<TurnLabels, Counter>,
    /// Turn duration, start to end.
    pub turn_duration: Histograms<TurnLabels>,
    /// Time from a model call's start to its first token.
    pub time_to_first_token: Histograms<ModelLabels>,
    /// Model call duration.
    pub model_call_duration: Histograms<ModelCallLabels>,
    /// Tokens spent.
    pub tokens: Family<TokenLabels, Counter>,
    /// Cost in micro-cents.
    pub cost: Family<CostLabels, Counter>,
    /// Tool calls made.
    pub tool_calls: Family<ToolLabels, Counter>,
    /// Tool call duration.
    pub tool_call_duration: Histograms<ToolLabels>,
    /// Turns and messages refused by a budget cap or a rate limit.
    pub refusals: Family<ReasonLabels, Counter>,
    /// Spans handed to the OTLP exporter and accepted by the collector.
    pub spans_exported: Counter,
    /// Spans not exported (queue full, collector failing).
    pub spans_dropped: Family<ReasonLabels, Counter>,
    /// Turns by state across the installation (read from the store when scraped).
    turns_by_state: Family<StateLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Metrics {
            registry: Mutex::new(Registry::with_prefix("agentry")),
            turns: Family::default(),
            turn_duration: histograms(),
            time_to_first_token: histograms(),
            model_call_duration: histograms(),
            tokens: Family::default(),
            cost: Family::default(),
            tool_calls: Family::default(),
            tool_call_duration: histograms(),
            refusals: Family::default(),
            spans_exported: Counter::default(),
            spans_dropped: Family::default(),
            turns_by_state: Family::default(),
        };
        metrics.register(|r| {
            r.register("turns", "Turns ended, by agent and status", metrics.turns.clone());
            r.register("turn_duration_seconds", "Turn duration from start to end", metrics.turn_duration.clone());
            r.register(
                "model_time_to_first_token_seconds",
                "Time from a model call's start to its first token",
                metrics.time_to_first_token.clone(),
            );
            r.register("model_call_duration_seconds", "Model call duration", metrics.model_call_duration.clone());
            r.register("tokens", "Tokens spent, by agent, model and kind", metrics.tokens.clone());
            r.register("cost_micro_cents", "Cost in micro-cents, by agent and model", metrics.cost.clone());
            r.register("tool_calls", "Tool calls, by tool and status", metrics.tool_calls.clone());
            r.register("tool_call_duration_seconds", "Tool call duration", metrics.tool_call_duration.clone());
            r.register(
                "refusals",
                "Turns and messages refused by budget caps and rate limits",
                metrics.refusals.clone(),
            );
            r.register("spans_exported", "Spans accepted by the OTLP collector", metrics.spans_exported.clone());
            r.register("spans_dropped", "Spans not exported, by reason", metrics.spans_dropped.clone());
            r.register("turns_in_state", "Unfinished turns by state, across replicas", metrics.turns_by_state.clone());
        });
        metrics
    }
}

/// A family of latency histograms.
pub fn histograms<L: Clone + std::hash::Hash + Eq>() -> Histograms<L> {
    Family::new_with_constructor(latency_histogram as fn() -> Histogram)
}

impl Metrics {
    /// Adds families to the registry (the HTTP layer's, at start).
    pub fn register(&self, add: impl FnOnce(&mut Registry)) {
        add(&mut self.registry.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Everything, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }

    /// Sets how many unfinished turns are in `state` (`queued`, `running`, `waiting`).
    pub fn turns_in_state(&self, state: &str, n: i64) {
        self.turns_by_state.get_or_create(&StateLabels { state: state.to_owned() }).set(n);
    }

    /// Counts a refusal (`budget_cap`, `rate_limit`).
    pub(crate) fn refused(&self, reason: &str) {
        self.refusals.get_or_create(&ReasonLabels { reason: reason.to_owned() }).inc();
    }
}

/// The content type of [`Metrics::encode`].
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
