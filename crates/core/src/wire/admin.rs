//! The operator resources: tools (catalog, switches, health, test calls), API keys, and the
//! health check.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::Timestamp;

/// A tool of the scope's catalog with its switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    /// `<entity>::<tool>`, what `POST /tools/{tool_id}/test` takes.
    pub tool_id: String,
    /// The name the model calls it by.
    pub tool_name: String,
    /// What it does (the model reads this).
    pub description: String,
    /// `builtin`, `http` or `mcp`.
    pub category: String,
    /// JSON Schema of its arguments.
    pub param_schema: Value,
    /// The agent (or MCP server) it belongs to.
    pub entity_id: String,
    /// Always null (upstream's database key).
    pub entity_pk: Option<String>,
    /// An HTTP tool's endpoint (operators only).
    pub callback_url: Option<String>,
    /// Whether agents are offered it.
    pub enabled: bool,
    /// Whether each call waits for a human's approval.
    pub requires_approval: bool,
    /// Its calls so far (`GET /tools/matrix` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<ToolHealth>,
}

/// What a tool's calls did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolHealth {
    /// Calls made.
    pub total_calls: i64,
    /// Calls that failed.
    pub fail_count: i64,
    /// The same, as upstream names it.
    pub total_failures: i64,
    /// Mean latency.
    pub avg_latency_ms: f64,
    /// 95th percentile latency.
    pub p95_latency_ms: i64,
    /// The last call's time.
    pub last_called_at: Option<Timestamp>,
    /// `ok` or `error`.
    pub last_status: Option<String>,
}

/// `GET /tools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolList {
    /// How many.
    pub total: usize,
    /// The tools.
    pub tools: Vec<Tool>,
}

/// `GET /tools/search`: best match first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolSearch {
    /// The query.
    pub query: String,
    /// How many matched (before `limit`).
    pub total: usize,
    /// The matches.
    pub tools: Vec<Tool>,
    /// The same, as upstream names them.
    pub results: Vec<Tool>,
}

/// `GET /tools/stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolStats {
    /// Tools in the catalog.
    pub tool_count: usize,
    /// Agents and servers that have tools.
    pub entity_count: usize,
    /// Always null (upstream's search index).
    pub bm25_index_size: Option<i64>,
    /// When the catalog was read.
    pub last_indexed_at: Timestamp,
}

/// `GET /tools/matrix`: every tool with its switch and health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolMatrix {
    /// The scope's environment.
    pub environment_id: String,
    /// When it was read.
    pub fetched_at: Timestamp,
    /// The tools.
    pub tools: Vec<Tool>,
    /// The same, as upstream names them.
    pub rows: Vec<Tool>,
}

/// The body of `PATCH /tools/{entity_id}/{tool_name}/enabled`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolSwitch {
    /// On or off.
    pub enabled: bool,
}

/// What a switch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolSwitched {
    /// Always true.
    pub ok: bool,
    /// The agent or server.
    pub entity_id: String,
    /// The tool.
    pub tool_name: String,
    /// Its switch now.
    pub enabled: bool,
}

/// The body of `POST /tools/{tool_id}/test`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ToolTestCall {
    /// The arguments (a JSON object; none: `{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Value>,
}

/// What a test call did: `result` when it worked, `error` when not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolTestResult {
    /// `ok` or `error`.
    pub status: String,
    /// How long it took.
    pub elapsed_ms: u64,
    /// What the tool returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An API key (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// `key_…`
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The organization it is bound to (none: installation-wide).
    pub organization_id: Option<String>,
    /// Whether it may act in every organization.
    pub installation_wide: bool,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// `GET /api-keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyList {
    /// The keys.
    pub keys: Vec<ApiKey>,
}

/// `POST /api-keys`: the new key with its secret, shown this once.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedApiKey {
    /// The key.
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The secret (`agk_…`).
    pub key: String,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey").field("api_key", &self.api_key).field("key", &"<secret>").finish()
    }
}

/// `POST /api-keys/{key_id}/rotate`: the key's new secret, shown this once.
#[derive(Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RotatedApiKey {
    /// The key.
    pub id: String,
    /// The new secret; the old one stopped working.
    pub key: String,
}

impl std::fmt::Debug for RotatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedApiKey").field("id", &self.id).field("key", &"<secret>").finish()
    }
}

/// `DELETE /api-keys/{key_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevokedApiKey {
    /// The key.
    pub id: String,
    /// Always true.
    pub revoked: bool,
}

/// `GET /api/health`: the server is up and its store answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"status": "ok", "version": "0.1.0", "store": "sqlite", "uptimeSeconds": 3600}))]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The server's version.
    pub version: String,
    /// `sqlite` or `postgres`.
    pub store: String,
    /// Seconds since the server started.
    pub uptime_seconds: u64,
}
