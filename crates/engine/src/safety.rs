//! The agent's safety policy applied to a turn: the user's message before any model call, the
//! answer before it is stored. Detection itself is pure and lives in [`agentry_core::safety`].
//!
//! Policies (`off | flag | redact | block`, per direction): `flag` records the hits and emits
//! `safety_flags`; `redact` also replaces PII with `[REDACTED:<type>]` in what is stored and sent
//! on; `block` refuses a message with a high-severity hit (the turn ends with an `error` carrying
//! the flags before the model is called) and withholds such an answer from the stored history
//! (its tokens have already streamed). Lower-severity hits under `block` are flagged. Every hit
//! is recorded for monitoring.

use agentry_core::safety::{Finding, SafetyPolicy, Severity, redact, scan};
use agentry_core::{AgentSpec, SafetyFlag, Timestamp, Turn, TurnEvent};
use agentry_store::SafetyEvent;

use crate::Engine;
use crate::log::TurnLog;

/// What an answer withheld by the `block` policy is stored as.
const WITHHELD: &str = "[withheld: this answer was blocked by the safety policy]";

/// Checks the user's message. Returns the text to store and send to the model, or — when the
/// policy blocks it — the cause, after emitting `error` with the flags.
pub async fn check_input(engine: &Engine, turn: &Turn, agent: &AgentSpec, log: &mut TurnLog) -> Result<String, String> {
    let text = &turn.input.text;
    let policy = agent.safety.input;
    let findings = if policy == SafetyPolicy::Off { Vec::new() } else { scan(text) };
    if findings.is_empty() {
        return Ok(text.clone());
    }
    let blocks = policy == SafetyPolicy::Block && findings.iter().any(|f| f.severity == Severity::High);
    let action = if blocks { SafetyPolicy::Block } else { policy };
    let flags = record(engine, turn, "input", action, text, &findings).await;
    if blocks {
        let cause = "Message flagged by safety filters".to_owned();
        log.emit(TurnEvent::Error { code: "safety_blocked".into(), message: cause.clone(), flags });
        return Err(cause);
    }
    log.emit(TurnEvent::SafetyFlags { flags });
    Ok(if policy == SafetyPolicy::Redact { redact(text, &findings) } else { text.clone() })
}

/// Checks the answer; emits `safety_flags` for hits and returns what to store.
pub async fn check_output(engine: &Engine, turn: &Turn, agent: &AgentSpec, log: &mut TurnLog, answer: &str) -> String {
    let policy = agent.safety.output;
    let findings = if policy == SafetyPolicy::Off { Vec::new() } else { scan(answer) };
    if findings.is_empty() {
        return answer.to_owned();
    }
    let blocks = policy == SafetyPolicy::Block && findings.iter().any(|f| f.severity == Severity::High);
    let action = if blocks { SafetyPolicy::Block } else { policy };
    let flags = record(engine, turn, "output", action, answer, &findings).await;
    log.emit(TurnEvent::SafetyFlags { flags });
    match action {
        SafetyPolicy::Block => WITHHELD.to_owned(),
        SafetyPolicy::Redact => redact(answer, &findings),
        SafetyPolicy::Off | SafetyPolicy::Flag => answer.to_owned(),
    }
}

/// Records every hit in the safety ledger and returns the wire flags.
async fn record(
    engine: &Engine,
    turn: &Turn,
    direction: &str,
    action: SafetyPolicy,
    text: &str,
    findings: &[Finding],
) -> Vec<SafetyFlag> {
    let mut flags = Vec::with_capacity(findings.len());
    for finding in findings {
        let flag = finding.to_flag(text);
        let event = SafetyEvent {
            thread_id: turn.thread_id.clone(),
            turn_id: turn.id.clone(),
            agent_id: turn.agent_id.clone(),
            direction: direction.to_owned(),
            action: action.as_str().to_owned(),
            flag_type: flag.kind.clone(),
            severity: flag.severity.clone(),
            detail: flag.detail.clone(),
            created_at: Timestamp::now(),
        };
        if let Err(err) = engine.store().record_safety_event(&turn.scope, &event).await {
            tracing::warn!(%err, turn = %turn.id, "cannot record a safety event");
        }
        flags.push(flag);
    }
    flags
}
