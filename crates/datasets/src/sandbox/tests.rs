use super::*;
use crate::UploadLimits;
use crate::upload::{table_from_csv, write_sqlite};

/// A dataset file with two rows, in a temporary directory.
async fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fixture.sqlite");
    let table = table_from_csv(b"n,name\n1,one\n2,two\n", &UploadLimits::default()).unwrap();
    write_sqlite(&table, &table.infer_kinds(), &path).await.unwrap();
    (dir, path)
}

#[derive(Default)]
struct Collect(Vec<String>, Vec<Vec<Value>>);
impl RowSink for Collect {
    fn columns(&mut self, names: Vec<String>) -> Result<(), DatasetError> {
        self.0 = names;
        Ok(())
    }
    fn row(&mut self, values: Vec<Value>) -> Result<(), DatasetError> {
        self.1.push(values);
        Ok(())
    }
}

const LIMITS: RunLimits = RunLimits { max_rows: 100, max_bytes: 1 << 20, timeout: Duration::from_secs(2) };

/// Runs `sql` past the lexical gate, straight on a hardened connection.
async fn unguarded(path: &Path, sql: &str) -> Result<Collect, DatasetError> {
    let mut sink = Collect::default();
    execute(path, sql, Vec::new(), LIMITS, &mut sink).await.map(|_| sink)
}

fn denied_by_authorizer(result: Result<Collect, DatasetError>) {
    match result {
        Err(DatasetError::Forbidden(message)) => {
            assert!(
                message.contains("not authorized") || message.contains("prohibited"),
                "denied, but not by the authorizer: {message}"
            );
        }
        Err(other) => panic!("expected Forbidden, got {other:?}"),
        Ok(c) => panic!("expected Forbidden, got rows {:?}", c.1),
    }
}

#[tokio::test]
async fn reads_of_data_and_of_ctes_run() {
    let (_dir, path) = fixture().await;
    let got = unguarded(&path, "SELECT count(*) AS c FROM data").await.unwrap();
    assert_eq!(got.1, vec![vec![Value::from(2)]]);
    let got = unguarded(&path, "WITH c AS (SELECT n FROM data) SELECT count(*) FROM c").await.unwrap();
    assert_eq!(got.1, vec![vec![Value::from(2)]]);
    let got = unguarded(&path, "SELECT value FROM json_each('[1,2,3]') ORDER BY value DESC LIMIT 1").await.unwrap();
    assert_eq!(got.1, vec![vec![Value::from(3)]]);
}

#[tokio::test]
async fn authorizer_alone_denies_writes_schema_changes_and_pragmas() {
    let (_dir, path) = fixture().await;
    for sql in [
        "DELETE FROM data",
        "INSERT INTO data VALUES (3, 'three')",
        "UPDATE data SET n = 0",
        "DROP TABLE data",
        "CREATE TABLE t(x)",
        "CREATE TEMP TABLE t(x)",
        "CREATE TEMP VIEW v AS SELECT 1",
        "ALTER TABLE data ADD COLUMN y",
        "PRAGMA writable_schema=1",
        "PRAGMA table_info(data)",
        "BEGIN",
        "SAVEPOINT s",
        "ANALYZE",
        "WITH x AS (SELECT 1) DELETE FROM data",
    ] {
        denied_by_authorizer(unguarded(&path, sql).await);
    }
}

#[tokio::test]
async fn authorizer_alone_denies_attach_and_a_second_statement() {
    let (dir, path) = fixture().await;
    let other = dir.path().join("other.sqlite");
    std::fs::copy(&path, &other).unwrap();
    denied_by_authorizer(unguarded(&path, &format!("ATTACH DATABASE '{}' AS x", other.display())).await);
    denied_by_authorizer(unguarded(&path, "SELECT 1; DELETE FROM data").await);
    denied_by_authorizer(unguarded(&path, "SELECT 1; ATTACH DATABASE ':memory:' AS y").await);
}

