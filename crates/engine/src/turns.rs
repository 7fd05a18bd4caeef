//! The turn lifecycle as transports see it: submit a message, follow a turn, watch a thread or a
//! scope's approvals, cancel — each working whichever replica runs the turn.

use agentry_core::id::{new_id, prefix};
use agentry_core::{
    BusyPolicy, Principal, Scope, Thread, Timestamp, TokenUsage, Turn, TurnEvent, TurnInput, TurnStatus,
};
use agentry_store::{Claimed, RateRefusal, RateWindow, StoreError, SubmitPolicy, Submitted};
use tokio::sync::watch;

use crate::bus::Bell;
use crate::follow::{ScopeFeed, ThreadWatch, TurnFollower};
use crate::runner::{Outcome, RunCtx};
use crate::state::TurnState;
use crate::terminate::terminate;
use crate::{Engine, EngineError, NewMessage, StopReason};

/// How a turn ended, for callers that waited for it ([`Engine::run_to_completion`]).
#[derive(Debug, Clone)]
pub struct TurnResult {
    /// The turn.
    pub turn_id: String,
    /// Its thread.
    pub thread_id: String,
    /// The answer as it streamed (steps separated by a blank line).
    pub text: String,
    /// The stored answer, if one was stored.
    pub message_id: Option<String>,
    /// How it ended.
    pub status: TurnStatus,
    /// The `error` event's code and message, if any.
    pub error: Option<(String, String)>,
    /// What it cost (the ledger's sum).
    pub usage: TokenUsage,
    /// Every event of the turn, in order.
    pub events: Vec<agentry_core::LoggedEvent>,
}

impl Engine {
    /// Accepts a message for a thread and returns its turn. The turn runs as soon as its thread
    /// is free, on whichever replica claims it (policy `enqueue`); with policy `reject` a busy
    /// thread gets a turn that ends at once with `error{code:"turn_in_progress"}` — decided
    /// atomically in the store. A repeated idempotency key returns the turn the key started.
    pub async fn submit(
        &self,
        principal: &Principal,
        thread: &Thread,
        message: NewMessage,
    ) -> Result<Turn, EngineError> {
        self.submit_turn(principal, thread, message).await.map(|(turn, _)| turn)
    }

    /// Submits a message and follows its turn from its first event: the transports' "send and
    /// stream". Listening starts before the turn exists, so a new turn's events all arrive live
    /// (no read of its log); a repeated idempotency key follows the turn it started, from its log.
    pub async fn send(
        &self,
        principal: &Principal,
        thread: &Thread,
        message: NewMessage,
    ) -> Result<(Turn, TurnFollower), EngineError> {
        let live = self.inner.hub.subscribe(&thread.id);
        let (turn, fresh) = self.submit_turn(principal, thread, message).await?;
        let store = self.store().clone();
        let follower = if fresh {
            TurnFollower::live(store, thread.scope.clone(), turn.id.clone(), live)
        } else {
            TurnFollower::start(store, thread.scope.clone(), turn.id.clone(), live, 0).await?
        };
        Ok((turn, follower))
    }

    /// Submits a message and waits for its turn to end: "run a turn to completion", for callers
    /// that want the answer rather than the stream (a REST call, a background job).
    pub async fn run_to_completion(
        &self,
        principal: &Principal,
        thread: &Thread,
        message: NewMessage,
    ) -> Result<TurnResult, EngineError> {
        let (turn, mut follower) = self.send(principal, thread, message).await?;
        let mut result = TurnResult {
            turn_id: turn.id,
            thread_id: turn.thread_id,
            text: String::new(),
            message_id: None,
            status: TurnStatus::Failed,
            error: None,
            usage: TokenUsage::default(),
            events: Vec::new(),
        };
        while let Some(event) = follower.next().await? {
            match &event.event {
                TurnEvent::Token { text } => result.text.push_str(text),
                TurnEvent::MessageBoundary {} if !result.text.is_empty() => result.text.push_str("\n\n"),
                TurnEvent::MessagePersisted { message_id, .. } => result.message_id = Some(message_id.clone()),
                TurnEvent::Error { code, message, .. } => result.error = Some((code.clone(), message.clone())),
                TurnEvent::Done { usage, status, .. } => {
                    result.usage = *usage;
                    result.status = *status;
                }
                _ => {}
            }
            result.events.push(event);
        }
        Ok(result)
    }

