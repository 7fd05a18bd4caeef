//! Budget caps per scope: what a scope, an agent or a user may spend (and how many turns they
//! may start) per window. What the caps counted is in [`crate::budget_windows`].

use agentry_core::budget::CapScope;
use agentry_core::{BudgetCap, MicroCents, Period, Scope, Timestamp};
use serde::Serialize;

use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

/// Binds a cap's fields in `CAP_COLUMNS` order (`$1`–`$17`), with its thresholds and emails as
/// stored JSON.
macro_rules! bind_cap {
    ($query:expr, $cap:expr, $thresholds:expr, $emails:expr) => {{
        let cap: &BudgetCap = $cap;
        $query
            .bind(&cap.id)
            .bind(&cap.scope.organization_id)
            .bind(&cap.scope.project_id)
            .bind(&cap.scope.environment_id)
            .bind(cap.scope_type.as_str())
            .bind(&cap.target_id)
            .bind(cap.period.as_str())
            .bind(cap.limit.0)
            .bind(cap.turns_limit)
            .bind(&$thresholds)
            .bind(&cap.alert_webhook_url)
            .bind(&$emails)
            .bind(i64::from(cap.enabled))
            .bind(cap.override_until.map(|t| t.0))
            .bind(&cap.override_by)
            .bind(cap.created_at.0)
            .bind(cap.updated_at.0)
    }};
}

const CAP_COLUMNS: &str = "id, organization_id, project_id, environment_id, scope_type, target_id, period,
    limit_micro_cents, turns_limit, alert_thresholds_json, alert_webhook_url, alert_emails_json, enabled,
    override_until, override_by, created_at, updated_at";

