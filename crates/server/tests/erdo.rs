//! The Erdo surface in-process (router + real SQLite store + real dataset sandboxes): datasets,
//! the dataset tools answering with table and chart content items, threads with typed contents,
//! and the invoke stream.

use agentry_engine::{Engine, EngineConfig};
use agentry_llm::ProviderRegistry;
use agentry_server::bootstrap::{SuppliedSecrets, bootstrap};
use agentry_server::{AppState, ServerOptions, router};
use agentry_store::{Store, StoreLocation};
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const KEY: &str = "erdo-test-operator-key";

const SALES: &str = "product,region,revenue\n\
widget,north,120\nwidget,south,80\ngadget,north,300\ngizmo,east,45\ndoohickey,west,70\n\
gadget,south,150\nthingamajig,east,20\nwhatsit,west,95\n";

struct App {
    router: Router,
    _dir: tempfile::TempDir,
    /// Streams end when this is dropped (the server shutting down).
    _running: tokio::sync::watch::Sender<bool>,
}

async fn app() -> App {
    app_with(ProviderRegistry::default()).await
}

async fn app_with(providers: ProviderRegistry) -> App {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StoreLocation::Sqlite(dir.path().join("a.db"))).await.unwrap();
    let supplied =
        SuppliedSecrets { service_secret: Some("erdo-secret-0123456789abcdef".into()), api_key: Some(KEY.into()) };
    bootstrap(&store, &supplied, "scripted:echo").await.unwrap();
    let config = EngineConfig { datasets_dir: Some(dir.path().join("datasets")), ..EngineConfig::default() };
    let engine = Engine::start(store, providers, config).await.unwrap();
    let (running, shutdown) = tokio::sync::watch::channel(false);
    App { router: router(AppState::new(engine, ServerOptions::default(), shutdown)), _dir: dir, _running: running }
}

