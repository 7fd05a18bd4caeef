//! The dataset CSV reader (kept over the `csv` crate, see ARCHITECTURE.md): any upload is refused
//! or stored, never a panic; an accepted file has exactly as many rows as the `csv` crate reads
//! records in it, and the columns its header names.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    // The shared fixture's store; uploads go to their own id, beside the dataset the others query.
    let fixture = common::fixture();
    let Ok(info) = fixture.runtime.block_on(fixture.datasets.create_from_csv("upload", bytes)) else { return };
    let mut reader = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(bytes);
    let header = reader.headers().expect("the csv crate reads the header of an accepted file").clone();
    let records = reader.records().count();
    assert_eq!(info.row_count as usize, records, "rows of {:?}", String::from_utf8_lossy(bytes));
    assert_eq!(info.columns.len(), header.len(), "columns of {:?}", String::from_utf8_lossy(bytes));
});
