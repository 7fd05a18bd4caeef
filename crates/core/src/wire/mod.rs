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
