//! One turn, from `queued` to its final state — possibly across a wait for human approval.
//!
//! Event order of every turn: `meta`, `status`, then the model's `thinking`/`token`s with
//! `tool_call`/`tool_result`/`message_boundary` per tool step, then `safety_flags` (output hits),
//! `message_persisted` (when an answer was stored), `usage`, and `done` last — `error` comes
//! before `done` on failure.
//!
//! A tool call that needs approval creates a pending approval and emits `approval_needed`; the
//! turn then *parks*: its state ([`TurnState`]) is saved with the turn, which goes to `waiting`,
//! and the runner lets go of it. Nothing is held in memory, so a restart loses nothing. When
//! every approval of the step is settled the turn is queued again, and the next run resumes
//! from the saved state: `approval_resolved`, the tool results, and the model's next step, in the
//! same turn and the same event log.

use agentry_core::id::{new_id, prefix};
use agentry_core::{
    Approval, ApprovalStatus, ContentItem, Message, MessageRole, Timestamp, TokenUsage, Turn, TurnEvent, TurnStatus,
};
use agentry_llm::{ChatMessage, ChatRole, ModelDelta, ModelRequest, ToolCallRequest};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::log::TurnLog;
use crate::tools::{AgentTool, BuiltinTool, ToolBox, ToolFailure, ToolKind};
use crate::{Engine, StopReason, artifacts, data_tools, prompt, safety};

/// How a turn's run ended.
enum Outcome {
    Completed,
    Failed {
        code: &'static str,
        cause: String,
    },
    Stopped(StopReason),
    /// Refused before the model was called; the `error` is already in the log.
    Refused {
        cause: String,
    },
    /// Parked on approvals; resumes when they are settled.
    Waiting,
}

/// What a turn has done so far: everything needed to resume it after a wait.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct TurnState {
    /// Id of the answer's message (named in `meta`, used when it is stored).
    #[serde(default)]
    message_id: String,
    /// Model calls made.
    step: u32,
    /// The prompt as it grows over the tool steps.
    messages: Vec<ChatMessage>,
    /// Usage so far.
    usage: TokenUsage,
    /// The answer text the user saw, across tool steps.
    answer: String,
    /// Tool calls of the current step not yet answered.
    calls: Vec<PendingCall>,
    /// Content items tools added to the answer (tables, charts).
    #[serde(default)]
    contents: Vec<ContentItem>,
}

impl TurnState {
    /// Appends a step's text to the answer (a blank line after the previous step's) and records
    /// it as the answer's next text content item, `<message id>_c<n>` — the id streams name it by.
    fn add_answer(&mut self, text: &str, invocation_id: &str) {
        if text.is_empty() {
            return;
        }
        if !self.answer.is_empty() {
            self.answer.push_str("\n\n");
        }
        self.answer.push_str(text);
        let segment = self.contents.iter().filter(|c| c.content_type == "text").count() + 1;
        self.contents.push(ContentItem {
            id: ContentItem::id_for(&self.message_id, segment),
            message_id: self.message_id.clone(),
            content_type: "text".into(),
            ui_content_type: Some("markdown".into()),
            content: Value::String(text.to_owned()),
            user_visibility: "visible".into(),
            created_by_invocation_id: invocation_id.to_owned(),
            created_at: Timestamp::now(),
        });
    }
}

/// A tool call waiting to run (after its approval, if it needs one).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingCall {
    id: String,
    name: String,
    /// Parsed arguments, or why they could not be used.
    params: Result<Value, String>,
    approval_id: Option<String>,
}

