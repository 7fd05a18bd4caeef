//! `Idempotency-Key` on writes: the first response is recorded and replayed to duplicates.
//!
//! The Python client retries every method, POST included, on network errors, 5xx and 429; a
//! key makes those retries safe. Keys are per (scope, principal). A duplicate of a request still
//! running gets 409; a key reused for a different request gets 422. Server errors are not
//! recorded, so a retry after one runs again. Streaming responses, and responses showing a secret
//! ([`ShowsSecret`]), are not recorded either.

use agentry_core::Principal;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::authenticate;
use crate::error::ApiError;
use agentry_store::IdempotencyStart;

/// Header clients send.
pub const KEY_HEADER: &str = "idempotency-key";
/// Header set on replayed responses.
pub const REPLAYED_HEADER: &str = "idempotency-replayed";
/// Longest accepted key.
const MAX_KEY_LEN: usize = 255;

/// Response extension marking a body that must never be stored (it shows a secret once, like a
/// new scoped token): the key is released instead of recorded, so a retry runs again.
#[derive(Debug, Clone, Copy)]
pub struct ShowsSecret;

/// Middleware applying idempotency to every non-safe request that carries a key.
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // The dashboard signs in with a cookie, not API credentials, and sends no keys.
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS)
        || request.uri().path().starts_with("/dashboard")
    {
        return next.run(request).await;
    }
    let Some(key) = request.headers().get(KEY_HEADER).and_then(|v| v.to_str().ok()).map(str::trim) else {
        return next.run(request).await;
    };
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return ApiError::invalid_field("Idempotency-Key", format!("must be 1..={MAX_KEY_LEN} characters"))
            .into_response();
    }
    let key = key.to_owned();
    match run_once(&state, &key, request, next).await {
        Ok(response) | Err(response) => response,
    }
}

async fn run_once(state: &AppState, key: &str, request: Request, next: Next) -> Result<Response, Response> {
    let (mut parts, body) = request.into_parts();
    // The Platos API lives under /api; everything else at the root is the Erdo surface, whose
    // credentials (API key with an org, scoped tokens) are read its own way.
    let principal = if parts.uri.path().starts_with("/api/") {
        authenticate(state, &parts.headers).await
    } else {
        crate::erdo::auth::authenticate(state, &parts.headers).await.map(|caller| caller.principal)
    }
    .map_err(IntoResponse::into_response)?;
    let limit = state.options.max_body_bytes;
    let bytes = to_bytes(body, limit).await.map_err(|_| ApiError::payload_too_large(limit).into_response())?;
    let fingerprint = format!("{} {} {}", parts.method, parts.uri.path(), agentry_core::sha256_hex(&bytes));
    let owner = principal_key(&principal);
    let scope = principal.scope.clone();
    let start = state.store.idempotency_start(&scope, &owner, key, &fingerprint).await;
    match start.map_err(|e| ApiError::from(e).into_response())? {
        IdempotencyStart::Fresh => {}
        IdempotencyStart::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
            response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            return Ok(response);
        }
        IdempotencyStart::InProgress => {
            return Err(ApiError::conflict(
                "IDEMPOTENCY_IN_PROGRESS",
                "a request with this Idempotency-Key is still being processed",
            )
            .into_response());
        }
        IdempotencyStart::Mismatch => {
            let mut err = ApiError::validation(
                "this Idempotency-Key was used for a different request",
                vec!["Idempotency-Key: reused with a different method, path or body".into()],
            );
            err.status = StatusCode::UNPROCESSABLE_ENTITY;
            err.code = "IDEMPOTENCY_REQUEST_MISMATCH";
            return Err(err.into_response());
        }
    }

    parts.extensions.insert(principal);
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let streaming =
        response.headers().get(header::CONTENT_TYPE).is_some_and(|ct| ct.as_bytes().starts_with(b"text/event-stream"));
    let secret = response.extensions().get::<ShowsSecret>().is_some();
    if response.status().is_server_error() || streaming || secret {
        if let Err(err) = state.store.idempotency_abandon(&scope, &owner, key).await {
            tracing::warn!(%err, "could not release idempotency key");
        }
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = to_bytes(body, usize::MAX).await.map_err(|e| ApiError::internal(e).into_response())?;
    let text = String::from_utf8_lossy(&bytes);
    state
        .store
        .idempotency_finish(&scope, &owner, key, parts.status.as_u16(), &text)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn principal_key(principal: &Principal) -> String {
    let kind = if principal.is_operator() { "operator" } else { "user" };
    format!("{kind}:{}", principal.user_id.as_deref().unwrap_or(""))
}
