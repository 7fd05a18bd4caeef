//! Limits that hold under abuse (issue 16): what unauthenticated clients can make the server keep.

mod common;

use std::collections::BTreeSet;

use agentry_server::AppConfig;
use agentry_store::StoreLocation;
use common::*;
use serde_json::json;

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

/// A NUL character is refused with a 400 naming the field, the same on both backends, and never
/// reaches the database (Postgres cannot store it).
async fn nul_inputs_are_refused_by_name(base: &str, addr: std::net::SocketAddr) {
    let client = reqwest::Client::new();
    let user = token("nul-user");
    let thread = new_thread(base, "nul-user", "default").await;
    let platos = |method: &str, path: &str, body: serde_json::Value| {
        client
            .request(method.parse().unwrap(), format!("{base}/api/v1/agent{path}"))
            .header("x-platos-session-token", &user)
            .json(&body)
    };
    let erdo = |path: &str, body: serde_json::Value| client.post(format!("{base}{path}")).bearer_auth(KEY).json(&body);
    let cases = [
        (platos("POST", "/threads", serde_json::json!({"title": "a\u{0}b"})), "title"),
        (platos("POST", &format!("/threads/{thread}/messages"), serde_json::json!({"message": "hi\u{0}"})), "message"),
        (
            platos(
                "POST",
                &format!("/threads/{thread}/messages"),
                serde_json::json!({"message": "x", "dynamicBlocks": {"k": "\u{0}"}}),
            ),
            "dynamicBlocks.k",
        ),
        (erdo("/threads", serde_json::json!({"name": "n\u{0}"})), "name"),
        (erdo("/datasets", serde_json::json!({"slug": "nul", "content": "a,b\n1,\u{0}\n"})), "content"),
    ];
    for (request, field) in cases {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, 400, "{field}: {body}");
        assert!(body["message"].as_str().unwrap().contains(field), "{field}: {body}");
        assert!(!body.to_string().contains("database"), "no database text reaches a client: {body}");
    }
    // In the URL: a path id or a query parameter (the official clients percent-encode what they are given).
    let urls = [
        (format!("{base}/api/v1/agent/threads/{thread}%00"), "path"),
        (format!("{base}/api/v1/agent/threads/{thread}/messages?limit=5&offset=%000"), "offset"),
        (format!("{base}/api/v1/agent/turns?agentId=a%00b"), "agentId"),
        (format!("{base}/threads/t%00/messages"), "path"),
    ];
    for (url, place) in urls {
        let response = client.get(&url).header("x-platos-session-token", &user).bearer_auth(KEY).send().await.unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(status, 400, "{url}: {body}");
        assert!(
            body["message"].as_str().unwrap().starts_with(&format!("{place}: must not contain a NUL")),
            "{url}: {body}"
        );
    }
    // The thread is untouched: no message was stored.
    let (_, messages) = call(base, Some(&user), "GET", &format!("/threads/{thread}/messages"), None).await;
    assert_eq!(messages["messages"], serde_json::json!([]));
    // Over the socket: refused with an error naming the field, and no thread is created.
    let mut sock = Sock::user(addr, "nul-user").await;
    sock.emit("message", serde_json::json!({"message": "a\u{0}", "threadId": thread})).await;
    let error = sock.agent_event(std::time::Duration::from_secs(5)).await.unwrap();
    assert_eq!(error["type"], "error", "{error}");
    assert!(error["message"].as_str().unwrap().contains("message: must not contain a NUL"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_refused_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AppConfig::new(StoreLocation::Sqlite(dir.path().join("n.db")));
    config.bootstrap = replica_config_bootstrap();
    config.engine.datasets_dir = Some(dir.path().join("datasets"));
    let mut replica = Replica::start(config);
    nul_inputs_are_refused_by_name(&replica.base(), replica.addr).await;
    replica.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_characters_are_refused_on_postgres() {
    let db = PgDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = replica_config(&db);
    config.engine.datasets_dir = Some(dir.path().join("datasets"));
    let mut replica = Replica::start(config);
    nul_inputs_are_refused_by_name(&replica.base(), replica.addr).await;
    replica.stop();
    db.drop_database().await;
}

/// A socket is authorised only as long as its session token: once it expires, the next event is
/// answered with `error{code:"token_expired"}` and the namespace is left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_stops_serving_when_its_token_expires() {
    use agentry_core::session_token::{SessionClaims, sign};
    let dir = tempfile::tempdir().unwrap();
    let mut config = AppConfig::new(StoreLocation::Sqlite(dir.path().join("t.db")));
    config.bootstrap = replica_config_bootstrap();
    let mut replica = Replica::start(config);
    let now = agentry_core::Timestamp::now().unix_seconds();
    let claims = SessionClaims {
        iat: now,
        exp: now + 2,
        ..SessionClaims::new(&agentry_core::Scope::default_scope(), "short-lived", "default")
    };
    let short = sign(SECRET, &claims).unwrap();
    let mut sock = Sock::connect(replica.addr, serde_json::json!({ "token": short })).await;
    sock.emit("message", serde_json::json!({"message": "while valid"})).await;
    let first = sock.agent_event(std::time::Duration::from_secs(5)).await.unwrap();
    assert_ne!(first["type"], "error", "served while the token is valid: {first}");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    sock.emit("message", serde_json::json!({"message": "after expiry"})).await;
    let refused = loop {
        let event = sock.agent_event(std::time::Duration::from_secs(5)).await.expect("an answer after expiry");
        if event["type"] == "error" {
            break event;
        }
    };
    assert_eq!(refused["code"], "token_expired", "{refused}");
    sock.emit("message", serde_json::json!({"message": "still trying"})).await;
    assert!(sock.agent_event(std::time::Duration::from_secs(1)).await.is_none(), "the namespace was left");
    replica.stop();
}

/// `nbf` is honoured and a token may not live longer than the server allows (30 days by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_not_yet_valid_or_too_long_lived_are_refused() {
    use agentry_core::session_token::{SessionClaims, sign};
    let dir = tempfile::tempdir().unwrap();
    let mut config = AppConfig::new(StoreLocation::Sqlite(dir.path().join("l.db")));
    config.bootstrap = replica_config_bootstrap();
    let mut replica = Replica::start(config);
    let now = agentry_core::Timestamp::now().unix_seconds();
    let base = SessionClaims::new(&agentry_core::Scope::default_scope(), "timely", "default");
    let cases = [
        (SessionClaims { iat: now, exp: now + 3600, ..base.clone() }, 200, "an ordinary token"),
        (SessionClaims { iat: now, exp: now + 3600, nbf: Some(now + 600), ..base.clone() }, 401, "nbf in 10 minutes"),
        (SessionClaims { iat: now, exp: now + 31 * 86_400, ..base.clone() }, 401, "31 days"),
    ];
    for (claims, expected, label) in cases {
        let token = sign(SECRET, &claims).unwrap();
        let (status, body) = call(&replica.base(), Some(&token), "GET", "/threads", None).await;
        assert_eq!(status, expected, "{label}: {body}");
    }
    replica.stop();
}

