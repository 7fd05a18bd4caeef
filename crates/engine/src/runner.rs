//! One turn, from `queued` to its final state.
//!
//! Event order of every turn: `meta`, `status`, then the model's `thinking`/`token`s with
//! `tool_call`/`tool_result`/`message_boundary` per tool step, then `message_persisted` (when an
//! answer was stored), `usage`, and `done` last — `error` comes before `done` on failure.

use agentry_core::id::{new_id, prefix};
use agentry_core::{Message, MessageRole, Timestamp, TokenUsage, Turn, TurnEvent, TurnStatus};
use agentry_llm::{ChatMessage, ChatRole, ModelDelta, ModelRequest, ToolCallRequest};
use serde_json::Value;
use tokio::sync::watch;

use crate::log::TurnLog;
use crate::tools::ToolBox;
use crate::{Engine, StopReason, prompt};

/// How a turn ended.
enum Outcome {
    Completed,
    Failed { code: &'static str, cause: String },
    Stopped(StopReason),
}

/// Runs a queued turn to its end. Does nothing if the turn is no longer queued.
pub async fn run(engine: &Engine, turn: Turn) {
    let store = engine.store();
    let lease_ms = i64::try_from(engine.config().lease.as_millis()).unwrap_or(30_000);
    match store.start_turn(&turn.id, lease_ms).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(err) => {
            tracing::error!(%err, turn = %turn.id, "cannot start turn");
            return;
        }
    }
    let (stop_tx, stop_rx) = watch::channel(None);
    engine.inner.running.lock().unwrap_or_else(|p| p.into_inner()).insert(turn.id.clone(), stop_tx);
    let lease = {
        let store = store.clone();
        let turn_id = turn.id.clone();
        let every = engine.config().lease / 3;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(err) = store.renew_turn_lease(&turn_id, lease_ms).await {
                    tracing::warn!(%err, turn = %turn_id, "cannot renew turn lease");
                }
            }
        })
    };

    let mut log = engine.open_log(&turn, 0);
    let mut work = TurnWork { usage: TokenUsage::default(), answer: String::new() };
    let outcome = execute(engine, &turn, &mut log, &mut work, stop_rx).await;

    let (status, cause) = match &outcome {
        Outcome::Completed => (TurnStatus::Completed, None),
        Outcome::Failed { code, cause } => {
            log.emit(TurnEvent::Error { code: (*code).into(), message: cause.clone() });
            (TurnStatus::Failed, Some(cause.clone()))
        }
        Outcome::Stopped(StopReason::Requested) => (TurnStatus::Cancelled, None),
        Outcome::Stopped(StopReason::Shutdown) => {
            let cause = "the server shut down during this turn".to_owned();
            log.emit(TurnEvent::Error { code: "interrupted".into(), message: cause.clone() });
            (TurnStatus::Failed, Some(cause))
        }
    };
    // What the user saw is kept, also when the turn was stopped part-way.
    if !work.answer.trim().is_empty() {
        let message = Message {
            id: new_id(prefix::MESSAGE),
            thread_id: turn.thread_id.clone(),
            role: MessageRole::Assistant,
            content: std::mem::take(&mut work.answer),
            created_at: Timestamp::now(),
        };
        match store.append_message(&turn.scope, &message).await {
            Ok(()) => {
                log.emit(TurnEvent::MessagePersisted {
                    message_id: message.id,
                    thread_id: turn.thread_id.clone(),
                    cost_cents: work.usage.cost_cents,
                });
            }
            Err(err) => tracing::error!(%err, turn = %turn.id, "cannot store the assistant message"),
        }
    }
    log.emit(TurnEvent::Usage { usage: work.usage });
    // The final state is recorded before `done` goes out, so a client that reads the turn after
    // `done` sees it finished.
    if let Err(err) = store.finish_turn(&turn.id, status, cause.as_deref()).await {
        tracing::error!(%err, turn = %turn.id, "cannot record the end of the turn");
    }
    log.emit(TurnEvent::Done { usage: work.usage, status, stopped: status == TurnStatus::Cancelled });
    if let Err(err) = log.close().await {
        tracing::error!(%err, turn = %turn.id, "event log incomplete");
    }
    lease.abort();
    engine.inner.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&turn.id);
}

/// What a turn accumulates while it runs.
struct TurnWork {
    usage: TokenUsage,
    /// The answer text the user saw, across tool steps.
    answer: String,
}

