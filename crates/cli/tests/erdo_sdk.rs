//! The Erdo surface of the Rust SDK (`client.erdo()`) against a real `agentry serve` spawned by
//! the test, with an `echo` bot (`scripted:echo`) in organization `default`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentry_client::{
    Client, ErdoEvent, ErdoThread, Error, InvokeMode, InvokeParams, RetryPolicy, ScopedToken, Timestamp, TokenParams,
};
use futures_util::StreamExt as _;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const SECRET: &str = "erdo-sdk-test-secret-0123456789abcdef";
const API_KEY: &str = "erdo-sdk-test-operator-key";
const QUESTION: &str = "hello there  world";

async fn server() -> common::Server {
    let echo = "id = \"echo\"\nname = \"Echo\"\nmodel = \"scripted:echo\"\n".to_owned();
    common::spawn(SECRET, API_KEY, &[("echo.toml", echo)]).await
}

/// The operator: the API key alone, in the default organization.
fn operator(base: &str) -> Client {
    Client::builder(base).erdo_api_key(API_KEY).build().unwrap()
}

fn with_token(base: &str, token: &str) -> Client {
    Client::builder(base).erdo_token(token).build().unwrap()
}

async fn mint(client: &Client, bot_keys: &[&str], external_user_id: Option<&str>) -> agentry_client::ScopedToken {
    let params = TokenParams {
        bot_keys: Some(bot_keys.iter().map(|k| (*k).to_owned()).collect()),
        external_user_id: external_user_id.map(str::to_owned),
        expires_in_seconds: Some(600),
        ..Default::default()
    };
    client.erdo().create_token(&params).await.unwrap()
}

/// The concatenated text deltas of a stream's events.
fn streamed_text(events: &[ErdoEvent]) -> String {
    events.iter().filter_map(ErdoEvent::text_delta).collect()
}

/// The texts of the last result among the events.
fn final_texts(events: &[ErdoEvent]) -> Vec<String> {
    let result = events.iter().rev().find_map(ErdoEvent::result).expect("a result");
    result.texts().into_iter().map(str::to_owned).collect()
}

#[tokio::test]
async fn invoke_collects_the_answer_and_invoke_stream_yields_it_as_it_comes() {
    let server = server().await;
    let erdo = operator(&server.base);

    let answer = erdo.erdo().invoke("echo", InvokeParams::user(QUESTION)).await.unwrap();
    assert!(answer.success, "{:?}", answer.error);
    assert_eq!(answer.error, None);
    let result = answer.result.as_ref().unwrap();
    assert_eq!(result.status, "success");
    assert_eq!(result.texts(), vec![QUESTION]);
    assert_eq!(result.message.as_deref(), Some(QUESTION));
    assert_eq!(answer.messages, vec![agentry_client::ChatMessage::assistant(QUESTION)]);
    assert_eq!(answer.text(), QUESTION);
    assert_eq!(answer.bot_id.as_deref(), Some("echo"));
    let invocation = answer.invocation_id.clone().unwrap();
    assert!(answer.events.iter().all(|e| e.any_invocation_id() == Some(invocation.as_str())));
    assert_eq!(answer.events.first().unwrap().kind, "bot started");
    assert_eq!(answer.events.last().unwrap().kind, "invocation_completed");
    assert_eq!(answer.events.last().unwrap().extra["result"]["status"], "success");
    assert!(answer.steps.iter().any(|s| s.key == "llm"));

    // History before the last user message is accepted; the echo answers the last one.
    let params = InvokeParams {
        messages: vec![
            agentry_client::ChatMessage::user("first"),
            agentry_client::ChatMessage::assistant("first"),
            agentry_client::ChatMessage::user("second  one"),
        ],
        ..Default::default()
    };
    assert_eq!(erdo.erdo().invoke("default.echo", params).await.unwrap().text(), "second  one");

    // Streamed: `bot started` first, deltas that add up to the answer, the result at the end.
    let mut stream = erdo.erdo().invoke_stream("echo", InvokeParams::user(QUESTION));
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(30), stream.next()).await.unwrap() {
        events.push(event.unwrap());
    }
    assert_eq!(events[0].kind, "bot started");
    assert_eq!(events[0].payload_field("bot_id"), Some(&json!("echo")));
    assert!(events.iter().filter(|e| e.text_delta().is_some()).count() >= 3);
    assert_eq!(streamed_text(&events), QUESTION);
    assert_eq!(final_texts(&events), vec![QUESTION]);
    let last_result = events.iter().rposition(ErdoEvent::is_result).unwrap();
    assert_eq!(events[last_result].kind, "result");
    assert_eq!(events.len(), last_result + 2, "only invocation_completed follows the result");

    // Replay: the first call runs and records, the second serves the recording.
    let replay = InvokeParams { mode: Some(InvokeMode::Replay { refresh: false }), ..InvokeParams::user("once more") };
    let recorded = erdo.erdo().invoke("echo", replay.clone()).await.unwrap();
    let replayed = erdo.erdo().invoke("echo", replay).await.unwrap();
    assert_eq!((recorded.text(), replayed.text()), ("once more".to_owned(), "once more".to_owned()));
    assert_ne!(recorded.invocation_id, replayed.invocation_id);
    // Manual: the mocks answer, nothing runs.
    let mocks = json!({"llm.message": {"status": "success", "output": {"content": [{"content_type": "text", "content": "mocked"}]}}});
    let manual =
        InvokeParams { mode: Some(InvokeMode::Manual(mocks.as_object().unwrap().clone())), ..InvokeParams::user("hi") };
    assert_eq!(erdo.erdo().invoke("echo", manual).await.unwrap().text(), "mocked");

    // The organization can be named explicitly.
    let named = Client::builder(&server.base).erdo_api_key(API_KEY).organization("default").build().unwrap();
    assert!(named.erdo().invoke("echo", InvokeParams::user("hi")).await.unwrap().success);
}

