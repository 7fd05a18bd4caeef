//! Which turns this replica runs, decided in the store.
//!
//! The dispatcher claims queued turns ([`agentry_store::Store::claim_queued_turns`]) whenever it
//! is woken — a turn submitted here, a bell from another replica, a turn that ended here — and
//! on a slow poll as a safety net; on the same poll it takes over the turns of replicas whose
//! leases expired (after renewing its own, if their renewal is late: a slow replica never takes
//! over its own live turns). One task renews all of this replica's leases in one statement and
//! stops any turn whose lease was lost. Each running turn has a stop switch here, which cancel, shutdown
//! and lease loss flip.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use agentry_store::{Claimed, StoreError};
use tokio::sync::{Notify, watch};

use crate::bus::Bell;
use crate::{Engine, Inner, StopReason, runner};

/// How long a stop for a turn not (yet) registered here is kept.
const EARLY_STOP_TTL: Duration = Duration::from_secs(60);
/// Turns taken over per sweep.
const TAKEOVER_BATCH: i64 = 64;
/// How soon a failed renewal is tried again.
const RENEW_RETRY: Duration = Duration::from_secs(1);

/// The running turns of this replica and the wake-up of its dispatcher.
pub(crate) struct Dispatcher {
    wake: Notify,
    /// Set when leases were released: sweep now rather than at the next poll.
    sweep_now: AtomicBool,
    running: Mutex<Running>,
    accepting: AtomicBool,
    /// When this replica's leases were last renewed (asked).
    renewed: Mutex<Instant>,
}

struct RunningTurn {
    /// The fencing token of this replica's lease.
    token: i64,
    /// When it was claimed here: a renewal asked before that cannot know of it.
    since: Instant,
    stop: watch::Sender<Option<StopReason>>,
}

#[derive(Default)]
struct Running {
    /// Stop switches of the turns running here.
    turns: HashMap<String, RunningTurn>,
    /// Stops that arrived before their turn was registered (a cancel racing the claim).
    early: HashMap<String, (StopReason, Instant)>,
}

impl Dispatcher {
    pub(crate) fn new() -> Self {
        Dispatcher {
            wake: Notify::new(),
            sweep_now: AtomicBool::new(false),
            running: Mutex::new(Running::default()),
            accepting: AtomicBool::new(true),
            renewed: Mutex::new(Instant::now()),
        }
    }

    /// Time since the leases were last renewed.
    fn since_renewal(&self) -> Duration {
        self.renewed.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }

    fn renewed_at(&self, at: Instant) {
        let mut renewed = self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        *renewed = (*renewed).max(at);
    }

    /// Asks the dispatcher to look for work now.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Number of turns running here.
    pub(crate) fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).turns.len()
    }

    /// Flips the stop switch of a turn running here (or keeps the stop for when it registers).
    /// Returns whether the turn runs here.
    pub(crate) fn stop(&self, turn_id: &str, reason: StopReason) -> bool {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match running.turns.get(turn_id) {
            Some(turn) => {
                turn.stop.send_replace(Some(reason));
                true
            }
            None => {
                running.early.insert(turn_id.to_owned(), (reason, Instant::now()));
                false
            }
        }
    }

    /// Registers a claimed turn; its stop switch starts flipped if a stop came first.
    fn register(&self, claimed: &Claimed) -> watch::Receiver<Option<StopReason>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let early = running.early.remove(&claimed.turn.id).map(|(reason, _)| reason);
        let initial = early.or(claimed.cancel_requested.then_some(StopReason::Requested));
        let (switch, stop) = watch::channel(initial);
        let turn = RunningTurn { token: claimed.lease.token, since: Instant::now(), stop: switch };
        running.turns.insert(claimed.turn.id.clone(), turn);
        stop
    }

    fn unregister(&self, turn_id: &str, token: i64) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.turns.get(turn_id).is_some_and(|t| t.token == token) {
            running.turns.remove(turn_id);
        }
    }

    /// Forgets stops of turns that never showed up here.
    pub(crate) fn prune(&self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.early.retain(|_, (_, at)| at.elapsed() < EARLY_STOP_TTL);
    }
}

