//! Background operations: tasks, runs, schedules and batches — the use cases below HTTP.
//!
//! Runs live in the store as a fenced queue (`agentry_store::runs`). Each replica's worker
//! (`worker`) claims due runs up to `EngineConfig::jobs_concurrency`, renews their leases, sweeps
//! crashed and expired ones and fires due schedules (`schedules`); `execute` runs one attempt of
//! an `http` or `agent` task. Progress goes to the scope's operator feeds as
//! [`crate::ScopeEvent::Run`] on every replica (a `RunUpdate` bell says where to look).

mod execute;
mod schedules;
mod tools;
mod worker;

use std::time::Duration;

use agentry_core::cron::{CronError, CronSchedule};
use agentry_core::id::{new_id, prefix};
use agentry_core::task::{CatchUp, MAX_BATCH, Overlap, RunStatus, TaskSpec};
use agentry_core::{Principal, Timestamp};
use agentry_store::{NewRun, RunCancel, RunFilter, StoreError, StoredBatch, StoredRun, StoredSchedule, StoredTask};
use serde_json::Value;

use crate::Engine;
use crate::bus::Bell;

pub(crate) use worker::{Jobs, RunStop};

/// Why a background-operation request was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No such task in the caller's scope (or not one the caller may trigger).
    #[error("task `{0}` not found")]
    TaskNotFound(String),
    /// No such run for this caller.
    #[error("run not found")]
    RunNotFound,
    /// No such schedule in the caller's scope.
    #[error("schedule not found")]
    ScheduleNotFound,
    /// No such batch for this caller.
    #[error("batch not found")]
    BatchNotFound,
    /// End users may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A field is wrong.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field (wire name).
        field: String,
        /// What is wrong.
        problem: String,
    },
    /// A cron expression or time zone is wrong.
    #[error(transparent)]
    Cron(#[from] CronError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &str, problem: impl Into<String>) -> JobError {
    JobError::Invalid { field: field.to_owned(), problem: problem.into() }
}

/// What a trigger may ask for besides the payload.
#[derive(Debug, Clone, Default)]
pub struct TriggerOptions {
    /// A second trigger with this key returns the first run.
    pub idempotency_key: Option<String>,
    /// Wait this long before the run may start.
    pub delay: Option<Duration>,
    /// Expire the run if it has not started this long after it could (overrides the task's).
    pub ttl: Option<Duration>,
    /// Tags, returned with the run.
    pub tags: Vec<String>,
    /// Metadata, returned with the run.
    pub metadata: Option<Value>,
    /// Groups runs for the task's concurrency limit (overrides the task's template).
    pub concurrency_key: Option<String>,
}

/// A schedule to create.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    /// The task it triggers.
    pub task_id: String,
    /// Cron expression (5 or 6 fields).
    pub cron: String,
    /// IANA zone (default UTC).
    pub timezone: Option<String>,
    /// Each run's payload.
    pub payload: Option<Value>,
    /// Names it: a second schedule with this key updates the first.
    pub deduplication_key: Option<String>,
    /// What an occurrence does while the previous run is unfinished.
    pub overlap: Overlap,
    /// What missed occurrences do.
    pub catch_up: CatchUp,
}

/// Prefix of run access tokens.
pub const RUN_TOKEN_PREFIX: &str = "rpat";
/// How long a run access token reads its run.
const RUN_TOKEN_LIFETIME_MS: i64 = 3_600_000;

/// How long cancelling an executing run waits for its attempt to end before it answers.
pub const CANCEL_WAIT: Duration = Duration::from_secs(3);
/// How often that wait looks at the run.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// Longest tag, metadata and key values accepted, in bytes.
const MAX_KEY_BYTES: usize = 256;
const MAX_TAGS: usize = 10;
const MAX_METADATA_BYTES: usize = 16 * 1024;
const MAX_PAYLOAD_BYTES: usize = 512 * 1024;

