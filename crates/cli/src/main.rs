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
mod models;
mod monitoring;
mod runs;
mod serve;
mod task_files;
mod telemetry_config;

use std::path::PathBuf;
use std::process::ExitCode;

use agentry_core::session_token::{self, SessionClaims};
use agentry_core::{Timestamp, UserMeta};
use agentry_server::bootstrap;

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
    Serve(serve::ServeArgs),
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
    Models(models::ModelsCommand),
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
        Command::Serve(args) => serve::serve(args).await,
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
        Command::Models(command) => models::models(command).await,
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

async fn open_store(config: &Config) -> Result<Store, String> {
    Store::open(&config.store).await.map_err(|e| format!("cannot open the store at {}: {e}", config.store.describe()))
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

/// Whether an agent can run on this configuration: its model and what its tools refer to.
fn check_agent(
    config: &Config,
    providers: &agentry_llm::ProviderRegistry,
    spec: &agentry_core::AgentSpec,
) -> Result<(), String> {
    providers.resolve(spec).map_err(|err| format!("model: {err}"))?;
    agentry_engine::tools::check_declared(spec, &config.secrets, |name| config.mcp_servers.contains_key(name))
}

/// The provider registry of a configuration (with the local model cache when built in).
fn registry(config: &Config) -> agentry_llm::ProviderRegistry {
    let registry = agentry_llm::ProviderRegistry::new(config.providers.clone()).with_prices(config.prices.clone());
    #[cfg(feature = "local")]
    let registry = registry.with_local_models(agentry_llm::local::LocalModels::new(
        agentry_llm::local::ModelCache::new(&config.models_dir),
    ));
    registry
}
