//! Installation metadata, entities (session-token signers) and operator API keys.

use agentry_core::Timestamp;
use sqlx::Row as _;

use crate::{Store, StoreResult, on_pool, on_writer};

impl Store {
    /// Reads an installation metadata value.
    pub async fn meta_get(&self, key: &str) -> StoreResult<Option<String>> {
        let value = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT value FROM meta WHERE key = $1").bind(key).fetch_optional(pool).await?
        });
        Ok(value)
    }

    /// Registers an entity (an existing one is kept). `organization_id`/`project_id` of `None`
    /// mean the entity may sign tokens for any scope (the installation's bootstrap entity).
    pub async fn insert_entity(
        &self,
        id: &str,
        organization_id: Option<&str>,
        project_id: Option<&str>,
        service_secret: &str,
    ) -> StoreResult<()> {
        on_writer!(self, |pool| {
            sqlx::query(
                "INSERT INTO entities (id, organization_id, project_id, service_secret, created_at)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(organization_id)
            .bind(project_id)
            .bind(service_secret)
            .bind(Timestamp::now().0)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The service secret of `entity_id`, if that entity may sign for this organization and project.
    pub async fn entity_secret(
        &self,
        entity_id: &str,
        organization_id: &str,
        project_id: &str,
    ) -> StoreResult<Option<String>> {
        let secret = on_pool!(self, |pool| {
            sqlx::query(
                "SELECT service_secret FROM entities WHERE id = $1
                   AND (organization_id IS NULL OR organization_id = $2)
                   AND (project_id IS NULL OR project_id = $3)",
            )
            .bind(entity_id)
            .bind(organization_id)
            .bind(project_id)
            .fetch_optional(pool)
            .await?
            .map(|row| row.try_get::<String, _>("service_secret"))
            .transpose()?
        });
        Ok(secret)
    }

    /// Records an API key by the SHA-256 hex of its secret, bound to `organization` (`None`:
    /// installation-wide), and returns it. A key already known is kept, so two replicas
    /// registering the same key at once both succeed.
    pub async fn insert_api_key(
        &self,
        id: &str,
        key_hash: &str,
        name: &str,
        organization: Option<&str>,
    ) -> StoreResult<ApiKey> {
        let created_at = Timestamp::now();
        on_writer!(self, |pool| {
            sqlx::query(
                "INSERT INTO api_keys (id, key_hash, name, organization_id, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (key_hash) DO NOTHING",
            )
            .bind(id)
            .bind(key_hash)
            .bind(name)
            .bind(organization)
            .bind(created_at.0)
            .execute(pool)
            .await?;
        });
        Ok(ApiKey {
            id: id.to_owned(),
            name: name.to_owned(),
            organization_id: organization.map(str::to_owned),
            created_at,
            revoked_at: None,
        })
    }

    /// The unrevoked API key with this hash, if any.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<ApiKey>> {
        let sql = format!("SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL");
        let row: Option<ApiKeyRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(key_hash).fetch_optional(pool).await?
        });
        Ok(row.map(ApiKey::from))
    }

    /// API keys, oldest first: all of them, or (`Some(org)`) those bound to that organization.
    pub async fn list_api_keys(&self, organization: Option<&str>) -> StoreResult<Vec<ApiKey>> {
        let sql = format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE ($1 IS NULL OR organization_id = $1) ORDER BY created_at, id"
        );
        let rows: Vec<ApiKeyRow> = on_pool!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(organization).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(ApiKey::from).collect())
    }

    /// Revokes a key (of `organization`, when given); false when there is no such unrevoked key.
    pub async fn revoke_api_key(&self, id: &str, organization: Option<&str>) -> StoreResult<bool> {
        on_writer!(self, |pool| {
            Ok(sqlx::query(
                "UPDATE api_keys SET revoked_at = $3
                 WHERE id = $1 AND revoked_at IS NULL AND ($2 IS NULL OR organization_id = $2)",
            )
            .bind(id)
            .bind(organization)
            .bind(Timestamp::now().0)
            .execute(pool)
            .await?
            .rows_affected()
                == 1)
        })
    }

    /// Gives a key a new secret (by its hash): the old one stops working at once. False when there
    /// is no such unrevoked key (of `organization`, when given).
    pub async fn rotate_api_key(&self, id: &str, new_hash: &str, organization: Option<&str>) -> StoreResult<bool> {
        on_writer!(self, |pool| {
            Ok(sqlx::query(
                "UPDATE api_keys SET key_hash = $2
                 WHERE id = $1 AND revoked_at IS NULL AND ($3 IS NULL OR organization_id = $3)",
            )
            .bind(id)
            .bind(new_hash)
            .bind(organization)
            .execute(pool)
            .await?
            .rows_affected()
                == 1)
        })
    }
}

