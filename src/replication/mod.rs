//! Replication tracking: Aurora Global Database lag and topology, and AWS Backup cross-region copy
//! age.
//!
//! `port` defines what the trackers (and the Aurora steps in `crate::aurora`) need from AWS, and
//! the bundle of both regions' ports ([`ReplicationPorts`]); the AWS adapter implements and builds
//! them. `observed` reads where each writer is for the observed topology (`crate::topology`).

pub mod aurora;
pub mod backup;
pub mod heartbeat;
pub mod lag;
mod metrics;
pub mod monitor;
pub mod observed;
pub mod port;
pub mod state;

pub use lag::{LagObservation, LagReading, LagReadings, LagSourceKind};
pub use monitor::{DataLossBound, ReplicationError, ReplicationHandle, ReplicationMonitor};
pub use state::ReplicationSnapshot;

pub use port::{
    BackupCatalogApi, CopyJob, CopyJobFilter, CopyJobState, DbCluster, DbClusterInstance,
    GlobalCluster, GlobalClusterMember, GlobalDatabaseApi, GlobalFailoverState, LagMetric,
    LagMetricsApi, LagSample, MetricWindow, RecoveryPoint, RecoveryPointFilter,
    RecoveryPointStatus, RegionPorts, ReplicationPorts,
};
