//! OTLP/HTTP span export (protobuf): a bounded queue that turns never wait on, and one task
//! that sends batches to the collector's `/v1/traces`.
//!
//! The messages below are the subset of `opentelemetry/proto/collector/trace/v1` and
//! `trace/v1`, `common/v1`, `resource/v1` that Agentry sends, with the official field numbers.
//! A span that cannot be queued (the queue is full) or sent (the collector fails or is absent)
//! is dropped and counted in `agentry_spans_dropped_total`.

use std::sync::Arc;
use std::time::Duration;

use agentry_store::{Span, SpanKind, SpanStatus};
use serde_json::Value;
use tokio::sync::mpsc;

use super::metrics::{Metrics, ReasonLabels};

/// Spans waiting for export, at most.
const QUEUE: usize = 8192;
/// Spans per request, at most.
const BATCH: usize = 512;
/// How long a partial batch waits for more spans.
const LINGER: Duration = Duration::from_millis(500);

/// Where and how spans are exported.
#[derive(Debug, Clone)]
pub struct OtlpConfig {
    /// The collector: a base URL (`/v1/traces` is appended) or the full traces URL.
    pub endpoint: String,
    /// Headers sent with every request (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl OtlpConfig {
    /// The URL spans are POSTed to.
    pub fn traces_url(&self) -> String {
        let base = self.endpoint.trim_end_matches('/');
        if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") }
    }
}

/// The exporter's queue.
pub(crate) struct Exporter {
    queue: mpsc::Sender<Span>,
}

impl Exporter {
    /// Starts the export task.
    pub(crate) fn start(
        config: OtlpConfig,
        replica_id: &str,
        http: reqwest::Client,
        metrics: Arc<Metrics>,
    ) -> Exporter {
        let (queue, spans) = mpsc::channel(QUEUE);
        let resource = resource(replica_id);
        tokio::spawn(export(config, resource, http, metrics, spans));
        Exporter { queue }
    }

    /// Queues spans without waiting; what does not fit is dropped and counted.
    pub(crate) fn offer(&self, spans: &[Span], metrics: &Metrics) {
        for span in spans {
            if self.queue.try_send(span.clone()).is_err() {
                metrics.spans_dropped.get_or_create(&ReasonLabels { reason: "queue_full".into() }).inc();
            }
        }
    }
}

async fn export(
    config: OtlpConfig,
    resource: Resource,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
    mut spans: mpsc::Receiver<Span>,
) {
    let url = config.traces_url();
    let mut batch = Vec::with_capacity(BATCH);
    while let Some(first) = spans.recv().await {
        batch.push(first);
        let deadline = tokio::time::Instant::now() + LINGER;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, spans.recv()).await {
                Ok(Some(span)) => batch.push(span),
                Ok(None) | Err(_) => break,
            }
        }
        let count = batch.len() as u64;
        let body = prost::Message::encode_to_vec(&request(&resource, batch.drain(..)));
        let mut post = http
            .post(&url)
            .timeout(config.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body);
        for (name, value) in &config.headers {
            post = post.header(name, value);
        }
        match post.send().await {
            Ok(answer) if answer.status().is_success() => {
                metrics.spans_exported.inc_by(count);
            }
            outcome => {
                let why = match outcome {
                    Ok(answer) => format!("the collector answered {}", answer.status()),
                    Err(err) => err.to_string(),
                };
                tracing::debug!(%url, %why, spans = count, "span export failed");
                metrics.spans_dropped.get_or_create(&ReasonLabels { reason: "export_failed".into() }).inc_by(count);
            }
        }
    }
}

fn resource(replica_id: &str) -> Resource {
    Resource {
        attributes: vec![
            key_value("service.name", &Value::from("agentry")),
            key_value("service.version", &Value::from(env!("CARGO_PKG_VERSION"))),
            key_value("service.instance.id", &Value::from(replica_id)),
        ],
    }
}

fn request(resource: &Resource, spans: impl Iterator<Item = Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource.clone()),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "agentry".into(), version: env!("CARGO_PKG_VERSION").into() }),
                spans: spans.map(encode_span).collect(),
            }],
        }],
    }
}

fn encode_span(span: Span) -> OtlpSpan {
    let attributes: Vec<KeyValue> = span.attributes.iter().map(|(k, v)| key_value(k, v)).collect();
    OtlpSpan {
        trace_id: hex_bytes(&span.trace_id),
        span_id: hex_bytes(&span.span_id),
        parent_span_id: span.parent_span_id.as_deref().map(hex_bytes).unwrap_or_default(),
        name: span.name,
        kind: match span.kind {
            SpanKind::Internal => 1,
            SpanKind::Client => 3,
        },
        start_time_unix_nano: u64::try_from(span.start_ns).unwrap_or(0),
        end_time_unix_nano: u64::try_from(span.end_ns).unwrap_or(0),
        attributes,
        status: Some(match span.status {
            SpanStatus::Ok => Status { message: String::new(), code: 1 },
            SpanStatus::Error => Status { message: span.error.unwrap_or_default(), code: 2 },
        }),
    }
}

fn key_value(key: &str, value: &Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(any_value(value)) }
}

fn any_value(value: &Value) -> AnyValue {
    let value = match value {
        Value::String(s) => any_value::Value::Text(s.clone()),
        Value::Bool(b) => any_value::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::Int(i),
            None => any_value::Value::Double(n.as_f64().unwrap_or(0.0)),
        },
        Value::Array(items) => any_value::Value::Array(ArrayValue { values: items.iter().map(any_value).collect() }),
        Value::Null | Value::Object(_) => any_value::Value::Text(value.to_string()),
    };
    AnyValue { value: Some(value) }
}

/// Hex ids as bytes (ids Agentry writes are always valid hex).
fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2).filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

/// `ExportTraceServiceRequest`.
#[derive(Clone, PartialEq, prost::Message)]
struct ExportTraceServiceRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Resource {
    #[prost(message, repeated, tag = "1")]
    attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    spans: Vec<OtlpSpan>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct InstrumentationScope {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    version: String,
}

/// `opentelemetry.proto.trace.v1.Span`.
#[derive(Clone, PartialEq, prost::Message)]
struct OtlpSpan {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    span_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    name: String,
    /// `SpanKind`: 1 internal, 3 client.
    #[prost(int32, tag = "6")]
    kind: i32,
    #[prost(fixed64, tag = "7")]
    start_time_unix_nano: u64,
    #[prost(fixed64, tag = "8")]
    end_time_unix_nano: u64,
    #[prost(message, repeated, tag = "9")]
    attributes: Vec<KeyValue>,
    #[prost(message, optional, tag = "15")]
    status: Option<Status>,
}

/// `Status`: code 1 ok, 2 error.
#[derive(Clone, PartialEq, prost::Message)]
struct Status {
    #[prost(string, tag = "2")]
    message: String,
    #[prost(int32, tag = "3")]
    code: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct KeyValue {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct AnyValue {
    #[prost(oneof = "any_value::Value", tags = "1, 2, 3, 4, 5")]
    value: Option<any_value::Value>,
}

mod any_value {
    /// The one value an `AnyValue` holds.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub(super) enum Value {
        #[prost(string, tag = "1")]
        Text(String),
        #[prost(bool, tag = "2")]
        Bool(bool),
        #[prost(int64, tag = "3")]
        Int(i64),
        #[prost(double, tag = "4")]
        Double(f64),
        #[prost(message, tag = "5")]
        Array(super::ArrayValue),
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    values: Vec<AnyValue>,
}
