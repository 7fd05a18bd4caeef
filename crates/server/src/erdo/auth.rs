//! Authentication of Erdo routes: an operator API key or a scoped token.
//!
//! - `Authorization: Bearer <value>`: the value is looked up (by SHA-256) as an API key first,
//!   then as a scoped token. Keys and tokens are told apart by lookup, never by their shape.
//! - `X-Erdo-Token: <token>` (how `@erdoai/ui` sends a scoped token on some calls): a scoped
//!   token only. When both headers are present the `Authorization` header decides; an invalid
//!   bearer never falls through to the other header.
//!
//! An API key acts as the operator in the organization named by `X-Organization-ID` (an org id
//! or slug; both are just the org string here), `default` when absent. A scoped token acts as
//! its internal user in the organization it was minted in, and `X-Organization-ID` is ignored.

use agentry_core::scope::OPERATOR_USER_ID;
use agentry_core::{Principal, PrincipalKind, Scope, Thread, Timestamp, UserMeta};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::AppState;
use crate::auth::{api_key, bearer_value, check_id, check_key_org, header_str};
use crate::error::ApiError;

/// Header selecting the organization of an API-key request.
pub const ORGANIZATION_HEADER: &str = "x-organization-id";
/// Header carrying a scoped token (alternative to `Authorization: Bearer`).
pub const TOKEN_HEADER: &str = "x-erdo-token";
/// The organization of API-key requests without `X-Organization-ID`.
pub const DEFAULT_ORGANIZATION: &str = "default";

/// The Agentry scope of an Erdo organization.
pub fn erdo_scope(organization: &str) -> Scope {
    Scope::new(organization, "default", "default")
}

/// The internal user every token minted with `external_user_id` in `organization` acts as:
/// `ext_` and 24 hex digits of `sha256("<org>\n<external id>")`. The external id cannot be read
/// back from it.
pub fn external_user_id(organization: &str, external_user_id: &str) -> String {
    let digest = agentry_core::sha256_hex(format!("{organization}\n{external_user_id}").as_bytes());
    format!("ext_{}", &digest[..24])
}

/// The fresh, isolated user of a token minted without an external user id.
pub fn anonymous_user_id(token_id: &str) -> String {
    format!("anon_{token_id}")
}

/// Qualifies a bot key with an organization: `analyst` → `<org>.analyst`. A key that already
/// contains a `.` is taken as qualified (`<org>.<agent id>`) and returned unchanged.
pub fn qualify_bot_key(organization: &str, key: &str) -> String {
    if key.contains('.') { key.to_owned() } else { format!("{organization}.{key}") }
}

/// Who is calling an Erdo route, and what a scoped token lets them touch.
#[derive(Debug, Clone)]
pub struct ErdoCaller {
    /// The acting principal: the operator (API key) or the token's internal user.
    pub principal: Principal,
    /// The token's grant; `None` for an API key.
    pub grant: Option<TokenGrant>,
}

/// What a scoped token was minted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// `stk_…`
    pub token_id: String,
    /// Org-qualified bot keys it may invoke; empty means every bot of its organization.
    pub bot_keys: Vec<String>,
    /// Datasets it may use.
    pub dataset_ids: Vec<String>,
    /// Pre-existing threads it may use besides its user's own.
    pub thread_ids: Vec<String>,
    /// The creator's own user identifier, if given. Never show it to clients.
    pub external_user_id: Option<String>,
}

impl ErdoCaller {
    /// The organization the caller acts in.
    pub fn org(&self) -> &str {
        &self.principal.scope.organization_id
    }

    /// True for the operator API key (full access in its organization).
    pub fn is_api_key(&self) -> bool {
        self.grant.is_none()
    }

    /// The user the caller acts as (`operator` for an API key).
    pub fn user_id(&self) -> &str {
        self.principal.owner_id()
    }

    /// Whether the caller may invoke the bot with this org-qualified key. An API key may invoke
    /// any bot; a token one of its listed keys or, with an empty list, any bot of its own org.
    pub fn may_invoke(&self, qualified_bot_key: &str) -> bool {
        match &self.grant {
            None => true,
            Some(grant) if grant.bot_keys.is_empty() => qualified_bot_key
                .strip_prefix(self.org())
                .and_then(|rest| rest.strip_prefix('.'))
                .is_some_and(|agent| !agent.is_empty()),
            Some(grant) => grant.bot_keys.iter().any(|key| key == qualified_bot_key),
        }
    }