    /// Counts a message against the rate limits that apply (the server's, overridden per agent),
    /// in the store, so they hold on every replica.
    async fn take_rate(
        &self,
        scope: &Scope,
        user_id: &str,
        agent: &agentry_core::AgentSpec,
    ) -> Result<(), EngineError> {
        let limits = self.config().rate_limits.overridden_by(&agent.rate_limits);
        if limits.is_unset() {
            return Ok(());
        }
        let user = format!("user:{}/{}/{}/{user_id}", scope.organization_id, scope.project_id, scope.environment_id);
        let org = format!("org:{}", scope.organization_id);
        const MINUTE: i64 = 60_000;
        let windows: Vec<RateWindow> = [
            (&user, "minute", MINUTE, limits.user_per_minute),
            (&user, "hour", 60 * MINUTE, limits.user_per_hour),
            (&user, "day", 24 * 60 * MINUTE, limits.user_per_day),
            (&org, "minute", MINUTE, limits.org_per_minute),
            (&org, "day", 24 * 60 * MINUTE, limits.org_per_day),
        ]
        .into_iter()
        .filter_map(|(key, unit, window_ms, limit)| {
            Some(RateWindow { key: format!("{key}:{unit}"), window_ms, limit: i64::from(limit?) })
        })
        .collect();
        let concurrent = limits.user_concurrent_turns.map(|limit| (scope, user_id, i64::from(limit)));
        match self.store().take_rate(&windows, concurrent).await? {
            Ok(()) => Ok(()),
            Err(RateRefusal::Window { window, retry_after_ms }) => {
                let (scope, unit) = match window.key.split(':').next() {
                    Some("org") => ("org", window.key.rsplit(':').next().unwrap_or("minute")),
                    _ => ("user", window.key.rsplit(':').next().unwrap_or("minute")),
                };
                Err(EngineError::RateLimited {
                    scope,
                    limit: format!("{} per {unit}", window.limit),
                    retry_after_secs: u64::try_from(retry_after_ms.max(0)).unwrap_or(0).div_ceil(1000).max(1),
                })
            }
            Err(RateRefusal::Concurrent { limit }) => Err(EngineError::RateLimited {
                scope: "user",
                limit: format!("{limit} turns at once"),
                retry_after_secs: 1,
            }),
        }
    }

    /// [`Engine::submit`], also saying whether the turn is new (not an idempotent repeat).
    async fn submit_turn(
        &self,
        principal: &Principal,
        thread: &Thread,
        message: NewMessage,
    ) -> Result<(Turn, bool), EngineError> {
        let store = self.store();
        let text = message.text;
        if text.trim().is_empty() {
            return Err(EngineError::EmptyMessage);
        }
        let limit = self.config().max_message_bytes;
        if text.len() > limit {
            return Err(EngineError::MessageTooLarge { size: text.len(), limit });
        }
        if !principal.may_use_agent(&thread.agent_id) {
            return Err(EngineError::AgentPinned);
        }
        let scope = &thread.scope;
        if let Some(key) = &message.idempotency_key
            && let Some(turn) = store.turn_by_idempotency_key(scope, &thread.id, key).await?
        {
            return Ok((turn, false));
        }
        let agent = store.get_agent(scope, &thread.agent_id).await?.ok_or(EngineError::AgentNotFound)?;
        if let Err(err) = self.take_rate(scope, principal.owner_id(), &agent.spec).await {
            if matches!(err, EngineError::RateLimited { .. }) {
                self.metrics().refused("rate_limit");
            }
            return Err(err);
        }
        let reject_if_busy = agent.spec.on_busy.unwrap_or_default() == BusyPolicy::Reject;
        let mut turn = Turn {
            id: new_id(prefix::TURN),
            thread_id: thread.id.clone(),
            scope: scope.clone(),
            user_id: principal.owner_id().to_owned(),
            agent_id: thread.agent_id.clone(),
            status: TurnStatus::Queued,
            wait_reason: None,
            error: None,
            input: TurnInput {
                text,
                dynamic_blocks: message.dynamic_blocks,
                user_meta: principal.user_meta.clone(),
                allowed_datasets: message.allowed_datasets,
                end_user: principal.kind == agentry_core::PrincipalKind::EndUser,
                datasets: message.datasets,
                agent_version: Some(agent.version_number),
                trace_parent: message.trace_parent,
            },
            idempotency_key: message.idempotency_key,
            created_at: Timestamp::now(),
            started_at: None,
            finished_at: None,
            checkpoint: None,
        };
        // With room here, a turn of an idle thread starts at once on this replica.
        let room = self.running_turns() < self.config().max_running_turns;
        let policy =
            SubmitPolicy { reject_if_busy, start_lease_ms: room.then(|| crate::dispatch::millis(self.config().lease)) };
        let submitted = match store.submit_turn(&turn, policy, self.replica_id()).await {
            Ok(submitted) => submitted,
            // The same key, sent twice at once: the other request stored it first.
            Err(err) if err.is_unique_violation() && turn.idempotency_key.is_some() => {
                let key = turn.idempotency_key.as_deref().unwrap_or_default();
                let first = store.turn_by_idempotency_key(scope, &thread.id, key).await?;
                return first.map(|turn| (turn, false)).ok_or(EngineError::Store(err));
            }
            Err(err) => return Err(err.into()),
        };
        match submitted {
            Submitted::Queued => {
                self.inner.dispatcher.wake();
                self.inner.bus.ring(Bell::Queued);
            }
            Submitted::Started(lease) => {
                let mut running = turn.clone();
                running.status = TurnStatus::Running;
                running.started_at = Some(Timestamp::now());
                let claimed = Claimed { turn: running, lease, cancel_requested: false };
                self.start_run(claimed, Some(agent), false);
            }
            Submitted::Rejected(lease) => {
                turn.status = TurnStatus::Failed;
                turn.error = Some("turn_in_progress".into());
                let mut ctx = RunCtx {
                    engine: self,
                    turn: &turn,
                    log: self.open_log(&turn, &lease, 0),
                    lease,
                    stop: watch::channel(None).1,
                };
                ctx.log.emit(TurnEvent::error("turn_in_progress", "a turn is already running on this thread"));
                let outcome = Outcome::Refused { cause: "turn_in_progress".into() };
                terminate(&mut ctx, None, &mut TurnState::default(), outcome).await;
            }
        }
        Ok((turn, true))
    }

