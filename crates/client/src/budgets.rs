//! Budget caps: `client.budgets()` — list caps, read where they stand, and (operators) set,
//! change, delete and override them.

pub use agentry_core::wire::budgets::{
    BudgetCap, BudgetCapAnswer, BudgetCapList, BudgetStatus, CapOverride, CapStatus, NewBudgetCap,
};
use reqwest::Method;
use serde_json::Value;

use crate::platos::required;
use crate::{Client, Error, Result};

/// The budget namespace ([`Client::budgets`]).
pub struct Budgets<'c> {
    pub(crate) client: &'c Client,
}

impl Budgets<'_> {
    /// The caps of the scope (an end user: those that apply to them).
    pub async fn list(&self) -> Result<Vec<BudgetCap>> {
        let list: BudgetCapList = required(self.client.call(Method::GET, "/api/v1/agent/budgets", None).await)?;
        Ok(list.caps)
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
        let answer: BudgetCapAnswer =
            required(self.client.call(Method::POST, "/api/v1/agent/budgets", Some(&body)).await)?;
        Ok(answer.cap)
    }

    /// Changes a cap (operators).
    pub async fn update(&self, cap_id: &str, cap: &NewBudgetCap) -> Result<BudgetCap> {
        let body = serde_json::to_value(cap).map_err(|e| Error::Protocol(e.to_string()))?;
        let path = format!("/api/v1/agent/budgets/{}", crate::platos::encode(cap_id));
        let answer: BudgetCapAnswer = required(self.client.call(Method::PUT, &path, Some(&body)).await)?;
        Ok(answer.cap)
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
        let body = serde_json::to_value(CapOverride { minutes }).map_err(|e| Error::Protocol(e.to_string()))?;
        let answer: BudgetCapAnswer = required(self.client.call(Method::POST, &path, Some(&body)).await)?;
        Ok(answer.cap)
    }
}
