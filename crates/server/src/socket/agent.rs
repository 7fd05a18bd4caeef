//! The `/agent` namespace events.
//!
//! Client → server: `message`, `stop`, `resume_stream`, `join_thread`, `leave_thread`,
//! `approval_response`. Every turn event goes out as `agent_event` with `threadId`, `turnId` and
//! `seq`; `done` is always the last event of a turn. A request that cannot start a turn still
//! ends with `error` + `done`, so a client's iterator always terminates.

use std::collections::BTreeMap;
use std::sync::Arc;

use agentry_core::{Principal, TokenUsage, Turn, TurnStatus};
use agentry_engine::{EngineError, NewMessage};
use serde::Deserialize;
use serde_json::{Value, json};

use super::connection::{Connection, Outgoing, Stream};
use super::{CursorKey, NAMESPACE, frame, recovery};

/// Where a stream of a turn starts.
pub(super) enum From {
    /// After this `seq` of its log.
    After(i64),
    /// Where this follower stands (a turn just sent on this socket).
    Follower(agentry_engine::TurnFollower),
}

/// Payload of `message`. Unknown fields (`contextType`, `attachmentIds`, …) are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessagePayload {
    message: String,
    #[serde(default)]
    thread_id: Option<String>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    dynamic_blocks: BTreeMap<String, String>,
    #[serde(default)]
    idempotency_key: Option<String>,
    /// A W3C `traceparent` the turn joins (sockets have no per-message headers).
    #[serde(default)]
    traceparent: Option<String>,
}

/// Payload of `stop`, `join_thread`, `leave_thread`, `resume_stream`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThreadPayload {
    thread_id: String,
    /// `resume_stream` only: the last `seq` the client has (an extension; the official clients
    /// send none and the server resumes after what it last sent them).
    #[serde(default)]
    last_seq: Option<i64>,
    /// `resume_stream` only: the turn to resume (an extension; default: the thread's latest).
    #[serde(default)]
    turn_id: Option<String>,
}

impl Connection {
    /// Routes one event of a connected socket.
    pub(super) async fn dispatch(&mut self, name: &str, data: Value, ack: Option<u64>) {
        let reply = match name {
            "message" => self.on_message(data).await,
            "stop" => self.on_stop(data).await,
            "resume_stream" => self.on_resume(data).await,
            "join_thread" => self.on_join(data).await,
            "leave_thread" => self.on_leave(data).await,
            "approval_response" => self.on_approval_response(data).await,
            other => {
                self.top_level_error(&format!("unknown event `{other}`")).await;
                json!({ "ok": false, "error": "unknown event" })
            }
        };
        if let Some(id) = ack {
            self.send(frame::ack(NAMESPACE, id, &reply)).await;
        }
    }

    fn principal(&self) -> Option<Principal> {
        self.principal.clone()
    }

    async fn on_message(&mut self, data: Value) -> Value {
        let Some(principal) = self.principal() else { return json!({ "ok": false }) };
        let thread_hint = data.get("threadId").and_then(Value::as_str).map(str::to_owned);
        let payload: MessagePayload = match parse(data) {
            Ok(payload) => payload,
            Err(message) => {
                self.refuse_turn(thread_hint.as_deref(), "invalid_payload", &message).await;
                return json!({ "ok": false, "error": message });
            }
        };
        let engine = self.state.engine.clone();
        let thread = match &payload.thread_id {
            Some(id) => engine.visible_thread(&principal, id).await,
            None => engine.create_thread(&principal, payload.agent_id.as_deref(), None).await,
        };
        let thread = match thread {
            Ok(thread) => thread,
            Err(err) => return self.refuse_engine(thread_hint.as_deref(), err).await,
        };
        let message = NewMessage {
            text: payload.message,
            dynamic_blocks: payload.dynamic_blocks,
            idempotency_key: payload.idempotency_key,
            trace_parent: payload.traceparent.as_deref().and_then(agentry_core::trace::TraceParent::parse),
            ..NewMessage::default()
        };
        match engine.send(&principal, &thread, message).await {
            Ok((turn, follower)) => {
                let reply = json!({ "ok": true, "threadId": turn.thread_id, "turnId": turn.id });
                self.stream_turn(&principal, turn, From::Follower(follower));
                reply
            }
            Err(err) if payload.thread_id.is_none() => {
                // The thread was made for this message: a refused message leaves nothing behind.
                let owner = principal.thread_owner_filter();
                if let Err(cause) = self.state.store.delete_thread(&thread.scope, owner, &thread.id).await {
                    tracing::warn!(%cause, thread = %thread.id, "cannot remove the thread of a refused message");
                }
                self.refuse_engine(None, err).await
            }
            Err(err) => self.refuse_engine(Some(&thread.id), err).await,
        }
    }

