//! Erdo scoped tokens: credentials an API key mints for one (external) user, limited to some
//! bots, datasets and threads, expiring after a while. Stored by the SHA-256 of their secret.

use agentry_core::{Scope, Timestamp};

use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

/// One scoped token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedToken {
    /// `stk_…`: the public id, used to revoke.
    pub id: String,
    /// The scope the token acts in.
    pub scope: Scope,
    /// The internal user the token acts as (`ext_…` or `anon_…`).
    pub user_id: String,
    /// The creator's own user identifier, if one was given (never shown to clients).
    pub external_user_id: Option<String>,
    /// Org-qualified bot keys it may invoke; empty means every bot.
    pub bot_keys: Vec<String>,
    /// Datasets it may use.
    pub dataset_ids: Vec<String>,
    /// Pre-existing threads it may use besides its user's own.
    pub thread_ids: Vec<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// From this instant on the token is refused.
    pub expires_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl ScopedToken {
    /// True when the token may authenticate at `now` (not revoked, not expired).
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

const COLUMNS: &str = "id, organization_id, project_id, environment_id, user_id, external_user_id, bot_keys_json, \
                       dataset_ids_json, thread_ids_json, created_at, expires_at, revoked_at";

impl Store {
    /// Records a token under the SHA-256 hex of its secret (the secret itself is never stored).
    pub async fn insert_scoped_token(&self, token: &ScopedToken, token_hash: &str) -> StoreResult<()> {
        let bot_keys = to_json(&token.bot_keys)?;
        let dataset_ids = to_json(&token.dataset_ids)?;
        let thread_ids = to_json(&token.thread_ids)?;
        on_writer!(self, |pool| {
            let sql = format!(
                "INSERT INTO scoped_tokens ({COLUMNS}, token_hash)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&token.id)
                .bind(&token.scope.organization_id)
                .bind(&token.scope.project_id)
                .bind(&token.scope.environment_id)
                .bind(&token.user_id)
                .bind(&token.external_user_id)
                .bind(&bot_keys)
                .bind(&dataset_ids)
                .bind(&thread_ids)
                .bind(token.created_at.0)
                .bind(token.expires_at.0)
                .bind(token.revoked_at.map(|t| t.0))
                .bind(token_hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The token stored under this hash, whatever its state: the caller checks
    /// [`ScopedToken::is_live`] (so it can say "expired" or "revoked").
    pub async fn scoped_token_by_hash(&self, token_hash: &str) -> StoreResult<Option<ScopedToken>> {
        on_pool!(self, |pool| {
            let sql = format!("SELECT {COLUMNS} FROM scoped_tokens WHERE token_hash = $1");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(token_hash)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(token_from_row)
                .transpose()
        })
    }

    /// Revokes a token of this scope. True when the token exists in the scope (revoking twice is
    /// harmless and keeps the first revocation time); false for unknown ids and other scopes.
    pub async fn revoke_scoped_token(&self, scope: &Scope, id: &str) -> StoreResult<bool> {
        let updated = on_writer!(self, |pool| {
            sqlx::query(
                "UPDATE scoped_tokens SET revoked_at = COALESCE(revoked_at, $5)
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(id)
            .bind(Timestamp::now().0)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }
}

fn to_json(list: &[String]) -> StoreResult<String> {
    serde_json::to_string(list).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_json(text: &str, what: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("scoped token {what}: {e}")))
}

fn token_from_row(row: &impl RowExt) -> StoreResult<ScopedToken> {
    Ok(ScopedToken {
        id: row.text("id")?,
        scope: Scope::new(row.text("organization_id")?, row.text("project_id")?, row.text("environment_id")?),
        user_id: row.text("user_id")?,
        external_user_id: row.opt_text("external_user_id")?,
        bot_keys: from_json(&row.text("bot_keys_json")?, "bot keys")?,
        dataset_ids: from_json(&row.text("dataset_ids_json")?, "dataset ids")?,
        thread_ids: from_json(&row.text("thread_ids_json")?, "thread ids")?,
        created_at: Timestamp(row.int("created_at")?),
        expires_at: Timestamp(row.int("expires_at")?),
        revoked_at: row.opt_int("revoked_at")?.map(Timestamp),
    })
}
