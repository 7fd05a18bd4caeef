//! Wire types: what the server answers, what the Rust SDK reads and what `/openapi.json`
//! describes, from one definition each. Domain objects that go on the wire as they are (like
//! [`crate::Thread`]) carry their schema themselves; the views that are not domain objects live
//! here, one file per area: the Platos agents and messages below, [`monitoring`] (turns, traces,
//! spans, costs), [`approvals`], [`budgets`], [`bgo`] (tasks, runs, schedules, batches),
//! [`admin`] (tools, keys), [`erdo`] (the Erdo surface).

pub mod admin;
pub mod approvals;
pub mod bgo;
pub mod budgets;
pub mod erdo;
pub mod monitoring;

use serde::{Deserialize, Serialize};

use crate::thread::MessageRole;
use crate::time::Timestamp;

/// An agent as `GET /agents` and `GET /agents/{agent_id}` show it (the fields of `PlatosAgent`
/// plus the record fields Agentry has).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": "support", "name": "Support", "model": "openai:gpt-4o-mini",
    "systemPrompt": "You help {{user.name}} with orders.", "description": "Answers order questions",
    "slug": "support", "organizationId": "default", "projectId": "default", "environmentId": "default",
    "currentVersionId": "agv_01m8yq1x2y3z4a5b6c7d8e9f0g", "versionNumber": 2, "isActive": true,
    "createdAt": "2026-12-01T08:00:00.000Z", "updatedAt": "2026-12-03T16:20:00.000Z"
}))]
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

/// A message as `GET /threads/{thread_id}/messages` shows it: the stored message plus, for an
/// answer that used tools, each tool call with its arguments and result (`toolCalls`, an extra the
/// official clients ignore).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": "msg_01m8yq9a8b7c6d5e4f3g2h1j0k", "threadId": "thr_01m8yq7v3k2b9c4d5e6f7g8h9j",
    "role": "assistant", "content": "It is 09:31 UTC.", "createdAt": "2026-12-04T09:31:12.500Z",
    "turnId": "trn_01m8yq8z7y6x5w4v3u2t1s0r9q",
    "toolCalls": [{"id": "call_1", "name": "current_time", "arguments": {}, "result": "2026-12-04T09:31:11Z",
                   "isError": false, "step": 1}]
}))]
pub struct Message {
    /// `msg_…`
    pub id: String,
    /// Its thread.
    pub thread_id: String,
    /// Who wrote it.
    pub role: MessageRole,
    /// The text.
    pub content: String,
    /// When it was stored.
    pub created_at: Timestamp,
    /// The turn that wrote it (none for messages written outside a turn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
    /// An answer's tool calls with their results, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<MessageToolCall>,
}

/// One tool call of an answer, with its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageToolCall {
    /// Pairs the call with its result.
    pub id: String,
    /// The tool.
    pub name: String,
    /// The arguments the model sent (JSON, or the text if it was not JSON).
    pub arguments: serde_json::Value,
    /// What the tool returned (JSON, or the text).
    pub result: serde_json::Value,
    /// Whether the call failed.
    #[serde(default)]
    pub is_error: bool,
    /// The model step (from 1) that made it.
    #[serde(default)]
    pub step: u32,
}

impl Message {
    /// The view of a stored message.
    pub fn of(message: &crate::Message) -> Message {
        let parse =
            |text: &str| serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()));
        let tool_calls = message
            .tool_steps
            .iter()
            .enumerate()
            .flat_map(|(step, s)| s.calls.iter().map(move |c| (step, c)))
            .map(|(step, call)| MessageToolCall {
                id: call.id.clone(),
                name: call.name.clone(),
                arguments: parse(&call.arguments),
                result: parse(&call.result),
                is_error: call.is_error,
                step: u32::try_from(step + 1).unwrap_or(u32::MAX),
            })
            .collect();
        Message {
            id: message.id.clone(),
            thread_id: message.thread_id.clone(),
            role: message.role,
            content: message.content.clone(),
            created_at: message.created_at,
            turn_id: message.turn_id.clone(),
            tool_calls,
        }
    }
}

