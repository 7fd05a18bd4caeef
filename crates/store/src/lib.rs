//! Agentry's persistence: one [`Store`] over SQLite (the embedded default) or Postgres (scale-out).
//!
//! # Layout
//! - [`Store::open`] picks the backend from a [`StoreLocation`] and runs the embedded migrations
//!   (`migrations/`, portable SQL run on both; see [`migrate`]).
//! - One file per concept: [`auth`] (installation metadata, entities, API keys), [`agents`]
//!   (agents and their immutable versions), [`threads`] (threads and messages), [`turns`] (turn
//!   rows), [`leases`] (which replica runs a turn: claims, fenced leases, cancel, the end of a
//!   turn), [`events`] (fenced event logs), [`ledger`] (one row per model call, in micro-cents),
//!   [`sockets`] (confirmed stream positions and recoverable Socket.IO sessions), [`spans`] (trace
//!   spans of turns), [`monitoring`] (turn lists with their usage, cost rollups), [`budgets`]
//!   (budget caps), [`budget_windows`] (what caps counted per window, opened from the ledger, and
//!   the reservations of calls in flight), [`rates`] (message
//!   rate limits), [`approvals`] (the durable waitpoints of turns), [`artifacts`]
//!   (immutable revisions), [`contents`] (typed content items of messages), [`datasets`] (dataset metadata), [`recordings`] (replayed invocations), [`tools`] (tool switches, the tool-call and safety ledgers),
//!   [`scoped_tokens`] (Erdo scoped tokens, kept by the hash of their secret), [`idempotency`].
//! - SQL is written once with `$n` placeholders, which both drivers accept; the `on_pool!` macro
//!   runs the same statement on whichever pool is open.
//!
//! Architecture invariant: every query on tenant data takes a [`Scope`] and filters by it, so a
//! row of another scope is indistinguishable from a missing one.

#![warn(missing_docs)]

pub mod agents;
pub mod approvals;
pub mod artifacts;
pub mod auth;
pub mod budget_windows;
pub mod budgets;
pub mod contents;
pub mod dashboard;
pub mod datasets;
pub mod events;
pub mod idempotency;
pub mod leases;
pub mod ledger;
pub mod migrate;
pub mod monitoring;
pub mod notify;
pub mod rates;
pub mod recordings;
mod row;
pub mod run_leases;
pub mod runs;
pub mod schedules;
pub mod scoped_tokens;
pub mod sockets;
pub mod spans;
pub mod tasks;
pub mod threads;
pub mod tools;
pub mod turns;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};

pub use agentry_core::Scope;
pub use agents::{AgentVersion, AppliedAgent, StoredAgent};
pub use approvals::{ApprovalFilter, Settlement};
pub use artifacts::ArtifactRevision;
pub use auth::ApiKey;
pub use budget_windows::{Charge, Crossed, LedgerSpan, Reservation, WindowRef, WindowState};
pub use dashboard::DashboardSession;
pub use datasets::DatasetRecord;
pub use events::{Appended, EventRow};
pub use idempotency::IdempotencyStart;
pub use leases::{CancelRequested, Claimed, Finish, HeldLease, Lease, Parked, SubmitPolicy, Submitted};
pub use ledger::{CallStatus, ModelCall};
pub use monitoring::{RollupBy, RollupRow, TurnFilter, TurnStats, TurnSummary};
pub use rates::{RateRefusal, RateWindow};
pub use run_leases::{AttemptEnd, ClaimedRun, RunCancel, RunLease, Swept};
pub use runs::{NewRun, RunAttempt, RunFilter, StoredRun};
pub use schedules::StoredSchedule;
pub use scoped_tokens::ScopedToken;
pub use sockets::{SocketSession, StreamCursor};
pub use spans::{Span, SpanKind, SpanStatus};
pub use tasks::{StoredBatch, StoredTask};
pub use threads::{ArchivedFilter, ThreadQuery};
pub use tools::{SafetyEvent, ToolCallRecord, ToolHealth, ToolKey};

/// Where the store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite database file (created if missing).
    Sqlite(PathBuf),
    /// A Postgres connection URL.
    Postgres(String),
}

impl StoreLocation {
    /// A short description without credentials, for logs.
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Sqlite(path) => format!("sqlite:{}", path.display()),
            StoreLocation::Postgres(url) => {
                let without_credentials = url.rsplit_once('@').map_or(url.as_str(), |(_, host)| host);
                format!("postgres://{}", without_credentials.trim_start_matches("postgres://"))
            }
        }
    }
}

