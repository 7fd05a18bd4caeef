//! Turning an upload (CSV or JSON) into a [`Table`], inferring each column's type, and writing the
//! table into a fresh SQLite file.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection};

use crate::csv::{CsvReader, Field};
use crate::{DatasetError, UploadLimits, ValueType, quote_ident};

/// The longest a column name may be, in characters.
const MAX_COLUMN_NAME_CHARS: usize = 256;
/// The most text one row may hold; keeps every row far below the `SQLITE_LIMIT_LENGTH` that query
/// connections run with.
pub(crate) const MAX_ROW_BYTES: usize = 1024 * 1024;
/// Bound parameters per `INSERT` (SQLite allows 32766).
const MAX_PARAMS_PER_INSERT: usize = 30_000;
/// Rows per `INSERT`, to keep the statement text small.
const MAX_ROWS_PER_INSERT: usize = 500;

/// How a column is stored. The declared SQL type names it, so the file itself records the schema
/// (`info` reads it back) and there is no second table a query could see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    /// Every value is a whole number in `i64` range.
    Integer,
    /// Every value is a number, some not whole.
    Real,
    /// Every value is `true` or `false` (any case); stored as 1/0.
    Bool,
    /// Every value is an ISO-8601 date or date-time; stored as the text.
    Date,
    /// Anything else.
    Text,
}

impl ColumnKind {
    /// The declared type written into `CREATE TABLE`. `BOOLEAN` and `DATE` get NUMERIC affinity,
    /// which keeps 1/0 as integers and leaves ISO dates as text (they are not numeric literals).
    pub(crate) fn declared_type(self) -> &'static str {
        match self {
            ColumnKind::Integer => "INTEGER",
            ColumnKind::Real => "REAL",
            ColumnKind::Bool => "BOOLEAN",
            ColumnKind::Date => "DATE",
            ColumnKind::Text => "TEXT",
        }
    }

    /// Reads a declared type back.
    pub(crate) fn from_declared(declared: &str) -> Self {
        match declared.to_ascii_uppercase().as_str() {
            "INTEGER" => ColumnKind::Integer,
            "REAL" => ColumnKind::Real,
            "BOOLEAN" => ColumnKind::Bool,
            "DATE" => ColumnKind::Date,
            _ => ColumnKind::Text,
        }
    }

    /// The public type of a column stored this way.
    pub(crate) fn value_type(self) -> ValueType {
        match self {
            ColumnKind::Integer | ColumnKind::Real => ValueType::Number,
            ColumnKind::Bool => ValueType::Bool,
            ColumnKind::Date => ValueType::Date,
            ColumnKind::Text => ValueType::Text,
        }
    }
}

/// A parsed upload: column names and row-major cells. Cell text lives in one arena string, and each
/// cell is a `(start, len)` into it, so a 50 MiB upload does not become millions of small
/// allocations.
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) columns: Vec<String>,
    arena: String,
    cells: Vec<(u32, u32)>,
    max_rows: u64,
}

/// The cell marker for SQL NULL (an empty or missing value).
const NULL_CELL: (u32, u32) = (u32::MAX, 0);

impl Table {
    /// An empty table with checked column names.
    fn new(columns: Vec<String>, limits: &UploadLimits) -> Result<Self, DatasetError> {
        let columns = checked_columns(columns, limits)?;
        Ok(Table { columns, arena: String::new(), cells: Vec::new(), max_rows: limits.max_rows })
    }

    /// The number of rows.
    pub(crate) fn row_count(&self) -> usize {
        self.cells.len().checked_div(self.columns.len()).unwrap_or(0)
    }

    /// The cell at (`row`, `col`); `None` is NULL.
    pub(crate) fn cell(&self, row: usize, col: usize) -> Option<&str> {
        let (start, len) = self.cells[row * self.columns.len() + col];
        if (start, len) == NULL_CELL {
            return None;
        }
        Some(&self.arena[start as usize..start as usize + len as usize])
    }

