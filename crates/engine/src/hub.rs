//! In-process fan-out of what reaches a replica: its own logged events, and the bells of the
//! others (which say where to read in the log).
//!
//! Only persisted events are published (the log is the source of truth); a listener that falls
//! behind, or hears only a bell, reads the log, so the hub may drop without loss.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agentry_core::{LoggedEvent, Scope};
use tokio::sync::broadcast;

/// Signals buffered per thread for slow listeners before they must reload from the log.
const CAPACITY: usize = 1024;

/// What a thread's listeners hear.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    /// An event this replica logged.
    Event(Arc<LoggedEvent>),
    /// Another replica logged events of `turn_id` up to `seq`.
    Logged {
        /// The turn.
        turn_id: Arc<str>,
        /// Its last logged `seq`.
        seq: i64,
    },
    /// Bells may have been missed: look at the log.
    Resync,
}

/// Per-thread channels, and per-scope channels of approval events (for operators).
#[derive(Debug, Default)]
pub(crate) struct Hub {
    threads: Mutex<HashMap<String, broadcast::Sender<Signal>>>,
    approvals: Mutex<HashMap<Scope, broadcast::Sender<Arc<LoggedEvent>>>>,
}

impl Hub {
    /// Listens to a thread from now on.
    pub(crate) fn subscribe(&self, thread_id: &str) -> broadcast::Receiver<Signal> {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.entry(thread_id.to_owned()).or_insert_with(|| broadcast::channel(CAPACITY).0).subscribe()
    }

    /// Whether anyone listens to the thread here.
    pub(crate) fn has_listeners(&self, thread_id: &str) -> bool {
        let threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.get(thread_id).is_some_and(|s| s.receiver_count() > 0)
    }

    /// Tells a thread's listeners; forgets channels nobody listens to.
    pub(crate) fn publish(&self, thread_id: &str, signal: Signal) {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = threads.get(thread_id)
            && sender.send(signal).is_err()
        {
            threads.remove(thread_id);
        }
    }

    /// Tells every listener to look at the log.
    pub(crate) fn resync(&self) {
        let threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        for sender in threads.values() {
            let _ = sender.send(Signal::Resync);
        }
    }

    /// Listens to the approval events of every thread of a scope.
    pub(crate) fn subscribe_approvals(&self, scope: &Scope) -> broadcast::Receiver<Arc<LoggedEvent>> {
        let mut channels = self.approvals.lock().unwrap_or_else(|p| p.into_inner());
        channels.entry(scope.clone()).or_insert_with(|| broadcast::channel(CAPACITY).0).subscribe()
    }

    /// Whether anyone here listens to a scope's approvals.
    pub(crate) fn has_approval_listeners(&self, scope: &Scope) -> bool {
        let channels = self.approvals.lock().unwrap_or_else(|p| p.into_inner());
        channels.get(scope).is_some_and(|s| s.receiver_count() > 0)
    }

    /// Publishes an approval event to the listeners of its scope.
    pub(crate) fn publish_approval(&self, scope: &Scope, event: Arc<LoggedEvent>) {
        let mut channels = self.approvals.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = channels.get(scope)
            && sender.send(event).is_err()
        {
            channels.remove(scope);
        }
    }

    /// Drops channels without listeners (periodic housekeeping).
    pub(crate) fn prune(&self) {
        let mut threads = self.threads.lock().unwrap_or_else(|p| p.into_inner());
        threads.retain(|_, sender| sender.receiver_count() > 0);
        let mut approvals = self.approvals.lock().unwrap_or_else(|p| p.into_inner());
        approvals.retain(|_, sender| sender.receiver_count() > 0);
    }
}
