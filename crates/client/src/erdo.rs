//! The Erdo surface: `client.erdo()`, the methods of `@erdoai/server`'s `ErdoClient` at the root
//! of the base URL (`/bots/…`, `/tokens`, `/threads`).
//!
//! Requests authenticate with `Authorization: Bearer <API key or scoped token>`, plus
//! `X-Organization-ID` for an API key when an organization is set. Bots answer as
//! `text/event-stream`, read by [`crate::sse`] into [`ErdoEvent`]s (one JSON object per `data:`
//! line; the server closes the stream when the invocation ends).
//!
//! Retries: reads (`GET`), revocation (`DELETE`, idempotent) and token minting (a `POST` with an
//! `Idempotency-Key` the client sets once per call; see [`Erdo::create_token`] for what a retry
//! can cost) are retried on network errors, 5xx and 429.
//! `POST`s without a key — invocations, messages, thread creation — are retried only when the
//! server provably did not run them: the connection was refused, or it answered 429. Once a
//! stream's response has arrived it is never re-sent; a broken stream ends with
//! [`Error::Network`].

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::erdo_types::{ErdoEvent, ErdoThread, InvokeParams, InvokeResult, ScopedToken, ThreadMessage, TokenParams};
use crate::platos::{encode, required};
use crate::{Client, Credentials, Error, Result};
use agentry_core::sse::{SseBlock, SseParser};
use agentry_core::wire::erdo::{
    CreateThread, ErdoThreadList, InvokeFromThread, RevokedToken, SendMessage, ThreadMessages,
};

/// `client.erdo()`: bots, scoped tokens and threads in the shapes of Erdo's `ErdoClient`.
///
/// Build the client with [`erdo_api_key`](crate::ClientBuilder::erdo_api_key) (server side; with
/// [`organization`](crate::ClientBuilder::organization) to pick the organization) or with
/// [`erdo_token`](crate::ClientBuilder::erdo_token) (a scoped token from
/// [`create_token`](Self::create_token), safe to hand to a browser or an end user's process).
/// A client built with [`api_key`](crate::ClientBuilder::api_key) uses its key here too, in the
/// scope's organization.
pub struct Erdo<'c> {
    pub(crate) client: &'c Client,
}

