//! Sight into turns: spans (stored with the event log, exported over OTLP), metrics and the
//! per-turn log line.
//!
//! Spans are built where the work happens — [`crate::step::call_model`] (a model call), the tool
//! loop (a tool call), [`crate::terminate`] (the turn) — and go through the turn's log to the
//! replica's [`crate::log::LogWriter`], which stores them in the transaction that stores the
//! events of the same moment and then offers them to the exporter. Nothing here makes a turn
//! wait: the exporter's queue is bounded and drops what does not fit.

pub mod metrics;
mod otlp;
pub(crate) mod spans;

use std::sync::Arc;
use std::time::Duration;

use agentry_store::Span;

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
    pub(crate) fn records_spans(&self) -> bool {
        self.config.store_spans || self.exporter.is_some()
    }

    /// Offers written spans to the exporter.
    pub(crate) fn export(&self, spans: &[Span]) {
        if let Some(exporter) = &self.exporter {
            exporter.offer(spans, &self.metrics);
        }
    }
}