impl Engine {
    /// Applies a task file's spec (see [`apply_task`]) and wakes the workers for its schedules.
    pub async fn apply_task(&self, spec: &TaskSpec, created_by: &str) -> Result<bool, JobError> {
        let changed = apply_task(self.store(), spec, created_by).await?;
        self.inner.jobs.forget_tasks();
        self.inner.jobs.schedules_changed();
        self.inner.bus.ring(Bell::SchedulesChanged);
        Ok(changed)
    }

    /// The tasks a caller sees: all of the scope's for operators, those open to users for users.
    pub async fn tasks(&self, principal: &Principal) -> Result<Vec<StoredTask>, JobError> {
        let tasks = self.store().list_tasks(&principal.scope).await?;
        Ok(tasks.into_iter().filter(|t| principal.is_operator() || t.spec.allow_users).collect())
    }

    async fn task_for(&self, principal: &Principal, task_id: &str) -> Result<StoredTask, JobError> {
        match self.store().get_task(&principal.scope, task_id).await? {
            Some(task) if principal.is_operator() || task.spec.allow_users => Ok(task),
            _ => Err(JobError::TaskNotFound(task_id.to_owned())),
        }
    }

    fn new_run(
        &self,
        principal: &Principal,
        task: &StoredTask,
        payload: Value,
        options: &TriggerOptions,
        triggered_by: String,
    ) -> Result<NewRun, JobError> {
        if serde_json::to_string(&payload).map_or(0, |s| s.len()) > MAX_PAYLOAD_BYTES {
            return Err(invalid("payload", format!("is larger than {MAX_PAYLOAD_BYTES} bytes")));
        }
        if options.tags.len() > MAX_TAGS || options.tags.iter().any(|t| t.is_empty() || t.len() > MAX_KEY_BYTES) {
            return Err(invalid(
                "options.tags",
                format!("at most {MAX_TAGS} non-empty tags of at most {MAX_KEY_BYTES} bytes"),
            ));
        }
        for (field, key) in
            [("options.idempotencyKey", &options.idempotency_key), ("options.concurrencyKey", &options.concurrency_key)]
        {
            if key.as_ref().is_some_and(|k| k.is_empty() || k.len() > MAX_KEY_BYTES) {
                return Err(invalid(field, format!("must be 1 to {MAX_KEY_BYTES} bytes")));
            }
        }
        let metadata = options.metadata.clone().unwrap_or_else(|| Value::Object(Default::default()));
        if serde_json::to_string(&metadata).map_or(0, |s| s.len()) > MAX_METADATA_BYTES {
            return Err(invalid("options.metadata", format!("is larger than {MAX_METADATA_BYTES} bytes")));
        }
        let spec = &task.spec;
        let concurrency_key = match (&options.concurrency_key, &spec.concurrency_key) {
            (Some(key), _) => key.clone(),
            (None, Some(template)) => execute::render(template, &payload).map_err(|e| invalid("payload", e))?,
            (None, None) => String::new(),
        };
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let ttl = options.ttl.or(spec.ttl_secs.map(Duration::from_secs));
        Ok(NewRun {
            id: new_id(prefix::RUN),
            scope: principal.scope.clone(),
            task_id: spec.id.clone(),
            payload,
            metadata,
            tags: options.tags.clone(),
            idempotency_key: options.idempotency_key.clone(),
            concurrency_key,
            concurrency_limit: spec.concurrency_limit,
            max_attempts: spec.max_attempts(),
            retry: spec.retry,
            triggered_by,
            user_id: principal.thread_owner_filter().map(str::to_owned),
            batch_id: None,
            schedule_id: None,
            replay_of: None,
            delay_ms: options.delay.map_or(0, millis),
            ttl_ms: ttl.map(millis),
            created_at: Timestamp::now(),
        })
    }

    /// Triggers a run of a task; a repeated idempotency key returns the first run (`false`).
    pub async fn trigger_task(
        &self,
        principal: &Principal,
        task_id: &str,
        payload: Value,
        options: &TriggerOptions,
    ) -> Result<(StoredRun, bool), JobError> {
        let task = self.task_for(principal, task_id).await?;
        let run = self.new_run(principal, &task, payload, options, triggered_by(principal))?;
        let (stored, fresh) = self.store().trigger_runs(std::slice::from_ref(&run)).await?.remove(0);
        if fresh {
            self.runs_queued(&stored);
        }
        Ok((stored, fresh))
    }

