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

use agentry_core::task::{CatchUp, Overlap, RunStatus, parse_duration};
use agentry_core::{Principal, Timestamp};
use agentry_engine::jobs::{NewSchedule, TriggerOptions};
use agentry_store::{RunAttempt, RunFilter, StoredBatch, StoredRun, StoredSchedule, StoredTask};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{Auth, authenticate, bearer_value};
use crate::error::ApiError;
use crate::extract::{JsonBody, QueryParams, page_limit};

/// Trigger options as clients send them; unknown keys (trigger.dev has many) are ignored.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WireOptions {
    idempotency_key: Option<String>,
    /// Seconds, a duration (`"1h30m"`), or a time (`Date` → ISO string).
    delay: Option<Value>,
    /// Seconds or a duration.
    ttl: Option<Value>,
    /// A tag or a list of tags.
    tags: Option<Value>,
    metadata: Option<Value>,
    concurrency_key: Option<String>,
}

/// Body of a trigger.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TriggerBody {
    #[serde(default)]
    payload: Value,
    #[serde(default)]
    options: Option<WireOptions>,
}

/// Body of a batch trigger.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct BatchBody {
    payloads: Vec<Value>,
    #[serde(default)]
    options: Option<WireOptions>,
}

/// Body of a schedule.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleBody {
    task_id: String,
    cron: String,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default, alias = "externalId")]
    deduplication_key: Option<String>,
    #[serde(default)]
    overlap: Option<Overlap>,
    #[serde(default)]
    catch_up: Option<CatchUp>,
}

/// Query of the run lists.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunQuery {
    task_id: Option<String>,
    #[serde(alias = "type")]
    job_type: Option<String>,
    status: Option<String>,
    limit: Option<i64>,
    batch_id: Option<String>,
    schedule_id: Option<String>,
}

fn options(wire: Option<WireOptions>) -> Result<TriggerOptions, ApiError> {
    let wire = wire.unwrap_or_default();
    let delay = match &wire.delay {
        None | Some(Value::Null) => None,
        Some(value) => Some(delay(value)?),
    };
    let ttl = match &wire.ttl {
        None | Some(Value::Null) => None,
        Some(value) => Some(duration("options.ttl", value)?),
    };
    let tags = match wire.tags {
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
        idempotency_key: wire.idempotency_key,
        delay,
        ttl,
        tags,
        metadata: wire.metadata.filter(|m| !m.is_null()),
        concurrency_key: wire.concurrency_key,
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

fn ts(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_rfc3339()))
}

/// A run on the wire (`attempts` when read one by one).
pub(crate) fn run_view(run: &StoredRun, attempts: Option<&[RunAttempt]>) -> Value {
    let status = run.status;
    let mut view = json!({
        "id": run.id,
        "taskId": run.task_id,
        "taskIdentifier": run.task_id,
        "status": status.as_str(),
        "payload": run.payload,
        "output": run.output,
        "error": run.error,
        "metadata": run.metadata,
        "tags": run.tags,
        "idempotencyKey": run.idempotency_key,
        "concurrencyKey": Some(&run.concurrency_key).filter(|k| !k.is_empty()),
        "attemptCount": run.attempt_count,
        "maxAttempts": run.max_attempts,
        "batchId": run.batch_id,
        "scheduleId": run.schedule_id,
        "replayOf": run.replay_of,
        "threadId": run.thread_id,
        "turnId": run.turn_id,
        "triggeredBy": run.triggered_by,
        "userId": run.user_id,
        "createdAt": run.created_at.to_rfc3339(),
        "updatedAt": run.updated_at.to_rfc3339(),
        "startedAt": ts(run.started_at),
        "finishedAt": ts(run.finished_at),
        "completedAt": ts(run.finished_at),
        "delayUntil": if status == RunStatus::Delayed { ts(Some(run.available_at)) } else { Value::Null },
        "nextAttemptAt": if status == RunStatus::Queued && run.attempt_count > 0 { ts(Some(run.available_at)) } else { Value::Null },
        "expiresAt": ts(run.expires_at),
        "isFinished": status.is_final(),
        "isSuccess": status == RunStatus::Completed,
    });
    if let (Some(attempts), Some(map)) = (attempts, view.as_object_mut()) {
        let attempts: Vec<Value> = attempts
            .iter()
            .map(|a| {
                json!({
                    "number": a.number,
                    "status": a.status.as_str(),
                    "error": a.error,
                    "replica": a.replica,
                    "startedAt": a.started_at.to_rfc3339(),
                    "finishedAt": ts(a.finished_at),
                })
            })
            .collect();
        map.insert("attempts".into(), Value::Array(attempts));
    }
    view
}

