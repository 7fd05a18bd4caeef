//! Tool declarations of an agent: built-in names, HTTP tools and MCP server tools.
//!
//! Secrets never live in agent files: an HTTP tool's header refers to a secret by name
//! (`{{secrets.NAME}}`) and the server's configuration maps the name to an environment variable.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::AgentSpecError;
use crate::approval::MAX_APPROVAL_TIMEOUT_SECS;

/// Built-in tools an agent may list in `tools`.
pub const BUILTIN_TOOLS: &[&str] = &[
    "current_time",
    "request_approval",
    "generate_artifact",
    "revise_artifact",
    "query_dataset",
    "create_chart",
    "trigger_task",
    "create_schedule",
];
/// Longest HTTP tool timeout accepted, in seconds.
pub const MAX_HTTP_TIMEOUT_SECS: u64 = 300;
/// Entity id under which built-in tools are listed.
pub const BUILTIN_ENTITY: &str = "builtin";

/// HTTP methods an HTTP tool may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// Arguments not used by the URL go in the query string.
    #[default]
    Get,
    /// Arguments not used by the URL go in a JSON body.
    Post,
    /// Like POST.
    Put,
    /// Like POST.
    Patch,
    /// Like GET.
    Delete,
}

impl HttpMethod {
    /// True when the remaining arguments travel as a JSON body.
    pub fn has_body(self) -> bool {
        matches!(self, HttpMethod::Post | HttpMethod::Put | HttpMethod::Patch)
    }
}

/// An HTTP endpoint the agent may call as a tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpToolSpec {
    /// Tool name the model uses (`[A-Za-z0-9_-]`, at most 64 characters).
    pub name: String,
    /// What the tool does, for the model.
    #[serde(default)]
    pub description: String,
    /// Method; default GET.
    #[serde(default)]
    pub method: HttpMethod,
    /// URL template: `{param}` is replaced by the percent-encoded argument of that name.
    pub url: String,
    /// Extra headers; values may use `{{secrets.NAME}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// JSON Schema of the arguments (default: an object without declared properties).
    #[serde(default = "empty_object_schema")]
    pub parameters: Value,
    /// Seconds before the call fails (default: the server's tool timeout).
    #[serde(default, alias = "timeoutSecs", skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// A human must approve each call.
    #[serde(default, alias = "requiresApproval")]
    pub requires_approval: bool,
    /// How long a call waits for approval (default: the agent's `approval_timeout_secs`).
    #[serde(default, alias = "approvalTimeoutSecs", skip_serializing_if = "Option::is_none")]
    pub approval_timeout_secs: Option<u64>,
}

/// Tools taken from a configured MCP server (`[mcp_servers.<server>]` in the server config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct McpToolsSpec {
    /// The configured server's name.
    pub server: String,
    /// Tools offered to the model; empty means every tool the server lists.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Tools whose calls need a human's approval; `"*"` means all of them.
    #[serde(default, alias = "requiresApproval", skip_serializing_if = "Vec::is_empty")]
    pub requires_approval: Vec<String>,
    /// How long a call waits for approval (default: the agent's `approval_timeout_secs`).
    #[serde(default, alias = "approvalTimeoutSecs", skip_serializing_if = "Option::is_none")]
    pub approval_timeout_secs: Option<u64>,
}

impl McpToolsSpec {
    /// Whether the server's tool `name` is offered.
    pub fn offers(&self, name: &str) -> bool {
        self.tools.is_empty() || self.tools.iter().any(|t| t == name)
    }

    /// Whether calls of `name` need approval.
    pub fn needs_approval(&self, name: &str) -> bool {
        self.requires_approval.iter().any(|t| t == "*" || t == name)
    }
}

fn empty_object_schema() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

/// Checks a tool name's shape (what model APIs accept).
pub fn validate_tool_name(name: &str) -> Result<(), AgentSpecError> {
    let ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(AgentSpecError::Invalid {
            field: "tools",
            problem: format!("tool name `{name}` must be 1–64 letters, digits, `_` or `-`"),
        })
    }
}

/// Checks an approval timeout.
pub fn validate_approval_timeout(field: &'static str, secs: Option<u64>) -> Result<(), AgentSpecError> {
    match secs {
        Some(secs) if secs == 0 || secs > MAX_APPROVAL_TIMEOUT_SECS => Err(AgentSpecError::Invalid {
            field,
            problem: format!("{secs} is outside 1..={MAX_APPROVAL_TIMEOUT_SECS} seconds (7 days)"),
        }),
        _ => Ok(()),
    }
}

