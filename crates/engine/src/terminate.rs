//! The one place a turn ends — completed, failed, refused, cancelled (running or idle), or lost
//! with its replica.
//!
//! In order: the `error` that explains a failure, the answer checked by the agent's safety
//! policy, then (in one fenced transaction) the answer and the final state, then
//! `message_persisted`, `usage` (the sum of the turn's ledger rows), the turn's span and metrics,
//! and `done`. A run that lost its lease writes nothing: the turn belongs to another replica now.

use agentry_core::{AgentSpec, ContentItem, Message, MessageRole, Timestamp, TurnEvent, TurnStatus};
use agentry_store::{Finish, SafetyEvent};

use crate::log::LogError;
use crate::runner::{Outcome, RunCtx};
use crate::state::TurnState;
use crate::telemetry::{TurnEnd, Window};
use crate::{StopReason, safety};

/// What a client is told when a turn fails on the store (the cause is logged).
const SERVICE_UNAVAILABLE: &str = "the service is temporarily unavailable; try again";

/// Ends the turn held by `ctx` with `outcome`, storing what `state` says was answered.
pub(crate) async fn terminate(
    ctx: &mut RunCtx<'_>,
    agent: Option<&AgentSpec>,
    state: &mut TurnState,
    outcome: Outcome,
) {
    let (engine, turn) = (ctx.engine, ctx.turn);
    let store = engine.store();
    let end_ns = Timestamp::now_nanos();
    let mut error_code: Option<&'static str> = None;
    let (status, cause) = match outcome {
        Outcome::Completed | Outcome::Waiting(_) => (TurnStatus::Completed, None),
        Outcome::BudgetCap(hit) => {
            ctx.log.emit(TurnEvent::Error {
                code: "budget_cap".into(),
                message: hit.message.clone(),
                flags: vec![hit.flag()],
            });
            let event = SafetyEvent {
                thread_id: turn.thread_id.clone(),
                turn_id: turn.id.clone(),
                agent_id: turn.agent_id.clone(),
                direction: "input".into(),
                action: "block".into(),
                flag_type: "budget".into(),
                severity: "high".into(),
                detail: hit.message.clone(),
                created_at: Timestamp::now(),
            };
            if let Err(err) = store.record_safety_event(&turn.scope, &event).await {
                tracing::warn!(%err, turn = %turn.id, "cannot record the budget stop");
            }
            error_code = Some("budget_cap");
            (TurnStatus::Failed, Some(hit.message))
        }
        Outcome::Failed { code, cause } => {
            // What the store said stays in the log; clients (events, the stored turn) get no
            // database text.
            let cause = if code == "service_unavailable" {
                tracing::error!(turn = %turn.id, %cause, "turn failed on the store");
                SERVICE_UNAVAILABLE.to_owned()
            } else {
                cause
            };
            ctx.log.emit(TurnEvent::error(code, cause.clone()));
            error_code = Some(code);
            (TurnStatus::Failed, Some(cause))
        }
        Outcome::Refused { cause } => {
            error_code = Some("refused");
            (TurnStatus::Failed, Some(cause))
        }
        Outcome::Stopped(StopReason::Requested) => (TurnStatus::Cancelled, None),
        Outcome::Stopped(StopReason::LeaseLost) => return,
        Outcome::Stopped(StopReason::Shutdown) => {
            let cause = "the server shut down during this turn".to_owned();
            ctx.log.emit(TurnEvent::error("interrupted", cause.clone()));
            error_code = Some("interrupted");
            (TurnStatus::Failed, Some(cause))
        }
        Outcome::ReplicaLost => {
            let cause = "the replica running this turn stopped before the turn could be resumed".to_owned();
            ctx.log.emit(TurnEvent::error("replica_lost", cause.clone()));
            error_code = Some("replica_lost");
            (TurnStatus::Failed, Some(cause))
        }
    };
    // What the user saw is kept, also when the turn was stopped part-way.
    let answer = if !state.answer.trim().is_empty() || !state.contents.is_empty() {
        let content = match agent {
            Some(agent) => safety::check_output(engine, turn, agent, &mut ctx.log, &state.answer).await,
            None => state.answer.clone(),
        };
        let rewritten = content != state.answer;
        let mut message = Message::new(&turn.thread_id, MessageRole::Assistant, content, Some(&turn.id));
        if !state.message_id.is_empty() {
            message.id = state.message_id.clone();
        }
        message.created_at = Timestamp::now();
        // A rewritten answer (redacted, blocked) is stored without the steps that would repeat it.
        if !rewritten {
            message.tool_steps = state.answer_steps();
        }
        let mut items = std::mem::take(&mut state.contents);
        if rewritten {
            // The safety policy changed the answer: its text is stored as the policy left it.
            items.retain(|c| c.content_type != "text");
            items.insert(0, ContentItem::text(&message, &turn.id));
        }
        Some((message, items))
    } else {
        None
    };
    let finish = Finish {
        status,
        error: cause.as_deref(),
        answer: answer.as_ref().map(|(message, items)| (message, items.as_slice())),
    };
    // The answer and the final state are recorded before `done` goes out, so a client that
    // reads the thread after `done` sees both.
    match store.finish_turn(&turn.scope, &ctx.lease, &finish).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!(turn = %turn.id, "the turn was taken over before it could end here");
            return;
        }
        Err(err) => tracing::error!(%err, turn = %turn.id, "cannot record the end of the turn"),
    }
    // `state.usage` is the sum of the ledger rows this turn's runs wrote; after a takeover the
    // dead replica may have written more, so the ledger itself is summed.
    let usage = if state.taken_over {
        match store.turn_usage(&turn.scope, &turn.id).await {
            Ok(usage) => usage,
            Err(err) => {
                tracing::error!(%err, turn = %turn.id, "cannot sum the turn's ledger; reporting what this run counted");
                state.usage
            }
        }
    } else {
        state.usage
    };
    if let Some((message, _)) = &answer {
        ctx.log.emit(TurnEvent::MessagePersisted {
            message_id: message.id.clone(),
            thread_id: turn.thread_id.clone(),
            cost_cents: usage.cost.as_cents(),
        });
    }
    let started = turn.started_at.unwrap_or(turn.created_at);
    let at = Window { start_ns: started.0.saturating_mul(1_000_000), end_ns };
    let end = TurnEnd {
        agent_name: agent.map(|a| a.name.as_str()),
        status: status.as_str(),
        error: error_code.zip(cause.as_deref()),
        usage: &usage,
        steps: state.step,
        content: answer.as_ref().map(|(message, _)| (turn.input.text.as_str(), message.content.as_str())),
    };
    engine.inner.telemetry.turn_ended(&mut ctx.log, turn, at, end);
    ctx.log.send_spans();
    ctx.log.emit(TurnEvent::Usage { usage });
    ctx.log.emit(TurnEvent::Done { usage, status, stopped: status == TurnStatus::Cancelled });
    match ctx.log.flush().await {
        Ok(()) | Err(LogError::LeaseLost) => {}
        Err(err) => tracing::error!(%err, turn = %turn.id, "event log incomplete"),
    }
}
