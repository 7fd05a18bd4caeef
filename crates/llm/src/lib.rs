//! Model providers behind one streaming trait.
//!
//! # Layout
//! - [`ModelProvider`]: takes a [`ModelRequest`] (messages, tools) and returns a [`ModelStream`]
//!   of [`ModelDelta`]s: text, thinking, tool-call fragments, usage.
//! - [`scripted`]: the deterministic provider for tests and demos (`scripted:echo`, `scripted:steps`).
//! - [`openai`]: any OpenAI-compatible Chat Completions endpoint; [`anthropic`]: the Messages API.
//!   Both read their streams with the one SSE parser, `agentry_core::sse`, and are configured by
//!   [`config`] (`[providers.<name>]`).
//! - [`ProviderRegistry`]: resolves an agent's `provider:model` to a provider and prices usage.
//!
//! The stream is a channel: a provider spawns its work (an HTTP stream, a CPU-bound local model on
//! a blocking thread) and sends deltas; the consumer dropping the receiver is the cancellation
//! signal, which the provider notices at its next send.
//!
//! Architecture invariant: providers know nothing about threads, turns or transports.

#![warn(missing_docs)]

pub mod anthropic;
pub mod config;
#[cfg(feature = "local")]
pub mod local;
pub mod openai;
pub mod scripted;
mod sse;

use std::sync::Arc;

use agentry_core::{AgentSpec, ModelRef};
use serde_json::Value;
use tokio::sync::mpsc;

/// Who wrote a prompt message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChatRole {
    /// Instructions.
    System,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// A tool result.
    Tool,
}

/// A complete tool call, as the model made it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolCallRequest {
    /// Provider-assigned id pairing the call with its result.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as JSON text (what providers exchange).
    pub arguments: String,
}

/// One prompt message.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// Author.
    pub role: ChatRole,
    /// Text content.
    pub content: String,
    /// Tool calls made by an assistant message.
    pub tool_calls: Vec<ToolCallRequest>,
    /// For tool messages: the call answered.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message with text only.
    pub fn text(role: ChatRole, content: impl Into<String>) -> Self {
        ChatMessage { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
}

/// A request for one model call.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    /// Provider-specific model name.
    pub model: String,
    /// The prompt.
    pub messages: Vec<ChatMessage>,
    /// Tools offered.
    pub tools: Vec<ToolSpec>,
    /// How to pick tokens (the agent's `[sampling]`; unset keys: the provider's defaults).
    pub sampling: agentry_core::SamplingSpec,
}

/// Token counts reported by a provider for one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ModelUsage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Prompt tokens served from cache.
    pub cached_input_tokens: u64,
    /// Completion tokens spent on reasoning, when the provider says.
    pub reasoning_tokens: u64,
}

/// A piece of a streamed model response.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelDelta {
    /// Answer text.
    Text(String),
    /// Reasoning text.
    Thinking(String),
    /// A fragment of tool call number `index`: the first fragment carries id and name, the
    /// following ones more argument text.
    ToolCall {
        /// Position of the call in this response.
        index: usize,
        /// Call id (first fragment).
        id: Option<String>,
        /// Tool name (first fragment).
        name: Option<String>,
        /// More JSON argument text.
        arguments: String,
    },
    /// Usage of the call (may come once at the end, or cumulatively).
    Usage(ModelUsage),
}

/// Why a model call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider could not be reached or answered with an error.
    #[error("model provider unavailable: {0}")]
    Unavailable(String),
    /// The agent's model cannot be served (unknown model, bad configuration).
    #[error("model not available: {0}")]
    NotConfigured(String),
}

/// A stream of deltas; ends when the response is complete. An `Err` item ends it with a failure.
pub type ModelStream = mpsc::Receiver<Result<ModelDelta, ProviderError>>;

/// The most tokens a call can use: what it is sent, at most, and what it can answer, at most.
/// Budgets reserve a call's largest possible cost from these before it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBounds {
    /// Prompt tokens, at most.
    pub input: u64,
    /// Completion tokens, at most.
    pub output: u64,
}

impl TokenBounds {
    /// Bounds without knowing the tokenizer: every token covers at least one byte, so the
    /// request's bytes bound its tokens; `max_output` is what the provider was told to stop at.
    pub fn by_bytes(request: &ModelRequest, max_output: u64) -> Self {
        let text: usize = request
            .messages
            .iter()
            .map(|m| m.content.len() + m.tool_calls.iter().map(|c| c.name.len() + c.arguments.len()).sum::<usize>())
            .sum();
        let tools: usize =
            request.tools.iter().map(|t| t.name.len() + t.description.len() + t.parameters.to_string().len()).sum();
        TokenBounds { input: (text + tools) as u64, output: max_output }
    }
}

/// A source of model responses.
pub trait ModelProvider: Send + Sync {
    /// Starts one model call.
    fn stream(&self, request: ModelRequest) -> ModelStream;

    /// The most tokens `request` can use (default: its bytes in, 4096 out).
    fn bounds(&self, request: &ModelRequest) -> TokenBounds {
        TokenBounds::by_bytes(request, 4096)
    }

