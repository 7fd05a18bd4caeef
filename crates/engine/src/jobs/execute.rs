//! One attempt of a run: an `http` task calls its endpoint with the payload; an `agent` task runs
//! a turn of its agent and follows it to `done`. The attempt ends in one fenced write
//! (`Store::finish_attempt`); a replica that lost the run writes nothing.

use agentry_core::task::{RunStatus, TaskKind, TaskSpec};
use agentry_core::tool::{HttpMethod, HttpToolSpec};
use agentry_core::{
    MessageRole, Principal, PrincipalKind, Thread, ThreadStatus, Timestamp, TurnEvent, TurnStatus, UserMeta,
};
use agentry_store::{AttemptEnd, ClaimedRun, RunLease, StoredRun};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::worker::RunStop;
use crate::{Engine, EngineError, NewMessage};

/// Renders a task template (`Summarise {{payload.url}}`) over a payload; a missing field is an
/// error naming it.
pub(crate) fn render(template: &str, payload: &Value) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.render_str(
        template,
        minijinja::context! { payload => minijinja::Value::from(minijinja::value::Serde(payload)) },
    )
    .map_err(|e| format!("template `{template}`: {}", e.detail().unwrap_or(&e.to_string())))
}

/// How an attempt's work ended, before it is written.
enum Outcome {
    Done(AttemptEnd),
    /// This replica no longer holds the run: write nothing.
    Lost,
}

fn failed(error: impl Into<String>, retry: bool, run: &StoredRun, lease: &RunLease) -> Outcome {
    let retry_in_ms = retry.then(|| {
        let attempt = u32::try_from(lease.attempt).unwrap_or(u32::MAX);
        i64::try_from(run.retry.jittered_delay(attempt).as_millis()).unwrap_or(i64::MAX)
    });
    Outcome::Done(AttemptEnd::Failed { error: error.into(), retry_in_ms })
}

fn stopped(reason: RunStop) -> Outcome {
    match reason {
        RunStop::Canceled => Outcome::Done(AttemptEnd::Canceled),
        RunStop::LeaseLost => Outcome::Lost,
        RunStop::Shutdown => Outcome::Done(AttemptEnd::Failed {
            error: "interrupted: the replica shut down".into(),
            retry_in_ms: Some(0),
        }),
    }
}

/// Runs one attempt of a claimed run to its end.
pub(super) async fn attempt(engine: &Engine, claimed: ClaimedRun, mut stop: watch::Receiver<Option<RunStop>>) {
    let ClaimedRun { run, lease } = claimed;
    let started = Instant::now();
    let outcome = match engine.cached_task(&run.scope, &run.task_id).await {
        Ok(Some(task)) => match task.spec.kind {
            TaskKind::Http => http(engine, &task.spec, &run, &lease, &mut stop).await,
            TaskKind::Agent => agent(engine, &task.spec, &run, &lease, &mut stop).await,
        },
        Ok(None) => failed(format!("task `{}` no longer exists", run.task_id), false, &run, &lease),
        Err(err) => failed(format!("cannot read the task: {err}"), true, &run, &lease),
    };
    let Outcome::Done(end) = outcome else {
        tracing::warn!(run = %run.id, "stopped a run this replica no longer holds");
        return;
    };
    match engine.store().finish_attempt(&lease, &end).await {
        Ok(Some(stored)) => {
            tracing::info!(
                run = %stored.id, task = %stored.task_id, attempt = lease.attempt, status = stored.status.as_str(),
                elapsed_ms = started.elapsed().as_millis() as u64, "run attempt ended"
            );
            if stored.status == RunStatus::Queued {
                // Its next attempt may run here or on any other replica.
                engine.inner.jobs.wake();
                engine.inner.bus.ring(crate::bus::Bell::RunsQueued);
            }
            engine.announce_run(&stored);
        }
        Ok(None) => tracing::warn!(run = %run.id, "the run was taken over before its attempt could end here"),
        Err(err) => tracing::error!(%err, run = %run.id, "cannot record the end of a run's attempt"),
    }
}

