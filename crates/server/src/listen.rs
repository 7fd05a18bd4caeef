//! Accepting connections with limits that hold under abuse: a global and an optional per-IP
//! connection cap (a connection over either is closed at once), and a header-read timeout that
//! also closes idle keep-alive connections and ones that never send a byte (slowloris). HTTP/1.1
//! with upgrades (WebSockets), TCP_NODELAY, and a graceful stop: no new connections, each open
//! one finishes its request in flight, then the call returns.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};
use tower::ServiceExt as _;

/// How many connections, and how long a client may take to send a request's headers.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Open HTTP connections at most, and open sockets at most (upgraded connections leave the
    /// accept loop's count; the Socket.IO upgrade refuses a socket past this with 503).
    pub max_connections: usize,
    /// Open connections from one IP address at most (`None`: no per-IP cap — behind a load
    /// balancer every client has its address).
    pub max_connections_per_ip: Option<usize>,
    /// From the start of a request (or of an idle keep-alive wait) to its last header byte.
    pub header_read_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 20_000,
            max_connections_per_ip: None,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Open connections per IP address; a [`PerIp`] guard gives its place back when dropped.
#[derive(Default)]
struct IpCounts(Mutex<HashMap<IpAddr, usize>>);

struct PerIp {
    counts: Arc<IpCounts>,
    ip: IpAddr,
}

impl IpCounts {
    fn admit(counts: &Arc<IpCounts>, ip: IpAddr, max: usize) -> Option<PerIp> {
        let mut map = counts.0.lock().unwrap_or_else(|p| p.into_inner());
        let open = map.entry(ip).or_default();
        if *open >= max {
            return None;
        }
        *open += 1;
        Some(PerIp { counts: counts.clone(), ip })
    }
}

impl Drop for PerIp {
    fn drop(&mut self) {
        let mut map = self.counts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = map.get_mut(&self.ip) {
            *open -= 1;
            if *open == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `stopping` completes, then stops gracefully.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stopping: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = Arc::new(IpCounts::default());
    let (close, closing) = watch::channel(false);
    // Every connection task holds a sender: the channel closes once the last one ended.
    let (open_tx, mut all_closed) = mpsc::channel::<()>(1);
    let mut stopping = std::pin::pin!(stopping);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stopping => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection refused: the server is at max_connections");
            continue;
        };
        // Addresses are counted only when they are capped.
        let place = match limits.max_connections_per_ip {
            None => None,
            Some(max) => match IpCounts::admit(&per_ip, peer.ip(), max) {
                Some(place) => Some(place),
                None => {
                    tracing::debug!(%peer, "connection refused: its address is at max_connections_per_ip");
                    continue;
                }
            },
        };
        // Streams are many small frames: without TCP_NODELAY, Nagle's algorithm and delayed ACKs
        // hold them back ~40 ms.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(%err, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(
            router.clone().map_request(|req: axum::http::Request<Incoming>| req.map(Body::new)),
        );
        let mut closing = closing.clone();
        let open = open_tx.clone();
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let _held = (slot, place, open);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
            let mut connection = std::pin::pin!(builder.serve_connection(TokioIo::new(tcp), service).with_upgrades());
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(err) = served {
                        tracing::trace!(%err, "connection ended with an error");
                    }
                }
                _ = async { let _ = closing.wait_for(|closing| *closing).await; } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = close.send(true);
    drop(open_tx);
    let _ = all_closed.recv().await;
    Ok(())
}
