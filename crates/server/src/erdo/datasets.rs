//! Datasets: upload (`POST /datasets`, JSON or multipart; API keys), list and details
//! (`GET /datasets`, `GET /datasets/{slug}?ThreadID=`), query (`POST /datasets/{slug}/query` →
//! `{columns, rows}`) and download (`POST /datasets/{id}/download` → CSV). The rows live in one
//! read-only SQLite sandbox per dataset (`agentry-datasets`); this module owns who may see what.
//!
//! An API key sees its org's datasets; a scoped token those it names, and those attached to a
//! thread it may see. Anything else answers like a missing dataset.

use agentry_core::Timestamp;
use agentry_core::id::new_id;
use agentry_core::wire::erdo::{Dataset, DatasetList, DatasetQueryResult};
use agentry_datasets::{DatasetError, Datasets, Filter, QueryLimits};
use agentry_store::DatasetRecord;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use super::auth::{ErdoAuth, ErdoCaller};
use super::threads::visible_thread;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{JsonBody, parse_json};

/// Rows a query answers at most.
pub const MAX_QUERY_ROWS: usize = 1000;
/// How long a query may run.
const QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn datasets(state: &AppState) -> Result<&Datasets, ApiError> {
    state.engine.datasets().ok_or_else(|| ApiError::forbidden("DATASETS_DISABLED", "datasets are not enabled"))
}

/// The dataset files with this dataset's rows in place (rebuilt from the stored source on a
/// replica that did not receive the upload).
async fn ready<'s>(state: &'s AppState, dataset: &DatasetRecord) -> Result<&'s Datasets, ApiError> {
    use agentry_engine::data_tools::DatasetUnavailable as U;
    agentry_engine::data_tools::ready(&state.engine, dataset).await.map_err(|err| match err {
        U::Disabled => ApiError::forbidden("DATASETS_DISABLED", "datasets are not enabled"),
        U::Rebuild(err) => err.into(),
        U::Source(cause) => ApiError::unavailable(cause),
    })
}

impl From<DatasetError> for ApiError {
    fn from(err: DatasetError) -> Self {
        match err {
            DatasetError::NotFound => ApiError::not_found("Dataset"),
            DatasetError::Invalid(message) => ApiError::invalid_field("content", message),
            DatasetError::Query(message) => ApiError::invalid_field("query", message),
            DatasetError::Forbidden(message) => ApiError::forbidden("QUERY_FORBIDDEN", message),
            DatasetError::Timeout => ApiError::invalid_field("query", "the query ran too long and was stopped"),
            DatasetError::TooLarge => ApiError::invalid_field("query", "the result is too large"),
            other => ApiError::internal(other),
        }
    }
}

/// A dataset the caller may use, by slug or id.
pub async fn visible_dataset(
    state: &AppState,
    caller: &ErdoCaller,
    slug_or_id: &str,
) -> Result<DatasetRecord, ApiError> {
    let dataset = state
        .store
        .get_dataset(&caller.principal.scope, slug_or_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Dataset"))?;
    if caller.may_use_dataset(&dataset.id) {
        return Ok(dataset);
    }
    for thread_id in state.store.dataset_threads(&caller.principal.scope, &dataset.id).await? {
        if visible_thread(state, caller, &thread_id).await.is_ok() {
            return Ok(dataset);
        }
    }
    Err(ApiError::not_found("Dataset"))
}

/// The wire view of a dataset.
fn view(dataset: &DatasetRecord) -> Dataset {
    Dataset {
        id: dataset.id.clone(),
        slug: dataset.slug.clone(),
        name: dataset.name.clone(),
        thread_id: dataset.thread_id.clone(),
        thread_id_camel: dataset.thread_id.clone(),
        columns: dataset.columns.clone(),
        row_count: dataset.row_count,
        row_count_camel: dataset.row_count,
        created_at: dataset.created_at,
        created_at_camel: dataset.created_at,
    }
}

/// An upload, from either body shape.
struct Upload {
    slug: String,
    name: Option<String>,
    thread_id: Option<String>,
    format: String,
    bytes: Vec<u8>,
}

/// JSON upload body: `{slug, name?, thread_id?, format?, content}` (`content` a CSV/JSON string)
/// or `{slug, …, data}` (`data` JSON rows).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct JsonUpload {
    slug: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, alias = "threadId", alias = "ThreadID")]
    thread_id: Option<String>,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    data: Option<Value>,
}

