//! Harness of the multi-replica suites: a fresh Postgres database per test, replicas each on
//! their own runtime (so one can die at once, like `kill -9`), and raw HTTP and Socket.IO
//! clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use agentry_core::session_token::{self, SessionClaims};
use agentry_core::{AgentSpec, Scope, Timestamp};
use agentry_server::bootstrap::SuppliedSecrets;
use agentry_server::{App, AppConfig, BootstrapConfig};
use agentry_store::{Store, StoreLocation};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use sqlx::Connection as _;
use tokio_tungstenite::tungstenite::Message;

pub const SECRET: &str = "replica-test-secret-0123456789";
pub const KEY: &str = "replica-test-operator-key";
const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A throwaway Postgres database.
pub struct PgDb {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDb {
    pub async fn create() -> PgDb {
        let admin_url = std::env::var("AGENTRY_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("Postgres at {admin_url} is required for the replica suite: {e}"));
        let name = agentry_core::id::new_id("agentry_test").to_lowercase();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        PgDb { admin_url, name, url }
    }

    /// The test's own handle on the database (to look at what the replicas did).
    pub async fn store(&self) -> Store {
        Store::open(&StoreLocation::Postgres(self.url.clone())).await.unwrap()
    }

    pub async fn drop_database(self) {
        let mut admin = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut admin).await.unwrap();
    }
}

/// How a test's replicas are configured: short leases so a dead replica's turns move quickly.
pub fn replica_config(db: &PgDb) -> AppConfig {
    let mut config = AppConfig::new(StoreLocation::Postgres(db.url.clone()));
    config.engine.lease = Duration::from_secs(2);
    config.engine.dispatch_poll = Duration::from_millis(500);
    config.bootstrap = replica_config_bootstrap();
    config.shutdown_grace = Duration::from_secs(1);
    config
}

/// The first start of the tests' installations: known secret and key, the default agent on
/// `scripted:echo`.
pub fn replica_config_bootstrap() -> Option<BootstrapConfig> {
    Some(BootstrapConfig {
        supplied: SuppliedSecrets { service_secret: Some(SECRET.into()), api_key: Some(KEY.into()) },
        default_model: "scripted:echo".into(),
    })
}

/// One replica, serving on its own runtime.
pub struct Replica {
    pub addr: SocketAddr,
    pub id: String,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<std::sync::mpsc::Receiver<()>>,
}

impl Replica {
    /// Builds and serves a replica on a runtime of its own.
    pub fn start(config: AppConfig) -> Replica {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let (served_tx, served) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(async move {
            let app = App::build(config).await.unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            ready_tx.send((listener.local_addr().unwrap(), app.engine.replica_id().to_owned())).unwrap();
            app.serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
            let _ = served_tx.send(());
        });
        let (addr, id) = ready.recv_timeout(Duration::from_secs(30)).unwrap();
        Replica { addr, id, runtime: Some(runtime), stop: Some(stop), served: Some(served) }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Dies at once: every task and connection of the replica is dropped, nothing is finished.
    pub fn crash(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Shuts down gracefully and waits until it has.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            if let Some(served) = self.served.take() {
                let _ = served.recv_timeout(Duration::from_secs(15));
            }
        }
        // A runtime cannot be waited for from inside another one: its tasks are done anyway.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.crash();
    }
}

/// Applies agents through one replica's store (every replica sees them).
pub async fn apply_agents(store: &Store, agents: &[AgentSpec]) {
    for agent in agents {
        store.apply_agent(&Scope::default_scope(), agent, "test", None).await.unwrap();
    }
}

/// A session token for an end user of the default scope.
pub fn token(user: &str) -> String {
    let claims = SessionClaims::new(&Scope::default_scope(), user, "default");
    session_token::mint(SECRET, claims, 3600, Timestamp::now().unix_seconds()).unwrap()
}

/// Calls a replica as an end user (`Some(token)`) or as the operator for the whole scope.
pub async fn call(base: &str, token: Option<&str>, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let headers = match token {
        Some(token) => vec![("x-platos-session-token", token.to_owned())],
        None => operator_headers("default"),
    };
    call_with(base, &headers, method, path, body).await
}

/// The headers of the operator of `project` (organization and environment `default`).
pub fn operator_headers(project: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {KEY}")),
        ("x-platos-organization-id", "default".into()),
        ("x-platos-project-id", project.into()),
        ("x-platos-environment-id", "default".into()),
    ]
}

