//! Background operations: `client.bgo()` — tasks, runs, schedules and batches, the calls of the
//! official clients' `client.bgo` namespace.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::platos::{encode, field, required};
use crate::{Client, Error, Result};

/// A task the caller may trigger.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    /// Its id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `agent` or `http`.
    pub kind: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// Attempts a run gets.
    pub max_attempts: u32,
}

/// One attempt of a run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// 1, 2, …
    pub number: i64,
    /// How it ended (`EXECUTING` while it runs).
    pub status: String,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// The replica that ran it.
    pub replica: String,
}

/// A run of a task.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// `run_…`
    pub id: String,
    /// Its task.
    pub task_id: String,
    /// `QUEUED`, `DELAYED`, `EXECUTING`, `WAITING`, `COMPLETED`, `FAILED`, `CANCELED`, `CRASHED`,
    /// `TIMED_OUT` or `EXPIRED`.
    pub status: String,
    /// What the task got.
    #[serde(default)]
    pub payload: Value,
    /// What it produced.
    #[serde(default)]
    pub output: Option<Value>,
    /// Why its last attempt failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Attempts started.
    pub attempt_count: i64,
    /// The attempts (when read one by one).
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Its metadata.
    #[serde(default)]
    pub metadata: Value,
    /// Its batch.
    #[serde(default)]
    pub batch_id: Option<String>,
    /// True once nothing more happens to it.
    pub is_finished: bool,
}

/// What a trigger answers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunHandle {
    /// The run.
    pub id: String,
    /// A token that reads only this run, for an hour.
    pub public_access_token: String,
    /// True when an idempotency key returned an earlier run.
    pub is_cached: bool,
}

/// Options of a trigger.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerOptions {
    /// A second trigger with this key returns the first run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// Wait before starting: seconds, a duration (`"1h30m"`) or an ISO 8601 time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    /// Expire when not started this long after it could: a duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Tags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// A cron schedule of a task.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// `sched_…`
    pub id: String,
    /// The task it triggers.
    pub task_id: String,
    /// Cron expression.
    pub cron: String,
    /// IANA zone.
    pub timezone: String,
    /// Whether it fires.
    pub active: bool,
    /// Its next occurrence (RFC 3339).
    #[serde(default)]
    pub next_run_at: Option<String>,
    /// Its last occurrence that fired.
    #[serde(default)]
    pub last_run_at: Option<String>,
}

/// A batch and where its runs stand.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Batch {
    /// `batch_…`
    pub id: String,
    /// `PENDING` until every run ended, then `COMPLETED`.
    pub status: String,
    /// Its runs.
    pub run_ids: Vec<String>,
    /// Runs per status.
    #[serde(default)]
    pub counts: std::collections::BTreeMap<String, i64>,
}

/// The background-operations namespace ([`Client::bgo`]).
pub struct Bgo<'c> {
    pub(crate) client: &'c Client,
}

const BASE: &str = "/api/v1/agent/trigger";

impl Bgo<'_> {
    async fn post<T: serde::de::DeserializeOwned>(&self, path: &str, body: Option<&Value>) -> Result<T> {
        required(self.client.call(Method::POST, &format!("{BASE}{path}"), body).await)
    }

    async fn get(&self, path: &str) -> Result<Value> {
        required(self.client.call(Method::GET, &format!("{BASE}{path}"), None).await)
    }

    /// The tasks the caller may trigger.
    pub async fn tasks(&self) -> Result<Vec<Task>> {
        field(self.get("/tasks").await?, "tasks")
    }

    /// Triggers a run of a task.
    pub async fn trigger(&self, task_id: &str, payload: Value, options: &TriggerOptions) -> Result<RunHandle> {
        let body = json!({ "payload": payload, "options": options });
        self.post(&format!("/tasks/{}/trigger", encode(task_id)), Some(&body)).await
    }

    /// Runs, newest first (`task_id`, `status` filter; at most `limit`).
    pub async fn runs(&self, task_id: Option<&str>, status: Option<&str>, limit: Option<u32>) -> Result<Vec<Run>> {
        let mut query = Vec::new();
        if let Some(task) = task_id {
            query.push(format!("taskId={}", encode(task)));
        }
        if let Some(status) = status {
            query.push(format!("status={}", encode(status)));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        field(self.get(&format!("/runs?{}", query.join("&"))).await?, "runs")
    }

    /// A run with its attempts.
    pub async fn run(&self, run_id: &str) -> Result<Run> {
        serde_json::from_value(self.get(&format!("/runs/{}", encode(run_id))).await?)
            .map_err(|e| Error::Protocol(e.to_string()))
    }

    /// Cancels a run; returns its status now.
    pub async fn cancel(&self, run_id: &str) -> Result<String> {
        let answer: Value = self.post(&format!("/runs/{}/cancel", encode(run_id)), None).await?;
        field(answer, "status")
    }

    /// Starts a new run with a run's payload.
    pub async fn replay(&self, run_id: &str) -> Result<RunHandle> {
        self.post(&format!("/runs/{}/replay", encode(run_id)), None).await
    }

    /// The scope's schedules (operators).
    pub async fn schedules(&self) -> Result<Vec<Schedule>> {
        field(self.get("/schedules").await?, "schedules")
    }

    /// Creates a schedule (operators): `cron` with 5 or 6 fields, an IANA `timezone`.
    pub async fn create_schedule(
        &self,
        task_id: &str,
        cron: &str,
        timezone: Option<&str>,
        payload: Option<Value>,
    ) -> Result<Schedule> {
        let body = json!({ "taskId": task_id, "cron": cron, "timezone": timezone, "payload": payload });
        self.post("/schedules", Some(&body)).await
    }

    /// Turns a schedule on or off (operators).
    pub async fn set_schedule_active(&self, schedule_id: &str, active: bool) -> Result<Schedule> {
        let verb = if active { "activate" } else { "deactivate" };
        self.post(&format!("/schedules/{}/{verb}", encode(schedule_id)), None).await
    }

    /// Deletes a schedule (operators); false when it did not exist.
    pub async fn delete_schedule(&self, schedule_id: &str) -> Result<bool> {
        let path = format!("{BASE}/schedules/{}", encode(schedule_id));
        match self.client.call::<Value>(Method::DELETE, &path, None).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Triggers one run per payload (at most 1,000); returns the batch id and the run ids.
    pub async fn batch(&self, task_id: &str, payloads: Vec<Value>) -> Result<(String, Vec<String>)> {
        let body = json!({ "payloads": payloads });
        let answer: Value = self.post(&format!("/batches/{}", encode(task_id)), Some(&body)).await?;
        Ok((field(answer.clone(), "batchId")?, field(answer, "runIds")?))
    }

    /// A batch and where its runs stand.
    pub async fn batch_status(&self, batch_id: &str) -> Result<Batch> {
        serde_json::from_value(self.get(&format!("/batches/{}", encode(batch_id))).await?)
            .map_err(|e| Error::Protocol(e.to_string()))
    }
}