/// Runs a queued turn to its end, or until it parks. Does nothing if the turn is no longer queued.
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
    let stop_after_park = stop_rx.clone();
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

    // The agent is read once per run: the model loop and the answer's safety check both use it.
    let agent = match store.get_agent(&turn.scope, &turn.agent_id).await {
        Ok(Some(agent)) => Ok(agent),
        Ok(None) => Err(("agent_not_found", format!("agent `{}` no longer exists", turn.agent_id))),
        Err(err) => Err(("service_unavailable", err.to_string())),
    };
    let resumed = turn.checkpoint.is_some();
    let last = if resumed { engine.last_logged_seq(&turn).await.unwrap_or(0) } else { 0 };
    let mut log = engine.open_log(&turn, last);
    let saved = match &turn.checkpoint {
        None => Ok(TurnState::default()),
        Some(saved) => serde_json::from_str::<TurnState>(saved)
            .map_err(|err| ("service_unavailable", format!("the saved state of this turn cannot be read: {err}"))),
    };
    let (mut state, outcome) = match (&agent, saved) {
        (Ok(agent), Ok(mut state)) => {
            let outcome = execute(engine, &turn, agent, &mut log, &mut state, stop_rx, resumed).await;
            (state, outcome)
        }
        (Err((code, cause)), _) => (TurnState::default(), Outcome::Failed { code, cause: cause.clone() }),
        (_, Err((code, cause))) => (TurnState::default(), Outcome::Failed { code, cause }),
    };
    let parked = matches!(outcome, Outcome::Waiting);
    if parked {
        park(engine, &turn, log, &state).await;
    } else {
        let spec = agent.as_ref().ok().map(|a| &a.spec);
        finish(engine, &turn, spec, &mut log, &mut state, outcome).await;
        if let Err(err) = log.close().await {
            tracing::error!(%err, turn = %turn.id, "event log incomplete");
        }
    }
    lease.abort();
    engine.inner.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&turn.id);
    // A cancel that came while the turn was parking found it running and only flipped its
    // switch; now that the turn is waiting (and no longer listed as running), carry it out.
    if parked
        && *stop_after_park.borrow() == Some(StopReason::Requested)
        && let Err(err) = engine.cancel_thread(&turn.scope, &turn.thread_id).await
    {
        tracing::error!(%err, turn = %turn.id, "cannot cancel the parked turn");
    }
}

/// Ends a turn that was waiting (or queued again after waiting) as cancelled: what the user saw
/// is stored and `usage`/`done` carry what it cost, as for a turn stopped while running. The
/// caller has already recorded the cancellation.
pub(crate) async fn finish_parked(engine: &Engine, turn: &Turn, log: &mut TurnLog) {
    let mut state =
        turn.checkpoint.as_deref().and_then(|saved| serde_json::from_str::<TurnState>(saved).ok()).unwrap_or_default();
    let agent = engine.store().get_agent(&turn.scope, &turn.agent_id).await.ok().flatten();
    let spec = agent.as_ref().map(|a| &a.spec);
    finish(engine, turn, spec, log, &mut state, Outcome::Stopped(StopReason::Requested)).await;
}

/// Saves the turn's state and lets go of it until its approvals are settled.
async fn park(engine: &Engine, turn: &Turn, log: TurnLog, state: &TurnState) {
    // Every event, `approval_needed` included, is in the log before the turn counts as waiting,
    // so whoever resumes it continues the log after them.
    if let Err(err) = log.close().await {
        tracing::error!(%err, turn = %turn.id, "event log incomplete");
    }
    let saved = match serde_json::to_string(state) {
        Ok(saved) => saved,
        Err(err) => {
            tracing::error!(%err, turn = %turn.id, "cannot save the turn's state");
            return;
        }
    };
    match engine.store().park_turn(&turn.id, "approval", &saved).await {
        Ok(true) => engine.approvals_parked(turn).await,
        Ok(false) => tracing::warn!(turn = %turn.id, "turn was no longer running when it parked"),
        Err(err) => tracing::error!(%err, turn = %turn.id, "cannot park the turn"),
    }
}

