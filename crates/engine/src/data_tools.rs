//! The dataset tools: `query_dataset` answers with rows and a `table` content item,
//! `create_chart` with a `chart` content item whose data comes from the query. Queries run in
//! the dataset's own read-only sandbox (`agentry-datasets`); a turn only sees the datasets of its
//! scope, and of those only the ones its caller may use.

use std::time::Duration;

use agentry_core::{ContentItem, Timestamp, Turn};
use agentry_datasets::{QueryLimits, QueryResult};
use agentry_store::DatasetRecord;
use serde_json::{Map, Value, json};

use crate::Engine;
use crate::tools::ToolFailure;

/// Rows a tool query returns at most.
const MAX_ROWS: usize = 1000;
/// How long a tool query may run.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// Chart kinds `create_chart` draws.
const CHART_TYPES: &[&str] = &["bar", "line", "pie", "scatter"];

/// A content item a tool produced, before the answer's message id is known.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolContent {
    /// `table` or `chart`.
    pub content_type: String,
    /// `table`, or the chart kind.
    pub ui_content_type: String,
    /// The item's structured content.
    pub content: Value,
}

impl ToolContent {
    /// The stored item: the `n`th tool item of the answer `message_id`.
    pub fn into_item(self, message_id: &str, n: usize, invocation_id: &str) -> ContentItem {
        ContentItem {
            id: format!("{message_id}_d{n}"),
            message_id: message_id.to_owned(),
            content_type: self.content_type,
            ui_content_type: Some(self.ui_content_type),
            content: self.content,
            user_visibility: "visible".into(),
            created_by_invocation_id: invocation_id.to_owned(),
            created_at: Timestamp::now(),
        }
    }
}

/// Why a dataset's rows cannot be queried here.
#[derive(Debug, thiserror::Error)]
pub enum DatasetUnavailable {
    /// Datasets are not enabled on this server.
    #[error("datasets are not enabled on this server")]
    Disabled,
    /// The store failed or lost the dataset's source.
    #[error("the dataset's rows cannot be loaded: {0}")]
    Source(String),
    /// The source could not be rebuilt into a table.
    #[error(transparent)]
    Rebuild(#[from] agentry_datasets::DatasetError),
}

/// The dataset files with `dataset`'s rows in place. A replica that did not receive the upload
/// rebuilds the rows from the source the store keeps, so any replica can query any dataset.
pub async fn ready<'e>(
    engine: &'e Engine,
    dataset: &agentry_store::DatasetRecord,
) -> Result<&'e agentry_datasets::Datasets, DatasetUnavailable> {
    let datasets = engine.datasets().ok_or(DatasetUnavailable::Disabled)?;
    if !datasets.is_present(&dataset.id).await {
        let source = engine
            .store()
            .dataset_source(&dataset.scope, &dataset.id)
            .await
            .map_err(|e| DatasetUnavailable::Source(e.to_string()))?
            .ok_or_else(|| DatasetUnavailable::Source("no source recorded".into()))?;
        tracing::info!(dataset = %dataset.id, "rebuilding a dataset's rows from its source");
        match dataset.format.as_str() {
            "json" => datasets.create_from_json(&dataset.id, source.as_bytes()).await?,
            _ => datasets.create_from_csv(&dataset.id, source.as_bytes()).await?,
        };
    }
    Ok(datasets)
}

/// `query_dataset {dataset, sql}` → `{columns, rows, truncated}` and a table.
pub async fn query_dataset(engine: &Engine, turn: &Turn, params: &Value) -> Result<(Value, ToolContent), ToolFailure> {
    let (slug, sql, result) = run_query(engine, turn, params).await?;
    let columns: Vec<Value> = result
        .columns
        .iter()
        .map(|c| json!({"column_name": c, "key": c, "value_type": value_type(&result, c)}))
        .collect();
    let table = ToolContent {
        content_type: "table".into(),
        ui_content_type: "table".into(),
        content: json!({
            "dataset_slug": slug,
            "sql_query": sql,
            "tableColumns": columns,
            "tableData": objects(&result),
        }),
    };
    let answer = json!({"columns": result.columns, "rows": result.rows, "truncated": result.truncated});
    Ok((answer, table))
}

/// `create_chart {dataset, sql, chart_type, title, x, y}` → a chart of the query's rows.
pub async fn create_chart(engine: &Engine, turn: &Turn, params: &Value) -> Result<(Value, ToolContent), ToolFailure> {
    let chart_type = text(params, "chart_type").unwrap_or_else(|| "bar".into());
    if !CHART_TYPES.contains(&chart_type.as_str()) {
        return Err(ToolFailure::new(format!("chart_type must be one of {}", CHART_TYPES.join(", "))));
    }
    let title = text(params, "title").unwrap_or_else(|| "Chart".into());
    let x = text(params, "x").ok_or_else(|| ToolFailure::new("`x` (the column on the x axis) is required"))?;
    let y: Vec<String> = match params.get("y") {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    };
    if y.is_empty() {
        return Err(ToolFailure::new("`y` (one or more value columns) is required"));
    }
    let (slug, sql, result) = run_query(engine, turn, params).await?;
    for column in std::iter::once(&x).chain(&y) {
        if !result.columns.contains(column) {
            return Err(ToolFailure::new(format!(
                "the query has no column `{column}` (it has {})",
                result.columns.join(", ")
            )));
        }
    }
    let series: Vec<Value> =
        y.iter().map(|key| json!({"series_name": key, "key": key, "dataset_slug": slug, "sql_query": sql})).collect();
    let config = json!({
        "chart_type": chart_type,
        "chart_title": title,
        "x_axis": {"axis_label": x, "key": x, "value_type": value_type(&result, &x)},
        "y_axes": y.iter().map(|key| json!({"axis_label": key, "key": key, "value_type": "number"})).collect::<Vec<_>>(),
        "series": series,
    });
    let data = objects(&result);
    let chart = ToolContent {
        content_type: "chart".into(),
        ui_content_type: chart_type.clone(),
        content: json!({"chartConfig": config, "chartData": data}),
    };
    Ok((json!({"chart": chart_type, "title": title, "points": result.rows.len()}), chart))
}

