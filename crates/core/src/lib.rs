//! Agentry's domain core: the vocabulary every other crate speaks.
//!
//! # Layout
//! - [`id`]: prefixed, time-sortable identifiers (`thr_…`, `msg_…`).
//! - [`scope`]: the tenancy tuple [`Scope`] and the acting [`Principal`].
//! - [`agent`]: agent specifications as written in agent files and stored as versions.
//! - [`thread`]: threads and messages.
//! - [`session_token`]: HS256 session tokens as `@platosdev/token-mint` produces them.
//! - [`time`]: the millisecond [`Timestamp`] used on every row.
//!
//! Architecture invariant: this crate does no IO (no files, no network, no database).

pub mod agent;
pub mod id;
pub mod scope;
pub mod session_token;
pub mod thread;
pub mod time;

pub use agent::{AgentSpec, AgentSpecError, ModelRef};
pub use scope::{Principal, PrincipalKind, Scope, UserMeta};
pub use thread::{Message, MessageRole, Thread, ThreadStatus};
pub use time::Timestamp;
