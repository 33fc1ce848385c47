//! What the replication trackers know, shared between the tracker tasks (writers), the metrics
//! collector and the [`ReplicationHandle`](super::ReplicationHandle) (readers).
//!
//! The state stores raw observations with their times, never derived ages: ages and staleness are
//! computed whenever someone reads (a scrape, `/v1/status`, the policy), so a tracker that stopped
//! receiving data cannot leave a frozen "current" value behind.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

use super::lag::{age, is_stale, LagObservation, LagReading, LagSourceKind};
use super::port::GlobalCluster;

/// A failing poll: what failed, since when, how often in a row. Cleared by the next success.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub message: String,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_at: OffsetDateTime,
    pub consecutive: u64,
}

/// Records a failure in `slot`, extending the current streak.
pub(crate) fn record_failure(slot: &mut Option<Failure>, message: String, now: OffsetDateTime) {
    match slot {
        Some(f) => {
            f.message = message;
            f.last_at = now;
            f.consecutive = f.consecutive.saturating_add(1);
        }
        None => {
            *slot = Some(Failure {
                message,
                since: now,
                last_at: now,
                consecutive: 1,
            })
        }
    }
}

/// One member of a global database, as last described.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopologyMember {
    pub db_cluster_arn: String,
    pub region: Option<String>,
    pub is_writer: bool,
    pub synchronization_status: Option<String>,
}

/// The global database's topology from `DescribeGlobalClusters`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Topology {
    /// `available`, `switching-over`, `failing-over`, ...
    pub status: Option<String>,
    /// The region of the writer member; `None` mid-failover.
    pub writer_region: Option<String>,
    pub members: Vec<TopologyMember>,
    /// Target of an in-progress switchover/failover.
    pub transition_to: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
}

impl Topology {
    pub(crate) fn from_global(global: &GlobalCluster, observed_at: OffsetDateTime) -> Self {
        Self {
            status: global.status.clone(),
            writer_region: global.writer_region().map(str::to_owned),
            members: global
                .members
                .iter()
                .map(|m| TopologyMember {
                    db_cluster_arn: m.db_cluster_arn.clone(),
                    region: m.region.clone(),
                    is_writer: m.is_writer,
                    synchronization_status: m.synchronization_status.clone(),
                })
                .collect(),
            transition_to: global
                .failover_state
                .as_ref()
                .and_then(|f| f.to_db_cluster_arn.clone()),
            observed_at,
        }
    }
}

/// One Aurora global database being tracked.
#[derive(Clone, Debug)]
pub struct AuroraState {
    pub global_cluster: String,
    pub source: LagSourceKind,
    pub max_lag: Duration,
    pub stale_after: Duration,
    pub topology: Option<Topology>,
    pub lag: Option<LagObservation>,
    pub topology_error: Option<Failure>,
    pub lag_error: Option<Failure>,
}

/// The newest restorable recovery point of one protected resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NewestCopy {
    pub recovery_point_arn: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// One backup vault being tracked.
#[derive(Clone, Debug)]
pub struct VaultState {
    pub vault: String,
    pub region: String,
    /// Where the copy jobs into this vault run (the other region of the pair).
    pub source_region: String,
    pub max_copy_age: Duration,
    /// Failed copy jobs are counted over this window.
    pub copy_failure_window: Duration,
    /// Newest restorable recovery point by protected resource ARN.
    pub newest: BTreeMap<String, NewestCopy>,
    pub recovery_points_observed_at: Option<OffsetDateTime>,
    pub failed_copy_jobs: Option<u64>,
    pub copy_jobs_observed_at: Option<OffsetDateTime>,
    pub recovery_points_error: Option<Failure>,
    pub copy_jobs_error: Option<Failure>,
}

/// Everything the trackers know.
#[derive(Clone, Debug, Default)]
pub struct MonitorState {
    /// By global cluster id.
    pub aurora: BTreeMap<String, AuroraState>,
    /// By vault name.
    pub vaults: BTreeMap<String, VaultState>,
}

/// The state behind a lock, shared by the trackers, the collector and the handle.
#[derive(Clone, Debug, Default)]
pub(crate) struct SharedState(Arc<RwLock<MonitorState>>);

impl SharedState {
    pub(crate) fn new(state: MonitorState) -> Self {
        Self(Arc::new(RwLock::new(state)))
    }

    /// Each update is a handful of field assignments, so a writer that panicked cannot leave the
    /// state half-updated in a way readers would misinterpret: keep serving it.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, MonitorState> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, MonitorState> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn update_aurora(&self, global_cluster: &str, f: impl FnOnce(&mut AuroraState)) {
        if let Some(state) = self.write().aurora.get_mut(global_cluster) {
            f(state);
        }
    }

    pub(crate) fn update_vault(&self, vault: &str, f: impl FnOnce(&mut VaultState)) {
        if let Some(state) = self.write().vaults.get_mut(vault) {
            f(state);
        }
    }
}

/// `/v1/status` view of the replication trackers.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicationSnapshot {
    pub aurora: Vec<AuroraSnapshot>,
    pub backup_vaults: Vec<VaultSnapshot>,
}

/// One global database in the snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct AuroraSnapshot {
    pub global_cluster: String,
    pub lag_source: LagSourceKind,
    pub max_lag_seconds: f64,
    pub stale_after_seconds: f64,
    pub topology: Option<Topology>,
    /// The newest lag observation with its age; `lag.stale` says whether it may be used as current.
    pub lag: Option<LagReading>,
    /// No lag observation, or only a stale one: the lag is unknown.
    pub lag_unknown: bool,
    pub topology_error: Option<Failure>,
    pub lag_error: Option<Failure>,
}

