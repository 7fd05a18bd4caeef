//! `agentry bench jobs`: runs of an `http` task per second through real `agentry serve`
//! processes — on SQLite and on Postgres — against a loopback endpoint that answers at once, and
//! the trigger → start latency on an idle worker (the trigger is sent → the endpoint hears the
//! run's call), p50/p99.
//!
//! Throughput: the runs are triggered in batches of 1,000 and timed until every batch is
//! `COMPLETED` (the endpoint was called and the run recorded). Server CPU per run is the server's
//! user+system time over that span.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::bench::{API_KEY, Database, start_server_with};

/// Options of `agentry bench jobs`.
#[derive(Debug, clap::Args)]
pub struct JobsBench {
    /// Runs per configuration.
    #[arg(long, default_value_t = 5000)]
    runs: usize,
    /// Triggers timed one by one for the latency figures.
    #[arg(long, default_value_t = 200)]
    latency_samples: usize,
    /// Postgres server for the Postgres figures (a database is created and dropped).
    #[arg(long, env = "AGENTRY_TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Measure SQLite only.
    #[arg(long)]
    sqlite_only: bool,
}

/// When the endpoint heard each run's call (ms since the bench started), and a bell per call.
#[derive(Default)]
struct Heard {
    at: Mutex<HashMap<String, f64>>,
    calls: std::sync::atomic::AtomicUsize,
    rung: Notify,
}

/// Runs the benchmark and prints its figures.
pub async fn run(options: JobsBench) -> Result<(), String> {
    println!("agentry bench jobs — an `http` task against a loopback endpoint that answers at once");
    let epoch = Instant::now();
    let heard = Arc::new(Heard::default());
    let target = endpoint(heard.clone(), epoch).await?;
    measure("sqlite, 1 replica", None, &target, &heard, epoch, &options).await?;
    if !options.sqlite_only {
        let db = Database::create(&options.postgres).await?;
        let result = measure("postgres, 1 replica", Some(&db.url), &target, &heard, epoch, &options).await;
        db.drop_database().await?;
        result?;
    }
    Ok(())
}

async fn endpoint(heard: Arc<Heard>, epoch: Instant) -> Result<String, String> {
    async fn hit(State((heard, epoch)): State<(Arc<Heard>, Instant)>, headers: HeaderMap) -> &'static str {
        let at = epoch.elapsed().as_secs_f64() * 1000.0;
        if let Some(run) = headers.get("x-agentry-run-id").and_then(|v| v.to_str().ok()) {
            heard.at.lock().unwrap_or_else(|p| p.into_inner()).insert(run.to_owned(), at);
        }
        heard.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        heard.rung.notify_waiters();
        "ok"
    }
    let app = axum::Router::new().route("/hit", axum::routing::post(hit)).with_state((heard, epoch));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let base = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

async fn measure(
    label: &str,
    database_url: Option<&str>,
    target: &str,
    heard: &Heard,
    epoch: Instant,
    options: &JobsBench,
) -> Result<(), String> {
    let tasks = tempfile::tempdir().map_err(|e| e.to_string())?;
    let task = format!("id = \"bench-hit\"\nkind = \"http\"\nurl = \"{target}/hit\"\n");
    std::fs::write(tasks.path().join("bench-hit.toml"), task).map_err(|e| e.to_string())?;
    let dir = tasks.path().to_string_lossy().into_owned();
    let server = start_server_with(database_url, &[("AGENTRY_TASKS_DIR", dir.as_str())]).await?;
    let client = reqwest::Client::new();
    let api = |path: &str| format!("http://{}/api/v1/agent{path}", server.base);

    // Throughput.
    let cpu_before = server.cpu_time();
    let started = Instant::now();
    let mut batches = Vec::new();
    let mut left = options.runs;
    while left > 0 {
        let n = left.min(1_000);
        left -= n;
        let payloads: Vec<Value> = (0..n).map(|i| json!({ "i": i })).collect();
        let body = json!({ "payloads": payloads });
        let batch = operator(&client, reqwest::Method::POST, &api("/trigger/batches/bench-hit"), Some(&body)).await?;
        batches.push(batch["batchId"].as_str().ok_or("no batchId")?.to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut pending = batches.clone();
    while !pending.is_empty() {
        if Instant::now() > deadline {
            return Err(format!("{label}: runs did not finish within 10 minutes"));
        }
        // Batches finish about in order: look at the oldest pending one only, and not too often
        // (a batch status reads all its runs).
        tokio::time::sleep(Duration::from_millis(100)).await;
        let id = &pending[0];
        let batch = operator(&client, reqwest::Method::GET, &api(&format!("/trigger/batches/{id}")), None).await?;
        if batch["status"] == "COMPLETED" {
            if batch["counts"]["COMPLETED"] != json!(batch["runCount"]) {
                return Err(format!("{label}: a batch ended with failures: {batch}"));
            }
            pending.remove(0);
        }
    }
    let elapsed = started.elapsed();
    let cpu = server.cpu_time().saturating_sub(cpu_before);
    let rate = options.runs as f64 / elapsed.as_secs_f64();
    println!(
        "{label}: {} runs in {:.2}s = {rate:.0} runs/s, server CPU {:.3} ms/run (target ≥ 1000 runs/s: {:.2}x)",
        options.runs,
        elapsed.as_secs_f64(),
        cpu.as_secs_f64() * 1000.0 / options.runs as f64,
        rate / 1000.0
    );

    // Trigger → start on an idle worker.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut latencies = Vec::with_capacity(options.latency_samples);
    for _ in 0..options.latency_samples {
        let sent = epoch.elapsed().as_secs_f64() * 1000.0;
        let handle = operator(
            &client,
            reqwest::Method::POST,
            &api("/trigger/tasks/bench-hit/trigger"),
            Some(&json!({"payload": {}})),
        )
        .await?;
        let id = handle["id"].as_str().ok_or("no run id")?.to_owned();
        let at = loop {
            let wait = heard.rung.notified();
            if let Some(at) = heard.at.lock().unwrap_or_else(|p| p.into_inner()).get(&id).copied() {
                break at;
            }
            if tokio::time::timeout(Duration::from_secs(10), wait).await.is_err() {
                return Err(format!("{label}: run {id} never called the endpoint"));
            }
        };
        latencies.push(at - sent);
        // Let the attempt finish, so the next trigger finds an idle worker.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);
    println!(
        "{label}: trigger → start on an idle worker, {} runs: p50 {:.2} ms, p99 {:.2} ms (target p99 < 50 ms: {:.2}x)",
        latencies.len(),
        pct(0.5),
        pct(0.99),
        pct(0.99) / 50.0
    );
    drop(server);
    Ok(())
}

async fn operator(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let mut request = client
        .request(method, url)
        .bearer_auth(API_KEY)
        .header("x-platos-organization-id", "default")
        .header("x-platos-project-id", "default")
        .header("x-platos-environment-id", "default");
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{url}: HTTP {status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| format!("{url}: {e}: {text}"))
}
