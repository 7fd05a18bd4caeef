//! The event log writer of one running turn.
//!
//! [`TurnLog::emit`] stamps the next `seq` and hands the event to a writer task that batches
//! whatever has queued up (no timer: under load batches grow, when idle each event is written at
//! once), appends the batch to the store in one transaction, and only then publishes it on the
//! bus. So every event a client can see is already in the log.

use std::sync::Arc;

use agentry_core::{LoggedEvent, Scope, Timestamp, TurnEvent};
use agentry_store::{Store, StoreError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::bus::Bus;

/// Largest batch written in one transaction.
const MAX_BATCH: usize = 512;
/// Attempts to write a batch before the log gives up.
const WRITE_ATTEMPTS: u32 = 5;

/// Appends a turn's events, in order, with gap-free sequence numbers.
pub struct TurnLog {
    turn_id: String,
    thread_id: String,
    last_seq: i64,
    tx: mpsc::UnboundedSender<LoggedEvent>,
    writer: JoinHandle<Result<(), StoreError>>,
}

impl TurnLog {
    /// Opens the log of a turn whose last written event is `last_seq` (0 for a new turn).
    pub fn open(store: Store, bus: Arc<Bus>, scope: Scope, turn_id: &str, thread_id: &str, last_seq: i64) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_batches(store, bus, scope, rx));
        TurnLog { turn_id: turn_id.to_owned(), thread_id: thread_id.to_owned(), last_seq, tx, writer }
    }

    /// Appends an event; returns its `seq`.
    pub fn emit(&mut self, event: TurnEvent) -> i64 {
        self.last_seq += 1;
        let logged = LoggedEvent {
            turn_id: self.turn_id.clone(),
            thread_id: self.thread_id.clone(),
            seq: self.last_seq,
            at: Timestamp::now(),
            event,
        };
        // The writer only stops after `close`, so a send cannot fail before it.
        let _ = self.tx.send(logged);
        self.last_seq
    }

    /// Waits until every emitted event is written and published.
    pub async fn close(self) -> Result<(), StoreError> {
        drop(self.tx);
        match self.writer.await {
            Ok(result) => result,
            Err(join) => Err(StoreError::Corrupt(format!("event log writer stopped: {join}"))),
        }
    }
}

async fn write_batches(
    store: Store,
    bus: Arc<Bus>,
    scope: Scope,
    mut rx: mpsc::UnboundedReceiver<LoggedEvent>,
) -> Result<(), StoreError> {
    let mut batch = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match store.append_events(&scope, &batch).await {
                Ok(()) => break,
                Err(err) if attempt < WRITE_ATTEMPTS && err.is_unavailable() => {
                    tracing::warn!(%err, attempt, "event log write failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
                }
                Err(err) => {
                    tracing::error!(%err, "event log write failed; events of this turn are lost to listeners");
                    return Err(err);
                }
            }
        }
        for event in batch.drain(..) {
            bus.publish(Arc::new(event));
        }
    }
    Ok(())
}
