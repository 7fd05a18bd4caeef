//! Monitoring end to end over HTTP: a turn with two model calls and a tool call shows up in the
//! turn lists with its usage, its trace has the right span tree (joined to the caller's
//! `traceparent`), the cost rollups by agent, day, model and user equal the sum of
//! `done.usage` over 100 turns of several agents and users — on two Postgres replicas and on
//! SQLite —, no other user or scope ever shows, `/metrics` parses as Prometheus text with real
//! histograms, and an absent OTLP collector costs dropped spans, not turns.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use agentry_core::{AgentSpec, Scope, Script, ScriptStep, ScriptToolCall};
use agentry_engine::telemetry::OtlpConfig;
use agentry_llm::ProviderRegistry;
use agentry_llm::config::Price;
use agentry_server::AppConfig;
use agentry_store::{Store, StoreLocation};
use common::*;
use serde_json::{Value, json};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn priced(mut config: AppConfig) -> AppConfig {
    let price = Price { input: 1000.0, output: 2000.0, cached_input: None };
    config.providers = ProviderRegistry::default()
        .with_prices(BTreeMap::from([("scripted:echo".to_owned(), price), ("scripted:steps".to_owned(), price)]));
    config
}

/// `tooler` calls `current_time`, then answers: two model calls and a tool call a turn.
fn agents() -> Vec<AgentSpec> {
    let steps = vec![
        ScriptStep {
            text: Some("Let me look.".into()),
            tool_calls: vec![ScriptToolCall { name: "current_time".into(), arguments: json!({}) }],
            ..Default::default()
        },
        ScriptStep { text: Some("It is late.".into()), ..Default::default() },
    ];
    vec![
        AgentSpec {
            tools: vec!["current_time".into()],
            script: Some(Script { token_delay_ms: 0, steps }),
            ..AgentSpec::new("tooler", "Tooler", "scripted:steps", "")
        },
        AgentSpec::new("echo", "Echo", "scripted:echo", ""),
    ]
}

/// Who calls: an end user of the default scope, or the operator of a project.
#[derive(Clone, Copy)]
enum Who<'a> {
    User(&'a str),
    Operator(&'a str),
}

async fn request(base: &str, who: Who<'_>, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    request_with(base, who, method, path, body, None).await
}

async fn request_with(
    base: &str,
    who: Who<'_>,
    method: &str,
    path: &str,
    body: Option<Value>,
    traceparent: Option<&str>,
) -> (u16, Value) {
    let mut headers = match who {
        Who::User(user) => vec![("x-platos-session-token", token(user))],
        Who::Operator(project) => operator_headers(project),
    };
    headers.extend(traceparent.map(|t| ("traceparent", t.to_owned())));
    call_with(base, &headers, method, path, body).await
}

async fn thread(base: &str, who: Who<'_>, agent: &str) -> String {
    let (status, thread) = request(base, who, "POST", "/threads", Some(json!({ "agentId": agent }))).await;
    assert_eq!(status, 201, "{thread}");
    thread["id"].as_str().unwrap().to_owned()
}

/// Runs a turn to its end; returns the answer (`turnId`, `status`, `usage`).
async fn send(base: &str, who: Who<'_>, thread: &str, traceparent: Option<&str>) -> Value {
    let body = json!({ "message": "what time is it" });
    let (status, answer) =
        request_with(base, who, "POST", &format!("/threads/{thread}/messages"), Some(body), traceparent).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "completed", "{answer}");
    answer
}

fn micro(value: &Value) -> i64 {
    value["costMicroCents"].as_i64().unwrap_or_else(|| panic!("no costMicroCents in {value}"))
}

/// What the test sent, summed from `done.usage`.
#[derive(Default)]
struct Sent {
    turns: HashMap<String, (String, String, i64)>,
}

impl Sent {
    fn add(&mut self, answer: &Value, agent: &str, user: &str) {
        let turn = answer["turnId"].as_str().unwrap().to_owned();
        self.turns.insert(turn, (agent.to_owned(), user.to_owned(), micro(&answer["usage"])));
    }