impl Erdo<'_> {
    /// Invokes a bot and waits for the whole invocation: `POST /bots/{bot_key}/invoke`, collected
    /// into an [`InvokeResult`] (final result, its text as `messages`, every event). `bot_key` is
    /// `analyst` (the caller's organization) or `my-org.analyst`.
    ///
    /// Errors: an unknown bot, or one the scoped token does not grant, is [`Error::NotFound`];
    /// refused credentials [`Error::Auth`]; a bad request [`Error::Validation`]; a stream that
    /// breaks [`Error::Network`]. A bot that runs but fails is `Ok` with `success: false`.
    pub async fn invoke(&self, bot_key: &str, params: InvokeParams) -> Result<InvokeResult> {
        let events = self.invoke_stream(bot_key, params).into_events().await?;
        Ok(InvokeResult::from_events(events))
    }

    /// Invokes a bot and streams its events as they arrive (`bot started`, steps,
    /// `message content delta`s — see [`ErdoEvent::text_delta`] — the final `result` and
    /// `invocation_completed`). The request is sent when the stream is first polled; a refusal
    /// before the stream is its only item, as the mapped [`Error`] with the server's message.
    pub fn invoke_stream(&self, bot_key: &str, params: InvokeParams) -> EventStream {
        let path = format!("/bots/{}/invoke", encode(bot_key));
        EventStream::open(self.client.clone(), Request::stream(path, to_json(&params.body())))
    }

    /// Lets a bot answer in an existing thread (`POST /bots/{bot_key}/invoke-from-thread`, what
    /// the Python SDK calls): the same events as [`invoke_stream`](Self::invoke_stream).
    pub fn invoke_from_thread(&self, bot_key: &str, thread_id: &str, message: &str) -> EventStream {
        let path = format!("/bots/{}/invoke-from-thread", encode(bot_key));
        let body = InvokeFromThread {
            thread_id: thread_id.to_owned(),
            message: message.to_owned(),
            parameters: json!({}),
            mode: None,
        };
        EventStream::open(self.client.clone(), Request::stream(path, to_json(&body)))
    }

    /// Mints a scoped token (`POST /tokens`; API key only — a scoped token gets
    /// [`Error::Auth`] 403). Retried on network errors, 5xx and 429 with one `Idempotency-Key`:
    /// the server refuses a duplicate while the first attempt still runs ([`Error::Conflict`]),
    /// but never stores the answer (it shows the secret), so a retry after an answer was lost
    /// mints a second token; the unseen one stays valid until it expires.
    pub async fn create_token(&self, params: &TokenParams) -> Result<ScopedToken> {
        let body = to_json(params);
        let key = agentry_core::id::new_secret("idem", 16);
        let request = Request { idempotency_key: Some(key), ..Request::write(Method::POST, "/tokens".into(), body) };
        required(call(self.client, &request).await)
    }

    /// Revokes a scoped token at once (`DELETE /tokens/{token_id}`; API key only). Revoking it
    /// again is fine; an unknown id is [`Error::NotFound`].
    pub async fn revoke_token(&self, token_id: &str) -> Result<()> {
        let request = Request::read(Method::DELETE, format!("/tokens/{}", encode(token_id)));
        call::<RevokedToken>(self.client, &request).await.map(|_| ())
    }

    /// Creates a thread owned by the caller (a scoped token's user, or the API key's own),
    /// answered by `bot_key` (default: the organization's default bot).
    pub async fn create_thread(&self, name: Option<&str>, bot_key: Option<&str>) -> Result<ErdoThread> {
        let body = CreateThread {
            name: name.map(str::to_owned),
            dataset_ids: Vec::new(),
            bot_key: bot_key.map(str::to_owned),
        };
        let request = Request::write(Method::POST, "/threads".into(), to_json(&body));
        required(call(self.client, &request).await)
    }

    /// The caller's threads, newest first. With a scoped token: its user's threads
    /// (`external_user_id` is ignored by the server). With an API key: its own, or with
    /// `external_user_id` that external user's — take it from your own authentication, never
    /// from the request of a client.
    pub async fn list_threads(&self, external_user_id: Option<&str>) -> Result<Vec<ErdoThread>> {
        let path = match external_user_id {
            Some(user) => format!("/threads?externalUserId={}", encode(user)),
            None => "/threads".to_owned(),
        };
        let list: ErdoThreadList = required(call(self.client, &Request::read(Method::GET, path)).await)?;
        Ok(list.threads)
    }

    /// One thread; `None` when it does not exist or the caller may not see it.
    pub async fn get_thread(&self, thread_id: &str) -> Result<Option<ErdoThread>> {
        let request = Request::read(Method::GET, format!("/threads/{}", encode(thread_id)));
        match call(self.client, &request).await {
            Err(Error::NotFound { .. }) => Ok(None),
            other => other,
        }
    }

    /// The thread's messages, oldest first, each with its content items. A thread the caller
    /// may not see is [`Error::NotFound`].
    pub async fn get_thread_messages(&self, thread_id: &str) -> Result<Vec<ThreadMessage>> {
        let path = format!("/threads/{}/messages", encode(thread_id));
        let page: ThreadMessages = required(call(self.client, &Request::read(Method::GET, path)).await)?;
        Ok(page.messages)
    }

    /// Sends a message to a thread and streams the bot's answer (`POST /threads/{id}/message`):
    /// message-wrapped events (`message created`, content events with `metadata.path`,
    /// `message finished`, the final `result`). `bot_key` must be granted to a scoped token;
    /// `None` uses the thread's bot. Sent when first polled, like
    /// [`invoke_stream`](Self::invoke_stream).
    pub fn send_message(&self, thread_id: &str, content: &str, bot_key: Option<&str>) -> EventStream {
        let body = SendMessage { content: content.to_owned(), bot_key: bot_key.map(str::to_owned) };
        let path = format!("/threads/{}/message", encode(thread_id));
        EventStream::open(self.client.clone(), Request::stream(path, to_json(&body)))
    }

    /// [`send_message`](Self::send_message), collected: every event, in order (`message
    /// finished`, then the final `result` last).
    pub async fn send_message_and_wait(
        &self,
        thread_id: &str,
        content: &str,
        bot_key: Option<&str>,
    ) -> Result<Vec<ErdoEvent>> {
        self.send_message(thread_id, content, bot_key).into_events().await
    }
}

