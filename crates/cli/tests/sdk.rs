//! The Rust SDK (`agentry-client`) against a real `agentry serve` spawned by the test, plus the
//! `agentry chat` command built on it.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentry_client::{
    ApprovalFilter, ApprovalStatus, Client, Error, RetryPolicy, Scope, SessionClaims, StreamEvent, ThreadFilter,
    ThreadStatus, TurnEvent, TurnStatus,
};
use common::{API_KEY, SECRET, Server, claims, client, collect, done, token};
use futures_util::StreamExt as _;
use serde_json::{Value, json};
use tokio::net::TcpListener;

async fn server() -> Server {
    server_with(&[]).await
}

/// A server with the `slow` agent and these extra agent files (`(file name, TOML)`).
async fn server_with(agent_files: &[(&str, String)]) -> Server {
    let slow = "id = \"slow\"\nname = \"Slow\"\nmodel = \"scripted:echo\"\n[script]\ntoken_delay_ms = 40\n";
    let mut files = vec![("slow.toml", slow.to_owned())];
    files.extend(agent_files.iter().cloned());
    common::spawn(SECRET, API_KEY, &files).await
}

/// A correctly signed token that expired a minute ago.
fn expired_token(user: &str) -> String {
    let now = agentry_core::Timestamp::now().unix_seconds();
    let claims = SessionClaims { iat: now - 7200, exp: now - 60, ..claims(user) };
    agentry_core::session_token::sign(SECRET, &claims).unwrap()
}

#[tokio::test]
async fn agents_and_threads_namespaces_work_end_to_end() {
    let server = server().await;
    let c = client(&server.base, "alice");
    let agents = c.agents().list().await.unwrap();
    assert!(agents.iter().any(|a| a.id == "default") && agents.iter().any(|a| a.id == "slow"));
    assert_eq!(c.agents().get("slow").await.unwrap().unwrap().model, "scripted:echo");
    assert!(c.agents().get("nope").await.unwrap().is_none());
    assert_eq!(c.agents().list_versions("slow").await.unwrap()[0].version_number, 1);
    assert!(matches!(c.agents().list_versions("nope").await, Err(Error::NotFound { .. })));

    let first = c.threads().create(None, Some("First")).await.unwrap();
    let second = c.threads().create(Some("slow"), None).await.unwrap();
    assert_eq!((first.agent_id.as_str(), first.title.as_deref()), ("default", Some("First")));
    let all = c.threads().list(&ThreadFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), vec![second.id.as_str(), first.id.as_str()]);
    let slow_only = ThreadFilter { agent_id: Some("slow".into()), ..Default::default() };
    assert_eq!(c.threads().list(&slow_only).await.unwrap().len(), 1);
    assert_eq!(c.threads().get(&first.id).await.unwrap().unwrap().id, first.id);
    assert!(c.threads().get("thr_missing").await.unwrap().is_none());
    assert!(c.threads().messages(&first.id).await.unwrap().is_empty());
    assert!(c.threads().artifacts(&first.id).await.unwrap().is_empty());
    assert_eq!(c.threads().archive(&first.id).await.unwrap().status, ThreadStatus::Archived);
    assert_eq!(c.threads().list(&ThreadFilter::default()).await.unwrap().len(), 1);
    let archived = ThreadFilter { archived_only: true, ..Default::default() };
    assert_eq!(c.threads().list(&archived).await.unwrap()[0].id, first.id);
    assert_eq!(c.threads().unarchive(&first.id).await.unwrap().status, ThreadStatus::Active);
    c.threads().delete(&first.id).await.unwrap();
    assert!(c.threads().get(&first.id).await.unwrap().is_none());

    // Another user sees none of it.
    let bob = client(&server.base, "bob");
    assert!(bob.threads().get(&second.id).await.unwrap().is_none());
    assert!(matches!(bob.threads().messages(&second.id).await, Err(Error::NotFound { .. })));

    // Validation errors carry the field.
    let long = "x".repeat(600);
    match c.threads().create(None, Some(&long)).await {
        Err(Error::Validation { errors, .. }) => assert!(errors[0].contains("title"), "{errors:?}"),
        other => panic!("{other:?}"),
    }

    // Direct-header mode: an operator acting as alice sees her thread.
    let operator = Client::builder(&server.base)
        .api_key(API_KEY, Scope::new("default", "default", "default"))
        .user_id("alice")
        .build()
        .unwrap();
    assert_eq!(operator.threads().get(&second.id).await.unwrap().unwrap().id, second.id);
    let wrong = Client::builder(&server.base).api_key("wrong", Scope::default_scope()).build().unwrap();
    assert!(matches!(wrong.agents().list().await, Err(Error::Auth { status: 401, .. })));
}

