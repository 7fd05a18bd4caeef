//! Dashboard sign-ins: server-side sessions behind an HttpOnly cookie, and the scopes an operator
//! can pick from.
//!
//! Only the SHA-256 of the cookie's secret is stored. A session is valid while it has not expired
//! and the API key it was opened with is not revoked (one join), so revoking a key signs its
//! dashboard sessions out on every replica at once.

use agentry_core::{Scope, Timestamp};

use crate::row::RowExt;
use crate::{Store, StoreResult, on_pool, on_writer};

/// A signed-in dashboard session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSession {
    /// The API key it acts with.
    pub api_key_id: String,
    /// The organization that key is bound to (`None`: installation-wide).
    pub key_organization_id: Option<String>,
    /// What every write must carry in `X-CSRF-Token`.
    pub csrf_token: String,
    /// The scope the operator picked, once picked.
    pub scope: Option<Scope>,
    /// When it ends.
    pub expires_at: Timestamp,
}

impl Store {
    /// Opens a session for `api_key_id`; forgets sessions that have expired.
    pub async fn create_dashboard_session(
        &self,
        secret_hash: &str,
        api_key_id: &str,
        csrf_token: &str,
        expires_at: Timestamp,
    ) -> StoreResult<()> {
        let now = Timestamp::now().0;
        on_writer!(self, |pool| {
            sqlx::query("DELETE FROM dashboard_sessions WHERE expires_at <= $1").bind(now).execute(pool).await?;
            sqlx::query(
                "INSERT INTO dashboard_sessions (secret_hash, api_key_id, csrf_token, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(secret_hash)
            .bind(api_key_id)
            .bind(csrf_token)
            .bind(now)
            .bind(expires_at.0)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The live session whose secret hashes to `secret_hash`: not expired, its key not revoked.
    pub async fn dashboard_session(&self, secret_hash: &str) -> StoreResult<Option<DashboardSession>> {
        let now = Timestamp::now().0;
        on_pool!(self, |pool| {
            let row = sqlx::query(
                "SELECT s.api_key_id, k.organization_id AS key_org, s.csrf_token, s.organization_id,
                        s.project_id, s.environment_id, s.expires_at
                 FROM dashboard_sessions s JOIN api_keys k ON k.id = s.api_key_id AND k.revoked_at IS NULL
                 WHERE s.secret_hash = $1 AND s.expires_at > $2",
            )
            .bind(secret_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            row.map(|row| {
                let scope = match (
                    row.opt_text("organization_id")?,
                    row.opt_text("project_id")?,
                    row.opt_text("environment_id")?,
                ) {
                    (Some(org), Some(project), Some(env)) => Some(Scope::new(org, project, env)),
                    _ => None,
                };
                Ok(DashboardSession {
                    api_key_id: row.text("api_key_id")?,
                    key_organization_id: row.opt_text("key_org")?,
                    csrf_token: row.text("csrf_token")?,
                    scope,
                    expires_at: Timestamp(row.int("expires_at")?),
                })
            })
            .transpose()
        })
    }

    /// Points a live session at `scope`; false when there is no such session.
    pub async fn set_dashboard_scope(&self, secret_hash: &str, scope: &Scope) -> StoreResult<bool> {
        let now = Timestamp::now().0;
        on_writer!(self, |pool| {
            Ok(sqlx::query(
                "UPDATE dashboard_sessions SET organization_id = $2, project_id = $3, environment_id = $4
                 WHERE secret_hash = $1 AND expires_at > $5",
            )
            .bind(secret_hash)
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// Ends a session (signing out).
    pub async fn delete_dashboard_session(&self, secret_hash: &str) -> StoreResult<()> {
        on_writer!(self, |pool| {
            sqlx::query("DELETE FROM dashboard_sessions WHERE secret_hash = $1")
                .bind(secret_hash)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The scopes that hold agents or threads, in order (of `organization` only, when given): what
    /// the dashboard's scope picker offers. At most `limit`.
    pub async fn known_scopes(&self, organization: Option<&str>, limit: i64) -> StoreResult<Vec<Scope>> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT organization_id, project_id, environment_id FROM (
                     SELECT DISTINCT organization_id, project_id, environment_id FROM agents
                     UNION
                     SELECT DISTINCT organization_id, project_id, environment_id FROM threads
                 ) AS scopes
                 WHERE ($1 IS NULL OR organization_id = $1)
                 ORDER BY organization_id, project_id, environment_id LIMIT $2",
            )
            .bind(organization)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok(Scope::new(row.text("organization_id")?, row.text("project_id")?, row.text("environment_id")?))
                })
                .collect()
        })
    }
}
