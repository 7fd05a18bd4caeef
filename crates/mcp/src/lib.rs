//! Agentry's client for Model Context Protocol servers, on the official `rmcp` SDK.
//!
//! # Layout
//! - [`McpServerConfig`]: how to reach one server, as written under `[mcp_servers.<name>]` in
//!   agentry.toml: a stdio `command` or a streamable-HTTP `url`.
//! - [`McpHub`]: the configured servers behind one cloneable handle; connects lazily, shares one
//!   connection per server between concurrent callers, reconnects after transport failures,
//!   and stops child processes on [`McpHub::shutdown`] or drop.
//! - [`McpToolInfo`] / [`McpCallResult`]: tools and call results as plain JSON for the engine.
//! - [`McpError`]: transport, protocol, config and timeout failures (a tool's own failure is a
//!   result with `is_error`, not an error).
//!
//! Invariant: a stdio server's stdout carries only MCP; its stderr goes to `tracing` (target
//! `agentry_mcp::server_stderr`, debug level) and the last lines are quoted in errors.

#![warn(missing_docs)]

mod config;
mod convert;
mod error;
mod hub;

pub use config::McpServerConfig;
pub use convert::{McpCallResult, McpToolInfo};
pub use error::McpError;
pub use hub::McpHub;
