//! A real `agentry serve` for the SDK and operator tests: a temporary data and agents dir, a
//! loopback port the server binds itself (`127.0.0.1:0`) and reports in its log, a fixed service
//! secret and API key; killed when dropped. And the SDK helpers
//! both use: tokens, clients, collecting a turn.
#![allow(dead_code)] // each test file uses part of it

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agentry_client::{Client, Scope, SessionClaims, StreamEvent, TurnEvent, TurnStatus};
use futures_util::StreamExt as _;

/// The service secret of the servers the SDK and operator tests spawn.
pub const SECRET: &str = "sdk-test-secret-0123456789abcdef";
/// Their operator API key.
pub const API_KEY: &str = "sdk-test-operator-key";

/// Claims for `user` in the default scope.
pub fn claims(user: &str) -> SessionClaims {
    SessionClaims::new(&Scope::default_scope(), user, "default")
}

/// A ten-minute session token for `user`.
pub fn token(user: &str) -> String {
    agentry_client::mint_session_token(SECRET, claims(user), Duration::from_secs(600)).unwrap()
}

/// An SDK client acting as `user`.
pub fn client(base: &str, user: &str) -> Client {
    Client::builder(base).session_token(token(user)).build().unwrap()
}

/// Collects a turn; returns the stream events and the concatenated tokens.
pub async fn collect(mut turn: agentry_client::TurnStream) -> (Vec<StreamEvent>, String) {
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

/// A turn's `done`: status, whether it was stopped, output tokens.
pub fn done(events: &[StreamEvent]) -> (TurnStatus, bool, u64) {
    match events.last() {
        Some(StreamEvent::Event(TurnEvent::Done { status, stopped, usage })) => {
            (*status, *stopped, usage.output_tokens)
        }
        other => panic!("last event is not done: {other:?}"),
    }
}

/// A running server.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Its temporary directory (`data/`, `agents/`).
    pub dir: tempfile::TempDir,
}

impl Server {
    /// The server process's id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `agentry serve` with these agent files (`(file name, TOML)`) and waits until it listens.
pub async fn spawn(secret: &str, api_key: &str, agent_files: &[(&str, String)]) -> Server {
    spawn_configured(secret, api_key, agent_files, "").await
}

/// The address `serve` logs (JSON lines on stderr) when it listens; its log keeps being copied to
/// this test's stderr afterwards (and a full pipe would stall the server).
fn listening_address(child: &mut Child) -> String {
    use std::io::BufRead as _;
    let log = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(log).lines().map_while(Result::ok) {
            let entry = serde_json::from_str::<serde_json::Value>(&line).unwrap_or_default();
            if entry["message"] == "agentry is listening"
                && let Some(address) = entry["address"].as_str()
            {
                let _ = tx.send(address.to_owned());
            } else if entry["level"] != "INFO" {
                eprintln!("{line}");
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20)).expect("the server did not say where it listens")
}

/// [`spawn`] with an `agentry.toml` of this text.
pub async fn spawn_configured(secret: &str, api_key: &str, agent_files: &[(&str, String)], config: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("agentry.toml");
    std::fs::write(&config_file, config).unwrap();
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    for (name, text) in agent_files {
        std::fs::write(agents.join(name), text).unwrap();
    }
    // The server binds a port the system chooses and says which: a port picked here and released
    // could be taken by another test's listener before the server binds it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--agents"])
        .arg(&agents)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config_file)
        .env("AGENTRY_SERVICE_SECRET", secret)
        .env("AGENTRY_API_KEY", api_key)
        .env("AGENTRY_DEFAULT_MODEL", "scripted:echo")
        .env("AGENTRY_LOG", "info")
        .env("AGENTRY_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let address = listening_address(&mut child);
    let server = Server { child, base: format!("http://{address}"), dir };
    // The port is bound before the store is set up: ready means the health check answers 200.
    let deadline = Instant::now() + Duration::from_secs(20);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    while Instant::now() < deadline {
        let health = http.get(format!("{}/api/health", server.base)).send().await;
        if health.is_ok_and(|r| r.status().is_success()) {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("server did not start");
}