#[tokio::test]
async fn send_streams_tokens_and_done_then_the_messages_are_stored() {
    let server = server().await;
    let c = client(&server.base, "alice");
    let thread = c.threads().create(None, None).await.unwrap();
    let (events, text) = collect(c.threads().send(&thread.id, "hello there  world")).await;
    assert_eq!(events.first(), Some(&StreamEvent::Connected));
    assert_eq!(text, "hello there  world");
    assert_eq!(done(&events), (TurnStatus::Completed, false, 3));
    let messages = c.threads().messages(&thread.id).await.unwrap();
    assert_eq!(messages.iter().map(|m| m.role.as_str()).collect::<Vec<_>>(), vec!["user", "assistant"]);

    // The stream's socket is closed after `done`, and the server counts it gone.
    let mut open = String::new();
    for _ in 0..50 {
        let metrics = reqwest::get(format!("{}/metrics", server.base)).await.unwrap().text().await.unwrap();
        open = metrics.lines().find(|l| l.starts_with("agentry_socket_connections ")).unwrap_or_default().to_owned();
        if open == "agentry_socket_connections 0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open, "agentry_socket_connections 0");

    // A missing thread still ends the stream: error then done.
    let (events, _) = collect(c.threads().send("thr_missing", "hi")).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, StreamEvent::Event(TurnEvent::Error { code, .. }) if code == "thread_not_found"))
    );
    assert_eq!(done(&events).0, TurnStatus::Failed);
}

#[tokio::test]
async fn expired_token_is_replaced_by_the_refresh_callback() {
    let server = server().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let c = Client::builder(&server.base)
        .session_token(expired_token("alice"))
        .on_token_refresh(move |ctx| {
            let counter = counter.clone();
            async move {
                assert_eq!(ctx.status, 401);
                counter.fetch_add(1, Ordering::SeqCst);
                Some(token("alice"))
            }
        })
        .build()
        .unwrap();
    assert!(!c.agents().list().await.unwrap().is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 1, "refreshed once");
    assert!(!c.agents().list().await.unwrap().is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the new token is kept");

    // The socket path refreshes too.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let streaming = Client::builder(&server.base)
        .session_token(expired_token("alice"))
        .on_token_refresh(move |_| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Some(token("alice"))
            }
        })
        .build()
        .unwrap();
    let thread = c.threads().create(None, None).await.unwrap();
    let (events, text) = collect(streaming.threads().send(&thread.id, "fresh token")).await;
    assert_eq!((text.as_str(), done(&events).0), ("fresh token", TurnStatus::Completed));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Without a callback the refusal is an Auth error.
    let stale = Client::builder(&server.base).session_token(expired_token("alice")).build().unwrap();
    assert!(matches!(stale.agents().list().await, Err(Error::Auth { status: 401, .. })));
}

