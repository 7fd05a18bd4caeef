//! Request extractors that turn bad input into [`ApiError`]s naming the problem.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Malformed JSON and wrong types are 400 naming the field; an empty body reads as
/// `{}`; a body over the limit is 413; a body sent as anything but JSON (`application/json` or
/// `…+json`) is 415, so a cross-site form or `text/plain` post cannot pass for an API call.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<BodyLimit>().map_or(0, |l| l.0);
        let content_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::payload_too_large(limit)
            } else {
                ApiError::validation(format!("could not read request body: {rejection}"), Vec::new())
            }
        })?;
        if !bytes.iter().all(u8::is_ascii_whitespace)
            && let Some(content_type) = content_type.filter(|t| !is_json(t))
        {
            return Err(ApiError::not_json(&content_type));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// `application/json`, `application/…+json`, with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The configured body limit, made visible to extractors for their error message.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Parses a JSON object body, reporting the path of the offending field. Anything but one
/// object (an array, trailing bytes after it) is refused, and so is a string with a NUL character
/// (400 naming the field): Postgres cannot store one, and both backends take the same inputs.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { bytes };
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::validation("the request body must be a JSON object", Vec::new()));
    }
    // JSON can carry a NUL only as the escape `\u0000`: look closer only then.
    if bytes.windows(6).any(|w| w.eq_ignore_ascii_case(b"\\u0000"))
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(path) = agentry_core::nul_path(&value)
    {
        return Err(ApiError::invalid_field(&path, "must not contain a NUL character"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::validation(format!("malformed JSON body: {inner}"), Vec::new())
        } else if path == "." {
            ApiError::validation(format!("invalid request body: {inner}"), Vec::new())
        } else {
            ApiError::invalid_field(&path, inner)
        }
    })?;
    deserializer
        .end()
        .map_err(|err| ApiError::validation(format!("malformed JSON body: {err} after the object"), Vec::new()))?;
    Ok(parsed)
}

/// Refuses a URL whose path or query holds a NUL character (`%00`): 400 naming the path or the
/// query parameter. As in a body, a NUL could never name or filter anything stored (Postgres
/// cannot store one), and both backends take the same inputs.
pub async fn refuse_nul_in_url(request: Request, next: Next) -> Response {
    let uri = request.uri();
    match nul_in_url(uri.path(), uri.query()) {
        Some(place) => ApiError::invalid_field(&place, "must not contain a NUL character (%00)").into_response(),
        None => next.run(request).await,
    }
}

/// Where `path` and `query` (still percent-encoded) hold a NUL: `path`, or the query
/// parameter's name.
fn nul_in_url(path: &str, query: Option<&str>) -> Option<String> {
    let has_nul = |text: &str| text.as_bytes().windows(3).any(|w| w == b"%00");
    if has_nul(path) {
        return Some("path".to_owned());
    }
    let pair = query?.split('&').find(|pair| has_nul(pair))?;
    let name = pair.split('=').next().unwrap_or_default();
    Some(if has_nul(name) { "a query parameter's name".to_owned() } else { name.chars().take(64).collect() })
}

/// Query parameters; a bad value is 400 naming the parameter.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|rejection| ApiError::validation(rejection.body_text(), Vec::new()))
    }
}

/// The caller's W3C trace context (`traceparent`): a turn started by the request joins it. An
/// absent or malformed header starts a trace of the turn's own, as the W3C spec asks.
#[derive(Debug, Default)]
pub struct TraceContext(pub Option<agentry_core::trace::TraceParent>);

impl TraceContext {
    /// Reads the `traceparent` header.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Self {
        let header = headers.get("traceparent").and_then(|v| v.to_str().ok());
        TraceContext(header.and_then(agentry_core::trace::TraceParent::parse))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for TraceContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(TraceContext::from_headers(&parts.headers))
    }
}

/// A time query parameter: RFC 3339, a `YYYY-MM-DD` day or Unix milliseconds; 400 naming
/// `field` otherwise.
pub fn time_param(field: &str, text: &str) -> Result<agentry_core::Timestamp, ApiError> {
    agentry_core::Timestamp::parse(text).ok_or_else(|| {
        ApiError::invalid_field(field, format!("`{text}` is not an RFC 3339 time, a day or Unix milliseconds"))
    })
}

/// Bounds a page size: absent → `default`, otherwise 1..=`max`.
pub fn page_limit(requested: Option<i64>, default: i64, max: i64) -> Result<i64, ApiError> {
    match requested {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid_field("limit", format!("{n} is outside 1..={max}"))),
    }
}

/// Bounds an offset to be non-negative.
pub fn page_offset(requested: Option<i64>) -> Result<i64, ApiError> {
    match requested {
        None => Ok(0),
        Some(n) if n >= 0 => Ok(n),
        Some(n) => Err(ApiError::invalid_field("offset", format!("{n} must not be negative"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_in_the_url_is_found_where_it_is() {
        assert_eq!(nul_in_url("/api/v1/agent/threads/a%00b", None).as_deref(), Some("path"));
        assert_eq!(nul_in_url("/threads", Some("limit=5&agentId=x%00")).as_deref(), Some("agentId"));
        assert_eq!(nul_in_url("/threads", Some("a%00=1")).as_deref(), Some("a query parameter's name"));
        assert_eq!(nul_in_url("/threads/%01%100", Some("q=%2500&limit=100")), None);
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        message: Option<String>,
    }

    fn refused(body: &str) -> String {
        let err = parse_json::<Body>(body.as_bytes()).unwrap_err();
        assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST, "{body}");
        format!("{} {:?}", err.message, err.validation_errors)
    }

    #[test]
    fn only_one_json_object_is_a_body() {
        assert!(parse_json::<Body>(b" {\"message\": \"hi\"} \n").is_ok());
        assert!(parse_json::<Body>(b"").is_ok(), "an empty body reads as {{}}");
        assert!(refused("[]").contains("must be a JSON object"));
        assert!(refused("\"text\"").contains("must be a JSON object"));
        assert!(refused("{\"message\": \"hi\"} trailing").contains("after the object"));
        assert!(refused("{} {}").contains("after the object"));
        assert!(refused("{\"message\": \"a\\u0000b\"}").contains("message"));
    }
}
