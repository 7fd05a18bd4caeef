//! The cross-replica doorbell.
//!
//! Replicas never send each other events, only *bells*: "turn T has events up to seq N", "an
//! approval event was logged in scope S", "turns were queued", "stop turn T". Whoever hears a
//! bell reads what it needs from the store, so a missed bell costs latency, never data (followers
//! also poll the log, dispatchers also poll the queue).
//!
//! [`Bus`] is the engine's seam: [`LocalBus`] for the embedded default (one process, nothing to
//! tell anyone), [`StoreBus`] on Postgres (`LISTEN`/`NOTIFY` on one channel, coalesced: bells
//! rung while a `NOTIFY` is in flight go out together in the next one).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use agentry_core::Scope;
use agentry_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The `NOTIFY` channel.
const CHANNEL: &str = "agentry_bus";
/// Largest payload per `NOTIFY` (Postgres refuses 8000 bytes and more).
const MAX_PAYLOAD: usize = 7_500;

/// What one replica tells the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k")]
pub enum Bell {
    /// A turn's log has events up to `seq`.
    #[serde(rename = "e")]
    Logged {
        /// The turn's thread.
        thread: String,
        /// The turn.
        turn: String,
        /// Its last logged `seq`.
        seq: i64,
    },
    /// An approval event (`approval_needed`, `approval_resolved`) was logged at `seq` of `turn`.
    #[serde(rename = "a")]
    Approval {
        /// Scope of the turn.
        scope: Scope,
        /// The turn's thread.
        thread: String,
        /// The turn.
        turn: String,
        /// Position of the event.
        seq: i64,
    },
    /// Turns are waiting to be claimed.
    #[serde(rename = "q")]
    Queued,
    /// A replica let go of running turns (it is shutting down): take them over now.
    #[serde(rename = "r")]
    Released,
    /// Someone asked to stop a running turn.
    #[serde(rename = "c")]
    Cancel {
        /// The turn.
        turn: String,
    },
    /// A scope's budget caps changed: forget them, look at the turns waiting for a budget.
    #[serde(rename = "b")]
    Budgets {
        /// The scope.
        scope: Scope,
    },
    /// Runs of background tasks are waiting to be claimed.
    #[serde(rename = "rq")]
    RunsQueued,
    /// A schedule was created or changed: look at the due ones.
    #[serde(rename = "sc")]
    SchedulesChanged,
    /// Someone asked to stop an executing run.
    #[serde(rename = "rc")]
    CancelRun {
        /// The run.
        run: String,
    },
    /// A run changed state: its scope's operators hear of it.
    #[serde(rename = "ru")]
    RunUpdate {
        /// The run's scope.
        scope: Scope,
        /// The run.
        run: String,
    },
    /// A budget alert for a scope's operators (small: it travels in the bell).
    #[serde(rename = "ba")]
    ScopeAlert {
        /// The scope.
        scope: Scope,
        /// The `budget_alert` object.
        event: serde_json::Value,
    },
}

/// Carries bells to the other replicas. Ringing never blocks and never fails: delivery is best
/// effort by design.
pub trait Bus: Send + Sync + 'static {
    /// Tells the other replicas.
    fn ring(&self, bell: Bell);
}

/// What a replica does with the bells it hears (and with a hint that it may have missed some).
pub trait BellSink: Send + Sync + 'static {
    /// Another replica rang.
    fn heard(&self, bell: Bell);
    /// The bus reconnected: bells may have been lost, so look at the store.
    fn resync(&self);
}

/// One process, nobody else to tell.
#[derive(Debug, Default)]
pub struct LocalBus;

impl Bus for LocalBus {
    fn ring(&self, _bell: Bell) {}
}

/// A payload on the wire: who rang, and the bells.
#[derive(Serialize, Deserialize)]
struct Payload {
    /// The replica that rang (it ignores its own bells).
    from: String,
    bells: Vec<Bell>,
}

/// Bells over Postgres `LISTEN`/`NOTIFY`.
pub struct StoreBus {
    outbox: mpsc::UnboundedSender<Bell>,
}

