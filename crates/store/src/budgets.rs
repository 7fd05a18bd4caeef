//! Budget caps and what they counted: caps per scope, spend and turns per window, and the
//! reservations of model calls in flight.
//!
//! Before a model call the engine reserves its largest possible cost in every window that
//! applies, each with one conditional update (`spent + reserved + amount <= limit`), all in one
//! transaction: concurrent calls on any replica can never take a window past its limit. When the
//! call ends, [`Store::settle_reservation`] swaps the reservation for the real cost and records
//! the call in the ledger, in one transaction, exactly once (the reservation row is deleted and
//! the ledger row is keyed by the call). A reservation whose turn died is released by
//! [`Store::release_stale_reservations`].

use agentry_core::budget::CapScope;
use agentry_core::{BudgetCap, MicroCents, Period, Scope, Timestamp};
use serde::{Deserialize, Serialize};

use crate::ledger::ModelCall;
use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

/// One window of one cap, for one subject (`""`, or a user id for a per-user cap).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WindowRef {
    /// The cap.
    pub cap_id: String,
    /// The window (see [`Period::window_key`]).
    pub window_key: String,
    /// Whose window.
    pub subject: String,
}

/// A window a reservation is held against, with the limit that applies (`None`: not limited,
/// e.g. an operator's override).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    /// The window.
    pub window: WindowRef,
    /// Its limit now.
    pub limit: Option<i64>,
}

/// A model call's reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The model call's id (the ledger row it becomes).
    pub id: String,
    /// The turn making the call.
    pub turn_id: String,
    /// The fencing token of the replica making it.
    pub lease_token: i64,
    /// The largest possible cost of the call.
    pub amount: MicroCents,
    /// Settling it also counts the turn in its windows (its first call, when no cap limits
    /// turns).
    pub count_turn: bool,
    /// The windows it counts in.
    pub charges: Vec<Charge>,
}

/// What a window counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WindowState {
    /// Real spend.
    pub spent: MicroCents,
    /// Reservations of calls in flight.
    pub reserved: MicroCents,
    /// Turns started.
    pub turns: i64,
    /// Thresholds already announced.
    pub alerted: Vec<u32>,
}

/// A threshold a window crossed when a call was settled: announce it (once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossed {
    /// The window.
    pub window: WindowRef,
    /// The threshold, in percent of the limit.
    pub threshold: u32,
    /// Spend in the window after the call.
    pub spent: MicroCents,
    /// The limit.
    pub limit: MicroCents,
}

const CAP_COLUMNS: &str = "id, organization_id, project_id, environment_id, scope_type, target_id, period,
    limit_micro_cents, turns_limit, alert_thresholds_json, alert_webhook_url, alert_emails_json, enabled,
    override_until, override_by, created_at, updated_at";