impl Store {
    /// Creates a cap, or replaces the one with the same scope type, target and period; returns it
    /// as stored.
    pub async fn upsert_budget_cap(&self, cap: &BudgetCap) -> StoreResult<BudgetCap> {
        let (thresholds, emails) = (json_list(&cap.alert_thresholds), json_list(&cap.alert_emails));
        on_writer!(self, |pool| {
            let sql = format!(
                "INSERT INTO budget_caps ({CAP_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
                 ON CONFLICT (organization_id, project_id, environment_id, scope_type, target_id, period) DO UPDATE SET
                    limit_micro_cents = excluded.limit_micro_cents, turns_limit = excluded.turns_limit,
                    alert_thresholds_json = excluded.alert_thresholds_json,
                    alert_webhook_url = excluded.alert_webhook_url, alert_emails_json = excluded.alert_emails_json,
                    enabled = excluded.enabled, updated_at = excluded.updated_at"
            );
            bind_cap!(sqlx::query(sqlx::AssertSqlSafe(sql)), cap, thresholds, emails).execute(pool).await?;
        });
        let sql = format!(
            "SELECT {CAP_COLUMNS} FROM budget_caps
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3
               AND scope_type = $4 AND target_id = $5 AND period = $6"
        );
        on_writer!(self, |pool| {
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&cap.scope.organization_id)
                .bind(&cap.scope.project_id)
                .bind(&cap.scope.environment_id)
                .bind(cap.scope_type.as_str())
                .bind(&cap.target_id)
                .bind(cap.period.as_str())
                .fetch_one(pool)
                .await?;
            cap_from_row(&row)
        })
    }

    /// Changes a cap of a scope by id (its scope type, target and period too); returns it, or
    /// `None` when it does not exist. Another cap with the same scope type, target and period is
    /// a unique violation.
    pub async fn update_budget_cap(&self, cap: &BudgetCap) -> StoreResult<Option<BudgetCap>> {
        let (thresholds, emails) = (json_list(&cap.alert_thresholds), json_list(&cap.alert_emails));
        let changed = on_writer!(self, |pool| {
            // The parameters are `CAP_COLUMNS` in order; creation and override columns stay.
            let update = sqlx::query(
                "UPDATE budget_caps SET scope_type = $5, target_id = $6, period = $7, limit_micro_cents = $8,
                    turns_limit = $9, alert_thresholds_json = $10, alert_webhook_url = $11, alert_emails_json = $12,
                    enabled = $13, updated_at = $17
                 WHERE id = $1 AND organization_id = $2 AND project_id = $3 AND environment_id = $4",
            );
            bind_cap!(update, cap, thresholds, emails).execute(pool).await?.rows_affected()
        });
        if changed == 0 {
            return Ok(None);
        }
        self.get_budget_cap(&cap.scope, &cap.id).await
    }

    /// The caps of a scope, oldest first.
    pub async fn list_budget_caps(&self, scope: &Scope) -> StoreResult<Vec<BudgetCap>> {
        let sql = format!(
            "SELECT {CAP_COLUMNS} FROM budget_caps
             WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 ORDER BY created_at, id"
        );
        on_pool!(self, |pool| {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(cap_from_row)
                .collect()
        })
    }

    /// One cap of a scope.
    pub async fn get_budget_cap(&self, scope: &Scope, id: &str) -> StoreResult<Option<BudgetCap>> {
        Ok(self.list_budget_caps(scope).await?.into_iter().find(|c| c.id == id))
    }

    /// Deletes a cap of a scope (and what it counted); returns whether it existed.
    pub async fn delete_budget_cap(&self, scope: &Scope, id: &str) -> StoreResult<bool> {
        let deleted = on_writer!(self, |pool| {
            let mut tx = pool.begin_with(self.db.begin_write()).await?;
            let deleted = sqlx::query(
                "DELETE FROM budget_caps
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if deleted == 1 {
                sqlx::query("DELETE FROM budget_windows WHERE cap_id = $1").bind(id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            deleted
        });
        Ok(deleted == 1)
    }

    /// Lifts (until `until`) or restores (`None`) a cap's block; returns the cap, if it exists.
    pub async fn set_budget_override(
        &self,
        scope: &Scope,
        id: &str,
        until: Option<Timestamp>,
        by: &str,
    ) -> StoreResult<Option<BudgetCap>> {
        let changed = on_writer!(self, |pool| {
            sqlx::query(
                "UPDATE budget_caps SET override_until = $5, override_by = $6, updated_at = $7
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(id)
            .bind(until.map(|t| t.0))
            .bind(until.map(|_| by))
            .bind(Timestamp::now().0)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if changed == 0 {
            return Ok(None);
        }
        self.get_budget_cap(scope, id).await
    }
}

fn cap_from_row(row: &impl RowExt) -> StoreResult<BudgetCap> {
    let text = |column: &str| row.text(column);
    let corrupt = |what: &str, value: String| StoreError::Corrupt(format!("budget cap {what} `{value}`"));
    let scope_type = text("scope_type")?;
    let period = text("period")?;
    Ok(BudgetCap {
        id: text("id")?,
        scope: Scope::new(text("organization_id")?, text("project_id")?, text("environment_id")?),
        scope_type: CapScope::parse(&scope_type).ok_or_else(|| corrupt("scope type", scope_type.clone()))?,
        target_id: text("target_id")?,
        period: Period::parse(&period).ok_or_else(|| corrupt("period", period.clone()))?,
        limit: MicroCents(row.int("limit_micro_cents")?),
        turns_limit: row.opt_int("turns_limit")?,
        alert_thresholds: serde_json::from_str(&text("alert_thresholds_json")?).unwrap_or_default(),
        alert_webhook_url: row.opt_text("alert_webhook_url")?,
        alert_emails: serde_json::from_str(&text("alert_emails_json")?).unwrap_or_default(),
        enabled: row.int("enabled")? != 0,
        override_until: row.opt_int("override_until")?.map(Timestamp),
        override_by: row.opt_text("override_by")?,
        created_at: Timestamp(row.int("created_at")?),
        updated_at: Timestamp(row.int("updated_at")?),
    })
}

/// The stored JSON text of a small list.
fn json_list<T: Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}