    /// Whether the model can call tools (an agent that declares tools on one that cannot is
    /// refused when it is applied).
    fn calls_tools(&self) -> bool {
        true
    }
}

/// A provider plugged in with [`ProviderRegistry::with_provider`].
#[derive(Clone)]
struct Plugged(Arc<dyn ModelProvider>);

impl std::fmt::Debug for Plugged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plugged")
    }
}

/// Resolves an agent's `provider:model` to a provider, and prices usage.
#[derive(Debug, Clone, Default)]
pub struct ProviderRegistry {
    configured: std::collections::BTreeMap<String, config::ProviderConfig>,
    /// Providers an embedder plugged in by name.
    plugged: std::collections::BTreeMap<String, Plugged>,
    /// Prices by `provider:model`, for any provider (`[prices]`); a provider's own table wins.
    prices: std::collections::BTreeMap<String, config::Price>,
    http: reqwest::Client,
    #[cfg(feature = "local")]
    local: Option<local::LocalModels>,
}

impl ProviderRegistry {
    /// A registry with the configured providers (by name). `scripted` is always available.
    pub fn new(configured: std::collections::BTreeMap<String, config::ProviderConfig>) -> Self {
        ProviderRegistry { configured, http: reqwest::Client::new(), ..ProviderRegistry::default() }
    }

    /// Prices `provider:model`s (any provider, e.g. `scripted:echo` in a test) with `prices`.
    pub fn with_prices(mut self, prices: std::collections::BTreeMap<String, config::Price>) -> Self {
        self.prices.extend(prices);
        self
    }

    /// Serves `name:…` models with `provider` (an embedder's own model backend).
    pub fn with_provider(mut self, name: &str, provider: Arc<dyn ModelProvider>) -> Self {
        self.plugged.insert(name.to_owned(), Plugged(provider));
        self
    }

    /// Serves `local:` models from this cache.
    #[cfg(feature = "local")]
    pub fn with_local_models(mut self, models: local::LocalModels) -> Self {
        self.local = Some(models);
        self
    }

    /// The provider for an agent, configured from its spec. Fails — with what to do about it —
    /// for providers that are not configured or not available in this build. Called when an
    /// agent is applied, so a bad model fails there and not mid-turn.
    pub fn resolve(&self, agent: &AgentSpec) -> Result<Arc<dyn ModelProvider>, ProviderError> {
        let model = ModelRef::parse(&agent.model).map_err(|e| ProviderError::NotConfigured(e.to_string()))?;
        #[cfg(feature = "local")]
        if model.provider == "local"
            && let Some(local) = &self.local
        {
            return Ok(Arc::new(local.provider(&model.model)?));
        }
        if let Some(Plugged(provider)) = self.plugged.get(&model.provider) {
            return Ok(provider.clone());
        }
        if model.provider == "scripted" {
            let provider =
                scripted::ScriptedProvider::for_agent(&model.model, agent.script.clone().unwrap_or_default())?;
            return Ok(Arc::new(provider));
        }
        match self.configured.get(&model.provider) {
            Some(config) => Ok(match config.kind {
                config::ProviderKind::OpenAi => {
                    Arc::new(openai::OpenAiProvider::new(self.http.clone(), config.clone()))
                }
                config::ProviderKind::Anthropic => {
                    Arc::new(anthropic::AnthropicProvider::new(self.http.clone(), config.clone()))
                }
            }),
            None => Err(ProviderError::NotConfigured(match model.provider.as_str() {
                "openai" => format!("`{}` needs OPENAI_API_KEY or a [providers.openai] section", agent.model),
                "anthropic" => format!("`{}` needs ANTHROPIC_API_KEY or a [providers.anthropic] section", agent.model),
                "local" if cfg!(feature = "local") => {
                    format!("`{}`: no local model cache is configured", agent.model)
                }
                "local" => format!("`{}`: this build has no embedded local model (cargo feature `local`)", agent.model),
                other => {
                    format!("`{}`: no provider named `{other}` is configured (add [providers.{other}])", agent.model)
                }
            })),
        }
    }

    /// The price of an agent's model (`provider:model`), if it has one.
    pub fn price(&self, model: &str) -> Option<&config::Price> {
        let parsed = ModelRef::parse(model).ok()?;
        self.configured
            .get(&parsed.provider)
            .and_then(|c| c.prices.get(&parsed.model))
            .or_else(|| self.prices.get(model))
    }

    /// The cost of `usage` on an agent's model (`provider:model`; zero without a price).
    pub fn cost(&self, model: &str, usage: &ModelUsage) -> agentry_core::MicroCents {
        self.price(model).map_or(agentry_core::MicroCents::ZERO, |price| price.cost(usage))
    }

    /// The largest possible cost of a call within `bounds` on `model` (zero without a price).
    pub fn max_cost(&self, model: &str, bounds: TokenBounds) -> agentry_core::MicroCents {
        let usage = ModelUsage { input_tokens: bounds.input, output_tokens: bounds.output, ..ModelUsage::default() };
        self.cost(model, &usage)
    }
}