/// An operator API key (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `key_…`
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The organization it acts in; `None`: every organization (installation-wide).
    pub organization_id: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

const API_KEY_COLUMNS: &str = "id, name, organization_id, created_at, revoked_at";
type ApiKeyRow = (String, String, Option<String>, i64, Option<i64>);

impl From<ApiKeyRow> for ApiKey {
    fn from((id, name, organization_id, created_at, revoked_at): ApiKeyRow) -> Self {
        ApiKey { id, name, organization_id, created_at: Timestamp(created_at), revoked_at: revoked_at.map(Timestamp) }
    }
}

/// What a new installation starts with, written at once by [`Store::bootstrap_installation`].
#[derive(Debug, Clone)]
pub struct Installation<'a> {
    /// Value of the once-only latch (`meta.bootstrapped_at`).
    pub bootstrapped_at: &'a str,
    /// The installation-wide entity that signs session tokens, and its secret.
    pub entity: (&'a str, &'a str),
    /// The operator API key: id, SHA-256 of the secret, name.
    pub api_key: (&'a str, &'a str, &'a str),
    /// The built-in default agent, in the default scope.
    pub agent: &'a agentry_core::AgentSpec,
}

impl Store {
    /// Sets up a new installation in one transaction: the latch, the entity, the API key and the
    /// default agent, or nothing. Returns false (writing nothing) when the store was already set
    /// up — also when another replica is doing it at the same moment.
    pub async fn bootstrap_installation(&self, installation: &Installation<'_>) -> StoreResult<bool> {
        let scope = agentry_core::Scope::default_scope();
        let spec = installation.agent.without_scope();
        let spec_json = serde_json::to_string(&spec).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
        let now = Timestamp::now().0;
        let version_id = agentry_core::id::new_id(agentry_core::id::prefix::AGENT_VERSION);
        on_writer!(self, |pool| {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            let latched = sqlx::query(
                "INSERT INTO meta (key, value) VALUES ('bootstrapped_at', $1) ON CONFLICT (key) DO NOTHING",
            )
            .bind(installation.bootstrapped_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if latched != 1 {
                return Ok(false);
            }
            let (entity_id, secret) = installation.entity;
            sqlx::query(
                "INSERT INTO entities (id, organization_id, project_id, service_secret, created_at)
                 VALUES ($1, NULL, NULL, $2, $3) ON CONFLICT (id) DO NOTHING",
            )
            .bind(entity_id)
            .bind(secret)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            let (key_id, key_hash, key_name) = installation.api_key;
            sqlx::query(
                "INSERT INTO api_keys (id, key_hash, name, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (key_hash) DO NOTHING",
            )
            .bind(key_id)
            .bind(key_hash)
            .bind(key_name)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            crate::agents::insert_agent_version!(
                &mut *tx,
                &scope,
                &spec,
                &spec_json,
                &version_id,
                1_i64,
                "bootstrap",
                None::<&str>,
                now
            );
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Replaces an entity's service secret (rotation). Returns false when the entity does not exist.
    pub async fn set_entity_secret(&self, id: &str, service_secret: &str) -> StoreResult<bool> {
        let updated = on_writer!(self, |pool| {
            sqlx::query("UPDATE entities SET service_secret = $2 WHERE id = $1")
                .bind(id)
                .bind(service_secret)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(updated == 1)
    }
}