#[tokio::test]
async fn refusals_are_typed_errors() {
    let server = server().await;
    let erdo = operator(&server.base);

    match erdo.erdo().invoke("nope", InvokeParams::user("hi")).await {
        Err(Error::NotFound { message }) => assert!(message.contains("nope"), "{message}"),
        other => panic!("{other:?}"),
    }
    // A stream refused before it began: the error is its only item.
    let mut stream = erdo.erdo().invoke_stream("nope", InvokeParams::user("hi"));
    assert!(matches!(stream.next().await, Some(Err(Error::NotFound { .. }))));
    assert!(stream.next().await.is_none());

    // A bot of another organization is not found there.
    let elsewhere = Client::builder(&server.base).erdo_api_key(API_KEY).organization("acme").build().unwrap();
    assert!(matches!(elsewhere.erdo().invoke("echo", InvokeParams::user("hi")).await, Err(Error::NotFound { .. })));

    // No user message.
    let empty = InvokeParams { messages: vec![agentry_client::ChatMessage::assistant("hm")], ..Default::default() };
    match erdo.erdo().invoke("echo", empty).await {
        Err(Error::Validation { message, errors }) => assert!(
            errors.iter().any(|e| e.contains("messages")) || message.contains("messages"),
            "{message} {errors:?}"
        ),
        other => panic!("{other:?}"),
    }

    // Wrong key.
    let wrong = Client::builder(&server.base).erdo_api_key("not-a-key").build().unwrap();
    assert!(matches!(
        wrong.erdo().invoke("echo", InvokeParams::user("hi")).await,
        Err(Error::Auth { status: 401, .. })
    ));
    assert!(matches!(wrong.erdo().list_threads(None).await, Err(Error::Auth { status: 401, .. })));

    // Credentials of the wrong surface are a configuration error, before any request.
    let session = Client::builder(&server.base).session_token("a.b.c").build().unwrap();
    assert!(matches!(session.erdo().list_threads(None).await, Err(Error::Config(_))));
    assert!(matches!(erdo.agents().list().await, Err(Error::Config(_))));
}

