//! The spans of a turn, following the OpenTelemetry GenAI semantic conventions: the turn is an
//! `invoke_agent {agent}` span, each model call a `chat {model}` child, each tool call an
//! `execute_tool {tool}` child. Agentry's own attributes carry the cost in micro-cents and the
//! tenancy ids.

use agentry_core::{TokenUsage, Turn};
use agentry_store::{CallStatus, ModelCall, Span, SpanKind, SpanStatus};
use serde_json::{Map, Value, json};

/// A span of `turn` with the attributes every span of a turn has.
fn span_of(turn: &Turn, span_id: String, parent: Option<String>, name: String, kind: SpanKind) -> Span {
    let mut attributes = Map::new();
    attributes.insert("gen_ai.conversation.id".into(), json!(turn.thread_id));
    attributes.insert("gen_ai.agent.id".into(), json!(turn.agent_id));
    attributes.insert("agentry.turn.id".into(), json!(turn.id));
    attributes.insert("agentry.organization.id".into(), json!(turn.scope.organization_id));
    attributes.insert("agentry.project.id".into(), json!(turn.scope.project_id));
    attributes.insert("agentry.environment.id".into(), json!(turn.scope.environment_id));
    attributes.insert("enduser.id".into(), json!(turn.user_id));
    Span {
        trace_id: turn.trace_id(),
        span_id,
        parent_span_id: parent,
        scope: turn.scope.clone(),
        thread_id: turn.thread_id.clone(),
        turn_id: turn.id.clone(),
        agent_id: turn.agent_id.clone(),
        user_id: turn.user_id.clone(),
        name,
        kind,
        start_ns: 0,
        end_ns: 0,
        status: SpanStatus::Ok,
        error: None,
        attributes,
    }
}

fn usage_attributes(attributes: &mut Map<String, Value>, usage: &TokenUsage) {
    attributes.insert("gen_ai.usage.input_tokens".into(), json!(usage.input_tokens));
    attributes.insert("gen_ai.usage.output_tokens".into(), json!(usage.output_tokens));
    attributes.insert("gen_ai.usage.cache_read.input_tokens".into(), json!(usage.cached_input_tokens));
    attributes.insert("gen_ai.usage.reasoning.output_tokens".into(), json!(usage.reasoning_tokens));
    attributes.insert("agentry.cost_micro_cents".into(), json!(usage.cost.0));
}

/// Times of a span, Unix nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub start_ns: i64,
    pub end_ns: i64,
}

/// The span of one model call, from its ledger row. `content`: the prompt and the answer, when
/// the operator captures content.
pub(crate) fn chat(turn: &Turn, call: &ModelCall, at: Window, content: Option<(Value, &str)>) -> Span {
    let model = format!("{}:{}", call.provider, call.model);
    let mut span = span_of(
        turn,
        agentry_core::trace::span_id(&call.id),
        Some(turn.span_id()),
        format!("chat {}", call.model),
        SpanKind::Client,
    );
    (span.start_ns, span.end_ns) = (at.start_ns, at.end_ns);
    let a = &mut span.attributes;
    a.insert("gen_ai.operation.name".into(), json!("chat"));
    a.insert("gen_ai.provider.name".into(), json!(call.provider));
    a.insert("gen_ai.request.model".into(), json!(call.model));
    a.insert("gen_ai.response.model".into(), json!(call.model));
    a.insert("agentry.model".into(), json!(model));
    a.insert("agentry.model_call.id".into(), json!(call.id));
    a.insert("agentry.step".into(), json!(call.step));
    if let Some(reason) = &call.finish_reason {
        a.insert("gen_ai.response.finish_reasons".into(), json!([reason]));
    }
    if let Some(first) = call.first_token_at {
        a.insert("agentry.time_to_first_token_ms".into(), json!(first.0 - call.started_at.0));
    }
    usage_attributes(a, &call.usage);
    if let Some((prompt, answer)) = content {
        a.insert("gen_ai.input.messages".into(), json!(prompt.to_string()));
        a.insert("gen_ai.output.messages".into(), json!(json!([{"role": "assistant", "content": answer}]).to_string()));
    }
    if call.status != CallStatus::Completed {
        span.status = SpanStatus::Error;
        span.error = Some(call.error.clone().unwrap_or_else(|| call.status.as_str().to_owned()));
        span.attributes.insert("error.type".into(), json!(call.status.as_str()));
    }
    span
}

