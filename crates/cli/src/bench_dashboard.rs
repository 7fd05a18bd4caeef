//! `agentry bench dashboard`: how long each dashboard page takes to load its data on a large
//! store — 10,000 threads and 100,000 turns (each with a priced model call) over the last week,
//! written straight into the store of a real `agentry serve` — on SQLite and on Postgres.
//!
//! A page's load is the set of API requests its script makes (`dashboard/assets/app.js`), sent at
//! once as a browser does, through the dashboard's own session and routes; the figure is the time
//! until the last answer. Target: under 300 ms for every page.

use std::time::{Duration, Instant};

use reqwest::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::bench::{API_KEY, Database, Server, start_server};

/// Options of `agentry bench dashboard`.
#[derive(Debug, clap::Args)]
pub struct DashboardBench {
    /// Threads in the store.
    #[arg(long, default_value_t = 10_000)]
    threads: i64,
    /// Turns in the store (spread over the threads and the last seven days).
    #[arg(long, default_value_t = 100_000)]
    turns: i64,
    /// Loads of each page measured.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Postgres server for the Postgres figures (a database is created and dropped).
    #[arg(long, env = "AGENTRY_TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Measure SQLite only.
    #[arg(long)]
    sqlite_only: bool,
}

/// Target of every page, in milliseconds.
const TARGET_MS: f64 = 300.0;

/// The pages and the requests their script makes (under `/dashboard/api/v1/agent`).
const PAGES: &[(&str, &[&str])] = &[
    (
        "overview",
        &[
            "/monitoring/summary?days=1",
            "/monitoring/summary?days=7",
            "/monitoring/approvals?status=pending&limit=5",
            "/monitoring/approvals?status=pending&limit=1",
            "/trigger/runs?status=EXECUTING&limit=10",
            "/turns?status=failed&limit=10",
        ],
    ),
    ("agents", &["/agents"]),
    (
        "agent",
        &["/agents/bench-echo", "/agents/bench-echo/versions", "/threads?agentId=bench-echo&limit=20&archived=true"],
    ),
    ("threads", &["/threads?limit=50"]),
    ("threads, searched", &["/threads?q=thread%209999&limit=50"]),
    ("threads, by user", &["/threads?userId=user-7&limit=50&offset=50"]),
    (
        "thread",
        &[
            "/threads/thr_bench_5",
            "/monitoring/trace/thr_bench_5",
            "/threads/thr_bench_5/artifacts",
            "/turns?threadId=thr_bench_5&limit=5",
        ],
    ),
    ("approvals", &["/monitoring/approvals?status=pending&limit=100"]),
    ("budgets", &["/budgets/status", "/budgets"]),
    (
        "cost (30 days)",
        &[
            "/monitoring/cost?daysBack=30",
            "/monitoring/cost/by-agent?days=30",
            "/monitoring/cost/by-model?days=30",
            "/monitoring/cost/by-user?days=30",
        ],
    ),
    ("jobs", &["/trigger/tasks", "/trigger/runs?limit=100", "/trigger/schedules"]),
    ("safety", &["/monitoring/safety-events?limit=200"]),
    ("tools", &["/tools/matrix"]),
];

/// Runs the seeding statements on one connection of either backend.
macro_rules! seed {
    ($conn:expr, $options:expr) => {
        for sql in seed_sql($options) {
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut $conn).await.map_err(|e| format!("seeding: {e}"))?;
        }
    };
}

