//! Tools an agent may call. The loop in the runner is generic over them; this module holds the
//! built-in ones (more kinds — HTTP, MCP — plug in here).

use agentry_core::Timestamp;
use agentry_llm::ToolSpec;
use serde_json::{Value, json};

/// A built-in tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinTool {
    /// The current time in UTC.
    CurrentTime,
}

impl BuiltinTool {
    /// Looks a tool up by the name agents use.
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "current_time" => Some(BuiltinTool::CurrentTime),
            _ => None,
        }
    }

    /// What the model is told about it.
    pub fn spec(self) -> ToolSpec {
        match self {
            BuiltinTool::CurrentTime => ToolSpec {
                name: "current_time".into(),
                description: "The current date and time in UTC.".into(),
                parameters: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            },
        }
    }

    /// Runs it. `Err` is a tool failure the model is told about; the turn goes on.
    pub async fn call(self, _arguments: &Value) -> Result<Value, String> {
        match self {
            BuiltinTool::CurrentTime => {
                let now = Timestamp::now();
                Ok(json!({"iso": now.to_rfc3339(), "unix": now.unix_seconds()}))
            }
        }
    }
}

/// The tools enabled for one agent.
#[derive(Debug, Clone, Default)]
pub struct ToolBox {
    tools: Vec<BuiltinTool>,
}

impl ToolBox {
    /// The tools an agent lists (unknown names were refused when the agent was applied).
    pub fn for_agent(names: &[String]) -> Self {
        ToolBox { tools: names.iter().filter_map(|n| BuiltinTool::named(n)).collect() }
    }

    /// Specs offered to the model.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|t| t.spec()).collect()
    }

    /// Calls a tool by name; a name the agent does not have is a tool error, not a turn failure.
    pub async fn call(&self, name: &str, arguments: &Value) -> Result<Value, String> {
        match self.tools.iter().find(|t| t.spec().name == name) {
            Some(tool) => tool.call(arguments).await,
            None => Err(format!("unknown tool `{name}`")),
        }
    }
}
