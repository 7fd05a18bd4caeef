//! Settling the approvals a parked turn waits on: a human's decision, a timeout, a cancellation.
//!
//! Settling is one conditional update (`pending` → final), so of concurrent resolutions exactly
//! one wins. Then the turn is queued again once none of its approvals is pending, and whichever
//! replica picks it up resumes it from its saved state. A turn parks *then* re-checks its
//! approvals, and a resolver settles *then* tries to queue the turn, so however the two
//! interleave one of them queues it.

use std::sync::Arc;
use std::time::Duration;

use agentry_core::{Approval, ApprovalDecision, ApprovalStatus, Principal, Timestamp, Turn, TurnEvent};
use agentry_store::{Settlement, StoreError};

use crate::Engine;
use crate::log::TurnLog;

/// Who settles approvals that no human answered.
const SYSTEM: &str = "system";

/// Why an approval could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No such approval in the caller's scope.
    #[error("approval not found")]
    NotFound,
    /// Someone (or the timeout) settled it first.
    #[error("approval is already {}", .0.status.as_str())]
    AlreadySettled(Box<Approval>),
    /// The decision is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// An approval the caller may see and resolve: as with threads, an operator without a user
    /// sees the scope's, anyone acting as a user (an end user, an API key with a user id) that
    /// user's turns'. Anything else is missing — never "forbidden", which would say it exists.
    pub async fn visible_approval(&self, principal: &Principal, id: &str) -> Result<Approval, ApprovalError> {
        let approval = self.store().get_approval(&principal.scope, id).await?.ok_or(ApprovalError::NotFound)?;
        match principal.thread_owner_filter() {
            Some(user) if approval.requested_by != user => Err(ApprovalError::NotFound),
            _ => Ok(approval),
        }
    }

    /// Applies a human's decision. The waiting turn resumes (on this or any replica) once all of
    /// its step's approvals are settled.
    pub async fn resolve_approval(
        &self,
        principal: &Principal,
        id: &str,
        decision: ApprovalDecision,
    ) -> Result<Approval, ApprovalError> {
        let approval = self.visible_approval(principal, id).await?;
        if let Some(edited) = &decision.edited_args
            && !edited.is_object()
        {
            return Err(ApprovalError::Invalid("editedArgs must be a JSON object".into()));
        }
        if approval.status != ApprovalStatus::Pending {
            return Err(ApprovalError::AlreadySettled(Box::new(approval)));
        }
        let settlement = Settlement {
            status: if decision.approved { ApprovalStatus::Approved } else { ApprovalStatus::Rejected },
            responded_by: principal.owner_id(),
            comment: decision.comment.as_deref(),
            edited_args: decision.edited_args.as_ref().filter(|_| decision.approved),
        };
        let won = self.store().settle_approval(&principal.scope, id, &settlement).await?;
        let settled = self.store().get_approval(&principal.scope, id).await?.ok_or(ApprovalError::NotFound)?;
        if !won {
            return Err(ApprovalError::AlreadySettled(Box::new(settled)));
        }
        self.wake(&settled.turn_id).await?;
        Ok(settled)
    }

    /// Times out every pending approval past its deadline (any scope) and wakes their turns.
    pub async fn expire_overdue_approvals(&self) -> Result<(), StoreError> {
        for approval in self.store().overdue_approvals(Timestamp::now()).await? {
            let settlement =
                Settlement { status: ApprovalStatus::TimedOut, responded_by: SYSTEM, comment: None, edited_args: None };
            if self.store().settle_approval(&approval.scope, &approval.id, &settlement).await? {
                tracing::info!(approval = %approval.id, turn = %approval.turn_id, "approval timed out");
                self.wake(&approval.turn_id).await?;
            }
        }
        Ok(())
    }

    /// Called once a turn is parked: queues it at once if its approvals were settled while it
    /// parked, and arms a timer for the earliest deadline (the periodic sweep covers restarts).
    pub(crate) async fn approvals_parked(&self, turn: &Turn) {
        if let Err(err) = self.wake(&turn.id).await {
            tracing::error!(%err, turn = %turn.id, "cannot check the parked turn's approvals");
        }
        let deadline = match self.store().approvals_of_turn(&turn.scope, &turn.id).await {
            Ok(approvals) => {
                approvals.iter().filter(|a| a.status == ApprovalStatus::Pending).map(|a| a.deadline_at).min()
            }
            Err(err) => {
                tracing::warn!(%err, turn = %turn.id, "cannot read the parked turn's approvals");
                None
            }
        };
        let Some(deadline) = deadline else { return };
        let wait = Duration::from_millis(u64::try_from(deadline.0 - Timestamp::now().0).unwrap_or(0));
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            // A little past the deadline, so the row is overdue when the timer reads it.
            tokio::time::sleep(wait + Duration::from_millis(5)).await;
            if let Some(inner) = weak.upgrade()
                && let Err(err) = (Engine { inner }).expire_overdue_approvals().await
            {
                tracing::warn!(%err, "expiring overdue approvals failed");
            }
        });
    }

    /// Settles a cancelled turn's pending approvals as `cancelled`, telling its listeners.
    pub(crate) async fn cancel_approvals(&self, turn: &Turn, log: &mut TurnLog) -> Result<(), StoreError> {
        let settlement =
            Settlement { status: ApprovalStatus::Cancelled, responded_by: SYSTEM, comment: None, edited_args: None };
        for approval in self.store().approvals_of_turn(&turn.scope, &turn.id).await? {
            if approval.status == ApprovalStatus::Pending
                && self.store().settle_approval(&turn.scope, &approval.id, &settlement).await?
            {
                log.emit(TurnEvent::ApprovalResolved {
                    approval_id: approval.id,
                    status: ApprovalStatus::Cancelled.as_str().into(),
                    responded_by: Some(SYSTEM.into()),
                    comment: None,
                });
            }
        }
        Ok(())
    }

    /// Queues a waiting turn whose approvals are all settled; whichever replica claims it first
    /// resumes it.
    async fn wake(&self, turn_id: &str) -> Result<(), StoreError> {
        if self.store().requeue_waiting_turn(turn_id).await? {
            self.inner.dispatcher.wake();
            self.inner.bus.ring(crate::bus::Bell::Queued);
        }
        Ok(())
    }
}
