//! `agentry-client`: the Rust SDK of Agentry.
//!
//! ```no_run
//! # async fn run() -> agentry_client::Result<()> {
//! use agentry_client::{Client, StreamEvent, TurnEvent};
//! use futures_util::StreamExt as _;
//!
//! let client = Client::builder("http://127.0.0.1:3100").session_token("<jwt minted by your backend>").build()?;
//! let thread = client.threads().create(None, None).await?;
//! let mut turn = client.threads().send(&thread.id, "Summarise today's inbox.");
//! while let Some(event) = turn.next().await {
//!     match event? {
//!         StreamEvent::Event(TurnEvent::Token { text }) => print!("{text}"),
//!         StreamEvent::Event(TurnEvent::Done { usage, .. }) => println!("\n[{} tokens out]", usage.output_tokens),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The Erdo surface (`ErdoClient`'s methods) with an API key, or a scoped token it minted:
//!
//! ```no_run
//! # async fn run() -> agentry_client::Result<()> {
//! use agentry_client::{Client, InvokeParams, TokenParams};
//!
//! let server = Client::builder("http://127.0.0.1:3100").erdo_api_key("<api key>").build()?;
//! let answer = server.erdo().invoke("analyst", InvokeParams::user("Top products by revenue?")).await?;
//! println!("{}", answer.text());
//!
//! let grant = TokenParams { bot_keys: Some(vec!["analyst".into()]), external_user_id: Some("user_123".into()), ..Default::default() };
//! let scoped = server.erdo().create_token(&grant).await?;
//! let user = Client::builder("http://127.0.0.1:3100").erdo_token(scoped.token).build()?;
//! let thread = user.erdo().create_thread(Some("Analysis"), Some("analyst")).await?;
//! let events = user.erdo().send_message_and_wait(&thread.id, "And last quarter?", None).await?;
//! # let _ = events; Ok(()) }
//! ```
//!
//! # Layout
//! - [`Client`] / [`ClientBuilder`]: base URL and credentials — a session token (with an optional
//!   [`on_token_refresh`](ClientBuilder::on_token_refresh) callback, called once on 401/403), or an
//!   API key plus a default [`Scope`] for server-to-server use; for the Erdo surface also an API
//!   key alone ([`erdo_api_key`](ClientBuilder::erdo_api_key), with an optional
//!   [`organization`](ClientBuilder::organization)) or a scoped token
//!   ([`erdo_token`](ClientBuilder::erdo_token)).
//! - Namespaces: [`Client::agents`] ([`Agents`]), [`Client::threads`] ([`Threads`]), whose
//!   [`Threads::send`] returns a [`TurnStream`] of [`StreamEvent`]s that reconnects and resumes,
//!   and [`Client::approvals`] ([`Approvals`]): list, get, approve or reject what a turn waits on.
//! - Types: [`Agent`], [`AgentVersion`], [`Thread`], [`ThreadFilter`], [`Message`], [`Artifact`],
//!   [`Approval`], [`ApprovalFilter`], [`ApprovalPage`]; the turn events are the server's own
//!   [`TurnEvent`] (tokens, tool calls, [`TurnEvent::ApprovalNeeded`] /
//!   [`TurnEvent::ApprovalResolved`], artifacts, [`SafetyFlag`]s, errors, `done`).
//! - [`Client::monitoring`] ([`Monitoring`]): [`TurnRecord`]s, traces ([`TraceSpan`],
//!   [`ThreadTrace`]), cost rollups ([`CostBy`] → [`CostRollup`]) and the [`Summary`].
//! - [`Error`]: one error type with [`Error::is_retryable`]. Requests are retried with exponential
//!   backoff and jitter on network errors, 5xx and 429 (honouring `Retry-After`); writes carry an
//!   `Idempotency-Key` the client sets, so retrying them is safe. 409 is [`Error::Conflict`]
//!   (e.g. an approval settled already).
//! - [`Client::erdo`] ([`Erdo`]): the Erdo wire protocol at the root of the base URL — bots
//!   ([`Erdo::invoke`] collects an [`InvokeResult`], [`Erdo::invoke_stream`] yields
//!   [`ErdoEvent`]s from an [`EventStream`]), scoped tokens ([`Erdo::create_token`] →
//!   [`ScopedToken`], [`Erdo::revoke_token`]), and threads ([`ErdoThread`], [`ThreadMessage`]
//!   with [`MessageContent`] items, [`Erdo::send_message`] / [`Erdo::send_message_and_wait`]).
//!   Event streams are parsed by a standard SSE reader (`event:`/`data:`, comments, CRLF, one
//!   JSON event per `data:` line). Reads, revocations and token minting (with an
//!   `Idempotency-Key`) are retried; invocations and other `POST`s only when the server
//!   certainly did not run them, and never once their stream has begun.
//! - [`Client::bgo`]: background operations — tasks, runs (trigger with options, read with
//!   attempts, cancel, replay), schedules and batches ([`Bgo`]).
//! - [`mint_session_token`]: what a Rust backend uses to mint tokens for its users.

