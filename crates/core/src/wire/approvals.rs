//! Human approvals and the safety ledger (`/monitoring/approvals`, `/approvals/{id}/resolve`,
//! `/monitoring/safety-events`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::approval::{Approval as StoredApproval, ApprovalStatus};
use crate::scope::Scope;
use crate::time::Timestamp;

/// A human approval a turn waits on, in the shape both client generations read: a tool call
/// marked `requires_approval`, or the agent's `request_approval` tool. The turn stays parked
/// until it is approved, rejected, times out or is cancelled; exactly one of those settles it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// `apr_…`
    pub id: String,
    /// The id again, as the 0.1.x clients name it.
    pub approval_id: String,
    /// Its tenancy.
    pub scope: Scope,
    /// Its organization.
    pub organization_id: String,
    /// Its project.
    pub project_id: String,
    /// Its environment.
    pub environment_id: String,
    /// The agent that asked.
    pub agent_id: String,
    /// The thread of the waiting turn.
    pub thread_id: String,
    /// The waiting turn.
    pub turn_id: String,
    /// The turn again, as the 0.1.x clients name it.
    pub run_id: String,
    /// `tool_call` (a tool marked `requires_approval`) or `request_approval` (the agent asked).
    pub source: String,
    /// What is to be approved, for the human (`call tool \`refund\``, or the agent's words).
    pub question: String,
    /// The same, as upstream names it.
    pub action: String,
    /// Details shown to the approver (the tool's arguments for a tool call).
    pub context: Value,
    /// The same, as upstream names it.
    pub details: Value,
    /// The tool whose call waits (`request_approval` for explicit requests).
    pub tool_name: String,
    /// The waiting tool call.
    pub call_id: String,
    /// The tool's arguments as the model gave them.
    pub args: Value,
    /// Arguments that replaced the model's on approval.
    pub edited_args: Option<Value>,
    /// The user whose turn asked (who may resolve it, besides operators).
    pub requested_by: String,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// How long it may wait, from its creation.
    pub timeout_seconds: u64,
    /// When it was asked.
    pub created_at: Timestamp,
    /// Past this it times out.
    pub deadline_at: Timestamp,
    /// The same, as the 1.x clients name it.
    pub timeout_at: Timestamp,
    /// Seconds left while pending (0 once settled).
    pub seconds_remaining: i64,
    /// Whether it timed out.
    pub expired: bool,
    /// When it was settled.
    pub resolved_at: Option<Timestamp>,
    /// Who settled it: a user id, `operator`, or `system` for timeouts and cancellations.
    pub responded_by: Option<String>,
    /// The approver's comment (or rejection reason).
    pub comment: Option<String>,
    /// The decision, once approved or rejected (the 1.x clients' shape).
    pub resolution: Option<Resolution>,
}

/// How an approval was decided, as the 1.x clients read it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    /// `approve` or `reject`.
    pub response: String,
    /// The approver's comment.
    pub reason: Option<String>,
    /// Who decided.
    pub resolved_by_user_id: Option<String>,
}

impl Approval {
    /// The view of a stored approval at `now` (for `secondsRemaining`).
    pub fn of(approval: &StoredApproval, now: Timestamp) -> Approval {
        let decided = matches!(approval.status, ApprovalStatus::Approved | ApprovalStatus::Rejected);
        let resolution = decided.then(|| Resolution {
            response: if approval.status == ApprovalStatus::Approved { "approve" } else { "reject" }.to_owned(),
            reason: approval.comment.clone(),
            resolved_by_user_id: approval.responded_by.clone(),
        });
        let pending = approval.status == ApprovalStatus::Pending;
        let source = if approval.tool_name == "request_approval" { "request_approval" } else { "tool_call" };
        Approval {
            id: approval.id.clone(),
            approval_id: approval.id.clone(),
            scope: approval.scope.clone(),
            organization_id: approval.scope.organization_id.clone(),
            project_id: approval.scope.project_id.clone(),
            environment_id: approval.scope.environment_id.clone(),
            agent_id: approval.agent_id.clone(),
            thread_id: approval.thread_id.clone(),
            turn_id: approval.turn_id.clone(),
            run_id: approval.turn_id.clone(),
            source: source.to_owned(),
            question: approval.action.clone(),
            action: approval.action.clone(),
            context: approval.details.clone(),
            details: approval.details.clone(),
            tool_name: approval.tool_name.clone(),
            call_id: approval.call_id.clone(),
            args: approval.args.clone(),
            edited_args: approval.edited_args.clone(),
            requested_by: approval.requested_by.clone(),
            status: approval.status,
            timeout_seconds: approval.timeout_secs,
            created_at: approval.created_at,
            deadline_at: approval.deadline_at,
            timeout_at: approval.deadline_at,
            seconds_remaining: if pending { (approval.deadline_at.0 - now.0).max(0) / 1000 } else { 0 },
            expired: approval.status == ApprovalStatus::TimedOut,
            resolved_at: approval.resolved_at,
            responded_by: approval.responded_by.clone(),
            comment: approval.comment.clone(),
            resolution,
        }
    }
}

/// The body of `POST /approvals/{approval_id}/resolve`, in either shape the wire knows: the
/// clients' `{response: "approve"|"reject", reason}` or upstream's `{approved, comment,
/// editedArgs}` (`approved` wins over `response`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolveApproval {
    /// `approve` or `reject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    /// The reason, with `response`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved: Option<bool>,
    /// The approver's comment, with `approved`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Arguments to run the tool with instead of the model's (an approval only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_args: Option<Value>,
}

/// `POST /approvals/{approval_id}/resolve`: the settled approval and what the call did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedApproval {
    /// The approval as it is now.
    #[serde(flatten)]
    pub approval: Approval,
    /// Always true: the call settled it.
    pub resolved: bool,
    /// Whether it was approved.
    pub approved: bool,
    /// Whether edited arguments replaced the model's.
    pub edited_args_applied: bool,
}

impl std::ops::Deref for ResolvedApproval {
    type Target = Approval;

    fn deref(&self) -> &Approval {
        &self.approval
    }
}

/// `GET /monitoring/approvals`: a page of approvals, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalPage {
    /// The approvals.
    pub approvals: Vec<Approval>,
    /// The same, as upstream names them.
    pub rows: Vec<Approval>,
    /// How many match the filter in all pages.
    pub total: i64,
    /// How many of the matching approvals (all pages) are pending.
    pub pending_count: i64,
    /// The page size applied.
    pub limit: i64,
    /// The rows skipped.
    pub offset: i64,
    /// When it was read.
    pub fetched_at: Timestamp,
}

/// A safety detector hit and what the policy did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SafetyEvent {
    /// The thread.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// The agent.
    pub agent_id: String,
    /// `input` or `output`.
    pub direction: String,
    /// `flag`, `redact` or `block`.
    pub action: String,
    /// What fired (`pii.email`, `prompt_injection`, …).
    pub detector: String,
    /// The same, as upstream names it.
    #[serde(rename = "type")]
    pub kind: String,
    /// `low`, `medium` or `high`.
    pub severity: String,
    /// What was found, masked.
    pub detail: String,
    /// When.
    pub created_at: Timestamp,
}

/// `GET /monitoring/safety-events`: the scope's safety detector hits, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SafetyEventList {
    /// The hits.
    pub events: Vec<SafetyEvent>,
    /// The same, as upstream names them.
    pub rows: Vec<SafetyEvent>,
}
