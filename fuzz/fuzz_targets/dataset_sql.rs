//! User SQL over a dataset (the SQL guard, then the sandboxed read-only connection): any text is
//! answered or refused, never a panic, and nothing a query does changes a byte of the dataset or
//! leaves a file beside it.
#![no_main]

mod common;

use agentry_datasets::QueryLimits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|sql: &str| {
    let fixture = common::fixture();
    let limits = QueryLimits { max_rows: 50, timeout: std::time::Duration::from_millis(200) };
    let _ = fixture.runtime.block_on(fixture.datasets.query_sql(common::DATASET, sql, &limits));
    fixture.assert_untouched(sql);
});
