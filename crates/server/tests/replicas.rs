//! Several replicas on one fresh Postgres database, in one process (each on its own runtime, so
//! one can die at once): one turn at a time per thread across replicas, cancel anywhere, sockets
//! that follow turns running elsewhere, approvals heard and resolved on another replica, and the
//! turns of a replica that died resumed or ended with their cause.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentry_core::tool::{HttpMethod, HttpToolSpec};
use agentry_core::{AgentSpec, Script, ScriptStep, ScriptToolCall, TurnStatus};
use common::*;
use serde_json::{Value, json};

fn slow(id: &str, delay_ms: u64) -> AgentSpec {
    AgentSpec {
        script: Some(Script { token_delay_ms: delay_ms, steps: Vec::new() }),
        ..AgentSpec::new(id, id, "scripted:echo", "")
    }
}

fn words(n: usize) -> String {
    (1..=n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
}

/// An agent that calls `hit` (an HTTP tool on `url`), then answers slowly in a second step.
fn tooler(id: &str, url: &str, requires_approval: bool, answer_words: usize, delay_ms: u64) -> AgentSpec {
    AgentSpec {
        http_tools: vec![HttpToolSpec {
            name: "hit".into(),
            description: "Counts a hit".into(),
            method: HttpMethod::Get,
            url: url.into(),
            headers: Default::default(),
            parameters: json!({"type": "object"}),
            timeout_secs: None,
            requires_approval,
            approval_timeout_secs: None,
        }],
        script: Some(Script {
            token_delay_ms: delay_ms,
            steps: vec![
                ScriptStep {
                    text: Some("Checking.".into()),
                    tool_calls: vec![ScriptToolCall { name: "hit".into(), arguments: json!({}) }],
                    ..Default::default()
                },
                ScriptStep { text: Some(words(answer_words)), ..Default::default() },
            ],
        }),
        ..AgentSpec::new(id, id, "scripted:steps", "")
    }
}

/// A loopback endpoint counting its hits.
async fn hit_counter() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().route(
        "/hit",
        axum::routing::get(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({"ok": true}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hit", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// Two (or three) replicas on a fresh database, with `agents` applied.
async fn replicas(n: usize, agents: &[AgentSpec]) -> (PgDb, Vec<Replica>) {
    let db = PgDb::create().await;
    let replicas: Vec<Replica> = (0..n).map(|_| Replica::start(replica_config(&db))).collect();
    let store = db.store().await;
    apply_agents(&store, agents).await;
    store.close().await;
    (db, replicas)
}

async fn finish(db: PgDb, mut replicas: Vec<Replica>) {
    for replica in &mut replicas {
        replica.stop();
    }
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_sent_at_once_through_two_replicas_run_one_after_the_other() {
    let (db, reps) = replicas(2, &[slow("slow", 20)]).await;
    for _ in 0..5 {
        let thread_id = new_thread(&reps[0].base(), "alice", "slow").await;
        let user = token("alice");
        let path = format!("/threads/{thread_id}/messages");
        let (base_a, base_b) = (reps[0].base(), reps[1].base());
        let (a, b) = tokio::join!(
            call(&base_a, Some(&user), "POST", &path, Some(json!({"message": "one two three four"}))),
            call(&base_b, Some(&user), "POST", &path, Some(json!({"message": "five six seven eight"}))),
        );
        assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
        assert_eq!((a.1["status"].as_str(), b.1["status"].as_str()), (Some("completed"), Some("completed")));
        let (_, messages) =
            call(&reps[1].base(), Some(&user), "GET", &format!("/threads/{thread_id}/messages"), None).await;
        let roles: Vec<&str> =
            messages["messages"].as_array().unwrap().iter().filter_map(|m| m["role"].as_str()).collect();
        assert_eq!(roles, ["user", "assistant", "user", "assistant"], "{messages}");
        let contents: Vec<&str> =
            messages["messages"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
        assert_eq!(contents[0], contents[1], "each answer follows its own message");
        assert_eq!(contents[2], contents[3]);
    }
    finish(db, reps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_via_one_replica_stops_a_turn_running_on_another_within_a_second() {
    let (db, reps) = replicas(2, &[slow("slow", 50)]).await;
    let mut sock = Sock::user(reps[0].addr, "alice").await;
    for _ in 0..3 {
        let thread_id = new_thread(&reps[0].base(), "alice", "slow").await;
        sock.emit("message", json!({"message": words(200), "threadId": thread_id})).await;
        let mut tokens = 0;
        let turn_id = loop {
            let event = sock.agent_event(Duration::from_secs(10)).await.unwrap();
            if event["type"] == "token" {
                tokens += 1;
                if tokens == 3 {
                    break event["turnId"].as_str().unwrap().to_owned();
                }
            }
        };
        let asked = Instant::now();
        let (status, body) =
            call(&reps[1].base(), Some(&token("alice")), "POST", &format!("/threads/{thread_id}/cancel"), None).await;
        assert_eq!((status, &body["cancelled"]), (200, &json!(true)), "{body}");
        let rest = sock.turn_until_done(&turn_id, Duration::from_secs(5)).await;
        let elapsed = asked.elapsed();
        let done = rest.last().unwrap();
        assert_eq!((done["status"].as_str(), done["stopped"].as_bool()), (Some("cancelled"), Some(true)));
        assert!(elapsed < Duration::from_secs(1), "done came {elapsed:?} after the cancel");
        assert!(text(&rest).split_whitespace().count() < 150, "the turn stopped early");
    }
    finish(db, reps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_on_one_replica_follow_turns_running_on_another() {
    let (db, reps) = replicas(2, &[slow("slow", 10)]).await;
    let thread_id = new_thread(&reps[0].base(), "alice", "slow").await;
    let mut watcher = Sock::user(reps[1].addr, "alice").await;
    watcher.emit("join_thread", json!({"threadId": thread_id})).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut sender = Sock::user(reps[0].addr, "alice").await;
    sender.emit("message", json!({"message": words(30), "threadId": thread_id})).await;
    let first = sender.agent_event(Duration::from_secs(10)).await.unwrap();
    let turn_id = first["turnId"].as_str().unwrap().to_owned();
    let sent = sender.turn_until_done(&turn_id, Duration::from_secs(10)).await;
    let heard = watcher.turn_until_done(&turn_id, Duration::from_secs(10)).await;
    assert_gapless(&heard);
    assert_eq!(text(&heard), words(30));
    assert_eq!(heard.len(), sent.len() + 1, "the joined socket heard the whole turn");

    // A resume on the other replica replays the turn and ends with its done.
    let mut resumer = Sock::user(reps[1].addr, "alice").await;
    resumer.emit("resume_stream", json!({"threadId": thread_id, "lastSeq": 0})).await;
    let replayed = resumer.turn_until_done(&turn_id, Duration::from_secs(10)).await;
    assert_gapless(&replayed);
    finish(db, reps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_raised_on_one_replica_is_heard_and_resolved_on_another() {
    let (url, hits) = hit_counter().await;
    let (db, reps) = replicas(2, &[tooler("approver", &url, true, 3, 0)]).await;
    let mut operator = Sock::operator(reps[1].addr).await;
    let thread_id = new_thread(&reps[0].base(), "alice", "approver").await;
    let mut user = Sock::user(reps[0].addr, "alice").await;
    user.emit("message", json!({"message": "refund please", "threadId": thread_id})).await;
    let needed = loop {
        let event = operator.agent_event(Duration::from_secs(10)).await.expect("approval_needed on the other replica");
        if event["type"] == "approval_needed" {
            break event;
        }
    };
    let approval_id = needed["approvalId"].as_str().unwrap();
    let turn_id = needed["turnId"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &reps[1].base(),
        None,
        "POST",
        &format!("/approvals/{approval_id}/resolve"),
        Some(json!({"approved": true, "comment": "fine"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let events = user.turn_until_done(&turn_id, Duration::from_secs(10)).await;
    assert_eq!(events.last().unwrap()["status"], "completed");
    assert!(kinds(&events).contains(&"approval_resolved".to_owned()));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let resolved = loop {
        let event = operator.agent_event(Duration::from_secs(10)).await.expect("approval_resolved");
        if event["type"] == "approval_resolved" {
            break event;
        }
    };
    assert_eq!(resolved["approvalId"], approval_id);
    finish(db, reps).await;
}

/// The replica running a turn now.
async fn owner_of(store: &agentry_store::Store, reps: &[Replica], turn_id: &str) -> usize {
    for _ in 0..100 {
        for (n, replica) in reps.iter().enumerate() {
            if store.running_turns_of(&replica.id).await.unwrap().iter().any(|t| t.id == turn_id) {
                return n;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{turn_id} runs nowhere")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_replicas_turns_are_resumed_from_their_checkpoint_or_ended_with_their_cause() {
    let (url, hits) = hit_counter().await;
    let agents = [tooler("tooler", &url, false, 30, 100), slow("slow", 100)];
    // Three replicas: whichever run the two turns die, another one is left to take them over.
    let (db, mut reps) = replicas(3, &agents).await;
    let with_tools = new_thread(&reps[0].base(), "alice", "tooler").await;
    let first_step = new_thread(&reps[0].base(), "alice", "slow").await;
    let mut sock = Sock::user(reps[0].addr, "alice").await;
    sock.emit("message", json!({"message": "go", "threadId": with_tools})).await;
    let mut resumable = None;
    let mut tokens_after_tool = 0;
    while tokens_after_tool < 3 {
        let event = sock.agent_event(Duration::from_secs(10)).await.unwrap();
        resumable.get_or_insert_with(|| event["turnId"].as_str().unwrap().to_owned());
        if event["type"] == "tool_result" || (tokens_after_tool > 0 && event["type"] == "token") {
            tokens_after_tool += 1;
        }
    }
    let resumable = resumable.unwrap();
    sock.emit("message", json!({"message": words(50), "threadId": first_step})).await;
    let lost = loop {
        let event = sock.agent_event(Duration::from_secs(10)).await.unwrap();
        if event["type"] == "token" && event["threadId"] == first_step.as_str() {
            break event["turnId"].as_str().unwrap().to_owned();
        }
    };
    let store = db.store().await;
    let owners = [owner_of(&store, &reps, &resumable).await, owner_of(&store, &reps, &lost).await];
    let died = Instant::now();
    for owner in owners {
        reps[owner].crash();
    }
    let survivor = (0..3).find(|n| !owners.contains(n)).unwrap();

    let mut follower = Sock::user(reps[survivor].addr, "alice").await;
    follower.emit("resume_stream", json!({"threadId": with_tools, "lastSeq": 0})).await;
    let resumed = follower.turn_until_done(&resumable, Duration::from_secs(15)).await;
    follower.emit("resume_stream", json!({"threadId": first_step, "lastSeq": 0})).await;
    let ended = follower.turn_until_done(&lost, Duration::from_secs(15)).await;
    // The lost turn ends within the lease plus the sweep; the resumed one also ran its last step.
    let lease = Duration::from_secs(2);
    assert!(died.elapsed() < lease + Duration::from_secs(5) + Duration::from_secs(4), "took {:?}", died.elapsed());

    assert_gapless(&resumed);
    assert_eq!(resumed.last().unwrap()["status"], "completed", "{resumed:?}");
    assert!(resumed.iter().any(|e| e["type"] == "status" && e["status"] == "resumed"), "{resumed:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the completed tool call did not run again");
    assert!(text(&resumed).ends_with(&words(30)), "the second step ran to its end after the takeover");

    assert_gapless(&ended);
    let error =
        ended.iter().find(|e| e["type"] == "error").unwrap_or_else(|| panic!("no error explains the end: {ended:?}"));
    assert_eq!(error["code"], "replica_lost");
    assert_eq!(ended.last().unwrap()["status"], "failed");

    // Nothing acknowledged is lost: both user messages are stored, and the resumed answer too.
    let scope = agentry_core::Scope::default_scope();
    let (messages, _) = store.list_messages(&scope, &with_tools, 10, 0).await.unwrap();
    assert_eq!(messages.iter().map(|m| m.role.as_str()).collect::<Vec<_>>(), ["user", "assistant"]);
    let (messages, _) = store.list_messages(&scope, &first_step, 10, 0).await.unwrap();
    assert_eq!(messages.first().map(|m| m.content.clone()), Some(words(50)));
    let turn = store.get_turn(&scope, &lost).await.unwrap().unwrap();
    assert_eq!(turn.status, TurnStatus::Failed);
    assert!(turn.error.unwrap().contains("replica"));
    store.close().await;
    finish(db, reps).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_with_twenty_queued_turns_ends_every_turn_exactly_once() {
    let (db, reps) = replicas(2, &[slow("slow", 20)]).await;
    let thread_id = new_thread(&reps[0].base(), "alice", "slow").await;
    let mut sock = Sock::user(reps[0].addr, "alice").await;
    sock.emit("message", json!({"message": words(200), "threadId": thread_id})).await;
    for i in 1..21 {
        sock.emit("message", json!({"message": format!("message {i} {}", words(20)), "threadId": thread_id})).await;
    }
    // Once all 21 are accepted and the first streams, stop from the other replica.
    let store = db.store().await;
    let scope = agentry_core::Scope::default_scope();
    while store.unfinished_turns(&scope, &thread_id).await.unwrap().len() < 21 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    loop {
        let event = sock.agent_event(Duration::from_secs(10)).await.unwrap();
        if event["type"] == "token" {
            break;
        }
    }
    let mut stopper = Sock::user(reps[1].addr, "alice").await;
    stopper.emit("stop", json!({"threadId": thread_id})).await;
    let mut dones: std::collections::HashMap<String, Vec<Value>> = std::collections::HashMap::new();
    while let Some(event) = sock.agent_event(Duration::from_secs(3)).await {
        if event["type"] == "done" {
            dones.entry(event["turnId"].as_str().unwrap().to_owned()).or_default().push(event);
        }
    }
    let turns = store.unfinished_turns(&scope, &thread_id).await.unwrap();
    assert!(turns.is_empty(), "nothing stays queued: {turns:?}");
    assert_eq!(dones.len(), 21, "every turn ended");
    for (turn_id, done) in &dones {
        assert_eq!(done.len(), 1, "{turn_id} ended once");
        let stored = store.get_turn(&scope, turn_id).await.unwrap().unwrap();
        assert_eq!(json!(stored.status), done[0]["status"], "{turn_id}: stored status equals done");
        let log = store.events_after(&scope, turn_id, 0, 10_000).await.unwrap();
        assert_eq!(log.iter().filter(|e| e.event.is_done()).count(), 1);
        assert!(log.last().unwrap().event.is_done());
    }
    let cancelled = dones.values().filter(|d| d[0]["status"] == "cancelled").count();
    assert_eq!(cancelled, 21, "the running turn stopped and the queued ones never ran");
    store.close().await;
    finish(db, reps).await;
}
