//! Background operations: tasks, runs and their attempts, schedules, batches (`/trigger/**` and
//! the 1.x `/jobs`).
//!
//! What `/api/v1/agent/trigger/**` and the 1.x `/jobs` answer, in the shapes of the official
//! clients' `bgo` (trigger.dev) and `jobs` namespaces, with the aliases they read (`taskIdentifier`,
//! `completedAt`, `jobId`, `batchId`); and the bodies a trigger, a batch and a schedule send.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::task::{CatchUp, Overlap, RetryPolicy, RunStatus, TaskKind};
use crate::time::Timestamp;

/// A task as `GET /trigger/tasks` lists it (the catalog entry of trigger.dev, as declared in a
/// task file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Its id, unique in its scope.
    pub id: String,
    /// The id again, as trigger.dev names it.
    pub slug: String,
    /// Display name (the id when the file names none).
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// `agent` or `http`.
    pub kind: TaskKind,
    /// Always null: tasks are declared in task files, not exported from code.
    pub file_path: Option<String>,
    /// Always null, as `filePath`.
    pub export_name: Option<String>,
    /// Attempts a run gets.
    pub max_attempts: u32,
    /// Longest attempt, in seconds.
    pub max_duration_secs: u64,
    /// Most runs executing at once (per concurrency key), if limited.
    pub concurrency_limit: Option<u32>,
    /// Default time a run may wait to start before it expires, in seconds.
    pub ttl_secs: Option<u64>,
    /// End users may trigger it and read their own runs.
    pub allow_users: bool,
    /// When it was first applied.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// What it runs and how it retries: shown to operators only.
    // Described as a `TaskWiring` whose fields are all optional: a task without them is valid too.
    #[serde(flatten)]
    #[schema(value_type = TaskWiring)]
    pub wiring: Option<TaskWiring>,
}

/// The fields of a task only operators see: all three for them, none for other callers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskWiring {
    /// (`agent`) The agent that runs the turn.
    pub agent_id: Option<String>,
    /// (`http`) The endpoint it calls.
    pub url: Option<String>,
    /// Waits between attempts.
    #[schema(required = false)]
    pub retry: RetryPolicy,
}

/// `GET /trigger/tasks`: the tasks the caller may trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskList {
    /// The tasks.
    pub tasks: Vec<Task>,
}

/// One attempt of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// 1, 2, …
    pub number: i64,
    /// `EXECUTING` while it runs, then how it ended.
    pub status: RunStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// The replica that ran it.
    pub replica: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
}

/// A run of a task, as the run lists, `GET /trigger/runs/{run_id}` and the `run_update` events show
/// it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// `run_…`
    pub id: String,
    /// Its task.
    pub task_id: String,
    /// Its task again, as trigger.dev names it.
    pub task_identifier: String,
    /// Where it is.
    pub status: RunStatus,
    /// What the task got.
    pub payload: Value,
    /// What it produced.
    pub output: Option<Value>,
    /// Why its last attempt failed.
    pub error: Option<String>,
    /// The caller's metadata (schedules add `scheduledAt`, agents `turnId`).
    pub metadata: Value,
    /// The caller's tags.
    pub tags: Vec<String>,
    /// A second trigger with this key returned this run.
    pub idempotency_key: Option<String>,
    /// The value that groups it for its task's concurrency limit.
    pub concurrency_key: Option<String>,
    /// Attempts started.
    pub attempt_count: i64,
    /// Attempts it gets.
    pub max_attempts: i64,
    /// Its batch.
    pub batch_id: Option<String>,
    /// The schedule that fired it.
    pub schedule_id: Option<String>,
    /// The run it replays.
    pub replay_of: Option<String>,
    /// (`agent` tasks) The turn's thread.
    pub thread_id: Option<String>,
    /// (`agent` tasks) The turn.
    pub turn_id: Option<String>,
    /// Who triggered it (`user:…`, `operator`, `schedule:…`, `agent:…`).
    pub triggered_by: String,
    /// The end user it belongs to.
    pub user_id: Option<String>,
    /// When it was triggered.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// When its first attempt started.
    pub started_at: Option<Timestamp>,
    /// When it ended.
    pub finished_at: Option<Timestamp>,
    /// When it ended again, as the 1.x job names it.
    pub completed_at: Option<Timestamp>,
    /// (`DELAYED`) When it may start.
    pub delay_until: Option<Timestamp>,
    /// (`QUEUED` after a failed attempt) When the next attempt may start.
    pub next_attempt_at: Option<Timestamp>,
    /// When it expires if not started.
    pub expires_at: Option<Timestamp>,
    /// True once nothing more happens to it.
    pub is_finished: bool,
    /// True when it completed.
    pub is_success: bool,
    /// Its attempts, oldest first: only when the run is read one by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub attempts: Option<Vec<Attempt>>,
}

