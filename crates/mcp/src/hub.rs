//! [`McpHub`]: one lazily opened, shared connection per configured server.

use std::collections::{BTreeMap, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::model::{CallToolRequestParams, ClientCapabilities, ClientConfig, Implementation};
use rmcp::service::{ClientInitializeError, RunningService};
use rmcp::transport::streamable_http_client::{StreamableHttpClientTransportConfig, StreamableHttpError};
use rmcp::transport::{DynamicTransportError, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{Peer, RoleClient, ServiceError, ServiceExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

use crate::config::header_map;
use crate::{McpCallResult, McpError, McpServerConfig, McpToolInfo};

/// What `Timeout`/`Call` errors name as the tool of a listing.
const LIST_TOOLS: &str = "tools/list";
/// How many of a child's last stderr lines an error quotes.
const STDERR_TAIL_LINES: usize = 8;
/// How long [`McpHub::shutdown`] waits for one connection to close before leaving it to
/// kill-on-drop (rmcp's own stdio shutdown takes at most ~6 s: EOF, then SIGTERM, then SIGKILL).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// The least time a server gets to start and answer the handshake. Longer than a call's timeout:
/// starting is slower than answering (an interpreter's imports, `npx` fetching a package).
const MIN_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a failed connect waits for the dying child's stderr to reach end of file.
const STDERR_DRAIN: Duration = Duration::from_secs(1);

/// Connections to the configured servers: connected lazily on first use, kept open, reconnected
/// once after a transport failure. Cheap to clone (Arc inside). Send + Sync.
#[derive(Clone)]
pub struct McpHub {
    servers: Arc<BTreeMap<String, Slot>>,
}

/// One configured server and its current connection, if any.
struct Slot {
    name: String,
    config: McpServerConfig,
    /// An async mutex because connecting happens under it: concurrent first calls share one
    /// connection instead of each starting a child process.
    state: tokio::sync::Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    conn: Option<Arc<Connection>>,
    /// Set by [`McpHub::shutdown`]: no new connection (and no new child process) after it.
    shut_down: bool,
}

/// One open MCP session.
struct Connection {
    peer: Peer<RoleClient>,
    /// Owned here only to close it; requests go through the cloneable `peer`.
    service: tokio::sync::Mutex<Option<RunningService<RoleClient, ClientConfig>>>,
    /// Per connection, so a reconnect lists afresh (the new server may have other tools).
    tools: Mutex<Option<Vec<McpToolInfo>>>,
    stderr: StderrTail,
}

impl Connection {
    async fn close(&self) {
        let Some(mut service) = self.service.lock().await.take() else { return };
        match service.close_with_timeout(CLOSE_TIMEOUT).await {
            Ok(Some(_)) => {}
            Ok(None) => tracing::warn!("MCP connection did not close in time; its process is killed on drop"),
            Err(e) => tracing::warn!(error = %e, "MCP connection task failed while closing"),
        }
    }
}

/// The last lines a stdio server wrote to stderr, quoted in errors: a server that dies usually
/// says why there (a Python traceback, "command not found", a missing API key).
#[derive(Clone, Default)]
struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.len() == STDERR_TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// `cause` followed by the tail, if there is one.
    fn annotate(&self, cause: String) -> String {
        let lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if lines.is_empty() {
            cause
        } else {
            format!("{cause}; server stderr: {}", lines.iter().cloned().collect::<Vec<_>>().join(" | "))
        }
    }
}

impl McpHub {
    /// A hub for these servers (by name); nothing is started until a server is first used.
    pub fn new(servers: BTreeMap<String, McpServerConfig>) -> Self {
        let servers = servers
            .into_iter()
            .map(|(name, config)| {
                let slot = Slot { name: name.clone(), config, state: Default::default() };
                (name, slot)
            })
            .collect();
        McpHub { servers: Arc::new(servers) }
    }

    /// The configured server names, sorted.
    pub fn server_names(&self) -> Vec<String> {
        self.servers.keys().cloned().collect()
    }

    /// Whether a server of that name is configured.
    pub fn has_server(&self, name: &str) -> bool {
        self.servers.contains_key(name)
    }

    /// The server's tools (cached after the first successful listing; refreshed after a reconnect).
    pub async fn list_tools(&self, server: &str) -> Result<Vec<McpToolInfo>, McpError> {
        let slot = self.slot(server)?;
        let mut conn = slot.connection().await?;
        if let Some(tools) = cached_tools(&conn) {
            return Ok(tools);
        }
        let listed = match slot.list(&conn).await {
            // Listing has no side effects, so any transport failure is worth one reconnect.
            Err(ref e) if is_transport_failure(e) => {
                slot.discard(&conn).await;
                conn = slot.connection().await?;
                slot.list(&conn).await
            }
            other => other,
        };
        let tools: Vec<McpToolInfo> = match listed {
            Ok(tools) => tools.into_iter().map(McpToolInfo::from).collect(),
            Err(e) => return Err(slot.service_error(&conn, LIST_TOOLS, e).await),
        };
        *conn.tools.lock().unwrap_or_else(|p| p.into_inner()) = Some(tools.clone());
        Ok(tools)
    }

    /// Calls a tool. A tool-level failure (`isError: true` from the server) is Ok with
    /// is_error = true; transport/protocol failures are Err.
    pub async fn call_tool(&self, server: &str, tool: &str, arguments: Value) -> Result<McpCallResult, McpError> {
        let slot = self.slot(server)?;
        let mut params = CallToolRequestParams::new(tool.to_owned());
        match arguments {
            Value::Object(map) => params = params.with_arguments(map),
            Value::Null => {}
            other => {
                return Err(McpError::Call {
                    server: server.to_owned(),
                    tool: tool.to_owned(),
                    cause: format!("arguments must be a JSON object, not {other}"),
                });
            }
        }
        let mut conn = slot.connection().await?;
        let called = match slot.call(&conn, params.clone()).await {
            // Only a request that never reached the server is repeated: one that did may have had
            // its side effects before the server died, and a tool must not run twice unasked.
            Err(ref e) if slot.never_delivered(e) => {
                tracing::info!(server, tool, error = %e, "MCP request not sent; reconnecting once");
                slot.discard(&conn).await;
                conn = slot.connection().await?;
                slot.call(&conn, params).await
            }
            other => other,
        };
        match called {
            Ok(result) => Ok(result.into()),
            Err(e) => Err(slot.service_error(&conn, tool, e).await),
        }
    }

    /// Closes every connection and stops child processes (graceful shutdown). Later calls fail
    /// with [`McpError::Connect`] instead of starting servers again.
    pub async fn shutdown(&self) {
        let mut closing = tokio::task::JoinSet::new();
        for slot in self.servers.values() {
            let mut state = slot.state.lock().await;
            state.shut_down = true;
            if let Some(conn) = state.conn.take() {
                closing.spawn(async move { conn.close().await });
            }
        }
        closing.join_all().await;
    }

    fn slot(&self, server: &str) -> Result<&Slot, McpError> {
        self.servers.get(server).ok_or_else(|| McpError::UnknownServer(server.to_owned()))
    }
}

fn cached_tools(conn: &Connection) -> Option<Vec<McpToolInfo>> {
    conn.tools.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Errors that say the connection may be broken, as opposed to a server's JSON-RPC error answer
/// or our own timeout, which leave it working.
fn is_transport_failure(e: &ServiceError) -> bool {
    matches!(e, ServiceError::TransportSend(_) | ServiceError::TransportClosed)
}

impl Slot {
    /// The open connection, or a new one (replacing one whose transport has closed).
    async fn connection(&self) -> Result<Arc<Connection>, McpError> {
        let mut state = self.state.lock().await;
        if state.shut_down {
            return Err(self.connect_error("the MCP hub has been shut down".into()));
        }
        if let Some(conn) = &state.conn {
            if !conn.peer.is_transport_closed() {
                return Ok(conn.clone());
            }
            tracing::info!(server = %self.name, "MCP connection closed; reconnecting");
            state.conn = None;
        }
        let conn = Arc::new(self.connect().await?);
        state.conn = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets `conn` if it is still the current connection, so the next use reconnects. It is
    /// not closed here: calls of other tasks may still be in flight on it (an HTTP session can
    /// outlive one failed POST), and dropping the last handle closes it and stops its process.
    async fn discard(&self, conn: &Arc<Connection>) {
        let mut state = self.state.lock().await;
        if state.conn.as_ref().is_some_and(|current| Arc::ptr_eq(current, conn)) {
            state.conn = None;
        }
    }

    /// Whether a failed request certainly never reached the server: a stdio write to a dead
    /// child, or an HTTP connection that could not be opened. An HTTP error status does not
    /// count: the server got the request and may have acted on it.
    fn never_delivered(&self, e: &ServiceError) -> bool {
        let ServiceError::TransportSend(error) = e else { return false };
        if self.config.command.is_some() {
            return true;
        }
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error.error.as_ref());
        while let Some(inner) = source {
            if inner.downcast_ref::<reqwest::Error>().is_some_and(reqwest::Error::is_connect) {
                return true;
            }
            source = next_source(inner);
        }
        false
    }

    async fn connect(&self) -> Result<Connection, McpError> {
        self.config.validate().map_err(|e| match e {
            McpError::Config(msg) => McpError::Config(format!("server `{}`: {msg}", self.name)),
            other => other,
        })?;
        let client =
            ClientConfig::new(ClientCapabilities::default(), Implementation::new("agentry", env!("CARGO_PKG_VERSION")));
        let stderr = StderrTail::default();
        let timeout = self.config.timeout().max(MIN_CONNECT_TIMEOUT);
        let (handshake, stderr_reader) = if let Some(program) = &self.config.command {
            let (transport, reader) = self.spawn(program, &stderr)?;
            (tokio::time::timeout(timeout, client.serve(transport)).await, reader)
        } else if let Some(url) = &self.config.url {
            let headers = header_map(&self.config.headers)?;
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(headers);
            let transport = StreamableHttpClientTransport::from_config(config);
            (tokio::time::timeout(timeout, client.serve(transport)).await, None)
        } else {
            return Err(McpError::Config(format!("server `{}`: no `command` or `url`", self.name)));
        };
        let cause = match handshake {
            Ok(Ok(service)) => {
                let server_info = service.peer_info().map(|info| info.server_info.clone());
                tracing::info!(server = %self.name, ?server_info, "MCP server connected");
                return Ok(Connection {
                    peer: service.peer().clone(),
                    service: tokio::sync::Mutex::new(Some(service)),
                    tools: Mutex::new(None),
                    stderr,
                });
            }
            Ok(Err(e)) => init_error_text(&e),
            Err(_) => format!("no answer to the MCP handshake within {}s", timeout.as_secs()),
        };
        // The failed handshake dropped its transport, which kills the child; its last words are
        // usually still in the pipe, and they are what the operator needs, so read them first.
        if let Some(reader) = stderr_reader {
            let _ = tokio::time::timeout(STDERR_DRAIN, reader).await;
        }
        Err(self.connect_error(stderr.annotate(cause)))
    }

    /// Starts the stdio server. Its own process group lets shutdown signal every process the
    /// server started (`npx`, `uvx` and shell wrappers run the real server as a grandchild);
    /// kill-on-drop still ends the child if the hub is dropped without a runtime to close it.
    fn spawn(
        &self,
        program: &str,
        stderr_tail: &StderrTail,
    ) -> Result<(TokioChildProcess, Option<JoinHandle<()>>), McpError> {
        let mut command = CommandWrap::with_new(program, |command| {
            command.args(&self.config.args).envs(&self.config.env);
        });
        command.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
        let (transport, stderr) = TokioChildProcess::builder(command)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.connect_error(format!("cannot start `{program}`: {e}")))?;
        let reader = stderr.map(|stderr| {
            let (server, tail) = (self.name.clone(), stderr_tail.clone());
            // Our stdout is not the server's: its diagnostics go to the log, never to the terminal.
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::debug!(target: "agentry_mcp::server_stderr", server = %server, "{line}");
                    tail.push(line);
                }
            })
        });
        Ok((transport, reader))
    }

    async fn list(&self, conn: &Connection) -> Result<Vec<rmcp::model::Tool>, ServiceError> {
        match tokio::time::timeout(self.config.timeout(), conn.peer.list_all_tools()).await {
            Ok(listed) => listed,
            Err(_) => Err(ServiceError::Timeout { timeout: self.config.timeout() }),
        }
    }

    /// One `tools/call`. On timeout the request future is dropped, which makes rmcp send
    /// `notifications/cancelled`, so the server can stop working on it.
    async fn call(
        &self,
        conn: &Connection,
        params: CallToolRequestParams,
    ) -> Result<rmcp::model::CallToolResult, ServiceError> {
        match tokio::time::timeout(self.config.timeout(), conn.peer.call_tool(params)).await {
            Ok(called) => called,
            Err(_) => Err(ServiceError::Timeout { timeout: self.config.timeout() }),
        }
    }

    /// Maps a failed request to [`McpError`], dropping the connection if it is broken.
    async fn service_error(&self, conn: &Arc<Connection>, tool: &str, e: ServiceError) -> McpError {
        let (server, tool) = (self.name.clone(), tool.to_owned());
        match e {
            ServiceError::Timeout { .. } => McpError::Timeout { server, tool },
            e if is_transport_failure(&e) => {
                self.discard(conn).await;
                McpError::Call { server, tool, cause: conn.stderr.annotate(service_error_text(&e)) }
            }
            e => McpError::Call { server, tool, cause: service_error_text(&e) },
        }
    }

    fn connect_error(&self, cause: String) -> McpError {
        McpError::Connect { server: self.name.clone(), cause }
    }
}

/// rmcp's transport errors name the transport's full generic type; the operator needs the
/// underlying cause ("Connection refused", "Broken pipe") instead.
fn transport_error_text(e: &DynamicTransportError) -> String {
    error_chain(e.error.as_ref())
}

fn init_error_text(e: &ClientInitializeError) -> String {
    match e {
        ClientInitializeError::TransportError { error, context } => {
            format!("{} ({context})", transport_error_text(error))
        }
        e => error_chain(e),
    }
}

fn service_error_text(e: &ServiceError) -> String {
    match e {
        ServiceError::TransportSend(error) => format!("cannot send: {}", transport_error_text(error)),
        ServiceError::TransportClosed => "the connection closed before the server answered".into(),
        e => error_chain(e),
    }
}

/// An error and its sources on one line: rmcp's outer errors often hide the useful part
/// ("Connection refused") in a source.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = next_source(e);
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = next_source(inner);
    }
    text
}

/// `source()`, also through rmcp's HTTP client error, which wraps reqwest's error without
/// declaring it as its source (and reqwest keeps "connection refused" two sources down).
fn next_source<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a (dyn std::error::Error + 'static)> {
    match e.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
        Some(StreamableHttpError::Client(client)) => Some(client),
        _ => e.source(),
    }
}