    fn total(&self, keep: impl Fn(&str, &str) -> bool) -> (i64, usize) {
        let kept: Vec<i64> = self.turns.values().filter(|(a, u, _)| keep(a, u)).map(|(_, _, c)| *c).collect();
        (kept.iter().sum(), kept.len())
    }
}

/// The turn with a tool call: its list entry, its spans and its thread's story.
async fn one_traced_turn(base: &str) -> (Value, String) {
    let alice = Who::User("alice");
    let thread = thread(base, alice, "tooler").await;
    let answer = send(base, alice, &thread, Some(&format!("00-{TRACE}-{PARENT}-01"))).await;
    let cost = micro(&answer["usage"]);
    assert!(cost > 0, "priced: {answer}");
    let turn_id = answer["turnId"].as_str().unwrap();

    let (_, list) = request(base, Who::Operator("default"), "GET", &format!("/turns?threadId={thread}"), None).await;
    let turns = list["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 1, "{list}");
    let turn = &turns[0];
    assert_eq!(
        (turn["id"].as_str(), turn["agentId"].as_str(), turn["userId"].as_str()),
        (Some(turn_id), Some("tooler"), Some("alice"))
    );
    assert_eq!(
        (turn["status"].as_str(), turn["steps"].as_i64(), turn["toolCalls"].as_i64()),
        (Some("completed"), Some(2), Some(1))
    );
    assert_eq!(micro(turn), cost, "the turn list's cost is done.usage's");
    assert_eq!(turn["inputTokens"], answer["usage"]["inputTokens"]);
    assert!(turn["durationMs"].as_i64().unwrap() >= 0 && turn["ttftMs"].as_i64().is_some(), "{turn}");
    assert_eq!(turn["agentVersion"], 1);
    assert_eq!(turn["traceId"], TRACE, "the turn joined the caller's trace");

    let (status, detail) = request(base, Who::User("alice"), "GET", &format!("/turns/{turn_id}"), None).await;
    assert_eq!(status, 200, "{detail}");
    let calls = detail["modelCalls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls.iter().map(micro).sum::<i64>(), cost);

    let (status, story) = request(base, alice, "GET", &format!("/monitoring/trace/{thread}"), None).await;
    assert_eq!(status, 200, "{story}");
    let spans = story["spans"].as_array().unwrap();
    let names: Vec<&str> = spans.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let root = spans.iter().find(|s| s["name"] == "invoke_agent Tooler").unwrap_or_else(|| panic!("{names:?}"));
    let chats: Vec<&Value> = spans.iter().filter(|s| s["name"] == "chat steps").collect();
    let tool = spans.iter().find(|s| s["name"] == "execute_tool current_time").unwrap();
    assert_eq!(chats.len(), 2, "{names:?}");
    assert_eq!(root["parentSpanId"], PARENT, "the turn's span hangs under the caller's span");
    assert!(spans.iter().all(|s| s["traceId"] == TRACE));
    let time = |s: &Value, key: &str| s[key].as_str().unwrap().parse::<i64>().unwrap();
    for child in chats.iter().copied().chain([tool]) {
        assert_eq!(child["parentSpanId"], root["spanId"], "{child}");
        assert!(time(child, "startTimeUnixNano") >= time(root, "startTimeUnixNano"), "a child starts inside its turn");
        assert!(time(child, "endTimeUnixNano") <= time(root, "endTimeUnixNano"), "and ends inside it");
        assert!(child["durationMs"].as_f64().unwrap() >= 0.0);
    }
    assert!(time(chats[0], "endTimeUnixNano") <= time(tool, "startTimeUnixNano"), "the tool runs after the first call");
    assert!(time(tool, "endTimeUnixNano") <= time(chats[1], "startTimeUnixNano"), "and before the second");
    let attribute = |s: &Value, key: &str| s["attributes"][key].clone();
    assert_eq!(attribute(root, "gen_ai.operation.name"), "invoke_agent");
    assert_eq!(attribute(root, "agentry.cost_micro_cents"), cost);
    assert_eq!(chats.iter().map(|c| attribute(c, "agentry.cost_micro_cents").as_i64().unwrap()).sum::<i64>(), cost);
    for chat in &chats {
        assert_eq!(chat["kind"], "client");
        assert_eq!(attribute(chat, "gen_ai.provider.name"), "scripted");
        assert_eq!(attribute(chat, "gen_ai.request.model"), "steps");
        assert!(attribute(chat, "gen_ai.usage.input_tokens").as_i64().unwrap() > 0);
        assert!(attribute(chat, "gen_ai.usage.output_tokens").as_i64().unwrap() > 0);
        assert!(attribute(chat, "gen_ai.input.messages").is_null(), "no content unless capture_content is on");
    }
    assert_eq!(attribute(chats[0], "gen_ai.response.finish_reasons"), json!(["tool_calls"]));
    assert_eq!(attribute(tool, "gen_ai.tool.name"), "current_time");
    assert_eq!(attribute(tool, "agentry.tool.status"), "ok");
    let tree = story["spanTree"].as_array().unwrap();
    assert_eq!(tree.len(), 1, "one root");
    assert_eq!(tree[0]["children"].as_array().unwrap().len(), 3);
    assert_eq!(story["rollup"]["totalCostMicroCents"], cost);
    assert_eq!(story["rollup"]["toolCallCount"], 1);
    assert_eq!(story["rollup"]["totalMessages"], 2);
    assert_eq!(story["timeline"].as_array().unwrap().len(), 6, "two messages and four spans");
    let answer_message = &story["messages"][1];
    assert_eq!(answer_message["turnId"], turn_id);
    assert_eq!(answer_message["toolCalls"][0]["name"], "current_time");
    assert!(answer_message["toolCalls"][0]["result"]["unix"].is_number(), "{answer_message}");

    let (_, messages) = request(base, alice, "GET", &format!("/threads/{thread}/messages"), None).await;
    assert_eq!(messages["messages"][0]["turnId"], turn_id, "the user's message names its turn");
    assert_eq!(messages["messages"][1]["toolCalls"][0]["name"], "current_time");

    let (status, trace) =
        request(base, Who::Operator("default"), "GET", &format!("/monitoring/traces/{TRACE}"), None).await;
    assert_eq!(status, 200, "{trace}");
    assert_eq!(trace["spans"].as_array().unwrap().len(), 4);
    (answer, thread)
}

/// 99 more turns of two agents and three users, over every base, six threads at a time.
async fn many_turns(bases: &[String], sent: &mut Sent) {
    let mut runs = Vec::new();
    let mut i = 0;
    for agent in ["echo", "tooler"] {
        for user in ["alice", "bob", "carol"] {
            let base = bases[i % bases.len()].clone();
            let count = if i < 3 { 17 } else { 16 };
            i += 1;
            runs.push(tokio::spawn(async move {
                let thread = thread(&base, Who::User(user), agent).await;
                let mut answers = Vec::new();
                for _ in 0..count {
                    answers.push(send(&base, Who::User(user), &thread, None).await);
                }
                (agent, user, answers)
            }));
        }
    }
    for run in runs {
        let (agent, user, answers) = run.await.unwrap();
        for answer in answers {
            sent.add(&answer, agent, user);
        }
    }
}

fn rows_by(body: &Value, key: &str) -> HashMap<String, (i64, i64)> {
    body["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows: {body}"))
        .iter()
        .map(|r| (r[key].as_str().unwrap().to_owned(), (micro(r), r["turns"].as_i64().unwrap())))
        .collect()
}

/// Every rollup equals what `done.usage` said, for the operator and for each end user.
async fn assert_rollups(base: &str, sent: &Sent) {
    let (total, turns) = sent.total(|_, _| true);
    assert_eq!(turns, 100);
    let operator = Who::Operator("default");
    let today = agentry_core::Period::Day.window_key(agentry_core::Timestamp::now());
    for path in [
        "/monitoring/cost-by-agent?days=1",
        "/monitoring/cost/by-agent",
        &format!("/monitoring/cost/by-agent?day={today}"),
    ] {
        let (status, body) = request(base, operator, "GET", path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(body["rollup"], body["rows"], "both clients' keys");
        let rows = rows_by(&body, "agentId");
        for agent in ["echo", "tooler"] {
            let (cost, n) = sent.total(|a, _| a == agent);
            assert_eq!(rows[agent], (cost, n as i64), "{path} {agent}");
        }
        assert_eq!((micro(&body), body["turns"].as_i64().unwrap()), (total, 100), "{path}");
    }
    for path in [
        "/monitoring/cost?daysBack=1",
        "/monitoring/cost/by-scope?daysBack=7",
        &format!("/monitoring/cost?date={today}"),
    ] {
        let (_, body) = request(base, operator, "GET", path, None).await;
        assert_eq!(rows_by(&body, "day"), HashMap::from([(today.clone(), (total, 100))]), "{path}");
    }
    let (_, body) = request(base, operator, "GET", "/monitoring/cost-by-model", None).await;
    let by_model = rows_by(&body, "model");
    assert_eq!(by_model["scripted:echo"].0, sent.total(|a, _| a == "echo").0);
    assert_eq!(by_model["scripted:steps"].0, sent.total(|a, _| a == "tooler").0);
    let (_, body) = request(base, operator, "GET", "/monitoring/cost/by-user", None).await;
    let by_user = rows_by(&body, "userId");
    for user in ["alice", "bob", "carol"] {
        let (cost, n) = sent.total(|_, u| u == user);
        assert_eq!(by_user[user], (cost, n as i64), "{user}");

        // An end user's rollups are their own spend only.
        let (_, own) = request(base, Who::User(user), "GET", "/monitoring/cost/by-user?days=1", None).await;
        assert_eq!(rows_by(&own, "userId"), HashMap::from([(user.to_owned(), (cost, n as i64))]));
        let (_, own) = request(base, Who::User(user), "GET", "/monitoring/cost-by-agent", None).await;
        assert_eq!(micro(&own), cost, "{own}");
        let (_, summary) = request(base, Who::User(user), "GET", "/monitoring/summary", None).await;
        assert_eq!(summary["turns"], n as i64, "{summary}");
    }
    let (_, runs) = request(base, operator, "GET", "/monitoring/runs?limit=500", None).await;
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 100);
    assert_eq!(runs.iter().map(micro).sum::<i64>(), total, "the turn list adds up to the ledger");
    let (_, summary) = request(base, operator, "GET", "/monitoring/summary", None).await;
    assert_eq!((summary["turns"].as_i64(), summary["failures"].as_i64()), (Some(100), Some(0)), "{summary}");
    assert_eq!(micro(&summary), total);
    assert!(summary["p95LatencyMs"].as_i64().is_some() && summary["pendingApprovals"] == 0, "{summary}");
    assert_eq!(summary["cards"].as_array().unwrap().len(), 5);
}

/// Bob and another project's operator see nothing of Alice's, on every route.
async fn assert_isolated(base: &str, alice_turn: &Value, alice_thread: &str, sent: &Sent) {
    let turn_id = alice_turn["turnId"].as_str().unwrap();
    let bob = Who::User("bob");
    let stranger = Who::Operator("other");
    for who in [bob, stranger] {
        for path in [
            format!("/turns/{turn_id}"),
            format!("/monitoring/traces/{TRACE}"),
            format!("/monitoring/trace/{alice_thread}"),
        ] {
            let (status, body) = request(base, who, "GET", &path, None).await;
            assert_eq!(status, 404, "{path}: {body}");
        }
    }
    let bobs = sent.total(|_, u| u == "bob").1;
    for (path, key) in [
        ("/turns?limit=500", "turns"),
        ("/monitoring/runs?limit=500", "runs"),
        ("/monitoring/traces?limit=500", "traces"),
    ] {
        let (_, body) = request(base, bob, "GET", path, None).await;
        let items = body[key].as_array().unwrap();
        assert_eq!(items.len(), bobs, "{path}");
        assert!(items.iter().all(|t| t["userId"] == "bob"), "{path}");
        let (_, body) = request(base, bob, "GET", &format!("{path}&userId=alice"), None).await;
        assert!(body[key].as_array().unwrap().is_empty(), "{path}: bob cannot ask for alice's");
    }
    // The other project has one turn of its own, and sees only it.
    let (_, list) = request(base, stranger, "GET", "/turns", None).await;
    assert_eq!(list["turns"].as_array().unwrap().len(), 1, "{list}");
    for path in [
        "/monitoring/cost-by-agent?days=30",
        "/monitoring/cost-by-user",
        "/monitoring/cost",
        "/monitoring/cost-by-model",
    ] {
        let (_, body) = request(base, stranger, "GET", path, None).await;
        assert_eq!(body["turns"], 1, "{path}: {body}");
        assert!(micro(&body) > 0 && micro(&body) < sent.total(|_, _| true).0, "{path}");
    }
    let (_, summary) = request(base, stranger, "GET", "/monitoring/summary", None).await;
    assert_eq!(summary["turns"], 1);
}

/// `/metrics` as Prometheus text: every histogram has buckets ending in `+Inf` equal to its
/// `_count`, and a `_sum`; the counters agree with what the replica ran.
async fn assert_metrics(base: &str, turns: usize, tool_calls: usize, cost: i64) {
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples: Vec<(String, BTreeMap<String, String>, f64)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.trim_end_matches('}');
                let labels = labels
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap();
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        samples.push((name, labels, value));
    }
    let sum = |name: &str, keep: &dyn Fn(&BTreeMap<String, String>) -> bool| -> f64 {
        samples.iter().filter(|(n, l, _)| n == name && keep(l)).map(|(_, _, v)| v).sum()
    };
    let histograms: Vec<&String> = types.iter().filter(|(_, k)| *k == "histogram").map(|(n, _)| n).collect();
    for family in [
        "agentry_turn_duration_seconds",
        "agentry_model_time_to_first_token_seconds",
        "agentry_model_call_duration_seconds",
        "agentry_tool_call_duration_seconds",
        "agentry_http_request_duration_seconds",
    ] {
        assert!(histograms.iter().any(|h| *h == family), "{family} is a histogram");
    }
    for family in histograms {
        let count = sum(&format!("{family}_count"), &|_| true);
        assert!(count > 0.0, "{family}_count");
        assert!(samples.iter().any(|(n, _, _)| *n == format!("{family}_sum")), "{family}_sum");
        let infinite = sum(&format!("{family}_bucket"), &|l| l.get("le").is_some_and(|le| le == "+Inf"));
        assert_eq!(infinite, count, "{family}: the +Inf bucket is the count");
    }
    assert_eq!(sum("agentry_turns_total", &|l| l["status"] == "completed") as usize, turns);
    assert_eq!(sum("agentry_cost_micro_cents_total", &|_| true) as i64, cost, "every micro-cent counted");
    let current_time = |l: &BTreeMap<String, String>| l["tool"] == "current_time" && l["status"] == "ok";
    assert_eq!(sum("agentry_tool_calls_total", &current_time) as usize, tool_calls);
    assert!(sum("agentry_tokens_total", &|l| l["kind"] == "output") > 0.0);
    assert!(samples.iter().any(|(n, l, _)| n == "agentry_turns_in_state" && l["state"] == "running"));
    assert!(sum("agentry_http_requests_total", &|l| l["route"] == "/api/v1/agent/threads/{thread_id}/messages") >= 1.0);
}

