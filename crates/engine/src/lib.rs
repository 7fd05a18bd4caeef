//! Agentry's turn engine.
//!
//! # Layout
//! - [`Engine`]: accepts messages ([`Engine::submit`]), runs turns, cancels them on any replica
//!   ([`Engine::cancel_thread`]) and lets transports follow them ([`Engine::follow`],
//!   [`Engine::watch_thread`], [`Engine::watch_approvals`]) — `turns`.
//! - `dispatch`: which turns this replica runs — claims from the store, fenced leases renewed in
//!   one statement, takeover of dead replicas' turns, stop switches, graceful shutdown.
//! - `runner`: one run of a turn — prompt, the model/tool loop, checkpoints, parking on
//!   approvals; `step` is the one place a model is called (and its usage recorded in the
//!   ledger); `terminate` the one place a turn ends; `state` what a turn resumes from.
//! - [`log::TurnLog`] queues a turn's events to the replica's [`log::LogWriter`] (fenced batches:
//!   persist first, then publish in the `hub` and ring the [`bus::Bus`]);
//!   [`follow::TurnFollower`] replays after a cursor and continues live.
//! - [`prompt`] assembles prompts; [`tools`] holds the callable tools (built-in, HTTP, MCP via
//!   [`mcp`]); [`artifacts`] the artifact tools; [`data_tools`] the dataset query and chart
//!   tools; [`safety`] applies an agent's safety policy.
//! - [`approvals`]: resolving, timing out and cancelling the approvals a parked turn waits on.
//! - [`telemetry`]: spans of turns (stored with their events, exported over OTLP) and metrics.
//!
//! Architecture invariant: the engine knows nothing about HTTP or wire formats; transports only
//! translate [`TurnEvent`](agentry_core::TurnEvent)s.
//! Architecture invariant: an event reaches a listener only after it is in the store.
//! Architecture invariant: which replica runs a turn is decided in the store; every write of a
//! run is fenced by its lease.

#![warn(missing_docs)]

pub mod approvals;
pub mod artifacts;
pub mod budget;
pub mod bus;
pub mod data_tools;
mod dispatch;
pub mod follow;
mod hub;
pub mod jobs;
pub mod log;
pub mod mcp;
pub mod prompt;
mod runner;
pub mod safety;
mod state;
mod step;
pub mod telemetry;
mod terminate;
pub mod tools;
mod turns;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use agentry_core::id::{new_id, prefix};
use agentry_core::{Principal, Scope, Thread, Timestamp};
use agentry_llm::ProviderRegistry;
use agentry_store::{Lease, Store, StoreError};

pub use follow::{ScopeFeed, ThreadWatch, TurnFollower};
pub use hub::ScopeEvent;
pub use turns::TurnResult;

/// Limits and timings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This replica's name in the store (owner of its leases); unique per running process.
    pub replica_id: String,
    /// Largest user message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Messages of history sent to the model.
    pub history_messages: i64,
    /// How long a tool may run before its call fails.
    pub tool_timeout: Duration,
    /// Lease of a running turn; renewed every third of it. A replica that dies loses its turns
    /// to another one this long after its last renewal.
    pub lease: Duration,
    /// How often the dispatcher looks for work when nothing woke it (and sweeps expired leases).
    pub dispatch_poll: Duration,
    /// Turns this replica runs at once.
    pub max_running_turns: usize,
    /// Runs of background tasks this replica executes at once.
    pub jobs_concurrency: usize,
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
    /// Budget alert webhooks may reach loopback and private addresses.
    pub allow_private_webhooks: bool,
    /// Message rate limits (an agent's own `rate_limits` override each key).
    pub rate_limits: agentry_core::RateLimits,
    /// Spans, their retention and export.
    pub telemetry: telemetry::TelemetryConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            replica_id: new_id(prefix::REPLICA),
            max_message_bytes: 32 * 1024,
            history_messages: 50,
            tool_timeout: Duration::from_secs(30),
            lease: Duration::from_secs(30),
            dispatch_poll: Duration::from_secs(1),
            max_running_turns: 512,
            jobs_concurrency: 64,
            event_retention: Duration::from_secs(7 * 24 * 3600),
            max_tool_argument_bytes: 64 * 1024,
            max_tool_result_bytes: 64 * 1024,
            secrets: BTreeMap::new(),
            mcp_servers: BTreeMap::new(),
            datasets_dir: None,
            allow_private_webhooks: false,
            rate_limits: agentry_core::RateLimits::default(),
            telemetry: telemetry::TelemetryConfig::default(),
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
    /// A rate limit refused the message.
    #[error("rate limit reached: {limit} for this {scope}; retry in {retry_after_secs} s")]
    RateLimited {
        /// `user` or `org`.
        scope: &'static str,
        /// The limit, e.g. `20 per minute` or `4 turns at once`.
        limit: String,
        /// When a message will be accepted again.
        retry_after_secs: u64,
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
            EngineError::RateLimited { .. } => "rate_limit",
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
    /// The caller's trace (an inbound `traceparent`): the turn's spans join it.
    pub trace_parent: Option<agentry_core::trace::TraceParent>,
}

