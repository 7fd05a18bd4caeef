//! The OpenAI-compatible provider: Chat Completions with streaming, tools and usage, parsed
//! leniently because "compatible" servers deviate (empty `finish_reason`, `usage: {}`, ids and
//! names repeated in every tool-call delta, `reasoning_content` for thinking, errors as a JSON
//! chunk mid-stream).
//!
//! Retries 429/5xx/connection failures before the first token (honouring `Retry-After`). Some
//! servers cannot stream tool calls (llama-cpp-python answers 500); `stream_tools = false` sends
//! those requests unstreamed and replays the answer as deltas.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::config::ProviderConfig;
use crate::sse::ResponseEvents;
use crate::{
    ChatMessage, ChatRole, ModelDelta, ModelProvider, ModelRequest, ModelStream, ModelUsage, ProviderError, TokenBounds,
};

/// A model behind an OpenAI-compatible endpoint.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    http: reqwest::Client,
    config: ProviderConfig,
}

type Sender = mpsc::Sender<Result<ModelDelta, ProviderError>>;

impl OpenAiProvider {
    /// A provider over a shared HTTP client.
    pub fn new(http: reqwest::Client, config: ProviderConfig) -> Self {
        OpenAiProvider { http, config }
    }

    fn body(&self, request: &ModelRequest, stream: bool) -> Value {
        let messages: Vec<Value> = request.messages.iter().map(message_json).collect();
        let mut body = json!({
            "model": request.model,
            "messages": messages,
            "stream": stream,
            "max_tokens": self.config.max_tokens,
        });
        let sampling = &request.sampling;
        for (key, value) in [("temperature", sampling.temperature), ("top_p", sampling.top_p)] {
            if let Some(value) = value {
                body[key] = json!(value);
            }
        }
        if let Some(seed) = sampling.seed {
            body["seed"] = json!(seed);
        }
        if stream {
            body["stream_options"] = json!({ "include_usage": true });
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
                .collect();
            if let Some(choice) = &self.config.tool_choice {
                body["tool_choice"] = Value::String(choice.clone());
            }
        }
        body
    }

    async fn run(self, request: ModelRequest, tx: Sender) -> Result<(), ProviderError> {
        let stream = request.tools.is_empty() || self.config.stream_tools;
        let body = self.body(&request, stream);
        let response =
            send_with_retries(&self.http, &self.config, "/chat/completions", &body, |r| match &self.config.api_key {
                Some(key) => r.bearer_auth(key),
                None => r,
            })
            .await?;
        if !stream {
            let text =
                response.text().await.map_err(|e| ProviderError::Unavailable(format!("reading the answer: {e}")))?;
            let answer: Value = serde_json::from_str(&text)
                .map_err(|e| ProviderError::Unavailable(format!("unreadable answer ({e}): {}", snippet(&text))))?;
            for delta in answer_deltas(&answer)? {
                if tx.send(Ok(delta)).await.is_err() {
                    return Ok(());
                }
            }
            return Ok(());
        }
        let mut events = ResponseEvents::new(response, self.config.timeout);
        let mut received_any = false;
        while let Some(batch) = events.next_batch().await? {
            for event in batch {
                received_any = true;
                let data = event.data_text();
                if data.trim() == "[DONE]" {
                    return Ok(());
                }
                let Ok(value) = serde_json::from_str::<Value>(&data) else { continue };
                for delta in chunk_deltas(&value)? {
                    if tx.send(Ok(delta)).await.is_err() {
                        return Ok(()); // cancelled
                    }
                }
            }
        }
        if received_any {
            return Ok(()); // lenient: a stream without `[DONE]`
        }
        // An empty 200 stream is a failure, not an empty answer (llama-cpp-python does this when it
        // cannot stream tool calls).
        let hint = if request.tools.is_empty() {
            ""
        } else {
            "; if the server cannot stream tool calls, set stream_tools = false"
        };
        Err(ProviderError::Unavailable(format!("the server ended the stream without sending anything{hint}")))
    }
}

impl ModelProvider for OpenAiProvider {
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
        TokenBounds::by_bytes(request, u64::from(self.config.max_tokens))
    }
}

/// POSTs `body` to `path`, retrying 429/5xx/connection failures with backoff (or `Retry-After`).
/// A final non-2xx answer is an error carrying the status and the start of the body.
pub(crate) async fn send_with_retries(
    http: &reqwest::Client,
    config: &ProviderConfig,
    path: &str,
    body: &Value,
    authorize: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, ProviderError> {
    let url = format!("{}{path}", config.base_url);
    let mut attempt = 0;
    loop {
        let request = authorize(http.post(&url).timeout(config.timeout).header("content-type", "application/json"))
            .body(body.to_string());
        let outcome = request.send().await;
        let retry_after = match &outcome {
            Ok(response) if response.status().is_success() => None,
            Ok(response) if response.status().as_u16() == 429 || response.status().is_server_error() => Some(
                response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .map(Duration::from_secs_f64),
            ),
            Ok(_) => None,
            Err(err) if err.is_connect() || err.is_timeout() => Some(None),
            Err(_) => None,
        };
        match (outcome, retry_after) {
            (Ok(response), None) if response.status().is_success() => return Ok(response),
            (_, Some(wait)) if attempt < config.max_retries => {
                let wait = wait.unwrap_or_else(|| Duration::from_millis(500 << attempt.min(5)));
                tracing::warn!(url = %url, attempt, ?wait, "model provider busy or unreachable; retrying");
                tokio::time::sleep(wait.min(Duration::from_secs(30))).await;
                attempt += 1;
            }
            (Ok(response), _) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                return Err(ProviderError::Unavailable(format!("{url} answered {status}: {}", snippet(&text))));
            }
            (Err(err), _) => return Err(ProviderError::Unavailable(format!("cannot reach {url}: {err}"))),
        }
    }
}

