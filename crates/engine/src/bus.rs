//! Live fan-out of logged events, per thread, inside one process.
//!
//! Only events already persisted are published (the log is the source of truth); a listener that
//! falls behind or misses something reloads from the log, so the bus may drop without loss.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use agentry_core::LoggedEvent;
use tokio::sync::broadcast;

/// Events buffered per thread for slow listeners before they must reload from the log.
const CAPACITY: usize = 1024;

/// Per-thread broadcast channels.
#[derive(Debug, Default)]
pub struct Bus {
    channels: Mutex<HashMap<String, broadcast::Sender<Arc<LoggedEvent>>>>,
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

    /// Drops channels without listeners (periodic housekeeping).
    pub fn prune(&self) {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        channels.retain(|_, sender| sender.receiver_count() > 0);
    }
}
