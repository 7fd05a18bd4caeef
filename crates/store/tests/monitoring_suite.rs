//! Monitoring reads on SQLite and Postgres: spans stored with the event log and read per trace
//! and thread, turn lists with what their calls added up to, cost rollups and the summary —
//! always within one scope.

use agentry_core::{LoggedEvent, Timestamp, Turn, TurnEvent};
use agentry_store::{
    CallStatus, EventRow, RollupBy, Span, SpanKind, SpanStatus, Store, SubmitPolicy, TurnFilter, tools::ToolCallRecord,
};
use serde_json::json;

mod common;
use common::*;

suite!(
    spans_are_stored_with_the_log_unfenced_and_read_per_trace_and_thread,
    turns_are_listed_with_their_calls_and_rolled_up,
    a_turn_counts_once_where_its_first_call_falls
);

fn span(turn: &Turn, key: &str, parent: Option<String>, name: &str, start_ns: i64) -> Span {
    let mut attributes = serde_json::Map::new();
    attributes.insert("gen_ai.operation.name".into(), json!(name.split(' ').next()));
    attributes.insert("agentry.cost_micro_cents".into(), json!(42));
    Span {
        trace_id: turn.trace_id(),
        span_id: agentry_core::trace::span_id(key),
        parent_span_id: parent,
        scope: turn.scope.clone(),
        thread_id: turn.thread_id.clone(),
        turn_id: turn.id.clone(),
        agent_id: turn.agent_id.clone(),
        user_id: turn.user_id.clone(),
        name: name.into(),
        kind: if name.starts_with("chat") { SpanKind::Client } else { SpanKind::Internal },
        start_ns,
        end_ns: start_ns + 1_500_000,
        status: SpanStatus::Ok,
        error: None,
        attributes,
    }
}

async fn submitted(store: &Store, user: &str, agent: &str, scope: &agentry_core::Scope) -> Turn {
    let t = thread(scope, user, agent);
    store.insert_thread(&t).await.unwrap();
    let turn = Turn { user_id: user.into(), agent_id: agent.into(), ..turn(scope, &t.id, None) };
    store.submit_turn(&turn, SubmitPolicy::default(), "rep_a").await.unwrap();
    turn
}

async fn spans_are_stored_with_the_log_unfenced_and_read_per_trace_and_thread(store: &Store) {
    let t = submitted(store, "alice", "support", &scope_a()).await;
    let lease = store.claim_queued_turns("rep_a", 30_000, 1).await.unwrap().remove(0).lease;
    let root = span(&t, &t.id, None, "invoke_agent support", 1_000_000_000);
    let chat = span(&t, "mcl_1", Some(t.span_id()), "chat gpt-4o-mini", 1_000_500_000);
    let event = LoggedEvent {
        turn_id: t.id.clone(),
        thread_id: t.thread_id.clone(),
        seq: 1,
        at: Timestamp::now(),
        event: TurnEvent::Token { text: "hi".into() },
    };
    let rows = [EventRow { scope: &t.scope, event: &event, token: lease.token }];
    assert!(store.append_log(&rows, &[chat.clone(), root.clone()]).await.unwrap().refused.is_empty());
    assert_eq!(store.spans_of_trace(&scope_a(), &t.trace_id(), None).await.unwrap(), [root.clone(), chat.clone()]);
    assert_eq!(store.spans_of_trace(&scope_a(), &t.trace_id(), Some("alice")).await.unwrap().len(), 2);
    assert!(store.spans_of_trace(&scope_a(), &t.trace_id(), Some("bob")).await.unwrap().is_empty(), "another user's");
    assert!(store.spans_of_trace(&scope_b(), &t.trace_id(), None).await.unwrap().is_empty(), "another scope's");
    assert_eq!(store.spans_of_thread(&scope_a(), &t.thread_id).await.unwrap().len(), 2);
    assert!(store.spans_of_thread(&scope_b(), &t.thread_id).await.unwrap().is_empty());

    // A stale writer's events are refused; the spans of work it did are kept, once.
    let tool = span(&t, "trn/call_1", Some(t.span_id()), "execute_tool lookup", 1_000_700_000);
    let stale = LoggedEvent { seq: 2, ..event.clone() };
    let rows = [EventRow { scope: &t.scope, event: &stale, token: lease.token + 1 }];
    let appended = store.append_log(&rows, &[tool.clone(), root.clone()]).await.unwrap();
    assert!(appended.refused.contains(&t.id));
    assert_eq!(store.spans_of_trace(&scope_a(), &t.trace_id(), None).await.unwrap(), [root, chat, tool]);
    // Retention deletes what started before the cut.
    assert_eq!(store.purge_spans(1_000_600_000).await.unwrap(), 2);
    assert_eq!(store.spans_of_thread(&scope_a(), &t.thread_id).await.unwrap().len(), 1);
}

