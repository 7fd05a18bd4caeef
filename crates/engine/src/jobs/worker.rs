//! This replica's worker: claims due runs up to its concurrency, renews their leases, sweeps
//! runs nobody may run any more, and fires due schedules.
//!
//! It is woken by a trigger here, a `RunsQueued` bell from another replica, an attempt that
//! ended (a slot freed), and otherwise polls every `dispatch_poll` — sooner when a schedule is due
//! earlier. Schedules are looked at when one is due, one changed, or on the poll, not on every
//! wake-up (a busy worker wakes once per finished attempt). Before it sweeps, it renews its own leases if their renewal is late, so a slow
//! replica never crashes its own live runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use agentry_core::{Scope, Timestamp};
use agentry_store::{ClaimedRun, StoreError, StoredTask};
use tokio::sync::{Notify, watch};

use crate::dispatch::millis;
use crate::{Engine, Inner};

/// Why an executing run is being stopped here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunStop {
    /// Someone cancelled it.
    Canceled,
    /// Another replica swept it (this one was too slow to renew).
    LeaseLost,
    /// This replica is shutting down.
    Shutdown,
}

struct RunningRun {
    token: i64,
    since: Instant,
    stop: watch::Sender<Option<RunStop>>,
}

/// The runs executing on this replica and the worker's wake-up.
pub(crate) struct Jobs {
    wake: Notify,
    running: Mutex<HashMap<String, RunningRun>>,
    accepting: AtomicBool,
    renewed: Mutex<Instant>,
    /// A schedule may have changed: look at the due ones on the next pass.
    schedules_changed: AtomicBool,
    /// Tasks as recently read (each attempt needs its task; tasks change rarely).
    tasks: Mutex<HashMap<(Scope, String), CachedTask>>,
}

/// A task (or its absence) and when it was read.
type CachedTask = (Instant, Option<Arc<StoredTask>>);

/// How long a task read for an attempt is reused (another replica's change shows after this).
const TASK_CACHE_TTL: Duration = Duration::from_secs(2);

