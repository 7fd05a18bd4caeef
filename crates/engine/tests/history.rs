//! Answers keep their tool context: a later turn sends the model the earlier turn's tool calls
//! and results, with the scripted provider and with a real OpenAI-compatible endpoint.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use agentry_core::{AgentSpec, MessageRole, Scope, Script, ScriptStep, ScriptToolCall, TurnStatus};
use agentry_engine::{Engine, EngineConfig};
use agentry_llm::config::{ProviderConfig, ProviderSection};
use agentry_llm::scripted::ScriptedProvider;
use agentry_llm::{ChatRole, ModelProvider, ModelRequest, ModelStream, ProviderRegistry};
use agentry_store::{Store, StoreLocation};
use common::*;
use serde_json::{Value, json};

/// The scripted provider, keeping every request it was sent.
struct Recording {
    inner: ScriptedProvider,
    requests: Mutex<Vec<ModelRequest>>,
}

impl ModelProvider for Recording {
    fn stream(&self, request: ModelRequest) -> ModelStream {
        self.requests.lock().unwrap().push(request.clone());
        self.inner.stream(request)
    }
}

fn script() -> Script {
    Script {
        token_delay_ms: 0,
        steps: vec![
            ScriptStep {
                tool_calls: vec![ScriptToolCall { name: "current_time".into(), arguments: json!({}) }],
                ..Default::default()
            },
            ScriptStep { text: Some("It is now.".into()), ..Default::default() },
        ],
    }
}

async fn engine_with(providers: ProviderRegistry) -> (Engine, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreLocation::Sqlite(dir.path().join("h.db"))).await.unwrap();
    let engine = Engine::start(store.clone(), providers, EngineConfig::default()).await.unwrap();
    (engine, store, dir)
}

async fn two_turns(engine: &Engine, store: &Store, model: &str) {
    let spec = AgentSpec {
        tools: vec!["current_time".into()],
        script: Some(script()),
        ..AgentSpec::new("timer", "Timer", model, "")
    };
    store.apply_agent(&Scope::default_scope(), &spec, "test", None).await.unwrap();
    let f = Fixture { engine: engine.clone(), store: store.clone(), dir: tempfile::tempdir().unwrap() };
    let thread = f.thread_for("timer").await;
    for text in ["what time is it", "thanks"] {
        let turn = f.send(&thread, text).await;
        let (status, _, _) = done_of(&f.events(&turn, 0).await);
        assert_eq!(status, TurnStatus::Completed);
    }
    let (messages, _) = store.list_messages(&thread.scope, &thread.id, 10, 0).await.unwrap();
    let answer = messages.iter().find(|m| m.role == MessageRole::Assistant).unwrap();
    assert_eq!(answer.tool_steps.len(), 2, "the answer keeps its tool step and its final step");
    assert_eq!(answer.tool_steps[0].calls[0].name, "current_time");
    assert!(answer.tool_steps[0].calls[0].result.contains("unix"), "{:?}", answer.tool_steps);
}

#[tokio::test]
async fn the_scripted_provider_gets_the_earlier_turns_tool_call_and_result() {
    let recording = Arc::new(Recording {
        inner: ScriptedProvider::for_agent("steps", script()).unwrap(),
        requests: Mutex::default(),
    });
    let providers = ProviderRegistry::default().with_provider("recorded", recording.clone());
    let (engine, store, _dir) = engine_with(providers).await;
    two_turns(&engine, &store, "recorded:steps").await;
    let requests = recording.requests.lock().unwrap();
    assert_eq!(requests.len(), 4, "two model calls per turn");
    let second_turn = &requests[2].messages;
    let shape: Vec<_> = second_turn.iter().map(|m| (m.role, m.tool_calls.len(), m.tool_call_id.is_some())).collect();
    assert_eq!(
        shape,
        [
            (ChatRole::User, 0, false),
            (ChatRole::Assistant, 1, false),
            (ChatRole::Tool, 0, true),
            (ChatRole::Assistant, 0, false),
            (ChatRole::User, 0, false),
        ],
        "{second_turn:?}"
    );
    assert_eq!(second_turn[1].tool_calls[0].name, "current_time");
    assert_eq!(second_turn[2].tool_call_id.as_deref(), Some(second_turn[1].tool_calls[0].id.as_str()));
    assert!(second_turn[2].content.contains("unix"));
    assert_eq!(second_turn[3].content, "It is now.");
}

