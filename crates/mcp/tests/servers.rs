//! agentry-mcp against a real MCP server: `tests/mcp/server.py` on the official Python SDK, over
//! stdio and streamable HTTP. `scripts/setup-mcp` installs the SDK and prints the interpreter
//! for `AGENTRY_TEST_MCP_PYTHON`; without it these tests fail (they never skip).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentry_mcp::{McpError, McpHub, McpServerConfig};
use serde_json::json;

fn python() -> String {
    match std::env::var("AGENTRY_TEST_MCP_PYTHON") {
        Ok(python) if !python.is_empty() => python,
        _ => panic!(
            "AGENTRY_TEST_MCP_PYTHON is not set: run scripts/setup-mcp and set AGENTRY_TEST_MCP_PYTHON to the \
             MCP_PYTHON path it prints (these tests need the official Python MCP SDK)"
        ),
    }
}

fn server_py() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/mcp/server.py");
    path.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", path.display())).display().to_string()
}

/// A tag no other test (or test run) uses, to find this test's server in the process table.
fn unique_tag(test: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("agentry-mcp-test-{}-{}-{test}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

fn config_json(value: serde_json::Value) -> McpServerConfig {
    serde_json::from_value(value).unwrap()
}

/// A stdio server config; `tag` rides along as an ignored argument.
fn stdio(tag: &str) -> McpServerConfig {
    config_json(json!({"command": python(), "args": [server_py(), "stdio", tag]}))
}

fn hub(servers: impl IntoIterator<Item = (&'static str, McpServerConfig)>) -> McpHub {
    McpHub::new(servers.into_iter().map(|(name, config)| (name.to_string(), config)).collect::<BTreeMap<_, _>>())
}

/// Live processes whose command line contains `tag` (a zombie has an empty command line).
fn pids_with(tag: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if cmdline.split(|b| *b == 0).any(|arg| arg == tag.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[test]
fn the_hub_and_its_futures_can_move_between_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let hub = McpHub::new(BTreeMap::new());
    send_sync(&hub);
    send(hub.list_tools("x"));
    send(hub.call_tool("x", "y", json!({})));
    send(hub.shutdown());
}

#[tokio::test]
async fn stdio_lists_tools_with_their_schemas() {
    let hub = hub([("py", stdio(&unique_tag("list")))]);
    let tools = hub.list_tools("py").await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    for expected in ["echo", "add", "fail", "slow"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let echo = tools.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!(echo.description, "Returns its input unchanged.");
    assert_eq!(echo.input_schema["type"], "object");
    assert_eq!(echo.input_schema["properties"]["text"]["type"], "string");
    assert_eq!(echo.input_schema["required"], json!(["text"]));
    let add = tools.iter().find(|t| t.name == "add").unwrap();
    assert_eq!(add.input_schema["properties"]["a"]["type"], "number");
    assert_eq!(add.input_schema["required"], json!(["a", "b"]));
    // Cached: the same answer without asking again.
    assert_eq!(hub.list_tools("py").await.unwrap(), tools);
    hub.shutdown().await;
}

#[tokio::test]
async fn stdio_calls_convert_results() {
    let hub = hub([("py", stdio(&unique_tag("calls")))]);

    let echo = hub.call_tool("py", "echo", json!({"text": "hello"})).await.unwrap();
    assert_eq!((echo.content, echo.is_error), (json!("hello"), false));
    // JSON printed as text arrives parsed.
    let parsed = hub.call_tool("py", "echo", json!({"text": "{\"k\": [1, 2]}"})).await.unwrap();
    assert_eq!(parsed.content, json!({"k": [1, 2]}));

    let add = hub.call_tool("py", "add", json!({"a": 2, "b": 3.5})).await.unwrap();
    assert!(!add.is_error);
    assert_eq!(add.content["result"].as_f64(), Some(5.5), "structured content: {}", add.content);

    let fail = hub.call_tool("py", "fail", serde_json::Value::Null).await.unwrap();
    assert!(fail.is_error);
    assert!(fail.content.as_str().unwrap().contains("this tool always fails"), "{}", fail.content);

    let pair = hub.call_tool("py", "pair", json!({})).await.unwrap();
    assert_eq!(pair.content, json!(["left", "right"]));
    let picture = hub.call_tool("py", "picture", json!({})).await.unwrap();
    assert_eq!(picture.content[0], "a caption");
    assert_eq!(picture.content[1]["type"], "image");
    assert_eq!(picture.content[1]["mimeType"], "image/png");

    // The server's own answer to bad arguments or an unknown tool: reported, never a panic.
    let unknown = hub.call_tool("py", "no_such_tool", json!({})).await;
    assert!(matches!(&unknown, Ok(r) if r.is_error) || matches!(&unknown, Err(McpError::Call { .. })), "{unknown:?}");
    let not_object = hub.call_tool("py", "echo", json!("text")).await.unwrap_err();
    assert!(matches!(not_object, McpError::Call { ref cause, .. } if cause.contains("object")), "{not_object}");
    hub.shutdown().await;
}

#[tokio::test]
async fn a_slow_call_times_out_and_the_connection_stays_usable() {
    let tag = unique_tag("timeout");
    let mut config = stdio(&tag);
    config.timeout_secs = Some(1);
    let hub = hub([("py", config)]);
    hub.call_tool("py", "echo", json!({"text": "warm"})).await.unwrap();
    let pid = pids_with(&tag);

    let start = Instant::now();
    let err = hub.call_tool("py", "slow", json!({"seconds": 10})).await.unwrap_err();
    assert!(matches!(&err, McpError::Timeout { server, tool } if server == "py" && tool == "slow"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5), "took {:?}", start.elapsed());

    let after = hub.call_tool("py", "echo", json!({"text": "still here"})).await.unwrap();
    assert_eq!(after.content, json!("still here"));
    assert_eq!(pids_with(&tag), pid, "a timeout must not restart the server");
    hub.shutdown().await;
}

#[tokio::test]
async fn concurrent_calls_share_one_connection() {
    let tag = unique_tag("concurrent");
    let hub = hub([("py", stdio(&tag))]);
    // Starting cold: the first uses race to connect, and must still start only one server.
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let hub = hub.clone();
            tokio::spawn(async move { hub.call_tool("py", "echo", json!({"text": format!("n{i}")})).await })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap().content, json!(format!("n{i}")));
    }
    assert_eq!(pids_with(&tag).len(), 1);
    hub.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_the_child_process() {
    let tag = unique_tag("shutdown");
    let hub = hub([("py", stdio(&tag))]);
    hub.list_tools("py").await.unwrap();
    assert_eq!(pids_with(&tag).len(), 1);

    hub.shutdown().await;
    assert_eq!(pids_with(&tag), Vec::<u32>::new(), "the server outlived shutdown()");
    let err = hub.call_tool("py", "echo", json!({"text": "x"})).await.unwrap_err();
    assert!(matches!(err, McpError::Connect { .. }), "{err}");
    assert!(pids_with(&tag).is_empty(), "a call after shutdown started a server");
}

#[tokio::test]
async fn dropping_the_hub_stops_the_child_process() {
    let tag = unique_tag("drop");
    let hub = hub([("py", stdio(&tag))]);
    let other = hub.clone();
    hub.call_tool("py", "echo", json!({"text": "x"})).await.unwrap();
    assert_eq!(pids_with(&tag).len(), 1);
    drop(hub);
    drop(other);
    wait_until("the server to exit after the hub was dropped", Duration::from_secs(8), || pids_with(&tag).is_empty())
        .await;
}

#[test]
fn a_hub_outliving_its_runtime_leaves_no_child() {
    let tag = unique_tag("runtime");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let hub = hub([("py", stdio(&tag))]);
    runtime.block_on(hub.list_tools("py")).unwrap();
    assert_eq!(pids_with(&tag).len(), 1);
    // The runtime goes first, so nothing async can close the connection any more.
    drop(runtime);
    drop(hub);
    let start = Instant::now();
    while !pids_with(&tag).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(5), "the server outlived its hub and runtime");
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[tokio::test]
async fn a_killed_server_is_restarted_on_next_use() {
    let tag = unique_tag("restart");
    let hub = hub([("py", stdio(&tag))]);
    hub.list_tools("py").await.unwrap();
    let [pid] = pids_with(&tag)[..] else { panic!("expected one server process") };

    let killed = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(killed.success());
    // Reaping is the client's last step after it saw end of file; the connection reads as closed
    // right after.
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    wait_until("the killed server to be reaped", Duration::from_secs(5), || !proc_dir.exists()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let echo = hub.call_tool("py", "echo", json!({"text": "again"})).await.unwrap();
    assert_eq!(echo.content, json!("again"));
    let now = pids_with(&tag);
    assert!(now.len() == 1 && now[0] != pid, "expected a new server, got {now:?} (old {pid})");
    assert!(hub.list_tools("py").await.unwrap().iter().any(|t| t.name == "echo"));
    hub.shutdown().await;
}

/// Starts `server.py` as a streamable-HTTP server on `port` and waits until it accepts.
async fn start_http_server(port: u16) -> tokio::process::Child {
    let mut server = tokio::process::Command::new(python())
        .args([server_py(), "http".into(), port.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if let Some(status) = server.try_wait().unwrap() {
            panic!("the HTTP MCP server exited early: {status}");
        }
        assert!(start.elapsed() < Duration::from_secs(20), "the HTTP MCP server did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server
}

#[tokio::test]
async fn streamable_http_lists_and_calls() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = start_http_server(port).await;

    let config = config_json(json!({
        "url": format!("http://127.0.0.1:{port}/mcp"),
        "headers": {"X-Agentry-Test": "from-config"},
        "timeout_secs": 10,
    }));
    let hub = hub([("web", config)]);
    let tools = hub.list_tools("web").await.unwrap();
    assert!(["echo", "add", "fail", "slow"].iter().all(|name| tools.iter().any(|t| t.name == *name)), "{tools:?}");
    let echo = tools.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!(echo.input_schema["properties"]["text"]["type"], "string");
    assert_eq!(hub.call_tool("web", "echo", json!({"text": "over http"})).await.unwrap().content, json!("over http"));
    let add = hub.call_tool("web", "add", json!({"a": 1, "b": 2})).await.unwrap();
    assert_eq!(add.content["result"].as_f64(), Some(3.0));
    assert!(hub.call_tool("web", "fail", json!({})).await.unwrap().is_error);
    let header = hub.call_tool("web", "header", json!({"name": "X-Agentry-Test"})).await.unwrap();
    assert_eq!(header.content, json!("from-config"));

    // Server gone: the request cannot be delivered, so the hub reconnects once, and says so.
    server.kill().await.unwrap();
    let err = hub.call_tool("web", "echo", json!({"text": "down"})).await.unwrap_err();
    assert!(matches!(&err, McpError::Connect { cause, .. } if cause.contains("Connection refused")), "{err}");
    // Back (a new process, so a new session): the next call connects afresh.
    let mut server = start_http_server(port).await;
    assert_eq!(hub.call_tool("web", "echo", json!({"text": "up"})).await.unwrap().content, json!("up"));

    hub.shutdown().await;
    server.kill().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_http_server_is_a_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hub = hub([("web", config_json(json!({"url": format!("http://127.0.0.1:{port}/mcp"), "timeout_secs": 5})))]);
    let err = hub.list_tools("web").await.unwrap_err();
    let McpError::Connect { server, cause } = &err else { panic!("expected Connect, got {err:?}") };
    assert_eq!(server, "web");
    assert!(cause.contains("Connection refused"), "{cause}");
}

#[tokio::test]
async fn unknown_servers_and_bad_commands_are_clear_errors() {
    let hub = hub([
        ("py", stdio(&unique_tag("names"))),
        ("missing", config_json(json!({"command": "agentry-no-such-mcp-server", "args": ["x"]}))),
        (
            "crashes",
            config_json(json!({
                "command": python(),
                "args": ["-c", "import sys; sys.stderr.write('boom: MCP_TOKEN is not set\\n'); sys.exit(3)"],
            })),
        ),
        ("invalid", config_json(json!({"command": "x", "url": "http://127.0.0.1:1/mcp"}))),
    ]);
    assert_eq!(hub.server_names(), ["crashes", "invalid", "missing", "py"]);
    assert!(hub.has_server("py") && !hub.has_server("nope"));

    let err = hub.call_tool("nope", "echo", json!({})).await.unwrap_err();
    assert!(matches!(&err, McpError::UnknownServer(name) if name == "nope"), "{err}");
    assert!(matches!(hub.list_tools("nope").await, Err(McpError::UnknownServer(_))));

    let err = hub.list_tools("missing").await.unwrap_err();
    let McpError::Connect { server, cause } = &err else { panic!("expected Connect, got {err:?}") };
    assert_eq!(server, "missing");
    assert!(cause.contains("agentry-no-such-mcp-server") && cause.contains("No such file"), "{cause}");

    let err = hub.list_tools("crashes").await.unwrap_err();
    let McpError::Connect { cause, .. } = &err else { panic!("expected Connect, got {err:?}") };
    assert!(cause.contains("boom: MCP_TOKEN is not set"), "the server's stderr should be quoted: {cause}");

    let err = hub.list_tools("invalid").await.unwrap_err();
    assert!(matches!(&err, McpError::Config(msg) if msg.contains("invalid")), "{err}");
}
