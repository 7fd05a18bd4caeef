//! Agentry's domain core: the vocabulary every other crate speaks.
//!
//! # Layout
//! - [`id`]: prefixed, time-sortable identifiers (`thr_…`, `msg_…`).
//! - [`scope`]: the tenancy tuple [`Scope`] and the acting [`Principal`].
//! - [`agent`]: agent specifications as written in agent files and stored as versions.
//! - [`tool`]: tool declarations (built-in names, HTTP tools, MCP server tools).
//! - [`approval`]: human approvals, the durable waitpoints of a turn.
//! - [`content`]: the typed content items a message is made of.
//! - [`cron`]: cron schedules read in an IANA time zone, with classic daylight-saving rules.
//! - [`task`]: background tasks as written in task files, their runs' statuses and retries.
//! - [`budget`]: budget caps, their periods and UTC window keys.
//! - [`thread`]: threads and messages.
//! - [`event`]: [`TurnEvent`], the one event enum every transport translates, and turn states.
//! - [`percent`]: percent-encoding of path segments and query values, strict decoding.
//! - [`sse`]: the one `text/event-stream` parser (provider streams, the SDK's streams).
//! - [`money`]: [`MicroCents`], the integer every cost is recorded in.
//! - [`session_token`]: HS256 session tokens as `@platosdev/token-mint` produces them.
//! - [`turn`]: a [`Turn`] (one message and its answer) and its [`TurnInput`].
//! - [`time`]: the millisecond [`Timestamp`] used on every row.
//! - [`trace`]: W3C `traceparent` and the trace and span ids of a turn's spans.
//!
//! Architecture invariant: this crate does no IO (no files, no network, no database).

#![warn(missing_docs)]

pub mod agent;
pub mod approval;
pub mod artifact;
pub mod budget;
pub mod content;
pub mod cron;
pub mod event;
pub mod id;
pub mod money;
pub mod percent;
pub mod safety;
pub mod scope;
pub mod session_token;
pub mod socketio;
pub mod sse;
pub mod task;
pub mod thread;
pub mod time;
pub mod tool;
pub mod trace;
pub mod turn;
pub mod wire;

pub use agent::{
    AgentSpec, AgentSpecError, BudgetPolicy, BusyPolicy, DynamicBlock, ModelRef, RateLimits, SamplingSpec, Script,
    ScriptStep, ScriptToolCall,
};
pub use approval::{Approval, ApprovalDecision, ApprovalStatus};
pub use budget::{BudgetCap, CapScope, Period};
pub use content::ContentItem;
pub use event::{LoggedEvent, SafetyFlag, TokenUsage, TurnEvent, TurnStatus};
pub use money::MicroCents;
pub use scope::{Principal, PrincipalKind, Scope, UserMeta};
pub use thread::{Message, MessageRole, Thread, ThreadStatus, ToolStep, ToolStepCall};
pub use time::Timestamp;
pub use turn::{Turn, TurnInput};

/// Where in `value` a string (or an object key) holds a NUL character, as a path such as
/// `messages[0].content` (empty for the value itself). Postgres cannot store one; every input is
/// checked with this so both backends take the same inputs.
pub fn nul_path(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    // `head` followed by the path below it: `a` + `b` = `a.b`, `a` + `[0]` = `a[0]`.
    let join = |head: String, rest: String| match rest.chars().next() {
        None => head,
        Some('[') => format!("{head}{rest}"),
        Some(_) => format!("{head}.{rest}"),
    };
    match value {
        Value::String(text) => text.contains('\0').then(String::new),
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, item)| nul_path(item).map(|rest| join(format!("[{i}]"), rest)))
        }
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let rest = if key.contains('\0') { Some(String::new()) } else { nul_path(item) }?;
            Some(join(key.clone(), rest))
        }),
        _ => None,
    }
}

/// Operator API keys: generated secrets, stored only as a SHA-256 hex digest.
pub mod api_key {
    /// Prefix of generated API keys, so a leaked key is recognisable.
    pub const PREFIX: &str = "agk";

    /// Generates a new 256-bit API key such as `agk_9f…`.
    pub fn generate() -> String {
        crate::id::new_secret(PREFIX, 32)
    }

    /// The digest under which a key is stored and looked up. Keys are high-entropy random
    /// secrets, so a plain SHA-256 (not a slow password hash) is the right tool.
    pub fn hash(key: &str) -> String {
        crate::sha256_hex(key.as_bytes())
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
