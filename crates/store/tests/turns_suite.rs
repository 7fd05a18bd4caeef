//! Turns on SQLite and Postgres: claims, fenced leases, takeover, cancel anywhere, fenced event
//! batches, the usage ledger, and what socket clients confirmed — with two replicas' stores on
//! one database where it matters.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use agentry_core::{
    ApprovalStatus, LoggedEvent, MessageRole, MicroCents, Scope, Timestamp, TokenUsage, ToolStep, ToolStepCall, Turn,
    TurnEvent, TurnStatus, id::new_id, id::prefix,
};
use agentry_store::{
    CallStatus, Claimed, EventRow, Finish, Lease, Parked, Settlement, SocketSession, Store, StreamCursor, SubmitPolicy,
    Submitted,
};
use serde_json::json;

mod common;
use common::*;

suite!(
    turns_are_claimed_once_in_thread_order,
    a_turn_of_an_idle_thread_starts_at_once,
    reject_if_busy_is_decided_in_the_store,
    expired_leases_are_taken_over_with_a_new_token,
    a_late_renewal_keeps_an_expired_lease_nobody_took_over,
    fenced_event_batches_keep_other_turns_events,
    event_logs_append_and_read_after_a_cursor,
    cancel_reaches_running_queued_and_waiting_turns,
    approvals_settle_once_and_wake_their_parked_turn,
    the_ledger_sums_a_turns_model_calls,
    answers_keep_their_tool_steps,
    stream_positions_and_socket_sessions_are_shared,
    budget_windows_reserve_settle_and_release_exactly_once,
    a_window_opens_with_what_the_ledger_spent_in_its_span,
);

replica_suite!(
    two_replicas_never_run_two_turns_of_a_thread,
    a_turn_is_taken_over_by_exactly_one_replica,
    concurrent_reservations_never_overshoot
);

async fn submit(store: &Store, scope: &Scope, thread_id: &str) -> Turn {
    let t = turn(scope, thread_id, None);
    assert_eq!(store.submit_turn(&t, SubmitPolicy::default(), "rep_a").await.unwrap(), Submitted::Queued);
    t
}

async fn new_thread(store: &Store) -> String {
    let t = thread(&scope_a(), "alice", "support");
    store.insert_thread(&t).await.unwrap();
    t.id
}

fn finish(status: TurnStatus) -> Finish<'static> {
    Finish { status, error: None, answer: None }
}

async fn turns_are_claimed_once_in_thread_order(store: &Store) {
    let thread_id = new_thread(store).await;
    let keyed = turn(&scope_a(), &thread_id, Some("k1"));
    store.submit_turn(&keyed, SubmitPolicy::default(), "rep_a").await.unwrap();
    let second = submit(store, &scope_a(), &thread_id).await;
    let again = store.submit_turn(&turn(&scope_a(), &thread_id, Some("k1")), SubmitPolicy::default(), "rep_a").await;
    assert!(again.unwrap_err().is_unique_violation(), "an idempotency key is unique per thread");
    assert_eq!(store.turn_by_idempotency_key(&scope_a(), &thread_id, "k1").await.unwrap().unwrap().id, keyed.id);
    assert!(store.get_turn(&scope_b(), &keyed.id).await.unwrap().is_none());

    let claimed = store.claim_queued_turns("rep_a", 30_000, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.turn.id.as_str()).collect::<Vec<_>>(), [keyed.id.as_str()]);
    let first = &claimed[0];
    assert_eq!((first.turn.status, first.lease.token, first.lease.owner.as_str()), (TurnStatus::Running, 1, "rep_a"));
    assert!(first.turn.started_at.is_some());
    assert!(store.claim_queued_turns("rep_b", 30_000, 10).await.unwrap().is_empty(), "its thread is busy");

    let stale = Lease { token: 0, ..first.lease.clone() };
    assert!(!store.finish_turn(&scope_a(), &stale, &finish(TurnStatus::Completed)).await.unwrap(), "fenced");
    let failed = Finish { status: TurnStatus::Failed, error: Some("boom"), answer: None };
    assert!(store.finish_turn(&scope_a(), &first.lease, &failed).await.unwrap());
    let done = store.get_turn(&scope_a(), &keyed.id).await.unwrap().unwrap();
    assert_eq!((done.status, done.error.as_deref()), (TurnStatus::Failed, Some("boom")));
    assert!(done.finished_at.is_some());
    // A second end keeps the first.
    store.finish_turn(&scope_a(), &first.lease, &finish(TurnStatus::Completed)).await.unwrap();
    assert_eq!(store.get_turn(&scope_a(), &keyed.id).await.unwrap().unwrap().status, TurnStatus::Failed);

    let next = store.claim_queued_turns("rep_b", 30_000, 10).await.unwrap();
    assert_eq!(next.iter().map(|c| c.turn.id.as_str()).collect::<Vec<_>>(), [second.id.as_str()]);
    assert_eq!(store.latest_turn(&scope_a(), &thread_id).await.unwrap().unwrap().id, second.id);
    assert_eq!(store.unfinished_turns(&scope_a(), &thread_id).await.unwrap().len(), 1);
}

