//! Event logs: one writer per replica, batching the events of every turn it writes.
//!
//! [`TurnLog::emit`] stamps the next `seq` and queues the event with the writer's lease. The
//! [`LogWriter`] task takes whatever has queued up across all turns (no timer: under load batches
//! grow, when idle each event is written at once), appends it in one fenced transaction, and only
//! then publishes it in the hub and rings the bus for the other replicas. Events of a turn whose
//! lease moved on are refused by the store without touching the rest of the batch; that turn's
//! log is marked lost, and its runner stops.
//!
//! Spans ([`TurnLog::span`]) are held by the turn's log until the run ends or parks
//! ([`TurnLog::send_spans`]), then ride the same queue and the same transaction as events
//! (unfenced: they record work that happened), and are offered to the OTLP exporter once
//! written. Sending them once per run keeps them to one more statement per turn's last batch (a
//! statement is a round trip to SQLite's worker thread); a run cut short by a crash loses them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use agentry_core::{LoggedEvent, Scope, Timestamp, TurnEvent};
use agentry_store::{EventRow, Lease, Span, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::bus::{Bell, Bus};
use crate::hub::{Hub, Signal};
use crate::telemetry::Telemetry;

/// Largest batch written in one transaction.
const MAX_BATCH: usize = 2048;
/// Attempts to write a batch before the writer gives up on it.
const WRITE_ATTEMPTS: u32 = 5;

/// What every event of one turn's log shares.
struct LogShared {
    scope: Scope,
    token: i64,
    /// Set when the store refused this log's events: the lease is no longer ours.
    lost: AtomicBool,
}

// Nearly every command is an `Append` (the rare `Flush` is small); boxing the event would add an
// allocation per event on the hot path.
#[allow(clippy::large_enum_variant)]
enum Command {
    Append(Arc<LogShared>, LoggedEvent),
    /// Finished spans of a turn.
    Spans(Vec<Span>),
    /// Answered once every event queued before it is written and published.
    Flush(oneshot::Sender<Result<(), String>>),
}

/// The replica's event log writer.
#[derive(Clone)]
pub struct LogWriter {
    tx: mpsc::UnboundedSender<Command>,
}

impl LogWriter {
    /// Starts the writer task.
    pub(crate) fn spawn(store: Store, hub: Arc<Hub>, bus: Arc<dyn Bus>, telemetry: Arc<Telemetry>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(store, hub, bus, telemetry, rx));
        LogWriter { tx }
    }
}

/// Why a log could not be closed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The store refused the events: another replica holds the turn now.
    #[error("this replica no longer holds the turn")]
    LeaseLost,
    /// The store failed.
    #[error("event log write failed: {0}")]
    Write(String),
}

impl From<LogError> for StoreError {
    fn from(err: LogError) -> Self {
        StoreError::Corrupt(err.to_string())
    }
}

/// Appends one turn's events, in order, with gap-free sequence numbers, under a lease.
pub struct TurnLog {
    turn_id: String,
    thread_id: String,
    shared: Arc<LogShared>,
    last_seq: i64,
    writer: LogWriter,
    /// Spans recorded and not yet sent.
    spans: Vec<Span>,
}