/// Header names whose values are credentials: they must come from a secret, never a literal.
fn is_credential_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name == "authorization" || name.contains("token") || name.contains("key") || name.contains("secret")
}

/// The secret names a template refers to with `{{secrets.NAME}}`.
pub fn secret_references(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else { break };
        if let Some(name) = rest[start + 2..start + len].trim().strip_prefix("secrets.") {
            names.push(name.trim().to_owned());
        }
        rest = &rest[start + len + 2..];
    }
    names
}

/// The `{param}` placeholders of a URL template.
pub fn url_placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else { break };
        names.push(rest[start + 1..start + len].to_owned());
        rest = &rest[start + len + 1..];
    }
    names
}

impl HttpToolSpec {
    /// Checks the declaration: name, URL, timeouts, and that credentials come from secrets.
    pub fn validate(&self) -> Result<(), AgentSpecError> {
        let invalid = |problem: String| AgentSpecError::Invalid { field: "http_tools", problem };
        validate_tool_name(&self.name)
            .map_err(|_| invalid(format!("name `{}` is not a valid tool name", self.name)))?;
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(invalid(format!("`{}`: url must start with http:// or https://", self.name)));
        }
        for placeholder in url_placeholders(&self.url) {
            if placeholder.is_empty() || !placeholder.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(format!("`{}`: bad url placeholder `{{{placeholder}}}`", self.name)));
            }
        }
        if !self.parameters.is_object() {
            return Err(invalid(format!("`{}`: parameters must be a JSON Schema object", self.name)));
        }
        if let Some(secs) = self.timeout_secs
            && (secs == 0 || secs > MAX_HTTP_TIMEOUT_SECS)
        {
            return Err(invalid(format!(
                "`{}`: timeout_secs {secs} is outside 1..={MAX_HTTP_TIMEOUT_SECS}",
                self.name
            )));
        }
        validate_approval_timeout("http_tools", self.approval_timeout_secs)?;
        for (header, value) in &self.headers {
            if is_credential_header(header) && secret_references(value).is_empty() {
                return Err(invalid(format!(
                    "`{}`: header `{header}` looks like a credential; reference a secret as {{{{secrets.NAME}}}} \
                     (configured under [secrets] in agentry.toml) instead of writing it in the agent file",
                    self.name
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(url: &str) -> HttpToolSpec {
        HttpToolSpec {
            name: "lookup".into(),
            description: String::new(),
            method: HttpMethod::Get,
            url: url.into(),
            headers: BTreeMap::new(),
            parameters: empty_object_schema(),
            timeout_secs: None,
            requires_approval: false,
            approval_timeout_secs: None,
        }
    }

    #[test]
    fn http_tools_need_http_urls_and_secret_credentials() {
        assert!(http("http://127.0.0.1:1/orders/{id}").validate().is_ok());
        assert!(http("ftp://x").validate().is_err());
        assert!(http("http://x/{a b}").validate().is_err());
        let mut tool = http("https://api.example.com");
        tool.headers.insert("Authorization".into(), "Bearer sk-literal".into());
        assert!(tool.validate().is_err());
        tool.headers.insert("Authorization".into(), "Bearer {{secrets.shop}}".into());
        assert!(tool.validate().is_ok());
        tool.approval_timeout_secs = Some(MAX_APPROVAL_TIMEOUT_SECS + 1);
        assert!(tool.validate().is_err());
    }

    #[test]
    fn templates_are_read() {
        assert_eq!(secret_references("Bearer {{ secrets.a }} {{secrets.b}} {{x}}"), vec!["a", "b"]);
        assert_eq!(url_placeholders("http://h/{a}/x/{b_2}?q=1"), vec!["a", "b_2"]);
    }

    #[test]
    fn mcp_selection() {
        let spec = McpToolsSpec {
            server: "s".into(),
            tools: vec![],
            requires_approval: vec!["rm".into()],
            approval_timeout_secs: None,
        };
        assert!(spec.offers("anything"));
        assert!(spec.needs_approval("rm") && !spec.needs_approval("ls"));
    }
}
