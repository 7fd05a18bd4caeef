//! Background operations end to end over HTTP, with a real loopback endpoint as the `http`
//! task's target: retries with backoff recorded per attempt, time limits, concurrency limits,
//! delays and ttl, an `agent` run that waits for an approval (and what operator sockets hear),
//! and — on two Postgres replicas — a 2-second schedule firing each occurrence exactly once for
//! 60 s, idempotency keys racing across replicas, a replica that dies mid-attempt (that attempt
//! is `CRASHED` and the run is retried and completed on the other), and a cancel sent to the
//! replica that does not run the attempt.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentry_core::task::TaskSpec;
use agentry_core::{AgentSpec, Script, ScriptStep, ScriptToolCall};
use agentry_server::AppConfig;
use agentry_store::{Store, StoreLocation};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use common::*;
use serde_json::{Value, json};

/// What the endpoint saw: `(path, run id, attempt)` per request, and per sleep tag the
/// requests in flight and the most in flight at once.
#[derive(Default)]
struct Seen {
    calls: Mutex<Vec<(String, String, String)>>,
    in_flight: Mutex<HashMap<String, (usize, usize)>>,
    failures_left: Mutex<HashMap<String, usize>>,
}

impl Seen {
    fn most_in_flight(&self, tag: &str) -> usize {
        self.in_flight.lock().unwrap().get(tag).map_or(0, |(_, most)| *most)
    }
}