    async fn on_stop(&mut self, data: Value) -> Value {
        let Some(principal) = self.principal() else { return json!({ "ok": false }) };
        let payload: ThreadPayload = match parse(data) {
            Ok(payload) => payload,
            Err(message) => return self.event_error(&message).await,
        };
        let engine = self.state.engine.clone();
        let thread = match engine.visible_thread(&principal, &payload.thread_id).await {
            Ok(thread) => thread,
            Err(err) => return self.event_error(&err.to_string()).await,
        };
        match engine.cancel_thread(&thread.scope, &thread.id).await {
            Ok(stopped) => json!({ "ok": true, "stopped": stopped }),
            Err(err) => {
                tracing::error!(%err, thread = %thread.id, "cannot cancel on the socket");
                self.event_error("service temporarily unavailable").await
            }
        }
    }

    async fn on_resume(&mut self, data: Value) -> Value {
        let Some(principal) = self.principal() else { return json!({ "ok": false }) };
        let thread_hint = data.get("threadId").and_then(Value::as_str).map(str::to_owned);
        let payload: ThreadPayload = match parse(data) {
            Ok(payload) => payload,
            Err(message) => {
                self.refuse_turn(thread_hint.as_deref(), "invalid_payload", &message).await;
                return json!({ "ok": false, "error": message });
            }
        };
        let engine = self.state.engine.clone();
        let thread = match engine.visible_thread(&principal, &payload.thread_id).await {
            Ok(thread) => thread,
            Err(err) => return self.refuse_engine(Some(&payload.thread_id), err).await,
        };
        let turn = match &payload.turn_id {
            Some(turn_id) => engine
                .store()
                .get_turn(&thread.scope, turn_id)
                .await
                .map(|turn| turn.filter(|t| t.thread_id == thread.id)),
            None => engine.store().latest_turn(&thread.scope, &thread.id).await,
        };
        let turn = match turn {
            Ok(Some(turn)) => turn,
            Ok(None) => {
                self.refuse_turn(Some(&thread.id), "no_turn", "this thread has no turn to resume").await;
                return json!({ "ok": false, "error": "no turn" });
            }
            Err(err) => return self.refuse_engine(Some(&thread.id), err.into()).await,
        };
        let after = match payload.last_seq {
            Some(exact) => exact,
            None => self.confirmed_position(&principal, &thread.id, &turn).await,
        };
        let reply = json!({ "ok": true, "threadId": thread.id, "turnId": turn.id, "after": after });
        self.stream_turn(&principal, turn, From::After(after));
        reply
    }

    /// Where a bare `resume_stream` continues: after the last event the user's client confirmed
    /// of this turn (on any replica), or from the start. When that event is `done`, it is sent
    /// again: a client that asks to resume is waiting for it.
    async fn confirmed_position(&self, principal: &Principal, thread_id: &str, turn: &Turn) -> i64 {
        let key = CursorKey::new(principal, thread_id);
        let Some(seq) = self.state.sockets.confirmed(&key, &turn.id).await.filter(|seq| *seq > 0) else { return 0 };
        match self.state.store.events_after(&turn.scope, &turn.id, seq - 1, 1).await {
            Ok(events) if events.first().is_some_and(|e| e.seq == seq && e.event.is_done()) => seq - 1,
            _ => seq,
        }
    }