impl TurnLog {
    /// Opens the log of a turn held by `lease`, whose last written event is `last_seq`.
    pub(crate) fn open(writer: LogWriter, scope: Scope, lease: &Lease, thread_id: &str, last_seq: i64) -> Self {
        TurnLog {
            turn_id: lease.turn_id.clone(),
            thread_id: thread_id.to_owned(),
            shared: Arc::new(LogShared { scope, token: lease.token, lost: AtomicBool::new(false) }),
            last_seq,
            writer,
            spans: Vec::new(),
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
        let _ = self.writer.tx.send(Command::Append(self.shared.clone(), logged));
        self.last_seq
    }

    /// Records a finished span, sent with [`TurnLog::send_spans`].
    pub(crate) fn span(&mut self, span: Span) {
        self.spans.push(span);
    }

    /// Queues the recorded spans with the next batch of events: stored (when spans are stored)
    /// and then exported. Called when a run ends or parks, before its last flush.
    pub(crate) fn send_spans(&mut self) {
        if !self.spans.is_empty() {
            let _ = self.writer.tx.send(Command::Spans(std::mem::take(&mut self.spans)));
        }
    }

    /// True once the store refused an event of this log (the lease was lost).
    pub fn is_lost(&self) -> bool {
        self.shared.lost.load(Ordering::Acquire)
    }

    /// Waits until every emitted event is written and published.
    pub async fn flush(&self) -> Result<(), LogError> {
        let (done, wait) = oneshot::channel();
        let _ = self.writer.tx.send(Command::Flush(done));
        match wait.await {
            Ok(Ok(())) if self.is_lost() => Err(LogError::LeaseLost),
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(LogError::Write(message)),
            Err(_) => Err(LogError::Write("the event log writer stopped".into())),
        }
    }
}

async fn write_batches(
    store: Store,
    hub: Arc<Hub>,
    bus: Arc<dyn Bus>,
    telemetry: Arc<Telemetry>,
    mut rx: mpsc::UnboundedReceiver<Command>,
) {
    let mut events: Vec<(Arc<LogShared>, LoggedEvent)> = Vec::new();
    let mut spans: Vec<Span> = Vec::new();
    let mut flushes = Vec::new();
    let store_spans = telemetry.config.store_spans;
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Append(shared, event) => events.push((shared, event)),
                Command::Spans(mut more) => spans.append(&mut more),
                Command::Flush(done) => flushes.push(done),
            }
            if events.len() + spans.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        let result = write(&store, &events, if store_spans { &spans } else { &[] }).await;
        if result.is_ok() {
            telemetry.export(&spans);
        }
        spans.clear();
        match &result {
            Ok(refused) => publish(&hub, bus.as_ref(), events.drain(..), refused),
            Err(_) => {
                for (shared, _) in events.drain(..) {
                    shared.lost.store(true, Ordering::Release);
                }
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(result.as_ref().map(|_| ()).map_err(Clone::clone));
        }
    }
}

/// Hands written events to this replica's listeners and rings the other replicas: one bell per
/// turn (its last `seq`), one per approval event.
fn publish(
    hub: &Hub,
    bus: &dyn Bus,
    events: impl Iterator<Item = (Arc<LogShared>, LoggedEvent)>,
    refused: &std::collections::BTreeSet<String>,
) {
    let mut last: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for (shared, event) in events {
        if refused.contains(&event.turn_id) {
            shared.lost.store(true, Ordering::Release);
            continue;
        }
        if matches!(event.event, TurnEvent::ApprovalNeeded { .. } | TurnEvent::ApprovalResolved { .. }) {
            bus.ring(Bell::Approval {
                scope: shared.scope.clone(),
                thread: event.thread_id.clone(),
                turn: event.turn_id.clone(),
                seq: event.seq,
            });
        }
        let entry = last.entry(event.turn_id.clone()).or_insert_with(|| (event.thread_id.clone(), 0));
        entry.1 = entry.1.max(event.seq);
        let event = Arc::new(event);
        if matches!(event.event, TurnEvent::ApprovalNeeded { .. } | TurnEvent::ApprovalResolved { .. }) {
            hub.publish_scope(&shared.scope, crate::hub::ScopeEvent::Turn(event.clone()));
        }
        let thread_id = event.thread_id.clone();
        hub.publish(&thread_id, Signal::Event(event));
    }
    for (turn, (thread, seq)) in last {
        bus.ring(Bell::Logged { thread, turn, seq });
    }
}

/// Writes a batch, retrying while the database is unreachable; returns the turns it refused.
async fn write(
    store: &Store,
    events: &[(Arc<LogShared>, LoggedEvent)],
    spans: &[Span],
) -> Result<std::collections::BTreeSet<String>, String> {
    let rows: Vec<EventRow<'_>> =
        events.iter().map(|(s, e)| EventRow { scope: &s.scope, event: e, token: s.token }).collect();
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store.append_log(&rows, spans).await {
            Ok(appended) => {
                for turn in &appended.refused {
                    tracing::warn!(turn = %turn, "events refused: this replica no longer holds the turn");
                }
                return Ok(appended.refused);
            }
            Err(err) if attempt < WRITE_ATTEMPTS && err.is_unavailable() => {
                tracing::warn!(%err, attempt, "event log write failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
            Err(err) => {
                tracing::error!(%err, events = rows.len(), "event log write failed");
                return Err(err.to_string());
            }
        }
    }
}
