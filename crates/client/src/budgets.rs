//! Budget caps: `client.budgets()` — list caps, read where they stand, and (operators) set,
//! change, delete and override them.

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::platos::{field, required};
use crate::{Client, Error, Result};

/// A budget cap, as the server shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetCap {
    /// `cap_…`
    pub id: String,
    /// `scope`, `agent` or `user`.
    pub scope_type: String,
    /// `""` (scope), the agent id, the user id, or `*` (each user on their own).
    #[serde(default)]
    pub target_id: String,
    /// `hour`, `day`, `week` or `month` (UTC windows).
    pub period: String,
    /// Spend allowed per window, in cents.
    pub limit_cents: f64,
    /// Turns allowed per window.
    #[serde(default)]
    pub turns_limit: Option<i64>,
    /// Alert thresholds, in percent of the limit.
    #[serde(default)]
    pub alert_thresholds: Vec<u32>,
    /// Where alerts are POSTed.
    #[serde(default)]
    pub alert_webhook_url: Option<String>,
    /// Whether it counts and blocks.
    #[serde(default)]
    pub enabled: bool,
    /// Until when an operator lifted its block.
    #[serde(default)]
    pub override_until: Option<String>,
}

/// A cap to create or change.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewBudgetCap {
    /// `scope`, `agent` or `user`.
    pub scope_type: String,
    /// The agent or user id (or `*`); empty for a scope cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    /// `hour`, `day`, `week` or `month`.
    pub period: String,
    /// Spend allowed per window, in cents.
    pub limit_cents: f64,
    /// Turns allowed per window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turns_limit: Option<i64>,
    /// Alert thresholds in percent (default 50, 80, 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_thresholds: Option<Vec<u32>>,
    /// Where alerts are POSTed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_webhook_url: Option<String>,
    /// Whether it counts and blocks (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// Where one cap stands in its current window.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapStatus {
    /// The cap.
    pub cap: BudgetCap,
    /// The window, e.g. `2026-12-03`.
    pub window_key: String,
    /// Spend in the window, in cents.
    pub spent_cents: f64,
    /// Reserved by calls in flight, in cents.
    pub reserved_cents: f64,
    /// Turns started in the window.
    pub turns: i64,
    /// (Spent + reserved) in percent of the limit.
    pub percent: f64,
    /// Thresholds the spend has crossed.
    #[serde(default)]
    pub crossed_thresholds: Vec<u32>,
    /// Whether it blocks a turn now.
    pub blocked: bool,
    /// Whether an operator lifted its block.
    pub override_active: bool,
}

/// What the caps that apply say now.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BudgetStatus {
    /// Each cap that applies.
    pub caps: Vec<CapStatus>,
    /// Whether a turn would be refused now.
    pub blocked: bool,
    /// Why, when it would.
    #[serde(default)]
    pub reason: Option<String>,
}

/// The budget namespace ([`Client::budgets`]).
pub struct Budgets<'c> {
    pub(crate) client: &'c Client,
}

impl Budgets<'_> {
    /// The caps of the scope (an end user: those that apply to them).
    pub async fn list(&self) -> Result<Vec<BudgetCap>> {
        let body: Value = required(self.client.call(Method::GET, "/api/v1/agent/budgets", None).await)?;
        field(body, "caps")
    }

    /// Where the caps that apply to `agent_id` and `user_id` stand (an end user: their own).
    pub async fn status(&self, agent_id: Option<&str>, user_id: Option<&str>) -> Result<BudgetStatus> {
        let mut query = Vec::new();
        if let Some(agent) = agent_id {
            query.push(format!("agentId={}", crate::platos::encode(agent)));
        }
        if let Some(user) = user_id {
            query.push(format!("userId={}", crate::platos::encode(user)));
        }
        let path = format!("/api/v1/agent/budgets/status?{}", query.join("&"));
        required(self.client.call(Method::GET, &path, None).await)
    }

    /// Creates a cap, or replaces the one with the same scope type, target and period
    /// (operators).
    pub async fn set(&self, cap: &NewBudgetCap) -> Result<BudgetCap> {
        let body = serde_json::to_value(cap).map_err(|e| Error::Protocol(e.to_string()))?;
        let answer: Value = required(self.client.call(Method::POST, "/api/v1/agent/budgets", Some(&body)).await)?;
        field(answer, "cap")
    }

    /// Changes a cap (operators).
    pub async fn update(&self, cap_id: &str, cap: &NewBudgetCap) -> Result<BudgetCap> {
        let body = serde_json::to_value(cap).map_err(|e| Error::Protocol(e.to_string()))?;
        let path = format!("/api/v1/agent/budgets/{}", crate::platos::encode(cap_id));
        let answer: Value = required(self.client.call(Method::PUT, &path, Some(&body)).await)?;
        field(answer, "cap")
    }

    /// Deletes a cap (operators); false when it did not exist.
    pub async fn delete(&self, cap_id: &str) -> Result<bool> {
        let path = format!("/api/v1/agent/budgets/{}", crate::platos::encode(cap_id));
        match self.client.call::<Value>(Method::DELETE, &path, None).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// Lifts a cap's block for `minutes` (0 restores it) (operators).
    pub async fn override_for(&self, cap_id: &str, minutes: u32) -> Result<BudgetCap> {
        let path = format!("/api/v1/agent/budgets/{}/override", crate::platos::encode(cap_id));
        let body = serde_json::json!({ "minutes": minutes });
        let answer: Value = required(self.client.call(Method::POST, &path, Some(&body)).await)?;
        field(answer, "cap")
    }
}