/// The events of one Erdo invocation, as they arrive; ends when the server closes the stream.
///
/// A refusal before the stream (unknown bot, bad credentials, …) is the only item, as an `Err`.
/// A `data:` line that is not an event is an `Err(`[`Error::Protocol`]`)` item and the stream
/// goes on; a connection that breaks (or stays silent longer than the
/// [stream idle timeout](crate::ClientBuilder::stream_idle_timeout)) ends it with
/// `Err(`[`Error::Network`]`)`. Dropping it closes the connection (Agentry still finishes the
/// invocation and stores it).
pub struct EventStream {
    inner: Pin<Box<dyn Stream<Item = Result<ErdoEvent>> + Send>>,
}

impl EventStream {
    fn open(client: Client, request: Request) -> Self {
        EventStream { inner: Box::pin(futures_util::stream::unfold(Phase::Start(client, request), advance)) }
    }

    /// Reads the stream to its end; the first error ends it.
    pub async fn into_events(mut self) -> Result<Vec<ErdoEvent>> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event?);
        }
        Ok(events)
    }
}

impl Stream for EventStream {
    type Item = Result<ErdoEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

/// Where an [`EventStream`] is.
enum Phase {
    /// Not sent yet.
    Start(Client, Request),
    /// Reading the response.
    Reading(Box<Reader>),
    /// Ended after an error.
    Done,
}

struct Reader {
    response: reqwest::Response,
    parser: SseParser,
    ready: VecDeque<Result<ErdoEvent>>,
    idle: Duration,
    /// The body ended (or `data: [DONE]` arrived): deliver `ready`, then stop.
    ended: bool,
}

async fn advance(phase: Phase) -> Option<(Result<ErdoEvent>, Phase)> {
    let mut reader = match phase {
        Phase::Done => return None,
        Phase::Reading(reader) => reader,
        Phase::Start(client, request) => match send(&client, &request).await {
            Ok(Answer::Stream(response)) => Box::new(Reader {
                response,
                parser: SseParser::default(),
                ready: VecDeque::new(),
                idle: client.inner.stream_idle_timeout,
                ended: false,
            }),
            Ok(Answer::Body(_)) => unreachable!("stream requests answer with a stream"),
            Err(err) => return Some((Err(err), Phase::Done)),
        },
    };
    loop {
        if let Some(item) = reader.ready.pop_front() {
            return Some((item, Phase::Reading(reader)));
        }
        if reader.ended {
            return None;
        }
        match tokio::time::timeout(reader.idle, reader.response.chunk()).await {
            Err(_) => {
                let message = format!("the stream sent nothing for {:?}; gave up on it", reader.idle);
                return Some((Err(Error::Network(message)), Phase::Done));
            }
            Ok(Err(err)) => {
                return Some((Err(Error::Network(format!("the stream broke: {err}"))), Phase::Done));
            }
            Ok(Ok(Some(bytes))) => {
                let blocks = reader.parser.feed(&bytes);
                reader.take(blocks);
            }
            Ok(Ok(None)) => {
                let blocks = reader.parser.finish();
                reader.take(blocks);
                reader.ended = true;
            }
        }
    }
}

impl Reader {
    fn take(&mut self, blocks: Vec<SseBlock>) {
        for block in blocks {
            if self.ended {
                return;
            }
            for decoded in decode(block) {
                match decoded {
                    Decoded::Event(event) => self.ready.push_back(Ok(event)),
                    Decoded::Invalid(message) => self.ready.push_back(Err(Error::Protocol(message))),
                    Decoded::End => {
                        self.ended = true;
                        return;
                    }
                }
            }
        }
    }
}

/// What one `data:` line (or block) holds.
#[derive(Debug, PartialEq)]
enum Decoded {
    Event(ErdoEvent),
    Invalid(String),
    /// `data: [DONE]`, the end marker of proxies in the Erdo docs' pattern.
    End,
}

/// The events of one SSE block: one JSON object per `data:` line, as Erdo servers and clients
/// frame them; a block whose lines are not each an event is read as one multi-line value
/// (standard SSE). The block's `event:` name is the type of an event without `type`.
fn decode(block: SseBlock) -> Vec<Decoded> {
    let lines: Vec<&str> = block.data.iter().map(|d| d.trim()).filter(|d| !d.is_empty()).collect();
    let with_name = |mut event: ErdoEvent| {
        if event.kind.is_empty()
            && let Some(name) = &block.event
        {
            event.kind = name.clone();
        }
        Decoded::Event(event)
    };
    let per_line: Vec<std::result::Result<Decoded, String>> = lines
        .iter()
        .map(|line| match *line {
            "[DONE]" => Ok(Decoded::End),
            _ => serde_json::from_str::<ErdoEvent>(line).map(with_name).map_err(|e| {
                let shown: String = line.chars().take(120).collect();
                format!("unreadable stream event ({e}): {shown}")
            }),
        })
        .collect();
    if per_line.iter().all(std::result::Result::is_ok) {
        return per_line.into_iter().filter_map(std::result::Result::ok).collect();
    }
    if lines.len() > 1
        && let Ok(event) = serde_json::from_str::<ErdoEvent>(&block.data.join("\n"))
    {
        return vec![with_name(event)];
    }
    per_line.into_iter().map(|item| item.unwrap_or_else(Decoded::Invalid)).collect()
}

/// One request of the Erdo surface.
#[derive(Debug, Clone)]
struct Request {
    method: Method,
    path: String,
    body: Option<Value>,
    idempotency_key: Option<String>,
    /// Whether it may be sent again after an answer that may have run it.
    safe: bool,
    /// Whether the answer is an event stream.
    stream: bool,
}

impl Request {
    /// A safe (or idempotent) request without a body.
    fn read(method: Method, path: String) -> Self {
        Request { method, path, body: None, idempotency_key: None, safe: true, stream: false }
    }

