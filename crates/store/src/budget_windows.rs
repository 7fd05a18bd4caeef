//! What budget caps counted: spend, reservations and turns per cap, window and subject, and
//! the reservations of model calls in flight.
//!
//! Before a model call the engine reserves its largest possible cost in every window that
//! applies, each with one conditional update (`spent + reserved + amount <= limit`), all in one
//! transaction: concurrent calls on any replica can never take a window past its limit. When the
//! call ends, [`Store::settle_reservation`] swaps the reservation for the real cost and records
//! the call in the ledger, in one transaction, exactly once (the reservation row is deleted and
//! the ledger row is keyed by the call). A reservation whose turn died is released by
//! [`Store::release_stale_reservations`].
//!
//! A window opens (its row is written) the first time something counts in it, with what the
//! usage ledger already holds for its cap's subject and time span: a cap created in the middle
//! of a day counts that day's earlier spend too.

use agentry_core::budget::CapScope;
use agentry_core::{BudgetCap, MicroCents, Scope, Timestamp};
use serde::{Deserialize, Serialize};

use crate::ledger::ModelCall;
use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

/// One window of one cap, for one subject (`""`, or a user id for a per-user cap).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WindowRef {
    /// The cap.
    pub cap_id: String,
    /// The window (see [`agentry_core::Period::window_key`]).
    pub window_key: String,
    /// Whose window.
    pub subject: String,
}

/// The usage-ledger rows a window counts: its scope's calls, of one agent or one user if the
/// cap says so, that started in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerSpan {
    /// The tenancy.
    pub scope: Scope,
    /// Only this agent's calls.
    pub agent_id: Option<String>,
    /// Only this user's calls.
    pub user_id: Option<String>,
    /// The window's start.
    pub starts_at: Timestamp,
    /// The next window's start.
    pub ends_at: Timestamp,
}

/// A window something counts in, with the limit that applies (`None`: not limited, e.g. an
/// operator's override) and the ledger rows it opens with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    /// The window.
    pub window: WindowRef,
    /// Its limit now.
    pub limit: Option<i64>,
    /// What it counted before it opened.
    pub counts: LedgerSpan,
}

impl Charge {
    /// `cap`'s window at `at` for `subject` (see [`BudgetCap::subject_for`]), under `limit`.
    pub fn new(cap: &BudgetCap, subject: String, at: Timestamp, limit: Option<i64>) -> Charge {
        let (starts_at, ends_at) = cap.period.window_bounds(at);
        let counts = LedgerSpan {
            scope: cap.scope.clone(),
            agent_id: (cap.scope_type == CapScope::Agent).then(|| cap.target_id.clone()),
            user_id: match cap.scope_type {
                CapScope::User if cap.target_id == "*" => Some(subject.clone()),
                CapScope::User => Some(cap.target_id.clone()),
                CapScope::Scope | CapScope::Agent => None,
            },
            starts_at,
            ends_at,
        };
        Charge {
            window: WindowRef { cap_id: cap.id.clone(), window_key: cap.period.window_key(at), subject },
            limit,
            counts,
        }
    }
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

/// What a window that has not opened yet counts: the ledger's spend and turns in its span
/// (`$1`–`$3` the window, `$4`–`$10` its [`LedgerSpan`]; bound by [`bind_window!`]).
macro_rules! unopened_window {
    () => {
        "SELECT $1 AS cap_id, $2 AS window_key, $3 AS subject,
            CAST(COALESCE(SUM(cost_micro_cents), 0) AS BIGINT) AS spent_micro_cents,
            CAST(0 AS BIGINT) AS reserved_micro_cents, COUNT(DISTINCT turn_id) AS turns, '[]' AS alerted_json
         FROM model_calls
         WHERE organization_id = $4 AND project_id = $5 AND environment_id = $6
           AND started_at >= $7 AND started_at < $8
           AND ($9 IS NULL OR agent_id = $9) AND ($10 IS NULL OR user_id = $10)"
    };
}

/// Binds a charge's window and ledger span to [`unopened_window!`].
macro_rules! bind_window {
    ($query:expr, $charge:expr) => {{
        let charge: &Charge = $charge;
        $query
            .bind(&charge.window.cap_id)
            .bind(&charge.window.window_key)
            .bind(&charge.window.subject)
            .bind(&charge.counts.scope.organization_id)
            .bind(&charge.counts.scope.project_id)
            .bind(&charge.counts.scope.environment_id)
            .bind(charge.counts.starts_at.0)
            .bind(charge.counts.ends_at.0)
            .bind(&charge.counts.agent_id)
            .bind(&charge.counts.user_id)
    }};
}

/// Applies `$update` (a conditional update of the charge's window; its rows affected) and says
/// whether it took. A window that has not opened yet is opened first (once, whoever races).
macro_rules! take_window {
    ($tx:expr, $charge:expr, $update:expr) => {{
        let charge: &Charge = $charge;
        if $update == 1 {
            true
        } else if sqlx::query("SELECT 1 FROM budget_windows WHERE cap_id = $1 AND window_key = $2 AND subject = $3")
            .bind(&charge.window.cap_id)
            .bind(&charge.window.window_key)
            .bind(&charge.window.subject)
            .fetch_optional(&mut *$tx)
            .await?
            .is_some()
        {
            false
        } else {
            let open = concat!(
                "INSERT INTO budget_windows (cap_id, window_key, subject, spent_micro_cents, reserved_micro_cents, turns, alerted_json) ",
                unopened_window!(),
                " ON CONFLICT (cap_id, window_key, subject) DO NOTHING"
            );
            bind_window!(sqlx::query(open), charge).execute(&mut *$tx).await?;
            $update == 1
        }
    }};
}

impl Store {
    /// What the windows of these charges counted (a window that has not opened yet: what the
    /// ledger holds for it).
    pub async fn budget_windows(&self, charges: &[Charge]) -> StoreResult<Vec<WindowState>> {
        let mut out = Vec::with_capacity(charges.len());
        for charge in charges {
            let state = on_pool!(self, |pool| {
                let row = sqlx::query(
                    "SELECT spent_micro_cents, reserved_micro_cents, turns, alerted_json FROM budget_windows
                     WHERE cap_id = $1 AND window_key = $2 AND subject = $3",
                )
                .bind(&charge.window.cap_id)
                .bind(&charge.window.window_key)
                .bind(&charge.window.subject)
                .fetch_optional(pool)
                .await?;
                match row {
                    Some(row) => window_from_row(&row)?,
                    None => {
                        window_from_row(&bind_window!(sqlx::query(unopened_window!()), charge).fetch_one(pool).await?)?
                    }
                }
            });
            out.push(state);
        }
        Ok(out)
    }

