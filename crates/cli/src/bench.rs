//! `agentry bench stream`: end-to-end streaming figures against a real `agentry serve` child
//! process with the `scripted:echo` model (no model delay), so what is measured is Agentry:
//! engine, event log (SQLite), bus and transports.
//!
//! Prints: token events per second delivered to N concurrent Socket.IO clients and to N SSE
//! clients, added latency per token (event produced → client received, p50/p99; the produced
//! time is the event's millisecond `ts`, so figures carry ±1 ms), and the server's RSS with K
//! idle Socket.IO connections.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agentry_core::Timestamp;
use agentry_core::session_token::{self, SessionClaims};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use sqlx::Connection as _;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "agentry-bench-secret-0123456789";
pub(crate) const API_KEY: &str = "agentry-bench-key";

/// Options of `agentry bench stream`.
#[derive(Debug, clap::Args)]
pub struct StreamBench {
    /// Concurrent streaming clients (Socket.IO, then SSE).
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Words (= token events) per turn.
    #[arg(long, default_value_t = 2000)]
    words: usize,
    /// Idle Socket.IO connections for the memory figure.
    #[arg(long, default_value_t = 5000)]
    idle: usize,
    /// Token events of the latency run.
    #[arg(long, default_value_t = 500)]
    latency_tokens: usize,
}

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The server's data directory (its SQLite store when it has no database URL).
    pub(crate) fn data_dir(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    fn rss_kib(&self) -> u64 {
        proc_status_kib(self.child.id(), "VmRSS")
    }

    /// CPU time the server process has used, user and system.
    pub(crate) fn cpu_time(&self) -> Duration {
        proc_cpu_time(self.child.id())
    }
}

/// Runs the benchmark and prints its figures.
pub async fn run(options: StreamBench) -> Result<(), String> {
    let server = start_server(None).await?;
    let token = mint("bench-user")?;
    println!("agentry bench stream — scripted:echo, {} words/turn, SQLite event log", options.words);
    println!("server: {} (pid {})", server.base, server.child.id());

    let message = words(options.words);
    let (events, elapsed) = socket_throughput(&server.base, &token, options.clients, &message).await?;
    let socket_rate = events as f64 / elapsed.as_secs_f64();
    println!(
        "socket.io: {} clients, {events} token events in {:.2}s = {:.0} events/s (target ≥ 100000: {:.2}x)",
        options.clients,
        elapsed.as_secs_f64(),
        socket_rate,
        socket_rate / 100_000.0
    );

    let (events, elapsed) = sse_throughput(&server.base, &token, options.clients, &message).await?;
    let sse_rate = events as f64 / elapsed.as_secs_f64();
    println!(
        "sse:       {} clients, {events} token events in {:.2}s = {:.0} events/s (target ≥ 100000: {:.2}x)",
        options.clients,
        elapsed.as_secs_f64(),
        sse_rate,
        sse_rate / 100_000.0
    );

    let mut latencies = socket_latency(&server.base, &token, &words(options.latency_tokens)).await?;
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    println!(
        "latency:   {} tokens, produced → received p50 {:.2} ms, p99 {:.2} ms (target p99 < 5 ms: {:.2}x)",
        latencies.len(),
        pct(0.5),
        pct(0.99),
        pct(0.99) / 5.0
    );

    let before = server.rss_kib();
    let idle = idle_connections(&server.base, &token, options.idle).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_kib();
    println!(
        "idle:      {} socket.io connections: server RSS {:.1} MiB (was {:.1} MiB, {:.1} KiB per connection; target < 300 MiB: {:.2}x)",
        idle.len(),
        after as f64 / 1024.0,
        before as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 / idle.len().max(1) as f64,
        after as f64 / 1024.0 / 300.0
    );
    drop(idle);
    Ok(())
}

/// Starts `agentry serve` with the bench agents: on SQLite in a temporary directory, or as a
/// replica on the Postgres database `database_url`.
pub(crate) async fn start_server(database_url: Option<&str>) -> Result<Server, String> {
    start_server_with(database_url, &[]).await
}