impl Store {
    /// Creates a cap, or replaces the one with the same scope type, target and period; returns it
    /// as stored.
    pub async fn upsert_budget_cap(&self, cap: &BudgetCap) -> StoreResult<BudgetCap> {
        let (thresholds, emails) = (json_list(&cap.alert_thresholds), json_list(&cap.alert_emails));
        on_writer!(self, |pool| {
            let sql = format!(
                "INSERT INTO budget_caps ({CAP_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
                 ON CONFLICT (organization_id, project_id, environment_id, scope_type, target_id, period) DO UPDATE SET
                    limit_micro_cents = excluded.limit_micro_cents, turns_limit = excluded.turns_limit,
                    alert_thresholds_json = excluded.alert_thresholds_json,
                    alert_webhook_url = excluded.alert_webhook_url, alert_emails_json = excluded.alert_emails_json,
                    enabled = excluded.enabled, updated_at = excluded.updated_at"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&cap.id)
                .bind(&cap.scope.organization_id)
                .bind(&cap.scope.project_id)
                .bind(&cap.scope.environment_id)
                .bind(cap.scope_type.as_str())
                .bind(&cap.target_id)
                .bind(cap.period.as_str())
                .bind(cap.limit.0)
                .bind(cap.turns_limit)
                .bind(&thresholds)
                .bind(&cap.alert_webhook_url)
                .bind(&emails)
                .bind(i64::from(cap.enabled))
                .bind(cap.override_until.map(|t| t.0))
                .bind(&cap.override_by)
                .bind(cap.created_at.0)
                .bind(cap.updated_at.0)
                .execute(pool)
                .await?;
        });
        let sql = format!(
            "SELECT {CAP_COLUMNS} FROM budget_caps
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3
               AND scope_type = $4 AND target_id = $5 AND period = $6"
        );
        on_writer!(self, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&cap.scope.organization_id)
                .bind(&cap.scope.project_id)
                .bind(&cap.scope.environment_id)
                .bind(cap.scope_type.as_str())
                .bind(&cap.target_id)
                .bind(cap.period.as_str())
                .fetch_one(pool)
                .await?;
            cap_from_row(&row)
        })
    }

    /// Changes a cap of a scope by id (its scope type, target and period too); returns it, or
    /// `None` when it does not exist. Another cap with the same scope type, target and period is
    /// a unique violation.
    pub async fn update_budget_cap(&self, cap: &BudgetCap) -> StoreResult<Option<BudgetCap>> {
        let (thresholds, emails) = (json_list(&cap.alert_thresholds), json_list(&cap.alert_emails));
        let changed = on_writer!(self, |pool| {
            sqlx::query(
                "UPDATE budget_caps SET scope_type = $5, target_id = $6, period = $7, limit_micro_cents = $8,
                    turns_limit = $9, alert_thresholds_json = $10, alert_webhook_url = $11, alert_emails_json = $12,
                    enabled = $13, updated_at = $14
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4",
            )
            .bind(&cap.scope.organization_id)
            .bind(&cap.scope.project_id)
            .bind(&cap.scope.environment_id)
            .bind(&cap.id)
            .bind(cap.scope_type.as_str())
            .bind(&cap.target_id)
            .bind(cap.period.as_str())
            .bind(cap.limit.0)
            .bind(cap.turns_limit)
            .bind(&thresholds)
            .bind(&cap.alert_webhook_url)
            .bind(&emails)
            .bind(i64::from(cap.enabled))
            .bind(cap.updated_at.0)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 0 {
            return Ok(None);
        }
        self.get_budget_cap(&cap.scope, &cap.id).await
    }

    /// The caps of a scope, oldest first.
    pub async fn list_budget_caps(&self, scope: &Scope) -> StoreResult<Vec<BudgetCap>> {
        let sql = format!(
            "SELECT {CAP_COLUMNS} FROM budget_caps
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 ORDER BY created_at, id"
        );
        on_pool!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(cap_from_row)
                .collect()
        })
    }

    /// One cap of a scope.
    pub async fn get_budget_cap(&self, scope: &Scope, id: &str) -> StoreResult<Option<BudgetCap>> {
        Ok(self.list_budget_caps(scope).await?.into_iter().find(|c| c.id == id))
    }

    /// Deletes a cap of a scope (and what it counted); returns whether it existed.
    pub async fn delete_budget_cap(&self, scope: &Scope, id: &str) -> StoreResult<bool> {
        let deleted = on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query(
                "DELETE FROM budget_caps
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if deleted == 1 {
                sqlx::query("DELETE FROM budget_windows WHERE cap_id = $1").bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            deleted
        });
        Ok(deleted == 1)
    }

    /// Lifts (until `until`) or restores (`None`) a cap's block; returns the cap, if it exists.
    pub async fn set_budget_override(
        &self,
        scope: &Scope,
        id: &str,
        until: Option<Timestamp>,
        by: &str,
    ) -> StoreResult<Option<BudgetCap>> {
        let changed = on_writer!(self, |pool| {
            sqlx::query(
                "UPDATE budget_caps SET override_until = $5, override_by = $6, updated_at = $7
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(id)
            .bind(until.map(|t| t.0))
            .bind(until.map(|_| by))
            .bind(Timestamp::now().0)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 0 {
            return Ok(None);
        }
        self.get_budget_cap(scope, id).await
    }

    /// What the windows counted (a window nothing was counted in yet is all zeros).
    pub async fn budget_windows(&self, windows: &[WindowRef]) -> StoreResult<Vec<WindowState>> {
        let mut out = Vec::with_capacity(windows.len());
        for window in windows {
            let row = on_pool!(self, |pool| {
                sqlx::query(
                    "SELECT spent_micro_cents, reserved_micro_cents, turns, alerted_json FROM budget_windows
                     WHERE cap_id = $1 AND window_key = $2 AND subject = $3",
                )
                .bind(&window.cap_id)
                .bind(&window.window_key)
                .bind(&window.subject)
                .fetch_optional(pool)
                .await?
                .map(|row| window_from_row(&row))
                .transpose()?
            });
            out.push(row.unwrap_or_default());
        }
        Ok(out)
    }

    /// Counts a starting turn in its windows, unless one of them has reached its turn limit
    /// (`Err` names that cap; nothing is counted then).
    pub async fn count_turn(&self, charges: &[Charge]) -> StoreResult<Result<(), String>> {
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            for charge in charges {
                let counted = sqlx::query(
                    "INSERT INTO budget_windows (cap_id, window_key, subject, spent_micro_cents, reserved_micro_cents, turns, alerted_json)
                     SELECT $1, $2, $3, 0, 0, 1, '[]' WHERE $4 IS NULL OR $4 >= 1
                     ON CONFLICT (cap_id, window_key, subject) DO UPDATE SET turns = budget_windows.turns + 1
                     WHERE $4 IS NULL OR budget_windows.turns < $4",
                )
                .bind(&charge.window.cap_id)
                .bind(&charge.window.window_key)
                .bind(&charge.window.subject)
                .bind(charge.limit)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if counted == 0 {
                    return Ok(Err(charge.window.cap_id.clone()));
                }
            }
            tx.commit().await?;
        });
        Ok(Ok(()))
    }

    /// Reserves a call's largest possible cost in every window, or in none: `Err` names the
    /// first cap it would take past its limit.
    pub async fn reserve_budget(&self, reservation: &Reservation) -> StoreResult<Result<(), String>> {
        let windows = serde_json::to_string(&reservation.charges).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            for charge in &reservation.charges {
                // One statement: a new window takes the amount if it fits the limit at all; an
                // existing one only if spent + reserved + amount still fits.
                let held = sqlx::query(
                    "INSERT INTO budget_windows (cap_id, window_key, subject, spent_micro_cents, reserved_micro_cents, turns, alerted_json)
                     SELECT $1, $2, $3, 0, $4, 0, '[]' WHERE $5 IS NULL OR $4 <= $5
                     ON CONFLICT (cap_id, window_key, subject) DO UPDATE
                       SET reserved_micro_cents = budget_windows.reserved_micro_cents + excluded.reserved_micro_cents
                       WHERE $5 IS NULL
                          OR budget_windows.spent_micro_cents + budget_windows.reserved_micro_cents + excluded.reserved_micro_cents <= $5",
                )
                .bind(&charge.window.cap_id)
                .bind(&charge.window.window_key)
                .bind(&charge.window.subject)
                .bind(reservation.amount.0)
                .bind(charge.limit)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if held == 0 {
                    return Ok(Err(charge.window.cap_id.clone()));
                }
            }
            sqlx::query(
                "INSERT INTO budget_reservations (id, turn_id, lease_token, amount_micro_cents, windows_json, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&reservation.id)
            .bind(&reservation.turn_id)
            .bind(reservation.lease_token)
            .bind(reservation.amount.0)
            .bind(&windows)
            .bind(Timestamp::now().0)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(Ok(()))
    }

    /// Ends a call: records it in the ledger (once: the row is keyed by the call), swaps its
    /// reservation (if still held) for its real cost in every window, and returns the alert
    /// thresholds this crossed — each window announces a threshold once.
    pub async fn settle_reservation(
        &self,
        reservation: &Reservation,
        call: &ModelCall,
        thresholds: &[(String, Vec<u32>)],
    ) -> StoreResult<Vec<Crossed>> {
        let mut crossed = Vec::new();
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let released = sqlx::query("DELETE FROM budget_reservations WHERE id = $1")
                .bind(&reservation.id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let recorded = crate::ledger::insert_model_call!(&mut *tx, call).rows_affected();
            let (unreserve, spend, turns) = (
                if released == 1 { reservation.amount.0 } else { 0 },
                if recorded == 1 { call.usage.cost.0 } else { 0 },
                i64::from(recorded == 1 && reservation.count_turn),
            );
            for charge in &reservation.charges {
                let w = &charge.window;
                let row = sqlx::query(
                    "UPDATE budget_windows SET reserved_micro_cents = reserved_micro_cents - $4,
                        spent_micro_cents = spent_micro_cents + $5, turns = turns + $6
                     WHERE cap_id = $1 AND window_key = $2 AND subject = $3
                     RETURNING spent_micro_cents, reserved_micro_cents, turns, alerted_json",
                )
                .bind(&w.cap_id)
                .bind(&w.window_key)
                .bind(&w.subject)
                .bind(unreserve)
                .bind(spend)
                .bind(turns)
                .fetch_optional(&mut *tx)
                .await?;
                let (Some(row), Some(limit)) = (row, charge.limit) else { continue };
                let state = window_from_row(&row)?;
                let wanted =
                    thresholds.iter().find(|(cap, _)| *cap == w.cap_id).map(|(_, t)| t.as_slice()).unwrap_or(&[]);
                let newly: Vec<u32> = wanted
                    .iter()
                    .copied()
                    .filter(|t| !state.alerted.contains(t) && limit > 0 && state.spent.0 * 100 >= limit * i64::from(*t))
                    .collect();
                if newly.is_empty() {
                    continue;
                }
                let mut alerted = state.alerted.clone();
                alerted.extend(&newly);
                sqlx::query("UPDATE budget_windows SET alerted_json = $4 WHERE cap_id = $1 AND window_key = $2 AND subject = $3")
                    .bind(&w.cap_id)
                    .bind(&w.window_key)
                    .bind(&w.subject)
                    .bind(serde_json::to_string(&alerted).unwrap_or_default())
                    .execute(&mut *tx)
                    .await?;
                crossed.extend(newly.into_iter().map(|threshold| Crossed {
                    window: w.clone(),
                    threshold,
                    spent: state.spent,
                    limit: MicroCents(limit),
                }));
            }
            tx.commit().await?;
        });
        Ok(crossed)
    }

    /// Releases the reservations of calls whose turn no longer runs under the lease that made
    /// them (its replica died, or the turn ended without settling): returns how many went.
    pub async fn release_stale_reservations(&self) -> StoreResult<usize> {
        let stale: Vec<(String, i64, String)> = on_pool!(self, |pool| {
            let sql = format!(
                "SELECT r.id, r.amount_micro_cents, r.windows_json FROM budget_reservations r
                 LEFT JOIN turns t ON t.id = r.turn_id
                 WHERE t.id IS NULL OR t.status <> 'running' OR t.lease_token <> r.lease_token
                    OR t.lease_expires_at < {now}",
                now = self.now_sql()
            );
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await?
        });
        let mut released = 0;
        for (id, amount, windows) in stale {
            let charges: Vec<Charge> =
                serde_json::from_str(&windows).map_err(|e| StoreError::Corrupt(format!("reservation: {e}")))?;
            on_writer!(self, |pool| {
                let mut tx = pool.begin().await?;
                let gone = sqlx::query("DELETE FROM budget_reservations WHERE id = $1")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if gone == 1 {
                    for charge in &charges {
                        sqlx::query(
                            "UPDATE budget_windows SET reserved_micro_cents = reserved_micro_cents - $4
                             WHERE cap_id = $1 AND window_key = $2 AND subject = $3",
                        )
                        .bind(&charge.window.cap_id)
                        .bind(&charge.window.window_key)
                        .bind(&charge.window.subject)
                        .bind(amount)
                        .execute(&mut *tx)
                        .await?;
                    }
                    released += 1;
                }
                tx.commit().await?;
            });
        }
        Ok(released)
    }

    /// Turns parked until a budget allows them again.
    pub async fn turns_waiting_for_budget(&self) -> StoreResult<Vec<agentry_core::Turn>> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {} FROM turns WHERE status = 'waiting' AND wait_reason = 'budget' ORDER BY created_at",
                crate::turns::TURN_COLUMNS
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_all(pool)
                .await?
                .iter()
                .map(crate::turns::turn_from_row)
                .collect()
        })
    }
}

