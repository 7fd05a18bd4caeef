//! Operator commands against a real `agentry serve`: budgets and monitoring, through the SDK
//! namespaces and the `agentry budgets|turns|trace` commands, and what `serve` sets up for
//! itself at start.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agentry_client::{Client, Error, RunStatus, Scope, StreamEvent, TaskKind, TurnEvent, TurnStatus};
use common::{API_KEY, SECRET, client, collect, done};

/// `agentry ARGS --server BASE --api-key …`: a command run as the operator of a spawned server.
fn as_operator(base: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_agentry"))
        .args(args)
        .args(["--server", base, "--api-key", API_KEY])
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_budgets_namespace_and_cli_manage_caps_that_stop_turns() {
    let prices = "[prices.\"scripted:echo\"]\ninput = 1000\noutput = 1000\n";
    let server = common::spawn_configured(SECRET, API_KEY, &[], prices).await;
    let operator = Client::builder(&server.base).api_key(API_KEY, Scope::default_scope()).build().unwrap();
    // The default agent's prompt is 5 words: the first two-word echo reads 7 words and writes 2
    // (9,000 µ¢), the second 11 and 2 (13,000 µ¢); the third would need 17,000 more.
    let cap = operator
        .budgets()
        .set(&agentry_client::NewBudgetCap {
            scope_type: "user".into(),
            target_id: Some("alice".into()),
            period: "day".into(),
            limit_cents: 0.03,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((cap.scope_type.as_str(), cap.limit_cents), ("user", 0.03));
    let alice = client(&server.base, "alice");
    let thread = alice.threads().create(None, None).await.unwrap();
    for _ in 0..2 {
        let (events, _) = collect(alice.threads().send(&thread.id, "hello there")).await;
        assert_eq!(done(&events).0, TurnStatus::Completed);
    }
    let (events, _) = collect(alice.threads().send(&thread.id, "one more")).await;
    assert_eq!(done(&events).0, TurnStatus::Failed);
    assert!(
        events.iter().any(|e| matches!(e, StreamEvent::Event(TurnEvent::Error { code, .. }) if code == "budget_cap"))
    );
    // 22,000 of 30,000 µ¢ spent: the cap is not used up, but the third turn's call did not fit.
    let status = alice.budgets().status(None, None).await.unwrap();
    assert!(!status.blocked, "{status:?}");
    assert_eq!((status.caps[0].spent_cents, status.caps[0].turns), (0.022, 2), "the refused turn made no call");
    assert_eq!(status.caps[0].crossed_thresholds, [50]);
    // The CLI lifts the block for an hour; the next turn goes through.
    let cli = Command::new(env!("CARGO_BIN_EXE_agentry"))
        .args(["budgets", "override", &cap.id, "--minutes", "60", "--server", &server.base, "--api-key", API_KEY])
        .output()
        .unwrap();
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));
    assert!(String::from_utf8_lossy(&cli.stdout).contains("does not block until"));
    let (events, _) = collect(alice.threads().send(&thread.id, "after the override")).await;
    assert_eq!(done(&events).0, TurnStatus::Completed);
    let listed = Command::new(env!("CARGO_BIN_EXE_agentry"))
        .args(["budgets", "list", "--server", &server.base, "--api-key", API_KEY])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&cap.id));
    assert!(operator.budgets().delete(&cap.id).await.unwrap());
    assert!(!operator.budgets().delete(&cap.id).await.unwrap());
}

