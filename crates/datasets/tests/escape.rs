//! Trying to break out of a dataset query: writes, other tables, other tenants' files, file and
//! extension functions, runaway and exploding queries. Every attempt must fail with the specific
//! error of the protection that stops it, and leave every dataset file byte-for-byte unchanged.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agentry_datasets::{DatasetError, Datasets, QueryLimits, QueryResult};
use sha2::{Digest, Sha256};

/// Only tenant B's dataset holds this; no query on tenant A's may ever return it.
const B_SECRET: &str = "B-SECRET-7f3a";

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    datasets: Datasets,
}

impl Fixture {
    /// Two tenants' datasets side by side in one directory (the worst case for isolation): A with
    /// 20 rows, B with a secret.
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("datasets");
        let datasets = Datasets::new(root.clone());
        let mut a = String::from("n,label\n");
        for i in 0..20 {
            a.push_str(&format!("{i},row {i}\n"));
        }
        datasets.create_from_csv("tenant_a", a.as_bytes()).await.unwrap();
        datasets.create_from_csv("tenant_b", format!("secret\n{B_SECRET}\n").as_bytes()).await.unwrap();
        Fixture { _dir: dir, root, datasets }
    }

    fn path(&self, id: &str) -> PathBuf {
        self.root.join(format!("{id}.sqlite"))
    }

    async fn query(&self, sql: &str) -> Result<QueryResult, DatasetError> {
        self.query_with(sql, QueryLimits::default()).await
    }

    async fn query_with(&self, sql: &str, limits: QueryLimits) -> Result<QueryResult, DatasetError> {
        let result = self.datasets.query_sql("tenant_a", sql, &limits).await;
        if let Ok(rows) = &result {
            assert!(!format!("{rows:?}").contains(B_SECRET), "{sql} leaked tenant B's data");
        }
        result
    }
}

