//! Following a turn: replay from the log after a cursor, then the live tail, without gap or
//! duplicate.
//!
//! The follower subscribes to the bus *before* reading the log, so nothing published in between
//! is missed; events at or below the cursor are skipped, so nothing is delivered twice; a gap in
//! the live stream (a lagging listener, or a turn running on another replica) is filled from the
//! log. When the bus is quiet the log is polled, which is how a turn on another replica is
//! followed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use agentry_core::{LoggedEvent, Scope};
use agentry_store::{Store, StoreError};
use tokio::sync::broadcast;

/// How long the follower waits on the bus before checking the log itself.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Events read from the log per query.
const PAGE: i64 = 1000;

/// Yields one turn's events in `seq` order, ending after `done`.
pub struct TurnFollower {
    store: Store,
    scope: Scope,
    turn_id: String,
    live: broadcast::Receiver<Arc<LoggedEvent>>,
    pending: VecDeque<LoggedEvent>,
    last_seq: i64,
    finished: bool,
}

impl TurnFollower {
    pub(crate) async fn start(
        store: Store,
        scope: Scope,
        turn_id: String,
        live: broadcast::Receiver<Arc<LoggedEvent>>,
        after_seq: i64,
    ) -> Result<Self, StoreError> {
        let mut follower = TurnFollower {
            store,
            scope,
            turn_id,
            live,
            pending: VecDeque::new(),
            last_seq: after_seq.max(0),
            finished: false,
        };
        follower.reload().await?;
        Ok(follower)
    }

    /// The turn followed.
    pub fn turn_id(&self) -> &str {
        &self.turn_id
    }

    /// The `seq` of the last event yielded (or the starting cursor).
    pub fn last_seq(&self) -> i64 {
        self.last_seq
    }

    /// The next event, or `None` after `done`.
    pub async fn next(&mut self) -> Result<Option<LoggedEvent>, StoreError> {
        while !self.finished {
            if let Some(event) = self.pending.pop_front() {
                if let Some(event) = self.accept(event) {
                    return Ok(Some(event));
                }
                continue;
            }
            match tokio::time::timeout(POLL_INTERVAL, self.live.recv()).await {
                Ok(Ok(event)) if event.turn_id != self.turn_id || event.seq <= self.last_seq => {}
                Ok(Ok(event)) if event.seq == self.last_seq + 1 => {
                    if let Some(event) = self.accept(event.as_ref().clone()) {
                        return Ok(Some(event));
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    tokio::time::sleep(POLL_INTERVAL).await;
                    self.reload().await?;
                }
                // A gap, a lagging receiver or a quiet bus: read the log.
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) | Err(_) => self.reload().await?,
            }
        }
        Ok(None)
    }

    fn accept(&mut self, event: LoggedEvent) -> Option<LoggedEvent> {
        if event.seq != self.last_seq + 1 {
            return None;
        }
        self.last_seq = event.seq;
        self.finished = event.event.is_done();
        Some(event)
    }

    async fn reload(&mut self) -> Result<(), StoreError> {
        let events = self.store.events_after(&self.scope, &self.turn_id, self.last_seq, PAGE).await?;
        self.pending.extend(events);
        Ok(())
    }
}
