//! Tools an agent may call: built-ins, HTTP endpoints and MCP server tools.
//!
//! [`ToolBox::for_agent`] resolves what an agent declares into [`AgentTool`]s (skipping tools an
//! operator switched off), and [`call`] runs one. A failure is a [`ToolFailure`] the model is
//! told about; the turn goes on. Tools that act inside a turn (`request_approval`, the artifact
//! tools) are run by the runner, which holds the turn.

pub mod http;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use agentry_core::tool::{BUILTIN_ENTITY, HttpToolSpec};
use agentry_core::{AgentSpec, Timestamp};
use agentry_llm::ToolSpec;
use serde_json::{Value, json};

/// A tool failure, reported to the model as an error result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ToolFailure {
    /// What went wrong, for the model.
    pub message: String,
}

impl ToolFailure {
    /// A failure with this message.
    pub fn new(message: impl Into<String>) -> Self {
        ToolFailure { message: message.into() }
    }
}

/// The built-in tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinTool {
    /// The current time in UTC.
    CurrentTime,
    /// Ask a human to approve something; the turn waits for the answer.
    RequestApproval,
    /// Create an artifact (revision 1 of a new key).
    GenerateArtifact,
    /// Add a revision to an artifact.
    ReviseArtifact,
    /// Run a read-only SQL query over an uploaded dataset; answers with rows and a table.
    QueryDataset,
    /// Chart the rows of a dataset query.
    CreateChart,
    /// Trigger a run of a background task.
    TriggerTask,
    /// Schedule a background task with a cron expression.
    CreateSchedule,
}

impl BuiltinTool {
    /// Looks a tool up by the name agents use.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "current_time" => Some(BuiltinTool::CurrentTime),
            "request_approval" => Some(BuiltinTool::RequestApproval),
            "generate_artifact" => Some(BuiltinTool::GenerateArtifact),
            "revise_artifact" => Some(BuiltinTool::ReviseArtifact),
            "query_dataset" => Some(BuiltinTool::QueryDataset),
            "create_chart" => Some(BuiltinTool::CreateChart),
            "trigger_task" => Some(BuiltinTool::TriggerTask),
            "create_schedule" => Some(BuiltinTool::CreateSchedule),
            _ => None,
        }
    }

    /// What the model is told about it.
    pub fn spec(self) -> ToolSpec {
        let (name, description, parameters) = match self {
            BuiltinTool::TriggerTask => (
                "trigger_task",
                "Start a run of a background task now. Returns {runId, status}.",
                json!({"type": "object", "properties": {
                    "taskId": {"type": "string", "description": "The task's id."},
                    "payload": {"description": "What the task gets (a JSON value)."}
                }, "required": ["taskId"]}),
            ),
            BuiltinTool::CreateSchedule => (
                "create_schedule",
                "Run a background task on a schedule, e.g. every Monday at 9 in Berlin: cron \"0 9 * * 1\", \
                 timezone \"Europe/Berlin\". Returns {scheduleId, nextRunAt}.",
                json!({"type": "object", "properties": {
                    "taskId": {"type": "string"},
                    "cron": {"type": "string", "description": "5 fields (minute hour day month weekday), or 6 with seconds first."},
                    "timezone": {"type": "string", "description": "IANA zone, default UTC."},
                    "payload": {"description": "What each run gets."}
                }, "required": ["taskId", "cron"]}),
            ),
            BuiltinTool::CurrentTime => (
                "current_time",
                "The current date and time in UTC.",
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
            ),
            BuiltinTool::RequestApproval => (
                "request_approval",
                "Ask a human to approve an action before you take it. Returns {approved, comment}.",
                json!({"type": "object", "properties": {
                    "action": {"type": "string", "description": "What you want to do, in one sentence."},
                    "details": {"description": "Anything the approver should see."}
                }, "required": ["action"]}),
            ),
            BuiltinTool::GenerateArtifact => (
                "generate_artifact",
                "Create a document the user can open beside the chat. Returns its artifactKey.",
                json!({"type": "object", "properties": {
                    "kind": {"type": "string", "enum": ["markdown", "code", "html", "json", "csv", "svg", "image"]},
                    "title": {"type": "string"},
                    "language": {"type": "string", "description": "Language of code artifacts."},
                    "content": {"type": "string"}
                }, "required": ["kind", "content"]}),
            ),
            BuiltinTool::ReviseArtifact => (
                "revise_artifact",
                "Replace the content of an artifact you made earlier in this thread with a new revision.",
                json!({"type": "object", "properties": {
                    "artifactKey": {"type": "string"},
                    "title": {"type": "string"},
                    "content": {"type": "string"}
                }, "required": ["artifactKey", "content"]}),
            ),
            BuiltinTool::QueryDataset => (
                "query_dataset",
                "Run one read-only SQL SELECT over an uploaded dataset (its table is named `data`). \
                 Returns {columns, rows} (at most 1000 rows) and shows the rows as a table.",
                json!({"type": "object", "properties": {
                    "dataset": {"type": "string", "description": "The dataset's slug."},
                    "sql": {"type": "string", "description": "A SELECT over the table `data`."}
                }, "required": ["dataset", "sql"]}),
            ),
            BuiltinTool::CreateChart => (
                "create_chart",
                "Chart the rows of a read-only SQL query over an uploaded dataset.",
                json!({"type": "object", "properties": {
                    "dataset": {"type": "string"},
                    "sql": {"type": "string", "description": "A SELECT over the table `data`."},
                    "chart_type": {"type": "string", "enum": ["bar", "line", "pie", "scatter"]},
                    "title": {"type": "string"},
                    "x": {"type": "string", "description": "Column on the x axis."},
                    "y": {"type": "array", "items": {"type": "string"}, "description": "Value columns."}
                }, "required": ["dataset", "sql", "x", "y"]}),
            ),
        };
        ToolSpec { name: name.into(), description: description.into(), parameters }
    }
}

