//! MCP server tools as agent tools, over [`agentry_mcp::McpHub`] (connections are made on first
//! use and kept).

use std::collections::{BTreeMap, HashSet};

use agentry_core::AgentSpec;
use agentry_llm::ToolSpec;
use agentry_mcp::{McpHub, McpServerConfig, McpToolInfo};
use serde_json::Value;

use crate::tools::{AgentTool, ToolFailure, ToolKind};

/// The configured MCP servers.
#[derive(Clone)]
pub struct Mcp {
    hub: McpHub,
}

impl Mcp {
    /// Servers by name; nothing connects until a tool is needed.
    pub fn new(servers: BTreeMap<String, McpServerConfig>) -> Self {
        Mcp { hub: McpHub::new(servers) }
    }

    /// The MCP tools an agent declares, minus those switched off. A server that cannot be
    /// reached contributes nothing (logged); the turn goes on with the other tools.
    pub async fn agent_tools(&self, agent: &AgentSpec, disabled: &HashSet<(String, String)>) -> Vec<AgentTool> {
        let mut tools = Vec::new();
        for source in &agent.mcp_tools {
            let listed = match self.hub.list_tools(&source.server).await {
                Ok(listed) => listed,
                Err(err) => {
                    tracing::warn!(%err, server = %source.server, agent = %agent.id, "MCP server unavailable; its tools are not offered");
                    continue;
                }
            };
            let timeout = source.approval_timeout_secs.unwrap_or(agent.approval_timeout_secs());
            for info in listed.into_iter().filter(|t| source.offers(&t.name)) {
                let requires_approval = source.needs_approval(&info.name);
                let tool = agent_tool(&source.server, info, requires_approval, timeout);
                if !disabled.contains(&(tool.entity_id.clone(), tool.spec.name.clone())) {
                    tools.push(tool);
                }
            }
        }
        tools
    }

    /// Every tool of every configured server that answers (for the catalog).
    pub async fn all_tools(&self) -> Vec<AgentTool> {
        let mut tools = Vec::new();
        for server in self.hub.server_names() {
            match self.hub.list_tools(&server).await {
                Ok(listed) => tools.extend(listed.into_iter().map(|info| {
                    agent_tool(&server, info, false, agentry_core::approval::DEFAULT_APPROVAL_TIMEOUT_SECS)
                })),
                Err(err) => tracing::warn!(%err, %server, "MCP server unavailable; its tools are not listed"),
            }
        }
        tools
    }

    /// Calls a server's tool; a tool-level error (`isError`) is a [`ToolFailure`].
    pub async fn call(&self, server: &str, tool: &str, arguments: Value) -> Result<Value, ToolFailure> {
        match self.hub.call_tool(server, tool, arguments).await {
            Ok(result) if result.is_error => Err(ToolFailure::new(match result.content {
                Value::String(text) => text,
                other => other.to_string(),
            })),
            Ok(result) => Ok(result.content),
            Err(err) => Err(ToolFailure::new(err.to_string())),
        }
    }

    /// Closes the connections and stops the server processes.
    pub async fn shutdown(&self) {
        self.hub.shutdown().await;
    }
}

fn agent_tool(server: &str, info: McpToolInfo, requires_approval: bool, approval_timeout_secs: u64) -> AgentTool {
    AgentTool {
        spec: ToolSpec { name: info.name, description: info.description, parameters: info.input_schema },
        entity_id: format!("mcp.{server}"),
        kind: ToolKind::Mcp { server: server.to_owned() },
        requires_approval,
        approval_timeout_secs,
    }
}
