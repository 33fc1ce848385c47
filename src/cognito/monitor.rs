//! The Cognito component of the daemon: in `sync` mode a background task that runs a sync pass
//! every `cognito.interval`, in `native_replica` mode one that reports the replica's status; and a
//! cloneable [`CognitoHandle`] for `/v1/status`, the `cognito-sync` plan and the failover plan.
//!
//! The background pass and a pass requested by a step share one lock, so they never run at the
//! same time (two passes would race each other's creates and checkpoints): a step waits for a
//! running background pass, then runs its own, which finds little left to do. A failed pass never
//! ends the task — the next interval tries again, resuming from the checkpoint — only the stop
//! signal does.
//!
//! Direction: users are copied from the **source** region's pool to the other one. The source is
//! the active region (`super::direction` follows the recorded active region): after a failover
//! the new active pool is the source, so users created there during an outage are copied back to
//! the original pool once it answers again — copying the other way would overwrite the pool in
//! use with the lost region's. A failover's final sync and a failback's reverse sync run one pass
//! towards their target whatever the current direction ([`CognitoHandle::sync_towards`]).

use std::sync::{Arc, Mutex};

use prometheus::Registry;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::diff::DeletionPolicy;
use super::metrics::SyncMetrics;
use super::port::{CognitoPorts, UserDirectory};
use super::quota::{CallCounters, CognitoLimits, RateLimitedDirectory};
use super::replica::{list_replicas, replica_active, ReplicaView};
use super::sync::{PoolSync, SyncError, SyncReport};
use crate::config::{CognitoConfig, CognitoMode};
use crate::shutdown::StopSignal;
use crate::topology::RegionPair;

/// Why the component could not start, or a requested pass could not run.
#[derive(Debug, thiserror::Error)]
pub enum CognitoError {
    #[error("no Cognito port for region {0}, one of the pair")]
    NoPorts(String),
    #[error("cognito.pools has no pool for region {0}")]
    NoPool(String),
    #[error("cognito metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cognito.mode is native_replica: failoverd does not copy users")]
    NotSyncMode,
    #[error("the cognito sync is paused by an operator")]
    Paused,
    #[error("region {0} is not one of the pair")]
    NotInPair(String),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

/// What `/v1/status` shows.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CognitoSnapshot {
    pub mode: String,
    /// The direction of the sync, source region first: passes copy users from the first to the
    /// second. It follows the active region at once; a pass already running finishes in its own
    /// direction (see `last_pass_regions`).
    pub regions: Vec<String>,
    /// The pools of `regions`, in the same order.
    pub pools: Vec<String>,
    /// The direction of the last successful pass (source first), which differs from `regions`
    /// after a failover's final sync or a failback's reverse sync, or while a pass started before
    /// the direction changed is the last one.
    pub last_pass_regions: Vec<String>,
    pub paused: bool,
    /// Whether this failoverd leads (`None` until it first tries): only the leader's background
    /// task copies users; a follower's copies nothing and says so here.
    pub leader: Option<bool>,
    pub running: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success_at: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub last_report: Option<SyncReport>,
    pub throttled_total: u64,
    /// Native replica mode: the replicas of the hot pool.
    pub replicas: Vec<ReplicaView>,
    pub replica_error: Option<String>,
}

struct Inner {
    mode: CognitoMode,
    pair: RegionPair,
    pools: [String; 2],
    /// The configured hot pool to the cold one.
    forward: PoolSync,
    /// The cold pool back to the hot one (after a failover).
    reverse: PoolSync,
    /// The region copied from now.
    source: Mutex<String>,
    pass_lock: tokio::sync::Mutex<()>,
    state: Mutex<CognitoSnapshot>,
    metrics: SyncMetrics,
    counters: Vec<CallCounters>,
    paused: std::sync::atomic::AtomicBool,
}

/// Starts the Cognito component.
pub struct CognitoMonitor;

