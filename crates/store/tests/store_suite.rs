//! The store test suite, run once against SQLite and once against Postgres.
//!
//! Postgres comes from `AGENTRY_TEST_POSTGRES_URL` (default: the local server as user
//! `postgres`). Each test creates and drops its own database. There is no skip: if Postgres is
//! unreachable these tests fail.

use agentry_core::id::{new_id, prefix};
use agentry_core::{ApprovalStatus, Message, MessageRole, Scope, ThreadStatus, Timestamp, TurnEvent};
use agentry_store::auth::Installation;
use agentry_store::{
    ApprovalFilter, ArchivedFilter, ArtifactRevision, DatasetRecord, IdempotencyStart, SafetyEvent, ScopedToken,
    Settlement, Store, ThreadQuery, ToolCallRecord,
};
use serde_json::json;

mod common;
use common::*;

replica_suite!(five_replicas_start_at_once);

suite!(
    migrations_run_once_and_reopen_cleanly,
    bootstrap_happens_once_and_whole,
    entity_secrets_respect_their_binding,
    api_keys_are_found_by_hash,
    dashboard_sessions_live_with_their_key,
    applying_an_agent_versions_only_changes,
    agents_are_confined_to_their_scope,
    default_agent_prefers_id_default_then_oldest,
    deleting_an_agent_removes_its_versions,
    threads_are_confined_to_scope_and_owner,
    thread_listing_filters_and_pages,
    archive_and_unarchive_round_trip,
    deleting_a_thread_removes_its_messages,
    messages_list_in_order_and_bump_the_thread,
    idempotency_records_replay_and_isolate,
    approvals_list_by_filter_and_scope,
    artifacts_keep_immutable_revisions,
    tool_switches_and_health_counters,
    safety_events_are_recorded_per_scope,
    scoped_tokens_are_found_by_hash_and_revoked_per_scope,
    datasets_keep_their_source_and_attachments,
    recordings_are_replaced_per_request,
);

fn query(owner: Option<&str>) -> ThreadQuery<'_> {
    ThreadQuery { owner, agent_id: None, archived: ArchivedFilter::Exclude, search: None, limit: 50, offset: 0 }
}

async fn migrations_run_once_and_reopen_cleanly(store: &Store) {
    // A second run over a migrated database must be a no-op.
    agentry_store::migrate::run(store).await.unwrap();
    store.ping().await.unwrap();
}

fn installation<'a>(at: &'a str, key_hash: &'a str, agent: &'a agentry_core::AgentSpec) -> Installation<'a> {
    Installation {
        bootstrapped_at: at,
        entity: ("default", "secret-0123456789abcdef"),
        api_key: ("key_1", key_hash, "bootstrap"),
        agent,
    }
}

async fn bootstrap_happens_once_and_whole(store: &Store) {
    let agent = spec("default", "Hi");
    assert!(store.bootstrap_installation(&installation("1", "hash-1", &agent)).await.unwrap());
    assert!(!store.bootstrap_installation(&installation("2", "hash-2", &agent)).await.unwrap());
    assert_eq!(store.meta_get("bootstrapped_at").await.unwrap().as_deref(), Some("1"));
    assert_eq!(store.meta_get("missing").await.unwrap(), None);
    assert!(store.api_key_by_hash("hash-1").await.unwrap().is_some());
    assert!(store.api_key_by_hash("hash-2").await.unwrap().is_none(), "the second setup wrote nothing");
    assert_eq!(store.default_agent(&scope_a()).await.unwrap().unwrap().version_number, 1);
    assert!(store.entity_secret("default", "any", "any").await.unwrap().is_some());
}

/// Five replicas start at once on an empty database: one sets it up, all come up, and applying
/// the same agent file everywhere makes one version.
async fn five_replicas_start_at_once(db: &TestDb) {
    let mut replicas = vec![db.store.clone()];
    for _ in 0..4 {
        replicas.push(db.another_replica().await);
    }
    let agent = spec("support", "Be kind.");
    let starts = replicas.iter().map(|store| {
        let (store, agent) = (store.clone(), agent.clone());
        tokio::spawn(async move {
            let setup = store.bootstrap_installation(&installation("now", "hash", &agent)).await.unwrap();
            store
                .insert_api_key(&new_id(prefix::API_KEY), "supplied-hash", "from AGENTRY_API_KEY", None)
                .await
                .unwrap();
            store.apply_agent(&scope_a(), &agent, "file", None).await.unwrap();
            setup
        })
    });
    let mut set_up = 0;
    for start in starts {
        set_up += usize::from(start.await.unwrap());
    }
    assert_eq!(set_up, 1);
    assert_eq!(db.store.list_agent_versions(&scope_a(), "support", 10, 0).await.unwrap().unwrap().len(), 1);
    for store in &replicas[1..] {
        store.close().await;
    }
}