async fn execute(
    engine: &Engine,
    turn: &Turn,
    log: &mut TurnLog,
    work: &mut TurnWork,
    mut stop: watch::Receiver<Option<StopReason>>,
) -> Outcome {
    let store = engine.store();
    let failed = |code, cause: String| Outcome::Failed { code, cause };
    let agent = match store.get_agent(&turn.scope, &turn.agent_id).await {
        Ok(Some(agent)) => agent,
        Ok(None) => return failed("agent_not_found", format!("agent `{}` no longer exists", turn.agent_id)),
        Err(err) => return failed("service_unavailable", err.to_string()),
    };
    log.emit(TurnEvent::Meta {
        thread_id: turn.thread_id.clone(),
        agent_id: turn.agent_id.clone(),
        agent_version_id: agent.current_version_id.clone(),
    });
    let provider = match engine.inner.providers.resolve(&agent.spec) {
        Ok(provider) => provider,
        Err(err) => return failed("provider_unavailable", err.to_string()),
    };
    // The user's message is stored before the model sees it.
    let user_message = Message {
        id: new_id(prefix::MESSAGE),
        thread_id: turn.thread_id.clone(),
        role: MessageRole::User,
        content: turn.input.text.clone(),
        created_at: Timestamp::now(),
    };
    if let Err(err) = store.append_message(&turn.scope, &user_message).await {
        return failed("service_unavailable", err.to_string());
    }
    let history = match store.recent_messages(&turn.scope, &turn.thread_id, engine.config().history_messages).await {
        Ok(history) => history,
        Err(err) => return failed("service_unavailable", err.to_string()),
    };
    let model = agentry_core::ModelRef::parse(&agent.spec.model).map(|m| m.model).unwrap_or_default();
    let mut messages = prompt::messages(prompt::system_prompt(&agent.spec, &turn.input), &history);
    let tools = ToolBox::for_agent(&agent.spec.tools);
    log.emit(TurnEvent::Status { status: "thinking".into() });

    let max_steps = agent.spec.max_steps();
    for step in 0..max_steps {
        let request = ModelRequest { model: model.clone(), messages: messages.clone(), tools: tools.specs() };
        let mut stream = provider.stream(request);
        let mut step_text = String::new();
        let mut calls: Vec<PartialCall> = Vec::new();
        let mut step_usage = None;
        loop {
            let item = tokio::select! {
                reason = stopped(&mut stop) => return Outcome::Stopped(reason),
                item = stream.recv() => item,
            };
            match item {
                None => break,
                Some(Err(err)) => return failed("provider_unavailable", err.to_string()),
                Some(Ok(ModelDelta::Text(text))) => {
                    step_text.push_str(&text);
                    log.emit(TurnEvent::Token { text });
                }
                Some(Ok(ModelDelta::Thinking(text))) => {
                    log.emit(TurnEvent::Thinking { text });
                }
                Some(Ok(ModelDelta::ToolCall { index, id, name, arguments })) => {
                    if calls.len() <= index {
                        calls.resize_with(index + 1, PartialCall::default);
                    }
                    let call = &mut calls[index];
                    call.id = call.id.take().or(id);
                    call.name = call.name.take().or(name);
                    call.arguments.push_str(&arguments);
                }
                Some(Ok(ModelDelta::Usage(usage))) => step_usage = Some(usage),
            }
        }
        if let Some(usage) = step_usage {
            work.usage.input_tokens += usage.input_tokens;
            work.usage.output_tokens += usage.output_tokens;
            work.usage.cached_input_tokens += usage.cached_input_tokens;
            work.usage.cost_cents += engine.inner.providers.cost_cents(&agent.spec.model, &usage);
        }
        if !step_text.is_empty() {
            if !work.answer.is_empty() {
                work.answer.push_str("\n\n");
            }
            work.answer.push_str(&step_text);
        }
        let calls: Vec<ToolCallRequest> = calls
            .into_iter()
            .filter_map(|c| {
                Some(ToolCallRequest {
                    id: c.id.unwrap_or_else(|| new_id(prefix::TOOL_CALL)),
                    name: c.name?,
                    arguments: c.arguments,
                })
            })
            .collect();
        if calls.is_empty() {
            return Outcome::Completed;
        }
        if step + 1 == max_steps {
            // The model wants more tools but the budget is spent: answer with what we have.
            log.emit(TurnEvent::Error {
                code: "max_steps".into(),
                message: format!("the agent reached its limit of {max_steps} model calls in one turn"),
            });
            return Outcome::Completed;
        }
        log.emit(TurnEvent::Status { status: "executing".into() });
        messages.push(ChatMessage {
            role: ChatRole::Assistant,
            content: step_text,
            tool_calls: calls.clone(),
            tool_call_id: None,
        });
        for call in calls {
            let params: Value =
                match serde_json::from_str(if call.arguments.trim().is_empty() { "{}" } else { &call.arguments }) {
                    Ok(params) => params,
                    Err(err) => Value::String(format!("unparseable arguments ({err}): {}", call.arguments)),
                };
            log.emit(TurnEvent::ToolCall { name: call.name.clone(), params: params.clone(), call_id: call.id.clone() });
            let result = if params.is_string() {
                Err("tool arguments are not valid JSON".to_owned())
            } else {
                tokio::select! {
                    reason = stopped(&mut stop) => return Outcome::Stopped(reason),
                    result = tokio::time::timeout(engine.config().tool_timeout, tools.call(&call.name, &params)) => {
                        result.unwrap_or_else(|_| Err(format!("tool timed out after {:?}", engine.config().tool_timeout)))
                    }
                }
            };
            let (result, is_error) = match result {
                Ok(value) => (value, false),
                Err(message) => (serde_json::json!({ "error": message }), true),
            };
            messages.push(ChatMessage {
                role: ChatRole::Tool,
                content: result.to_string(),
                tool_calls: Vec::new(),
                tool_call_id: Some(call.id.clone()),
            });
            log.emit(TurnEvent::ToolResult { name: call.name, result, call_id: call.id, is_error });
        }
        log.emit(TurnEvent::MessageBoundary {});
    }
    Outcome::Completed
}

/// A tool call assembled from streamed fragments.
#[derive(Default)]
struct PartialCall {
    id: Option<String>,
    name: Option<String>,
    arguments: String,
}

/// Resolves when the turn is asked to stop.
async fn stopped(stop: &mut watch::Receiver<Option<StopReason>>) -> StopReason {
    loop {
        if let Some(reason) = *stop.borrow_and_update() {
            return reason;
        }
        if stop.changed().await.is_err() {
            // The switch was dropped: nobody can stop this turn any more.
            std::future::pending::<()>().await;
        }
    }
}