impl Upload {
    async fn read(request: Request, state: &AppState) -> Result<Upload, ApiError> {
        let is_multipart = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        if is_multipart {
            let multipart = Multipart::from_request(request, state)
                .await
                .map_err(|e| ApiError::validation(e.body_text(), Vec::new()))?;
            return Upload::from_multipart(multipart).await;
        }
        let bytes =
            Bytes::from_request(request, state).await.map_err(|e| ApiError::validation(e.body_text(), Vec::new()))?;
        let body: JsonUpload = parse_json(&bytes)?;
        let (format, bytes) = match (body.content, body.data) {
            (Some(text), _) => (body.format.unwrap_or_else(|| "csv".into()), text.into_bytes()),
            (None, Some(data)) => ("json".into(), data.to_string().into_bytes()),
            (None, None) => {
                return Err(ApiError::invalid_field("content", "send `content` (CSV or JSON text) or `data`"));
            }
        };
        Ok(Upload { slug: body.slug, name: body.name, thread_id: body.thread_id, format, bytes })
    }

    async fn from_multipart(mut multipart: Multipart) -> Result<Upload, ApiError> {
        let bad = |e: axum::extract::multipart::MultipartError| ApiError::validation(e.body_text(), Vec::new());
        let (mut slug, mut name, mut thread_id, mut format, mut file) = (None, None, None, None, None);
        while let Some(field) = multipart.next_field().await.map_err(bad)? {
            let field_name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let data = field.bytes().await.map_err(bad)?;
            let text = || String::from_utf8_lossy(&data).trim().to_owned();
            match field_name.as_str() {
                "slug" => slug = Some(text()),
                "name" => name = Some(text()),
                "thread_id" | "threadId" | "ThreadID" => thread_id = Some(text()).filter(|t| !t.is_empty()),
                "format" => format = Some(text()),
                "file" => {
                    if format.is_none() {
                        format =
                            file_name.as_deref().and_then(|n| n.rsplit_once('.')).map(|(_, ext)| ext.to_lowercase());
                    }
                    file = Some(data.to_vec());
                }
                _ => {}
            }
        }
        Ok(Upload {
            slug: slug.ok_or_else(|| ApiError::invalid_field("slug", "is required"))?,
            name,
            thread_id,
            format: format.unwrap_or_else(|| "csv".into()),
            bytes: file.ok_or_else(|| ApiError::invalid_field("file", "is required"))?,
        })
    }
}

/// Checks a slug's shape: what clients put in URLs.
fn check_slug(slug: &str) -> Result<(), ApiError> {
    let ok = !slug.is_empty()
        && slug.len() <= 64
        && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok { Ok(()) } else { Err(ApiError::invalid_field("slug", "use 1–64 lowercase letters, digits, `-` or `_`")) }
}

/// `POST /datasets` (API keys) → 201 the dataset.
pub async fn create(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    request: Request,
) -> Result<(StatusCode, Json<Dataset>), ApiError> {
    if !caller.is_api_key() {
        return Err(ApiError::forbidden("API_KEY_REQUIRED", "uploading datasets needs the API key"));
    }
    let upload = Upload::read(request, &state).await?;
    check_slug(&upload.slug)?;
    if let Some(thread_id) = &upload.thread_id {
        visible_thread(&state, &caller, thread_id).await?;
    }
    if state.store.get_dataset(&caller.principal.scope, &upload.slug).await?.is_some() {
        return Err(ApiError::conflict("DATASET_EXISTS", format!("a dataset `{}` exists already", upload.slug)));
    }
    let source = String::from_utf8(upload.bytes)
        .map_err(|_| ApiError::invalid_field("content", "must be UTF-8 text (CSV or JSON)"))?;
    if source.contains('\0') {
        return Err(ApiError::invalid_field("content", "must not contain a NUL character"));
    }
    let files = datasets(&state)?;
    let id = new_id("dst");
    let info = match upload.format.as_str() {
        "csv" => files.create_from_csv(&id, source.as_bytes()).await?,
        "json" => files.create_from_json(&id, source.as_bytes()).await?,
        other => return Err(ApiError::invalid_field("format", format!("`{other}` is not csv or json"))),
    };
    let record = DatasetRecord {
        id,
        scope: caller.principal.scope.clone(),
        name: upload.name.unwrap_or_else(|| upload.slug.clone()),
        slug: upload.slug,
        thread_id: upload.thread_id,
        created_by: caller.principal.owner_id().to_owned(),
        columns: serde_json::to_value(&info.columns).unwrap_or(Value::Null),
        row_count: i64::try_from(info.row_count).unwrap_or(i64::MAX),
        format: upload.format,
        created_at: Timestamp::now(),
    };
    if let Err(err) = state.store.insert_dataset(&record, &source).await {
        // Keep no orphan file when the record could not be written (a racing upload of the slug).
        let _ = files.delete(&record.id).await;
        return Err(err.into());
    }
    Ok((StatusCode::CREATED, Json(view(&record))))
}

