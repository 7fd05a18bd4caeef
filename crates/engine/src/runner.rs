//! One run of a turn: from its claim to its end, until it parks, or until this replica lets go
//! of it.
//!
//! Event order of every turn: `meta`, `status`, then the model's `thinking`/`token`s with
//! `tool_call`/`tool_result`/`message_boundary` per tool step, then `safety_flags` (output hits),
//! `message_persisted` (when an answer was stored), `usage`, and `done` last — `error` comes
//! before `done` on failure.
//!
//! A tool call that needs approval creates a pending approval and emits `approval_needed`; the
//! turn then *parks*: its state ([`TurnState`]) is saved with the turn, which goes to `waiting`,
//! and the runner lets go of it. When every approval of the step is settled the turn is queued
//! again, and whichever replica claims it resumes from the saved state in the same event log.
//! The state is also saved after every model step that called tools and after every tool call,
//! so when a replica dies another one resumes the turn from its last completed step, and a tool
//! call that completed is never run again.

use agentry_core::id::{new_id, prefix};
use agentry_core::{Approval, ApprovalStatus, BudgetPolicy, Message, MessageRole, Timestamp, Turn, TurnEvent};
use agentry_llm::{ModelRequest, ToolCallRequest};
use agentry_store::{Claimed, Lease, Parked, StoredAgent};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::budget::{BudgetHit, BudgetStop};
use crate::log::{LogError, TurnLog};
use crate::state::{PendingCall, TurnState};
use crate::step::{StepEnd, call_model};
use crate::telemetry::{ToolOutcome, Window};
use crate::terminate::terminate;
use crate::tools::{AgentTool, BuiltinTool, ToolBox, ToolFailure, ToolKind};
use crate::{Engine, StopReason, artifacts, data_tools, prompt, safety};

/// A turn being run by this replica: its lease, its log, its stop switch.
pub(crate) struct RunCtx<'a> {
    pub engine: &'a Engine,
    pub turn: &'a Turn,
    pub lease: Lease,
    pub log: TurnLog,
    pub stop: watch::Receiver<Option<StopReason>>,
}

/// How a run ended.
pub(crate) enum Outcome {
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
    /// Parked: on approvals, resumes when they are settled; on a budget, when it allows the turn.
    Waiting(WaitReason),
    /// A budget cap stops the turn.
    BudgetCap(Box<BudgetHit>),
    /// Its replica died before the turn had a state to resume from.
    ReplicaLost,
}

/// What a parked turn waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitReason {
    Approval,
    Budget,
}

impl WaitReason {
    fn as_str(self) -> &'static str {
        match self {
            WaitReason::Approval => "approval",
            WaitReason::Budget => "budget",
        }
    }
}

/// What a turn does at a budget cap: the agent's `on_budget` policy.
fn at_budget(ctx: &mut RunCtx<'_>, agent: &agentry_core::AgentSpec, hit: Box<BudgetHit>) -> Outcome {
    ctx.engine.metrics().refused("budget_cap");
    let log = &mut ctx.log;
    match agent.on_budget.unwrap_or_default() {
        BudgetPolicy::Stop => Outcome::BudgetCap(hit),
        BudgetPolicy::Pause => {
            tracing::info!(cap = %hit.cap.id, "turn parks until its budget allows it");
            log.emit(TurnEvent::Status { status: "waiting".into() });
            Outcome::Waiting(WaitReason::Budget)
        }
    }
}

/// Where a run starts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    /// A new turn.
    Fresh,
    /// A turn whose approvals were settled.
    AfterApprovals,
    /// A turn taken over from a replica that died, from its last checkpoint.
    TakenOver,
}

