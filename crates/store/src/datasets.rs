//! Dataset metadata (slug, owner, columns); the rows are stored by `agentry-datasets`.

use agentry_core::{Scope, Timestamp};
use serde_json::Value;

use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

/// A dataset as recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRecord {
    /// `dst_…`; also the name of its rows' file.
    pub id: String,
    /// Scope it belongs to.
    pub scope: Scope,
    /// Unique within the scope; how clients and agents name it.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// The thread it was attached to, if any.
    pub thread_id: Option<String>,
    /// Who uploaded it.
    pub created_by: String,
    /// Columns: `[{name, value_type}]`.
    pub columns: Value,
    /// Rows stored.
    pub row_count: i64,
    /// `csv` or `json`: the format of the uploaded source.
    pub format: String,
    /// Upload time.
    pub created_at: Timestamp,
}

const COLUMNS: &str =
    "id, organization_id, project_id, environment_id, slug, name, thread_id, created_by, columns_json,
    row_count, format, created_at";

impl Store {
    /// Records a dataset with its uploaded text. Fails if the slug is taken in the scope.
    pub async fn insert_dataset(&self, dataset: &DatasetRecord, source: &str) -> StoreResult<()> {
        let columns = serde_json::to_string(&dataset.columns).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        on_writer!(self, |pool| {
            let sql = format!(
                "INSERT INTO datasets ({COLUMNS}, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&dataset.id)
                .bind(&dataset.scope.organization_id)
                .bind(&dataset.scope.project_id)
                .bind(&dataset.scope.environment_id)
                .bind(&dataset.slug)
                .bind(&dataset.name)
                .bind(&dataset.thread_id)
                .bind(&dataset.created_by)
                .bind(&columns)
                .bind(dataset.row_count)
                .bind(&dataset.format)
                .bind(dataset.created_at.0)
                .bind(source)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// A dataset of the scope by slug or id.
    pub async fn get_dataset(&self, scope: &Scope, slug_or_id: &str) -> StoreResult<Option<DatasetRecord>> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {COLUMNS} FROM datasets
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND (slug = $4 OR id = $4)
                 ORDER BY created_at LIMIT 1"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(slug_or_id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(dataset_from_row)
                .transpose()
        })
    }

    /// The uploaded text of a dataset of the scope.
    pub async fn dataset_source(&self, scope: &Scope, id: &str) -> StoreResult<Option<String>> {
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT source FROM datasets
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(|row| row.text("source"))
            .transpose()
        })
    }

    /// The scope's datasets, newest first.
    pub async fn list_datasets(&self, scope: &Scope) -> StoreResult<Vec<DatasetRecord>> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {COLUMNS} FROM datasets
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3
                 ORDER BY created_at DESC, id DESC"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(dataset_from_row)
                .collect()
        })
    }
}

impl Store {
    /// Attaches datasets to a thread of the scope (both must be of the scope; the caller checks).
    pub async fn attach_datasets(&self, thread_id: &str, dataset_ids: &[String]) -> StoreResult<()> {
        on_writer!(self, |pool| {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            for dataset_id in dataset_ids {
                sqlx::query(
                    "INSERT INTO thread_datasets (thread_id, dataset_id) VALUES ($1, $2)
                     ON CONFLICT (thread_id, dataset_id) DO NOTHING",
                )
                .bind(thread_id)
                .bind(dataset_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// The datasets (ids) attached to a thread of the scope (at upload or with `attach_datasets`).
    pub async fn thread_dataset_ids(&self, scope: &Scope, thread_id: &str) -> StoreResult<Vec<String>> {
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT d.dataset_id AS id FROM thread_datasets d JOIN threads t ON t.id = d.thread_id
                 WHERE t.organization_id = $1 AND t.project_id = $2 AND t.environment_id = $3 AND t.id = $4
                 UNION
                 SELECT id FROM datasets
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND thread_id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(thread_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| row.text("id"))
            .collect()
        })
    }

    /// The threads of the scope a dataset is attached to (by upload or by `attach_datasets`).
    pub async fn dataset_threads(&self, scope: &Scope, dataset_id: &str) -> StoreResult<Vec<String>> {
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT t.id FROM threads t JOIN thread_datasets d ON d.thread_id = t.id
                 WHERE t.organization_id = $1 AND t.project_id = $2 AND t.environment_id = $3 AND d.dataset_id = $4
                 UNION
                 SELECT thread_id AS id FROM datasets
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4
                   AND thread_id IS NOT NULL",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(dataset_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| row.text("id"))
            .collect()
        })
    }
}

fn dataset_from_row(row: &impl RowExt) -> StoreResult<DatasetRecord> {
    Ok(DatasetRecord {
        id: row.text("id")?,
        scope: Scope::new(row.text("organization_id")?, row.text("project_id")?, row.text("environment_id")?),
        slug: row.text("slug")?,
        name: row.text("name")?,
        thread_id: row.opt_text("thread_id")?,
        created_by: row.text("created_by")?,
        columns: serde_json::from_str(&row.text("columns_json")?)
            .map_err(|e| StoreError::Corrupt(format!("dataset columns: {e}")))?,
        row_count: row.int("row_count")?,
        format: row.text("format")?,
        created_at: Timestamp(row.int("created_at")?),
    })
}
