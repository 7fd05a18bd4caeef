//! Running untrusted SQL against one dataset file.
//!
//! Every query gets its own connection, opened read-only on the immutable file (never the writer's
//! connection), then hardened before the query is prepared:
//! - `sqlite3_set_authorizer` with [`authorize`]: only `SELECT`, reads of table `data` (and the
//!   `json_each`/`json_tree` table functions), recursive CTEs, and an allowlist of pure functions are
//!   permitted; every other action — writes, DDL, `PRAGMA`, `ATTACH`, transactions, reading any other
//!   table including `sqlite_master` — is denied when the statement is prepared;
//! - `SQLITE_LIMIT_ATTACHED` = 0, extension loading off, `SQLITE_DBCONFIG_DEFENSIVE` on, untrusted
//!   schema, no triggers or views, and caps on value and SQL length;
//! - a progress handler that interrupts the statement at the deadline, plus a wall-clock backstop
//!   that calls `sqlite3_interrupt`.
//!
//! Rows are read until the row cap (one more row tells whether the result was truncated) and the
//! result-size cap.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use libsqlite3_sys as ffi;
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{AssertSqlSafe, Column, ConnectOptions, Executor, Row, SqlSafeStr, Statement, TypeInfo, ValueRef};

use crate::DatasetError;
use crate::guard::{self, MAX_SQL_BYTES};

/// VM instructions between two checks of the deadline.
const PROGRESS_STEPS: c_int = 1_000;
/// How long past the deadline the wall-clock backstop waits for the progress handler.
const BACKSTOP_SLACK: Duration = Duration::from_millis(500);
/// The largest string or blob a query may build (`SQLITE_LIMIT_LENGTH`); uploads keep every row far
/// below it.
const MAX_VALUE_BYTES: c_int = 16 * 1024 * 1024;

/// A value bound to a `?` of generated SQL (filters).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    /// An integer.
    Int(i64),
    /// A float.
    Real(f64),
    /// Text.
    Text(String),
}

/// The caps one run works within.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunLimits {
    /// Rows delivered at most; one more is read to detect truncation.
    pub(crate) max_rows: usize,
    /// The estimated size of the delivered values, at most.
    pub(crate) max_bytes: usize,
    /// The time the statement may run.
    pub(crate) timeout: Duration,
}

/// Where a run's output goes.
pub(crate) trait RowSink {
    /// Called once, before any row, with the result's column names.
    fn columns(&mut self, names: Vec<String>) -> Result<(), DatasetError>;
    /// Called for each row, in order.
    fn row(&mut self, values: Vec<Value>) -> Result<(), DatasetError>;
}

/// Runs user `sql` (with `params`) on the dataset file at `path` under `limits`, feeding `sink`.
/// Returns whether rows were left unread because of `limits.max_rows`.
pub(crate) async fn run(
    path: &Path,
    sql: &str,
    params: Vec<Param>,
    limits: RunLimits,
    sink: &mut impl RowSink,
) -> Result<bool, DatasetError> {
    guard::check_single_select(sql)?;
    execute(path, sql, params, limits, sink).await
}

/// [`run`] without the lexical gate: the connection-level protections alone (tests prove each
/// holds on its own).
async fn execute(
    path: &Path,
    sql: &str,
    params: Vec<Param>,
    limits: RunLimits,
    sink: &mut impl RowSink,
) -> Result<bool, DatasetError> {
    let started = Instant::now();
    let deadline = started + limits.timeout;
    let timed_out = Arc::new(AtomicBool::new(false));
    let (mut conn, raw) = open_sandboxed(path, deadline, Arc::clone(&timed_out)).await?;

    let outcome =
        tokio::time::timeout(limits.timeout + BACKSTOP_SLACK, read_rows(&mut conn, sql, params, limits, sink)).await;
    let outcome = match outcome {
        Ok(result) => result,
        Err(_elapsed) => {
            // The progress handler did not fire in time (one VM step can be long, e.g. a sort).
            raw.interrupt();
            timed_out.store(true, Ordering::Relaxed);
            Err(DatasetError::Timeout)
        }
    };
    // Dropping the connection stops its worker thread; nothing was written, so nothing to flush.
    drop(conn);
    let outcome = match outcome {
        Err(_) if timed_out.load(Ordering::Relaxed) => Err(DatasetError::Timeout),
        other => other,
    };
    match &outcome {
        Ok(truncated) => {
            tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, truncated, "dataset query ran")
        }
        Err(DatasetError::Forbidden(reason)) => tracing::info!(%reason, "dataset query refused"),
        Err(DatasetError::Timeout) => {
            tracing::info!(timeout_ms = limits.timeout.as_millis() as u64, "dataset query timed out")
        }
        Err(err) => tracing::debug!(%err, "dataset query failed"),
    }
    outcome
}

