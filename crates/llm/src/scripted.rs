//! The deterministic provider, for tests and demos.
//!
//! - `scripted:echo` streams the user's last message back, one text delta per word, each delta
//!   carrying the whitespace before its word (so the deltas concatenate to the message).
//! - `scripted:steps` plays the agent's `script.steps`, one step per model call of a turn: the
//!   step number is the count of assistant messages after the last user message.
//!
//! Usage: input tokens = whitespace-separated words of the whole prompt; output tokens = words
//! streamed. `script.token_delay_ms` slows every delta down, to make turns observable.

use std::time::Duration;

use agentry_core::{Script, ScriptStep};
use tokio::sync::mpsc;

use crate::{ChatRole, ModelDelta, ModelProvider, ModelRequest, ModelStream, ModelUsage, ProviderError, TokenBounds};

/// Which canned behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Echo,
    Steps,
}

/// A scripted model bound to one agent's script.
#[derive(Debug, Clone)]
pub struct ScriptedProvider {
    mode: Mode,
    script: Script,
}

impl ScriptedProvider {
    /// `model` is the part after `scripted:` — `echo` or `steps`.
    pub fn for_agent(model: &str, script: Script) -> Result<Self, ProviderError> {
        let mode = match model {
            "echo" => Mode::Echo,
            "steps" => Mode::Steps,
            other => {
                return Err(ProviderError::NotConfigured(format!(
                    "unknown scripted model `{other}` (use scripted:echo or scripted:steps)"
                )));
            }
        };
        Ok(ScriptedProvider { mode, script })
    }

    fn plan(&self, request: &ModelRequest) -> Result<Vec<ModelDelta>, ProviderError> {
        let last_user = request.messages.iter().rposition(|m| m.role == ChatRole::User);
        let step = match self.mode {
            Mode::Echo => {
                ScriptStep { text: last_user.map(|i| request.messages[i].content.clone()), ..ScriptStep::default() }
            }
            Mode::Steps => {
                let calls_so_far = last_user
                    .map_or(0, |i| request.messages[i..].iter().filter(|m| m.role == ChatRole::Assistant).count());
                self.script.steps.get(calls_so_far).cloned().unwrap_or_default()
            }
        };
        if let Some(cause) = step.error {
            return Err(ProviderError::Unavailable(cause));
        }
        let mut deltas = Vec::new();
        let mut output_words = 0;
        for word in split_words(step.thinking.as_deref().unwrap_or("")) {
            deltas.push(ModelDelta::Thinking(word));
        }
        for word in split_words(step.text.as_deref().unwrap_or("")) {
            output_words += 1;
            deltas.push(ModelDelta::Text(word));
        }
        for (index, call) in step.tool_calls.iter().enumerate() {
            // Two fragments per call, as real providers split arguments across chunks.
            let arguments = call.arguments.to_string();
            let middle = arguments.len() / 2;
            let split = (0..=middle).rev().find(|i| arguments.is_char_boundary(*i)).unwrap_or(0);
            deltas.push(ModelDelta::ToolCall {
                index,
                id: Some(format!("call_{}_{index}", calls_in_turn(request))),
                name: Some(call.name.clone()),
                arguments: arguments[..split].to_owned(),
            });
            deltas.push(ModelDelta::ToolCall { index, id: None, name: None, arguments: arguments[split..].to_owned() });
        }
        let input_words = request.messages.iter().map(|m| m.content.split_whitespace().count() as u64).sum();
        deltas.push(ModelDelta::Usage(ModelUsage {
            input_tokens: input_words,
            output_tokens: output_words,
            cached_input_tokens: 0,
            reasoning_tokens: 0,
        }));
        Ok(deltas)
    }
}

/// How many model calls of the current turn came before this one.
fn calls_in_turn(request: &ModelRequest) -> usize {
    let last_user = request.messages.iter().rposition(|m| m.role == ChatRole::User).unwrap_or(0);
    request.messages[last_user..].iter().filter(|m| m.role == ChatRole::Assistant).count()
}