/// A loopback endpoint: `/ok/{n}` answers `{ok, n}`; `/flaky/{key}/{fails}` answers 500 `fails`
/// times per key, then 200; `/sleep/{tag}/{ms}` answers after `ms`; `/fail` always answers 502.
async fn endpoint() -> (String, Arc<Seen>) {
    async fn record(seen: &Seen, path: String, headers: &HeaderMap) {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        seen.calls.lock().unwrap().push((path, header("x-agentry-run-id"), header("x-agentry-attempt")));
    }
    async fn ok(State(seen): State<Arc<Seen>>, Path(n): Path<String>, headers: HeaderMap) -> axum::Json<Value> {
        record(&seen, format!("/ok/{n}"), &headers).await;
        axum::Json(json!({"ok": true, "n": n}))
    }
    async fn flaky(
        State(seen): State<Arc<Seen>>,
        Path((key, fails)): Path<(String, usize)>,
        headers: HeaderMap,
    ) -> (StatusCode, String) {
        record(&seen, format!("/flaky/{key}"), &headers).await;
        let mut left = seen.failures_left.lock().unwrap();
        let left = left.entry(key).or_insert(fails);
        if *left > 0 {
            *left -= 1;
            (StatusCode::INTERNAL_SERVER_ERROR, "not yet".into())
        } else {
            (StatusCode::OK, "finally".into())
        }
    }
    async fn sleep(
        State(seen): State<Arc<Seen>>,
        Path((tag, ms)): Path<(String, u64)>,
        headers: HeaderMap,
    ) -> &'static str {
        record(&seen, format!("/sleep/{tag}"), &headers).await;
        {
            let mut in_flight = seen.in_flight.lock().unwrap();
            let (now, most) = in_flight.entry(tag.clone()).or_default();
            *now += 1;
            *most = (*most).max(*now);
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        seen.in_flight.lock().unwrap().entry(tag).or_default().0 -= 1;
        "slept"
    }
    async fn fail(State(seen): State<Arc<Seen>>, headers: HeaderMap) -> (StatusCode, &'static str) {
        record(&seen, "/fail".into(), &headers).await;
        (StatusCode::BAD_GATEWAY, "down")
    }
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .route("/ok/{n}", axum::routing::post(ok))
        .route("/flaky/{key}/{fails}", axum::routing::post(flaky))
        .route("/sleep/{tag}/{ms}", axum::routing::post(sleep))
        .route("/fail", axum::routing::post(fail))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

fn task(toml: &str) -> TaskSpec {
    let spec: TaskSpec = toml::from_str(toml).unwrap();
    spec.validate().unwrap();
    spec
}

async fn apply(store: &Store, tasks: &[TaskSpec]) {
    for spec in tasks {
        agentry_engine::jobs::apply_task(store, spec, "test").await.unwrap();
    }
}

async fn trigger(base: &str, task: &str, payload: Value, options: Value) -> String {
    let body = json!({"payload": payload, "options": options});
    let (status, handle) = call(base, None, "POST", &format!("/trigger/tasks/{task}/trigger"), Some(body)).await;
    assert_eq!(status, 200, "{handle}");
    handle["id"].as_str().unwrap().to_owned()
}

async fn run(base: &str, id: &str) -> Value {
    let (status, run) = call(base, None, "GET", &format!("/trigger/runs/{id}"), None).await;
    assert_eq!(status, 200, "{run}");
    run
}

/// Polls a run until its status is one of `statuses`.
async fn until(base: &str, id: &str, statuses: &[&str], timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let run = run(base, id).await;
        if statuses.iter().any(|s| run["status"] == *s) {
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} is still {}: {run}", run["status"]);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn attempt_statuses(run: &Value) -> Vec<String> {
    run["attempts"].as_array().unwrap().iter().map(|a| a["status"].as_str().unwrap().to_owned()).collect()
}

fn sqlite_replica(dir: &tempfile::TempDir) -> (Replica, StoreLocation) {
    let location = StoreLocation::Sqlite(dir.path().join("agentry.db"));
    let mut config = AppConfig::new(location.clone());
    config.bootstrap = replica_config_bootstrap();
    config.engine.dispatch_poll = Duration::from_millis(200);
    (Replica::start(config), location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_runs_retry_time_out_wait_expire_and_keep_their_concurrency_limit() {
    let (target, seen) = endpoint().await;
    let dir = tempfile::tempdir().unwrap();
    let (replica, location) = sqlite_replica(&dir);
    let store = Store::open(&location).await.unwrap();
    let fast_retry = "[retry]\nmin_delay_ms = 20\nmax_delay_ms = 40\nfactor = 2.0";
    apply(
        &store,
        &[
            task(&format!("id = \"flaky\"\nkind = \"http\"\nurl = \"{target}/flaky/{{key}}/2\"\n{fast_retry}")),
            task(&format!("id = \"down\"\nkind = \"http\"\nurl = \"{target}/fail\"\nmax_attempts = 2\n{fast_retry}")),
            task(&format!(
                "id = \"slow\"\nkind = \"http\"\nurl = \"{target}/sleep/slow/{{ms}}\"\nmax_duration_secs = 1"
            )),
            task(&format!(
                "id = \"serial\"\nkind = \"http\"\nurl = \"{target}/sleep/serial/{{ms}}\"\nconcurrency_limit = 1"
            )),
            task(&format!("id = \"ok\"\nkind = \"http\"\nurl = \"{target}/ok/{{n}}\"")),
        ],
    )
    .await;
    let base = replica.base();

    // Two failures, then success: three attempts, each a request carrying its number.
    let flaky = trigger(&base, "flaky", json!({"key": "a"}), json!({})).await;
    let done = until(&base, &flaky, &["COMPLETED", "FAILED"], Duration::from_secs(10)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(attempt_statuses(&done), ["FAILED", "FAILED", "COMPLETED"]);
    assert_eq!(done["attempts"][0]["error"].as_str().unwrap(), "HTTP 500: not yet");
    assert_eq!(done["output"], "finally");
    let attempts: Vec<String> = seen
        .calls
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, run, _)| *run == flaky)
        .map(|(_, _, attempt)| attempt.clone())
        .collect();
    assert_eq!(attempts, ["1", "2", "3"]);

    // Out of attempts: FAILED with the last error.
    let down = trigger(&base, "down", json!({}), json!({})).await;
    let failed = until(&base, &down, &["FAILED"], Duration::from_secs(10)).await;
    assert_eq!((attempt_statuses(&failed).len(), failed["error"].as_str().unwrap()), (2, "HTTP 502: down"));

    // Past max_duration_secs: TIMED_OUT, not retried.
    let slow = trigger(&base, "slow", json!({"ms": 5000}), json!({})).await;
    let timed_out = until(&base, &slow, &["TIMED_OUT", "COMPLETED", "FAILED"], Duration::from_secs(10)).await;
    assert_eq!((timed_out["status"].as_str(), attempt_statuses(&timed_out).len()), (Some("TIMED_OUT"), 1));

    // A concurrency limit of 1: four runs, one at a time; a fifth with a short ttl expires
    // waiting for its turn.
    let serial: Vec<String> =
        futures_util::future::join_all((0..4).map(|_| trigger(&base, "serial", json!({"ms": 300}), json!({})))).await;
    let stale = trigger(&base, "serial", json!({"ms": 1}), json!({"ttl": "500ms"})).await;
    for id in &serial {
        until(&base, id, &["COMPLETED"], Duration::from_secs(10)).await;
    }
    assert_eq!(seen.most_in_flight("serial"), 1, "the limit held");
    assert_eq!(until(&base, &stale, &["EXPIRED"], Duration::from_secs(5)).await["attempts"], json!([]));

    // A delay: DELAYED, then it runs once the time has come.
    let asked = Instant::now();
    let delayed = trigger(&base, "ok", json!({"n": 1}), json!({"delay": "1s"})).await;
    let waiting = run(&base, &delayed).await;
    assert_eq!(waiting["status"], "DELAYED");
    assert!(waiting["delayUntil"].is_string());
    let ran = until(&base, &delayed, &["COMPLETED"], Duration::from_secs(5)).await;
    assert!(asked.elapsed() >= Duration::from_millis(900));
    assert_eq!(ran["output"], json!({"ok": true, "n": "1"}));

    // Bad input is a 400 naming the field; unknown tasks and foreign runs are 404.
    let bad = |options: Value| {
        let base = base.clone();
        async move {
            let body = json!({"payload": {}, "options": options});
            call(&base, None, "POST", "/trigger/tasks/ok/trigger", Some(body)).await
        }
    };
    for (options, field) in [
        (json!({"delay": "soon"}), "options.delay"),
        (json!({"ttl": -3}), "options.ttl"),
        (json!({"tags": [1]}), "options.tags"),
        (json!({"idempotencyKey": ""}), "options.idempotencyKey"),
    ] {
        let (status, body) = bad(options).await;
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].as_str().unwrap().starts_with(field), "{body}");
    }
    let (status, _) = call(&base, None, "POST", "/trigger/tasks/nope/trigger", Some(json!({"payload": {}}))).await;
    assert_eq!(status, 404);
    let other_project = operator_headers("elsewhere");
    let (status, _) = call_with(&base, &other_project, "GET", &format!("/trigger/runs/{delayed}"), None).await;
    assert_eq!(status, 404, "another scope's run looks missing");
    let (status, body) =
        call(&base, None, "POST", "/jobs", Some(json!({"jobId": "x", "handler": "export default 1"}))).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("declare tasks in task files"), "{body}");
    let (status, spawned) = call(&base, None, "POST", "/jobs", Some(json!({"type": "ok", "payload": {"n": 2}}))).await;
    assert_eq!(status, 200, "{spawned}");
    let job_id = spawned["jobId"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, job) = call(&base, None, "GET", &format!("/jobs/{job_id}"), None).await;
        if job["status"] == "COMPLETED" {
            assert_eq!((job["type"].as_str(), job["output"]["n"].as_str()), (Some("ok"), Some("2")));
            break;
        }
        assert!(Instant::now() < deadline, "{job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    store.close().await;
    drop(replica);
}

