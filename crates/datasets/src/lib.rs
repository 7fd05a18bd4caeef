//! Agentry's tabular datasets: uploads stored one SQLite file per dataset, and untrusted read-only
//! SQL run against them.
//!
//! A dataset is a single table named `data` (what Erdo's docs promise for file datasets), in its
//! own file `<root>/<id>.sqlite`, so a query can see nothing but that dataset. The caller owns
//! dataset metadata, names and tenancy; this crate owns the files and the queries.
//!
//! # Layout
//! - [`Datasets`] is the entry point: create from CSV or JSON, [`info`](Datasets::info), query by
//!   SQL or by [`Filter`]s, export CSV, delete.
//! - `upload` parses uploads (`csv` is a small RFC 4180 reader and writer), infers each column's
//!   [`ValueType`], and writes the file: into a temporary file, renamed into place only when
//!   complete, so a failed upload leaves nothing behind.
//! - `sandbox` runs user SQL: a fresh read-only, immutable connection per query, hardened with
//!   SQLite's authorizer (only `SELECT` and reads of `data`, an allowlist of pure functions),
//!   `SQLITE_LIMIT_ATTACHED = 0`, no extension loading, a progress-handler deadline, and row and
//!   result-size caps. `guard` is its lexical first gate (one `SELECT`/`WITH` statement).
//! - `filter` turns Erdo's `{"key","operator","value"}` filters into parameterised SQL.
//!
//! Architecture invariant: user SQL only ever runs on a connection that `sandbox` opened read-only
//! and hardened; the writer connection exists only while an upload is built, on a temporary file.

#![warn(missing_docs)]

mod csv;
mod error;
mod filter;
mod guard;
mod sandbox;
mod upload;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Connection, Row};

pub use error::DatasetError;
pub use filter::{Filter, FilterOp};

use sandbox::{Param, RowSink, RunLimits};
use upload::{ColumnKind, Table};

/// The most rows a query may return (Erdo's UI asks for 1000).
pub const MAX_QUERY_ROWS: usize = 1000;
/// The most result bytes (estimated as JSON) a query may return.
pub const MAX_RESULT_BYTES: usize = 8 * 1024 * 1024;
/// The most rows a CSV export may hold.
pub const MAX_EXPORT_ROWS: usize = 1_000_000;
/// The most bytes (estimated) a CSV export may hold.
pub const MAX_EXPORT_BYTES: usize = 256 * 1024 * 1024;
/// The time a whole-table export may take; its SQL is the crate's own, so it can only be slow
/// because the table is large.
const FULL_EXPORT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest dataset id.
const MAX_ID_CHARS: usize = 128;

/// The store of datasets under one directory. Cheap to clone; all methods take `&self`.
#[derive(Debug, Clone)]
pub struct Datasets {
    root: PathBuf,
    upload: UploadLimits,
}

/// Caps on an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadLimits {
    /// The most bytes an upload may have (default 50 MiB); more is [`DatasetError::TooLarge`].
    pub max_bytes: usize,
    /// The most columns (default 200); more is [`DatasetError::Invalid`].
    pub max_columns: usize,
    /// The most rows (default 1 000 000, the export cap); more is [`DatasetError::TooLarge`].
    pub max_rows: u64,
}

impl Default for UploadLimits {
    fn default() -> Self {
        UploadLimits { max_bytes: 50 * 1024 * 1024, max_columns: 200, max_rows: MAX_EXPORT_ROWS as u64 }
    }
}

/// Caps on one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryLimits {
    /// The most rows returned; values above [`MAX_QUERY_ROWS`] count as that. Further rows set
    /// [`QueryResult::truncated`].
    pub max_rows: usize,
    /// The time the query may run before it fails with [`DatasetError::Timeout`].
    pub timeout: Duration,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits { max_rows: MAX_QUERY_ROWS, timeout: Duration::from_secs(2) }
    }
}