    /// Appends a row of exactly `columns.len()` cells; empty text becomes NULL.
    fn push_row<'a>(&mut self, cells: impl IntoIterator<Item = Option<&'a str>>) -> Result<(), DatasetError> {
        if self.row_count() as u64 >= self.max_rows {
            tracing::debug!(max_rows = self.max_rows, "upload has too many rows");
            return Err(DatasetError::TooLarge);
        }
        let mut row_bytes = 0usize;
        for cell in cells {
            let entry = match cell {
                None | Some("") => NULL_CELL,
                Some(text) => {
                    row_bytes += text.len();
                    let start = u32::try_from(self.arena.len()).map_err(|_| DatasetError::TooLarge)?;
                    let len = u32::try_from(text.len()).map_err(|_| DatasetError::TooLarge)?;
                    if start.checked_add(len).is_none_or(|end| end == u32::MAX) {
                        return Err(DatasetError::TooLarge);
                    }
                    self.arena.push_str(text);
                    (start, len)
                }
            };
            self.cells.push(entry);
        }
        if row_bytes > MAX_ROW_BYTES {
            return Err(DatasetError::Invalid(format!(
                "row {} holds {row_bytes} bytes; a row may hold at most {MAX_ROW_BYTES}",
                self.row_count()
            )));
        }
        Ok(())
    }

    /// Infers every column's [`ColumnKind`] from all of its values.
    pub(crate) fn infer_kinds(&self) -> Vec<ColumnKind> {
        (0..self.columns.len())
            .map(|col| infer_kind((0..self.row_count()).filter_map(|row| self.cell(row, col))))
            .collect()
    }
}

/// Trims the names, and refuses empty, over-long, duplicate (case-insensitively, as SQLite compares
/// identifiers) or too many of them.
fn checked_columns(names: Vec<String>, limits: &UploadLimits) -> Result<Vec<String>, DatasetError> {
    if names.is_empty() {
        return Err(DatasetError::Invalid("the upload has no columns".into()));
    }
    if names.len() > limits.max_columns {
        return Err(DatasetError::Invalid(format!(
            "the upload has {} columns; at most {} are allowed",
            names.len(),
            limits.max_columns
        )));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        let name = name.trim().to_owned();
        if name.is_empty() {
            return Err(DatasetError::Invalid(format!("column {} has an empty name", i + 1)));
        }
        if name.chars().count() > MAX_COLUMN_NAME_CHARS {
            return Err(DatasetError::Invalid(format!(
                "column {} has a name longer than {MAX_COLUMN_NAME_CHARS} characters",
                i + 1
            )));
        }
        if name.contains('\0') {
            return Err(DatasetError::Invalid(format!("column {} has a NUL character in its name", i + 1)));
        }
        if let Some(first) = seen.insert(name.to_ascii_lowercase(), i) {
            return Err(DatasetError::Invalid(format!(
                "columns {} and {} are both named {name:?} (names are case-insensitive)",
                first + 1,
                i + 1
            )));
        }
        out.push(name);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Parses a CSV upload: the first record is the header.
pub(crate) fn table_from_csv(bytes: &[u8], limits: &UploadLimits) -> Result<Table, DatasetError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| DatasetError::Invalid(format!("the CSV is not UTF-8 (byte {})", e.valid_up_to())))?;
    let mut reader = CsvReader::new(text);
    let mut fields: Vec<Field> = Vec::new();
    if reader.next_record(&mut fields)?.is_none() {
        return Err(DatasetError::Invalid("the CSV is empty; the first line must name the columns".into()));
    }
    let header = fields.iter().map(|f| f.text(text).into_owned()).collect();
    let mut table = Table::new(header, limits)?;
    let width = table.columns.len();
    while let Some(line) = reader.next_record(&mut fields)? {
        if fields.len() != width {
            return Err(DatasetError::Invalid(format!(
                "CSV line {line}: {} fields, but the header names {width} columns",
                fields.len()
            )));
        }
        let input = reader.input();
        let cells: Vec<_> = fields.iter().map(|f| f.text(input)).collect();
        table.push_row(cells.iter().map(|c| Some(c.as_ref())))?;
    }
    Ok(table)
}

