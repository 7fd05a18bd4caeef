//! Sight into turns: spans (stored with the event log, exported over OTLP), metrics and the
//! per-turn log line.
//!
//! Spans are built where the work happens — [`crate::step::call_model`] (a model call), the tool
//! loop (a tool call), [`crate::terminate`] (the turn) — and held by the run's
//! [`crate::log::TurnLog`] until the run ends or parks; the replica's [`crate::log::LogWriter`]
//! then stores them in the transaction of that event batch and offers them to the exporter.
//! Nothing here makes a turn wait: the exporter's queue is bounded and drops what does not fit.

pub mod metrics;
mod otlp;
pub(crate) mod spans;

use std::sync::Arc;
use std::time::Duration;

use agentry_core::{TokenUsage, Turn};
use agentry_store::{ModelCall, Span};

use crate::log::TurnLog;
use metrics::{CostLabels, ModelCallLabels, ModelLabels, TokenLabels, ToolLabels, TurnLabels};
pub(crate) use spans::{ToolOutcome, TurnEnd, Window};

pub use metrics::Metrics;
pub use otlp::OtlpConfig;

/// What the engine records about turns.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Store spans (what the trace views read).
    pub store_spans: bool,
    /// How long stored spans are kept.
    pub span_retention: Duration,
    /// Put prompts, answers, tool arguments and results on spans.
    pub capture_content: bool,
    /// Export spans to an OpenTelemetry collector.
    pub otlp: Option<OtlpConfig>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            store_spans: true,
            span_retention: Duration::from_secs(30 * 86_400),
            capture_content: false,
            otlp: None,
        }
    }
}

/// The engine's metrics and span sinks.
pub(crate) struct Telemetry {
    pub(crate) metrics: Arc<Metrics>,
    exporter: Option<otlp::Exporter>,
    pub(crate) config: TelemetryConfig,
}

impl Telemetry {
    /// Starts the exporter, if one is configured.
    pub(crate) fn start(config: TelemetryConfig, replica_id: &str, http: reqwest::Client) -> Telemetry {
        let metrics = Arc::new(Metrics::default());
        let exporter = config.otlp.clone().map(|otlp| otlp::Exporter::start(otlp, replica_id, http, metrics.clone()));
        Telemetry { metrics, exporter, config }
    }

    /// Whether spans are wanted at all (stored or exported).
    fn records_spans(&self) -> bool {
        self.config.store_spans || self.exporter.is_some()
    }

    /// A model call ended: its metrics, and its span on the turn's log.
    pub(crate) fn model_call(
        &self,
        log: &mut TurnLog,
        turn: &Turn,
        call: &ModelCall,
        at: Window,
        content: Option<(serde_json::Value, &str)>,
    ) {
        let model = format!("{}:{}", call.provider, call.model);
        let m = &self.metrics;
        let seconds = (at.end_ns - at.start_ns).max(0) as f64 / 1e9;
        m.model_call_duration
            .get_or_create(&ModelCallLabels { model: model.clone(), status: call.status.as_str().to_owned() })
            .observe(seconds);
        if let Some(first) = call.first_token_at {
            let ttft = (first.0 - call.started_at.0).max(0) as f64 / 1e3;
            m.time_to_first_token.get_or_create(&ModelLabels { model: model.clone() }).observe(ttft);
        }
        self.count_usage(&turn.agent_id, &model, &call.usage);
        if self.records_spans() {
            let content = content.filter(|_| self.config.capture_content);
            log.span(spans::chat(turn, call, at, content));
        }
    }

    fn count_usage(&self, agent: &str, model: &str, usage: &TokenUsage) {
        let m = &self.metrics;
        for (kind, n) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cached_input", usage.cached_input_tokens),
            ("reasoning", usage.reasoning_tokens),
        ] {
            if n > 0 {
                let labels = TokenLabels { agent: agent.to_owned(), model: model.to_owned(), kind: kind.to_owned() };
                m.tokens.get_or_create(&labels).inc_by(n);
            }
        }
        let cost = u64::try_from(usage.cost.0).unwrap_or(0);
        m.cost.get_or_create(&CostLabels { agent: agent.to_owned(), model: model.to_owned() }).inc_by(cost);
    }

    /// A tool call of a turn ended: its metrics and its span. `known`: the agent has the tool —
    /// a name a model made up is labelled `unknown`, so models cannot grow the series.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tool_call(
        &self,
        log: &mut TurnLog,
        turn: &Turn,
        call_id: &str,
        tool: &str,
        known: bool,
        at: Window,
        outcome: ToolOutcome<'_>,
    ) {
        let label = if known { tool } else { "unknown" };
        let labels = ToolLabels { tool: label.to_owned(), status: outcome.status.to_owned() };
        self.metrics.tool_calls.get_or_create(&labels).inc();
        self.metrics.tool_call_duration.get_or_create(&labels).observe((at.end_ns - at.start_ns).max(0) as f64 / 1e9);
        if self.records_spans() {
            let outcome = ToolOutcome { content: outcome.content.filter(|_| self.config.capture_content), ..outcome };
            log.span(spans::tool(turn, call_id, tool, at, outcome));
        }
    }

    /// A turn ended: its metrics, its span and its log line.
    pub(crate) fn turn_ended(&self, log: &mut TurnLog, turn: &Turn, at: Window, end: TurnEnd<'_>) {
        let labels = TurnLabels { agent: turn.agent_id.clone(), status: end.status.to_owned() };
        let seconds = (at.end_ns - at.start_ns).max(0) as f64 / 1e9;
        self.metrics.turns.get_or_create(&labels).inc();
        self.metrics.turn_duration.get_or_create(&labels).observe(seconds);
        tracing::info!(
            turn = %turn.id,
            thread = %turn.thread_id,
            agent = %turn.agent_id,
            user = %turn.user_id,
            organization = %turn.scope.organization_id,
            project = %turn.scope.project_id,
            status = end.status,
            duration_ms = (at.end_ns - at.start_ns) / 1_000_000,
            steps = end.steps,
            input_tokens = end.usage.input_tokens,
            output_tokens = end.usage.output_tokens,
            cost_cents = end.usage.cost.as_cents(),
            error = end.error.map(|(code, _)| code),
            "turn ended"
        );
        if self.records_spans() {
            let end = TurnEnd { content: end.content.filter(|_| self.config.capture_content), ..end };
            log.span(spans::turn(turn, at, end));
        }
    }

    /// Offers written spans to the exporter.
    pub(crate) fn export(&self, spans: &[Span]) {
        if let Some(exporter) = &self.exporter {
            exporter.offer(spans, &self.metrics);
        }
    }
}
