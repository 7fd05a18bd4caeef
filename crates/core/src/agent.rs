//! Agent specifications: what an agent file (TOML/YAML) or the operator API declares.
//!
//! A spec is validated once, here, whichever door it came in through. Every accepted change is
//! stored as an immutable version by the store.

use serde::{Deserialize, Serialize};

use crate::scope::Scope;

/// The providers an agent's `model` may name. The providers themselves live in the `llm` crate.
pub const KNOWN_PROVIDERS: &[&str] = &["scripted", "local", "openai", "anthropic"];

/// Longest agent id accepted.
pub const MAX_AGENT_ID_LEN: usize = 64;

/// A model reference of the form `provider:model`, e.g. `openai:gpt-4o-mini`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRef {
    /// Provider name, one of [`KNOWN_PROVIDERS`].
    pub provider: String,
    /// Provider-specific model name (may itself contain `:` or `/`).
    pub model: String,
}

impl ModelRef {
    /// Parses `provider:model`, rejecting unknown providers and empty parts.
    pub fn parse(value: &str) -> Result<Self, AgentSpecError> {
        let (provider, model) = value.split_once(':').ok_or_else(|| AgentSpecError::Invalid {
            field: "model",
            problem: format!("`{value}` must have the form provider:model, e.g. scripted:echo"),
        })?;
        if !KNOWN_PROVIDERS.contains(&provider) {
            return Err(AgentSpecError::Invalid {
                field: "model",
                problem: format!("unknown provider `{provider}` (known: {})", KNOWN_PROVIDERS.join(", ")),
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

/// An agent as declared in a file or through the operator API.
///
/// Unknown keys are rejected so that a typo in an agent file fails loudly instead of being ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Checks every field; returns the first problem found.
    pub fn validate(&self) -> Result<(), AgentSpecError> {
        validate_agent_id(&self.id)?;
        if self.name.trim().is_empty() {
            return Err(AgentSpecError::Invalid { field: "name", problem: "must not be empty".into() });
        }
        ModelRef::parse(&self.model)?;
        for (field, value) in
            [("organization", &self.organization), ("project", &self.project), ("environment", &self.environment)]
        {
            if let Some(value) = value
                && value.trim().is_empty()
            {
                return Err(AgentSpecError::Invalid { field, problem: "must not be empty".into() });
            }
        }
        Ok(())
    }

    /// The scope named by the file, defaulting each missing part to `default`.
    pub fn declared_scope(&self) -> Scope {
        let part = |v: &Option<String>| v.clone().unwrap_or_else(|| "default".to_owned());
        Scope::new(part(&self.organization), part(&self.project), part(&self.environment))
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
        AgentSpec {
            id: id.into(),
            name: "N".into(),
            model: model.into(),
            system_prompt: String::new(),
            description: None,
            organization: None,
            project: None,
            environment: None,
        }
    }

    #[test]
    fn model_refs_need_a_known_provider_and_a_model() {
        assert_eq!(ModelRef::parse("openai:gpt-4o-mini").map(|m| m.model), Ok("gpt-4o-mini".to_owned()));
        assert_eq!(ModelRef::parse("local:/models/x.gguf").map(|m| m.model), Ok("/models/x.gguf".to_owned()));
        assert!(ModelRef::parse("gpt4").is_err());
        assert!(ModelRef::parse("nope:x").is_err());
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
    fn declared_scope_defaults_each_part() {
        let mut s = spec("a", "scripted:echo");
        s.organization = Some("acme".into());
        assert_eq!(s.declared_scope(), Scope::new("acme", "default", "default"));
    }
}
