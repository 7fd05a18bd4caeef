//! Live fan-out of logged events, per thread, inside one process.
//!
//! Only events already persisted are published (the log is the source of truth); a listener that
//! falls behind or misses something reloads from the log, so the bus may drop without loss.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agentry_core::{LoggedEvent, Scope};
use tokio::sync::broadcast;

/// Events buffered per thread for slow listeners before they must reload from the log.
const CAPACITY: usize = 1024;

/// Per-thread broadcast channels, and per-scope channels of approval events (for operators).
#[derive(Debug, Default)]
pub struct Bus {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<LoggedEvent>>>>,
    approvals: Mutex<HashMap<Scope, broadcast::Sender<Arc<LoggedEvent>>>>,
}

impl Bus {
    /// Listens to every event published for a thread from now on.
    pub fn subscribe(&self, thread_id: &str) -> broadcast::Receiver<Arc<LoggedEvent>> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.entry(thread_id.to_owned()).or_insert_with(|| broadcast::channel(CAPACITY).0).subscribe()
    }

    /// Publishes an event to the listeners of its thread; forgets channels nobody listens to.
    pub fn publish(&self, event: Arc<LoggedEvent>) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = channels.get(&event.thread_id) {
            let thread_id = event.thread_id.clone();
            if sender.send(event).is_err() {
                channels.remove(&thread_id);
            }
        }
    }

    /// Listens to the approval events (`approval_needed`, `approval_resolved`) of every thread
    /// of a scope.
    pub fn subscribe_approvals(&self, scope: &Scope) -> broadcast::Receiver<Arc<LoggedEvent>> {
        let mut channels = self.approvals.lock().unwrap_or_else(|p| p.into_inner());
        channels.entry(scope.clone()).or_insert_with(|| broadcast::channel(CAPACITY).0).subscribe()
    }

    /// Publishes an approval event to the listeners of its scope.
    pub fn publish_approval(&self, scope: &Scope, event: Arc<LoggedEvent>) {
        let mut channels = self.approvals.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = channels.get(scope)
            && sender.send(event).is_err()
        {
            channels.remove(scope);
        }
    }

    /// Drops channels without listeners (periodic housekeeping).
    pub fn prune(&self) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.retain(|_, sender| sender.receiver_count() > 0);
        let mut approvals = self.approvals.lock().unwrap_or_else(|p| p.into_inner());
        approvals.retain(|_, sender| sender.receiver_count() > 0);
    }
}
