//! The resources of the Platos surface as the server returns them. Fields the SDK does not know
//! yet are kept in `extra`.

use agentry_core::ApprovalStatus;
pub use agentry_core::wire::{Agent, Message, MessageToolCall};
pub use agentry_core::{Thread, ThreadStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// Who made it (`file:support.toml`, `api`, …).
    #[serde(default)]
    pub created_by: Option<String>,
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
    /// Only threads of this user (operators; a user sees only their own anyway).
    pub user_id: Option<String>,
    /// A thread id, or text the title contains (any case).
    pub search: Option<String>,
    /// Page size (server default 20, max 200).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
    /// Include archived threads with the active ones.
    pub include_archived: bool,
    /// Only archived threads.
    pub archived_only: bool,
}

/// A human approval a turn waits on: a tool call marked `requires_approval`, or the agent's
/// `request_approval` tool. The turn stays parked until it is approved, rejected, times out or
/// the turn is cancelled; exactly one of those settles it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// `apr_…`
    pub id: String,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// What is to be approved, for the human (`call tool \`refund\``, or the agent's words).
    #[serde(default)]
    pub action: String,
    /// Details shown to the approver (the tool's arguments for a tool call).
    #[serde(default)]
    pub details: Value,
    /// The tool whose call waits (`request_approval` for explicit requests).
    #[serde(default)]
    pub tool_name: String,
    /// The waiting tool call.
    #[serde(default)]
    pub call_id: String,
    /// The tool's arguments as the model gave them.
    #[serde(default)]
    pub args: Value,
    /// The thread of the waiting turn.
    #[serde(default)]
    pub thread_id: String,
    /// The waiting turn.
    #[serde(default)]
    pub turn_id: String,
    /// The agent that asked.
    #[serde(default)]
    pub agent_id: String,
    /// The user whose turn asked (who may resolve it, besides operators).
    #[serde(default)]
    pub requested_by: String,
    /// RFC 3339 time of the request.
    pub created_at: String,
    /// RFC 3339 deadline: past it the approval times out (the server also sends it as
    /// `deadlineAt`, kept in `extra`).
    #[serde(default)]
    pub timeout_at: Option<String>,
    /// RFC 3339 time it was settled.
    #[serde(default)]
    pub resolved_at: Option<String>,
    /// Who settled it: a user id, `operator`, or `system` for timeouts and cancellations.
    #[serde(default)]
    pub responded_by: Option<String>,
    /// The approver's comment (or rejection reason).
    #[serde(default)]
    pub comment: Option<String>,
    /// Arguments that replaced the model's on approval.
    #[serde(default)]
    pub edited_args: Option<Value>,
    /// Other fields (`scope`, `question`, `context`, `deadlineAt`, `secondsRemaining`,
    /// `resolution`, and on a resolve `resolved`, `approved`, `editedArgsApplied`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One page of [`Approvals::list`](crate::Approvals::list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPage {
    /// The approvals, newest first.
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// How many match the filter in all pages.
    #[serde(default)]
    pub total: u64,
    /// How many of the matching approvals (all pages) are pending.
    #[serde(default)]
    pub pending_count: u64,
    /// The page size the server applied.
    #[serde(default)]
    pub limit: u32,
    /// The rows skipped.
    #[serde(default)]
    pub offset: u32,
}

/// Filters of [`Approvals::list`](crate::Approvals::list). Operators see every approval of the
/// scope; end users those their own turns asked for.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    /// Only approvals in this state.
    pub status: Option<ApprovalStatus>,
    /// Only approvals of this thread.
    pub thread_id: Option<String>,
    /// Only approvals of this agent.
    pub agent_id: Option<String>,
    /// Page size (server default 50, max 200).
    pub limit: Option<u32>,
    /// Rows to skip.
    pub offset: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn approvals_decode_from_the_servers_view() {
        // The shape of `crates/server/src/platos/approvals.rs` `view` plus the resolve fields.
        let body = json!({
            "id": "apr_1", "approvalId": "apr_1",
            "scope": {"organizationId": "o", "projectId": "p", "environmentId": "e"},
            "organizationId": "o", "projectId": "p", "environmentId": "e",
            "agentId": "refunds", "threadId": "thr_1", "turnId": "trn_1", "runId": "trn_1",
            "source": "tool_call", "question": "call tool `refund`", "action": "call tool `refund`",
            "context": {"id": "A1"}, "details": {"id": "A1"}, "toolName": "refund", "callId": "call_1",
            "args": {"id": "A1"}, "editedArgs": {"id": "A2"}, "requestedBy": "alice", "status": "approved",
            "timeoutSeconds": 300, "createdAt": "2026-01-01T00:00:00.000Z",
            "deadlineAt": "2026-01-01T00:05:00.000Z", "timeoutAt": "2026-01-01T00:05:00.000Z",
            "secondsRemaining": 0, "expired": false, "resolvedAt": "2026-01-01T00:01:00.000Z",
            "respondedBy": "alice", "comment": "fine",
            "resolution": {"response": "approve", "reason": "fine", "resolvedByUserId": "alice"},
            "resolved": true, "approved": true, "editedArgsApplied": true,
        });
        let approval: Approval = serde_json::from_value(body).unwrap();
        assert_eq!(approval.status, ApprovalStatus::Approved);
        assert_eq!((approval.action.as_str(), approval.tool_name.as_str()), ("call tool `refund`", "refund"));
        assert_eq!(approval.timeout_at.as_deref(), Some("2026-01-01T00:05:00.000Z"));
        assert_eq!(approval.edited_args, Some(json!({"id": "A2"})));
        assert_eq!(approval.extra["editedArgsApplied"], json!(true));

        let null_fields = json!({"id": "apr_2", "status": "pending", "createdAt": "2026-01-01T00:00:00.000Z",
            "resolvedAt": null, "respondedBy": null, "comment": null, "editedArgs": null});
        let pending: Approval = serde_json::from_value(null_fields).unwrap();
        assert_eq!((pending.status, pending.edited_args, pending.resolved_at), (ApprovalStatus::Pending, None, None));
    }
}
