//! Agentry's turn engine.
//!
//! # Layout
//! - [`Engine`]: accepts messages ([`Engine::submit`]), runs one turn at a time per thread (the
//!   per-agent [`BusyPolicy`](agentry_core::BusyPolicy) decides about messages that arrive
//!   meanwhile), cancels ([`Engine::cancel_thread`]) and lets transports follow a turn
//!   ([`Engine::follow`]).
//! - [`runner`]: one turn — prompt, the model/tool loop, persistence of both messages, the event
//!   sequence ending in `done`.
//! - [`log::TurnLog`] queues a turn's events to the one [`log::LogWriter`] (persist first, then
//!   publish); [`bus::Bus`] fans them out;
//!   [`follow::TurnFollower`] replays after a cursor and continues live.
//! - [`prompt`] assembles prompts; [`tools`] holds the callable tools.
//!
//! Architecture invariant: the engine knows nothing about HTTP or wire formats; transports only
//! translate [`TurnEvent`](agentry_core::TurnEvent)s.
//! Architecture invariant: an event reaches the bus only after it is in the store.

#![warn(missing_docs)]

pub mod bus;
pub mod follow;
pub mod log;
pub mod prompt;
pub mod runner;
pub mod tools;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentry_core::id::{new_id, prefix};
use agentry_core::{
    BusyPolicy, Principal, Scope, Thread, Timestamp, TokenUsage, Turn, TurnEvent, TurnInput, TurnStatus,
};
use agentry_llm::ProviderRegistry;
use agentry_store::{Store, StoreError};
use tokio::sync::watch;

pub use follow::TurnFollower;

/// Limits and timings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Largest user message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Messages of history sent to the model.
    pub history_messages: i64,
    /// How long a tool may run before its call fails.
    pub tool_timeout: Duration,
    /// Lease of a running turn; renewed at a third of it.
    pub lease: Duration,
    /// How long the event logs of finished turns are kept.
    pub event_retention: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_message_bytes: 32 * 1024,
            history_messages: 50,
            tool_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(30),
            event_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Why a message was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The thread does not exist for this caller (or belongs to someone else).
    #[error("thread not found")]
    ThreadNotFound,
    /// The thread's agent no longer exists.
    #[error("agent not found")]
    AgentNotFound,
    /// A token pinned to another agent.
    #[error("this session token is pinned to another agent")]
    AgentPinned,
    /// Nothing to say.
    #[error("message must not be empty")]
    EmptyMessage,
    /// Over the configured limit.
    #[error("message is {size} bytes; the limit is {limit}")]
    MessageTooLarge {
        /// Size of the message.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl EngineError {
    /// The `error` event code transports send for this failure.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::ThreadNotFound => "thread_not_found",
            EngineError::AgentNotFound => "agent_not_found",
            EngineError::AgentPinned => "AGENT_SCOPE_MISMATCH",
            EngineError::EmptyMessage => "empty_message",
            EngineError::MessageTooLarge { .. } => "message_too_large",
            EngineError::Store(_) => "service_unavailable",
        }
    }
}

/// A message to start a turn with.
#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    /// The text.
    pub text: String,
    /// Content for the agent's dynamic blocks.
    pub dynamic_blocks: BTreeMap<String, String>,
    /// Client dedupe key: a repeated key returns the turn it started.
    pub idempotency_key: Option<String>,
}

/// Why a running turn is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A user or operator asked.
    Requested,
    /// The server is shutting down.
    Shutdown,
}

/// The turn engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    providers: ProviderRegistry,
    bus: Arc<bus::Bus>,
    log_writer: log::LogWriter,
    config: EngineConfig,
    /// Threads with a runner, and how many submitted turns it still owes.
    runners: Mutex<HashMap<String, usize>>,
    /// Stop switches of the turns running in this process.
    running: Mutex<HashMap<String, watch::Sender<Option<StopReason>>>>,
}