/// Why a running turn is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A user or operator asked.
    Requested,
    /// This replica is shutting down: the turn resumes elsewhere.
    Shutdown,
    /// This replica's lease on the turn expired: another replica has it now.
    LeaseLost,
}

/// The turn engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    providers: ProviderRegistry,
    hub: Arc<hub::Hub>,
    bus: Arc<dyn bus::Bus>,
    /// Routes the other replicas' bells here (kept alive as long as the engine).
    _bells: Arc<BellRouter>,
    log_writer: log::LogWriter,
    config: EngineConfig,
    dispatcher: dispatch::Dispatcher,
    /// The background-task worker's state.
    jobs: jobs::Jobs,
    /// What tools need: HTTP client, secrets, limits.
    tool_env: tools::ToolEnv,
    /// Connections to MCP servers.
    mcp: mcp::Mcp,
    /// Uploaded datasets, when enabled.
    datasets: Option<agentry_datasets::Datasets>,
    /// Budget caps per scope, as recently read.
    caps: budget::CapsCache,
    /// Metrics and span export.
    telemetry: Arc<telemetry::Telemetry>,
}

/// Hands the bells of other replicas to the engine once it exists.
#[derive(Default)]
struct BellRouter {
    engine: OnceLock<Weak<Inner>>,
}

impl BellRouter {
    fn engine(&self) -> Option<Engine> {
        self.engine.get().and_then(Weak::upgrade).map(|inner| Engine { inner })
    }
}

impl bus::BellSink for BellRouter {
    fn heard(&self, bell: bus::Bell) {
        if let Some(engine) = self.engine() {
            engine.on_bell(bell);
        }
    }

    fn resync(&self) {
        if let Some(engine) = self.engine() {
            engine.inner.hub.resync();
            engine.on_bell(bus::Bell::Released);
        }
    }
}

impl Engine {
    /// Starts the engine: the bus (Postgres `LISTEN`/`NOTIFY` when the store is Postgres, nothing
    /// to tell anyone on SQLite), the log writer, the dispatcher (which takes over turns of dead
    /// replicas and claims queued ones), lease renewal and housekeeping, until the engine is
    /// dropped.
    pub async fn start(store: Store, providers: ProviderRegistry, config: EngineConfig) -> Result<Self, StoreError> {
        let bells = Arc::new(BellRouter::default());
        let sink: Weak<dyn bus::BellSink> = Arc::downgrade(&(bells.clone() as Arc<dyn bus::BellSink>));
        let bus: Arc<dyn bus::Bus> = match bus::StoreBus::start(&store, &config.replica_id, sink).await? {
            Some(bus) => bus,
            None => Arc::new(bus::LocalBus),
        };
        let hub = Arc::new(hub::Hub::default());
        let http = reqwest::Client::new();
        let telemetry =
            Arc::new(telemetry::Telemetry::start(config.telemetry.clone(), &config.replica_id, http.clone()));
        let log_writer = log::LogWriter::spawn(store.clone(), hub.clone(), bus.clone(), telemetry.clone());
        let tool_env = tools::ToolEnv {
            http,
            secrets: config.secrets.clone(),
            timeout: config.tool_timeout,
            max_result_bytes: config.max_tool_result_bytes,
        };
        let mcp = mcp::Mcp::new(config.mcp_servers.clone());
        let datasets = config.datasets_dir.clone().map(agentry_datasets::Datasets::new);
        let inner = Arc::new(Inner {
            store,
            providers,
            hub,
            bus,
            _bells: bells.clone(),
            log_writer,
            config,
            dispatcher: dispatch::Dispatcher::new(),
            jobs: jobs::Jobs::new(),
            tool_env,
            mcp,
            datasets,
            caps: budget::CapsCache::default(),
            telemetry,
        });
        let _ = bells.engine.set(Arc::downgrade(&inner));
        let engine = Engine { inner };
        tracing::info!(replica = %engine.config().replica_id, backend = engine.store().backend(), "turn engine started");
        tokio::spawn(Engine::dispatch_loop(Arc::downgrade(&engine.inner)));
        tokio::spawn(Engine::renew_loop(Arc::downgrade(&engine.inner)));
        tokio::spawn(Engine::jobs_loop(Arc::downgrade(&engine.inner)));
        tokio::spawn(Engine::jobs_renew_loop(Arc::downgrade(&engine.inner)));
        tokio::spawn(Engine::housekeeping(Arc::downgrade(&engine.inner)));
        Ok(engine)
    }

