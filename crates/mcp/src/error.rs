//! The one error type of the crate.

/// Why an MCP operation failed. A tool that ran and reported its own failure is not an error:
/// see [`McpCallResult::is_error`](crate::McpCallResult::is_error).
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// No server of that name is configured.
    #[error("unknown MCP server `{0}`")]
    UnknownServer(String),
    /// The server's configuration is invalid.
    #[error("invalid MCP server config: {0}")]
    Config(String),
    /// The server could not be started or reached, or did not complete the MCP handshake.
    #[error("cannot connect to MCP server `{server}`: {cause}")]
    Connect {
        /// The configured server name.
        server: String,
        /// What went wrong, readable by an operator.
        cause: String,
    },
    /// The request failed at the transport or protocol level (not the tool's own failure).
    #[error("MCP server `{server}` failed on `{tool}`: {cause}")]
    Call {
        /// The configured server name.
        server: String,
        /// The tool called (`tools/list` for a listing).
        tool: String,
        /// What went wrong, readable by an operator.
        cause: String,
    },
    /// The server did not answer within the configured `timeout_secs`.
    #[error("MCP server `{server}` did not answer `{tool}` in time")]
    Timeout {
        /// The configured server name.
        server: String,
        /// The tool called (`tools/list` for a listing).
        tool: String,
    },
}