#![warn(missing_docs)]

mod bgo;
mod budgets;
mod erdo;
mod erdo_types;
mod error;
mod monitoring;
mod platos;
mod stream;
mod types;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use agentry_core::session_token::SessionClaims;
/// Every wire type of both surfaces, as the server answers them (`/openapi.json` describes the same).
pub use agentry_core::wire;
pub use agentry_core::{ApprovalStatus, SafetyFlag, Scope, Timestamp, TokenUsage, TurnEvent, TurnStatus, UserMeta};
pub use bgo::{
    Attempt, Batch, BatchHandle, Bgo, Run, RunHandle, RunStatus, Schedule, Task, TaskKind, TaskWiring, TriggerOptions,
};
pub use budgets::{BudgetCap, BudgetStatus, Budgets, CapStatus, NewBudgetCap};
pub use erdo::{Erdo, EventStream};
pub use erdo_types::{
    BotResult, ChatMessage, ErdoEvent, ErdoThread, InvokeMode, InvokeParams, InvokeResult, MessageContent, ScopedToken,
    StepInfo, ThreadMessage, TokenParams,
};
pub use error::{Error, Result};
pub use monitoring::{
    CostBy, CostRollup, CostRow, ModelCallRecord, Monitoring, Summary, SummaryCard, ThreadTrace, TimelineData,
    TimelineEntry, TimelineKind, Trace, TraceContent, TraceMessage, TraceRollup, TraceSpan, TraceThread, TurnDetail,
    TurnQuery, TurnRecord, UsageFigures,
};
pub use platos::{Agents, Approvals, Threads};
pub use stream::{StreamEvent, TurnStream};
pub use types::{
    Agent, AgentVersion, Approval, ApprovalFilter, ApprovalPage, Artifact, Message, MessageToolCall, Resolution,
    ResolveApproval, ResolvedApproval, SafetyEvent, SafetyEventList, Thread, ThreadFilter, ThreadStatus,
};

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What an [`on_token_refresh`](ClientBuilder::on_token_refresh) callback is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRefreshContext {
    /// The token that was refused.
    pub current_token: String,
    /// The status that refused it (401 or 403; 0 on a refused socket connect).
    pub status: u16,
}

type RefreshFuture = Pin<Box<dyn Future<Output = Option<String>> + Send>>;
type RefreshFn = Arc<dyn Fn(TokenRefreshContext) -> RefreshFuture + Send + Sync>;

