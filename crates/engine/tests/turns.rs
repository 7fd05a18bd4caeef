//! The engine end to end on a real SQLite store with the scripted provider.

mod common;

use common::*;

use std::time::{Duration, Instant};

use agentry_core::id::{new_id, prefix};
use agentry_core::{
    AgentSpec, BusyPolicy, MessageRole, Scope, Script, ScriptStep, ScriptToolCall, Thread, ThreadStatus, Timestamp,
    TurnEvent, TurnStatus,
};
use agentry_engine::{Engine, EngineConfig, EngineError, NewMessage};
use agentry_llm::ProviderRegistry;
use agentry_store::{Store, StoreLocation};
use serde_json::json;

#[tokio::test]
async fn echo_turn_streams_the_message_and_ends_with_done_and_usage() {
    let f = fixture().await;
    let thread = f.agent(echo("echo")).await;
    let text = "hello  there\tworld ";
    let turn = f.send(&thread, text).await;
    let events = f.events(&turn, 0).await;
    assert_eq!(tokens(&events), text);
    let k = kinds(&events);
    assert_eq!(k.first(), Some(&"meta"));
    assert_eq!(&k[k.len() - 3..], ["message_persisted", "usage", "done"]);
    assert!(events.iter().enumerate().all(|(i, e)| e.seq == i as i64 + 1), "seq is 1..n without gaps");
    let (status, usage, stopped) = done_of(&events);
    assert_eq!((status, stopped), (TurnStatus::Completed, false));
    // Prompt: "You help Alice." (3 words) + the message (3 words); output: 3 words.
    assert_eq!((usage.input_tokens, usage.output_tokens), (6, 3));
    let (messages, _) = f.store.list_messages(&thread.scope, &thread.id, 10, 0).await.unwrap();
    assert_eq!(
        messages.iter().map(|m| (m.role, m.content.as_str())).collect::<Vec<_>>(),
        vec![(MessageRole::User, text), (MessageRole::Assistant, text)]
    );
    let stored = f.store.get_turn(&thread.scope, &turn.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TurnStatus::Completed);
}

#[tokio::test]
async fn following_from_done_or_past_it_ends_at_once() {
    let f = fixture().await;
    let thread = f.agent(echo("echo")).await;
    let turn = f.send(&thread, "hi").await;
    let done = f.events(&turn, 0).await.last().unwrap().seq;
    // `f.events` times out (and fails) if a follower never ends.
    assert!(f.events(&turn, done).await.is_empty(), "a cursor at done");
    assert!(f.events(&turn, done + 50).await.is_empty(), "a cursor past done");
    assert_eq!(f.events(&turn, done - 1).await.len(), 1, "a cursor before done gets done");
}

