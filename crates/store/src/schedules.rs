//! Cron schedules of tasks. Each occurrence fires once across replicas: the replica whose
//! conditional update moves `next_run_at` on from the occurrence it saw creates the occurrence's
//! run, in the same transaction ([`Store::fire_schedule`]).

use agentry_core::task::{CatchUp, Overlap};
use agentry_core::{Scope, Timestamp};
use serde_json::Value;

use crate::row::RowExt;
use crate::runs::{NewRun, insert_runs};
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSchedule {
    /// Its id (`sched_…`).
    pub id: String,
    /// Its scope.
    pub scope: Scope,
    /// The task it triggers.
    pub task_id: String,
    /// Cron expression (5 or 6 fields).
    pub cron: String,
    /// IANA time zone.
    pub timezone: String,
    /// Each run's payload.
    pub payload: Option<Value>,
    /// Names it: creating a schedule with a taken key updates that one.
    pub deduplication_key: Option<String>,
    /// What an occurrence does while the previous run is unfinished.
    pub overlap: Overlap,
    /// What happens to occurrences missed while no replica ran.
    pub catch_up: CatchUp,
    /// Whether it fires.
    pub active: bool,
    /// Its next occurrence (`None` when inactive).
    pub next_run_at: Option<Timestamp>,
    /// Its last occurrence that fired a run.
    pub last_run_at: Option<Timestamp>,
    /// Who made it (`file:…`, `operator`, `user:…`, `agent:…`).
    pub created_by: String,
    /// When.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

const SCHEDULE_COLUMNS: &str = "id, organization_id, project_id, environment_id, task_id, cron, timezone, payload_json,
    deduplication_key, overlap, catch_up, active, next_run_at, last_run_at, created_by, created_at, updated_at";

fn schedule_from_row(row: &impl RowExt) -> StoreResult<StoredSchedule> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("task_schedules.{what}"));
    Ok(StoredSchedule {
        id: row.text("id")?,
        scope: Scope::new(row.text("organization_id")?, row.text("project_id")?, row.text("environment_id")?),
        task_id: row.text("task_id")?,
        cron: row.text("cron")?,
        timezone: row.text("timezone")?,
        payload: row
            .opt_text("payload_json")?
            .map(|t| serde_json::from_str(&t).map_err(|_| corrupt("payload_json")))
            .transpose()?,
        deduplication_key: row.opt_text("deduplication_key")?,
        overlap: match row.text("overlap")?.as_str() {
            "allow" => Overlap::Allow,
            "skip" => Overlap::Skip,
            _ => return Err(corrupt("overlap")),
        },
        catch_up: match row.text("catch_up")?.as_str() {
            "none" => CatchUp::None,
            "latest" => CatchUp::Latest,
            _ => return Err(corrupt("catch_up")),
        },
        active: row.int("active")? != 0,
        next_run_at: row.opt_int("next_run_at")?.map(Timestamp),
        last_run_at: row.opt_int("last_run_at")?.map(Timestamp),
        created_by: row.text("created_by")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

impl Store {
    /// Creates a schedule — or, when its deduplication key is taken in its scope, updates that
    /// one (cron, zone, payload, policies, next occurrence; it keeps its id and history).
    /// Returns it as stored.
    pub async fn save_schedule(&self, schedule: &StoredSchedule) -> StoreResult<StoredSchedule> {
        let payload = schedule
            .payload
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let sql = format!(
            "INSERT INTO task_schedules ({SCHEDULE_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
             ON CONFLICT (organization_id, project_id, environment_id, deduplication_key) DO UPDATE SET
                 task_id = excluded.task_id, cron = excluded.cron, timezone = excluded.timezone,
                 payload_json = excluded.payload_json, overlap = excluded.overlap, catch_up = excluded.catch_up,
                 next_run_at = CASE WHEN task_schedules.active = 1 THEN excluded.next_run_at ELSE NULL END,
                 updated_at = excluded.updated_at
             RETURNING {SCHEDULE_COLUMNS}"
        );
        on_writer!(self, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&schedule.id)
                .bind(&schedule.scope.organization_id)
                .bind(&schedule.scope.project_id)
                .bind(&schedule.scope.environment_id)
                .bind(&schedule.task_id)
                .bind(&schedule.cron)
                .bind(&schedule.timezone)
                .bind(&payload)
                .bind(&schedule.deduplication_key)
                .bind(schedule.overlap.as_str())
                .bind(schedule.catch_up.as_str())
                .bind(i64::from(schedule.active))
                .bind(schedule.next_run_at.map(|t| t.0))
                .bind(schedule.last_run_at.map(|t| t.0))
                .bind(&schedule.created_by)
                .bind(schedule.created_at.0)
                .bind(schedule.updated_at.0)
                .fetch_one(pool)
                .await?;
            schedule_from_row(&row)
        })
    }

    /// A schedule of the scope.
    pub async fn get_schedule(&self, scope: &Scope, id: &str) -> StoreResult<Option<StoredSchedule>> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM task_schedules
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4"
        );
        on_writer!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .map(|row| schedule_from_row(&row))
                .transpose()
        })
    }

    /// The scope's schedules, oldest first.
    pub async fn list_schedules(&self, scope: &Scope) -> StoreResult<Vec<StoredSchedule>> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM task_schedules
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
                .map(schedule_from_row)
                .collect()
        })
    }

    /// Turns a schedule on (from `next_run_at`) or off. `None` when it is not the scope's.
    pub async fn set_schedule_active(
        &self,
        scope: &Scope,
        id: &str,
        next_run_at: Option<Timestamp>,
    ) -> StoreResult<Option<StoredSchedule>> {
        let sql = format!(
            "UPDATE task_schedules SET active = $5, next_run_at = $6, updated_at = $7
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4
             RETURNING {SCHEDULE_COLUMNS}"
        );
        on_writer!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(id)
                .bind(i64::from(next_run_at.is_some()))
                .bind(next_run_at.map(|t| t.0))
                .bind(Timestamp::now().0)
                .fetch_optional(pool)
                .await?
                .map(|row| schedule_from_row(&row))
                .transpose()
        })
    }

    /// Deletes a schedule; false when it is not the scope's.
    pub async fn delete_schedule(&self, scope: &Scope, id: &str) -> StoreResult<bool> {
        on_writer!(self, |pool| {
            Ok(sqlx::query(
                "DELETE FROM task_schedules
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// Active schedules whose next occurrence is at or before `now`, soonest first.
    pub async fn due_schedules(&self, now: Timestamp, limit: i64) -> StoreResult<Vec<StoredSchedule>> {
        let sql = format!(
            "SELECT {SCHEDULE_COLUMNS} FROM task_schedules
             WHERE active = 1 AND next_run_at <= $1 ORDER BY next_run_at LIMIT $2"
        );
        on_pool!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now.0)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(schedule_from_row)
                .collect()
        })
    }

    /// The soonest next occurrence of any active schedule.
    pub async fn next_schedule_due(&self) -> StoreResult<Option<Timestamp>> {
        let next: Option<i64> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT MIN(next_run_at) FROM task_schedules WHERE active = 1").fetch_one(pool).await?
        });
        Ok(next.map(Timestamp))
    }

    /// Whether a schedule has a run that has not ended.
    pub async fn schedule_has_unfinished_run(&self, schedule_id: &str) -> StoreResult<bool> {
        let n: i64 = on_writer!(self, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM task_runs
                 WHERE schedule_id = $1 AND status IN ('QUEUED', 'DELAYED', 'EXECUTING', 'WAITING')",
            )
            .bind(schedule_id)
            .fetch_one(pool)
            .await?
        });
        Ok(n > 0)
    }

    /// Fires the occurrence `seen` of a schedule: moves `next_run_at` from `seen` to `next` and
    /// inserts `run` (if any; `fired` is the occurrence it stands for), in one transaction.
    /// Returns false, writing nothing, when another replica fired it first (or it changed).
    pub async fn fire_schedule(
        &self,
        schedule_id: &str,
        seen: Timestamp,
        next: Option<Timestamp>,
        fired: Option<(Timestamp, &NewRun)>,
    ) -> StoreResult<bool> {
        on_writer!(self, |pool| {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            let moved = sqlx::query(
                "UPDATE task_schedules SET next_run_at = $3, last_run_at = COALESCE($4, last_run_at),
                     active = CASE WHEN $3 IS NULL THEN 0 ELSE active END
                 WHERE id = $1 AND next_run_at = $2 AND active = 1",
            )
            .bind(schedule_id)
            .bind(seen.0)
            .bind(next.map(|t| t.0))
            .bind(fired.map(|(at, _)| at.0))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved != 1 {
                return Ok(false);
            }
            if let Some((_, run)) = fired {
                insert_runs!(&mut *tx, self, std::slice::from_ref(run));
            }
            tx.commit().await?;
            Ok(true)
        })
    }
}
