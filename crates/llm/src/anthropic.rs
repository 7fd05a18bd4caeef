//! The Anthropic Messages provider: streaming text, extended thinking (`thinking_delta`), tool
//! use (`tool_use` blocks with `input_json_delta` fragments) and usage (`message_start` for the
//! prompt, `message_delta` for the completion). System messages become the `system` parameter,
//! tool results become `tool_result` blocks of a user message.

use std::collections::HashMap;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::ProviderConfig;
use crate::openai::send_with_retries;
use crate::sse::ResponseEvents;
use crate::{ChatRole, ModelDelta, ModelProvider, ModelRequest, ModelStream, ModelUsage, ProviderError, TokenBounds};

/// The API version header sent with every request.
const API_VERSION: &str = "2023-06-01";

/// A model behind the Anthropic Messages API.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    http: reqwest::Client,
    config: ProviderConfig,
}

impl AnthropicProvider {
    /// A provider over a shared HTTP client.
    pub fn new(http: reqwest::Client, config: ProviderConfig) -> Self {
        AnthropicProvider { http, config }
    }

    fn body(&self, request: &ModelRequest) -> Value {
        let system: Vec<&str> =
            request.messages.iter().filter(|m| m.role == ChatRole::System).map(|m| m.content.as_str()).collect();
        let mut messages: Vec<Value> = Vec::new();
        for message in request.messages.iter().filter(|m| m.role != ChatRole::System) {
            let (role, blocks) = match message.role {
                ChatRole::User => ("user", vec![json!({"type": "text", "text": message.content})]),
                ChatRole::Assistant => {
                    let mut blocks = Vec::new();
                    if !message.content.is_empty() {
                        blocks.push(json!({"type": "text", "text": message.content}));
                    }
                    for call in &message.tool_calls {
                        let input: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!({}));
                        blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
                    }
                    ("assistant", blocks)
                }
                ChatRole::Tool => (
                    "user",
                    vec![json!({
                        "type": "tool_result",
                        "tool_use_id": message.tool_call_id.clone().unwrap_or_default(),
                        "content": message.content,
                    })],
                ),
                ChatRole::System => continue,
            };
            // Consecutive messages of one role are merged (tool results follow each other).
            match messages.last_mut() {
                Some(last) if last["role"] == role => {
                    if let Some(content) = last["content"].as_array_mut() {
                        content.extend(blocks);
                    }
                }
                _ => messages.push(json!({"role": role, "content": blocks})),
            }
        }
        let mut body = json!({
            "model": request.model,
            "max_tokens": self.config.max_tokens,
            "messages": messages,
            "stream": true,
        });
        for (key, value) in [("temperature", request.sampling.temperature), ("top_p", request.sampling.top_p)] {
            if let Some(value) = value {
                body[key] = json!(value);
            }
        }
        if !system.is_empty() {
            body["system"] = Value::String(system.join("\n\n"));
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                .collect();
        }
        if let Some(budget) = self.config.thinking_budget_tokens {
            body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
            body["max_tokens"] = json!(self.config.max_tokens.max(budget + 1));
        }
        body
    }

    async fn run(
        self,
        request: ModelRequest,
        tx: mpsc::Sender<Result<ModelDelta, ProviderError>>,
    ) -> Result<(), ProviderError> {
        let body = self.body(&request);
        let response = send_with_retries(&self.http, &self.config, "/v1/messages", &body, |r| {
            let r = r.header("anthropic-version", API_VERSION);
            match &self.config.api_key {
                Some(key) => r.header("x-api-key", key),
                None => r,
            }
        })
        .await?;
        let mut events = ResponseEvents::new(response, self.config.timeout);
        let mut state = StreamState::default();
        while let Some(batch) = events.next_batch().await? {
            for event in batch {
                let Ok(value) = serde_json::from_str::<Value>(&event.data_text()) else { continue };
                for delta in state.apply(&value)? {
                    if tx.send(Ok(delta)).await.is_err() {
                        return Ok(()); // cancelled
                    }
                }
                if state.stopped {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

impl ModelProvider for AnthropicProvider {
    fn stream(&self, request: ModelRequest) -> ModelStream {
        let (tx, rx) = mpsc::channel(64);
        let provider = self.clone();
        tokio::spawn(async move {
            if let Err(err) = provider.run(request, tx.clone()).await {
                let _ = tx.send(Err(err)).await;
            }
        });
        rx
    }

    fn bounds(&self, request: &ModelRequest) -> TokenBounds {
        TokenBounds::by_bytes(
            request,
            u64::from(self.config.max_tokens.max(self.config.thinking_budget_tokens.map_or(0, |b| b + 1))),
        )
    }
}

/// What the decoder remembers between events.
#[derive(Debug, Default)]
struct StreamState {
    /// Content block index → tool call index.
    tool_blocks: HashMap<u64, usize>,
    usage: ModelUsage,
    stopped: bool,
}

impl StreamState {
    fn apply(&mut self, event: &Value) -> Result<Vec<ModelDelta>, ProviderError> {
        let kind = event.get("type").and_then(Value::as_str).unwrap_or("");
        let block_index = event.get("index").and_then(Value::as_u64).unwrap_or(0);
        let mut deltas = Vec::new();
        match kind {
            "message_start" => {
                if let Some(usage) = event.pointer("/message/usage") {
                    let count = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
                    let cached = count("cache_read_input_tokens");
                    self.usage.input_tokens = count("input_tokens") + cached + count("cache_creation_input_tokens");
                    self.usage.cached_input_tokens = cached;
                    self.usage.output_tokens = count("output_tokens");
                }
            }
            "content_block_start" => {
                let block = event.get("content_block").cloned().unwrap_or(Value::Null);
                if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                    let index = self.tool_blocks.len();
                    self.tool_blocks.insert(block_index, index);
                    deltas.push(ModelDelta::ToolCall {
                        index,
                        id: block.get("id").and_then(Value::as_str).map(str::to_owned),
                        name: block.get("name").and_then(Value::as_str).map(str::to_owned),
                        arguments: String::new(),
                    });
                }
            }
            "content_block_delta" => {
                let delta = event.get("delta").cloned().unwrap_or(Value::Null);
                let text = |key: &str| delta.get(key).and_then(Value::as_str).unwrap_or("").to_owned();
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => deltas.push(ModelDelta::Text(text("text"))),
                    Some("thinking_delta") => deltas.push(ModelDelta::Thinking(text("thinking"))),
                    Some("input_json_delta") => {
                        if let Some(&index) = self.tool_blocks.get(&block_index) {
                            deltas.push(ModelDelta::ToolCall {
                                index,
                                id: None,
                                name: None,
                                arguments: text("partial_json"),
                            });
                        }
                    }
                    _ => {} // signature_delta and future kinds
                }
            }
            "message_delta" => {
                if let Some(output) = event.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                    self.usage.output_tokens = output;
                }
            }
            "message_stop" => {
                self.stopped = true;
                deltas.push(ModelDelta::Usage(self.usage));
            }
            "error" => {
                let message = event.pointer("/error/message").and_then(Value::as_str).unwrap_or("unknown error");
                let kind = event.pointer("/error/type").and_then(Value::as_str).unwrap_or("error");
                return Err(ProviderError::Unavailable(format!("the model failed mid-stream ({kind}): {message}")));
            }
            _ => {} // ping, content_block_stop
        }
        Ok(deltas
            .into_iter()
            .filter(|d| !matches!(d, ModelDelta::Text(t) | ModelDelta::Thinking(t) if t.is_empty()))
            .collect())
    }
}
