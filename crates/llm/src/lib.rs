//! Model providers behind one streaming trait.
//!
//! # Layout
//! - [`ModelProvider`]: takes a [`ModelRequest`] (messages, tools) and returns a [`ModelStream`]
//!   of [`ModelDelta`]s: text, thinking, tool-call fragments, usage.
//! - [`scripted`]: the deterministic provider for tests and demos (`scripted:echo`, `scripted:steps`).
//! - [`ProviderRegistry`]: resolves an agent's `provider:model` to a provider.
//!
//! The stream is a channel: a provider spawns its work (an HTTP stream, a CPU-bound local model on
//! a blocking thread) and sends deltas; the consumer dropping the receiver is the cancellation
//! signal, which the provider notices at its next send.
//!
//! Architecture invariant: providers know nothing about threads, turns or transports.

#![warn(missing_docs)]

pub mod scripted;

use std::sync::Arc;

use agentry_core::{AgentSpec, ModelRef};
use serde_json::Value;
use tokio::sync::mpsc;

/// Who wrote a prompt message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallRequest {
    /// Provider-assigned id pairing the call with its result.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments as JSON text (what providers exchange).
    pub arguments: String,
}

/// One prompt message.
#[derive(Debug, Clone, PartialEq)]
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

/// A source of model responses.
pub trait ModelProvider: Send + Sync {
    /// Starts one model call.
    fn stream(&self, request: ModelRequest) -> ModelStream;
}

/// Resolves an agent's `provider:model` to a provider.
#[derive(Debug, Clone, Default)]
pub struct ProviderRegistry {}

impl ProviderRegistry {
    /// The provider for an agent, configured from its spec. Fails for providers that are not
    /// available in this build or configuration.
    pub fn resolve(&self, agent: &AgentSpec) -> Result<Arc<dyn ModelProvider>, ProviderError> {
        let model = ModelRef::parse(&agent.model).map_err(|e| ProviderError::NotConfigured(e.to_string()))?;
        match model.provider.as_str() {
            "scripted" => scripted::ScriptedProvider::for_agent(&model.model, agent.script.clone().unwrap_or_default())
                .map(|p| Arc::new(p) as Arc<dyn ModelProvider>),
            other => Err(ProviderError::NotConfigured(format!(
                "the `{other}` provider is not available in this build yet (model `{}`)",
                agent.model
            ))),
        }
    }
}