/// Retry behaviour of requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Delay before the first retry; doubled each time.
    pub base_delay: Duration,
    /// Upper bound of a delay.
    pub max_delay: Duration,
    /// ± fraction of random jitter on each delay.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(10),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt` (0-based), with jitter.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let base = self.base_delay.as_secs_f64() * 2f64.powi(attempt.min(30) as i32);
        let capped = base.min(self.max_delay.as_secs_f64());
        let mut random = [0u8; 2];
        // Jitter is best effort: without OS randomness the delay is the exact one.
        let unit = match getrandom::fill(&mut random) {
            Ok(()) => f64::from(u16::from_le_bytes(random)) / f64::from(u16::MAX),
            Err(_) => 0.5,
        };
        Duration::from_secs_f64((capped * (1.0 + self.jitter * (2.0 * unit - 1.0))).max(0.0))
    }
}

/// How the client authenticates.
#[derive(Debug, Clone)]
pub(crate) enum Credentials {
    Session(String),
    ApiKey {
        key: String,
        scope: Scope,
        user_id: Option<String>,
    },
    /// An API key without a Platos scope: the Erdo surface only.
    ErdoApiKey(String),
    /// A scoped Erdo token: the Erdo surface only.
    ErdoToken(String),
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    base_url: String,
    credentials: Option<Credentials>,
    refresh: Option<RefreshFn>,
    retry: RetryPolicy,
    timeout: Duration,
    stream_idle_timeout: Duration,
    max_reconnects: u32,
    organization: Option<String>,
}

impl ClientBuilder {
    /// Authenticates as an end user with a session token (browser-safe mode).
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::Session(token.into()));
        self
    }

    /// Authenticates a trusted server with an API key, in `scope` (direct-header mode). Without
    /// [`user_id`](Self::user_id) the client acts as an operator over every user of the scope.
    pub fn api_key(mut self, key: impl Into<String>, scope: Scope) -> Self {
        self.credentials = Some(Credentials::ApiKey { key: key.into(), scope, user_id: None });
        self
    }

    /// Authenticates a trusted server to the Erdo surface ([`Client::erdo`]) with an API key and
    /// no Platos scope: `Authorization: Bearer <key>`, in the key's organization or the one set
    /// with [`organization`](Self::organization). Such a client cannot call the Platos
    /// namespaces ([`Error::Config`]).
    pub fn erdo_api_key(mut self, key: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::ErdoApiKey(key.into()));
        self
    }

    /// Authenticates to the Erdo surface ([`Client::erdo`]) with a scoped token minted by
    /// [`Erdo::create_token`]: it acts as the token's user, may invoke the bots it grants and
    /// sees that user's threads. Such a client cannot call the Platos namespaces.
    pub fn erdo_token(mut self, token: impl Into<String>) -> Self {
        self.credentials = Some(Credentials::ErdoToken(token.into()));
        self
    }

    /// With an API key: the organization (id or slug) of Erdo calls, sent as
    /// `X-Organization-ID`. Default: the scope's organization with [`api_key`](Self::api_key),
    /// none (the server's default) with [`erdo_api_key`](Self::erdo_api_key). Scoped tokens carry
    /// their organization, so it is not sent with them.
    pub fn organization(mut self, organization: impl Into<String>) -> Self {
        self.organization = Some(organization.into());
        self
    }

    /// With an API key: act as this end user.
    pub fn user_id(mut self, user: impl Into<String>) -> Self {
        if let Some(Credentials::ApiKey { user_id, .. }) = &mut self.credentials {
            *user_id = Some(user.into());
        }
        self
    }

    /// Called once when the server refuses the session token (401/403); a new, different token
    /// it returns replaces the old one and the request is tried again.
    pub fn on_token_refresh<F, Fut>(mut self, refresh: F) -> Self
    where
        F: Fn(TokenRefreshContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        self.refresh = Some(Arc::new(move |ctx| Box::pin(refresh(ctx))));
        self
    }

    /// Retry behaviour (default: 3 retries, 250 ms doubling to 10 s, ±20 % jitter).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Timeout of each HTTP attempt (default 30 s). An Erdo event stream must begin within it,
    /// then lasts as long as its invocation.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long an Erdo event stream may stay silent before the client gives up on it with
    /// [`Error::Network`] (default 5 minutes).
    pub fn stream_idle_timeout(mut self, timeout: Duration) -> Self {
        self.stream_idle_timeout = timeout;
        self
    }

    /// How often a streaming turn reconnects before it gives up (default 5).
    pub fn max_reconnects(mut self, attempts: u32) -> Self {
        self.max_reconnects = attempts;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client> {
        let base_url = self.base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(Error::Config(format!("base URL `{base_url}` must start with http:// or https://")));
        }
        let credentials = self
            .credentials
            .ok_or_else(|| Error::Config("credentials are required: a session token or an API key".into()))?;
        // The timeout is set per request: streams have none once they have begun.
        let http = reqwest::Client::builder()
            .connect_timeout(self.timeout)
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                credentials: Mutex::new(credentials),
                refresh: self.refresh,
                retry: self.retry,
                timeout: self.timeout,
                stream_idle_timeout: self.stream_idle_timeout,
                max_reconnects: self.max_reconnects,
                organization: self.organization,
            }),
        })
    }
}

