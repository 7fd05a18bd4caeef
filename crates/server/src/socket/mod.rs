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
//! - [`recovery`]: what a client has — written and pong-confirmed positions, connection state
//!   recovery — so a dropped transport loses nothing.

mod agent;
mod connection;
use agentry_core::socketio as frame;
mod recovery;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use agentry_core::{Principal, Scope, Timestamp};
use agentry_store::{SocketSession, Store, StreamCursor};
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::auth::Credentials;
use recovery::SessionState;

/// The only namespace served.
pub const NAMESPACE: &str = "/agent";
/// Largest frame accepted from a client.
const MAX_PAYLOAD: usize = 1_000_000;
/// How long a confirmed stream position is remembered.
const CURSOR_TTL: Duration = Duration::from_secs(3600);
/// How long a disconnected session can be recovered (socket.io's default).
const SESSION_TTL: Duration = Duration::from_secs(120);
/// How often confirmed positions are written to the store.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Who resumes what: a user's view of a thread.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CursorKey {
    scope: Scope,
    user: String,
    thread_id: String,
}

impl CursorKey {
    fn new(principal: &Principal, thread_id: &str) -> Self {
        CursorKey {
            scope: principal.scope.clone(),
            user: principal.owner_id().to_owned(),
            thread_id: thread_id.to_owned(),
        }
    }
}

/// The last event of a thread's turn a user's client confirmed.
#[derive(Debug, Clone)]
struct Cursor {
    turn_id: String,
    seq: i64,
    at: Instant,
}

#[derive(Default)]
struct Cursors {
    confirmed: HashMap<CursorKey, Cursor>,
    /// Changed since the last write to the store.
    dirty: HashSet<CursorKey>,
}

/// Socket.IO bookkeeping shared by all connections of this replica.
pub struct Sockets {
    open: AtomicUsize,
    store: Store,
    cursors: Mutex<Cursors>,
    /// Disconnected sessions that may be recovered, by private id.
    sessions: Mutex<HashMap<String, (Scope, String, SessionState, Instant)>>,
}

impl Sockets {
    /// The bookkeeping of a replica; confirmed positions are written to the store every second.
    pub fn new(store: Store) -> Arc<Sockets> {
        let sockets = Arc::new(Sockets {
            open: AtomicUsize::new(0),
            store,
            cursors: Mutex::new(Cursors::default()),
            sessions: Mutex::new(HashMap::new()),
        });
        tokio::spawn(flush_loop(Arc::downgrade(&sockets)));
        sockets
    }

