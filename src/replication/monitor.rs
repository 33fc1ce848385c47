//! The replication monitor: starts one tracker task per configured global database (topology,
//! CloudWatch lag or SQL heartbeat) and per backup vault, and hands out a cloneable
//! [`ReplicationHandle`] that `/v1/status` and the policy read.
//!
//! The trackers never end on an error — the cold region's failoverd must keep reporting while the
//! hot region's APIs are gone — only on the stop signal. What they observe goes into one shared
//! state; metrics, the snapshot and lag readings are all derived from it at read time (see
//! `state` and `metrics`), so none of them can show a stale value as current.

use std::collections::BTreeMap;
use std::future::Future;

use prometheus::Registry;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::aurora::AuroraTracker;
use super::backup::BackupTracker;
use super::heartbeat::{HeartbeatError, HeartbeatProbe, HeartbeatTracker};
use super::lag::{LagReading, LagReadings, LagSourceKind};
use super::metrics;
use super::port::ReplicationPorts;
use super::state::{
    AuroraState, MonitorState, ReplicationSnapshot, SharedState, Topology, VaultState,
};
use crate::config::{LagSource, ReplicationConfig};
use crate::shutdown::StopSignal;
use crate::status::{ComponentState, StatusBoard};
use crate::topology::RegionPair;

/// Why the monitor could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplicationError {
    #[error("no AWS ports for region {0}, one of the pair")]
    NoPorts(String),
    #[error("replication.aurora ({global_cluster}): lag_source is heartbeat but heartbeat is not configured")]
    NoHeartbeat { global_cluster: String },
    #[error("replication.aurora ({global_cluster}).heartbeat: {source}")]
    Heartbeat {
        global_cluster: String,
        source: HeartbeatError,
    },
    #[error("replication metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Starts the replication trackers.
pub struct ReplicationMonitor;

impl ReplicationMonitor {
    /// Starts every tracker `config` asks for, in the current tokio runtime, registering the
    /// replication metrics in `registry`, for the region `pair`. The trackers run until
    /// `stop`; [`ReplicationHandle::finished`] resolves when they all have ended.
    ///
    /// `leader` is the engine's leadership: the heartbeat (`lag_source: heartbeat`) writes its
    /// row only while it is `Some(true)`; a follower measures read-only.
    pub fn spawn(
        config: &ReplicationConfig,
        pair: &RegionPair,
        ports: ReplicationPorts,
        registry: &Registry,
        leader: watch::Receiver<Option<bool>>,
        stop: StopSignal,
    ) -> Result<ReplicationHandle, ReplicationError> {
        Self::start(config, pair, ports, registry, Some(leader), async move {
            let mut stop = stop;
            stop.stopped().await
        })
    }

