//! Background tasks on SQLite and Postgres: runs as a fenced queue (claims, concurrency limits,
//! retries, crashes, ttl, cancel), idempotency, batches and schedules that fire each occurrence
//! once — with replicas' stores racing on one database where it matters.

use std::collections::HashSet;

use agentry_core::task::{CatchUp, Overlap, RetryPolicy, RunStatus, TaskSpec};
use agentry_core::{Scope, Timestamp, id::new_id, id::prefix};
use agentry_store::{AttemptEnd, NewRun, RunCancel, RunFilter, Store, StoredSchedule};
use serde_json::json;

mod common;
use common::*;

suite!(
    tasks_apply_per_scope_and_report_changes,
    runs_are_claimed_once_with_an_attempt_each,
    idempotency_keys_return_the_first_run,
    a_failed_attempt_is_retried_until_attempts_run_out,
    a_lost_lease_crashes_the_attempt_and_queues_the_run_again,
    delayed_runs_wait_and_stale_ones_expire,
    cancel_ends_waiting_runs_and_marks_executing_ones,
    batches_count_their_runs_by_status,
    a_schedule_occurrence_is_fired_once,
);

replica_suite!(concurrency_limits_hold_across_replicas, racing_replicas_fire_each_occurrence_once);

fn new_run(scope: &Scope, task: &str) -> NewRun {
    NewRun {
        id: new_id(prefix::RUN),
        scope: scope.clone(),
        task_id: task.to_owned(),
        payload: json!({"n": 1}),
        metadata: json!({}),
        tags: vec!["t".into()],
        idempotency_key: None,
        concurrency_key: String::new(),
        concurrency_limit: None,
        max_attempts: 3,
        retry: RetryPolicy { min_delay_ms: 0, max_delay_ms: 0, factor: 1.0 },
        triggered_by: "operator".into(),
        user_id: None,
        batch_id: None,
        schedule_id: None,
        replay_of: None,
        delay_ms: 0,
        ttl_ms: None,
        created_at: Timestamp::now(),
    }
}

async fn trigger(store: &Store, run: NewRun) -> agentry_store::StoredRun {
    store.trigger_runs(&[run]).await.unwrap().remove(0).0
}

async fn tasks_apply_per_scope_and_report_changes(store: &Store) {
    let spec: TaskSpec = toml::from_str("id = \"ping\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/x\"").unwrap();
    assert!(store.apply_task(&scope_a(), &spec).await.unwrap());
    assert!(!store.apply_task(&scope_a(), &spec).await.unwrap(), "the same spec changes nothing");
    let changed = TaskSpec { max_attempts: Some(5), ..spec.clone() };
    assert!(store.apply_task(&scope_a(), &changed).await.unwrap());
    assert_eq!(store.get_task(&scope_a(), "ping").await.unwrap().unwrap().spec.max_attempts, Some(5));
    assert!(store.get_task(&scope_b(), "ping").await.unwrap().is_none(), "another scope has no such task");
    assert_eq!(store.list_tasks(&scope_a()).await.unwrap().len(), 1);
    assert!(store.list_tasks(&scope_b()).await.unwrap().is_empty());
}

async fn runs_are_claimed_once_with_an_attempt_each(store: &Store) {
    let first = trigger(store, new_run(&scope_a(), "ping")).await;
    let second = trigger(store, new_run(&scope_b(), "ping")).await;
    assert_eq!((first.status, first.attempt_count), (RunStatus::Queued, 0));
    let claimed = store.claim_runs("rep_a", 30_000, 10).await.unwrap();
    let ids: HashSet<_> = claimed.iter().map(|c| c.run.id.clone()).collect();
    assert_eq!(ids, HashSet::from([first.id.clone(), second.id.clone()]));
    assert!(store.claim_runs("rep_b", 30_000, 10).await.unwrap().is_empty(), "claimed once");
    let mine = claimed.iter().find(|c| c.run.id == first.id).unwrap();
    assert_eq!((mine.run.status, mine.lease.attempt, mine.lease.token), (RunStatus::Executing, 1, 1));
    assert!(mine.run.started_at.is_some());
    let stale = agentry_store::RunLease { token: 0, ..mine.lease.clone() };
    assert!(store.finish_attempt(&stale, &AttemptEnd::Completed(json!(1))).await.unwrap().is_none(), "fenced");
    let done = store.finish_attempt(&mine.lease, &AttemptEnd::Completed(json!({"ok": true}))).await.unwrap().unwrap();
    assert_eq!((done.status, done.output.clone()), (RunStatus::Completed, Some(json!({"ok": true}))));
    assert!(done.finished_at.is_some());
    let attempts = store.run_attempts(&first.id).await.unwrap();
    assert_eq!(attempts.iter().map(|a| (a.number, a.status)).collect::<Vec<_>>(), [(1, RunStatus::Completed)]);
    assert!(store.get_run(&scope_b(), &first.id, None).await.unwrap().is_none(), "foreign ids look missing");
    let listed = store.list_runs(&scope_a(), &RunFilter { limit: 10, ..RunFilter::default() }).await.unwrap();
    assert_eq!(listed.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [first.id.as_str()]);
    let filter = RunFilter { statuses: vec![RunStatus::Queued], limit: 10, ..RunFilter::default() };
    assert!(store.list_runs(&scope_a(), &filter).await.unwrap().is_empty());
}

