//! Erdo dataset filters (`[{"key","operator","value"}]`, built into parameterised SQL): any JSON
//! is refused or answered, never a panic; rows answered satisfy a filter `equals` on the text
//! column; the dataset is never changed.
#![no_main]

mod common;

use agentry_datasets::{Filter, FilterOp, QueryLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|json: &[u8]| {
    let Ok(filters) = serde_json::from_slice::<Vec<Filter>>(json) else { return };
    let fixture = common::fixture();
    let limits = QueryLimits { max_rows: 50, timeout: std::time::Duration::from_millis(200) };
    let answer = fixture.runtime.block_on(fixture.datasets.query_filters(common::DATASET, &filters, &limits));
    if let Ok(result) = answer {
        let name_column = result.columns.iter().position(|c| c == "name").expect("the name column");
        for filter in filters.iter().filter(|f| f.key == "name" && f.operator == FilterOp::Equals) {
            for row in &result.rows {
                let name = row[name_column].as_str().unwrap_or_default();
                assert!(filter.value.iter().any(|v| v == name), "{name:?} does not match {filter:?}");
            }
        }
    }
    fixture.assert_untouched(&String::from_utf8_lossy(json));
});