/// An OpenAI-compatible endpoint answering from a queue of SSE bodies, keeping request bodies.
async fn openai_stub(answers: Vec<String>) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    let state = seen.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: String| {
            let (state, answers) = (state.clone(), answers.clone());
            async move {
                state.lock().unwrap().push(serde_json::from_str::<Value>(&body).unwrap());
                let answer = answers.lock().unwrap().next().unwrap_or_default();
                ([("content-type", "text/event-stream")], answer)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

fn sse(chunks: &[Value]) -> String {
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    body
}

#[tokio::test]
async fn an_openai_compatible_endpoint_gets_the_earlier_turns_tool_call_and_result() {
    let call = json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_abc", "type": "function",
        "function": {"name": "current_time", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}]});
    let text = |t: &str| json!({"choices": [{"index": 0, "delta": {"content": t}, "finish_reason": "stop"}]});
    let usage = json!({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 2}});
    let (base, seen) = openai_stub(vec![
        sse(&[call, usage.clone()]),
        sse(&[text("It is now."), usage.clone()]),
        sse(&[text("You're welcome."), usage]),
    ])
    .await;
    let section: ProviderSection = serde_json::from_value(json!({"kind": "openai", "base_url": base})).unwrap();
    let config = ProviderConfig::from_section("stub", &section, |_| None).unwrap();
    let (engine, store, _dir) = engine_with(ProviderRegistry::new(BTreeMap::from([("stub".to_owned(), config)]))).await;
    two_turns(&engine, &store, "stub:gpt-test").await;
    let bodies = seen.lock().unwrap();
    assert_eq!(bodies.len(), 3);
    let messages = bodies[2]["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant", "user"], "{messages:?}");
    assert_eq!(messages[1]["tool_calls"][0]["id"], "call_abc");
    assert_eq!(messages[1]["tool_calls"][0]["function"]["name"], "current_time");
    assert_eq!(messages[2]["tool_call_id"], "call_abc");
    assert!(messages[2]["content"].as_str().unwrap().contains("unix"));
    assert_eq!(messages[3]["content"], "It is now.");
    assert_eq!(messages[4]["content"], "thanks");
}

/// A provider that cannot call tools (like the embedded model), recording what it is asked.
struct ToolLess(Recording);

impl ModelProvider for ToolLess {
    fn stream(&self, request: ModelRequest) -> ModelStream {
        self.0.stream(request)
    }

    fn calls_tools(&self) -> bool {
        false
    }
}

#[tokio::test]
async fn an_agents_sampling_reaches_the_model_and_a_model_without_tools_refuses_tool_agents() {
    let recording = Recording {
        inner: ScriptedProvider::for_agent("echo", Script::default()).unwrap(),
        requests: Mutex::default(),
    };
    let toolless = Arc::new(ToolLess(recording));
    let providers = ProviderRegistry::default().with_provider("small", toolless.clone());
    let (engine, store, _dir) = engine_with(providers).await;
    let sampling = agentry_core::SamplingSpec {
        temperature: Some(0.2),
        top_p: Some(0.5),
        repetition_penalty: Some(1.3),
        seed: Some(7),
    };
    let spec = AgentSpec { sampling: sampling.clone(), ..AgentSpec::new("careful", "Careful", "small:echo", "") };
    engine.check_agent(&spec).unwrap();
    // The same agent with a tool is refused when applied, naming the field and the model.
    let with_tools = AgentSpec { tools: vec!["current_time".into()], ..spec.clone() };
    let (field, problem) = engine.check_agent(&with_tools).unwrap_err();
    assert_eq!(field, "tools");
    assert!(problem.contains("`small:echo` cannot call tools"), "{problem}");

    store.apply_agent(&Scope::default_scope(), &spec, "test", None).await.unwrap();
    let f = Fixture { engine: engine.clone(), store: store.clone(), dir: tempfile::tempdir().unwrap() };
    let thread = f.thread_for("careful").await;
    let turn = f.send(&thread, "hello").await;
    assert_eq!(done_of(&f.events(&turn, 0).await).0, TurnStatus::Completed);
    let requests = toolless.0.requests.lock().unwrap();
    assert_eq!(requests[0].sampling, sampling);
    // Out-of-range values are refused with the key's name.
    let hot = AgentSpec {
        sampling: agentry_core::SamplingSpec { temperature: Some(3.0), ..Default::default() },
        ..AgentSpec::new("hot", "Hot", "small:echo", "")
    };
    assert!(hot.validate().unwrap_err().to_string().contains("sampling.temperature"));
}
