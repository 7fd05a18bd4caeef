//! Abuse against a real `agentry serve` (issue 16): one user opens 2,000 Socket.IO connections;
//! slowloris clients, idle connections and a flood of random methods and paths come at it. The
//! server's memory stays bounded and `/api/health` keeps answering within 100 ms (within a second
//! while 2,000 WebSocket handshakes run on a 2-core machine with a debug build). Each test prints
//! its figures (`cargo test -p agentry --test abuse -- --nocapture`).

mod common;

use std::time::{Duration, Instant};

use common::{API_KEY, SECRET};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

const SOCKETS: usize = 2_000;

/// Lets this process open more files than the usual soft limit (as `agentry serve` does).
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by reference.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            let wanted = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &wanted);
        }
    }
}

/// Probes `/api/health` every 50 ms until `stop`; returns the slowest answer.
async fn probe(base: String, stop: tokio::sync::watch::Receiver<bool>) -> Duration {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut slowest = Duration::ZERO;
    while !*stop.borrow() {
        let asked = Instant::now();
        let answer = client.get(format!("{base}/api/health")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    slowest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_sockets_of_one_user_keep_memory_bounded_and_health_fast() {
    raise_open_file_limit();
    let server = common::spawn(SECRET, API_KEY, &[]).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let token = common::token("flood");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss_kib();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let during = tokio::spawn(probe(server.base.clone(), stopped));
    let opened = Instant::now();
    let mut sockets = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        let url = format!("ws://{address}/socket.io/?EIO=4&transport=websocket");
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        ws.send(Message::text(format!("40/agent,{}", serde_json::json!({ "token": token })))).await.unwrap();
        loop {
            let Message::Text(text) = ws.next().await.unwrap().unwrap() else { continue };
            assert!(!text.starts_with("44"), "refused: {text}");
            if text.starts_with("40/agent") {
                break;
            }
        }
        sockets.push(ws);
    }
    let open_for = opened.elapsed();
    stop.send_replace(true);
    let slowest_while_opening = during.await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_kib();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let idle = tokio::spawn(probe(server.base.clone(), stopped));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send_replace(true);
    let slowest_idle = idle.await.unwrap();
    println!(
        "{SOCKETS} sockets of one user opened in {:.1}s; server RSS {:.1} → {:.1} MiB ({:.1} KiB a socket); \
         slowest health answer {:.1} ms while opening, {:.1} ms with them open",
        open_for.as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        after.saturating_sub(before) as f64 / SOCKETS as f64,
        slowest_while_opening.as_secs_f64() * 1000.0,
        slowest_idle.as_secs_f64() * 1000.0,
    );
    assert!(after.saturating_sub(before) < 200 * 1024, "{before} → {after} KiB");
    assert!(slowest_idle < Duration::from_millis(100), "{slowest_idle:?}");
    assert!(slowest_while_opening < Duration::from_secs(1), "{slowest_while_opening:?}");
    drop(sockets);
}

/// Samples the server's RSS every 50 ms until `stop`; returns the largest, in KiB.
async fn peak_rss(pid: u32, stop: tokio::sync::watch::Receiver<bool>) -> u64 {
    let mut peak = 0;
    while !*stop.borrow() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let rss = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        peak = peak.max(rss);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peak
}

/// Runs `phase` while health is probed and RSS sampled; returns (slowest health answer, peak RSS).
async fn watched<F: std::future::Future<Output = ()>>(server: &common::Server, phase: F) -> (Duration, u64) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let health = tokio::spawn(probe(server.base.clone(), stopped.clone()));
    let rss = tokio::spawn(peak_rss(server.pid(), stopped));
    phase.await;
    stop.send_replace(true);
    (health.await.unwrap(), rss.await.unwrap())
}

/// Whether the server closed `stream` (reads EOF or an error) within `deadline`.
async fn closed_by_server(stream: &mut TcpStream, deadline: Duration) -> bool {
    let mut buffer = [0u8; 1024];
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(deadline, read).await.is_ok()
}

/// A small deterministic generator (xorshift), so a failing run can be repeated.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn word(&mut self, len: usize) -> String {
        (0..len).map(|_| char::from(b'A' + (self.next() % 26) as u8)).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_idle_floods_and_random_requests_keep_memory_bounded_and_health_fast() {
    const SLOW: usize = 1_000;
    const IDLE: usize = 1_000;
    const RANDOM: usize = 20_000;
    raise_open_file_limit();
    let server = common::spawn_configured(SECRET, API_KEY, &[], "header_read_timeout_secs = 2\n").await;
    let address = server.base.trim_start_matches("http://").to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start_rss = server.rss_kib();

    // Slowloris: a request line, then one header byte every 500 ms, never the blank line.
    let mut slow = Vec::with_capacity(SLOW);
    let (slow_health, slow_peak) = watched(&server, async {
        for _ in 0..SLOW {
            let mut stream = TcpStream::connect(&address).await.unwrap();
            stream.write_all(b"GET /api/health HTTP/1.1\r\nHost: a\r\nX-Slow: ").await.unwrap();
            slow.push(stream);
        }
        let dribble = async {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                for stream in &mut slow {
                    let _ = stream.write_all(b"a").await;
                }
            }
        };
        dribble.await;
    })
    .await;
    let mut slow_closed = 0;
    for stream in &mut slow {
        slow_closed += usize::from(closed_by_server(stream, Duration::from_secs(3)).await);
    }
    drop(slow);

    // Idle: connections that never send a byte.
    let mut idle = Vec::with_capacity(IDLE);
    let (idle_health, idle_peak) = watched(&server, async {
        for _ in 0..IDLE {
            idle.push(TcpStream::connect(&address).await.unwrap());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    })
    .await;
    let mut idle_closed = 0;
    for stream in &mut idle {
        idle_closed += usize::from(closed_by_server(stream, Duration::from_secs(3)).await);
    }
    drop(idle);

    // Random methods and paths, eight clients at once.
    let before_random = server.rss_kib();
    let client = reqwest::Client::new();
    let (random_health, random_peak) = watched(&server, async {
        let mut workers = Vec::new();
        for worker in 0..8u64 {
            let client = client.clone();
            let base = server.base.clone();
            workers.push(tokio::spawn(async move {
                let mut random = Xorshift(0x9E37_79B9_7F4A_7C15 ^ (worker + 1));
                let mut server_errors = 0;
                for _ in 0..RANDOM / 8 {
                    let method_len = 3 + (random.next() % 8) as usize;
                    let method = random.word(method_len);
                    let segment_len = 1 + (random.next() % 12) as usize;
                    let path = format!("/{}/{}", random.word(4), random.word(segment_len));
                    let response =
                        client.request(method.parse().unwrap(), format!("{base}{path}")).send().await.unwrap();
                    server_errors += usize::from(response.status().is_server_error());
                }
                server_errors
            }));
        }
        let mut server_errors = 0;
        for worker in workers {
            server_errors += worker.await.unwrap();
        }
        assert_eq!(server_errors, 0, "random requests answered 5xx");
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_random = server.rss_kib();
    let metrics = client.get(format!("{}/metrics", server.base)).send().await.unwrap().text().await.unwrap();
    let request_series = metrics.lines().filter(|l| l.starts_with("agentry_http_requests_total{")).count();

    let mib = |kib: u64| kib as f64 / 1024.0;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "server RSS at start {:.1} MiB\n\
         slowloris: {SLOW} connections, {slow_closed} closed by the server within 2 s + 3 s, peak RSS {:.1} MiB, \
         slowest health {:.1} ms\n\
         idle: {IDLE} connections, {idle_closed} closed by the server, peak RSS {:.1} MiB, slowest health {:.1} ms\n\
         random: {RANDOM} requests, 0 server errors, RSS {:.1} → {:.1} MiB (peak {:.1}), \
         {request_series} request series in /metrics, slowest health {:.1} ms",
        mib(start_rss),
        mib(slow_peak),
        ms(slow_health),
        mib(idle_peak),
        ms(idle_health),
        mib(before_random),
        mib(after_random),
        mib(random_peak),
        ms(random_health),
    );
    assert_eq!(slow_closed, SLOW, "every slowloris connection is closed at the header deadline");
    assert_eq!(idle_closed, IDLE, "every idle connection is closed at the header deadline");
    for (phase, slowest) in [("slowloris", slow_health), ("idle", idle_health), ("random", random_health)] {
        assert!(slowest < Duration::from_millis(100), "{phase}: health took {slowest:?}");
    }
    for (phase, peak) in [("slowloris", slow_peak), ("idle", idle_peak), ("random", random_peak)] {
        assert!(peak < start_rss + 100 * 1024, "{phase}: RSS {start_rss} → peak {peak} KiB");
    }
    assert!(after_random < before_random + 20 * 1024, "random requests grew RSS {before_random} → {after_random} KiB");
    assert!(request_series < 40, "{request_series} request series: labels are not a closed set");
}
