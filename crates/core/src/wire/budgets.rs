//! Budget caps and their status (`/budgets/*`, `/monitoring/budget/*`).

use serde::{Deserialize, Serialize};

use crate::budget::BudgetCap as StoredCap;
use crate::time::Timestamp;

/// A spending cap in the names of both client generations (`turnsLimit` is also `runsLimit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetCap {
    /// `bud_…`
    pub id: String,
    /// Its organization.
    pub organization_id: String,
    /// Its project.
    pub project_id: String,
    /// Its environment.
    pub environment_id: String,
    /// What it counts: `scope` (everything), `agent` or `user`.
    pub scope_type: String,
    /// The agent or user id (`*`: each user separately); empty for `scope`.
    pub target_id: String,
    /// `hour`, `day`, `week` or `month` (UTC windows).
    pub period: String,
    /// The most a window may spend, in cents.
    pub limit_cents: f64,
    /// The same, exact.
    pub limit_micro_cents: i64,
    /// The most turns a window may run.
    pub turns_limit: Option<i64>,
    /// The same, as the 0.1.x clients name it.
    pub runs_limit: Option<i64>,
    /// Percentages of the limit that raise an alert.
    pub alert_thresholds: Vec<u32>,
    /// Where alerts are posted.
    pub alert_webhook_url: Option<String>,
    /// Who alerts name.
    pub alert_emails: Vec<String>,
    /// Whether it counts and blocks.
    pub enabled: bool,
    /// Turns pass it until then.
    pub override_until: Option<Timestamp>,
    /// Who set the override.
    pub override_by: Option<String>,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl BudgetCap {
    /// The view of a stored cap.
    pub fn of(cap: &StoredCap) -> BudgetCap {
        BudgetCap {
            id: cap.id.clone(),
            organization_id: cap.scope.organization_id.clone(),
            project_id: cap.scope.project_id.clone(),
            environment_id: cap.scope.environment_id.clone(),
            scope_type: cap.scope_type.as_str().to_owned(),
            target_id: cap.target_id.clone(),
            period: cap.period.as_str().to_owned(),
            limit_cents: cap.limit.as_cents(),
            limit_micro_cents: cap.limit.0,
            turns_limit: cap.turns_limit,
            runs_limit: cap.turns_limit,
            alert_thresholds: cap.alert_thresholds.clone(),
            alert_webhook_url: cap.alert_webhook_url.clone(),
            alert_emails: cap.alert_emails.clone(),
            enabled: cap.enabled,
            override_until: cap.override_until,
            override_by: cap.override_by.clone(),
            created_at: cap.created_at,
            updated_at: cap.updated_at,
        }
    }
}

/// `GET /budgets`: the caps the caller may see.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetCapList {
    /// The caps.
    pub caps: Vec<BudgetCap>,
    /// When it was read.
    pub fetched_at: Timestamp,
}

/// A cap that was created, changed or overridden.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetCapAnswer {
    /// The cap as stored.
    pub cap: BudgetCap,
}

/// The body of `POST /budgets` and `PUT /budgets/{cap_id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewBudgetCap {
    /// `scope`, `agent` or `user`.
    pub scope_type: String,
    /// The agent or user id (`*`: each user separately); none for `scope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// `hour`, `day`, `week` or `month`.
    pub period: String,
    /// The most a window may spend, in cents.
    pub limit_cents: f64,
    /// The most turns a window may run (`runsLimit` also accepted).
    #[serde(default, alias = "runsLimit", skip_serializing_if = "Option::is_none")]
    pub turns_limit: Option<i64>,
    /// Percentages of the limit that raise an alert (default 50, 80, 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_thresholds: Option<Vec<u32>>,
    /// Where alerts are posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_webhook_url: Option<String>,
    /// Who alerts name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_emails: Option<Vec<String>>,
    /// Whether it counts and blocks (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// The body of `POST /budgets/{cap_id}/override`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CapOverride {
    /// Let turns through for this many minutes (at most 10080; 0 restores the cap).
    pub minutes: u32,
}

/// Where one cap stands in its current window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CapStatus {
    /// The cap.
    pub cap: BudgetCap,
    /// The window (`2026-12-04`, `2026-W49`, …).
    pub window_key: String,
    /// The user a per-user (`*`) cap counts here; empty otherwise.
    pub subject: String,
    /// Spent in the window, in cents.
    pub spent_cents: f64,
    /// Held by calls in flight, in cents.
    pub reserved_cents: f64,
    /// Spent, exact.
    pub spent_micro_cents: i64,
    /// Held, exact.
    pub reserved_micro_cents: i64,
    /// Turns counted in the window.
    pub turns: i64,
    /// The same, as the 0.1.x clients name it.
    pub runs: i64,
    /// Spent and held, as a percentage of the limit.
    pub percent: f64,
    /// Turns as a percentage of the turn limit.
    pub runs_percent: Option<f64>,
    /// The alert thresholds passed.
    pub crossed_thresholds: Vec<u32>,
    /// Whether it blocks a turn now.
    pub blocked: bool,
    /// Whether an override lets turns through.
    pub override_active: bool,
}

/// `GET /budgets/status`: each cap that applies and whether a turn would be blocked now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BudgetStatus {
    /// The caps.
    pub caps: Vec<CapStatus>,
    /// Whether a turn would be blocked now.
    pub blocked: bool,
    /// Which cap blocks, and why.
    pub reason: Option<String>,
}