#[tokio::test]
async fn rate_limited_requests_wait_for_retry_after_and_reuse_the_idempotency_key() {
    // A real HTTP server on loopback that answers 429 with Retry-After before it answers 200.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::<(Instant, Option<String>)>::new()));
    let seen_by_server = seen.clone();
    let always_limited = || async {
        use axum::response::IntoResponse as _;
        (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0.2")], "{\"message\":\"busy\"}").into_response()
    };
    let app = axum::Router::new().route("/api/v1/agent/agents", axum::routing::get(always_limited)).route(
        "/api/v1/agent/threads",
        axum::routing::post(move |headers: axum::http::HeaderMap| {
            let seen = seen_by_server.clone();
            async move {
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let mut seen = seen.lock().unwrap();
                seen.push((Instant::now(), key));
                if seen.len() < 3 {
                    (axum::http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "{\"message\":\"slow down\"}")
                        .into_response()
                } else {
                    axum::Json(serde_json::json!({
                        "id": "thr_1", "agentId": "default", "userId": "u", "status": "active",
                        "organizationId": "default", "projectId": "default", "environmentId": "default",
                        "title": null, "archivedAt": null,
                        "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z"
                    }))
                    .into_response()
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    use axum::response::IntoResponse as _;

    let c = Client::builder(&base).session_token("t").build().unwrap();
    let started = Instant::now();
    let thread = c.threads().create(None, None).await.unwrap();
    assert_eq!(thread.id, "thr_1");
    assert!(started.elapsed() >= Duration::from_millis(1900), "waited {:?}", started.elapsed());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert!(seen[0].1.is_some(), "writes carry an idempotency key");
    assert!(seen.iter().all(|(_, key)| *key == seen[0].1), "retries reuse it");
    assert!(seen[1].0 - seen[0].0 >= Duration::from_millis(950));

    drop(seen);

    // When the retries run out, the error is RateLimit with the server's Retry-After.
    let impatient = Client::builder(&base)
        .session_token("t")
        .retry(RetryPolicy { max_retries: 1, ..Default::default() })
        .build()
        .unwrap();
    match impatient.agents().list().await {
        Err(err @ Error::RateLimit { retry_after: Some(wait), .. }) => {
            assert_eq!(wait, Duration::from_millis(200));
            assert!(err.is_retryable());
        }
        other => panic!("{other:?}"),
    }
}

/// A TCP proxy whose open connections can be cut, standing in for a network or server drop.
struct Proxy {
    base: String,
    cut: tokio::sync::watch::Sender<u64>,
}

async fn proxy(upstream: &str) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let (cut, cuts) = tokio::sync::watch::channel(0u64);
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else { break };
            let upstream = upstream.clone();
            let mut cuts = cuts.clone();
            cuts.borrow_and_update();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else { return };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cuts.changed() => {}
                }
            });
        }
    });
    Proxy { base, cut }
}

#[tokio::test]
async fn a_dropped_connection_mid_turn_resumes_without_loss_or_duplicates() {
    let server = server().await;
    let proxy = proxy(&server.base).await;
    let c = client(&proxy.base, "alice");
    let thread = c.threads().create(Some("slow"), None).await.unwrap();
    let message = (1..=30).map(|i| format!("word{i}")).collect::<Vec<_>>().join(" ");
    let mut turn = c.threads().send(&thread.id, &message);
    let mut text = String::new();
    let mut tokens = 0;
    let mut lifecycle = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(30), turn.next()).await.unwrap() {
        match event.unwrap() {
            StreamEvent::Event(TurnEvent::Token { text: delta }) => {
                text.push_str(&delta);
                tokens += 1;
                if tokens == 8 {
                    proxy.cut.send_modify(|n| *n += 1);
                }
            }
            StreamEvent::Event(TurnEvent::Done { status, .. }) => {
                assert_eq!(status, TurnStatus::Completed);
            }
            StreamEvent::Event(_) | StreamEvent::Unknown(_) => {}
            other => lifecycle.push(other),
        }
    }
    assert_eq!(text, message, "no token lost or repeated");
    assert!(lifecycle.iter().any(|e| matches!(e, StreamEvent::Disconnected { .. })), "{lifecycle:?}");
    assert!(lifecycle.iter().any(|e| matches!(e, StreamEvent::Reconnecting { attempt: 1, .. })), "{lifecycle:?}");
    assert_eq!(lifecycle.iter().filter(|e| **e == StreamEvent::Connected).count(), 2);
}

#[tokio::test]
async fn cancel_stops_the_turn_and_the_stream_ends_with_stopped_done() {
    let server = server().await;
    let c = client(&server.base, "alice");
    let thread = c.threads().create(Some("slow"), None).await.unwrap();
    let mut turn = c.threads().send(&thread.id, &"word ".repeat(100));
    loop {
        if let StreamEvent::Event(TurnEvent::Token { .. }) = turn.next().await.unwrap().unwrap() {
            break;
        }
    }
    assert!(turn.cancel().await.unwrap());
    let (events, _) = collect(turn).await;
    assert_eq!(done(&events).0, TurnStatus::Cancelled);
    assert!(done(&events).1);
}