/// How a tool call ended.
pub(crate) struct ToolOutcome<'a> {
    /// `ok`, `error` or `refused` (an approval said no).
    pub status: &'static str,
    /// What went wrong.
    pub error: Option<&'a str>,
    /// How long the call waited for a human's approval.
    pub approval_wait_ms: Option<i64>,
    /// Arguments and result, when the operator captures content.
    pub content: Option<(&'a Value, &'a Value)>,
}

/// The span of one tool call.
pub(crate) fn tool(turn: &Turn, call_id: &str, tool_name: &str, at: Window, outcome: ToolOutcome<'_>) -> Span {
    let key = agentry_core::trace::tool_span_key(&turn.id, call_id);
    let mut span = span_of(
        turn,
        agentry_core::trace::span_id(&key),
        Some(turn.span_id()),
        format!("execute_tool {tool_name}"),
        SpanKind::Internal,
    );
    (span.start_ns, span.end_ns) = (at.start_ns, at.end_ns);
    let a = &mut span.attributes;
    a.insert("gen_ai.operation.name".into(), json!("execute_tool"));
    a.insert("gen_ai.tool.name".into(), json!(tool_name));
    a.insert("gen_ai.tool.call.id".into(), json!(call_id));
    a.insert("gen_ai.tool.type".into(), json!("function"));
    a.insert("agentry.tool.status".into(), json!(outcome.status));
    a.insert("agentry.tool.latency_ms".into(), json!((at.end_ns - at.start_ns) / 1_000_000));
    if let Some(wait) = outcome.approval_wait_ms {
        a.insert("agentry.approval.wait_ms".into(), json!(wait));
    }
    if let Some((arguments, result)) = outcome.content {
        a.insert("gen_ai.tool.call.arguments".into(), json!(arguments.to_string()));
        a.insert("gen_ai.tool.call.result".into(), json!(result.to_string()));
    }
    if outcome.status != "ok" {
        span.status = SpanStatus::Error;
        span.error = outcome.error.map(str::to_owned).or_else(|| Some(outcome.status.to_owned()));
        span.attributes.insert("error.type".into(), json!(outcome.status));
    }
    span
}

/// What a turn came to, for its span.
pub(crate) struct TurnEnd<'a> {
    /// The agent's display name and version.
    pub agent_name: Option<&'a str>,
    /// `completed`, `failed`, `cancelled`.
    pub status: &'a str,
    /// The error code and message, if it ended with one.
    pub error: Option<(&'a str, &'a str)>,
    /// The ledger's sum.
    pub usage: &'a TokenUsage,
    /// Model calls made.
    pub steps: u32,
    /// The message and the answer, when the operator captures content.
    pub content: Option<(&'a str, &'a str)>,
}

/// The span of the whole turn.
pub(crate) fn turn(turn: &Turn, at: Window, end: TurnEnd<'_>) -> Span {
    let name = end.agent_name.unwrap_or(&turn.agent_id);
    let parent = turn.input.trace_parent.as_ref().map(|p| p.parent_span_id.clone());
    let mut span = span_of(turn, turn.span_id(), parent, format!("invoke_agent {name}"), SpanKind::Internal);
    (span.start_ns, span.end_ns) = (at.start_ns, at.end_ns);
    let a = &mut span.attributes;
    a.insert("gen_ai.operation.name".into(), json!("invoke_agent"));
    a.insert("gen_ai.agent.name".into(), json!(name));
    if let Some(version) = turn.input.agent_version {
        a.insert("agentry.agent.version".into(), json!(version));
    }
    a.insert("agentry.turn.status".into(), json!(end.status));
    a.insert("agentry.turn.steps".into(), json!(end.steps));
    a.insert("agentry.turn.message_length".into(), json!(turn.input.text.len()));
    usage_attributes(a, end.usage);
    if let Some((message, answer)) = end.content {
        a.insert("gen_ai.input.messages".into(), json!(json!([{"role": "user", "content": message}]).to_string()));
        a.insert("gen_ai.output.messages".into(), json!(json!([{"role": "assistant", "content": answer}]).to_string()));
    }
    if let Some((code, message)) = end.error {
        span.status = SpanStatus::Error;
        span.error = Some(message.to_owned());
        span.attributes.insert("error.type".into(), json!(code));
    }
    span
}
