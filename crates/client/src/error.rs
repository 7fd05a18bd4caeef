//! The SDK's one error type, in the categories of the seeds (auth, not found, validation,
//! conflict, rate limit, server, network).

use std::time::Duration;

/// Everything a call can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// 401/403: missing, expired or refused credentials (refresh the token), or credentials that
    /// may not do this (403, e.g. resolving an approval of another user's turn without being an
    /// operator). Like the official clients, the SDK asks the refresh callback once on either.
    #[error("authentication failed ({status}): {message}")]
    Auth {
        /// 401 or 403 (0 for a refused socket connect without a status).
        status: u16,
        /// The server's message.
        message: String,
    },
    /// 404: the resource does not exist for this caller.
    #[error("not found: {message}")]
    NotFound {
        /// The server's message.
        message: String,
    },
    /// 400/422: the request was invalid; `errors` names the fields.
    #[error("invalid request: {message}")]
    Validation {
        /// The server's message.
        message: String,
        /// One entry per problem.
        errors: Vec<String>,
    },
    /// 429: slow down; wait `retry_after` when the server said.
    #[error("rate limited: {message}")]
    RateLimit {
        /// The server's message.
        message: String,
        /// From `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// 409: the request conflicts with the resource's state, e.g. an approval that was already
    /// settled (by someone else, a timeout or a cancelled turn), or a write whose
    /// `Idempotency-Key` is still being processed. Not retryable: read the resource again.
    #[error("conflict: {message}")]
    Conflict {
        /// The server's message.
        message: String,
    },
    /// Another 4xx (e.g. 413 too large).
    #[error("request refused ({status}): {message}")]
    Refused {
        /// The status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// 5xx: the server failed; usually transient.
    #[error("server error ({status}): {message}")]
    Server {
        /// The status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("network error: {0}")]
    Network(String),
    /// The server answered something the SDK cannot read.
    #[error("unexpected response: {0}")]
    Protocol(String),
    /// The client was built wrongly (bad base URL, no credentials).
    #[error("client configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether trying again later may succeed (network errors, 5xx, 429).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Network(_) | Error::Server { .. } | Error::RateLimit { .. })
    }

    /// Maps a non-2xx HTTP answer; `body` is the response text.
    pub(crate) fn from_response(status: u16, retry_after: Option<Duration>, body: &str) -> Self {
        let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let field = |name: &str| json.as_ref().and_then(|j| j.get(name)).and_then(|v| v.as_str()).map(str::to_owned);
        let message = field("message").or_else(|| field("error")).unwrap_or_else(|| {
            let text = body.trim();
            if text.is_empty() { format!("HTTP {status}") } else { text.chars().take(200).collect() }
        });
        match status {
            401 | 403 => Error::Auth { status, message },
            404 => Error::NotFound { message },
            400 | 422 => {
                let errors = json
                    .as_ref()
                    .and_then(|j| j.get("validationErrors"))
                    .and_then(|v| v.as_array())
                    .map(|items| items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                Error::Validation { message, errors }
            }
            409 => Error::Conflict { message },
            429 => Error::RateLimit { message, retry_after },
            500.. => Error::Server { status, message },
            _ => Error::Refused { status, message },
        }
    }
}

/// Result alias of the SDK.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_categories() {
        let body = r#"{"message":"bad","validationErrors":["title: too long"]}"#;
        assert_eq!(
            Error::from_response(400, None, body),
            Error::Validation { message: "bad".into(), errors: vec!["title: too long".into()] }
        );
        assert!(matches!(Error::from_response(403, None, "{}"), Error::Auth { status: 403, .. }));
        assert!(
            matches!(Error::from_response(404, None, r#"{"error":"NOT_FOUND"}"#), Error::NotFound { message } if message == "NOT_FOUND")
        );
        let limited = Error::from_response(429, Some(Duration::from_secs(2)), "slow");
        assert!(limited.is_retryable());
        assert!(Error::from_response(503, None, "").is_retryable());
        let conflict =
            Error::from_response(409, None, r#"{"error":"APPROVAL_SETTLED","message":"approval is already approved"}"#);
        assert_eq!(conflict, Error::Conflict { message: "approval is already approved".into() });
        assert!(!conflict.is_retryable());
        assert!(matches!(Error::from_response(413, None, ""), Error::Refused { status: 413, .. }));
        assert!(!Error::from_response(401, None, "").is_retryable());
    }
}