#[tokio::test]
async fn scoped_tokens_invoke_what_they_grant_until_revoked() {
    let server = server().await;
    let erdo = operator(&server.base);

    let token = mint(&erdo, &["echo"], None).await;
    assert!(token.token_id.starts_with("stk_") && token.expires_at > Timestamp::now());
    let user = with_token(&server.base, &token.token);
    let answer = user.erdo().invoke("echo", InvokeParams::user(QUESTION)).await.unwrap();
    assert!(answer.success);
    assert_eq!(answer.text(), QUESTION);
    // Other bots are not granted: they look missing.
    assert!(matches!(user.erdo().invoke("default", InvokeParams::user("hi")).await, Err(Error::NotFound { .. })));

    // A token whose bot keys leave the bot out.
    let other = mint(&erdo, &["default"], None).await;
    let limited = with_token(&server.base, &other.token);
    assert!(matches!(limited.erdo().invoke("echo", InvokeParams::user("hi")).await, Err(Error::NotFound { .. })));
    assert!(limited.erdo().invoke("default", InvokeParams::user("hi")).await.unwrap().success);

    // A scoped token may not mint or revoke tokens.
    let minted_by_token = user.erdo().create_token(&TokenParams::default()).await;
    assert!(matches!(minted_by_token, Err(Error::Auth { status: 403, .. })), "{minted_by_token:?}");
    assert!(matches!(user.erdo().revoke_token(&other.token_id).await, Err(Error::Auth { status: 403, .. })));

    // Revoked: the next call is refused, and revoking again is fine.
    erdo.erdo().revoke_token(&token.token_id).await.unwrap();
    match user.erdo().invoke("echo", InvokeParams::user("hi")).await {
        Err(Error::Auth { status: 401, message }) => assert!(message.contains("revoked"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(user.erdo().list_threads(None).await, Err(Error::Auth { status: 401, .. })));
    erdo.erdo().revoke_token(&token.token_id).await.unwrap();
    assert!(matches!(erdo.erdo().revoke_token("stk_missing").await, Err(Error::NotFound { .. })));

    // Out-of-range lifetimes are refused with the field named.
    let forever = TokenParams { expires_in_seconds: Some(86_401), ..Default::default() };
    match erdo.erdo().create_token(&forever).await {
        Err(Error::Validation { errors, .. }) => assert!(errors.iter().any(|e| e.contains("expiresInSeconds"))),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn threads_round_trip_and_messages_stream() {
    let server = server().await;
    let erdo = operator(&server.base);
    let token = mint(&erdo, &["echo"], Some("user_123")).await;
    let user = with_token(&server.base, &token.token);

    let thread = user.erdo().create_thread(Some("Support"), Some("echo")).await.unwrap();
    assert_eq!(thread.name.as_deref(), Some("Support"));
    assert_eq!(thread.bot_key, "default.echo");
    assert!(thread.created_at.0 > 0 && thread.created_at_snake == thread.created_at);
    let listed = user.erdo().list_threads(None).await.unwrap();
    assert_eq!(listed.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), vec![thread.id.as_str()]);
    assert_eq!(user.erdo().get_thread(&thread.id).await.unwrap().unwrap().id, thread.id);
    assert!(user.erdo().get_thread("thr_missing").await.unwrap().is_none());
    assert!(user.erdo().get_thread_messages(&thread.id).await.unwrap().is_empty());
    assert!(matches!(user.erdo().get_thread_messages("thr_missing").await, Err(Error::NotFound { .. })));

    // Streamed: message-wrapped events whose deltas add up to the answer.
    let mut stream = user.erdo().send_message(&thread.id, QUESTION, None);
    let mut events = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(30), stream.next()).await.unwrap() {
        events.push(event.unwrap());
    }
    assert_eq!(events[0].kind, "message created");
    assert!(events.iter().any(|e| e.kind == "step_started"), "a root agent step for the flat UI reducer");
    assert!(events.iter().all(|e| e.kind != "bot started" && e.kind != "invocation_completed"));
    assert!(events.iter().any(|e| e.kind == "message finished"));
    let wrapped = events.iter().filter(|e| e.kind != "invocation_completed");
    assert!(wrapped.into_iter().all(|e| e.metadata_field("path").is_some()), "every thread event has a path");
    assert_eq!(streamed_text(&events), QUESTION);
    assert_eq!(final_texts(&events), vec![QUESTION]);

    // Collected: the events end with the message finished, then the result.
    let events = user.erdo().send_message_and_wait(&thread.id, "and again", Some("echo")).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds[kinds.len() - 2..], ["message finished", "result"]);
    assert_eq!(final_texts(&events), vec!["and again"]);
    assert!(events[events.len() - 1].result().unwrap().is_success());

    // A bot can also answer in the thread through invoke-from-thread.
    let again = user.erdo().invoke_from_thread("echo", &thread.id, "third").into_events().await.unwrap();
    assert_eq!(final_texts(&again), vec!["third"]);

    // The history holds both sides with their content items.
    let messages = user.erdo().get_thread_messages(&thread.id).await.unwrap();
    let turns: Vec<(&str, String)> = messages.iter().map(|m| (m.role.as_str(), m.text())).collect();
    assert_eq!(
        turns,
        vec![
            ("user", QUESTION.to_owned()),
            ("assistant", QUESTION.to_owned()),
            ("user", "and again".to_owned()),
            ("assistant", "and again".to_owned()),
            ("user", "third".to_owned()),
            ("assistant", "third".to_owned()),
        ]
    );
    let answer = &messages[1].contents[0];
    assert_eq!((answer.content_type.as_str(), answer.text()), ("text", Some(QUESTION)));
    assert!(!answer.created_by_invocation_id.is_empty());

    // A bot the token does not grant cannot answer in the thread.
    let refused = user.erdo().send_message_and_wait(&thread.id, "hi", Some("default")).await;
    assert!(matches!(refused, Err(Error::NotFound { .. })), "{refused:?}");
}

#[tokio::test]
async fn external_users_share_threads_and_anonymous_tokens_see_none() {
    let server = server().await;
    let erdo = operator(&server.base);
    let first = with_token(&server.base, &mint(&erdo, &[], Some("user_123")).await.token);
    let thread = first.erdo().create_thread(Some("Mine"), None).await.unwrap();

    // Another token for the same external user is the same user.
    let second = with_token(&server.base, &mint(&erdo, &["echo"], Some("user_123")).await.token);
    let seen: Vec<String> = second.erdo().list_threads(None).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(seen, vec![thread.id.clone()]);
    assert_eq!(second.erdo().get_thread(&thread.id).await.unwrap().unwrap().name.as_deref(), Some("Mine"));
    let events = second.erdo().send_message_and_wait(&thread.id, "shared", Some("echo")).await.unwrap();
    assert_eq!(final_texts(&events), vec!["shared"]);
    assert_eq!(first.erdo().get_thread_messages(&thread.id).await.unwrap().len(), 2);

    // A token without an external user is a fresh user: none of it is visible.
    let stranger = with_token(&server.base, &mint(&erdo, &[], None).await.token);
    assert!(stranger.erdo().list_threads(None).await.unwrap().is_empty());
    // Its `externalUserId` filter is ignored.
    assert!(stranger.erdo().list_threads(Some("user_123")).await.unwrap().is_empty());
    assert!(stranger.erdo().get_thread(&thread.id).await.unwrap().is_none());
    assert!(matches!(stranger.erdo().get_thread_messages(&thread.id).await, Err(Error::NotFound { .. })));
    let mut refused = stranger.erdo().send_message(&thread.id, "hi", None);
    assert!(matches!(refused.next().await, Some(Err(Error::NotFound { .. }))));

    // A different external user sees none of it either.
    let other = with_token(&server.base, &mint(&erdo, &[], Some("user_456")).await.token);
    assert!(other.erdo().list_threads(None).await.unwrap().is_empty());

    // The API key lists an external user's threads on request, and its own otherwise.
    let theirs: Vec<String> =
        erdo.erdo().list_threads(Some("user_123")).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(theirs, vec![thread.id.clone()]);
    assert!(erdo.erdo().list_threads(None).await.unwrap().iter().all(|t| t.id != thread.id));
    let own = erdo.erdo().create_thread(None, Some("echo")).await.unwrap();
    assert!(erdo.erdo().list_threads(None).await.unwrap().iter().any(|t| t.id == own.id));
    // The operator may read any thread of its organization.
    assert_eq!(erdo.erdo().get_thread(&thread.id).await.unwrap().unwrap().id, thread.id);
}

/// A request the scripted server received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    /// Lower-cased names.
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A server that answers each connection with the next raw HTTP response (then closes it), and
/// records what it was asked.
async fn scripted(responses: Vec<String>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut responses = responses.into_iter();
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                    break;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let mut lines = head.lines();
            let mut first = lines.next().unwrap_or_default().split(' ');
            let (method, path) =
                (first.next().unwrap_or_default().to_owned(), first.next().unwrap_or_default().to_owned());
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                .collect();
            let length = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok());
            let mut body = vec![0u8; length.unwrap_or(0)];
            let _ = socket.read_exact(&mut body).await;
            log.lock().unwrap().push(Seen { method, path, headers });
            let response = responses.next().unwrap_or_else(|| json_response(500, "{}"));
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (base, seen)
}