impl Engine {
    /// Runs the dispatcher until the engine is dropped or stops accepting turns.
    pub(crate) async fn dispatch_loop(weak: Weak<Inner>) {
        let mut last_sweep: Option<Instant> = None;
        loop {
            let Some(inner) = weak.upgrade() else { return };
            let engine = Engine { inner };
            if !engine.inner.dispatcher.accepting.load(Ordering::Acquire) {
                return;
            }
            let sweep_now = engine.inner.dispatcher.sweep_now.swap(false, Ordering::AcqRel);
            if sweep_now || last_sweep.is_none_or(|at| at.elapsed() >= engine.config().dispatch_poll) {
                last_sweep = Some(Instant::now());
                if let Err(err) = engine.sweep().await {
                    tracing::warn!(%err, "sweeping expired leases failed");
                }
            }
            if let Err(err) = engine.claim_turns().await {
                tracing::warn!(%err, "claiming queued turns failed");
            }
            let poll = engine.config().dispatch_poll;
            let inner = engine.inner.clone();
            drop(engine);
            // Holding the engine while idle would keep it alive forever: wait on a clone of the
            // notifier's owner only for as long as the poll.
            let _ = tokio::time::timeout(poll, inner.dispatcher.wake.notified()).await;
            drop(inner);
        }
    }

