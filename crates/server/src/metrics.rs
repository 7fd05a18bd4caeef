//! Prometheus text metrics: request counts and latency by route and status.
//!
//! Hand-rolled on purpose: a handful of counters does not justify a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

#[derive(Debug, Default)]
struct RouteStats {
    count: u64,
    seconds_sum: f64,
}

/// Request counters, keyed by (method, route template, status).
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), RouteStats>>,
}

impl Metrics {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let stats = requests.entry((method.to_owned(), route.to_owned(), status)).or_default();
        stats.count += 1;
        stats.seconds_sum += seconds;
    }

    /// The metrics in Prometheus text exposition format.
    pub fn to_prometheus(&self, uptime_seconds: f64, open_sockets: usize) -> String {
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str("# HELP agentry_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE agentry_http_requests_total counter\n");
        for ((method, route, status), stats) in requests.iter() {
            let _ = writeln!(
                out,
                "agentry_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                stats.count
            );
        }
        out.push_str("# HELP agentry_http_request_duration_seconds_sum Time spent answering HTTP requests.\n");
        out.push_str("# TYPE agentry_http_request_duration_seconds_sum counter\n");
        for ((method, route, status), stats) in requests.iter() {
            let _ = writeln!(
                out,
                "agentry_http_request_duration_seconds_sum{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {:.6}",
                stats.seconds_sum
            );
        }
        out.push_str("# HELP agentry_socket_connections Open Socket.IO connections.\n");
        out.push_str("# TYPE agentry_socket_connections gauge\n");
        let _ = writeln!(out, "agentry_socket_connections {open_sockets}");
        out.push_str("# HELP agentry_uptime_seconds Seconds since the server started.\n");
        out.push_str("# TYPE agentry_uptime_seconds gauge\n");
        let _ = writeln!(out, "agentry_uptime_seconds {uptime_seconds:.3}");
        let _ = writeln!(
            out,
            "# TYPE agentry_build_info gauge\nagentry_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

/// Middleware recording every request under its route template (never the raw path, which
/// would carry ids and grow without bound).
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.record(&method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`.
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.to_prometheus(state.started.elapsed().as_secs_f64(), state.sockets.open_connections()),
    )
}