async fn a_turn_of_an_idle_thread_starts_at_once(store: &Store) {
    let start = SubmitPolicy { reject_if_busy: false, start_lease_ms: Some(30_000) };
    let thread_id = new_thread(store).await;
    let first = turn(&scope_a(), &thread_id, None);
    let Submitted::Started(lease) = store.submit_turn(&first, start, "rep_a").await.unwrap() else {
        panic!("an idle thread's turn starts at once")
    };
    assert_eq!((lease.owner.as_str(), lease.token), ("rep_a", 1));
    let stored = store.get_turn(&scope_a(), &first.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TurnStatus::Running);
    assert!(stored.started_at.is_some());
    assert_eq!(store.renew_leases("rep_a", 30_000, &[&first.id]).await.unwrap().len(), 1, "it holds a live lease");
    let second = turn(&scope_a(), &thread_id, None);
    assert_eq!(store.submit_turn(&second, start, "rep_b").await.unwrap(), Submitted::Queued, "the thread is busy");
    let third = turn(&scope_a(), &thread_id, None);
    store.finish_turn(&scope_a(), &lease, &finish(TurnStatus::Completed)).await.unwrap();
    assert_eq!(
        store.submit_turn(&third, start, "rep_b").await.unwrap(),
        Submitted::Queued,
        "an idle thread with a queued turn keeps its order"
    );
    let claimed = store.claim_queued_turns("rep_b", 30_000, 10).await.unwrap();
    assert_eq!(claimed.iter().map(|c| c.turn.id.as_str()).collect::<Vec<_>>(), [second.id.as_str()]);
}

async fn reject_if_busy_is_decided_in_the_store(store: &Store) {
    let reject = SubmitPolicy { reject_if_busy: true, start_lease_ms: None };
    let thread_id = new_thread(store).await;
    let first = turn(&scope_a(), &thread_id, None);
    assert_eq!(store.submit_turn(&first, reject, "rep_a").await.unwrap(), Submitted::Queued, "an idle thread takes it");
    let second = turn(&scope_a(), &thread_id, None);
    let Submitted::Rejected(lease) = store.submit_turn(&second, reject, "rep_b").await.unwrap() else {
        panic!("a busy thread refuses")
    };
    assert_eq!((lease.owner.as_str(), lease.token), ("rep_b", 1));
    let stored = store.get_turn(&scope_a(), &second.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.error.as_deref()), (TurnStatus::Failed, Some("turn_in_progress")));
    // The refused turn's events can be written under its lease.
    let event = logged(&second, 1, TurnEvent::error("turn_in_progress", "busy"));
    let rows = [EventRow { scope: &second.scope, event: &event, token: lease.token }];
    assert!(store.append_events(&rows).await.unwrap().refused.is_empty());
}

async fn a_late_renewal_keeps_an_expired_lease_nobody_took_over(store: &Store) {
    let thread_id = new_thread(store).await;
    let t = submit(store, &scope_a(), &thread_id).await;
    let slow = store.claim_queued_turns("rep_slow", -1, 10).await.unwrap().remove(0).lease;
    let held = store.renew_leases("rep_slow", 30_000, &[&t.id]).await.unwrap();
    assert_eq!(held.iter().map(|h| (h.turn_id.as_str(), h.token)).collect::<Vec<_>>(), [(t.id.as_str(), slow.token)]);
    assert!(store.take_over_expired_turns("rep_other", 30_000, 10).await.unwrap().is_empty(), "renewed in time");
    assert!(!store.lease_lost(&t.id, slow.token).await.unwrap());
    assert!(store.renew_leases("rep_other", 30_000, &[&t.id]).await.unwrap().is_empty(), "only its holder renews it");
}

async fn expired_leases_are_taken_over_with_a_new_token(store: &Store) {
    let thread_id = new_thread(store).await;
    let t = submit(store, &scope_a(), &thread_id).await;
    let dead = store.claim_queued_turns("rep_dead", -1, 10).await.unwrap().remove(0).lease;
    let taken = store.take_over_expired_turns("rep_alive", 30_000, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    let alive = taken[0].lease.clone();
    assert!(store.lease_lost(&t.id, dead.token).await.unwrap(), "the dead replica's token moved on");
    assert!(!store.lease_lost(&t.id, alive.token).await.unwrap());
    assert_eq!((alive.owner.as_str(), alive.token), ("rep_alive", dead.token + 1));
    assert!(store.take_over_expired_turns("rep_other", 30_000, 10).await.unwrap().is_empty(), "taken once");
    let held = store.renew_leases("rep_alive", 30_000, &[&t.id]).await.unwrap();
    assert_eq!(held.iter().map(|h| (h.turn_id.as_str(), h.token)).collect::<Vec<_>>(), [(t.id.as_str(), alive.token)]);
    assert!(store.renew_leases("rep_dead", 30_000, &[&t.id]).await.unwrap().is_empty(), "taken over: not renewed");
    // The dead replica's late writes are refused.
    assert!(!store.save_checkpoint(&dead, "{}").await.unwrap());
    assert!(!store.finish_turn(&scope_a(), &dead, &finish(TurnStatus::Completed)).await.unwrap());
    assert!(store.save_checkpoint(&alive, "{\"step\":1}").await.unwrap());
    let stored = store.get_turn(&scope_a(), &t.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.checkpoint.as_deref()), (TurnStatus::Running, Some("{\"step\":1}")));
    // A released lease is taken over at once.
    assert!(store.release_lease(&alive).await.unwrap());
    assert!(
        store.renew_leases("rep_alive", 30_000, &[&t.id]).await.unwrap().is_empty(),
        "a released lease stays released"
    );
    assert_eq!(store.take_over_expired_turns("rep_next", 30_000, 10).await.unwrap().len(), 1);
}

