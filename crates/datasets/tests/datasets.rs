//! Uploads, type inference, queries, filters, export and deletion through the public API.

use std::time::Duration;

use agentry_datasets::{Column, DatasetError, Datasets, Filter, FilterOp, QueryLimits, UploadLimits, ValueType};
use serde_json::{Value, json};

const SALES: &str = "product,revenue,units,day,active,sku,note\r\n\
widget,120.5,3,2024-01-05,true,007,\"plain\"\r\n\
gadget,80,2,2024-01-06,false,010,\"comma, inside\"\r\n\
widget,30,1,2024-02-01,TRUE,011,\"said \"\"hi\"\"\"\r\n\
doohickey,500,10,2024-02-11,false,012,\"two\nlines\"\r\n\
gadget,20,,2024-03-01,true,013,\r\n\
thingamajig,5,1,2024-03-02,,014,x\r\n";

fn store() -> (tempfile::TempDir, Datasets) {
    let dir = tempfile::tempdir().unwrap();
    let datasets = Datasets::new(dir.path().join("datasets"));
    (dir, datasets)
}

fn limits() -> QueryLimits {
    QueryLimits::default()
}

fn column(name: &str, value_type: ValueType) -> Column {
    Column { name: name.into(), value_type }
}

#[tokio::test]
async fn csv_upload_keeps_quotes_commas_and_newlines_and_infers_types() {
    let (_dir, datasets) = store();
    let info = datasets.create_from_csv("sales", SALES.as_bytes()).await.unwrap();
    assert_eq!(
        info.columns,
        vec![
            column("product", ValueType::Text),
            column("revenue", ValueType::Number),
            column("units", ValueType::Number),
            column("day", ValueType::Date),
            column("active", ValueType::Bool),
            column("sku", ValueType::Text),
            column("note", ValueType::Text),
        ]
    );
    assert_eq!(info.row_count, 6);
    assert!(info.bytes > 0);
    assert_eq!(datasets.info("sales").await.unwrap(), info);

    let result = datasets.query_sql("sales", "SELECT * FROM data ORDER BY rowid", &limits()).await.unwrap();
    assert_eq!(result.columns, ["product", "revenue", "units", "day", "active", "sku", "note"]);
    assert!(!result.truncated);
    assert_eq!(
        result.rows[0],
        vec![json!("widget"), json!(120.5), json!(3), json!("2024-01-05"), json!(true), json!("007"), json!("plain")]
    );
    assert_eq!(result.rows[1][6], json!("comma, inside"));
    assert_eq!(result.rows[2][4], json!(true), "TRUE in any case is a boolean");
    assert_eq!(result.rows[2][6], json!("said \"hi\""));
    assert_eq!(result.rows[3][6], json!("two\nlines"));
    assert_eq!(result.rows[4][2], Value::Null, "an empty cell is NULL");
    assert_eq!(result.rows[4][6], Value::Null);
    assert_eq!(result.rows[5][4], Value::Null);
    // Numbers are stored as numbers: arithmetic and numeric ordering work.
    let result =
        datasets.query_sql("sales", "SELECT typeof(revenue), revenue * 2 FROM data LIMIT 1", &limits()).await.unwrap();
    assert_eq!(result.rows, vec![vec![json!("real"), json!(241.0)]]);
}

#[tokio::test]
async fn erdo_docs_group_by_query_works() {
    let (_dir, datasets) = store();
    datasets.create_from_csv("sales", SALES.as_bytes()).await.unwrap();
    let result = datasets
        .query_sql(
            "sales",
            "SELECT product, SUM(revenue) AS revenue FROM data GROUP BY product ORDER BY revenue DESC LIMIT 5",
            &limits(),
        )
        .await
        .unwrap();
    assert_eq!(result.columns, ["product", "revenue"]);
    assert_eq!(
        result.rows,
        vec![
            vec![json!("doohickey"), json!(500.0)],
            vec![json!("widget"), json!(150.5)],
            vec![json!("gadget"), json!(100.0)],
            vec![json!("thingamajig"), json!(5.0)],
        ]
    );
}

