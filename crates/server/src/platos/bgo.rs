//! Background operations over REST, both client generations (`platos-wire.md` §3.8, §3.9):
//! `/trigger/tasks` (list, `…/{taskId}/trigger`), `/trigger/runs` (list, get, cancel, replay),
//! `/trigger/schedules` (list, create, get, activate, deactivate, delete), `/trigger/batches`
//! (`POST /{taskId}` triggers, `GET /{batchId}` reads), and the 1.x `/jobs` (`{type, payload,
//! options}` → `{jobId}`; list, get unwrapped, cancel, replay).
//!
//! Tasks are declared in files: a 1.x body carrying a JavaScript `handler` is a 400 saying so.
//! End users trigger and read their own runs of tasks with `allow_users`; operators manage the
//! rest. A run can also be read with its `publicAccessToken` (`Authorization: Bearer rpat_…`).

use std::time::Duration;

use agentry_core::task::{RunStatus, parse_duration};
use agentry_core::wire::bgo as wire;
use agentry_core::{Principal, Timestamp};
use agentry_engine::jobs::{NewSchedule, TriggerOptions};
use agentry_store::{RunAttempt, RunFilter, StoredBatch, StoredRun, StoredSchedule, StoredTask};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::auth::{Auth, authenticate, bearer_value};
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams, page_limit};

/// Query of the run lists.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct RunQuery {
    /// Only this task's runs.
    task_id: Option<String>,
    /// `taskId` by the 1.x name (also `type`).
    #[serde(alias = "type")]
    job_type: Option<String>,
    /// Statuses, comma-separated (e.g. `queued,executing`).
    status: Option<String>,
    /// At most this many rows (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// Only the runs of this batch.
    batch_id: Option<String>,
    /// Only the runs this schedule fired.
    schedule_id: Option<String>,
}

