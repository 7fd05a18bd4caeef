//! Dashboard sign-in: an operator API key in, a server-side session out.
//!
//! The browser holds only a random secret in an `HttpOnly; SameSite=Strict` cookie scoped to
//! `/dashboard`; the store keeps its SHA-256, the API key it acts with, the scope the operator
//! picked and a CSRF token. Every write (any method but GET/HEAD) must come from this origin
//! (`Origin`, `Sec-Fetch-Site`) and carry the token in `X-CSRF-Token`; the sign-in itself, which
//! has no session yet, is checked for its origin. API credentials (`Authorization`,
//! `X-Platos-Session-Token`) are refused on dashboard routes, so an end user's token never opens
//! them and the API's credentials never mix with the cookie.

use agentry_core::id::new_secret;
use agentry_core::{Principal, PrincipalKind, Scope, Timestamp, UserMeta, sha256_hex};
use agentry_store::DashboardSession;
use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{SESSION_TOKEN_HEADER, api_key, check_id, header_str};
use crate::error::ApiError;
use crate::extract::JsonBody;

/// Name of the session cookie.
pub const COOKIE: &str = "agentry_dashboard";
/// Header carrying the session's CSRF token on writes.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a sign-in lasts.
const SESSION_MS: i64 = 12 * 3600 * 1000;
/// Most scopes the picker offers.
const MAX_SCOPES: i64 = 500;

/// Request extension the session middleware adds beside the [`Principal`]: the Erdo extractor
/// takes only this one (never a `Principal` another layer put there) as an operator's caller.
#[derive(Debug, Clone)]
pub struct DashboardOperator(pub Principal);

/// The session a dashboard request came with, checked (see the module doc).
#[derive(Debug, Clone)]
pub struct Session {
    /// SHA-256 of the cookie's secret: the session's key in the store.
    secret_hash: String,
    /// What the store holds.
    pub stored: DashboardSession,
}

impl Session {
    /// Whether the session is still live (not signed out, not expired, its key not revoked).
    pub async fn still_live(&self, state: &AppState) -> bool {
        matches!(state.store.dashboard_session(&self.secret_hash).await, Ok(Some(_)))
    }

    /// The operator this session acts as, in its picked scope; 409 until a scope is picked.
    pub fn principal(&self) -> Result<Principal, ApiError> {
        let scope = self
            .stored
            .scope
            .clone()
            .ok_or_else(|| ApiError::conflict("NO_SCOPE", "pick an organization, project and environment first"))?;
        Ok(Principal {
            scope,
            user_id: None,
            kind: PrincipalKind::Operator,
            user_meta: UserMeta::default(),
            pinned_agent_id: None,
        })
    }
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authenticate(state, &parts.method, &parts.headers).await
    }
}

/// Checks a dashboard request: no API credentials, a live session cookie, and for writes the
/// origin and the CSRF token.
async fn authenticate(state: &AppState, method: &Method, headers: &HeaderMap) -> Result<Session, ApiError> {
    if headers.contains_key(header::AUTHORIZATION) || headers.contains_key(SESSION_TOKEN_HEADER) {
        return Err(ApiError::unauthenticated(
            "the dashboard takes its own sign-in (a session cookie); API credentials belong to /api/v1",
        ));
    }
    let secret = session_cookie(headers).ok_or_else(|| ApiError::unauthenticated("sign in to the dashboard"))?;
    let secret_hash = sha256_hex(secret.as_bytes());
    let stored = state
        .store
        .dashboard_session(&secret_hash)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("the dashboard session has ended; sign in again"))?;
    if !is_read(method) {
        check_same_origin(headers)?;
        let presented = header_str(headers, CSRF_HEADER)?.unwrap_or_default();
        if !constant_time_eq(presented.as_bytes(), stored.csrf_token.as_bytes()) {
            return Err(ApiError::forbidden("CSRF", "a dashboard write needs the session's X-CSRF-Token"));
        }
    }
    Ok(Session { secret_hash, stored })
}

