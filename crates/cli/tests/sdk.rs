//! The Rust SDK (`agentry-client`) against a real `agentry serve` spawned by the test, plus the
//! `agentry chat` command built on it.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentry_client::{
    Client, Error, RetryPolicy, Scope, SessionClaims, StreamEvent, ThreadFilter, TurnEvent, TurnStatus,
};
use futures_util::StreamExt as _;
use tokio::net::TcpListener;

const SECRET: &str = "sdk-test-secret-0123456789abcdef";
const API_KEY: &str = "sdk-test-operator-key";

struct Server {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::write(
        agents.join("slow.toml"),
        "id = \"slow\"\nname = \"Slow\"\nmodel = \"scripted:echo\"\n[script]\ntoken_delay_ms = 40\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(env!("CARGO_BIN_EXE_agentry"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--agents"])
        .arg(&agents)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("AGENTRY_SERVICE_SECRET", SECRET)
        .env("AGENTRY_API_KEY", API_KEY)
        .env("AGENTRY_DEFAULT_MODEL", "scripted:echo")
        .env("AGENTRY_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server { child, base: format!("http://127.0.0.1:{port}"), dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not start");
}

fn claims(user: &str) -> SessionClaims {
    SessionClaims::new(&Scope::default_scope(), user, "default")
}

fn token(user: &str) -> String {
    agentry_client::mint_session_token(SECRET, claims(user), Duration::from_secs(600)).unwrap()
}

/// A correctly signed token that expired a minute ago.
fn expired_token(user: &str) -> String {
    let now = agentry_core::Timestamp::now().unix_seconds();
    let claims = SessionClaims { iat: now - 7200, exp: now - 60, ..claims(user) };
    agentry_core::session_token::sign(SECRET, &claims).unwrap()
}

fn client(base: &str, user: &str) -> Client {
    Client::builder(base).session_token(token(user)).build().unwrap()
}

/// Collects a turn; returns the stream events and the concatenated tokens.
async fn collect(mut turn: agentry_client::TurnStream) -> (Vec<StreamEvent>, String) {
    let mut events = Vec::new();
    let mut text = String::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(30), turn.next()).await.unwrap() {
        let event = event.unwrap();
        if let StreamEvent::Event(TurnEvent::Token { text: delta }) = &event {
            text.push_str(delta);
        }
        events.push(event);
    }
    (events, text)
}

fn done(events: &[StreamEvent]) -> (TurnStatus, bool, u64) {
    match events.last() {
        Some(StreamEvent::Event(TurnEvent::Done { status, stopped, usage })) => {
            (*status, *stopped, usage.output_tokens)
        }
        other => panic!("last event is not done: {other:?}"),
    }
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
    assert_eq!(c.threads().archive(&first.id).await.unwrap().status, "archived");
    assert_eq!(c.threads().list(&ThreadFilter::default()).await.unwrap().len(), 1);
    let archived = ThreadFilter { archived_only: true, ..Default::default() };
    assert_eq!(c.threads().list(&archived).await.unwrap()[0].id, first.id);
    assert_eq!(c.threads().unarchive(&first.id).await.unwrap().status, "active");
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
                        "id": "thr_1", "agentId": "default", "status": "active",
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