async fn entity_secrets_respect_their_binding(store: &Store) {
    store.insert_entity("default", None, None, "global-secret-0123456789").await.unwrap();
    store.insert_entity("acme-backend", Some("acme"), Some("web"), "acme-secret-0123456789").await.unwrap();
    assert_eq!(
        store.entity_secret("default", "anything", "else").await.unwrap().as_deref(),
        Some("global-secret-0123456789")
    );
    assert_eq!(
        store.entity_secret("acme-backend", "acme", "web").await.unwrap().as_deref(),
        Some("acme-secret-0123456789")
    );
    assert_eq!(store.entity_secret("acme-backend", "other", "web").await.unwrap(), None);
    assert_eq!(store.entity_secret("acme-backend", "acme", "api").await.unwrap(), None);
    assert_eq!(store.entity_secret("nobody", "acme", "web").await.unwrap(), None);
}

async fn api_keys_are_found_by_hash(store: &Store) {
    store.insert_api_key("key_1", "abc123", "operator", None).await.unwrap();
    store.insert_api_key("key_2", "def456", "acme ci", Some("acme")).await.unwrap();
    let found = store.api_key_by_hash("abc123").await.unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.organization_id), ("key_1", None), "installation-wide");
    assert_eq!(store.api_key_by_hash("def456").await.unwrap().unwrap().organization_id.as_deref(), Some("acme"));
    assert_eq!(store.api_key_by_hash("abc124").await.unwrap(), None);
    let acme: Vec<String> = store.list_api_keys(Some("acme")).await.unwrap().into_iter().map(|k| k.id).collect();
    assert_eq!(acme, ["key_2"]);
    assert_eq!(store.list_api_keys(None).await.unwrap().len(), 2);
    // Rotation: the old secret stops working, the key keeps its id; another org cannot touch it.
    assert!(!store.rotate_api_key("key_2", "new-hash", Some("other")).await.unwrap());
    assert!(store.rotate_api_key("key_2", "new-hash", Some("acme")).await.unwrap());
    assert_eq!(store.api_key_by_hash("def456").await.unwrap(), None);
    assert_eq!(store.api_key_by_hash("new-hash").await.unwrap().unwrap().id, "key_2");
    assert!(!store.revoke_api_key("key_2", Some("other")).await.unwrap());
    assert!(store.revoke_api_key("key_2", None).await.unwrap());
    assert!(!store.revoke_api_key("key_2", None).await.unwrap(), "revoked once");
    assert_eq!(store.api_key_by_hash("new-hash").await.unwrap(), None);
    assert!(store.list_api_keys(None).await.unwrap().iter().any(|k| k.id == "key_2" && k.revoked_at.is_some()));
}

