//! Firing due schedules. Every replica looks; for each due schedule the one whose conditional
//! update moves `next_run_at` on creates the occurrence's run (`Store::fire_schedule`), so each
//! occurrence fires once across replicas. The run's idempotency key names the occurrence too.

use agentry_core::cron::CronSchedule;
use agentry_core::id::{new_id, prefix};
use agentry_core::task::{CatchUp, Overlap};
use agentry_core::{Scope, Timestamp};
use agentry_store::{NewRun, StoreError, StoredSchedule};
use serde_json::json;

use crate::Engine;

/// With `catch_up = "none"`, an occurrence later than this is dropped as missed.
const ON_TIME_MS: i64 = 30_000;

impl Engine {
    /// Fires the schedules due now; returns when the next one is due.
    pub(super) async fn fire_due_schedules(&self, limit: i64) -> Result<Option<Timestamp>, StoreError> {
        let now = Timestamp::now();
        for schedule in self.store().due_schedules(now, limit).await? {
            if let Err(err) = self.fire(&schedule, now).await {
                tracing::warn!(%err, schedule = %schedule.id, "cannot fire a schedule");
            }
        }
        self.store().next_schedule_due().await
    }

    async fn fire(&self, schedule: &StoredSchedule, now: Timestamp) -> Result<(), StoreError> {
        let Some(seen) = schedule.next_run_at else { return Ok(()) };
        let cron = match CronSchedule::parse(&schedule.cron, Some(&schedule.timezone)) {
            Ok(cron) => cron,
            Err(err) => {
                tracing::error!(%err, schedule = %schedule.id, "a stored schedule no longer parses; turning it off");
                self.store().fire_schedule(&schedule.id, seen, None, None).await?;
                return Ok(());
            }
        };
        let occurrence = cron.latest_due(seen, now);
        let next = cron.next_after(now);
        let on_time = schedule.catch_up == CatchUp::Latest || now.0 - occurrence.0 <= ON_TIME_MS;
        let busy = schedule.overlap == Overlap::Skip && self.store().schedule_has_unfinished_run(&schedule.id).await?;
        let task = self.store().get_task(&schedule.scope, &schedule.task_id).await?;
        let run = match (&task, on_time && !busy) {
            (Some(task), true) => Some(self.scheduled_run(schedule, task, occurrence)),
            (None, true) => {
                tracing::warn!(schedule = %schedule.id, task = %schedule.task_id, "a schedule's task no longer exists");
                None
            }
            (_, false) => None,
        };
        let fired = self.store().fire_schedule(&schedule.id, seen, next, run.as_ref().map(|r| (occurrence, r))).await?;
        if fired && let Some(run) = run {
            tracing::info!(schedule = %schedule.id, run = %run.id, at = %occurrence.to_rfc3339(), "schedule fired");
            if let Ok(Some(stored)) = self.store().get_run(&run.scope, &run.id, None).await {
                self.runs_queued(&stored);
            }
        } else if fired && busy {
            tracing::info!(schedule = %schedule.id, "skipped an occurrence: the previous run is still going");
        }
        Ok(())
    }

    fn scheduled_run(&self, schedule: &StoredSchedule, task: &agentry_store::StoredTask, at: Timestamp) -> NewRun {
        let spec = &task.spec;
        let payload = schedule.payload.clone().unwrap_or_else(|| {
            json!({
                "scheduleId": schedule.id,
                "timestamp": at.to_rfc3339(),
                "lastTimestamp": schedule.last_run_at.map(Timestamp::to_rfc3339),
                "timezone": schedule.timezone,
            })
        });
        let concurrency_key = spec
            .concurrency_key
            .as_deref()
            .and_then(|template| super::execute::render(template, &payload).ok())
            .unwrap_or_default();
        NewRun {
            id: new_id(prefix::RUN),
            scope: Scope::clone(&schedule.scope),
            task_id: spec.id.clone(),
            payload,
            metadata: json!({ "scheduleId": schedule.id, "scheduledAt": at.to_rfc3339() }),
            tags: vec![format!("schedule:{}", schedule.id)],
            idempotency_key: Some(format!("schedule:{}:{}", schedule.id, at.0)),
            concurrency_key,
            concurrency_limit: spec.concurrency_limit,
            max_attempts: spec.max_attempts(),
            retry: spec.retry,
            triggered_by: format!("schedule:{}", schedule.id),
            user_id: None,
            batch_id: None,
            schedule_id: Some(schedule.id.clone()),
            replay_of: None,
            delay_ms: 0,
            ttl_ms: spec.ttl_secs.map(|s| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)),
            created_at: Timestamp::now(),
        }
    }
}
