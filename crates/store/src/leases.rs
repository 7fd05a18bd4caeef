//! Which replica runs which turn: claims and fenced leases, decided in the database.
//!
//! A turn runs only after a replica *claims* it: one conditional update moves it from `queued`
//! to `running`, records the owner, takes a lease that ends at the database's clock + the lease
//! length, and increments the turn's fencing token. Every later write of the run carries the
//! [`Lease`] and is refused once the token has moved on (another replica took the turn over), so
//! a replica that lost a turn can never overwrite what its successor did.
//!
//! - [`Store::claim_queued_turns`]: the oldest queued turn of each thread that has no running or
//!   waiting turn (Postgres: `FOR UPDATE SKIP LOCKED`; SQLite: its single writer). A partial
//!   unique index makes a second active turn of a thread impossible whatever the code does.
//! - [`Store::renew_leases`]: one statement per replica renews all its unexpired leases and says
//!   which of its turns were asked to stop.
//! - [`Store::take_over_expired_turns`]: running turns whose lease ran out (their replica died).
//! - [`Store::request_cancel`] then [`Store::cancel_idle_turns`]: cancel anywhere. The request
//!   marks the thread's unfinished turns in one statement; a marked turn is never claimed nor
//!   parked, so whatever it was doing the mark reaches it.
//! - [`Store::finish_turn`]: the final state and the answer, in one fenced transaction.

use agentry_core::{ContentItem, Message, Scope, Turn, TurnInput, TurnStatus};

use crate::contents::{encode_contents, insert_contents};
use crate::row::RowExt;
use crate::threads::{encode_tool_steps, insert_message};
use crate::turns::{TURN_COLUMNS, turn_from_row};
use crate::{Db, Store, StoreError, StoreResult, on_writer};

/// A replica's hold on a turn: writes carrying it are refused once `token` is no longer the
/// turn's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The turn held.
    pub turn_id: String,
    /// The replica holding it.
    pub owner: String,
    /// The fencing token taken with the claim.
    pub token: i64,
}

/// A turn a replica just took.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The turn as it is now.
    pub turn: Turn,
    /// The replica's lease on it.
    pub lease: Lease,
    /// Someone asked to stop it.
    pub cancel_requested: bool,
}

/// A lease as [`Store::renew_leases`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLease {
    /// The turn.
    pub turn_id: String,
    /// Its current fencing token.
    pub token: i64,
    /// Someone asked to stop it.
    pub cancel_requested: bool,
}

/// The end of a turn, written by [`Store::finish_turn`].
#[derive(Debug)]
pub struct Finish<'a> {
    /// The final state.
    pub status: TurnStatus,
    /// The recorded cause of a failure.
    pub error: Option<&'a str>,
    /// The answer to store with it (message and content items), if any.
    pub answer: Option<(&'a Message, &'a [ContentItem])>,
}

/// What [`Store::park_turn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parked {
    /// The turn waits.
    Parked,
    /// Someone asked to stop the turn: it was not parked, the caller ends it.
    CancelRequested,
    /// The lease was lost: the turn is someone else's.
    LeaseLost,
}

/// A turn [`Store::request_cancel`] asked to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequested {
    /// The turn.
    pub turn_id: String,
    /// Whether it is running (on `owner`).
    pub running: bool,
    /// The replica holding it, if any.
    pub owner: Option<String>,
}

/// How [`Store::submit_turn`] records a turn.
#[derive(Debug, Clone, Copy, Default)]
pub struct SubmitPolicy {
    /// Refuse the turn (store it failed, `turn_in_progress`) when its thread has an unfinished
    /// turn.
    pub reject_if_busy: bool,
    /// When its thread is idle, claim the turn at once for the submitting replica with a lease of
    /// this many milliseconds (no trip through the queue).
    pub start_lease_ms: Option<i64>,
}

/// How [`Store::submit_turn`] recorded a turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// Queued: it runs when its thread is free.
    Queued,
    /// Its thread was idle: it is running already, under this lease of the submitter's.
    Started(Lease),
    /// The thread was busy and the turn asked to be refused then: it is stored `failed`
    /// (`turn_in_progress`) and the caller holds this lease to write its events.
    Rejected(Lease),
}