/// Whether the request comes with a live session (read-only check, for the page).
pub async fn is_live(state: &AppState, headers: &HeaderMap) -> bool {
    authenticate(state, &Method::GET, headers).await.is_ok()
}

/// Middleware of the API mounted under `/dashboard/api` and `/dashboard/erdo`: the session's
/// operator becomes the request's [`Principal`] (which the handlers' `Auth` extractor takes) and
/// its [`DashboardOperator`] (which `ErdoAuth` takes).
pub async fn require(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let principal = match authenticate(&state, request.method(), request.headers()).await {
        Ok(session) => session.principal(),
        Err(err) => Err(err),
    };
    match principal {
        Ok(principal) => {
            request.extensions_mut().insert(DashboardOperator(principal.clone()));
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(err) => err.into_response(),
    }
}

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

/// Refuses a request that a browser says came from another site.
fn check_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let cross =
        || ApiError::forbidden("CROSS_SITE", "dashboard writes are accepted from the dashboard's own origin only");
    if let Some(site) = header_str(headers, "sec-fetch-site")?
        && !matches!(site, "same-origin" | "none")
    {
        return Err(cross());
    }
    if let Some(origin) = header_str(headers, header::ORIGIN.as_str())? {
        let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
        // Behind a proxy the browser's host may arrive as `X-Forwarded-Host`.
        let hosts = [header::HOST.as_str(), "x-forwarded-host"];
        let mut ours = hosts.iter().filter_map(|name| header_str(headers, name).ok().flatten());
        if !authority.is_some_and(|authority| ours.any(|host| host == authority)) {
            return Err(cross());
        }
    }
    Ok(())
}

/// Whether the browser reached us over HTTPS (directly, or through a proxy that says so).
fn over_https(headers: &HeaderMap) -> bool {
    header_str(headers, "x-forwarded-proto").ok().flatten().is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of the session cookie, if the request has one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

fn cookie_header(value: &str, max_age_secs: i64, secure: bool) -> Result<HeaderValue, ApiError> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .map_err(ApiError::internal)
}

/// Body of `POST /dashboard/session`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignIn {
    api_key: String,
}

/// `POST /dashboard/session {apiKey}` → 201 with the session (and its cookie); 401 for a key that
/// is not a live operator key.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SignIn>,
) -> Result<Response, ApiError> {
    check_same_origin(&headers)?;
    if headers.contains_key(header::AUTHORIZATION) || headers.contains_key(SESSION_TOKEN_HEADER) {
        return Err(ApiError::unauthenticated("sign in with an operator API key in the body"));
    }
    let key = api_key(&state, body.api_key.trim())
        .await?
        .ok_or_else(|| ApiError::unauthenticated("this is not a valid operator API key"))?;
    let secret = new_secret("dsh", 32);
    let csrf_token = new_secret("csrf", 16);
    let expires_at = Timestamp(Timestamp::now().0 + SESSION_MS);
    state.store.create_dashboard_session(&sha256_hex(secret.as_bytes()), &key.id, &csrf_token, expires_at).await?;
    let stored = DashboardSession {
        api_key_id: key.id,
        key_organization_id: key.organization_id,
        csrf_token,
        scope: None,
        expires_at,
    };
    let mut response = (StatusCode::CREATED, Json(view(&stored))).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie_header(&secret, SESSION_MS / 1000, over_https(&headers))?);
    Ok(response)
}

/// `GET /dashboard/session` → the session: its key, scope, CSRF token, expiry.
pub async fn current(session: Session) -> Json<Value> {
    Json(view(&session.stored))
}

/// `DELETE /dashboard/session` → 204, the session ended and its cookie cleared.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    session: Session,
) -> Result<Response, ApiError> {
    state.store.delete_dashboard_session(&session.secret_hash).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie_header("", 0, over_https(&headers))?);
    Ok(response)
}

/// Body of `PUT /dashboard/session/scope`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PickScope {
    organization_id: String,
    project_id: String,
    environment_id: String,
}

