//! Streaming a turn over Socket.IO `/agent`, with reconnect and resume.
//!
//! A background task owns the socket. It sends `message` (with an idempotency key, so a message
//! re-sent after an early disconnect never starts a second turn), forwards every `agent_event`,
//! and when the connection drops it reconnects with exponential backoff and sends
//! `resume_stream {threadId, turnId, lastSeq}`, skipping anything of another turn or at or below
//! the last `seq` it passed on. The caller sees one gap-free, duplicate-free sequence ending in
//! `done`. The reconnection budget counts reconnections in a row without progress.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use agentry_core::TurnEvent;
use futures_util::{SinkExt as _, Stream, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::{Client, Credentials, Error, Result};

/// One item of a [`TurnStream`].
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The socket is connected (first time and after every reconnect).
    Connected,
    /// The socket dropped before the turn ended.
    Disconnected {
        /// Why.
        reason: String,
    },
    /// About to reconnect.
    Reconnecting {
        /// 1 for the first retry.
        attempt: u32,
        /// Wait before this attempt.
        delay: Duration,
    },
    /// An event of the turn: tokens, thinking, tool calls and results, approvals, artifacts,
    /// safety flags, errors, and `done` (always last, with usage).
    Event(TurnEvent),
    /// An event type this SDK does not know yet (from a newer server).
    Unknown(Value),
}

/// The events of one turn; ends after `done` (or an error it cannot recover from).
pub struct TurnStream {
    events: mpsc::Receiver<Result<StreamEvent>>,
    task: JoinHandle<()>,
    client: Client,
    thread_id: String,
}

impl TurnStream {
    pub(crate) fn start(client: Client, thread_id: String, text: String) -> Self {
        let (tx, events) = mpsc::channel(256);
        let task = tokio::spawn(drive(client.clone(), thread_id.clone(), text, tx));
        TurnStream { events, task, client, thread_id }
    }

    /// The thread this turn runs on.
    pub fn thread_id(&self) -> &str {
        &self.thread_id
    }

    /// Stops the turn on the server (it ends with `done`, `stopped: true`, which this stream
    /// still delivers). True when something was running.
    pub async fn cancel(&self) -> Result<bool> {
        self.client.threads().cancel(&self.thread_id).await
    }
}