    /// Connections currently open.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Records what a user's client confirmed of a thread's turn.
    fn confirm(&self, key: &CursorKey, turn_id: &str, seq: i64) {
        let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cursor) = cursors.confirmed.get(key)
            && cursor.turn_id == turn_id
            && cursor.seq >= seq
        {
            return;
        }
        if cursors.confirmed.len() > 100_000 {
            cursors.confirmed.retain(|_, c| c.at.elapsed() < CURSOR_TTL);
        }
        cursors.confirmed.insert(key.clone(), Cursor { turn_id: turn_id.to_owned(), seq, at: Instant::now() });
        cursors.dirty.insert(key.clone());
    }

    /// Where a user's client stands in `turn_id` of a thread, as confirmed here or on any replica.
    async fn confirmed(&self, key: &CursorKey, turn_id: &str) -> Option<i64> {
        let local = {
            let cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
            cursors.confirmed.get(key).filter(|c| c.at.elapsed() < CURSOR_TTL).map(|c| (c.turn_id.clone(), c.seq))
        };
        let (turn, seq) = match local {
            Some(found) => found,
            None => match self.store.stream_cursor(&key.scope, &key.user, &key.thread_id, ago(CURSOR_TTL)).await {
                Ok(Some(cursor)) => (cursor.turn_id, cursor.seq),
                Ok(None) => return None,
                Err(err) => {
                    tracing::warn!(%err, "cannot read a stream position");
                    return None;
                }
            },
        };
        (turn == turn_id).then_some(seq)
    }

    /// Writes confirmed positions to the store, so a resume on any replica finds them.
    pub async fn flush(&self) {
        let batch: Vec<StreamCursor> = {
            let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
            let dirty = std::mem::take(&mut cursors.dirty);
            dirty
                .into_iter()
                .filter_map(|key| {
                    let cursor = cursors.confirmed.get(&key)?;
                    Some(StreamCursor {
                        turn_id: cursor.turn_id.clone(),
                        seq: cursor.seq,
                        scope: key.scope,
                        user_id: key.user,
                        thread_id: key.thread_id,
                    })
                })
                .collect()
        };
        if let Err(err) = self.store.save_stream_cursors(&batch).await {
            tracing::warn!(%err, "cannot save stream positions");
            let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
            for cursor in batch {
                cursors.dirty.insert(CursorKey {
                    scope: cursor.scope,
                    user: cursor.user_id,
                    thread_id: cursor.thread_id,
                });
            }
        }
    }

    /// Keeps a disconnected session for [`SESSION_TTL`], here and in the store.
    async fn keep_session(&self, pid: &str, principal: &Principal, state: SessionState) {
        let expires = Timestamp(Timestamp::now().0 + millis(SESSION_TTL));
        let session = SocketSession {
            pid: pid.to_owned(),
            scope: principal.scope.clone(),
            user_id: principal.owner_id().to_owned(),
            state_json: serde_json::to_string(&state).unwrap_or_default(),
            expires_at: expires,
        };
        {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions.retain(|_, (_, _, _, at)| at.elapsed() < SESSION_TTL);
            sessions.insert(
                pid.to_owned(),
                (principal.scope.clone(), principal.owner_id().to_owned(), state, Instant::now()),
            );
        }
        if let Err(err) = self.store.save_socket_session(&session).await {
            tracing::warn!(%err, "cannot save a disconnected socket session");
        }
    }

    /// Takes a disconnected session of this principal, kept here or by another replica.
    async fn take_session(&self, pid: &str, principal: &Principal) -> Option<SessionState> {
        let owner = principal.owner_id();
        let local = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            match sessions.get(pid) {
                Some((scope, user, _, at))
                    if *scope == principal.scope && user == owner && at.elapsed() < SESSION_TTL =>
                {
                    sessions.remove(pid).map(|(_, _, state, _)| state)
                }
                _ => None,
            }
        };
        // Also from the store, so a second recovery of the same session finds nothing.
        let stored = match self.store.take_socket_session(pid, &principal.scope, owner).await {
            Ok(stored) => stored.and_then(|s| serde_json::from_str::<SessionState>(&s.state_json).ok()),
            Err(err) => {
                tracing::warn!(%err, "cannot read a socket session");
                None
            }
        };
        local.or(stored)
    }
}

async fn flush_loop(weak: Weak<Sockets>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        let Some(sockets) = weak.upgrade() else { return };
        sockets.flush().await;
        ticks += 1;
        if ticks % 600 == 1
            && let Err(err) = sockets.store.purge_socket_state(ago(CURSOR_TTL)).await
        {
            tracing::warn!(%err, "cannot purge old socket state");
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The wall-clock time `duration` ago.
fn ago(duration: Duration) -> Timestamp {
    Timestamp(Timestamp::now().0.saturating_sub(millis(duration)))
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
    // Upgraded connections leave the accept loop's count: the cap holds for them here.
    if state.sockets.open_connections() >= state.options.connections.max_connections {
        tracing::debug!("socket refused: the server is at max_connections open sockets");
        let body = serde_json::json!({ "code": 4, "message": "Server busy: too many open connections" });
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
    }
    // Header credentials are a fallback for the namespace CONNECT (the Python client sends them
    // here only); unreadable headers simply count as absent.
    let credentials = Credentials::from_headers(&headers).unwrap_or_default();
    // Clients send small frames: a small initial read buffer (it grows for a larger frame) keeps
    // an idle connection small.
    ws.read_buffer_size(2 * 1024)
        .write_buffer_size(8 * 1024)
        .max_message_size(MAX_PAYLOAD)
        .on_upgrade(move |socket| connection::run(state, socket, credentials))
}
