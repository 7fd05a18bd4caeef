//! The harness of the store suites: a throwaway database per test on each backend, and
//! fixtures.
#![allow(dead_code)]

use agentry_core::id::{new_id, prefix};
use agentry_core::{
    AgentSpec, Approval, ApprovalStatus, MicroCents, Scope, Thread, ThreadStatus, Timestamp, TokenUsage, Turn,
    TurnInput, TurnStatus,
};
use agentry_store::{CallStatus, ModelCall, Store, StoreLocation};
use serde_json::json;
use sqlx::Connection as _;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A store backed by a throwaway database, removed on drop (SQLite) or in `finish` (Postgres).
pub struct TestDb {
    pub store: Store,
    pub location: StoreLocation,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::Sqlite(dir.path().join("agentry.db"));
        let store = Store::open(&location).await.unwrap();
        TestDb { store, location, _dir: Some(dir), pg: None }
    }

    /// Another replica's handle on the same database (its own connections).
    pub async fn another_replica(&self) -> Store {
        Store::open(&self.location).await.unwrap()
    }

    pub async fn postgres() -> TestDb {
        let admin_url = std::env::var("AGENTRY_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("Postgres at {admin_url} is required for the store suite: {e}"));
        let name = new_id("agentry_test").to_lowercase();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let location = StoreLocation::Postgres(format!("{base}/{name}"));
        let store = Store::open(&location).await.unwrap();
        TestDb { store, location, _dir: None, pg: Some((admin_url, name)) }
    }

    pub async fn finish(self) {
        self.store.close().await;
        if let Some((admin_url, name)) = self.pg {
            let mut admin = sqlx::PgConnection::connect(&admin_url).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&mut admin)
                .await
                .unwrap();
        }
    }
}

/// Declares each scenario once per backend.
#[macro_export]
macro_rules! suite {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $scenario() {
                let db = $crate::common::TestDb::sqlite().await;
                super::$scenario(&db.store).await;
                db.finish().await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $scenario() {
                let db = $crate::common::TestDb::postgres().await;
                super::$scenario(&db.store).await;
                db.finish().await;
            })*
        }
    };
}

/// Declares each scenario once per backend; these get the whole [`TestDb`] (to open a second
/// replica's store on the same database).
#[macro_export]
macro_rules! replica_suite {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite_replicas {
            $(#[tokio::test]
            async fn $scenario() {
                let db = $crate::common::TestDb::sqlite().await;
                super::$scenario(&db).await;
                db.finish().await;
            })*
        }
        mod postgres_replicas {
            $(#[tokio::test]
            async fn $scenario() {
                let db = $crate::common::TestDb::postgres().await;
                super::$scenario(&db).await;
                db.finish().await;
            })*
        }
    };
}

pub fn scope_a() -> Scope {
    Scope::default_scope()
}

pub fn scope_b() -> Scope {
    Scope::new("acme", "web", "prod")
}

pub fn spec(id: &str, prompt: &str) -> AgentSpec {
    AgentSpec::new(id, format!("Agent {id}"), "scripted:echo", prompt)
}

pub fn thread(scope: &Scope, user: &str, agent: &str) -> Thread {
    let now = Timestamp::now();
    Thread {
        id: new_id(prefix::THREAD),
        agent_id: agent.into(),
        user_id: user.into(),
        scope: scope.clone(),
        title: None,
        status: ThreadStatus::Active,
        archived_at: None,
        created_at: now,
        updated_at: now,
    }
}

pub fn turn(scope: &Scope, thread_id: &str, key: Option<&str>) -> Turn {
    Turn {
        id: new_id(prefix::TURN),
        thread_id: thread_id.into(),
        scope: scope.clone(),
        user_id: "alice".into(),
        agent_id: "support".into(),
        status: TurnStatus::Queued,
        wait_reason: None,
        error: None,
        input: TurnInput { text: "hello".into(), ..Default::default() },
        idempotency_key: key.map(str::to_owned),
        created_at: Timestamp::now(),
        started_at: None,
        finished_at: None,
        checkpoint: None,
    }
}

pub fn approval(turn: &Turn, user: &str, deadline: Timestamp) -> Approval {
    Approval {
        id: new_id(prefix::APPROVAL),
        scope: turn.scope.clone(),
        turn_id: turn.id.clone(),
        thread_id: turn.thread_id.clone(),
        agent_id: "support".into(),
        requested_by: user.into(),
        tool_name: "refund".into(),
        call_id: "call_1".into(),
        action: "call tool `refund`".into(),
        details: json!({"order": "A1"}),
        args: json!({"order": "A1"}),
        status: ApprovalStatus::Pending,
        timeout_secs: 300,
        created_at: Timestamp::now(),
        deadline_at: deadline,
        resolved_at: None,
        responded_by: None,
        comment: None,
        edited_args: None,
    }
}

/// A model call of `turn` in the ledger: 100 tokens in, 10 out, costing `cost` µ¢.
pub fn model_call(turn: &Turn, step: i64, status: CallStatus, cost: i64) -> ModelCall {
    ModelCall {
        id: new_id(prefix::MODEL_CALL),
        scope: turn.scope.clone(),
        turn_id: turn.id.clone(),
        thread_id: turn.thread_id.clone(),
        agent_id: turn.agent_id.clone(),
        user_id: turn.user_id.clone(),
        step,
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        status,
        usage: TokenUsage {
            input_tokens: 100,
            output_tokens: 10,
            cached_input_tokens: 5,
            reasoning_tokens: 1,
            cost: MicroCents(cost),
        },
        finish_reason: Some("stop".into()),
        error: None,
        started_at: Timestamp::now(),
        first_token_at: Some(Timestamp::now()),
        finished_at: Timestamp::now(),
    }
}
