//! Authentication: who is calling, in which scope.
//!
//! Two modes, as the Platos clients use them:
//! - **session token** in `X-Platos-Session-Token`: an HS256 JWT signed with an entity's service
//!   secret; the scope and user come from its claims;
//! - **direct headers** for trusted servers: `Authorization: Bearer <api key>` plus
//!   `X-Platos-Organization-Id`, `-Project-Id`, `-Environment-Id` and optional `-User-Id`.
//!
//! A session token that fails verification is a 401; it never falls through to the other mode.

use agentry_core::session_token::{TokenError, UnverifiedToken};
use agentry_core::{Principal, PrincipalKind, Scope, Timestamp, UserMeta};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::AppState;
use crate::error::ApiError;

/// Header carrying a session token.
pub const SESSION_TOKEN_HEADER: &str = "x-platos-session-token";
/// Direct-header scope: organization.
pub const ORG_HEADER: &str = "x-platos-organization-id";
/// Direct-header scope: project.
pub const PROJECT_HEADER: &str = "x-platos-project-id";
/// Direct-header scope: environment.
pub const ENV_HEADER: &str = "x-platos-environment-id";
/// Direct-header acting user (optional).
pub const USER_HEADER: &str = "x-platos-user-id";

/// Longest scope part or user id accepted from a header.
const MAX_ID_LEN: usize = 128;

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // The idempotency layer may already have authenticated this request.
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(Auth(principal.clone()));
        }
        authenticate(state, &parts.headers).await.map(Auth)
    }
}

/// Credentials as a request or a socket handshake presents them.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// A session token.
    pub session_token: Option<String>,
    /// `Authorization` header value (expects `Bearer <key>`).
    pub authorization: Option<String>,
    /// A bare API key (socket CONNECT payload `apiKey`).
    pub api_key: Option<String>,
    /// Direct-mode scope: organization.
    pub organization_id: Option<String>,
    /// Direct-mode scope: project.
    pub project_id: Option<String>,
    /// Direct-mode scope: environment.
    pub environment_id: Option<String>,
    /// Direct-mode acting user.
    pub user_id: Option<String>,
}

impl Credentials {
    /// Reads the Platos headers.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        Ok(Credentials {
            session_token: header_str(headers, SESSION_TOKEN_HEADER)?.map(str::to_owned),
            authorization: header_str(headers, "authorization")?.map(str::to_owned),
            api_key: None,
            organization_id: header_str(headers, ORG_HEADER)?.map(str::to_owned),
            project_id: header_str(headers, PROJECT_HEADER)?.map(str::to_owned),
            environment_id: header_str(headers, ENV_HEADER)?.map(str::to_owned),
            user_id: header_str(headers, USER_HEADER)?.map(str::to_owned),
        })
    }

    /// True when nothing identifies the caller.
    pub fn is_empty(&self) -> bool {
        self.session_token.is_none() && self.authorization.is_none() && self.api_key.is_none()
    }
}

/// Authenticates a request from its headers.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    authenticate_credentials(state, &Credentials::from_headers(headers)?).await
}

/// Authenticates presented credentials: a session token wins; else an API key with a scope.
pub async fn authenticate_credentials(state: &AppState, credentials: &Credentials) -> Result<Principal, ApiError> {
    if let Some(token) = &credentials.session_token {
        return authenticate_session_token(state, token).await;
    }
    let key = match (&credentials.api_key, &credentials.authorization) {
        (Some(key), _) => Some(key.trim()),
        (None, Some(authorization)) => Some(
            bearer_value(authorization)
                .ok_or_else(|| ApiError::unauthenticated("Authorization header must be `Bearer <api key>`"))?,
        ),
        (None, None) => None,
    };
    match key.filter(|k| !k.is_empty()) {
        Some(key) => authenticate_api_key(state, key, credentials).await,
        None => Err(ApiError::unauthenticated(
            "Authentication required: send X-Platos-Session-Token, or Authorization: Bearer <api key> with \
             X-Platos-Organization-Id, X-Platos-Project-Id and X-Platos-Environment-Id",
        )),
    }
}

