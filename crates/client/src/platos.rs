//! The Platos surface: `agents()`, `threads()` and `approvals()`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::stream::TurnStream;
use crate::types::{
    Agent, AgentVersion, Approval, ApprovalFilter, ApprovalPage, Artifact, Message, ResolveApproval, ResolvedApproval,
    Thread, ThreadFilter,
};
use crate::{Client, Error, Result};

/// `client.agents()`.
pub struct Agents<'c> {
    pub(crate) client: &'c Client,
}

impl Agents<'_> {
    /// The agents of the caller's scope.
    pub async fn list(&self) -> Result<Vec<Agent>> {
        list(self.client, "/api/v1/agent/agents", "agents").await
    }

    /// One agent; `None` when it does not exist for the caller.
    pub async fn get(&self, agent_id: &str) -> Result<Option<Agent>> {
        optional(self.client.call(Method::GET, &format!("/api/v1/agent/agents/{}", encode(agent_id)), None).await)
    }

    /// The agent's versions, newest first.
    pub async fn list_versions(&self, agent_id: &str) -> Result<Vec<AgentVersion>> {
        list(self.client, &format!("/api/v1/agent/agents/{}/versions", encode(agent_id)), "versions").await
    }

    /// Deletes the agent and its versions (operators); false when there was no such agent.
    pub async fn delete(&self, agent_id: &str) -> Result<bool> {
        let path = format!("/api/v1/agent/agents/{}", encode(agent_id));
        Ok(optional(self.client.call::<Value>(Method::DELETE, &path, None).await)?.is_some())
    }
}

/// `client.threads()`.
pub struct Threads<'c> {
    pub(crate) client: &'c Client,
}

impl Threads<'_> {
    /// Creates a thread with `agent_id` (`None`: the caller's default agent).
    pub async fn create(&self, agent_id: Option<&str>, title: Option<&str>) -> Result<Thread> {
        let body = json!({ "agentId": agent_id.unwrap_or("default"), "title": title });
        required(self.client.call(Method::POST, "/api/v1/agent/threads", Some(&body)).await)
    }

    /// The caller's threads, most recently updated first.
    pub async fn list(&self, filter: &ThreadFilter) -> Result<Vec<Thread>> {
        let mut query = Vec::new();
        if let Some(agent) = &filter.agent_id {
            query.push(format!("agentId={}", encode(agent)));
        }
        if let Some(user) = &filter.user_id {
            query.push(format!("userId={}", encode(user)));
        }
        if let Some(search) = &filter.search {
            query.push(format!("q={}", encode(search)));
        }
        if let Some(limit) = filter.limit {
            query.push(format!("limit={limit}"));
        }
        if let Some(offset) = filter.offset {
            query.push(format!("offset={offset}"));
        }
        if filter.archived_only {
            query.push("archived=only".into());
        } else if filter.include_archived {
            query.push("archived=true".into());
        }
        let path = if query.is_empty() {
            "/api/v1/agent/threads".to_owned()
        } else {
            format!("/api/v1/agent/threads?{}", query.join("&"))
        };
        list(self.client, &path, "threads").await
    }

    /// One thread; `None` when it does not exist for the caller.
    pub async fn get(&self, thread_id: &str) -> Result<Option<Thread>> {
        optional(self.client.call(Method::GET, &thread_path(thread_id, ""), None).await)
    }

    /// The thread's messages in order.
    pub async fn messages(&self, thread_id: &str) -> Result<Vec<Message>> {
        list(self.client, &thread_path(thread_id, "/messages"), "messages").await
    }

    /// The thread's artifacts (latest revision per key).
    pub async fn artifacts(&self, thread_id: &str) -> Result<Vec<Artifact>> {
        list(self.client, &thread_path(thread_id, "/artifacts"), "artifacts").await
    }

    /// Archives the thread (hidden from default listings).
    pub async fn archive(&self, thread_id: &str) -> Result<Thread> {
        required(self.client.call(Method::POST, &thread_path(thread_id, "/archive"), None).await)
    }

    /// Unarchives the thread.
    pub async fn unarchive(&self, thread_id: &str) -> Result<Thread> {
        required(self.client.call(Method::POST, &thread_path(thread_id, "/unarchive"), None).await)
    }

    /// Deletes the thread and its messages.
    pub async fn delete(&self, thread_id: &str) -> Result<()> {
        self.client.call::<Value>(Method::DELETE, &thread_path(thread_id, ""), None).await.map(|_| ())
    }

    /// Stops the thread's running turn; true when something was stopped.
    pub async fn cancel(&self, thread_id: &str) -> Result<bool> {
        let answer: Value = required(self.client.call(Method::POST, &thread_path(thread_id, "/cancel"), None).await)?;
        Ok(answer.get("cancelled").and_then(Value::as_bool).unwrap_or(false))
    }

    /// Sends a message and streams the agent's turn. The stream reconnects with backoff and
    /// resumes where it was (no gap, no duplicate); dropping it stops listening (the turn goes
    /// on); [`TurnStream::cancel`] stops the turn.
    pub fn send(&self, thread_id: &str, text: &str) -> TurnStream {
        TurnStream::start(self.client.clone(), thread_id.to_owned(), text.to_owned())
    }
}

