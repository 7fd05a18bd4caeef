//! Approvals: the durable waitpoints of turns.
//!
//! A pending row changes state exactly once ([`Store::settle_approval`] only moves `pending`
//! rows), so of several concurrent resolutions exactly one wins.

use agentry_core::{Approval, ApprovalStatus, Scope, Timestamp};
use serde_json::Value;

use crate::row::RowExt;
use crate::{Store, StoreError, StoreResult, on_pool, on_writer};

const COLUMNS: &str = "id, organization_id, project_id, environment_id, turn_id, thread_id, agent_id, requested_by,
    tool_name, call_id, action, details_json, args_json, status, timeout_secs, created_at, deadline_at,
    resolved_at, responded_by, comment, edited_args_json";

/// Which approvals to list.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter<'a> {
    /// Only this status.
    pub status: Option<ApprovalStatus>,
    /// Only this agent's.
    pub agent_id: Option<&'a str>,
    /// Only this thread's.
    pub thread_id: Option<&'a str>,
    /// Only those this user's turns requested (end users see only their own).
    pub requested_by: Option<&'a str>,
    /// Page size.
    pub limit: i64,
    /// Rows skipped.
    pub offset: i64,
}

/// How an approval is settled.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement<'a> {
    /// The final status (not `pending`).
    pub status: ApprovalStatus,
    /// Who decided.
    pub responded_by: &'a str,
    /// Comment or reason.
    pub comment: Option<&'a str>,
    /// Replacement arguments.
    pub edited_args: Option<&'a Value>,
}

impl Store {
    /// Records a new pending approval.
    pub async fn insert_approval(&self, approval: &Approval) -> StoreResult<()> {
        let details = json_text(&approval.details)?;
        let args = json_text(&approval.args)?;
        let edited = approval.edited_args.as_ref().map(json_text).transpose()?;
        on_writer!(self, |pool| {
            let sql = format!(
                "INSERT INTO approvals ({COLUMNS}) VALUES
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&approval.id)
                .bind(&approval.scope.organization_id)
                .bind(&approval.scope.project_id)
                .bind(&approval.scope.environment_id)
                .bind(&approval.turn_id)
                .bind(&approval.thread_id)
                .bind(&approval.agent_id)
                .bind(&approval.requested_by)
                .bind(&approval.tool_name)
                .bind(&approval.call_id)
                .bind(&approval.action)
                .bind(&details)
                .bind(&args)
                .bind(approval.status.as_str())
                .bind(i64::try_from(approval.timeout_secs).unwrap_or(i64::MAX))
                .bind(approval.created_at.0)
                .bind(approval.deadline_at.0)
                .bind(approval.resolved_at.map(|t| t.0))
                .bind(&approval.responded_by)
                .bind(&approval.comment)
                .bind(&edited)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// One approval of the scope.
    pub async fn get_approval(&self, scope: &Scope, id: &str) -> StoreResult<Option<Approval>> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {COLUMNS} FROM approvals
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .as_ref()
                .map(approval_from_row)
                .transpose()
        })
    }

