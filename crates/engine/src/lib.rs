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
//! - [`prompt`] assembles prompts; [`tools`] holds the callable tools (built-in, HTTP, MCP via
//!   [`mcp`]); [`artifacts`] the artifact tools; [`data_tools`] the dataset query and chart
//!   tools; [`safety`] applies an agent's safety policy.
//! - [`approvals`]: resolving, timing out and cancelling the approvals a parked turn waits on.
//!
//! Architecture invariant: the engine knows nothing about HTTP or wire formats; transports only
//! translate [`TurnEvent`](agentry_core::TurnEvent)s.
//! Architecture invariant: an event reaches the bus only after it is in the store.

#![warn(missing_docs)]

pub mod approvals;
pub mod artifacts;
pub mod bus;
pub mod data_tools;
pub mod follow;
pub mod log;
pub mod mcp;
pub mod prompt;
pub mod runner;
pub mod safety;
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
    /// Largest tool-call arguments accepted from the model, in bytes.
    pub max_tool_argument_bytes: usize,
    /// Largest tool result passed back to the model, in bytes (larger ones are truncated).
    pub max_tool_result_bytes: usize,
    /// Secret values HTTP tools may reference as `{{secrets.NAME}}`.
    pub secrets: BTreeMap<String, String>,
    /// MCP servers agents may take tools from, by name.
    pub mcp_servers: BTreeMap<String, agentry_mcp::McpServerConfig>,
    /// Where uploaded datasets live (`None`: the dataset tools answer that datasets are off).
    pub datasets_dir: Option<std::path::PathBuf>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_message_bytes: 32 * 1024,
            history_messages: 50,
            tool_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(30),
            event_retention: Duration::from_secs(7 * 24 * 3600),
            max_tool_argument_bytes: 64 * 1024,
            max_tool_result_bytes: 64 * 1024,
            secrets: BTreeMap::new(),
            mcp_servers: BTreeMap::new(),
            datasets_dir: None,
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
    /// The datasets (ids) the caller may use through tools; `None`: all of the scope's.
    pub allowed_datasets: Option<Vec<String>>,
    /// The datasets (ids) the message is about; described to agents with the dataset tools.
    pub datasets: Vec<String>,
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
    /// What tools need: HTTP client, secrets, limits.
    tool_env: tools::ToolEnv,
    /// Connections to MCP servers.
    mcp: mcp::Mcp,
    /// Uploaded datasets, when enabled.
    datasets: Option<agentry_datasets::Datasets>,
}