    /// `approval_response {approvalId, approved, comment?, editedArgs?}` (or the REST body's
    /// `{response, reason}`): the same as the REST resolve. Answers `approval_ack` or
    /// `approval_response_error`.
    async fn on_approval_response(&mut self, data: Value) -> Value {
        let Some(principal) = self.principal() else { return json!({ "ok": false }) };
        let approval_id = data.get("approvalId").and_then(Value::as_str).unwrap_or_default().to_owned();
        let outcome = match parse::<crate::platos::approvals::Resolve>(data) {
            Err(message) => Err(message),
            Ok(body) => match crate::platos::approvals::decision(body) {
                Err(err) => Err(err.message),
                Ok(decision) => self
                    .state
                    .engine
                    .resolve_approval(&principal, &approval_id, decision)
                    .await
                    .map_err(|err| crate::error::ApiError::from(err).message),
            },
        };
        match outcome {
            Ok(approval) => {
                let ack = json!({ "approvalId": approval_id, "received": true, "status": approval.status.as_str() });
                self.emit("approval_ack", &ack).await;
                json!({ "ok": true })
            }
            Err(error) => {
                self.emit("approval_response_error", &json!({ "approvalId": approval_id, "error": error })).await;
                json!({ "ok": false, "error": error })
            }
        }
    }

    async fn on_join(&mut self, data: Value) -> Value {
        let Some(principal) = self.principal() else { return json!({ "ok": false }) };
        let payload: ThreadPayload = match parse(data) {
            Ok(payload) => payload,
            Err(_) => return self.event_error("threadId is required").await,
        };
        if self.state.engine.visible_thread(&principal, &payload.thread_id).await.is_err() {
            return self.event_error("thread not found").await;
        }
        if !self.join(&principal, &payload.thread_id).await {
            return self.event_error("thread lookup failed").await;
        }
        self.emit("joined_thread", &json!({ "threadId": payload.thread_id })).await;
        json!({ "ok": true })
    }

    /// Forwards every event of a thread's turns to this socket from now on, on whichever replica
    /// they run. False when the thread cannot be watched.
    pub(super) async fn join(&mut self, principal: &Principal, thread_id: &str) -> bool {
        if self.rooms.contains_key(thread_id) {
            return true;
        }
        let mut watch = match self.state.engine.watch_thread(&principal.scope, thread_id).await {
            Ok(watch) => watch,
            Err(err) => {
                tracing::warn!(%err, thread = %thread_id, "cannot watch a thread");
                return false;
            }
        };
        let out = self.out.clone();
        let task = tokio::spawn(async move {
            while let Ok(Some(event)) = watch.next().await {
                let text = frame::event(NAMESPACE, "agent_event", &event.to_wire());
                if out.send(Outgoing::plain(text)).await.is_err() {
                    break;
                }
            }
        });
        self.rooms.insert(thread_id.to_owned(), task.abort_handle());
        true
    }

    async fn on_leave(&mut self, data: Value) -> Value {
        let payload: ThreadPayload = match parse(data) {
            Ok(payload) => payload,
            Err(_) => return self.event_error("threadId is required").await,
        };
        if let Some(handle) = self.rooms.remove(&payload.thread_id) {
            handle.abort();
        }
        json!({ "ok": true })
    }

