//! JSON views of domain objects in the Platos shapes.

use agentry_core::wire::monitoring::{TraceSpan, TurnRecord};
use agentry_core::{Timestamp, Turn, wire};
use agentry_store::{AgentVersion, Span, StoredAgent, TurnStats};

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

/// A version record, with `spec`, the whole agent file as it was (what the dashboard compares
/// between versions), and `snapshot`, its user-facing fields.
pub fn version(version: &AgentVersion, current_version_id: &str) -> wire::AgentVersion {
    let spec = &version.spec;
    wire::AgentVersion {
        spec: spec.without_scope(),
        id: version.id.clone(),
        agent_id: version.agent_id.clone(),
        version_number: version.version_number,
        created_by: version.created_by.clone(),
        note: version.note.clone(),
        snapshot: wire::AgentSnapshot {
            id: spec.id.clone(),
            name: spec.name.clone(),
            model: spec.model.clone(),
            system_prompt: spec.system_prompt.clone(),
            description: spec.description.clone(),
        },
        created_at: version.created_at,
        is_current: version.id == current_version_id,
    }
}

/// How long a finished turn ran, start to end.
pub fn turn_duration_ms(turn: &Turn) -> Option<i64> {
    Some(turn.finished_at?.0 - turn.started_at.unwrap_or(turn.created_at).0)
}

/// A turn in the monitoring lists: the 0.1.x `run` and 1.x `turn` fields, with its usage.
pub fn turn(turn: &Turn, stats: &TurnStats) -> TurnRecord {
    let started = turn.started_at.unwrap_or(turn.created_at);
    TurnRecord {
        id: turn.id.clone(),
        agent_id: turn.agent_id.clone(),
        agent_version: turn.input.agent_version,
        thread_id: turn.thread_id.clone(),
        user_id: turn.user_id.clone(),
        status: turn.status,
        wait_reason: turn.wait_reason.clone(),
        created_at: turn.created_at,
        started_at: turn.started_at,
        completed_at: turn.finished_at,
        duration_ms: turn_duration_ms(turn),
        ttft_ms: stats.first_token_at.map(|t| t.0 - started.0),
        cost_cents: stats.usage.cost.as_cents(),
        cost_micro_cents: stats.usage.cost.0,
        input_tokens: stats.usage.input_tokens,
        output_tokens: stats.usage.output_tokens,
        cached_input_tokens: stats.usage.cached_input_tokens,
        reasoning_tokens: stats.usage.reasoning_tokens,
        steps: stats.model_calls,
        tool_calls: stats.tool_calls,
        error: turn.error.clone(),
        trace_id: turn.trace_id(),
    }
}

/// A span, OpenTelemetry-shaped, without children.
pub fn span(span: &Span) -> TraceSpan {
    TraceSpan {
        trace_id: span.trace_id.clone(),
        span_id: span.span_id.clone(),
        parent_span_id: span.parent_span_id.clone(),
        name: span.name.clone(),
        kind: span.kind.as_str().to_owned(),
        start_time_unix_nano: span.start_ns.to_string(),
        end_time_unix_nano: span.end_ns.to_string(),
        start_time: Timestamp(span.start_ns.div_euclid(1_000_000)),
        end_time: Timestamp(span.end_ns.div_euclid(1_000_000)),
        duration_ms: span.duration_ms(),
        status: span.status.as_str().to_owned(),
        error_message: span.error.clone(),
        turn_id: span.turn_id.clone(),
        thread_id: span.thread_id.clone(),
        agent_id: span.agent_id.clone(),
        attributes: span.attributes.clone(),
        children: None,
    }
}