    /// Claims as many queued turns as this replica has room for, and starts them.
    async fn claim_turns(&self) -> Result<(), StoreError> {
        let config = self.config();
        let lease_ms = millis(config.lease);
        loop {
            let room = config.max_running_turns.saturating_sub(self.inner.dispatcher.running());
            if room == 0 || !self.inner.dispatcher.accepting.load(Ordering::Acquire) {
                return Ok(());
            }
            let limit = i64::try_from(room.min(256)).unwrap_or(256);
            let claimed = self.store().claim_queued_turns(&config.replica_id, lease_ms, limit).await?;
            let full = claimed.len() as i64 == limit;
            for turn in claimed {
                self.start_run(turn, None, false);
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Takes over the turns of dead replicas, and ends turns cancelled while nobody ran them
    /// (their canceller died before it could).
    async fn sweep(&self) -> Result<(), StoreError> {
        let config = self.config();
        if self.inner.dispatcher.since_renewal() > config.lease / 3 {
            self.renew_leases().await?;
        }
        let taken =
            self.store().take_over_expired_turns(&config.replica_id, millis(config.lease), TAKEOVER_BATCH).await?;
        for claimed in taken {
            tracing::warn!(turn = %claimed.turn.id, "took over a turn whose replica stopped renewing its lease");
            self.start_run(claimed, None, true);
        }
        for claimed in self.store().cancel_idle_turns(None, &config.replica_id).await? {
            let engine = self.clone();
            tokio::spawn(async move { engine.end_cancelled(claimed).await });
        }
        Ok(())
    }

    /// Starts a claimed turn's run on its own task (with its agent, when the caller has it).
    pub(crate) fn start_run(&self, claimed: Claimed, agent: Option<agentry_store::StoredAgent>, takeover: bool) {
        let stop = self.inner.dispatcher.register(&claimed);
        let engine = self.clone();
        tokio::spawn(async move {
            let (turn_id, token) = (claimed.turn.id.clone(), claimed.lease.token);
            runner::run(&engine, claimed, agent, stop, takeover).await;
            engine.inner.dispatcher.unregister(&turn_id, token);
            // The thread's next turn may run now.
            engine.inner.dispatcher.wake();
        });
    }

    /// Renews this replica's leases every third of a lease, stopping turns whose lease was lost
    /// and turns someone asked to stop (a safety net for a missed bell).
    pub(crate) async fn renew_loop(weak: Weak<Inner>) {
        let every = match weak.upgrade() {
            Some(inner) => inner.config.lease / 3,
            None => return,
        };
        let mut wait = every;
        loop {
            tokio::time::sleep(wait).await;
            let Some(inner) = weak.upgrade() else { return };
            let engine = Engine { inner };
            wait = match engine.renew_leases().await {
                Ok(()) => every.saturating_sub(engine.inner.dispatcher.since_renewal()),
                Err(err) => {
                    tracing::warn!(%err, "cannot renew this replica's leases; trying again in a second");
                    RENEW_RETRY.min(every)
                }
            };
        }
    }

    /// Renews the leases of the turns running here, and stops those whose lease was lost.
    async fn renew_leases(&self) -> Result<(), StoreError> {
        let config = self.config();
        let asked = Instant::now();
        let ids: Vec<String> = {
            let running = self.inner.dispatcher.running.lock().unwrap_or_else(|p| p.into_inner());
            running.turns.keys().cloned().collect()
        };
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let held = self.store().renew_leases(&config.replica_id, millis(config.lease), &ids).await?;
        self.inner.dispatcher.renewed_at(asked);
        let held: HashMap<String, (i64, bool)> =
            held.into_iter().map(|h| (h.turn_id, (h.token, h.cancel_requested))).collect();
        let mut missing = Vec::new();
        {
            let running = self.inner.dispatcher.running.lock().unwrap_or_else(|p| p.into_inner());
            // Turns claimed while the renewal was on its way are not in its answer.
            for (turn_id, turn) in running.turns.iter().filter(|(_, t)| t.since < asked) {
                match held.get(turn_id) {
                    Some((current, cancel)) if *current == turn.token => {
                        if *cancel && turn.stop.borrow().is_none() {
                            turn.stop.send_replace(Some(StopReason::Requested));
                        }
                    }
                    _ => missing.push((turn_id.clone(), turn.token)),
                }
            }
        }
        // A turn that just ended (or parked) is no longer running either: only a token that
        // moved on, or a lease that ran out, means the turn is someone else's now.
        for (turn_id, token) in missing {
            if self.store().lease_lost(&turn_id, token).await? {
                tracing::warn!(turn = %turn_id, "lost the lease of a running turn; stopping it here");
                self.inner.dispatcher.stop(&turn_id, StopReason::LeaseLost);
            }
        }
        Ok(())
    }

    /// Handles a bell from another replica.
    pub(crate) fn on_bell(&self, bell: Bell) {
        match bell {
            Bell::Queued => self.inner.dispatcher.wake(),
            Bell::Released => {
                self.inner.dispatcher.sweep_now.store(true, Ordering::Release);
                self.inner.dispatcher.wake();
                self.inner.jobs.wake();
            }
            Bell::Cancel { turn } => {
                self.inner.dispatcher.stop(&turn, StopReason::Requested);
            }
            Bell::Logged { thread, turn, seq } => {
                if self.inner.hub.has_listeners(&thread) {
                    self.inner.hub.publish(&thread, crate::hub::Signal::Logged { turn_id: turn.into(), seq });
                }
            }
            Bell::Budgets { scope } => {
                self.forget_caps(&scope);
                let engine = self.clone();
                tokio::spawn(async move { engine.sweep_budgets().await });
            }
            Bell::RunsQueued => self.inner.jobs.wake(),
            Bell::SchedulesChanged => self.inner.jobs.schedules_changed(),
            Bell::CancelRun { run } => {
                self.inner.jobs.stop(&run, crate::jobs::RunStop::Canceled);
            }
            Bell::RunUpdate { scope, run } => {
                let engine = self.clone();
                tokio::spawn(async move { engine.relay_run_update(&scope, &run).await });
            }
            Bell::ScopeAlert { scope, event } => {
                self.inner.hub.publish_scope(&scope, crate::hub::ScopeEvent::Alert(Arc::new(event)));
            }
            Bell::Approval { scope, thread: _, turn, seq } => {
                if self.inner.hub.has_scope_listeners(&scope) {
                    let engine = self.clone();
                    tokio::spawn(async move {
                        match engine.store().events_after(&scope, &turn, seq - 1, 1).await {
                            Ok(events) => {
                                for event in events.into_iter().filter(|e| e.seq == seq) {
                                    engine
                                        .inner
                                        .hub
                                        .publish_scope(&scope, crate::hub::ScopeEvent::Turn(Arc::new(event)));
                                }
                            }
                            Err(err) => tracing::warn!(%err, turn = %turn, "cannot read an approval event"),
                        }
                    });
                }
            }
        }
    }

    /// Graceful shutdown: claims nothing more, gives running turns `grace` to finish, then stops
    /// the rest and lets go of their leases so another replica (or this one, restarted) resumes
    /// them from their checkpoint. Queued turns stay queued. Runs of background tasks get the same
    /// grace; those still executing are queued again for another replica.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.dispatcher.accepting.store(false, Ordering::Release);
        self.inner.dispatcher.wake();
        let turns = async {
            let deadline = tokio::time::Instant::now() + grace;
            while tokio::time::Instant::now() < deadline && self.inner.dispatcher.running() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let ids: Vec<String> = {
                let running = self.inner.dispatcher.running.lock().unwrap_or_else(|p| p.into_inner());
                running.turns.keys().cloned().collect()
            };
            for id in &ids {
                self.inner.dispatcher.stop(id, StopReason::Shutdown);
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while tokio::time::Instant::now() < deadline && self.inner.dispatcher.running() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if !ids.is_empty() {
                self.inner.bus.ring(Bell::Released);
            }
        };
        tokio::join!(self.shutdown_jobs(grace), turns);
        self.inner.mcp.shutdown().await;
    }
}

/// A duration in milliseconds, for the store.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