/// Runs a claimed turn until it ends, parks, or this replica lets go of it. `takeover`: the turn
/// was running on a replica whose lease expired.
pub(crate) async fn run(
    engine: &Engine,
    claimed: Claimed,
    agent: Option<StoredAgent>,
    stop: watch::Receiver<Option<StopReason>>,
    takeover: bool,
) {
    let Claimed { turn, lease, .. } = claimed;
    let last = if takeover || turn.checkpoint.is_some() {
        match engine.store().last_event_seq(&turn.scope, &turn.id).await {
            Ok(last) => last,
            Err(err) => {
                // Without its position the log cannot be continued: let another try.
                tracing::error!(%err, turn = %turn.id, "cannot read the turn's log; releasing it");
                let _ = engine.store().release_lease(&lease).await;
                return;
            }
        }
    } else {
        0
    };
    let log = engine.open_log(&turn, &lease, last);
    let mut ctx = RunCtx { engine, turn: &turn, lease, log, stop };
    if takeover && turn.checkpoint.is_none() {
        let mut state = TurnState { taken_over: true, ..TurnState::default() };
        terminate(&mut ctx, None, &mut state, Outcome::ReplicaLost).await;
        return;
    }
    let start = match (takeover, &turn.checkpoint) {
        (true, _) => Start::TakenOver,
        (false, Some(_)) => Start::AfterApprovals,
        (false, None) => Start::Fresh,
    };
    // The agent is read once per run: the model loop and the answer's safety check both use it.
    let agent = match agent {
        Some(agent) => Ok(agent),
        None => match engine.store().get_agent(&turn.scope, &turn.agent_id).await {
            Ok(Some(agent)) => Ok(agent),
            Ok(None) => Err(("agent_not_found", format!("agent `{}` no longer exists", turn.agent_id))),
            Err(err) => Err(("service_unavailable", err.to_string())),
        },
    };
    let saved = match &turn.checkpoint {
        None => Ok(TurnState::default()),
        Some(saved) => TurnState::load(saved).map_err(|cause| ("service_unavailable", cause)),
    };
    let (mut state, outcome) = match (&agent, saved) {
        (Ok(agent), Ok(mut state)) => {
            state.taken_over |= takeover;
            let outcome = execute(&mut ctx, agent, &mut state, start).await;
            (state, outcome)
        }
        (Err((code, cause)), _) => (TurnState::default(), Outcome::Failed { code, cause: cause.clone() }),
        (_, Err((code, cause))) => (TurnState::default(), Outcome::Failed { code, cause }),
    };
    let spec = agent.as_ref().ok().map(|a| &a.spec);
    match outcome {
        Outcome::Waiting(reason) => park(&mut ctx, spec, &mut state, reason).await,
        Outcome::Stopped(StopReason::LeaseLost) => {
            tracing::warn!(turn = %turn.id, "stopped a turn this replica no longer holds");
        }
        Outcome::Stopped(StopReason::Shutdown) => {
            // What was logged stays; the turn resumes elsewhere from its last checkpoint.
            ctx.log.send_spans();
            let _ = ctx.log.flush().await;
            if let Err(err) = engine.store().release_lease(&ctx.lease).await {
                tracing::warn!(%err, turn = %turn.id, "cannot release the turn's lease");
            }
        }
        outcome => terminate(&mut ctx, spec, &mut state, outcome).await,
    }
}

/// Saves the turn's state and lets go of it until its approvals are settled (or its budget
/// allows it) — or ends it, if someone asked to stop it meanwhile.
async fn park(
    ctx: &mut RunCtx<'_>,
    agent: Option<&agentry_core::AgentSpec>,
    state: &mut TurnState,
    reason: WaitReason,
) {
    // Every event, `approval_needed` included, is in the log before the turn counts as waiting,
    // so whoever resumes it continues the log after them.
    ctx.log.send_spans();
    match ctx.log.flush().await {
        Ok(()) => {}
        Err(LogError::LeaseLost) => return,
        Err(err) => tracing::error!(%err, turn = %ctx.turn.id, "event log incomplete"),
    }
    let saved = match state.save() {
        Ok(saved) => saved,
        Err(cause) => {
            let outcome = Outcome::Failed { code: "service_unavailable", cause };
            return terminate(ctx, agent, state, outcome).await;
        }
    };
    match ctx.engine.store().park_turn(&ctx.lease, reason.as_str(), &saved).await {
        Ok(Parked::Parked) if reason == WaitReason::Approval => ctx.engine.approvals_parked(ctx.turn).await,
        Ok(Parked::Parked) => {}
        Ok(Parked::CancelRequested) => {
            if let Err(err) = ctx.engine.cancel_approvals(ctx.turn, &mut ctx.log).await {
                tracing::error!(%err, turn = %ctx.turn.id, "cannot cancel the turn's approvals");
            }
            terminate(ctx, agent, state, Outcome::Stopped(StopReason::Requested)).await;
        }
        Ok(Parked::LeaseLost) => tracing::warn!(turn = %ctx.turn.id, "lost the turn while parking it"),
        Err(err) => {
            let outcome = Outcome::Failed { code: "service_unavailable", cause: err.to_string() };
            terminate(ctx, agent, state, outcome).await;
        }
    }
}

/// Saves the turn's state once the events describing it are in the log. `None`: saved.
async fn checkpoint(ctx: &mut RunCtx<'_>, state: &TurnState) -> Option<Outcome> {
    match ctx.log.flush().await {
        Ok(()) => {}
        Err(LogError::LeaseLost) => return Some(Outcome::Stopped(StopReason::LeaseLost)),
        Err(err) => return Some(Outcome::Failed { code: "service_unavailable", cause: err.to_string() }),
    }
    let saved = match state.save() {
        Ok(saved) => saved,
        Err(cause) => return Some(Outcome::Failed { code: "service_unavailable", cause }),
    };
    match ctx.engine.store().save_checkpoint(&ctx.lease, &saved).await {
        Ok(true) => None,
        Ok(false) => Some(Outcome::Stopped(StopReason::LeaseLost)),
        Err(err) => Some(Outcome::Failed { code: "service_unavailable", cause: err.to_string() }),
    }
}