async fn idempotency_keys_return_the_first_run(store: &Store) {
    let keyed = NewRun { idempotency_key: Some("k".into()), ..new_run(&scope_a(), "ping") };
    let again = NewRun { idempotency_key: Some("k".into()), ..new_run(&scope_a(), "ping") };
    let other_task = NewRun { idempotency_key: Some("k".into()), ..new_run(&scope_a(), "pong") };
    let out = store.trigger_runs(&[keyed.clone(), again, other_task.clone()]).await.unwrap();
    assert_eq!(out[0].0.id, keyed.id);
    assert!(out[0].1);
    assert_eq!((out[1].0.id.as_str(), out[1].1), (keyed.id.as_str(), false), "the same key returns the first run");
    assert_eq!((out[2].0.id.as_str(), out[2].1), (other_task.id.as_str(), true), "keys are per task");
}

async fn a_failed_attempt_is_retried_until_attempts_run_out(store: &Store) {
    let run = trigger(store, NewRun { max_attempts: 2, ..new_run(&scope_a(), "ping") }).await;
    let one = store.claim_runs("rep_a", 30_000, 10).await.unwrap().remove(0);
    let failed = AttemptEnd::Failed { error: "HTTP 500".into(), retry_in_ms: Some(0) };
    let after = store.finish_attempt(&one.lease, &failed).await.unwrap().unwrap();
    assert_eq!((after.status, after.error.as_deref(), after.finished_at), (RunStatus::Queued, Some("HTTP 500"), None));
    let two = store.claim_runs("rep_b", 30_000, 10).await.unwrap().remove(0);
    assert_eq!((two.run.id.as_str(), two.lease.attempt), (run.id.as_str(), 2));
    let last = store.finish_attempt(&two.lease, &failed).await.unwrap().unwrap();
    assert_eq!(last.status, RunStatus::Failed, "no attempts left");
    let attempts = store.run_attempts(&run.id).await.unwrap();
    assert_eq!(
        attempts.iter().map(|a| (a.number, a.status, a.replica.as_str())).collect::<Vec<_>>(),
        [(1, RunStatus::Failed, "rep_a"), (2, RunStatus::Failed, "rep_b")]
    );
    // A failure that must not be retried fails at once.
    trigger(store, new_run(&scope_a(), "ping")).await;
    let c = store.claim_runs("rep_a", 30_000, 10).await.unwrap().remove(0);
    let end = AttemptEnd::Failed { error: "bad payload".into(), retry_in_ms: None };
    assert_eq!(store.finish_attempt(&c.lease, &end).await.unwrap().unwrap().status, RunStatus::Failed);
}

async fn a_lost_lease_crashes_the_attempt_and_queues_the_run_again(store: &Store) {
    let run = trigger(store, NewRun { max_attempts: 2, ..new_run(&scope_a(), "ping") }).await;
    let dead = store.claim_runs("rep_dead", -1, 10).await.unwrap().remove(0);
    assert_eq!(store.renew_run_leases("rep_other", 30_000, &[&run.id]).await.unwrap().len(), 0, "not its run");
    let swept = store.sweep_runs().await.unwrap();
    assert_eq!(
        swept.crashed.iter().map(|r| (r.id.as_str(), r.status)).collect::<Vec<_>>(),
        [(run.id.as_str(), RunStatus::Queued)]
    );
    assert!(store.sweep_runs().await.unwrap().crashed.is_empty(), "swept once");
    assert!(store.finish_attempt(&dead.lease, &AttemptEnd::Completed(json!(1))).await.unwrap().is_none(), "fenced");
    assert!(store.run_lease_lost(&run.id, dead.lease.token).await.unwrap());
    let alive = store.claim_runs("rep_alive", -1, 10).await.unwrap().remove(0);
    assert_eq!(alive.lease.attempt, 2);
    let swept = store.sweep_runs().await.unwrap();
    assert_eq!(swept.crashed[0].status, RunStatus::Crashed, "the last attempt crashed too");
    let attempts = store.run_attempts(&run.id).await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.status).collect::<Vec<_>>(), [RunStatus::Crashed, RunStatus::Crashed]);
    // A holder renewing in time keeps its run.
    let kept = trigger(store, new_run(&scope_a(), "ping")).await;
    let slow = store.claim_runs("rep_slow", -1, 10).await.unwrap().remove(0);
    assert_eq!(
        store.renew_run_leases("rep_slow", 30_000, &[&kept.id]).await.unwrap(),
        [(kept.id.clone(), slow.lease.token, false)]
    );
    assert!(store.sweep_runs().await.unwrap().crashed.is_empty());
}

