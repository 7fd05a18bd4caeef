//! The isolation matrix (issue 16): every endpoint of the route table × every principal that does
//! not own what the endpoint names → the same answer as for an id that does not exist, and no
//! answer that carries the owner's data. The table comes from the server
//! ([`agentry_server::routes::endpoints`]); an endpoint without an entry here fails the test.
//!
//! The owner is the default scope (org `default`, project `default`) and, for threads, the end
//! user alice. Everything the owner creates holds the marker [`MARK`]; the foreign principals are
//! the operator of another project, the operator of another organization, an operator acting as
//! another user, another user's session token, an Erdo scoped token without the grant, another
//! external user's Erdo token, and expired tokens of both kinds.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use agentry_core::session_token::{self, SessionClaims};
use agentry_core::task::TaskSpec;
use agentry_core::{AgentSpec, Scope, Timestamp};
use agentry_llm::ProviderRegistry;
use agentry_llm::config::Price;
use agentry_server::app::AppConfig;
use agentry_server::routes::{Verb, endpoints};
use agentry_store::{Store, StoreLocation};
use common::{KEY, Replica, SECRET, replica_config_bootstrap, token};
use serde_json::{Value, json};

/// In every name, prompt and content the owner writes; no foreign answer may contain it.
const MARK: &str = "OWNERMARK";

/// Who owns what an endpoint names, which decides who is foreign to it (ordered: a principal
/// that reaches past `Scope` is foreign to `User` resources too).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    /// One end user (alice's threads, turns, approvals): other users of the scope are foreign.
    User,
    /// The scope (agents, budgets, tasks, runs…): other projects, organizations and credentials
    /// are foreign; the scope's own end users are not (they may read agents and caps).
    Scope,
    /// The organization (API keys): only other organizations and other credentials are foreign.
    Org,
}