async fn read_rows(
    conn: &mut SqliteConnection,
    sql: &str,
    params: Vec<Param>,
    limits: RunLimits,
    sink: &mut impl RowSink,
) -> Result<bool, DatasetError> {
    // Preparing runs the authorizer over the whole statement before a single row is produced.
    let statement = conn.prepare(AssertSqlSafe(sql.to_owned()).into_sql_str()).await.map_err(query_error)?;
    let names: Vec<String> = statement.columns().iter().map(|c| c.name().to_owned()).collect();
    // A column declared BOOLEAN holds 1/0; it goes out as JSON true/false.
    let booleans: Vec<bool> = statement.columns().iter().map(|c| c.type_info().name() == "BOOLEAN").collect();
    let mut bytes = names.iter().map(|n| n.len() + 3).sum::<usize>();
    if bytes > limits.max_bytes {
        return Err(DatasetError::TooLarge);
    }
    sink.columns(names)?;

    let mut query = sqlx::query(AssertSqlSafe(sql.to_owned()));
    for param in params {
        query = match param {
            Param::Int(v) => query.bind(v),
            Param::Real(v) => query.bind(v),
            Param::Text(v) => query.bind(v),
        };
    }
    let mut rows = query.fetch(&mut *conn);
    let mut delivered = 0usize;
    while let Some(row) = rows.try_next().await.map_err(query_error)? {
        if delivered == limits.max_rows {
            return Ok(true);
        }
        let values = row_values(&row, &booleans)?;
        bytes += values.iter().map(estimated_size).sum::<usize>();
        if bytes > limits.max_bytes {
            return Err(DatasetError::TooLarge);
        }
        sink.row(values)?;
        delivered += 1;
    }
    Ok(false)
}

/// Converts one row to JSON values by the storage class of each value (SQLite is dynamically
/// typed: an expression column has no declared type).
fn row_values(row: &SqliteRow, booleans: &[bool]) -> Result<Vec<Value>, DatasetError> {
    (0..row.len())
        .map(|i| {
            let raw = row.try_get_raw(i).map_err(query_error)?;
            if raw.is_null() {
                return Ok(Value::Null);
            }
            let storage = raw.type_info().name().to_owned();
            Ok(match storage.as_str() {
                "INTEGER" => {
                    let v: i64 = row.try_get_unchecked(i).map_err(query_error)?;
                    match (booleans.get(i), v) {
                        (Some(true), 0 | 1) => Value::Bool(v == 1),
                        _ => Value::from(v),
                    }
                }
                // NaN and infinities have no JSON spelling.
                "REAL" => serde_json::Number::from_f64(row.try_get_unchecked(i).map_err(query_error)?)
                    .map_or(Value::Null, Value::Number),
                "BLOB" => {
                    let blob: Vec<u8> = row.try_get_unchecked(i).map_err(query_error)?;
                    Value::String(blob.iter().map(|b| format!("{b:02x}")).collect())
                }
                _ => Value::String(row.try_get_unchecked(i).map_err(query_error)?),
            })
        })
        .collect()
}

/// Roughly the bytes a value takes in the JSON or CSV output.
pub(crate) fn estimated_size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len() + 3,
        Value::Null | Value::Bool(_) => 6,
        _ => 24,
    }
}

/// Maps an error of the user's statement. SQLite's messages are readable and say nothing about the
/// host beyond the dataset's own schema, so they are passed on.
fn query_error(err: sqlx::Error) -> DatasetError {
    match err {
        sqlx::Error::Database(db) => {
            let code = db.code().and_then(|c| c.parse::<c_int>().ok()).unwrap_or(ffi::SQLITE_ERROR);
            let message = db.message().to_owned();
            match code & 0xff {
                ffi::SQLITE_AUTH => DatasetError::Forbidden(message),
                // SQLite reports a function the authorizer denied as a plain SQLITE_ERROR.
                _ if message.starts_with("not authorized") => DatasetError::Forbidden(message),
                ffi::SQLITE_READONLY => DatasetError::Forbidden(message),
                ffi::SQLITE_INTERRUPT => DatasetError::Timeout,
                ffi::SQLITE_TOOBIG | ffi::SQLITE_NOMEM | ffi::SQLITE_FULL => DatasetError::TooLarge,
                _ => DatasetError::Query(message),
            }
        }
        sqlx::Error::ColumnDecode { source, .. } => DatasetError::Query(source.to_string()),
        other => DatasetError::storage(other),
    }
}