impl Jobs {
    pub(crate) fn new() -> Self {
        Jobs {
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            accepting: AtomicBool::new(true),
            renewed: Mutex::new(Instant::now()),
            schedules_changed: AtomicBool::new(true),
            tasks: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets the tasks read (a task was applied here).
    pub(crate) fn forget_tasks(&self) {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// A schedule was created or changed (here or on another replica): wake up and look.
    pub(crate) fn schedules_changed(&self) {
        self.schedules_changed.store(true, Ordering::Release);
        self.wake();
    }

    /// Asks the worker to look for work now.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs executing here.
    pub(crate) fn running(&self) -> usize {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Stops a run executing here; false when it does not run here.
    pub(crate) fn stop(&self, run_id: &str, reason: RunStop) -> bool {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        match running.get(run_id) {
            Some(run) => {
                run.stop.send_if_modified(|current| {
                    let first = current.is_none();
                    if first {
                        *current = Some(reason);
                    }
                    first
                });
                true
            }
            None => false,
        }
    }

    fn register(&self, claimed: &ClaimedRun) -> watch::Receiver<Option<RunStop>> {
        let (stop, receiver) = watch::channel(None);
        let run = RunningRun { token: claimed.lease.token, since: Instant::now(), stop };
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(claimed.run.id.clone(), run);
        receiver
    }

    fn unregister(&self, run_id: &str, token: i64) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if running.get(run_id).is_some_and(|r| r.token == token) {
            running.remove(run_id);
        }
    }

    fn renewal_is_late(&self, every: Duration) -> bool {
        self.renewed.lock().unwrap_or_else(|p| p.into_inner()).elapsed() > every
    }
}

/// Schedules fired per pass.
const SCHEDULES_PER_PASS: i64 = 100;
/// Runs claimed per statement.
const CLAIM_BATCH: usize = 256;

impl Engine {
    /// A task of a scope, read at most every [`TASK_CACHE_TTL`].
    pub(crate) async fn cached_task(&self, scope: &Scope, id: &str) -> Result<Option<Arc<StoredTask>>, StoreError> {
        let key = (scope.clone(), id.to_owned());
        if let Some((at, task)) = self.inner.jobs.tasks.lock().unwrap_or_else(|p| p.into_inner()).get(&key)
            && at.elapsed() < TASK_CACHE_TTL
        {
            return Ok(task.clone());
        }
        let task = self.store().get_task(scope, id).await?.map(Arc::new);
        self.inner.jobs.tasks.lock().unwrap_or_else(|p| p.into_inner()).insert(key, (Instant::now(), task.clone()));
        Ok(task)
    }

    /// Runs the worker until the engine is dropped or shuts down.
    pub(crate) async fn jobs_loop(weak: Weak<Inner>) {
        let mut last_sweep: Option<Instant> = None;
        let mut next_due: Option<Timestamp> = None;
        loop {
            let Some(inner) = weak.upgrade() else { return };
            let engine = Engine { inner };
            if !engine.inner.jobs.accepting.load(Ordering::Acquire) {
                return;
            }
            let poll = engine.config().dispatch_poll;
            let polling = last_sweep.is_none_or(|at| at.elapsed() >= poll);
            if polling {
                last_sweep = Some(Instant::now());
                if let Err(err) = engine.sweep_runs().await {
                    tracing::warn!(%err, "sweeping runs failed");
                }
            }
            let changed = engine.inner.jobs.schedules_changed.swap(false, Ordering::AcqRel);
            if polling || changed || next_due.is_some_and(|at| at <= Timestamp::now()) {
                next_due = match engine.fire_due_schedules(SCHEDULES_PER_PASS).await {
                    Ok(next) => next,
                    Err(err) => {
                        tracing::warn!(%err, "firing schedules failed");
                        None
                    }
                };
            }
            if let Err(err) = engine.claim_runs().await {
                tracing::warn!(%err, "claiming runs failed");
            }
            let wait = next_due.map_or(poll, |at| {
                Duration::from_millis(u64::try_from(at.0 - Timestamp::now().0).unwrap_or(0)).min(poll)
            });
            let inner = engine.inner.clone();
            drop(engine);
            let _ = tokio::time::timeout(wait, inner.jobs.wake.notified()).await;
            drop(inner);
        }
    }

    /// Claims due runs while this replica has room, and starts each attempt on its own task.
    async fn claim_runs(&self) -> Result<(), StoreError> {
        let config = self.config();
        loop {
            let room = config.jobs_concurrency.saturating_sub(self.inner.jobs.running());
            if room == 0 || !self.inner.jobs.accepting.load(Ordering::Acquire) {
                return Ok(());
            }
            let limit = room.min(CLAIM_BATCH);
            let claimed = self
                .store()
                .claim_runs(&config.replica_id, millis(config.lease), i64::try_from(limit).unwrap_or(1))
                .await?;
            let full = claimed.len() == limit;
            for run in claimed {
                self.announce_run(&run.run);
                let stop = self.inner.jobs.register(&run);
                let engine = self.clone();
                tokio::spawn(async move {
                    let (id, token) = (run.run.id.clone(), run.lease.token);
                    super::execute::attempt(&engine, run, stop).await;
                    engine.inner.jobs.unregister(&id, token);
                    engine.inner.jobs.wake();
                });
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Ends runs nobody may run any more (expired, crashed) and tells the operators.
    async fn sweep_runs(&self) -> Result<(), StoreError> {
        if self.inner.jobs.renewal_is_late(self.config().lease / 3) {
            self.renew_run_leases().await?;
        }
        let swept = self.store().sweep_runs().await?;
        for run in swept.crashed.iter() {
            tracing::warn!(run = %run.id, task = %run.task_id, status = run.status.as_str(), "a run's replica stopped renewing its lease");
        }
        if !swept.crashed.is_empty() {
            self.inner.jobs.wake();
        }
        for run in swept.expired.iter().chain(&swept.crashed) {
            self.announce_run(run);
        }
        Ok(())
    }

    /// Renews this replica's run leases every third of a lease, until the engine is dropped.
    pub(crate) async fn jobs_renew_loop(weak: Weak<Inner>) {
        let every = match weak.upgrade() {
            Some(inner) => inner.config.lease / 3,
            None => return,
        };
        loop {
            tokio::time::sleep(every).await;
            let Some(inner) = weak.upgrade() else { return };
            let engine = Engine { inner };
            if let Err(err) = engine.renew_run_leases().await {
                tracing::warn!(%err, "cannot renew this replica's run leases");
            }
        }
    }

    /// Renews the leases of the runs executing here; stops those lost or asked to stop.
    async fn renew_run_leases(&self) -> Result<(), StoreError> {
        let asked = Instant::now();
        let ids: Vec<String> =
            self.inner.jobs.running.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let held = if refs.is_empty() {
            Vec::new()
        } else {
            self.store().renew_run_leases(self.replica_id(), millis(self.config().lease), &refs).await?
        };
        *self.inner.jobs.renewed.lock().unwrap_or_else(|p| p.into_inner()) = asked;
        let held: HashMap<String, (i64, bool)> =
            held.into_iter().map(|(id, token, cancel)| (id, (token, cancel))).collect();
        let mut lost = Vec::new();
        {
            let running = self.inner.jobs.running.lock().unwrap_or_else(|p| p.into_inner());
            for (id, run) in running.iter().filter(|(_, r)| r.since < asked) {
                match held.get(id) {
                    Some((token, cancel)) if *token == run.token => {
                        if *cancel {
                            lost.push((id.clone(), run.token, RunStop::Canceled));
                        }
                    }
                    _ => lost.push((id.clone(), run.token, RunStop::LeaseLost)),
                }
            }
        }
        for (id, token, reason) in lost {
            if reason == RunStop::LeaseLost && !self.store().run_lease_lost(&id, token).await? {
                continue;
            }
            self.inner.jobs.stop(&id, reason);
        }
        Ok(())
    }

    /// At shutdown: claims nothing more, gives executing runs `grace`, then stops the rest (each
    /// is queued again at once, its attempt recorded as interrupted).
    pub(crate) async fn shutdown_jobs(&self, grace: Duration) {
        self.inner.jobs.accepting.store(false, Ordering::Release);
        self.inner.jobs.wake();
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline && self.inner.jobs.running() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let ids: Vec<String> =
            self.inner.jobs.running.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect();
        for id in &ids {
            self.inner.jobs.stop(id, RunStop::Shutdown);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < deadline && self.inner.jobs.running() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
