//! Turns: one user message and everything the agent does to answer it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::TurnStatus;
use crate::scope::{Scope, UserMeta};
use crate::time::Timestamp;

/// What the caller sent to start a turn, kept with the turn so a queued turn can run later.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnInput {
    /// The user's message.
    pub text: String,
    /// Content for the agent's declared dynamic blocks, by key.
    #[serde(default)]
    pub dynamic_blocks: BTreeMap<String, String>,
    /// The user's identity details from the session token (for `{{user.name}}`).
    #[serde(default)]
    pub user_meta: UserMeta,
    /// The datasets (ids) the caller may use through the agent's tools; `None`: every dataset of
    /// the scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_datasets: Option<Vec<String>>,
    /// The message came from an end user (a session token): unless `allowed_datasets` names
    /// them, the dataset tools read only the datasets granted to end users (the agent's
    /// `datasets` and those attached to the thread).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end_user: bool,
    /// The datasets (ids) the message is about (named by the caller or attached to the thread);
    /// agents with the dataset tools are told their slugs and columns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<String>,
    /// The agent's version number when the turn was accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<i64>,
    /// The caller's trace, when the request carried a `traceparent`: the turn's spans join it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<crate::trace::TraceParent>,
}

/// A turn as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// `trn_…`
    pub id: String,
    /// Its thread.
    pub thread_id: String,
    /// Scope of the thread.
    pub scope: Scope,
    /// The user who sent the message.
    pub user_id: String,
    /// The agent answering.
    pub agent_id: String,
    /// Lifecycle state.
    pub status: TurnStatus,
    /// Why a `waiting` turn waits.
    pub wait_reason: Option<String>,
    /// Recorded cause of a `failed` turn.
    pub error: Option<String>,
    /// The request.
    pub input: TurnInput,
    /// Client-supplied dedupe key (`message.idempotencyKey`).
    pub idempotency_key: Option<String>,
    /// When it was accepted.
    pub created_at: Timestamp,
    /// When it started running.
    pub started_at: Option<Timestamp>,
    /// When it reached a final state.
    pub finished_at: Option<Timestamp>,
    /// Where a turn that waited (on an approval) resumes: the engine's saved state, opaque here.
    pub checkpoint: Option<String>,
}

impl Turn {
    /// The trace the turn's spans belong to: the caller's, or one of its own.
    pub fn trace_id(&self) -> String {
        match &self.input.trace_parent {
            Some(parent) => parent.trace_id.clone(),
            None => crate::trace::trace_id_of_turn(&self.id),
        }
    }

    /// The span of the whole turn (`invoke_agent`), parent of its model and tool call spans.
    pub fn span_id(&self) -> String {
        crate::trace::span_id(&self.id)
    }
}
