//! Agent specifications: what an agent file (TOML/YAML) or the operator API declares.
//!
//! A spec is validated once, here, whichever door it came in through. Every accepted change is
//! stored as an immutable version by the store.

use serde::{Deserialize, Serialize};

use crate::safety::SafetyPolicy;
use crate::scope::Scope;
use crate::tool::{BUILTIN_TOOLS, HttpToolSpec, McpToolsSpec, validate_approval_timeout};

/// Longest agent id accepted.
pub const MAX_AGENT_ID_LEN: usize = 64;
/// Model calls per turn when the agent does not say.
pub const DEFAULT_MAX_STEPS: u32 = 8;
/// Upper bound of `max_steps`.
pub const MAX_MAX_STEPS: u32 = 100;

/// What happens to a message that arrives while the thread's previous turn still runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BusyPolicy {
    /// Queue it; it runs when the previous turn ends.
    #[default]
    Enqueue,
    /// Refuse it with `error{code:"turn_in_progress"}` and `done`.
    Reject,
}

/// Message rate limits: per user per minute, hour and day, per org per minute and day, and
/// unfinished turns per user at once. Unset keys do not limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Messages one user may send per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_per_minute: Option<u32>,
    /// Messages one user may send per hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_per_hour: Option<u32>,
    /// Messages one user may send per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_per_day: Option<u32>,
    /// Messages an organization may send per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_per_minute: Option<u32>,
    /// Messages an organization may send per day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_per_day: Option<u32>,
    /// Turns one user may have unfinished (queued, running, waiting) at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_concurrent_turns: Option<u32>,
}

impl RateLimits {
    /// True when no key is set.
    pub fn is_unset(&self) -> bool {
        *self == RateLimits::default()
    }

    /// These limits, with each key `over` sets taking its place.
    pub fn overridden_by(&self, over: &RateLimits) -> RateLimits {
        RateLimits {
            user_per_minute: over.user_per_minute.or(self.user_per_minute),
            user_per_hour: over.user_per_hour.or(self.user_per_hour),
            user_per_day: over.user_per_day.or(self.user_per_day),
            org_per_minute: over.org_per_minute.or(self.org_per_minute),
            org_per_day: over.org_per_day.or(self.org_per_day),
            user_concurrent_turns: over.user_concurrent_turns.or(self.user_concurrent_turns),
        }
    }
}

/// What a turn does when a budget cap is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPolicy {
    /// End the turn with `error{code:"budget_cap"}` + `done`.
    #[default]
    Stop,
    /// Park the turn (`waiting`, reason `budget`) until the cap is raised, overridden or its
    /// window rolls over, then continue it.
    Pause,
}

/// A prompt section the caller fills per message (`dynamicBlocks: {key: content}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DynamicBlock {
    /// Key the caller uses.
    pub key: String,
    /// Heading injected into the system prompt (`## <name>`).
    pub name: String,
    /// Content used when the caller sends none.
    #[serde(default, alias = "defaultContent")]
    pub default_content: String,
    /// For humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Position among the blocks (ascending; ties keep file order).
    #[serde(default)]
    pub order: i64,
}

/// Canned behaviour for the `scripted:` provider (tests and demos).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Delay before each streamed token, to make turns observable (cancel, resume).
    #[serde(default, alias = "tokenDelayMs")]
    pub token_delay_ms: u64,
    /// `scripted:steps`: one step per model call within a turn.
    #[serde(default)]
    pub steps: Vec<ScriptStep>,
}

/// One model call of a scripted agent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptStep {
    /// Reasoning streamed as `thinking` before the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// Text streamed word by word.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Tool calls made at the end of the step.
    #[serde(default, alias = "toolCalls", skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ScriptToolCall>,
    /// Makes the provider fail with this cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A tool call in a script step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptToolCall {
    /// Tool name.
    pub name: String,
    /// Arguments object.
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// An agent's safety policy per direction (`[safety] input = "block", output = "redact"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SafetySpec {
    /// Applied to the user's message before the model sees it (default `flag`).
    #[serde(default)]
    pub input: SafetyPolicy,
    /// Applied to the answer before it is stored (default `flag`).
    #[serde(default)]
    pub output: SafetyPolicy,
}