#[tokio::test]
async fn tool_steps_run_tools_and_continue_the_same_turn() {
    let f = fixture().await;
    let spec = AgentSpec {
        tools: vec!["current_time".into()],
        script: Some(Script {
            token_delay_ms: 0,
            steps: vec![
                ScriptStep {
                    text: Some("Checking.".into()),
                    tool_calls: vec![
                        ScriptToolCall { name: "current_time".into(), arguments: json!({}) },
                        ScriptToolCall { name: "no_such_tool".into(), arguments: json!({"x": 1}) },
                    ],
                    ..Default::default()
                },
                ScriptStep { thinking: Some("hmm".into()), text: Some("Done.".into()), ..Default::default() },
            ],
        }),
        ..AgentSpec::new("tooler", "Tooler", "scripted:steps", "")
    };
    let thread = f.agent(spec).await;
    let turn = f.send(&thread, "what time is it").await;
    let events = f.events(&turn, 0).await;
    assert_eq!(
        kinds(&events),
        vec![
            "meta",
            "status",
            "token",
            "status",
            "tool_call",
            "tool_call",
            "tool_result",
            "tool_result",
            "message_boundary",
            "thinking",
            "token",
            "message_persisted",
            "usage",
            "done"
        ]
    );
    let results: Vec<(bool, serde_json::Value)> = events
        .iter()
        .filter_map(|e| match &e.event {
            TurnEvent::ToolResult { is_error, result, .. } => Some((*is_error, result.clone())),
            _ => None,
        })
        .collect();
    assert!(!results[0].0 && results[0].1["unix"].is_i64(), "{results:?}");
    assert!(results[1].0 && results[1].1["error"].as_str().unwrap().contains("unknown tool"), "{results:?}");
    let (messages, _) = f.store.list_messages(&thread.scope, &thread.id, 10, 0).await.unwrap();
    assert_eq!(messages[1].content, "Checking.\n\nDone.");
    // Metrics label a tool the agent does not have `unknown`: a model cannot grow the series.
    let metrics = f.engine.metrics().encode();
    assert!(metrics.contains(r#"agentry_tool_calls_total{tool="current_time",status="ok"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"agentry_tool_calls_total{tool="unknown",status="error"} 1"#), "{metrics}");
    assert!(!metrics.contains("no_such_tool"));
    // The turn's spans: the turn, two model calls, two tool calls, under one root.
    let spans = f.store.spans_of_thread(&thread.scope, &thread.id).await.unwrap();
    let mut names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["chat steps", "chat steps", "execute_tool current_time", "execute_tool no_such_tool", "invoke_agent Tooler"]
    );
    let root = spans.iter().find(|s| s.name.starts_with("invoke_agent")).unwrap();
    assert!(
        spans.iter().filter(|s| s.span_id != root.span_id).all(|s| s.parent_span_id.as_ref() == Some(&root.span_id))
    );
}

#[tokio::test]
async fn provider_failure_is_an_error_event_and_a_failed_turn_with_its_cause() {
    let f = fixture().await;
    let spec = AgentSpec {
        script: Some(Script {
            token_delay_ms: 0,
            steps: vec![ScriptStep { error: Some("upstream exploded".into()), ..Default::default() }],
        }),
        ..AgentSpec::new("broken", "Broken", "scripted:steps", "")
    };
    let thread = f.agent(spec).await;
    let turn = f.send(&thread, "hi").await;
    let events = f.events(&turn, 0).await;
    let error = events.iter().find_map(|e| match &e.event {
        TurnEvent::Error { code, message, .. } => Some((code.clone(), message.clone())),
        _ => None,
    });
    let (code, message) = error.unwrap();
    assert_eq!(code, "provider_unavailable");
    assert!(message.contains("upstream exploded"));
    assert_eq!(done_of(&events).0, TurnStatus::Failed);
    let stored = f.store.get_turn(&thread.scope, &turn.id).await.unwrap().unwrap();
    assert!(stored.error.unwrap().contains("upstream exploded"));
    // The user's message was stored before the model was called.
    let (messages, _) = f.store.list_messages(&thread.scope, &thread.id, 10, 0).await.unwrap();
    assert_eq!(messages.len(), 1);
}

#[tokio::test]
async fn cancel_stops_a_running_turn_within_a_second() {
    let f = fixture().await;
    let thread = f.agent(slow_echo("slow", 200)).await;
    let turn = f.send(&thread, &"word ".repeat(50)).await;
    let mut follower = f.engine.follow(&turn.scope, &turn, 0).await.unwrap();
    // Wait for the first token, then cancel.
    loop {
        let event = follower.next().await.unwrap().unwrap();
        if matches!(event.event, TurnEvent::Token { .. }) {
            break;
        }
    }
    let asked = Instant::now();
    assert!(f.engine.cancel_thread(&thread.scope, &thread.id).await.unwrap());
    let mut last = None;
    while let Some(event) = follower.next().await.unwrap() {
        last = Some(event);
    }
    assert!(asked.elapsed() < Duration::from_secs(1), "took {:?}", asked.elapsed());
    match last.unwrap().event {
        TurnEvent::Done { status, stopped, .. } => assert_eq!((status, stopped), (TurnStatus::Cancelled, true)),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.store.get_turn(&thread.scope, &turn.id).await.unwrap().unwrap().status, TurnStatus::Cancelled);
    assert!(!f.engine.cancel_thread(&thread.scope, &thread.id).await.unwrap(), "nothing left to cancel");
}

#[tokio::test]
async fn second_message_is_queued_and_runs_after_the_first() {
    let f = fixture().await;
    let thread = f.agent(slow_echo("queue", 5)).await;
    let first = f.send(&thread, "one two three").await;
    let second = f.send(&thread, "four five").await;
    let second_events = f.events(&second, 0).await;
    let first_events = f.events(&first, 0).await;
    assert_eq!(tokens(&first_events), "one two three");
    assert_eq!(tokens(&second_events), "four five");
    assert!(first_events.last().unwrap().at <= second_events.first().unwrap().at, "turns ran in order");
    let (messages, _) = f.store.list_messages(&thread.scope, &thread.id, 10, 0).await.unwrap();
    let contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, vec!["one two three", "one two three", "four five", "four five"]);
}