impl ModelProvider for ScriptedProvider {
    fn stream(&self, request: ModelRequest) -> ModelStream {
        let (tx, rx) = mpsc::channel(64);
        let plan = self.plan(&request);
        let delay = Duration::from_millis(self.script.token_delay_ms);
        tokio::spawn(async move {
            let deltas = match plan {
                Ok(deltas) => deltas,
                Err(err) => {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            };
            for delta in deltas {
                if !delay.is_zero() && !matches!(delta, ModelDelta::Usage(_)) {
                    tokio::time::sleep(delay).await;
                }
                if tx.send(Ok(delta)).await.is_err() {
                    return; // The consumer hung up: the call is cancelled.
                }
            }
        });
        rx
    }

    /// Exact: the scripted model counts words, and knows what it will answer.
    fn bounds(&self, request: &ModelRequest) -> TokenBounds {
        let usage = self.plan(request).ok().and_then(|deltas| {
            deltas.into_iter().find_map(|d| match d {
                ModelDelta::Usage(usage) => Some(usage),
                _ => None,
            })
        });
        usage.map_or(TokenBounds { input: 0, output: 0 }, |u| TokenBounds {
            input: u.input_tokens,
            output: u.output_tokens,
        })
    }
}

/// Splits text into words, each carrying the whitespace before it; trailing whitespace stays on
/// the last word. The pieces concatenate to the input.
pub fn split_words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for c in text.chars() {
        if c.is_whitespace() {
            if in_word {
                words.push(std::mem::take(&mut current));
                in_word = false;
            }
        } else {
            in_word = true;
        }
        current.push(c);
    }
    if !current.is_empty() {
        match (in_word, words.last_mut()) {
            (false, Some(last)) => last.push_str(&current),
            _ => words.push(current),
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ChatMessage;
    use agentry_core::ScriptToolCall;
    use serde_json::json;

    fn request(messages: Vec<ChatMessage>) -> ModelRequest {
        ModelRequest { model: "echo".into(), messages, tools: Vec::new(), sampling: Default::default() }
    }

    async fn collect(mut stream: ModelStream) -> Vec<Result<ModelDelta, ProviderError>> {
        let mut out = Vec::new();
        while let Some(item) = stream.recv().await {
            out.push(item);
        }
        out
    }

    #[test]
    fn words_keep_their_leading_whitespace_and_concatenate_back() {
        for text in ["hello there  world", "  lead", "trail  ", "one", "a\n\tb", "", "   "] {
            let words = split_words(text);
            assert_eq!(words.concat(), text, "{text:?}");
        }
        assert_eq!(split_words("hello there  world"), vec!["hello", " there", "  world"]);
        assert_eq!(split_words("a b "), vec!["a", " b "]);
    }

    #[tokio::test]
    async fn echo_streams_the_last_user_message_with_usage() {
        let provider = ScriptedProvider::for_agent("echo", Script::default()).unwrap();
        let req = request(vec![
            ChatMessage::text(ChatRole::System, "be brief"),
            ChatMessage::text(ChatRole::User, "hi there"),
        ]);
        let deltas: Vec<ModelDelta> = collect(provider.stream(req)).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            deltas,
            vec![
                ModelDelta::Text("hi".into()),
                ModelDelta::Text(" there".into()),
                ModelDelta::Usage(ModelUsage { input_tokens: 4, output_tokens: 2, ..Default::default() }),
            ]
        );
    }

    #[tokio::test]
    async fn steps_follow_the_script_per_model_call() {
        let script = Script {
            token_delay_ms: 0,
            steps: vec![
                ScriptStep {
                    text: Some("checking".into()),
                    tool_calls: vec![ScriptToolCall { name: "current_time".into(), arguments: json!({"tz": "UTC"}) }],
                    ..Default::default()
                },
                ScriptStep { error: Some("boom".into()), ..Default::default() },
            ],
        };
        let provider = ScriptedProvider::for_agent("steps", script).unwrap();
        let first = collect(provider.stream(request(vec![ChatMessage::text(ChatRole::User, "go")]))).await;
        let args: String = first
            .iter()
            .filter_map(|d| match d {
                Ok(ModelDelta::ToolCall { arguments, .. }) => Some(arguments.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(serde_json::from_str::<serde_json::Value>(&args).unwrap(), json!({"tz": "UTC"}));
        assert_eq!(first[0], Ok(ModelDelta::Text("checking".into())));
        let second = collect(provider.stream(request(vec![
            ChatMessage::text(ChatRole::User, "go"),
            ChatMessage::text(ChatRole::Assistant, "checking"),
            ChatMessage::text(ChatRole::Tool, "{}"),
        ])))
        .await;
        assert_eq!(second, vec![Err(ProviderError::Unavailable("boom".into()))]);
        // Past the end of the script the model says nothing.
        let third = collect(provider.stream(request(vec![
            ChatMessage::text(ChatRole::User, "go"),
            ChatMessage::text(ChatRole::Assistant, "a"),
            ChatMessage::text(ChatRole::Assistant, "b"),
        ])))
        .await;
        assert!(matches!(third.as_slice(), [Ok(ModelDelta::Usage(_))]));
    }

    #[test]
    fn unknown_scripted_models_are_refused() {
        assert!(ScriptedProvider::for_agent("poetry", Script::default()).is_err());
    }
}
