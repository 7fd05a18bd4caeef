//! Opening a Postgres store that cannot be used says why at once (issue 17): a refused
//! connection, a database that does not exist.

use std::time::{Duration, Instant};

use agentry_store::{Store, StoreLocation};

fn admin_url() -> String {
    std::env::var("AGENTRY_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[tokio::test]
async fn a_refused_connection_is_named_at_once() {
    // Port 1 on loopback: nothing listens there.
    let asked = Instant::now();
    let err =
        Store::open(&StoreLocation::Postgres("postgres://postgres@127.0.0.1:1/agentry".into())).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("Postgres refused the connection"), "{message}");
    assert!(asked.elapsed() < Duration::from_secs(3), "took {:?}", asked.elapsed());
    assert!(err.is_unavailable());
}

#[tokio::test]
async fn a_missing_database_says_how_to_create_it() {
    let admin = admin_url();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let err = Store::open(&StoreLocation::Postgres(format!("{base}/agentry_no_such_database"))).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("database `agentry_no_such_database` does not exist"), "{message}");
    assert!(message.contains("CREATE DATABASE agentry_no_such_database;"), "{message}");
}