#[tokio::test]
async fn reject_policy_refuses_a_message_while_a_turn_runs() {
    let f = fixture().await;
    let thread = f.agent(AgentSpec { on_busy: Some(BusyPolicy::Reject), ..slow_echo("strict", 20) }).await;
    let first = f.send(&thread, "a b c d e").await;
    let second = f.send(&thread, "interrupting").await;
    let events = f.events(&second, 0).await;
    assert_eq!(kinds(&events), vec!["error", "usage", "done"]);
    assert!(matches!(&events[0].event, TurnEvent::Error { code, .. } if code == "turn_in_progress"));
    assert_eq!(tokens(&f.events(&first, 0).await), "a b c d e");
}

#[tokio::test]
async fn following_from_a_cursor_replays_the_rest_without_gap_or_duplicate() {
    let f = fixture().await;
    let thread = f.agent(slow_echo("resume", 10)).await;
    let text = "alpha beta gamma delta epsilon zeta eta theta";
    let turn = f.send(&thread, text).await;
    // A first listener reads a few events, then goes away mid-turn.
    let mut first = f.engine.follow(&turn.scope, &turn, 0).await.unwrap();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        seen.push(first.next().await.unwrap().unwrap());
    }
    drop(first);
    let cursor = seen.last().unwrap().seq;
    let rest = f.events(&turn, cursor).await;
    seen.extend(rest);
    assert!(seen.iter().enumerate().all(|(i, e)| e.seq == i as i64 + 1));
    assert_eq!(tokens(&seen), text);
    // After the turn, a late listener gets the whole log.
    assert_eq!(f.events(&turn, 0).await, seen);
}

#[tokio::test]
async fn repeated_idempotency_key_returns_the_same_turn() {
    let f = fixture().await;
    let thread = f.agent(echo("idem")).await;
    let message = NewMessage { text: "once".into(), idempotency_key: Some("k1".into()), ..Default::default() };
    let a = f.engine.submit(&principal(), &thread, message.clone()).await.unwrap();
    let b = f.engine.submit(&principal(), &thread, message).await.unwrap();
    assert_eq!(a.id, b.id);
    f.events(&a, 0).await;
    let (messages, _) = f.store.list_messages(&thread.scope, &thread.id, 10, 0).await.unwrap();
    assert_eq!(messages.len(), 2, "one user and one assistant message");
}