/// `GET /trigger/runs`: runs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunList {
    /// The runs.
    pub runs: Vec<Run>,
}

/// A run as the 1.x `client.jobs` reads it: the run with its task as `type` and its id as `jobId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Its task.
    #[serde(rename = "type")]
    pub job_type: String,
    /// Its id.
    pub job_id: String,
    /// The run.
    #[serde(flatten)]
    pub run: Run,
}

/// `GET /jobs`: runs as 1.x jobs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobList {
    /// The jobs.
    pub jobs: Vec<Job>,
}

/// What a trigger, a replay and the 1.x `POST /jobs` answer: the run and a token that reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunHandle {
    /// The run.
    pub id: String,
    /// The run again, as the 1.x client reads it.
    pub job_id: String,
    /// Its task.
    pub task_id: String,
    /// Where it is.
    pub status: RunStatus,
    /// Reads only this run (`Authorization: Bearer rpat_…`), for an hour.
    pub public_access_token: String,
    /// True when an idempotency key returned an earlier run.
    pub is_cached: bool,
}

/// What cancelling a run answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CancelOutcome {
    /// The run.
    pub id: String,
    /// Its status now: `CANCELED`, or how it ended before. An executing attempt is stopped before
    /// the answer, so a read after it agrees (a replica that has not stopped it within 3 s still
    /// will: the answer is then `CANCELED` too).
    pub status: RunStatus,
}

/// A cron schedule of a task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// `sched_…`
    pub id: String,
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
    /// Its next occurrence (null when inactive).
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

/// `GET /trigger/schedules`: the scope's schedules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScheduleList {
    /// The schedules.
    pub schedules: Vec<Schedule>,
}

/// What deleting a schedule answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeletedSchedule {
    /// The schedule.
    pub id: String,
    /// Always true (a missing schedule is a 404).
    pub deleted: bool,
}

/// What a batch trigger answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchHandle {
    /// `batch_…`
    pub batch_id: String,
    /// The batch again.
    pub id: String,
    /// Its task.
    pub task_id: String,
    /// Its runs, one per payload, in order.
    pub run_ids: Vec<String>,
}

/// A batch and where its runs stand.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    /// `batch_…`
    pub id: String,
    /// The batch again.
    pub batch_id: String,
    /// Its task.
    pub task_id: String,
    /// `PENDING` until every run ended, then `COMPLETED`.
    pub status: String,
    /// Its runs.
    pub run_ids: Vec<String>,
    /// How many runs it has.
    pub run_count: usize,
    /// Runs per status (statuses without runs left out).
    pub counts: BTreeMap<String, i64>,
    /// When it was triggered.
    pub created_at: Timestamp,
}

/// Options of a trigger; unknown keys (trigger.dev has many) are ignored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerOptions {
    /// A second trigger with this key returns the first run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Wait before starting: seconds, a duration (`"1h30m"`) or a time (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Value>,
    /// Expire when not started this long after it could: seconds or a duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Value>,
    /// A tag or a list of tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Value>,
    /// Returned with the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Groups runs for the task's concurrency limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_key: Option<String>,
}

/// Body of `POST /trigger/tasks/{task_id}/trigger`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TriggerBody {
    /// What the task gets.
    #[serde(default)]
    pub payload: Value,
    /// How it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<TriggerOptions>,
}