#[tokio::test]
async fn json_array_of_objects_unions_keys_in_first_seen_order() {
    let (_dir, datasets) = store();
    let body = br#"[
        {"zeta": 1, "name": "a", "when": "2024-05-01T10:00:00Z"},
        {"name": "b", "zeta": 2.5, "flag": true, "when": "2024-05-02T11:30:00Z"},
        {"name": "c", "extra": {"k": [1, 2]}, "flag": false}
    ]"#;
    let info = datasets.create_from_json("records", body).await.unwrap();
    assert_eq!(
        info.columns,
        vec![
            column("zeta", ValueType::Number),
            column("name", ValueType::Text),
            column("when", ValueType::Date),
            column("flag", ValueType::Bool),
            column("extra", ValueType::Text),
        ]
    );
    assert_eq!(info.row_count, 3);
    let result = datasets.query_sql("records", "SELECT * FROM data", &limits()).await.unwrap();
    assert_eq!(result.rows[0], vec![json!(1.0), json!("a"), json!("2024-05-01T10:00:00Z"), Value::Null, Value::Null]);
    assert_eq!(result.rows[2][4], json!(r#"{"k":[1,2]}"#));
    let nested =
        datasets.query_sql("records", "SELECT extra ->> '$.k[1]' FROM data WHERE name = 'c'", &limits()).await.unwrap();
    assert_eq!(nested.rows, vec![vec![json!(2)]]);
}

#[tokio::test]
async fn json_columns_and_rows_shape() {
    let (_dir, datasets) = store();
    let body =
        br#"{"columns": ["city", "population"], "rows": [["Oslo", 709000], ["Bergen", 291000], ["Nowhere", null]]}"#;
    let info = datasets.create_from_json("cities", body).await.unwrap();
    assert_eq!(info.columns, vec![column("city", ValueType::Text), column("population", ValueType::Number)]);
    let result =
        datasets.query_sql("cities", "SELECT city FROM data WHERE population > 300000", &limits()).await.unwrap();
    assert_eq!(result.rows, vec![vec![json!("Oslo")]]);
}

#[tokio::test]
async fn bad_uploads_are_invalid_and_leave_nothing_behind() {
    let (dir, datasets) = store();
    datasets.create_from_csv("keep", b"a\n1\n").await.unwrap();
    let before = datasets.query_sql("keep", "SELECT * FROM data", &limits()).await.unwrap();

    for bad in [&b"a,,c\n1,2,3\n"[..], b"x,X\n1,2\n", b"a,b\n1,2,3\n", b"a\n\"unterminated\n", b"", b"\xff\xfe"] {
        let err = datasets.create_from_csv("keep", bad).await.unwrap_err();
        assert!(matches!(err, DatasetError::Invalid(_)), "{bad:?}: {err:?}");
    }
    let err = datasets.create_from_json("keep", b"[1, 2]").await.unwrap_err();
    assert!(matches!(err, DatasetError::Invalid(_)), "{err:?}");
    let err = datasets.create_from_json("keep", b"{not json").await.unwrap_err();
    assert!(matches!(err, DatasetError::Invalid(_)), "{err:?}");

    // The earlier dataset is untouched and no temporary file is left.
    assert_eq!(datasets.query_sql("keep", "SELECT * FROM data", &limits()).await.unwrap(), before);
    let files: Vec<_> =
        std::fs::read_dir(dir.path().join("datasets")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(files, ["keep.sqlite"]);
}

#[tokio::test]
async fn upload_caps_are_enforced() {
    let (_dir, datasets) = store();
    let small = datasets.clone().with_upload_limits(UploadLimits { max_bytes: 16, max_columns: 3, max_rows: 2 });
    assert!(matches!(small.create_from_csv("d", b"a,b\n1,2\n3,4\n5,6\n7,8\n").await, Err(DatasetError::TooLarge)));
    assert!(matches!(small.create_from_csv("d", b"a\n1\n2\n3\n").await, Err(DatasetError::TooLarge)));
    assert!(matches!(small.create_from_csv("d", b"a,b,c,d\n").await, Err(DatasetError::Invalid(_))));
    assert!(small.create_from_csv("d", b"a\n1\n2\n").await.is_ok());
}

#[tokio::test]
async fn ids_must_be_safe_file_stems() {
    let (_dir, datasets) = store();
    for id in ["", "../escape", "a/b", "a.b", "x y", "é"] {
        assert!(matches!(datasets.create_from_csv(id, b"a\n1\n").await, Err(DatasetError::Invalid(_))), "{id:?}");
        assert!(matches!(datasets.info(id).await, Err(DatasetError::Invalid(_))), "{id:?}");
    }
    assert!(datasets.create_from_csv("Ok_id-1", b"a\n1\n").await.is_ok());
}

#[tokio::test]
async fn missing_datasets_are_not_found_and_delete_removes() {
    let (_dir, datasets) = store();
    assert!(matches!(datasets.info("nope").await, Err(DatasetError::NotFound)));
    assert!(matches!(datasets.query_sql("nope", "SELECT 1", &limits()).await, Err(DatasetError::NotFound)));
    assert!(matches!(datasets.delete("nope").await, Err(DatasetError::NotFound)));
    datasets.create_from_csv("gone", b"a\n1\n").await.unwrap();
    datasets.delete("gone").await.unwrap();
    assert!(matches!(datasets.info("gone").await, Err(DatasetError::NotFound)));
    assert!(matches!(datasets.export_csv("gone", None, &limits()).await, Err(DatasetError::NotFound)));
}

#[tokio::test]
async fn sql_errors_are_readable_query_errors() {
    let (_dir, datasets) = store();
    datasets.create_from_csv("sales", SALES.as_bytes()).await.unwrap();
    for (sql, needle) in [
        ("SELECT nope FROM data", "no such column: nope"),
        ("SELECT * FROM data WHERE ) (", "syntax error"),
        ("SELECT * FROM missing_table", "no such table: missing_table"),
        ("", "empty"),
    ] {
        match datasets.query_sql("sales", sql, &limits()).await {
            Err(DatasetError::Query(message)) => assert!(message.contains(needle), "{sql}: {message}"),
            other => panic!("{sql}: expected a Query error, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn ctes_window_functions_and_json_each_are_allowed() {
    let (_dir, datasets) = store();
    datasets.create_from_csv("sales", SALES.as_bytes()).await.unwrap();
    let result = datasets
        .query_sql(
            "sales",
            "WITH w AS (SELECT product, revenue FROM data WHERE revenue > 25) \
             SELECT count(*) AS n, (SELECT product FROM w ORDER BY revenue DESC LIMIT 1) AS top FROM w",
            &limits(),
        )
        .await
        .unwrap();
    assert_eq!(result.rows, vec![vec![json!(4), json!("doohickey")]]);
    let ranked = datasets
        .query_sql(
            "sales",
            "SELECT product, rank() OVER (ORDER BY revenue DESC) AS r, strftime('%m', day) AS month \
             FROM data ORDER BY r LIMIT 2",
            &limits(),
        )
        .await
        .unwrap();
    assert_eq!(
        ranked.rows,
        vec![vec![json!("doohickey"), json!(1), json!("02")], vec![json!("widget"), json!(2), json!("01")]]
    );
    let each = datasets.query_sql("sales", "SELECT sum(value) FROM json_each('[1,2,3]')", &limits()).await.unwrap();
    assert_eq!(each.rows, vec![vec![json!(6)]]);
}

#[tokio::test]
async fn row_cap_truncates_and_reports_it() {
    let (_dir, datasets) = store();
    datasets.create_from_csv("sales", SALES.as_bytes()).await.unwrap();
    let capped = QueryLimits { max_rows: 4, timeout: Duration::from_secs(2) };
    let result = datasets.query_sql("sales", "SELECT product FROM data", &capped).await.unwrap();
    assert_eq!(result.rows.len(), 4);
    assert!(result.truncated);
    let exact = QueryLimits { max_rows: 6, ..capped };
    let result = datasets.query_sql("sales", "SELECT product FROM data", &exact).await.unwrap();
    assert_eq!(result.rows.len(), 6);
    assert!(!result.truncated);
}

async fn filtered(datasets: &Datasets, filters: Vec<Filter>) -> Result<Vec<String>, DatasetError> {
    let result = datasets.query_filters("sales", &filters, &limits()).await?;
    let product = result.columns.iter().position(|c| c == "product").unwrap();
    let sku = result.columns.iter().position(|c| c == "sku").unwrap();
    Ok(result.rows.iter().map(|r| format!("{}/{}", r[product].as_str().unwrap(), r[sku].as_str().unwrap())).collect())
}

fn filter(key: &str, operator: FilterOp, value: &[&str]) -> Filter {
    Filter { key: key.into(), operator, value: value.iter().map(|v| v.to_string()).collect() }
}

#[tokio::test]
async fn filters_cover_every_operator() {
    let (_dir, datasets) = store();
    datasets.create_from_csv("sales", SALES.as_bytes()).await.unwrap();
    let cases: Vec<(Vec<Filter>, Vec<&str>)> = vec![
        (vec![], vec!["widget/007", "gadget/010", "widget/011", "doohickey/012", "gadget/013", "thingamajig/014"]),
        (vec![filter("product", FilterOp::Equals, &["gadget"])], vec!["gadget/010", "gadget/013"]),
        (
            vec![filter("product", FilterOp::Equals, &["gadget", "doohickey"])],
            vec!["gadget/010", "doohickey/012", "gadget/013"],
        ),
        (vec![filter("product", FilterOp::NotEquals, &["widget", "gadget"])], vec!["doohickey/012", "thingamajig/014"]),
        (vec![filter("revenue", FilterOp::GreaterThan, &["80"])], vec!["widget/007", "doohickey/012"]),
        (vec![filter("revenue", FilterOp::LessThan, &["30"])], vec!["gadget/013", "thingamajig/014"]),
        (vec![filter("revenue", FilterOp::Between, &["20", "80"])], vec!["gadget/010", "widget/011", "gadget/013"]),
        (vec![filter("day", FilterOp::Between, &["2024-02-01", "2024-02-28"])], vec!["widget/011", "doohickey/012"]),
        (vec![filter("note", FilterOp::Contains, &["COMMA"])], vec!["gadget/010"]),
        (vec![filter("product", FilterOp::Contains, &["%"])], vec![]),
        (vec![filter("note", FilterOp::NotContains, &["i"])], vec!["gadget/013", "thingamajig/014"]),
        (vec![filter("active", FilterOp::Equals, &["true"])], vec!["widget/007", "widget/011", "gadget/013"]),
        (
            vec![filter("units", FilterOp::NotEquals, &["1"])],
            vec!["widget/007", "gadget/010", "doohickey/012", "gadget/013"],
        ),
        (
            vec![filter("product", FilterOp::Equals, &["widget"]), filter("revenue", FilterOp::GreaterThan, &["100"])],
            vec!["widget/007"],
        ),
    ];
    for (filters, expected) in cases {
        assert_eq!(filtered(&datasets, filters.clone()).await.unwrap(), expected, "{filters:?}");
    }
}

#[tokio::test]
async fn bad_filters_are_query_errors() {
    let (_dir, datasets) = store();
    datasets.create_from_csv("sales", SALES.as_bytes()).await.unwrap();
    for bad in [
        filter("no_such_column", FilterOp::Equals, &["x"]),
        filter("revenue", FilterOp::GreaterThan, &["lots"]),
        filter("revenue", FilterOp::Between, &["1", "2", "3"]),
        filter("product", FilterOp::Contains, &[]),
    ] {
        let err = filtered(&datasets, vec![bad.clone()]).await.unwrap_err();
        assert!(matches!(err, DatasetError::Query(_)), "{bad:?}: {err:?}");
    }
    // A filter key is a column name, never SQL.
    let err = filtered(&datasets, vec![filter("product\" OR 1=1 --", FilterOp::Equals, &["x"])]).await.unwrap_err();
    assert!(matches!(err, DatasetError::Query(ref m) if m.contains("unknown column")), "{err:?}");
    // An operand is bound, never SQL.
    let none = filtered(&datasets, vec![filter("product", FilterOp::Equals, &["x' OR '1'='1"])]).await.unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn export_writes_csv_that_uploads_back_to_the_same_table() {
    let (_dir, datasets) = store();
    datasets.create_from_csv("sales", SALES.as_bytes()).await.unwrap();
    let csv = datasets.export_csv("sales", None, &limits()).await.unwrap();
    let text = String::from_utf8(csv.clone()).unwrap();
    assert!(text.starts_with("product,revenue,units,day,active,sku,note\r\n"), "{text}");
    assert!(text.contains("\"said \"\"hi\"\"\""), "{text}");
    datasets.create_from_csv("copy", &csv).await.unwrap();
    let original = datasets.query_sql("sales", "SELECT * FROM data", &limits()).await.unwrap();
    let copy = datasets.query_sql("copy", "SELECT * FROM data", &limits()).await.unwrap();
    assert_eq!(original, copy);

    let query = datasets
        .export_csv(
            "sales",
            Some("SELECT product, sum(units) AS units FROM data GROUP BY product ORDER BY product"),
            &limits(),
        )
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(query).unwrap(),
        "product,units\r\ndoohickey,10\r\ngadget,2\r\nthingamajig,1\r\nwidget,4\r\n"
    );
    let err = datasets.export_csv("sales", Some("DELETE FROM data"), &limits()).await.unwrap_err();
    assert!(matches!(err, DatasetError::Forbidden(_)), "{err:?}");
}

#[tokio::test]
async fn re_upload_replaces_the_dataset() {
    let (_dir, datasets) = store();
    datasets.create_from_csv("d", b"a\n1\n").await.unwrap();
    let info = datasets.create_from_csv("d", b"b,c\nx,y\nz,w\n").await.unwrap();
    assert_eq!(info.row_count, 2);
    let result = datasets.query_sql("d", "SELECT * FROM data", &limits()).await.unwrap();
    assert_eq!(result.columns, ["b", "c"]);
}

#[tokio::test]
async fn wire_shapes_serialize_as_erdo_expects() {
    let filters: Vec<Filter> =
        serde_json::from_value(json!([{"key": "revenue", "operator": "between", "value": ["1", 2]}])).unwrap();
    assert_eq!(filters, vec![filter("revenue", FilterOp::Between, &["1", "2"])]);
    assert_eq!(serde_json::to_value(ValueType::Number).unwrap(), json!("number"));
    let (_dir, datasets) = store();
    datasets.create_from_csv("d", b"a\n1\n").await.unwrap();
    let result = datasets.query_sql("d", "SELECT a FROM data", &limits()).await.unwrap();
    assert_eq!(serde_json::to_value(&result).unwrap(), json!({"columns": ["a"], "rows": [[1]], "truncated": false}));
}

#[test]
fn the_store_and_its_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync + Clone>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let datasets = Datasets::new(std::path::PathBuf::from("/nonexistent"));
    send_sync(&datasets);
    let limits = QueryLimits::default();
    send(&datasets.create_from_csv("x", b""));
    send(&datasets.create_from_json("x", b""));
    send(&datasets.info("x"));
    send(&datasets.query_sql("x", "SELECT 1", &limits));
    send(&datasets.query_filters("x", &[], &limits));
    send(&datasets.export_csv("x", None, &limits));
    send(&datasets.delete("x"));
}
