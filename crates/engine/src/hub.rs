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

/// What a scope's operators hear: approval events of its turns, and budget alerts.
#[derive(Debug, Clone)]
pub enum ScopeEvent {
    /// An `approval_needed` or `approval_resolved` of a turn.
    Turn(Arc<LoggedEvent>),
    /// A `budget_alert` (its wire object).
    Alert(Arc<serde_json::Value>),
    /// A run of a background task changed state.
    Run(Arc<agentry_store::StoredRun>),
}

/// Per-thread channels, and per-scope channels of what operators hear.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    threads: Mutex<HashMap<String, broadcast::Sender<Signal>>>,
    scopes: Mutex<HashMap<Scope, broadcast::Sender<ScopeEvent>>>,
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

    /// Listens to what a scope's operators hear.
    pub(crate) fn subscribe_scope(&self, scope: &Scope) -> broadcast::Receiver<ScopeEvent> {
        let mut channels = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        channels.entry(scope.clone()).or_insert_with(|| broadcast::channel(CAPACITY).0).subscribe()
    }

    /// Whether anyone here listens to a scope.
    pub(crate) fn has_scope_listeners(&self, scope: &Scope) -> bool {
        let channels = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        channels.get(scope).is_some_and(|s| s.receiver_count() > 0)
    }

    /// Publishes to the listeners of a scope.
    pub(crate) fn publish_scope(&self, scope: &Scope, event: ScopeEvent) {
        let mut channels = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
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
        let mut scopes = self.scopes.lock().unwrap_or_else(|p| p.into_inner());
        scopes.retain(|_, sender| sender.receiver_count() > 0);
    }
}