    /// Expires approvals, releases stale budget reservations and wakes turns a budget allows
    /// again, prunes idle channels and purges old logs, until the engine is dropped.
    async fn housekeeping(weak: Weak<Inner>) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let mut ticks: u64 = 0;
        loop {
            tick.tick().await;
            let Some(inner) = weak.upgrade() else { break };
            let engine = Engine { inner };
            if let Err(err) = engine.expire_overdue_approvals().await {
                tracing::warn!(%err, "expiring overdue approvals failed");
            }
            engine.sweep_budgets().await;
            engine.inner.hub.prune();
            engine.inner.dispatcher.prune();
            ticks += 1;
            if ticks % 720 == 1 {
                engine.purge_logs().await;
            }
        }
    }

    /// This replica's id (the owner of its leases).
    pub fn replica_id(&self) -> &str {
        &self.inner.config.replica_id
    }

    /// Turns running on this replica now.
    pub fn running_turns(&self) -> usize {
        self.inner.dispatcher.running()
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
    /// known) and call the tools it declares, and its tools' secrets and MCP servers are configured. A bad agent is refused when
    /// it is applied rather than failing mid-turn.
    /// The error names the offending field (`model` or `tools`).
    pub fn check_agent(&self, agent: &agentry_core::AgentSpec) -> Result<(), (&'static str, String)> {
        let provider = self.inner.providers.resolve(agent).map_err(|e| ("model", e.to_string()))?;
        let declares_tools = !(agent.tools.is_empty() && agent.http_tools.is_empty() && agent.mcp_tools.is_empty());
        if declares_tools && !provider.calls_tools() {
            return Err((
                "tools",
                format!(
                    "model `{}` cannot call tools: remove the agent's tools, or give it a model that can \
                     (an OpenAI-compatible or Anthropic model)",
                    agent.model
                ),
            ));
        }
        tools::check_declared(agent, &self.inner.config.secrets, |name| {
            self.inner.config.mcp_servers.contains_key(name)
        })
        .map_err(|e| ("tools", e))
    }

    /// The tools an agent has in this scope now: its declaration, minus what operators switched
    /// off, with the tools its MCP servers list.
    pub async fn toolbox(&self, scope: &Scope, agent: &agentry_core::AgentSpec) -> Result<tools::ToolBox, StoreError> {
        if agent.tools.is_empty() && agent.http_tools.is_empty() && agent.mcp_tools.is_empty() {
            return Ok(tools::ToolBox::default());
        }
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

    pub(crate) fn open_log(&self, turn: &agentry_core::Turn, lease: &Lease, last_seq: i64) -> log::TurnLog {
        log::TurnLog::open(self.inner.log_writer.clone(), turn.scope.clone(), lease, &turn.thread_id, last_seq)
    }

    async fn purge_logs(&self) {
        let retention = i64::try_from(self.inner.config.event_retention.as_millis()).unwrap_or(i64::MAX);
        let before = Timestamp(Timestamp::now().0.saturating_sub(retention));
        match self.inner.store.purge_event_logs(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "purged event logs past retention"),
            Err(err) => tracing::warn!(%err, "purging event logs failed"),
        }
        let retention = i64::try_from(self.config().telemetry.span_retention.as_nanos()).unwrap_or(i64::MAX);
        match self.inner.store.purge_spans(Timestamp::now_nanos().saturating_sub(retention)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(spans = n, "purged spans past retention"),
            Err(err) => tracing::warn!(%err, "purging spans failed"),
        }
    }

    /// The runtime's metrics (the HTTP layer adds its own and serves them).
    pub fn metrics(&self) -> &telemetry::Metrics {
        &self.inner.telemetry.metrics
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
