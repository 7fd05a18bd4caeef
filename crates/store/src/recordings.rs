//! Recorded invocations (the Erdo `replay` mode), by request key within a scope.

use agentry_core::{Scope, Timestamp, TurnEvent};

use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

impl Store {
    /// The events recorded for a request, if any.
    pub async fn recording(&self, scope: &Scope, request_key: &str) -> StoreResult<Option<Vec<TurnEvent>>> {
        let text: Option<String> = on_pool!(self, |pool| {
            sqlx::query(
                "SELECT events_json FROM invocation_recordings
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND request_key = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(request_key)
            .fetch_optional(pool)
            .await?
            .map(|row| row.text("events_json"))
            .transpose()
        })?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(format!("recording: {e}")))).transpose()
    }

    /// Records (or re-records) the events of a request.
    pub async fn save_recording(&self, scope: &Scope, request_key: &str, events: &[TurnEvent]) -> StoreResult<()> {
        let text = serde_json::to_string(events).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        on_writer!(self, |pool| {
            sqlx::query(
                "INSERT INTO invocation_recordings (organization_id, project_id, environment_id, request_key, events_json, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (organization_id, project_id, environment_id, request_key)
                 DO UPDATE SET events_json = excluded.events_json, recorded_at = excluded.recorded_at",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(request_key)
            .bind(&text)
            .bind(Timestamp::now().0)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}