// ---------------------------------------------------------------------------------------------
// JSON

/// Parses a JSON upload: an array of objects (keys are columns, their union in first-seen order) or
/// `{"columns": [names], "rows": [[values]]}`. Scalars become cell text, `null` and `""` become
/// NULL, nested arrays and objects are kept as JSON text.
pub(crate) fn table_from_json(bytes: &[u8], limits: &UploadLimits) -> Result<Table, DatasetError> {
    let upload: JsonUpload = serde_json::from_slice(bytes).map_err(|e| DatasetError::Invalid(format!("JSON: {e}")))?;
    match upload {
        JsonUpload::Records(records) => {
            let mut index: HashMap<&str, usize> = HashMap::new();
            let mut columns: Vec<String> = Vec::new();
            for record in &records {
                for (key, _) in record {
                    if !index.contains_key(key.as_str()) {
                        index.insert(key, columns.len());
                        columns.push(key.clone());
                    }
                }
            }
            if columns.is_empty() && records.is_empty() {
                return Err(DatasetError::Invalid("the JSON array is empty, so it names no columns".into()));
            }
            let mut table = Table::new(columns, limits)?;
            let mut row: Vec<Option<&str>> = Vec::with_capacity(table.columns.len());
            for record in &records {
                row.clear();
                row.resize(table.columns.len(), None);
                for (key, value) in record {
                    // Every key was indexed above; a later duplicate key in one object wins.
                    if let Some(&i) = index.get(key.as_str()) {
                        row[i] = value.as_deref();
                    }
                }
                table.push_row(row.iter().copied())?;
            }
            Ok(table)
        }
        JsonUpload::Columns { columns, rows } => {
            let mut table = Table::new(columns, limits)?;
            let width = table.columns.len();
            for (i, row) in rows.iter().enumerate() {
                if row.len() != width {
                    return Err(DatasetError::Invalid(format!(
                        "JSON row {i} has {} values, but there are {width} columns",
                        row.len()
                    )));
                }
                table.push_row(row.iter().map(|c| c.as_deref()))?;
            }
            Ok(table)
        }
    }
}

/// The two accepted JSON shapes. Deserialized by hand because `serde_json::Map` sorts keys (the
/// workspace does not enable `preserve_order`), and the column order must be the document's.
enum JsonUpload {
    Records(Vec<Vec<(String, Option<String>)>>),
    Columns { columns: Vec<String>, rows: Vec<Vec<Option<String>>> },
}

impl<'de> Deserialize<'de> for JsonUpload {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UploadVisitor;
        impl<'de> Visitor<'de> for UploadVisitor {
            type Value = JsonUpload;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of objects or {\"columns\": [...], \"rows\": [[...]]}")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonUpload, A::Error> {
                let mut records = Vec::new();
                while let Some(record) = seq.next_element_seed(RecordSeed)? {
                    records.push(record);
                }
                Ok(JsonUpload::Records(records))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonUpload, A::Error> {
                let mut columns: Option<Vec<String>> = None;
                let mut rows: Option<Vec<Vec<Option<String>>>> = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "columns" => columns = Some(map.next_value()?),
                        "rows" => rows = Some(map.next_value::<Vec<Vec<Cell>>>()?.into_iter().map(cells).collect()),
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                let columns = columns.ok_or_else(|| de::Error::missing_field("columns"))?;
                Ok(JsonUpload::Columns { columns, rows: rows.unwrap_or_default() })
            }
        }
        deserializer.deserialize_any(UploadVisitor)
    }
}