    /// Triggers one run per payload (at most 1,000) as one batch.
    pub async fn trigger_batch(
        &self,
        principal: &Principal,
        task_id: &str,
        payloads: Vec<Value>,
        options: &TriggerOptions,
    ) -> Result<(String, Vec<String>), JobError> {
        if payloads.is_empty() || payloads.len() > MAX_BATCH {
            return Err(invalid("payloads", format!("must hold 1 to {MAX_BATCH} payloads")));
        }
        if options.idempotency_key.is_some() {
            return Err(invalid("options.idempotencyKey", "is per run; a batch cannot carry one"));
        }
        let task = self.task_for(principal, task_id).await?;
        let batch_id = new_id(prefix::BATCH);
        let by = triggered_by(principal);
        let runs = payloads
            .into_iter()
            .map(|payload| {
                let run = self.new_run(principal, &task, payload, options, by.clone())?;
                Ok(NewRun { batch_id: Some(batch_id.clone()), ..run })
            })
            .collect::<Result<Vec<_>, JobError>>()?;
        self.store().create_batch(&principal.scope, &batch_id, task_id, &runs).await?;
        self.inner.jobs.wake();
        self.inner.bus.ring(Bell::RunsQueued);
        Ok((batch_id, runs.into_iter().map(|r| r.id).collect()))
    }

    /// Mints a token that reads only this run, for an hour (`publicAccessToken`).
    pub async fn run_access_token(&self, run: &StoredRun) -> Result<String, JobError> {
        let token = agentry_core::id::new_secret(RUN_TOKEN_PREFIX, 24);
        let expires = Timestamp(Timestamp::now().0 + RUN_TOKEN_LIFETIME_MS);
        self.store().add_run_access_token(&run.id, &agentry_core::api_key::hash(&token), expires).await?;
        Ok(token)
    }

    /// The run an access token reads (`None`: not a live run token).
    pub async fn run_for_access_token(&self, token: &str) -> Result<Option<StoredRun>, JobError> {
        if !token.starts_with(RUN_TOKEN_PREFIX) {
            return Ok(None);
        }
        Ok(self.store().run_by_access_token(&agentry_core::api_key::hash(token)).await?)
    }

    /// A run the caller may see.
    pub async fn run(&self, principal: &Principal, id: &str) -> Result<StoredRun, JobError> {
        self.store().get_run(&principal.scope, id, principal.thread_owner_filter()).await?.ok_or(JobError::RunNotFound)
    }

    /// The runs the caller may see, newest first.
    pub async fn runs(&self, principal: &Principal, mut filter: RunFilter) -> Result<Vec<StoredRun>, JobError> {
        filter.user_id = principal.thread_owner_filter().map(str::to_owned);
        Ok(self.store().list_runs(&principal.scope, &filter).await?)
    }

    /// A batch the caller may see.
    pub async fn batch(&self, principal: &Principal, id: &str) -> Result<StoredBatch, JobError> {
        self.store()
            .get_batch(&principal.scope, id, principal.thread_owner_filter())
            .await?
            .ok_or(JobError::BatchNotFound)
    }

    /// Cancels a run: at once when it waits, else its replica stops it (an `agent` run's turn is
    /// cancelled too) and the answer waits for that attempt's end, up to [`CANCEL_WAIT`], so a read
    /// after it agrees with it. Returns the status it has now: `CANCELED`, the final one it reached
    /// first, or `CANCELED` for a replica that has not stopped it yet (its lease renewal will).
    pub async fn cancel_run(&self, principal: &Principal, id: &str) -> Result<RunStatus, JobError> {
        let asked = self.store().cancel_run(&principal.scope, id, principal.thread_owner_filter()).await?;
        match asked.ok_or(JobError::RunNotFound)? {
            RunCancel::Canceled => {
                self.publish_run(id, &principal.scope).await;
                Ok(RunStatus::Canceled)
            }
            RunCancel::AlreadyFinal(status) => Ok(status),
            RunCancel::Requested { owner } => {
                if owner.as_deref() == Some(self.replica_id()) {
                    self.inner.jobs.stop(id, RunStop::Canceled);
                } else {
                    self.inner.bus.ring(Bell::CancelRun { run: id.to_owned() });
                }
                let deadline = tokio::time::Instant::now() + CANCEL_WAIT;
                loop {
                    let run = self.run(principal, id).await?;
                    if run.status.is_final() {
                        return Ok(run.status);
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return Ok(RunStatus::Canceled);
                    }
                    tokio::time::sleep(CANCEL_POLL).await;
                }
            }
        }
    }

