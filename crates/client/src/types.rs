//! The resources of the Platos surface as the server returns them (the server's own wire types,
//! from `agentry_core::wire`), and the SDK's filters.

use agentry_core::ApprovalStatus;
pub use agentry_core::wire::approvals::{
    Approval, ApprovalPage, Resolution, ResolveApproval, ResolvedApproval, SafetyEvent, SafetyEventList,
};
pub use agentry_core::wire::{Agent, AgentVersion, Artifact, Message, MessageToolCall};
pub use agentry_core::{Thread, ThreadStatus};

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
