//! Tools, approvals, artifacts and safety on a real SQLite store, with HTTP tools calling a real
//! loopback server.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentry_core::agent::SafetySpec;
use agentry_core::safety::SafetyPolicy;
use agentry_core::tool::{HttpMethod, HttpToolSpec};
use agentry_core::{
    AgentSpec, ApprovalDecision, ApprovalStatus, LoggedEvent, Principal, PrincipalKind, Script, ScriptStep,
    ScriptToolCall, Turn, TurnEvent, TurnStatus,
};
use agentry_engine::approvals::ApprovalError;
use agentry_engine::{Engine, EngineConfig};
use agentry_llm::ProviderRegistry;
use common::*;
use serde_json::{Value, json};

/// A loopback HTTP server recording the bodies it receives.
struct Backend {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
}

async fn backend() -> Backend {
    use axum::routing::{get, post};
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = bodies.clone();
    let app = axum::Router::new()
        .route(
            "/orders/{id}/refund",
            post(move |axum::extract::Path(id): axum::extract::Path<String>, axum::Json(body): axum::Json<Value>| {
                let seen = seen.clone();
                async move {
                    seen.lock().unwrap().push(json!({"id": id, "body": body}));
                    axum::Json(json!({"refunded": id, "amount": body["amount"]}))
                }
            }),
        )
        .route("/broken", get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "database on fire") }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Backend { url, bodies }
}

fn http_tool(name: &str, method: HttpMethod, url: String, approval: bool) -> HttpToolSpec {
    HttpToolSpec {
        name: name.into(),
        description: format!("{name} tool"),
        method,
        url,
        headers: Default::default(),
        parameters: json!({"type": "object", "properties": {"id": {"type": "string"}, "amount": {"type": "number"}}}),
        timeout_secs: Some(1),
        requires_approval: approval,
        approval_timeout_secs: None,
    }
}

/// An agent that calls `calls` in its first step, then says `after`.
fn tool_agent(id: &str, calls: Vec<(&str, Value)>, after: &str) -> AgentSpec {
    let tool_calls =
        calls.into_iter().map(|(name, arguments)| ScriptToolCall { name: name.into(), arguments }).collect();
    let steps = vec![
        ScriptStep { text: Some("Let me check.".into()), tool_calls, ..Default::default() },
        ScriptStep { text: Some(after.into()), ..Default::default() },
    ];
    AgentSpec { script: Some(Script { token_delay_ms: 0, steps }), ..AgentSpec::new(id, id, "scripted:steps", "") }
}

fn refund_agent(url: &str, approval_timeout: Option<u64>) -> AgentSpec {
    let mut agent = tool_agent("refunds", vec![("refund", json!({"id": "A1", "amount": 30}))], "Done.");
    let mut tool = http_tool("refund", HttpMethod::Post, format!("{url}/orders/{{id}}/refund"), true);
    tool.approval_timeout_secs = approval_timeout;
    agent.http_tools = vec![tool];
    agent
}

/// Reads the turn's events until it parks on an approval; returns them and the approval id.
async fn until_approval(f: &Fixture, turn: &Turn) -> (Vec<LoggedEvent>, String) {
    let mut follower = f.engine.follow(&turn.scope, turn, 0).await.unwrap();
    let mut events = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), follower.next()).await.unwrap().unwrap().unwrap();
        let approval = match &event.event {
            TurnEvent::ApprovalNeeded { approval_id, .. } => Some(approval_id.clone()),
            _ => None,
        };
        events.push(event);
        if let Some(id) = approval {
            return (events, id);
        }
    }
}