/// How long opening a Postgres store waits for its first connection.
const FIRST_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens one connection before the pool does, so a wrong address, a missing database or a
/// refused login is one clear error at once (a pool would retry until its timeout and then say
/// only that it timed out).
/// The message leaves out the address: callers name the store's location (without credentials).
async fn check_postgres(options: &PgConnectOptions) -> StoreResult<()> {
    use sqlx::Connection as _;
    let unreachable = StoreError::Unreachable;
    let connection = match tokio::time::timeout(FIRST_CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(options)).await
    {
        Err(_) => {
            return Err(unreachable(format!("Postgres did not answer within {} s", FIRST_CONNECT_TIMEOUT.as_secs())));
        }
        Ok(connection) => connection,
    };
    match connection {
        Ok(connection) => {
            let _ = connection.close().await;
            Ok(())
        }
        Err(sqlx::Error::Io(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => Err(unreachable(
            "Postgres refused the connection (is it running and listening on that host and port?)".into(),
        )),
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("3D000") => {
            let name = options.get_database().unwrap_or("agentry");
            Err(unreachable(format!(
                "database `{name}` does not exist (create it with `createdb {name}` or `CREATE DATABASE {name};`)"
            )))
        }
        Err(sqlx::Error::Database(err)) if matches!(err.code().as_deref(), Some("28P01" | "28000")) => {
            Err(unreachable(format!("the server refused the login: {}", err.message())))
        }
        Err(err) => Err(unreachable(format!("cannot connect to Postgres: {err}"))),
    }
}

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The database cannot be reached or used at all (the message says why and what to do).
    #[error("{0}")]
    Unreachable(String),
    /// A stored value could not be read back (e.g. an agent spec that no longer parses).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// A migration failed.
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        /// Migration number.
        version: i64,
        /// Migration file name.
        name: &'static str,
        /// The database error.
        source: sqlx::Error,
    },
}

impl StoreError {
    /// True when the database could not be reached (pool exhausted or closed, IO failure), as
    /// opposed to a statement that failed.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Unreachable(_)
                | StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
        )
    }

    /// True when a unique constraint refused the write (someone else wrote the row first).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::Database(err)) if err.is_unique_violation())
    }
}

/// Result alias of the store.
pub type StoreResult<T> = Result<T, StoreError>;

/// The open connection pools of one backend.
///
/// SQLite has one writer at a time, and a connection that finds the write lock taken *sleeps*
/// in SQLite's busy handler (1, 2, 5, 10 … ms), which stalls streams. So SQLite writes go through
/// a single-connection pool, where they queue without sleeping, and reads use a pool beside it.
#[derive(Debug, Clone)]
pub(crate) enum Db {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

impl Db {
    /// The statement that opens a read-then-write transaction of an operator path (agents, keys,
    /// budgets, tasks, schedules, datasets, migrations: what `agentry … apply`/`keys` also do from
    /// another process). On SQLite it is `BEGIN IMMEDIATE`: a deferred transaction that reads and
    /// then writes cannot wait for another process's writer (its snapshot is stale, so SQLite
    /// answers "database is locked" at once instead of using the busy timeout); taking the write
    /// lock up front makes it wait like any other write.
    ///
    /// The turn path (events, leases, rates, sockets, threads, budget windows, runs) keeps the
    /// deferred `pool.begin()`: measured with `agentry bench turns --sqlite-only`, IMMEDIATE there
    /// cost ~15 % of turns/s at 10 clients, and only the server writes those tables.
    pub(crate) fn begin_write(&self) -> &'static str {
        match self {
            Db::Sqlite { .. } => "BEGIN IMMEDIATE",
            Db::Postgres(_) => "BEGIN",
        }
    }
}

/// Runs the same expression on the store's read pool. The body is compiled once per backend, so
/// `sqlx` statements inside it are typed for that backend.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite { read: $pool, .. } => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Like [`on_pool!`] for statements that write (SQLite's single writer connection).
macro_rules! on_writer {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.db {
            $crate::Db::Sqlite { write: $pool, .. } => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_writer;

/// Agentry's persistent state. Cheap to clone (the pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: Db,
}

impl Store {
    /// Opens (creating an SQLite file if needed) and migrates the store.
    pub async fn open(location: &StoreLocation) -> StoreResult<Store> {
        let db = match location {
            StoreLocation::Sqlite(path) => {
                if let Some(parent) = path.parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Database(sqlx::Error::Configuration(
                            format!("cannot create data directory {}: {e}", parent.display()).into(),
                        ))
                    })?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                // Opened up front: opening a connection mid-turn stalls a stream for tens of ms.
                let write = SqlitePoolOptions::new()
                    .min_connections(1)
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect_with(options.clone())
                    .await?;
                // Readers scan large ranges (rollups, summaries): reading the file through a memory
                // map (256 MiB at most) instead of copying each page is ~40 % faster on 100,000 rows.
                let read = SqlitePoolOptions::new()
                    .min_connections(2)
                    .max_connections(8)
                    .connect_with(options.pragma("mmap_size", "268435456"))
                    .await?;
                Db::Sqlite { read, write }
            }
            StoreLocation::Postgres(url) => {
                let options = PgConnectOptions::from_str(url)?;
                check_postgres(&options).await?;
                Db::Postgres(
                    PgPoolOptions::new()
                        .max_connections(16)
                        .acquire_timeout(Duration::from_secs(10))
                        .connect_with(options)
                        .await?,
                )
            }
        };
        let store = Store { db };
        migrate::run(&store).await?;
        Ok(store)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.db {
            Db::Sqlite { .. } => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// A cheap round trip, for health checks.
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, |pool| sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    /// Closes every pooled connection (graceful shutdown).
    pub async fn close(&self) {
        match &self.db {
            Db::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Db::Postgres(pool) => pool.close().await,
        }
    }
}