    /// Approvals of the scope, newest first, with the total matching and the number pending
    /// (under the same filter but whatever the status asked for: a badge count).
    pub async fn list_approvals(
        &self,
        scope: &Scope,
        filter: &ApprovalFilter<'_>,
    ) -> StoreResult<(Vec<Approval>, i64, i64)> {
        let status = filter.status.map(ApprovalStatus::as_str);
        let condition = "organization_id = $1 AND project_id = $2 AND environment_id = $3
            AND ($4 IS NULL OR status = $4) AND ($5 IS NULL OR agent_id = $5)
            AND ($6 IS NULL OR thread_id = $6) AND ($7 IS NULL OR requested_by = $7)";
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {COLUMNS} FROM approvals WHERE {condition} ORDER BY created_at DESC, id DESC LIMIT $8 OFFSET $9"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(status)
                .bind(filter.agent_id)
                .bind(filter.thread_id)
                .bind(filter.requested_by)
                .bind(filter.limit)
                .bind(filter.offset)
                .fetch_all(pool)
                .await?
                .iter()
                .map(approval_from_row)
                .collect::<StoreResult<Vec<_>>>()?;
            let sql = "SELECT COALESCE(SUM(CASE WHEN $4 IS NULL OR status = $4 THEN 1 ELSE 0 END), 0) AS total,
                       COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0) AS pending
                FROM approvals
                WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3
                  AND ($5 IS NULL OR agent_id = $5) AND ($6 IS NULL OR thread_id = $6) AND ($7 IS NULL OR requested_by = $7)";
            let counts = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(status)
                .bind(filter.agent_id)
                .bind(filter.thread_id)
                .bind(filter.requested_by)
                .fetch_one(pool)
                .await?;
            Ok((rows, counts.int("total")?, counts.int("pending")?))
        })
    }

    /// The approvals a turn created, oldest first.
    pub async fn approvals_of_turn(&self, scope: &Scope, turn_id: &str) -> StoreResult<Vec<Approval>> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {COLUMNS} FROM approvals
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND turn_id = $4
                 ORDER BY created_at, id"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(&scope.organization_id)
                .bind(&scope.project_id)
                .bind(&scope.environment_id)
                .bind(turn_id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(approval_from_row)
                .collect()
        })
    }

    /// Pending approvals of every scope whose deadline has passed (for the timeout sweep).
    pub async fn overdue_approvals(&self, now: Timestamp) -> StoreResult<Vec<Approval>> {
        on_pool!(self, |pool| {
            let sql = format!(
                "SELECT {COLUMNS} FROM approvals WHERE status = 'pending' AND deadline_at <= $1 ORDER BY deadline_at"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(now.0)
                .fetch_all(pool)
                .await?
                .iter()
                .map(approval_from_row)
                .collect()
        })
    }

    /// Moves a pending approval to its final state. Returns false when it was not pending (it
    /// was settled already, or does not exist in this scope).
    pub async fn settle_approval(&self, scope: &Scope, id: &str, settlement: &Settlement<'_>) -> StoreResult<bool> {
        let edited = settlement.edited_args.map(json_text).transpose()?;
        let changed = on_writer!(self, |pool| {
            sqlx::query(
                "UPDATE approvals SET status = $5, resolved_at = $6, responded_by = $7, comment = $8, edited_args_json = $9
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND id = $4 AND status = 'pending'",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(id)
            .bind(settlement.status.as_str())
            .bind(Timestamp::now().0)
            .bind(settlement.responded_by)
            .bind(settlement.comment)
            .bind(&edited)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }
}

fn json_text(value: &Value) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn json_value(text: &str, what: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("approval {what}: {e}")))
}

fn approval_from_row(row: &impl RowExt) -> StoreResult<Approval> {
    let status = row.text("status")?;
    Ok(Approval {
        id: row.text("id")?,
        scope: Scope::new(row.text("organization_id")?, row.text("project_id")?, row.text("environment_id")?),
        turn_id: row.text("turn_id")?,
        thread_id: row.text("thread_id")?,
        agent_id: row.text("agent_id")?,
        requested_by: row.text("requested_by")?,
        tool_name: row.text("tool_name")?,
        call_id: row.text("call_id")?,
        action: row.text("action")?,
        details: json_value(&row.text("details_json")?, "details")?,
        args: json_value(&row.text("args_json")?, "args")?,
        status: ApprovalStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("approval status `{status}`")))?,
        timeout_secs: u64::try_from(row.int("timeout_secs")?).unwrap_or(0),
        created_at: Timestamp(row.int("created_at")?),
        deadline_at: Timestamp(row.int("deadline_at")?),
        resolved_at: row.opt_int("resolved_at")?.map(Timestamp),
        responded_by: row.opt_text("responded_by")?,
        comment: row.opt_text("comment")?,
        edited_args: row.opt_text("edited_args_json")?.map(|t| json_value(&t, "edited args")).transpose()?,
    })
}
