//! Background operations: `client.bgo()` — tasks, runs, schedules and batches, the calls of the
//! official clients' `client.bgo` namespace.

pub use agentry_core::task::{RunStatus, TaskKind};
pub use agentry_core::wire::bgo::{
    Attempt, Batch, BatchHandle, Run, RunHandle, Schedule, Task, TaskWiring, TriggerOptions,
};
use agentry_core::wire::bgo::{
    BatchBody, CancelOutcome, DeletedSchedule, RunList, ScheduleBody, ScheduleList, TaskList, TriggerBody,
};
use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::platos::{encode, required};
use crate::{Client, Error, Result};

/// The background-operations namespace ([`Client::bgo`]).
pub struct Bgo<'c> {
    pub(crate) client: &'c Client,
}

const BASE: &str = "/api/v1/agent/trigger";

/// A request body as JSON.
fn json_body(body: &impl Serialize) -> Result<Value> {
    serde_json::to_value(body).map_err(|e| Error::Protocol(e.to_string()))
}

impl Bgo<'_> {
    async fn post<T: serde::de::DeserializeOwned>(&self, path: &str, body: Option<Value>) -> Result<T> {
        required(self.client.call(Method::POST, &format!("{BASE}{path}"), body.as_ref()).await)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        required(self.client.call(Method::GET, &format!("{BASE}{path}"), None).await)
    }

    /// The tasks the caller may trigger.
    pub async fn tasks(&self) -> Result<Vec<Task>> {
        Ok(self.get::<TaskList>("/tasks").await?.tasks)
    }

    /// Triggers a run of a task.
    pub async fn trigger(&self, task_id: &str, payload: Value, options: &TriggerOptions) -> Result<RunHandle> {
        let body = TriggerBody { payload, options: Some(options.clone()) };
        self.post(&format!("/tasks/{}/trigger", encode(task_id)), Some(json_body(&body)?)).await
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
        Ok(self.get::<RunList>(&format!("/runs?{}", query.join("&"))).await?.runs)
    }

    /// A run with its attempts.
    pub async fn run(&self, run_id: &str) -> Result<Run> {
        self.get(&format!("/runs/{}", encode(run_id))).await
    }

    /// Cancels a run; returns its status now (an executing attempt is stopped before the answer).
    pub async fn cancel(&self, run_id: &str) -> Result<RunStatus> {
        let answer: CancelOutcome = self.post(&format!("/runs/{}/cancel", encode(run_id)), None).await?;
        Ok(answer.status)
    }

    /// Starts a new run with a run's payload.
    pub async fn replay(&self, run_id: &str) -> Result<RunHandle> {
        self.post(&format!("/runs/{}/replay", encode(run_id)), None).await
    }

    /// The scope's schedules (operators).
    pub async fn schedules(&self) -> Result<Vec<Schedule>> {
        Ok(self.get::<ScheduleList>("/schedules").await?.schedules)
    }

    /// Creates a schedule (operators): `cron` with 5 or 6 fields, an IANA `timezone`.
    pub async fn create_schedule(
        &self,
        task_id: &str,
        cron: &str,
        timezone: Option<&str>,
        payload: Option<Value>,
    ) -> Result<Schedule> {
        let body = ScheduleBody {
            task_id: task_id.to_owned(),
            cron: cron.to_owned(),
            timezone: timezone.map(str::to_owned),
            payload,
            deduplication_key: None,
            overlap: None,
            catch_up: None,
        };
        self.post("/schedules", Some(json_body(&body)?)).await
    }

    /// Turns a schedule on or off (operators).
    pub async fn set_schedule_active(&self, schedule_id: &str, active: bool) -> Result<Schedule> {
        let verb = if active { "activate" } else { "deactivate" };
        self.post(&format!("/schedules/{}/{verb}", encode(schedule_id)), None).await
    }

    /// Deletes a schedule (operators); false when it did not exist.
    pub async fn delete_schedule(&self, schedule_id: &str) -> Result<bool> {
        let path = format!("{BASE}/schedules/{}", encode(schedule_id));
        match self.client.call::<DeletedSchedule>(Method::DELETE, &path, None).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Triggers one run per payload (at most 1,000): the batch id and the run ids.
    pub async fn batch(&self, task_id: &str, payloads: Vec<Value>) -> Result<BatchHandle> {
        let body = BatchBody { payloads, options: None };
        self.post(&format!("/batches/{}", encode(task_id)), Some(json_body(&body)?)).await
    }

    /// A batch and where its runs stand.
    pub async fn batch_status(&self, batch_id: &str) -> Result<Batch> {
        self.get(&format!("/batches/{}", encode(batch_id))).await
    }
}
