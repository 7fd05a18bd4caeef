//! Scoped tokens (`createToken`): `POST /tokens` mints one, `DELETE /tokens/{tokenId}` revokes it.
//! Both need the API key; a scoped token cannot mint or revoke tokens.
//!
//! Requests are read in camelCase or snake_case; responses carry both spellings of the ids and
//! times (`erdo-wire.md` §7). The secret is answered once and stored only as its SHA-256.

use agentry_core::Timestamp;
use agentry_core::id::{new_id, new_secret};
use agentry_core::wire::erdo::{self as wire, RevokedToken, TokenParams};
use agentry_store::ScopedToken;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::auth::{ErdoAuth, ErdoCaller, anonymous_user_id, external_user_id, qualify_bot_key};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::JsonBody;

/// Prefix of token ids (public, used to revoke).
pub const TOKEN_ID_PREFIX: &str = "stk";
/// Prefix of token secrets.
pub const TOKEN_SECRET_PREFIX: &str = "erdo_st";
/// Lifetime when the request names none.
pub const DEFAULT_LIFETIME_SECS: i64 = 3600;
/// Longest lifetime a token may have.
pub const MAX_LIFETIME_SECS: i64 = 86_400;
/// Most entries in one grant list.
const MAX_GRANTS: usize = 1000;
/// Longest grant entry or external user id.
const MAX_ENTRY_LEN: usize = 256;

/// `POST /tokens`: mints a scoped token in the API key's organization → 201
/// `{tokenId, token, expiresAt}` (plus `token_id`, `expires_at`).
pub async fn create(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    JsonBody(body): JsonBody<TokenParams>,
) -> Result<(StatusCode, axum::Extension<crate::idempotency::ShowsSecret>, Json<wire::ScopedToken>), ApiError> {
    require_api_key(&caller, "create")?;
    let lifetime = body.expires_in_seconds.unwrap_or(DEFAULT_LIFETIME_SECS);
    if !(1..=MAX_LIFETIME_SECS).contains(&lifetime) {
        return Err(ApiError::invalid_field(
            "expiresInSeconds",
            format!("{lifetime} is outside 1..={MAX_LIFETIME_SECS}"),
        ));
    }
    let org = caller.org().to_owned();
    let bot_keys = grant_list("botKeys", body.bot_keys, |key| qualify_bot_key(&org, &key))?;
    let dataset_ids = grant_list("datasetIds", body.dataset_ids, |id| id)?;
    let thread_ids = grant_list("threadIds", body.thread_ids, |id| id)?;
    if let Some(external) = &body.external_user_id {
        check_entry("externalUserId", external)?;
    }

    let id = new_id(TOKEN_ID_PREFIX);
    let secret = new_secret(TOKEN_SECRET_PREFIX, 32);
    let user_id = match &body.external_user_id {
        Some(external) => external_user_id(&org, external),
        None => anonymous_user_id(&id),
    };
    let now = Timestamp::now();
    let token = ScopedToken {
        id,
        scope: caller.principal.scope.clone(),
        user_id,
        external_user_id: body.external_user_id,
        bot_keys,
        dataset_ids,
        thread_ids,
        created_at: now,
        expires_at: Timestamp(now.0 + lifetime * 1000),
        revoked_at: None,
    };
    state.store.insert_scoped_token(&token, &agentry_core::api_key::hash(&secret)).await?;
    tracing::info!(token_id = %token.id, org = %org, lifetime, "scoped token created");
    // The secret is shown once and never stored, not even as an idempotent replay.
    Ok((
        StatusCode::CREATED,
        axum::Extension(crate::idempotency::ShowsSecret),
        Json(wire::ScopedToken::new(&token.id, secret, token.expires_at)),
    ))
}

/// `DELETE /tokens/{tokenId}`: revokes a token of the API key's organization at once → 200
/// `{revoked: true}`; 404 for unknown ids and tokens of other organizations.
pub async fn revoke(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    Path(token_id): Path<String>,
) -> Result<Json<RevokedToken>, ApiError> {
    require_api_key(&caller, "revoke")?;
    if !state.store.revoke_scoped_token(&caller.principal.scope, &token_id).await? {
        return Err(ApiError::not_found("Token"));
    }
    tracing::info!(token_id = %token_id, org = %caller.org(), "scoped token revoked");
    Ok(Json(RevokedToken::new(&token_id)))
}

fn require_api_key(caller: &ErdoCaller, action: &str) -> Result<(), ApiError> {
    if caller.is_api_key() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "API_KEY_REQUIRED",
            format!("only an API key may {action} tokens; a scoped token cannot"),
        ))
    }
}

/// Checks a grant list and maps its entries, dropping duplicates (first occurrence kept).
fn grant_list(field: &str, list: Option<Vec<String>>, map: impl Fn(String) -> String) -> Result<Vec<String>, ApiError> {
    let list = list.unwrap_or_default();
    if list.len() > MAX_GRANTS {
        return Err(ApiError::invalid_field(field, format!("at most {MAX_GRANTS} entries are allowed")));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for (i, entry) in list.into_iter().enumerate() {
        check_entry(&format!("{field}[{i}]"), &entry)?;
        let entry = map(entry.trim().to_owned());
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    Ok(out)
}

fn check_entry(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() || value.len() > MAX_ENTRY_LEN || value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(
            field,
            format!("must be 1..={MAX_ENTRY_LEN} characters without control characters"),
        ));
    }
    Ok(())
}
