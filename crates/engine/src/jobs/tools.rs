//! The built-in tools agents use to start background work: `trigger_task` and
//! `create_schedule` ("remind me every Monday at 9 in Berlin"). They act for the turn's user:
//! only tasks open to users (`allow_users`) can be used, and the run belongs to that user.
//! An agent lists them in `approval_tools` to have a human approve each call.

use agentry_core::task::{CatchUp, Overlap};
use agentry_core::{Principal, PrincipalKind, Turn, UserMeta};
use serde_json::{Value, json};

use super::{JobError, NewSchedule, TriggerOptions, save_schedule};
use crate::Engine;
use crate::tools::ToolFailure;

fn user_of(turn: &Turn) -> Principal {
    Principal {
        scope: turn.scope.clone(),
        user_id: Some(turn.user_id.clone()),
        kind: PrincipalKind::EndUser,
        user_meta: UserMeta::default(),
        pinned_agent_id: None,
    }
}

fn failure(err: JobError) -> ToolFailure {
    ToolFailure::new(err.to_string())
}

fn text<'a>(params: &'a Value, name: &str) -> Result<&'a str, ToolFailure> {
    params
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ToolFailure::new(format!("`{name}` is required")))
}

impl Engine {
    /// `trigger_task {taskId, payload}` → `{runId, status}`.
    pub(crate) async fn tool_trigger_task(&self, turn: &Turn, params: &Value) -> Result<Value, ToolFailure> {
        let task_id = text(params, "taskId")?;
        let payload = params.get("payload").cloned().unwrap_or(Value::Null);
        let options = TriggerOptions {
            metadata: Some(json!({ "agentId": turn.agent_id, "threadId": turn.thread_id, "turnId": turn.id })),
            tags: vec![format!("agent:{}", turn.agent_id)],
            ..TriggerOptions::default()
        };
        let (run, _) = self.trigger_task(&user_of(turn), task_id, payload, &options).await.map_err(failure)?;
        Ok(json!({ "runId": run.id, "taskId": run.task_id, "status": run.status.as_str() }))
    }

    /// `create_schedule {taskId, cron, timezone, payload}` → `{scheduleId, nextRunAt}`.
    pub(crate) async fn tool_create_schedule(&self, turn: &Turn, params: &Value) -> Result<Value, ToolFailure> {
        let principal = user_of(turn);
        let task_id = text(params, "taskId")?;
        self.task_for(&principal, task_id).await.map_err(failure)?;
        let new = NewSchedule {
            task_id: task_id.to_owned(),
            cron: text(params, "cron")?.to_owned(),
            timezone: params.get("timezone").and_then(Value::as_str).map(str::to_owned),
            payload: params.get("payload").cloned().filter(|p| !p.is_null()),
            deduplication_key: None,
            overlap: Overlap::Skip,
            catch_up: CatchUp::Latest,
        };
        let by = format!("agent:{}:user:{}", turn.agent_id, turn.user_id);
        let schedule = save_schedule(self.store(), &turn.scope, new, &by).await.map_err(failure)?;
        self.inner.jobs.schedules_changed();
        self.inner.bus.ring(crate::bus::Bell::SchedulesChanged);
        Ok(json!({
            "scheduleId": schedule.id,
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "nextRunAt": schedule.next_run_at.map(|t| t.to_rfc3339()),
        }))
    }
}