/// Verifies a session token and returns the end user it names.
pub async fn authenticate_session_token(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let unverified = UnverifiedToken::parse(token).map_err(token_error)?;
    let claims = unverified.unverified_claims();
    let entity_id = claims.entity_id.clone().unwrap_or_default();
    let secret = state
        .store
        .entity_secret(&entity_id, &claims.organization_id, &claims.project_id)
        .await?
        // An unknown entity is reported like a bad signature: no oracle for which entities exist.
        .ok_or_else(|| token_error(TokenError::BadSignature))?;
    let now = Timestamp::now().unix_seconds();
    let claims = unverified.verify(&secret, now, state.options.max_token_lifetime_secs).map_err(token_error)?;
    for (name, value) in [
        ("organizationId", &claims.organization_id),
        ("projectId", &claims.project_id),
        ("environmentId", &claims.environment_id),
        ("userId", &claims.user_id),
    ] {
        check_id(name, value).map_err(|problem| ApiError::unauthenticated(format!("session token claim {problem}")))?;
    }
    Ok(Principal {
        scope: Scope::new(claims.organization_id, claims.project_id, claims.environment_id),
        user_id: Some(claims.user_id),
        kind: PrincipalKind::EndUser,
        user_meta: claims.user_meta.unwrap_or_default(),
        pinned_agent_id: claims.agent_id,
    })
}

/// The credential of an `Authorization: Bearer <value>` header value (trimmed), if it is one.
pub fn bearer_value(authorization: &str) -> Option<&str> {
    authorization.strip_prefix("Bearer ").or_else(|| authorization.strip_prefix("bearer ")).map(str::trim)
}

/// The unrevoked operator API key `key` is (looked up by its SHA-256), if any.
pub async fn api_key(state: &AppState, key: &str) -> Result<Option<agentry_store::ApiKey>, ApiError> {
    Ok(state.store.api_key_by_hash(&agentry_core::api_key::hash(key)).await?)
}

/// Refuses an API key bound to another organization than the one a request acts in.
pub fn check_key_org(key: &agentry_store::ApiKey, organization: &str) -> Result<(), ApiError> {
    match &key.organization_id {
        Some(bound) if bound != organization => {
            Err(ApiError::unauthenticated("this API key is bound to another organization"))
        }
        _ => Ok(()),
    }
}

async fn authenticate_api_key(state: &AppState, key: &str, credentials: &Credentials) -> Result<Principal, ApiError> {
    let Some(key) = api_key(state, key).await? else {
        return Err(ApiError::unauthenticated("invalid API key"));
    };
    let mut missing = Vec::new();
    let mut part = |name: &'static str, value: &Option<String>| -> Result<String, ApiError> {
        match value {
            Some(value) => {
                check_id(name, value).map_err(|problem| ApiError::invalid_field(name, problem))?;
                Ok(value.clone())
            }
            None => {
                missing.push(format!("header {name} is required with an API key"));
                Ok(String::new())
            }
        }
    };
    let scope = Scope::new(
        part(ORG_HEADER, &credentials.organization_id)?,
        part(PROJECT_HEADER, &credentials.project_id)?,
        part(ENV_HEADER, &credentials.environment_id)?,
    );
    if !missing.is_empty() {
        return Err(ApiError::validation("API-key requests must name their scope", missing));
    }
    check_key_org(&key, &scope.organization_id)?;
    if let Some(user) = &credentials.user_id {
        check_id(USER_HEADER, user).map_err(|problem| ApiError::invalid_field(USER_HEADER, problem))?;
    }
    Ok(Principal {
        scope,
        user_id: credentials.user_id.clone(),
        kind: PrincipalKind::Operator,
        user_meta: UserMeta::default(),
        pinned_agent_id: None,
    })
}

fn token_error(err: TokenError) -> ApiError {
    ApiError::unauthenticated(err.to_string())
}

pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Result<Option<&'h str>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|v| Some(v.trim()).filter(|v| !v.is_empty()))
            .map_err(|_| ApiError::invalid_field(name, "must be visible ASCII")),
    }
}

pub(crate) fn check_id(name: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_ID_LEN || value.chars().any(char::is_control) {
        return Err(format!("`{name}` must be 1..={MAX_ID_LEN} characters without control characters"));
    }
    Ok(())
}
