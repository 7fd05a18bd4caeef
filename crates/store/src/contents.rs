//! Content items of messages, in order.

use agentry_core::{ContentItem, Scope, Timestamp};

use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

/// Inserts content items on an open transaction (a macro: compiled for each backend). `$encoded`
/// is [`encode_contents`]' result.
macro_rules! insert_contents {
    ($conn:expr, $scope:expr, $thread_id:expr, $items:expr, $encoded:expr) => {{
        let scope = $scope;
        for (position, (item, content)) in $items.iter().zip($encoded.iter()).enumerate() {
            sqlx::query(
                "INSERT INTO message_contents (id, message_id, thread_id, organization_id, project_id, environment_id,
                    position, content_type, ui_content_type, content_json, user_visibility, created_by_invocation_id,
                    created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&item.id)
            .bind(&item.message_id)
            .bind($thread_id)
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .bind(&item.content_type)
            .bind(&item.ui_content_type)
            .bind(content)
            .bind(&item.user_visibility)
            .bind(&item.created_by_invocation_id)
            .bind(item.created_at.0)
            .execute($conn)
            .await?;
        }
    }};
}
pub(crate) use insert_contents;

impl Store {
    /// Appends content items to their messages (positions follow the order given).
    pub async fn insert_contents(&self, scope: &Scope, thread_id: &str, items: &[ContentItem]) -> StoreResult<()> {
        let encoded = encode_contents(items)?;
        on_writer!(self, |pool| {
            let mut tx = pool.begin().await?;
            insert_contents!(&mut *tx, scope, thread_id, items, encoded);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every content item of a thread's messages, by message and position.
    pub async fn thread_contents(&self, scope: &Scope, thread_id: &str) -> StoreResult<Vec<ContentItem>> {
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT id, message_id, content_type, ui_content_type, content_json, user_visibility,
                        created_by_invocation_id, created_at
                 FROM message_contents
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND thread_id = $4
                 ORDER BY message_id, position",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(thread_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(ContentItem {
                    id: row.text("id")?,
                    message_id: row.text("message_id")?,
                    content_type: row.text("content_type")?,
                    ui_content_type: row.opt_text("ui_content_type")?,
                    content: serde_json::from_str(&row.text("content_json")?)
                        .map_err(|e| StoreError::Corrupt(format!("content item: {e}")))?,
                    user_visibility: row.text("user_visibility")?,
                    created_by_invocation_id: row.text("created_by_invocation_id")?,
                    created_at: Timestamp(row.int("created_at")?),
                })
            })
            .collect()
        })
    }
}

/// The stored form of each item's content.
pub(crate) fn encode_contents(items: &[ContentItem]) -> StoreResult<Vec<String>> {
    items.iter().map(|i| serde_json::to_string(&i.content).map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
}