#[tokio::test]
async fn chat_once_prints_the_answer_and_fails_clearly_without_a_server() {
    let server = server().await;
    let output = Command::new(env!("CARGO_BIN_EXE_agentry"))
        .args(["chat", "--server", &server.base, "--once", "hello from chat"])
        .arg("--data-dir")
        .arg(server.dir.path().join("data"))
        .env_remove("AGENTRY_SERVICE_SECRET")
        .env_remove("AGENTRY_API_KEY")
        .env_remove("AGENTRY_TOKEN")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "hello from chat");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = Command::new(env!("CARGO_BIN_EXE_agentry"))
        .args(["chat", "--server", &format!("http://127.0.0.1:{port}"), "--once", "hello", "--token", "t"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the Agentry server"), "{stderr}");
}

/// A loopback HTTP endpoint standing in for a real back office: `POST /orders/{id}/refund`
/// answers `{"refunded": id, "amount": body.amount}` and records what it was sent.
struct Backend {
    url: String,
    calls: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Backend {
    fn calls(&self) -> Vec<Value> {
        self.calls.lock().unwrap().clone()
    }
}

async fn backend() -> Backend {
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/orders/{id}/refund",
        axum::routing::post(
            move |axum::extract::Path(id): axum::extract::Path<String>, axum::Json(body): axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(json!({"id": id, "body": body}));
                    axum::Json(json!({"refunded": id, "amount": body["amount"]}))
                }
            },
        ),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Backend { url, calls }
}

/// A `scripted:steps` agent whose first step calls the `refund` HTTP tool, which needs approval,
/// and whose second step answers.
fn refund_agent(backend: &str) -> String {
    format!(
        r#"id = "refunds"
name = "Refunds"
model = "scripted:steps"

[[http_tools]]
name = "refund"
description = "Refund an order"
method = "POST"
url = "{backend}/orders/{{id}}/refund"
requires_approval = true
parameters = {{ type = "object", properties = {{ id = {{ type = "string" }}, amount = {{ type = "number" }} }} }}

[[script.steps]]
text = "Let me check."
tool_calls = [{{ name = "refund", arguments = {{ id = "A1", amount = 30 }} }}]

[[script.steps]]
text = "Refund handled."
"#
    )
}

/// Streams a turn, calling `decide` on each typed `approval_needed` (with its id); fails on any
/// event the SDK could not type. Returns the events and the text.
async fn stream_with_approvals<F, Fut>(
    mut turn: agentry_client::TurnStream,
    mut decide: F,
) -> (Vec<StreamEvent>, String)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut events = Vec::new();
    let mut text = String::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(30), turn.next()).await.unwrap() {
        let event = event.unwrap();
        match &event {
            StreamEvent::Unknown(raw) => panic!("the SDK could not type a server event: {raw}"),
            StreamEvent::Event(TurnEvent::Token { text: delta }) => text.push_str(delta),
            StreamEvent::Event(TurnEvent::ApprovalNeeded { approval_id, .. }) => decide(approval_id.clone()).await,
            _ => {}
        }
        events.push(event);
    }
    (events, text)
}

/// Position of the first event matching `pred`.
fn position(events: &[StreamEvent], pred: impl Fn(&TurnEvent) -> bool) -> usize {
    events
        .iter()
        .position(|e| matches!(e, StreamEvent::Event(event) if pred(event)))
        .unwrap_or_else(|| panic!("no such event in {events:#?}"))
}