async fn wait_status(f: &Fixture, turn: &Turn, status: TurnStatus) {
    for _ in 0..200 {
        if f.store.get_turn(&turn.scope, &turn.id).await.unwrap().unwrap().status == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("turn never reached {status:?}");
}

fn approve(comment: &str) -> ApprovalDecision {
    ApprovalDecision { approved: true, comment: Some(comment.into()), edited_args: None }
}

fn tool_result(events: &[LoggedEvent], name: &str) -> (Value, bool) {
    events
        .iter()
        .find_map(|e| match &e.event {
            TurnEvent::ToolResult { name: n, result, is_error, .. } if n == name => Some((result.clone(), *is_error)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no tool_result for {name}"))
}

#[tokio::test]
async fn approved_call_runs_with_edited_args_and_the_same_turn_continues() {
    let f = fixture().await;
    let server = backend().await;
    let thread = f.agent(refund_agent(&server.url, None)).await;
    let turn = f.send(&thread, "refund my order").await;
    let (_, approval_id) = until_approval(&f, &turn).await;
    wait_status(&f, &turn, TurnStatus::Waiting).await;
    assert!(server.bodies.lock().unwrap().is_empty(), "nothing runs before the approval");

    let decision = ApprovalDecision {
        approved: true,
        comment: Some("ok, but 20".into()),
        edited_args: Some(json!({"id": "A1", "amount": 20})),
    };
    let settled = f.engine.resolve_approval(&principal(), &approval_id, decision).await.unwrap();
    assert_eq!(settled.status, ApprovalStatus::Approved);
    let events = f.events(&turn, 0).await;
    let k = kinds(&events);
    let needed = k.iter().position(|k| *k == "approval_needed").unwrap();
    let resolved = k.iter().position(|k| *k == "approval_resolved").unwrap();
    let result = k.iter().position(|k| *k == "tool_result").unwrap();
    assert!(k[..needed].contains(&"tool_call") && needed < resolved && resolved < result, "{k:?}");
    assert!(events.iter().enumerate().all(|(i, e)| e.seq == i as i64 + 1), "one gap-free log across the wait");
    assert_eq!(tool_result(&events, "refund"), (json!({"refunded": "A1", "amount": 20}), false));
    assert_eq!(server.bodies.lock().unwrap().as_slice(), [json!({"id": "A1", "body": {"amount": 20}})]);
    assert!(tokens(&events).ends_with("Done."));
    assert_eq!(done_of(&events).0, TurnStatus::Completed);
}

#[tokio::test]
async fn rejected_call_tells_the_model_and_the_turn_goes_on() {
    let f = fixture().await;
    let server = backend().await;
    let thread = f.agent(refund_agent(&server.url, None)).await;
    let turn = f.send(&thread, "refund").await;
    let (_, approval_id) = until_approval(&f, &turn).await;
    let decision = ApprovalDecision { approved: false, comment: Some("not eligible".into()), edited_args: None };
    f.engine.resolve_approval(&principal(), &approval_id, decision).await.unwrap();
    let events = f.events(&turn, 0).await;
    let (result, is_error) = tool_result(&events, "refund");
    assert!(is_error && result.to_string().contains("not eligible"), "{result}");
    assert!(server.bodies.lock().unwrap().is_empty(), "a rejected call never runs");
    assert!(tokens(&events).ends_with("Done."));
    assert_eq!(done_of(&events).0, TurnStatus::Completed);
}

#[tokio::test]
async fn unanswered_approval_times_out_and_the_turn_continues() {
    let f = fixture().await;
    let server = backend().await;
    let thread = f.agent(refund_agent(&server.url, Some(1))).await;
    let turn = f.send(&thread, "refund").await;
    let (_, approval_id) = until_approval(&f, &turn).await;
    let events = f.events(&turn, 0).await;
    let status = events.iter().find_map(|e| match &e.event {
        TurnEvent::ApprovalResolved { status, .. } => Some(status.clone()),
        _ => None,
    });
    assert_eq!(status.as_deref(), Some("timed_out"));
    assert!(tool_result(&events, "refund").1);
    assert_eq!(done_of(&events).0, TurnStatus::Completed);
    let late = f.engine.resolve_approval(&principal(), &approval_id, approve("too late")).await;
    assert!(matches!(late, Err(ApprovalError::AlreadySettled(_))));
}

#[tokio::test]
async fn a_waiting_turn_survives_a_restart() {
    let f = fixture().await;
    let server = backend().await;
    let thread = f.agent(refund_agent(&server.url, None)).await;
    let turn = f.send(&thread, "refund").await;
    let (before, approval_id) = until_approval(&f, &turn).await;
    wait_status(&f, &turn, TurnStatus::Waiting).await;
    f.engine.shutdown(Duration::from_secs(1)).await;

    // A new process on the same store.
    let engine = Engine::start(f.store.clone(), ProviderRegistry::default(), EngineConfig::default()).await.unwrap();
    engine.resolve_approval(&principal(), &approval_id, approve("fine")).await.unwrap();
    let mut follower = engine.follow(&turn.scope, &turn, before.last().unwrap().seq).await.unwrap();
    let mut after = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), follower.next()).await.unwrap().unwrap() {
        after.push(event);
    }
    assert_eq!(after.first().unwrap().seq, before.last().unwrap().seq + 1, "resumes right after the wait");
    assert_eq!(tool_result(&after, "refund"), (json!({"refunded": "A1", "amount": 30}), false));
    assert_eq!(done_of(&after).0, TurnStatus::Completed);
}

#[tokio::test]
async fn exactly_one_of_concurrent_resolutions_wins() {
    let f = fixture().await;
    let server = backend().await;
    let thread = f.agent(refund_agent(&server.url, None)).await;
    let turn = f.send(&thread, "refund").await;
    let (_, approval_id) = until_approval(&f, &turn).await;
    let attempts = (0..8).map(|i| {
        let engine = f.engine.clone();
        let id = approval_id.clone();
        tokio::spawn(async move {
            let decision = ApprovalDecision { approved: i % 2 == 0, comment: None, edited_args: None };
            engine.resolve_approval(&principal(), &id, decision).await
        })
    });
    let results: Vec<_> = futures_join(attempts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(ApprovalError::AlreadySettled(_)))));
    assert_eq!(done_of(&f.events(&turn, 0).await).0, TurnStatus::Completed);
    assert!(server.bodies.lock().unwrap().len() <= 1);
}

