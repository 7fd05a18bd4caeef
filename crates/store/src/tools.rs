//! Tool switches, the tool-call ledger behind health counters, and the safety-event ledger.

use std::collections::BTreeMap;

use agentry_core::{Scope, Timestamp};

use crate::row::RowExt;
use crate::{Store, StoreResult, on_pool, on_writer};

/// A tool as `(entity, name)`: entity `builtin`, `http:<agent>` or `mcp:<server>`.
pub type ToolKey = (String, String);

/// One finished tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCallRecord<'a> {
    /// The tool's entity.
    pub entity_id: &'a str,
    /// The tool's name.
    pub tool_name: &'a str,
    /// The turn that called it (none for operator tests).
    pub turn_id: Option<&'a str>,
    /// Whether it succeeded.
    pub ok: bool,
    /// How long it took.
    pub latency_ms: i64,
    /// The failure, if any.
    pub error: Option<&'a str>,
}

/// Health counters of one tool.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolHealth {
    /// Calls recorded.
    pub total_calls: i64,
    /// Failed calls.
    pub fail_count: i64,
    /// Mean latency.
    pub avg_latency_ms: f64,
    /// 95th percentile latency over the recent calls.
    pub p95_latency_ms: i64,
    /// When it was last called.
    pub last_called_at: Option<Timestamp>,
    /// `ok` or `error` for the last call.
    pub last_status: Option<&'static str>,
}

/// One safety detector hit.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetyEvent {
    /// Thread of the turn.
    pub thread_id: String,
    /// The turn.
    pub turn_id: String,
    /// Its agent.
    pub agent_id: String,
    /// `input` or `output`.
    pub direction: String,
    /// `flag`, `redact` or `block`.
    pub action: String,
    /// `pii`, `injection`, …
    pub flag_type: String,
    /// `low`, `medium`, `high`.
    pub severity: String,
    /// Human explanation.
    pub detail: String,
    /// When it was recorded.
    pub created_at: Timestamp,
}

/// Latencies of the most recent calls per tool that the p95 is computed over.
const HEALTH_WINDOW: usize = 500;

impl Store {
    /// Switches a tool on or off in a scope.
    pub async fn set_tool_enabled(
        &self,
        scope: &Scope,
        entity_id: &str,
        tool_name: &str,
        enabled: bool,
    ) -> StoreResult<()> {
        on_writer!(self, |pool| {
            sqlx::query(
                "INSERT INTO tool_settings (organization_id, project_id, environment_id, entity_id, tool_name, enabled, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (organization_id, project_id, environment_id, entity_id, tool_name)
                 DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(entity_id)
            .bind(tool_name)
            .bind(i64::from(enabled))
            .bind(Timestamp::now().0)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The tools switched off in a scope.
    pub async fn disabled_tools(&self, scope: &Scope) -> StoreResult<Vec<ToolKey>> {
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT entity_id, tool_name FROM tool_settings
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3 AND enabled = 0",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok((row.text("entity_id")?, row.text("tool_name")?)))
            .collect()
        })
    }

    /// Records a finished tool call.
    pub async fn record_tool_call(&self, scope: &Scope, call: &ToolCallRecord<'_>) -> StoreResult<()> {
        on_writer!(self, |pool| {
            sqlx::query(
                "INSERT INTO tool_calls (id, organization_id, project_id, environment_id, entity_id, tool_name, turn_id,
                                         ok, latency_ms, error, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(agentry_core::id::new_id("tcl"))
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(call.entity_id)
            .bind(call.tool_name)
            .bind(call.turn_id)
            .bind(i64::from(call.ok))
            .bind(call.latency_ms)
            .bind(call.error)
            .bind(Timestamp::now().0)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Health counters of every tool called in a scope.
    pub async fn tool_health(&self, scope: &Scope) -> StoreResult<BTreeMap<ToolKey, ToolHealth>> {
        let rows: Vec<(String, String, bool, i64, i64)> = on_pool!(self, |pool| {
            sqlx::query(
                "SELECT entity_id, tool_name, ok, latency_ms, created_at FROM tool_calls
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3
                 ORDER BY created_at DESC, id DESC",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.text("entity_id")?,
                    row.text("tool_name")?,
                    row.int("ok")? != 0,
                    row.int("latency_ms")?,
                    row.int("created_at")?,
                ))
            })
            .collect::<StoreResult<Vec<_>>>()
        })?;
        let mut latencies: BTreeMap<ToolKey, Vec<i64>> = BTreeMap::new();
        let mut health: BTreeMap<ToolKey, ToolHealth> = BTreeMap::new();
        for (entity, tool, ok, latency, at) in rows {
            let key = (entity, tool);
            let entry = health.entry(key.clone()).or_default();
            if entry.total_calls == 0 {
                entry.last_called_at = Some(Timestamp(at));
                entry.last_status = Some(if ok { "ok" } else { "error" });
            }
            entry.total_calls += 1;
            entry.fail_count += i64::from(!ok);
            entry.avg_latency_ms += latency as f64;
            let window = latencies.entry(key).or_default();
            if window.len() < HEALTH_WINDOW {
                window.push(latency);
            }
        }
        for (key, entry) in health.iter_mut() {
            entry.avg_latency_ms /= entry.total_calls.max(1) as f64;
            if let Some(window) = latencies.get_mut(key) {
                window.sort_unstable();
                let index = (window.len() * 95).div_ceil(100).saturating_sub(1);
                entry.p95_latency_ms = window.get(index).copied().unwrap_or(0);
            }
        }
        Ok(health)
    }

    /// Records a safety detector hit.
    pub async fn record_safety_event(&self, scope: &Scope, event: &SafetyEvent) -> StoreResult<()> {
        on_writer!(self, |pool| {
            sqlx::query(
                "INSERT INTO safety_events (id, organization_id, project_id, environment_id, thread_id, turn_id, agent_id,
                                            direction, action, flag_type, severity, detail, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(agentry_core::id::new_id("sfe"))
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(&event.thread_id)
            .bind(&event.turn_id)
            .bind(&event.agent_id)
            .bind(&event.direction)
            .bind(&event.action)
            .bind(&event.flag_type)
            .bind(&event.severity)
            .bind(&event.detail)
            .bind(event.created_at.0)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The safety hits of a scope, newest first.
    pub async fn safety_events(&self, scope: &Scope, limit: i64) -> StoreResult<Vec<SafetyEvent>> {
        on_pool!(self, |pool| {
            sqlx::query(
                "SELECT thread_id, turn_id, agent_id, direction, action, flag_type, severity, detail, created_at
                 FROM safety_events
                 WHERE organization_id = $1 AND project_id = $2 AND environment_id = $3
                 ORDER BY created_at DESC, id DESC LIMIT $4",
            )
            .bind(&scope.organization_id)
            .bind(&scope.project_id)
            .bind(&scope.environment_id)
            .bind(limit)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| {
                Ok(SafetyEvent {
                    thread_id: row.text("thread_id")?,
                    turn_id: row.text("turn_id")?,
                    agent_id: row.text("agent_id")?,
                    direction: row.text("direction")?,
                    action: row.text("action")?,
                    flag_type: row.text("flag_type")?,
                    severity: row.text("severity")?,
                    detail: row.text("detail")?,
                    created_at: Timestamp(row.int("created_at")?),
                })
            })
            .collect()
        })
    }
}
