//! JSON views of domain objects in the Platos shapes.

use agentry_core::{AgentSpec, Timestamp, Turn, wire};
use agentry_store::{AgentVersion, Span, StoredAgent, TurnStats};
use serde_json::{Value, json};

/// An agent spec's user-facing fields, camelCase (also the version `snapshot`).
fn spec_fields(spec: &AgentSpec) -> Value {
    json!({
        "id": spec.id,
        "name": spec.name,
        "model": spec.model,
        "systemPrompt": spec.system_prompt,
        "description": spec.description,
    })
}

/// `PlatosAgent` plus the upstream record fields we have.
pub fn agent(agent: &StoredAgent) -> wire::Agent {
    wire::Agent {
        id: agent.spec.id.clone(),
        name: agent.spec.name.clone(),
        model: agent.spec.model.clone(),
        system_prompt: agent.spec.system_prompt.clone(),
        description: agent.spec.description.clone(),
        slug: agent.spec.id.clone(),
        organization_id: agent.scope.organization_id.clone(),
        project_id: agent.scope.project_id.clone(),
        environment_id: agent.scope.environment_id.clone(),
        current_version_id: agent.current_version_id.clone(),
        version_number: agent.version_number,
        is_active: true,
        created_at: agent.created_at,
        updated_at: agent.updated_at,
    }
}

/// A version record: `id, agentId, versionNumber, createdBy, note, snapshot, createdAt, isCurrent`,
/// and `spec`, the whole agent file as it was (what the dashboard compares between versions).
pub fn version(version: &AgentVersion, current_version_id: &str) -> Value {
    json!({
        "spec": version.spec.without_scope(),
        "id": version.id,
        "agentId": version.agent_id,
        "versionNumber": version.version_number,
        "createdBy": version.created_by,
        "note": version.note,
        "snapshot": spec_fields(&version.spec),
        "createdAt": version.created_at,
        "isCurrent": version.id == current_version_id,
    })
}

/// How long a finished turn ran, start to end.
pub fn turn_duration_ms(turn: &Turn) -> Option<i64> {
    Some(turn.finished_at?.0 - turn.started_at.unwrap_or(turn.created_at).0)
}

/// A turn in the monitoring lists: the 0.1.x `run` and 1.x `turn` fields, with its usage.
pub fn turn(turn: &Turn, stats: &TurnStats) -> Value {
    let started = turn.started_at.unwrap_or(turn.created_at);
    json!({
        "id": turn.id,
        "agentId": turn.agent_id,
        "agentVersion": turn.input.agent_version,
        "threadId": turn.thread_id,
        "userId": turn.user_id,
        "status": turn.status.as_str(),
        "waitReason": turn.wait_reason,
        "createdAt": turn.created_at,
        "startedAt": turn.started_at,
        "completedAt": turn.finished_at,
        "durationMs": turn_duration_ms(turn),
        "ttftMs": stats.first_token_at.map(|t| t.0 - started.0),
        "costCents": stats.usage.cost.as_cents(),
        "costMicroCents": stats.usage.cost.0,
        "inputTokens": stats.usage.input_tokens,
        "outputTokens": stats.usage.output_tokens,
        "cachedInputTokens": stats.usage.cached_input_tokens,
        "reasoningTokens": stats.usage.reasoning_tokens,
        "steps": stats.model_calls,
        "toolCalls": stats.tool_calls,
        "error": turn.error,
        "traceId": turn.trace_id(),
    })
}

/// A span, OpenTelemetry-shaped (`startTimeUnixNano` as a string: it does not fit a double).
pub fn span(span: &Span) -> Value {
    json!({
        "traceId": span.trace_id,
        "spanId": span.span_id,
        "parentSpanId": span.parent_span_id,
        "name": span.name,
        "kind": span.kind.as_str(),
        "startTimeUnixNano": span.start_ns.to_string(),
        "endTimeUnixNano": span.end_ns.to_string(),
        "startTime": Timestamp(span.start_ns.div_euclid(1_000_000)),
        "endTime": Timestamp(span.end_ns.div_euclid(1_000_000)),
        "durationMs": span.duration_ms(),
        "status": span.status.as_str(),
        "errorMessage": span.error,
        "turnId": span.turn_id,
        "threadId": span.thread_id,
        "agentId": span.agent_id,
        "attributes": span.attributes,
    })
}
