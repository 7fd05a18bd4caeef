//! Socket.IO liveness with a client that never answers pings (as the Python client does): it
//! keeps its connection for as long as a turn streams to it, and loses it once idle past the
//! ping timeout.

use std::time::{Duration, Instant};

use agentry_core::session_token::{self, SessionClaims};
use agentry_core::{AgentSpec, Scope, Script, Timestamp};
use agentry_engine::{Engine, EngineConfig};
use agentry_llm::ProviderRegistry;
use agentry_server::bootstrap::{SuppliedSecrets, bootstrap};
use agentry_server::{AppState, ServerOptions, router};
use agentry_store::{Store, StoreLocation};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "socket-test-secret-0123456789";

#[tokio::test]
async fn a_client_that_never_pongs_keeps_its_socket_while_a_turn_streams_then_loses_it_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreLocation::Sqlite(dir.path().join("s.db"))).await.unwrap();
    let supplied = SuppliedSecrets { service_secret: Some(SECRET.into()), api_key: Some("k".into()) };
    bootstrap(&store, &supplied, "scripted:echo").await.unwrap();
    let slow = AgentSpec {
        script: Some(Script { token_delay_ms: 100, steps: Vec::new() }),
        ..AgentSpec::new("slow", "Slow", "scripted:echo", "")
    };
    store.apply_agent(&Scope::default_scope(), &slow, "test", None).await.unwrap();
    let engine = Engine::start(store, ProviderRegistry::default(), EngineConfig::default()).await.unwrap();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let options = ServerOptions {
        ping_interval: Duration::from_millis(100),
        ping_timeout: Duration::from_millis(200),
        ..ServerOptions::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(AppState::new(engine, options, shutdown))).await });

    let token = session_token::mint(
        SECRET,
        SessionClaims::new(&Scope::default_scope(), "alice", "default"),
        600,
        Timestamp::now().unix_seconds(),
    )
    .unwrap();
    let url = format!("ws://{address}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    // Pipelined like the Python client: connect and message back to back, no pongs ever.
    ws.send(Message::text(format!(r#"40/agent,{{"token":"{token}"}}"#))).await.unwrap();
    let words = (1..=15).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
    ws.send(Message::text(format!(r#"42/agent,["message",{{"message":"{words}","agentId":"slow"}}]"#))).await.unwrap();

    let started = Instant::now();
    let mut tokens = 0;
    let mut pings = 0;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap();
        let Some(Ok(Message::Text(text))) = frame else {
            panic!("socket closed mid-turn after {tokens} tokens: {frame:?}")
        };
        if text.as_str() == "2" {
            pings += 1;
        } else if text.contains(r#""type":"token""#) {
            tokens += 1;
        } else if text.contains(r#""type":"done""#) {
            break;
        }
    }
    assert_eq!(tokens, 15);
    assert!(started.elapsed() > Duration::from_millis(1400), "the turn outlived the ping timeout");
    assert!(pings >= 5, "pings went unanswered: {pings}");

    // Idle now: the unanswered pings close the socket within the interval plus the timeout.
    let idle = Instant::now();
    while let Some(Ok(Message::Text(_))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.unwrap() {}
    assert!(idle.elapsed() < Duration::from_secs(2), "closed after {:?}", idle.elapsed());
}