fn task_view(task: &StoredTask, operator: bool) -> Value {
    let spec = &task.spec;
    let mut view = json!({
        "id": spec.id,
        "slug": spec.id,
        "name": spec.name.as_deref().unwrap_or(&spec.id),
        "description": spec.description,
        "kind": spec.kind,
        "filePath": Value::Null,
        "exportName": Value::Null,
        "maxAttempts": spec.max_attempts(),
        "maxDurationSecs": spec.max_duration().as_secs(),
        "concurrencyLimit": spec.concurrency_limit,
        "ttlSecs": spec.ttl_secs,
        "allowUsers": spec.allow_users,
        "createdAt": task.created_at.to_rfc3339(),
        "updatedAt": task.updated_at.to_rfc3339(),
    });
    if operator && let Some(map) = view.as_object_mut() {
        map.insert("agentId".into(), json!(spec.agent));
        map.insert("url".into(), json!(spec.url));
        map.insert("retry".into(), json!(spec.retry));
    }
    view
}

fn schedule_view(s: &StoredSchedule) -> Value {
    json!({
        "id": s.id,
        "taskId": s.task_id,
        "cron": s.cron,
        "timezone": s.timezone,
        "payload": s.payload,
        "deduplicationKey": s.deduplication_key,
        "overlap": s.overlap,
        "catchUp": s.catch_up,
        "active": s.active,
        "nextRunAt": ts(s.next_run_at),
        "lastRunAt": ts(s.last_run_at),
        "createdBy": s.created_by,
        "createdAt": s.created_at.to_rfc3339(),
        "updatedAt": s.updated_at.to_rfc3339(),
    })
}

fn batch_view(b: &StoredBatch) -> Value {
    let counts: serde_json::Map<String, Value> =
        b.counts.iter().filter(|(_, n)| *n > 0).map(|(s, n)| (s.as_str().to_owned(), json!(n))).collect();
    json!({
        "id": b.id,
        "batchId": b.id,
        "taskId": b.task_id,
        "status": b.status(),
        "runIds": b.run_ids,
        "runCount": b.run_ids.len(),
        "counts": counts,
        "createdAt": b.created_at.to_rfc3339(),
    })
}

/// `GET /trigger/tasks` → `{tasks}`.
pub async fn list_tasks(State(state): State<AppState>, Auth(principal): Auth) -> Result<Json<Value>, ApiError> {
    let tasks = state.engine.tasks(&principal).await?;
    let views: Vec<Value> = tasks.iter().map(|t| task_view(t, principal.is_operator())).collect();
    Ok(Json(json!({ "tasks": views })))
}

/// The handle a trigger answers: the run's id and a token that reads only it.
async fn handle(state: &AppState, run: &StoredRun, fresh: bool) -> Result<Value, ApiError> {
    let token = state.engine.run_access_token(run).await?;
    Ok(json!({
        "id": run.id,
        "jobId": run.id,
        "taskId": run.task_id,
        "status": run.status.as_str(),
        "publicAccessToken": token,
        "isCached": !fresh,
    }))
}

/// `POST /trigger/tasks/{taskId}/trigger` `{payload, options}` → `{id, publicAccessToken}`.
pub async fn trigger(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(task_id): Path<String>,
    JsonBody(body): JsonBody<TriggerBody>,
) -> Result<Json<Value>, ApiError> {
    let options = options(body.options)?;
    let (run, fresh) = state.engine.trigger_task(&principal, &task_id, body.payload, &options).await?;
    Ok(Json(handle(&state, &run, fresh).await?))
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
) -> Result<Json<Value>, ApiError> {
    let runs = state.engine.runs(&principal, run_filter(query)?).await?;
    Ok(Json(json!({ "runs": runs.iter().map(|r| run_view(r, None)).collect::<Vec<_>>() })))
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
) -> Result<Json<Value>, ApiError> {
    let run = readable_run(&state, checked.map(|axum::Extension(p)| p), &headers, &id).await?;
    let attempts = state.store.run_attempts(&run.id).await?;
    Ok(Json(run_view(&run, Some(&attempts))))
}

/// `POST /trigger/runs/{id}/cancel` → `{id, status}`.
pub async fn cancel_run(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let status = state.engine.cancel_run(&principal, &id).await?;
    Ok(Json(json!({ "id": id, "status": status.as_str() })))
}

