//! The OpenAI and Anthropic wire formats from recorded response bodies, served by a real HTTP
//! server on loopback: tool-call fragments, thinking deltas, usage, errors mid-stream, and
//! retries before the first token.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentry_core::AgentSpec;
use agentry_llm::config::{ProviderConfig, ProviderSection};
use agentry_llm::{
    ChatMessage, ChatRole, ModelDelta, ModelRequest, ModelUsage, ProviderError, ProviderRegistry, ToolSpec,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

/// What the stub server saw: request bodies and headers.
#[derive(Default)]
struct Seen {
    bodies: std::sync::Mutex<Vec<Value>>,
    headers: std::sync::Mutex<Vec<HeaderMap>>,
    calls: AtomicUsize,
}

/// Serves `body` as SSE at `path`, after `failures` answers of 503 with `Retry-After: 0`.
async fn stub(path: &'static str, body: &'static str, failures: usize) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let state = seen.clone();
    let app = axum::Router::new().route(
        path,
        axum::routing::post(move |headers: HeaderMap, body_text: String| {
            let state = state.clone();
            async move {
                let call = state.calls.fetch_add(1, Ordering::SeqCst);
                state.bodies.lock().unwrap().push(serde_json::from_str(&body_text).unwrap_or(Value::Null));
                state.headers.lock().unwrap().push(headers);
                if call < failures {
                    return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")], "busy").into_response();
                }
                ([("content-type", "text/event-stream")], body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

fn registry(name: &str, section: Value) -> ProviderRegistry {
    let section: ProviderSection = serde_json::from_value(section).unwrap();
    let config =
        ProviderConfig::from_section(name, &section, |var| (var == "TEST_KEY").then(|| "secret-key".into())).unwrap();
    ProviderRegistry::new(BTreeMap::from([(name.to_owned(), config)]))
}

fn request(model: &str) -> ModelRequest {
    ModelRequest {
        model: model.into(),
        messages: vec![
            ChatMessage::text(ChatRole::System, "Be brief."),
            ChatMessage::text(ChatRole::User, "Weather in Paris?"),
        ],
        tools: vec![ToolSpec {
            name: "get_weather".into(),
            description: "Weather of a city".into(),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        }],
        sampling: agentry_core::SamplingSpec {
            temperature: Some(0.25),
            top_p: Some(0.5),
            repetition_penalty: Some(1.3),
            seed: Some(9),
        },
    }
}

async fn run(registry: &ProviderRegistry, model: &str) -> Vec<Result<ModelDelta, ProviderError>> {
    let provider = registry.resolve(&AgentSpec::new("a", "A", model, "")).unwrap();
    let mut stream = provider.stream(request(model.split_once(':').unwrap().1));
    let mut out = Vec::new();
    while let Some(item) = tokio::time::timeout(Duration::from_secs(10), stream.recv()).await.unwrap() {
        out.push(item);
    }
    out
}

fn text_of(deltas: &[Result<ModelDelta, ProviderError>]) -> String {
    deltas
        .iter()
        .filter_map(|d| match d {
            Ok(ModelDelta::Text(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn tool_arguments(deltas: &[Result<ModelDelta, ProviderError>]) -> (Option<String>, Option<String>, String) {
    let (mut id, mut name, mut args) = (None, None, String::new());
    for delta in deltas {
        if let Ok(ModelDelta::ToolCall { id: i, name: n, arguments, .. }) = delta {
            id = id.or(i.clone());
            name = name.or(n.clone());
            args.push_str(arguments);
        }
    }
    (id, name, args)
}

#[tokio::test]
async fn openai_stream_assembles_tool_call_fragments_and_usage_after_a_retry() {
    let (base, seen) = stub("/v1/chat/completions", include_str!("recorded/openai_tool_stream.sse"), 1).await;
    let registry =
        registry("openai", json!({"base_url": format!("{base}/v1"), "api_key_env": "TEST_KEY", "max_retries": 2}));
    let deltas = run(&registry, "openai:gpt-4o-mini").await;
    assert_eq!(text_of(&deltas), "Let me check.");
    let (id, name, args) = tool_arguments(&deltas);
    assert_eq!((id.as_deref(), name.as_deref()), (Some("call_abc"), Some("get_weather")));
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city": "Paris"}));
    assert_eq!(
        deltas.last().unwrap().as_ref().unwrap(),
        &ModelDelta::Usage(ModelUsage {
            input_tokens: 42,
            output_tokens: 17,
            cached_input_tokens: 10,
            reasoning_tokens: 0
        })
    );
    assert_eq!(seen.calls.load(Ordering::SeqCst), 2, "one 503, then the stream");
    let body = seen.bodies.lock().unwrap()[1].clone();
    assert_eq!((body["stream"].clone(), body["model"].clone()), (json!(true), json!("gpt-4o-mini")));
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(body["messages"][0]["role"], "system");
    // The agent's sampling, as the API names it; the repetition penalty is the embedded model's.
    assert_eq!(
        (body["temperature"].clone(), body["top_p"].clone(), body["seed"].clone()),
        (json!(0.25), json!(0.5), json!(9))
    );
    assert!(body.get("repetition_penalty").is_none() && body.get("frequency_penalty").is_none());
    assert_eq!(seen.headers.lock().unwrap()[1]["authorization"], "Bearer secret-key");
}

#[tokio::test]
async fn openai_error_mid_stream_ends_the_call_with_a_provider_error() {
    let (base, _) = stub("/v1/chat/completions", include_str!("recorded/openai_error_midstream.sse"), 0).await;
    let registry = registry("vllm", json!({"kind": "openai", "base_url": format!("{base}/v1")}));
    let deltas = run(&registry, "vllm:some-model").await;
    assert_eq!(text_of(&deltas), "Partial");
    match deltas.last().unwrap() {
        Err(ProviderError::Unavailable(message)) => assert!(message.contains("server had an error"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn anthropic_stream_has_thinking_text_tool_use_and_usage() {
    let (base, seen) = stub("/v1/messages", include_str!("recorded/anthropic_thinking_tools.sse"), 0).await;
    let registry = registry(
        "anthropic",
        json!({"base_url": base, "api_key_env": "TEST_KEY", "thinking_budget_tokens": 2048, "max_tokens": 1024,
               "prices": {"claude-sonnet-4-5": {"input": 300, "output": 1500, "cached_input": 30}}}),
    );
    let deltas = run(&registry, "anthropic:claude-sonnet-4-5").await;
    let thinking: String = deltas
        .iter()
        .filter_map(|d| match d {
            Ok(ModelDelta::Thinking(t)) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(thinking, "The user wants the weather.");
    assert_eq!(text_of(&deltas), "Checking Paris.");
    let (id, name, args) = tool_arguments(&deltas);
    assert_eq!((id.as_deref(), name.as_deref()), (Some("toolu_01"), Some("get_weather")));
    assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city": "Paris"}));
    let usage = ModelUsage { input_tokens: 70, output_tokens: 89, cached_input_tokens: 20, reasoning_tokens: 0 };
    assert_eq!(deltas.last().unwrap().as_ref().unwrap(), &ModelDelta::Usage(usage));
    // 50 fresh × 300 + 20 cached × 30 + 89 × 1500 micro-cents (prices are cents per million).
    let cost = registry.cost("anthropic:claude-sonnet-4-5", &usage);
    assert_eq!(cost, agentry_core::MicroCents(50 * 300 + 20 * 30 + 89 * 1500));

    let body = seen.bodies.lock().unwrap()[0].clone();
    assert_eq!(body["system"], "Be brief.");
    assert_eq!((body["temperature"].clone(), body["top_p"].clone()), (json!(0.25), json!(0.5)));
    assert!(body.get("seed").is_none(), "Anthropic has no seed");
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
    assert_eq!(body["max_tokens"], 2049, "max_tokens must exceed the thinking budget");
    assert_eq!(body["tools"][0]["input_schema"]["type"], "object");
    let headers = seen.headers.lock().unwrap()[0].clone();
    assert_eq!(
        (headers["x-api-key"].to_str().unwrap(), headers["anthropic-version"].to_str().unwrap()),
        ("secret-key", "2023-06-01")
    );
}

#[tokio::test]
async fn anthropic_error_event_mid_stream_is_a_provider_error() {
    let (base, _) = stub("/v1/messages", include_str!("recorded/anthropic_error.sse"), 0).await;
    let registry = registry("anthropic", json!({"base_url": base}));
    let deltas = run(&registry, "anthropic:claude-haiku").await;
    assert_eq!(text_of(&deltas), "Hel");
    assert!(matches!(deltas.last().unwrap(), Err(ProviderError::Unavailable(m)) if m.contains("Overloaded")));
}

#[tokio::test]
async fn exhausted_retries_and_refusals_name_the_status() {
    let (base, seen) = stub("/v1/chat/completions", "", 10).await;
    let registry = registry("openai", json!({"base_url": format!("{base}/v1"), "max_retries": 1}));
    let deltas = run(&registry, "openai:gpt-4o-mini").await;
    assert!(matches!(&deltas[..], [Err(ProviderError::Unavailable(m))] if m.contains("503")), "{deltas:?}");
    assert_eq!(seen.calls.load(Ordering::SeqCst), 2);
}

#[test]
fn unconfigured_providers_fail_at_resolve_with_what_to_do() {
    let registry = ProviderRegistry::default();
    for (model, hint) in [
        ("openai:gpt-4o", "OPENAI_API_KEY"),
        ("anthropic:claude", "ANTHROPIC_API_KEY"),
        ("ollama:x", "[providers.ollama]"),
    ] {
        match registry.resolve(&AgentSpec::new("a", "A", model, "")) {
            Err(ProviderError::NotConfigured(message)) => assert!(message.contains(hint), "{message}"),
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("{model} resolved"),
        }
    }
    assert!(registry.resolve(&AgentSpec::new("a", "A", "scripted:echo", "")).is_ok());
}
