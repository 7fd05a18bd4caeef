//! The operator dashboard at `/dashboard`: one page and its script, embedded in the binary.
//!
//! The page (`assets/index.html`, the ES modules `app.js` — the shell — `lib.js`,
//! `conversations.js`, `operations.js`, and `app.css`: plain HTML, CSS and JavaScript, no build
//! step, nothing loaded from elsewhere) signs in with an operator API key ([`session`]) and then
//! reads and writes through **the Platos API itself**, mounted again under
//! `/dashboard/api/v1/agent` behind the session check: the same handlers and the same scoped
//! queries as `/api/v1/agent`, acting as an operator of the scope the session picked.
//! The Erdo dataset reads (list, get, query) are mounted the same way under `/dashboard/erdo`.
//! `/dashboard/live` streams what the scope's operators hear (approvals, budget alerts, runs) as
//! server-sent events, so the approval queue and the counters update without a reload.

pub mod session;

use std::convert::Infallible;
use std::sync::LazyLock;

use agentry_engine::ScopeEvent;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use serde_json::json;

use crate::error::ApiError;
use crate::routes::{self, Endpoint, Verb, at};
use crate::{AppState, erdo};
use session::Session;

/// A file served from the binary, with its validator.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: LazyLock<String>,
}

macro_rules! asset {
    ($file:literal, $type:literal) => {
        Asset {
            body: include_str!(concat!("assets/", $file)),
            content_type: $type,
            etag: LazyLock::new(|| {
                format!("\"{}\"", &agentry_core::sha256_hex(include_str!(concat!("assets/", $file)).as_bytes())[..16])
            }),
        }
    };
}

static INDEX: &str = include_str!("assets/index.html");
/// The page's files by name: the shell script, the modules it imports, the style sheet.
static ASSETS: [(&str, Asset); 5] = [
    ("app.js", asset!("app.js", "text/javascript; charset=utf-8")),
    ("lib.js", asset!("lib.js", "text/javascript; charset=utf-8")),
    ("conversations.js", asset!("conversations.js", "text/javascript; charset=utf-8")),
    ("operations.js", asset!("operations.js", "text/javascript; charset=utf-8")),
    ("app.css", asset!("app.css", "text/css; charset=utf-8")),
];

/// What the page may load and do: its own script and style, nothing from elsewhere, never framed.
/// Artifacts are shown in sandboxed frames without scripts (`srcdoc`), after the server's
/// sanitiser.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Routes of the dashboard: the page, the session, the live feed, and behind the session the
/// Platos API (`/dashboard/api/v1/agent`) and the Erdo dataset reads (`/dashboard/erdo`).
pub fn routes(state: &AppState) -> Router<AppState> {
    let session = axum::middleware::from_fn_with_state(state.clone(), session::require);
    Router::new()
        .nest("/dashboard/api/v1/agent", crate::platos::routes().layer(session.clone()))
        .merge(routes::router(session_endpoints()).route_layer(session))
        .merge(routes::router(open_endpoints()))
}

/// The Erdo dataset reads behind the dashboard session (the Platos routes are mounted too, under
/// `/dashboard/api/v1/agent`).
pub fn session_endpoints() -> Vec<Endpoint> {
    use Verb::*;
    vec![
        at(Get, "/dashboard/erdo/datasets", erdo::datasets::list),
        at(Get, "/dashboard/erdo/datasets/{slug}", erdo::datasets::get),
        at(Post, "/dashboard/erdo/datasets/{slug}/query", erdo::datasets::query),
    ]
}

/// The page, its assets and the session itself: reachable without a session (each answers what a
/// signed-out browser may see, and checks the session where it needs one).
pub fn open_endpoints() -> Vec<Endpoint> {
    use Verb::*;
    vec![
        at(Get, "/dashboard", page),
        at(Get, "/dashboard/", page),
        at(Get, "/dashboard/assets/{file}", asset),
        at(Post, "/dashboard/session", session::sign_in),
        at(Get, "/dashboard/session", session::current),
        at(Delete, "/dashboard/session", session::sign_out),
        at(Put, "/dashboard/session/scope", session::pick_scope),
        at(Get, "/dashboard/scopes", session::scopes),
        at(Get, "/dashboard/live", live),
    ]
}

/// The page. When the request comes with a live session it says so in a `<meta>`, so the script
/// asks for the session only when there is one (no failed request on a signed-out load).
async fn page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let signed_in = session::is_live(&state, &headers).await;
    let body = if signed_in {
        INDEX.replace("<!--session-->", r#"<meta name="agentry-session" content="signed-in">"#)
    } else {
        INDEX.to_owned()
    };
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    protect(response.headers_mut());
    response
}

/// `GET /dashboard/assets/{file}`: one of [`ASSETS`]; anything else is 404.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|(name, _)| *name == file) {
        Some((_, asset)) => serve(asset, &headers),
        None => ApiError::not_found("asset").into_response(),
    }
}

fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = asset.etag.as_str();
    let mut response = if headers.get(header::IF_NONE_MATCH).is_some_and(|v| v.as_bytes() == etag.as_bytes()) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    protect(response.headers_mut());
    response
}

/// Headers every page file is served with (the dashboard's and `/docs`): no framing, scripts from
/// this origin only, no sniffing.
pub(crate) fn protect(set: &mut HeaderMap) {
    set.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    set.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    set.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    set.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
}

/// How often a live feed checks that its session still holds.
const LIVE_SESSION_CHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// `GET /dashboard/live`: server-sent events of the session's scope — `approval` (an
/// `approval_needed` / `approval_resolved` event), `alert` (a budget alert), `run` (a background
/// run changed) — from every replica, until the server stops or the session ends (checked every
/// 30 s: signed out, expired, its key revoked).
async fn live(State(state): State<AppState>, session: Session) -> Result<Response, ApiError> {
    let principal = session.principal()?;
    let feed = state.engine.watch_scope(&principal.scope);
    let shutdown = state.shutdown.clone();
    let mut check = tokio::time::interval_at(tokio::time::Instant::now() + LIVE_SESSION_CHECK, LIVE_SESSION_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watched = (feed, check, session, state.clone());
    let stream = futures_util::stream::unfold(watched, move |(mut feed, mut check, session, state)| {
        let mut shutdown = shutdown.clone();
        async move {
            let event = loop {
                tokio::select! {
                    event = feed.next() => break event?,
                    _ = shutdown.changed() => return None,
                    _ = check.tick() => {
                        if !session.still_live(&state).await {
                            return None;
                        }
                    }
                }
            };
            let (name, data) = match event {
                ScopeEvent::Turn(event) => ("approval", event.to_wire()),
                ScopeEvent::Alert(alert) => ("alert", (*alert).clone()),
                ScopeEvent::Run(run) => ("run", crate::platos::bgo::run_update(&run)),
            };
            Some((
                Ok::<_, Infallible>(Event::default().event(name).data(data.to_string())),
                (feed, check, session, state),
            ))
        }
    });
    let heartbeat = Event::default().event("heartbeat").data(json!({}).to_string());
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(state.options.sse_heartbeat).event(heartbeat))
        .into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