#[tokio::test]
async fn approvals_park_the_turn_until_the_sdk_resolves_them() {
    let backend = backend().await;
    let server = server_with(&[("refunds.toml", refund_agent(&backend.url))]).await;
    let alice = client(&server.base, "alice");
    let bob = client(&server.base, "bob");
    let thread = alice.threads().create(Some("refunds"), None).await.unwrap();

    // Approve, with edited arguments.
    let approval_id = Arc::new(std::sync::Mutex::new(None::<String>));
    let (events, text) = stream_with_approvals(alice.threads().send(&thread.id, "Refund order A1"), |id| {
        let (alice, bob, backend_calls, approval_id) = (&alice, &bob, backend.calls(), approval_id.clone());
        let thread_id = thread.id.clone();
        async move {
            let pending = alice.approvals().get(&id).await.unwrap().expect("visible to its requester");
            assert_eq!(pending.status, ApprovalStatus::Pending);
            assert_eq!(
                (pending.thread_id.as_str(), pending.agent_id.as_str(), pending.requested_by.as_str()),
                (thread_id.as_str(), "refunds", "alice")
            );
            assert_eq!((pending.tool_name.as_str(), &pending.args), ("refund", &json!({"id": "A1", "amount": 30})));
            assert!(backend_calls.is_empty(), "nothing runs before the approval");
            // Another user neither sees nor resolves it: to them it does not exist.
            assert!(bob.approvals().get(&id).await.unwrap().is_none());
            assert!(matches!(bob.approvals().approve(&id, None, None).await, Err(Error::NotFound { .. })));

            let approved = alice
                .approvals()
                .approve(&id, Some("go ahead"), Some(json!({"id": "A1", "amount": 10})))
                .await
                .unwrap();
            assert_eq!(approved.status, ApprovalStatus::Approved);
            assert_eq!(
                (approved.responded_by.as_deref(), approved.comment.as_deref()),
                (Some("alice"), Some("go ahead"))
            );
            assert_eq!(approved.edited_args, Some(json!({"id": "A1", "amount": 10})));
            assert!(approved.edited_args_applied);
            assert!(approved.resolved_at.is_some());
            *approval_id.lock().unwrap() = Some(id);
        }
    })
    .await;
    let id = approval_id.lock().unwrap().clone().expect("the turn asked for an approval");

    let needed = position(&events, |e| {
        matches!(e, TurnEvent::ApprovalNeeded { approval_id, action, details, tool_name, agent_id, timeout_at, .. }
            if *approval_id == id && action.contains("refund") && *details == json!({"id": "A1", "amount": 30})
                && tool_name == "refund" && agent_id == "refunds" && timeout_at.0 > agentry_core::Timestamp::now().0)
    });
    let resolved = position(&events, |e| {
        matches!(e, TurnEvent::ApprovalResolved { approval_id, status, responded_by, comment }
            if *approval_id == id && status == "approved" && responded_by.as_deref() == Some("alice")
                && comment.as_deref() == Some("go ahead"))
    });
    let result = position(&events, |e| {
        matches!(e, TurnEvent::ToolResult { name, result, is_error: false, .. }
            if name == "refund" && *result == json!({"refunded": "A1", "amount": 10}))
    });
    assert!(needed < resolved && resolved < result, "{events:#?}");
    assert_eq!(backend.calls(), vec![json!({"id": "A1", "body": {"amount": 10}})], "ran once, with the edited args");
    assert!(text.starts_with("Let me check.") && text.ends_with("Refund handled."), "{text}");
    assert_eq!(done(&events).0, TurnStatus::Completed);

    // Settled once: a second decision is a typed conflict, and not retryable.
    match alice.approvals().approve(&id, None, None).await {
        Err(err @ Error::Conflict { .. }) => assert!(!err.is_retryable()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(alice.approvals().reject(&id, Some("too late")).await, Err(Error::Conflict { .. })));
    assert!(alice.approvals().get("apr_does_not_exist").await.unwrap().is_none());
    assert!(matches!(alice.approvals().approve("apr_does_not_exist", None, None).await, Err(Error::NotFound { .. })));

    // Reject: the tool does not run, the model is told why, the same turn completes.
    let second = alice.threads().create(Some("refunds"), None).await.unwrap();
    let rejected_id = Arc::new(std::sync::Mutex::new(None::<String>));
    let (events, text) = stream_with_approvals(alice.threads().send(&second.id, "Refund it again"), |id| {
        let (alice, rejected_id) = (&alice, rejected_id.clone());
        async move {
            let rejected = alice.approvals().reject(&id, Some("not today")).await.unwrap();
            assert_eq!((rejected.status, rejected.comment.as_deref()), (ApprovalStatus::Rejected, Some("not today")));
            assert_eq!(rejected.edited_args, None);
            *rejected_id.lock().unwrap() = Some(id);
        }
    })
    .await;
    let rejected = rejected_id.lock().unwrap().clone().unwrap();
    position(&events, |e| {
        matches!(e, TurnEvent::ApprovalResolved { approval_id, status, comment, .. }
            if *approval_id == rejected && status == "rejected" && comment.as_deref() == Some("not today"))
    });
    position(&events, |e| {
        matches!(e, TurnEvent::ToolResult { name, result, is_error: true, .. }
            if name == "refund" && result.to_string().contains("rejected") && result.to_string().contains("not today"))
    });
    assert_eq!(backend.calls().len(), 1, "a rejected call never reaches the endpoint");
    assert!(text.ends_with("Refund handled."), "{text}");
    assert_eq!(done(&events).0, TurnStatus::Completed);

    // Listing: filters, totals, the pending count; each user sees their own, an operator all.
    let approved_only = ApprovalFilter { status: Some(ApprovalStatus::Approved), ..Default::default() };
    let page = alice.approvals().list(&approved_only).await.unwrap();
    assert_eq!(page.approvals.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), vec![id.as_str()]);
    assert_eq!((page.total, page.pending_count), (1, 0));
    let all = alice.approvals().list(&ApprovalFilter::default()).await.unwrap();
    assert_eq!(all.approvals.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), vec![rejected.as_str(), id.as_str()]);
    let of_second = ApprovalFilter { thread_id: Some(second.id.clone()), ..Default::default() };
    let page = alice.approvals().list(&of_second).await.unwrap();
    assert_eq!((page.total, page.approvals[0].status), (1, ApprovalStatus::Rejected));
    let paged = alice
        .approvals()
        .list(&ApprovalFilter { limit: Some(1), offset: Some(1), ..Default::default() })
        .await
        .unwrap();
    assert_eq!((paged.total, paged.limit, paged.offset, paged.approvals[0].id.as_str()), (2, 1, 1, id.as_str()));
    let other_agent = ApprovalFilter { agent_id: Some("slow".into()), ..Default::default() };
    assert_eq!(alice.approvals().list(&other_agent).await.unwrap().total, 0);
    assert_eq!(bob.approvals().list(&ApprovalFilter::default()).await.unwrap().total, 0);
    let operator = Client::builder(&server.base).api_key(API_KEY, Scope::default_scope()).build().unwrap();
    assert_eq!(operator.approvals().list(&ApprovalFilter::default()).await.unwrap().total, 2);
    assert_eq!(operator.approvals().get(&id).await.unwrap().unwrap().status, ApprovalStatus::Approved);
}