#[tokio::test]
async fn the_monitoring_namespace_and_cli_show_turns_traces_and_costs() {
    let prices = "[prices.\"scripted:echo\"]\ninput = 1000\noutput = 1000\n";
    let server = common::spawn_configured(SECRET, API_KEY, &[], prices).await;
    let alice = client(&server.base, "alice");
    let thread = alice.threads().create(None, None).await.unwrap();
    let (events, _) = collect(alice.threads().send(&thread.id, "hello there")).await;
    let Some(StreamEvent::Event(TurnEvent::Done { usage, .. })) = events.last() else { panic!("{events:?}") };
    let cost = usage.cost.0;
    assert!(cost > 0);

    let turns = alice.monitoring().turns(&agentry_client::TurnQuery::default()).await.unwrap();
    assert_eq!(turns.len(), 1);
    let turn = &turns[0];
    assert_eq!(
        (turn.thread_id.as_str(), turn.status.as_str(), turn.cost_micro_cents),
        (thread.id.as_str(), "completed", cost)
    );
    assert_eq!(alice.monitoring().turn(&turn.id).await.unwrap().steps, 1);
    let spans = alice.monitoring().trace(&turn.trace_id).await.unwrap();
    assert_eq!(spans.len(), 2, "the turn and its model call");
    let story = alice.monitoring().thread_trace(&thread.id).await.unwrap();
    assert_eq!((story.rollup.total_cost_micro_cents, story.messages.len()), (cost, 2));
    assert_eq!(story.messages[1].turn_id.as_deref(), Some(turn.id.as_str()));
    assert_eq!(story.span_tree[0].child_spans().len(), 1);
    for by in [
        agentry_client::CostBy::Agent,
        agentry_client::CostBy::Day,
        agentry_client::CostBy::Model,
        agentry_client::CostBy::User,
    ] {
        let rollup = alice.monitoring().cost(by, 1).await.unwrap();
        assert_eq!((rollup.total.cost_micro_cents, rollup.total.turns, rollup.rows.len()), (cost, 1, 1), "{by:?}");
        assert_eq!(rollup.rows[0].usage.cost_micro_cents, cost);
    }
    let rollup = alice.monitoring().cost(agentry_client::CostBy::User, 1).await.unwrap();
    assert_eq!(rollup.rows[0].key(), "alice");
    let summary = alice.monitoring().summary(None).await.unwrap();
    assert_eq!((summary.usage.turns, summary.failures), (1, 0));
    // Bob sees none of it.
    let bob = client(&server.base, "bob");
    assert!(bob.monitoring().turns(&agentry_client::TurnQuery::default()).await.unwrap().is_empty());
    assert!(matches!(bob.monitoring().turn(&turn.id).await, Err(Error::NotFound { .. })));
    assert!(matches!(bob.monitoring().thread_trace(&thread.id).await, Err(Error::NotFound { .. })));

    let cli = |args: &[&str]| {
        let output = as_operator(&server.base, args);
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    };
    let listed = cli(&["turns", "--limit", "5"]);
    assert!(listed.contains("completed") && listed.contains(&thread.id), "{listed}");
    let tree = cli(&["trace", &thread.id]);
    let lines: Vec<&str> = tree.lines().collect();
    assert!(lines[0].starts_with(&format!("thread {}: 2 messages, 1 turns", thread.id)), "{tree}");
    assert!(lines[1].starts_with("invoke_agent ") && lines[1].contains(" ms"), "{tree}");
    assert!(lines[2].starts_with("└─ chat echo") && lines[2].contains("¢"), "{tree}");
}

/// `agentry serve` raises its soft open-file limit to the hard one (each connection is a file).
#[tokio::test]
async fn serve_raises_its_open_file_limit() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -Sn 256 && exec \"$0\" \"$@\"", env!("CARGO_BIN_EXE_agentry")])
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path().join("data"))
        .env("AGENTRY_SERVICE_SECRET", SECRET)
        .env("AGENTRY_API_KEY", API_KEY)
        .env("AGENTRY_DEFAULT_MODEL", "scripted:echo")
        .env("AGENTRY_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("http://127.0.0.1:{port}/api/health")).await.map_or(true, |r| !r.status().is_success()) {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap().to_owned();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    let _ = child.kill();
    let _ = child.wait();
    assert_ne!(numbers[0], "256", "{line}");
    assert_eq!(numbers[0], numbers[1], "soft = hard: {line}");
}

