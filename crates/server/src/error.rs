//! The one mapping from failures to HTTP responses.
//!
//! Bodies always carry `statusCode`, a machine-readable `error` code and a human `message`;
//! 400/422 add `validationErrors: string[]`; 429 sets `Retry-After`. This is what both official
//! Platos clients read (`message`, then `error`, then `validationErrors`).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answered to an HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code, e.g. `NOT_FOUND`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// One entry per invalid field, for 400/422.
    pub validation_errors: Vec<String>,
    /// Seconds to wait, for 429.
    pub retry_after_seconds: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), validation_errors: Vec::new(), retry_after_seconds: None }
    }

    /// 401: missing or invalid credentials.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message)
    }

    /// 403 with a specific code.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 403 for end users calling operator-only routes.
    pub fn operator_only() -> Self {
        Self::forbidden(
            "OPERATOR_ONLY",
            "This endpoint requires an operator credential (Authorization: Bearer <api key>).",
        )
    }

    /// 404 for a missing resource, or one of another scope or user (indistinguishable on purpose).
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("{what} not found"))
    }

    /// 400 naming the invalid fields.
    pub fn validation(message: impl Into<String>, errors: Vec<String>) -> Self {
        let message = message.into();
        let validation_errors = if errors.is_empty() { vec![message.clone()] } else { errors };
        ApiError { validation_errors, ..Self::new(StatusCode::BAD_REQUEST, "VALIDATION_FAILED", message) }
    }

    /// 400 for a single invalid field.
    pub fn invalid_field(field: &str, problem: impl std::fmt::Display) -> Self {
        let message = format!("{field}: {problem}");
        Self::validation(message.clone(), vec![message])
    }

    /// 409 with a specific code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 413 for bodies over the configured limit.
    /// 415: a body that is not JSON where JSON is read.
    pub fn not_json(content_type: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("send the body as application/json (Content-Type was `{content_type}`)"),
        )
    }

    /// 413.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("request body exceeds the {limit}-byte limit"),
        )
    }

    /// 500; the cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", "internal server error")
    }

    /// 503 when a dependency (the store) is unavailable.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "service unavailable");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", "service temporarily unavailable")
    }
}

impl From<agentry_store::StoreError> for ApiError {
    fn from(err: agentry_store::StoreError) -> Self {
        if err.is_unavailable() { ApiError::unavailable(err) } else { ApiError::internal(err) }
    }
}

impl From<agentry_engine::EngineError> for ApiError {
    fn from(err: agentry_engine::EngineError) -> Self {
        use agentry_engine::EngineError as E;
        match err {
            E::ThreadNotFound => ApiError::not_found("Thread"),
            E::AgentNotFound => ApiError::not_found("Agent"),
            E::AgentPinned => {
                ApiError::forbidden("AGENT_SCOPE_MISMATCH", "this session token is pinned to another agent")
            }
            E::EmptyMessage => ApiError::invalid_field("message", "must not be empty"),
            E::MessageTooLarge { size, limit } => {
                ApiError::invalid_field("message", format!("is {size} bytes; the limit is {limit}"))
            }
            E::RateLimited { retry_after_secs, .. } => ApiError {
                retry_after_seconds: Some(retry_after_secs),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED", err.to_string())
            },
            E::Store(err) => err.into(),
        }
    }
}

impl From<agentry_engine::jobs::JobError> for ApiError {
    fn from(err: agentry_engine::jobs::JobError) -> Self {
        use agentry_engine::jobs::JobError as E;
        match err {
            E::TaskNotFound(id) => ApiError::not_found(&format!("Task `{id}`")),
            E::RunNotFound => ApiError::not_found("Run"),
            E::ScheduleNotFound => ApiError::not_found("Schedule"),
            E::BatchNotFound => ApiError::not_found("Batch"),
            E::Forbidden(message) => ApiError::forbidden("OPERATOR_ONLY", message),
            E::Invalid { field, problem } => ApiError::invalid_field(&field, problem),
            E::Cron(err) => ApiError::invalid_field("cron", err),
            E::Store(err) => err.into(),
        }
    }
}

impl From<agentry_engine::approvals::ApprovalError> for ApiError {
    fn from(err: agentry_engine::approvals::ApprovalError) -> Self {
        use agentry_engine::approvals::ApprovalError as E;
        match err {
            E::NotFound => ApiError::not_found("Approval"),
            E::AlreadySettled(_) => ApiError::conflict("APPROVAL_SETTLED", err.to_string()),
            E::Invalid(message) => ApiError::invalid_field("editedArgs", message),
            E::Store(err) => err.into(),
        }
    }
}

/// The body of every error answer (the wire type of [`ApiError`]).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"statusCode": 404, "error": "NOT_FOUND", "message": "Thread not found"}))]
pub struct ErrorBody<'a> {
    /// The HTTP status, repeated.
    pub status_code: u16,
    /// Machine-readable code, e.g. `NOT_FOUND`, `VALIDATION_FAILED`, `UNAUTHENTICATED`.
    pub error: &'a str,
    /// What went wrong, in words.
    pub message: &'a str,
    /// One entry per invalid field (400 and 422 only).
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub validation_errors: &'a [String],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            status_code: self.status.as_u16(),
            error: self.code,
            message: &self.message,
            validation_errors: &self.validation_errors,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