async fn fenced_event_batches_keep_other_turns_events(store: &Store) {
    let (one, two) = (new_thread(store).await, new_thread(store).await);
    let (a, b) = (submit(store, &scope_a(), &one).await, submit(store, &scope_a(), &two).await);
    let claimed = store.claim_queued_turns("rep_a", -1, 10).await.unwrap();
    let lease_of = |id: &str| claimed.iter().find(|c| c.turn.id == id).unwrap().lease.clone();
    let (lease_a, lease_b) = (lease_of(&a.id), lease_of(&b.id));
    // Another replica takes `a` over: rep_a's token for it is stale now.
    let taken = store.take_over_expired_turns("rep_b", 30_000, 1).await.unwrap();
    let lost = if taken[0].turn.id == a.id { (&a, &lease_a, &b, &lease_b) } else { (&b, &lease_b, &a, &lease_a) };
    let (lost_turn, lost_lease, kept_turn, kept_lease) = lost;
    let events = [logged(lost_turn, 1, token("x")), logged(kept_turn, 1, token("y")), logged(kept_turn, 2, token("z"))];
    let rows = [
        EventRow { scope: &lost_turn.scope, event: &events[0], token: lost_lease.token },
        EventRow { scope: &kept_turn.scope, event: &events[1], token: kept_lease.token },
        EventRow { scope: &kept_turn.scope, event: &events[2], token: kept_lease.token },
    ];
    let appended = store.append_events(&rows).await.unwrap();
    assert_eq!(appended.refused.into_iter().collect::<Vec<_>>(), std::slice::from_ref(&lost_turn.id));
    assert_eq!(store.events_after(&scope_a(), &kept_turn.id, 0, 10).await.unwrap(), events[1..].to_vec());
    assert!(store.events_after(&scope_a(), &lost_turn.id, 0, 10).await.unwrap().is_empty());
    // A position already written is refused too, without losing the rest.
    let more = [logged(kept_turn, 2, token("again")), logged(kept_turn, 3, token("w"))];
    let rows: Vec<_> =
        more.iter().map(|e| EventRow { scope: &kept_turn.scope, event: e, token: kept_lease.token }).collect();
    assert!(store.append_events(&rows).await.unwrap().refused.contains(&kept_turn.id));
    assert_eq!(store.last_event_seq(&scope_a(), &kept_turn.id).await.unwrap(), 3);
}

fn logged(turn: &Turn, seq: i64, event: TurnEvent) -> LoggedEvent {
    LoggedEvent { turn_id: turn.id.clone(), thread_id: turn.thread_id.clone(), seq, at: Timestamp::now(), event }
}

fn token(text: &str) -> TurnEvent {
    TurnEvent::Token { text: text.into() }
}

async fn event_logs_append_and_read_after_a_cursor(store: &Store) {
    let thread_id = new_thread(store).await;
    let tr = submit(store, &scope_a(), &thread_id).await;
    let lease = store.claim_queued_turns("rep_a", 30_000, 1).await.unwrap().remove(0).lease;
    let events: Vec<LoggedEvent> = (1..=5).map(|seq| logged(&tr, seq, token(&format!(" w{seq}")))).collect();
    let rows = |events: &[LoggedEvent]| -> Vec<(Scope, LoggedEvent)> {
        events.iter().map(|e| (scope_a(), e.clone())).collect()
    };
    for part in [&events[..2], &events[2..]] {
        let owned = rows(part);
        let batch: Vec<EventRow> =
            owned.iter().map(|(s, e)| EventRow { scope: s, event: e, token: lease.token }).collect();
        assert!(store.append_events(&batch).await.unwrap().refused.is_empty());
    }
    assert_eq!(store.events_after(&scope_a(), &tr.id, 0, 100).await.unwrap(), events);
    assert_eq!(store.events_after(&scope_a(), &tr.id, 3, 100).await.unwrap(), events[3..].to_vec());
    assert_eq!(store.events_after(&scope_a(), &tr.id, 1, 2).await.unwrap(), events[1..3].to_vec());
    assert!(store.events_after(&scope_b(), &tr.id, 0, 100).await.unwrap().is_empty());
    assert_eq!(store.last_event_seq(&scope_a(), &tr.id).await.unwrap(), 5);
    assert_eq!(store.last_event_seq(&scope_b(), &tr.id).await.unwrap(), 0);
    // Retention: only finished turns' logs go.
    assert_eq!(store.purge_event_logs(Timestamp(i64::MAX)).await.unwrap(), 0);
    store.finish_turn(&scope_a(), &lease, &finish(TurnStatus::Completed)).await.unwrap();
    assert_eq!(store.purge_event_logs(Timestamp(0)).await.unwrap(), 0);
    assert_eq!(store.purge_event_logs(Timestamp(i64::MAX)).await.unwrap(), 5);
    // Deleting a thread takes its turns and logs with it.
    let owned = rows(&events[..1]);
    let batch: Vec<EventRow> = owned.iter().map(|(s, e)| EventRow { scope: s, event: e, token: lease.token }).collect();
    store.append_events(&batch).await.unwrap();
    store.delete_thread(&scope_a(), None, &thread_id).await.unwrap();
    assert!(store.get_turn(&scope_a(), &tr.id).await.unwrap().is_none());
    assert!(store.events_after(&scope_a(), &tr.id, 0, 100).await.unwrap().is_empty());
}