impl StoreBus {
    /// Starts ringing and listening for `replica`; `None` when the store has no notifications
    /// (SQLite).
    pub async fn start(
        store: &Store,
        replica: &str,
        sink: std::sync::Weak<dyn BellSink>,
    ) -> Result<Option<Arc<StoreBus>>, agentry_store::StoreError> {
        let Some(mut notifications) = store.listen(CHANNEL).await? else { return Ok(None) };
        let (outbox, rx) = mpsc::unbounded_channel();
        tokio::spawn(ring_bells(store.clone(), replica.to_owned(), rx));
        let me = replica.to_owned();
        tokio::spawn(async move {
            loop {
                let received = notifications.recv().await;
                let Some(sink) = sink.upgrade() else { break };
                match received {
                    Ok(Some(payload)) => match serde_json::from_str::<Payload>(&payload) {
                        Ok(payload) if payload.from != me => payload.bells.into_iter().for_each(|b| sink.heard(b)),
                        Ok(_) => {}
                        Err(err) => tracing::warn!(%err, "unreadable bell"),
                    },
                    Ok(None) => {
                        tracing::warn!("the bus connection was re-established; bells may have been missed");
                        sink.resync();
                    }
                    Err(err) => {
                        tracing::warn!(%err, "the bus stopped listening");
                        break;
                    }
                }
            }
        });
        Ok(Some(Arc::new(StoreBus { outbox })))
    }
}

impl Bus for StoreBus {
    fn ring(&self, bell: Bell) {
        let _ = self.outbox.send(bell);
    }
}

/// Sends what has been rung, coalesced: one `Logged` per turn (the highest seq), one `Queued`.
async fn ring_bells(store: Store, replica: String, mut rx: mpsc::UnboundedReceiver<Bell>) {
    while let Some(first) = rx.recv().await {
        let mut logged: BTreeMap<String, (String, i64)> = BTreeMap::new();
        let mut others: BTreeSet<String> = BTreeSet::new();
        let mut bells = Vec::new();
        let mut next = Some(first);
        while let Some(bell) = next.take() {
            match bell {
                Bell::Logged { thread, turn, seq } => {
                    let entry = logged.entry(turn).or_insert((thread, seq));
                    entry.1 = entry.1.max(seq);
                }
                other => {
                    // Identical bells (two `Queued`) go once.
                    if let Ok(key) = serde_json::to_string(&other)
                        && others.insert(key)
                    {
                        bells.push(other);
                    }
                }
            }
            next = rx.try_recv().ok();
        }
        bells.extend(logged.into_iter().map(|(turn, (thread, seq))| Bell::Logged { thread, turn, seq }));
        for payload in payloads(&replica, bells) {
            if let Err(err) = store.notify(CHANNEL, &payload).await {
                tracing::warn!(%err, "cannot ring the bus");
            }
        }
    }
}

/// Packs bells into payloads that fit a `NOTIFY`.
fn payloads(replica: &str, bells: Vec<Bell>) -> Vec<String> {
    let mut out = Vec::new();
    let mut batch: Vec<Bell> = Vec::new();
    let mut size = 0;
    for bell in bells {
        let len = serde_json::to_string(&bell).map_or(0, |s| s.len()) + 1;
        if !batch.is_empty() && size + len > MAX_PAYLOAD - replica.len() - 32 {
            out.extend(encode(replica, std::mem::take(&mut batch)));
            size = 0;
        }
        size += len;
        batch.push(bell);
    }
    if !batch.is_empty() {
        out.extend(encode(replica, batch));
    }
    out
}

fn encode(replica: &str, bells: Vec<Bell>) -> Option<String> {
    serde_json::to_string(&Payload { from: replica.to_owned(), bells }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_fit_a_notify_and_keep_every_bell() {
        let bells: Vec<Bell> = (0..500)
            .map(|i| Bell::Logged { thread: format!("thr_{i:030}"), turn: format!("trn_{i:030}"), seq: i })
            .collect();
        let payloads = payloads("rep_1", bells.clone());
        assert!(payloads.len() > 1);
        let mut back = Vec::new();
        for payload in &payloads {
            assert!(payload.len() < 8000, "{} bytes", payload.len());
            let decoded: Payload = serde_json::from_str(payload).unwrap();
            assert_eq!(decoded.from, "rep_1");
            back.extend(decoded.bells);
        }
        assert_eq!(back, bells);
    }
}