impl Engine {
    /// Starts the engine: ends turns abandoned by a dead process, resumes queued ones, and runs
    /// housekeeping (lease sweeps, log retention) until the process ends.
    pub async fn start(store: Store, providers: ProviderRegistry, config: EngineConfig) -> Result<Self, StoreError> {
        let bus = Arc::new(bus::Bus::default());
        let log_writer = log::LogWriter::spawn(store.clone(), bus.clone());
        let tool_env = tools::ToolEnv {
            http: reqwest::Client::new(),
            secrets: config.secrets.clone(),
            timeout: config.tool_timeout,
            max_result_bytes: config.max_tool_result_bytes,
        };
        let mcp = mcp::Mcp::new(config.mcp_servers.clone());
        let datasets = config.datasets_dir.clone().map(agentry_datasets::Datasets::new);
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                providers,
                bus,
                log_writer,
                config,
                runners: Mutex::new(HashMap::new()),
                running: Mutex::new(HashMap::new()),
                tool_env,
                mcp,
                datasets,
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
                if let Err(err) = engine.expire_overdue_approvals().await {
                    tracing::warn!(%err, "expiring overdue approvals failed");
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

    /// The dataset files, when datasets are enabled.
    pub fn datasets(&self) -> Option<&agentry_datasets::Datasets> {
        self.inner.datasets.as_ref()
    }

    /// The store the engine works on.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Checks that an agent can run here: its model can be served (provider configured, model
    /// known) and its tools' secrets and MCP servers are configured. A bad agent is refused when
    /// it is applied rather than failing mid-turn.
    /// The error names the offending field (`model` or `tools`).
    pub fn check_agent(&self, agent: &agentry_core::AgentSpec) -> Result<(), (&'static str, String)> {
        self.inner.providers.resolve(agent).map_err(|e| ("model", e.to_string()))?;
        tools::check_declared(agent, &self.inner.config.secrets, |name| {
            self.inner.config.mcp_servers.contains_key(name)
        })
        .map_err(|e| ("tools", e))
    }

    /// The tools an agent has in this scope now: its declaration, minus what operators switched
    /// off, with the tools its MCP servers list.
    pub async fn toolbox(&self, scope: &Scope, agent: &agentry_core::AgentSpec) -> Result<tools::ToolBox, StoreError> {
        let disabled: std::collections::HashSet<_> =
            self.inner.store.disabled_tools(scope).await?.into_iter().collect();
        let mut toolbox = tools::ToolBox::for_agent(agent, &disabled);
        toolbox.extend(self.inner.mcp.agent_tools(agent, &disabled).await);
        Ok(toolbox)
    }

    /// Runs a tool outside a turn (an operator's test call) and records it in the ledger.
    pub async fn test_tool(
        &self,
        scope: &Scope,
        tool: &tools::AgentTool,
        params: &serde_json::Value,
    ) -> (Result<serde_json::Value, tools::ToolFailure>, Duration) {
        let started = std::time::Instant::now();
        let result = tools::call(&self.inner.tool_env, &self.inner.mcp, tool, params).await;
        let elapsed = started.elapsed();
        self.record_tool_call(scope, tool, None, elapsed, &result).await;
        (result, elapsed)
    }

    /// Every tool the scope's agents can use: built-ins, their HTTP tools, the configured MCP
    /// servers' tools.
    pub async fn tool_catalog(&self, scope: &Scope) -> Result<Vec<tools::AgentTool>, StoreError> {
        let default_timeout = agentry_core::approval::DEFAULT_APPROVAL_TIMEOUT_SECS;
        let mut catalog: Vec<tools::AgentTool> =
            tools::ALL_BUILTINS.iter().map(|b| tools::builtin_tool(*b, default_timeout)).collect();
        for agent in self.inner.store.list_agents(scope).await? {
            catalog.extend(tools::http_tools(&agent.spec));
        }
        catalog.extend(self.inner.mcp.all_tools().await);
        Ok(catalog)
    }

    pub(crate) async fn record_tool_call<T>(
        &self,
        scope: &Scope,
        tool: &tools::AgentTool,
        turn_id: Option<&str>,
        elapsed: Duration,
        result: &Result<T, tools::ToolFailure>,
    ) {
        let record = agentry_store::ToolCallRecord {
            entity_id: &tool.entity_id,
            tool_name: &tool.spec.name,
            turn_id,
            ok: result.is_ok(),
            latency_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
            error: result.as_ref().err().map(|f| f.message.as_str()),
        };
        if let Err(err) = self.inner.store.record_tool_call(scope, &record).await {
            tracing::warn!(%err, tool = %tool.spec.name, "cannot record a tool call");
        }
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
            input: TurnInput {
                text,
                dynamic_blocks: message.dynamic_blocks,
                user_meta: principal.user_meta.clone(),
                allowed_datasets: message.allowed_datasets,
                datasets: message.datasets,
            },
            idempotency_key: message.idempotency_key,
            created_at: Timestamp::now(),
            started_at: None,
            finished_at: reject.then(Timestamp::now),
            checkpoint: None,
        };
        store.insert_turn(&turn).await?;
        if reject {
            let mut log = self.open_log(&turn, 0);
            log.emit(TurnEvent::error("turn_in_progress", "a turn is already running on this thread"));
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

    /// The approval events of every thread of a scope from now on (for operators' sockets).
    pub fn watch_approvals(&self, scope: &Scope) -> tokio::sync::broadcast::Receiver<Arc<agentry_core::LoggedEvent>> {
        self.inner.bus.subscribe_approvals(scope)
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
            } else if matches!(turn.status, TurnStatus::Queued | TurnStatus::Waiting)
                && self.inner.store.finish_turn(&turn.id, TurnStatus::Cancelled, None).await?
            {
                // A turn that waited (or was queued again after waiting) already has events.
                let last = self.last_logged_seq(&turn).await?;
                let mut log = self.open_log(&turn, last);
                if turn.checkpoint.is_some() {
                    self.cancel_approvals(&turn, &mut log).await?;
                    runner::finish_parked(self, &turn, &mut log).await;
                } else {
                    log.emit(TurnEvent::Done {
                        usage: TokenUsage::default(),
                        status: TurnStatus::Cancelled,
                        stopped: true,
                    });
                }
                log.close().await?;
                stopped = true;
            }
        }
        // Turns queued behind a cancelled waiting turn may run now.
        if stopped {
            self.ensure_runner(scope, thread_id, 0);
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
        self.inner.mcp.shutdown().await;
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
    pub(crate) fn ensure_runner(&self, scope: &Scope, thread_id: &str, owed: usize) {
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
                log.emit(TurnEvent::error("interrupted", cause));
                log.emit(TurnEvent::Done { usage: TokenUsage::default(), status: TurnStatus::Failed, stopped: false });
                log.close().await?;
                tracing::warn!(turn = %turn.id, "ended an abandoned turn");
            }
        }
        Ok(())
    }

    pub(crate) async fn last_logged_seq(&self, turn: &Turn) -> Result<i64, StoreError> {
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