/// A page of a thread's messages, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessagePage {
    /// The messages.
    pub messages: Vec<Message>,
    /// How many the thread has.
    pub total: i64,
    /// The page size asked for.
    pub limit: i64,
    /// How many were skipped.
    pub offset: i64,
}

/// An agent's user-facing fields as a version recorded them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSnapshot {
    /// The agent id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// `provider:model`.
    pub model: String,
    /// The system prompt.
    pub system_prompt: String,
    /// What the agent is for.
    pub description: Option<String>,
}

/// One immutable version of an agent (`GET /agents/{agent_id}/versions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentVersion {
    /// The whole agent file as it was (without its scope): what versions are compared by.
    pub spec: crate::AgentSpec,
    /// `agv_…`
    pub id: String,
    /// Its agent.
    pub agent_id: String,
    /// 1-based number.
    pub version_number: i64,
    /// Who made it (`file:support.toml`, `api`, …).
    pub created_by: String,
    /// Why, when the author said.
    pub note: Option<String>,
    /// The user-facing fields of this version.
    pub snapshot: AgentSnapshot,
    /// When it was made.
    pub created_at: Timestamp,
    /// Whether it is the agent's current version.
    pub is_current: bool,
}

/// `GET /agents/{agent_id}/versions`: a page of versions, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentVersionPage {
    /// The versions.
    pub versions: Vec<AgentVersion>,
    /// The page size applied.
    pub page_size: i64,
    /// The rows skipped.
    pub offset: i64,
}

/// `GET /threads`: a page of the threads the caller may see, most recently updated first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ThreadList {
    /// The threads.
    pub threads: Vec<crate::Thread>,
    /// How many match in all pages.
    pub total: i64,
    /// The page size applied.
    pub limit: i64,
    /// The rows skipped.
    pub offset: i64,
}

/// The latest revision of an artifact a thread's turns made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// Revision id.
    pub id: String,
    /// Its thread.
    pub thread_id: String,
    /// The turn that made this revision.
    pub turn_id: String,
    /// Stable key across revisions.
    pub artifact_key: String,
    /// `markdown`, `code`, `html`, `svg`, `csv`, `json`, …
    pub kind: String,
    /// Revision number, from 1.
    pub revision: i64,
    /// How many revisions the artifact has.
    pub revision_count: i64,
    /// Its title.
    pub title: Option<String>,
    /// Language of a code artifact.
    pub language: Option<String>,
    /// The content (HTML and SVG sanitised).
    pub content: String,
    /// When this revision was stored.
    pub created_at: Timestamp,
}

/// `GET /threads/{thread_id}/artifacts`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtifactList {
    /// The artifacts.
    pub artifacts: Vec<Artifact>,
}

/// What a `DELETE` answers: the resource is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deleted {
    /// Always true.
    pub deleted: bool,
    /// The id that was deleted.
    pub id: String,
}

/// `POST /threads/{thread_id}/cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Cancelled {
    /// Whether a running or queued turn was stopped.
    pub cancelled: bool,
    /// The thread.
    pub thread_id: String,
}

/// Why a turn failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TurnError {
    /// Machine code (`provider_unavailable`, `budget_cap`, …).
    pub code: String,
    /// Explanation.
    pub message: String,
}

/// `POST /threads/{thread_id}/messages`: the turn, once it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnOutcome {
    /// The answer's text.
    pub text: String,
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The stored answer, if one was stored.
    pub message_id: Option<String>,
    /// How it ended (`waiting` when it parked on an approval).
    pub status: crate::TurnStatus,
    /// Why it failed.
    pub error: Option<TurnError>,
    /// What it used.
    pub usage: crate::TokenUsage,
    /// Its cost in cents.
    pub cost_cents: f64,
    /// Every event it logged, in order (the stream's events).
    pub events: Vec<crate::LoggedEvent>,
}