async fn wait_stop(stop: &mut watch::Receiver<Option<RunStop>>) -> RunStop {
    match stop.wait_for(Option::is_some).await {
        Ok(reason) => reason.unwrap_or(RunStop::LeaseLost),
        // The worker is gone: this replica is going away.
        Err(_) => RunStop::Shutdown,
    }
}

async fn http(
    engine: &Engine,
    spec: &TaskSpec,
    run: &StoredRun,
    lease: &RunLease,
    stop: &mut watch::Receiver<Option<RunStop>>,
) -> Outcome {
    let arguments = match &run.payload {
        Value::Object(_) => run.payload.clone(),
        Value::Null => json!({}),
        _ => return failed("an `http` task's payload must be a JSON object (or null)", false, run, lease),
    };
    let mut headers = spec.headers.clone();
    headers.insert("X-Agentry-Run-Id".into(), run.id.clone());
    headers.insert("X-Agentry-Attempt".into(), lease.attempt.to_string());
    headers.insert("Idempotency-Key".into(), run.id.clone());
    let tool = HttpToolSpec {
        name: spec.id.clone(),
        description: String::new(),
        method: spec.method.unwrap_or(HttpMethod::Post),
        url: spec.url.clone().unwrap_or_default(),
        headers,
        parameters: json!({}),
        timeout_secs: None,
        requires_approval: false,
        approval_timeout_secs: None,
    };
    let env = &engine.inner.tool_env;
    let max = spec.max_duration();
    let call = crate::tools::http::call(&env.http, &tool, &env.secrets, &arguments, max, env.max_result_bytes);
    tokio::select! {
        result = tokio::time::timeout(max, call) => match result {
            Ok(Ok(output)) => Outcome::Done(AttemptEnd::Completed(output)),
            Ok(Err(failure)) if failure.message.starts_with("timed out") => {
                Outcome::Done(AttemptEnd::TimedOut(format!("ran past max_duration_secs ({}s)", max.as_secs())))
            }
            Ok(Err(failure)) => failed(failure.message, true, run, lease),
            Err(_) => Outcome::Done(AttemptEnd::TimedOut(format!("ran past max_duration_secs ({}s)", max.as_secs()))),
        },
        reason = wait_stop(stop) => stopped(reason),
    }
}

/// The caller a run's turn is sent as: an operator of the run's scope, acting as its user.
fn run_principal(run: &StoredRun) -> Principal {
    Principal {
        scope: run.scope.clone(),
        user_id: run.user_id.clone(),
        kind: PrincipalKind::Operator,
        user_meta: UserMeta::default(),
        pinned_agent_id: None,
    }
}