#[tokio::test]
async fn authorizer_alone_denies_schema_tables_and_unlisted_functions() {
    let (_dir, path) = fixture().await;
    for sql in [
        "SELECT * FROM sqlite_master",
        "SELECT count(*) FROM sqlite_master",
        "SELECT 1 FROM SQLITE_SCHEMA LIMIT 1",
        "SELECT count(*) FROM main.sqlite_master",
        "SELECT count(*) FROM pragma_database_list",
        "SELECT count(*) FROM dbstat",
        "SELECT name FROM sqlite_schema",
        "SELECT * FROM temp.sqlite_master",
        "SELECT * FROM pragma_table_info('data')",
        "SELECT * FROM pragma_database_list",
        "SELECT * FROM dbstat",
        "SELECT load_extension('x')",
        "SELECT fts3_tokenizer('simple')",
        "SELECT sqlite_compileoption_get(0)",
        "SELECT sqlite_source_id()",
    ] {
        denied_by_authorizer(unguarded(&path, sql).await);
    }
}

#[tokio::test]
async fn vacuum_into_writes_no_file_even_past_the_gate() {
    let (dir, path) = fixture().await;
    let copy = dir.path().join("copy.sqlite");
    // VACUUM has no authorizer action of its own, but VACUUM INTO attaches its target, which
    // the authorizer (and SQLITE_LIMIT_ATTACHED = 0) refuses.
    let result = unguarded(&path, &format!("VACUUM INTO '{}'", copy.display())).await;
    assert!(matches!(result, Err(DatasetError::Forbidden(_))), "{:?}", result.map(|c| c.1));
    assert!(!copy.exists());
}

#[test]
fn only_reads_of_data_are_allowed() {
    assert!(is_allowed(ffi::SQLITE_READ, Some("data"), Some("revenue"), Some("main")));
    assert!(is_allowed(ffi::SQLITE_READ, Some("data"), Some(""), Some("main")));
    assert!(is_allowed(ffi::SQLITE_READ, Some("my_cte"), Some(""), None));
    assert!(is_allowed(ffi::SQLITE_READ, Some("DATA"), Some(""), Some("main")));
    assert!(!is_allowed(ffi::SQLITE_READ, Some("SQLITE_MASTER"), Some(""), None));
    assert!(!is_allowed(ffi::SQLITE_READ, Some("pragma_database_list"), Some(""), None));
    assert!(!is_allowed(ffi::SQLITE_READ, Some("my_cte"), Some("x"), None));
    assert!(!is_allowed(ffi::SQLITE_READ, Some("sqlite_master"), Some("sql"), Some("main")));
    assert!(!is_allowed(ffi::SQLITE_READ, Some("data"), Some("x"), Some("other")));
    assert!(!is_allowed(ffi::SQLITE_READ, Some("data"), Some("x"), Some("temp")));
    assert!(!is_allowed(ffi::SQLITE_READ, Some("pragma_table_info"), Some("name"), Some("main")));
}

#[test]
fn writes_and_schema_changes_are_denied() {
    for action in [
        ffi::SQLITE_INSERT,
        ffi::SQLITE_UPDATE,
        ffi::SQLITE_DELETE,
        ffi::SQLITE_CREATE_TABLE,
        ffi::SQLITE_CREATE_TEMP_TABLE,
        ffi::SQLITE_CREATE_TEMP_VIEW,
        ffi::SQLITE_DROP_TABLE,
        ffi::SQLITE_ALTER_TABLE,
        ffi::SQLITE_PRAGMA,
        ffi::SQLITE_ATTACH,
        ffi::SQLITE_DETACH,
        ffi::SQLITE_TRANSACTION,
        ffi::SQLITE_SAVEPOINT,
        ffi::SQLITE_ANALYZE,
        ffi::SQLITE_REINDEX,
        ffi::SQLITE_CREATE_VTABLE,
    ] {
        assert!(!is_allowed(action, Some("data"), None, Some("main")), "action {action}");
    }
}

#[test]
fn functions_come_from_the_allowlist() {
    assert!(is_allowed(ffi::SQLITE_FUNCTION, None, Some("sum"), None));
    assert!(is_allowed(ffi::SQLITE_FUNCTION, None, Some("JSON_EXTRACT"), None));
    for name in ["load_extension", "fts3_tokenizer", "fts5", "sqlite_compileoption_get", "rtreenode"] {
        assert!(!is_allowed(ffi::SQLITE_FUNCTION, None, Some(name), None), "{name}");
    }
}