async fn futures_join<T: Send + 'static>(tasks: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test]
async fn only_the_requester_or_an_operator_may_resolve() {
    let f = fixture().await;
    let server = backend().await;
    let thread = f.agent(refund_agent(&server.url, None)).await;
    let turn = f.send(&thread, "refund").await;
    let (_, approval_id) = until_approval(&f, &turn).await;
    let mallory = Principal { user_id: Some("mallory".into()), ..principal() };
    assert!(
        matches!(f.engine.resolve_approval(&mallory, &approval_id, approve("")).await, Err(ApprovalError::NotFound)),
        "another user's approval looks missing"
    );
    let acting =
        Principal { user_id: Some("mallory".into()), kind: agentry_core::PrincipalKind::Operator, ..principal() };
    assert!(matches!(f.engine.visible_approval(&acting, &approval_id).await, Err(ApprovalError::NotFound)));
    assert!(
        matches!(f.engine.resolve_approval(&acting, &approval_id, approve("")).await, Err(ApprovalError::NotFound)),
        "an API key acting as another user is that user"
    );
    let other_scope = Principal { scope: agentry_core::Scope::new("other", "default", "default"), ..principal() };
    assert!(matches!(
        f.engine.resolve_approval(&other_scope, &approval_id, approve("")).await,
        Err(ApprovalError::NotFound)
    ));
    let operator = Principal { user_id: None, kind: PrincipalKind::Operator, ..principal() };
    let settled = f.engine.resolve_approval(&operator, &approval_id, approve("ops")).await.unwrap();
    assert_eq!(settled.responded_by.as_deref(), Some("operator"));
}