fn hash(path: &Path) -> Vec<u8> {
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[track_caller]
fn assert_forbidden(sql: &str, result: Result<QueryResult, DatasetError>) -> String {
    match result {
        Err(DatasetError::Forbidden(message)) => message,
        other => panic!("{sql}: expected Forbidden, got {other:?}"),
    }
}

/// Denied by SQLite's authorizer (its messages), i.e. after getting past the lexical gate.
#[track_caller]
fn assert_denied_by_authorizer(sql: &str, result: Result<QueryResult, DatasetError>) {
    let message = assert_forbidden(sql, result);
    assert!(message.contains("not authorized") || message.contains("prohibited"), "{sql}: {message}");
}

#[tokio::test]
async fn writes_and_schema_changes_are_forbidden() {
    let fx = Fixture::new().await;
    for sql in [
        "INSERT INTO data VALUES (99, 'x')",
        "REPLACE INTO data VALUES (99, 'x')",
        "UPDATE data SET label = 'owned'",
        "DELETE FROM data",
        "DROP TABLE data",
        "CREATE TABLE t (x)",
        "CREATE TEMP TABLE t AS SELECT * FROM data",
        "CREATE INDEX i ON data (n)",
        "CREATE TRIGGER t AFTER INSERT ON data BEGIN DELETE FROM data; END",
        "ALTER TABLE data RENAME TO gone",
        "ALTER TABLE data ADD COLUMN extra",
        "BEGIN IMMEDIATE",
        "REINDEX",
        "ANALYZE",
    ] {
        assert_forbidden(sql, fx.query(sql).await);
    }
    // Statements that start like a query get past the lexical gate: the authorizer stops them.
    for sql in [
        "WITH x AS (SELECT 1) DELETE FROM data",
        "WITH x AS (SELECT 1) INSERT INTO data SELECT * FROM data",
        "WITH x AS (SELECT 1) UPDATE data SET n = 0",
    ] {
        assert_denied_by_authorizer(sql, fx.query(sql).await);
    }
    assert_eq!(fx.query("SELECT count(*) FROM data").await.unwrap().rows, vec![vec![serde_json::json!(20)]]);
}

#[tokio::test]
async fn pragmas_are_forbidden_in_every_form() {
    let fx = Fixture::new().await;
    for sql in ["PRAGMA writable_schema=1", "PRAGMA journal_mode=DELETE", "pragma table_info(data)"] {
        assert_forbidden(sql, fx.query(sql).await);
    }
    // Table-valued pragmas are reads of other tables.
    for sql in [
        "SELECT * FROM pragma_table_info('data')",
        "SELECT * FROM pragma_database_list",
        "SELECT count(*) FROM pragma_compile_options",
        "SELECT * FROM dbstat",
    ] {
        assert_denied_by_authorizer(sql, fx.query(sql).await);
    }
}

#[tokio::test]
async fn another_tenants_file_cannot_be_attached_or_read() {
    let fx = Fixture::new().await;
    let b = fx.path("tenant_b");
    let attach = format!("ATTACH DATABASE '{}' AS x", b.display());
    assert_forbidden(&attach, fx.query(&attach).await);
    let piggyback = format!("SELECT 1; ATTACH DATABASE '{}' AS x; SELECT * FROM x.data", b.display());
    assert_forbidden(&piggyback, fx.query(&piggyback).await);
    // Every query is a fresh connection, so nothing attached could outlive its statement anyway.
    match fx.query("SELECT * FROM x.data").await {
        Err(DatasetError::Query(message)) => assert!(message.contains("no such table"), "{message}"),
        other => panic!("expected no such table, got {other:?}"),
    }
    // A new file cannot be created through ATTACH either.
    let created = fx.root.join("created.sqlite");
    let attach_new = format!("ATTACH '{}' AS y", created.display());
    assert_forbidden(&attach_new, fx.query(&attach_new).await);
    assert!(!created.exists());
    // Tenant A sees its own rows, and only those.
    let own = fx.query("SELECT * FROM data").await.unwrap();
    assert_eq!(own.columns, ["n", "label"]);
    assert_eq!(own.rows.len(), 20);
}

#[tokio::test]
async fn the_schema_table_and_other_tables_are_invisible() {
    let fx = Fixture::new().await;
    for sql in [
        "SELECT * FROM sqlite_master",
        "SELECT sql FROM sqlite_schema",
        "SELECT count(*) FROM sqlite_master",
        "SELECT * FROM main.sqlite_master",
        "SELECT * FROM temp.sqlite_master",
        "SELECT * FROM data WHERE n IN (SELECT rootpage FROM sqlite_master)",
    ] {
        assert_denied_by_authorizer(sql, fx.query(sql).await);
    }
}

#[tokio::test]
async fn file_and_extension_functions_are_forbidden() {
    let fx = Fixture::new().await;
    for sql in [
        "SELECT load_extension('/tmp/evil.so')",
        "SELECT load_extension('x', 'sqlite3_x_init')",
        "SELECT readfile('/etc/passwd')",
        "SELECT writefile('/tmp/agentry-escape', 'x')",
        "SELECT fts3_tokenizer('simple')",
    ] {
        assert_forbidden(sql, fx.query(sql).await);
    }
    // Functions the lexical gate does not know are stopped by the authorizer's allowlist.
    for sql in ["SELECT sqlite_source_id()", "SELECT rtreenode(2, x'00')", "SELECT sqlite_log(1, 'noise')"] {
        assert_denied_by_authorizer(sql, fx.query(sql).await);
    }
}

#[tokio::test]
async fn a_second_statement_is_forbidden() {
    let fx = Fixture::new().await;
    for sql in ["SELECT 1; DELETE FROM data", "SELECT 1;SELECT 2", "SELECT ';'; DROP TABLE data --"] {
        let message = assert_forbidden(sql, fx.query(sql).await);
        assert!(message.contains("one statement"), "{sql}: {message}");
    }
    // Trailing semicolons and comments are not a second statement.
    assert!(fx.query("SELECT 1; -- done").await.is_ok());
}

#[tokio::test]
async fn vacuum_into_is_forbidden_and_writes_nothing() {
    let fx = Fixture::new().await;
    let target = fx.root.join("copy.sqlite");
    let tmp_target = std::env::temp_dir().join(format!("agentry-vacuum-escape-{}", std::process::id()));
    for path in [&target, &tmp_target] {
        let sql = format!("VACUUM INTO '{}'", path.display());
        assert_forbidden(&sql, fx.query(&sql).await);
        assert!(!path.exists(), "{} was written", path.display());
    }
}

#[tokio::test]
async fn a_runaway_recursive_query_times_out() {
    let fx = Fixture::new().await;
    let timeout = Duration::from_millis(500);
    let limits = QueryLimits { max_rows: 1000, timeout };
    let sql = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r";
    let started = Instant::now();
    let result = fx.query_with(sql, limits).await;
    let elapsed = started.elapsed();
    assert!(matches!(result, Err(DatasetError::Timeout)), "{result:?}");
    // The progress handler stops it at the deadline, well before the wall-clock backstop.
    assert!(elapsed >= timeout, "{elapsed:?}");
    assert!(elapsed < timeout + Duration::from_millis(400), "took {elapsed:?}");
    // A cartesian product too large to finish is stopped the same way.
    let sql = "SELECT count(*) FROM data a, data b, data c, data d, data e, data f, data g";
    assert!(matches!(fx.query_with(sql, limits).await, Err(DatasetError::Timeout)));
    // The next query is unaffected.
    assert!(fx.query("SELECT count(*) FROM data").await.is_ok());
}

#[tokio::test]
async fn exploding_rows_stop_at_the_row_cap() {
    let fx = Fixture::new().await;
    let result = fx.query("SELECT * FROM data a, data b, data c").await.unwrap();
    assert_eq!(result.rows.len(), 1000);
    assert!(result.truncated);
    // An endless result is cut at the cap as well, without waiting for the timeout.
    let started = Instant::now();
    let result =
        fx.query("WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT i FROM r").await.unwrap();
    assert_eq!(result.rows.len(), 1000);
    assert!(result.truncated);
    assert!(started.elapsed() < Duration::from_secs(1));
    // Asking for more than the cap gets the cap.
    let limits = QueryLimits { max_rows: 1_000_000, ..QueryLimits::default() };
    let result = fx.query_with("SELECT * FROM data a, data b, data c", limits).await.unwrap();
    assert_eq!(result.rows.len(), 1000);
}

#[tokio::test]
async fn huge_values_and_results_are_too_large() {
    let fx = Fixture::new().await;
    // Each row is 1 MB; well under 1000 rows exceed the result cap.
    let sql = "SELECT printf('%.*c', 1000000, 'x') FROM data a, data b";
    assert!(matches!(fx.query(sql).await, Err(DatasetError::TooLarge)));
    // One value over SQLITE_LIMIT_LENGTH fails inside SQLite.
    let sql = "SELECT length(randomblob(100000000))";
    assert!(matches!(fx.query(sql).await, Err(DatasetError::TooLarge)));
}

#[tokio::test]
async fn every_attempt_leaves_both_files_byte_for_byte_unchanged() {
    let fx = Fixture::new().await;
    let (a, b) = (fx.path("tenant_a"), fx.path("tenant_b"));
    let (a_before, b_before) = (hash(&a), hash(&b));
    let a_modified = std::fs::metadata(&a).unwrap().modified().unwrap();
    let limits = QueryLimits { max_rows: 1000, timeout: Duration::from_millis(300) };
    let attempts = [
        "INSERT INTO data VALUES (99, 'x')".to_owned(),
        "UPDATE data SET label = 'owned'".to_owned(),
        "DELETE FROM data".to_owned(),
        "DROP TABLE data".to_owned(),
        "CREATE TABLE t (x)".to_owned(),
        "ALTER TABLE data ADD COLUMN extra".to_owned(),
        "PRAGMA writable_schema=1".to_owned(),
        "PRAGMA user_version=7".to_owned(),
        "WITH x AS (SELECT 1) DELETE FROM data".to_owned(),
        "WITH x AS (SELECT 1) UPDATE data SET n = 0".to_owned(),
        format!("ATTACH DATABASE '{}' AS x", b.display()),
        format!("SELECT 1; ATTACH DATABASE '{}' AS x; DELETE FROM x.data", b.display()),
        "SELECT * FROM x.data".to_owned(),
        "SELECT * FROM sqlite_master".to_owned(),
        "SELECT load_extension('x')".to_owned(),
        "SELECT readfile('/etc/passwd')".to_owned(),
        "SELECT 1; DELETE FROM data".to_owned(),
        "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r".to_owned(),
        "SELECT * FROM data a, data b, data c".to_owned(),
        format!("VACUUM INTO '{}'", fx.root.join("copy.sqlite").display()),
        "VACUUM".to_owned(),
    ];
    for sql in &attempts {
        let result = fx.query_with(sql, limits).await;
        if let Ok(rows) = &result {
            assert!(sql.starts_with("SELECT * FROM data"), "{sql} should have failed: {rows:?}");
        }
        let export = fx.datasets.export_csv("tenant_a", Some(sql), &limits).await;
        if let Ok(csv) = &export {
            assert!(!String::from_utf8_lossy(csv).contains(B_SECRET), "{sql} leaked through export");
        }
        let _ = fx.datasets.query_filters("tenant_a", &[], &limits).await.unwrap();
    }
    assert_eq!(hash(&a), a_before, "tenant A's file changed");
    assert_eq!(hash(&b), b_before, "tenant B's file changed");
    assert_eq!(std::fs::metadata(&a).unwrap().modified().unwrap(), a_modified);
    let mut files: Vec<_> = std::fs::read_dir(&fx.root).unwrap().map(|e| e.unwrap().file_name()).collect();
    files.sort();
    assert_eq!(files, ["tenant_a.sqlite", "tenant_b.sqlite"], "no journal, copy or attached file appeared");
    // Tenant B still has its data; tenant A never saw it (checked on every result above).
    let b_rows = fx.datasets.query_sql("tenant_b", "SELECT secret FROM data", &QueryLimits::default()).await.unwrap();
    assert_eq!(b_rows.rows, vec![vec![serde_json::json!(B_SECRET)]]);
}