const CLAIMED_COLUMNS: &str = "lease_token, cancel_requested";
/// Turns renewed per statement.
const RENEWALS_PER_STATEMENT: usize = 500;

impl Store {
    /// The database's clock in Unix milliseconds, as SQL: leases are measured on one clock
    /// whatever the replicas' clocks say.
    pub(crate) fn now_sql(&self) -> &'static str {
        match self.db {
            Db::Sqlite { .. } => "CAST(unixepoch('subsec') * 1000 AS INTEGER)",
            Db::Postgres(_) => "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT",
        }
    }

    /// `FOR UPDATE SKIP LOCKED` on Postgres (nothing on SQLite, whose writer is single).
    fn skip_locked(&self) -> &'static str {
        match self.db {
            Db::Sqlite { .. } => "",
            Db::Postgres(_) => "FOR UPDATE SKIP LOCKED",
        }
    }

    /// Records a new turn: queued, or — as `policy` asks — refused when its thread is busy, or
    /// started at once for `owner` when its thread is idle. Each is decided atomically: the busy
    /// check under the thread's row lock, the start by the one-active-turn index (a second
    /// running turn of a thread is not inserted, and the turn is queued instead).
    pub async fn submit_turn(&self, turn: &Turn, policy: SubmitPolicy, owner: &str) -> StoreResult<Submitted> {
        let input = serde_json::to_string(&turn.input).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = self.now_sql();
        let insert = |status: &str, finished: bool, leased: bool| {
            format!(
                "INSERT INTO turns ({TURN_COLUMNS}, lease_owner, lease_token, lease_expires_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7, '{status}', NULL, $8, $9, $10, $11, {started}, {finished}, NULL,
                        {owner}, {token}, {expires}",
                started = if leased { now } else { "NULL" },
                finished = if finished { now } else { "NULL" },
                owner = if finished || leased { "$12" } else { "NULL" },
                token = if finished || leased { 1 } else { 0 },
                expires = if leased { format!("{now} + $13") } else { "NULL".to_owned() },
            )
        };
        let start = format!(
            "{} WHERE NOT EXISTS (SELECT 1 FROM turns q WHERE q.thread_id = $2 AND q.status = 'queued')
             ON CONFLICT (thread_id) WHERE status IN ('running', 'waiting') DO NOTHING",
            insert("running", false, true)
        );
        let (queue, refuse) = (insert("queued", false, false), insert("failed", true, false));
        let submitted = on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            macro_rules! run {
                ($sql:expr, $error:expr) => {
                    sqlx::query(sqlx::AssertSqlSafe($sql))
                        .bind(&turn.id)
                        .bind(&turn.thread_id)
                        .bind(&turn.scope.organization_id)
                        .bind(&turn.scope.project_id)
                        .bind(&turn.scope.environment_id)
                        .bind(&turn.user_id)
                        .bind(&turn.agent_id)
                        .bind($error)
                        .bind(&input)
                        .bind(&turn.idempotency_key)
                        .bind(turn.created_at.0)
                        .bind(owner)
                        .bind(policy.start_lease_ms.unwrap_or(0))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                };
            }
            let mut busy = false;
            if policy.reject_if_busy {
                // Locks the thread's row (Postgres) or takes the write lock (SQLite): concurrent
                // submits to one thread decide one after the other.
                sqlx::query("UPDATE threads SET updated_at = updated_at WHERE id = $1")
                    .bind(&turn.thread_id)
                    .execute(&mut *tx)
                    .await?;
                busy = sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM turns WHERE thread_id = $1 AND status IN ('queued', 'running', 'waiting')",
                )
                .bind(&turn.thread_id)
                .fetch_one(&mut *tx)
                .await?
                    > 0;
            }
            let submitted = if busy {
                run!(refuse.clone(), Some("turn_in_progress"));
                Submitted::Rejected(Lease { turn_id: turn.id.clone(), owner: owner.to_owned(), token: 1 })
            } else if policy.start_lease_ms.is_some() && run!(start.clone(), None::<&str>) == 1 {
                Submitted::Started(Lease { turn_id: turn.id.clone(), owner: owner.to_owned(), token: 1 })
            } else {
                run!(queue.clone(), None::<&str>);
                Submitted::Queued
            };
            tx.commit().await?;
            submitted
        });
        Ok(submitted)
    }

    /// Claims up to `limit` queued turns for `owner`: for each thread with no running or waiting
    /// turn, its oldest queued one, moved to `running` under a new lease of `lease_ms`.
    pub async fn claim_queued_turns(&self, owner: &str, lease_ms: i64, limit: i64) -> StoreResult<Vec<Claimed>> {
        let now = self.now_sql();
        let sql = format!(
            "UPDATE turns SET status = 'running', lease_owner = $1, lease_token = lease_token + 1,
                 lease_expires_at = {now} + $2, started_at = COALESCE(started_at, {now})
             WHERE id IN (
                 SELECT t.id FROM turns t
                 WHERE t.status = 'queued' AND t.cancel_requested = 0
                   AND NOT EXISTS (SELECT 1 FROM turns a
                                   WHERE a.thread_id = t.thread_id AND a.status IN ('running', 'waiting'))
                   AND NOT EXISTS (SELECT 1 FROM turns q
                                   WHERE q.thread_id = t.thread_id AND q.status = 'queued'
                                     AND (q.created_at < t.created_at OR (q.created_at = t.created_at AND q.id < t.id)))
                 ORDER BY t.created_at, t.id
                 LIMIT $3
                 {skip_locked})
             RETURNING {TURN_COLUMNS}, {CLAIMED_COLUMNS}",
            skip_locked = self.skip_locked(),
        );
        self.claim(sql, owner, lease_ms, limit).await
    }

    /// Takes over up to `limit` running turns whose lease expired (their replica died or lost
    /// touch): a new lease for `owner`, a new fencing token. The caller resumes or ends each.
    pub async fn take_over_expired_turns(&self, owner: &str, lease_ms: i64, limit: i64) -> StoreResult<Vec<Claimed>> {
        let now = self.now_sql();
        let sql = format!(
            "UPDATE turns SET lease_owner = $1, lease_token = lease_token + 1, lease_expires_at = {now} + $2
             WHERE id IN (
                 SELECT id FROM turns WHERE status = 'running' AND lease_expires_at < {now}
                 ORDER BY lease_expires_at LIMIT $3
                 {skip_locked})
             RETURNING {TURN_COLUMNS}, {CLAIMED_COLUMNS}",
            skip_locked = self.skip_locked(),
        );
        self.claim(sql, owner, lease_ms, limit).await
    }

    async fn claim(&self, sql: String, owner: &str, lease_ms: i64, limit: i64) -> StoreResult<Vec<Claimed>> {
        on_writer!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(owner)
                .bind(lease_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| claimed_from_row(row, owner))
                .collect()
        })
    }

    /// Renews `owner`'s leases on the running turns `turn_ids` (the turns it runs) by `lease_ms`,
    /// and returns them. A lease that ran out is renewed too as long as nobody took the turn over
    /// (the token did not move, so nobody else wrote): a replica that was slow to renew keeps its
    /// turns. A turn the owner runs that is missing here was taken over (or ended or parked).
    pub async fn renew_leases(&self, owner: &str, lease_ms: i64, turn_ids: &[&str]) -> StoreResult<Vec<HeldLease>> {
        if turn_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut held = Vec::with_capacity(turn_ids.len());
        for chunk in turn_ids.chunks(RENEWALS_PER_STATEMENT) {
            let placeholders = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "UPDATE turns SET lease_expires_at = {now} + $2
                 WHERE lease_owner = $1 AND status = 'running' AND id IN ({placeholders})
                 RETURNING id, {CLAIMED_COLUMNS}",
                now = self.now_sql()
            );
            on_writer!(self, |pool| {
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner).bind(lease_ms);
                for id in chunk {
                    query = query.bind(*id);
                }
                for row in &query.fetch_all(pool).await? {
                    held.push(HeldLease {
                        turn_id: row.text("id")?,
                        token: row.int("lease_token")?,
                        cancel_requested: row.int("cancel_requested")? != 0,
                    });
                }
            });
        }
        Ok(held)
    }

    /// Whether the lease with `token` on a turn was lost: another token holds it, or it is still
    /// running under this token past its expiry. A turn that ended or parked under this token was
    /// not lost.
    pub async fn lease_lost(&self, turn_id: &str, token: i64) -> StoreResult<bool> {
        let sql = format!(
            "SELECT lease_token, status, CAST(CASE WHEN lease_expires_at < {now} THEN 1 ELSE 0 END AS BIGINT) AS expired
             FROM turns WHERE id = $1",
            now = self.now_sql()
        );
        let row: Option<(i64, String, i64)> = on_writer!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(turn_id).fetch_optional(pool).await?
        });
        Ok(match row {
            Some((current, status, expired)) => current != token || (status == "running" && expired == 1),
            None => true,
        })
    }

    /// Lets go of a running turn at once (a replica shutting down), so another replica takes it
    /// over now rather than when the lease would have run out. A released lease has no owner, so
    /// no late renewal of its former owner keeps it.
    pub async fn release_lease(&self, lease: &Lease) -> StoreResult<bool> {
        let sql = format!(
            "UPDATE turns SET lease_expires_at = {now} - 1, lease_owner = NULL WHERE id = $1 AND lease_token = $2 AND status = 'running'",
            now = self.now_sql()
        );
        self.fenced_update(sql, lease, None).await
    }

    /// Saves the state a turn resumes from if its replica dies. Returns false when the lease was
    /// lost.
    pub async fn save_checkpoint(&self, lease: &Lease, checkpoint: &str) -> StoreResult<bool> {
        let sql = "UPDATE turns SET checkpoint_json = $3 WHERE id = $1 AND lease_token = $2 AND status = 'running'";
        self.fenced_update(sql.to_owned(), lease, Some(checkpoint)).await
    }

    /// Replaces what a turn keeps of its request (the safety policy redacted the message).
    pub async fn set_turn_input(&self, lease: &Lease, input: &TurnInput) -> StoreResult<bool> {
        let input = serde_json::to_string(input).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sql = "UPDATE turns SET input_json = $3 WHERE id = $1 AND lease_token = $2";
        self.fenced_update(sql.to_owned(), lease, Some(&input)).await
    }

    /// Parks a running turn: `waiting` for `reason` with the state to resume from, and no lease
    /// (nothing runs it until it is queued again) — unless someone asked to stop it meanwhile.
    pub async fn park_turn(&self, lease: &Lease, reason: &str, checkpoint: &str) -> StoreResult<Parked> {
        let parked = on_writer!(self, |pool| {
            sqlx::query(
                "UPDATE turns SET status = 'waiting', wait_reason = $3, checkpoint_json = $4, lease_expires_at = NULL
                 WHERE id = $1 AND lease_token = $2 AND status = 'running' AND cancel_requested = 0",
            )
            .bind(&lease.turn_id)
            .bind(lease.token)
            .bind(reason)
            .bind(checkpoint)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if parked == 1 {
            return Ok(Parked::Parked);
        }
        let held: Option<(i64, i64)> = on_writer!(self, |pool| {
            sqlx::query_as("SELECT lease_token, cancel_requested FROM turns WHERE id = $1 AND status = 'running'")
                .bind(&lease.turn_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(match held {
            Some((token, cancel)) if token == lease.token && cancel != 0 => Parked::CancelRequested,
            _ => Parked::LeaseLost,
        })
    }

    async fn fenced_update(&self, sql: String, lease: &Lease, value: Option<&str>) -> StoreResult<bool> {
        let changed = on_writer!(self, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&lease.turn_id).bind(lease.token);
            if let Some(value) = value {
                query = query.bind(value);
            }
            query.execute(pool).await?.rows_affected()
        });
        Ok(changed == 1)
    }

    /// Queues a waiting turn again once none of its approvals is pending. Returns whether this
    /// call queued it (exactly one of several concurrent callers does).
    pub async fn requeue_waiting_turn(&self, turn_id: &str) -> StoreResult<bool> {
        let queued = on_writer!(self, |pool| {
            sqlx::query(
                "UPDATE turns SET status = 'queued', wait_reason = NULL
                 WHERE id = $1 AND status = 'waiting'
                   AND NOT EXISTS (SELECT 1 FROM approvals a WHERE a.turn_id = $1 AND a.status = 'pending')",
            )
            .bind(turn_id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(queued == 1)
    }

    /// Records the end of a turn held by `lease`: the answer (message and content items) and the
    /// final state in one transaction. A running turn moves to `finish.status`; a turn that is
    /// already final (cancelled while idle, refused at submit) keeps its state and gets the answer.
    /// Returns false, writing nothing, when the lease was lost.
    pub async fn finish_turn(&self, scope: &Scope, lease: &Lease, finish: &Finish<'_>) -> StoreResult<bool> {
        let answer = match finish.answer {
            Some((message, items)) => Some((message, items, encode_tool_steps(message)?, encode_contents(items)?)),
            None => None,
        };
        let sql = format!(
            "UPDATE turns SET
                 status = CASE WHEN status = 'running' THEN $3 ELSE status END,
                 error = CASE WHEN status = 'running' THEN $4 ELSE error END,
                 finished_at = COALESCE(finished_at, {now}),
                 lease_expires_at = NULL
             WHERE id = $1 AND lease_token = $2",
            now = self.now_sql()
        );
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            let fenced = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&lease.turn_id)
                .bind(lease.token)
                .bind(finish.status.as_str())
                .bind(finish.error)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if fenced != 1 {
                return Ok(false);
            }
            if let Some((message, items, steps, encoded)) = &answer {
                insert_message!(&mut *tx, scope, *message, steps);
                insert_contents!(&mut *tx, scope, &message.thread_id, items, encoded);
            }
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Cancels turns that were asked to stop and that nobody runs (queued, or waiting on
    /// approvals) — a thread's, or (`None`) any scope's: each moves to `cancelled` with a new
    /// fencing token held by `owner`, who then writes its last events.
    pub async fn cancel_idle_turns(&self, thread: Option<(&Scope, &str)>, owner: &str) -> StoreResult<Vec<Claimed>> {
        let condition = match thread {
            Some(_) => "organization_id = $2 AND project_id = $3 AND environment_id = $4 AND thread_id = $5",
            None => "TRUE",
        };
        let sql = format!(
            "UPDATE turns SET status = 'cancelled', finished_at = {now}, lease_owner = $1,
                 lease_token = lease_token + 1, lease_expires_at = NULL
             WHERE {condition} AND cancel_requested = 1 AND status IN ('queued', 'waiting')
             RETURNING {TURN_COLUMNS}, {CLAIMED_COLUMNS}",
            now = self.now_sql()
        );
        on_writer!(self, |pool| {
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(owner);
            if let Some((scope, thread_id)) = thread {
                query = query
                    .bind(&scope.organization_id)
                    .bind(&scope.project_id)
                    .bind(&scope.environment_id)
                    .bind(thread_id);
            }
            query.fetch_all(pool).await?.iter().map(|row| claimed_from_row(row, owner)).collect()
        })
    }

    /// Asks to stop every unfinished turn of a thread: running ones stop on their replica, the
    /// others are cancelled by [`Store::cancel_idle_turns`]. Returns each turn marked, with its
    /// state and owner. Turns submitted afterwards are not affected.
    pub async fn request_cancel(&self, scope: &Scope, thread_id: &str) -> StoreResult<Vec<CancelRequested>> {
        on_writer!(self, |pool| {
            sqlx::query(
                "UPDATE turns SET cancel_requested = 1
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND thread_id = $4
                   AND status IN ('queued', 'running', 'waiting')
                 RETURNING id, status, lease_owner",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(thread_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(CancelRequested {
                    turn_id: row.text("id")?,
                    running: row.text("status")? == "running",
                    owner: row.opt_text("lease_owner")?,
                })
            })
            .collect()
        })
    }
}

/// A turn and the lease `owner` took with it, from a row with [`TURN_COLUMNS`] and
/// [`CLAIMED_COLUMNS`].
fn claimed_from_row(row: &impl RowExt, owner: &str) -> StoreResult<Claimed> {
    let turn = turn_from_row(row)?;
    Ok(Claimed {
        lease: Lease { turn_id: turn.id.clone(), owner: owner.to_owned(), token: row.int("lease_token")? },
        cancel_requested: row.int("cancel_requested")? != 0,
        turn,
    })
}