/// Whether the turn's caller may read a dataset through the tools: the datasets a grant names
/// (`allowed_datasets`: Erdo scoped tokens); for an operator every dataset of the scope; for an
/// end user those the agent lists in `datasets` and those attached to the thread (uploads are
/// the API key's, so none is an end user's own).
async fn readable(engine: &Engine, turn: &Turn, record: &DatasetRecord) -> Result<bool, agentry_store::StoreError> {
    if let Some(allowed) = &turn.input.allowed_datasets {
        return Ok(allowed.contains(&record.id));
    }
    if !turn.input.end_user || record.thread_id.as_deref() == Some(&turn.thread_id) {
        return Ok(true);
    }
    let store = engine.store();
    if store.thread_dataset_ids(&turn.scope, &turn.thread_id).await?.contains(&record.id) {
        return Ok(true);
    }
    Ok(store
        .get_agent(&turn.scope, &turn.agent_id)
        .await?
        .is_some_and(|agent| agent.spec.datasets.contains(&record.slug)))
}

/// The datasets the message is about, for the system prompt of an agent with the dataset tools:
/// their slugs and columns (`None` when there is nothing to say).
pub async fn datasets_section(engine: &Engine, turn: &Turn, agent: &agentry_core::AgentSpec) -> Option<String> {
    let has_tools = agent.tools.iter().any(|t| t == "query_dataset" || t == "create_chart");
    if !has_tools || turn.input.datasets.is_empty() {
        return None;
    }
    let mut section = String::from(
        "\n\n## Datasets\nQuery these with `query_dataset` (one SELECT over the table `data`) and chart them with `create_chart`:",
    );
    for id in &turn.input.datasets {
        let Ok(Some(dataset)) = engine.store().get_dataset(&turn.scope, id).await else { continue };
        if !readable(engine, turn, &dataset).await.unwrap_or(false) {
            continue;
        }
        let columns: Vec<String> = dataset
            .columns
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| Some(format!("{} ({})", c.get("name")?.as_str()?, c.get("value_type")?.as_str()?)))
            .collect();
        section.push_str(&format!("\n- `{}` ({}): {}", dataset.slug, dataset.name, columns.join(", ")));
    }
    Some(section)
}

async fn run_query(engine: &Engine, turn: &Turn, params: &Value) -> Result<(String, String, QueryResult), ToolFailure> {
    let slug = text(params, "dataset").ok_or_else(|| ToolFailure::new("`dataset` (a dataset slug) is required"))?;
    let sql =
        text(params, "sql").ok_or_else(|| ToolFailure::new("`sql` (a SELECT over the table `data`) is required"))?;
    let record = engine
        .store()
        .get_dataset(&turn.scope, &slug)
        .await
        .map_err(|e| ToolFailure::new(format!("cannot read datasets: {e}")))?
        .ok_or_else(|| ToolFailure::new(format!("no dataset `{slug}`")))?;
    if !readable(engine, turn, &record).await.map_err(|e| ToolFailure::new(format!("cannot read datasets: {e}")))? {
        // Exactly what a missing dataset answers.
        return Err(ToolFailure::new(format!("no dataset `{slug}`")));
    }
    let datasets = ready(engine, &record).await.map_err(|e| ToolFailure::new(e.to_string()))?;
    let limits = QueryLimits { max_rows: MAX_ROWS, timeout: QUERY_TIMEOUT };
    let result = datasets.query_sql(&record.id, &sql, &limits).await.map_err(|e| ToolFailure::new(e.to_string()))?;
    Ok((record.slug, sql, result))
}

/// Rows as objects keyed by column (what chart and table renderers read).
fn objects(result: &QueryResult) -> Vec<Value> {
    result
        .rows
        .iter()
        .map(|row| {
            let object: Map<String, Value> = result.columns.iter().cloned().zip(row.iter().cloned()).collect();
            Value::Object(object)
        })
        .collect()
}

/// `number` when every value of the column is a number, else `category`.
fn value_type(result: &QueryResult, column: &str) -> &'static str {
    let Some(index) = result.columns.iter().position(|c| c == column) else { return "category" };
    let numeric = result.rows.iter().all(|row| row.get(index).is_some_and(|v| v.is_number() || v.is_null()));
    if numeric && !result.rows.is_empty() { "number" } else { "category" }
}

fn text(params: &Value, field: &str) -> Option<String> {
    params.get(field).and_then(Value::as_str).map(str::to_owned)
}