async fn cancel_reaches_running_queued_and_waiting_turns(store: &Store) {
    let busy = new_thread(store).await;
    let running = submit(store, &scope_a(), &busy).await;
    let queued = submit(store, &scope_a(), &busy).await;
    let lease = store.claim_queued_turns("rep_a", 30_000, 10).await.unwrap().remove(0).lease;
    let parked_thread = new_thread(store).await;
    let waiting = submit(store, &scope_a(), &parked_thread).await;
    let wait_lease = store.claim_queued_turns("rep_b", 30_000, 10).await.unwrap().remove(0).lease;
    assert_eq!(store.park_turn(&wait_lease, "approval", "{}").await.unwrap(), Parked::Parked);

    let marked = store.request_cancel(&scope_a(), &busy).await.unwrap();
    let mut shape: Vec<_> = marked.iter().map(|m| (m.turn_id.clone(), m.running, m.owner.clone())).collect();
    shape.sort();
    let mut expected = vec![(running.id.clone(), true, Some("rep_a".to_owned())), (queued.id.clone(), false, None)];
    expected.sort();
    assert_eq!(shape, expected);
    assert!(store.request_cancel(&scope_b(), &busy).await.unwrap().is_empty(), "another scope cancels nothing");
    // The running turn cannot park once asked to stop; the queued one is never claimed.
    assert_eq!(store.park_turn(&lease, "approval", "{}").await.unwrap(), Parked::CancelRequested);
    assert!(store.renew_leases("rep_a", 30_000, &[&running.id]).await.unwrap()[0].cancel_requested);
    store.finish_turn(&scope_a(), &lease, &finish(TurnStatus::Cancelled)).await.unwrap();
    assert!(!store.lease_lost(&running.id, lease.token).await.unwrap(), "a turn that ended was not lost");
    assert!(store.claim_queued_turns("rep_a", 30_000, 10).await.unwrap().is_empty());
    let idle = store.cancel_idle_turns(Some((&scope_a(), &busy)), "rep_c").await.unwrap();
    assert_eq!(idle.iter().map(|c| c.turn.id.as_str()).collect::<Vec<_>>(), [queued.id.as_str()]);
    let stored = store.get_turn(&scope_a(), &queued.id).await.unwrap().unwrap();
    assert_eq!(stored.status, TurnStatus::Cancelled);
    // A turn sent after the cancel is not affected by it.
    let later = submit(store, &scope_a(), &busy).await;
    assert_eq!(store.claim_queued_turns("rep_a", 30_000, 10).await.unwrap()[0].turn.id, later.id);

    // A waiting turn: the sweep (no thread given) finds it, and its answer is stored as it was.
    store.request_cancel(&scope_a(), &parked_thread).await.unwrap();
    let swept = store.cancel_idle_turns(None, "rep_c").await.unwrap();
    assert_eq!(swept.iter().map(|c| c.turn.id.as_str()).collect::<Vec<_>>(), [waiting.id.as_str()]);
    let Claimed { lease: cancel_lease, .. } = swept.into_iter().next().unwrap();
    assert!(!store.finish_turn(&scope_a(), &wait_lease, &finish(TurnStatus::Completed)).await.unwrap(), "fenced");
    let answer =
        agentry_core::Message::new(&parked_thread, MessageRole::Assistant, "partial".into(), Some(&waiting.id));
    let end = Finish { status: TurnStatus::Cancelled, error: None, answer: Some((&answer, &[])) };
    assert!(store.finish_turn(&scope_a(), &cancel_lease, &end).await.unwrap());
    assert_eq!(store.get_turn(&scope_a(), &waiting.id).await.unwrap().unwrap().status, TurnStatus::Cancelled);
    let (messages, _) = store.list_messages(&scope_a(), &parked_thread, 10, 0).await.unwrap();
    assert_eq!(messages.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(), ["partial"]);
}