/// Runs the whole scenario; returns what the default scope spent and the other project's turn.
async fn scenario(bases: &[String], store: &Store) -> (Sent, Value) {
    for agent in agents() {
        store.apply_agent(&Scope::default_scope(), &agent, "test", None).await.unwrap();
        store.apply_agent(&Scope::new("default", "other", "default"), &agent, "test", None).await.unwrap();
    }
    let (first, thread_id) = one_traced_turn(&bases[0]).await;
    let mut sent = Sent::default();
    sent.add(&first, "tooler", "alice");
    many_turns(bases, &mut sent).await;
    let other = Who::Operator("other");
    let foreign = thread(&bases[0], other, "echo").await;
    let foreign = send(&bases[0], other, &foreign, None).await;
    for base in bases {
        assert_rollups(base, &sent).await;
        assert_isolated(base, &first, &thread_id, &sent).await;
    }
    (sent, foreign)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_traces_and_rollups_agree_with_done_usage_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation::Sqlite(dir.path().join("m.db"));
    let mut config = priced(AppConfig::new(location.clone()));
    config.bootstrap = replica_config_bootstrap();
    let mut replica = Replica::start(config);
    let store = Store::open(&location).await.unwrap();
    let (sent, foreign) = scenario(&[replica.base()], &store).await;
    // Bad filters are 400s that name the parameter.
    for (path, field) in [
        ("/turns?status=bogus", "status"),
        ("/turns?since=yesterday", "since"),
        ("/turns?limit=0", "limit"),
        ("/monitoring/cost?daysBack=0", "daysBack"),
        ("/monitoring/cost-by-agent?day=soon", "day"),
        ("/monitoring/cost-by-user?limit=5000", "limit"),
    ] {
        let (status, body) = request(&replica.base(), Who::Operator("default"), "GET", path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.to_string().contains(field), "{path}: {body}");
    }
    // One replica ran every turn: the default scope's and the other project's.
    let tool_calls = sent.turns.values().filter(|(agent, _, _)| agent == "tooler").count();
    let cost = sent.total(|_, _| true).0 + micro(&foreign["usage"]);
    assert_metrics(&replica.base(), sent.turns.len() + 1, tool_calls, cost).await;
    store.close().await;
    replica.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_traces_and_rollups_agree_on_two_postgres_replicas() {
    let db = PgDb::create().await;
    let mut reps: Vec<Replica> = (0..2).map(|_| Replica::start(priced(replica_config(&db)))).collect();
    let store = db.store().await;
    scenario(&[reps[0].base(), reps[1].base()], &store).await;
    store.close().await;
    for replica in &mut reps {
        replica.stop();
    }
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absent_collector_drops_spans_and_never_a_turn() {
    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation::Sqlite(dir.path().join("o.db"));
    let mut config = priced(AppConfig::new(location.clone()));
    config.bootstrap = replica_config_bootstrap();
    // Nothing listens on port 9 of loopback: every export is refused.
    config.engine.telemetry.otlp = Some(OtlpConfig {
        endpoint: "http://127.0.0.1:9".into(),
        headers: Vec::new(),
        timeout: Duration::from_secs(1),
    });
    let mut replica = Replica::start(config);
    let store = Store::open(&location).await.unwrap();
    store.apply_agent(&Scope::default_scope(), &agents()[1], "test", None).await.unwrap();
    let base = replica.base();
    let thread = thread(&base, Who::User("alice"), "echo").await;
    for _ in 0..20 {
        send(&base, Who::User("alice"), &thread, None).await;
    }
    // Two spans a turn (the turn and its model call), dropped once the exporter's batch fails.
    let mut dropped = 0.0;
    for _ in 0..100 {
        let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
        dropped = text
            .lines()
            .filter(|l| l.starts_with("agentry_spans_dropped_total{reason=\"export_failed\"}"))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        if dropped >= 40.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dropped, 40.0, "every span of the 20 turns is counted as dropped");
    let (_, story) = request(&base, Who::User("alice"), "GET", &format!("/monitoring/trace/{thread}"), None).await;
    assert_eq!(story["spans"].as_array().unwrap().len(), 40, "the stored trace does not depend on the collector");
    store.close().await;
    replica.stop();
}