/// Runs the benchmark and prints its figures.
pub async fn run(options: DashboardBench) -> Result<(), String> {
    println!(
        "agentry bench dashboard — {} threads, {} turns with a model call each; {} loads per page; target {TARGET_MS} ms",
        options.threads, options.turns, options.samples
    );
    let server = start_server(None).await?;
    let db = server.data_dir().join("agentry.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .map_err(|e| format!("cannot open {}: {e}", db.display()))?;
    let seeded = Instant::now();
    seed!(conn, &options);
    println!("sqlite: seeded in {:.1} s", seeded.elapsed().as_secs_f64());
    measure("sqlite", &server, &options).await?;
    drop(server);
    if !options.sqlite_only {
        let database = Database::create(&options.postgres).await?;
        let result = async {
            let server = start_server(Some(&database.url)).await?;
            let mut conn = sqlx::PgConnection::connect(&database.url).await.map_err(|e| e.to_string())?;
            let seeded = Instant::now();
            seed!(conn, &options);
            println!("postgres: seeded in {:.1} s", seeded.elapsed().as_secs_f64());
            measure("postgres", &server, &options).await
        }
        .await;
        database.drop_database().await?;
        result?;
    }
    Ok(())
}

/// The statements that write the threads, turns and model calls (portable SQL).
fn seed_sql(options: &DashboardBench) -> [String; 3] {
    let now = agentry_core::Timestamp::now().0;
    let week_ms = 7 * 86_400_000 - 60_000;
    [
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {threads})
             INSERT INTO threads (id, organization_id, project_id, environment_id, user_id, agent_id, title, status,
                                  created_at, updated_at)
             SELECT 'thr_bench_' || i, 'default', 'default', 'default', 'user-' || (i % 100), 'bench-echo',
                    'Bench thread ' || i, 'active', {now} - i * 1000, {now} - i * 1000 FROM n",
            threads = options.threads,
        ),
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {turns})
             INSERT INTO turns (id, thread_id, organization_id, project_id, environment_id, user_id, agent_id, status,
                                error, input_json, created_at, started_at, finished_at)
             SELECT 'trn_bench_' || i, 'thr_bench_' || (i % {threads} + 1), 'default', 'default', 'default',
                    'user-' || ((i % {threads} + 1) % 100), 'bench-echo',
                    CASE WHEN i % 97 = 0 THEN 'failed' ELSE 'completed' END,
                    CASE WHEN i % 97 = 0 THEN 'provider_error: bench' ELSE NULL END,
                    '{{\"text\":\"hello\"}}', {now} - i * {step}, {now} - i * {step}, {now} - i * {step} + 40 FROM n",
            turns = options.turns,
            threads = options.threads,
            step = week_ms / options.turns.max(1),
        ),
        "INSERT INTO model_calls (id, organization_id, project_id, environment_id, turn_id, thread_id, agent_id,
                                      user_id, step, provider, model, status, input_tokens, output_tokens,
                                      cached_input_tokens, reasoning_tokens, cost_micro_cents, finish_reason,
                                      started_at, first_token_at, finished_at, opens_turn)
             SELECT 'mcl_' || id, organization_id, project_id, environment_id, id, thread_id, agent_id, user_id, 1,
                    'scripted', 'echo', 'completed', 12, 30, 0, 0, 42000, 'stop',
                    started_at, started_at + 5, finished_at, 1
             FROM turns WHERE id LIKE 'trn_bench_%'"
            .to_owned(),
    ]
}

/// Signs in to the dashboard and times each page's requests.
async fn measure(label: &str, server: &Server, options: &DashboardBench) -> Result<(), String> {
    let client = reqwest::Client::builder().no_proxy().build().map_err(|e| e.to_string())?;
    let base = format!("http://{}", server.base);
    let signed_in = client
        .post(format!("{base}/dashboard/session"))
        .header(CONTENT_TYPE, "application/json")
        .body(json!({ "apiKey": API_KEY }).to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let cookie = signed_in
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or("the sign-in set no cookie")?;
    let session: Value = signed_in.json().await.map_err(|e| e.to_string())?;
    let csrf = session["csrfToken"].as_str().ok_or("the sign-in answered no CSRF token")?.to_owned();
    let picked = client
        .put(format!("{base}/dashboard/session/scope"))
        .header(COOKIE, &cookie)
        .header("x-csrf-token", &csrf)
        .header(CONTENT_TYPE, "application/json")
        .body(json!({"organizationId": "default", "projectId": "default", "environmentId": "default"}).to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !picked.status().is_success() {
        return Err(format!("picking the scope answered {}", picked.status()));
    }
    println!("\n{label}: page                 p50 ms   p95 ms   max ms   requests");
    let mut slowest = 0.0_f64;
    for (page, paths) in PAGES {
        let mut times = Vec::with_capacity(options.samples);
        for _ in 0..options.samples + 1 {
            let started = Instant::now();
            let loads = paths.iter().map(|path| {
                let request = client.get(format!("{base}/dashboard/api/v1/agent{path}")).header(COOKIE, &cookie);
                async move {
                    let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
                    let status = response.status();
                    response.bytes().await.map_err(|e| format!("{path}: {e}"))?;
                    if status.is_success() { Ok(()) } else { Err(format!("{path} answered {status}")) }
                }
            });
            futures_util::future::try_join_all(loads).await?;
            times.push(started.elapsed());
        }
        times.remove(0); // the first load warms the caches
        times.sort();
        let at = |q: f64| ms(times[((times.len() - 1) as f64 * q).round() as usize]);
        slowest = slowest.max(at(1.0));
        println!("{label}: {page:<20} {:>7.1}  {:>7.1}  {:>7.1}   {}", at(0.5), at(0.95), at(1.0), paths.len());
    }
    let verdict = if slowest < TARGET_MS { "within" } else { "OVER" };
    println!(
        "{label}: slowest load {slowest:.1} ms — {verdict} the {TARGET_MS} ms target ({:.2}× of it)",
        slowest / TARGET_MS
    );
    Ok(())
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