fn window_from_row(row: &impl RowExt) -> StoreResult<WindowState> {
    Ok(WindowState {
        spent: MicroCents(row.int("spent_micro_cents")?),
        reserved: MicroCents(row.int("reserved_micro_cents")?),
        turns: row.int("turns")?,
        alerted: serde_json::from_str(&row.text("alerted_json")?).unwrap_or_default(),
    })
}

fn cap_from_row(row: &impl RowExt) -> StoreResult<BudgetCap> {
    let text = |column: &str| row.text(column);
    let corrupt = |what: &str, value: String| StoreError::Corrupt(format!("budget cap {what} `{value}`"));
    let scope_type = text("scope_type")?;
    let period = text("period")?;
    Ok(BudgetCap {
        id: text("id")?,
        scope: Scope::new(text("organization_id")?, text("project_id")?, text("environment_id")?),
        scope_type: CapScope::parse(&scope_type).ok_or_else(|| corrupt("scope type", scope_type.clone()))?,
        target_id: text("target_id")?,
        period: Period::parse(&period).ok_or_else(|| corrupt("period", period.clone()))?,
        limit: MicroCents(row.int("limit_micro_cents")?),
        turns_limit: row.opt_int("turns_limit")?,
        alert_thresholds: serde_json::from_str(&text("alert_thresholds_json")?).unwrap_or_default(),
        alert_webhook_url: row.opt_text("alert_webhook_url")?,
        alert_emails: serde_json::from_str(&text("alert_emails_json")?).unwrap_or_default(),
        enabled: row.int("enabled")? != 0,
        override_until: row.opt_int("override_until")?.map(Timestamp),
        override_by: row.opt_text("override_by")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

/// The stored JSON text of a small list.
fn json_list<T: Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}