async fn dashboard_sessions_live_with_their_key(store: &Store) {
    store.insert_api_key("key_ops", "ops-hash", "ops", Some("acme")).await.unwrap();
    let later = Timestamp(Timestamp::now().0 + 3_600_000);
    store.create_dashboard_session("s1", "key_ops", "csrf-1", later).await.unwrap();
    let session = store.dashboard_session("s1").await.unwrap().unwrap();
    assert_eq!(
        (session.api_key_id.as_str(), session.key_organization_id.as_deref(), session.csrf_token.as_str()),
        ("key_ops", Some("acme"), "csrf-1")
    );
    assert_eq!(session.scope, None);
    assert!(store.set_dashboard_scope("s1", &scope_a()).await.unwrap());
    assert_eq!(store.dashboard_session("s1").await.unwrap().unwrap().scope, Some(scope_a()));
    assert!(!store.set_dashboard_scope("nope", &scope_a()).await.unwrap());
    assert_eq!(store.dashboard_session("nope").await.unwrap(), None);
    // Expired: gone, and forgotten by the next sign-in.
    store.create_dashboard_session("old", "key_ops", "csrf-2", Timestamp(Timestamp::now().0 - 1)).await.unwrap();
    assert_eq!(store.dashboard_session("old").await.unwrap(), None);
    assert!(!store.set_dashboard_scope("old", &scope_a()).await.unwrap());
    // Signing out ends one session; revoking the key ends all of them.
    store.create_dashboard_session("s2", "key_ops", "csrf-3", later).await.unwrap();
    store.delete_dashboard_session("s2").await.unwrap();
    assert_eq!(store.dashboard_session("s2").await.unwrap(), None);
    assert!(store.revoke_api_key("key_ops", None).await.unwrap());
    assert_eq!(store.dashboard_session("s1").await.unwrap(), None);
    // The scope picker's list: scopes with agents or threads, of one organization when asked.
    store.apply_agent(&scope_a(), &spec("support", "v1"), "test", None).await.unwrap();
    store.insert_thread(&thread(&scope_b(), "bob", "x")).await.unwrap();
    store.insert_thread(&thread(&scope_b(), "carol", "x")).await.unwrap();
    let all = store.known_scopes(None, 100).await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.contains(&scope_a()) && all.contains(&scope_b()));
    let only_a = store.known_scopes(Some(&scope_a().organization_id), 100).await.unwrap();
    assert!(only_a.iter().all(|s| s.organization_id == scope_a().organization_id) && only_a.contains(&scope_a()));
}

