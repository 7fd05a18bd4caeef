//! One model call of a turn — the only place the engine calls a model.
//!
//! A step streams the model's answer into the turn's log and records the call in the usage
//! ledger, priced in micro-cents, however it ends: answered, failed or stopped. Its largest
//! possible cost is reserved against the budget caps that apply before the model is called, and
//! settled to the real cost after. Each call ends with its `chat` span and its metrics.

use agentry_core::id::{new_id, prefix};
use agentry_core::{ModelRef, Timestamp, TokenUsage, TurnEvent};
use agentry_llm::{ModelDelta, ModelProvider, ModelRequest, ModelUsage, ToolCallRequest};
use agentry_store::{CallStatus, ModelCall};

use crate::StopReason;
use crate::budget::{BudgetHit, BudgetStop};
use crate::runner::{RunCtx, stopped};
use crate::state::TurnState;

/// How a model call ended.
pub(crate) enum StepEnd {
    /// The model finished: its text and the tool calls it made.
    Answered { text: String, calls: Vec<ToolCallRequest> },
    /// The turn was asked to stop; `text` is what streamed before.
    Stopped { reason: StopReason, text: String },
    /// The provider failed, or the call could not be recorded.
    Failed { code: &'static str, cause: String },
    /// A budget cap does not allow the call: nothing was called.
    Budget(Box<BudgetHit>),
}

/// How the stream ended.
enum Ended {
    Finished,
    Failed(String),
    Stopped(StopReason),
}

/// A tool call assembled from streamed fragments.
#[derive(Default)]
struct PartialCall {
    id: Option<String>,
    name: Option<String>,
    arguments: String,
}

/// Calls the agent's `model` (`provider:model`) once as the turn's step number `state.step`: streams its text and thinking into the
/// log, assembles its tool calls, and records the call (tokens, cost, timing) in the ledger and
/// in `state.usage`.
pub(crate) async fn call_model(
    ctx: &mut RunCtx<'_>,
    provider: &dyn ModelProvider,
    model: &str,
    request: ModelRequest,
    state: &mut TurnState,
) -> StepEnd {
    let step = state.step;
    let prompt_bytes: usize = request.messages.iter().map(|m| m.content.len()).sum();
    // Reserve the call's largest possible cost against every cap that applies, before calling.
    let call_id = new_id(prefix::MODEL_CALL);
    let most = ctx.engine.inner.providers.max_cost(model, provider.bounds(&request));
    let held = match ctx.engine.reserve(ctx.turn, &ctx.lease, &call_id, most, !state.counted_in_windows).await {
        Ok(held) => held,
        Err(BudgetStop::Hit(hit)) => return StepEnd::Budget(hit),
        Err(BudgetStop::Store(err)) => {
            return StepEnd::Failed { code: "service_unavailable", cause: format!("cannot check the budget: {err}") };
        }
    };
    let telemetry = &ctx.engine.inner.telemetry;
    let prompt = telemetry.config.capture_content.then(|| serde_json::to_value(&request.messages).unwrap_or_default());
    let started_at = Timestamp::now();
    let start_ns = Timestamp::now_nanos();
    let mut first_token_at = None;
    let mut stream = provider.stream(request);
    let mut text = String::new();
    let mut calls: Vec<PartialCall> = Vec::new();
    let mut reported: Option<ModelUsage> = None;
    let ended = loop {
        let item = tokio::select! {
            reason = stopped(&mut ctx.stop) => break Ended::Stopped(reason),
            item = stream.recv() => item,
        };
        let delta = match item {
            None => break Ended::Finished,
            Some(Err(err)) => break Ended::Failed(err.to_string()),
            Some(Ok(delta)) => delta,
        };
        if first_token_at.is_none() && !matches!(delta, ModelDelta::Usage(_)) {
            first_token_at = Some(Timestamp::now());
        }
        match delta {
            ModelDelta::Text(delta) => {
                text.push_str(&delta);
                ctx.log.emit(TurnEvent::Token { text: delta });
            }
            ModelDelta::Thinking(delta) => {
                ctx.log.emit(TurnEvent::Thinking { text: delta });
            }
            ModelDelta::ToolCall { index, id, name, arguments } => {
                if calls.len() <= index {
                    calls.resize_with(index + 1, PartialCall::default);
                }
                let call = &mut calls[index];
                call.id = call.id.take().or(id);
                call.name = call.name.take().or(name);
                call.arguments.push_str(&arguments);
            }
            ModelDelta::Usage(u) => reported = Some(u),
        }
    };
    drop(stream);
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
    // A call cut short before the provider reported its usage was still (partly) billed: count
    // what was sent and what streamed, at about four bytes a token, rather than nothing.
    let tokens = reported.unwrap_or_else(|| match first_token_at {
        Some(_) => ModelUsage {
            input_tokens: prompt_bytes.div_ceil(4) as u64,
            output_tokens: text.len().div_ceil(4) as u64,
            ..ModelUsage::default()
        },
        None => ModelUsage::default(),
    });
    let (status, finish_reason, error) = match &ended {
        Ended::Finished if calls.is_empty() => (CallStatus::Completed, Some("stop"), None),
        Ended::Finished => (CallStatus::Completed, Some("tool_calls"), None),
        Ended::Failed(cause) => (CallStatus::Failed, Some("error"), Some(cause.clone())),
        Ended::Stopped(_) => (CallStatus::Stopped, Some("cancelled"), None),
    };
    let parsed = ModelRef::parse(model).ok();
    let call_usage = TokenUsage {
        input_tokens: tokens.input_tokens,
        output_tokens: tokens.output_tokens,
        cached_input_tokens: tokens.cached_input_tokens,
        reasoning_tokens: tokens.reasoning_tokens,
        cost: ctx.engine.inner.providers.cost(model, &tokens),
    };
    let record = ModelCall {
        id: call_id,
        scope: ctx.turn.scope.clone(),
        turn_id: ctx.turn.id.clone(),
        thread_id: ctx.turn.thread_id.clone(),
        agent_id: ctx.turn.agent_id.clone(),
        user_id: ctx.turn.user_id.clone(),
        step: i64::from(step),
        provider: parsed.as_ref().map_or_else(String::new, |m| m.provider.clone()),
        model: parsed.map_or_else(|| model.to_owned(), |m| m.model),
        status,
        usage: call_usage,
        finish_reason: finish_reason.map(str::to_owned),
        error,
        started_at,
        first_token_at,
        finished_at: Timestamp::now(),
    };
    let recorded = match held {
        Some(held) => ctx.engine.settle(held, &record).await,
        None => ctx.engine.store().record_model_call(&record).await,
    };
    if let Err(err) = recorded {
        // A call whose cost cannot be recorded must not go unnoticed: the turn fails closed.
        tracing::error!(%err, turn = %ctx.turn.id, "cannot record a model call in the ledger");
        return StepEnd::Failed { code: "service_unavailable", cause: format!("cannot record the model call: {err}") };
    }
    let at = crate::telemetry::Window { start_ns, end_ns: Timestamp::now_nanos() };
    telemetry.model_call(&mut ctx.log, ctx.turn, &record, at, prompt.map(|p| (p, text.as_str())));
    state.usage.add(&call_usage);
    state.counted_in_windows = true;
    match ended {
        Ended::Finished => StepEnd::Answered { text, calls },
        Ended::Failed(cause) => StepEnd::Failed { code: "provider_unavailable", cause },
        Ended::Stopped(reason) => StepEnd::Stopped { reason, text },
    }
}
