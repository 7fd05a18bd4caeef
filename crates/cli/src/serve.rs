//! `agentry serve`: the configuration resolved, the port bound and every file checked before a
//! new installation is set up (so a start that cannot serve changes nothing and prints no key),
//! then the server until Ctrl-C or SIGTERM.

use agentry_server::bootstrap::{Bootstrap, SuppliedSecrets};
use clap::Args;

use crate::config::Config;
use crate::{StoreArgs, agent_files, check_agent, layers, registry, task_files};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
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

fn supplied_secrets() -> SuppliedSecrets {
    let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
    SuppliedSecrets { service_secret: var("AGENTRY_SERVICE_SECRET"), api_key: var("AGENTRY_API_KEY") }
}

/// Runs the server.
pub(crate) async fn serve(args: ServeArgs) -> Result<(), String> {
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
    crate::models::pull_default_model(&app.store, &config).await;
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
