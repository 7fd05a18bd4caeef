//! Human approvals: a durable waitpoint in a turn.
//!
//! A tool that requires approval (or the built-in `request_approval`) creates an [`Approval`]
//! in `pending`; the turn waits until a human resolves it, it times out, or the turn is
//! cancelled. Exactly one resolution wins; the stored row is the truth.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::scope::Scope;
use crate::time::Timestamp;

/// Approval timeout when the agent or tool does not say.
pub const DEFAULT_APPROVAL_TIMEOUT_SECS: u64 = 300;
/// Longest approval timeout accepted: seven days.
pub const MAX_APPROVAL_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for a human.
    Pending,
    /// Approved: the tool runs (with edited arguments, if given).
    Approved,
    /// Rejected: the model is told so.
    Rejected,
    /// Nobody answered in time.
    TimedOut,
    /// The turn was cancelled while it waited.
    Cancelled,
}

impl ApprovalStatus {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::TimedOut => "timed_out",
            ApprovalStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the stored form.
    pub fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "pending" => ApprovalStatus::Pending,
            "approved" => ApprovalStatus::Approved,
            "rejected" => ApprovalStatus::Rejected,
            "timed_out" => ApprovalStatus::TimedOut,
            "cancelled" => ApprovalStatus::Cancelled,
            _ => return None,
        })
    }
}

/// An approval request as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    /// `apr_…`
    pub id: String,
    /// Scope of the thread.
    pub scope: Scope,
    /// The turn that waits on it.
    pub turn_id: String,
    /// The turn's thread.
    pub thread_id: String,
    /// The agent that asked.
    pub agent_id: String,
    /// The user whose turn asked (who may resolve it, besides operators).
    pub requested_by: String,
    /// The tool whose call waits (`request_approval` for explicit requests).
    pub tool_name: String,
    /// The tool call id.
    pub call_id: String,
    /// What is to be approved, for the human.
    pub action: String,
    /// Details shown to the approver.
    pub details: Value,
    /// The tool's arguments as the model gave them.
    pub args: Value,
    /// Current state.
    pub status: ApprovalStatus,
    /// Seconds the turn waits before the approval times out.
    pub timeout_secs: u64,
    /// When it was requested.
    pub created_at: Timestamp,
    /// When it times out.
    pub deadline_at: Timestamp,
    /// When it was decided.
    pub resolved_at: Option<Timestamp>,
    /// Who decided (a user id, or `operator`; `system` for timeouts and cancellations).
    pub responded_by: Option<String>,
    /// The approver's comment or reason.
    pub comment: Option<String>,
    /// Arguments that replace the model's on approval.
    pub edited_args: Option<Value>,
}

/// A human's decision on an approval.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalDecision {
    /// Approve or reject.
    pub approved: bool,
    /// Why, for the model and the record.
    pub comment: Option<String>,
    /// Replacement arguments for the tool (approve only; must be a JSON object).
    pub edited_args: Option<Value>,
}

impl Approval {
    /// What the waiting tool call returns to the model once the approval is settled, and
    /// whether it counts as a tool error. `None` while pending or approved (the tool runs then).
    pub fn refusal(&self) -> Option<(Value, bool)> {
        let by = self.responded_by.clone().map_or(Value::Null, Value::String);
        let comment = self.comment.clone().map_or(Value::Null, Value::String);
        match self.status {
            ApprovalStatus::Pending | ApprovalStatus::Approved => None,
            ApprovalStatus::Rejected => Some((
                serde_json::json!({"approved": false, "status": "rejected", "comment": comment, "respondedBy": by}),
                true,
            )),
            ApprovalStatus::TimedOut => {
                Some((serde_json::json!({"approved": false, "status": "timed_out", "reason": "timeout"}), true))
            }
            ApprovalStatus::Cancelled => {
                Some((serde_json::json!({"approved": false, "status": "cancelled", "reason": "cancelled"}), true))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for status in [
            ApprovalStatus::Pending,
            ApprovalStatus::Approved,
            ApprovalStatus::Rejected,
            ApprovalStatus::TimedOut,
            ApprovalStatus::Cancelled,
        ] {
            assert_eq!(ApprovalStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(ApprovalStatus::parse("expired"), None);
    }
}