/// How a tool is carried out.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolKind {
    /// Built into the engine.
    Builtin(BuiltinTool),
    /// An HTTP endpoint declared by the agent.
    Http(HttpToolSpec),
    /// A tool of a configured MCP server.
    Mcp {
        /// The server's configured name.
        server: String,
    },
}

/// A tool as offered to one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentTool {
    /// What the model sees.
    pub spec: ToolSpec,
    /// Who provides it: `builtin`, `agent.<agent id>` (HTTP tools), `mcp.<server>`.
    pub entity_id: String,
    /// How it runs.
    pub kind: ToolKind,
    /// Whether each call waits for a human's approval.
    pub requires_approval: bool,
    /// How long such a call waits.
    pub approval_timeout_secs: u64,
}

impl AgentTool {
    /// The catalog id: `<entity>::<name>`.
    pub fn tool_id(&self) -> String {
        format!("{}::{}", self.entity_id, self.spec.name)
    }
}

/// Everything tools need from the server: an HTTP client, secrets, MCP connections, limits.
#[derive(Clone)]
pub struct ToolEnv {
    /// Shared HTTP client for HTTP tools.
    pub http: reqwest::Client,
    /// Secret values by name (`{{secrets.NAME}}`).
    pub secrets: BTreeMap<String, String>,
    /// Default timeout of a tool call.
    pub timeout: Duration,
    /// Largest tool result kept, in bytes.
    pub max_result_bytes: usize,
}

/// The tools enabled for one agent in one turn.
#[derive(Debug, Clone, Default)]
pub struct ToolBox {
    tools: Vec<AgentTool>,
}

impl ToolBox {
    /// The tools an agent declares, minus those switched off in `disabled` (`(entity, name)`).
    pub fn for_agent(agent: &AgentSpec, disabled: &HashSet<(String, String)>) -> Self {
        let builtins = agent.tools.iter().filter_map(|n| BuiltinTool::named(n).map(|b| (b, n)));
        let mut tools: Vec<AgentTool> = builtins
            .map(|(b, name)| {
                let mut tool = builtin_tool(b, agent.approval_timeout_secs());
                tool.requires_approval |= agent.approval_tools.contains(name);
                tool
            })
            .chain(http_tools(agent))
            .collect();
        tools.retain(|t| !disabled.contains(&(t.entity_id.clone(), t.spec.name.clone())));
        ToolBox { tools }
    }

    /// Adds tools found on MCP servers (already filtered by the agent's declaration).
    pub fn extend(&mut self, tools: impl IntoIterator<Item = AgentTool>) {
        self.tools.extend(tools);
    }