impl SafetySpec {
    fn is_default(&self) -> bool {
        *self == SafetySpec::default()
    }
}

/// A model reference of the form `provider:model`, e.g. `openai:gpt-4o-mini`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// Provider name: `scripted`, `local`, `openai`, `anthropic`, or a configured provider
    /// (`[providers.<name>]`); whether it exists is checked by the provider registry.
    pub provider: String,
    /// Provider-specific model name (may itself contain `:` or `/`).
    pub model: String,
}

impl ModelRef {
    /// Parses `provider:model`, rejecting malformed provider names and empty parts.
    pub fn parse(value: &str) -> Result<Self, AgentSpecError> {
        let (provider, model) = value.split_once(':').ok_or_else(|| AgentSpecError::Invalid {
            field: "model",
            problem: format!("`{value}` must have the form provider:model, e.g. scripted:echo"),
        })?;
        let valid_name = !provider.is_empty()
            && provider.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_name {
            return Err(AgentSpecError::Invalid {
                field: "model",
                problem: format!("provider `{provider}` must be lowercase letters, digits, `-` or `_`"),
            });
        }
        if model.trim().is_empty() {
            return Err(AgentSpecError::Invalid {
                field: "model",
                problem: format!("`{value}` names no model after the provider"),
            });
        }
        Ok(ModelRef { provider: provider.to_owned(), model: model.to_owned() })
    }
}

/// How the model picks each next token. Each key is optional: a provider uses its own default for
/// what is unset (the embedded model: temperature 0, repetition penalty 1.1; top-p 0.9 and seed 0
/// when it samples).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SamplingSpec {
    /// 0 takes the likeliest token every time; higher is more varied (0..=2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling: draw from the likeliest tokens whose probabilities add up to this (0..=1).
    #[serde(default, alias = "topP", skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// How much less likely a token already in the recent text becomes; 1 is no penalty (1..=2).
    /// The embedded model only.
    #[serde(default, alias = "repetitionPenalty", skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f64>,
    /// Seed of the sampler: the same seed and prompt give the same answer (embedded model, and
    /// OpenAI-compatible servers that honour `seed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// Validation refuses NaN (the only value not equal to itself), so equality is total.
impl Eq for SamplingSpec {}

impl SamplingSpec {
    /// True when every key is unset.
    pub fn is_unset(&self) -> bool {
        *self == SamplingSpec::default()
    }

    fn validate(&self) -> Result<(), AgentSpecError> {
        let ranges = [
            ("sampling.temperature", self.temperature, 0.0, 2.0),
            ("sampling.top_p", self.top_p, f64::MIN_POSITIVE, 1.0),
            ("sampling.repetition_penalty", self.repetition_penalty, 1.0, 2.0),
        ];
        for (field, value, low, high) in ranges {
            if let Some(value) = value
                && !(value.is_finite() && (low..=high).contains(&value))
            {
                let low = if low == f64::MIN_POSITIVE { "above 0".to_owned() } else { format!("from {low}") };
                return Err(AgentSpecError::Invalid { field, problem: format!("{value} is not {low} to {high}") });
            }
        }
        Ok(())
    }
}