    /// Streams a turn's events after `after` to this socket, once per turn. Each event carries
    /// its recovery offset, and the writer notes its position once it is written.
    pub(super) fn stream_turn(&mut self, principal: &Principal, turn: Turn, from: From) {
        let finished: Vec<String> =
            self.streams.iter().filter(|(_, s)| s.handle.is_finished()).map(|(id, _)| id.clone()).collect();
        if !finished.is_empty() {
            let mut positions = self.positions.lock().unwrap_or_else(|p| p.into_inner());
            for id in &finished {
                self.streams.remove(id);
                positions.forget(id);
            }
        }
        if self.streams.contains_key(&turn.id) {
            return;
        }
        let engine = self.state.engine.clone();
        let out = self.out.clone();
        let ids: Arc<(Arc<str>, Arc<str>)> = Arc::new((turn.id.as_str().into(), turn.thread_id.as_str().into()));
        let scope = principal.scope.clone();
        let thread = turn.thread_id.clone();
        let id = turn.id.clone();
        let task = tokio::spawn(async move {
            let mut follower = match from {
                From::Follower(follower) => follower,
                From::After(after) => match engine.follow(&scope, &turn, after).await {
                    Ok(follower) => follower,
                    Err(err) => {
                        tracing::warn!(%err, turn = %turn.id, "cannot follow turn");
                        return;
                    }
                },
            };
            loop {
                match follower.next().await {
                    Ok(Some(event)) => {
                        let offset = recovery::offset(&event.turn_id, event.seq);
                        let text = frame::event_with_offset(NAMESPACE, "agent_event", &event.to_wire(), &offset);
                        let outgoing = Outgoing::stream(text, ids.clone(), event.seq);
                        if out.send(outgoing).await.is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!(%err, turn = %turn.id, "lost the turn's event log");
                        break;
                    }
                }
            }
        });
        self.streams.insert(id, Stream { thread_id: thread, handle: task.abort_handle() });
    }

    /// Ends a request that started no turn: `error` then `done`, so the client's stream ends.
    async fn refuse_turn(&self, thread_id: Option<&str>, code: &str, message: &str) {
        self.refuse_with(thread_id, json!({ "code": code, "message": message })).await;
    }

    /// `error` (with `fields`) then `done`.
    async fn refuse_with(&self, thread_id: Option<&str>, fields: Value) {
        let thread_id = thread_id.map_or(Value::Null, |t| Value::String(t.to_owned()));
        let mut error = json!({ "type": "error", "threadId": thread_id });
        if let (Value::Object(error), Value::Object(fields)) = (&mut error, fields) {
            error.extend(fields);
        }
        self.emit("agent_event", &error).await;
        let done = json!({
            "type": "done",
            "status": TurnStatus::Failed,
            "usage": TokenUsage::default(),
            "threadId": thread_id,
        });
        self.emit("agent_event", &done).await;
    }

    async fn refuse_engine(&self, thread_id: Option<&str>, err: EngineError) -> Value {
        if let EngineError::Store(store_err) = &err {
            tracing::error!(%store_err, "store failure on the socket");
        }
        let message = match &err {
            EngineError::Store(_) => "service temporarily unavailable".to_owned(),
            other => other.to_string(),
        };
        let mut fields = json!({ "code": err.code(), "message": message });
        if let EngineError::RateLimited { scope, limit, retry_after_secs } = &err {
            fields["retryAfterSeconds"] = json!(retry_after_secs);
            fields["scope"] = json!(scope);
            fields["limit"] = json!(limit);
        }
        self.refuse_with(thread_id, fields).await;
        json!({ "ok": false, "error": message })
    }

    async fn event_error(&self, message: &str) -> Value {
        self.top_level_error(message).await;
        json!({ "ok": false, "error": message })
    }
}

/// Parses an event payload, naming the offending field.
fn parse<T: serde::de::DeserializeOwned>(data: Value) -> Result<T, String> {
    if let Some(path) = agentry_core::nul_path(&data) {
        return Err(format!("{path}: must not contain a NUL character"));
    }
    serde_path_to_error::deserialize(data).map_err(|err| {
        let path = err.path().to_string();
        if path == "." {
            format!("invalid payload: {}", err.into_inner())
        } else {
            format!("{path}: {}", err.into_inner())
        }
    })
}
