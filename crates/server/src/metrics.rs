//! `/metrics` and the request log: the HTTP layer's families (requests, their duration,
//! connections, uptime) join the engine's registry ([`agentry_engine::telemetry::Metrics`]), and
//! every request ends with one structured log line.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use agentry_engine::telemetry::Metrics as Registry;
use agentry_engine::telemetry::metrics::{Histograms, histograms};
use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::AppState;

/// A request, under its route template (never the raw path, which carries ids).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

/// The running version.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

/// The HTTP layer's metric families.
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Histograms<RequestLabels>,
    connections: Gauge,
    uptime: Gauge<f64, AtomicU64>,
}

impl HttpMetrics {
    /// Creates the families and adds them to the engine's registry.
    pub fn register(registry: &Registry) -> Self {
        let metrics = HttpMetrics {
            requests: Family::default(),
            duration: histograms(),
            connections: Gauge::default(),
            uptime: Gauge::default(),
        };
        let build = Family::<VersionLabels, Gauge>::default();
        build.get_or_create(&VersionLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register(|r| {
            r.register("http_requests", "HTTP requests answered", metrics.requests.clone());
            r.register(
                "http_request_duration_seconds",
                "Time to answer an HTTP request (to its headers, for streams)",
                metrics.duration.clone(),
            );
            r.register("socket_connections", "Open Socket.IO connections on this replica", metrics.connections.clone());
            r.register("uptime_seconds", "Seconds since this replica started", metrics.uptime.clone());
            r.register("build_info", "The running version", build);
        });
        metrics
    }
}

/// A method as a label: the standard ones, and `other` for anything a client invents (labels
/// come from a closed set, or a client could grow the series without bound).
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Middleware: counts and times every request, then logs it.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method()).to_owned();
    let path = request.uri().path().to_owned();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let quiet = matches!(route.as_str(), "/api/health" | "/metrics");
    let labels = RequestLabels { method, route, status };
    state.metrics.requests.get_or_create(&labels).inc();
    state.metrics.duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    let duration_ms = elapsed.as_secs_f64() * 1e3;
    let RequestLabels { method, route, status } = labels;
    if quiet {
        tracing::debug!(%method, %route, %path, status, duration_ms, "request");
    } else {
        tracing::info!(%method, %route, %path, status, duration_ms, "request");
    }
    response
}

/// `GET /metrics`: every family in the Prometheus text format.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let registry = state.engine.metrics();
    state.metrics.uptime.set(state.started.elapsed().as_secs_f64());
    state.metrics.connections.set(i64::try_from(state.sockets.open_connections()).unwrap_or(i64::MAX));
    match state.store.unfinished_turn_counts().await {
        Ok(counts) => {
            for name in ["queued", "running", "waiting"] {
                let n = counts.iter().find(|(state, _)| state == name).map_or(0, |(_, n)| *n);
                registry.turns_in_state(name, n);
            }
        }
        Err(err) => tracing::warn!(%err, "cannot count unfinished turns for /metrics"),
    }
    ([(header::CONTENT_TYPE, agentry_engine::telemetry::metrics::CONTENT_TYPE)], registry.encode())
}