/// A thread as the server shows it.
fn erdo_thread(id: &str) -> ErdoThread {
    let at = Timestamp(1_780_000_000_000);
    ErdoThread {
        id: id.into(),
        name: Some("n".into()),
        bot_key: "acme.bot".into(),
        created_at: at,
        updated_at: at,
        created_at_snake: at,
        updated_at_snake: at,
    }
}

fn json_response(status: u16, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// An event stream response; `declared` overstates the length to cut the stream short.
fn sse_response(body: &str, declared: usize) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {declared}\r\nconnection: close\r\n\r\n{body}"
    )
}

fn fast_client(base: &str) -> Client {
    let retry = RetryPolicy { base_delay: Duration::from_millis(5), ..RetryPolicy::default() };
    Client::builder(base).erdo_api_key("key").organization("acme").retry(retry).build().unwrap()
}

#[tokio::test]
async fn reads_and_keyed_token_minting_are_retried_with_the_same_key() {
    let unavailable = json_response(503, r#"{"statusCode":503,"error":"UNAVAILABLE","message":"down"}"#);
    let (base, seen) = scripted(vec![
        unavailable.clone(),
        json_response(200, &json!({"threads": [erdo_thread("t1")], "total": 1}).to_string()),
        unavailable.clone(),
        unavailable,
        json_response(201, &json!(ScopedToken::new("stk_1", "erdo_st_1".into(), Timestamp(0))).to_string()),
    ])
    .await;
    let client = fast_client(&base);
    assert_eq!(client.erdo().list_threads(Some("u 1")).await.unwrap()[0].id, "t1");
    let token = client.erdo().create_token(&TokenParams::default()).await.unwrap();
    assert_eq!(token.token_id, "stk_1");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 5);
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("GET", "/threads?externalUserId=u%201"));
    assert_eq!(seen[0].header("authorization"), Some("Bearer key"));
    assert_eq!(seen[0].header("x-organization-id"), Some("acme"));
    let keys: Vec<_> = seen[2..].iter().map(|s| s.header("idempotency-key").unwrap().to_owned()).collect();
    assert!(keys.iter().all(|k| *k == keys[0] && !k.is_empty()), "{keys:?}");
}

