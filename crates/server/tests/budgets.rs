//! Budget caps that never overspend: 200 concurrent turns against a cap that allows about 50, on
//! two replicas on one Postgres and again on SQLite; a paused turn that survives a restart and
//! finishes once the cap is raised; alerts to a webhook exactly once per threshold and window,
//! with two replicas.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentry_core::{AgentSpec, BudgetPolicy, Scope, Script, TurnStatus};
use agentry_llm::ProviderRegistry;
use agentry_llm::config::Price;
use agentry_server::AppConfig;
use agentry_store::StoreLocation;
use common::*;
use serde_json::{Value, json};

/// Four words in, four words out: 4 × 1000 + 4 × 2000 µ¢ a turn.
const MESSAGE: &str = "one two three four";
const TURN_COST: i64 = 12_000;

fn priced() -> ProviderRegistry {
    let price = Price { input: 1000.0, output: 2000.0, cached_input: None };
    ProviderRegistry::default().with_prices(BTreeMap::from([("scripted:echo".to_owned(), price)]))
}

fn echo(id: &str, delay_ms: u64) -> AgentSpec {
    AgentSpec {
        script: Some(Script { token_delay_ms: delay_ms, steps: Vec::new() }),
        ..AgentSpec::new(id, id, "scripted:echo", "")
    }
}

fn with_prices(mut config: AppConfig) -> AppConfig {
    config.providers = priced();
    config.engine.allow_private_webhooks = true;
    config
}

async fn create_cap(base: &str, body: Value) -> Value {
    let (status, cap) = call(base, None, "POST", "/budgets", Some(body)).await;
    assert_eq!(status, 201, "{cap}");
    cap["cap"].clone()
}

/// Sends `turns` messages at once, each on its own thread, spread over `bases`; returns each
/// send's answer.
async fn storm(bases: &[String], turns: usize) -> Vec<Value> {
    let mut threads = Vec::new();
    for i in 0..turns {
        threads.push(new_thread(&bases[i % bases.len()], "alice", "priced").await);
    }
    let user = token("alice");
    let sends = threads.iter().enumerate().map(|(i, thread)| {
        let (base, user, path) = (bases[i % bases.len()].clone(), user.clone(), format!("/threads/{thread}/messages"));
        tokio::spawn(async move { call(&base, Some(&user), "POST", &path, Some(json!({ "message": MESSAGE }))).await })
    });
    let mut answers = Vec::new();
    for send in sends {
        let (status, answer) = send.await.unwrap();
        assert_eq!(status, 200, "{answer}");
        answers.push(answer);
    }
    answers
}