impl Engine {
    /// Starts the engine: ends turns abandoned by a dead process, resumes queued ones, and runs
    /// housekeeping (lease sweeps, log retention) until the process ends.
    pub async fn start(store: Store, providers: ProviderRegistry, config: EngineConfig) -> Result<Self, StoreError> {
        let bus = Arc::new(bus::Bus::default());
        let log_writer = log::LogWriter::spawn(store.clone(), bus.clone());
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                providers,
                bus,
                log_writer,
                config,
                runners: Mutex::new(HashMap::new()),
                running: Mutex::new(HashMap::new()),
            }),
        };
        engine.sweep_abandoned().await?;
        for (scope, thread_id) in engine.inner.store.threads_with_queued_turns().await? {
            engine.ensure_runner(&scope, &thread_id, 0);
        }
        let weak = Arc::downgrade(&engine.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            let mut ticks: u64 = 0;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let engine = Engine { inner };
                if let Err(err) = engine.sweep_abandoned().await {
                    tracing::warn!(%err, "sweeping abandoned turns failed");
                }
                engine.inner.bus.prune();
                ticks += 1;
                if ticks % 360 == 1 {
                    engine.purge_logs().await;
                }
            }
        });
        Ok(engine)
    }

    /// The store the engine works on.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Checks that an agent's model can be served (provider configured, model known), so a bad
    /// agent is refused when it is applied rather than failing mid-turn.
    pub fn check_agent(&self, agent: &agentry_core::AgentSpec) -> Result<(), agentry_llm::ProviderError> {
        self.inner.providers.resolve(agent).map(|_| ())
    }

    /// The engine's limits.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Accepts a message for a thread and returns its turn. The turn runs now, or after the
    /// thread's current turn (policy `enqueue`); with policy `reject` a busy thread gets a turn
    /// that ends at once with `error{code:"turn_in_progress"}`. A repeated idempotency key
    /// returns the turn the key started.
    pub async fn submit(
        &self,
        principal: &Principal,
        thread: &Thread,
        message: NewMessage,
    ) -> Result<Turn, EngineError> {
        let store = &self.inner.store;
        let text = message.text;
        if text.trim().is_empty() {
            return Err(EngineError::EmptyMessage);
        }
        if text.len() > self.inner.config.max_message_bytes {
            return Err(EngineError::MessageTooLarge { size: text.len(), limit: self.inner.config.max_message_bytes });
        }
        if !principal.may_use_agent(&thread.agent_id) {
            return Err(EngineError::AgentPinned);
        }
        let scope = &thread.scope;
        if let Some(key) = &message.idempotency_key
            && let Some(turn) = store.turn_by_idempotency_key(scope, &thread.id, key).await?
        {
            return Ok(turn);
        }
        let agent = store.get_agent(scope, &thread.agent_id).await?.ok_or(EngineError::AgentNotFound)?;
        let busy = !store.unfinished_turns(scope, &thread.id).await?.is_empty();
        let reject = busy && agent.spec.on_busy.unwrap_or_default() == BusyPolicy::Reject;
        let turn = Turn {
            id: new_id(prefix::TURN),
            thread_id: thread.id.clone(),
            scope: scope.clone(),
            user_id: principal.owner_id().to_owned(),
            agent_id: thread.agent_id.clone(),
            status: if reject { TurnStatus::Failed } else { TurnStatus::Queued },
            wait_reason: None,
            error: reject.then(|| "turn_in_progress".to_owned()),
            input: TurnInput { text, dynamic_blocks: message.dynamic_blocks, user_meta: principal.user_meta.clone() },
            idempotency_key: message.idempotency_key,
            created_at: Timestamp::now(),
            started_at: None,
            finished_at: reject.then(Timestamp::now),
        };
        store.insert_turn(&turn).await?;
        if reject {
            let mut log = self.open_log(&turn, 0);
            log.emit(TurnEvent::Error {
                code: "turn_in_progress".into(),
                message: "a turn is already running on this thread".into(),
            });
            log.emit(TurnEvent::Done { usage: TokenUsage::default(), status: TurnStatus::Failed, stopped: false });
            log.close().await?;
        } else {
            self.ensure_runner(scope, &thread.id, 1);
        }
        Ok(turn)
    }

    /// Follows a turn's events after `after_seq` (0 = from the start), ending with `done`.
    pub async fn follow(&self, scope: &Scope, turn: &Turn, after_seq: i64) -> Result<TurnFollower, StoreError> {
        let live = self.inner.bus.subscribe(&turn.thread_id);
        TurnFollower::start(self.inner.store.clone(), scope.clone(), turn.id.clone(), live, after_seq).await
    }

    /// Every event published for a thread from now on (for listeners joined to a thread).
    pub fn watch_thread(&self, thread_id: &str) -> tokio::sync::broadcast::Receiver<Arc<agentry_core::LoggedEvent>> {
        self.inner.bus.subscribe(thread_id)
    }

    /// Stops the thread's unfinished turns: running ones end `cancelled` within a second, queued
    /// ones never start. Returns whether anything was stopped.
    pub async fn cancel_thread(&self, scope: &Scope, thread_id: &str) -> Result<bool, StoreError> {
        let mut stopped = false;
        for turn in self.inner.store.unfinished_turns(scope, thread_id).await? {
            if self.stop_running(&turn.id, StopReason::Requested) {
                stopped = true;
            } else if turn.status == TurnStatus::Queued
                && self.inner.store.finish_turn(&turn.id, TurnStatus::Cancelled, None).await?
            {
                let mut log = self.open_log(&turn, 0);
                log.emit(TurnEvent::Done {
                    usage: TokenUsage::default(),
                    status: TurnStatus::Cancelled,
                    stopped: true,
                });
                log.close().await?;
                stopped = true;
            }
        }
        Ok(stopped)
    }

    /// Stops every turn running in this process (graceful shutdown) and waits up to `grace` for
    /// them to record their end.
    pub async fn shutdown(&self, grace: Duration) {
        let ids: Vec<String> = self.inner.running.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        for id in &ids {
            self.stop_running(id, StopReason::Shutdown);
        }
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline
            && !self.inner.running.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn stop_running(&self, turn_id: &str, reason: StopReason) -> bool {
        let running = self.inner.running.lock().unwrap_or_else(|p| p.into_inner());
        match running.get(turn_id) {
            Some(switch) => {
                switch.send_replace(Some(reason));
                true
            }
            None => false,
        }
    }

    pub(crate) fn open_log(&self, turn: &Turn, last_seq: i64) -> log::TurnLog {
        log::TurnLog::open(self.inner.log_writer.clone(), turn.scope.clone(), &turn.id, &turn.thread_id, last_seq)
    }

    /// Makes sure a task runs the thread's queued turns; `owed` more turns were just queued.
    fn ensure_runner(&self, scope: &Scope, thread_id: &str, owed: usize) {
        let mut runners = self.inner.runners.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = runners.get_mut(thread_id) {
            *count += owed;
            return;
        }
        runners.insert(thread_id.to_owned(), owed);
        let engine = self.clone();
        let scope = scope.clone();
        let thread_id = thread_id.to_owned();
        tokio::spawn(async move { engine.run_thread(scope, thread_id).await });
    }

    /// Runs a thread's queued turns one after another until none is left. `owed` counts
    /// submissions since the runner last found the queue empty, so a turn queued while it was
    /// looking is never stranded.
    async fn run_thread(&self, scope: Scope, thread_id: String) {
        loop {
            match self.inner.store.next_queued_turn(&scope, &thread_id).await {
                Ok(Some(turn)) => {
                    runner::run(self, turn).await;
                    continue;
                }
                Ok(None) => {}
                Err(err) => tracing::error!(%err, thread = %thread_id, "cannot read the turn queue"),
            }
            let mut runners = self.inner.runners.lock().unwrap_or_else(|p| p.into_inner());
            match runners.get_mut(&thread_id) {
                Some(owed) if *owed > 0 => *owed = 0,
                _ => {
                    runners.remove(&thread_id);
                    break;
                }
            }
        }
    }

    /// Ends running turns whose lease expired (their process died), with a recorded cause and a
    /// terminal `error` + `done` in their log so listeners finish too.
    async fn sweep_abandoned(&self) -> Result<(), StoreError> {
        for turn in self.inner.store.abandoned_turns().await? {
            let cause = "the server running this turn stopped before it finished";
            if self.inner.store.finish_turn(&turn.id, TurnStatus::Failed, Some(cause)).await? {
                let last = self.last_logged_seq(&turn).await?;
                let mut log = self.open_log(&turn, last);
                log.emit(TurnEvent::Error { code: "interrupted".into(), message: cause.into() });
                log.emit(TurnEvent::Done { usage: TokenUsage::default(), status: TurnStatus::Failed, stopped: false });
                log.close().await?;
                tracing::warn!(turn = %turn.id, "ended an abandoned turn");
            }
        }
        Ok(())
    }

    async fn last_logged_seq(&self, turn: &Turn) -> Result<i64, StoreError> {
        let mut last = 0;
        loop {
            let page = self.inner.store.events_after(&turn.scope, &turn.id, last, 1000).await?;
            match page.last() {
                Some(event) => last = event.seq,
                None => return Ok(last),
            }
        }
    }

    async fn purge_logs(&self) {
        let retention = i64::try_from(self.inner.config.event_retention.as_millis()).unwrap_or(i64::MAX);
        let before = Timestamp(Timestamp::now().0.saturating_sub(retention));
        match self.inner.store.purge_event_logs(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "purged event logs past retention"),
            Err(err) => tracing::warn!(%err, "purging event logs failed"),
        }
    }
}