impl CognitoMonitor {
    /// Starts the background task for `config.mode` in the current runtime and registers the
    /// metrics in `registry`, for the region `pair` (the sync copies hot to cold). Runs until `stop`.
    ///
    /// `leader` says whether this failoverd holds leadership (the engine's, see
    /// [`crate::engine::RunnerHandle::leadership`]): the background passes run only while it is
    /// `Some(true)`, and a pass in flight stops at once when it changes (the next leader resumes
    /// from the checkpoint).
    pub fn spawn(
        config: &CognitoConfig,
        pair: &RegionPair,
        ports: CognitoPorts,
        registry: &Registry,
        leader: watch::Receiver<Option<bool>>,
        stop: StopSignal,
    ) -> Result<CognitoHandle, CognitoError> {
        let handle = Self::build(config, pair, ports, registry)?;
        let (done_tx, done_rx) = watch::channel(false);
        let task_handle = handle.clone();
        let interval = config.interval.0;
        tokio::spawn(async move {
            task_handle.run_loop(interval, leader, stop).await;
            let _ = done_tx.send(true);
        });
        Ok(CognitoHandle {
            done: Some(done_rx),
            ..handle
        })
    }

    /// The handle without a background task (the plan alone, tests).
    pub fn build(
        config: &CognitoConfig,
        pair: &RegionPair,
        ports: CognitoPorts,
        registry: &Registry,
    ) -> Result<CognitoHandle, CognitoError> {
        let mut dirs = Vec::new();
        let mut pools = Vec::new();
        for region in pair.regions() {
            dirs.push(
                ports
                    .directory(region)
                    .ok_or_else(|| CognitoError::NoPorts(region.to_owned()))?,
            );
            pools.push(
                config
                    .pools
                    .get(region)
                    .cloned()
                    .ok_or_else(|| CognitoError::NoPool(region.to_owned()))?,
            );
        }
        let limits = ports
            .limits
            .clone()
            .unwrap_or_else(|| CognitoLimits::with_share(config.quota_share));
        let hot = RateLimitedDirectory::new(Arc::clone(&dirs[0]), limits.clone());
        let cold = RateLimitedDirectory::new(Arc::clone(&dirs[1]), limits);
        let counters = vec![hot.counters(), cold.counters()];
        let pools = [pools[0].clone(), pools[1].clone()];
        let metrics = SyncMetrics::register(
            registry,
            (config.mode == CognitoMode::Sync).then_some(config.interval.0),
        )?;
        let mode_label = match config.mode {
            CognitoMode::Sync => "sync",
            CognitoMode::NativeReplica => "native_replica",
        };
        let deletion = DeletionPolicy {
            delete_missing: config.delete_missing,
            max_delete_fraction: config.max_delete_fraction,
        };
        let (hot, cold): (Arc<dyn UserDirectory>, Arc<dyn UserDirectory>) =
            (Arc::new(hot), Arc::new(cold));
        let inner = Inner {
            mode: config.mode,
            forward: PoolSync {
                hot: Arc::clone(&hot),
                cold: Arc::clone(&cold),
                hot_pool: pools[0].clone(),
                cold_pool: pools[1].clone(),
                deletion,
                concurrency: ports.concurrency,
                checkpoint: Arc::clone(&ports.checkpoint),
            },
            // One checkpoint store for both: a checkpoint names its pools, so a pass in the other
            // direction ignores it and starts from the beginning.
            reverse: PoolSync {
                hot: cold,
                cold: hot,
                hot_pool: pools[1].clone(),
                cold_pool: pools[0].clone(),
                deletion,
                concurrency: ports.concurrency,
                checkpoint: ports.checkpoint,
            },
            source: Mutex::new(pair.hot().to_owned()),
            state: Mutex::new(CognitoSnapshot {
                mode: mode_label.into(),
                regions: pair.regions().map(str::to_owned).to_vec(),
                pools: pools.to_vec(),
                ..CognitoSnapshot::default()
            }),
            pair: pair.clone(),
            pools,
            pass_lock: tokio::sync::Mutex::new(()),
            metrics,
            counters,
            paused: std::sync::atomic::AtomicBool::new(false),
        };
        Ok(CognitoHandle {
            inner: Arc::new(inner),
            done: None,
        })
    }
}

/// Marks the snapshot as not running when dropped.
struct RunningFlag<'a>(&'a CognitoHandle);

impl Drop for RunningFlag<'_> {
    fn drop(&mut self) {
        self.0.update(|s| s.running = false);
    }
}

/// Read access and control. Cheap to clone.
#[derive(Clone)]
pub struct CognitoHandle {
    inner: Arc<Inner>,
    done: Option<watch::Receiver<bool>>,
}