async fn agent(
    engine: &Engine,
    spec: &TaskSpec,
    run: &StoredRun,
    lease: &RunLease,
    stop: &mut watch::Receiver<Option<RunStop>>,
) -> Outcome {
    let store = engine.store();
    // An earlier attempt's turn (its replica died while following it): follow or reuse it.
    let earlier = match &run.turn_id {
        Some(id) => store.get_turn(&run.scope, id).await.ok().flatten(),
        None => None,
    };
    let (turn, mut follower) = match earlier {
        Some(turn) if turn.status == TurnStatus::Completed => {
            return completed(engine, run, &turn.thread_id, &turn.id).await;
        }
        Some(turn) if !matches!(turn.status, TurnStatus::Failed | TurnStatus::Cancelled) => {
            match engine.follow(&run.scope, &turn, 0).await {
                Ok(follower) => (turn, follower),
                Err(err) => return failed(format!("cannot follow the run's turn: {err}"), true, run, lease),
            }
        }
        _ => {
            let text = match render(spec.message.as_deref().unwrap_or_default(), &run.payload) {
                Ok(text) => text,
                Err(err) => return failed(err, false, run, lease),
            };
            let principal = run_principal(run);
            let thread = match thread_for(engine, &principal, spec, run).await {
                Ok(thread) => thread,
                Err((err, retry)) => return failed(err, retry, run, lease),
            };
            let message = NewMessage {
                text,
                idempotency_key: Some(format!("{}:{}", run.id, lease.attempt)),
                ..NewMessage::default()
            };
            match engine.send(&principal, &thread, message).await {
                Ok(sent) => sent,
                Err(err) => {
                    let retry = matches!(err, EngineError::RateLimited { .. } | EngineError::Store(_));
                    return failed(format!("{}: {err}", err.code()), retry, run, lease);
                }
            }
        }
    };
    match store.set_run_turn(lease, &turn.thread_id, &turn.id).await {
        Ok(true) => {}
        Ok(false) => return Outcome::Lost,
        Err(err) => return failed(format!("cannot record the run's turn: {err}"), true, run, lease),
    }
    let max = spec.max_duration();
    let mut deadline = Instant::now() + max;
    let mut waiting_since: Option<Instant> = None;
    let mut error: Option<String> = None;
    loop {
        tokio::select! {
            next = follower.next() => match next {
                Ok(Some(event)) => match event.event {
                    TurnEvent::ApprovalNeeded { .. } => {
                        if waiting_since.is_none() {
                            waiting_since = Some(Instant::now());
                            set_waiting(engine, run, lease, true).await;
                        }
                    }
                    TurnEvent::Status { status } if status == "waiting" => {
                        if waiting_since.is_none() {
                            waiting_since = Some(Instant::now());
                            set_waiting(engine, run, lease, true).await;
                        }
                    }
                    TurnEvent::Error { code, message, .. } => error = Some(format!("{code}: {message}")),
                    TurnEvent::Done { status, .. } => {
                        return match status {
                            TurnStatus::Completed => completed(engine, run, &turn.thread_id, &turn.id).await,
                            TurnStatus::Cancelled => Outcome::Done(AttemptEnd::Canceled),
                            _ => failed(error.unwrap_or_else(|| "the turn failed".into()), true, run, lease),
                        };
                    }
                    _ => {
                        if let Some(since) = waiting_since.take() {
                            deadline += since.elapsed();
                            set_waiting(engine, run, lease, false).await;
                        }
                    }
                },
                Ok(None) => return failed("the turn's events ended without `done`", true, run, lease),
                Err(err) => return failed(format!("cannot read the turn's events: {err}"), true, run, lease),
            },
            reason = wait_stop(stop) => {
                if reason == RunStop::Canceled
                    && let Err(err) = engine.cancel_thread(&run.scope, &turn.thread_id).await
                {
                    tracing::warn!(%err, run = %run.id, "cannot cancel the run's turn");
                }
                return stopped(reason);
            }
            () = tokio::time::sleep_until(deadline), if waiting_since.is_none() => {
                if let Err(err) = engine.cancel_thread(&run.scope, &turn.thread_id).await {
                    tracing::warn!(%err, run = %run.id, "cannot cancel the timed-out run's turn");
                }
                return Outcome::Done(AttemptEnd::TimedOut(format!("ran past max_duration_secs ({}s)", max.as_secs())));
            }
        }
    }
}

async fn set_waiting(engine: &Engine, run: &StoredRun, lease: &RunLease, waiting: bool) {
    match engine.store().set_run_waiting(lease, waiting).await {
        Ok(true) => {
            if let Ok(Some(stored)) = engine.store().get_run(&run.scope, &run.id, None).await {
                engine.announce_run(&stored);
            }
        }
        Ok(false) => {}
        Err(err) => tracing::warn!(%err, run = %run.id, "cannot record that the run waits"),
    }
}