#[tokio::test]
async fn cancelling_a_waiting_turn_cancels_its_approval_and_frees_the_thread() {
    let f = fixture().await;
    let server = backend().await;
    let thread = f.agent(refund_agent(&server.url, None)).await;
    let turn = f.send(&thread, "refund").await;
    let (_, approval_id) = until_approval(&f, &turn).await;
    wait_status(&f, &turn, TurnStatus::Waiting).await;
    let next = f.send(&thread, "second").await;
    assert!(f.engine.cancel_thread(&thread.scope, &thread.id).await.unwrap());
    let events = f.events(&turn, 0).await;
    assert_eq!(done_of(&events).0, TurnStatus::Cancelled);
    let approval = f.store.get_approval(&thread.scope, &approval_id).await.unwrap().unwrap();
    assert_eq!(approval.status, ApprovalStatus::Cancelled);
    assert_eq!(done_of(&f.events(&next, 0).await).0, TurnStatus::Cancelled);
    assert!(server.bodies.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_message_sent_while_a_turn_waits_runs_after_it() {
    let f = fixture().await;
    let server = backend().await;
    let thread = f.agent(refund_agent(&server.url, None)).await;
    let first = f.send(&thread, "refund").await;
    let (_, approval_id) = until_approval(&f, &first).await;
    let second = f.send(&thread, "and another").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued = f.store.get_turn(&thread.scope, &second.id).await.unwrap().unwrap();
    assert_eq!(queued.status, TurnStatus::Queued, "one turn at a time per thread, also while waiting");
    f.engine.resolve_approval(&principal(), &approval_id, approve("")).await.unwrap();
    assert_eq!(done_of(&f.events(&first, 0).await).0, TurnStatus::Completed);
    let (_, second_approval) = until_approval(&f, &second).await;
    assert_ne!(second_approval, approval_id);
}

#[tokio::test]
async fn request_approval_returns_the_humans_answer_to_the_model() {
    let f = fixture().await;
    let mut agent = tool_agent(
        "asker",
        vec![("request_approval", json!({"action": "delete the repo", "details": {"repo": "x"}}))],
        "Ok.",
    );
    agent.tools = vec!["request_approval".into()];
    let thread = f.agent(agent).await;
    let turn = f.send(&thread, "clean up").await;
    let (events, approval_id) = until_approval(&f, &turn).await;
    match &events.last().unwrap().event {
        TurnEvent::ApprovalNeeded { action, details, .. } => {
            assert_eq!(action, "delete the repo");
            assert_eq!(details, &json!({"repo": "x"}));
        }
        other => panic!("{other:?}"),
    }
    let decision = ApprovalDecision { approved: false, comment: Some("no way".into()), edited_args: None };
    f.engine.resolve_approval(&principal(), &approval_id, decision).await.unwrap();
    let events = f.events(&turn, 0).await;
    let (result, is_error) = tool_result(&events, "request_approval");
    assert!(!is_error);
    assert_eq!(result["approved"], json!(false));
    assert_eq!(result["comment"], json!("no way"));
}

#[tokio::test]
async fn tool_failures_and_timeouts_go_back_to_the_model() {
    let f = fixture().await;
    let server = backend().await;
    let mut agent =
        tool_agent("flaky", vec![("broken", json!({})), ("slow", json!({})), ("nope", json!({}))], "Sorry.");
    agent.http_tools = vec![
        http_tool("broken", HttpMethod::Get, format!("{}/broken", server.url), false),
        http_tool("slow", HttpMethod::Get, format!("{}/slow", server.url), false),
    ];
    let thread = f.agent(agent).await;
    let turn = f.send(&thread, "go").await;
    let events = f.events(&turn, 0).await;
    let (broken, broken_err) = tool_result(&events, "broken");
    assert!(broken_err && broken.to_string().contains("HTTP 500") && broken.to_string().contains("database on fire"));
    let (slow, slow_err) = tool_result(&events, "slow");
    assert!(slow_err && slow.to_string().contains("timed out"), "{slow}");
    let (unknown, unknown_err) = tool_result(&events, "nope");
    assert!(unknown_err && unknown.to_string().contains("unknown tool"));
    assert!(tokens(&events).ends_with("Sorry."));
    assert_eq!(done_of(&events).0, TurnStatus::Completed);
    let health = f.store.tool_health(&thread.scope).await.unwrap();
    let broken_health = &health[&("agent.flaky".to_owned(), "broken".to_owned())];
    assert_eq!((broken_health.total_calls, broken_health.fail_count), (1, 1));
}

#[tokio::test]
async fn oversized_arguments_and_results_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        agentry_store::Store::open(&agentry_store::StoreLocation::Sqlite(dir.path().join("e.db"))).await.unwrap();
    let config = EngineConfig { max_tool_argument_bytes: 64, max_tool_result_bytes: 256, ..EngineConfig::default() };
    let engine = Engine::start(store.clone(), ProviderRegistry::default(), config).await.unwrap();
    let f = Fixture { engine, store, dir };
    let server = backend().await;
    let big = "x".repeat(100);
    let mut agent = tool_agent(
        "limits",
        vec![("refund", json!({"id": big.clone()})), ("refund", json!({"id": "B", "amount": big}))],
        "ok",
    );
    let mut tool = http_tool("refund", HttpMethod::Post, format!("{}/orders/{{id}}/refund", server.url), false);
    tool.parameters = json!({"type": "object"});
    agent.http_tools = vec![tool];
    let thread = f.agent(agent).await;
    let events = f.events(&f.send(&thread, "go").await, 0).await;
    let results: Vec<(Value, bool)> = events
        .iter()
        .filter_map(|e| match &e.event {
            TurnEvent::ToolResult { result, is_error, .. } => Some((result.clone(), *is_error)),
            _ => None,
        })
        .collect();
    assert!(results[0].1 && results[0].0.to_string().contains("limit is 64"), "{:?}", results[0]);
    assert!(results[1].1, "arguments over the limit never reach the tool: {:?}", results[1]);
    assert!(server.bodies.lock().unwrap().is_empty());
}

#[tokio::test]
async fn artifacts_are_generated_revised_sanitised_and_listed() {
    let f = fixture().await;
    let mut agent = tool_agent(
        "writer",
        vec![(
            "generate_artifact",
            json!({"kind": "html", "title": "Page", "content": "<p onclick=\"x()\">Hi</p><script>alert(1)</script>"}),
        )],
        "Made it.",
    );
    agent.tools = vec!["generate_artifact".into(), "revise_artifact".into()];
    let thread = f.agent(agent).await;
    let events = f.events(&f.send(&thread, "make a page").await, 0).await;
    let k = kinds(&events);
    let start = k.iter().position(|k| *k == "artifact_start").unwrap();
    assert_eq!(k[start + 1], "artifact_delta");
    assert_eq!(k[start + 2], "artifact_committed");
    let (key, content) = events
        .iter()
        .find_map(|e| match &e.event {
            TurnEvent::ArtifactCommitted { artifact_key, final_content, revision: 1, .. } => {
                Some((artifact_key.clone(), final_content.clone()))
            }
            _ => None,
        })
        .unwrap();
    assert!(!content.contains("<script") && !content.contains("onclick") && content.contains("Hi"), "{content}");

    // Another agent answering on the same thread revises it; a missing key is an artifact_error.
    let mut reviser = tool_agent(
        "reviser",
        vec![
            ("revise_artifact", json!({"artifactKey": key, "content": "<p>v2</p>"})),
            ("revise_artifact", json!({"artifactKey": "a_missing", "content": "x"})),
        ],
        "Revised.",
    );
    reviser.tools = vec!["revise_artifact".into()];
    f.agent(reviser).await;
    let message = agentry_engine::NewMessage { text: "revise".into(), ..Default::default() };
    let turn = f.engine.submit(&principal(), &thread_with_agent(&thread, "reviser"), message).await.unwrap();
    let events = f.events(&turn, 0).await;
    assert!(kinds(&events).contains(&"artifact_error"));
    let listed = f.store.list_artifacts(&thread.scope, &thread.id, 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].0.revision, listed[0].1, listed[0].0.content.as_str()), (2, 2, "<p>v2</p>"));
}

