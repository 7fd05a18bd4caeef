//! One Socket.IO connection: open packet, pings, namespace connect, and in-order dispatch.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use agentry_core::id::new_secret;
use agentry_core::{LoggedEvent, Principal};
use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;

use super::frame::{self, EngineFrame, Incoming};
use super::{MAX_PAYLOAD, NAMESPACE};
use crate::AppState;
use crate::auth::{Credentials, authenticate_credentials};

/// Frames queued for the writer before senders wait.
const OUTBOX: usize = 256;

/// The state of one connection, owned by its read loop.
pub(super) struct Connection {
    pub(super) state: AppState,
    pub(super) sid: String,
    pub(super) out: mpsc::Sender<Message>,
    /// Set once the `/agent` namespace is connected.
    pub(super) principal: Option<Principal>,
    header_credentials: Credentials,
    /// Turns being streamed to this socket, by turn id.
    pub(super) streams: HashMap<String, AbortHandle>,
    /// Threads joined with `join_thread`.
    pub(super) rooms: HashMap<String, AbortHandle>,
    /// For an operator watching the whole scope: its approval events.
    approvals: Option<broadcast::Receiver<Arc<LoggedEvent>>>,
}

/// Serves a connection until the client leaves, stops answering, or the server shuts down.
pub(super) async fn run(state: AppState, socket: WebSocket, header_credentials: Credentials) {
    state.sockets.open.fetch_add(1, Ordering::Relaxed);
    let state_sockets = state.sockets.clone();
    let (mut sink, mut stream) = socket.split();
    let (out, mut outbox) = mpsc::channel::<Message>(OUTBOX);
    // Frames queued together go out in one flush (one syscall), not one each.
    let writer = tokio::spawn(async move {
        'write: while let Some(message) = outbox.recv().await {
            if sink.feed(message).await.is_err() {
                break;
            }
            while let Ok(message) = outbox.try_recv() {
                if sink.feed(message).await.is_err() {
                    break 'write;
                }
            }
            if sink.flush().await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    let options = state.options.clone();
    let mut shutdown = state.shutdown.clone();
    let mut conn = Connection {
        state,
        sid: new_secret("sio", 10),
        out,
        principal: None,
        header_credentials,
        streams: HashMap::new(),
        rooms: HashMap::new(),
        approvals: None,
    };
    let open = frame::open(&conn.sid, options.ping_interval.as_millis(), options.ping_timeout.as_millis(), MAX_PAYLOAD);
    conn.send(open).await;

    let mut ping = tokio::time::interval(options.ping_interval);
    ping.tick().await;
    let mut last_heard = Instant::now();
    loop {
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
            _ = ping.tick() => {
                // Clients that never answer pings (the Python client) are kept for the whole ping
                // timeout, and for as long as a turn streams to them, however long it runs.
                if last_heard.elapsed() > options.ping_interval + options.ping_timeout && !conn.is_streaming() {
                    break;
                }
                conn.send("2".to_owned()).await;
            }
            event = next_approval(&mut conn.approvals) => conn.forward_approval(&event).await,
            _ = shutdown.changed() => break,
        }
    }
    conn.close();
    drop(conn);
    let _ = writer.await;
    state_sockets.open.fetch_sub(1, Ordering::Relaxed);
}

impl Connection {
    /// Queues a text frame for the writer.
    pub(super) async fn send(&self, text: String) {
        let _ = self.out.send(Message::Text(text.into())).await;
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
            Ok(EngineFrame::Close) => false,
            Ok(EngineFrame::Ping) => {
                self.send("3".to_owned()).await;
                true
            }
            Ok(EngineFrame::Pong | EngineFrame::Ignored | EngineFrame::Message(Incoming::Ack)) => true,
            Ok(EngineFrame::Message(Incoming::Connect { namespace, auth })) => self.connect(&namespace, auth).await,
            Ok(EngineFrame::Message(Incoming::Disconnect { namespace })) => {
                if namespace == NAMESPACE {
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

    /// Namespace CONNECT: credentials from the payload first, then from the upgrade headers.
    /// Refused credentials end the connection after the CONNECT_ERROR: the Python client would
    /// otherwise wait on it until the ping timeout.
    async fn connect(&mut self, namespace: &str, auth: Option<Value>) -> bool {
        if namespace != NAMESPACE {
            let data = json!({ "status": 404, "code": "invalid_namespace" });
            self.send(frame::connect_error(namespace, "Invalid namespace", data)).await;
            return true;
        }
        let from_payload = credentials_from_payload(auth.as_ref());
        let credentials = if from_payload.is_empty() { self.header_credentials.clone() } else { from_payload };
        match authenticate_credentials(&self.state, &credentials).await {
            Ok(principal) => {
                self.send(frame::connected(NAMESPACE, &self.sid)).await;
                let connected = json!({
                    "status": "ok",
                    "organizationId": principal.scope.organization_id,
                    "projectId": principal.scope.project_id,
                    "environmentId": principal.scope.environment_id,
                    "userId": principal.user_id,
                    "socketId": self.sid,
                });
                // Operators acting for the whole scope hear about every approval in it.
                if principal.is_operator() && principal.user_id.is_none() {
                    self.approvals = Some(self.state.engine.watch_approvals(&principal.scope));
                }
                self.principal = Some(principal);
                self.emit("connected", &connected).await;
                true
            }
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
                self.principal.is_some()
            }
        }
    }

    /// Sends a scope approval event, unless this socket gets it anyway (it streams that turn or
    /// joined that thread).
    async fn forward_approval(&self, event: &LoggedEvent) {
        let streamed = self.streams.get(&event.turn_id).is_some_and(|h| !h.is_finished());
        if !streamed && !self.rooms.contains_key(&event.thread_id) {
            self.emit("agent_event", &event.to_wire()).await;
        }
    }

    /// Whether a turn is being streamed to this connection right now.
    fn is_streaming(&self) -> bool {
        self.streams.values().any(|handle| !handle.is_finished())
    }

    /// Stops every stream and room of this connection.
    pub(super) fn close(&mut self) {
        for (_, handle) in self.streams.drain().chain(self.rooms.drain()) {
            handle.abort();
        }
    }
}

/// The next approval event of the scope feed; pending forever without one.
async fn next_approval(feed: &mut Option<broadcast::Receiver<Arc<LoggedEvent>>>) -> Arc<LoggedEvent> {
    loop {
        let Some(receiver) = feed else { return std::future::pending().await };
        match receiver.recv().await {
            Ok(event) => return event,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => *feed = None,
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