impl Drop for TurnStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for TurnStream {
    type Item = Result<StreamEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How one connection ended.
enum Ended {
    /// `done` arrived (or the server refused the request with error + done).
    Done,
    /// The caller dropped the stream.
    Abandoned,
    /// The connection broke; try again.
    Dropped(String),
    /// Give up with this error.
    Fatal(Error),
}

async fn drive(client: Client, thread_id: String, text: String, tx: mpsc::Sender<Result<StreamEvent>>) {
    let idempotency_key = agentry_core::id::new_secret("msg", 16);
    let mut position = Position::default();
    let mut refreshed = false;
    // Reconnections in a row without a new event; progress resets it.
    let mut attempt = 0;
    loop {
        let seen_before = position.last_seq;
        let ended = match connect(&client).await {
            Ok(mut socket) => {
                if tx.send(Ok(StreamEvent::Connected)).await.is_err() {
                    return;
                }
                // Until an event arrived the turn may not exist yet: (re)send the message; the
                // idempotency key makes a repeat return the same turn.
                let request = match (&position.turn_id, position.last_seq) {
                    (Some(turn_id), Some(seq)) => {
                        json!(["resume_stream", { "threadId": thread_id, "turnId": turn_id, "lastSeq": seq }])
                    }
                    _ => json!(["message", {
                        "message": text, "threadId": thread_id, "idempotencyKey": idempotency_key,
                    }]),
                };
                match socket.send(Frame::text(format!("42/agent,{request}"))).await {
                    Ok(()) => pump(&mut socket, &tx, &mut position).await,
                    Err(err) => Ended::Dropped(err.to_string()),
                }
            }
            Err(Error::Auth { status, .. }) if !refreshed && client.refresh_token(status).await => {
                refreshed = true;
                continue;
            }
            Err(err @ (Error::Auth { .. } | Error::Config(_))) => Ended::Fatal(err),
            Err(err) => Ended::Dropped(err.to_string()),
        };
        match ended {
            Ended::Done | Ended::Abandoned => return,
            Ended::Fatal(err) => {
                let _ = tx.send(Err(err)).await;
                return;
            }
            Ended::Dropped(reason) => {
                if position.last_seq != seen_before {
                    attempt = 0;
                }
                attempt += 1;
                if tx.send(Ok(StreamEvent::Disconnected { reason: reason.clone() })).await.is_err() {
                    return;
                }
                if attempt > client.inner.max_reconnects {
                    let message = format!("gave up after {} reconnection attempts: {reason}", attempt - 1);
                    let _ = tx.send(Err(Error::Network(message))).await;
                    return;
                }
                let delay = reconnect_delay(attempt);
                if tx.send(Ok(StreamEvent::Reconnecting { attempt, delay })).await.is_err() {
                    return;
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// 0.5 s doubling to 10 s, as the official clients do.
fn reconnect_delay(attempt: u32) -> Duration {
    Duration::from_millis((500u64 << attempt.saturating_sub(1).min(5)).min(10_000))
}

/// Opens the websocket and connects the `/agent` namespace.
async fn connect(client: &Client) -> Result<Socket> {
    let base = &client.inner.base_url;
    let ws_base = base.replacen("https://", "wss://", 1).replacen("http://", "ws://", 1);
    let url = format!("{ws_base}/socket.io/?EIO=4&transport=websocket");
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(url, None, true)
        .await
        .map_err(|e| Error::Network(format!("cannot open the stream socket: {e}")))?;
    let auth = match client.credentials() {
        Credentials::Session(token) => json!({ "token": token }),
        Credentials::ApiKey { key, scope, user_id } => json!({
            "apiKey": key,
            "organizationId": scope.organization_id,
            "projectId": scope.project_id,
            "environmentId": scope.environment_id,
            "userId": user_id,
        }),
        Credentials::ErdoApiKey(_) | Credentials::ErdoToken(_) => return Err(crate::platos_needs_platos_credentials()),
    };
    socket.send(Frame::text(format!("40/agent,{auth}"))).await.map_err(|e| Error::Network(e.to_string()))?;
    while let Some(frame) = socket.next().await {
        let Frame::Text(text) = frame.map_err(|e| Error::Network(e.to_string()))? else { continue };
        if text.starts_with("40/agent") {
            return Ok(socket);
        }
        if let Some(payload) = text.strip_prefix("44/agent,") {
            let refusal: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
            let message = refusal["message"].as_str().unwrap_or("connection refused").to_owned();
            let status = refusal["data"]["status"].as_u64().unwrap_or(0) as u16;
            return Err(match status {
                401 | 403 => Error::Auth { status, message },
                500.. => Error::Server { status, message },
                _ => Error::Refused { status, message },
            });
        }
    }
    Err(Error::Network("the server closed the stream socket during connect".into()))
}

/// How far the caller has been given the turn.
#[derive(Debug, Default)]
struct Position {
    /// The turn, once its first event arrived.
    turn_id: Option<String>,
    /// The last `seq` passed on.
    last_seq: Option<i64>,
}

/// Forwards events until `done` or until the connection ends.
async fn pump(socket: &mut Socket, tx: &mpsc::Sender<Result<StreamEvent>>, position: &mut Position) -> Ended {
    while let Some(frame) = socket.next().await {
        let text = match frame {
            Ok(Frame::Text(text)) => text,
            Ok(Frame::Close(_)) => return Ended::Dropped("the server closed the connection".into()),
            Ok(_) => continue,
            Err(err) => return Ended::Dropped(err.to_string()),
        };
        if text.as_str() == "2" {
            if let Err(err) = socket.send(Frame::text("3")).await {
                return Ended::Dropped(err.to_string());
            }
            continue;
        }
        let Some(payload) = text.strip_prefix("42/agent,") else { continue };
        let Ok(Value::Array(mut items)) = serde_json::from_str::<Value>(payload) else { continue };
        if items.first().and_then(Value::as_str) != Some("agent_event") || items.len() < 2 {
            continue;
        }
        let event = items.swap_remove(1);
        let turn_id = event.get("turnId").and_then(Value::as_str);
        if let (Some(ours), Some(theirs)) = (&position.turn_id, turn_id)
            && ours != theirs
        {
            continue; // another turn of the thread
        }
        if let Some(seq) = event.get("seq").and_then(Value::as_i64) {
            if position.last_seq.is_some_and(|last| seq <= last) {
                continue;
            }
            position.last_seq = Some(seq);
            if position.turn_id.is_none() {
                position.turn_id = turn_id.map(str::to_owned);
            }
        }
        let done = event.get("type").and_then(Value::as_str) == Some("done");
        if tx.send(Ok(decode(event))).await.is_err() {
            let _ = socket.close(None).await;
            return Ended::Abandoned;
        }
        if done {
            let _ = socket.close(None).await;
            return Ended::Done;
        }
    }
    Ended::Dropped("the connection ended".into())
}

/// Reads one `agent_event` payload: a typed [`TurnEvent`] (the wire's extra `threadId`, `turnId`,
/// `seq` and `ts` are ignored), or [`StreamEvent::Unknown`] for a type or shape this SDK does not
/// know.
fn decode(event: Value) -> StreamEvent {
    match serde_json::from_value::<TurnEvent>(event.clone()) {
        Ok(turn_event) => StreamEvent::Event(turn_event),
        Err(_) => StreamEvent::Unknown(event),
    }
}

#[cfg(test)]
mod tests {
    use super::{StreamEvent, decode, reconnect_delay};
    use agentry_core::{LoggedEvent, SafetyFlag, Timestamp, TokenUsage, TurnEvent, TurnStatus};
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn every_event_of_the_server_decodes_to_its_typed_variant() {
        let flag = SafetyFlag {
            kind: "pii".into(),
            severity: "medium".into(),
            detail: "an email address".into(),
            matched_text: Some("a***@example.com".into()),
            pii_type: Some("email".into()),
            injection_pattern: None,
        };
        let at = Timestamp(1_767_225_600_000);
        let events = vec![
            TurnEvent::Meta {
                thread_id: "thr_1".into(),
                agent_id: "a".into(),
                agent_version_id: "v".into(),
                message_id: "msg_1".into(),
            },
            TurnEvent::Status { status: "waiting".into() },
            TurnEvent::Token { text: " hi".into() },
            TurnEvent::Thinking { text: "hmm".into() },
            TurnEvent::MessageBoundary {},
            TurnEvent::ToolCall { name: "refund".into(), params: json!({"id": "A1"}), call_id: "call_1".into() },
            TurnEvent::ToolResult {
                name: "refund".into(),
                result: json!({"ok": 1}),
                call_id: "call_1".into(),
                is_error: true,
            },
            TurnEvent::ApprovalNeeded {
                approval_id: "apr_1".into(),
                action: "call tool `refund`".into(),
                details: json!({"id": "A1", "amount": 30}),
                tool_name: "refund".into(),
                call_id: "call_1".into(),
                agent_id: "refunds".into(),
                timeout_at: at,
            },
            TurnEvent::ApprovalResolved {
                approval_id: "apr_1".into(),
                status: "approved".into(),
                responded_by: Some("alice".into()),
                comment: Some("ok".into()),
            },
            TurnEvent::ApprovalResolved {
                approval_id: "apr_2".into(),
                status: "timed_out".into(),
                responded_by: None,
                comment: None,
            },
            TurnEvent::ArtifactStart {
                artifact_id: "art_1".into(),
                artifact_key: "plan".into(),
                kind: "markdown".into(),
                revision: 1,
                title: Some("Plan".into()),
                language: None,
                op: "generate".into(),
            },
            TurnEvent::ArtifactDelta {
                artifact_id: "art_1".into(),
                artifact_key: "plan".into(),
                chunk: "# Plan".into(),
            },
            TurnEvent::ArtifactCommitted {
                artifact_id: "art_1".into(),
                artifact_key: "plan".into(),
                kind: "code".into(),
                revision: 2,
                title: None,
                language: Some("rust".into()),
                final_content: "fn main() {}".into(),
                created_at: at,
            },
            TurnEvent::ArtifactError {
                artifact_id: None,
                artifact_key: Some("plan".into()),
                code: "not_found".into(),
                message: "no".into(),
            },
            TurnEvent::SafetyFlags { flags: vec![flag.clone()] },
            TurnEvent::Usage { usage: TokenUsage { input_tokens: 3, output_tokens: 4, ..Default::default() } },
            TurnEvent::MessagePersisted { message_id: "msg_1".into(), thread_id: "thr_1".into(), cost_cents: 0.5 },
            TurnEvent::error("provider_unavailable", "down"),
            TurnEvent::Error { code: "safety_blocked".into(), message: "blocked".into(), flags: vec![flag] },
            TurnEvent::Done { usage: TokenUsage::default(), status: TurnStatus::Completed, stopped: false },
        ];
        for (seq, event) in events.into_iter().enumerate() {
            let logged =
                LoggedEvent { turn_id: "trn_1".into(), thread_id: "thr_1".into(), seq: seq as i64 + 1, at, event };
            assert_eq!(decode(logged.to_wire()), StreamEvent::Event(logged.event.clone()), "{}", logged.to_wire());
        }
    }

    #[test]
    fn unknown_types_and_shapes_are_kept_raw() {
        let future = json!({"type": "job_update", "jobId": "j", "seq": 3});
        assert_eq!(decode(future.clone()), StreamEvent::Unknown(future));
        let malformed = json!({"type": "approval_needed", "approvalId": 7});
        assert_eq!(decode(malformed.clone()), StreamEvent::Unknown(malformed));
    }

    #[test]
    fn reconnect_backoff_doubles_to_ten_seconds() {
        let delays: Vec<Duration> = (1..=7).map(reconnect_delay).collect();
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, vec![500, 1000, 2000, 4000, 8000, 10000, 10000]);
    }
}