/// Opens `path` read-only and immutable, with no pragmas beyond sqlx's defaults, and hardens it.
async fn open_sandboxed(
    path: &Path,
    deadline: Instant,
    timed_out: Arc<AtomicBool>,
) -> Result<(SqliteConnection, RawDb), DatasetError> {
    let mut conn = open_reader(path).await?;
    let raw = {
        let mut handle = conn.lock_handle().await.map_err(DatasetError::storage)?;
        let raw = RawDb(handle.as_raw_handle());
        raw.harden()?;
        handle.set_progress_handler(PROGRESS_STEPS, move || {
            if Instant::now() < deadline {
                true
            } else {
                timed_out.store(true, Ordering::Relaxed);
                false
            }
        });
        raw
    };
    Ok((conn, raw))
}

/// A read-only, immutable connection to a dataset file, for the crate's own SQL or (hardened) for
/// user SQL. `immutable` means SQLite takes no locks and reads no journal: files are only ever
/// replaced whole by rename, never changed in place.
pub(crate) async fn open_reader(path: &Path) -> Result<SqliteConnection, DatasetError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(true)
        .create_if_missing(false)
        .statement_cache_capacity(4)
        .disable_statement_logging();
    options.connect().await.map_err(|err| match &err {
        sqlx::Error::Database(db) if db.code().and_then(|c| c.parse::<c_int>().ok()) == Some(ffi::SQLITE_CANTOPEN) => {
            DatasetError::NotFound
        }
        _ => DatasetError::storage(err),
    })
}

/// The raw handle of a query connection.
struct RawDb(NonNull<ffi::sqlite3>);

// SAFETY: the pointer is only dereferenced by SQLite itself: in `harden`, called while sqlx's
// `LockedSqliteHandle` keeps the worker thread off the handle, and in `interrupt`, which SQLite
// documents as safe to call from any thread while the connection is open.
unsafe impl Send for RawDb {}

impl RawDb {
    /// Applies the limits, configuration and authorizer described in the module docs.
    fn harden(&self) -> Result<(), DatasetError> {
        let db = self.0.as_ptr();
        let null = ptr::null_mut::<c_int>();
        // SAFETY: `db` is an open connection (its `SqliteConnection` is alive) and sqlx's lock
        // guarantees no other thread uses it during these calls. `sqlite3_db_config` with these ops
        // takes exactly (int, int*) variadic arguments; a NULL int* means "do not report back".
        // `authorize` matches the callback signature, never unwinds, and uses no user data.
        let codes = unsafe {
            ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_ATTACHED, 0);
            ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES);
            ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES as c_int);
            ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_TRIGGER_DEPTH, 0);
            [
                ffi::sqlite3_enable_load_extension(db, 0),
                ffi::sqlite3_db_config(db, ffi::SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0 as c_int, null),
                ffi::sqlite3_db_config(db, ffi::SQLITE_DBCONFIG_DEFENSIVE, 1 as c_int, null),
                ffi::sqlite3_db_config(db, ffi::SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0 as c_int, null),
                ffi::sqlite3_db_config(db, ffi::SQLITE_DBCONFIG_ENABLE_TRIGGER, 0 as c_int, null),
                ffi::sqlite3_db_config(db, ffi::SQLITE_DBCONFIG_ENABLE_VIEW, 0 as c_int, null),
                ffi::sqlite3_set_authorizer(db, Some(authorize), ptr::null_mut()),
            ]
        };
        // SAFETY: as above; a negative new value only reads the limit back.
        let attached = unsafe { ffi::sqlite3_limit(db, ffi::SQLITE_LIMIT_ATTACHED, -1) };
        if codes.iter().any(|&rc| rc != ffi::SQLITE_OK) || attached != 0 {
            // Refuse to run a query on a connection that is not fully locked down.
            return Err(DatasetError::storage(format!("could not harden the query connection: {codes:?}")));
        }
        Ok(())
    }

    /// Makes the running statement fail with `SQLITE_INTERRUPT` at its next check.
    fn interrupt(&self) {
        // SAFETY: the caller still owns the `SqliteConnection`, so the handle is open; SQLite
        // documents `sqlite3_interrupt` as safe from any thread while the connection is open.
        unsafe { ffi::sqlite3_interrupt(self.0.as_ptr()) }
    }
}

/// The authorizer callback: SQLite calls it for every action while it prepares a statement.
///
/// # Safety
/// Called by SQLite only, with NULL or NUL-terminated strings valid for the duration of the call.
unsafe extern "C" fn authorize(
    _user_data: *mut c_void,
    action: c_int,
    arg1: *const c_char,
    arg2: *const c_char,
    db_name: *const c_char,
    _trigger_or_view: *const c_char,
) -> c_int {
    let text = |p: *const c_char| {
        // SAFETY: see the function's safety section.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("\u{fffd}"))
    };
    let (arg1, arg2, db_name) = (text(arg1), text(arg2), text(db_name));
    if is_allowed(action, arg1, arg2, db_name) {
        ffi::SQLITE_OK
    } else {
        tracing::debug!(action, ?arg1, ?arg2, ?db_name, "dataset query action denied");
        ffi::SQLITE_DENY
    }
}

