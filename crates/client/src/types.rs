//! The resources of the Platos surface as the server returns them. Fields the SDK does not know
//! yet are kept in `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// An agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Agent {
    /// Agent id.
    pub id: String,
    /// Human name.
    pub name: String,
    /// `provider:model`.
    pub model: String,
    /// System prompt.
    #[serde(default)]
    pub system_prompt: String,
    /// Id of the current version.
    #[serde(default)]
    pub current_version_id: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the current version.
    pub updated_at: String,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One immutable version of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentVersion {
    /// Version id.
    pub id: String,
    /// Its agent.
    pub agent_id: String,
    /// 1-based number.
    pub version_number: i64,
    /// The agent as of this version.
    pub snapshot: Value,
    /// Whether this is the agent's current version.
    #[serde(default)]
    pub is_current: bool,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// A thread (conversation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Thread {
    /// `thr_…`
    pub id: String,
    /// The agent answering.
    pub agent_id: String,
    /// Optional title.
    #[serde(default)]
    pub title: Option<String>,
    /// `active` or `archived`.
    pub status: String,
    /// The owning user.
    #[serde(default)]
    pub user_id: Option<String>,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A message of a thread.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// `msg_…`
    pub id: String,
    /// Its thread.
    pub thread_id: String,
    /// `user`, `assistant`, `system`, `tool`.
    pub role: String,
    /// Text.
    pub content: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

/// An artifact revision (latest per key in listings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Revision id.
    pub id: String,
    /// Its thread.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// Stable key across revisions.
    pub artifact_key: String,
    /// `markdown`, `code`, …
    pub kind: String,
    /// Revision number.
    pub revision: i64,
    /// Content.
    pub content: String,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Filters of [`Threads::list`](crate::Threads::list).
#[derive(Debug, Clone, Default)]
pub struct ThreadFilter {
    /// Only threads of this agent.
    pub agent_id: Option<String>,
    /// Page size (server default 20, max 200).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
    /// Include archived threads with the active ones.
    pub include_archived: bool,
    /// Only archived threads.
    pub archived_only: bool,
}