fn settle(status: ApprovalStatus) -> Settlement<'static> {
    Settlement { status, responded_by: "alice", comment: Some("ok"), edited_args: None }
}

async fn approvals_settle_once_and_wake_their_parked_turn(store: &Store) {
    let thread_id = new_thread(store).await;
    let parked = submit(store, &scope_a(), &thread_id).await;
    submit(store, &scope_a(), &thread_id).await;
    let lease = store.claim_queued_turns("rep_a", 30_000, 10).await.unwrap().remove(0).lease;
    let first = approval(&parked, "alice", Timestamp(Timestamp::now().0 + 60_000));
    let second = approval(&parked, "alice", Timestamp(Timestamp::now().0 - 1));
    store.insert_approval(&first).await.unwrap();
    store.insert_approval(&second).await.unwrap();
    assert_eq!(store.park_turn(&lease, "approval", "{\"step\":1}").await.unwrap(), Parked::Parked);
    let stored = store.get_turn(&scope_a(), &parked.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.checkpoint.as_deref()), (TurnStatus::Waiting, Some("{\"step\":1}")));
    assert!(
        store.claim_queued_turns("rep_a", 30_000, 10).await.unwrap().is_empty(),
        "nothing overtakes a waiting turn"
    );

    let overdue = store.overdue_approvals(Timestamp::now()).await.unwrap();
    assert_eq!(overdue.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), [second.id.as_str()]);
    assert!(store.settle_approval(&scope_a(), &second.id, &settle(ApprovalStatus::TimedOut)).await.unwrap());
    assert!(!store.settle_approval(&scope_a(), &second.id, &settle(ApprovalStatus::Approved)).await.unwrap());
    assert!(!store.requeue_waiting_turn(&parked.id).await.unwrap(), "one approval is still pending");
    assert!(!store.settle_approval(&scope_b(), &first.id, &settle(ApprovalStatus::Approved)).await.unwrap());
    let edited = json!({"order": "A2"});
    let with_edit = Settlement { edited_args: Some(&edited), ..settle(ApprovalStatus::Approved) };
    assert!(store.settle_approval(&scope_a(), &first.id, &with_edit).await.unwrap());
    assert!(store.requeue_waiting_turn(&parked.id).await.unwrap());
    assert!(!store.requeue_waiting_turn(&parked.id).await.unwrap(), "queued once");
    let next = store.claim_queued_turns("rep_b", 30_000, 10).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].turn.id, parked.id, "the resumed turn goes before the one queued behind it");
    assert_eq!(next[0].turn.checkpoint.as_deref(), Some("{\"step\":1}"));

    let settled = store.approvals_of_turn(&scope_a(), &parked.id).await.unwrap();
    assert_eq!(settled.len(), 2);
    let first = settled.iter().find(|a| a.id == first.id).unwrap();
    assert_eq!(first.status, ApprovalStatus::Approved);
    assert_eq!(first.edited_args, Some(edited));
    assert!(first.resolved_at.is_some());
    assert!(store.get_approval(&scope_b(), &first.id).await.unwrap().is_none());
}

async fn the_ledger_sums_a_turns_model_calls(store: &Store) {
    let thread_id = new_thread(store).await;
    let t = submit(store, &scope_a(), &thread_id).await;
    assert_eq!(store.turn_usage(&scope_a(), &t.id).await.unwrap(), TokenUsage::default());
    let first = model_call(&t, 1, CallStatus::Completed, 1_234_567);
    store.record_model_call(&first).await.unwrap();
    store.record_model_call(&model_call(&t, 2, CallStatus::Failed, 0)).await.unwrap();
    store.record_model_call(&model_call(&t, 2, CallStatus::Stopped, 9)).await.unwrap();
    let usage = store.turn_usage(&scope_a(), &t.id).await.unwrap();
    assert_eq!(
        usage,
        TokenUsage {
            input_tokens: 300,
            output_tokens: 30,
            cached_input_tokens: 15,
            reasoning_tokens: 3,
            cost: MicroCents(1_234_576)
        }
    );
    assert_eq!(store.turn_usage(&scope_b(), &t.id).await.unwrap(), TokenUsage::default(), "scoped");
    let calls = store.model_calls_of_turn(&scope_a(), &t.id).await.unwrap();
    assert_eq!(calls.len(), 3);
    assert!(calls.contains(&first), "every column round-trips");
    assert!(store.model_calls_of_turn(&scope_b(), &t.id).await.unwrap().is_empty());
}

