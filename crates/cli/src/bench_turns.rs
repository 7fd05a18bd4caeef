//! `agentry bench turns`: whole turns per second through real `agentry serve` processes, with a
//! zero-latency model (`scripted:echo`, a 5-word message), at 1 and 10 concurrent Socket.IO
//! clients — on SQLite, on Postgres with one replica and with two — and the latency of an event
//! crossing replicas (logged on A, heard by a socket on B).
//!
//! A client sends a message and reads its turn up to `done`, then sends the next one; each client
//! has its own thread. Server CPU per turn is the servers' user+system time over the run.
//!
//! What a feature costs (a budget cap; spans) is measured on two fresh SQLite servers, one with
//! and one without it, in alternation, best of two rounds each.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use futures_util::{SinkExt as _, StreamExt as _};

use crate::bench::{
    Database, Server, agent_event, connect, http, mint, now_ms, read_turn, start_server, start_server_with, words,
};

/// Options of `agentry bench turns`.
#[derive(Debug, clap::Args)]
pub struct TurnsBench {
    /// Turns per configuration (shared by the clients).
    #[arg(long, default_value_t = 1000)]
    turns: usize,
    /// Postgres server for the Postgres figures (a database is created and dropped).
    #[arg(long, env = "AGENTRY_TEST_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Measure SQLite only.
    #[arg(long)]
    sqlite_only: bool,
    /// Token events of the cross-replica latency run.
    #[arg(long, default_value_t = 500)]
    latency_tokens: usize,
}

/// Runs the benchmark and prints its figures.
pub async fn run(options: TurnsBench) -> Result<(), String> {
    println!("agentry bench turns — scripted:echo without delay, 5-word messages, Socket.IO clients");
    let server = start_server(None).await?;
    report("sqlite, 1 replica", &[server], options.turns).await?;
    budget_cost(options.turns).await?;
    telemetry_cost(options.turns).await?;
    if options.sqlite_only {
        return Ok(());
    }
    for replicas in [1, 2] {
        let db = Database::create(&options.postgres).await?;
        let mut servers = Vec::new();
        for _ in 0..replicas {
            servers.push(start_server(Some(&db.url)).await?);
        }
        let result = report(
            &format!("postgres, {replicas} replica{}", if replicas > 1 { "s" } else { "" }),
            &servers,
            options.turns,
        )
        .await;
        let latency = if replicas == 2 && result.is_ok() {
            cross_replica_latency(&servers[0], &servers[1], options.latency_tokens).await
        } else {
            Ok(())
        };
        drop(servers);
        db.drop_database().await?;
        result?;
        latency?;
    }
    Ok(())
}

/// Prints turns/s at 1 and at 10 clients; clients are spread over the replicas.
async fn report(label: &str, servers: &[Server], turns: usize) -> Result<(), String> {
    for clients in [1, 10] {
        let cpu_before: Duration = servers.iter().map(Server::cpu_time).sum();
        let (done, elapsed) = throughput(servers, clients, turns).await?;
        let cpu = servers.iter().map(Server::cpu_time).sum::<Duration>().saturating_sub(cpu_before);
        let rate = done as f64 / elapsed.as_secs_f64();
        println!(
            "{label:<22} {clients:>2} client{}: {done} turns in {:.2}s = {rate:.0} turns/s, server CPU {:.2} ms/turn{}",
            if clients > 1 { "s" } else { " " },
            elapsed.as_secs_f64(),
            cpu.as_secs_f64() * 1000.0 / done.max(1) as f64,
            if clients == 10 { format!(" (aim ≥ 1000 turns/s: {:.2}x)", rate / 1000.0) } else { String::new() }
        );
    }
    Ok(())
}