/// The same thread, answered by another agent (threads carry their agent).
fn thread_with_agent(thread: &agentry_core::Thread, agent_id: &str) -> agentry_core::Thread {
    let mut other = thread.clone();
    other.agent_id = agent_id.into();
    other
}

#[tokio::test]
async fn safety_policies_flag_redact_and_block() {
    let f = fixture().await;
    let card = "4111 1111 1111 1111";
    let mut blocker = echo("blocker");
    blocker.safety = SafetySpec { input: SafetyPolicy::Block, output: SafetyPolicy::Flag };
    let thread = f.agent(blocker).await;
    let events = f.events(&f.send(&thread, &format!("my card is {card}")).await, 0).await;
    assert_eq!(kinds(&events), vec!["meta", "error", "usage", "done"], "blocked before any model call");
    match &events[1].event {
        TurnEvent::Error { code, flags, .. } => {
            assert_eq!(code, "safety_blocked");
            assert_eq!(flags[0].kind, "pii");
            assert!(!flags[0].matched_text.clone().unwrap_or_default().contains("1111 1111 1111"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(done_of(&events).0, TurnStatus::Failed);

    let mut redactor = echo("redactor");
    redactor.safety = SafetySpec { input: SafetyPolicy::Redact, output: SafetyPolicy::Off };
    let thread = f.agent(redactor).await;
    let events = f.events(&f.send(&thread, &format!("card {card} please")).await, 0).await;
    assert!(kinds(&events).contains(&"safety_flags"));
    assert!(!tokens(&events).contains("4111"), "the model only saw the redacted text: {}", tokens(&events));
    let stored = f.store.recent_messages(&thread.scope, &thread.id, 10).await.unwrap();
    assert!(stored.iter().all(|m| !m.content.contains("4111")));
    let turn = f.store.latest_turn(&thread.scope, &thread.id).await.unwrap().unwrap();
    assert!(!turn.input.text.contains("4111"), "the turn keeps only the redacted text: {}", turn.input.text);

    let flagger = echo("flagger");
    let thread = f.agent(flagger).await;
    let events = f.events(&f.send(&thread, "mail me at ada@example.com").await, 0).await;
    let k = kinds(&events);
    assert!(k.iter().filter(|k| **k == "safety_flags").count() == 2, "input and output hits: {k:?}");
    assert!(tokens(&events).contains("ada@example.com"), "flag changes nothing");
    let ledger = f.store.safety_events(&thread.scope, 50).await.unwrap();
    assert!(ledger.iter().any(|e| e.direction == "input" && e.action == "block"));
    assert!(ledger.iter().any(|e| e.direction == "output" && e.flag_type == "pii"));
}

#[tokio::test]
async fn agents_declaring_unconfigured_tools_are_refused() {
    let f = fixture().await;
    let mut agent = echo("needs");
    let mut tool = http_tool("x", HttpMethod::Get, "http://127.0.0.1:1/".into(), false);
    tool.headers.insert("Authorization".into(), "Bearer {{secrets.missing}}".into());
    agent.http_tools = vec![tool];
    assert_eq!(f.engine.check_agent(&agent).unwrap_err().0, "tools");
    let mut agent = echo("mcp");
    agent.mcp_tools = vec![agentry_core::tool::McpToolsSpec {
        server: "nowhere".into(),
        tools: vec![],
        requires_approval: vec![],
        approval_timeout_secs: None,
    }];
    assert!(f.engine.check_agent(&agent).unwrap_err().1.contains("nowhere"));
}

/// The interpreter with the official MCP SDK (`scripts/setup-mcp`); the MCP tests fail without it.
fn mcp_python() -> String {
    std::env::var("AGENTRY_TEST_MCP_PYTHON")
        .unwrap_or_else(|_| panic!("AGENTRY_TEST_MCP_PYTHON is not set: run scripts/setup-mcp and export MCP_PYTHON"))
}

#[tokio::test]
async fn mcp_server_tools_are_offered_by_name_and_can_require_approval() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        agentry_store::Store::open(&agentry_store::StoreLocation::Sqlite(dir.path().join("e.db"))).await.unwrap();
    let server = agentry_mcp::McpServerConfig {
        command: Some(mcp_python()),
        args: vec![concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/mcp/server.py").into(), "stdio".into()],
        env: Default::default(),
        url: None,
        headers: Default::default(),
        timeout_secs: Some(20),
    };
    let config = EngineConfig { mcp_servers: [("testsrv".to_owned(), server)].into(), ..EngineConfig::default() };
    let engine = Engine::start(store.clone(), ProviderRegistry::default(), config).await.unwrap();
    let f = Fixture { engine, store, dir };
    let mut agent = tool_agent(
        "mcp-user",
        vec![("echo", json!({"text": "hello over MCP"})), ("add", json!({"a": 2, "b": 3})), ("fail", json!({}))],
        "Done.",
    );
    agent.mcp_tools = vec![agentry_core::tool::McpToolsSpec {
        server: "testsrv".into(),
        tools: vec!["echo".into(), "add".into(), "fail".into()],
        requires_approval: vec!["add".into()],
        approval_timeout_secs: None,
    }];
    f.engine.check_agent(&agent).unwrap();
    let toolbox = f.engine.toolbox(&agentry_core::Scope::default_scope(), &agent).await.unwrap();
    let mut names: Vec<_> = toolbox.specs().into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, ["add", "echo", "fail"], "only the declared tools, by their MCP names");
    assert!(toolbox.get("echo").unwrap().spec.parameters["properties"]["text"].is_object());

    let thread = f.agent(agent).await;
    let turn = f.send(&thread, "use the tools").await;
    let (_, approval_id) = until_approval(&f, &turn).await;
    let approval = f.store.get_approval(&thread.scope, &approval_id).await.unwrap().unwrap();
    assert_eq!(approval.tool_name, "add");
    f.engine.resolve_approval(&principal(), &approval_id, approve("fine")).await.unwrap();
    let events = f.events(&turn, 0).await;
    assert_eq!(tool_result(&events, "echo"), (json!("hello over MCP"), false));
    assert!(!tool_result(&events, "add").1);
    assert!(tool_result(&events, "add").0.to_string().contains('5'), "{:?}", tool_result(&events, "add"));
    let (failed, is_error) = tool_result(&events, "fail");
    assert!(is_error && failed.to_string().contains("always fails"), "{failed}");
    assert_eq!(done_of(&events).0, TurnStatus::Completed);
    f.engine.shutdown(Duration::from_secs(1)).await;
}

/// A turn that fails on the store tells its client only that the service is unavailable: the
/// store's own words stay in the log (issue 16). The store fails here by handing back a saved
/// state that does not parse.
#[tokio::test]
async fn a_turn_failing_on_the_store_shows_no_store_text() {
    use sqlx::Connection as _;
    let f = fixture().await;
    let server = backend().await;
    let thread = f.agent(refund_agent(&server.url, None)).await;
    let turn = f.send(&thread, "refund").await;
    let (_, approval_id) = until_approval(&f, &turn).await;
    wait_status(&f, &turn, TurnStatus::Waiting).await;
    let mut db =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", f.dir.path().join("e.db").display())).await.unwrap();
    sqlx::query("UPDATE turns SET checkpoint_json = '{not json' WHERE id = $1")
        .bind(&turn.id)
        .execute(&mut db)
        .await
        .unwrap();
    f.engine.resolve_approval(&principal(), &approval_id, approve("go")).await.unwrap();
    wait_status(&f, &turn, TurnStatus::Failed).await;
    let events = f.events(&turn, 0).await;
    let message = events
        .iter()
        .find_map(|e| match &e.event {
            TurnEvent::Error { code, message, .. } if code == "service_unavailable" => Some(message.clone()),
            _ => None,
        })
        .expect("an error event");
    assert_eq!(message, "the service is temporarily unavailable; try again");
    let stored = f.store.get_turn(&turn.scope, &turn.id).await.unwrap().unwrap();
    assert_eq!(stored.error.as_deref(), Some("the service is temporarily unavailable; try again"));
}