/// Calls a Platos route with these headers; the body's JSON (or its text).
pub async fn call_with(
    base: &str,
    headers: &[(&str, String)],
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/agent{path}");
    let mut request = client.request(method.parse().unwrap(), url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Creates a thread of `agent` for `user` through a replica.
pub async fn new_thread(base: &str, user: &str, agent: &str) -> String {
    let (status, thread) = call(base, Some(&token(user)), "POST", "/threads", Some(json!({"agentId": agent}))).await;
    assert_eq!(status, 201, "{thread}");
    thread["id"].as_str().unwrap().to_owned()
}

/// A raw Socket.IO client on `/agent` that answers pings.
pub struct Sock {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

impl Sock {
    /// Connects with `auth` as the CONNECT payload; panics unless the namespace accepts it.
    pub async fn connect(addr: SocketAddr, auth: Value) -> Sock {
        let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut sock = Sock { ws };
        sock.ws.send(Message::text(format!("40/agent,{auth}"))).await.unwrap();
        loop {
            let text = sock.frame(Duration::from_secs(10)).await.expect("connect answer");
            if text.starts_with("40/agent,") {
                return sock;
            }
            assert!(!text.starts_with("44"), "connect refused: {text}");
        }
    }

    /// As an end user.
    pub async fn user(addr: SocketAddr, user: &str) -> Sock {
        Sock::connect(addr, json!({ "token": token(user) })).await
    }

    /// As the operator of the default scope (hears every approval of it).
    pub async fn operator(addr: SocketAddr) -> Sock {
        Sock::connect(
            addr,
            json!({"apiKey": KEY, "organizationId": "default", "projectId": "default", "environmentId": "default"}),
        )
        .await
    }

    pub async fn emit(&mut self, name: &str, data: Value) {
        self.ws.send(Message::text(format!("42/agent,{}", json!([name, data])))).await.unwrap();
    }

    /// The next text frame, answering pings on the way.
    async fn frame(&mut self, timeout: Duration) -> Option<String> {
        loop {
            let next = tokio::time::timeout(timeout, self.ws.next()).await.ok()??;
            let Ok(Message::Text(text)) = next else { continue };
            if text.as_str() == "2" {
                let _ = self.ws.send(Message::text("3")).await;
                continue;
            }
            return Some(text.to_string());
        }
    }

    /// The next `agent_event`, or `None` after `timeout` of silence.
    pub async fn agent_event(&mut self, timeout: Duration) -> Option<Value> {
        self.event("agent_event", timeout).await
    }

    /// The data of the next event called `name`, or `None` after `timeout` of silence.
    pub async fn event(&mut self, name: &str, timeout: Duration) -> Option<Value> {
        loop {
            let text = self.frame(timeout).await?;
            let Some(payload) = text.strip_prefix("42/agent,") else { continue };
            let Ok(Value::Array(items)) = serde_json::from_str::<Value>(payload) else { continue };
            if items.first().and_then(Value::as_str) == Some(name) {
                return items.get(1).cloned();
            }
        }
    }

    /// Every `agent_event` of `turn_id` until its `done`.
    pub async fn turn_until_done(&mut self, turn_id: &str, timeout: Duration) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self.agent_event(timeout).await.unwrap_or_else(|| panic!("no done for {turn_id}: {events:?}"));
            if event["turnId"] != turn_id {
                continue;
            }
            let done = event["type"] == "done";
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

/// The `type`s of events, in order.
pub fn kinds(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["type"].as_str().unwrap_or("?").to_owned()).collect()
}

/// The text of a turn's tokens.
pub fn text(events: &[Value]) -> String {
    events.iter().filter(|e| e["type"] == "token").filter_map(|e| e["text"].as_str()).collect()
}

/// Asserts a turn's log is `seq` 1..n without gaps, `done` last.
pub fn assert_gapless(events: &[Value]) {
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], i as i64 + 1, "seq {} at position {i}: {events:?}", event["seq"]);
    }
    assert_eq!(events.last().map(|e| e["type"].clone()), Some(json!("done")), "done last");
}
