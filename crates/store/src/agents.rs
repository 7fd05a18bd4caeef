//! Agents and their immutable versions.
//!
//! Applying a spec that differs from the current one creates a new version and moves the agent
//! to it; applying an identical spec changes nothing, so re-loading agent files at every start
//! does not grow the version history.

use agentry_core::id::{new_id, prefix};
use agentry_core::{AgentSpec, Scope, Timestamp};

use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

/// An agent as stored: its current spec and version.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAgent {
    /// The scope it belongs to.
    pub scope: Scope,
    /// The current spec (without scope keys).
    pub spec: AgentSpec,
    /// Id of the current version.
    pub current_version_id: String,
    /// Number of the current version (1-based).
    pub version_number: i64,
    /// When the agent was first created.
    pub created_at: Timestamp,
    /// When its current version was created.
    pub updated_at: Timestamp,
}

/// One immutable version of an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentVersion {
    /// `agv_…`
    pub id: String,
    /// The agent it belongs to.
    pub agent_id: String,
    /// 1-based, increasing.
    pub version_number: i64,
    /// The spec of this version.
    pub spec: AgentSpec,
    /// Who made the change (`file:<path>`, `api`, `bootstrap`, …).
    pub created_by: String,
    /// Optional note.
    pub note: Option<String>,
    /// When this version was created.
    pub created_at: Timestamp,
}

/// What [`Store::apply_agent`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedAgent {
    /// The agent after the change.
    pub agent: StoredAgent,
    /// Whether a new version was created (false when the spec was unchanged).
    pub changed: bool,
}

/// Inserts an agent version and points the agent at it, on an open transaction (a macro: the
/// statements are compiled for each backend).
macro_rules! insert_agent_version {
    ($conn:expr, $scope:expr, $spec:expr, $spec_json:expr, $version_id:expr, $number:expr, $created_by:expr, $note:expr, $now:expr) => {{
        let (scope, spec) = ($scope, $spec);
        sqlx::query(
            "INSERT INTO agent_versions (id, organization_id, project_id, environment_id, agent_id,
                version_number, spec_json, created_by, note, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind($version_id)
        .bind(&scope.organization_id)
        .bind(&scope.project_id)
        .bind(&scope.environment_id)
        .bind(&spec.id)
        .bind($number)
        .bind($spec_json)
        .bind($created_by)
        .bind($note)
        .bind($now)
        .execute($conn)
        .await?;
        sqlx::query(
            "INSERT INTO agents (organization_id, project_id, environment_id, id, name, model, spec_json,
                current_version_id, version_number, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)
             ON CONFLICT (organization_id, project_id, environment_id, id) DO UPDATE SET
                name = excluded.name, model = excluded.model, spec_json = excluded.spec_json,
                current_version_id = excluded.current_version_id,
                version_number = excluded.version_number, updated_at = excluded.updated_at",
        )
        .bind(&scope.organization_id)
        .bind(&scope.project_id)
        .bind(&scope.environment_id)
        .bind(&spec.id)
        .bind(&spec.name)
        .bind(&spec.model)
        .bind($spec_json)
        .bind($version_id)
        .bind($number)
        .bind($now)
        .execute($conn)
        .await?;
    }};
}
pub(crate) use insert_agent_version;

const AGENT_COLUMNS: &str = "organization_id, project_id, environment_id, spec_json, current_version_id, version_number, created_at, updated_at";

