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

    /// Sets a metadata value only if the key is absent; returns whether this call set it.
    /// Used as the once-only latch of the first-start bootstrap.
    pub async fn meta_insert_if_absent(&self, key: &str, value: &str) -> StoreResult<bool> {
        let result = on_writer!(self, |pool| {
            sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(result == 1)
    }

    /// Registers an entity. `organization_id`/`project_id` of `None` mean the entity may sign
    /// tokens for any scope (the installation's bootstrap entity).
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
                 VALUES ($1, $2, $3, $4, $5)",
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

    /// Records an API key by the SHA-256 hex of its secret.
    pub async fn insert_api_key(&self, id: &str, key_hash: &str, name: &str) -> StoreResult<()> {
        on_writer!(self, |pool| {
            sqlx::query("INSERT INTO api_keys (id, key_hash, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id)
                .bind(key_hash)
                .bind(name)
                .bind(Timestamp::now().0)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The id of the unrevoked API key with this hash, if any.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> StoreResult<Option<String>> {
        let id = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL")
                .bind(key_hash)
                .fetch_optional(pool)
                .await?
        });
        Ok(id)
    }
}

impl Store {
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
