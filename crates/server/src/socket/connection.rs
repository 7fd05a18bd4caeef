//! One Socket.IO connection: open packet, pings, namespace connect (with connection state
//! recovery), in-order dispatch, and the writer that notes what it wrote.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentry_core::id::new_secret;
use agentry_core::{LoggedEvent, Principal};
use agentry_engine::{ScopeEvent, ScopeFeed};
use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::frame::{self, EngineFrame, Incoming};
use super::recovery::{PositionMap, Positions, SessionState, StreamState, parse_offset};
use super::{CursorKey, MAX_PAYLOAD, NAMESPACE};
use crate::AppState;
use crate::auth::{Credentials, authenticate_credentials};

/// Frames queued for the writer before senders wait.
const OUTBOX: usize = 256;
/// How long a clean close waits for the client's close frame.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(1);

/// A frame for the writer, and what it tells about the client's position.
pub(super) struct Outgoing {
    message: Message,
    kind: Kind,
}

enum Kind {
    Plain,
    /// An event of a streamed turn: `(turn id, thread id)` and its `seq` (one pointer, so the
    /// outbox's preallocated slots stay small).
    Stream(Arc<(Arc<str>, Arc<str>)>, i64),
    /// An Engine.IO ping: its pong confirms everything written before it.
    Ping,
}

impl Outgoing {
    /// A frame that says nothing about positions.
    pub(super) fn plain(text: String) -> Self {
        Outgoing { message: Message::Text(text.into()), kind: Kind::Plain }
    }

    /// An event of a streamed turn, `ids` being its turn's and its thread's.
    pub(super) fn stream(text: String, ids: Arc<(Arc<str>, Arc<str>)>, seq: i64) -> Self {
        Outgoing { message: Message::Text(text.into()), kind: Kind::Stream(ids, seq) }
    }

    fn ping() -> Self {
        Outgoing { message: Message::Text("2".into()), kind: Kind::Ping }
    }
}

/// A turn being streamed to this connection.
pub(super) struct Stream {
    pub thread_id: String,
    pub handle: AbortHandle,
}

/// The state of one connection, owned by its read loop.
pub(super) struct Connection {
    pub(super) state: AppState,
    pub(super) sid: String,
    /// The private session id a recovering client presents.
    pub(super) pid: String,
    pub(super) out: mpsc::Sender<Outgoing>,
    /// Set once the `/agent` namespace is connected.
    pub(super) principal: Option<Principal>,
    /// When the session token it connected with expires (Unix seconds); `None` for an API key.
    expires_at: Option<i64>,
    header_credentials: Credentials,
    /// Turns being streamed to this socket, by turn id.
    pub(super) streams: HashMap<String, Stream>,
    /// Threads joined with `join_thread`.
    pub(super) rooms: HashMap<String, AbortHandle>,
    /// For an operator watching the whole scope: its approval events and budget alerts.
    approvals: Option<ScopeFeed>,
    /// What the writer wrote and the client confirmed.
    pub(super) positions: Arc<Mutex<Positions>>,
    /// The last positions the client confirmed, per turn.
    confirmed: PositionMap,
    /// The client said goodbye (Socket.IO disconnect): nothing to recover.
    left: bool,
}