impl Store {
    /// Creates or updates an agent in `scope`; a changed spec becomes a new immutable version.
    pub async fn apply_agent(
        &self,
        scope: &Scope,
        spec: &AgentSpec,
        created_by: &str,
        note: Option<&str>,
    ) -> StoreResult<AppliedAgent> {
        let spec = spec.without_scope();
        let spec_json = serde_json::to_string(&spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = Timestamp::now().0;
        let version_id = new_id(prefix::AGENT_VERSION);
        let is_postgres = matches!(self.db, crate::Db::Postgres(_));
        let changed = on_writer!(self, |pool| {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            if is_postgres {
                // Two replicas applying the same agent files at once take turns (SQLite has one
                // writer anyway).
                let key = format!(
                    "agent:{}/{}/{}/{}",
                    scope.organization_id, scope.project_id, scope.environment_id, spec.id
                );
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind(&key)
                    .execute(&mut *tx)
                    .await?;
            }
            let current: Option<(String, i64)> = sqlx::query_as(
                "SELECT spec_json, version_number FROM agents
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(&spec.id)
            .fetch_optional(&mut *tx)
            .await?;
            let unchanged = current
                .as_ref()
                .is_some_and(|(json, _)| serde_json::from_str::<AgentSpec>(json).ok().as_ref() == Some(&spec));
            if !unchanged {
                let number = current.as_ref().map_or(1, |(_, n)| n + 1);
                insert_agent_version!(&mut *tx, scope, &spec, &spec_json, &version_id, number, created_by, note, now);
            }
            tx.commit().await?;
            !unchanged
        });
        let agent = self
            .get_agent(scope, &spec.id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("agent {} vanished after apply", spec.id)))?;
        Ok(AppliedAgent { agent, changed })
    }

    /// Every agent of the scope, oldest first.
    pub async fn list_agents(&self, scope: &Scope) -> StoreResult<Vec<StoredAgent>> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {AGENT_COLUMNS} FROM agents
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3
                 ORDER BY created_at, id"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(agent_from_row)
                .collect()
        })
    }

    /// One agent of the scope.
    pub async fn get_agent(&self, scope: &Scope, agent_id: &str) -> StoreResult<Option<StoredAgent>> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {AGENT_COLUMNS} FROM agents
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(agent_id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(agent_from_row)
                .transpose()
        })
    }

    /// The scope's default agent: the agent with id `default`, else the oldest agent.
    pub async fn default_agent(&self, scope: &Scope) -> StoreResult<Option<StoredAgent>> {
        if let Some(agent) = self.get_agent(scope, "default").await? {
            return Ok(Some(agent));
        }
        Ok(self.list_agents(scope).await?.into_iter().next())
    }

    /// Versions of an agent, newest first. `None` when the agent does not exist in the scope.
    pub async fn list_agent_versions(
        &self,
        scope: &Scope,
        agent_id: &str,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Option<Vec<AgentVersion>>> {
        if self.get_agent(scope, agent_id).await?.is_none() {
            return Ok(None);
        }
        let versions = on_pool!(self, |pool| {
            sqlx::query(
                "SELECT id, agent_id, version_number, spec_json, created_by, note, created_at FROM agent_versions
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND agent_id = $4
                 ORDER BY version_number DESC LIMIT $5 OFFSET $6",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(agent_id)
            .bind(limit)
            .bind(offset)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(AgentVersion {
                    id: row.text("id")?,
                    agent_id: row.text("agent_id")?,
                    version_number: row.int("version_number")?,
                    spec: parse_spec(&row.text("spec_json")?)?,
                    created_by: row.text("created_by")?,
                    note: row.opt_text("note")?,
                    created_at: Timestamp(row.int("created_at")?),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?
        });
        Ok(Some(versions))
    }

    /// Deletes an agent and its versions. Returns false when it did not exist in the scope.
    /// Threads that used it stay (their history is the user's).
    pub async fn delete_agent(&self, scope: &Scope, agent_id: &str) -> StoreResult<bool> {
        let deleted = on_writer!(self, |pool| {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            let deleted = sqlx::query(
                "DELETE FROM agents WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(agent_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "DELETE FROM agent_versions
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND agent_id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(agent_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            deleted
        });
        Ok(deleted > 0)
    }
}

fn parse_spec(json: &str) -> StoreResult<AgentSpec> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("stored agent spec: {e}")))
}

fn agent_from_row(row: &impl RowExt) -> StoreResult<StoredAgent> {
    Ok(StoredAgent {
        scope: Scope::new(row.text("organization_id")?, row.text("project_id")?, row.text("environment_id")?),
        spec: parse_spec(&row.text("spec_json")?)?,
        current_version_id: row.text("current_version_id")?,
        version_number: row.int("version_number")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}