pub(crate) fn snippet(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() > 300 {
        format!("{}…", text.chars().take(300).collect::<String>())
    } else {
        text.to_owned()
    }
}

fn message_json(message: &ChatMessage) -> Value {
    match message.role {
        ChatRole::System => json!({"role": "system", "content": message.content}),
        ChatRole::User => json!({"role": "user", "content": message.content}),
        ChatRole::Assistant => {
            // `content: null` is refused by some servers (llama-cpp-python); send "" instead.
            let mut value = json!({"role": "assistant", "content": message.content});
            if !message.tool_calls.is_empty() {
                value["tool_calls"] = message
                    .tool_calls
                    .iter()
                    .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
                    .collect();
            }
            value
        }
        ChatRole::Tool => json!({
            "role": "tool",
            "tool_call_id": message.tool_call_id.clone().unwrap_or_default(),
            "content": message.content,
        }),
    }
}

/// Deltas of one streamed chunk.
fn chunk_deltas(chunk: &Value) -> Result<Vec<ModelDelta>, ProviderError> {
    if let Some(error) = chunk.get("error") {
        let message = error.get("message").and_then(Value::as_str).map_or_else(|| error.to_string(), str::to_owned);
        return Err(ProviderError::Unavailable(format!("the model failed mid-stream: {message}")));
    }
    let mut deltas = Vec::new();
    for choice in chunk.get("choices").and_then(Value::as_array).into_iter().flatten() {
        let Some(delta) = choice.get("delta") else { continue };
        for key in ["reasoning_content", "reasoning"] {
            if let Some(text) = delta.get(key).and_then(Value::as_str).filter(|t| !t.is_empty()) {
                deltas.push(ModelDelta::Thinking(text.to_owned()));
            }
        }
        if let Some(text) = delta.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            deltas.push(ModelDelta::Text(text.to_owned()));
        }
        for (position, call) in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
            deltas.push(tool_call_delta(call, position));
        }
    }
    if let Some(usage) = chunk.get("usage").and_then(usage_of) {
        deltas.push(ModelDelta::Usage(usage));
    }
    Ok(deltas)
}

/// Deltas replaying a non-streamed answer.
fn answer_deltas(answer: &Value) -> Result<Vec<ModelDelta>, ProviderError> {
    if let Some(error) = answer.get("error") {
        return Err(ProviderError::Unavailable(format!("the model failed: {error}")));
    }
    let mut deltas = Vec::new();
    if let Some(message) = answer.pointer("/choices/0/message") {
        if let Some(text) = message.get("reasoning_content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            deltas.push(ModelDelta::Thinking(text.to_owned()));
        }
        if let Some(text) = message.get("content").and_then(Value::as_str).filter(|t| !t.is_empty()) {
            deltas.push(ModelDelta::Text(text.to_owned()));
        }
        for (position, call) in message.get("tool_calls").and_then(Value::as_array).into_iter().flatten().enumerate() {
            deltas.push(tool_call_delta(call, position));
        }
    }
    if let Some(usage) = answer.get("usage").and_then(usage_of) {
        deltas.push(ModelDelta::Usage(usage));
    }
    Ok(deltas)
}

fn tool_call_delta(call: &Value, position: usize) -> ModelDelta {
    let function = call.get("function");
    let arguments = match function.and_then(|f| f.get("arguments")) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    ModelDelta::ToolCall {
        index: call.get("index").and_then(Value::as_u64).map_or(position, |i| i as usize),
        id: call.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned),
        name: function.and_then(|f| f.get("name")).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned),
        arguments,
    }
}

fn usage_of(usage: &Value) -> Option<ModelUsage> {
    let count = |key: &str| usage.get(key).and_then(Value::as_u64);
    let (input, output) = (count("prompt_tokens"), count("completion_tokens"));
    if input.is_none() && output.is_none() {
        return None; // `usage: {}` or null
    }
    Some(ModelUsage {
        input_tokens: input.unwrap_or(0),
        output_tokens: output.unwrap_or(0),
        cached_input_tokens: usage.pointer("/prompt_tokens_details/cached_tokens").and_then(Value::as_u64).unwrap_or(0),
        reasoning_tokens: usage
            .pointer("/completion_tokens_details/reasoning_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_chunks_become_deltas() {
        let chunk = json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": ""}], "usage": {}});
        assert_eq!(chunk_deltas(&chunk).unwrap(), vec![ModelDelta::Text("Hi".into())]);
        let thinking = json!({"choices": [{"delta": {"reasoning_content": "hmm"}}]});
        assert_eq!(chunk_deltas(&thinking).unwrap(), vec![ModelDelta::Thinking("hmm".into())]);
        let usage = json!({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}});
        assert_eq!(
            chunk_deltas(&usage).unwrap(),
            vec![ModelDelta::Usage(ModelUsage {
                input_tokens: 9,
                output_tokens: 3,
                cached_input_tokens: 4,
                reasoning_tokens: 0
            })]
        );
        let error = json!({"error": {"message": "overloaded"}});
        assert!(matches!(chunk_deltas(&error), Err(ProviderError::Unavailable(m)) if m.contains("overloaded")));
    }

    #[test]
    fn assistant_messages_never_carry_null_content() {
        let message = ChatMessage {
            role: ChatRole::Assistant,
            content: String::new(),
            tool_calls: vec![crate::ToolCallRequest { id: "c1".into(), name: "t".into(), arguments: "{}".into() }],
            tool_call_id: None,
        };
        let value = message_json(&message);
        assert_eq!(value["content"], json!(""));
        assert_eq!(value["tool_calls"][0]["function"]["name"], "t");
    }
}