/// Serves a connection until the client leaves, stops answering, or the server shuts down.
pub(super) async fn run(state: AppState, socket: WebSocket, header_credentials: Credentials) {
    state.sockets.open.fetch_add(1, Ordering::Relaxed);
    let sockets = state.sockets.clone();
    let (sink, mut stream) = socket.split();
    let (out, outbox) = mpsc::channel::<Outgoing>(OUTBOX);
    let positions = Arc::new(Mutex::new(Positions::default()));
    let writer = tokio::spawn(write_frames(sink, outbox, positions.clone()));

    let options = state.options.clone();
    let mut shutdown = state.shutdown.clone();
    let mut conn = Connection {
        state,
        sid: new_secret("sio", 10),
        pid: new_secret("sid", 16),
        out,
        principal: None,
        expires_at: None,
        header_credentials,
        streams: HashMap::new(),
        rooms: HashMap::new(),
        approvals: None,
        positions,
        confirmed: PositionMap::new(),
        left: false,
    };
    let open = frame::open(&conn.sid, options.ping_interval.as_millis(), options.ping_timeout.as_millis(), MAX_PAYLOAD);
    conn.send(open).await;

    // One tick per confirmation interval: a ping every tick while a turn streams (its pong
    // confirms what the client has), else one per ping interval (the heartbeat).
    let mut tick = tokio::time::interval(options.stream_ping_interval.min(options.ping_interval));
    tick.tick().await;
    let mut last_heard = Instant::now();
    let mut last_ping = Instant::now();
    let mut closing = false;
    // Since when the socket has had no connected namespace: one that never connects (or stays
    // out after leaving) is closed after the deadline instead of holding a connection.
    let mut outside_since = Some(Instant::now());
    loop {
        outside_since = match (conn.principal.is_some(), outside_since) {
            (true, _) => None,
            (false, None) => Some(Instant::now()),
            (false, since) => since,
        };
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    if !conn.handle(text.as_str()).await {
                        break;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    last_heard = Instant::now();
                    conn.top_level_error("binary frames are not supported").await;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => last_heard = Instant::now(),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            _ = tick.tick() => {
                // Clients that never answer pings (the Python client) are kept for the whole ping
                // timeout, and for as long as a turn streams to them, however long it runs.
                let streaming = conn.is_streaming();
                if last_heard.elapsed() > options.ping_interval + options.ping_timeout && !streaming {
                    break;
                }
                if outside_since.is_some_and(|since| since.elapsed() > options.namespace_deadline) {
                    break;
                }
                let confirming = streaming && conn.positions.lock().unwrap_or_else(|p| p.into_inner()).confirming();
                if confirming || last_ping.elapsed() >= options.ping_interval {
                    last_ping = Instant::now();
                    let _ = conn.out.send(Outgoing::ping()).await;
                }
            }
            event = next_scope_event(&mut conn.approvals) => match event {
                ScopeEvent::Turn(event) => conn.forward_approval(&event).await,
                ScopeEvent::Alert(alert) => conn.emit("agent_event", &alert).await,
                ScopeEvent::Run(run) => conn.emit("run_update", &crate::platos::bgo::run_update(&run)).await,
            },
            _ = shutdown.changed() => {
                closing = true;
                break;
            }
        }
    }
    if closing {
        // A clean close handshake confirms everything written: the client read it all.
        let _ = conn.out.send(Outgoing { message: Message::Close(None), kind: Kind::Plain }).await;
        let replied = tokio::time::timeout(CLOSE_HANDSHAKE, async {
            while let Some(Ok(message)) = stream.next().await {
                if matches!(message, Message::Close(_)) {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap_or(false);
        if replied {
            let written = conn.positions.lock().unwrap_or_else(|p| p.into_inner()).written();
            conn.confirm(written);
        }
    }
    conn.keep_for_recovery().await;
    conn.close();
    drop(conn);
    let _ = writer.await;
    sockets.open.fetch_sub(1, Ordering::Relaxed);
}

/// Writes frames as they come, several per flush, noting the positions they carry.
async fn write_frames(
    mut sink: SplitSink<WebSocket, Message>,
    mut outbox: mpsc::Receiver<Outgoing>,
    positions: Arc<Mutex<Positions>>,
) {
    'write: while let Some(first) = outbox.recv().await {
        let mut next = Some(first);
        while let Some(outgoing) = next.take() {
            let close = matches!(outgoing.message, Message::Close(_));
            match &outgoing.kind {
                Kind::Plain => {}
                Kind::Stream(ids, seq) => {
                    positions.lock().unwrap_or_else(|p| p.into_inner()).wrote(&ids.0, &ids.1, *seq);
                }
                Kind::Ping => positions.lock().unwrap_or_else(|p| p.into_inner()).pinged(),
            }
            if sink.feed(outgoing.message).await.is_err() || close {
                let _ = sink.flush().await;
                break 'write;
            }
            next = outbox.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}

impl Connection {
    /// Queues a text frame for the writer.
    pub(super) async fn send(&self, text: String) {
        let _ = self.out.send(Outgoing::plain(text)).await;
    }

    /// Emits an event on `/agent`.
    pub(super) async fn emit(&self, name: &str, data: &Value) {
        self.send(frame::event(NAMESPACE, name, data)).await;
    }

    /// A top-level `error` event, for problems that belong to no turn.
    pub(super) async fn top_level_error(&self, message: &str) {
        self.emit("error", &json!({ "message": message })).await;
    }

    /// Handles one frame; false ends the connection.
    async fn handle(&mut self, text: &str) -> bool {
        match frame::parse(text) {
            Ok(EngineFrame::Close) => {
                self.left = true;
                false
            }
            Ok(EngineFrame::Ping) => {
                self.send("3".to_owned()).await;
                true
            }
            Ok(EngineFrame::Pong) => {
                // An idle socket learns of its expired token within one ping interval.
                if self.token_expired() {
                    self.end_expired().await;
                    return true;
                }
                let confirmed = self.positions.lock().unwrap_or_else(|p| p.into_inner()).ponged();
                if let Some(confirmed) = confirmed {
                    self.confirm(confirmed);
                }
                true
            }
            Ok(EngineFrame::Ignored | EngineFrame::Message(Incoming::Ack)) => true,
            Ok(EngineFrame::Message(Incoming::Connect { namespace, auth })) => self.connect(&namespace, auth).await,
            Ok(EngineFrame::Message(Incoming::Disconnect { namespace })) => {
                if namespace == NAMESPACE {
                    self.left = true;
                    self.close();
                    self.principal = None;
                }
                true
            }
            Ok(EngineFrame::Message(Incoming::Event { namespace, name, data, ack })) => {
                if namespace != NAMESPACE || self.principal.is_none() {
                    let message = format!("connect to the {NAMESPACE} namespace before sending `{name}`");
                    self.send(frame::connect_error(
                        &namespace,
                        &message,
                        json!({ "status": 401, "code": "unauthorized" }),
                    ))
                    .await;
                } else if self.token_expired() {
                    self.end_expired().await;
                } else {
                    self.dispatch(&name, data, ack).await;
                }
                true
            }
            Err(err) => {
                self.top_level_error(&err.to_string()).await;
                true
            }
        }
    }

    /// Records positions the client confirmed, for this connection and for its user's view of
    /// each thread.
    fn confirm(&mut self, confirmed: PositionMap) {
        let Some(principal) = &self.principal else { return };
        for (turn_id, position) in confirmed {
            self.state.sockets.confirm(&CursorKey::new(principal, &position.thread_id), &turn_id, position.seq);
            self.confirmed.insert(turn_id, position);
        }
    }

    /// Namespace CONNECT: credentials from the payload first, then from the upgrade headers.
    /// A reconnecting socket.io-client also presents `pid` and `offset`: its session is
    /// recovered (same `pid`, the events after the offset, its streams and rooms) when this or
    /// another replica kept it; otherwise the turn named by the offset resumes after it. Refused
    /// credentials end the connection after the CONNECT_ERROR: the Python client would otherwise
    /// wait on it until the ping timeout.
    async fn connect(&mut self, namespace: &str, auth: Option<Value>) -> bool {
        if namespace != NAMESPACE {
            let data = json!({ "status": 404, "code": "invalid_namespace" });
            self.send(frame::connect_error(namespace, "Invalid namespace", data)).await;
            return true;
        }
        let from_payload = credentials_from_payload(auth.as_ref());
        let credentials = if from_payload.is_empty() { self.header_credentials.clone() } else { from_payload };
        let principal = match authenticate_credentials(&self.state, &credentials).await {
            Ok(principal) => principal,
            Err(err) => {
                let status = err.status.as_u16();
                let (code, label) = match status {
                    401 | 403 => ("unauthorized", "unauthorized"),
                    400 => ("invalid_credentials", "invalid credentials"),
                    _ => ("unavailable", "unavailable"),
                };
                let message = format!("{label}: {}", err.message);
                self.send(frame::connect_error(NAMESPACE, &message, json!({ "status": status, "code": code }))).await;
                // Keep a connection that already serves the namespace (a failed re-connect).
                return self.principal.is_some();
            }
        };
        let field = |name: &str| auth.as_ref().and_then(|a| a.get(name)).and_then(Value::as_str).map(str::to_owned);
        let offset = field("offset");
        let offset = offset.as_deref().and_then(parse_offset).map(|(turn, seq)| (turn.to_owned(), seq));
        let mut session = None;
        if let Some(pid) = field("pid")
            && let Some(saved) = self.state.sockets.take_session(&pid, &principal).await
        {
            self.pid = pid;
            session = Some(saved);
        }
        self.send(frame::connected(NAMESPACE, &self.sid, &self.pid)).await;
        let connected = json!({
            "status": "ok",
            "organizationId": principal.scope.organization_id,
            "projectId": principal.scope.project_id,
            "environmentId": principal.scope.environment_id,
            "userId": principal.user_id,
            "socketId": self.sid,
        });
        // Operators acting for the whole scope hear about every approval and budget alert in it.
        if principal.is_operator() && principal.user_id.is_none() {
            self.approvals = Some(self.state.engine.watch_scope(&principal.scope));
        }
        // The token was verified: its `exp` is its own.
        self.expires_at = credentials.session_token.as_deref().and_then(|token| {
            agentry_core::session_token::UnverifiedToken::parse(token).ok().map(|t| t.unverified_claims().exp)
        });
        self.principal = Some(principal.clone());
        self.emit("connected", &connected).await;
        self.recover(&principal, session.unwrap_or_default(), offset).await;
        true
    }

    /// Restarts what a recovered session followed: each stream after the position its client
    /// confirmed (the offset's turn exactly after the offset), and its rooms.
    async fn recover(&mut self, principal: &Principal, session: SessionState, offset: Option<(String, i64)>) {
        let mut streams: Vec<(String, i64)> = session
            .streams
            .iter()
            .map(|s| {
                let exact = offset.as_ref().filter(|(turn, _)| *turn == s.turn_id).map(|(_, seq)| *seq);
                (s.turn_id.clone(), exact.unwrap_or(s.confirmed))
            })
            .collect();
        if let Some((turn, seq)) = &offset
            && !streams.iter().any(|(t, _)| t == turn)
        {
            streams.push((turn.clone(), *seq));
        }
        for (turn_id, after) in streams {
            let turn = match self.state.store.get_turn(&principal.scope, &turn_id).await {
                Ok(Some(turn)) => turn,
                Ok(None) => continue,
                Err(err) => {
                    tracing::warn!(%err, turn = %turn_id, "cannot recover a stream");
                    continue;
                }
            };
            // Only a turn of a thread this principal may see.
            if self.state.engine.visible_thread(principal, &turn.thread_id).await.is_ok() {
                self.stream_turn(principal, turn, super::agent::From::After(after));
            }
        }
        for thread_id in session.rooms {
            self.join(principal, &thread_id).await;
        }
    }

    /// Keeps what this connection followed for a reconnection to recover, unless the client
    /// left on purpose or nothing is left to follow.
    async fn keep_for_recovery(&mut self) {
        let Some(principal) = self.principal.clone() else { return };
        if self.left {
            return;
        }
        let streams = self
            .streams
            .iter()
            .filter(|(_, s)| !s.handle.is_finished())
            .map(|(turn_id, s)| StreamState {
                turn_id: turn_id.clone(),
                thread_id: s.thread_id.clone(),
                confirmed: self.confirmed.get(turn_id.as_str()).map_or(0, |p| p.seq),
            })
            .collect();
        let state = SessionState { streams, rooms: self.rooms.keys().cloned().collect() };
        if !state.is_empty() {
            self.state.sockets.keep_session(&self.pid, &principal, state).await;
        }
        self.state.sockets.flush().await;
    }

    /// Sends a scope approval event, unless this socket gets it anyway (it streams that turn or
    /// joined that thread).
    async fn forward_approval(&self, event: &LoggedEvent) {
        let streamed = self.streams.get(&event.turn_id).is_some_and(|s| !s.handle.is_finished());
        if !streamed && !self.rooms.contains_key(&event.thread_id) {
            self.emit("agent_event", &event.to_wire()).await;
        }
    }

    /// Whether a turn is being streamed to this connection right now.
    fn is_streaming(&self) -> bool {
        self.streams.values().any(|s| !s.handle.is_finished())
    }

    /// Stops every stream and room of this connection.
    fn token_expired(&self) -> bool {
        self.principal.is_some()
            && self.expires_at.is_some_and(|exp| agentry_core::Timestamp::now().unix_seconds() >= exp)
    }

    /// The session token ran out: the socket stops streaming and leaves the namespace, with an
    /// `error{code:"token_expired"}` first, so the client reconnects with a fresh token.
    async fn end_expired(&mut self) {
        let error = json!({ "type": "error", "code": "token_expired", "message": "the session token expired; reconnect with a new one" });
        self.send(frame::event(NAMESPACE, "agent_event", &error)).await;
        self.send(format!("41{NAMESPACE},")).await;
        self.close();
        self.principal = None;
        self.expires_at = None;
    }

    pub(super) fn close(&mut self) {
        for (_, stream) in self.streams.drain() {
            stream.handle.abort();
        }
        for (_, handle) in self.rooms.drain() {
            handle.abort();
        }
    }
}

/// The next event of the scope feed; pending forever without one.
async fn next_scope_event(feed: &mut Option<ScopeFeed>) -> ScopeEvent {
    loop {
        let Some(receiver) = feed else { return std::future::pending().await };
        match receiver.next().await {
            Some(event) => return event,
            None => *feed = None,
        }
    }
}

/// Credentials from a CONNECT payload: `{token}` or `{apiKey, organizationId, projectId,
/// environmentId, userId}`.
fn credentials_from_payload(auth: Option<&Value>) -> Credentials {
    let field = |name: &str| auth.and_then(|a| a.get(name)).and_then(Value::as_str).map(str::to_owned);
    Credentials {
        session_token: field("token").or_else(|| field("sessionToken")),
        authorization: None,
        api_key: field("apiKey"),
        organization_id: field("organizationId"),
        project_id: field("projectId"),
        environment_id: field("environmentId"),
        user_id: field("userId"),
    }
}