/// The Agentry client. Cheap to clone; clones share credentials.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base_url: String,
    credentials: Mutex<Credentials>,
    refresh: Option<RefreshFn>,
    pub(crate) retry: RetryPolicy,
    /// Per HTTP attempt.
    pub(crate) timeout: Duration,
    /// Longest silence of an Erdo event stream.
    pub(crate) stream_idle_timeout: Duration,
    pub(crate) max_reconnects: u32,
    /// `X-Organization-ID` of Erdo calls with an API key.
    pub(crate) organization: Option<String>,
}

impl Client {
    /// Starts building a client for the server at `base_url` (e.g. `http://127.0.0.1:3100`).
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            credentials: None,
            refresh: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(30),
            stream_idle_timeout: Duration::from_secs(300),
            max_reconnects: 5,
            organization: None,
        }
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// Agents: list, get, versions.
    pub fn agents(&self) -> Agents<'_> {
        Agents { client: self }
    }

    /// Threads: create, list, get, messages, artifacts, archive, delete, and streaming `send`.
    pub fn threads(&self) -> Threads<'_> {
        Threads { client: self }
    }

    /// Approvals: list, get, approve (optionally with edited arguments), reject.
    pub fn approvals(&self) -> Approvals<'_> {
        Approvals { client: self }
    }

    /// Budget caps: list, status, and (operators) set, update, delete, override.
    pub fn budgets(&self) -> Budgets<'_> {
        Budgets { client: self }
    }

    /// Monitoring: turns, traces, cost rollups by agent, day, model and user, and the summary.
    pub fn monitoring(&self) -> Monitoring<'_> {
        Monitoring { client: self }
    }

    /// Background operations: tasks, runs (trigger, read, cancel, replay), schedules, batches.
    pub fn bgo(&self) -> Bgo<'_> {
        Bgo { client: self }
    }

    /// The Erdo surface: invoke bots (whole or streamed), mint and revoke scoped tokens, and
    /// threads with their messages — the methods of Erdo's `ErdoClient`.
    pub fn erdo(&self) -> Erdo<'_> {
        Erdo { client: self }
    }

    /// Replaces the scoped Erdo token (e.g. with a fresh one your backend minted).
    pub fn set_erdo_token(&self, token: impl Into<String>) {
        *self.inner.credentials.lock().unwrap_or_else(|p| p.into_inner()) = Credentials::ErdoToken(token.into());
    }

    /// Replaces the session token (e.g. after your own refresh).
    pub fn set_session_token(&self, token: impl Into<String>) {
        *self.inner.credentials.lock().unwrap_or_else(|p| p.into_inner()) = Credentials::Session(token.into());
    }

    pub(crate) fn credentials(&self) -> Credentials {
        self.inner.credentials.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Asks the refresh callback for a new token after `status`; true when the token changed.
    pub(crate) async fn refresh_token(&self, status: u16) -> bool {
        let (Some(refresh), Credentials::Session(current)) = (&self.inner.refresh, self.credentials()) else {
            return false;
        };
        match refresh(TokenRefreshContext { current_token: current.clone(), status }).await {
            Some(fresh) if !fresh.is_empty() && fresh != current => {
                self.set_session_token(fresh);
                true
            }
            _ => false,
        }
    }

    /// One API call: retries (writes carry an idempotency key so that is safe) and one token
    /// refresh on 401/403. `None` from a 2xx with an empty body.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<T>> {
        let idempotency_key = (method != Method::GET).then(|| agentry_core::id::new_secret("idem", 16));
        match self.call_with_retries(&method, path, body, idempotency_key.as_deref()).await {
            Err(Error::Auth { status, .. }) if self.refresh_token(status).await => {
                self.call_with_retries(&method, path, body, idempotency_key.as_deref()).await
            }
            other => other,
        }
    }

    async fn call_with_retries<T: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Option<T>> {
        let retry = self.inner.retry;
        let mut attempt = 0;
        loop {
            match self.attempt(method, path, body, idempotency_key).await {
                Err(err) if err.is_retryable() && attempt < retry.max_retries => {
                    let delay = match &err {
                        Error::RateLimit { retry_after: Some(wait), .. } => *wait,
                        _ => retry.delay(attempt),
                    };
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Option<T>> {
        let mut request = self
            .inner
            .http
            .request(method.clone(), format!("{}{path}", self.inner.base_url))
            .timeout(self.inner.timeout)
            .header("content-type", "application/json");
        request = match self.credentials() {
            Credentials::Session(token) => request.header("x-platos-session-token", token),
            Credentials::ApiKey { key, scope, user_id } => {
                let request = request
                    .bearer_auth(key)
                    .header("x-platos-organization-id", scope.organization_id)
                    .header("x-platos-project-id", scope.project_id)
                    .header("x-platos-environment-id", scope.environment_id);
                match user_id {
                    Some(user) => request.header("x-platos-user-id", user),
                    None => request,
                }
            }
            Credentials::ErdoApiKey(_) | Credentials::ErdoToken(_) => return Err(platos_needs_platos_credentials()),
        };
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.map_err(|e| Error::Network(e.to_string()))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(Duration::from_secs_f64);
        let text = response.text().await.map_err(|e| Error::Network(e.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(Error::from_response(status, retry_after, &text));
        }
        if text.trim().is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&text).map(Some).map_err(|e| Error::Protocol(format!("{path}: {e}")))
    }
}

/// The error of a Platos call on a client built with Erdo-only credentials.
pub(crate) fn platos_needs_platos_credentials() -> Error {
    Error::Config(
        "agents(), threads() and approvals() need a session token or an API key with a scope; \
         this client has Erdo credentials (use erdo())"
            .into(),
    )
}

/// Mints a session token for a user, exactly as the server (and `@platosdev/token-mint`)
/// accepts it: HS256 over `claims`, `iat` now, `exp` after `ttl` (60 s … 7 days).
pub fn mint_session_token(secret: &str, claims: SessionClaims, ttl: Duration) -> Result<String> {
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    let now = agentry_core::Timestamp::now().unix_seconds();
    agentry_core::session_token::mint(secret, claims, ttl, now).map_err(|e| Error::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_with_bounded_jitter() {
        let policy = RetryPolicy::default();
        for attempt in 0..6 {
            let exact = (0.25 * 2f64.powi(attempt)).min(10.0);
            let delay = policy.delay(attempt as u32).as_secs_f64();
            assert!(delay >= exact * 0.8 - 1e-9 && delay <= exact * 1.2 + 1e-9, "{attempt}: {delay}");
        }
    }

    #[test]
    fn builder_requires_credentials_and_an_http_url() {
        assert!(matches!(Client::builder("http://x").build(), Err(Error::Config(_))));
        assert!(matches!(Client::builder("ftp://x").session_token("t").build(), Err(Error::Config(_))));
        assert!(Client::builder("http://x/").session_token("t").build().is_ok());
    }
}
