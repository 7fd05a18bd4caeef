//! Provider configuration: the `[providers.<name>]` tables of `agentry.toml`.
//!
//! ```toml
//! [providers.openai]                       # kind defaults to the name for openai/anthropic
//! api_key_env = "OPENAI_API_KEY"           # the key is read from the environment, never logged
//! [providers.openai.prices."gpt-4o-mini"]  # cents per million tokens
//! input = 15
//! output = 60
//! cached_input = 7.5
//!
//! [providers.ollama]                       # any OpenAI-compatible server: vLLM, Ollama, llama.cpp
//! kind = "openai"
//! base_url = "http://127.0.0.1:11434/v1"
//! ```
//! An agent then names `openai:gpt-4o-mini` or `ollama:llama3.2`.

use std::collections::BTreeMap;
use std::time::Duration;

use agentry_core::MicroCents;
use serde::Deserialize;

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI Chat Completions (and every compatible server).
    #[serde(alias = "openai-compatible")]
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

/// Price of a model in cents per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Prompt tokens not served from cache.
    #[serde(default)]
    pub input: f64,
    /// Completion tokens.
    #[serde(default)]
    pub output: f64,
    /// Prompt tokens served from cache (defaults to the input price).
    #[serde(default)]
    pub cached_input: Option<f64>,
}

impl Price {
    /// Cost of a call's usage. Prices are cents per million tokens, i.e. micro-cents per token;
    /// each part is rounded up.
    pub fn cost(&self, usage: &crate::ModelUsage) -> MicroCents {
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let fresh = usage.input_tokens - cached;
        MicroCents::for_tokens(fresh, self.input)
            + MicroCents::for_tokens(cached, self.cached_input.unwrap_or(self.input))
            + MicroCents::for_tokens(usage.output_tokens, self.output)
    }
}

/// A `[providers.<name>]` table as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    /// `openai` or `anthropic`; defaults to the table name when that is one of them.
    pub kind: Option<ProviderKind>,
    /// API base URL (OpenAI style includes `/v1`).
    pub base_url: Option<String>,
    /// Environment variable holding the key.
    pub api_key_env: Option<String>,
    /// Seconds before a request (or a silent stream) times out.
    pub timeout_secs: Option<u64>,
    /// Retries on 429/5xx/connection errors before the first token.
    pub max_retries: Option<u32>,
    /// Whether to stream when tools are offered (some servers cannot; they get a plain request).
    pub stream_tools: Option<bool>,
    /// Completion token limit sent with each request (Anthropic requires one).
    pub max_tokens: Option<u32>,
    /// OpenAI `tool_choice` sent when tools are offered (`auto`, `required`, `none`); some
    /// servers ignore tools unless it is given (llama-cpp-python).
    pub tool_choice: Option<String>,
    /// Anthropic extended thinking budget (enables thinking).
    pub thinking_budget_tokens: Option<u32>,
    /// Prices per model name.
    #[serde(default)]
    pub prices: BTreeMap<String, Price>,
}

/// A resolved provider configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// Protocol.
    pub kind: ProviderKind,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// The key (from the environment), if any. Never logged.
    pub api_key: Option<String>,
    /// Request timeout.
    pub timeout: Duration,
    /// Retries before the first token.
    pub max_retries: u32,
    /// Stream even when tools are offered.
    pub stream_tools: bool,
    /// Completion token limit.
    pub max_tokens: u32,
    /// `tool_choice` sent with tools.
    pub tool_choice: Option<String>,
    /// Anthropic thinking budget.
    pub thinking_budget_tokens: Option<u32>,
    /// Prices per model.
    pub prices: BTreeMap<String, Price>,
}

impl ProviderConfig {
    /// Resolves a section; `env` reads environment variables. Errors name the problem.
    pub fn from_section(
        name: &str,
        section: &ProviderSection,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, String> {
        let kind = match (section.kind, name) {
            (Some(kind), _) => kind,
            (None, "openai") => ProviderKind::OpenAi,
            (None, "anthropic") => ProviderKind::Anthropic,
            (None, _) => return Err(format!("providers.{name}: `kind` is required (openai or anthropic)")),
        };
        let default_base = match kind {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
        };
        let base_url = section.base_url.clone().unwrap_or_else(|| default_base.to_owned());
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(format!("providers.{name}.base_url: `{base_url}` must start with http:// or https://"));
        }
        let default_env = match kind {
            ProviderKind::OpenAi if name == "openai" => Some("OPENAI_API_KEY"),
            ProviderKind::Anthropic if name == "anthropic" => Some("ANTHROPIC_API_KEY"),
            _ => None,
        };
        let api_key = section.api_key_env.as_deref().or(default_env).and_then(&env).filter(|k| !k.is_empty());
        Ok(ProviderConfig {
            kind,
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            timeout: Duration::from_secs(section.timeout_secs.unwrap_or(120)),
            max_retries: section.max_retries.unwrap_or(2),
            stream_tools: section.stream_tools.unwrap_or(true),
            max_tokens: section.max_tokens.unwrap_or(1024),
            tool_choice: section.tool_choice.clone(),
            thinking_budget_tokens: section.thinking_budget_tokens,
            prices: section.prices.clone(),
        })
    }

    /// Cost of a call's usage for `model`, from the price table (zero when unpriced).
    pub fn cost(&self, model: &str, usage: &crate::ModelUsage) -> MicroCents {
        self.prices.get(model).map_or(MicroCents::ZERO, |price| price.cost(usage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(json: &str) -> ProviderSection {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn kinds_default_from_well_known_names_and_keys_come_from_the_environment() {
        let env = |var: &str| (var == "OPENAI_API_KEY").then(|| "sk-test".to_owned());
        let openai = ProviderConfig::from_section("openai", &ProviderSection::default(), env).unwrap();
        assert_eq!((openai.kind, openai.base_url.as_str()), (ProviderKind::OpenAi, "https://api.openai.com/v1"));
        assert_eq!(openai.api_key.as_deref(), Some("sk-test"));
        let custom = section(r#"{"kind": "openai", "base_url": "http://127.0.0.1:8080/v1/", "api_key_env": "NOPE"}"#);
        let custom = ProviderConfig::from_section("local-llama", &custom, env).unwrap();
        assert_eq!((custom.base_url.as_str(), custom.api_key), ("http://127.0.0.1:8080/v1", None));
        assert!(ProviderConfig::from_section("mystery", &ProviderSection::default(), env).is_err());
        let bad_url = section(r#"{"kind": "anthropic", "base_url": "api.anthropic.com"}"#);
        assert!(ProviderConfig::from_section("x", &bad_url, env).unwrap_err().contains("base_url"));
    }

    #[test]
    fn cost_uses_the_price_table_with_cached_input() {
        let priced = section(r#"{"prices": {"m": {"input": 100, "output": 400, "cached_input": 10}}}"#);
        let config = ProviderConfig::from_section("openai", &priced, |_| None).unwrap();
        let usage = crate::ModelUsage {
            input_tokens: 1_000_000,
            output_tokens: 500_000,
            cached_input_tokens: 200_000,
            reasoning_tokens: 0,
        };
        // 800k fresh × 100 + 200k cached × 10 + 500k × 400, per million: 282 cents exactly.
        assert_eq!(config.cost("m", &usage), MicroCents::from_cents(80.0 + 2.0 + 200.0));
        assert_eq!(config.cost("unpriced", &usage), MicroCents::ZERO);
    }
}