    /// Starts a new run with a run's task, payload, tags and metadata.
    pub async fn replay_run(&self, principal: &Principal, id: &str) -> Result<StoredRun, JobError> {
        let original = self.run(principal, id).await?;
        let task = self.task_for(principal, &original.task_id).await?;
        let options = TriggerOptions {
            tags: original.tags.clone(),
            metadata: Some(original.metadata.clone()),
            concurrency_key: Some(original.concurrency_key.clone()).filter(|k| !k.is_empty()),
            ..TriggerOptions::default()
        };
        let run = self.new_run(principal, &task, original.payload.clone(), &options, triggered_by(principal))?;
        let run = NewRun { replay_of: Some(original.id.clone()), ..run };
        let (stored, _) = self.store().trigger_runs(std::slice::from_ref(&run)).await?.remove(0);
        self.runs_queued(&stored);
        Ok(stored)
    }

    /// Creates a schedule (operators only), or updates the one with its deduplication key.
    pub async fn create_schedule(&self, principal: &Principal, new: NewSchedule) -> Result<StoredSchedule, JobError> {
        if !principal.is_operator() {
            return Err(JobError::Forbidden("schedules are managed by operators"));
        }
        self.task_for(principal, &new.task_id).await?;
        let by = triggered_by(principal);
        self.save_schedule(&principal.scope, new, &by).await
    }

    async fn save_schedule(
        &self,
        scope: &agentry_core::Scope,
        new: NewSchedule,
        created_by: &str,
    ) -> Result<StoredSchedule, JobError> {
        let saved = save_schedule(self.store(), scope, new, created_by).await?;
        self.inner.jobs.schedules_changed();
        self.inner.bus.ring(Bell::SchedulesChanged);
        Ok(saved)
    }

    /// The scope's schedules (operators only).
    pub async fn schedules(&self, principal: &Principal) -> Result<Vec<StoredSchedule>, JobError> {
        if !principal.is_operator() {
            return Err(JobError::Forbidden("schedules are managed by operators"));
        }
        Ok(self.store().list_schedules(&principal.scope).await?)
    }

    /// Turns a schedule on (from its next occurrence after now) or off.
    pub async fn set_schedule_active(
        &self,
        principal: &Principal,
        id: &str,
        active: bool,
    ) -> Result<StoredSchedule, JobError> {
        if !principal.is_operator() {
            return Err(JobError::Forbidden("schedules are managed by operators"));
        }
        let schedule = self.store().get_schedule(&principal.scope, id).await?.ok_or(JobError::ScheduleNotFound)?;
        let next = match active {
            true => {
                let cron = CronSchedule::parse(&schedule.cron, Some(&schedule.timezone))?;
                let next = cron.next_after(Timestamp::now());
                Some(next.ok_or_else(|| invalid("cron", "the schedule never fires again"))?)
            }
            false => None,
        };
        let saved = self.store().set_schedule_active(&principal.scope, id, next).await?;
        self.inner.jobs.schedules_changed();
        self.inner.bus.ring(Bell::SchedulesChanged);
        saved.ok_or(JobError::ScheduleNotFound)
    }

    /// Deletes a schedule (its runs stay).
    pub async fn delete_schedule(&self, principal: &Principal, id: &str) -> Result<(), JobError> {
        if !principal.is_operator() {
            return Err(JobError::Forbidden("schedules are managed by operators"));
        }
        if self.store().delete_schedule(&principal.scope, id).await? { Ok(()) } else { Err(JobError::ScheduleNotFound) }
    }