/// An agent as declared in a file or through the operator API.
///
/// Unknown keys are rejected so that a typo in an agent file fails loudly instead of being ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Stable id, unique within a scope (`[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 64 characters).
    pub id: String,
    /// Human name.
    pub name: String,
    /// `provider:model`.
    pub model: String,
    /// System prompt; may use `{{user.name}}` and `{{user.email}}`.
    #[serde(alias = "systemPrompt", default)]
    pub system_prompt: String,
    /// Optional description shown in listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Model calls per turn (tool loop bound); default 8.
    #[serde(default, alias = "maxSteps", skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// Policy for a message that arrives while a turn runs; default `enqueue`.
    #[serde(default, alias = "onBusy", skip_serializing_if = "Option::is_none")]
    pub on_busy: Option<BusyPolicy>,
    /// What a turn does when a budget cap is reached; default `stop`.
    #[serde(default, alias = "onBudget", skip_serializing_if = "Option::is_none")]
    pub on_budget: Option<BudgetPolicy>,
    /// Message rate limits for this agent's turns (each key overrides the server's).
    #[serde(default, alias = "rateLimits", skip_serializing_if = "RateLimits::is_unset")]
    pub rate_limits: RateLimits,
    /// Prompt sections filled per message.
    #[serde(default, alias = "dynamicBlocks", skip_serializing_if = "Vec::is_empty")]
    pub dynamic_blocks: Vec<DynamicBlock>,
    /// Built-in tools the agent may call: `current_time`, `request_approval`,
    /// `generate_artifact`, `revise_artifact`, `query_dataset`, `create_chart`, `trigger_task`,
    /// `create_schedule`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Dataset slugs the dataset tools may read when an end user talks to this agent (operators
    /// read every dataset of the scope).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<String>,
    /// Built-in tools (of `tools`) whose every call waits for a human's approval.
    #[serde(default, alias = "approvalTools", skip_serializing_if = "Vec::is_empty")]
    pub approval_tools: Vec<String>,
    /// HTTP endpoints the agent may call as tools.
    #[serde(default, alias = "httpTools", skip_serializing_if = "Vec::is_empty")]
    pub http_tools: Vec<HttpToolSpec>,
    /// Tools from configured MCP servers.
    #[serde(default, alias = "mcpTools", skip_serializing_if = "Vec::is_empty")]
    pub mcp_tools: Vec<McpToolsSpec>,
    /// How long a call needing approval waits, in seconds (default 300, at most 7 days).
    #[serde(default, alias = "approvalTimeoutSecs", skip_serializing_if = "Option::is_none")]
    pub approval_timeout_secs: Option<u64>,
    /// Safety policy for the user's messages and the agent's answers.
    #[serde(default, skip_serializing_if = "SafetySpec::is_default")]
    pub safety: SafetySpec,
    /// How the model picks tokens (`[sampling]`: temperature, top_p, repetition_penalty, seed).
    #[serde(default, skip_serializing_if = "SamplingSpec::is_unset")]
    pub sampling: SamplingSpec,
    /// Canned behaviour for `scripted:` models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<Script>,
    /// Organization the agent belongs to (agent files only; default `default`).
    #[serde(default, alias = "organizationId", skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Project the agent belongs to (agent files only; default `default`).
    #[serde(default, alias = "projectId", skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Environment the agent belongs to (agent files only; default `default`).
    #[serde(default, alias = "environmentId", skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// Why an agent spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentSpecError {
    /// A field has a value that is not allowed.
    #[error("agent field `{field}`: {problem}")]
    Invalid {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

impl AgentSpec {
    /// A minimal spec; every optional key at its default.
    pub fn new(
        id: impl Into<String>,
        name: impl Into<String>,
        model: impl Into<String>,
        system_prompt: impl Into<String>,
    ) -> Self {
        AgentSpec {
            id: id.into(),
            name: name.into(),
            model: model.into(),
            system_prompt: system_prompt.into(),
            description: None,
            max_steps: None,
            on_busy: None,
            on_budget: None,
            rate_limits: RateLimits::default(),
            dynamic_blocks: Vec::new(),
            tools: Vec::new(),
            approval_tools: Vec::new(),
            datasets: Vec::new(),
            http_tools: Vec::new(),
            mcp_tools: Vec::new(),
            approval_timeout_secs: None,
            safety: SafetySpec::default(),
            sampling: SamplingSpec::default(),
            script: None,
            organization: None,
            project: None,
            environment: None,
        }
    }

    /// Checks the spec; the first problem, if any (see [`AgentSpec::problems`] for all of them).
    pub fn validate(&self) -> Result<(), AgentSpecError> {
        self.problems().into_iter().next().map_or(Ok(()), Err)
    }

    /// Every problem of the spec, in field order, so a file or a request can be fixed in one go.
    pub fn problems(&self) -> Vec<AgentSpecError> {
        let mut problems = Vec::new();
        let mut check = |result: Result<(), AgentSpecError>| {
            if let Err(problem) = result {
                problems.push(problem);
            }
        };
        check(validate_agent_id(&self.id));
        if let Some(path) = serde_json::to_value(self).ok().as_ref().and_then(crate::nul_path) {
            check(Err(AgentSpecError::Invalid {
                field: "spec",
                problem: format!("`{path}` contains a NUL character"),
            }));
        }
        if self.name.trim().is_empty() {
            check(Err(AgentSpecError::Invalid { field: "name", problem: "must not be empty".into() }));
        }
        check(ModelRef::parse(&self.model).map(|_| ()));
        check(self.sampling.validate());
        if let Some(steps) = self.max_steps
            && !(1..=MAX_MAX_STEPS).contains(&steps)
        {
            check(Err(AgentSpecError::Invalid {
                field: "max_steps",
                problem: format!("{steps} is outside 1..={MAX_MAX_STEPS}"),
            }));
        }
        for tool in &self.tools {
            if !BUILTIN_TOOLS.contains(&tool.as_str()) {
                check(Err(AgentSpecError::Invalid {
                    field: "tools",
                    problem: format!("unknown tool `{tool}` (available: {})", BUILTIN_TOOLS.join(", ")),
                }));
            }
        }
        for tool in &self.approval_tools {
            if !self.tools.contains(tool) {
                check(Err(AgentSpecError::Invalid {
                    field: "approval_tools",
                    problem: format!("`{tool}` is not one of the agent's `tools`"),
                }));
            }
        }
        let mut names: std::collections::HashSet<&str> = self.tools.iter().map(String::as_str).collect();
        for tool in &self.http_tools {
            check(tool.validate());
            if BUILTIN_TOOLS.contains(&tool.name.as_str()) || !names.insert(&tool.name) {
                check(Err(AgentSpecError::Invalid {
                    field: "http_tools",
                    problem: format!("tool name `{}` is used twice (or is a built-in)", tool.name),
                }));
            }
        }
        for source in &self.mcp_tools {
            if source.server.trim().is_empty() {
                check(Err(AgentSpecError::Invalid { field: "mcp_tools", problem: "server must not be empty".into() }));
            }
            for name in &source.tools {
                check(crate::tool::validate_tool_name(name));
            }
            check(validate_approval_timeout("mcp_tools", source.approval_timeout_secs));
        }
        check(validate_approval_timeout("approval_timeout_secs", self.approval_timeout_secs));
        let mut keys = std::collections::HashSet::new();
        for block in &self.dynamic_blocks {
            if block.key.trim().is_empty() || !keys.insert(block.key.as_str()) {
                check(Err(AgentSpecError::Invalid {
                    field: "dynamic_blocks",
                    problem: format!("block keys must be non-empty and unique (`{}`)", block.key),
                }));
            }
        }
        for (field, value) in
            [("organization", &self.organization), ("project", &self.project), ("environment", &self.environment)]
        {
            if let Some(value) = value
                && value.trim().is_empty()
            {
                check(Err(AgentSpecError::Invalid { field, problem: "must not be empty".into() }));
            }
        }
        problems
    }

    /// The scope named by the file, defaulting each missing part to `default`.
    pub fn declared_scope(&self) -> Scope {
        let part = |v: &Option<String>| v.clone().unwrap_or_else(|| "default".to_owned());
        Scope::new(part(&self.organization), part(&self.project), part(&self.environment))
    }

    /// Seconds a call needing approval waits by default.
    pub fn approval_timeout_secs(&self) -> u64 {
        self.approval_timeout_secs.unwrap_or(crate::approval::DEFAULT_APPROVAL_TIMEOUT_SECS)
    }

    /// Model calls allowed per turn.
    pub fn max_steps(&self) -> u32 {
        self.max_steps.unwrap_or(DEFAULT_MAX_STEPS)
    }

    /// The spec as stored in a version: without the scope keys, which the row carries.
    pub fn without_scope(&self) -> AgentSpec {
        AgentSpec { organization: None, project: None, environment: None, ..self.clone() }
    }
}

/// Checks an agent id's shape.
pub fn validate_agent_id(id: &str) -> Result<(), AgentSpecError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !first_ok || !rest_ok || id.len() > MAX_AGENT_ID_LEN {
        return Err(AgentSpecError::Invalid {
            field: "id",
            problem: format!(
                "`{id}` must start with a letter or digit, use only letters, digits, `_`, `-`, `.`, and be at most {MAX_AGENT_ID_LEN} characters"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, model: &str) -> AgentSpec {
        AgentSpec::new(id, "N", model, "")
    }

    #[test]
    fn model_refs_need_a_known_provider_and_a_model() {
        assert_eq!(ModelRef::parse("openai:gpt-4o-mini").map(|m| m.model), Ok("gpt-4o-mini".to_owned()));
        assert_eq!(ModelRef::parse("local:/models/x.gguf").map(|m| m.model), Ok("/models/x.gguf".to_owned()));
        assert!(ModelRef::parse("gpt4").is_err());
        assert!(ModelRef::parse("No Pe:x").is_err());
        assert!(ModelRef::parse("ollama:llama3.2").is_ok());
        assert!(ModelRef::parse("openai:").is_err());
    }

    #[test]
    fn ids_are_checked() {
        assert!(spec("support-bot.v2", "scripted:echo").validate().is_ok());
        assert!(spec("", "scripted:echo").validate().is_err());
        assert!(spec("-x", "scripted:echo").validate().is_err());
        assert!(spec("a b", "scripted:echo").validate().is_err());
        assert!(spec(&"a".repeat(65), "scripted:echo").validate().is_err());
    }

    #[test]
    fn limits_tools_and_blocks_are_checked() {
        let mut s = spec("a", "scripted:echo");
        s.max_steps = Some(0);
        assert!(s.validate().is_err());
        s.max_steps = Some(3);
        s.tools = vec!["current_time".into()];
        assert!(s.validate().is_ok());
        s.tools = vec!["rm_rf".into()];
        assert!(s.validate().is_err());
        s.tools.clear();
        let block = DynamicBlock {
            key: "k".into(),
            name: "K".into(),
            default_content: String::new(),
            description: None,
            order: 0,
        };
        s.dynamic_blocks = vec![block.clone(), block];
        assert!(s.validate().is_err());
    }

    #[test]
    fn declared_scope_defaults_each_part() {
        let mut s = spec("a", "scripted:echo");
        s.organization = Some("acme".into());
        assert_eq!(s.declared_scope(), Scope::new("acme", "default", "default"));
    }

    #[test]
    fn a_nul_character_anywhere_is_refused_by_path() {
        let spec = AgentSpec { system_prompt: "be kind\0".into(), ..AgentSpec::new("a", "A", "scripted:echo", "") };
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains("system_prompt") && err.contains("NUL"), "{err}");
        assert!(crate::nul_path(&serde_json::json!({"a": [{"b": "x"}, {"c": "\u{0}"}]})).as_deref() == Some("a[1].c"));
    }

    #[test]
    fn sampling_values_read_back_from_the_stored_json_unchanged() {
        // Found by the `agent_toml` fuzz target: without serde_json's `float_roundtrip`, `4e-25`
        // read back as 3.9999999999999997e-25, so the stored spec differed from the file's.
        let mut spec = spec("a", "scripted:echo");
        spec.sampling.temperature = Some(4e-25);
        spec.sampling.top_p = Some(0.1 + 0.2);
        let back: AgentSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(back, spec);
    }
}