    /// Follows a turn's events after `after_seq` (0 = from the start), ending with `done`.
    pub async fn follow(&self, scope: &Scope, turn: &Turn, after_seq: i64) -> Result<TurnFollower, StoreError> {
        let live = self.inner.hub.subscribe(&turn.thread_id);
        TurnFollower::start(self.store().clone(), scope.clone(), turn.id.clone(), live, after_seq).await
    }

    /// What a scope's operators hear from now on: approval events of every thread, budget alerts.
    pub fn watch_scope(&self, scope: &Scope) -> ScopeFeed {
        ScopeFeed::new(self.inner.hub.subscribe_scope(scope))
    }

    /// Every event of a thread's turns from now on (for listeners joined to a thread).
    pub async fn watch_thread(&self, scope: &Scope, thread_id: &str) -> Result<ThreadWatch, StoreError> {
        let live = self.inner.hub.subscribe(thread_id);
        ThreadWatch::start(self.store().clone(), scope.clone(), thread_id, live).await
    }

    /// Stops the thread's unfinished turns, wherever they run: running ones end `cancelled`
    /// within a second, queued and waiting ones never run again. Messages sent afterwards are
    /// not affected. Returns whether anything was stopped.
    pub async fn cancel_thread(&self, scope: &Scope, thread_id: &str) -> Result<bool, StoreError> {
        let marked = self.store().request_cancel(scope, thread_id).await?;
        if marked.is_empty() {
            return Ok(false);
        }
        for turn in marked.iter().filter(|t| t.running) {
            if turn.owner.as_deref() == Some(self.replica_id()) {
                self.inner.dispatcher.stop(&turn.turn_id, StopReason::Requested);
            } else {
                self.inner.bus.ring(Bell::Cancel { turn: turn.turn_id.clone() });
            }
        }
        for claimed in self.store().cancel_idle_turns(Some((scope, thread_id)), self.replica_id()).await? {
            self.end_cancelled(claimed).await;
        }
        // Turns queued behind a cancelled waiting turn may run now.
        self.inner.dispatcher.wake();
        self.inner.bus.ring(Bell::Queued);
        Ok(true)
    }

    /// Ends a turn cancelled while nobody ran it: its pending approvals are cancelled, what the
    /// user saw of it (a waiting turn's saved answer) is stored, and `usage` + `done` close its log.
    pub(crate) async fn end_cancelled(&self, claimed: Claimed) {
        let Claimed { turn, lease, .. } = claimed;
        let (last, mut state) = match &turn.checkpoint {
            None => (0, TurnState::default()),
            Some(saved) => {
                let last = match self.store().last_event_seq(&turn.scope, &turn.id).await {
                    Ok(last) => last,
                    Err(err) => {
                        tracing::error!(%err, turn = %turn.id, "cannot read a cancelled turn's log");
                        return;
                    }
                };
                (last, TurnState::load(saved).unwrap_or_default())
            }
        };
        let mut ctx = RunCtx {
            engine: self,
            turn: &turn,
            log: self.open_log(&turn, &lease, last),
            lease,
            stop: watch::channel(None).1,
        };
        if turn.checkpoint.is_some()
            && let Err(err) = self.cancel_approvals(&turn, &mut ctx.log).await
        {
            tracing::error!(%err, turn = %turn.id, "cannot cancel the turn's approvals");
        }
        let agent = self.store().get_agent(&turn.scope, &turn.agent_id).await.ok().flatten();
        terminate(&mut ctx, agent.as_ref().map(|a| &a.spec), &mut state, Outcome::Stopped(StopReason::Requested)).await;
    }
}