    /// A run was queued: wake this replica's worker (and the others), tell the operators.
    fn runs_queued(&self, run: &StoredRun) {
        self.inner.jobs.wake();
        self.inner.bus.ring(Bell::RunsQueued);
        self.announce_run(run);
    }

    /// Hands a run's new state to this replica's operator feeds and rings the others.
    pub(crate) fn announce_run(&self, run: &StoredRun) {
        self.inner.hub.publish_scope(&run.scope, crate::hub::ScopeEvent::Run(std::sync::Arc::new(run.clone())));
        self.inner.bus.ring(Bell::RunUpdate { scope: run.scope.clone(), run: run.id.clone() });
    }

    /// Reads a run and announces it.
    async fn publish_run(&self, id: &str, scope: &agentry_core::Scope) {
        if let Ok(Some(run)) = self.store().get_run(scope, id, None).await {
            self.announce_run(&run);
        }
    }

    /// A run's state, for operators of its scope on this replica (another replica rang).
    pub(crate) async fn relay_run_update(&self, scope: &agentry_core::Scope, id: &str) {
        if !self.inner.hub.has_scope_listeners(scope) {
            return;
        }
        if let Ok(Some(run)) = self.store().get_run(scope, id, None).await {
            self.inner.hub.publish_scope(scope, crate::hub::ScopeEvent::Run(std::sync::Arc::new(run)));
        }
    }
}

/// Applies a task file's spec to the scope it declares, with the schedules it declares (each
/// keyed by its `deduplication_key`, or `<task>#<n>`, so applying again updates them). Returns
/// whether the task changed. Works on a bare store (`agentry tasks apply`); a running worker
/// picks the schedules up on its next poll.
pub async fn apply_task(store: &agentry_store::Store, spec: &TaskSpec, created_by: &str) -> Result<bool, JobError> {
    spec.validate().map_err(|e| JobError::Invalid { field: e.field, problem: e.problem })?;
    let scope = spec.declared_scope();
    let changed = store.apply_task(&scope, spec).await?;
    for (i, declared) in spec.schedules.iter().enumerate() {
        let new = NewSchedule {
            task_id: spec.id.clone(),
            cron: declared.cron.clone(),
            timezone: declared.timezone.clone(),
            payload: declared.payload.clone(),
            deduplication_key: Some(
                declared.deduplication_key.clone().unwrap_or_else(|| format!("{}#{}", spec.id, i + 1)),
            ),
            overlap: declared.overlap,
            catch_up: declared.catch_up,
        };
        save_schedule(store, &scope, new, created_by).await?;
    }
    Ok(changed)
}

async fn save_schedule(
    store: &agentry_store::Store,
    scope: &agentry_core::Scope,
    new: NewSchedule,
    created_by: &str,
) -> Result<StoredSchedule, JobError> {
    let cron = CronSchedule::parse(&new.cron, new.timezone.as_deref())?;
    if new.deduplication_key.as_ref().is_some_and(|k| k.is_empty() || k.len() > MAX_KEY_BYTES) {
        return Err(invalid("deduplicationKey", format!("must be 1 to {MAX_KEY_BYTES} bytes")));
    }
    let now = Timestamp::now();
    let schedule = StoredSchedule {
        id: new_id(prefix::SCHEDULE),
        scope: scope.clone(),
        task_id: new.task_id,
        cron: new.cron.trim().to_owned(),
        timezone: cron.timezone().to_owned(),
        payload: new.payload,
        deduplication_key: new.deduplication_key,
        overlap: new.overlap,
        catch_up: new.catch_up,
        active: true,
        next_run_at: cron.next_after(now),
        last_run_at: None,
        created_by: created_by.to_owned(),
        created_at: now,
        updated_at: now,
    };
    Ok(store.save_schedule(&schedule).await?)
}

/// Who a trigger is recorded as coming from.
fn triggered_by(principal: &Principal) -> String {
    match (principal.is_operator(), principal.user_id.as_deref()) {
        (true, None) => "operator".to_owned(),
        (true, Some(user)) => format!("operator:{user}"),
        (false, user) => format!("user:{}", user.unwrap_or_default()),
    }
}
