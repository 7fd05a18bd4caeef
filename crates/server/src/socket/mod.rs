//! Socket.IO v4 (Engine.IO v4, protocol 5) on `/socket.io/`, namespace `/agent`, websocket
//! transport — what both official Platos clients use (`platos-wire.md` §4.2–4.4).
//!
//! Hand-rolled over axum's websocket rather than a Socket.IO library because the clients need
//! two things libraries do not give: a CONNECT_ERROR carrying `data: {status, code}` (the TS
//! client refreshes its token on `data.status == 401`), and packets pipelined right after the
//! namespace CONNECT (the Python client sends `40/agent,` and its `message` back to back) being
//! processed after the connect, not dropped. Here one task reads a connection's frames in order
//! and finishes each before the next, which gives that ordering for free.
//!
//! - [`frame`]: the text framing.
//! - [`connection`]: one connection's loop (open packet, pings, namespace connect, dispatch).
//! - [`agent`]: the `/agent` events (`message`, `stop`, `resume_stream`, `join_thread`, …).

mod agent;
mod connection;
mod frame;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentry_core::Scope;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Credentials;

/// The only namespace served.
pub const NAMESPACE: &str = "/agent";
/// Largest frame accepted from a client.
const MAX_PAYLOAD: usize = 1_000_000;
/// How long a resume position is remembered after its socket went away.
const CURSOR_TTL: Duration = Duration::from_secs(3600);

/// Who resumes what: a user's view of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CursorKey {
    scope: Scope,
    user: String,
    thread_id: String,
}

/// The last event sent to a user for a thread's turn.
#[derive(Debug, Clone)]
struct Cursor {
    turn_id: String,
    seq: i64,
    at: Instant,
}

/// Socket.IO bookkeeping shared by all connections.
#[derive(Debug, Default)]
pub struct Sockets {
    open: AtomicUsize,
    cursors: Mutex<HashMap<CursorKey, Cursor>>,
}

impl Sockets {
    /// Connections currently open.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Remembers the last event sent for a thread, so `resume_stream` without a cursor (what the
    /// official clients send) continues after it. A turn's `done` forgets it.
    fn record(&self, key: &CursorKey, turn_id: &str, seq: i64, done: bool) {
        let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        if done {
            cursors.remove(key);
            return;
        }
        if cursors.len() > 10_000 {
            cursors.retain(|_, c| c.at.elapsed() < CURSOR_TTL);
        }
        cursors.insert(key.clone(), Cursor { turn_id: turn_id.to_owned(), seq, at: Instant::now() });
    }

    /// Saves the positions of streams cut by a shutdown, so clients that resume without a cursor
    /// on the next start (the official clients) continue after what they already have.
    pub async fn save(&self, store: &agentry_store::Store) -> agentry_store::StoreResult<()> {
        let saved: Vec<agentry_store::StreamCursor> = {
            let cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
            cursors
                .iter()
                .filter(|(_, c)| c.at.elapsed() < CURSOR_TTL)
                .map(|(key, c)| agentry_store::StreamCursor {
                    scope: key.scope.clone(),
                    user_id: key.user.clone(),
                    thread_id: key.thread_id.clone(),
                    turn_id: c.turn_id.clone(),
                    seq: c.seq,
                })
                .collect()
        };
        store.save_stream_cursors(&saved, ttl_ago()).await
    }

    /// Loads the positions a previous process saved.
    pub async fn restore(&self, store: &agentry_store::Store) -> agentry_store::StoreResult<()> {
        let saved = store.stream_cursors(ttl_ago()).await?;
        let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        for cursor in saved {
            let key = CursorKey { scope: cursor.scope, user: cursor.user_id, thread_id: cursor.thread_id };
            cursors.entry(key).or_insert(Cursor { turn_id: cursor.turn_id, seq: cursor.seq, at: Instant::now() });
        }
        Ok(())
    }

    /// Where to resume `turn_id` for this user, if we sent them part of it.
    fn position(&self, key: &CursorKey, turn_id: &str) -> Option<i64> {
        let cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        cursors.get(key).filter(|c| c.turn_id == turn_id && c.at.elapsed() < CURSOR_TTL).map(|c| c.seq)
    }
}

/// The wall-clock time one cursor lifetime ago.
fn ttl_ago() -> agentry_core::Timestamp {
    let ttl = i64::try_from(CURSOR_TTL.as_millis()).unwrap_or(i64::MAX);
    agentry_core::Timestamp(agentry_core::Timestamp::now().0.saturating_sub(ttl))
}

/// Query of the Engine.IO handshake.
#[derive(Debug, Deserialize)]
pub struct Handshake {
    #[serde(rename = "EIO")]
    eio: Option<String>,
    transport: Option<String>,
}

/// `GET /socket.io/?EIO=4&transport=websocket`: upgrades to a Socket.IO connection.
pub async fn upgrade(
    State(state): State<AppState>,
    Query(handshake): Query<Handshake>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Engine.IO's own error shape: {code, message}.
    let refuse = |code: u8, message: &str| {
        (StatusCode::BAD_REQUEST, axum::Json(serde_json::json!({ "code": code, "message": message }))).into_response()
    };
    if handshake.eio.as_deref() != Some("4") {
        return refuse(5, "Unsupported protocol version (EIO=4 is required)");
    }
    if handshake.transport.as_deref() != Some("websocket") {
        return refuse(0, "Transport unknown: only the websocket transport is supported");
    }
    let Ok(ws) = ws else {
        return refuse(3, "Bad request: expected a websocket upgrade");
    };
    // Header credentials are a fallback for the namespace CONNECT (the Python client sends them
    // here only); unreadable headers simply count as absent.
    let credentials = Credentials::from_headers(&headers).unwrap_or_default();
    ws.read_buffer_size(8 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(MAX_PAYLOAD)
        .on_upgrade(move |socket| connection::run(state, socket, credentials))
}