#[tokio::test]
async fn invocations_are_sent_again_only_when_the_server_certainly_did_not_run_them() {
    let events = "event: bot started\r\ndata: {\"type\":\"bot started\",\"payload\":{}}\r\n\r\n\
                  : keep-alive\r\n\
                  event: result\r\ndata: {\"payload\":{\"status\":\"success\",\"output\":{\"content\":[{\"content_type\":\"text\",\"content\":\"ok\"}]}}}\r\n\r\n";
    let (base, seen) = scripted(vec![
        // A 5xx may have run it: not sent again.
        json_response(500, r#"{"statusCode":500,"error":"INTERNAL","message":"boom"}"#),
        // A 429 did not: sent again (after `Retry-After`), then streamed.
        "HTTP/1.1 429 X\r\nretry-after: 0\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}".to_owned(),
        sse_response(events, events.len()),
        // Cut short after its first event: the stream ends with a network error, nothing re-sent.
        sse_response("event: bot started\ndata: {\"type\":\"bot started\"}\n\n", 10_000),
    ])
    .await;
    let client = fast_client(&base);

    match client.erdo().invoke("bot", InvokeParams::user("hi")).await {
        Err(Error::Server { status: 500, message }) => assert_eq!(message, "boom"),
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.lock().unwrap().len(), 1);

    let answer = client.erdo().invoke("bot", InvokeParams::user("hi")).await.unwrap();
    assert!(answer.success);
    assert_eq!(answer.text(), "ok");
    assert_eq!(answer.events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), vec!["bot started", "result"]);
    assert_eq!(seen.lock().unwrap().len(), 3);

    let mut stream = client.erdo().invoke_stream("bot", InvokeParams::user("hi"));
    assert_eq!(stream.next().await.unwrap().unwrap().kind, "bot started");
    assert!(matches!(stream.next().await, Some(Err(Error::Network(_)))));
    assert!(stream.next().await.is_none());
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    assert!(seen.iter().all(|s| s.method == "POST" && s.path == "/bots/bot/invoke"));
    assert_eq!(seen[3].header("accept"), Some("text/event-stream"));
    assert!(seen.iter().all(|s| s.header("idempotency-key").is_none()));
}
