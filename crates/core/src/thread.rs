//! Threads (conversations owned by one end user) and their messages.

use serde::{Deserialize, Serialize};

use crate::scope::Scope;
use crate::time::Timestamp;

/// Whether a thread shows in default listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ThreadStatus {
    /// Listed and usable.
    Active,
    /// Hidden from default listings; still readable and usable.
    Archived,
}

impl ThreadStatus {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadStatus::Active => "active",
            ThreadStatus::Archived => "archived",
        }
    }

    /// Parses the stored form; anything unknown is treated as active.
    pub fn parse(value: &str) -> Self {
        if value == "archived" { ThreadStatus::Archived } else { ThreadStatus::Active }
    }
}

/// A conversation between one end user and one agent: the wire type of the Platos thread routes,
/// read by the Rust SDK and described in `/openapi.json` (one definition for all three).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({
    "id": "thr_01m8yq7v3k2b9c4d5e6f7g8h9j", "agentId": "support", "userId": "alice",
    "organizationId": "default", "projectId": "default", "environmentId": "default",
    "title": "Refund for order A1", "status": "active", "archivedAt": null,
    "createdAt": "2026-12-04T09:30:00.000Z", "updatedAt": "2026-12-04T09:31:12.500Z"
}))]
pub struct Thread {
    /// `thr_…`
    pub id: String,
    /// The agent that answers in this thread.
    pub agent_id: String,
    /// The owning end user.
    pub user_id: String,
    /// Scope of the thread.
    #[serde(flatten)]
    pub scope: Scope,
    /// Optional human title.
    pub title: Option<String>,
    /// Active or archived.
    pub status: ThreadStatus,
    /// When it was archived, if it is.
    pub archived_at: Option<Timestamp>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Last change (creation, archive, new message).
    pub updated_at: Timestamp,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageRole {
    /// The end user.
    User,
    /// The agent.
    Assistant,
    /// A system note.
    System,
    /// A tool result.
    Tool,
}

impl MessageRole {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageRole::User => "user",
            MessageRole::Assistant => "assistant",
            MessageRole::System => "system",
            MessageRole::Tool => "tool",
        }
    }

    /// Parses the stored form.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "user" => Some(MessageRole::User),
            "assistant" => Some(MessageRole::Assistant),
            "system" => Some(MessageRole::System),
            "tool" => Some(MessageRole::Tool),
            _ => None,
        }
    }
}

/// One message of a thread.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// `msg_…`
    pub id: String,
    /// The thread it belongs to.
    pub thread_id: String,
    /// Author role.
    pub role: MessageRole,
    /// Text content.
    pub content: String,
    /// Creation time.
    pub created_at: Timestamp,
    /// The turn that stored it (none for messages written outside a turn).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turn_id: Option<String>,
    /// For an answer that used tools: its model steps with their tool calls and results, in order
    /// (what later turns send back to the model).
    #[serde(skip)]
    pub tool_steps: Vec<ToolStep>,
}

impl Message {
    /// A message with no tool steps.
    pub fn new(thread_id: &str, role: MessageRole, content: String, turn_id: Option<&str>) -> Message {
        Message {
            id: crate::id::new_id(crate::id::prefix::MESSAGE),
            thread_id: thread_id.to_owned(),
            role,
            content,
            created_at: Timestamp::now(),
            turn_id: turn_id.map(str::to_owned),
            tool_steps: Vec::new(),
        }
    }
}

/// One model step of an answer: what the model said and the tools it called, with their results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolStep {
    /// The step's text.
    #[serde(default)]
    pub text: String,
    /// The calls the model made in this step (none for the last step).
    #[serde(default)]
    pub calls: Vec<ToolStepCall>,
}

/// A tool call of an answer and what it returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolStepCall {
    /// Id pairing the call with its result.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as the model sent them (JSON text).
    pub arguments: String,
    /// What the model was given back (JSON text).
    pub result: String,
    /// Whether the call failed.
    #[serde(default)]
    pub is_error: bool,
}