async fn delayed_runs_wait_and_stale_ones_expire(store: &Store) {
    let delayed = trigger(store, NewRun { delay_ms: 60_000, ..new_run(&scope_a(), "ping") }).await;
    assert_eq!(delayed.status, RunStatus::Delayed);
    assert!(delayed.available_at.0 >= Timestamp::now().0 + 50_000);
    let stale = trigger(store, NewRun { delay_ms: 0, ttl_ms: Some(-1), ..new_run(&scope_a(), "ping") }).await;
    assert!(store.claim_runs("rep_a", 30_000, 10).await.unwrap().is_empty(), "one waits, one is past its ttl");
    let swept = store.sweep_runs().await.unwrap();
    assert_eq!(
        swept.expired.iter().map(|r| (r.id.as_str(), r.status)).collect::<Vec<_>>(),
        [(stale.id.as_str(), RunStatus::Expired)]
    );
}

async fn cancel_ends_waiting_runs_and_marks_executing_ones(store: &Store) {
    let waiting = trigger(store, NewRun { delay_ms: 60_000, ..new_run(&scope_a(), "ping") }).await;
    let running = trigger(store, new_run(&scope_a(), "ping")).await;
    let claimed = store.claim_runs("rep_a", 30_000, 10).await.unwrap().remove(0);
    assert_eq!(store.cancel_run(&scope_b(), &waiting.id, None).await.unwrap(), None, "foreign ids look missing");
    assert_eq!(store.cancel_run(&scope_a(), &waiting.id, Some("bob")).await.unwrap(), None, "not bob's run");
    assert_eq!(store.cancel_run(&scope_a(), &waiting.id, None).await.unwrap(), Some(RunCancel::Canceled));
    assert_eq!(store.get_run(&scope_a(), &waiting.id, None).await.unwrap().unwrap().status, RunStatus::Canceled);
    let asked = store.cancel_run(&scope_a(), &running.id, None).await.unwrap();
    assert_eq!(asked, Some(RunCancel::Requested { owner: Some("rep_a".into()) }));
    assert!(store.renew_run_leases("rep_a", 30_000, &[&running.id]).await.unwrap()[0].2, "the owner hears it");
    let ended = store.finish_attempt(&claimed.lease, &AttemptEnd::Canceled).await.unwrap().unwrap();
    assert_eq!(ended.status, RunStatus::Canceled);
    assert_eq!(
        store.cancel_run(&scope_a(), &running.id, None).await.unwrap(),
        Some(RunCancel::AlreadyFinal(RunStatus::Canceled))
    );
}

async fn batches_count_their_runs_by_status(store: &Store) {
    let batch_id = new_id(prefix::BATCH);
    let runs: Vec<NewRun> = (0..150)
        .map(|i| NewRun { batch_id: Some(batch_id.clone()), payload: json!({"i": i}), ..new_run(&scope_a(), "ping") })
        .collect();
    store.create_batch(&scope_a(), &batch_id, "ping", &runs).await.unwrap();
    let batch = store.get_batch(&scope_a(), &batch_id, None).await.unwrap().unwrap();
    assert_eq!((batch.run_ids.len(), batch.status()), (150, "PENDING"));
    assert!(store.get_batch(&scope_b(), &batch_id, None).await.unwrap().is_none());
    for claimed in store.claim_runs("rep_a", 30_000, 200).await.unwrap() {
        store.finish_attempt(&claimed.lease, &AttemptEnd::Completed(json!(null))).await.unwrap();
    }
    let batch = store.get_batch(&scope_a(), &batch_id, None).await.unwrap().unwrap();
    assert_eq!(batch.status(), "COMPLETED");
    assert!(batch.counts.contains(&(RunStatus::Completed, 150)));
}

fn schedule(scope: &Scope, next: Timestamp) -> StoredSchedule {
    StoredSchedule {
        id: new_id(prefix::SCHEDULE),
        scope: scope.clone(),
        task_id: "ping".into(),
        cron: "* * * * * *".into(),
        timezone: "UTC".into(),
        payload: Some(json!({"from": "schedule"})),
        deduplication_key: None,
        overlap: Overlap::Allow,
        catch_up: CatchUp::Latest,
        active: true,
        next_run_at: Some(next),
        last_run_at: None,
        created_by: "operator".into(),
        created_at: Timestamp::now(),
        updated_at: Timestamp::now(),
    }
}