/// Checks the storm's outcome against the ledger and the cap, window by window of `period` (a
/// storm may cross into the next window: each window then holds at most the limit).
async fn assert_never_overspent(
    store: &agentry_store::Store,
    base: &str,
    answers: &[Value],
    limit: i64,
    period: agentry_core::Period,
) {
    let scope = Scope::default_scope();
    let mut ledger = 0;
    let mut reported = 0;
    let mut completed = 0;
    let mut by_window: BTreeMap<String, i64> = BTreeMap::new();
    for answer in answers {
        let turn_id = answer["turnId"].as_str().unwrap();
        ledger += store.turn_usage(&scope, turn_id).await.unwrap().cost.0;
        for call in store.model_calls_of_turn(&scope, turn_id).await.unwrap() {
            *by_window.entry(period.window_key(call.started_at)).or_default() += call.usage.cost.0;
        }
        reported += answer["usage"]["costMicroCents"].as_i64().unwrap();
        let events = answer["events"].as_array().unwrap();
        assert_eq!(events.last().unwrap()["type"], "done", "done last");
        match answer["status"].as_str() {
            Some("completed") => completed += 1,
            Some("failed") => {
                let error = events.iter().find(|e| e["type"] == "error").expect("a refused turn says why");
                assert_eq!(error["code"], "budget_cap", "{error}");
                assert_eq!(error["flags"][0]["type"], "budget");
                assert_eq!(error["flags"][0]["severity"], "high");
                assert!(!events.iter().any(|e| e["type"] == "token"), "refused before any model call");
            }
            other => panic!("unexpected status {other:?}: {answer}"),
        }
    }
    for (window, spent) in &by_window {
        assert!(*spent <= limit, "spend {spent} µ¢ in {window} is within the cap of {limit} µ¢");
    }
    assert_eq!(ledger, reported, "the ledger equals the sum of done.usage");
    assert_eq!(ledger, completed * TURN_COST);
    assert!(completed >= 40, "about 50 turns fit the cap: {completed} completed");
    let (_, status) = call(base, None, "GET", "/budgets/status", None).await;
    let current = by_window.get(&period.window_key(agentry_core::Timestamp::now())).copied().unwrap_or(0);
    if by_window.len() > 1 || current != ledger {
        // The storm crossed a window boundary: the status shows the new window only.
        assert_eq!(status["caps"][0]["spentMicroCents"], current, "{status}");
        return;
    }
    assert_eq!(status["caps"][0]["spentMicroCents"], ledger, "{status}");
    assert_eq!(status["caps"][0]["reservedMicroCents"], 0, "no reservation is left behind");
    assert_eq!(status["blocked"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_turns_on_two_replicas_never_overspend() {
    let db = PgDb::create().await;
    let mut reps: Vec<Replica> = (0..2).map(|_| Replica::start(with_prices(replica_config(&db)))).collect();
    let store = db.store().await;
    apply_agents(&store, &[echo("priced", 0)]).await;
    let limit = 50 * TURN_COST;
    create_cap(&reps[0].base(), json!({"scopeType": "scope", "period": "day", "limitCents": limit as f64 / 1e6})).await;
    let answers = storm(&[reps[0].base(), reps[1].base()], 200).await;
    assert_never_overspent(&store, &reps[1].base(), &answers, limit, agentry_core::Period::Day).await;
    store.close().await;
    for replica in &mut reps {
        replica.stop();
    }
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_turns_on_sqlite_never_overspend() {
    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation::Sqlite(dir.path().join("b.db"));
    let mut config = with_prices(AppConfig::new(location.clone()));
    config.bootstrap = replica_config_bootstrap();
    let mut replica = Replica::start(config);
    let store = agentry_store::Store::open(&location).await.unwrap();
    apply_agents(&store, &[echo("priced", 0)]).await;
    let limit = 50 * TURN_COST;
    create_cap(&replica.base(), json!({"scopeType": "scope", "period": "hour", "limitCents": limit as f64 / 1e6}))
        .await;
    let answers = storm(&[replica.base()], 200).await;
    assert_never_overspent(&store, &replica.base(), &answers, limit, agentry_core::Period::Hour).await;
    store.close().await;
    replica.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_turn_survives_a_restart_and_finishes_once_the_cap_is_raised() {
    let db = PgDb::create().await;
    let mut first = Replica::start(with_prices(replica_config(&db)));
    let store = db.store().await;
    let pausing = AgentSpec { on_budget: Some(BudgetPolicy::Pause), ..echo("priced", 0) };
    apply_agents(&store, &[pausing]).await;
    let cap = create_cap(
        &first.base(),
        json!({"scopeType": "user", "targetId": "alice", "period": "month", "limitCents": TURN_COST as f64 / 1e6}),
    )
    .await;
    let thread = new_thread(&first.base(), "alice", "priced").await;
    let user = token("alice");
    let path = format!("/threads/{thread}/messages");
    let (_, fits) = call(&first.base(), Some(&user), "POST", &path, Some(json!({"message": MESSAGE}))).await;
    assert_eq!(fits["status"], "completed");
    // The next one parks at the cap.
    let mut sock = Sock::user(first.addr, "alice").await;
    sock.emit("message", json!({"message": "five six seven eight", "threadId": thread})).await;
    let waiting = sock.agent_event(Duration::from_secs(10)).await.unwrap();
    let turn_id = waiting["turnId"].as_str().unwrap().to_owned();
    let scope = Scope::default_scope();
    let mut parked = None;
    for _ in 0..100 {
        let turn = store.get_turn(&scope, &turn_id).await.unwrap().unwrap();
        if turn.status == TurnStatus::Waiting {
            parked = Some(turn);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let parked = parked.expect("the turn parks at the cap");
    assert_eq!(parked.wait_reason.as_deref(), Some("budget"));
    drop(sock);

    // A restart: the turn is still waiting; raising the cap lets it finish.
    first.stop();
    let second = Replica::start(with_prices(replica_config(&db)));
    assert_eq!(store.get_turn(&scope, &turn_id).await.unwrap().unwrap().status, TurnStatus::Waiting);
    let raise = json!({"scopeType": "user", "targetId": "alice", "period": "month", "limitCents": 1.0});
    let (status, body) =
        call(&second.base(), None, "PUT", &format!("/budgets/{}", cap["id"].as_str().unwrap()), Some(raise)).await;
    assert_eq!(status, 200, "{body}");
    let mut resumer = Sock::user(second.addr, "alice").await;
    resumer.emit("resume_stream", json!({"threadId": thread, "lastSeq": 0})).await;
    let events = resumer.turn_until_done(&turn_id, Duration::from_secs(15)).await;
    assert_eq!(events.last().unwrap()["status"], "completed", "{events:?}");
    assert_eq!(text(&events), "five six seven eight");
    assert_gapless(&events);
    store.close().await;
    let mut second = second;
    second.stop();
    db.drop_database().await;
}

/// A loopback receiver keeping what it was sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |body: axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body.0);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_fire_once_per_threshold_and_window_with_two_replicas() {
    let (url, got) = receiver().await;
    let db = PgDb::create().await;
    let mut reps: Vec<Replica> = (0..2).map(|_| Replica::start(with_prices(replica_config(&db)))).collect();
    let store = db.store().await;
    apply_agents(&store, &[echo("priced", 0)]).await;
    let mut operator = Sock::operator(reps[1].addr).await;
    // Ten turns fit; thresholds at 30, 60 and 100 %.
    create_cap(
        &reps[0].base(),
        json!({"scopeType": "agent", "targetId": "priced", "period": "day", "limitCents": (10 * TURN_COST) as f64 / 1e6,
               "alertThresholds": [30, 60, 100], "alertWebhookUrl": url}),
    )
    .await;
    let answers = storm(&[reps[0].base(), reps[1].base()], 14).await;
    let completed = answers.iter().filter(|a| a["status"] == "completed").count();
    assert_eq!(completed, 10, "ten turns fit the cap");
    let mut heard = Vec::new();
    while let Some(event) = operator.agent_event(Duration::from_secs(3)).await {
        if event["type"] == "budget_alert" {
            heard.push(event["threshold"].as_u64().unwrap());
        }
    }
    heard.sort();
    assert_eq!(heard, [30, 60, 100], "the operator socket on the other replica heard each threshold once");
    for _ in 0..50 {
        if got.lock().unwrap().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut posted: Vec<u64> = got.lock().unwrap().iter().map(|a| a["threshold"].as_u64().unwrap()).collect();
    posted.sort();
    assert_eq!(posted, [30, 60, 100], "the webhook got each threshold exactly once");
    let first = got.lock().unwrap()[0].clone();
    assert_eq!(first["type"], "budget_alert");
    assert_eq!(first["windowKey"], agentry_core::Period::Day.window_key(agentry_core::Timestamp::now()));
    store.close().await;
    for replica in &mut reps {
        replica.stop();
    }
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_refuse_unpriced_models_and_bad_fields_and_end_users() {
    let db = PgDb::create().await;
    let mut replica = Replica::start(replica_config(&db));
    let base = replica.base();
    // The default agent runs scripted:echo, which has no price here.
    let (status, body) =
        call(&base, None, "POST", "/budgets", Some(json!({"scopeType": "scope", "period": "day", "limitCents": 5})))
            .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("no price"), "{body}");
    let (status, body) =
        call(&base, None, "POST", "/budgets", Some(json!({"scopeType": "team", "period": "day", "limitCents": 5})))
            .await;
    assert_eq!((status, body["message"].as_str().unwrap().contains("scopeType")), (400, true), "{body}");
    let (status, _) = call(
        &base,
        Some(&token("alice")),
        "POST",
        "/budgets",
        Some(json!({"scopeType": "user", "targetId": "alice", "period": "day", "limitCents": 5})),
    )
    .await;
    assert_eq!(status, 403, "end users do not manage caps");
    let (status, _) = call(&base, None, "DELETE", "/budgets/cap_missing", None).await;
    assert_eq!(status, 404);
    replica.stop();
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_across_two_replicas() {
    let db = PgDb::create().await;
    let mut reps: Vec<Replica> = (0..2).map(|_| Replica::start(replica_config(&db))).collect();
    let store = db.store().await;
    let limited = AgentSpec {
        rate_limits: agentry_core::RateLimits { user_per_minute: Some(3), ..Default::default() },
        ..AgentSpec::new("limited", "Limited", "scripted:echo", "")
    };
    let one_at_a_time = AgentSpec {
        rate_limits: agentry_core::RateLimits { user_concurrent_turns: Some(1), ..Default::default() },
        ..echo("slow", 200)
    };
    apply_agents(&store, &[limited, one_at_a_time]).await;
    let user = token("alice");
    let thread = new_thread(&reps[0].base(), "alice", "limited").await;
    let path = format!("/threads/{thread}/messages");
    for i in 0..3 {
        let (status, answer) =
            call(&reps[i % 2].base(), Some(&user), "POST", &path, Some(json!({"message": format!("m{i}")}))).await;
        assert_eq!(status, 200, "{answer}");
    }
    // The fourth, through either replica, is over the limit.
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/agent{path}", reps[1].base()))
        .header("x-platos-session-token", &user)
        .json(&json!({"message": "m3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    let body: Value = response.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("3 per minute"), "{body}");
    // Over the socket: error rate_limit + done.
    let mut sock = Sock::user(reps[0].addr, "alice").await;
    sock.emit("message", json!({"message": "m4", "threadId": thread})).await;
    let error = sock.agent_event(Duration::from_secs(5)).await.unwrap();
    assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("error"), Some("rate_limit")), "{error}");
    assert_eq!((error["scope"].as_str(), error["limit"].as_str()), (Some("user"), Some("3 per minute")));
    assert!(error["retryAfterSeconds"].as_u64().unwrap() >= 1);
    let done = sock.agent_event(Duration::from_secs(5)).await.unwrap();
    assert_eq!((done["type"].as_str(), done["status"].as_str()), (Some("done"), Some("failed")));
    // Another user is not limited by alice's messages.
    let bob = token("bob");
    let bobs = new_thread(&reps[1].base(), "bob", "limited").await;
    let (status, _) =
        call(&reps[1].base(), Some(&bob), "POST", &format!("/threads/{bobs}/messages"), Some(json!({"message": "hi"})))
            .await;
    assert_eq!(status, 200);
    // One unfinished turn at a time: a message for a second thread is refused meanwhile.
    let first = new_thread(&reps[0].base(), "carol", "slow").await;
    let second = new_thread(&reps[1].base(), "carol", "slow").await;
    let mut carol = Sock::user(reps[0].addr, "carol").await;
    carol.emit("message", json!({"message": "a b c d e f", "threadId": first})).await;
    carol.agent_event(Duration::from_secs(5)).await.unwrap();
    let path = format!("/threads/{second}/messages");
    let (status, body) =
        call(&reps[1].base(), Some(&token("carol")), "POST", &path, Some(json!({"message": "x"}))).await;
    assert_eq!(status, 429, "{body}");
    assert!(body["message"].as_str().unwrap().contains("1 turns at once"), "{body}");
    store.close().await;
    for replica in &mut reps {
        replica.stop();
    }
    db.drop_database().await;
}