async fn answers_keep_their_tool_steps(store: &Store) {
    let thread_id = new_thread(store).await;
    let t = submit(store, &scope_a(), &thread_id).await;
    let lease = store.claim_queued_turns("rep_a", 30_000, 1).await.unwrap().remove(0).lease;
    let mut answer = agentry_core::Message::new(&thread_id, MessageRole::Assistant, "It is noon.".into(), Some(&t.id));
    answer.tool_steps = vec![
        ToolStep {
            text: String::new(),
            calls: vec![ToolStepCall {
                id: "call_1".into(),
                name: "current_time".into(),
                arguments: "{}".into(),
                result: "{\"now\":\"12:00\"}".into(),
                is_error: false,
            }],
        },
        ToolStep { text: "It is noon.".into(), calls: Vec::new() },
    ];
    let end = Finish { status: TurnStatus::Completed, error: None, answer: Some((&answer, &[])) };
    assert!(store.finish_turn(&scope_a(), &lease, &end).await.unwrap());
    let history = store.recent_messages(&scope_a(), &thread_id, 10).await.unwrap();
    assert_eq!(history, [answer]);
    assert_eq!(history[0].turn_id.as_deref(), Some(t.id.as_str()));
}

async fn stream_positions_and_socket_sessions_are_shared(store: &Store) {
    let cursor = |seq| StreamCursor {
        scope: scope_a(),
        user_id: "alice".into(),
        thread_id: "thr_1".into(),
        turn_id: "trn_1".into(),
        seq,
    };
    let long_ago = Timestamp(Timestamp::now().0 - 3_600_000);
    store.save_stream_cursors(&[cursor(3)]).await.unwrap();
    store.save_stream_cursors(&[cursor(7)]).await.unwrap();
    assert_eq!(store.stream_cursor(&scope_a(), "alice", "thr_1", long_ago).await.unwrap(), Some(cursor(7)));
    assert_eq!(store.stream_cursor(&scope_a(), "bob", "thr_1", long_ago).await.unwrap(), None);
    let future = Timestamp(Timestamp::now().0 + 60_000);
    assert_eq!(store.stream_cursor(&scope_a(), "alice", "thr_1", future).await.unwrap(), None, "too old");

    let session = SocketSession {
        pid: "pid_1".into(),
        scope: scope_a(),
        user_id: "alice".into(),
        state_json: "{\"streams\":[]}".into(),
        expires_at: Timestamp(Timestamp::now().0 + 60_000),
    };
    store.save_socket_session(&session).await.unwrap();
    assert!(store.take_socket_session("pid_1", &scope_a(), "bob").await.unwrap().is_none(), "only its owner");
    assert!(store.take_socket_session("pid_1", &scope_b(), "alice").await.unwrap().is_none());
    assert_eq!(store.take_socket_session("pid_1", &scope_a(), "alice").await.unwrap(), Some(session.clone()));
    assert!(store.take_socket_session("pid_1", &scope_a(), "alice").await.unwrap().is_none(), "recovered once");
    let expired = SocketSession { pid: "pid_2".into(), expires_at: Timestamp(Timestamp::now().0 - 1), ..session };
    store.save_socket_session(&expired).await.unwrap();
    assert!(store.take_socket_session("pid_2", &scope_a(), "alice").await.unwrap().is_none());
    store.purge_socket_state(future).await.unwrap();
    assert_eq!(store.stream_cursor(&scope_a(), "alice", "thr_1", long_ago).await.unwrap(), None);
}

