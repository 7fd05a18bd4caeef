//! Two stores on one SQLite file — `agentry serve` and an `agentry keys …` or a second process
//! beside it — take turns at writing instead of failing with "database is locked".

mod common;

use agentry_core::Scope;
use agentry_store::{Store, StoreLocation};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_sqlite_file_both_write_read_then_write_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let location = StoreLocation::Sqlite(dir.path().join("shared.db"));
    let first = Store::open(&location).await.unwrap();
    let second = Store::open(&location).await.unwrap();
    let scope = Scope::default_scope();
    // `apply_agent` reads the current version and then writes a new one: the transaction shape
    // that a deferred BEGIN cannot upgrade while the other store writes.
    let writer = |store: Store, id: &'static str| {
        let scope = scope.clone();
        tokio::spawn(async move {
            for round in 0..60 {
                let spec = common::spec(id, &format!("prompt {round}"));
                store.apply_agent(&scope, &spec, "test", None).await.map_err(|e| format!("{id} round {round}: {e}"))?;
            }
            Ok::<_, String>(())
        })
    };
    let (a, b) = tokio::join!(writer(first.clone(), "a"), writer(second.clone(), "b"));
    a.unwrap().unwrap();
    b.unwrap().unwrap();
    for (store, id) in [(&first, "a"), (&second, "b")] {
        let agent = store.get_agent(&scope, id).await.unwrap().unwrap();
        assert_eq!(agent.version_number, 60, "{id}");
    }
    first.close().await;
    second.close().await;
}