#[tokio::test]
async fn chat_once_resolves_approvals_by_policy_and_never_hangs() {
    let backend = backend().await;
    let server = server_with(&[("refunds.toml", refund_agent(&backend.url))]).await;
    let chat = |policy: Option<&'static str>| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_agentry"));
        command
            .args(["chat", "--server", &server.base, "--agent", "refunds", "--token", &token("carol")])
            .args(["--once", "Refund order A1"])
            .args(policy)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        async move { tokio::time::timeout(Duration::from_secs(60), command.output()).await.expect("chat hung").unwrap() }
    };

    let approved = chat(Some("--approve")).await;
    let stdout = String::from_utf8_lossy(&approved.stdout);
    assert!(approved.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&approved.stderr));
    assert!(stdout.contains("[approval needed] call tool `refund`") && stdout.contains("\"amount\": 30"), "{stdout}");
    assert!(stdout.contains("approved by carol]"), "{stdout}");
    assert!(stdout.contains("← refund: {") && stdout.contains("\"refunded\":\"A1\""), "{stdout}");
    assert!(stdout.trim_end().ends_with("Refund handled."), "{stdout}");
    assert_eq!(backend.calls().len(), 1);

    // No policy and no terminal: rejected with reason `non-interactive`, the turn still completes.
    let rejected = chat(None).await;
    let stdout = String::from_utf8_lossy(&rejected.stdout);
    assert!(rejected.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&rejected.stderr));
    assert!(stdout.contains("rejecting (non-interactive; pass --approve to approve)"), "{stdout}");
    assert!(stdout.contains("rejected by carol: non-interactive]"), "{stdout}");
    assert!(stdout.trim_end().ends_with("Refund handled."), "{stdout}");
    assert_eq!(backend.calls().len(), 1, "the rejected call did not run");

    let explicit = chat(Some("--reject")).await;
    assert!(explicit.status.success());
    assert!(String::from_utf8_lossy(&explicit.stdout).contains("rejected by carol: rejected with --reject]"));

    let carol = client(&server.base, "carol");
    let page = carol.approvals().list(&ApprovalFilter::default()).await.unwrap();
    let statuses: Vec<_> = page.approvals.iter().map(|a| (a.status, a.comment.clone())).collect();
    assert_eq!(
        statuses,
        vec![
            (ApprovalStatus::Rejected, Some("rejected with --reject".into())),
            (ApprovalStatus::Rejected, Some("non-interactive".into())),
            (ApprovalStatus::Approved, None),
        ]
    );
}
