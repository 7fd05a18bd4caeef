//! Following turns: one turn from a cursor ([`TurnFollower`]), everything of a thread from now on
//! ([`ThreadWatch`]), what a scope's operators hear ([`ScopeFeed`]) — on whichever replica the
//! turns run.
//!
//! A follower subscribes to the hub *before* reading the log, so nothing published in between is
//! missed; events at or below the cursor are skipped, so nothing is delivered twice; a gap (a
//! lagging listener, a bell from another replica) is filled from the log. When nothing is heard
//! the log is polled, with a backoff, so a missed bell costs latency, never events.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use agentry_core::{LoggedEvent, Scope};
use agentry_store::{Store, StoreError};
use tokio::sync::broadcast;

use crate::hub::{ScopeEvent, Signal};

/// First wait on a quiet hub before the follower reads the log itself; doubles up to
/// [`MAX_POLL`] while the log has nothing new.
const MIN_POLL: Duration = Duration::from_millis(250);
/// Longest wait between two reads of a quiet turn's log.
const MAX_POLL: Duration = Duration::from_secs(2);
/// Events read from the log per query.
const PAGE: i64 = 1000;

/// Yields one turn's events in `seq` order, ending after `done`.
pub struct TurnFollower {
    store: Store,
    scope: Scope,
    turn_id: String,
    live: broadcast::Receiver<Signal>,
    pending: VecDeque<LoggedEvent>,
    last_seq: i64,
    finished: bool,
    poll: Duration,
}

impl TurnFollower {
    pub(crate) async fn start(
        store: Store,
        scope: Scope,
        turn_id: String,
        live: broadcast::Receiver<Signal>,
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
            poll: MIN_POLL,
        };
        // A cursor at (or past) the turn's `done` has nothing left to follow: the follower ends
        // at once rather than waiting for events that will never come.
        if follower.reload().await? == 0 && follower.last_seq > 0 {
            let (store, scope, turn) = (&follower.store, &follower.scope, &follower.turn_id);
            let last = store.last_event_seq(scope, turn).await?;
            if last > 0 && last <= follower.last_seq {
                let tail = store.events_after(scope, turn, last - 1, 1).await?;
                follower.finished = tail.first().is_some_and(|e| e.event.is_done());
            }
        }
        Ok(follower)
    }

    /// A follower of a turn that had not started when `live` began listening: every event
    /// will arrive live, so the log is read only to fill a gap.
    pub(crate) fn live(store: Store, scope: Scope, turn_id: String, live: broadcast::Receiver<Signal>) -> Self {
        TurnFollower {
            store,
            scope,
            turn_id,
            live,
            pending: VecDeque::new(),
            last_seq: 0,
            finished: false,
            poll: MIN_POLL,
        }
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
            match tokio::time::timeout(self.poll, self.live.recv()).await {
                Ok(Ok(Signal::Event(event))) if event.turn_id == self.turn_id && event.seq == self.last_seq + 1 => {
                    self.poll = MIN_POLL;
                    if let Some(event) = self.accept(event.as_ref().clone()) {
                        return Ok(Some(event));
                    }
                }
                Ok(Ok(Signal::Event(event))) if event.turn_id != self.turn_id || event.seq <= self.last_seq => {}
                Ok(Ok(Signal::Logged { turn_id, seq })) if *turn_id != *self.turn_id || seq <= self.last_seq => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    tokio::time::sleep(self.poll).await;
                    self.reload().await?;
                }
                Err(_) => {
                    // Quiet: read the log, and wait longer next time if it had nothing either.
                    if self.reload().await? == 0 {
                        self.poll = (self.poll * 2).min(MAX_POLL);
                    }
                }
                // A gap, a bell from another replica, a lagging receiver, a resync: read the log.
                Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    self.poll = MIN_POLL;
                    self.reload().await?;
                }
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

    async fn reload(&mut self) -> Result<usize, StoreError> {
        let events = self.store.events_after(&self.scope, &self.turn_id, self.last_seq, PAGE).await?;
        let read = events.len();
        self.pending.extend(events);
        Ok(read)
    }
}

/// Every event of a thread's turns from the moment it was opened: what is left of the turns
/// running then, and all of the turns that start later, on any replica.
pub struct ThreadWatch {
    store: Store,
    scope: Scope,
    live: broadcast::Receiver<Signal>,
    /// The last `seq` delivered (or skipped) per turn.
    cursors: HashMap<String, i64>,
    pending: VecDeque<LoggedEvent>,
}

impl ThreadWatch {
    pub(crate) async fn start(
        store: Store,
        scope: Scope,
        thread_id: &str,
        live: broadcast::Receiver<Signal>,
    ) -> Result<Self, StoreError> {
        let mut cursors = HashMap::new();
        for turn in store.unfinished_turns(&scope, thread_id).await? {
            let last = store.last_event_seq(&scope, &turn.id).await?;
            cursors.insert(turn.id, last);
        }
        Ok(ThreadWatch { store, scope, live, cursors, pending: VecDeque::new() })
    }

    /// The next event of the thread; `None` once the engine is gone.
    pub async fn next(&mut self) -> Result<Option<LoggedEvent>, StoreError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                let cursor = self.cursors.entry(event.turn_id.clone()).or_insert(0);
                if event.seq > *cursor {
                    *cursor = event.seq;
                    return Ok(Some(event));
                }
                continue;
            }
            match self.live.recv().await {
                Ok(Signal::Event(event)) => {
                    let cursor = self.cursors.get(&event.turn_id).copied();
                    match cursor {
                        // A turn seen from its first event, or the next event of a known one.
                        None if event.seq == 1 => {}
                        Some(last) if event.seq == last + 1 => {}
                        Some(last) if event.seq <= last => continue,
                        // Something was missed: read the turn's log from the cursor.
                        _ => {
                            self.reload(&event.turn_id).await?;
                            continue;
                        }
                    }
                    self.cursors.insert(event.turn_id.clone(), event.seq);
                    return Ok(Some(event.as_ref().clone()));
                }
                Ok(Signal::Logged { turn_id, seq }) => {
                    if self.cursors.get(&*turn_id).is_none_or(|last| seq > *last) {
                        self.reload(&turn_id).await?;
                    }
                }
                Ok(Signal::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    let turns: Vec<String> = self.cursors.keys().cloned().collect();
                    for turn in turns {
                        self.reload(&turn).await?;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(None),
            }
        }
    }

    async fn reload(&mut self, turn_id: &str) -> Result<(), StoreError> {
        let after = self.cursors.get(turn_id).copied().unwrap_or(0);
        let events = self.store.events_after(&self.scope, turn_id, after, PAGE).await?;
        self.pending.extend(events);
        Ok(())
    }
}

/// What a scope's operators hear, on every replica, from the moment it was opened: the approval
/// events (`approval_needed`, `approval_resolved`) of every thread, and budget alerts.
pub struct ScopeFeed {
    live: broadcast::Receiver<ScopeEvent>,
}

impl ScopeFeed {
    pub(crate) fn new(live: broadcast::Receiver<ScopeEvent>) -> Self {
        ScopeFeed { live }
    }

    /// The next event; `None` once the engine is gone.
    pub async fn next(&mut self) -> Option<ScopeEvent> {
        loop {
            match self.live.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