#[tokio::test]
async fn the_bgo_namespace_and_cli_trigger_read_and_schedule_runs() {
    let tasks = tempfile::tempdir().unwrap();
    std::fs::write(
        tasks.path().join("summarise.toml"),
        "id = \"summarise\"\nkind = \"agent\"\nagent = \"echo\"\nmessage = \"Summarise {{payload.url}}\"\n",
    )
    .unwrap();
    let config = format!("tasks_dir = \"{}\"\n[jobs]\nconcurrency = 4\n", tasks.path().display());
    let echo = ("echo.toml", "id = \"echo\"\nname = \"Echo\"\nmodel = \"scripted:echo\"\n".to_owned());
    let server = common::spawn_configured(SECRET, API_KEY, &[echo], &config).await;
    let operator = Client::builder(&server.base).api_key(API_KEY, Scope::default_scope()).build().unwrap();
    let bgo = operator.bgo();
    let tasks_seen = bgo.tasks().await.unwrap();
    assert_eq!((tasks_seen.len(), tasks_seen[0].id.as_str(), tasks_seen[0].kind), (1, "summarise", TaskKind::Agent));

    let options = agentry_client::TriggerOptions { idempotency_key: Some("k1".into()), ..Default::default() };
    let payload = serde_json::json!({"url": "https://example.com/x"});
    let first = bgo.trigger("summarise", payload.clone(), &options).await.unwrap();
    let again = bgo.trigger("summarise", payload, &options).await.unwrap();
    assert_eq!((again.id.as_str(), again.is_cached), (first.id.as_str(), true));
    let deadline = Instant::now() + Duration::from_secs(10);
    let run = loop {
        let run = bgo.run(&first.id).await.unwrap();
        if run.is_finished {
            break run;
        }
        assert!(Instant::now() < deadline, "{run:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output.as_ref().unwrap()["answer"], "Summarise https://example.com/x");
    assert_eq!(run.attempts.as_ref().map(Vec::len), Some(1));
    let batch = bgo.batch("summarise", vec![payload_of(1), payload_of(2), payload_of(3)]).await.unwrap();
    assert_eq!(batch.run_ids.len(), 3);
    assert!(matches!(
        bgo.trigger("nope", serde_json::json!({}), &Default::default()).await,
        Err(Error::NotFound { .. })
    ));

    let cli = |args: &[&str]| {
        let out = as_operator(&server.base, args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = cli(&["runs", "list", "--task", "summarise"]);
    assert!(listed.contains(&first.id) && listed.contains("COMPLETED"), "{listed}");
    let shown = cli(&["runs", "get", &first.id]);
    assert!(shown.contains("attempt 1 on rep_") && shown.contains("Summarise https://example.com/x"), "{shown}");
    let created = cli(&[
        "schedules",
        "create",
        "summarise",
        "0 9 * * 1",
        "--timezone",
        "Europe/Berlin",
        "--payload",
        "{\"url\": \"weekly\"}",
    ]);
    let schedule_id = created.split_whitespace().next().unwrap().to_owned();
    assert!(created.contains("Europe/Berlin") && created.contains("on "), "{created}");
    assert!(cli(&["schedules", "deactivate", &schedule_id]).contains("off"));
    assert!(!bgo.schedules().await.unwrap()[0].active);
    assert!(cli(&["schedules", "delete", &schedule_id]).contains("deleted"));
    assert!(bgo.schedules().await.unwrap().is_empty());
    let deadline = Instant::now() + Duration::from_secs(10);
    while bgo.batch_status(&batch.batch_id).await.unwrap().status != "COMPLETED" {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn payload_of(n: u32) -> serde_json::Value {
    serde_json::json!({ "url": format!("https://example.com/{n}") })
}

#[tokio::test]
async fn agentry_keys_creates_org_bound_keys_that_rotate_and_revoke() {
    let server = common::spawn(SECRET, API_KEY, &[]).await;
    let data = server.dir.path().join("data");
    let keys = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_agentry"))
            .arg("keys")
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = keys(&["create", "--name", "acme ci", "--org", "acme"]);
    assert!(ok, "{err}");
    let mut lines = out.lines();
    let id = lines.next().unwrap().split_whitespace().next().unwrap().to_owned();
    let secret = lines.next().unwrap().to_owned();
    assert!(out.contains("organization acme") && secret.starts_with("agk_"), "{out}");
    let (ok, _, err) = keys(&["create", "--name", "nowhere"]);
    assert!(!ok && err.contains("--org"), "an org (or --installation-wide) is required: {err}");

    let acme = Client::builder(&server.base).api_key(&secret, Scope::new("acme", "web", "prod")).build().unwrap();
    assert!(acme.threads().list(&Default::default()).await.is_ok(), "the key acts in acme");
    let elsewhere = Client::builder(&server.base).api_key(&secret, Scope::default_scope()).build().unwrap();
    assert!(
        matches!(elsewhere.threads().list(&Default::default()).await, Err(Error::Auth { .. })),
        "not in another org"
    );
    let (_, listed, _) = keys(&["list"]);
    assert!(listed.contains(&id) && listed.contains("org acme") && listed.contains("installation-wide"), "{listed}");

    let (ok, rotated, err) = keys(&["rotate", &id]);
    assert!(ok, "{err}");
    assert!(
        matches!(acme.threads().list(&Default::default()).await, Err(Error::Auth { .. })),
        "the old secret is refused"
    );
    let renewed =
        Client::builder(&server.base).api_key(rotated.trim(), Scope::new("acme", "web", "prod")).build().unwrap();
    assert!(renewed.threads().list(&Default::default()).await.is_ok());
    let (ok, _, err) = keys(&["revoke", &id]);
    assert!(ok, "{err}");
    assert!(matches!(renewed.threads().list(&Default::default()).await, Err(Error::Auth { .. })));
    let (ok, _, err) = keys(&["revoke", &id]);
    assert!(!ok && err.contains("no active key"), "{err}");
}

/// A first start that stops on a bad agent file sets nothing up, so the one-time API key is not
/// printed and lost; the next start with good files prints a key that works (issue 17).
#[tokio::test]
async fn a_first_start_stopped_by_a_bad_file_loses_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents");
    std::fs::create_dir_all(&agents).unwrap();
    std::fs::write(agents.join("bad.toml"), "id = \"bad\"\nname = \"Bad\"\nmodel = \"nosuch:model\"\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let failed = first_start(dir.path(), port).output().unwrap();
    assert_refused_without_a_key(&failed, "bad.toml");
    std::fs::write(agents.join("bad.toml"), "id = \"good\"\nname = \"Good\"\nmodel = \"scripted:echo\"\n").unwrap();
    second_start_prints_a_working_key(dir.path(), port, "good").await;
}

/// A first start whose port is taken binds before it sets anything up: it stops without printing
/// (and losing) the one-time key, and the next start, once the port is free, prints one that works.
#[tokio::test]
async fn a_first_start_on_a_taken_port_loses_no_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("agents")).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let failed = first_start(dir.path(), port).output().unwrap();
    assert_refused_without_a_key(&failed, &format!("127.0.0.1:{port}"));
    drop(taken);
    second_start_prints_a_working_key(dir.path(), port, "default").await;
}

/// `agentry serve` on a new data dir under `root`, with the agent files of `root/agents`.
fn first_start(root: &std::path::Path, port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agentry"));
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--agents"])
        .arg(root.join("agents"))
        .arg("--data-dir")
        .arg(root.join("data"))
        .env_remove("AGENTRY_API_KEY")
        .env_remove("AGENTRY_SERVICE_SECRET")
        .env("AGENTRY_DEFAULT_MODEL", "scripted:echo")
        .env("AGENTRY_LOG", "warn");
    command
}

fn assert_refused_without_a_key(failed: &std::process::Output, named: &str) {
    assert!(!failed.status.success());
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(!stdout.contains("operator API key"), "a key was printed by a start that failed: {stdout}");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains(named), "the error names {named}: {stderr}");
}

/// Starts again on the same data dir: the key it prints lists the agents, `agent` among them.
async fn second_start_prints_a_working_key(root: &std::path::Path, port: u16, agent: &str) {
    let mut child = first_start(root, port).stdout(Stdio::piped()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (found, key) = tokio::sync::oneshot::channel();
    // Reads stdout to its end (the server keeps writing), handing over the key when it shows.
    tokio::task::spawn_blocking(move || {
        use std::io::BufRead as _;
        let mut found = Some(found);
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(key) = line.trim().strip_prefix("operator API key:")
                && let Some(found) = found.take()
            {
                let _ = found.send(key.trim().to_owned());
            }
        }
    });
    let key =
        tokio::time::timeout(Duration::from_secs(20), key).await.unwrap().expect("the second start prints the key");
    let operator =
        Client::builder(format!("http://127.0.0.1:{port}")).api_key(&key, Scope::default_scope()).build().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match operator.agents().list().await {
            Ok(agents) => {
                assert!(agents.iter().any(|a| a.id == agent), "{agent} is not listed");
                break;
            }
            Err(err) => assert!(Instant::now() < deadline, "{err}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `agentry agents list|get|rm`, `agentry threads list|show`, completions and `serve --help`, as an
/// operator reaches for them.
#[tokio::test]
async fn the_cli_lists_and_shows_agents_and_threads() {
    let steps = "id = \"stepper\"\nname = \"Stepper\"\nmodel = \"scripted:steps\"\ntools = [\"current_time\"]\n\
                 [[script.steps]]\ntext = \"Checking.\"\ntool_calls = [{ name = \"current_time\", arguments = {} }]\n\
                 [[script.steps]]\ntext = \"It is late.\"\n";
    let server = common::spawn(SECRET, API_KEY, &[("stepper.toml", steps.to_owned())]).await;
    let alice = client(&server.base, "alice");
    let thread = alice.threads().create(Some("stepper"), Some("Clock question")).await.unwrap();
    let (events, _) = collect(alice.threads().send(&thread.id, "what time is it")).await;
    assert_eq!(done(&events).0, TurnStatus::Completed);
    alice.threads().create(None, Some("Other matter")).await.unwrap();

    let cli = |args: &[&str]| {
        let output = as_operator(&server.base, args);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, agents, err) = cli(&["agents", "list"]);
    assert!(ok, "{err}");
    assert!(agents.lines().any(|l| l.starts_with("stepper  Stepper  scripted:steps  v1")), "{agents}");
    let (ok, agent, _) = cli(&["agents", "get", "stepper"]);
    assert!(
        ok && agent.contains("v1") && agent.contains("(current)") && agent.contains("by file:stepper.toml"),
        "{agent}"
    );
    let (ok, threads, _) = cli(&["threads", "list", "--search", "clock"]);
    assert!(ok, "{threads}");
    assert_eq!(threads.lines().count(), 1, "{threads}");
    assert!(threads.starts_with(&format!("{}  Clock question  agent stepper  user alice", thread.id)), "{threads}");
    let (_, by_user, _) = cli(&["threads", "list", "--user", "bob"]);
    assert_eq!(by_user.trim(), "no threads match");
    let (ok, shown, _) = cli(&["threads", "show", &thread.id]);
    assert!(ok, "{shown}");
    assert!(shown.contains("] user\nwhat time is it"), "{shown}");
    assert!(shown.contains("It is late.") && shown.contains("↳ current_time({}) returned"), "{shown}");
    let (ok, _, err) = cli(&["threads", "show", "thr_missing"]);
    assert!(!ok && err.contains("no thread `thr_missing`"), "{err}");
    let (ok, removed, _) = cli(&["agents", "rm", "stepper"]);
    assert!(ok && removed.contains("deleted agent stepper"), "{removed}");
    let (ok, _, err) = cli(&["agents", "get", "stepper"]);
    assert!(!ok && err.contains("no agent `stepper`"), "{err}");
    let (ok, _, err) = cli(&["agents", "rm", "stepper"]);
    assert!(!ok && err.contains("no agent `stepper`"), "{err}");

    let local = |args: &[&str]| Command::new(env!("CARGO_BIN_EXE_agentry")).args(args).output().unwrap();
    let completions = local(&["completions", "bash"]);
    let script = String::from_utf8_lossy(&completions.stdout);
    assert!(completions.status.success() && script.contains("_agentry()") && script.contains("threads"), "{script}");
    let help = String::from_utf8_lossy(&local(&["serve", "--help"]).stdout).into_owned();
    for var in ["AGENTRY_DATABASE_URL", "AGENTRY_CORS_ORIGINS", "OTEL_EXPORTER_OTLP_ENDPOINT", "AGENTRY_SERVICE_SECRET"]
    {
        assert!(help.contains(var), "serve --help does not name {var}:\n{help}");
    }
}