fn cells(row: Vec<Cell>) -> Vec<Option<String>> {
    row.into_iter().map(|c| c.0).collect()
}

/// One object of the array shape, its entries in document order.
struct RecordSeed;

impl<'de> DeserializeSeed<'de> for RecordSeed {
    type Value = Vec<(String, Option<String>)>;
    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        struct RecordVisitor;
        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = Vec<(String, Option<String>)>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object (one row)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, Cell>()? {
                    entries.push((key, value.0));
                }
                Ok(entries)
            }
        }
        deserializer.deserialize_map(RecordVisitor)
    }
}

/// A JSON value as cell text: `null` is `None`; numbers and booleans their JSON spelling; arrays and
/// objects their compact JSON.
struct Cell(Option<String>);

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CellVisitor;
        impl<'de> Visitor<'de> for CellVisitor {
            type Value = Cell;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Cell, E> {
                Ok(Cell(None))
            }
            fn visit_none<E>(self) -> Result<Cell, E> {
                Ok(Cell(None))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_string())))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Cell, E> {
                Ok(Cell(Some(serde_json::Value::from(v).to_string())))
            }
            fn visit_str<E>(self, v: &str) -> Result<Cell, E> {
                Ok(Cell(Some(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Cell, E> {
                Ok(Cell(Some(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Cell, A::Error> {
                let value = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Cell(Some(value.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Cell, A::Error> {
                let value = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Cell(Some(value.to_string())))
            }
        }
        deserializer.deserialize_any(CellVisitor)
    }
}

// ---------------------------------------------------------------------------------------------
// Type inference

/// The narrowest kind every non-NULL value fits: bool, then integer, then number, then date, else
/// text. A column of only NULLs is text.
fn infer_kind<'a>(values: impl Iterator<Item = &'a str>) -> ColumnKind {
    let (mut any, mut all_bool, mut all_int, mut all_num, mut all_date) = (false, true, true, true, true);
    for value in values {
        any = true;
        let v = value.trim();
        all_bool = all_bool && parse_bool(v).is_some();
        all_int = all_int && parse_integer(v).is_some();
        all_num = all_num && parse_number(v).is_some();
        all_date = all_date && is_iso_date(v);
        if !(all_bool || all_int || all_num || all_date) {
            return ColumnKind::Text;
        }
    }
    match () {
        _ if !any => ColumnKind::Text,
        _ if all_bool => ColumnKind::Bool,
        _ if all_int => ColumnKind::Integer,
        _ if all_num => ColumnKind::Real,
        _ if all_date => ColumnKind::Date,
        _ => ColumnKind::Text,
    }
}

/// `true`/`false` in any case.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// Whether `v` is a plain decimal literal: `-?digits(.digits)?([eE][+-]?digits)?`, with no leading
/// zero before another digit (so `007` and ZIP codes like `02134` stay text).
fn is_numeric_literal(v: &str) -> bool {
    let b = v.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let int_len = i - int_start;
    if int_len == 0 || (int_len > 1 && b[int_start] == b'0') {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == frac_start {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

/// A whole number in `i64` range, written without fraction or exponent.
pub(crate) fn parse_integer(v: &str) -> Option<i64> {
    if !is_numeric_literal(v) || v.contains(['.', 'e', 'E']) {
        return None;
    }
    v.parse().ok()
}

/// A finite number.
pub(crate) fn parse_number(v: &str) -> Option<f64> {
    if !is_numeric_literal(v) {
        return None;
    }
    v.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// `YYYY-MM-DD`, optionally followed by a time (`T` or space, `HH:MM[:SS[.fff]]`, optional `Z` or
/// offset). The date part must be a real calendar date.
fn is_iso_date(v: &str) -> bool {
    let b = v.as_bytes();
    // `get` and not `[..10]`: the tenth byte may be inside a multi-byte character.
    let Some(date) = v.get(..10) else { return false };
    if !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    if chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
        return false;
    }
    if b.len() == 10 {
        return true;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return false;
    }
    let normalised = format!("{date}T{}", &v[11..]);
    chrono::DateTime::parse_from_rfc3339(&normalised).is_ok()
        || ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
            .iter()
            .any(|format| chrono::NaiveDateTime::parse_from_str(&normalised, format).is_ok())
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Writes `table` as the `data` table of a new SQLite file at `path` (which must not exist).
///
/// The file is built without a journal: it is a temporary file that the caller renames into place
/// only after this returns, and deletes on any error, so a crash leaves at worst a stray temporary.
pub(crate) async fn write_sqlite(table: &Table, kinds: &[ColumnKind], path: &Path) -> Result<(), DatasetError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Off)
        .synchronous(SqliteSynchronous::Off)
        .foreign_keys(false)
        .disable_statement_logging();
    let mut conn = options.connect().await.map_err(DatasetError::storage)?;

    let columns: Vec<String> = table
        .columns
        .iter()
        .zip(kinds)
        .map(|(name, kind)| format!("{} {}", quote_ident(name), kind.declared_type()))
        .collect();
    let create = format!("CREATE TABLE data ({})", columns.join(", "));
    sqlx::query(AssertSqlSafe(create)).execute(&mut conn).await.map_err(DatasetError::storage)?;

    let width = table.columns.len();
    let per_insert = (MAX_PARAMS_PER_INSERT / width).clamp(1, MAX_ROWS_PER_INSERT);
    let row_placeholders = format!("({})", vec!["?"; width].join(","));
    let mut tx = conn.begin().await.map_err(DatasetError::storage)?;
    let rows = table.row_count();
    let mut start = 0;
    while start < rows {
        let end = (start + per_insert).min(rows);
        let sql = format!("INSERT INTO data VALUES {}", vec![row_placeholders.as_str(); end - start].join(","));
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for row in start..end {
            for (col, kind) in kinds.iter().enumerate() {
                let cell = table.cell(row, col).map(str::trim);
                query = match kind {
                    ColumnKind::Integer => query.bind(cell.and_then(parse_integer)),
                    ColumnKind::Real => query.bind(cell.and_then(parse_number)),
                    ColumnKind::Bool => query.bind(cell.and_then(parse_bool).map(i64::from)),
                    ColumnKind::Date => query.bind(cell),
                    // Text keeps its surrounding spaces: only typed values are trimmed.
                    ColumnKind::Text => query.bind(table.cell(row, col)),
                };
            }
        }
        query.execute(&mut *tx).await.map_err(DatasetError::storage)?;
        start = end;
    }
    tx.commit().await.map_err(DatasetError::storage)?;
    conn.close().await.map_err(DatasetError::storage)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> UploadLimits {
        UploadLimits::default()
    }

    #[test]
    fn numbers_need_the_whole_column_and_keep_leading_zeros_as_text() {
        assert_eq!(infer_kind(["1", "-2", " 30 "].into_iter()), ColumnKind::Integer);
        assert_eq!(infer_kind(["1", "2.5", "1e3"].into_iter()), ColumnKind::Real);
        assert_eq!(infer_kind(["1", "two"].into_iter()), ColumnKind::Text);
        assert_eq!(infer_kind(["02134", "10001"].into_iter()), ColumnKind::Text);
        assert_eq!(infer_kind(["0", "0.5"].into_iter()), ColumnKind::Real);
        assert_eq!(infer_kind(["NaN", "inf"].into_iter()), ColumnKind::Text);
        assert_eq!(infer_kind(["99999999999999999999"].into_iter()), ColumnKind::Real);
    }

    #[test]
    fn bools_dates_and_empty_columns() {
        assert_eq!(infer_kind(["true", "FALSE"].into_iter()), ColumnKind::Bool);
        assert_eq!(
            infer_kind(["2024-01-31", "2024-02-01T10:00:00Z", "2024-03-01 08:30"].into_iter()),
            ColumnKind::Date
        );
        assert_eq!(infer_kind(["2024-02-30"].into_iter()), ColumnKind::Text);
        assert_eq!(infer_kind(["2024-01-01", "soon"].into_iter()), ColumnKind::Text);
        // Found by the `dataset_csv` fuzz target: a multi-byte character across the tenth byte.
        assert_eq!(infer_kind(["2026-01-0ϡ00:80z00Z", "2026-01-0é"].into_iter()), ColumnKind::Text);
        assert_eq!(infer_kind(std::iter::empty()), ColumnKind::Text);
    }

    #[test]
    fn csv_header_rules() {
        let err = table_from_csv(b"a,,c\n1,2,3\n", &limits()).unwrap_err();
        assert!(matches!(err, DatasetError::Invalid(ref m) if m.contains("column 2 has an empty name")), "{err}");
        let err = table_from_csv(b"Name,name\n1,2\n", &limits()).unwrap_err();
        assert!(matches!(err, DatasetError::Invalid(ref m) if m.contains("both named")), "{err}");
        let err = table_from_csv(b"", &limits()).unwrap_err();
        assert!(matches!(err, DatasetError::Invalid(_)), "{err}");
        let err = table_from_csv(b"a,b\n1,2,3\n", &limits()).unwrap_err();
        assert!(matches!(err, DatasetError::Invalid(ref m) if m.contains("line 2")), "{err}");
        let wide = (0..5).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",");
        let small = UploadLimits { max_columns: 4, ..limits() };
        assert!(matches!(table_from_csv(wide.as_bytes(), &small), Err(DatasetError::Invalid(_))));
    }

    #[test]
    fn row_cap_is_too_large() {
        let small = UploadLimits { max_rows: 2, ..limits() };
        assert!(matches!(table_from_csv(b"a\n1\n2\n3\n", &small), Err(DatasetError::TooLarge)));
        assert!(table_from_csv(b"a\n1\n2\n", &small).is_ok());
    }

    #[test]
    fn json_records_keep_first_seen_key_order() {
        let json = br#"[{"zeta": 1, "alpha": "x"}, {"mid": true, "zeta": 2}, {"alpha": null, "nested": {"b": 1, "a": [1,2]}}]"#;
        let table = table_from_json(json, &limits()).unwrap();
        assert_eq!(table.columns, ["zeta", "alpha", "mid", "nested"]);
        assert_eq!(table.row_count(), 3);
        assert_eq!(table.cell(1, 0), Some("2"));
        assert_eq!(table.cell(1, 1), None);
        assert_eq!(table.cell(1, 2), Some("true"));
        assert_eq!(table.cell(2, 3), Some(r#"{"a":[1,2],"b":1}"#));
    }

    #[test]
    fn json_columns_shape_and_its_errors() {
        let table = table_from_json(br#"{"columns": ["a", "b"], "rows": [[1, "x"], [2.5, null]]}"#, &limits()).unwrap();
        assert_eq!(table.columns, ["a", "b"]);
        assert_eq!(table.cell(1, 0), Some("2.5"));
        let err = table_from_json(br#"{"columns": ["a", "b"], "rows": [[1]]}"#, &limits()).unwrap_err();
        assert!(matches!(err, DatasetError::Invalid(ref m) if m.contains("row 0")), "{err}");
        assert!(matches!(table_from_json(br#"[1, 2]"#, &limits()), Err(DatasetError::Invalid(_))));
        assert!(matches!(table_from_json(br#"{"rows": []}"#, &limits()), Err(DatasetError::Invalid(_))));
        assert!(matches!(table_from_json(br#"[]"#, &limits()), Err(DatasetError::Invalid(_))));
        assert!(matches!(table_from_json(br#"[{"": 1}]"#, &limits()), Err(DatasetError::Invalid(_))));
    }
}