async fn execute(ctx: &mut RunCtx<'_>, agent: &StoredAgent, state: &mut TurnState, start: Start) -> Outcome {
    let engine = ctx.engine;
    let turn = ctx.turn;
    let store = engine.store();
    let failed = |code, cause: String| Outcome::Failed { code, cause };
    if start == Start::Fresh {
        state.message_id = new_id(prefix::MESSAGE);
        ctx.log.emit(TurnEvent::Meta {
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
    match start {
        Start::AfterApprovals => {
            ctx.log.emit(TurnEvent::Status { status: "executing".into() });
        }
        Start::TakenOver => {
            // What streamed of the interrupted step stays in the log; the step runs again in a
            // new bubble.
            ctx.log.emit(TurnEvent::Status { status: "resumed".into() });
            ctx.log.emit(TurnEvent::MessageBoundary {});
        }
        Start::Fresh => {
            let text = match safety::check_input(engine, turn, &agent.spec, &mut ctx.log).await {
                Ok(text) => text,
                Err(cause) => return Outcome::Refused { cause },
            };
            if text != turn.input.text {
                // Redacted: the original is not kept with the turn either.
                let input = agentry_core::TurnInput { text: text.clone(), ..turn.input.clone() };
                match store.set_turn_input(&ctx.lease, &input).await {
                    Ok(true) => {}
                    Ok(false) => return Outcome::Stopped(StopReason::LeaseLost),
                    Err(err) => return failed("service_unavailable", err.to_string()),
                }
            }
            // The user's message is stored before the model sees it.
            let user_message = Message::new(&turn.thread_id, MessageRole::User, text, Some(&turn.id));
            if let Err(err) = store.append_message(&turn.scope, &user_message).await {
                return failed("service_unavailable", err.to_string());
            }
            let history =
                match store.recent_messages(&turn.scope, &turn.thread_id, engine.config().history_messages).await {
                    Ok(history) => history,
                    Err(err) => return failed("service_unavailable", err.to_string()),
                };
            let mut system = prompt::system_prompt(&agent.spec, &turn.input);
            if let Some(section) = data_tools::datasets_section(engine, turn, &agent.spec).await {
                system.push_str(&section);
            }
            state.messages = prompt::messages(system, &history);
            ctx.log.emit(TurnEvent::Status { status: "thinking".into() });
        }
    }
    // A cap's turn limit counts the turn once, before its first model call (without a turn
    // limit, the turn is counted with its first call's spend).
    if !state.turn_counted {
        match engine.count_turn(turn).await {
            Ok(counted) => {
                state.turn_counted = true;
                state.counted_in_windows |= counted;
            }
            Err(BudgetStop::Hit(hit)) => return at_budget(ctx, &agent.spec, hit),
            Err(BudgetStop::Store(err)) => {
                return failed("service_unavailable", format!("cannot check the budget: {err}"));
            }
        }
    }
    let model = agentry_core::ModelRef::parse(&agent.spec.model).map(|m| m.model).unwrap_or_default();
    let max_steps = agent.spec.max_steps();
    loop {
        if !state.calls.is_empty() {
            if let Some(outcome) = run_calls(ctx, state, &tools).await {
                return outcome;
            }
            ctx.log.emit(TurnEvent::MessageBoundary {});
        }
        if ctx.log.is_lost() {
            return Outcome::Stopped(StopReason::LeaseLost);
        }
        let request = ModelRequest {
            model: model.clone(),
            messages: state.messages.clone(),
            tools: tools.specs(),
            sampling: agent.spec.sampling.clone(),
        };
        state.step += 1;
        let (text, calls) = match call_model(ctx, provider.as_ref(), &agent.spec.model, request, state).await {
            StepEnd::Answered { text, calls } => (text, calls),
            StepEnd::Stopped { reason, text } => {
                // What the user saw of this step is kept with the answer.
                state.add_answer(&text, &turn.id);
                state.final_text = text;
                return Outcome::Stopped(reason);
            }
            StepEnd::Failed { code, cause } => return failed(code, cause),
            StepEnd::Budget(hit) => {
                // The call was not made: the next run makes it again.
                state.step -= 1;
                return at_budget(ctx, &agent.spec, hit);
            }
        };
        state.add_answer(&text, &turn.id);
        if calls.is_empty() {
            state.final_text = text;
            return Outcome::Completed;
        }
        if state.step >= max_steps {
            // The model wants more tools but the budget is spent: answer with what we have.
            ctx.log.emit(TurnEvent::error(
                "max_steps",
                format!("the agent reached its limit of {max_steps} model calls in one turn"),
            ));
            state.final_text = text;
            return Outcome::Completed;
        }
        ctx.log.emit(TurnEvent::Status { status: "executing".into() });
        state.add_tool_step(text, &calls);
        let mut waiting = false;
        for call in calls {
            let params = parse_arguments(&call.arguments, engine.config().max_tool_argument_bytes);
            let shown = params.clone().unwrap_or_else(|_| Value::String(call.arguments.clone()));
            ctx.log.emit(TurnEvent::ToolCall { name: call.name.clone(), params: shown, call_id: call.id.clone() });
            let approval_id = match (tools.get(&call.name), &params) {
                (Some(tool), Ok(params)) if tool.requires_approval => {
                    match request_approval(engine, turn, &mut ctx.log, tool, &call, params).await {
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
            ctx.log.emit(TurnEvent::Status { status: "waiting".into() });
            return Outcome::Waiting(WaitReason::Approval);
        }
        if let Some(outcome) = checkpoint(ctx, state).await {
            return outcome;
        }
    }
}

/// Runs the step's pending calls in order (their approvals settled) and answers each, saving
/// the turn's state after each one.
async fn run_calls(ctx: &mut RunCtx<'_>, state: &mut TurnState, tools: &ToolBox) -> Option<Outcome> {
    let (engine, turn) = (ctx.engine, ctx.turn);
    let approvals = if state.calls.iter().any(|c| c.approval_id.is_some()) {
        match engine.store().approvals_of_turn(&turn.scope, &turn.id).await {
            Ok(approvals) => approvals,
            Err(err) => return Some(Outcome::Failed { code: "service_unavailable", cause: err.to_string() }),
        }
    } else {
        Vec::new()
    };
    let max_result = engine.config().max_tool_result_bytes;
    while let Some(call) = state.calls.first().cloned() {
        let approval = call.approval_id.as_ref().and_then(|id| approvals.iter().find(|a| &a.id == id));
        if let Some(approval) = approval {
            ctx.log.emit(TurnEvent::ApprovalResolved {
                approval_id: approval.id.clone(),
                status: approval.status.as_str().into(),
                responded_by: approval.responded_by.clone(),
                comment: approval.comment.clone(),
            });
        }
        let tool = tools.get(&call.name);
        // A call that waited for a human starts when it asked.
        let start_ns = approval.map_or_else(Timestamp::now_nanos, |a| a.created_at.0.saturating_mul(1_000_000));
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
                    reason = stopped(&mut ctx.stop) => return Some(Outcome::Stopped(reason)),
                    result = tokio::time::timeout(
                        engine.config().tool_timeout,
                        run_tool(engine, turn, &mut ctx.log, tool, &params, approval),
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
                            ctx.log.emit(TurnEvent::Content { item: item.clone() });
                            state.contents.push(item);
                        }
                        (crate::tools::cap_result(value, max_result), false)
                    }
                    Err(err) => failure(err.message),
                }
            }
        };
        let refused = approval.is_some_and(|a| a.status != ApprovalStatus::Approved) && is_error;
        let outcome = ToolOutcome {
            status: if refused {
                "refused"
            } else if is_error {
                "error"
            } else {
                "ok"
            },
            error: if is_error { result.get("error").and_then(Value::as_str) } else { None },
            approval_wait_ms: approval.and_then(|a| Some(a.resolved_at?.0 - a.created_at.0)),
            content: Some((call.params.as_ref().unwrap_or(&Value::Null), &result)),
        };
        let at = Window { start_ns, end_ns: Timestamp::now_nanos() };
        engine.inner.telemetry.tool_call(&mut ctx.log, turn, &call.id, &call.name, tool.is_some(), at, outcome);
        state.calls.remove(0);
        state.add_tool_result(&call.id, &result, is_error);
        ctx.log.emit(TurnEvent::ToolResult { name: call.name, result, call_id: call.id, is_error });
        if let Some(outcome) = checkpoint(ctx, state).await {
            return Some(outcome);
        }
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
        ToolKind::Builtin(BuiltinTool::TriggerTask) => engine.tool_trigger_task(turn, params).await,
        ToolKind::Builtin(BuiltinTool::CreateSchedule) => engine.tool_create_schedule(turn, params).await,
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

/// Resolves when the turn is asked to stop.
pub(crate) async fn stopped(stop: &mut watch::Receiver<Option<StopReason>>) -> StopReason {
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