async fn throughput(servers: &[Server], clients: usize, turns: usize) -> Result<(usize, Duration), String> {
    let token = mint("bench-turns")?;
    let mut sessions = Vec::new();
    for client in 0..clients {
        let base = &servers[client % servers.len()].base;
        let (status, body) =
            http(base, "POST", "/api/v1/agent/threads", Some(&token), Some(&json!({ "agentId": "bench-echo" })))
                .await?;
        if status != 201 {
            return Err(format!("thread create answered {status}: {body}"));
        }
        let thread: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let thread_id = thread["id"].as_str().unwrap_or_default().to_owned();
        sessions.push((connect(base, &token).await?, thread_id));
    }
    let per_client = turns.div_ceil(clients);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mut ws, thread_id) in sessions {
        tasks.push(tokio::spawn(async move {
            let frame = format!(
                "42/agent,{}",
                json!(["message", { "message": "one two three four five", "threadId": thread_id }])
            );
            for _ in 0..per_client {
                ws.send(Message::text(frame.clone())).await.map_err(|e| e.to_string())?;
                read_turn(&mut ws, None).await?;
            }
            Ok::<usize, String>(per_client)
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await.map_err(|e| e.to_string())??;
    }
    Ok((done, started.elapsed()))
}

/// Turns/s at 10 clients without a budget cap and with a scope cap high enough never to block
/// (every model call reserves and settles).
async fn budget_cost(turns: usize) -> Result<(), String> {
    let plain = start_server(None).await?;
    let capped = start_server(None).await?;
    let cap = json!({ "scopeType": "scope", "period": "day", "limitCents": 1_000_000_000.0 });
    let answer = reqwest::Client::new()
        .post(format!("http://{}/api/v1/agent/budgets", capped.base))
        .bearer_auth(crate::bench::API_KEY)
        .header("x-platos-organization-id", "default")
        .header("x-platos-project-id", "default")
        .header("x-platos-environment-id", "default")
        .json(&cap)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !answer.status().is_success() {
        return Err(format!("creating the cap answered {}", answer.status()));
    }
    compare("budget cap", ("without a cap", &plain), ("with one", &capped), turns).await
}

/// Turns/s at 10 clients with spans off (`AGENTRY_STORE_SPANS=false`) and on (the default: a
/// `chat` and an `invoke_agent` span a turn, stored with the turn's events); the usage ledger is
/// written either way.
/// Then with spans also exported to a collector that is not there (nothing listens on port 9):
/// a turn must not notice.
async fn telemetry_cost(turns: usize) -> Result<(), String> {
    let off = start_server_with(None, &[("AGENTRY_STORE_SPANS", "false")]).await?;
    let on = start_server(None).await?;
    compare("spans", ("spans off", &off), ("spans on", &on), turns).await?;
    drop(off);
    let down = start_server_with(None, &[("AGENTRY_OTLP_ENDPOINT", "http://127.0.0.1:9")]).await?;
    compare("otlp down", ("spans on", &on), ("collector absent", &down), turns).await
}

/// Measures `base` and `variant` in alternation (A B B A) at 10 clients, best of two runs each, so
/// that machine noise does not pass for the variant's cost; prints how much slower the variant is.
async fn compare(what: &str, base: (&str, &Server), variant: (&str, &Server), turns: usize) -> Result<(), String> {
    let mut best = [(0.0_f64, f64::MAX); 2];
    // A B B A: a server that slows as its database grows, or a machine that slows over the run,
    // weighs on both alike.
    for order in [[0, 1], [1, 0]] {
        for i in order {
            let (server, best) = ([base.1, variant.1][i], &mut best[i]);
            let cpu_before = server.cpu_time();
            let (done, elapsed) = throughput(std::slice::from_ref(server), 10, turns).await?;
            let cpu_ms = server.cpu_time().saturating_sub(cpu_before).as_secs_f64() * 1000.0 / done.max(1) as f64;
            best.0 = best.0.max(done as f64 / elapsed.as_secs_f64());
            best.1 = best.1.min(cpu_ms);
        }
    }
    let [(rate_base, cpu_base), (rate_variant, cpu_variant)] = best;
    println!(
        "{what:<12} sqlite 10 clients: {rate_base:.0} turns/s ({cpu_base:.2} ms CPU/turn) {}, \
         {rate_variant:.0} ({cpu_variant:.2} ms) {}: {:.1} % slower (aim < 10 %)",
        base.0,
        variant.0,
        (1.0 - rate_variant / rate_base) * 100.0
    );
    Ok(())
}

/// A turn runs on `a` (paced tokens) while a socket on `b` has joined its thread: how long each
/// event takes from being produced on A to arriving on B.
async fn cross_replica_latency(a: &Server, b: &Server, tokens: usize) -> Result<(), String> {
    let token = mint("bench-latency")?;
    let (status, body) =
        http(&a.base, "POST", "/api/v1/agent/threads", Some(&token), Some(&json!({ "agentId": "paced-echo" }))).await?;
    if status != 201 {
        return Err(format!("thread create answered {status}: {body}"));
    }
    let thread: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    let thread_id = thread["id"].as_str().unwrap_or_default().to_owned();
    let mut watcher = connect(&b.base, &token).await?;
    let join = format!("42/agent,{}", json!(["join_thread", { "threadId": thread_id }]));
    watcher.send(Message::text(join)).await.map_err(|e| e.to_string())?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut sender = connect(&a.base, &token).await?;
    let message = format!("42/agent,{}", json!(["message", { "message": words(tokens), "threadId": thread_id }]));
    sender.send(Message::text(message)).await.map_err(|e| e.to_string())?;
    let reader = tokio::spawn(async move { read_turn(&mut sender, None).await });
    let mut latencies = Vec::new();
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(30), watcher.next()).await.ok().flatten() {
        let Message::Text(text) = frame.map_err(|e| e.to_string())? else { continue };
        if text.as_str() == "2" {
            watcher.send(Message::text("3")).await.map_err(|e| e.to_string())?;
            continue;
        }
        let Some(event) = agent_event(&text) else { continue };
        if event["type"] == "token"
            && let Some(ts) = event["ts"].as_f64()
        {
            // `ts` is whole milliseconds (floored); centre it.
            latencies.push(now_ms() - (ts + 0.5));
        }
        if event["type"] == "done" {
            break;
        }
    }
    reader.await.map_err(|e| e.to_string())??;
    if latencies.is_empty() {
        return Err("the socket on the other replica heard no token".into());
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "cross-replica event:   {} tokens logged on A, heard on B: p50 {:.2} ms, p99 {:.2} ms (aim p99 < 20 ms: {:.2}x)",
        latencies.len(),
        pct(0.5),
        pct(0.99),
        pct(0.99) / 20.0
    );
    Ok(())
}