    /// Like [`ReplicationMonitor::spawn`], stopping when the future `stop` resolves, with no
    /// leadership to follow (the heartbeat always writes).
    pub fn spawn_until(
        config: &ReplicationConfig,
        pair: &RegionPair,
        ports: ReplicationPorts,
        registry: &Registry,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<ReplicationHandle, ReplicationError> {
        Self::start(config, pair, ports, registry, None, stop)
    }

    fn start(
        config: &ReplicationConfig,
        pair: &RegionPair,
        ports: ReplicationPorts,
        registry: &Registry,
        leader: Option<watch::Receiver<Option<bool>>>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Result<ReplicationHandle, ReplicationError> {
        if !config.aurora.is_empty() || !config.backup_vaults.is_empty() {
            for region in pair.regions() {
                if ports.region(region).is_none() {
                    return Err(ReplicationError::NoPorts(region.to_owned()));
                }
            }
        }

        let mut initial = MonitorState::default();
        for a in &config.aurora {
            initial.aurora.insert(
                a.global_cluster.clone(),
                AuroraState {
                    global_cluster: a.global_cluster.clone(),
                    source: a.lag_source.into(),
                    max_lag: a.max_lag.get(),
                    stale_after: a.stale_after.get(),
                    topology: None,
                    lag: None,
                    topology_error: None,
                    lag_error: None,
                },
            );
        }
        for v in &config.backup_vaults {
            initial.vaults.insert(
                v.name.clone(),
                VaultState {
                    vault: v.name.clone(),
                    region: v.region.clone(),
                    source_region: pair.other(&v.region).unwrap_or(pair.hot()).to_owned(),
                    max_copy_age: v.max_copy_age.get(),
                    copy_failure_window: v.max_copy_age.get(),
                    newest: Default::default(),
                    recovery_points_observed_at: None,
                    failed_copy_jobs: None,
                    copy_jobs_observed_at: None,
                    recovery_points_error: None,
                    copy_jobs_error: None,
                },
            );
        }
        let state = SharedState::new(initial);

        // Build everything that can fail before registering metrics or spawning anything.
        let mut heartbeats = Vec::new();
        for a in &config.aurora {
            if a.lag_source != LagSource::Heartbeat {
                continue;
            }
            let hb = a
                .heartbeat
                .as_ref()
                .ok_or_else(|| ReplicationError::NoHeartbeat {
                    global_cluster: a.global_cluster.clone(),
                })?;
            let probe = HeartbeatProbe::new(hb).map_err(|source| ReplicationError::Heartbeat {
                global_cluster: a.global_cluster.clone(),
                source,
            })?;
            heartbeats.push((a.global_cluster.clone(), probe, hb.interval.get()));
        }
        let tracker_metrics = metrics::register(registry, state.clone())?;

        let (stop_tx, stop_rx) = watch::channel(false);
        let interval = config.interval.get();
        let mut set = JoinSet::new();
        // The topology poller publishes the writer region; the heartbeat writes there.
        let mut writer_senders = BTreeMap::new();
        for (global_cluster, probe, hb_interval) in heartbeats {
            let (tx, rx) = watch::channel(pair.hot().to_owned());
            writer_senders.insert(global_cluster.clone(), tx);
            let tracker = HeartbeatTracker {
                global_cluster,
                probe,
                pair: pair.clone(),
                state: state.clone(),
                metrics: tracker_metrics.clone(),
                writer: rx,
                leader: leader.clone(),
            };
            set.spawn(tracker.run(hb_interval, stop_rx.clone()));
        }
        for a in &config.aurora {
            let writer = writer_senders
                .remove(&a.global_cluster)
                .unwrap_or_else(|| watch::channel(pair.hot().to_owned()).0);
            let tracker = AuroraTracker {
                config: a.clone(),
                pair: pair.clone(),
                ports: ports.clone(),
                state: state.clone(),
                metrics: tracker_metrics.clone(),
                writer,
            };
            set.spawn(tracker.run(interval, stop_rx.clone()));
        }
        for v in &config.backup_vaults {
            let tracker = BackupTracker {
                source_region: pair.other(&v.region).unwrap_or(pair.hot()).to_owned(),
                copy_failure_window: v.max_copy_age.get(),
                vault: v.clone(),
                ports: ports.clone(),
                state: state.clone(),
                metrics: tracker_metrics.clone(),
                last_full: None,
            };
            set.spawn(tracker.run(interval, stop_rx.clone()));
        }

        let (done_tx, done_rx) = watch::channel(false);
        tokio::spawn(supervise(set, stop, stop_tx, done_tx));
        Ok(ReplicationHandle {
            state,
            done: done_rx,
        })
    }
}

/// Waits for the stop signal, tells the trackers, waits for them, then reports completion. A
/// tracker that ends before the stop signal has panicked: that is logged loudly.
async fn supervise(
    mut set: JoinSet<()>,
    stop: impl Future<Output = ()> + Send + 'static,
    stop_tx: watch::Sender<bool>,
    done_tx: watch::Sender<bool>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(ended) = set.join_next(), if !set.is_empty() => {
                if let Err(e) = ended {
                    tracing::error!(error = %e, "a replication tracker ended unexpectedly");
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    while let Some(ended) = set.join_next().await {
        if let Err(e) = ended {
            if !e.is_cancelled() {
                tracing::error!(error = %e, "a replication tracker failed while stopping");
            }
        }
    }
    let _ = done_tx.send(true);
}

/// See [`ReplicationHandle::worst_data_loss`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataLossBound {
    /// The largest estimated data loss of an ungraceful failover now.
    pub estimate: std::time::Duration,
    /// Age of the oldest observation behind it (the observation time is `now - age`).
    pub age: std::time::Duration,
}

/// Read access to what the trackers know. Cheap to clone.
#[derive(Clone)]
pub struct ReplicationHandle {
    state: SharedState,
    done: watch::Receiver<bool>,
}

impl ReplicationHandle {
    /// Everything the trackers know, with ages computed now (for `/v1/status`).
    pub fn snapshot(&self) -> ReplicationSnapshot {
        self.state.read().snapshot(OffsetDateTime::now_utc())
    }

    /// The newest lag reading of `global_cluster` with its observation time, age and staleness;
    /// `None` when nothing was ever observed (or the id is not configured).
    pub fn last_lag(&self, global_cluster: &str) -> Option<LagReading> {
        let now = OffsetDateTime::now_utc();
        self.state
            .read()
            .aurora
            .get(global_cluster)
            .and_then(|a| a.reading(now))
    }

    /// The newest lag reading of every configured global database (`None` where nothing was
    /// observed yet), for a policy that needs all of them within its bound.
    pub fn last_lags(&self) -> Vec<(String, Option<LagReading>)> {
        let now = OffsetDateTime::now_utc();
        self.state
            .read()
            .aurora
            .values()
            .map(|a| (a.global_cluster.clone(), a.reading(now)))
            .collect()
    }

    /// What the failover policy needs in one value: the largest estimated data loss over every
    /// configured global database ([`LagObservation::data_loss_estimate`](super::LagObservation::data_loss_estimate))
    /// and the age of the oldest reading it is based on. `None` — lag unknown, which must block
    /// an automatic failover — when any global database has no reading or only a stale one, or
    /// when none is configured.
    pub fn worst_data_loss(&self) -> Option<DataLossBound> {
        let readings = self.last_lags();
        if readings.is_empty() {
            return None;
        }
        let mut worst = DataLossBound {
            estimate: std::time::Duration::ZERO,
            age: std::time::Duration::ZERO,
        };
        for (_, reading) in readings {
            let r = reading.filter(|r| !r.stale)?;
            worst.estimate = worst.estimate.max(r.observation.data_loss_estimate());
            worst.age = worst.age.max(r.age);
        }
        Some(worst)
    }

    /// The last described topology of `global_cluster` (writer region, members, status).
    pub fn topology(&self, global_cluster: &str) -> Option<Topology> {
        self.state
            .read()
            .aurora
            .get(global_cluster)
            .and_then(|a| a.topology.clone())
    }

    /// The lag source configured for `global_cluster`.
    pub fn lag_source(&self, global_cluster: &str) -> Option<LagSourceKind> {
        self.state
            .read()
            .aurora
            .get(global_cluster)
            .map(|a| a.source)
    }

    /// Writes one component per tracker into `board` (`replication.aurora.<global cluster>`,
    /// `replication.backup.<vault>`), for `/v1/status` and `failoverd_component_up`. Cheap; call
    /// it whenever the board should be current (e.g. on each status request or on a timer).
    pub fn report_status(&self, board: &StatusBoard) {
        for (component, state, error) in component_states(&self.snapshot()) {
            board.report(&component, state, error);
        }
    }

    /// Resolves once every tracker has stopped (after the stop signal).
    pub async fn finished(&self) {
        let mut done = self.done.clone();
        let _ = done.wait_for(|d| *d).await;
    }
}

impl LagReadings for ReplicationHandle {
    fn last_lag(&self, global_cluster: &str) -> Option<LagReading> {
        ReplicationHandle::last_lag(self, global_cluster)
    }
}

/// The status-board view of a snapshot: `ok` when every poll of the tracker succeeds and its data
/// is fresh, `degraded` when some poll fails or the lag is unknown, `unreachable` when every poll
/// fails, `starting` before the first result.
pub fn component_states(
    snapshot: &ReplicationSnapshot,
) -> Vec<(String, ComponentState, Option<String>)> {
    let mut out = Vec::new();
    for a in &snapshot.aurora {
        let errors: Vec<String> = [&a.topology_error, &a.lag_error]
            .into_iter()
            .flatten()
            .map(|f| f.message.clone())
            .collect();
        let state = if a.topology.is_none() && a.lag.is_none() && errors.is_empty() {
            ComponentState::Starting
        } else if a.topology_error.is_some() && a.lag_error.is_some() {
            ComponentState::Unreachable
        } else if !errors.is_empty() || a.lag_unknown {
            ComponentState::Degraded
        } else {
            ComponentState::Ok
        };
        let error = match (errors.is_empty(), a.lag_unknown) {
            (false, _) => Some(errors.join("; ")),
            (true, true) if state != ComponentState::Starting => {
                Some("lag unknown: no fresh observation".to_owned())
            }
            _ => None,
        };
        out.push((
            format!("replication.aurora.{}", a.global_cluster),
            state,
            error,
        ));
    }
    for v in &snapshot.backup_vaults {
        let errors: Vec<String> = [&v.recovery_points_error, &v.copy_jobs_error]
            .into_iter()
            .flatten()
            .map(|f| f.message.clone())
            .collect();
        let state = if v.recovery_points_observed_at.is_none()
            && v.copy_jobs_observed_at.is_none()
            && errors.is_empty()
        {
            ComponentState::Starting
        } else if v.recovery_points_error.is_some() && v.copy_jobs_error.is_some() {
            ComponentState::Unreachable
        } else if !errors.is_empty() {
            ComponentState::Degraded
        } else {
            ComponentState::Ok
        };
        out.push((
            format!("replication.backup.{}", v.vault),
            state,
            (!errors.is_empty()).then(|| errors.join("; ")),
        ));
    }
    out
}