/// A socket `message` without a `threadId` that is refused leaves no empty thread behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_first_message_leaves_no_thread() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AppConfig::new(StoreLocation::Sqlite(dir.path().join("r.db")));
    config.bootstrap = replica_config_bootstrap();
    config.engine.max_message_bytes = 8;
    let mut replica = Replica::start(config);
    let mut sock = Sock::user(replica.addr, "refused").await;
    sock.emit("message", serde_json::json!({"message": "far longer than eight bytes"})).await;
    let error = sock.agent_event(std::time::Duration::from_secs(5)).await.unwrap();
    assert_eq!(error["type"], "error", "{error}");
    let (_, threads) = call(&replica.base(), Some(&token("refused")), "GET", "/threads", None).await;
    assert_eq!(threads["threads"], serde_json::json!([]), "{threads}");
    replica.stop();
}

/// CORS allows the configured origins only (never `null`), and a JSON route refuses a body that
/// is not sent as JSON, so a cross-site `text/plain` post cannot pass for an API call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_configured_origins_and_json_routes_want_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AppConfig::new(StoreLocation::Sqlite(dir.path().join("c.db")));
    config.bootstrap = replica_config_bootstrap();
    config.server.cors_origins = Some(vec!["https://app.example.com".into()]);
    let mut replica = Replica::start(config);
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/agent/threads", replica.base());
    for (origin, allowed) in [("https://app.example.com", true), ("https://evil.example.com", false), ("null", false)] {
        let preflight = client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-platos-session-token, content-type")
            .send()
            .await
            .unwrap();
        let granted = preflight.headers().get("access-control-allow-origin").map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(granted.as_deref() == Some(origin), allowed, "{origin}: {granted:?}");
        assert!(preflight.headers().get("access-control-allow-credentials").is_none());
    }
    let body = r#"{"agentId":"default"}"#;
    let plain = client
        .post(&url)
        .header("x-platos-session-token", token("cors-user"))
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status().as_u16(), 415);
    let json = client
        .post(&url)
        .header("x-platos-session-token", token("cors-user"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(json.status().as_u16(), 201);
    replica.stop();
}

/// A WebSocket that never connects the `/agent` namespace is closed after the deadline; one that
/// connects stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_without_a_namespace_are_closed_after_the_deadline() {
    use futures_util::StreamExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut config = AppConfig::new(StoreLocation::Sqlite(dir.path().join("w.db")));
    config.bootstrap = replica_config_bootstrap();
    config.server.namespace_deadline = std::time::Duration::from_secs(1);
    let mut replica = Replica::start(config);
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", replica.addr);
    let (mut idle, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut connected = Sock::user(replica.addr, "stays").await;
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(frame)) = idle.next().await {
            if frame.is_close() {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a socket that never connected the namespace is closed");
    connected.emit("message", serde_json::json!({"message": "still here"})).await;
    let event = connected.agent_event(std::time::Duration::from_secs(5)).await;
    assert!(event.is_some_and(|e| e["type"] != "error"), "a connected socket is served past the deadline");
    replica.stop();
}

/// Connections that send headers slowly (slowloris) or nothing at all are closed after the
/// header-read timeout; one address gets at most its cap of connections; `/api/health` keeps
/// answering from another client meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_and_capped_per_address() {
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let mut config = AppConfig::new(StoreLocation::Sqlite(dir.path().join("s.db")));
    config.bootstrap = replica_config_bootstrap();
    config.server.connections.header_read_timeout = Duration::from_secs(1);
    config.server.connections.max_connections_per_ip = Some(20);
    let mut replica = Replica::start(config);
    let addr = replica.addr;
    // Is the connection closed by the server (EOF) within `within`?
    async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 1024];
        let deadline = Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let health = reqwest::get(format!("{}/api/health", replica.base())).await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(closed_within(&mut idle, Duration::from_secs(4)).await, "a connection that sends nothing is closed");
    assert!(closed_within(&mut slow, Duration::from_secs(4)).await, "a slowloris connection is closed");
    assert!(started.elapsed() < Duration::from_secs(4));

    // The per-address cap: the connection over it is closed at once, the others stay.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(closed_within(&mut over, Duration::from_millis(500)).await, "the 21st connection is refused");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let health = reqwest::get(format!("{}/api/health", replica.base())).await.unwrap();
    assert_eq!(health.status(), 200, "places are given back");

    // The timeout is for reading headers only: an answer that takes longer (a slow turn, a
    // stream) is not cut.
    let store = agentry_store::Store::open(&StoreLocation::Sqlite(dir.path().join("s.db"))).await.unwrap();
    let slow = agentry_core::AgentSpec {
        script: Some(agentry_core::Script { token_delay_ms: 400, steps: Vec::new() }),
        ..agentry_core::AgentSpec::new("slow", "Slow", "scripted:echo", "")
    };
    apply_agents(&store, &[slow]).await;
    let thread = new_thread(&replica.base(), "patient", "slow").await;
    let started = Instant::now();
    let body = serde_json::json!({"message": "one two three four five six"});
    let (status, answer) =
        call(&replica.base(), Some(&token("patient")), "POST", &format!("/threads/{thread}/messages"), Some(body))
            .await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("completed")), "{answer}");
    assert!(started.elapsed() > Duration::from_secs(2), "the answer took longer than the header timeout");
    store.close().await;
    replica.stop();
}