/// The output of a run whose turn completed: the stored answer, the ids and the usage.
async fn completed(engine: &Engine, run: &StoredRun, thread_id: &str, turn_id: &str) -> Outcome {
    let store = engine.store();
    let answer = match store.recent_messages(&run.scope, thread_id, 20).await {
        Ok(messages) => messages
            .into_iter()
            .rev()
            .find(|m| m.role == MessageRole::Assistant && m.turn_id.as_deref() == Some(turn_id))
            .map(|m| m.content),
        Err(err) => {
            return Outcome::Done(AttemptEnd::Failed {
                error: format!("cannot read the answer: {err}"),
                retry_in_ms: Some(0),
            });
        }
    };
    let usage = store.turn_usage(&run.scope, turn_id).await.unwrap_or_default();
    Outcome::Done(AttemptEnd::Completed(json!({
        "answer": answer.unwrap_or_default(),
        "threadId": thread_id,
        "turnId": turn_id,
        "usage": {
            "inputTokens": usage.input_tokens,
            "outputTokens": usage.output_tokens,
            "costMicroCents": usage.cost.0,
        },
    })))
}

/// The thread a run's turn goes to: a new one, the one of its key, or the task's fixed one.
async fn thread_for(
    engine: &Engine,
    principal: &Principal,
    spec: &TaskSpec,
    run: &StoredRun,
) -> Result<Thread, (String, bool)> {
    let store = engine.store();
    let agent_id = spec.agent.as_deref().unwrap_or_default();
    let store_err = |err: agentry_store::StoreError| (format!("service_unavailable: {err}"), true);
    if let Some(id) = &spec.thread_id {
        return store
            .get_thread(&run.scope, None, id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| (format!("thread `{id}` (the task's thread_id) not found"), false));
    }
    let title = Some(format!("{} · {}", spec.name.as_deref().unwrap_or(&spec.id), run.id));
    let key = match spec.thread.as_deref().map(str::trim) {
        None | Some("new") => {
            return engine.create_thread(principal, Some(agent_id), title).await.map_err(|err| {
                let retry = matches!(err, EngineError::Store(_));
                (format!("{}: {err}", err.code()), retry)
            });
        }
        Some(template) => render(template, &run.payload).map_err(|e| (e, false))?,
    };
    let candidate = agentry_core::id::new_id(agentry_core::id::prefix::THREAD);
    let thread_id = store.task_thread(&run.scope, &spec.id, &key, &candidate).await.map_err(store_err)?;
    if thread_id != candidate {
        return store
            .get_thread(&run.scope, None, &thread_id)
            .await
            .map_err(store_err)?
            .ok_or_else(|| (format!("the thread of key `{key}` is being created; trying again"), true));
    }
    if store.get_agent(&run.scope, agent_id).await.map_err(store_err)?.is_none() {
        return Err((format!("agent_not_found: agent `{agent_id}` not found"), false));
    }
    let now = Timestamp::now();
    let thread = Thread {
        id: candidate,
        agent_id: agent_id.to_owned(),
        user_id: principal.owner_id().to_owned(),
        scope: run.scope.clone(),
        title: Some(format!("{} · {key}", spec.name.as_deref().unwrap_or(&spec.id))),
        status: ThreadStatus::Active,
        archived_at: None,
        created_at: now,
        updated_at: now,
    };
    store.insert_thread(&thread).await.map_err(store_err)?;
    Ok(thread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_payload_fields_and_name_missing_ones() {
        let payload = json!({"url": "https://a.example", "n": 3, "nested": {"k": "v"}});
        assert_eq!(
            render("Summarise {{payload.url}} ({{ payload.n }})", &payload).unwrap(),
            "Summarise https://a.example (3)"
        );
        assert_eq!(render("{{payload.nested.k}}", &payload).unwrap(), "v");
        let err = render("{{payload.missing}}", &payload).unwrap_err();
        assert!(err.contains("{{payload.missing}}"), "{err}");
        assert!(render("{{payload.url", &payload).is_err());
    }
}
