//! Abuse against a real `agentry serve` (issue 16): one user opens 2,000 Socket.IO connections.
//! The server's memory stays bounded and `/api/health` keeps answering within 100 ms once they
//! are open (and within a second while they are being opened, on a 2-core machine).

mod common;

use std::time::{Duration, Instant};

use common::{API_KEY, SECRET};
use futures_util::{SinkExt as _, StreamExt as _};
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
