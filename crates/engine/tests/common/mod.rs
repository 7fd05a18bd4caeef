//! Shared fixture of the engine tests: an engine on a fresh SQLite store, a user, event helpers.
#![allow(dead_code)]

use std::time::Duration;

use agentry_core::id::{new_id, prefix};
use agentry_core::{
    AgentSpec, LoggedEvent, Principal, PrincipalKind, Scope, Script, Thread, ThreadStatus, Timestamp, TurnEvent,
    TurnStatus, UserMeta,
};
use agentry_engine::{Engine, EngineConfig, NewMessage};
use agentry_llm::ProviderRegistry;
use agentry_store::{Store, StoreLocation};

pub struct Fixture {
    pub engine: Engine,
    pub store: Store,
    pub dir: tempfile::TempDir,
}

pub async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreLocation::Sqlite(dir.path().join("e.db"))).await.unwrap();
    let engine = Engine::start(store.clone(), ProviderRegistry::default(), EngineConfig::default()).await.unwrap();
    Fixture { engine, store, dir }
}

pub fn principal() -> Principal {
    Principal {
        scope: Scope::default_scope(),
        user_id: Some("alice".into()),
        kind: PrincipalKind::EndUser,
        user_meta: UserMeta { name: Some("Alice".into()), email: None },
        pinned_agent_id: None,
    }
}

impl Fixture {
    pub async fn agent(&self, spec: AgentSpec) -> Thread {
        self.store.apply_agent(&Scope::default_scope(), &spec, "test", None).await.unwrap();
        self.thread_for(&spec.id).await
    }

    /// A new thread of alice's with an agent already applied.
    pub async fn thread_for(&self, agent_id: &str) -> Thread {
        let now = Timestamp::now();
        let thread = Thread {
            id: new_id(prefix::THREAD),
            agent_id: agent_id.to_owned(),
            user_id: "alice".into(),
            scope: Scope::default_scope(),
            title: None,
            status: ThreadStatus::Active,
            archived_at: None,
            created_at: now,
            updated_at: now,
        };
        self.store.insert_thread(&thread).await.unwrap();
        thread
    }

    pub async fn send(&self, thread: &Thread, text: &str) -> agentry_core::Turn {
        self.engine.submit(&principal(), thread, NewMessage { text: text.into(), ..Default::default() }).await.unwrap()
    }

    pub async fn events(&self, turn: &agentry_core::Turn, after: i64) -> Vec<LoggedEvent> {
        let mut follower = self.engine.follow(&turn.scope, turn, after).await.unwrap();
        let mut out = Vec::new();
        while let Some(event) = tokio::time::timeout(Duration::from_secs(10), follower.next()).await.unwrap().unwrap() {
            out.push(event);
        }
        out
    }
}

pub fn echo(id: &str) -> AgentSpec {
    AgentSpec::new(id, "Echo", "scripted:echo", "You help {{user.name}}.")
}

pub fn slow_echo(id: &str, delay_ms: u64) -> AgentSpec {
    AgentSpec { script: Some(Script { token_delay_ms: delay_ms, steps: Vec::new() }), ..echo(id) }
}

pub fn kinds(events: &[LoggedEvent]) -> Vec<&'static str> {
    events
        .iter()
        .map(|e| match &e.event {
            TurnEvent::Meta { .. } => "meta",
            TurnEvent::Status { .. } => "status",
            TurnEvent::Token { .. } => "token",
            TurnEvent::Thinking { .. } => "thinking",
            TurnEvent::MessageBoundary {} => "message_boundary",
            TurnEvent::ToolCall { .. } => "tool_call",
            TurnEvent::ToolResult { .. } => "tool_result",
            TurnEvent::MessagePersisted { .. } => "message_persisted",
            TurnEvent::Usage { .. } => "usage",
            TurnEvent::Error { .. } => "error",
            TurnEvent::Done { .. } => "done",
            TurnEvent::ApprovalNeeded { .. } => "approval_needed",
            TurnEvent::ApprovalResolved { .. } => "approval_resolved",
            TurnEvent::ArtifactStart { .. } => "artifact_start",
            TurnEvent::ArtifactDelta { .. } => "artifact_delta",
            TurnEvent::ArtifactCommitted { .. } => "artifact_committed",
            TurnEvent::ArtifactError { .. } => "artifact_error",
            TurnEvent::SafetyFlags { .. } => "safety_flags",
            TurnEvent::Content { .. } => "content",
        })
        .collect()
}

pub fn tokens(events: &[LoggedEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match &e.event {
            TurnEvent::Token { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

pub fn done_of(events: &[LoggedEvent]) -> (TurnStatus, agentry_core::TokenUsage, bool) {
    match &events.last().unwrap().event {
        TurnEvent::Done { status, usage, stopped } => (*status, *usage, *stopped),
        other => panic!("last event is {other:?}"),
    }
}