fn key_headers(key: &str, org: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {key}")),
        ("x-platos-organization-id", org.into()),
        ("x-platos-project-id", "default".into()),
        ("x-platos-environment-id", "default".into()),
    ]
}

/// An API key is bound to an organization or installation-wide (issue 16, item 8): a key of
/// `acme` acts in `acme` only — on the Platos and the Erdo surface —, manages acme's keys only,
/// and rotation and revocation take effect at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_act_in_their_organization_and_are_rotated_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AppConfig::new(StoreLocation::Sqlite(dir.path().join("k.db")));
    config.bootstrap = replica_config_bootstrap();
    let replica = Replica::start(config);
    let base = replica.base();
    // The bootstrap key is installation-wide; it makes a key for acme.
    let root = key_headers(KEY, "default");
    let (status, created) =
        call_with(&base, &root, "POST", "/api-keys", Some(json!({"name": "acme ci", "organizationId": "acme"}))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (created["organizationId"].as_str(), created["installationWide"].as_bool()),
        (Some("acme"), Some(false))
    );
    let acme_key = created["key"].as_str().unwrap().to_owned();
    let acme_id = created["id"].as_str().unwrap().to_owned();
    let (status, body) = call_with(&base, &root, "POST", "/api-keys", Some(json!({"name": "x"}))).await;
    assert_eq!(status, 400, "an org or installationWide must be named: {body}");

    // It acts in acme, and nowhere else — Platos headers, sockets' scope and Erdo's org header.
    let (status, _) = call_with(&base, &key_headers(&acme_key, "acme"), "GET", "/threads", None).await;
    assert_eq!(status, 200);
    for org in ["default", "globex", "no-such-org"] {
        let (status, body) = call_with(&base, &key_headers(&acme_key, org), "GET", "/threads", None).await;
        assert_eq!(status, 401, "{org}: {body}");
        assert!(body["message"].as_str().unwrap().contains("another organization"), "{body}");
    }
    let erdo = |org: Option<&str>| {
        let base = base.clone();
        let key = acme_key.clone();
        let org = org.map(str::to_owned);
        async move {
            let mut request = reqwest::Client::new().get(format!("{base}/threads")).bearer_auth(key);
            if let Some(org) = org {
                request = request.header("x-organization-id", org);
            }
            request.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(erdo(None).await, 200, "Erdo: the key's own org by default");
    assert_eq!(erdo(Some("acme")).await, 200);
    assert_eq!(erdo(Some("globex")).await, 401);

    // An org key manages its org's keys only.
    let acme = key_headers(&acme_key, "acme");
    let (status, _) =
        call_with(&base, &acme, "POST", "/api-keys", Some(json!({"name": "w", "installationWide": true}))).await;
    assert_eq!(status, 403);
    let (status, _) =
        call_with(&base, &acme, "POST", "/api-keys", Some(json!({"name": "g", "organizationId": "globex"}))).await;
    assert_eq!(status, 403);
    let (_, listed) = call_with(&base, &acme, "GET", "/api-keys", None).await;
    let ids: Vec<&str> = listed["keys"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [acme_id.as_str()], "acme sees its own keys only");
    let (_, all) = call_with(&base, &root, "GET", "/api-keys", None).await;
    assert_eq!(all["keys"].as_array().unwrap().len(), 2, "{all}");
    let root_id = all["keys"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = call_with(&base, &acme, "DELETE", &format!("/api-keys/{root_id}"), None).await;
    assert_eq!(status, 404, "another org's key looks missing");

    // Rotation: the old secret is refused at once, the new one works.
    let (status, rotated) = call_with(&base, &acme, "POST", &format!("/api-keys/{acme_id}/rotate"), None).await;
    assert_eq!(status, 200, "{rotated}");
    let new_key = rotated["key"].as_str().unwrap().to_owned();
    assert_eq!(call_with(&base, &acme, "GET", "/threads", None).await.0, 401);
    let fresh = key_headers(&new_key, "acme");
    assert_eq!(call_with(&base, &fresh, "GET", "/threads", None).await.0, 200);
    // Revocation.
    let (status, _) = call_with(&base, &root, "DELETE", &format!("/api-keys/{acme_id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(call_with(&base, &fresh, "GET", "/threads", None).await.0, 401);
    // End users never manage keys.
    let (status, _) = call(&base, Some(&token("alice")), "GET", "/api-keys", None).await;
    assert_eq!(status, 403);
}

/// Upgraded sockets count against `max_connections` too: past it, an upgrade is a 503 and the
/// server keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_sockets_are_capped_by_max_connections() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = AppConfig::new(StoreLocation::Sqlite(dir.path().join("s.db")));
    config.bootstrap = replica_config_bootstrap();
    config.server.connections.max_connections = 3;
    let replica = Replica::start(config);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(Sock::user(replica.addr, "alice").await);
    }
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", replica.addr);
    match tokio_tungstenite::connect_async(url.clone()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 503),
        other => panic!("a fourth socket was not refused: {:?}", other.map(|(_, r)| r.status())),
    }
    let health = reqwest::get(format!("{}/api/health", replica.base())).await.unwrap();
    assert_eq!(health.status(), 200);
    drop(open.pop());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if tokio_tungstenite::connect_async(url.clone()).await.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a closed socket freed no place");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