async fn turns_are_listed_with_their_calls_and_rolled_up(store: &Store) {
    let alice = submitted(store, "alice", "support", &scope_a()).await;
    let bob = submitted(store, "bob", "sales", &scope_a()).await;
    let elsewhere = submitted(store, "alice", "support", &scope_b()).await;
    let counts = store.unfinished_turn_counts().await.unwrap();
    assert_eq!(counts, [("queued".to_owned(), 3)], "the gauge counts every scope's turns");
    for cost in [100, 50] {
        store.record_model_call(&model_call(&alice, 1, CallStatus::Completed, cost)).await.unwrap();
    }
    let mut claude = model_call(&bob, 1, CallStatus::Failed, 7);
    (claude.provider, claude.model, claude.first_token_at) = ("anthropic".into(), "claude-haiku".into(), None);
    store.record_model_call(&claude).await.unwrap();
    store.record_model_call(&model_call(&elsewhere, 1, CallStatus::Completed, 1000)).await.unwrap();
    let tool = ToolCallRecord {
        entity_id: "default",
        tool_name: "lookup",
        turn_id: Some(&alice.id),
        ok: true,
        latency_ms: 3,
        error: None,
    };
    store.record_tool_call(&scope_a(), &tool).await.unwrap();

    let list = |filter: TurnFilter| async move {
        let turns = store.list_turns(&scope_a(), &TurnFilter { limit: 10, ..filter }).await.unwrap();
        turns.into_iter().map(|t| t.id).collect::<Vec<_>>()
    };
    assert_eq!(list(TurnFilter::default()).await, [bob.id.clone(), alice.id.clone()], "newest first, one scope");
    assert_eq!(
        list(TurnFilter { agent_id: Some("support".into()), ..Default::default() }).await,
        vec![alice.id.clone()]
    );
    assert_eq!(list(TurnFilter { user_id: Some("bob".into()), ..Default::default() }).await, vec![bob.id.clone()]);
    assert_eq!(
        list(TurnFilter { thread_id: Some(alice.thread_id.clone()), ..Default::default() }).await,
        vec![alice.id.clone()]
    );
    assert_eq!(list(TurnFilter { status: Some("queued".into()), ..Default::default() }).await.len(), 2);
    assert!(list(TurnFilter { status: Some("completed".into()), ..Default::default() }).await.is_empty());
    let page = store.list_turns(&scope_a(), &TurnFilter { limit: 1, offset: 1, ..Default::default() }).await.unwrap();
    assert_eq!(page[0].id, alice.id);

    let stats = store.turn_stats(&[alice.id.clone(), bob.id.clone()]).await.unwrap();
    let a = &stats[&alice.id];
    assert_eq!((a.usage.cost.0, a.usage.input_tokens, a.model_calls, a.tool_calls), (150, 200, 2, 1));
    assert!(a.first_token_at.is_some());
    let b = &stats[&bob.id];
    assert_eq!((b.usage.cost.0, b.model_calls, b.tool_calls, b.first_token_at), (7, 1, 0, None));

    let (since, until) = (Timestamp(Timestamp::now().0 - 60_000), Timestamp(Timestamp::now().0 + 60_000));
    let rollup = |by: RollupBy, user: Option<&'static str>| async move {
        let rows = store.cost_rollup(&scope_a(), by, since, until, user).await.unwrap();
        rows.into_iter().map(|r| (r.key, r.usage.cost.0, r.turns, r.model_calls)).collect::<Vec<_>>()
    };
    assert_eq!(rollup(RollupBy::Agent, None).await, [("support".into(), 150, 1, 2), ("sales".into(), 7, 1, 1)]);
    assert_eq!(rollup(RollupBy::User, None).await, [("alice".into(), 150, 1, 2), ("bob".into(), 7, 1, 1)]);
    assert_eq!(
        rollup(RollupBy::Model, None).await,
        [("openai:gpt-4o-mini".into(), 150, 1, 2), ("anthropic:claude-haiku".into(), 7, 1, 1)]
    );
    let today = agentry_core::Period::Day.window_key(Timestamp::now());
    assert_eq!(rollup(RollupBy::Day, None).await, [(today, 157, 2, 3)]);
    assert_eq!(rollup(RollupBy::Agent, Some("bob")).await, [("sales".into(), 7, 1, 1)]);
    assert_eq!(rollup(RollupBy::Total, None).await, [("total".into(), 157, 2, 3)]);
    assert_eq!(rollup(RollupBy::Total, Some("carol")).await, [("total".into(), 0, 0, 0)], "an empty span totals zero");
    let later = store.cost_rollup(&scope_a(), RollupBy::Agent, until, Timestamp(until.0 + 1), None).await.unwrap();
    assert!(later.is_empty());

    let summary = store.turn_summary(&scope_a(), since, None).await.unwrap();
    assert_eq!(summary.by_status.get("queued"), Some(&2));
    assert_eq!((summary.p95_ms, summary.pending_approvals), (None, 0));
    let summary = store.turn_summary(&scope_a(), since, Some("bob")).await.unwrap();
    assert_eq!(summary.by_status.get("queued"), Some(&1));
}

