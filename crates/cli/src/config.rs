//! Configuration: defaults, overridden by `agentry.toml`, overridden by `AGENTRY_*` variables,
//! overridden by flags. Every value is checked at start; an error names the key, where the value
//! came from, and what is wrong with it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use agentry_llm::config::{ProviderConfig, ProviderSection};
use agentry_store::StoreLocation;

/// Where a setting's value came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Source {
    /// Built-in default.
    #[default]
    Default,
    /// A key of the config file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Default => write!(f, "the default"),
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A key that Agentry does not know.
    #[error("unknown key `{key}` in {path} (known keys: {known})")]
    UnknownKey {
        /// The key.
        key: String,
        /// The file.
        path: PathBuf,
        /// The keys Agentry reads.
        known: String,
    },
    /// A key with an unusable value.
    #[error("invalid configuration key `{key}` (from {origin}): {problem}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// Where the value came from.
        origin: Source,
        /// What is wrong.
        problem: String,
    },
}

/// Every key Agentry reads, with its environment variable.
const KEYS: &[(&str, &str)] = &[
    ("listen", "AGENTRY_LISTEN"),
    ("data_dir", "AGENTRY_DATA_DIR"),
    ("database_url", "AGENTRY_DATABASE_URL"),
    ("agents_dir", "AGENTRY_AGENTS_DIR"),
    ("tasks_dir", "AGENTRY_TASKS_DIR"),
    ("jobs_concurrency", "AGENTRY_JOBS_CONCURRENCY"),
    ("max_body_bytes", "AGENTRY_MAX_BODY_BYTES"),
    ("max_message_bytes", "AGENTRY_MAX_MESSAGE_BYTES"),
    ("event_retention_days", "AGENTRY_EVENT_RETENTION_DAYS"),
    ("models_dir", "AGENTRY_MODELS_DIR"),
    ("default_model", "AGENTRY_DEFAULT_MODEL"),
    ("tool_timeout_secs", "AGENTRY_TOOL_TIMEOUT_SECS"),
    ("max_tool_argument_bytes", "AGENTRY_MAX_TOOL_ARGUMENT_BYTES"),
    ("max_tool_result_bytes", "AGENTRY_MAX_TOOL_RESULT_BYTES"),
    ("log", "AGENTRY_LOG"),
    ("log_format", "AGENTRY_LOG_FORMAT"),
    ("turn_lease_secs", "AGENTRY_TURN_LEASE_SECS"),
    ("max_running_turns", "AGENTRY_MAX_RUNNING_TURNS"),
    ("replica_id", "AGENTRY_REPLICA_ID"),
    ("allow_private_webhooks", "AGENTRY_ALLOW_PRIVATE_WEBHOOKS"),
    ("max_token_lifetime_secs", "AGENTRY_MAX_TOKEN_LIFETIME_SECS"),
    ("cors_origins", "AGENTRY_CORS_ORIGINS"),
    ("max_connections", "AGENTRY_MAX_CONNECTIONS"),
    ("max_connections_per_ip", "AGENTRY_MAX_CONNECTIONS_PER_IP"),
    ("header_read_timeout_secs", "AGENTRY_HEADER_READ_TIMEOUT_SECS"),
];