async fn a_schedule_occurrence_is_fired_once(store: &Store) {
    let due = Timestamp(Timestamp::now().0 - 1_000);
    let s = store.save_schedule(&schedule(&scope_a(), due)).await.unwrap();
    let keyed = store
        .save_schedule(&StoredSchedule { deduplication_key: Some("daily".into()), ..schedule(&scope_a(), due) })
        .await
        .unwrap();
    let again = StoredSchedule {
        deduplication_key: Some("daily".into()),
        cron: "0 9 * * *".into(),
        ..schedule(&scope_a(), due)
    };
    let updated = store.save_schedule(&again).await.unwrap();
    assert_eq!((updated.id.as_str(), updated.cron.as_str()), (keyed.id.as_str(), "0 9 * * *"), "one schedule per key");
    assert_eq!(store.due_schedules(Timestamp::now(), 10).await.unwrap().len(), 2);
    let run = NewRun {
        schedule_id: Some(s.id.clone()),
        idempotency_key: Some(format!("{}:{}", s.id, due.0)),
        ..new_run(&scope_a(), "ping")
    };
    let next = Timestamp(due.0 + 1_000);
    assert!(store.fire_schedule(&s.id, due, Some(next), Some((due, &run))).await.unwrap());
    assert!(!store.fire_schedule(&s.id, due, Some(next), Some((due, &run))).await.unwrap(), "fired once");
    let fired = store.get_schedule(&scope_a(), &s.id).await.unwrap().unwrap();
    assert_eq!((fired.next_run_at, fired.last_run_at), (Some(next), Some(due)));
    assert!(store.schedule_has_unfinished_run(&s.id).await.unwrap());
    let off = store.set_schedule_active(&scope_a(), &s.id, None).await.unwrap().unwrap();
    assert!(!off.active && off.next_run_at.is_none());
    assert!(store.set_schedule_active(&scope_b(), &s.id, None).await.unwrap().is_none());
    assert!(!store.delete_schedule(&scope_b(), &s.id).await.unwrap());
    assert!(store.delete_schedule(&scope_a(), &s.id).await.unwrap());
    assert_eq!(store.list_schedules(&scope_a()).await.unwrap().len(), 1);
}

async fn concurrency_limits_hold_across_replicas(db: &TestDb) {
    let replicas = [db.store.clone(), db.another_replica().await];
    for i in 0..20 {
        let key = if i % 2 == 0 { "even" } else { "odd" };
        let run = NewRun { concurrency_key: key.into(), concurrency_limit: Some(2), ..new_run(&scope_a(), "ping") };
        trigger(&db.store, run).await;
    }
    let mut tasks = Vec::new();
    for n in 0..8 {
        let store = replicas[n % 2].clone();
        tasks.push(tokio::spawn(async move { store.claim_runs(&format!("rep_{n}"), 30_000, 5).await.unwrap() }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    let mut per_key = std::collections::HashMap::new();
    for c in &claimed {
        *per_key.entry(c.run.concurrency_key.clone()).or_insert(0) += 1;
    }
    assert_eq!(per_key.get("even"), Some(&2), "{per_key:?}");
    assert_eq!(per_key.get("odd"), Some(&2), "{per_key:?}");
    store_done(&claimed[0], &db.store).await;
    assert_eq!(db.store.claim_runs("rep_x", 30_000, 10).await.unwrap().len(), 1, "a slot freed, one more runs");
    replicas[1].close().await;
}

async fn store_done(claimed: &agentry_store::ClaimedRun, store: &Store) {
    store.finish_attempt(&claimed.lease, &AttemptEnd::Completed(json!(null))).await.unwrap().unwrap();
}

async fn racing_replicas_fire_each_occurrence_once(db: &TestDb) {
    let replicas = [db.store.clone(), db.another_replica().await];
    let due = Timestamp(Timestamp::now().0 - 1_000);
    let s = db.store.save_schedule(&schedule(&scope_a(), due)).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..10 {
        let store = replicas[n % 2].clone();
        let id = s.id.clone();
        tasks.push(tokio::spawn(async move {
            let run = NewRun { schedule_id: Some(id.clone()), ..new_run(&scope_a(), "ping") };
            store.fire_schedule(&id, due, Some(Timestamp(due.0 + 1_000)), Some((due, &run))).await.unwrap()
        }));
    }
    let mut fired = 0;
    for t in tasks {
        fired += usize::from(t.await.unwrap());
    }
    assert_eq!(fired, 1);
    let filter = RunFilter { schedule_id: Some(s.id.clone()), limit: 100, ..RunFilter::default() };
    assert_eq!(db.store.list_runs(&scope_a(), &filter).await.unwrap().len(), 1);
    replicas[1].close().await;
}