impl App {
    async fn raw(
        &self,
        bearer: &str,
        method: &str,
        path: &str,
        content_type: &str,
        body: Body,
    ) -> (StatusCode, String, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {bearer}"))
            .header("content-type", content_type)
            .body(body)
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let disposition =
            response.headers().get("content-disposition").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned(), disposition)
    }

    async fn call(&self, bearer: &str, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let (status, text, _) = self.raw(bearer, method, path, "application/json", body).await;
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// An SSE response's events (`data:` lines).
    async fn events(&self, bearer: &str, path: &str, body: Value) -> (StatusCode, Vec<Value>) {
        let (status, text, _) = self.raw(bearer, "POST", path, "application/json", Body::from(body.to_string())).await;
        let events = text
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .map(|data| serde_json::from_str(data).unwrap())
            .collect();
        (status, events)
    }

    async fn upload_sales(&self) -> Value {
        let (status, dataset) = self
            .call(KEY, "POST", "/datasets", Some(json!({"slug": "sales", "name": "Sales", "content": SALES})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{dataset}");
        dataset
    }
}

fn analyst() -> Value {
    let sql = "SELECT product, SUM(revenue) AS revenue FROM data GROUP BY product ORDER BY revenue DESC LIMIT 5";
    json!({
        "id": "analyst", "name": "Analyst", "model": "scripted:steps",
        "tools": ["query_dataset", "create_chart"],
        "script": {"steps": [
            {"text": "Looking at the sales.", "tool_calls": [
                {"name": "query_dataset", "arguments": {"dataset": "sales", "sql": sql}},
                {"name": "create_chart", "arguments": {"dataset": "sales", "sql": sql, "chart_type": "bar",
                    "title": "Top products by revenue", "x": "product", "y": ["revenue"]}}
            ]},
            {"text": "Gadget leads with 450."}
        ]}
    })
}

/// A Platos REST `POST` by the operator in the default scope.
fn operator_post(path: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(format!("/api/v1/agent{path}"))
        .header("authorization", format!("Bearer {KEY}"))
        .header("x-platos-organization-id", "default")
        .header("x-platos-project-id", "default")
        .header("x-platos-environment-id", "default")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn add_agent(app: &App, spec: Value) {
    let response = app.router.clone().oneshot(operator_post("/agents", spec)).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn datasets_upload_query_filter_and_download() {
    let app = app().await;
    let dataset = app.upload_sales().await;
    assert_eq!(dataset["row_count"], 8);
    let (status, again) = app.call(KEY, "POST", "/datasets", Some(json!({"slug": "sales", "content": SALES}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");

    let boundary = "XBOUNDARY";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"slug\"\r\n\r\nregions\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"regions.json\"\r\n\
         Content-Type: application/json\r\n\r\n[{{\"region\":\"north\",\"manager\":\"Ada\"}},{{\"region\":\"south\",\"manager\":\"Bo\"}}]\r\n\
         --{boundary}--\r\n"
    );
    let (status, text, _) = app
        .raw(KEY, "POST", "/datasets", &format!("multipart/form-data; boundary={boundary}"), Body::from(multipart))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");

    let sql = "SELECT product, SUM(revenue) AS revenue FROM data GROUP BY product ORDER BY revenue DESC LIMIT 3";
    let (status, rows) =
        app.call(KEY, "POST", "/datasets/sales/query", Some(json!({"query": sql, "limit": 1000}))).await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    assert_eq!(rows["columns"], json!(["product", "revenue"]));
    assert_eq!(rows["rows"], json!([["gadget", 450], ["widget", 200], ["whatsit", 95]]));
    let filters = json!({"filters": [{"key": "region", "operator": "equals", "value": ["north"]}], "limit": 10});
    let (_, north) = app.call(KEY, "POST", "/datasets/sales/query", Some(filters)).await;
    assert_eq!(north["rows"].as_array().unwrap().len(), 2, "{north}");
    let (status, _) = app.call(KEY, "POST", "/datasets/sales/query", Some(json!({"query": sql, "limit": 1001}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, refused) =
        app.call(KEY, "POST", "/datasets/sales/query", Some(json!({"query": "DELETE FROM data"}))).await;
    assert!(status.is_client_error(), "{status} {refused}");
    let (_, still) =
        app.call(KEY, "POST", "/datasets/sales/query", Some(json!({"query": "SELECT COUNT(*) AS n FROM data"}))).await;
    assert_eq!(still["rows"], json!([[8]]), "nothing was deleted");

    let (status, details) = app.call(KEY, "GET", "/datasets/sales?ThreadID=", None).await;
    assert_eq!((status, details["name"].as_str()), (StatusCode::OK, Some("Sales")));
    let id = details["id"].as_str().unwrap().to_owned();
    let body = Body::from(
        json!({"thread_id": "", "query": "SELECT product FROM data WHERE revenue > 100", "resource_key": ""})
            .to_string(),
    );
    let (status, csv, disposition) =
        app.raw(KEY, "POST", &format!("/datasets/{id}/download"), "application/json", body).await;
    assert_eq!(status, StatusCode::OK);
    assert!(disposition.contains("filename=\"sales.csv\""), "{disposition}");
    assert_eq!(csv.lines().collect::<Vec<_>>(), ["product", "widget", "gadget", "gadget"]);
    let (status, raw, disposition) =
        app.raw(KEY, "POST", &format!("/datasets/{id}/download"), "application/json", Body::empty()).await;
    assert_eq!((status, raw.as_str()), (StatusCode::OK, SALES), "without a query: the file as uploaded");
    assert!(disposition.contains("filename=\"sales.csv\""), "{disposition}");
}

#[tokio::test]
async fn a_replica_without_the_file_rebuilds_a_dataset_from_the_store() {
    let app = app().await;
    app.upload_sales().await;
    // Another replica has the same store but not this one's dataset files.
    std::fs::remove_dir_all(app._dir.path().join("datasets")).unwrap();
    let sql = "SELECT SUM(revenue) AS total FROM data";
    let (status, rows) = app.call(KEY, "POST", "/datasets/sales/query", Some(json!({"query": sql}))).await;
    assert_eq!((status, rows["rows"].clone()), (StatusCode::OK, json!([[880]])), "{rows}");
}

#[tokio::test]
async fn scoped_tokens_see_only_the_datasets_they_name() {
    let app = app().await;
    let sales = app.upload_sales().await;
    let (_, without) = app.call(KEY, "POST", "/tokens", Some(json!({"externalUserId": "u1"}))).await;
    let token = without["token"].as_str().unwrap();
    let (status, _) =
        app.call(token, "POST", "/datasets/sales/query", Some(json!({"query": "SELECT 1 AS x FROM data"}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, listed) = app.call(token, "GET", "/datasets", None).await;
    assert_eq!(listed["datasets"], json!([]));
    let (status, _) = app.call(token, "POST", "/datasets", Some(json!({"slug": "mine", "content": SALES}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (_, with) = app.call(KEY, "POST", "/tokens", Some(json!({"datasetIds": [sales["id"]]}))).await;
    let token = with["token"].as_str().unwrap();
    let (status, rows) = app
        .call(token, "POST", "/datasets/sales/query", Some(json!({"query": "SELECT COUNT(*) AS n FROM data"})))
        .await;
    assert_eq!((status, rows["rows"].clone()), (StatusCode::OK, json!([[8]])));
}

#[tokio::test]
async fn an_analyst_answers_with_a_table_and_a_chart_from_the_query() {
    let app = app().await;
    app.upload_sales().await;
    add_agent(&app, analyst()).await;
    let message = json!({"messages": [{"role": "user", "content": "top 5 products by revenue"}]});
    let (status, events) = app.events(KEY, "/bots/default.analyst/invoke", message).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events[0]["type"], "bot started");
    let result = events.iter().rev().find(|e| e["type"] == "result").unwrap();
    assert_eq!(result["payload"]["status"], "success", "{result}");
    let content = result["payload"]["output"]["content"].as_array().unwrap();
    let kinds: Vec<&str> = content.iter().map(|c| c["content_type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["text", "table", "chart", "text"], "each step's text, then the tools' items: {content:?}");
    let top = json!([
        {"product": "gadget", "revenue": 450}, {"product": "widget", "revenue": 200},
        {"product": "whatsit", "revenue": 95}, {"product": "doohickey", "revenue": 70},
        {"product": "gizmo", "revenue": 45}
    ]);
    assert_eq!(content[1]["tableData"], top);
    assert_eq!(
        content[1]["tableColumns"][1],
        json!({"column_name": "revenue", "key": "revenue", "value_type": "number"})
    );
    assert_eq!(content[2]["ui_content_type"], "bar");
    assert_eq!(content[2]["chartData"], top);
    assert_eq!(content[2]["chartConfig"]["series"][0]["dataset_slug"], "sales");
    assert_eq!(content[0]["content"], "Looking at the sales.");
    assert_eq!(content[3]["content"], "Gadget leads with 450.");
    let streamed: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "message content result")
        .filter_map(|e| e["metadata"]["content_type"].as_str())
        .collect();
    assert!(streamed.contains(&"table") && streamed.contains(&"chart"), "{streamed:?}");
}

#[tokio::test]
async fn thread_messages_keep_typed_contents_with_their_invocation() {
    let app = app().await;
    app.upload_sales().await;
    add_agent(&app, analyst()).await;
    let (status, thread) = app.call(KEY, "POST", "/threads", Some(json!({"name": "Sales", "botKey": "analyst"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{thread}");
    let id = thread["id"].as_str().unwrap();
    let (status, events) =
        app.events(KEY, &format!("/threads/{id}/message"), json!({"content": "top products?"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events[0]["type"], "message created", "the legacy reducer needs the message first");
    assert!(events.iter().all(|e| e["type"] != "bot started" && e["type"] != "invocation_completed"));
    let created = events.iter().find(|e| e["type"] == "message created").unwrap();
    let message_id = created["metadata"]["message_id"].as_str().unwrap().to_owned();
    assert_eq!(created["metadata"]["path"], format!("message/{message_id}"));
    let streamed_ids: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "create message content")
        .map(|e| e["metadata"]["message_content_id"].as_str().unwrap())
        .collect();
    let delta = events.iter().find(|e| e["type"] == "message content delta").unwrap();
    let content_id = delta["metadata"]["message_content_id"].as_str().unwrap();
    assert_eq!(delta["metadata"]["path"], format!("content/{content_id}"));
    let invocation = events[0]["invocation_id"].as_str().unwrap().to_owned();

    let (status, history) = app.call(KEY, "GET", &format!("/threads/{id}/messages"), None).await;
    assert_eq!(status, StatusCode::OK);
    let messages = history["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1]["id"], message_id.as_str(), "the stream named the stored message");
    let contents = messages[1]["contents"].as_array().unwrap();
    let types: Vec<&str> = contents.iter().map(|c| c["content_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["text", "table", "chart", "text"]);
    let stored_ids: Vec<&str> = contents.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(stored_ids, streamed_ids, "the history names the items the stream created");
    assert!(contents.iter().all(|c| c["created_by_invocation_id"] == invocation.as_str()));
    assert_eq!(contents[1]["content"]["tableData"][0], json!({"product": "gadget", "revenue": 450}));
    assert_eq!(messages[0]["contents"][0]["content"], "top products?");
}

/// An OpenAI-compatible loopback server that answers every completion with "Recorded answer."
/// and counts the calls; `fail` makes it answer 500 (a provider that must not be called).
struct FakeModel {
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The request bodies it received.
    bodies: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
    registry: ProviderRegistry,
}

async fn fake_model() -> FakeModel {
    use std::sync::atomic::Ordering;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bodies: std::sync::Arc<std::sync::Mutex<Vec<Value>>> = Default::default();
    let (counted, failing, seen) = (calls.clone(), fail.clone(), bodies.clone());
    let app = Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let (counted, failing, seen) = (counted.clone(), failing.clone(), seen.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                seen.lock().unwrap().push(body);
                if failing.load(Ordering::SeqCst) {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "the model must not be called").into_response();
                }
                let body = concat!(
                    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Recorded answer.\"}}]}\n\n",
                    "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],",
                    "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n",
                    "data: [DONE]\n\n"
                );
                ([("content-type", "text/event-stream")], body).into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let section = agentry_llm::config::ProviderSection {
        kind: Some(agentry_llm::config::ProviderKind::OpenAi),
        base_url: Some(base_url),
        max_retries: Some(0),
        ..Default::default()
    };
    let config = agentry_llm::config::ProviderConfig::from_section("fake", &section, |_| None).unwrap();
    FakeModel { calls, bodies, fail, registry: ProviderRegistry::new([("fake".to_owned(), config)].into()) }
}

use axum::response::IntoResponse as _;

fn answer_of(events: &[Value]) -> (String, String) {
    let result = events.iter().rev().find(|e| e["type"] == "result").expect("a final result");
    let text = result["payload"]["output"]["content"][0]["content"].as_str().unwrap_or_default().to_owned();
    (result["payload"]["status"].as_str().unwrap_or_default().to_owned(), text)
}

#[tokio::test]
async fn replay_serves_a_recorded_invocation_without_calling_the_model() {
    use std::sync::atomic::Ordering;
    let model = fake_model().await;
    let app = app_with(model.registry.clone()).await;
    add_agent(&app, json!({"id": "modeled", "name": "Modeled", "model": "fake:any-model"})).await;
    let request = |mode: Value| json!({"messages": [{"role": "user", "content": "what is recorded?"}], "mode": mode});

    let (status, first) = app.events(KEY, "/bots/modeled/invoke", request(json!("replay"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer_of(&first), ("success".into(), "Recorded answer.".into()));
    assert_eq!(model.calls.load(Ordering::SeqCst), 1, "a miss runs live and records");

    model.fail.store(true, Ordering::SeqCst);
    let (_, replayed) = app.events(KEY, "/bots/modeled/invoke", request(json!("replay"))).await;
    assert_eq!(answer_of(&replayed), ("success".into(), "Recorded answer.".into()));
    assert_eq!(model.calls.load(Ordering::SeqCst), 1, "a hit never calls the model");
    assert_ne!(first[0]["invocation_id"], replayed[0]["invocation_id"], "a replay is a new invocation");

    let other = json!({"messages": [{"role": "user", "content": "something else"}], "mode": "replay"});
    let (_, miss) = app.events(KEY, "/bots/modeled/invoke", other).await;
    assert_eq!(answer_of(&miss).0, "error", "another request is a miss and runs live (the model now fails)");

    let (_, refreshed) =
        app.events(KEY, "/bots/modeled/invoke", request(json!({"mode": "replay", "refresh": true}))).await;
    assert_eq!(model.calls.load(Ordering::SeqCst), 3, "refresh runs live again");
    assert_eq!(answer_of(&refreshed).0, "error");
    let (_, still) = app.events(KEY, "/bots/modeled/invoke", request(json!("replay"))).await;
    assert_eq!(
        answer_of(&still),
        ("success".into(), "Recorded answer.".into()),
        "a failed refresh keeps the recording"
    );

    // A new version of the bot is a new recording key.
    let update = json!({"id": "modeled", "name": "Modeled v2", "model": "fake:any-model"});
    let request_put = Request::builder()
        .method("PUT")
        .uri("/api/v1/agent/agents/modeled")
        .header("authorization", format!("Bearer {KEY}"))
        .header("x-platos-organization-id", "default")
        .header("x-platos-project-id", "default")
        .header("x-platos-environment-id", "default")
        .header("content-type", "application/json")
        .body(Body::from(update.to_string()))
        .unwrap();
    assert_eq!(app.router.clone().oneshot(request_put).await.unwrap().status(), StatusCode::OK);
    let (_, new_version) = app.events(KEY, "/bots/modeled/invoke", request(json!("replay"))).await;
    assert_eq!(answer_of(&new_version).0, "error", "the old recording does not serve a changed bot");
}

#[tokio::test]
async fn manual_mode_answers_from_the_mocks_and_needs_one_per_action() {
    use std::sync::atomic::Ordering;
    let model = fake_model().await;
    model.fail.store(true, Ordering::SeqCst);
    let app = app_with(model.registry.clone()).await;
    add_agent(&app, json!({"id": "modeled", "name": "Modeled", "model": "fake:any-model"})).await;
    let body = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "mode": "manual",
        "manual_mocks": {"llm.message": {"status": "success", "output": {"content": "Mocked"}}}
    });
    let (status, events) = app.events(KEY, "/bots/modeled/invoke", body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer_of(&events), ("success".into(), "Mocked".into()));
    assert_eq!(model.calls.load(Ordering::SeqCst), 0);
    let missing = json!({"messages": [{"role": "user", "content": "hi"}], "mode": "manual", "manual_mocks": {"memory.search": {}}});
    let (status, _) = app.events(KEY, "/bots/modeled/invoke", missing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .events(KEY, "/bots/modeled/invoke", json!({"messages": [{"role": "user", "content": "x"}], "mode": "warp"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn erdo_writes_take_idempotency_keys_but_token_secrets_are_never_stored() {
    let app = app().await;
    let mint = || {
        Request::builder()
            .method("POST")
            .uri("/tokens")
            .header("authorization", format!("Bearer {KEY}"))
            .header("idempotency-key", "mint-1")
            .header("content-type", "application/json")
            .body(Body::from(json!({"externalUserId": "ada"}).to_string()))
            .unwrap()
    };
    let first = app.router.clone().oneshot(mint()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = serde_json::from_slice(&to_bytes(first.into_body(), usize::MAX).await.unwrap()).unwrap();
    let second = app.router.clone().oneshot(mint()).await.unwrap();
    assert_eq!(second.status(), StatusCode::CREATED, "Erdo credentials pass the idempotency layer");
    assert!(second.headers().get("idempotency-replayed").is_none(), "a secret is never replayed from storage");
    let second: Value = serde_json::from_slice(&to_bytes(second.into_body(), usize::MAX).await.unwrap()).unwrap();
    assert_ne!(first["tokenId"], second["tokenId"], "a retried mint makes a new token");
}

#[tokio::test]
async fn datasets_named_in_an_invoke_are_described_to_the_agent_and_checked_for_the_caller() {
    let model = fake_model().await;
    let app = app_with(model.registry.clone()).await;
    let sales = app.upload_sales().await;
    let spec = json!({"id": "quant", "name": "Quant", "model": "fake:any-model", "tools": ["query_dataset"]});
    add_agent(&app, spec).await;
    let body = json!({"messages": [{"role": "user", "content": "summarise"}], "dataset_slugs": ["default.sales"]});
    let (status, events) = app.events(KEY, "/bots/quant/invoke", body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer_of(&events).0, "success");
    let request = model.bodies.lock().unwrap().last().cloned().unwrap();
    let system = request["messages"][0]["content"].as_str().unwrap().to_owned();
    assert!(system.contains("## Datasets"), "{system}");
    assert!(system.contains("`sales` (Sales): product (text), region (text), revenue (number)"), "{system}");

    // A token that may not use the dataset cannot name it; one that may, can.
    let (_, blind) = app.call(KEY, "POST", "/tokens", Some(json!({"externalUserId": "blind"}))).await;
    let (status, _) = app.events(blind["token"].as_str().unwrap(), "/bots/quant/invoke", body.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, seeing) = app.call(KEY, "POST", "/tokens", Some(json!({"datasetIds": [sales["id"]]}))).await;
    let (status, _) = app.events(seeing["token"].as_str().unwrap(), "/bots/quant/invoke", body).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn bot_keys_with_dots_resolve_in_the_callers_org() {
    let app = app().await;
    add_agent(&app, json!({"id": "team.helper", "name": "Team helper", "model": "scripted:echo"})).await;
    let hello = json!({"messages": [{"role": "user", "content": "hi team"}]});
    for key in ["team.helper", "default.team.helper"] {
        let (status, events) = app.events(KEY, &format!("/bots/{key}/invoke"), hello.clone()).await;
        assert_eq!(status, StatusCode::OK, "{key}");
        assert_eq!(answer_of(&events), ("success".into(), "hi team".into()), "{key}");
    }
    let (status, _) = app.events(KEY, "/bots/acme.team.helper/invoke", hello).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another org's key looks missing");
}

#[tokio::test]
async fn an_invoke_over_its_budget_ends_with_an_erdo_error_before_the_model_is_called() {
    use std::collections::BTreeMap;
    let price = agentry_llm::config::Price { input: 1000.0, output: 1000.0, cached_input: None };
    let app =
        app_with(ProviderRegistry::default().with_prices(BTreeMap::from([("scripted:echo".to_owned(), price)]))).await;
    add_agent(&app, json!({"id": "priced", "name": "Priced", "model": "scripted:echo"})).await;
    let hello = json!({"messages": [{"role": "user", "content": "one two three"}]});
    let (_, events) = app.events(KEY, "/bots/priced/invoke", hello.clone()).await;
    assert_eq!(answer_of(&events), ("success".into(), "one two three".into()), "no cap yet");

    // Three words in, three out at 1000 µ¢ each: the cap allows what was spent and nothing more.
    let cap = json!({"scopeType": "agent", "targetId": "priced", "period": "day", "limitCents": 0.006});
    let response = app.router.clone().oneshot(operator_post("/budgets", cap)).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let (status, events) = app.events(KEY, "/bots/priced/invoke", hello).await;
    assert_eq!(status, StatusCode::OK);
    let error = events.iter().find(|e| e["type"] == "error").unwrap_or_else(|| panic!("an error event: {events:#?}"));
    let message = error["payload"].as_str().unwrap_or_default();
    assert!(message.contains("budget"), "{error}");
    assert!(!events.iter().any(|e| e["type"] == "message content delta" || e["type"] == "text delta"), "{events:?}");
    let (status, _) = answer_of(&events);
    assert_eq!(status, "error", "{events:?}");
}

#[tokio::test]
async fn a_replay_is_served_only_to_a_caller_who_could_run_it_live() {
    let app = app().await;
    app.upload_sales().await;
    add_agent(&app, analyst()).await;
    let body = json!({"messages": [{"role": "user", "content": "q"}], "dataset_slugs": ["sales"], "mode": "replay"});
    let (status, recorded) = app.events(KEY, "/bots/analyst/invoke", body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer_of(&recorded).0, "success");

    // A token for the bot alone must not get the recorded rows: the same body is a 404, as live.
    let (_, bot_only) = app.call(KEY, "POST", "/tokens", Some(json!({"botKeys": ["analyst"]}))).await;
    let bot_only = bot_only["token"].as_str().unwrap();
    for mode in ["replay", "live"] {
        let body = json!({"messages": [{"role": "user", "content": "q"}], "dataset_slugs": ["sales"], "mode": mode});
        let (status, events) = app.events(bot_only, "/bots/analyst/invoke", body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{mode}: {} events", events.len());
    }
    // Nor without naming the dataset: its recording is keyed by what it may read.
    let unnamed = json!({"messages": [{"role": "user", "content": "q"}], "mode": "replay"});
    let (_, events) = app.events(bot_only, "/bots/analyst/invoke", unnamed).await;
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("gadget"), "no row of the dataset reaches the token: {all}");
}

/// A Platos end user's turn, through the REST non-streaming send: the `tool_result`s it logged.
async fn platos_user_tool_results(app: &App, user: &str, agent: &str) -> Vec<Value> {
    let claims =
        agentry_core::session_token::SessionClaims::new(&agentry_core::Scope::default_scope(), user, "default");
    let token = agentry_core::session_token::mint(
        "erdo-secret-0123456789abcdef",
        claims,
        600,
        agentry_core::Timestamp::now().unix_seconds(),
    )
    .unwrap();
    let call = |method: &str, path: String, body: Value| {
        Request::builder()
            .method(method)
            .uri(format!("/api/v1/agent{path}"))
            .header("x-platos-session-token", &token)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let response =
        app.router.clone().oneshot(call("POST", "/threads".into(), json!({"agentId": agent}))).await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let thread: Value = serde_json::from_slice(&to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap();
    let path = format!("/threads/{}/messages", thread["id"].as_str().unwrap());
    let response =
        app.router.clone().oneshot(call("POST", path, json!({"message": "revenue by product?"}))).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = serde_json::from_slice(&to_bytes(response.into_body(), usize::MAX).await.unwrap()).unwrap();
    answer["events"].as_array().unwrap().iter().filter(|e| e["type"] == "tool_result").cloned().collect()
}

/// Issue 16, item 2: a Platos end user reads through `query_dataset` only the datasets granted to
/// end users — the agent's `datasets` (or a thread attachment) —; a dataset not granted answers
/// exactly like a missing one. Operators still read every dataset of the scope.
#[tokio::test]
async fn platos_end_users_read_only_the_datasets_granted_to_them() {
    let app = app().await;
    app.upload_sales().await;
    add_agent(&app, analyst()).await;
    let results = platos_user_tool_results(&app, "mallory", "analyst").await;
    assert_eq!(results.len(), 2, "{results:?}");
    for result in &results {
        assert_eq!(result["isError"], true, "{result}");
        assert!(result["result"].to_string().contains("no dataset `sales`"), "{result}");
    }
    // The agent lists the dataset: its end users read it.
    let mut granted = analyst();
    granted["id"] = json!("analyst-sales");
    granted["datasets"] = json!(["sales"]);
    add_agent(&app, granted).await;
    let results = platos_user_tool_results(&app, "mallory", "analyst-sales").await;
    assert_ne!(results[0]["isError"], true, "{results:?}");
    assert!(results[0]["result"].to_string().contains("gadget"), "{results:?}");
}