    /// A write that is not safe to repeat unless it carries an idempotency key.
    fn write(method: Method, path: String, body: Value) -> Self {
        Request { method, path, body: Some(body), idempotency_key: None, safe: false, stream: false }
    }

    /// A `POST` answered with an event stream.
    fn stream(path: String, body: Value) -> Self {
        Request { stream: true, ..Request::write(Method::POST, path, body) }
    }

    fn replayable(&self) -> bool {
        self.safe || self.idempotency_key.is_some()
    }
}

/// A successful answer.
enum Answer {
    /// The text of a JSON answer.
    Body(String),
    /// An event stream, unread.
    Stream(reqwest::Response),
}

/// A failed attempt, and whether the server certainly did not run the request.
struct Failure {
    error: Error,
    not_run: bool,
}

/// A request body as JSON (the wire types always serialise).
fn to_json(body: &impl serde::Serialize) -> Value {
    serde_json::to_value(body).unwrap_or_default()
}

/// A JSON call; `None` from a 2xx with an empty body.
async fn call<T: DeserializeOwned>(client: &Client, request: &Request) -> Result<Option<T>> {
    let Answer::Body(text) = send(client, request).await? else { unreachable!("JSON requests answer with a body") };
    if text.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&text).map(Some).map_err(|e| Error::Protocol(format!("{}: {e}", request.path)))
}