/// `POST /trigger/runs/{id}/replay` → the new run's handle.
pub async fn replay_run(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = state.engine.replay_run(&principal, &id).await?;
    Ok(Json(handle(&state, &run, true).await?))
}

/// `GET /trigger/schedules` → `{schedules}`.
pub async fn list_schedules(State(state): State<AppState>, Auth(principal): Auth) -> Result<Json<Value>, ApiError> {
    let schedules = state.engine.schedules(&principal).await?;
    Ok(Json(json!({ "schedules": schedules.iter().map(schedule_view).collect::<Vec<_>>() })))
}

/// `POST /trigger/schedules` `{taskId, cron, timezone?, payload?}` → 201 schedule.
pub async fn create_schedule(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody<ScheduleBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    Ok((StatusCode::CREATED, Json(schedule_view(&schedule))))
}

fn operator(principal: &Principal) -> Result<(), ApiError> {
    if principal.is_operator() { Ok(()) } else { Err(ApiError::operator_only()) }
}

/// `GET /trigger/schedules/{id}` → schedule.
pub async fn get_schedule(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    operator(&principal)?;
    let schedule =
        state.store.get_schedule(&principal.scope, &id).await?.ok_or_else(|| ApiError::not_found("Schedule"))?;
    Ok(Json(schedule_view(&schedule)))
}

/// `POST /trigger/schedules/{id}/activate` → schedule.
pub async fn activate_schedule(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(schedule_view(&state.engine.set_schedule_active(&principal, &id, true).await?)))
}

/// `POST /trigger/schedules/{id}/deactivate` → schedule.
pub async fn deactivate_schedule(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(schedule_view(&state.engine.set_schedule_active(&principal, &id, false).await?)))
}

/// `DELETE /trigger/schedules/{id}` → `{deleted: true}`.
pub async fn delete_schedule(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    state.engine.delete_schedule(&principal, &id).await?;
    Ok(Json(json!({ "id": id, "deleted": true })))
}

/// `POST /trigger/batches/{taskId}` `{payloads, options}` → `{batchId, runIds}`.
pub async fn trigger_batch(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(task_id): Path<String>,
    JsonBody(body): JsonBody<BatchBody>,
) -> Result<Json<Value>, ApiError> {
    let options = options(body.options)?;
    let (batch_id, run_ids) = state.engine.trigger_batch(&principal, &task_id, body.payloads, &options).await?;
    Ok(Json(json!({ "batchId": batch_id, "id": batch_id, "taskId": task_id, "runIds": run_ids })))
}

/// `GET /trigger/batches/{batchId}` → `{id, status, runIds, counts}`.
pub async fn get_batch(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(batch_view(&state.engine.batch(&principal, &id).await?)))
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
    options: Option<WireOptions>,
    #[serde(default)]
    handler: Option<Value>,
    #[serde(default, rename = "jobId")]
    job_id: Option<Value>,
}

/// The 1.x job object (a run, named as `client.jobs` reads it).
fn job_view(run: &StoredRun) -> Value {
    let mut view = run_view(run, None);
    if let Some(map) = view.as_object_mut() {
        map.insert("type".into(), json!(run.task_id));
        map.insert("jobId".into(), json!(run.id));
    }
    view
}

/// `POST /jobs` `{type, payload, options}` → `{jobId, id, status}`.
pub async fn spawn_job(
    State(state): State<AppState>,
    Auth(principal): Auth,
    JsonBody(body): JsonBody<JobBody>,
) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(handle(&state, &run, fresh).await?))
}

/// `GET /jobs?type&status&limit` → `{jobs}`.
pub async fn list_jobs(
    State(state): State<AppState>,
    Auth(principal): Auth,
    QueryParams(query): QueryParams<RunQuery>,
) -> Result<Json<Value>, ApiError> {
    let runs = state.engine.runs(&principal, run_filter(query)?).await?;
    Ok(Json(json!({ "jobs": runs.iter().map(job_view).collect::<Vec<_>>() })))
}

/// `GET /jobs/{id}` → the job, unwrapped.
pub async fn get_job(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(job_view(&state.engine.run(&principal, &id).await?)))
}

/// `POST /jobs/{id}/replay` → `{jobId}`.
pub async fn replay_job(
    State(state): State<AppState>,
    Auth(principal): Auth,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let run = state.engine.replay_run(&principal, &id).await?;
    Ok(Json(handle(&state, &run, true).await?))
}