/// The type of a column, inferred from all of its values at upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// Every value is a number (stored as INTEGER, or REAL if any has a fraction or exponent).
    Number,
    /// Text (or a mix of kinds).
    Text,
    /// Every value is an ISO-8601 date or date-time (stored as its text, which sorts by time).
    Date,
    /// Every value is `true` or `false` (stored as 1/0, returned as JSON booleans).
    Bool,
}

/// A column of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The name, from the CSV header or the JSON keys (trimmed).
    pub name: String,
    /// The inferred type.
    pub value_type: ValueType,
}

/// What a dataset holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// The columns, in upload order.
    pub columns: Vec<Column>,
    /// The number of rows.
    pub row_count: u64,
    /// The size of the dataset file.
    pub bytes: u64,
}

/// The rows a query returned: Erdo's `{"columns", "rows"}` plus whether rows were cut off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// The result's column names.
    pub columns: Vec<String>,
    /// The rows, each a value per column: numbers, strings, booleans (for boolean columns) or null.
    pub rows: Vec<Vec<Value>>,
    /// Whether the query had more rows than [`QueryLimits::max_rows`].
    pub truncated: bool,
}

impl Datasets {
    /// A store rooted at `root` (created on the first upload), with default [`UploadLimits`].
    pub fn new(root: PathBuf) -> Self {
        Datasets { root, upload: UploadLimits::default() }
    }

    /// The same store with other upload caps.
    pub fn with_upload_limits(mut self, limits: UploadLimits) -> Self {
        self.upload = limits;
        self
    }

    /// Creates (or replaces) dataset `id` from a CSV file whose first line names the columns.
    pub async fn create_from_csv(&self, id: &str, bytes: &[u8]) -> Result<DatasetInfo, DatasetError> {
        self.create(id, bytes, upload::table_from_csv).await
    }

    /// Creates (or replaces) dataset `id` from JSON: an array of objects (keys are the columns, their
    /// union in first-seen order) or `{"columns": [names], "rows": [[values]]}`.
    pub async fn create_from_json(&self, id: &str, bytes: &[u8]) -> Result<DatasetInfo, DatasetError> {
        self.create(id, bytes, upload::table_from_json).await
    }

    /// Whether dataset `id`'s file is on this machine.
    pub async fn is_present(&self, id: &str) -> bool {
        self.existing(id).await.is_ok()
    }

    /// The columns, row count and file size of dataset `id`.
    pub async fn info(&self, id: &str) -> Result<DatasetInfo, DatasetError> {
        let path = self.existing(id).await?;
        let mut conn = sandbox::open_reader(&path).await?;
        let schema = read_schema(&mut conn).await?;
        let row_count: i64 = sqlx::query_scalar("SELECT count(*) FROM data")
            .fetch_one(&mut conn)
            .await
            .map_err(DatasetError::storage)?;
        conn.close().await.map_err(DatasetError::storage)?;
        let bytes = tokio::fs::metadata(&path).await?.len();
        Ok(DatasetInfo {
            columns: schema.into_iter().map(|(name, kind)| Column { name, value_type: kind.value_type() }).collect(),
            row_count: u64::try_from(row_count).unwrap_or(0),
            bytes,
        })
    }

    /// Runs a single read-only `SELECT` (or `WITH … SELECT`) over the table `data` of dataset `id`.
    ///
    /// Anything else — writes, DDL, `PRAGMA`, `ATTACH`, other tables, a second statement, file or
    /// extension functions — is [`DatasetError::Forbidden`]; SQL errors are
    /// [`DatasetError::Query`] with SQLite's message.
    pub async fn query_sql(&self, id: &str, sql: &str, limits: &QueryLimits) -> Result<QueryResult, DatasetError> {
        let path = self.existing(id).await?;
        run_json(&path, sql, Vec::new(), limits).await
    }