/// Sends with retries: a replayable request on every retryable error, another only when it
/// certainly did not run. Waits `Retry-After` when the server gave one.
async fn send(client: &Client, request: &Request) -> Result<Answer> {
    let policy = client.inner.retry;
    let mut attempt = 0;
    loop {
        match attempt_once(client, request).await {
            Ok(answer) => return Ok(answer),
            Err(Failure { error, not_run })
                if error.is_retryable() && (request.replayable() || not_run) && attempt < policy.max_retries =>
            {
                let delay = match &error {
                    Error::RateLimit { retry_after: Some(wait), .. } => *wait,
                    _ => policy.delay(attempt),
                };
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            Err(failure) => return Err(failure.error),
        }
    }
}

async fn attempt_once(client: &Client, request: &Request) -> std::result::Result<Answer, Failure> {
    let fail = |error: Error, not_run: bool| Failure { error, not_run };
    let inner = &client.inner;
    let mut builder = inner.http.request(request.method.clone(), format!("{}{}", inner.base_url, request.path));
    builder = authorize(client, builder).map_err(|e| fail(e, true))?;
    builder = builder.header("accept", if request.stream { "text/event-stream" } else { "application/json" });
    if let Some(key) = &request.idempotency_key {
        builder = builder.header("idempotency-key", key);
    }
    if let Some(body) = &request.body {
        builder = builder.header("content-type", "application/json").body(body.to_string());
    }
    // A stream has no overall deadline (it lasts as long as the invocation); its answer must
    // still begin within the timeout.
    let response = if request.stream {
        match tokio::time::timeout(inner.timeout, builder.send()).await {
            Ok(sent) => sent,
            Err(_) => return Err(fail(Error::Network(format!("no answer within {:?}", inner.timeout)), false)),
        }
    } else {
        builder.timeout(inner.timeout).send().await
    };
    let response = response.map_err(|e| {
        let not_run = e.is_connect();
        fail(Error::Network(e.to_string()), not_run)
    })?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
            .map(Duration::from_secs_f64);
        let text = tokio::time::timeout(inner.timeout, response.text()).await.ok().and_then(|t| t.ok());
        return Err(fail(Error::from_response(status, retry_after, &text.unwrap_or_default()), status == 429));
    }
    if request.stream {
        let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !content_type.is_empty() && !content_type.starts_with("text/event-stream") {
            let message = format!("{}: expected an event stream, got `{content_type}`", request.path);
            return Err(fail(Error::Protocol(message), false));
        }
        return Ok(Answer::Stream(response));
    }
    response.text().await.map(Answer::Body).map_err(|e| fail(Error::Network(e.to_string()), false))
}

/// Adds the Erdo credentials: `Authorization: Bearer`, and `X-Organization-ID` with an API key.
fn authorize(client: &Client, builder: reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder> {
    let organization = client.inner.organization.clone();
    Ok(match client.credentials() {
        Credentials::ErdoToken(token) => builder.bearer_auth(token),
        Credentials::ErdoApiKey(key) => match organization {
            Some(org) => builder.bearer_auth(key).header("x-organization-id", org),
            None => builder.bearer_auth(key),
        },
        Credentials::ApiKey { key, scope, .. } => {
            builder.bearer_auth(key).header("x-organization-id", organization.unwrap_or(scope.organization_id))
        }
        Credentials::Session(_) => {
            return Err(Error::Config(
                "the Erdo API needs an API key or a scoped token (erdo_api_key / erdo_token), not a session token"
                    .into(),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{Decoded, decode};
    use agentry_core::sse::SseBlock;
    use serde_json::json;

    fn block(event: Option<&str>, data: &[&str]) -> SseBlock {
        SseBlock { event: event.map(str::to_owned), data: data.iter().map(|d| (*d).to_owned()).collect() }
    }

    fn kinds(decoded: &[Decoded]) -> Vec<String> {
        decoded
            .iter()
            .map(|d| match d {
                Decoded::Event(e) => e.kind.clone(),
                Decoded::Invalid(_) => "<invalid>".into(),
                Decoded::End => "<end>".into(),
            })
            .collect()
    }

    #[test]
    fn each_data_line_is_one_event_and_the_event_name_fills_a_missing_type() {
        let decoded = decode(block(
            Some("result"),
            &[r#"{"type":"status","payload":{"status":"running"}}"#, r#"{"payload":{"status":"success","output":{}}}"#],
        ));
        assert_eq!(kinds(&decoded), vec!["status", "result"]);
        let Decoded::Event(event) = &decoded[1] else { panic!() };
        assert!(event.is_result());
        assert_eq!(event.payload_field("status"), Some(&json!("success")));
    }

    #[test]
    fn multi_line_values_end_markers_and_garbage() {
        let split = decode(block(None, &[r#"{"type":"log","#, r#""payload":"x"}"#]));
        assert_eq!(kinds(&split), vec!["log"]);
        assert_eq!(kinds(&decode(block(None, &["[DONE]"]))), vec!["<end>"]);
        assert_eq!(kinds(&decode(block(None, &["not json"]))), vec!["<invalid>"]);
        assert!(decode(block(None, &["", "  "])).is_empty());
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(super::encode("my-org.analyst"), "my-org.analyst");
        assert_eq!(super::encode("a/b c"), "a%2Fb%20c");
    }
}