/// What `agentry serve --help` shows after its flags: every environment variable it reads, from
/// the same tables the configuration is read with.
pub fn environment_help() -> String {
    let mut text =
        String::from("Environment (a variable overrides the same key of the config file; a flag overrides both):\n");
    for (key, var) in KEYS {
        text.push_str(&format!("  {var:<38} {key}\n"));
    }
    for (key, var) in crate::telemetry_config::ENV {
        text.push_str(&format!("  {var:<38} [telemetry] {key}\n"));
    }
    for var in crate::telemetry_config::HEADER_VARS {
        text.push_str(&format!("  {var:<38} [telemetry] otlp_headers\n"));
    }
    text.push_str(
        "  AGENTRY_SERVICE_SECRET, AGENTRY_API_KEY  what a first start sets up instead of generating them\n  \
         OPENAI_API_KEY, ANTHROPIC_API_KEY        provider keys (see [providers.<name>] for others)\n",
    );
    text
}

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3100";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./agentry-data";

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// The store: SQLite in `data_dir`, or Postgres when `database_url` is set.
    pub store: StoreLocation,
    /// Directory of agent files loaded at start.
    pub agents_dir: Option<PathBuf>,
    /// Directory of task files loaded at start.
    pub tasks_dir: Option<PathBuf>,
    /// Runs of background tasks one replica executes at once (`[jobs] concurrency`).
    pub jobs_concurrency: usize,
    /// Request body limit.
    pub max_body_bytes: usize,
    /// Largest user message a turn accepts.
    pub max_message_bytes: usize,
    /// How long finished turns' event logs are kept.
    pub event_retention: std::time::Duration,
    /// `tracing` filter directive.
    pub log: String,
    /// Log lines as JSON objects (`log_format = "json"`) rather than text.
    pub log_json: bool,
    /// Cache of local GGUF models.
    pub models_dir: PathBuf,
    /// Where uploaded datasets are kept (`<data_dir>/datasets`).
    pub datasets_dir: PathBuf,
    /// Model of the built-in default agent created on first start (`None`: choose from what is
    /// configured — see `main.rs`).
    pub default_model: Option<String>,
    /// Model providers by name (`[providers.<name>]`, plus `openai`/`anthropic` when their
    /// standard key variables are set).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// How long a tool call may take.
    pub tool_timeout: std::time::Duration,
    /// Largest tool-call arguments accepted from a model.
    pub max_tool_argument_bytes: usize,
    /// Largest tool result passed back to a model.
    pub max_tool_result_bytes: usize,
    /// Lease of a running turn: a replica that dies hands its turns over this long after it
    /// last renewed them.
    pub turn_lease: std::time::Duration,
    /// Turns one replica runs at once.
    pub max_running_turns: usize,
    /// This replica's name in the store (default: a new id per start).
    pub replica_id: Option<String>,
    /// Secret values for HTTP tool headers, by name (`[secrets] NAME = "ENV_VAR"`).
    pub secrets: BTreeMap<String, String>,
    /// MCP servers agents may take tools from (`[mcp_servers.<name>]`).
    pub mcp_servers: BTreeMap<String, agentry_mcp::McpServerConfig>,
    /// Prices of `provider:model`s of any provider (`[prices."provider:model"]`).
    pub prices: BTreeMap<String, agentry_llm::config::Price>,
    /// Budget alert webhooks may reach loopback and private addresses.
    pub allow_private_webhooks: bool,
    /// The longest session-token lifetime (`exp - iat`) accepted.
    pub max_token_lifetime_secs: i64,
    /// Browser origins allowed by CORS (`None`: any but `null`).
    pub cors_origins: Option<Vec<String>>,
    /// Connection caps and the header-read timeout.
    pub connections: agentry_server::listen::ConnectionLimits,
    /// Message rate limits (`[rate_limits]`; agents override each key).
    pub rate_limits: agentry_core::RateLimits,
    /// Spans and their export (`[telemetry]`).
    pub telemetry: agentry_engine::telemetry::TelemetryConfig,
}

/// Raw layered values: key → (value, source).
#[derive(Debug, Default)]
pub struct Layers {
    values: BTreeMap<&'static str, (String, Source)>,
    providers: BTreeMap<String, (ProviderSection, Source)>,
    /// `[secrets]`: secret name → the environment variable holding it.
    secrets: BTreeMap<String, (String, Source)>,
    mcp_servers: BTreeMap<String, (agentry_mcp::McpServerConfig, Source)>,
    prices: BTreeMap<String, (agentry_llm::config::Price, Source)>,
    rate_limits: agentry_core::RateLimits,
    telemetry: crate::telemetry_config::TelemetryLayers,
    /// Environment variables read for provider keys and secrets.
    env: BTreeMap<String, String>,
}