    /// Returns the rows of dataset `id` matching all `filters` (no filters: all rows, up to the cap).
    /// A filter on an unknown column, or with an operand of the wrong type, is a
    /// [`DatasetError::Query`].
    pub async fn query_filters(
        &self,
        id: &str,
        filters: &[Filter],
        limits: &QueryLimits,
    ) -> Result<QueryResult, DatasetError> {
        let path = self.existing(id).await?;
        let mut conn = sandbox::open_reader(&path).await?;
        let schema = read_schema(&mut conn).await?;
        drop(conn);
        let (sql, params) = filter::filter_sql(&schema, filters, effective_max_rows(limits))?;
        run_json(&path, &sql, params, limits).await
    }

    /// Dataset `id` as CSV (header line first): the whole table when `sql` is `None`, else the
    /// result of `sql` (checked and limited like [`query_sql`](Self::query_sql), except that up to
    /// [`MAX_EXPORT_ROWS`] rows are allowed). A result over the export caps is
    /// [`DatasetError::TooLarge`] rather than a silently cut file.
    pub async fn export_csv(&self, id: &str, sql: Option<&str>, limits: &QueryLimits) -> Result<Vec<u8>, DatasetError> {
        let path = self.existing(id).await?;
        let (sql, timeout) = match sql {
            Some(sql) => (sql, limits.timeout),
            None => ("SELECT * FROM data", limits.timeout.max(FULL_EXPORT_TIMEOUT)),
        };
        let run_limits = RunLimits { max_rows: MAX_EXPORT_ROWS, max_bytes: MAX_EXPORT_BYTES, timeout };
        let mut sink = CsvSink { out: Vec::new() };
        let truncated = sandbox::run(&path, sql, Vec::new(), run_limits, &mut sink).await?;
        if truncated {
            return Err(DatasetError::TooLarge);
        }
        Ok(sink.out)
    }

    /// Deletes dataset `id`. Queries already running finish on the file they opened.
    pub async fn delete(&self, id: &str) -> Result<(), DatasetError> {
        let path = self.path_of(id)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                tracing::info!(dataset = id, "dataset deleted");
                Ok(())
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(DatasetError::NotFound),
            Err(err) => Err(err.into()),
        }
    }

    async fn create(
        &self,
        id: &str,
        bytes: &[u8],
        parse: fn(&[u8], &UploadLimits) -> Result<Table, DatasetError>,
    ) -> Result<DatasetInfo, DatasetError> {
        let final_path = self.path_of(id)?;
        if bytes.len() > self.upload.max_bytes {
            tracing::debug!(dataset = id, bytes = bytes.len(), "upload over the size cap");
            return Err(DatasetError::TooLarge);
        }
        // Parsing and inference are CPU work on up to the whole upload: off the async threads.
        let owned = bytes.to_vec();
        let limits = self.upload.clone();
        let (table, kinds) = tokio::task::spawn_blocking(move || {
            let table = parse(&owned, &limits)?;
            let kinds = table.infer_kinds();
            Ok::<_, DatasetError>((table, kinds))
        })
        .await
        .map_err(DatasetError::storage)??;

        tokio::fs::create_dir_all(&self.root).await?;
        let temp = TempFile::new(self.root.join(format!(".{id}.{}.tmp", unique_suffix())));
        upload::write_sqlite(&table, &kinds, temp.path()).await?;
        tokio::fs::File::open(temp.path()).await?.sync_all().await?;
        tokio::fs::rename(temp.path(), &final_path).await?;
        temp.disarm();
        if let Err(err) = sync_dir(&self.root).await {
            tracing::debug!(%err, "could not sync the dataset directory");
        }

        let bytes = tokio::fs::metadata(&final_path).await?.len();
        let info = DatasetInfo {
            columns: table
                .columns
                .iter()
                .zip(&kinds)
                .map(|(name, kind)| Column { name: name.clone(), value_type: kind.value_type() })
                .collect(),
            row_count: table.row_count() as u64,
            bytes,
        };
        tracing::info!(dataset = id, rows = info.row_count, columns = info.columns.len(), bytes, "dataset stored");
        Ok(info)
    }

    /// `<root>/<id>.sqlite`, after checking that `id` is a safe file stem.
    fn path_of(&self, id: &str) -> Result<PathBuf, DatasetError> {
        let valid = !id.is_empty()
            && id.len() <= MAX_ID_CHARS
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(DatasetError::Invalid(format!(
                "dataset id must be 1 to {MAX_ID_CHARS} characters of A-Z, a-z, 0-9, '_' or '-'"
            )));
        }
        Ok(self.root.join(format!("{id}.sqlite")))
    }

    /// The file of an existing dataset.
    async fn existing(&self, id: &str) -> Result<PathBuf, DatasetError> {
        let path = self.path_of(id)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(path),
            Ok(_) => Err(DatasetError::NotFound),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(DatasetError::NotFound),
            Err(err) => Err(err.into()),
        }
    }
}