/// `PUT /dashboard/session/scope {organizationId, projectId, environmentId}` → the session, now in
/// that scope. A key bound to an organization can pick scopes of that organization only.
pub async fn pick_scope(
    State(state): State<AppState>,
    session: Session,
    JsonBody(body): JsonBody<PickScope>,
) -> Result<Json<Value>, ApiError> {
    let fields = [
        ("organizationId", &body.organization_id),
        ("projectId", &body.project_id),
        ("environmentId", &body.environment_id),
    ];
    let problems: Vec<String> = fields.iter().filter_map(|(name, value)| check_id(name, value.trim()).err()).collect();
    if !problems.is_empty() {
        return Err(ApiError::validation("a scope needs an organization, a project and an environment", problems));
    }
    let scope = Scope::new(body.organization_id.trim(), body.project_id.trim(), body.environment_id.trim());
    if session.stored.key_organization_id.as_ref().is_some_and(|org| *org != scope.organization_id) {
        return Err(ApiError::forbidden(
            "OTHER_ORGANIZATION",
            "this sign-in's API key is bound to another organization",
        ));
    }
    if !state.store.set_dashboard_scope(&session.secret_hash, &scope).await? {
        return Err(ApiError::unauthenticated("the dashboard session has ended; sign in again"));
    }
    let stored = DashboardSession { scope: Some(scope), ..session.stored };
    Ok(Json(view(&stored)))
}

/// `GET /dashboard/scopes` → `{scopes}`: the scopes with agents or threads this sign-in may pick.
pub async fn scopes(State(state): State<AppState>, session: Session) -> Result<Json<Value>, ApiError> {
    let org = session.stored.key_organization_id.as_deref();
    let scopes = state.store.known_scopes(org, MAX_SCOPES).await?;
    Ok(Json(json!({ "scopes": scopes.iter().map(scope_view).collect::<Vec<_>>() })))
}

fn scope_view(scope: &Scope) -> Value {
    json!({
        "organizationId": scope.organization_id,
        "projectId": scope.project_id,
        "environmentId": scope.environment_id,
    })
}

fn view(session: &DashboardSession) -> Value {
    json!({
        "apiKeyId": session.api_key_id,
        "keyOrganizationId": session.key_organization_id,
        "csrfToken": session.csrf_token,
        "scope": session.scope.as_ref().map(scope_view),
        "expiresAt": session.expires_at.to_rfc3339(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; agentry_dashboard=dsh_x ; b=2")]);
        assert_eq!(session_cookie(&h), Some("dsh_x"));
        assert_eq!(session_cookie(&headers(&[("cookie", "agentry_dashboardx=1")])), None);
        assert_eq!(session_cookie(&headers(&[("cookie", "agentry_dashboard=")])), None);
        assert_eq!(session_cookie(&headers(&[("cookie", "a=1"), ("cookie", "agentry_dashboard=y")])), Some("y"));
    }

    #[test]
    fn writes_from_another_site_are_refused() {
        let ok = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert!(check_same_origin(&ok).is_ok());
        assert!(check_same_origin(&headers(&[("host", "a:1")])).is_ok(), "a non-browser client sends neither");
        let other = headers(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.example")]);
        assert_eq!(check_same_origin(&other).unwrap_err().code, "CROSS_SITE");
        let null = headers(&[("host", "127.0.0.1:8080"), ("origin", "null")]);
        assert!(check_same_origin(&null).is_err());
        let site = headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")]);
        assert!(check_same_origin(&site).is_err());
        let same_site = headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "same-site")]);
        assert!(check_same_origin(&same_site).is_err());
        let proxied = headers(&[
            ("host", "127.0.0.1:3100"),
            ("x-forwarded-host", "agentry.example.com"),
            ("origin", "https://agentry.example.com"),
        ]);
        assert!(check_same_origin(&proxied).is_ok(), "the host a proxy names");
        let no_host = headers(&[("origin", "http://127.0.0.1:8080")]);
        assert!(check_same_origin(&no_host).is_err());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