async fn applying_an_agent_versions_only_changes(store: &Store) {
    let first = store.apply_agent(&scope_a(), &spec("support", "v1"), "test", None).await.unwrap();
    assert!(first.changed);
    assert_eq!(first.agent.version_number, 1);
    let same = store.apply_agent(&scope_a(), &spec("support", "v1"), "test", None).await.unwrap();
    assert!(!same.changed);
    assert_eq!(same.agent.current_version_id, first.agent.current_version_id);
    let second = store.apply_agent(&scope_a(), &spec("support", "v2"), "test", Some("new prompt")).await.unwrap();
    assert!(second.changed);
    assert_eq!(second.agent.version_number, 2);
    assert_eq!(second.agent.spec.system_prompt, "v2");
    assert_eq!(second.agent.created_at, first.agent.created_at);

    let versions = store.list_agent_versions(&scope_a(), "support", 50, 0).await.unwrap().unwrap();
    assert_eq!(versions.iter().map(|v| v.version_number).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(versions[0].id, second.agent.current_version_id);
    assert_eq!(versions[0].note.as_deref(), Some("new prompt"));
    assert_eq!(versions[1].spec.system_prompt, "v1");
}

async fn agents_are_confined_to_their_scope(store: &Store) {
    store.apply_agent(&scope_a(), &spec("support", "a"), "test", None).await.unwrap();
    store.apply_agent(&scope_b(), &spec("support", "b"), "test", None).await.unwrap();
    store.apply_agent(&scope_b(), &spec("only-b", "b"), "test", None).await.unwrap();
    assert_eq!(store.list_agents(&scope_a()).await.unwrap().len(), 1);
    assert_eq!(store.list_agents(&scope_b()).await.unwrap().len(), 2);
    assert_eq!(store.get_agent(&scope_a(), "support").await.unwrap().unwrap().spec.system_prompt, "a");
    assert_eq!(store.get_agent(&scope_b(), "support").await.unwrap().unwrap().spec.system_prompt, "b");
    assert!(store.get_agent(&scope_a(), "only-b").await.unwrap().is_none());
    assert!(store.list_agent_versions(&scope_a(), "only-b", 50, 0).await.unwrap().is_none());
    assert!(!store.delete_agent(&scope_a(), "only-b").await.unwrap());
    assert!(store.get_agent(&scope_b(), "only-b").await.unwrap().is_some());
}

async fn default_agent_prefers_id_default_then_oldest(store: &Store) {
    assert!(store.default_agent(&scope_a()).await.unwrap().is_none());
    store.apply_agent(&scope_a(), &spec("first", "x"), "test", None).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.apply_agent(&scope_a(), &spec("second", "x"), "test", None).await.unwrap();
    assert_eq!(store.default_agent(&scope_a()).await.unwrap().unwrap().spec.id, "first");
    store.apply_agent(&scope_a(), &spec("default", "x"), "test", None).await.unwrap();
    assert_eq!(store.default_agent(&scope_a()).await.unwrap().unwrap().spec.id, "default");
    assert!(store.default_agent(&scope_b()).await.unwrap().is_none());
}

async fn deleting_an_agent_removes_its_versions(store: &Store) {
    store.apply_agent(&scope_a(), &spec("gone", "1"), "test", None).await.unwrap();
    store.apply_agent(&scope_a(), &spec("gone", "2"), "test", None).await.unwrap();
    assert!(store.delete_agent(&scope_a(), "gone").await.unwrap());
    assert!(store.get_agent(&scope_a(), "gone").await.unwrap().is_none());
    // Re-creating starts a fresh history.
    let again = store.apply_agent(&scope_a(), &spec("gone", "3"), "test", None).await.unwrap();
    assert_eq!(again.agent.version_number, 1);
    assert_eq!(store.list_agent_versions(&scope_a(), "gone", 50, 0).await.unwrap().unwrap().len(), 1);
}

async fn threads_are_confined_to_scope_and_owner(store: &Store) {
    let t = thread(&scope_a(), "alice", "support");
    store.insert_thread(&t).await.unwrap();
    assert_eq!(store.get_thread(&scope_a(), Some("alice"), &t.id).await.unwrap().as_ref(), Some(&t));
    assert_eq!(store.get_thread(&scope_a(), None, &t.id).await.unwrap().as_ref(), Some(&t));
    assert!(store.get_thread(&scope_a(), Some("bob"), &t.id).await.unwrap().is_none());
    assert!(store.get_thread(&scope_b(), Some("alice"), &t.id).await.unwrap().is_none());
    assert!(store.get_thread(&scope_b(), None, &t.id).await.unwrap().is_none());
    assert!(store.set_thread_archived(&scope_a(), Some("bob"), &t.id, true).await.unwrap().is_none());
    assert!(store.set_thread_archived(&scope_b(), None, &t.id, true).await.unwrap().is_none());
    assert!(!store.delete_thread(&scope_a(), Some("bob"), &t.id).await.unwrap());
    assert!(!store.delete_thread(&scope_b(), Some("alice"), &t.id).await.unwrap());
    let unchanged = store.get_thread(&scope_a(), None, &t.id).await.unwrap().unwrap();
    assert_eq!(unchanged.status, ThreadStatus::Active);
    assert_eq!(store.list_threads(&scope_a(), &query(Some("bob"))).await.unwrap().1, 0);
    assert_eq!(store.list_threads(&scope_b(), &query(None)).await.unwrap().1, 0);
    assert_eq!(store.list_threads(&scope_a(), &query(None)).await.unwrap().1, 1);
}

async fn thread_listing_filters_and_pages(store: &Store) {
    let mut ids = Vec::new();
    for agent in ["a1", "a1", "a2"] {
        let t = thread(&scope_a(), "alice", agent);
        store.insert_thread(&t).await.unwrap();
        ids.push(t.id);
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    store.insert_thread(&thread(&scope_a(), "bob", "a1")).await.unwrap();
    let (all, total) = store.list_threads(&scope_a(), &query(Some("alice"))).await.unwrap();
    assert_eq!(total, 3);
    // Most recently updated first.
    assert_eq!(all.iter().map(|t| t.id.clone()).collect::<Vec<_>>(), ids.iter().rev().cloned().collect::<Vec<_>>());
    let by_agent = ThreadQuery { agent_id: Some("a1"), ..query(Some("alice")) };
    assert_eq!(store.list_threads(&scope_a(), &by_agent).await.unwrap().1, 2);
    let page = ThreadQuery { limit: 1, offset: 1, ..query(Some("alice")) };
    let (threads, total) = store.list_threads(&scope_a(), &page).await.unwrap();
    assert_eq!((threads.len(), total), (1, 3));
    assert_eq!(threads[0].id, ids[1]);
    store.set_thread_archived(&scope_a(), Some("alice"), &ids[0], true).await.unwrap().unwrap();
    assert_eq!(store.list_threads(&scope_a(), &query(Some("alice"))).await.unwrap().1, 2);
    let only = ThreadQuery { archived: ArchivedFilter::Only, ..query(Some("alice")) };
    assert_eq!(store.list_threads(&scope_a(), &only).await.unwrap().0[0].id, ids[0]);
    let include = ThreadQuery { archived: ArchivedFilter::Include, ..query(Some("alice")) };
    assert_eq!(store.list_threads(&scope_a(), &include).await.unwrap().1, 3);
    assert_eq!(store.list_threads(&scope_a(), &query(None)).await.unwrap().1, 3);
    // Search: the id exactly, or a piece of the title in any case; LIKE wildcards are literal.
    let mut titled = thread(&scope_a(), "alice", "a1");
    titled.title = Some("Refund for ORDER 100%_done".into());
    store.insert_thread(&titled).await.unwrap();
    assert_eq!(search_ids(store, &scope_a(), "order 100").await, vec![titled.id.clone()]);
    assert_eq!(search_ids(store, &scope_a(), "100%_D").await, vec![titled.id.clone()]);
    assert!(search_ids(store, &scope_a(), "100%x").await.is_empty());
    assert!(search_ids(store, &scope_a(), "r_fund").await.is_empty());
    assert_eq!(search_ids(store, &scope_a(), &ids[1]).await, vec![ids[1].clone()]);
    assert!(search_ids(store, &scope_b(), "order").await.is_empty());
}

async fn search_ids(store: &Store, scope: &Scope, text: &str) -> Vec<String> {
    let (threads, total) = store.list_threads(scope, &ThreadQuery { search: Some(text), ..query(None) }).await.unwrap();
    assert_eq!(threads.len() as i64, total);
    threads.into_iter().map(|t| t.id).collect()
}

async fn archive_and_unarchive_round_trip(store: &Store) {
    let t = thread(&scope_a(), "alice", "support");
    store.insert_thread(&t).await.unwrap();
    let archived = store.set_thread_archived(&scope_a(), Some("alice"), &t.id, true).await.unwrap().unwrap();
    assert_eq!(archived.status, ThreadStatus::Archived);
    assert!(archived.archived_at.is_some());
    let active = store.set_thread_archived(&scope_a(), Some("alice"), &t.id, false).await.unwrap().unwrap();
    assert_eq!(active.status, ThreadStatus::Active);
    assert_eq!(active.archived_at, None);
}

fn message(thread_id: &str, role: MessageRole, content: &str) -> Message {
    Message::new(thread_id, role, content.into(), None)
}

async fn deleting_a_thread_removes_its_messages(store: &Store) {
    let t = thread(&scope_a(), "alice", "support");
    store.insert_thread(&t).await.unwrap();
    store.append_message(&scope_a(), &message(&t.id, MessageRole::User, "hi")).await.unwrap();
    assert!(store.delete_thread(&scope_a(), Some("alice"), &t.id).await.unwrap());
    assert!(store.get_thread(&scope_a(), None, &t.id).await.unwrap().is_none());
    assert_eq!(store.list_messages(&scope_a(), &t.id, 50, 0).await.unwrap().1, 0);
    assert!(!store.delete_thread(&scope_a(), Some("alice"), &t.id).await.unwrap());
}

async fn messages_list_in_order_and_bump_the_thread(store: &Store) {
    let t = thread(&scope_a(), "alice", "support");
    store.insert_thread(&t).await.unwrap();
    let first = message(&t.id, MessageRole::User, "hello");
    store.append_message(&scope_a(), &first).await.unwrap();
    let second = message(&t.id, MessageRole::Assistant, "hi there");
    store.append_message(&scope_a(), &second).await.unwrap();
    let (messages, total) = store.list_messages(&scope_a(), &t.id, 50, 0).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(messages, vec![first, second.clone()]);
    assert_eq!(store.list_messages(&scope_b(), &t.id, 50, 0).await.unwrap().1, 0);
    assert_eq!(store.recent_messages(&scope_a(), &t.id, 1).await.unwrap(), vec![second.clone()]);
    assert_eq!(store.recent_messages(&scope_a(), &t.id, 10).await.unwrap().len(), 2);
    let bumped = store.get_thread(&scope_a(), None, &t.id).await.unwrap().unwrap();
    assert_eq!(bumped.updated_at, second.created_at);
}

async fn idempotency_records_replay_and_isolate(store: &Store) {
    let s = scope_a();
    assert_eq!(store.idempotency_start(&s, "alice", "k1", "POST /x {}").await.unwrap(), IdempotencyStart::Fresh);
    assert_eq!(store.idempotency_start(&s, "alice", "k1", "POST /x {}").await.unwrap(), IdempotencyStart::InProgress);
    store.idempotency_finish(&s, "alice", "k1", 201, r#"{"id":"thr_1"}"#).await.unwrap();
    assert_eq!(
        store.idempotency_start(&s, "alice", "k1", "POST /x {}").await.unwrap(),
        IdempotencyStart::Replay { status: 201, body: r#"{"id":"thr_1"}"#.into() }
    );
    assert_eq!(store.idempotency_start(&s, "alice", "k1", "POST /y {}").await.unwrap(), IdempotencyStart::Mismatch);
    // The same key from another user or scope is a different record.
    assert_eq!(store.idempotency_start(&s, "bob", "k1", "POST /x {}").await.unwrap(), IdempotencyStart::Fresh);
    assert_eq!(
        store.idempotency_start(&scope_b(), "alice", "k1", "POST /x {}").await.unwrap(),
        IdempotencyStart::Fresh
    );
    // An abandoned claim can be taken again.
    store.idempotency_abandon(&s, "bob", "k1").await.unwrap();
    assert_eq!(store.idempotency_start(&s, "bob", "k1", "POST /x {}").await.unwrap(), IdempotencyStart::Fresh);
}

fn settle(status: ApprovalStatus) -> Settlement<'static> {
    Settlement { status, responded_by: "alice", comment: Some("ok"), edited_args: None }
}

async fn approvals_list_by_filter_and_scope(store: &Store) {
    let t = thread(&scope_a(), "alice", "support");
    store.insert_thread(&t).await.unwrap();
    let tr = turn(&scope_a(), &t.id, None);
    store.insert_turn(&tr).await.unwrap();
    let later = Timestamp(Timestamp::now().0 + 60_000);
    let mine = approval(&tr, "alice", later);
    let bobs = approval(&tr, "bob", later);
    let done = approval(&tr, "alice", later);
    for a in [&mine, &bobs, &done] {
        store.insert_approval(a).await.unwrap();
    }
    store.settle_approval(&scope_a(), &done.id, &settle(ApprovalStatus::Rejected)).await.unwrap();
    let all = ApprovalFilter { limit: 10, ..Default::default() };
    let (rows, total, pending) = store.list_approvals(&scope_a(), &all).await.unwrap();
    assert_eq!((rows.len(), total, pending), (3, 3, 2));
    let alices = ApprovalFilter { requested_by: Some("alice"), ..all.clone() };
    assert_eq!(store.list_approvals(&scope_a(), &alices).await.unwrap().1, 2);
    let rejected = ApprovalFilter { status: Some(ApprovalStatus::Rejected), ..all.clone() };
    let (rows, total, pending) = store.list_approvals(&scope_a(), &rejected).await.unwrap();
    assert_eq!((rows.len(), total, pending), (1, 1, 2), "the pending count is a badge over every status");
    let by_thread = ApprovalFilter { thread_id: Some(&t.id), limit: 1, offset: 1, ..Default::default() };
    let (rows, total, _) = store.list_approvals(&scope_a(), &by_thread).await.unwrap();
    assert_eq!((rows.len(), total), (1, 3));
    assert_eq!(store.list_approvals(&scope_b(), &all).await.unwrap().1, 0);
}

async fn artifacts_keep_immutable_revisions(store: &Store) {
    let t = thread(&scope_a(), "alice", "support");
    store.insert_thread(&t).await.unwrap();
    let revision = |key: &str, n: i64, content: &str| ArtifactRevision {
        id: new_id(prefix::ARTIFACT),
        thread_id: t.id.clone(),
        turn_id: "trn_x".into(),
        artifact_key: key.into(),
        revision: n,
        kind: "markdown".into(),
        title: Some("Notes".into()),
        language: None,
        content: content.into(),
        created_at: Timestamp::now(),
    };
    store.insert_artifact(&scope_a(), &revision("a_1", 1, "one")).await.unwrap();
    store.insert_artifact(&scope_a(), &revision("a_1", 2, "two")).await.unwrap();
    store.insert_artifact(&scope_a(), &revision("a_2", 1, "other")).await.unwrap();
    assert!(store.insert_artifact(&scope_a(), &revision("a_1", 2, "again")).await.is_err(), "revisions are immutable");
    let latest = store.latest_artifact(&scope_a(), &t.id, "a_1").await.unwrap().unwrap();
    assert_eq!((latest.revision, latest.content.as_str()), (2, "two"));
    let listed = store.list_artifacts(&scope_a(), &t.id, 10).await.unwrap();
    let summary: Vec<_> = listed.iter().map(|(a, n)| (a.artifact_key.as_str(), a.revision, *n)).collect();
    assert_eq!(summary, [("a_2", 1, 1), ("a_1", 2, 2)]);
    assert!(store.latest_artifact(&scope_b(), &t.id, "a_1").await.unwrap().is_none());
    assert!(store.list_artifacts(&scope_b(), &t.id, 10).await.unwrap().is_empty());
}

async fn tool_switches_and_health_counters(store: &Store) {
    store.set_tool_enabled(&scope_a(), "builtin", "current_time", false).await.unwrap();
    store.set_tool_enabled(&scope_a(), "agent.x", "refund", false).await.unwrap();
    store.set_tool_enabled(&scope_a(), "agent.x", "refund", true).await.unwrap();
    assert_eq!(store.disabled_tools(&scope_a()).await.unwrap(), [("builtin".to_owned(), "current_time".to_owned())]);
    assert!(store.disabled_tools(&scope_b()).await.unwrap().is_empty());
    for (ok, latency) in [(true, 10), (false, 30), (true, 20)] {
        let call = ToolCallRecord {
            entity_id: "agent.x",
            tool_name: "refund",
            turn_id: None,
            ok,
            latency_ms: latency,
            error: (!ok).then_some("boom"),
        };
        store.record_tool_call(&scope_a(), &call).await.unwrap();
    }
    let health = store.tool_health(&scope_a()).await.unwrap();
    let refund = &health[&("agent.x".to_owned(), "refund".to_owned())];
    assert_eq!((refund.total_calls, refund.fail_count, refund.p95_latency_ms), (3, 1, 30));
    assert_eq!(refund.avg_latency_ms, 20.0);
    assert!(refund.last_called_at.is_some());
    assert!(store.tool_health(&scope_b()).await.unwrap().is_empty());
}

async fn safety_events_are_recorded_per_scope(store: &Store) {
    let event = SafetyEvent {
        thread_id: "thr_1".into(),
        turn_id: "trn_1".into(),
        agent_id: "support".into(),
        direction: "input".into(),
        action: "block".into(),
        flag_type: "pii".into(),
        severity: "high".into(),
        detail: "credit card number".into(),
        created_at: Timestamp::now(),
    };
    store.record_safety_event(&scope_a(), &event).await.unwrap();
    assert_eq!(store.safety_events(&scope_a(), 10).await.unwrap(), [event]);
    assert!(store.safety_events(&scope_b(), 10).await.unwrap().is_empty());
}

fn scoped_token(scope: &Scope, user: &str, external: Option<&str>) -> ScopedToken {
    let now = Timestamp::now();
    ScopedToken {
        id: new_id("stk"),
        scope: scope.clone(),
        user_id: user.into(),
        external_user_id: external.map(str::to_owned),
        bot_keys: vec![format!("{}.analyst", scope.organization_id)],
        dataset_ids: vec!["sales".into(), "costs".into()],
        thread_ids: vec![],
        created_at: now,
        expires_at: Timestamp(now.0 + 3_600_000),
        revoked_at: None,
    }
}

async fn scoped_tokens_are_found_by_hash_and_revoked_per_scope(store: &Store) {
    let org_a = Scope::new("org-a", "default", "default");
    let org_b = Scope::new("org-b", "default", "default");
    let a = scoped_token(&org_a, "ext_0123", Some("user-42"));
    let b = ScopedToken { thread_ids: vec!["thr_1".into()], ..scoped_token(&org_b, "anon_x", None) };
    store.insert_scoped_token(&a, "hash-a").await.unwrap();
    store.insert_scoped_token(&b, "hash-b").await.unwrap();
    assert!(store.insert_scoped_token(&scoped_token(&org_a, "u", None), "hash-a").await.is_err(), "hashes are unique");

    // Found by hash only, with every field round-tripped.
    assert_eq!(store.scoped_token_by_hash("hash-a").await.unwrap(), Some(a.clone()));
    assert_eq!(store.scoped_token_by_hash("hash-b").await.unwrap(), Some(b.clone()));
    assert_eq!(store.scoped_token_by_hash("hash-c").await.unwrap(), None);
    assert_eq!(store.scoped_token_by_hash(&a.id).await.unwrap(), None, "the id is not a credential");
    assert!(a.is_live(Timestamp::now()));
    assert!(!a.is_live(a.expires_at), "a token is refused from its expiry instant on");

    // Revocation is confined to the token's scope and is idempotent.
    assert!(!store.revoke_scoped_token(&org_b, &a.id).await.unwrap());
    assert!(!store.revoke_scoped_token(&org_a, "stk_unknown").await.unwrap());
    assert_eq!(store.scoped_token_by_hash("hash-a").await.unwrap().unwrap().revoked_at, None);
    assert!(store.revoke_scoped_token(&org_a, &a.id).await.unwrap());
    let revoked = store.scoped_token_by_hash("hash-a").await.unwrap().unwrap();
    let first = revoked.revoked_at.expect("revoked");
    assert!(!revoked.is_live(Timestamp::now()));
    assert!(store.revoke_scoped_token(&org_a, &a.id).await.unwrap(), "revoking twice is harmless");
    assert_eq!(store.scoped_token_by_hash("hash-a").await.unwrap().unwrap().revoked_at, Some(first));
    // The other org's token is untouched.
    assert_eq!(store.scoped_token_by_hash("hash-b").await.unwrap().unwrap().revoked_at, None);
}

async fn datasets_keep_their_source_and_attachments(store: &Store) {
    let t = thread(&scope_a(), "alice", "support");
    let other = thread(&scope_a(), "alice", "support");
    store.insert_thread(&t).await.unwrap();
    store.insert_thread(&other).await.unwrap();
    let dataset = |id: &str, slug: &str, thread_id: Option<&str>| DatasetRecord {
        id: id.into(),
        scope: scope_a(),
        slug: slug.into(),
        name: slug.to_uppercase(),
        thread_id: thread_id.map(str::to_owned),
        created_by: "operator".into(),
        columns: json!([{"name": "a", "value_type": "number"}]),
        row_count: 1,
        format: "csv".into(),
        created_at: Timestamp::now(),
    };
    store.insert_dataset(&dataset("dst_1", "sales", None), "a\n1\n").await.unwrap();
    store.insert_dataset(&dataset("dst_2", "costs", Some(&t.id)), "a\n2\n").await.unwrap();
    assert!(store.insert_dataset(&dataset("dst_3", "sales", None), "x").await.is_err(), "slugs are unique per scope");
    assert_eq!(store.get_dataset(&scope_a(), "sales").await.unwrap().unwrap().id, "dst_1");
    assert_eq!(store.get_dataset(&scope_a(), "dst_1").await.unwrap().unwrap().slug, "sales");
    assert!(store.get_dataset(&scope_b(), "sales").await.unwrap().is_none());
    assert_eq!(store.dataset_source(&scope_a(), "dst_1").await.unwrap().as_deref(), Some("a\n1\n"));
    assert!(store.dataset_source(&scope_b(), "dst_1").await.unwrap().is_none());
    store.attach_datasets(&other.id, &["dst_1".into(), "dst_1".into()]).await.unwrap();
    assert_eq!(store.thread_dataset_ids(&scope_a(), &t.id).await.unwrap(), ["dst_2"]);
    assert_eq!(store.thread_dataset_ids(&scope_a(), &other.id).await.unwrap(), ["dst_1"]);
    assert_eq!(store.dataset_threads(&scope_a(), "dst_2").await.unwrap(), vec![t.id.clone()]);
    assert!(store.dataset_threads(&scope_b(), "dst_1").await.unwrap().is_empty());
    let listed: Vec<String> = store.list_datasets(&scope_a()).await.unwrap().into_iter().map(|d| d.slug).collect();
    assert_eq!(listed, ["costs", "sales"]);
}

async fn recordings_are_replaced_per_request(store: &Store) {
    let events = |text: &str| vec![TurnEvent::Token { text: text.into() }];
    assert!(store.recording(&scope_a(), "k").await.unwrap().is_none());
    store.save_recording(&scope_a(), "k", &events("one")).await.unwrap();
    store.save_recording(&scope_a(), "k", &events("two")).await.unwrap();
    assert_eq!(store.recording(&scope_a(), "k").await.unwrap(), Some(events("two")));
    assert!(store.recording(&scope_b(), "k").await.unwrap().is_none());
}