/// `client.approvals()`: the human approvals turns wait on. A turn that needs one emits
/// [`TurnEvent::ApprovalNeeded`](crate::TurnEvent::ApprovalNeeded) and parks; resolving it here
/// resumes the same turn, whose stream then delivers
/// [`TurnEvent::ApprovalResolved`](crate::TurnEvent::ApprovalResolved) and goes on.
///
/// Only the user whose turn asked, or an operator, may resolve an approval: anyone else gets
/// [`Error::Auth`] with status 403. Resolving one that is already settled is
/// [`Error::Conflict`].
pub struct Approvals<'c> {
    pub(crate) client: &'c Client,
}

impl Approvals<'_> {
    /// A page of approvals, newest first, with the total and the pending count.
    pub async fn list(&self, filter: &ApprovalFilter) -> Result<ApprovalPage> {
        let mut query = Vec::new();
        if let Some(status) = filter.status {
            query.push(format!("status={}", status.as_str()));
        }
        if let Some(thread) = &filter.thread_id {
            query.push(format!("threadId={}", encode(thread)));
        }
        if let Some(agent) = &filter.agent_id {
            query.push(format!("agentId={}", encode(agent)));
        }
        if let Some(limit) = filter.limit {
            query.push(format!("limit={limit}"));
        }
        if let Some(offset) = filter.offset {
            query.push(format!("offset={offset}"));
        }
        let path = if query.is_empty() {
            "/api/v1/agent/monitoring/approvals".to_owned()
        } else {
            format!("/api/v1/agent/monitoring/approvals?{}", query.join("&"))
        };
        required(self.client.call(Method::GET, &path, None).await)
    }

    /// One approval; `None` when it does not exist for the caller.
    pub async fn get(&self, approval_id: &str) -> Result<Option<Approval>> {
        let path = format!("/api/v1/agent/monitoring/approvals/{}", encode(approval_id));
        optional(self.client.call(Method::GET, &path, None).await)
    }

    /// Approves: the waiting tool runs — with `edited_args` instead of the model's arguments
    /// when given (a JSON object) — and the turn continues. Returns the settled approval.
    pub async fn approve(
        &self,
        approval_id: &str,
        comment: Option<&str>,
        edited_args: Option<Value>,
    ) -> Result<ResolvedApproval> {
        let body = ResolveApproval {
            approved: Some(true),
            comment: comment.map(str::to_owned),
            edited_args,
            ..ResolveApproval::default()
        };
        self.resolve(approval_id, &body).await
    }

    /// Rejects: the tool does not run, the model is told (with `reason`) and the turn continues.
    /// Returns the settled approval.
    pub async fn reject(&self, approval_id: &str, reason: Option<&str>) -> Result<ResolvedApproval> {
        let body =
            ResolveApproval { approved: Some(false), comment: reason.map(str::to_owned), ..ResolveApproval::default() };
        self.resolve(approval_id, &body).await
    }

    async fn resolve(&self, approval_id: &str, body: &ResolveApproval) -> Result<ResolvedApproval> {
        let path = format!("/api/v1/agent/approvals/{}/resolve", encode(approval_id));
        let body = serde_json::to_value(body).map_err(|e| Error::Protocol(format!("a resolve body: {e}")))?;
        required(self.client.call(Method::POST, &path, Some(&body)).await)
    }
}

fn thread_path(thread_id: &str, suffix: &str) -> String {
    format!("/api/v1/agent/threads/{}{suffix}", encode(thread_id))
}

/// Percent-encodes a path segment or query value.
pub(crate) use agentry_core::percent::encode;

async fn list<T: serde::de::DeserializeOwned>(client: &Client, path: &str, key: &str) -> Result<Vec<T>> {
    let body: Option<Value> = client.call(Method::GET, path, None).await?;
    match body.and_then(|mut b| b.get_mut(key).map(Value::take)) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(items) => serde_json::from_value(items).map_err(|e| Error::Protocol(format!("{path}: {e}"))),
    }
}

fn optional<T>(result: Result<Option<T>>) -> Result<Option<T>> {
    match result {
        Err(Error::NotFound { .. }) => Ok(None),
        other => other,
    }
}

/// The body of an answer that must have one.
pub(crate) fn required<T>(result: Result<Option<T>>) -> Result<T> {
    result?.ok_or_else(|| Error::Protocol("the server answered with an empty body".into()))
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode("thr_01abc"), "thr_01abc");
        assert_eq!(encode("a/b c?"), "a%2Fb%20c%3F");
    }
}