impl Engine {
    /// Creates a thread for the caller. `agent_id` of `None` or `"default"` means the caller's
    /// default agent: the pinned agent of a pinned token, else the scope's default agent.
    pub async fn create_thread(
        &self,
        principal: &Principal,
        agent_id: Option<&str>,
        title: Option<String>,
    ) -> Result<Thread, EngineError> {
        let store = &self.inner.store;
        let requested = agent_id.map(str::trim).filter(|id| !id.is_empty() && *id != "default");
        let agent = match (requested, principal.pinned_agent_id.as_deref()) {
            (Some(id), _) if !principal.may_use_agent(id) => return Err(EngineError::AgentPinned),
            (Some(id), _) | (None, Some(id)) => store.get_agent(&principal.scope, id).await?,
            (None, None) => store.default_agent(&principal.scope).await?,
        }
        .ok_or(EngineError::AgentNotFound)?;
        let now = Timestamp::now();
        let thread = Thread {
            id: new_id(prefix::THREAD),
            agent_id: agent.spec.id,
            user_id: principal.owner_id().to_owned(),
            scope: principal.scope.clone(),
            title: title.filter(|t| !t.trim().is_empty()),
            status: agentry_core::ThreadStatus::Active,
            archived_at: None,
            created_at: now,
            updated_at: now,
        };
        store.insert_thread(&thread).await?;
        Ok(thread)
    }

    /// A thread the caller may see (owner filter applied), or `ThreadNotFound`.
    pub async fn visible_thread(&self, principal: &Principal, thread_id: &str) -> Result<Thread, EngineError> {
        self.inner
            .store
            .get_thread(&principal.scope, principal.thread_owner_filter(), thread_id)
            .await?
            .ok_or(EngineError::ThreadNotFound)
    }
}
