//! Artifacts: immutable revisions per `(thread, key)`; the latest revision is the artifact.

use agentry_core::{Scope, Timestamp};

use crate::row::RowExt;
use crate::{Store, StoreResult, on_pool, on_writer};

/// One stored artifact revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRevision {
    /// `art_…`, unique per revision.
    pub id: String,
    /// The thread it belongs to.
    pub thread_id: String,
    /// The turn that produced it.
    pub turn_id: String,
    /// Stable key across revisions.
    pub artifact_key: String,
    /// 1, 2, 3…
    pub revision: i64,
    /// `markdown`, `code`, `html`, `json`, `csv`, `svg`, `image`.
    pub kind: String,
    /// Optional title.
    pub title: Option<String>,
    /// Language of code artifacts.
    pub language: Option<String>,
    /// The content (sanitised where the kind requires it).
    pub content: String,
    /// When the revision was stored.
    pub created_at: Timestamp,
}

const COLUMNS: &str = "id, thread_id, turn_id, artifact_key, revision, kind, title, language, content, created_at";

impl Store {
    /// Stores a revision. Fails if `(thread, key, revision)` exists (revisions are immutable).
    pub async fn insert_artifact(&self, scope: &Scope, artifact: &ArtifactRevision) -> StoreResult<()> {
        on_writer!(self, |pool| {
            let sql = format!(
                "INSERT INTO artifacts ({COLUMNS}, organization_id, project_id, environment_id)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&artifact.id)
                .bind(&artifact.thread_id)
                .bind(&artifact.turn_id)
                .bind(&artifact.artifact_key)
                .bind(artifact.revision)
                .bind(&artifact.kind)
                .bind(&artifact.title)
                .bind(&artifact.language)
                .bind(&artifact.content)
                .bind(artifact.created_at.0)
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The latest revision of an artifact of a thread.
    pub async fn latest_artifact(
        &self,
        scope: &Scope,
        thread_id: &str,
        key: &str,
    ) -> StoreResult<Option<ArtifactRevision>> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {COLUMNS} FROM artifacts
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND thread_id = $4
                   AND artifact_key = $5
                 ORDER BY revision DESC LIMIT 1"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(thread_id)
                .bind(key)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(artifact_from_row)
                .transpose()
        })
    }

    /// The latest revision of each artifact of a thread, newest first, with its revision count.
    pub async fn list_artifacts(
        &self,
        scope: &Scope,
        thread_id: &str,
        limit: i64,
    ) -> StoreResult<Vec<(ArtifactRevision, i64)>> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {COLUMNS}, (SELECT COUNT(*) FROM artifacts c WHERE c.thread_id = a.thread_id
                                     AND c.artifact_key = a.artifact_key) AS revision_count
                 FROM artifacts a
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND thread_id = $4
                   AND revision = (SELECT MAX(revision) FROM artifacts m
                                   WHERE m.thread_id = a.thread_id AND m.artifact_key = a.artifact_key)
                 ORDER BY created_at DESC, id DESC LIMIT $5"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(thread_id)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| Ok((artifact_from_row(row)?, row.int("revision_count")?)))
                .collect()
        })
    }
}

fn artifact_from_row(row: &impl RowExt) -> StoreResult<ArtifactRevision> {
    Ok(ArtifactRevision {
        id: row.text("id")?,
        thread_id: row.text("thread_id")?,
        turn_id: row.text("turn_id")?,
        artifact_key: row.text("artifact_key")?,
        revision: row.int("revision")?,
        kind: row.text("kind")?,
        title: row.opt_text("title")?,
        language: row.opt_text("language")?,
        content: row.text("content")?,
        created_at: Timestamp(row.int("created_at")?),
    })
}
