//! Operator API keys over REST: `GET /api-keys`, `POST /api-keys {name, organizationId |
//! installationWide}` (the secret is answered once), `POST /api-keys/{id}/rotate` (a new secret;
//! the old one stops working), `DELETE /api-keys/{id}` (revoke).
//!
//! A key bound to an organization manages the keys of that organization only; an
//! installation-wide key manages every key. End users get 403.

use agentry_core::Principal;
use agentry_core::id::{new_id, new_secret, prefix};
use agentry_core::wire::admin as wire;
use agentry_store::ApiKey;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::AppState;
use crate::auth::{Auth, api_key, bearer_value, check_id};
use crate::error::ApiError;
use crate::extract::JsonBody;

/// Body of `POST /api-keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewKey {
    name: String,
    #[serde(default)]
    organization_id: Option<String>,
    #[serde(default)]
    installation_wide: bool,
}

/// The key an operator's request came with; end users get 403.
async fn caller_key(state: &AppState, principal: &Principal, headers: &HeaderMap) -> Result<ApiKey, ApiError> {
    if !principal.is_operator() {
        return Err(ApiError::operator_only());
    }
    let presented = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(bearer_value);
    match presented {
        Some(key) => api_key(state, key).await?.ok_or_else(|| ApiError::unauthenticated("invalid API key")),
        None => Err(ApiError::operator_only()),
    }
}

fn view(key: &ApiKey) -> wire::ApiKey {
    wire::ApiKey {
        id: key.id.clone(),
        name: key.name.clone(),
        organization_id: key.organization_id.clone(),
        installation_wide: key.organization_id.is_none(),
        created_at: key.created_at,
        revoked_at: key.revoked_at,
    }
}

/// `GET /api-keys` → `{keys}`: every key (installation-wide caller) or its organization's.
pub async fn list(
    State(state): State<AppState>,
    Auth(principal): Auth,
    headers: HeaderMap,
) -> Result<Json<wire::ApiKeyList>, ApiError> {
    let caller = caller_key(&state, &principal, &headers).await?;
    let keys = state.store.list_api_keys(caller.organization_id.as_deref()).await?;
    Ok(Json(wire::ApiKeyList { keys: keys.iter().map(view).collect() }))
}

/// `POST /api-keys` → 201 `{…key, key: <secret, shown once>}`.
pub async fn create(
    State(state): State<AppState>,
    Auth(principal): Auth,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewKey>,
) -> Result<(StatusCode, Json<wire::CreatedApiKey>), ApiError> {
    let caller = caller_key(&state, &principal, &headers).await?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid_field("name", "must be 1 to 200 characters"));
    }
    let organization = match (body.organization_id, body.installation_wide, &caller.organization_id) {
        (Some(_), true, _) => {
            return Err(ApiError::invalid_field(
                "installationWide",
                "a key is bound to an organization or installation-wide, not both",
            ));
        }
        (None, false, _) => {
            return Err(ApiError::invalid_field(
                "organizationId",
                "name the organization the key acts in (or installationWide: true)",
            ));
        }
        (None, true, Some(_)) => {
            return Err(ApiError::forbidden(
                "INSTALLATION_KEY_REQUIRED",
                "only an installation-wide key creates installation-wide keys",
            ));
        }
        (Some(org), false, Some(own)) if org != *own => {
            return Err(ApiError::forbidden(
                "ORGANIZATION_MISMATCH",
                "this key manages the keys of its own organization only",
            ));
        }
        (Some(org), false, _) => {
            check_id("organizationId", &org).map_err(|problem| ApiError::invalid_field("organizationId", problem))?;
            Some(org)
        }
        (None, true, None) => None,
    };
    let secret = new_secret("agk", 24);
    let id = new_id(prefix::API_KEY);
    let stored =
        state.store.insert_api_key(&id, &agentry_core::api_key::hash(&secret), name, organization.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(wire::CreatedApiKey { api_key: view(&stored), key: secret })))
}

/// `POST /api-keys/{id}/rotate` → `{id, key: <new secret>}`.
pub async fn rotate(
    State(state): State<AppState>,
    Auth(principal): Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<wire::RotatedApiKey>, ApiError> {
    let caller = caller_key(&state, &principal, &headers).await?;
    let secret = new_secret("agk", 24);
    let hash = agentry_core::api_key::hash(&secret);
    if !state.store.rotate_api_key(&id, &hash, caller.organization_id.as_deref()).await? {
        return Err(ApiError::not_found("API key"));
    }
    Ok(Json(wire::RotatedApiKey { id, key: secret }))
}

/// `DELETE /api-keys/{id}` → `{id, revoked: true}`.
pub async fn revoke(
    State(state): State<AppState>,
    Auth(principal): Auth,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<wire::RevokedApiKey>, ApiError> {
    let caller = caller_key(&state, &principal, &headers).await?;
    if !state.store.revoke_api_key(&id, caller.organization_id.as_deref()).await? {
        return Err(ApiError::not_found("API key"));
    }
    Ok(Json(wire::RevokedApiKey { id, revoked: true }))
}