/// What the matrix checks for one endpoint.
#[derive(Clone, Copy)]
enum Entry {
    /// The path names the owner's resources: foreign principals get the missing-id answer.
    Owned(Owner),
    /// A collection or a create in the caller's own scope: no foreign answer holds owner data.
    Collection(Owner),
    /// Reachable by anyone by design (why), still never carrying owner data.
    Open(Owner, &'static str),
    /// Behind the dashboard session: without one, everyone gets 401.
    Session,
}

fn matrix() -> BTreeMap<(Verb, &'static str), Entry> {
    use Entry::*;
    use Owner::*;
    use Verb::*;
    let platos: &[(Verb, &str, Entry)] = &[
        (Get, "/agents", Collection(Scope)),
        (Post, "/agents", Collection(Scope)),
        (Get, "/agents/{agent_id}", Owned(Scope)),
        (Put, "/agents/{agent_id}", Owned(Scope)),
        (Delete, "/agents/{agent_id}", Owned(Scope)),
        (Get, "/agents/{agent_id}/versions", Owned(Scope)),
        (Get, "/agents/{agent_id}/chat/stream", Owned(Scope)),
        (Get, "/threads", Collection(User)),
        (Post, "/threads", Collection(User)),
        (Get, "/threads/{thread_id}", Owned(User)),
        (Delete, "/threads/{thread_id}", Owned(User)),
        (Get, "/threads/{thread_id}/messages", Owned(User)),
        (Post, "/threads/{thread_id}/messages", Owned(User)),
        (Post, "/threads/{thread_id}/stream", Owned(User)),
        (Post, "/threads/{thread_id}/cancel", Owned(User)),
        (Get, "/threads/{thread_id}/artifacts", Owned(User)),
        (Post, "/threads/{thread_id}/archive", Owned(User)),
        (Post, "/threads/{thread_id}/unarchive", Owned(User)),
        (Get, "/monitoring/approvals", Collection(User)),
        (Get, "/monitoring/approvals/{approval_id}", Owned(User)),
        (Post, "/monitoring/approvals/{approval_id}/resolve", Owned(User)),
        (Post, "/approvals/{approval_id}/resolve", Owned(User)),
        (Get, "/monitoring/safety-events", Collection(User)),
        (Get, "/monitoring/runs", Collection(User)),
        (Get, "/turns", Collection(User)),
        (Get, "/turns/{turn_id}", Owned(User)),
        (Get, "/monitoring/traces", Collection(User)),
        (Get, "/monitoring/traces/{trace_id}", Owned(User)),
        (Get, "/monitoring/trace/{thread_id}", Owned(User)),
        (Get, "/monitoring/cost/by-agent", Collection(Scope)),
        (Get, "/monitoring/cost-by-agent", Collection(Scope)),
        (Get, "/monitoring/cost/by-scope", Collection(Scope)),
        (Get, "/monitoring/cost", Collection(Scope)),
        (Get, "/monitoring/cost/by-model", Collection(Scope)),
        (Get, "/monitoring/cost-by-model", Collection(Scope)),
        (Get, "/monitoring/cost/by-user", Collection(Scope)),
        (Get, "/monitoring/cost-by-user", Collection(Scope)),
        (Get, "/monitoring/summary", Collection(Scope)),
        (Get, "/monitoring/budget/caps", Collection(Scope)),
        (Get, "/monitoring/budget/status", Collection(Scope)),
        (Get, "/budgets", Collection(Scope)),
        (Post, "/budgets", Collection(Scope)),
        (Get, "/budgets/status", Collection(Scope)),
        (Put, "/budgets/{cap_id}", Owned(Scope)),
        (Delete, "/budgets/{cap_id}", Owned(Scope)),
        (Post, "/budgets/{cap_id}/override", Owned(Scope)),
        (Get, "/tools", Collection(Scope)),
        (Get, "/tools/search", Collection(Scope)),
        (Get, "/tools/stats", Collection(Scope)),
        (Get, "/tools/matrix", Collection(Scope)),
        (Patch, "/tools/{entity_id}/{tool_name}/enabled", Owned(Scope)),
        (Post, "/tools/{tool_id}/test", Owned(Scope)),
        (Get, "/api-keys", Collection(Org)),
        (Post, "/api-keys", Collection(Org)),
        (Delete, "/api-keys/{key_id}", Owned(Org)),
        (Post, "/api-keys/{key_id}/rotate", Owned(Org)),
        (Get, "/trigger/tasks", Collection(Scope)),
        (Post, "/trigger/tasks/{task_id}/trigger", Owned(Scope)),
        (Get, "/trigger/runs", Collection(Scope)),
        (Get, "/trigger/runs/{run_id}", Owned(Scope)),
        (Post, "/trigger/runs/{run_id}/cancel", Owned(Scope)),
        (Post, "/trigger/runs/{run_id}/replay", Owned(Scope)),
        (Get, "/trigger/schedules", Collection(Scope)),
        (Post, "/trigger/schedules", Collection(Scope)),
        (Get, "/trigger/schedules/{schedule_id}", Owned(Scope)),
        (Delete, "/trigger/schedules/{schedule_id}", Owned(Scope)),
        (Post, "/trigger/schedules/{schedule_id}/activate", Owned(Scope)),
        (Post, "/trigger/schedules/{schedule_id}/deactivate", Owned(Scope)),
        (Get, "/trigger/batches/{id}", Owned(Scope)),
        (Post, "/trigger/batches/{id}", Owned(Scope)),
        (Get, "/jobs", Collection(Scope)),
        (Post, "/jobs", Collection(Scope)),
        (Get, "/jobs/{run_id}", Owned(Scope)),
        (Post, "/jobs/{run_id}/cancel", Owned(Scope)),
        (Post, "/jobs/{run_id}/replay", Owned(Scope)),
    ];
    let erdo: &[(Verb, &str, Entry)] = &[
        (Post, "/tokens", Collection(Org)),
        (Delete, "/tokens/{token_id}", Owned(Org)),
        (Post, "/bots/{bot_key}/invoke", Owned(Scope)),
        (Post, "/bots/{bot_key}/invoke-from-thread", Owned(Scope)),
        (Get, "/threads", Collection(User)),
        (Post, "/threads", Collection(User)),
        (Get, "/threads/{thread_id}", Owned(User)),
        (Get, "/threads/{thread_id}/messages", Owned(User)),
        (Post, "/threads/{thread_id}/message", Owned(User)),
        (Get, "/datasets", Collection(Scope)),
        (Post, "/datasets", Collection(Scope)),
        (Get, "/datasets/{slug}", Owned(Scope)),
        (Post, "/datasets/{slug}/query", Owned(Scope)),
        (Post, "/datasets/{dataset_id}/download", Owned(Scope)),
    ];
    let mut all = BTreeMap::new();
    for (verb, path, entry) in platos {
        let full: &'static str = format!("/api/v1/agent{path}").leak();
        all.insert((*verb, full), *entry);
        let dashboard: &'static str = format!("/dashboard/api/v1/agent{path}").leak();
        all.insert((*verb, dashboard), Session);
    }
    for (verb, path, entry) in erdo {
        all.insert((*verb, *path), *entry);
    }
    for (verb, path) in [
        (Get, "/dashboard/erdo/datasets"),
        (Get, "/dashboard/erdo/datasets/{slug}"),
        (Post, "/dashboard/erdo/datasets/{slug}/query"),
        (Get, "/dashboard/session"),
        (Delete, "/dashboard/session"),
        (Put, "/dashboard/session/scope"),
        (Get, "/dashboard/scopes"),
        (Get, "/dashboard/live"),
    ] {
        all.insert((verb, path), Session);
    }
    for (verb, path, why) in [
        (Get, "/dashboard", "the sign-in page"),
        (Get, "/dashboard/", "the sign-in page"),
        (Get, "/dashboard/assets/{file}", "the page's script and style"),
        (Post, "/dashboard/session", "signing in (with an API key in the body)"),
        (Get, "/api/health", "load balancers' health check"),
        (Get, "/metrics", "Prometheus scrape; labels hold no tenant ids"),
        (Get, "/socket.io/", "the socket upgrade; it authenticates at namespace connect"),
        (Get, "/openapi.json", "the API document"),
        (Get, "/docs", "the API reference page"),
        (Get, "/docs/docs.js", "the API reference page's script"),
    ] {
        all.insert((verb, path), Open(User, why));
    }
    all
}

/// A foreign principal: its name, the headers it sends, and how far it is foreign.
struct Foreign {
    name: &'static str,
    headers: Vec<(&'static str, String)>,
    /// The widest owner it is foreign to: `User` for another user of the scope, `Scope` for
    /// another project, `Org` for another organization or an unusable credential.
    reach: Owner,
}

fn platos_operator(org: &str, project: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {KEY}")),
        ("x-platos-organization-id", org.into()),
        ("x-platos-project-id", project.into()),
        ("x-platos-environment-id", "default".into()),
    ]
}

fn expired_session_token() -> String {
    let now = Timestamp::now().unix_seconds();
    let mut claims = SessionClaims::new(&Scope::default_scope(), "alice", "default");
    claims.iat = now - 7200;
    claims.exp = now - 3600;
    session_token::sign(SECRET, &claims).unwrap()
}

/// The owner's resources: path parameter → (owner's value, a value that names nothing).
struct Fixture {
    platos: BTreeMap<&'static str, (String, String)>,
    erdo: BTreeMap<&'static str, (String, String)>,
    /// Server-made ids of the owner's resources: no foreign answer may hold one.
    secrets: Vec<String>,
}

struct Caller {
    client: reqwest::Client,
    base: String,
}

impl Caller {
    async fn send(&self, headers: &[(&str, String)], verb: Verb, path: &str, body: Option<&Value>) -> (u16, String) {
        let mut request = self.client.request(verb.as_str().parse().unwrap(), format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let stream =
            response.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        if stream {
            // A stream that was opened is an answer in itself; its events are not awaited.
            return (status, String::new());
        }
        (status, response.text().await.unwrap())
    }

    async fn json(&self, headers: &[(&str, String)], verb: Verb, path: &str, body: Option<Value>) -> Value {
        let (status, text) = self.send(headers, verb, path, body.as_ref()).await;
        assert!((200..300).contains(&status), "{} {path}: {status} {text}", verb.as_str());
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

/// The first string under `key` anywhere in `value`.
fn find(value: &Value, key: &str) -> Option<String> {
    match value {
        Value::Object(map) => {
            map.get(key).and_then(Value::as_str).map(str::to_owned).or_else(|| map.values().find_map(|v| find(v, key)))
        }
        Value::Array(items) => items.iter().find_map(|v| find(v, key)),
        _ => None,
    }
}

fn agents() -> Vec<AgentSpec> {
    let matrix: AgentSpec = serde_json::from_value(json!({
        "id": "matrix", "name": format!("{MARK} agent"), "model": "scripted:echo",
        "system_prompt": format!("{MARK} prompt"),
        "tools": ["current_time"],
        "http_tools": [{"name": "refund", "url": "http://127.0.0.1:9/refund"}],
    }))
    .unwrap();
    let approver: AgentSpec = serde_json::from_value(json!({
        "id": "approver", "name": "Approver", "model": "scripted:steps", "system_prompt": MARK,
        "tools": ["request_approval"],
        "script": {"token_delay_ms": 0, "steps": [
            {"text": "Asking.", "tool_calls": [{"name": "request_approval", "arguments": {"action": MARK}}]},
            {"text": "Done."}
        ]},
    }))
    .unwrap();
    vec![matrix, approver]
}

async fn make_fixture(caller: &Caller, store: &Store) -> Fixture {
    let scope = Scope::default_scope();
    for agent in agents() {
        store.apply_agent(&scope, &agent, "test", None).await.unwrap();
    }
    let task: TaskSpec = toml::from_str(&format!(
        "id = \"matrixtask\"\nkind = \"agent\"\nagent = \"matrix\"\nmessage = \"{MARK}\"\n\
         [[schedules]]\ncron = \"0 3 * * *\"\n"
    ))
    .unwrap();
    agentry_engine::jobs::apply_task(store, &task, "test").await.unwrap();

    let operator = platos_operator("default", "default");
    let alice = vec![("x-platos-session-token", token("alice"))];
    let thread = caller
        .json(&alice, Verb::Post, "/api/v1/agent/threads", Some(json!({"agentId": "matrix", "title": MARK})))
        .await;
    let thread_id = find(&thread, "id").unwrap();
    let sent = caller
        .json(
            &alice,
            Verb::Post,
            &format!("/api/v1/agent/threads/{thread_id}/messages"),
            Some(json!({"message": MARK})),
        )
        .await;
    let turn_id = find(&sent, "turnId").unwrap();
    let turn = caller.json(&operator, Verb::Get, &format!("/api/v1/agent/turns/{turn_id}"), None).await;
    let trace_id = find(&turn, "traceId").unwrap();

    // A turn that parks on an approval: started as a stream, found in the queue.
    let asking = caller
        .json(&alice, Verb::Post, "/api/v1/agent/threads", Some(json!({"agentId": "approver", "title": MARK})))
        .await;
    let asking_id = find(&asking, "id").unwrap();
    let stream_path = format!("/api/v1/agent/threads/{asking_id}/stream");
    let (status, _) = caller.send(&alice, Verb::Post, &stream_path, Some(&json!({"message": MARK}))).await;
    assert_eq!(status, 200);
    let mut approval_id = None;
    for _ in 0..100 {
        let queue = caller.json(&operator, Verb::Get, "/api/v1/agent/monitoring/approvals", None).await;
        approval_id = find(&queue, "id").or_else(|| find(&queue, "approvalId"));
        if approval_id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let approval_id = approval_id.expect("the approver's turn parks on an approval");

    let cap = json!({"scopeType": "agent", "targetId": "matrix", "period": "day", "limitCents": 500});
    let cap = caller.json(&operator, Verb::Post, "/api/v1/agent/budgets", Some(cap)).await;
    let cap_id = find(&cap, "id").unwrap();
    let key = caller
        .json(&operator, Verb::Post, "/api/v1/agent/api-keys", Some(json!({"name": MARK, "organizationId": "default"})))
        .await;
    let key_id = find(&key, "id").unwrap();
    let run = caller
        .json(&operator, Verb::Post, "/api/v1/agent/trigger/tasks/matrixtask/trigger", Some(json!({"payload": {}})))
        .await;
    let run_id = find(&run, "id").unwrap();
    let schedules = caller.json(&operator, Verb::Get, "/api/v1/agent/trigger/schedules", None).await;
    let schedule_id = find(&schedules, "id").unwrap();
    let batch = caller
        .json(&operator, Verb::Post, "/api/v1/agent/trigger/batches/matrixtask", Some(json!({"payloads": [{}]})))
        .await;
    let batch_id = find(&batch, "batchId").unwrap();
    let tools = caller.json(&operator, Verb::Get, "/api/v1/agent/tools", None).await;
    let refund = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t.to_string().contains("refund"))
        .unwrap_or_else(|| panic!("the matrix agent's HTTP tool is listed: {tools}"))
        .clone();
    let tool_id = find(&refund, "toolId").or_else(|| find(&refund, "id")).unwrap();
    let (entity_id, tool_name) = tool_id.split_once("::").unwrap();

    let erdo_key = vec![("authorization", format!("Bearer {KEY}"))];
    let erdo_token = caller
        .json(&erdo_key, Verb::Post, "/tokens", Some(json!({"botKeys": ["matrix"], "externalUserId": "alice"})))
        .await;
    let token_id = find(&erdo_token, "tokenId").or_else(|| find(&erdo_token, "id")).unwrap();
    let erdo_alice = vec![("authorization", format!("Bearer {}", find(&erdo_token, "token").unwrap()))];
    let erdo_thread = caller.json(&erdo_alice, Verb::Post, "/threads", Some(json!({"name": MARK}))).await;
    let erdo_thread_id = find(&erdo_thread, "id").unwrap();
    let csv = format!("name,amount\n{MARK},1\n");
    let dataset = caller
        .json(&erdo_key, Verb::Post, "/datasets", Some(json!({"slug": "secret", "name": MARK, "content": csv})))
        .await;
    let dataset_id = find(&dataset, "id").unwrap();

    let platos: BTreeMap<&'static str, (String, String)> = [
        ("agent_id", "matrix", "nosuchagent"),
        ("thread_id", thread_id.as_str(), "thr_0000000000000000missing"),
        ("approval_id", approval_id.as_str(), "apr_0000000000000000missing"),
        ("turn_id", turn_id.as_str(), "turn_000000000000000missing"),
        ("trace_id", trace_id.as_str(), "00000000000000000000000000000000"),
        ("cap_id", cap_id.as_str(), "cap_0000000000000000missing"),
        ("entity_id", entity_id, "nosuchentity"),
        ("tool_name", tool_name, "nosuchtool"),
        ("tool_id", tool_id.as_str(), "nosuchentity::nosuchtool"),
        ("key_id", key_id.as_str(), "key_0000000000000000missing"),
        ("task_id", "matrixtask", "nosuchtask"),
        ("run_id", run_id.as_str(), "run_0000000000000000missing"),
        ("schedule_id", schedule_id.as_str(), "sched_00000000000000missing"),
        ("id", batch_id.as_str(), "batch_00000000000000missing"),
    ]
    .into_iter()
    .map(|(name, real, missing)| (name, (real.to_owned(), missing.to_owned())))
    .collect();
    let erdo: BTreeMap<&'static str, (String, String)> = [
        ("token_id", token_id.as_str(), "tok_0000000000000000missing"),
        ("bot_key", "matrix", "nosuchbot"),
        ("thread_id", erdo_thread_id.as_str(), "thr_0000000000000000missing"),
        ("slug", "secret", "nosuchdataset"),
        ("dataset_id", dataset_id.as_str(), "ds_00000000000000000missing"),
        ("file", "app.js", "nosuchfile.js"),
    ]
    .into_iter()
    .map(|(name, real, missing)| (name, (real.to_owned(), missing.to_owned())))
    .collect();
    let secrets = vec![
        thread_id,
        asking_id,
        approval_id,
        turn_id,
        trace_id,
        cap_id,
        key_id,
        run_id,
        schedule_id,
        batch_id,
        token_id,
        erdo_thread_id,
        dataset_id,
    ];
    Fixture { platos, erdo, secrets }
}

/// The path with every `{param}` filled with the owner's value (`real`) or a missing one, and
/// the values it used.
fn fill<'a>(path: &str, params: &'a BTreeMap<&'static str, (String, String)>, real: bool) -> (String, Vec<&'a str>) {
    let mut filled = path.to_owned();
    let mut used = Vec::new();
    for (name, (owner, missing)) in params {
        let placeholder = format!("{{{name}}}");
        if filled.contains(&placeholder) {
            let value = if real { owner } else { missing };
            filled = filled.replace(&placeholder, value);
            used.push(value.as_str());
        }
    }
    assert!(!filled.contains('{'), "no fixture for a parameter of {path}");
    (filled, used)
}

/// A body each writing endpoint accepts from its owner, so a refusal is about who asks.
fn body_for(verb: Verb, path: &str) -> Option<Value> {
    if verb == Verb::Get || verb == Verb::Delete {
        return None;
    }
    let body = if path.ends_with("/messages") || path.ends_with("/stream") {
        json!({"message": "hello"})
    } else if path.ends_with("/message") {
        json!({"content": "hello"})
    } else if path.ends_with("/invoke") || path.ends_with("/invoke-from-thread") {
        json!({"messages": [{"role": "user", "content": "hello"}]})
    } else if path.ends_with("/resolve") {
        json!({"response": "approve"})
    } else if path.ends_with("/override") {
        json!({"minutes": 5})
    } else if path.ends_with("/enabled") {
        json!({"enabled": false})
    } else if path.ends_with("/query") {
        json!({"query": "SELECT * FROM data"})
    } else if path.contains("/budgets/") {
        json!({"scopeType": "agent", "targetId": "matrix", "period": "day", "limitCents": 1})
    } else if path.contains("/agents/") {
        json!({"name": "Replaced", "model": "scripted:echo", "systemPrompt": "x"})
    } else if path.contains("/batches/") {
        json!({"payloads": [{}]})
    } else {
        json!({})
    };
    Some(body)
}

fn normalized(text: &str, fixture_values: &[&str]) -> String {
    let mut text = text.to_owned();
    for value in fixture_values {
        text = text.replace(value, "<id>");
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_foreign_principals_as_for_a_missing_id() {
    let table = endpoints();
    let matrix = matrix();
    let unlisted: Vec<String> = table
        .iter()
        .filter(|(verb, path)| !matrix.contains_key(&(*verb, path.as_str())))
        .map(|(verb, path)| format!("{} {path}", verb.as_str()))
        .collect();
    assert!(unlisted.is_empty(), "routes without an entry in the isolation matrix: {unlisted:#?}");
    let stale: Vec<_> =
        matrix.keys().filter(|(verb, path)| !table.iter().any(|(v, p)| v == verb && p == path)).collect();
    assert!(stale.is_empty(), "matrix entries for routes that no longer exist: {stale:?}");

    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation::Sqlite(dir.path().join("matrix.db"));
    let mut config = AppConfig::new(location.clone());
    // Priced models, so a spending cap on the owner's agent can be made.
    let price = Price { input: 1000.0, output: 2000.0, cached_input: None };
    config.providers = ProviderRegistry::default().with_prices(BTreeMap::from([("scripted:echo".to_owned(), price)]));
    config.bootstrap = replica_config_bootstrap();
    config.engine.datasets_dir = Some(dir.path().join("datasets"));
    let mut replica = Replica::start(config);
    let store = Store::open(&location).await.unwrap();
    let caller = Caller { client: reqwest::Client::new(), base: replica.base() };
    let fixture = make_fixture(&caller, &store).await;

    let erdo_key = vec![("authorization", format!("Bearer {KEY}"))];
    let mint = |body: Value| {
        let caller = &caller;
        let erdo_key = erdo_key.clone();
        async move {
            let created = caller.json(&erdo_key, Verb::Post, "/tokens", Some(body)).await;
            find(&created, "token").unwrap()
        }
    };
    let ungranted = mint(json!({"botKeys": ["nosuchbot"], "externalUserId": "mallory"})).await;
    let bob_erdo = mint(json!({"botKeys": ["matrix"], "externalUserId": "bob"})).await;
    let short = mint(json!({"botKeys": ["matrix"], "externalUserId": "alice", "expiresInSeconds": 1})).await;
    // The operator of another organization: a key bound to it (the installation-wide key may act
    // in every organization, so it is not foreign to any).
    let acme = caller
        .json(
            &platos_operator("default", "default"),
            Verb::Post,
            "/api/v1/agent/api-keys",
            Some(json!({"name": "acme", "organizationId": "acme"})),
        )
        .await;
    let acme_key = find(&acme, "key").unwrap();
    let mut acme_operator = platos_operator("acme", "default");
    acme_operator[0].1 = format!("Bearer {acme_key}");
    let bearer = |secret: &str| vec![("authorization", format!("Bearer {secret}"))];
    let mut as_bob = platos_operator("default", "default");
    as_bob.push(("x-platos-user-id", "bob".into()));
    let platos_foreign = vec![
        Foreign {
            name: "another project's operator",
            headers: platos_operator("default", "other"),
            reach: Owner::Scope,
        },
        Foreign { name: "another organization's operator", headers: acme_operator, reach: Owner::Org },
        Foreign { name: "an operator acting as bob", headers: as_bob, reach: Owner::User },
        Foreign {
            name: "bob's session token",
            headers: vec![("x-platos-session-token", token("bob"))],
            reach: Owner::User,
        },
        Foreign { name: "an Erdo scoped token", headers: bearer(&ungranted), reach: Owner::Org },
        Foreign {
            name: "an expired session token",
            headers: vec![("x-platos-session-token", expired_session_token())],
            reach: Owner::Org,
        },
    ];
    // The short token expires while the Platos half runs; it is used on the Erdo half.
    let erdo_foreign = vec![
        Foreign {
            name: "another organization's key",
            headers: vec![("authorization", format!("Bearer {acme_key}")), ("x-organization-id", "acme".into())],
            reach: Owner::Org,
        },
        Foreign { name: "mallory's token without the grant", headers: bearer(&ungranted), reach: Owner::Scope },
        Foreign { name: "bob's Erdo token", headers: bearer(&bob_erdo), reach: Owner::User },
        Foreign { name: "alice's expired Erdo token", headers: bearer(&short), reach: Owner::Org },
        Foreign {
            name: "a Platos session token",
            headers: vec![("x-platos-session-token", token("alice"))],
            reach: Owner::Org,
        },
    ];

    let mut attempts = 0;
    let mut failures = Vec::new();
    let mut expired_waited = false;
    for ((verb, path), entry) in &matrix {
        let is_platos = path.starts_with("/api/v1/agent") || path.starts_with("/dashboard/api/v1/agent");
        let mut params = if is_platos { fixture.platos.clone() } else { fixture.erdo.clone() };
        if *verb == Verb::Post && path.ends_with("/trigger/batches/{id}") {
            // `POST` takes the task the batch runs, `GET` the batch.
            params.insert("id", ("matrixtask".into(), "nosuchtask".into()));
        }
        let foreign = if is_platos || path.starts_with("/dashboard") { &platos_foreign } else { &erdo_foreign };
        if !is_platos && !expired_waited {
            tokio::time::sleep(Duration::from_millis(1100)).await;
            expired_waited = true;
        }
        let body = body_for(*verb, path);
        let failed =
            |principal: &Foreign, what: String| format!("{} {path} as {}: {what}", verb.as_str(), principal.name);
        for principal in foreign {
            // Owner data in an answer, other than the ids the request itself named.
            let leaks = |text: &str, named: &[&str]| {
                let text = normalized(text, named);
                text.contains(MARK) || fixture.secrets.iter().any(|secret| text.contains(secret.as_str()))
            };
            match entry {
                Entry::Owned(owner) => {
                    if principal.reach < *owner {
                        continue;
                    }
                    let (missing_path, missing_ids) = fill(path, &params, false);
                    let (real_path, real_ids) = fill(path, &params, true);
                    let (missing_status, missing_text) =
                        caller.send(&principal.headers, *verb, &missing_path, body.as_ref()).await;
                    let (status, text) = caller.send(&principal.headers, *verb, &real_path, body.as_ref()).await;
                    attempts += 2;
                    // Both refused alike, or both done in the caller's own scope (a `PUT` of an
                    // agent id the caller's project does not have creates its own).
                    let alike = status == missing_status
                        && ((200..300).contains(&status)
                            || normalized(&text, &real_ids) == normalized(&missing_text, &missing_ids));
                    if !alike {
                        let what = format!("{status} {text} — a missing id gets {missing_status} {missing_text}");
                        failures.push(failed(principal, what));
                    } else if leaks(&text, &real_ids) || status >= 500 {
                        failures.push(failed(principal, format!("{status} {text}")));
                    }
                }
                Entry::Collection(owner) | Entry::Open(owner, _) => {
                    if principal.reach < *owner {
                        continue;
                    }
                    let (filled, named) = fill(path, &params, true);
                    let (status, text) = caller.send(&principal.headers, *verb, &filled, body.as_ref()).await;
                    attempts += 1;
                    if leaks(&text, &named) || status >= 500 {
                        let open =
                            if let Entry::Open(_, why) = entry { format!("(open: {why}) ") } else { String::new() };
                        failures.push(failed(principal, format!("{open}{status} {text}")));
                    }
                }
                Entry::Session => {
                    let (filled, _) = fill(path, &params, true);
                    let (status, text) = caller.send(&principal.headers, *verb, &filled, body.as_ref()).await;
                    attempts += 1;
                    if status != 401 {
                        failures.push(failed(principal, format!("without a session: {status} {text}")));
                    }
                }
            }
        }
    }
    println!("isolation matrix: {} endpoints, {attempts} foreign requests, {} failures", matrix.len(), failures.len());
    assert!(failures.is_empty(), "{} isolation failures:\n{}", failures.len(), failures.join("\n"));

    // The owner still sees its resources: the fixture was real, so the matrix could have failed.
    let alice = vec![("x-platos-session-token", token("alice"))];
    let (thread_path, _) = fill("/api/v1/agent/threads/{thread_id}", &fixture.platos, true);
    let (status, text) = caller.send(&alice, Verb::Get, &thread_path, None).await;
    assert_eq!(status, 200, "{text}");
    store.close().await;
    replica.stop();
}