/// Two replicas claim and finish turns of ten threads as fast as they can: a thread never has
/// two turns running at once, and every turn runs exactly once.
async fn two_replicas_never_run_two_turns_of_a_thread(db: &TestDb) {
    let replicas = [db.store.clone(), db.another_replica().await];
    let mut all = Vec::new();
    for _ in 0..10 {
        let thread_id = new_thread(&db.store).await;
        for _ in 0..5 {
            all.push(submit(&db.store, &scope_a(), &thread_id).await.id);
        }
    }
    let active: Arc<Mutex<HashSet<String>>> = Arc::default();
    let ran: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut tasks = Vec::new();
    for (n, store) in replicas.iter().enumerate() {
        for worker in 0..3 {
            let (store, active, ran) = (store.clone(), active.clone(), ran.clone());
            let owner = format!("rep_{n}");
            tasks.push(tokio::spawn(async move {
                let mut idle = 0;
                while idle < 20 {
                    let claimed = store.claim_queued_turns(&owner, 30_000, 2).await.unwrap();
                    if claimed.is_empty() {
                        idle += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(5 + worker)).await;
                        continue;
                    }
                    idle = 0;
                    for c in claimed {
                        assert!(
                            active.lock().unwrap().insert(c.turn.thread_id.clone()),
                            "two turns of a thread ran at once"
                        );
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        active.lock().unwrap().remove(&c.turn.thread_id);
                        assert!(
                            store.finish_turn(&c.turn.scope, &c.lease, &finish(TurnStatus::Completed)).await.unwrap()
                        );
                        ran.lock().unwrap().push(c.turn.id);
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut ran = ran.lock().unwrap().clone();
    ran.sort();
    all.sort();
    assert_eq!(ran, all, "every turn ran exactly once");
    replicas[1].close().await;
}

/// Three replicas sweep for expired leases at once: the dead replica's turn goes to one of them.
async fn a_turn_is_taken_over_by_exactly_one_replica(db: &TestDb) {
    let thread_id = new_thread(&db.store).await;
    submit(&db.store, &scope_a(), &thread_id).await;
    db.store.claim_queued_turns("rep_dead", -1, 1).await.unwrap();
    let replicas = [db.store.clone(), db.another_replica().await, db.another_replica().await];
    let sweeps = replicas.iter().enumerate().map(|(n, store)| {
        let store = store.clone();
        tokio::spawn(async move { store.take_over_expired_turns(&format!("rep_{n}"), 30_000, 10).await.unwrap().len() })
    });
    let mut taken = 0;
    for sweep in sweeps {
        taken += sweep.await.unwrap();
    }
    assert_eq!(taken, 1);
    for store in &replicas[1..] {
        store.close().await;
    }
}

/// A charge on a window whose span holds no ledger rows (it opens empty).
fn charge(cap: &str, limit: Option<i64>) -> agentry_store::Charge {
    agentry_store::Charge {
        window: agentry_store::WindowRef {
            cap_id: cap.into(),
            window_key: "2026-12-03".into(),
            subject: String::new(),
        },
        limit,
        counts: agentry_store::LedgerSpan {
            scope: scope_a(),
            agent_id: None,
            user_id: None,
            starts_at: Timestamp(0),
            ends_at: Timestamp(1),
        },
    }
}

fn day_cap(id: &str, scope_type: agentry_core::CapScope, target: &str) -> agentry_core::BudgetCap {
    agentry_core::BudgetCap {
        id: id.into(),
        scope: scope_a(),
        scope_type,
        target_id: target.into(),
        period: agentry_core::Period::Day,
        limit: MicroCents(110),
        turns_limit: Some(2),
        alert_thresholds: vec![50],
        alert_webhook_url: None,
        alert_emails: Vec::new(),
        enabled: true,
        override_until: None,
        override_by: None,
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    }
}

/// A cap created in the middle of its window counts what the ledger already holds for its
/// subject in that window — not other scopes, agents, users or windows.
async fn a_window_opens_with_what_the_ledger_spent_in_its_span(store: &Store) {
    use agentry_core::CapScope;
    use agentry_store::Charge;
    let thread_id = new_thread(store).await;
    let alice = submit(store, &scope_a(), &thread_id).await;
    store.record_model_call(&model_call(&alice, 1, CallStatus::Completed, 100)).await.unwrap();
    let mut two_days_ago = model_call(&alice, 2, CallStatus::Completed, 1000);
    two_days_ago.started_at = Timestamp(Timestamp::now().0 - 2 * 86_400_000);
    store.record_model_call(&two_days_ago).await.unwrap();
    let bob = Turn { user_id: "bob".into(), agent_id: "sales".into(), ..turn(&scope_a(), &thread_id, None) };
    store.record_model_call(&model_call(&bob, 1, CallStatus::Completed, 7)).await.unwrap();
    let elsewhere = turn(&scope_b(), &thread_id, None);
    store.record_model_call(&model_call(&elsewhere, 1, CallStatus::Completed, 500)).await.unwrap();

    let now = Timestamp::now();
    let scope_cap = day_cap("cap_s", CapScope::Scope, "");
    let agent_cap = day_cap("cap_a", CapScope::Agent, "support");
    let each_user = day_cap("cap_u", CapScope::User, "*");
    let charges = [
        Charge::new(&scope_cap, String::new(), now, Some(110)),
        Charge::new(&agent_cap, String::new(), now, Some(110)),
        Charge::new(&each_user, "bob".into(), now, Some(110)),
    ];
    let counted = |states: Vec<agentry_store::WindowState>| -> Vec<(i64, i64, i64)> {
        states.iter().map(|s| (s.spent.0, s.reserved.0, s.turns)).collect()
    };
    let expected = vec![(107, 0, 2), (100, 0, 1), (7, 0, 1)];
    assert_eq!(counted(store.budget_windows(&charges).await.unwrap()), expected, "read before opening");
    // Opening the scope window: 107 µ¢ spent, so 5 more do not fit 110, 3 do.
    let lease = store.claim_queued_turns("rep_a", 30_000, 1).await.unwrap().remove(0).lease;
    let too_much = reservation(&alice, &lease, 5, vec![charges[0].clone()]);
    assert_eq!(store.reserve_budget(&too_much).await.unwrap(), Err("cap_s".to_owned()));
    let fits = reservation(&alice, &lease, 3, vec![charges[0].clone()]);
    assert_eq!(store.reserve_budget(&fits).await.unwrap(), Ok(()));
    // The agent's window opens with one turn counted: one more fits a limit of two.
    let turns = vec![Charge::new(&agent_cap, String::new(), now, Some(2))];
    assert_eq!(store.count_turn(&turns).await.unwrap(), Ok(()));
    assert_eq!(store.count_turn(&turns).await.unwrap(), Err("cap_a".to_owned()));
    let expected = vec![(107, 3, 2), (100, 0, 2), (7, 0, 1)];
    assert_eq!(counted(store.budget_windows(&charges).await.unwrap()), expected, "opened once");
}

fn reservation(
    turn: &Turn,
    lease: &Lease,
    amount: i64,
    charges: Vec<agentry_store::Charge>,
) -> agentry_store::Reservation {
    agentry_store::Reservation {
        id: new_id(prefix::MODEL_CALL),
        turn_id: turn.id.clone(),
        lease_token: lease.token,
        amount: MicroCents(amount),
        count_turn: true,
        charges,
    }
}

async fn budget_windows_reserve_settle_and_release_exactly_once(store: &Store) {
    let thread_id = new_thread(store).await;
    let t = submit(store, &scope_a(), &thread_id).await;
    let lease = store.claim_queued_turns("rep_a", 30_000, 1).await.unwrap().remove(0).lease;
    let window = charge("cap_1", Some(100));
    // Two reservations fit 100 µ¢; a third does not, and takes nothing.
    let first = reservation(&t, &lease, 60, vec![charge("cap_1", Some(100)), charge("cap_2", None)]);
    assert_eq!(store.reserve_budget(&first).await.unwrap(), Ok(()));
    let second = reservation(&t, &lease, 40, vec![charge("cap_1", Some(100))]);
    assert_eq!(store.reserve_budget(&second).await.unwrap(), Ok(()));
    let third = reservation(&t, &lease, 1, vec![charge("cap_2", None), charge("cap_1", Some(100))]);
    assert_eq!(store.reserve_budget(&third).await.unwrap(), Err("cap_1".to_owned()));
    let states = store.budget_windows(std::slice::from_ref(&window)).await.unwrap();
    assert_eq!((states[0].reserved, states[0].spent), (MicroCents(100), MicroCents(0)));
    let cap_2 = store.budget_windows(&[charge("cap_2", None)]).await.unwrap();
    assert_eq!(cap_2[0].reserved, MicroCents(60), "the refused reservation took nothing anywhere");
    // Settling swaps the reservation for the real cost, once, and reports crossed thresholds once.
    let mut call = model_call(&t, 1, CallStatus::Completed, 55);
    call.id = first.id.clone();
    let thresholds = vec![("cap_1".to_owned(), vec![50, 100])];
    let crossed = store.settle_reservation(&first, &call, &thresholds).await.unwrap();
    assert_eq!(crossed.iter().map(|c| c.threshold).collect::<Vec<_>>(), [50]);
    assert!(store.settle_reservation(&first, &call, &thresholds).await.unwrap().is_empty(), "settled once");
    let states = store.budget_windows(std::slice::from_ref(&window)).await.unwrap();
    assert_eq!((states[0].spent, states[0].reserved, states[0].turns), (MicroCents(55), MicroCents(40), 1));
    assert_eq!(store.turn_usage(&scope_a(), &t.id).await.unwrap().cost, MicroCents(55), "one ledger row");
    // The turn dies: its remaining reservation is released by the sweep.
    assert_eq!(store.release_stale_reservations().await.unwrap(), 0, "the turn still runs");
    store.take_over_expired_turns("rep_b", 30_000, 1).await.unwrap();
    store.release_lease(&lease).await.unwrap();
    let taken = store.take_over_expired_turns("rep_b", 30_000, 1).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(store.release_stale_reservations().await.unwrap(), 1, "the old lease's reservation goes");
    let states = store.budget_windows(&[window]).await.unwrap();
    assert_eq!((states[0].spent, states[0].reserved), (MicroCents(55), MicroCents(0)));
    // Turn limits: one turn fits a limit of one.
    let turns = vec![charge("cap_3", Some(1))];
    assert_eq!(store.count_turn(&turns).await.unwrap(), Ok(()));
    assert_eq!(store.count_turn(&turns).await.unwrap(), Err("cap_3".to_owned()));
}

/// Two replicas reserve against one window at once: the limit holds to the micro-cent.
async fn concurrent_reservations_never_overshoot(db: &TestDb) {
    let thread_id = new_thread(&db.store).await;
    let t = submit(&db.store, &scope_a(), &thread_id).await;
    let lease = db.store.claim_queued_turns("rep_a", 30_000, 1).await.unwrap().remove(0).lease;
    let replicas = [db.store.clone(), db.another_replica().await];
    let mut tasks = Vec::new();
    for n in 0..40 {
        let store = replicas[n % 2].clone();
        let held = reservation(&t, &lease, 7, vec![charge("cap_c", Some(100))]);
        tasks.push(tokio::spawn(async move { store.reserve_budget(&held).await.unwrap().is_ok() }));
    }
    let mut held = 0;
    for task in tasks {
        held += usize::from(task.await.unwrap());
    }
    assert_eq!(held, 14, "100 µ¢ hold fourteen reservations of 7");
    let states = db.store.budget_windows(&[charge("cap_c", None)]).await.unwrap();
    assert_eq!(states[0].reserved, MicroCents(98));
    replicas[1].close().await;
}