    /// Specs offered to the model.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|t| t.spec.clone()).collect()
    }

    /// A tool by the name the model uses.
    pub fn get(&self, name: &str) -> Option<&AgentTool> {
        self.tools.iter().find(|t| t.spec.name == name)
    }
}

/// A built-in tool as offered to agents.
pub fn builtin_tool(builtin: BuiltinTool, approval_timeout_secs: u64) -> AgentTool {
    AgentTool {
        spec: builtin.spec(),
        entity_id: BUILTIN_ENTITY.to_owned(),
        kind: ToolKind::Builtin(builtin),
        requires_approval: builtin == BuiltinTool::RequestApproval,
        approval_timeout_secs,
    }
}

/// Every built-in tool.
pub const ALL_BUILTINS: [BuiltinTool; 8] = [
    BuiltinTool::CurrentTime,
    BuiltinTool::RequestApproval,
    BuiltinTool::GenerateArtifact,
    BuiltinTool::ReviseArtifact,
    BuiltinTool::QueryDataset,
    BuiltinTool::CreateChart,
    BuiltinTool::TriggerTask,
    BuiltinTool::CreateSchedule,
];

/// The HTTP tools an agent declares.
pub fn http_tools(agent: &AgentSpec) -> impl Iterator<Item = AgentTool> + '_ {
    agent.http_tools.iter().map(|http| AgentTool {
        spec: ToolSpec {
            name: http.name.clone(),
            description: http.description.clone(),
            parameters: http.parameters.clone(),
        },
        entity_id: http_entity(&agent.id),
        kind: ToolKind::Http(http.clone()),
        requires_approval: http.requires_approval,
        approval_timeout_secs: http.approval_timeout_secs.unwrap_or(agent.approval_timeout_secs()),
    })
}

/// Checks that what an agent's tools refer to is configured here: the secrets its HTTP tools
/// use and the MCP servers it takes tools from.
pub fn check_declared(
    agent: &AgentSpec,
    secrets: &BTreeMap<String, String>,
    has_mcp_server: impl Fn(&str) -> bool,
) -> Result<(), String> {
    for tool in &agent.http_tools {
        for template in tool.headers.values() {
            for name in agentry_core::tool::secret_references(template) {
                if !secrets.contains_key(&name) {
                    return Err(format!(
                        "http tool `{}` uses secret `{name}`, which is not configured \
                         (add `{name} = \"ENV_VAR\"` under [secrets] in agentry.toml and set that variable)",
                        tool.name
                    ));
                }
            }
        }
    }
    for source in &agent.mcp_tools {
        if !has_mcp_server(&source.server) {
            return Err(format!(
                "mcp_tools: no MCP server `{}` is configured (add [mcp_servers.{}] to agentry.toml)",
                source.server, source.server
            ));
        }
    }
    Ok(())
}

/// The entity id of an agent's HTTP tools.
pub fn http_entity(agent_id: &str) -> String {
    format!("agent.{agent_id}")
}

/// Runs a tool that needs no turn (built-in `current_time`, HTTP and MCP tools).
pub async fn call(
    env: &ToolEnv,
    mcp: &crate::mcp::Mcp,
    tool: &AgentTool,
    params: &Value,
) -> Result<Value, ToolFailure> {
    match &tool.kind {
        ToolKind::Builtin(BuiltinTool::CurrentTime) => {
            let now = Timestamp::now();
            Ok(json!({"iso": now.to_rfc3339(), "unix": now.unix_seconds()}))
        }
        ToolKind::Builtin(other) => Err(ToolFailure::new(format!("`{}` only works inside a turn", other.spec().name))),
        ToolKind::Http(spec) => {
            http::call(&env.http, spec, &env.secrets, params, env.timeout, env.max_result_bytes).await
        }
        ToolKind::Mcp { server } => mcp.call(server, &tool.spec.name, params.clone()).await,
    }
}

/// Keeps a tool result within `max_bytes` of JSON: a larger one is replaced by a truncated
/// preview the model can still use.
pub fn cap_result(result: Value, max_bytes: usize) -> Value {
    let text = result.to_string();
    if text.len() <= max_bytes {
        return result;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    json!({
        "truncated": true,
        "note": format!("the result was {} bytes; the limit is {max_bytes}", text.len()),
        "preview": &text[..end],
    })
}
