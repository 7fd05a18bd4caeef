//! Limits that hold under abuse (issue 16): what unauthenticated clients can make the server keep.

mod common;

use std::collections::BTreeSet;

use agentry_server::AppConfig;
use agentry_store::StoreLocation;
use common::*;

/// Random HTTP methods and paths from anyone must not grow `/metrics`: methods and routes are
/// labels from a closed set (`other`, `unmatched`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_methods_and_paths_do_not_grow_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AppConfig::new(StoreLocation::Sqlite(dir.path().join("h.db")));
    config.bootstrap = replica_config_bootstrap();
    let mut replica = Replica::start(config);
    let client = reqwest::Client::new();
    let base = replica.base();
    let scrape = || async { client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap() };
    let before = scrape().await;
    for i in 0..300 {
        let method = reqwest::Method::from_bytes(format!("M{i}X").as_bytes()).unwrap();
        let _ = client.request(method, format!("{base}/api/v1/agent/threads")).send().await.unwrap();
        let _ = client.get(format!("{base}/no/such/path/{i}")).send().await.unwrap();
    }
    let after = scrape().await;
    let series = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter(|l| l.starts_with("agentry_http_requests_total{"))
            .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
            .collect()
    };
    let methods: BTreeSet<String> = series(&after)
        .iter()
        .filter_map(|s| s.split("method=\"").nth(1)?.split('"').next().map(str::to_owned))
        .collect();
    assert!(methods.iter().all(|m| ["GET", "POST", "other"].contains(&m.as_str())), "{methods:?}");
    assert!(series(&after).len() <= series(&before).len() + 4, "{:#?}", series(&after));
    assert!(after.len() < before.len() + 8_000, "/metrics grew from {} to {} bytes", before.len(), after.len());
    replica.stop();
}