/// Quotes an SQL identifier (`"` doubled inside).
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn effective_max_rows(limits: &QueryLimits) -> usize {
    limits.max_rows.min(MAX_QUERY_ROWS)
}

async fn run_json(
    path: &Path,
    sql: &str,
    params: Vec<Param>,
    limits: &QueryLimits,
) -> Result<QueryResult, DatasetError> {
    let run_limits =
        RunLimits { max_rows: effective_max_rows(limits), max_bytes: MAX_RESULT_BYTES, timeout: limits.timeout };
    let mut sink = JsonSink { columns: Vec::new(), rows: Vec::new() };
    let truncated = sandbox::run(path, sql, params, run_limits, &mut sink).await?;
    Ok(QueryResult { columns: sink.columns, rows: sink.rows, truncated })
}

/// The columns of `data` and how each is stored, from the declared types (the crate's own SQL, on a
/// reader connection).
async fn read_schema(conn: &mut sqlx::SqliteConnection) -> Result<Vec<(String, ColumnKind)>, DatasetError> {
    let rows = sqlx::query("SELECT name, type FROM pragma_table_info('data') ORDER BY cid")
        .fetch_all(&mut *conn)
        .await
        .map_err(DatasetError::storage)?;
    if rows.is_empty() {
        return Err(DatasetError::storage("the dataset file has no table `data`"));
    }
    rows.iter()
        .map(|row| {
            let name: String = row.try_get(0).map_err(DatasetError::storage)?;
            let declared: String = row.try_get(1).map_err(DatasetError::storage)?;
            Ok((name, ColumnKind::from_declared(&declared)))
        })
        .collect()
}

struct JsonSink {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
}

impl RowSink for JsonSink {
    fn columns(&mut self, names: Vec<String>) -> Result<(), DatasetError> {
        self.columns = names;
        Ok(())
    }
    fn row(&mut self, values: Vec<Value>) -> Result<(), DatasetError> {
        self.rows.push(values);
        Ok(())
    }
}

struct CsvSink {
    out: Vec<u8>,
}

impl RowSink for CsvSink {
    fn columns(&mut self, names: Vec<String>) -> Result<(), DatasetError> {
        csv::write_record(&mut self.out, names.iter().map(|n| Some(n.as_str())));
        Ok(())
    }
    fn row(&mut self, values: Vec<Value>) -> Result<(), DatasetError> {
        let texts: Vec<Option<String>> = values
            .into_iter()
            .map(|value| match value {
                Value::Null => None,
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            })
            .collect();
        csv::write_record(&mut self.out, texts.iter().map(|t| t.as_deref()));
        Ok(())
    }
}

/// A temporary file removed on drop unless disarmed, so an upload that fails (or whose future is
/// dropped) leaves nothing behind.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    fn new(path: PathBuf) -> Self {
        TempFile { path, armed: true }
    }
    fn path(&self) -> &Path {
        &self.path
    }
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: the file may never have been created.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A suffix no other upload in this or another process uses at the same time.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Makes a rename in `dir` durable.
async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}