async fn a_turn_counts_once_where_its_first_call_falls(store: &Store) {
    let turn = submitted(store, "alice", "support", &scope_a()).await;
    let day = 86_400_000;
    let midnight = Timestamp::now().0 / day * day;
    let at = |call: &mut agentry_store::ModelCall, ms: i64| {
        call.started_at = Timestamp(ms);
        call.first_token_at = Some(Timestamp(ms));
        call.finished_at = Timestamp(ms + 5);
    };
    // Its first call before midnight on one model, the second after it on another.
    let mut first = model_call(&turn, 1, CallStatus::Completed, 10);
    at(&mut first, midnight - 1_000);
    let mut second = model_call(&turn, 2, CallStatus::Completed, 20);
    at(&mut second, midnight + 1_000);
    (second.provider, second.model) = ("anthropic".into(), "claude-haiku".into());
    store.record_model_call(&first).await.unwrap();
    store.record_model_call(&second).await.unwrap();
    store.record_model_call(&first).await.unwrap(); // a second record of a call changes nothing
    let (since, until) = (Timestamp(midnight - day), Timestamp(midnight + day));
    for by in [RollupBy::Day, RollupBy::Model, RollupBy::Agent, RollupBy::User, RollupBy::Total] {
        let rows = store.cost_rollup(&scope_a(), by, since, until, None).await.unwrap();
        let sums = (rows.iter().map(|r| r.turns).sum::<i64>(), rows.iter().map(|r| r.usage.cost.0).sum::<i64>());
        assert_eq!(sums, (1, 30), "grouped by {by:?}: the rows add up to one turn and all of its cost");
    }
    let days: Vec<_> = store
        .cost_rollup(&scope_a(), RollupBy::Day, since, until, None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key, r.turns, r.model_calls))
        .collect();
    let key = |ms| agentry_core::Period::Day.window_key(Timestamp(ms));
    assert_eq!(days, [(key(midnight - 1_000), 1, 1), (key(midnight + 1_000), 0, 1)]);
    // A window after its first call holds its spend, not the turn.
    let later = store.cost_rollup(&scope_a(), RollupBy::Total, Timestamp(midnight), until, None).await.unwrap();
    assert_eq!((later[0].usage.cost.0, later[0].turns), (20, 0));
}