    /// Counts a starting turn in its windows, unless one of them has reached its turn limit
    /// (`Err` names that cap; nothing is counted then).
    pub async fn count_turn(&self, charges: &[Charge]) -> StoreResult<Result<(), String>> {
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            for charge in charges {
                let counted = take_window!(
                    tx,
                    charge,
                    sqlx::query(
                        "UPDATE budget_windows SET turns = turns + 1
                         WHERE cap_id = $1 AND window_key = $2 AND subject = $3 AND ($4 IS NULL OR turns < $4)",
                    )
                    .bind(&charge.window.cap_id)
                    .bind(&charge.window.window_key)
                    .bind(&charge.window.subject)
                    .bind(charge.limit)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                );
                if !counted {
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
        let windows: Vec<&WindowRef> = reservation.charges.iter().map(|c| &c.window).collect();
        let windows = serde_json::to_string(&windows).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            for charge in &reservation.charges {
                // An open window takes the amount only if spent + reserved + amount still fits.
                let held = take_window!(
                    tx,
                    charge,
                    sqlx::query(
                        "UPDATE budget_windows SET reserved_micro_cents = reserved_micro_cents + $4
                         WHERE cap_id = $1 AND window_key = $2 AND subject = $3
                           AND ($5 IS NULL OR spent_micro_cents + reserved_micro_cents + $4 <= $5)",
                    )
                    .bind(&charge.window.cap_id)
                    .bind(&charge.window.window_key)
                    .bind(&charge.window.subject)
                    .bind(reservation.amount.0)
                    .bind(charge.limit)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                );
                if !held {
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
            let windows: Vec<WindowRef> =
                serde_json::from_str(&windows).map_err(|e| StoreError::Corrupt(format!("reservation: {e}")))?;
            on_writer!(self, |pool| {
                let mut tx = pool.begin().await?;
                let gone = sqlx::query("DELETE FROM budget_reservations WHERE id = $1")
                    .bind(&id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if gone == 1 {
                    for window in &windows {
                        sqlx::query(
                            "UPDATE budget_windows SET reserved_micro_cents = reserved_micro_cents - $4
                             WHERE cap_id = $1 AND window_key = $2 AND subject = $3",
                        )
                        .bind(&window.cap_id)
                        .bind(&window.window_key)
                        .bind(&window.subject)
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
