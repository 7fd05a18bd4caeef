//! JSON views of domain objects in the Platos shapes.

use agentry_core::AgentSpec;
use agentry_store::{AgentVersion, StoredAgent};
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
pub fn agent(agent: &StoredAgent) -> Value {
    let mut value = spec_fields(&agent.spec);
    let extra = json!({
        "slug": agent.spec.id,
        "organizationId": agent.scope.organization_id,
        "projectId": agent.scope.project_id,
        "environmentId": agent.scope.environment_id,
        "currentVersionId": agent.current_version_id,
        "versionNumber": agent.version_number,
        "isActive": true,
        "createdAt": agent.created_at,
        "updatedAt": agent.updated_at,
    });
    merge(&mut value, extra);
    value
}

/// A version record: `id, agentId, versionNumber, createdBy, note, snapshot, createdAt, isCurrent`.
pub fn version(version: &AgentVersion, current_version_id: &str) -> Value {
    json!({
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

fn merge(target: &mut Value, extra: Value) {
    if let (Value::Object(target), Value::Object(extra)) = (target, extra) {
        target.extend(extra);
    }
}