fn approver() -> AgentSpec {
    let steps = vec![
        ScriptStep {
            text: Some("Asking first.".into()),
            tool_calls: vec![ScriptToolCall {
                name: "request_approval".into(),
                arguments: json!({"action": "send it"}),
            }],
            ..Default::default()
        },
        ScriptStep { text: Some("Sent.".into()), ..Default::default() },
    ];
    AgentSpec {
        tools: vec!["request_approval".into()],
        script: Some(Script { token_delay_ms: 0, steps }),
        ..AgentSpec::new("approver", "Approver", "scripted:steps", "")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_run_waits_for_its_approval_and_operators_hear_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let (replica, location) = sqlite_replica(&dir);
    let store = Store::open(&location).await.unwrap();
    apply_agents(&store, &[approver(), AgentSpec::new("echo", "Echo", "scripted:echo", "")]).await;
    apply(
        &store,
        &[
            task("id = \"send\"\nkind = \"agent\"\nagent = \"approver\"\nmessage = \"Send {{payload.what}}\""),
            task("id = \"note\"\nkind = \"agent\"\nagent = \"echo\"\nmessage = \"Note {{payload.n}}\"\nthread = \"{{payload.customer}}\""),
        ],
    )
    .await;
    let base = replica.base();
    let mut operator = Sock::operator(replica.addr).await;

    let id = trigger(&base, "send", json!({"what": "the invoice"}), json!({})).await;
    let waiting = until(&base, &id, &["WAITING"], Duration::from_secs(10)).await;
    assert!(waiting["turnId"].is_string() && waiting["threadId"].is_string());
    let (_, approvals) = call(&base, None, "GET", "/monitoring/approvals?status=pending", None).await;
    let approval =
        approvals["approvals"].as_array().unwrap().iter().find(|a| a["threadId"] == waiting["threadId"]).cloned();
    let approval_id = approval.expect("the run's approval is pending")["id"].as_str().unwrap().to_owned();
    let (status, _) =
        call(&base, None, "POST", &format!("/approvals/{approval_id}/resolve"), Some(json!({"approved": true}))).await;
    assert_eq!(status, 200);
    let done = until(&base, &id, &["COMPLETED", "FAILED"], Duration::from_secs(10)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert!(done["output"]["answer"].as_str().unwrap().contains("Sent."), "{done}");

    let mut heard = Vec::new();
    while let Some(update) = operator.event("run_update", Duration::from_secs(2)).await {
        if update["id"] == id {
            heard.push(update["status"].as_str().unwrap().to_owned());
            if update["status"] == "COMPLETED" {
                break;
            }
        }
    }
    heard.dedup();
    assert_eq!(heard, ["QUEUED", "EXECUTING", "WAITING", "EXECUTING", "COMPLETED"]);

    // A keyed thread: runs of one key continue one thread, another key gets its own.
    let mut threads = Vec::new();
    for (n, customer) in [(1, "acme"), (2, "acme"), (3, "globex")] {
        let id = trigger(&base, "note", json!({"n": n, "customer": customer}), json!({})).await;
        let done = until(&base, &id, &["COMPLETED", "FAILED"], Duration::from_secs(10)).await;
        assert_eq!(done["output"]["answer"], format!("Note {n}"), "{done}");
        threads.push(done["threadId"].as_str().unwrap().to_owned());
    }
    assert_eq!(threads[0], threads[1]);
    assert_ne!(threads[0], threads[2]);

    // Cancelling a waiting agent run cancels its turn; the answer comes once the attempt has
    // ended, so a read right after it agrees.
    let id = trigger(&base, "send", json!({"what": "the other invoice"}), json!({})).await;
    until(&base, &id, &["WAITING"], Duration::from_secs(10)).await;
    let (status, answer) = call(&base, None, "POST", &format!("/trigger/runs/{id}/cancel"), None).await;
    assert_eq!((status, &answer["status"]), (200, &json!("CANCELED")), "{answer}");
    let now = run(&base, &id).await;
    assert_eq!(now["status"], "CANCELED", "{now}");
    assert_eq!(attempt_statuses(&now), ["CANCELED"]);
    store.close().await;
    drop(replica);
}

/// Schedules a reminder (each call approved by a human), then triggers a task now.
fn reminder() -> AgentSpec {
    let schedule = json!({"taskId": "remind", "cron": "0 9 * * 1", "timezone": "Europe/Berlin", "payload": {"n": 9}});
    let steps = vec![
        ScriptStep {
            tool_calls: vec![ScriptToolCall { name: "create_schedule".into(), arguments: schedule }],
            ..Default::default()
        },
        ScriptStep {
            tool_calls: vec![ScriptToolCall {
                name: "trigger_task".into(),
                arguments: json!({"taskId": "remind", "payload": {"n": 1}}),
            }],
            ..Default::default()
        },
        ScriptStep {
            tool_calls: vec![ScriptToolCall {
                name: "trigger_task".into(),
                arguments: json!({"taskId": "internal", "payload": {}}),
            }],
            ..Default::default()
        },
        ScriptStep { text: Some("Done.".into()), ..Default::default() },
    ];
    AgentSpec {
        tools: vec!["create_schedule".into(), "trigger_task".into()],
        approval_tools: vec!["create_schedule".into()],
        script: Some(Script { token_delay_ms: 0, steps }),
        ..AgentSpec::new("reminder", "Reminder", "scripted:steps", "")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_schedules_and_triggers_tasks_for_its_user() {
    let (target, _seen) = endpoint().await;
    let dir = tempfile::tempdir().unwrap();
    let (replica, location) = sqlite_replica(&dir);
    let store = Store::open(&location).await.unwrap();
    apply_agents(&store, &[reminder()]).await;
    apply(
        &store,
        &[
            task(&format!("id = \"remind\"\nkind = \"http\"\nurl = \"{target}/ok/{{n}}\"\nallow_users = true")),
            task(&format!("id = \"internal\"\nkind = \"http\"\nurl = \"{target}/ok/0\"")),
        ],
    )
    .await;
    let base = replica.base();
    let thread_id = new_thread(&base, "rita", "reminder").await;
    let mut rita = Sock::user(replica.addr, "rita").await;
    rita.emit("message", json!({"message": "remind me every Monday at 9", "threadId": thread_id})).await;
    let needed = loop {
        let event = rita.agent_event(Duration::from_secs(10)).await.expect("approval_needed");
        if event["type"] == "approval_needed" {
            break event;
        }
    };
    assert_eq!(needed["toolName"], "create_schedule", "{needed}");
    let approval_id = needed["approvalId"].as_str().unwrap();
    let (status, body) =
        call(&base, None, "POST", &format!("/approvals/{approval_id}/resolve"), Some(json!({"approved": true}))).await;
    assert_eq!(status, 200, "{body}");
    let turn_id = needed["turnId"].as_str().unwrap().to_owned();
    let events = rita.turn_until_done(&turn_id, Duration::from_secs(10)).await;
    let results: Vec<&Value> = events.iter().filter(|e| e["type"] == "tool_result").collect();
    assert_eq!(results.len(), 3, "{events:?}");
    assert!(results[0]["result"]["nextRunAt"].as_str().unwrap().contains("T0"), "{:?}", results[0]);
    let run_id = results[1]["result"]["runId"].as_str().unwrap().to_owned();
    assert!(results[2]["isError"].as_bool().unwrap_or(false), "a task not open to users: {:?}", results[2]);

    // The run is rita's: she reads it, another user does not; the schedule is the operator's to see.
    let done = until(&base, &run_id, &["COMPLETED"], Duration::from_secs(10)).await;
    assert_eq!((done["userId"].as_str(), done["metadata"]["turnId"].as_str()), (Some("rita"), Some(turn_id.as_str())));
    let (status, _) = call(&base, Some(&token("rita")), "GET", &format!("/trigger/runs/{run_id}"), None).await;
    assert_eq!(status, 200);
    let (status, _) = call(&base, Some(&token("sam")), "GET", &format!("/trigger/runs/{run_id}"), None).await;
    assert_eq!(status, 404);
    let (_, schedules) = call(&base, None, "GET", "/trigger/schedules", None).await;
    let schedule = &schedules["schedules"][0];
    assert_eq!((schedule["taskId"].as_str(), schedule["timezone"].as_str()), (Some("remind"), Some("Europe/Berlin")));
    assert!(schedule["createdBy"].as_str().unwrap().starts_with("agent:reminder"));
    let (status, _) = call(&base, Some(&token("rita")), "GET", "/trigger/schedules", None).await;
    assert_eq!(status, 403, "schedules are listed by operators");
    store.close().await;
    drop(replica);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fire_a_two_second_schedule_once_per_occurrence_for_a_minute() {
    let (target, seen) = endpoint().await;
    let db = PgDb::create().await;
    let store = db.store().await;
    let replicas = [Replica::start(replica_config(&db)), Replica::start(replica_config(&db))];
    apply(&store, &[task(&format!("id = \"tick\"\nkind = \"http\"\nurl = \"{target}/ok/{{n}}\""))]).await;
    let body = json!({"taskId": "tick", "cron": "*/2 * * * * *", "timezone": "Europe/Berlin", "payload": {"n": 0}, "overlap": "allow"});
    let (status, schedule) = call(&replicas[0].base(), None, "POST", "/trigger/schedules", Some(body)).await;
    assert_eq!(status, 201, "{schedule}");
    let schedule_id = schedule["id"].as_str().unwrap().to_owned();
    let started = agentry_core::Timestamp::now();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (status, _) =
        call(&replicas[1].base(), None, "POST", &format!("/trigger/schedules/{schedule_id}/deactivate"), None).await;
    assert_eq!(status, 200);
    let stopped = agentry_core::Timestamp::now();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (_, runs) = call(&replicas[0].base(), None, "GET", "/trigger/runs?taskId=tick&limit=1000", None).await;
    let runs = runs["runs"].as_array().unwrap().clone();
    let occurrences: Vec<String> =
        runs.iter().map(|r| r["metadata"]["scheduledAt"].as_str().unwrap().to_owned()).collect();
    let distinct: HashSet<&String> = occurrences.iter().collect();
    assert_eq!(distinct.len(), occurrences.len(), "an occurrence fired twice: {occurrences:?}");
    // Every even second between the first and the last occurrence fired.
    let mut times: Vec<i64> = occurrences.iter().map(|t| agentry_core::Timestamp::parse(t).unwrap().0).collect();
    times.sort();
    assert!(times.len() >= 28, "{} occurrences in 60 s", times.len());
    for pair in times.windows(2) {
        assert_eq!(pair[1] - pair[0], 2_000, "a gap or a repeat: {times:?}");
    }
    assert!(times[0] - started.0 <= 2_000 && stopped.0 - times[times.len() - 1] <= 2_500);
    for run in &runs {
        assert_eq!(run["status"], "COMPLETED", "{run}");
    }
    let calls = seen.calls.lock().unwrap().len();
    assert_eq!(calls, runs.len(), "one call per occurrence");
    store.close().await;
    drop(replicas);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn across_replicas_idempotency_holds_a_crashed_attempt_is_retried_and_a_cancel_is_read_back() {
    let (target, seen) = endpoint().await;
    let db = PgDb::create().await;
    let store = db.store().await;
    let mut first = Replica::start(replica_config(&db));
    let retry = "[retry]\nmin_delay_ms = 10\nmax_delay_ms = 10";
    apply(
        &store,
        &[
            task(&format!("id = \"ok\"\nkind = \"http\"\nurl = \"{target}/ok/{{n}}\"")),
            task(&format!("id = \"slow\"\nkind = \"http\"\nurl = \"{target}/sleep/crash/{{ms}}\"\n{retry}")),
        ],
    )
    .await;

    // A long attempt on the first replica; the second starts while it runs.
    let id = trigger(&first.base(), "slow", json!({"ms": 1500}), json!({})).await;
    let executing = until(&first.base(), &id, &["EXECUTING"], Duration::from_secs(10)).await;
    assert_eq!(executing["attempts"][0]["replica"].as_str(), Some(first.id.as_str()));
    let second = Replica::start(replica_config(&db));
    first.crash();
    let done = until(&second.base(), &id, &["COMPLETED", "FAILED", "CRASHED"], Duration::from_secs(20)).await;
    assert_eq!(done["status"], "COMPLETED", "{done}");
    assert_eq!(attempt_statuses(&done), ["CRASHED", "COMPLETED"]);
    assert_eq!(done["attempts"][1]["replica"].as_str(), Some(second.id.as_str()));
    assert!(done["attempts"][0]["error"].as_str().unwrap().contains("stopped renewing"));
    let attempts: Vec<String> =
        seen.calls.lock().unwrap().iter().filter(|(_, run, _)| *run == id).map(|(_, _, a)| a.clone()).collect();
    assert_eq!(attempts, ["1", "2"], "the endpoint is hit once per attempt");

    // The same idempotency key sent to both replicas at once: one run.
    let third = Replica::start(replica_config(&db));
    let bases = [second.base(), third.base()];
    let ids: Vec<String> = futures_util::future::join_all((0..20).map(|i| {
        let base = bases[i % 2].clone();
        async move { trigger(&base, "ok", json!({"n": i}), json!({"idempotencyKey": "once"})).await }
    }))
    .await;
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 1, "{ids:?}");
    let done = until(&bases[0], &ids[0], &["COMPLETED"], Duration::from_secs(10)).await;
    assert_eq!(done["idempotencyKey"], "once");

    // A cancel sent to the replica that does not run the attempt answers once the attempt has
    // ended over there, so a read right after the answer agrees with it.
    let id = trigger(&bases[0], "slow", json!({"ms": 30_000}), json!({})).await;
    let executing = until(&bases[0], &id, &["EXECUTING"], Duration::from_secs(10)).await;
    let owner = executing["attempts"][0]["replica"].as_str().unwrap();
    let other = if owner == second.id { third.base() } else { second.base() };
    let asked = Instant::now();
    let (status, answer) = call(&other, None, "POST", &format!("/trigger/runs/{id}/cancel"), None).await;
    assert_eq!((status, &answer["status"]), (200, &json!("CANCELED")), "{answer}");
    let now = run(&other, &id).await;
    assert_eq!(now["status"], "CANCELED", "{now}");
    assert_eq!(attempt_statuses(&now), ["CANCELED"]);
    assert!(asked.elapsed() < Duration::from_secs(2), "the cancel took {:?}", asked.elapsed());
    store.close().await;
    drop((second, third));
    db.drop_database().await;
}