impl CognitoHandle {
    /// Everything known now (for `/v1/status`).
    pub fn snapshot(&self) -> CognitoSnapshot {
        let mut s = self
            .inner
            .state
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        s.paused = self.is_paused();
        s.throttled_total = self
            .inner
            .counters
            .iter()
            .map(|c| c.throttled_total())
            .sum();
        s
    }

    /// The region users are copied from now; `None` while paused or in native replica mode.
    pub fn source_region(&self) -> Option<String> {
        (self.inner.mode == CognitoMode::Sync && !self.is_paused()).then(|| self.source())
    }

    fn source(&self) -> String {
        self.inner
            .source
            .lock()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Copy from `region` (one of the pair) from the next pass on: the daemon sets the active
    /// region here. A running pass finishes in its direction.
    pub fn set_source(&self, region: &str) -> Result<(), CognitoError> {
        if !self.inner.pair.contains(region) {
            return Err(CognitoError::NotInPair(region.to_owned()));
        }
        let mut source = self.inner.source.lock().unwrap_or_else(|p| p.into_inner());
        if *source == region {
            return Ok(());
        }
        tracing::info!(from = %source, to = %region, "Cognito sync direction changed: the active pool is the source");
        *source = region.to_owned();
        drop(source);
        let other = self.inner.pair.other(region).unwrap_or_default().to_owned();
        let pools = [
            self.pool_of(region).unwrap_or_default().to_owned(),
            self.pool_of(&other).unwrap_or_default().to_owned(),
        ];
        self.update(|s| {
            s.regions = vec![region.to_owned(), other];
            s.pools = pools.to_vec();
        });
        Ok(())
    }

    /// Stop (true) or allow (false) sync passes; a running pass finishes.
    pub fn set_paused(&self, paused: bool) {
        self.inner
            .paused
            .store(paused, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The mode configured.
    pub fn mode(&self) -> CognitoMode {
        self.inner.mode
    }

    /// The region pair (hot, cold as configured).
    pub fn regions(&self) -> &RegionPair {
        &self.inner.pair
    }

    /// The configured hot and cold pool ids.
    pub fn pools(&self) -> &[String; 2] {
        &self.inner.pools
    }

    /// The pool id of `region`.
    pub fn pool_of(&self, region: &str) -> Option<&str> {
        let [hot, cold] = &self.inner.pools;
        if region == self.inner.pair.hot() {
            Some(hot)
        } else if region == self.inner.pair.cold() {
            Some(cold)
        } else {
            None
        }
    }

    /// The rate-limited directory of the configured hot region (for the replica step).
    pub fn hot_directory(&self) -> Arc<dyn UserDirectory> {
        Arc::clone(&self.inner.forward.hot)
    }

    /// Run one pass now in the current direction (waiting for a running one to finish first),
    /// recording it in the snapshot and the metrics.
    pub async fn sync_now(&self) -> Result<SyncReport, CognitoError> {
        if self.is_paused() {
            return Err(CognitoError::Paused);
        }
        let source = self.source();
        let destination = self
            .inner
            .pair
            .other(&source)
            .unwrap_or(self.inner.pair.cold())
            .to_owned();
        self.sync_towards(&destination).await
    }

    /// Run one pass copying *into* `destination` (one of the pair) from the other region, whatever
    /// the current direction: a failover's final sync and a failback's reverse sync. Operator
    /// pauses do not stop it (the run was asked for).
    pub async fn sync_towards(&self, destination: &str) -> Result<SyncReport, CognitoError> {
        if self.inner.mode != CognitoMode::Sync {
            return Err(CognitoError::NotSyncMode);
        }
        let pass = if destination == self.inner.pair.cold() {
            &self.inner.forward
        } else if destination == self.inner.pair.hot() {
            &self.inner.reverse
        } else {
            return Err(CognitoError::NotInPair(destination.to_owned()));
        };
        let source = self
            .inner
            .pair
            .other(destination)
            .unwrap_or_default()
            .to_owned();
        let _guard = self.inner.pass_lock.lock().await;
        let now = OffsetDateTime::now_utc();
        self.update(|s| {
            s.running = true;
            s.last_attempt_at = Some(now);
        });
        // Clears `running` even when the pass is dropped half-way (stop signal, step timeout).
        let _running = RunningFlag(self);
        let result = pass.run().await;
        let ended = OffsetDateTime::now_utc();
        self.inner.metrics.observe_throttling(&self.inner.counters);
        match &result {
            Ok(report) => {
                self.inner.metrics.pass_succeeded(
                    [source.as_str(), destination],
                    report,
                    ended.unix_timestamp_nanos() as f64 / 1e9,
                );
                self.update(|s| {
                    s.last_pass_regions = vec![source.clone(), destination.to_owned()];
                    s.last_success_at = Some(ended);
                    s.last_error = None;
                    s.last_report = Some(report.clone());
                });
                tracing::info!(
                    from = %source,
                    to = %destination,
                    changes = report.changes.total(),
                    drift_remaining = report.drift_remaining,
                    duration_ms = report.duration_ms,
                    "cognito sync pass finished"
                );
            }
            Err(e) => {
                self.inner.metrics.pass_failed();
                let message = e.to_string();
                tracing::warn!(error = %message, "cognito sync pass failed");
                self.update(|s| s.last_error = Some(message));
            }
        }
        Ok(result?)
    }

    /// Read the replicas of the hot pool and record their status (native replica mode).
    pub async fn observe_replicas(&self) {
        let result = list_replicas(self.inner.forward.hot.as_ref(), &self.inner.pools[0]).await;
        match result {
            Ok(replicas) => {
                let cold = self.inner.pair.cold();
                self.inner
                    .metrics
                    .replica(cold, replica_active(&replicas, cold));
                let views = replicas.iter().map(ReplicaView::from).collect();
                self.update(|s| {
                    s.replicas = views;
                    s.replica_error = None;
                    s.last_success_at = Some(OffsetDateTime::now_utc());
                });
            }
            Err(e) => {
                let message = e.to_string();
                self.update(|s| s.replica_error = Some(message));
            }
        }
    }

    /// Resolves once the background task has stopped (at once for a handle without one).
    pub async fn finished(&self) {
        if let Some(done) = &self.done {
            let mut done = done.clone();
            let _ = done.wait_for(|d| *d).await;
        }
    }

    fn update(&self, f: impl FnOnce(&mut CognitoSnapshot)) {
        if let Ok(mut s) = self.inner.state.lock() {
            f(&mut s);
        }
    }

    async fn run_loop(
        &self,
        interval: std::time::Duration,
        mut leader: watch::Receiver<Option<bool>>,
        mut stop: StopSignal,
    ) {
        let mut ticker = tokio::time::interval(interval.max(std::time::Duration::from_secs(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate: the first pass (or replica reading) is due at once.
        ticker.tick().await;
        let mut due = true;
        let mut was_leader = None;
        loop {
            let is_leader = *leader.borrow_and_update();
            self.update(|s| s.leader = is_leader);
            if is_leader != was_leader && self.inner.mode == CognitoMode::Sync {
                match is_leader {
                    Some(true) => tracing::info!("leader: the Cognito sync runs here"),
                    Some(false) => {
                        tracing::info!("follower: the Cognito sync runs on the leader, not here")
                    }
                    None => {}
                }
            }
            // A new leader syncs at once instead of waiting out an interval.
            if is_leader == Some(true) && was_leader != Some(true) {
                due = true;
            }
            was_leader = is_leader;
            if !std::mem::take(&mut due) {
                tokio::select! {
                    biased;
                    _ = stop.stopped() => return,
                    _ = ticker.tick() => {}
                    // Leadership changed: look again (a follower that becomes leader syncs now).
                    Ok(()) = leader.changed() => continue,
                }
            }
            let work = async {
                match self.inner.mode {
                    CognitoMode::Sync => {
                        if is_leader == Some(true) && !self.is_paused() {
                            // Errors are recorded in the snapshot and metrics by `sync_now`.
                            let _ = self.sync_now().await;
                        }
                    }
                    // Read-only: every replica reports what it sees.
                    CognitoMode::NativeReplica => self.observe_replicas().await,
                }
            };
            // Leadership lost: the pass stops here, and whoever leads next resumes it from the
            // checkpoint.
            let lost = async {
                loop {
                    if leader.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    if *leader.borrow() != Some(true) {
                        return;
                    }
                }
            };
            tokio::select! {
                biased;
                // A pass stopped here resumes from its checkpoint at the next start.
                _ = stop.stopped() => return,
                _ = lost, if self.inner.mode == CognitoMode::Sync && is_leader == Some(true) => {
                    tracing::warn!("leadership lost: the Cognito pass in flight stops here");
                }
                _ = work => {}
            }
        }
    }
}