/// Records how the turn ended: the answer (checked by the agent's safety policy, when the agent
/// still exists), `usage`, the final state, `done`.
async fn finish(
    engine: &Engine,
    turn: &Turn,
    agent: Option<&agentry_core::AgentSpec>,
    log: &mut TurnLog,
    state: &mut TurnState,
    outcome: Outcome,
) {
    let store = engine.store();
    let (status, cause) = match outcome {
        Outcome::Completed | Outcome::Waiting => (TurnStatus::Completed, None),
        Outcome::Failed { code, cause } => {
            log.emit(TurnEvent::error(code, cause.clone()));
            (TurnStatus::Failed, Some(cause))
        }
        Outcome::Refused { cause } => (TurnStatus::Failed, Some(cause)),
        Outcome::Stopped(StopReason::Requested) => (TurnStatus::Cancelled, None),
        Outcome::Stopped(StopReason::Shutdown) => {
            let cause = "the server shut down during this turn".to_owned();
            log.emit(TurnEvent::error("interrupted", cause.clone()));
            (TurnStatus::Failed, Some(cause))
        }
    };
    // What the user saw is kept, also when the turn was stopped part-way.
    if !state.answer.trim().is_empty() || !state.contents.is_empty() {
        let content = match agent {
            Some(agent) => safety::check_output(engine, turn, agent, log, &state.answer).await,
            None => state.answer.clone(),
        };
        let id = if state.message_id.is_empty() { new_id(prefix::MESSAGE) } else { state.message_id.clone() };
        let rewritten = content != state.answer;
        let message = Message {
            id,
            thread_id: turn.thread_id.clone(),
            role: MessageRole::Assistant,
            content,
            created_at: Timestamp::now(),
        };
        let mut items = std::mem::take(&mut state.contents);
        if rewritten {
            // The safety policy changed the answer: its text is stored as the policy left it.
            items.retain(|c| c.content_type != "text");
            items.insert(0, ContentItem::text(&message, &turn.id));
        }
        match store.append_message(&turn.scope, &message).await {
            Ok(()) => {
                if let Err(err) = store.insert_contents(&turn.scope, &turn.thread_id, &items).await {
                    tracing::error!(%err, turn = %turn.id, "cannot store the answer's content items");
                }
                log.emit(TurnEvent::MessagePersisted {
                    message_id: message.id,
                    thread_id: turn.thread_id.clone(),
                    cost_cents: state.usage.cost_cents,
                });
            }
            Err(err) => tracing::error!(%err, turn = %turn.id, "cannot store the assistant message"),
        }
    }
    log.emit(TurnEvent::Usage { usage: state.usage });
    // The final state is recorded before `done` goes out, so a client that reads the turn after
    // `done` sees it finished.
    if let Err(err) = store.finish_turn(&turn.id, status, cause.as_deref()).await {
        tracing::error!(%err, turn = %turn.id, "cannot record the end of the turn");
    }
    log.emit(TurnEvent::Done { usage: state.usage, status, stopped: status == TurnStatus::Cancelled });
}

