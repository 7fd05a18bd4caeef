//! The API document (issue 17): generated from the route table, it lists every public endpoint
//! with its credentials and error body, is served at `/openapi.json` with the reference page at
//! `/docs`, and is pinned by a snapshot so that any change to the API shows in review. Rewrite the
//! snapshot with `UPDATE_SNAPSHOTS=1 cargo test -p agentry-server --test openapi`.

use std::collections::BTreeSet;

use agentry_server::app::{App, AppConfig};
use agentry_server::openapi::document;
use agentry_server::routes::public_endpoints;
use agentry_store::StoreLocation;
use axum::body::{Body, to_bytes};
use axum::http::Request;
use serde_json::Value;
use tower::ServiceExt as _;

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/openapi.json");

fn generated() -> Value {
    serde_json::to_value(document()).unwrap()
}

#[test]
fn the_document_lists_every_public_endpoint_with_credentials_and_errors() {
    let doc = generated();
    assert_eq!(doc["openapi"], "3.1.0");
    let listed: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| item.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
        .collect();
    let routed: BTreeSet<(String, String)> =
        public_endpoints().into_iter().map(|(_, path, e)| (e.verb.as_str().to_owned(), path)).collect();
    assert_eq!(listed, routed, "the document and the route table differ");
    assert!(routed.len() > 90, "{} endpoints", routed.len());
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            assert!(!op["summary"].as_str().unwrap_or("").is_empty(), "{what} has no summary");
            if path.starts_with("/api/v1/agent") || !matches!(op["tags"][0].as_str(), Some("Server")) {
                let schemes: Vec<&str> = op["security"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .flat_map(|s| s.as_object().unwrap().keys())
                    .map(String::as_str)
                    .collect();
                assert!(schemes.contains(&"apiKey"), "{what}: {schemes:?}");
                assert_eq!(op["responses"]["404"]["$ref"], "#/components/responses/NotFound", "{what}");
            }
            let placeholders = path.matches('{').count();
            let params = op["parameters"].as_array().map_or(0, |all| all.iter().filter(|p| p["in"] == "path").count());
            assert_eq!(placeholders, params, "{what}: path parameters");
        }
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ErrorBody",
        "Thread",
        "CreateThread",
        "SendMessage",
        "NewBudgetCap",
        "ErdoCreateThread",
        "QueryBody",
        "AgentSpec",
        "StreamEvent",
        "TurnEvent",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    let not_found = &doc["components"]["responses"]["NotFound"]["content"]["application/json"]["schema"]["$ref"];
    assert_eq!(not_found, "#/components/schemas/ErrorBody");
    assert_eq!(schemas["ErrorBody"]["required"], serde_json::json!(["statusCode", "error", "message"]));
}

#[test]
fn the_document_matches_its_snapshot() {
    let text = serde_json::to_string_pretty(&generated()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(SNAPSHOT, &text).unwrap();
        return;
    }
    let pinned = std::fs::read_to_string(SNAPSHOT).unwrap_or_default();
    assert!(
        pinned == text,
        "the API document changed: review the difference and rewrite the snapshot with \
         UPDATE_SNAPSHOTS=1 cargo test -p agentry-server --test openapi"
    );
}

#[tokio::test]
async fn the_server_serves_the_document_and_its_reference_page() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::build(AppConfig::new(StoreLocation::Sqlite(dir.path().join("o.db")))).await.unwrap();
    let get = |uri: &str| {
        let router = app.router();
        let request = Request::get(uri).body(Body::empty()).unwrap();
        async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
            (status, headers, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let (status, headers, body) = get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), generated());
    let (status, headers, page) = get("/docs").await;
    assert_eq!(status, 200);
    assert!(headers["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    assert!(page.contains(r#"src="/docs/docs.js""#));
    assert!(!page.contains("http://") && !page.contains("https://"), "the page loads nothing from elsewhere");
    let (status, _, script) = get("/docs/docs.js").await;
    assert_eq!(status, 200);
    assert!(script.contains("fetch('/openapi.json')"));
    assert!(!script.contains("http"), "the script loads nothing from elsewhere");
}

#[test]
fn no_two_types_share_a_schema_name() {
    assert_eq!(agentry_server::openapi::schema_clashes(), Vec::<String>::new());
}

/// Every route whose handler reads query parameters (`QueryParams<T>`) documents them
/// (`.query::<T>()`), and no route documents parameters its handler does not read. The document
/// cannot see a handler's extractors, so this reads the sources: the handlers of `src/platos` and
/// `src/erdo` (one defined by a macro is found through the macro's invocations in its file) and
/// the route tables `platos/mod.rs` and `erdo/mod.rs`.
#[test]
fn every_route_documents_the_query_its_handler_reads() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let ident = |text: &str| -> String { text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    // `surface/module::handler` → the query type it reads.
    let mut reads: std::collections::BTreeMap<String, String> = Default::default();
    for surface in ["platos", "erdo"] {
        for entry in std::fs::read_dir(format!("{src}/{surface}")).unwrap() {
            let path = entry.unwrap().path();
            let module = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, found) in text.match_indices("QueryParams<") {
                let query = ident(&text[at + found.len()..]);
                let before = &text[..at];
                let signature = &before[before.rfind("fn ").unwrap() + 3..];
                let handlers = match signature.strip_prefix('$') {
                    // `macro_rules! name { ($handler:ident, …) => { pub async fn $handler(…`
                    Some(_) => {
                        let definition = &before[before.rfind("macro_rules! ").unwrap() + "macro_rules! ".len()..];
                        let invocation = format!("\n{}!(", ident(definition));
                        text.match_indices(&invocation).map(|(i, m)| ident(&text[i + m.len()..])).collect()
                    }
                    None => vec![ident(signature)],
                };
                for handler in handlers {
                    reads.insert(format!("{surface}/{module}::{handler}"), query.clone());
                }
            }
        }
    }
    assert!(reads.len() >= 15, "{reads:?}");
    let mut checked = 0;
    for surface in ["platos", "erdo"] {
        let text = std::fs::read_to_string(format!("{src}/{surface}/mod.rs")).unwrap();
        // Each route: `at(Verb, "/path", module::handler)` and its `.doc(…)…` chain, up to the next.
        let starts: Vec<usize> =
            text.match_indices("at(").map(|(i, _)| i).filter(|&i| text[..i].ends_with(char::is_whitespace)).collect();
        for (n, &start) in starts.iter().enumerate() {
            let route = &text[start..starts.get(n + 1).copied().unwrap_or(text.len())];
            let handler = route.split(',').nth(2).unwrap().split(')').next().unwrap().trim();
            let documented: Option<&str> = route
                .split(".query::<")
                .nth(1)
                .map(|rest| rest.split('>').next().unwrap().rsplit("::").next().unwrap());
            assert_eq!(
                documented,
                reads.get(&format!("{surface}/{handler}")).map(String::as_str),
                "the query parameters documented on `{}` differ from those its handler reads",
                route.lines().next().unwrap()
            );
            checked += documented.is_some() as usize;
        }
    }
    assert!(checked >= 20, "{checked} routes with query parameters");
}