/// The authorizer's decision, as a pure function. `arg1`/`arg2` are the table and column for
/// `SQLITE_READ`, and NULL plus the function name for `SQLITE_FUNCTION`.
pub(crate) fn is_allowed(action: c_int, arg1: Option<&str>, arg2: Option<&str>, db_name: Option<&str>) -> bool {
    match action {
        ffi::SQLITE_SELECT | ffi::SQLITE_RECURSIVE => true,
        ffi::SQLITE_READ => match (arg1, db_name) {
            (Some(table), Some(db)) => db.eq_ignore_ascii_case("main") && is_readable_table(table),
            // A FROM item none of whose columns is used is reported with column "" and, unless
            // the query names a schema, no schema: it may be a CTE (any name) or a real table
            // written unqualified. The only real tables a dataset connection can name are `data`,
            // the schema table and the eponymous virtual tables, so those names are refused here.
            (Some(table), None) => arg2 == Some("") && (is_readable_table(table) || !is_system_table(table)),
            _ => false,
        },
        ffi::SQLITE_FUNCTION => {
            arg2.is_some_and(|name| ALLOWED_FUNCTIONS.contains(&name.to_ascii_lowercase().as_str()))
        }
        _ => false,
    }
}

/// Tables a query may read: the dataset, and the JSON table functions (which read only their
/// arguments).
const READABLE_TABLES: &[&str] = &["data", "json_each", "json_tree"];

fn is_readable_table(table: &str) -> bool {
    READABLE_TABLES.iter().any(|t| t.eq_ignore_ascii_case(table))
}

/// The schema tables (`sqlite_master`, `sqlite_schema`, `sqlite_temp_master`, …) and the
/// eponymous virtual tables of this build other than the JSON ones (`pragma_*`, `dbstat`).
fn is_system_table(table: &str) -> bool {
    let table = table.to_ascii_lowercase();
    table.starts_with("sqlite_") || table.starts_with("pragma_") || table == "dbstat"
}

/// Functions a query may call: SQLite's built-in scalar, aggregate, window, date, math and JSON
/// functions that compute from their arguments only. Everything else in the build (extension
/// loading, FTS and R-tree internals, compile-option probes) is refused.
const ALLOWED_FUNCTIONS: &[&str] = &[
    // core scalar (`->` and `->>` are the JSON operators)
    "->",
    "->>",
    "abs",
    "char",
    "coalesce",
    "concat",
    "concat_ws",
    "format",
    "glob",
    "hex",
    "if",
    "ifnull",
    "iif",
    "instr",
    "length",
    "like",
    "likelihood",
    "likely",
    "lower",
    "ltrim",
    "max",
    "min",
    "nullif",
    "octet_length",
    "printf",
    "quote",
    "random",
    "randomblob",
    "replace",
    "round",
    "rtrim",
    "sign",
    "soundex",
    "substr",
    "substring",
    "trim",
    "typeof",
    "unhex",
    "unicode",
    "unistr",
    "unistr_quote",
    "unlikely",
    "upper",
    "zeroblob",
    // aggregate
    "avg",
    "count",
    "group_concat",
    "string_agg",
    "sum",
    "total",
    "median",
    "percentile",
    "percentile_cont",
    "percentile_disc",
    // window
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // date and time
    "date",
    "time",
    "datetime",
    "julianday",
    "unixepoch",
    "strftime",
    "timediff",
    "current_date",
    "current_time",
    "current_timestamp",
    // math
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atan2",
    "atanh",
    "ceil",
    "ceiling",
    "cos",
    "cosh",
    "degrees",
    "exp",
    "floor",
    "ln",
    "log",
    "log10",
    "log2",
    "mod",
    "pi",
    "pow",
    "power",
    "radians",
    "sin",
    "sinh",
    "sqrt",
    "tan",
    "tanh",
    "trunc",
    // JSON (values in, values out)
    "json",
    "jsonb",
    "json_array",
    "jsonb_array",
    "json_array_length",
    "json_error_position",
    "json_extract",
    "jsonb_extract",
    "json_insert",
    "jsonb_insert",
    "json_object",
    "jsonb_object",
    "json_patch",
    "jsonb_patch",
    "json_pretty",
    "json_quote",
    "json_remove",
    "jsonb_remove",
    "json_replace",
    "jsonb_replace",
    "json_set",
    "jsonb_set",
    "json_type",
    "json_valid",
    "json_group_array",
    "jsonb_group_array",
    "json_group_object",
    "jsonb_group_object",
];

#[cfg(test)]
mod tests;
