//! Agentry's HTTP surface: authentication, the Platos REST API, health and metrics.
//!
//! # Layout
//! - [`app`]: the composition root — [`App::build`] assembles a replica (store, bootstrap, engine,
//!   HTTP state) from an [`AppConfig`]; [`App::serve`] serves it and shuts it down gracefully.
//! - [`router`] assembles the HTTP app: [`platos`] routes under `/api/v1/agent` (REST and the SSE
//!   lanes), [`socket`] (Socket.IO `/agent` at `/socket.io/`), [`health`] and [`metrics`] at the
//!   root, wrapped by the [`idempotency`] and metrics layers; the [`erdo`] wire protocol at the
//!   root (`/tokens`, …) with its own authentication (API key or scoped token).
//! - [`dashboard`]: the operator dashboard at `/dashboard` (an embedded page, a cookie session,
//!   the Platos routes again under `/dashboard/api/v1/agent` behind that session).
//! - [`auth`] turns headers into a [`Principal`](agentry_core::Principal); [`error::ApiError`] is
//!   the single failure → HTTP mapping; [`extract`] holds the input extractors.
//!
//! Architecture invariant: handlers are thin. They extract typed input, call the store (or, later,
//! the engine) with the caller's scope, and map the result; no SQL and no business rules here.

#![warn(missing_docs)]

pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod dashboard;
pub mod erdo;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod platos;
pub mod routes;
pub mod socket;

pub use app::{App, AppConfig, AppError, BootstrapConfig};

use std::sync::Arc;
use std::time::Instant;

use agentry_engine::Engine;
use agentry_store::Store;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;

/// Limits and switches of the HTTP surface.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Largest accepted request body, in bytes (larger → 413).
    pub max_body_bytes: usize,
    /// Engine.IO ping interval of the Socket.IO transport.
    pub ping_interval: std::time::Duration,
    /// How long a socket may stay silent after a ping before it is closed, unless a turn is
    /// streaming to it (the Python client never answers pings).
    pub ping_timeout: std::time::Duration,
    /// Interval of SSE heartbeats.
    pub sse_heartbeat: std::time::Duration,
    /// While a turn streams to a socket, how often it is pinged: each pong confirms what the
    /// client has, which is where a bare `resume_stream` continues.
    pub stream_ping_interval: std::time::Duration,
    /// The longest lifetime (`exp - iat`) of a session token accepted, in seconds.
    pub max_token_lifetime_secs: i64,
    /// Connection caps and the header-read timeout.
    pub connections: listen::ConnectionLimits,
    /// How long a socket may stay open without a connected `/agent` namespace (after opening,
    /// or after leaving it) before it is closed.
    pub namespace_deadline: std::time::Duration,
    /// Browser origins allowed to call the API (`None`: any origin but `null`). Credentials
    /// travel in headers, never cookies, so CORS never allows credentials.
    pub cors_origins: Option<Vec<String>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_body_bytes: 1024 * 1024,
            ping_interval: std::time::Duration::from_secs(25),
            ping_timeout: std::time::Duration::from_secs(600),
            sse_heartbeat: std::time::Duration::from_secs(15),
            stream_ping_interval: std::time::Duration::from_millis(500),
            max_token_lifetime_secs: 30 * 86_400,
            cors_origins: None,
            namespace_deadline: std::time::Duration::from_secs(10),
            connections: listen::ConnectionLimits::default(),
        }
    }
}

/// Shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Persistent state.
    pub store: Store,
    /// The turn engine.
    pub engine: Engine,
    /// Socket.IO bookkeeping: open connections, resume positions.
    pub sockets: Arc<socket::Sockets>,
    /// Flips to true when the server shuts down; long-lived streams end then.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// Limits.
    pub options: Arc<ServerOptions>,
    /// The HTTP layer's metric families (the engine's registry serves them).
    pub metrics: Arc<metrics::HttpMetrics>,
    /// Process start, for uptime.
    pub started: Instant,
}

impl AppState {
    /// State over an open store and a started engine.
    pub fn new(engine: Engine, options: ServerOptions, shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        let store = engine.store().clone();
        let metrics = Arc::new(metrics::HttpMetrics::register(engine.metrics()));
        AppState {
            store: store.clone(),
            engine,
            sockets: socket::Sockets::new(store.clone()),
            shutdown,
            options: Arc::new(options),
            metrics,
            started: Instant::now(),
        }
    }
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let limit = state.options.max_body_bytes;
    Router::new()
        .nest("/api/v1/agent", platos::routes())
        .merge(dashboard::routes(&state))
        .merge(erdo::routes())
        .merge(routes::router(root_endpoints()))
        .layer(middleware::from_fn_with_state(state.clone(), idempotency::layer))
        .layer(middleware::from_fn(extract::refuse_nul_in_url))
        .layer(axum::Extension(extract::BodyLimit(limit)))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::layer))
        .layer(
            tower_http::cors::CorsLayer::new()
                .allow_origin(allowed_origins(state.options.cors_origins.clone()))
                .allow_methods(tower_http::cors::AllowMethods::mirror_request())
                .allow_headers(tower_http::cors::AllowHeaders::mirror_request())
                .max_age(std::time::Duration::from_secs(600)),
        )
        .fallback(|| async { error::ApiError::not_found("route") })
        .with_state(state)
}

/// The endpoints at the root: health, Prometheus metrics, the Socket.IO endpoint.
pub fn root_endpoints() -> Vec<routes::Endpoint> {
    use routes::{Verb::Get, at};
    vec![
        at(Get, "/api/health", health::health)
            .doc("Liveness and the store's reachability (`{status}`)")
            .answers::<agentry_core::wire::admin::Health>(),
        at(Get, "/metrics", metrics::render).doc("Prometheus metrics (text exposition format)").text("text/plain"),
        at(Get, "/socket.io/", socket::upgrade)
            .doc("Engine.IO v4 WebSocket upgrade (`?EIO=4&transport=websocket`); Socket.IO namespace `/agent`")
            .status(101),
        at(Get, "/openapi.json", openapi::json).doc("This document (OpenAPI 3.1)"),
        at(Get, "/docs", openapi::page).doc("The API reference page (works offline)").text("text/html"),
        at(Get, "/docs/docs.js", openapi::script).doc("The reference page's script").text("text/javascript"),
    ]
}

/// The CORS origin rule: the configured list, or any origin but `null` (sandboxed frames, local
/// files), which no API client needs.
fn allowed_origins(list: Option<Vec<String>>) -> tower_http::cors::AllowOrigin {
    tower_http::cors::AllowOrigin::predicate(move |origin, _| {
        let origin = origin.as_bytes();
        origin != b"null" && list.as_ref().is_none_or(|list| list.iter().any(|o| o.as_bytes() == origin))
    })
}
