//! Message rate limits, counted in the store so they hold on every replica.
//!
//! [`Store::take_rate`] counts one message against every window that applies (a user's minute,
//! hour and day, an org's minute and day) and a user's concurrent turns, in one transaction:
//! either all count it, or none does and the caller learns which limit refused it and when that
//! window ends.

use agentry_core::{Scope, Timestamp};

use crate::{Store, StoreResult, on_writer};

/// One limited count: `key` in windows of `window_ms`, at most `limit` per window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateWindow {
    /// What is counted, e.g. `user:<org>/<project>/<env>/<user>:minute`.
    pub key: String,
    /// Window length.
    pub window_ms: i64,
    /// Messages allowed per window.
    pub limit: i64,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateRefusal {
    /// A window is full: this one, until its end.
    Window {
        /// The window refused.
        window: RateWindow,
        /// Milliseconds until it ends.
        retry_after_ms: i64,
    },
    /// The user has this many turns unfinished already.
    Concurrent {
        /// The limit.
        limit: i64,
    },
}

impl Store {
    /// Counts a message of `user_id` in every window, unless one is full or the user already has
    /// `concurrent` unfinished turns in the scope.
    pub async fn take_rate(
        &self,
        windows: &[RateWindow],
        concurrent: Option<(&Scope, &str, i64)>,
    ) -> StoreResult<Result<(), RateRefusal>> {
        let now = Timestamp::now().0;
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            if let Some((scope, user_id, limit)) = concurrent {
                // The user's own lock row: two replicas counting the same user's turns take turns.
                let key = format!(
                    "concurrent:{}/{}/{}/{user_id}",
                    scope.organization_id, scope.project_id, scope.environment_id
                );
                sqlx::query(
                    "INSERT INTO rate_counters (counter_key, window_start, count) VALUES ($1, 0, 0)
                     ON CONFLICT (counter_key, window_start) DO UPDATE SET count = rate_counters.count",
                )
                .bind(&key)
                .execute(&mut *tx)
                .await?;
                let unfinished: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM turns
                     WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND user_id = $4
                       AND status IN ('queued', 'running', 'waiting')",
                )
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?;
                if unfinished >= limit {
                    return Ok(Err(RateRefusal::Concurrent { limit }));
                }
            }
            for window in windows {
                let start = now - now.rem_euclid(window.window_ms.max(1));
                let counted = sqlx::query(
                    "INSERT INTO rate_counters (counter_key, window_start, count) VALUES ($1, $2, 1)
                     ON CONFLICT (counter_key, window_start) DO UPDATE SET count = rate_counters.count + 1
                     WHERE rate_counters.count < $3",
                )
                .bind(&window.key)
                .bind(start)
                .bind(window.limit)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if counted == 0 || window.limit <= 0 {
                    let retry_after_ms = start + window.window_ms - now;
                    return Ok(Err(RateRefusal::Window { window: window.clone(), retry_after_ms }));
                }
            }
            tx.commit().await?;
        });
        Ok(Ok(()))
    }

    /// Forgets windows that ended before `before`.
    pub async fn purge_rate_counters(&self, before: Timestamp) -> StoreResult<()> {
        on_writer!(self, |pool| {
            sqlx::query("DELETE FROM rate_counters WHERE window_start > 0 AND window_start < $1")
                .bind(before.0)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