impl Layers {
    /// Reads the optional config file, then the environment.
    pub fn load(config_file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Layers, ConfigError> {
        let mut layers = Layers::default();
        if let Some(path) = config_file {
            layers.read_file(path)?;
        }
        for (name, var) in [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")] {
            if env(var).is_some_and(|k| !k.is_empty()) && !layers.providers.contains_key(name) {
                layers.providers.insert(name.to_owned(), (ProviderSection::default(), Source::Env(var)));
            }
        }
        let mut wanted: Vec<String> = vec!["OPENAI_API_KEY".into(), "ANTHROPIC_API_KEY".into()];
        wanted.extend(layers.providers.values().filter_map(|(s, _)| s.api_key_env.clone()));
        wanted.extend(layers.secrets.values().map(|(var, _)| var.clone()));
        for var in wanted {
            if let Some(value) = env(&var) {
                layers.env.insert(var, value);
            }
        }
        for (key, var) in KEYS {
            if let Some(value) = env(var).filter(|v| !v.is_empty()) {
                layers.values.insert(key, (value, Source::Env(var)));
            }
        }
        layers.telemetry.read_env(&env);
        Ok(layers)
    }

    fn read_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let table: toml::Table =
            toml::from_str(&text).map_err(|e| ConfigError::Syntax { path: path.into(), message: e.to_string() })?;
        for (key, value) in table {
            if key == "providers" {
                let toml::Value::Table(sections) = value else {
                    return Err(ConfigError::Invalid {
                        key: "providers",
                        origin: Source::File(path.into()),
                        problem: "expected tables [providers.<name>]".into(),
                    });
                };
                for (name, section) in sections {
                    let section: ProviderSection =
                        section.try_into().map_err(|e: toml::de::Error| ConfigError::Invalid {
                            key: "providers",
                            origin: Source::File(path.into()),
                            problem: format!("[providers.{name}]: {}", e.message()),
                        })?;
                    self.providers.insert(name, (section, Source::File(path.into())));
                }
                continue;
            }
            if key == "rate_limits" {
                self.rate_limits = value.try_into().map_err(|e: toml::de::Error| ConfigError::Invalid {
                    key: "rate_limits",
                    origin: Source::File(path.into()),
                    problem: e.message().to_owned(),
                })?;
                continue;
            }
            if key == "telemetry" {
                self.telemetry.read_file(value, path)?;
                continue;
            }
            if key == "jobs" {
                // `[jobs] concurrency = N` is the file's spelling of `jobs_concurrency`.
                let invalid = |problem: String| ConfigError::Invalid {
                    key: "jobs_concurrency",
                    origin: Source::File(path.into()),
                    problem,
                };
                let toml::Value::Table(jobs) = value else { return Err(invalid("expected a [jobs] table".into())) };
                for (name, value) in jobs {
                    match (name.as_str(), value) {
                        ("concurrency", toml::Value::Integer(n)) => {
                            self.values.insert("jobs_concurrency", (n.to_string(), Source::File(path.into())));
                        }
                        (name, _) => {
                            return Err(invalid(format!("[jobs] has `concurrency = <number>` only, not `{name}`")));
                        }
                    }
                }
                continue;
            }
            if key == "prices" {
                let prices: BTreeMap<String, agentry_llm::config::Price> =
                    value.try_into().map_err(|e: toml::de::Error| ConfigError::Invalid {
                        key: "prices",
                        origin: Source::File(path.into()),
                        problem: format!(
                            "expected [prices.\"provider:model\"] tables with input, output, cached_input: {}",
                            e.message()
                        ),
                    })?;
                for (model, price) in prices {
                    if agentry_core::ModelRef::parse(&model).is_err() {
                        return Err(ConfigError::Invalid {
                            key: "prices",
                            origin: Source::File(path.into()),
                            problem: format!("`{model}` is not a provider:model name"),
                        });
                    }
                    self.prices.insert(model, (price, Source::File(path.into())));
                }
                continue;
            }
            if key == "secrets" {
                let table: BTreeMap<String, String> =
                    value.try_into().map_err(|e: toml::de::Error| ConfigError::Invalid {
                        key: "secrets",
                        origin: Source::File(path.into()),
                        problem: format!("expected NAME = \"ENV_VAR\" pairs: {}", e.message()),
                    })?;
                for (name, var) in table {
                    self.secrets.insert(name, (var, Source::File(path.into())));
                }
                continue;
            }
            if key == "mcp_servers" {
                let servers: BTreeMap<String, agentry_mcp::McpServerConfig> =
                    value.try_into().map_err(|e: toml::de::Error| ConfigError::Invalid {
                        key: "mcp_servers",
                        origin: Source::File(path.into()),
                        problem: e.message().to_owned(),
                    })?;
                for (name, server) in servers {
                    self.mcp_servers.insert(name, (server, Source::File(path.into())));
                }
                continue;
            }
            let Some((known, _)) = KEYS.iter().find(|(k, _)| *k == key) else {
                let known = KEYS
                    .iter()
                    .map(|(k, _)| *k)
                    .chain(["providers", "secrets", "mcp_servers", "prices", "rate_limits", "telemetry", "jobs"])
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ConfigError::UnknownKey { key, path: path.into(), known });
            };
            let text = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                other => {
                    return Err(ConfigError::Invalid {
                        key: known,
                        origin: Source::File(path.into()),
                        problem: format!("expected a string or an integer, found a {}", other.type_str()),
                    });
                }
            };
            self.values.insert(known, (text, Source::File(path.into())));
        }
        Ok(())
    }

    /// Applies a flag, the highest layer.
    pub fn flag(&mut self, key: &'static str, flag: &'static str, value: Option<String>) {
        if let Some(value) = value {
            self.values.insert(key, (value, Source::Flag(flag)));
        }
    }

    fn get(&self, key: &'static str, default: Option<&str>) -> Option<(String, Source)> {
        self.values.get(key).cloned().or_else(|| default.map(|d| (d.to_owned(), Source::Default)))
    }

    /// Checks every value and builds the configuration.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let invalid = |key, origin, problem: String| ConfigError::Invalid { key, origin, problem };

        let (listen, source) = self.get("listen", Some(DEFAULT_LISTEN)).unwrap_or_default();
        let listen = listen.parse::<SocketAddr>().map_err(|_| {
            invalid("listen", source, format!("`{listen}` is not a socket address such as 127.0.0.1:3100"))
        })?;

        let (data_dir, _) = self.get("data_dir", Some(DEFAULT_DATA_DIR)).unwrap_or_default();
        let data_dir = PathBuf::from(data_dir);
        let models_dir =
            self.get("models_dir", None).map_or_else(|| data_dir.join("models"), |(dir, _)| PathBuf::from(dir));
        let default_model = match self.get("default_model", None) {
            None => None,
            Some((model, source)) => {
                agentry_core::ModelRef::parse(&model).map_err(|e| invalid("default_model", source, e.to_string()))?;
                Some(model)
            }
        };

        let store = match self.get("database_url", None) {
            None => StoreLocation::Sqlite(data_dir.join("agentry.db")),
            Some((url, _)) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                StoreLocation::Postgres(url)
            }
            Some((url, source)) => {
                let shown = url.split_once("://").map_or("(no scheme)", |(scheme, _)| scheme).to_owned();
                return Err(invalid(
                    "database_url",
                    source,
                    format!(
                        "scheme `{shown}` is not supported; use postgres://… (unset it for the embedded SQLite store)"
                    ),
                ));
            }
        };

        let directory = |key: &'static str| match self.get(key, None) {
            None => Ok(None),
            Some((dir, source)) => {
                let path = PathBuf::from(&dir);
                if !path.is_dir() {
                    return Err(invalid(key, source, format!("`{dir}` is not a directory")));
                }
                Ok(Some(path))
            }
        };
        let agents_dir = directory("agents_dir")?;
        let tasks_dir = directory("tasks_dir")?;
        let jobs_concurrency = usize::try_from(self.number("jobs_concurrency", 64, 1, 10_000)?).unwrap_or(64);

        let (max_body, source) = self.get("max_body_bytes", Some("1048576")).unwrap_or_default();
        let max_body_bytes = match max_body.parse::<usize>() {
            Ok(n) if n >= 1024 => n,
            _ => {
                return Err(invalid(
                    "max_body_bytes",
                    source,
                    format!("`{max_body}` is not a whole number of bytes of at least 1024"),
                ));
            }
        };

        let (max_message, source) = self.get("max_message_bytes", Some("32768")).unwrap_or_default();
        let max_message_bytes = match max_message.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(invalid(
                    "max_message_bytes",
                    source,
                    format!("`{max_message}` is not a positive whole number of bytes"),
                ));
            }
        };

        let (retention, source) = self.get("event_retention_days", Some("7")).unwrap_or_default();
        let event_retention = match retention.parse::<u64>() {
            Ok(days) if (1..=3650).contains(&days) => std::time::Duration::from_secs(days * 24 * 3600),
            _ => {
                return Err(invalid(
                    "event_retention_days",
                    source,
                    format!("`{retention}` is not a whole number of days in 1..=3650"),
                ));
            }
        };

        let tool_timeout = std::time::Duration::from_secs(self.number("tool_timeout_secs", 30, 1, 3600)?);
        let max_tool_argument_bytes = self.number("max_tool_argument_bytes", 64 * 1024, 64, 16 << 20)?;
        let max_tool_result_bytes = self.number("max_tool_result_bytes", 64 * 1024, 256, 16 << 20)?;
        let turn_lease = std::time::Duration::from_secs(self.number("turn_lease_secs", 30, 1, 3600)?);
        let max_running_turns = self.number("max_running_turns", 512, 1, 100_000)?;
        let max_token_lifetime_secs = self.number("max_token_lifetime_secs", 30 * 86_400, 60, 366 * 86_400)?;
        let connections = agentry_server::listen::ConnectionLimits {
            max_connections: usize::try_from(self.number("max_connections", 20_000, 16, 1_000_000)?)
                .unwrap_or(usize::MAX),
            max_connections_per_ip: match self.number("max_connections_per_ip", 0, 0, 1_000_000)? {
                0 => None,
                n => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            },
            header_read_timeout: std::time::Duration::from_secs(self.number("header_read_timeout_secs", 10, 1, 300)?),
        };
        let cors_origins = match self.get("cors_origins", None) {
            None => None,
            Some((list, _)) if list.trim() == "*" => None,
            Some((list, origin)) => {
                let origins: Vec<String> = list
                    .split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect();
                if let Some(bad) = origins.iter().find(|o| !(o.starts_with("http://") || o.starts_with("https://"))) {
                    return Err(invalid(
                        "cors_origins",
                        origin,
                        format!("`{bad}` is not an origin such as https://app.example.com"),
                    ));
                }
                Some(origins)
            }
        };
        let replica_id = self.get("replica_id", None).map(|(id, _)| id).filter(|id| !id.trim().is_empty());
        let allow_private_webhooks = match self.get("allow_private_webhooks", Some("false")) {
            Some((value, origin)) => match value.as_str() {
                "true" | "1" => true,
                "false" | "0" | "" => false,
                other => {
                    return Err(invalid("allow_private_webhooks", origin, format!("`{other}` is not true or false")));
                }
            },
            None => false,
        };
        let mut secrets = BTreeMap::new();
        for (name, (var, origin)) in &self.secrets {
            let value = self.env.get(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                invalid(
                    "secrets",
                    origin.clone(),
                    format!("secret `{name}` reads environment variable {var}, which is not set"),
                )
            })?;
            secrets.insert(name.clone(), value.clone());
        }
        let mut mcp_servers = BTreeMap::new();
        for (name, (server, origin)) in &self.mcp_servers {
            server
                .validate()
                .map_err(|e| invalid("mcp_servers", origin.clone(), format!("[mcp_servers.{name}]: {e}")))?;
            mcp_servers.insert(name.clone(), server.clone());
        }

        let (log, _) = self.get("log", Some("info,sqlx=warn")).unwrap_or_default();
        let log_json = match self.get("log_format", Some("text")).unwrap_or_default() {
            (format, _) if format == "text" => false,
            (format, _) if format == "json" => true,
            (format, origin) => return Err(invalid("log_format", origin, format!("`{format}` is not text or json"))),
        };

        let mut providers = BTreeMap::new();
        for (name, (section, origin)) in &self.providers {
            let config = ProviderConfig::from_section(name, section, |var| self.env.get(var).cloned())
                .map_err(|problem| invalid("providers", origin.clone(), problem))?;
            providers.insert(name.clone(), config);
        }
        Ok(Config {
            listen,
            store,
            agents_dir,
            tasks_dir,
            jobs_concurrency,
            max_body_bytes,
            max_message_bytes,
            event_retention,
            log,
            log_json,
            models_dir,
            datasets_dir: data_dir.join("datasets"),
            default_model,
            providers,
            tool_timeout,
            max_tool_argument_bytes: usize::try_from(max_tool_argument_bytes).unwrap_or(usize::MAX),
            max_tool_result_bytes: usize::try_from(max_tool_result_bytes).unwrap_or(usize::MAX),
            turn_lease,
            max_running_turns: usize::try_from(max_running_turns).unwrap_or(usize::MAX),
            replica_id,
            prices: self.prices.iter().map(|(model, (price, _))| (model.clone(), *price)).collect(),
            allow_private_webhooks,
            max_token_lifetime_secs: i64::try_from(max_token_lifetime_secs).unwrap_or(i64::MAX),
            cors_origins,
            connections,
            rate_limits: self.rate_limits,
            telemetry: self.telemetry.resolve()?,
            secrets,
            mcp_servers,
        })
    }

    /// A whole number in `min..=max`, or the default.
    fn number(&self, key: &'static str, default: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
        let Some((text, origin)) = self.get(key, None) else { return Ok(default) };
        match text.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError::Invalid {
                key,
                origin,
                problem: format!("`{text}` is not a whole number in {min}..={max}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
