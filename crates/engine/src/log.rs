//! Event logs: one writer for the whole process, batching the events of every running turn.
//!
//! [`TurnLog::emit`] stamps the next `seq` and queues the event. The [`LogWriter`] task takes
//! whatever has queued up across all turns (no timer: under load batches grow, when idle each
//! event is written at once), appends it to the store in one transaction, and only then
//! publishes it on the bus. So every event a client can see is already in the log, and SQLite's
//! single write lock is taken by one writer instead of being contended by every turn.

use std::sync::Arc;

use agentry_core::{LoggedEvent, Scope, Timestamp, TurnEvent};
use agentry_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::bus::Bus;

/// Largest batch written in one transaction.
const MAX_BATCH: usize = 2048;
/// Attempts to write a batch before the writer gives up on it.
const WRITE_ATTEMPTS: u32 = 5;

// Nearly every command is an `Append` (the rare `Flush` is small); boxing the event would add an
// allocation per event on the hot path.
#[allow(clippy::large_enum_variant)]
enum Command {
    Append(Arc<Scope>, LoggedEvent),
    /// Answered once every event queued before it is written and published.
    Flush(oneshot::Sender<Result<(), String>>),
}

/// The process-wide event log writer.
#[derive(Clone)]
pub struct LogWriter {
    tx: mpsc::UnboundedSender<Command>,
}

impl LogWriter {
    /// Starts the writer task.
    pub fn spawn(store: Store, bus: Arc<Bus>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(store, bus, rx));
        LogWriter { tx }
    }
}

/// Appends one turn's events, in order, with gap-free sequence numbers.
pub struct TurnLog {
    turn_id: String,
    thread_id: String,
    scope: Arc<Scope>,
    last_seq: i64,
    writer: LogWriter,
}

impl TurnLog {
    /// Opens the log of a turn whose last written event is `last_seq` (0 for a new turn).
    pub fn open(writer: LogWriter, scope: Scope, turn_id: &str, thread_id: &str, last_seq: i64) -> Self {
        TurnLog {
            turn_id: turn_id.to_owned(),
            thread_id: thread_id.to_owned(),
            scope: Arc::new(scope),
            last_seq,
            writer,
        }
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
        // The writer task lives as long as the engine, which outlives every turn.
        let _ = self.writer.tx.send(Command::Append(self.scope.clone(), logged));
        self.last_seq
    }

    /// Waits until every emitted event is written and published.
    pub async fn close(self) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        let _ = self.writer.tx.send(Command::Flush(done));
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Corrupt(format!("event log write failed: {message}"))),
            Err(_) => Err(StoreError::Corrupt("event log writer stopped".into())),
        }
    }
}

async fn write_batches(store: Store, bus: Arc<Bus>, mut rx: mpsc::UnboundedReceiver<Command>) {
    let mut events: Vec<(Arc<Scope>, LoggedEvent)> = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Append(scope, event) => events.push((scope, event)),
                Command::Flush(done) => flushes.push(done),
            }
            if events.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let result = write(&store, &events).await;
        if result.is_ok() {
            for (scope, event) in events.drain(..) {
                let event = Arc::new(event);
                if matches!(event.event, TurnEvent::ApprovalNeeded { .. } | TurnEvent::ApprovalResolved { .. }) {
                    bus.publish_approval(&scope, event.clone());
                }
                bus.publish(event);
            }
        } else {
            events.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}

async fn write(store: &Store, events: &[(Arc<Scope>, LoggedEvent)]) -> Result<(), String> {
    let rows: Vec<(&Scope, &LoggedEvent)> = events.iter().map(|(s, e)| (s.as_ref(), e)).collect();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.append_events(&rows).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt < WRITE_ATTEMPTS && err.is_unavailable() => {
                tracing::warn!(%err, attempt, "event log write failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
            Err(err) => {
                tracing::error!(%err, events = rows.len(), "event log write failed; these events are lost");
                return Err(err.to_string());
            }
        }
    }
}