/// Body of `POST /trigger/batches/{task_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatchBody {
    /// One run per payload (at most 1,000).
    pub payloads: Vec<Value>,
    /// How each runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<TriggerOptions>,
}

/// Body of `POST /trigger/schedules`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleBody {
    /// The task it triggers.
    pub task_id: String,
    /// Cron expression (5 or 6 fields).
    pub cron: String,
    /// IANA time zone (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// Each run's payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Names it (`externalId` too): creating a schedule with a taken key updates that one.
    #[serde(default, alias = "externalId", skip_serializing_if = "Option::is_none")]
    pub deduplication_key: Option<String>,
    /// While the previous run is unfinished: `skip` (default) or `allow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<Overlap>,
    /// After downtime: `latest` (default) or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catch_up: Option<CatchUp>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run() -> Run {
        let at = Timestamp(1_700_000_000_123);
        Run {
            id: "run_1".into(),
            task_id: "ping".into(),
            task_identifier: "ping".into(),
            status: RunStatus::TimedOut,
            payload: json!({"n": 1}),
            output: None,
            error: None,
            metadata: json!({}),
            tags: vec![],
            idempotency_key: None,
            concurrency_key: None,
            attempt_count: 1,
            max_attempts: 3,
            batch_id: None,
            schedule_id: None,
            replay_of: None,
            thread_id: None,
            turn_id: None,
            triggered_by: "operator".into(),
            user_id: None,
            created_at: at,
            updated_at: at,
            started_at: Some(at),
            finished_at: Some(at),
            completed_at: Some(at),
            delay_until: None,
            next_attempt_at: None,
            expires_at: None,
            is_finished: true,
            is_success: false,
            attempts: None,
        }
    }

    #[test]
    fn a_listed_run_has_no_attempts_and_null_optionals_and_a_job_adds_its_names() {
        let value = serde_json::to_value(run()).unwrap();
        assert_eq!(value["status"], "TIMED_OUT");
        assert_eq!(value["finishedAt"], "2023-11-14T22:13:20.123Z");
        assert!(value["output"].is_null() && value.as_object().unwrap().contains_key("delayUntil"));
        assert!(!value.as_object().unwrap().contains_key("attempts"));
        let job = Job { job_type: "ping".into(), job_id: "run_1".into(), run: run() };
        let value = serde_json::to_value(&job).unwrap();
        assert_eq!(
            (value["type"].as_str(), value["jobId"].as_str(), value["id"].as_str()),
            (Some("ping"), Some("run_1"), Some("run_1"))
        );
        assert_eq!(serde_json::from_value::<Job>(value).unwrap(), job);
    }

    #[test]
    fn operators_see_a_tasks_wiring_others_do_not() {
        let at = Timestamp(0);
        let mut task = Task {
            id: "ping".into(),
            slug: "ping".into(),
            name: "Ping".into(),
            description: None,
            kind: TaskKind::Http,
            file_path: None,
            export_name: None,
            max_attempts: 3,
            max_duration_secs: 300,
            concurrency_limit: None,
            ttl_secs: None,
            allow_users: false,
            created_at: at,
            updated_at: at,
            wiring: None,
        };
        let value = serde_json::to_value(&task).unwrap();
        assert!(value["filePath"].is_null() && value.as_object().unwrap().contains_key("filePath"));
        assert!(
            !value.as_object().unwrap().contains_key("retry") && !value.as_object().unwrap().contains_key("agentId")
        );
        assert_eq!(serde_json::from_value::<Task>(value).unwrap(), task);
        task.wiring = Some(TaskWiring { agent_id: None, url: Some("http://x".into()), retry: RetryPolicy::default() });
        let value = serde_json::to_value(&task).unwrap();
        assert!(value["agentId"].is_null() && value.as_object().unwrap().contains_key("agentId"));
        assert_eq!(value["retry"]["min_delay_ms"], 1000);
        assert_eq!(serde_json::from_value::<Task>(value).unwrap(), task);
    }
}