/// One protected resource in a vault snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct ResourceCopySnapshot {
    pub resource_arn: String,
    pub recovery_point_arn: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub age_seconds: f64,
    /// Older than the vault's `max_copy_age`.
    pub too_old: bool,
}

/// One backup vault in the snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct VaultSnapshot {
    pub vault: String,
    pub region: String,
    pub source_region: String,
    pub max_copy_age_seconds: f64,
    pub resources: Vec<ResourceCopySnapshot>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub recovery_points_observed_at: Option<OffsetDateTime>,
    /// Failed copy jobs into the vault within `copy_failure_window_seconds`; `None` until known.
    pub failed_copy_jobs: Option<u64>,
    pub copy_failure_window_seconds: f64,
    #[serde(with = "time::serde::rfc3339::option")]
    pub copy_jobs_observed_at: Option<OffsetDateTime>,
    pub recovery_points_error: Option<Failure>,
    pub copy_jobs_error: Option<Failure>,
}

impl AuroraState {
    /// The lag reading at `now`, if anything was ever observed.
    pub fn reading(&self, now: OffsetDateTime) -> Option<LagReading> {
        self.lag.clone().map(|obs| {
            LagReading::at(
                &self.global_cluster,
                obs,
                self.max_lag,
                self.stale_after,
                now,
            )
        })
    }

    fn snapshot(&self, now: OffsetDateTime) -> AuroraSnapshot {
        let lag = self.reading(now);
        AuroraSnapshot {
            global_cluster: self.global_cluster.clone(),
            lag_source: self.source,
            max_lag_seconds: self.max_lag.as_secs_f64(),
            stale_after_seconds: self.stale_after.as_secs_f64(),
            topology: self.topology.clone(),
            lag_unknown: lag.as_ref().is_none_or(|r| r.stale),
            lag,
            topology_error: self.topology_error.clone(),
            lag_error: self.lag_error.clone(),
        }
    }
}

impl VaultState {
    fn snapshot(&self, now: OffsetDateTime) -> VaultSnapshot {
        VaultSnapshot {
            vault: self.vault.clone(),
            region: self.region.clone(),
            source_region: self.source_region.clone(),
            max_copy_age_seconds: self.max_copy_age.as_secs_f64(),
            resources: self
                .newest
                .iter()
                .map(|(resource, copy)| {
                    let copy_age = age(copy.created_at, now);
                    ResourceCopySnapshot {
                        resource_arn: resource.clone(),
                        recovery_point_arn: copy.recovery_point_arn.clone(),
                        created_at: copy.created_at,
                        age_seconds: copy_age.as_secs_f64(),
                        too_old: is_stale(copy_age, self.max_copy_age),
                    }
                })
                .collect(),
            recovery_points_observed_at: self.recovery_points_observed_at,
            failed_copy_jobs: self.failed_copy_jobs,
            copy_failure_window_seconds: self.copy_failure_window.as_secs_f64(),
            copy_jobs_observed_at: self.copy_jobs_observed_at,
            recovery_points_error: self.recovery_points_error.clone(),
            copy_jobs_error: self.copy_jobs_error.clone(),
        }
    }
}

impl MonitorState {
    /// The whole state as seen at `now`.
    pub fn snapshot(&self, now: OffsetDateTime) -> ReplicationSnapshot {
        ReplicationSnapshot {
            aurora: self.aurora.values().map(|a| a.snapshot(now)).collect(),
            backup_vaults: self.vaults.values().map(|v| v.snapshot(now)).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn failures_extend_a_streak() {
        let t = datetime!(2026-11-28 12:00:00 UTC);
        let mut slot = None;
        record_failure(&mut slot, "a".into(), t);
        record_failure(&mut slot, "b".into(), t + time::Duration::seconds(5));
        let f = slot.expect("recorded");
        assert_eq!(f.consecutive, 2);
        assert_eq!(f.since, t);
        assert_eq!(f.message, "b");
    }

    #[test]
    fn snapshot_computes_ages_at_read_time() {
        let t = datetime!(2026-11-28 12:00:00 UTC);
        let mut newest = BTreeMap::new();
        newest.insert(
            "arn:r".to_owned(),
            NewestCopy {
                recovery_point_arn: "arn:rp".into(),
                created_at: t,
            },
        );
        let mut state = MonitorState::default();
        state.vaults.insert(
            "v".into(),
            VaultState {
                vault: "v".into(),
                region: "b".into(),
                source_region: "a".into(),
                max_copy_age: Duration::from_secs(3600),
                copy_failure_window: Duration::from_secs(3600),
                newest,
                recovery_points_observed_at: Some(t),
                failed_copy_jobs: Some(0),
                copy_jobs_observed_at: Some(t),
                recovery_points_error: None,
                copy_jobs_error: None,
            },
        );
        state.aurora.insert(
            "g".into(),
            AuroraState {
                global_cluster: "g".into(),
                source: LagSourceKind::Cloudwatch,
                max_lag: Duration::from_secs(5),
                stale_after: Duration::from_secs(60),
                topology: None,
                lag: None,
                topology_error: None,
                lag_error: None,
            },
        );
        let early = state.snapshot(t + time::Duration::seconds(10));
        assert!(!early.backup_vaults[0].resources[0].too_old);
        assert!(early.aurora[0].lag_unknown, "nothing observed yet");
        let late = state.snapshot(t + time::Duration::seconds(3601));
        assert!(late.backup_vaults[0].resources[0].too_old);
        assert_eq!(late.backup_vaults[0].resources[0].age_seconds, 3601.0);
    }
}