/// [`start_server`] with extra environment variables.
pub(crate) async fn start_server_with(database_url: Option<&str>, env: &[(&str, &str)]) -> Result<Server, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(&agents).map_err(|e| e.to_string())?;
    write_agent(&agents, "bench-echo", 0)?;
    write_agent(&agents, "paced-echo", 2)?;
    // Priced, so `bench turns` can measure turns under a budget cap.
    let config = dir.path().join("agentry.toml");
    std::fs::write(&config, "[prices.\"scripted:echo\"]\ninput = 1\noutput = 1\n").map_err(|e| e.to_string())?;
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut command = Command::new(exe);
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--agents"])
        .arg(&agents)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config);
    if let Some(url) = database_url {
        command.arg("--database-url").arg(url);
    }
    command.envs(env.iter().copied());
    let child = command
        .env("AGENTRY_SERVICE_SECRET", SECRET)
        .env("AGENTRY_API_KEY", API_KEY)
        .env("AGENTRY_DEFAULT_MODEL", "scripted:echo")
        .env("AGENTRY_LOG", "warn")
        .env("AGENTRY_MAX_MESSAGE_BYTES", "10000000")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let server = Server { child, base: format!("127.0.0.1:{port}"), _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok((200, _)) = http(&server.base, "GET", "/api/health", None, None).await {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the server did not become healthy".into())
}

fn write_agent(dir: &Path, id: &str, delay_ms: u64) -> Result<(), String> {
    let text = format!(
        "id = \"{id}\"\nname = \"{id}\"\nmodel = \"scripted:echo\"\nsystem_prompt = \"\"\n[script]\ntoken_delay_ms = {delay_ms}\n"
    );
    std::fs::write(dir.join(format!("{id}.toml")), text).map_err(|e| e.to_string())
}

pub(crate) fn mint(user: &str) -> Result<String, String> {
    let claims = SessionClaims::new(&agentry_core::Scope::default_scope(), user, "default");
    session_token::mint(SECRET, claims, 3600, Timestamp::now().unix_seconds()).map_err(|e| e.to_string())
}

pub(crate) fn words(n: usize) -> String {
    (0..n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
}

pub(crate) fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a Socket.IO connection to `/agent` with a session token.
pub(crate) async fn connect(base: &str, token: &str) -> Result<Ws, String> {
    let url = format!("ws://{base}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await.map_err(|e| e.to_string())?;
    ws.send(Message::text(format!("40/agent,{}", json!({ "token": token })))).await.map_err(|e| e.to_string())?;
    // Wait for the namespace connect ack.
    while let Some(frame) = ws.next().await {
        if let Message::Text(text) = frame.map_err(|e| e.to_string())? {
            if text.starts_with("40/agent") {
                return Ok(ws);
            }
            if text.starts_with("44/agent") {
                return Err(format!("connect refused: {text}"));
            }
        }
    }
    Err("connection closed during connect".into())
}

/// Reads `agent_event`s until `done` and returns the token count. Frames are only matched, not
/// parsed (the client shares the machine with the server), unless `on_token` wants the event.
pub(crate) async fn read_turn(
    ws: &mut Ws,
    mut on_token: Option<&mut (dyn FnMut(&Value) + Send)>,
) -> Result<usize, String> {
    let mut tokens = 0;
    while let Some(frame) = ws.next().await {
        let Message::Text(text) = frame.map_err(|e| e.to_string())? else { continue };
        if text.as_str() == "2" {
            ws.send(Message::text("3")).await.map_err(|e| e.to_string())?;
            continue;
        }
        let Some(payload) = text.strip_prefix(r#"42/agent,["agent_event","#) else { continue };
        if payload.contains(r#""type":"token""#) {
            tokens += 1;
            if let Some(on_token) = on_token.as_mut()
                && let Some(event) = agent_event(&text)
            {
                on_token(&event);
            }
        } else if payload.contains(r#""type":"done""#) {
            return Ok(tokens);
        }
    }
    Err("connection closed before done".into())
}

/// The payload of an `agent_event` frame (its recovery offset, the last argument, ignored).
pub(crate) fn agent_event(frame: &str) -> Option<Value> {
    let payload = frame.strip_prefix("42/agent,")?;
    let Ok(Value::Array(mut items)) = serde_json::from_str::<Value>(payload) else { return None };
    (items.first().and_then(Value::as_str) == Some("agent_event") && items.len() > 1).then(|| items.swap_remove(1))
}

async fn socket_throughput(
    base: &str,
    token: &str,
    clients: usize,
    message: &str,
) -> Result<(usize, Duration), String> {
    let mut sockets = Vec::with_capacity(clients);
    for _ in 0..clients {
        sockets.push(connect(base, token).await?);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut ws in sockets {
        let frame = format!("42/agent,{}", json!(["message", { "message": message, "agentId": "bench-echo" }]));
        tasks.push(tokio::spawn(async move {
            ws.send(Message::text(frame)).await.map_err(|e| e.to_string())?;
            read_turn(&mut ws, None).await
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.map_err(|e| e.to_string())??;
    }
    Ok((total, started.elapsed()))
}

async fn socket_latency(base: &str, token: &str, message: &str) -> Result<Vec<f64>, String> {
    let mut ws = connect(base, token).await?;
    let frame = format!("42/agent,{}", json!(["message", { "message": message, "agentId": "paced-echo" }]));
    ws.send(Message::text(frame)).await.map_err(|e| e.to_string())?;
    let mut latencies = Vec::new();
    let mut record = |event: &Value| {
        if let Some(ts) = event["ts"].as_f64() {
            // `ts` is whole milliseconds (floored); centre it.
            latencies.push(now_ms() - (ts + 0.5));
        }
    };
    read_turn(&mut ws, Some(&mut record)).await?;
    Ok(latencies)
}

async fn idle_connections(base: &str, token: &str, count: usize) -> Result<Vec<Ws>, String> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        sockets.push(connect(base, token).await?);
    }
    Ok(sockets)
}

async fn sse_throughput(base: &str, token: &str, clients: usize, message: &str) -> Result<(usize, Duration), String> {
    let mut threads = Vec::new();
    for _ in 0..clients {
        let (status, body) =
            http(base, "POST", "/api/v1/agent/threads", Some(token), Some(&json!({ "agentId": "bench-echo" }))).await?;
        if status != 201 {
            return Err(format!("thread create answered {status}: {body}"));
        }
        let thread: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        threads.push(thread["id"].as_str().unwrap_or_default().to_owned());
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for thread in threads {
        let (base, token, body) = (base.to_owned(), token.to_owned(), json!({ "message": message }));
        tasks.push(tokio::spawn(async move { sse_turn(&base, &token, &thread, &body).await }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.map_err(|e| e.to_string())??;
    }
    Ok((total, started.elapsed()))
}

/// Minimal HTTP/1.1 client: one request per connection, `Connection: close`.
pub(crate) async fn http(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, String), String> {
    let mut stream = open_request(base, method, path, token, body).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Ok((status, dechunk(&body)))
}

async fn open_request(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Result<tokio::net::TcpStream, String> {
    let mut stream = tokio::net::TcpStream::connect(base).await.map_err(|e| e.to_string())?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token.map(|t| format!("X-Platos-Session-Token: {t}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {base}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Streams one SSE turn, counting token frames until `done`.
async fn sse_turn(base: &str, token: &str, thread: &str, body: &Value) -> Result<usize, String> {
    let path = format!("/api/v1/agent/threads/{thread}/stream");
    let stream = open_request(base, "POST", &path, Some(token), Some(body)).await?;
    let mut lines = BufReader::new(stream).lines();
    let mut tokens = 0;
    // Chunk-size lines and blank lines are skipped; every `data:` line is one whole event because
    // the server writes each event in one chunk.
    while let Some(line) = lines.next_line().await.map_err(|e| e.to_string())? {
        let Some(data) = line.strip_prefix("data: ") else { continue };
        if data.contains(r#""type":"token""#) {
            tokens += 1;
        } else if data.contains(r#""type":"done""#) {
            return Ok(tokens);
        }
    }
    Err("SSE stream ended before done".into())
}

/// Decodes a chunked body (or returns it unchanged when it is not chunked).
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((size, after)) = rest.split_once("\r\n") else { return body.to_owned() };
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else { return body.to_owned() };
        if size == 0 || after.len() < size {
            return out;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
}

/// User plus system CPU time of a process, from `/proc/<pid>/stat` (zero when unreadable).
fn proc_cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after `) state`.
    let ticks: u64 = [11, 12].iter().filter_map(|i| fields.get(*i)?.parse::<u64>().ok()).sum();
    // Linux reports in USER_HZ, 100 per second on every mainstream configuration.
    Duration::from_millis(ticks * 10)
}

/// A memory field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, …) in KiB; 0 when unreadable.
pub(crate) fn proc_status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A throwaway Postgres database for the benchmarks' replicas.
pub(crate) struct Database {
    admin: String,
    name: String,
    pub(crate) url: String,
}

impl Database {
    pub(crate) async fn create(admin: &str) -> Result<Database, String> {
        let mut conn = sqlx::PgConnection::connect(admin)
            .await
            .map_err(|e| format!("cannot reach Postgres at {admin} (pass --postgres or --sqlite-only): {e}"))?;
        let name = agentry_core::id::new_id("agentry_bench").to_lowercase();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
        Ok(Database { admin: admin.to_owned(), url: format!("{base}/{name}"), name })
    }

    pub(crate) async fn drop_database(self) -> Result<(), String> {
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.map_err(|e| e.to_string())?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)))
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }
}
