//! Wire types of the Platos surface that are views rather than domain objects: what the server
//! answers, what the Rust SDK reads and what `/openapi.json` describes, from one definition each
//! (domain objects that go on the wire as they are, like [`crate::Thread`], carry their schema
//! themselves).

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// An agent as `GET /agents` and `GET /agents/{agent_id}` show it (the fields of `PlatosAgent`
/// plus the record fields Agentry has).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    /// The agent id (unique in its scope).
    pub id: String,
    /// Display name.
    pub name: String,
    /// `provider:model`, e.g. `openai:gpt-4o-mini`.
    pub model: String,
    /// The system prompt (a template: `{{user.name}}`, dynamic blocks).
    pub system_prompt: String,
    /// What the agent is for.
    pub description: Option<String>,
    /// The id again, as upstream names it.
    pub slug: String,
    /// Its organization.
    pub organization_id: String,
    /// Its project.
    pub project_id: String,
    /// Its environment.
    pub environment_id: String,
    /// The current immutable version (`agv_…`).
    pub current_version_id: String,
    /// The current version's number, from 1.
    pub version_number: i64,
    /// Always true: a deleted agent is gone.
    pub is_active: bool,
    /// When the agent was first applied.
    pub created_at: Timestamp,
    /// When its current version was applied.
    pub updated_at: Timestamp,
}

/// `GET /agents`: the agents the caller may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AgentList {
    /// The agents, in the store's order.
    pub agents: Vec<Agent>,
    /// How many there are.
    pub total: usize,
}