/// The options a trigger asked for, checked.
fn options(sent: Option<wire::TriggerOptions>) -> Result<TriggerOptions, ApiError> {
    let sent = sent.unwrap_or_default();
    let delay = match &sent.delay {
        None | Some(Value::Null) => None,
        Some(value) => Some(delay(value)?),
    };
    let ttl = match &sent.ttl {
        None | Some(Value::Null) => None,
        Some(value) => Some(duration("options.ttl", value)?),
    };
    let tags = match sent.tags {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(tag)) => vec![tag],
        Some(Value::Array(tags)) => tags
            .into_iter()
            .map(|t| match t {
                Value::String(t) => Ok(t),
                _ => Err(ApiError::invalid_field("options.tags", "must be strings")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(ApiError::invalid_field("options.tags", "must be a string or a list of strings")),
    };
    Ok(TriggerOptions {
        idempotency_key: sent.idempotency_key,
        delay,
        ttl,
        tags,
        metadata: sent.metadata.filter(|m| !m.is_null()),
        concurrency_key: sent.concurrency_key,
    })
}

fn duration(field: &str, value: &Value) -> Result<Duration, ApiError> {
    let parsed = match value {
        Value::Number(n) => n.as_f64().filter(|s| *s >= 0.0).map(Duration::from_secs_f64),
        Value::String(text) => parse_duration(text),
        _ => None,
    };
    parsed.ok_or_else(|| ApiError::invalid_field(field, "must be seconds or a duration such as \"30s\", \"1h30m\""))
}

/// A delay: a duration, or the time to start at.
fn delay(value: &Value) -> Result<Duration, ApiError> {
    if let Value::String(text) = value
        && parse_duration(text).is_none()
    {
        let at = Timestamp::parse(text).ok_or_else(|| {
            ApiError::invalid_field("options.delay", "must be seconds, a duration (\"1h30m\") or an ISO 8601 time")
        })?;
        let ms = at.0 - Timestamp::now().0;
        return Ok(Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
    }
    duration("options.delay", value)
}

/// A run on the wire (`attempts` when read one by one).
fn run_view(run: &StoredRun, attempts: Option<&[RunAttempt]>) -> wire::Run {
    let status = run.status;
    wire::Run {
        id: run.id.clone(),
        task_id: run.task_id.clone(),
        task_identifier: run.task_id.clone(),
        status,
        payload: run.payload.clone(),
        output: run.output.clone(),
        error: run.error.clone(),
        metadata: run.metadata.clone(),
        tags: run.tags.clone(),
        idempotency_key: run.idempotency_key.clone(),
        concurrency_key: Some(run.concurrency_key.clone()).filter(|k| !k.is_empty()),
        attempt_count: run.attempt_count,
        max_attempts: run.max_attempts,
        batch_id: run.batch_id.clone(),
        schedule_id: run.schedule_id.clone(),
        replay_of: run.replay_of.clone(),
        thread_id: run.thread_id.clone(),
        turn_id: run.turn_id.clone(),
        triggered_by: run.triggered_by.clone(),
        user_id: run.user_id.clone(),
        created_at: run.created_at,
        updated_at: run.updated_at,
        started_at: run.started_at,
        finished_at: run.finished_at,
        completed_at: run.finished_at,
        delay_until: (status == RunStatus::Delayed).then_some(run.available_at),
        next_attempt_at: (status == RunStatus::Queued && run.attempt_count > 0).then_some(run.available_at),
        expires_at: run.expires_at,
        is_finished: status.is_final(),
        is_success: status == RunStatus::Completed,
        attempts: attempts.map(|attempts| {
            attempts
                .iter()
                .map(|a| wire::Attempt {
                    number: a.number,
                    status: a.status,
                    error: a.error.clone(),
                    replica: a.replica.clone(),
                    started_at: a.started_at,
                    finished_at: a.finished_at,
                })
                .collect()
        }),
    }
}

/// A run as the `run_update` socket event and the dashboard's `run` event carry it.
pub(crate) fn run_update(run: &StoredRun) -> Value {
    serde_json::to_value(run_view(run, None)).unwrap_or_default()
}

fn task_view(task: &StoredTask, operator: bool) -> wire::Task {
    let spec = &task.spec;
    wire::Task {
        id: spec.id.clone(),
        slug: spec.id.clone(),
        name: spec.name.clone().unwrap_or_else(|| spec.id.clone()),
        description: spec.description.clone(),
        kind: spec.kind,
        file_path: None,
        export_name: None,
        max_attempts: spec.max_attempts(),
        max_duration_secs: spec.max_duration().as_secs(),
        concurrency_limit: spec.concurrency_limit,
        ttl_secs: spec.ttl_secs,
        allow_users: spec.allow_users,
        created_at: task.created_at,
        updated_at: task.updated_at,
        wiring: operator.then(|| wire::TaskWiring {
            agent_id: spec.agent.clone(),
            url: spec.url.clone(),
            retry: spec.retry,
        }),
    }
}

fn schedule_view(s: StoredSchedule) -> wire::Schedule {
    wire::Schedule {
        id: s.id,
        task_id: s.task_id,
        cron: s.cron,
        timezone: s.timezone,
        payload: s.payload,
        deduplication_key: s.deduplication_key,
        overlap: s.overlap,
        catch_up: s.catch_up,
        active: s.active,
        next_run_at: s.next_run_at,
        last_run_at: s.last_run_at,
        created_by: s.created_by,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

fn batch_view(b: StoredBatch) -> wire::Batch {
    let counts = b.counts.iter().filter(|(_, n)| *n > 0).map(|(s, n)| (s.as_str().to_owned(), *n)).collect();
    wire::Batch {
        status: b.status().to_owned(),
        batch_id: b.id.clone(),
        id: b.id,
        task_id: b.task_id,
        run_count: b.run_ids.len(),
        run_ids: b.run_ids,
        counts,
        created_at: b.created_at,
    }
}

/// `GET /trigger/tasks` → `{tasks}`.
pub async fn list_tasks(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> Result<Json<wire::TaskList>, ApiError> {
    let tasks = state.engine.tasks(&principal).await?;
    Ok(Json(wire::TaskList { tasks: tasks.iter().map(|t| task_view(t, principal.is_operator())).collect() }))
}

/// The handle a trigger answers: the run's id and a token that reads only it.
async fn handle(state: &AppState, run: &StoredRun, fresh: bool) -> Result<Json<wire::RunHandle>, ApiError> {
    let token = state.engine.run_access_token(run).await?;
    Ok(Json(wire::RunHandle {
        id: run.id.clone(),
        job_id: run.id.clone(),
        task_id: run.task_id.clone(),
        status: run.status,
        public_access_token: token,
        is_cached: !fresh,
    }))
}

/// `POST /trigger/tasks/{taskId}/trigger` `{payload, options}` → `{id, publicAccessToken}`.
pub async fn trigger(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(task_id): Path<String>,
    JsonBody(body): JsonBody<wire::TriggerBody>,
) -> Result<Json<wire::RunHandle>, ApiError> {
    let options = options(body.options)?;
    let (run, fresh) = state.engine.trigger_task(&principal, &task_id, body.payload, &options).await?;
    handle(&state, &run, fresh).await
}

fn run_filter(query: RunQuery) -> Result<RunFilter, ApiError> {
    let statuses = match query.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|s| {
                RunStatus::parse(s).ok_or_else(|| {
                    let names: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                    ApiError::invalid_field("status", format!("`{s}` is not one of {}", names.join(", ")))
                })
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(RunFilter {
        task_id: query.task_id.or(query.job_type).filter(|t| !t.is_empty()),
        statuses,
        user_id: None,
        batch_id: query.batch_id,
        schedule_id: query.schedule_id,
        limit: page_limit(query.limit, 50, 1_000)?,
    })
}

/// `GET /trigger/runs?taskId&status&limit` → `{runs}`, newest first.
pub async fn list_runs(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<RunQuery>,
) -> Result<Json<wire::RunList>, ApiError> {
    let runs = state.engine.runs(&principal, run_filter(query)?).await?;
    Ok(Json(wire::RunList { runs: runs.iter().map(|r| run_view(r, None)).collect() }))
}

/// The run a request may read: with the caller's credentials (already checked when a layer put
/// the caller in the request, as the dashboard's session does), or with the run's own token.
async fn readable_run(
    state: &AppState,
    checked: Option<Principal>,
    headers: &HeaderMap,
    id: &str,
) -> Result<StoredRun, ApiError> {
    if let Some(principal) = checked {
        return Ok(state.engine.run(&principal, id).await?);
    }
    let bearer = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_value);
    if let Some(token) = bearer.filter(|t| t.starts_with(agentry_engine::jobs::RUN_TOKEN_PREFIX)) {
        return match state.engine.run_for_access_token(token).await? {
            Some(run) if run.id == id => Ok(run),
            Some(_) => Err(ApiError::not_found("Run")),
            None => Err(ApiError::unauthenticated("the run access token is invalid or expired")),
        };
    }
    let principal = authenticate(state, headers).await?;
    Ok(state.engine.run(&principal, id).await?)
}

/// `GET /trigger/runs/{id}` → the run with its attempts.
pub async fn get_run(
    State(state): State<AppState>,
    checked: Option<axum::Extension<Principal>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<wire::Run>, ApiError> {
    let run = readable_run(&state, checked.map(|axum::Extension(p)| p), &headers, &id).await?;
    let attempts = state.store.run_attempts(&run.id).await?;
    Ok(Json(run_view(&run, Some(&attempts))))
}

/// `POST /trigger/runs/{id}/cancel` → `{id, status}`.
pub async fn cancel_run(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<wire::CancelOutcome>, ApiError> {
    let status = state.engine.cancel_run(&principal, &id).await?;
    Ok(Json(wire::CancelOutcome { id, status }))
}

/// `POST /trigger/runs/{id}/replay` → the new run's handle.
pub async fn replay_run(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<wire::RunHandle>, ApiError> {
    let run = state.engine.replay_run(&principal, &id).await?;
    handle(&state, &run, true).await
}

/// `GET /trigger/schedules` → `{schedules}`.
pub async fn list_schedules(
    State(state): State<AppState>,
    Auth(principal): Auth,
) -> Result<Json<wire::ScheduleList>, ApiError> {
    let schedules = state.engine.schedules(&principal).await?;
    Ok(Json(wire::ScheduleList { schedules: schedules.into_iter().map(schedule_view).collect() }))
}

/// `POST /trigger/schedules` `{taskId, cron, timezone?, payload?}` → 201 schedule.
pub async fn create_schedule(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody<wire::ScheduleBody>,
) -> Result<(StatusCode, Json<wire::Schedule>), ApiError> {
    let new = NewSchedule {
        task_id: body.task_id,
        cron: body.cron,
        timezone: body.timezone,
        payload: body.payload,
        deduplication_key: body.deduplication_key,
        overlap: body.overlap.unwrap_or_default(),
        catch_up: body.catch_up.unwrap_or_default(),
    };
    let schedule = state.engine.create_schedule(&principal, new).await?;
    Ok((StatusCode::CREATED, Json(schedule_view(schedule))))
}

fn operator(principal: &Principal) -> Result<(), ApiError> {
    if principal.is_operator() { Ok(()) } else { Err(ApiError::operator_only()) }
}

/// `GET /trigger/schedules/{id}` → schedule.
pub async fn get_schedule(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<wire::Schedule>, ApiError> {
    operator(&principal)?;
    let schedule =
        state.store.get_schedule(&principal.scope, &id).await?.ok_or_else(|| ApiError::not_found("Schedule"))?;
    Ok(Json(schedule_view(schedule)))
}

/// `POST /trigger/schedules/{id}/activate` → schedule.
pub async fn activate_schedule(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<wire::Schedule>, ApiError> {
    Ok(Json(schedule_view(state.engine.set_schedule_active(&principal, &id, true).await?)))
}

/// `POST /trigger/schedules/{id}/deactivate` → schedule.
pub async fn deactivate_schedule(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<wire::Schedule>, ApiError> {
    Ok(Json(schedule_view(state.engine.set_schedule_active(&principal, &id, false).await?)))
}

/// `DELETE /trigger/schedules/{id}` → `{id, deleted: true}`.
pub async fn delete_schedule(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<wire::DeletedSchedule>, ApiError> {
    state.engine.delete_schedule(&principal, &id).await?;
    Ok(Json(wire::DeletedSchedule { id, deleted: true }))
}

/// `POST /trigger/batches/{taskId}` `{payloads, options}` → `{batchId, runIds}`.
pub async fn trigger_batch(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(task_id): Path<String>,
    JsonBody(body): JsonBody<wire::BatchBody>,
) -> Result<Json<wire::BatchHandle>, ApiError> {
    let options = options(body.options)?;
    let (batch_id, run_ids) = state.engine.trigger_batch(&principal, &task_id, body.payloads, &options).await?;
    Ok(Json(wire::BatchHandle { id: batch_id.clone(), batch_id, task_id, run_ids }))
}

/// `GET /trigger/batches/{batchId}` → `{id, status, runIds, counts}`.
pub async fn get_batch(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<wire::Batch>, ApiError> {
    Ok(Json(batch_view(state.engine.batch(&principal, &id).await?)))
}

/// Body of the 1.x `POST /jobs`: `{type, payload, options}`. A variant-A body (`jobId`,
/// `handler`: an operator-authored JavaScript job) is refused with a clear 400.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct JobBody {
    #[serde(rename = "type", default)]
    job_type: Option<String>,
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    options: Option<wire::TriggerOptions>,
    #[serde(default)]
    handler: Option<Value>,
    #[serde(default, rename = "jobId")]
    job_id: Option<Value>,
}

/// The 1.x job object (a run, named as `client.jobs` reads it).
fn job_view(run: &StoredRun) -> wire::Job {
    wire::Job { job_type: run.task_id.clone(), job_id: run.id.clone(), run: run_view(run, None) }
}

/// `POST /jobs` `{type, payload, options}` → `{jobId, id, status}`.
pub async fn spawn_job(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody<JobBody>,
) -> Result<Json<wire::RunHandle>, ApiError> {
    if body.handler.is_some() || body.job_id.is_some() {
        return Err(ApiError::invalid_field(
            "handler",
            "Agentry does not run JavaScript job handlers: declare tasks in task files (`agentry tasks apply`, \
             `serve --tasks DIR`) and spawn them with {type: <task id>, payload, options}",
        ));
    }
    let task_id = body
        .job_type
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::invalid_field("type", "names the task to run"))?;
    let options = options(body.options)?;
    let (run, fresh) = state.engine.trigger_task(&principal, &task_id, body.payload, &options).await?;
    handle(&state, &run, fresh).await
}

/// `GET /jobs?type&status&limit` → `{jobs}`.
pub async fn list_jobs(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<RunQuery>,
) -> Result<Json<wire::JobList>, ApiError> {
    let runs = state.engine.runs(&principal, run_filter(query)?).await?;
    Ok(Json(wire::JobList { jobs: runs.iter().map(job_view).collect() }))
}

/// `GET /jobs/{id}` → the job, unwrapped.
pub async fn get_job(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<wire::Job>, ApiError> {
    Ok(Json(job_view(&state.engine.run(&principal, &id).await?)))
}

/// `POST /jobs/{id}/replay` → `{jobId}`.
pub async fn replay_job(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<wire::RunHandle>, ApiError> {
    let run = state.engine.replay_run(&principal, &id).await?;
    handle(&state, &run, true).await
}