    /// Whether the caller may use this dataset: an API key any, a token the listed ones.
    pub fn may_use_dataset(&self, dataset_id: &str) -> bool {
        match &self.grant {
            None => true,
            Some(grant) => grant.dataset_ids.iter().any(|id| id == dataset_id),
        }
    }

    /// Whether the caller may see this thread: it must be of the caller's scope, and the caller
    /// an API key, its owner, or a token granted that thread id.
    pub fn may_see_thread(&self, thread: &Thread) -> bool {
        if thread.scope != self.principal.scope {
            return false;
        }
        match &self.grant {
            None => true,
            Some(grant) => thread.user_id == self.user_id() || grant.thread_ids.contains(&thread.id),
        }
    }
}

/// Axum extractor: `ErdoAuth(caller)`. Missing or invalid credentials are a 401 with a JSON body.
#[derive(Debug, Clone)]
pub struct ErdoAuth(pub ErdoCaller);

impl FromRequestParts<AppState> for ErdoAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // The dashboard's session checked this request already: its operator, with an API key's
        // reach, in the scope the session picked.
        if let Some(crate::dashboard::session::DashboardOperator(principal)) = parts.extensions.get() {
            return Ok(ErdoAuth(ErdoCaller { principal: principal.clone(), grant: None }));
        }
        authenticate(state, &parts.headers).await.map(ErdoAuth)
    }
}

/// Authenticates an Erdo request from its headers (see the module docs for the rules).
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<ErdoCaller, ApiError> {
    if let Some(authorization) = header_str(headers, "authorization")? {
        let credential = bearer_value(authorization).filter(|v| !v.is_empty()).ok_or_else(|| {
            ApiError::unauthenticated("Authorization header must be `Bearer <API key or scoped token>`")
        })?;
        if let Some(key) = api_key(state, credential).await? {
            return api_key_caller(headers, &key);
        }
        return scoped_token_caller(state, credential)
            .await?
            .ok_or_else(|| ApiError::unauthenticated("invalid API key or scoped token"));
    }
    if let Some(token) = header_str(headers, TOKEN_HEADER)? {
        return scoped_token_caller(state, token)
            .await?
            .ok_or_else(|| ApiError::unauthenticated("invalid scoped token in X-Erdo-Token"));
    }
    Err(ApiError::unauthenticated(
        "Authentication required: send Authorization: Bearer <API key or scoped token>, or X-Erdo-Token: <scoped token>",
    ))
}

/// The operator of the request's organization: `X-Organization-ID`, else the key's own
/// organization, else `default`.
fn api_key_caller(headers: &HeaderMap, key: &agentry_store::ApiKey) -> Result<ErdoCaller, ApiError> {
    let organization =
        header_str(headers, ORGANIZATION_HEADER)?.or(key.organization_id.as_deref()).unwrap_or(DEFAULT_ORGANIZATION);
    check_id("X-Organization-ID", organization)
        .map_err(|problem| ApiError::invalid_field("X-Organization-ID", problem))?;
    check_key_org(key, organization)?;
    Ok(ErdoCaller {
        principal: Principal {
            scope: erdo_scope(organization),
            user_id: Some(OPERATOR_USER_ID.to_owned()),
            kind: PrincipalKind::Operator,
            user_meta: UserMeta::default(),
            pinned_agent_id: None,
        },
        grant: None,
    })
}

/// The caller a scoped token names; `None` when no token has this secret. Revoked and expired
/// tokens are a 401 saying so.
async fn scoped_token_caller(state: &AppState, secret: &str) -> Result<Option<ErdoCaller>, ApiError> {
    let Some(token) = state.store.scoped_token_by_hash(&agentry_core::api_key::hash(secret)).await? else {
        return Ok(None);
    };
    if token.revoked_at.is_some() {
        return Err(ApiError::unauthenticated("this scoped token has been revoked"));
    }
    if !token.is_live(Timestamp::now()) {
        return Err(ApiError::unauthenticated("this scoped token has expired"));
    }
    Ok(Some(ErdoCaller {
        principal: Principal {
            scope: token.scope,
            user_id: Some(token.user_id),
            kind: PrincipalKind::EndUser,
            user_meta: UserMeta::default(),
            pinned_agent_id: None,
        },
        grant: Some(TokenGrant {
            token_id: token.id,
            bot_keys: token.bot_keys,
            dataset_ids: token.dataset_ids,
            thread_ids: token.thread_ids,
            external_user_id: token.external_user_id,
        }),
    }))
}