#[tokio::test]
async fn bad_messages_are_refused_before_a_turn_exists() {
    let f = fixture().await;
    let thread = f.agent(echo("bad")).await;
    let submit = |text: String| {
        let engine = f.engine.clone();
        let thread = thread.clone();
        async move { engine.submit(&principal(), &thread, NewMessage { text, ..Default::default() }).await }
    };
    assert!(matches!(submit("   ".into()).await, Err(EngineError::EmptyMessage)));
    assert!(matches!(submit("x".repeat(40 * 1024)).await, Err(EngineError::MessageTooLarge { .. })));
    let mut pinned = principal();
    pinned.pinned_agent_id = Some("other".into());
    let result = f.engine.submit(&pinned, &thread, NewMessage { text: "hi".into(), ..Default::default() }).await;
    assert!(matches!(result, Err(EngineError::AgentPinned)));
    assert!(f.store.latest_turn(&thread.scope, &thread.id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_dead_replicas_turn_without_checkpoint_ends_with_replica_lost() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreLocation::Sqlite(dir.path().join("e.db"))).await.unwrap();
    store.apply_agent(&Scope::default_scope(), &echo("gone"), "test", None).await.unwrap();
    let now = Timestamp::now();
    let thread = Thread {
        id: new_id(prefix::THREAD),
        agent_id: "gone".into(),
        user_id: "alice".into(),
        scope: Scope::default_scope(),
        title: None,
        status: ThreadStatus::Active,
        archived_at: None,
        created_at: now,
        updated_at: now,
    };
    store.insert_thread(&thread).await.unwrap();
    // A turn a dead process had started (its lease already expired).
    let turn = agentry_core::Turn {
        id: new_id(prefix::TURN),
        thread_id: thread.id.clone(),
        scope: thread.scope.clone(),
        user_id: "alice".into(),
        agent_id: "gone".into(),
        status: TurnStatus::Queued,
        wait_reason: None,
        error: None,
        input: Default::default(),
        idempotency_key: None,
        created_at: now,
        started_at: None,
        finished_at: None,
        checkpoint: None,
    };
    store.insert_turn(&turn).await.unwrap();
    // Claimed by a replica that died at once: its lease is already over.
    let claimed = store.claim_queued_turns("rep_dead", -1, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let engine = Engine::start(store.clone(), ProviderRegistry::default(), EngineConfig::default()).await.unwrap();
    let mut follower = engine.follow(&thread.scope, &turn, 0).await.unwrap();
    let mut events = Vec::new();
    while let Some(event) = follower.next().await.unwrap() {
        events.push(event);
    }
    assert_eq!(kinds(&events), vec!["error", "usage", "done"]);
    assert!(matches!(&events[0].event, TurnEvent::Error { code, .. } if code == "replica_lost"));
    let stored = store.get_turn(&thread.scope, &turn.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TurnStatus::Failed);
    assert!(stored.error.is_some());
}

#[tokio::test]
async fn shutdown_leaves_queued_turns_queued_and_hands_the_running_one_over() {
    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation::Sqlite(dir.path().join("s.db"));
    let store = Store::open(&location).await.unwrap();
    let f = Fixture {
        engine: Engine::start(store.clone(), ProviderRegistry::default(), EngineConfig::default()).await.unwrap(),
        store,
        dir: tempfile::tempdir().unwrap(),
    };
    let thread = f.agent(slow_echo("slow", 50)).await;
    let running = f.send(&thread, "one two three four five six seven eight nine ten").await;
    let queued = [f.send(&thread, "later").await, f.send(&thread, "even later").await];
    let mut follower = f.engine.follow(&thread.scope, &running, 0).await.unwrap();
    while !matches!(follower.next().await.unwrap().map(|e| e.event), Some(TurnEvent::Token { .. })) {}
    f.engine.shutdown(Duration::from_millis(0)).await;
    for turn in &queued {
        let stored = f.store.get_turn(&thread.scope, &turn.id).await.unwrap().unwrap();
        assert_eq!(stored.status, TurnStatus::Queued, "a queued turn waits for the next start");
    }
    let handed = f.store.get_turn(&thread.scope, &running.id).await.unwrap().unwrap();
    assert_eq!(handed.status, TurnStatus::Running, "the running turn is left for another replica");
    drop(f.engine);

    // The next start takes the running turn over (it had no checkpoint: it ends with its
    // cause) and then runs the queued ones in order.
    let engine = Engine::start(f.store.clone(), ProviderRegistry::default(), EngineConfig::default()).await.unwrap();
    let next = Fixture { engine, store: f.store.clone(), dir: tempfile::tempdir().unwrap() };
    let ended = next.events(&running, 0).await;
    assert!(ended.iter().any(|e| matches!(&e.event, TurnEvent::Error { code, .. } if code == "replica_lost")));
    for (turn, text) in queued.iter().zip(["later", "even later"]) {
        let events = next.events(turn, 0).await;
        assert_eq!((tokens(&events), done_of(&events).0), (text.to_owned(), TurnStatus::Completed));
    }
}
