//! Embedded schema migrations, applied in order at open.
//!
//! Each migration runs in its own transaction together with its bookkeeping row. On Postgres a
//! transaction-scoped advisory lock serialises replicas that start at the same time.

use crate::{Db, Store, StoreError, StoreResult, on_writer};

/// A migration: its number, its file name and its SQL.
struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// The migrations, in order. The SQL is portable (`TEXT`, `BIGINT`, `$n`), so both backends run
/// the same files; a backend-specific migration would get its own list when one is needed.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "0001_foundation.sql", sql: include_str!("../migrations/0001_foundation.sql") },
    Migration { version: 2, name: "0002_turns.sql", sql: include_str!("../migrations/0002_turns.sql") },
    Migration { version: 3, name: "0003_tools.sql", sql: include_str!("../migrations/0003_tools.sql") },
    Migration { version: 4, name: "0004_scoped_tokens.sql", sql: include_str!("../migrations/0004_scoped_tokens.sql") },
    Migration { version: 5, name: "0005_contents.sql", sql: include_str!("../migrations/0005_contents.sql") },
    Migration { version: 6, name: "0006_datasets.sql", sql: include_str!("../migrations/0006_datasets.sql") },
    Migration { version: 7, name: "0007_recordings.sql", sql: include_str!("../migrations/0007_recordings.sql") },
    Migration { version: 8, name: "0008_replicas.sql", sql: include_str!("../migrations/0008_replicas.sql") },
    Migration { version: 9, name: "0009_budgets.sql", sql: include_str!("../migrations/0009_budgets.sql") },
    Migration { version: 10, name: "0010_rate_limits.sql", sql: include_str!("../migrations/0010_rate_limits.sql") },
    Migration { version: 11, name: "0011_traces.sql", sql: include_str!("../migrations/0011_traces.sql") },
    Migration { version: 12, name: "0012_tasks.sql", sql: include_str!("../migrations/0012_tasks.sql") },
    Migration { version: 13, name: "0013_api_key_orgs.sql", sql: include_str!("../migrations/0013_api_key_orgs.sql") },
    Migration {
        version: 14,
        name: "0014_dashboard_sessions.sql",
        sql: include_str!("../migrations/0014_dashboard_sessions.sql"),
    },
    Migration { version: 15, name: "0015_turn_openers.sql", sql: include_str!("../migrations/0015_turn_openers.sql") },
];

/// Arbitrary constant identifying Agentry's migration lock.
const PG_MIGRATION_LOCK: i64 = 0x0061_6765_6e74_7279; // "agentry" in ASCII

const CREATE_BOOKKEEPING: &str = "CREATE TABLE IF NOT EXISTS agentry_migrations (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

/// Applies every migration not yet recorded.
pub async fn run(store: &Store) -> StoreResult<()> {
    // IMMEDIATE on SQLite takes the write lock up front, so two processes cannot both apply one.
    let begin = store.db.begin_write();
    let is_postgres = matches!(store.db, Db::Postgres(_));
    for m in MIGRATIONS {
        on_writer!(store, |pool| {
            let mut tx = pool.begin_with(begin).await?;
            if is_postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_MIGRATION_LOCK).execute(&mut *tx).await?;
            }
            sqlx::query(CREATE_BOOKKEEPING).execute(&mut *tx).await?;
            let applied: Option<i64> = sqlx::query_scalar("SELECT version FROM agentry_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?;
            if applied.is_none() {
                let failed = |source| StoreError::Migration { version: m.version, name: m.name, source };
                sqlx::raw_sql(m.sql).execute(&mut *tx).await.map_err(failed)?;
                sqlx::query("INSERT INTO agentry_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                    .bind(m.version)
                    .bind(m.name)
                    .bind(agentry_core::Timestamp::now().0)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                tracing::info!(version = m.version, name = m.name, "applied migration");
            }
            tx.commit().await?;
        });
    }
    Ok(())
}