async fn execute(
    engine: &Engine,
    turn: &Turn,
    agent: &agentry_store::StoredAgent,
    log: &mut TurnLog,
    state: &mut TurnState,
    mut stop: watch::Receiver<Option<StopReason>>,
    resumed: bool,
) -> Outcome {
    let store = engine.store();
    let failed = |code, cause: String| Outcome::Failed { code, cause };
    if !resumed {
        state.message_id = new_id(prefix::MESSAGE);
        log.emit(TurnEvent::Meta {
            thread_id: turn.thread_id.clone(),
            agent_id: turn.agent_id.clone(),
            agent_version_id: agent.current_version_id.clone(),
            message_id: state.message_id.clone(),
        });
    }
    let provider = match engine.inner.providers.resolve(&agent.spec) {
        Ok(provider) => provider,
        Err(err) => return failed("provider_unavailable", err.to_string()),
    };
    let tools = match engine.toolbox(&turn.scope, &agent.spec).await {
        Ok(tools) => tools,
        Err(err) => return failed("service_unavailable", err.to_string()),
    };
    if resumed {
        log.emit(TurnEvent::Status { status: "executing".into() });
    } else {
        let text = match safety::check_input(engine, turn, &agent.spec, log).await {
            Ok(text) => text,
            Err(cause) => return Outcome::Refused { cause },
        };
        if text != turn.input.text {
            // Redacted: the original is not kept with the turn either.
            let input = agentry_core::TurnInput { text: text.clone(), ..turn.input.clone() };
            if let Err(err) = store.set_turn_input(&turn.id, &input).await {
                return failed("service_unavailable", err.to_string());
            }
        }
        // The user's message is stored before the model sees it.
        let user_message = Message {
            id: new_id(prefix::MESSAGE),
            thread_id: turn.thread_id.clone(),
            role: MessageRole::User,
            content: text,
            created_at: Timestamp::now(),
        };
        if let Err(err) = store.append_message(&turn.scope, &user_message).await {
            return failed("service_unavailable", err.to_string());
        }
        let history = match store.recent_messages(&turn.scope, &turn.thread_id, engine.config().history_messages).await
        {
            Ok(history) => history,
            Err(err) => return failed("service_unavailable", err.to_string()),
        };
        let mut system = prompt::system_prompt(&agent.spec, &turn.input);
        if let Some(section) = data_tools::datasets_section(engine, turn, &agent.spec).await {
            system.push_str(&section);
        }
        state.messages = prompt::messages(system, &history);
        log.emit(TurnEvent::Status { status: "thinking".into() });
    }
    let model = agentry_core::ModelRef::parse(&agent.spec.model).map(|m| m.model).unwrap_or_default();
    let max_steps = agent.spec.max_steps();
    loop {
        if !state.calls.is_empty() {
            if let Some(outcome) = run_calls(engine, turn, log, state, &tools, &mut stop).await {
                return outcome;
            }
            log.emit(TurnEvent::MessageBoundary {});
        }
        let request = ModelRequest { model: model.clone(), messages: state.messages.clone(), tools: tools.specs() };
        let mut stream = provider.stream(request);
        let mut step_text = String::new();
        let mut calls: Vec<PartialCall> = Vec::new();
        let mut step_usage = None;
        loop {
            let item = tokio::select! {
                reason = stopped(&mut stop) => {
                    // What the user saw of this step is kept with the answer.
                    state.add_answer(&step_text, &turn.id);
                    return Outcome::Stopped(reason);
                }
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
        state.step += 1;
        if let Some(usage) = step_usage {
            state.usage.input_tokens += usage.input_tokens;
            state.usage.output_tokens += usage.output_tokens;
            state.usage.cached_input_tokens += usage.cached_input_tokens;
            state.usage.cost_cents += engine.inner.providers.cost_cents(&agent.spec.model, &usage);
        }
        state.add_answer(&step_text, &turn.id);
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
        if state.step >= max_steps {
            // The model wants more tools but the budget is spent: answer with what we have.
            log.emit(TurnEvent::error(
                "max_steps",
                format!("the agent reached its limit of {max_steps} model calls in one turn"),
            ));
            return Outcome::Completed;
        }
        log.emit(TurnEvent::Status { status: "executing".into() });
        state.messages.push(ChatMessage {
            role: ChatRole::Assistant,
            content: step_text,
            tool_calls: calls.clone(),
            tool_call_id: None,
        });
        let mut waiting = false;
        for call in calls {
            let params = parse_arguments(&call.arguments, engine.config().max_tool_argument_bytes);
            let shown = params.clone().unwrap_or_else(|_| Value::String(call.arguments.clone()));
            log.emit(TurnEvent::ToolCall { name: call.name.clone(), params: shown, call_id: call.id.clone() });
            let approval_id = match (tools.get(&call.name), &params) {
                (Some(tool), Ok(params)) if tool.requires_approval => {
                    match request_approval(engine, turn, log, tool, &call, params).await {
                        Ok(id) => Some(id),
                        Err(err) => return failed("service_unavailable", err.to_string()),
                    }
                }
                _ => None,
            };
            waiting |= approval_id.is_some();
            state.calls.push(PendingCall { id: call.id, name: call.name, params, approval_id });
        }
        if waiting {
            log.emit(TurnEvent::Status { status: "waiting".into() });
            return Outcome::Waiting;
        }
    }
}

/// Runs the step's pending calls in order (their approvals settled) and answers each.
async fn run_calls(
    engine: &Engine,
    turn: &Turn,
    log: &mut TurnLog,
    state: &mut TurnState,
    tools: &ToolBox,
    stop: &mut watch::Receiver<Option<StopReason>>,
) -> Option<Outcome> {
    let approvals = if state.calls.iter().any(|c| c.approval_id.is_some()) {
        match engine.store().approvals_of_turn(&turn.scope, &turn.id).await {
            Ok(approvals) => approvals,
            Err(err) => return Some(Outcome::Failed { code: "service_unavailable", cause: err.to_string() }),
        }
    } else {
        Vec::new()
    };
    let max_result = engine.config().max_tool_result_bytes;
    while !state.calls.is_empty() {
        let call = state.calls.remove(0);
        let approval = call.approval_id.as_ref().and_then(|id| approvals.iter().find(|a| &a.id == id));
        if let Some(approval) = approval {
            log.emit(TurnEvent::ApprovalResolved {
                approval_id: approval.id.clone(),
                status: approval.status.as_str().into(),
                responded_by: approval.responded_by.clone(),
                comment: approval.comment.clone(),
            });
        }
        let tool = tools.get(&call.name);
        let failure = |message: String| (json!({ "error": message }), true);
        let (result, is_error) = match (&call.params, tool, approval) {
            (Err(problem), _, _) => failure(problem.clone()),
            (Ok(_), None, _) => failure(format!("unknown tool `{}`", call.name)),
            (Ok(_), Some(_), Some(approval)) if approval.status != ApprovalStatus::Approved => {
                match approval.refusal() {
                    // `request_approval` worked: the human's answer is its result.
                    Some((answer, _)) if call.name == "request_approval" => (answer, false),
                    Some(refusal) => refusal,
                    None => failure("the approval is still pending".into()),
                }
            }
            (Ok(params), Some(tool), approval) => {
                let params = approval.and_then(|a| a.edited_args.clone()).unwrap_or_else(|| params.clone());
                let started = std::time::Instant::now();
                let outcome = tokio::select! {
                    reason = stopped(stop) => return Some(Outcome::Stopped(reason)),
                    result = tokio::time::timeout(
                        engine.config().tool_timeout,
                        run_tool(engine, turn, log, tool, &params, approval),
                    ) => result.unwrap_or_else(|_| {
                        Err(ToolFailure::new(format!("tool timed out after {:?}", engine.config().tool_timeout)))
                    }),
                };
                engine.record_tool_call(&turn.scope, tool, Some(&turn.id), started.elapsed(), &outcome).await;
                match outcome {
                    Ok((value, content)) => {
                        if let Some(content) = content {
                            let n = state.contents.iter().filter(|c| c.content_type != "text").count() + 1;
                            let item = content.into_item(&state.message_id, n, &turn.id);
                            log.emit(TurnEvent::Content { item: item.clone() });
                            state.contents.push(item);
                        }
                        (crate::tools::cap_result(value, max_result), false)
                    }
                    Err(err) => failure(err.message),
                }
            }
        };
        state.messages.push(ChatMessage {
            role: ChatRole::Tool,
            content: result.to_string(),
            tool_calls: Vec::new(),
            tool_call_id: Some(call.id.clone()),
        });
        log.emit(TurnEvent::ToolResult { name: call.name, result, call_id: call.id, is_error });
    }
    None
}

/// Runs one tool: the turn-bound built-ins here, everything else through [`crate::tools::call`].
/// The dataset tools also give a content item (a table, a chart) for the answer.
async fn run_tool(
    engine: &Engine,
    turn: &Turn,
    log: &mut TurnLog,
    tool: &AgentTool,
    params: &Value,
    approval: Option<&Approval>,
) -> Result<(Value, Option<data_tools::ToolContent>), ToolFailure> {
    let with_content = |(answer, content)| (answer, Some(content));
    let answer = match &tool.kind {
        ToolKind::Builtin(BuiltinTool::QueryDataset) => {
            return data_tools::query_dataset(engine, turn, params).await.map(with_content);
        }
        ToolKind::Builtin(BuiltinTool::CreateChart) => {
            return data_tools::create_chart(engine, turn, params).await.map(with_content);
        }
        ToolKind::Builtin(BuiltinTool::RequestApproval) => Ok(json!({
            "approved": approval.is_some_and(|a| a.status == ApprovalStatus::Approved),
            "comment": approval.and_then(|a| a.comment.clone()),
            "respondedBy": approval.and_then(|a| a.responded_by.clone()),
        })),
        ToolKind::Builtin(BuiltinTool::GenerateArtifact) => artifacts::generate(engine, turn, log, params).await,
        ToolKind::Builtin(BuiltinTool::ReviseArtifact) => artifacts::revise(engine, turn, log, params).await,
        _ => crate::tools::call(&engine.inner.tool_env, &engine.inner.mcp, tool, params).await,
    };
    answer.map(|value| (value, None))
}

/// Records a pending approval for a call and tells the listeners.
async fn request_approval(
    engine: &Engine,
    turn: &Turn,
    log: &mut TurnLog,
    tool: &AgentTool,
    call: &ToolCallRequest,
    params: &Value,
) -> Result<String, agentry_store::StoreError> {
    let (action, details) = if tool.kind == ToolKind::Builtin(BuiltinTool::RequestApproval) {
        let action = params.get("action").and_then(Value::as_str).unwrap_or("approval requested").to_owned();
        (action, params.get("details").cloned().unwrap_or(Value::Null))
    } else {
        (format!("call tool `{}`", call.name), params.clone())
    };
    let now = Timestamp::now();
    let timeout_ms = i64::try_from(tool.approval_timeout_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let approval = Approval {
        id: new_id(prefix::APPROVAL),
        scope: turn.scope.clone(),
        turn_id: turn.id.clone(),
        thread_id: turn.thread_id.clone(),
        agent_id: turn.agent_id.clone(),
        requested_by: turn.user_id.clone(),
        tool_name: call.name.clone(),
        call_id: call.id.clone(),
        action,
        details,
        args: params.clone(),
        status: ApprovalStatus::Pending,
        timeout_secs: tool.approval_timeout_secs,
        created_at: now,
        deadline_at: Timestamp(now.0.saturating_add(timeout_ms)),
        resolved_at: None,
        responded_by: None,
        comment: None,
        edited_args: None,
    };
    engine.store().insert_approval(&approval).await?;
    log.emit(TurnEvent::ApprovalNeeded {
        approval_id: approval.id.clone(),
        action: approval.action,
        details: approval.details,
        tool_name: approval.tool_name,
        call_id: approval.call_id,
        agent_id: approval.agent_id,
        timeout_at: approval.deadline_at,
    });
    Ok(approval.id)
}

/// Parses a call's JSON arguments, enforcing the size limit.
fn parse_arguments(arguments: &str, max_bytes: usize) -> Result<Value, String> {
    if arguments.len() > max_bytes {
        return Err(format!("tool arguments are {} bytes; the limit is {max_bytes}", arguments.len()));
    }
    let text = if arguments.trim().is_empty() { "{}" } else { arguments };
    match serde_json::from_str::<Value>(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err("tool arguments must be a JSON object".to_owned()),
        Err(err) => Err(format!("tool arguments are not valid JSON ({err})")),
    }
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