/// `GET /datasets` → `{datasets}` the caller may use.
pub async fn list(State(state): State<AppState>, ErdoAuth(caller): ErdoAuth) -> Result<Json<DatasetList>, ApiError> {
    let mut visible = Vec::new();
    for dataset in state.store.list_datasets(&caller.principal.scope).await? {
        if visible_dataset(&state, &caller, &dataset.id).await.is_ok() {
            visible.push(view(&dataset));
        }
    }
    Ok(Json(DatasetList { datasets: visible }))
}

/// `GET /datasets/{slug}?ThreadID=` → the dataset (`id`, `name`, columns…).
pub async fn get(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    Path(slug): Path<String>,
) -> Result<Json<Dataset>, ApiError> {
    Ok(Json(view(&visible_dataset(&state, &caller, &slug).await?)))
}

/// Body of a query: SQL over the table `data`, or filters; at most 1000 rows.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct QueryBody {
    #[serde(default)]
    query: Option<String>,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    limit: Option<usize>,
}

fn limits(requested: Option<usize>) -> Result<QueryLimits, ApiError> {
    let max_rows = requested.unwrap_or(MAX_QUERY_ROWS);
    if max_rows == 0 || max_rows > MAX_QUERY_ROWS {
        return Err(ApiError::invalid_field("limit", format!("must be in 1..={MAX_QUERY_ROWS}")));
    }
    Ok(QueryLimits { max_rows, timeout: QUERY_TIMEOUT })
}

/// `POST /datasets/{slug}/query {query? | filters?, limit?}` → `{columns, rows, row_count}`.
pub async fn query(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    Path(slug): Path<String>,
    JsonBody(body): JsonBody<QueryBody>,
) -> Result<Json<DatasetQueryResult>, ApiError> {
    let dataset = visible_dataset(&state, &caller, &slug).await?;
    let limits = limits(body.limit)?;
    let files = ready(&state, &dataset).await?;
    let result = match body.query.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        Some(sql) => files.query_sql(&dataset.id, sql, &limits).await?,
        None => files.query_filters(&dataset.id, &body.filters, &limits).await?,
    };
    Ok(Json(DatasetQueryResult {
        columns: result.columns,
        row_count: result.rows.len(),
        truncated: result.truncated,
        rows: result.rows,
    }))
}

/// Body of a download.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct DownloadBody {
    #[serde(default)]
    query: Option<String>,
}

/// `POST /datasets/{id}/download {query?}` → the uploaded file as it was (`<slug>.csv|json`), or
/// the query's rows as CSV.
pub async fn download(
    State(state): State<AppState>,
    ErdoAuth(caller): ErdoAuth,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: DownloadBody = if body.is_empty() { DownloadBody::default() } else { parse_json(&body)? };
    let dataset = visible_dataset(&state, &caller, &id).await?;
    let (bytes, extension) = match body.query.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        Some(sql) => {
            let limits = QueryLimits { max_rows: usize::MAX, timeout: QUERY_TIMEOUT };
            (ready(&state, &dataset).await?.export_csv(&dataset.id, Some(sql), &limits).await?, "csv")
        }
        None => {
            let source = state.store.dataset_source(&dataset.scope, &dataset.id).await?;
            let source = source.ok_or_else(|| ApiError::not_found("Dataset"))?;
            (source.into_bytes(), if dataset.format == "json" { "json" } else { "csv" })
        }
    };
    let disposition = format!("attachment; filename=\"{}.{extension}\"", dataset.slug);
    let content_type = if extension == "json" { "application/json" } else { "text/csv; charset=utf-8" };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// The datasets a caller may use through a bot's tools (`None`: every dataset of the scope): a
/// token's own, plus those the message is about (already checked visible).
pub fn allowed_for(caller: &ErdoCaller, about: &[String]) -> Option<Vec<String>> {
    caller.grant.as_ref().map(|grant| grant.dataset_ids.iter().chain(about).cloned().collect())
}
