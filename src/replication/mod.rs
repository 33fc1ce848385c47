//! Replication tracking: Aurora Global Database lag and topology, and AWS Backup cross-region copy
//! age.
//!
//! `port` defines what the trackers (and the Aurora steps in `crate::aurora`) need from AWS;
//! `crate::aws` implements it.

pub mod aurora;
pub mod backup;
pub mod heartbeat;
pub mod lag;
mod metrics;
pub mod monitor;
pub mod port;
pub mod state;

pub use lag::{LagObservation, LagReading, LagReadings, LagSourceKind};
pub use monitor::{
    DataLossBound, RegionPorts, ReplicationError, ReplicationHandle, ReplicationMonitor,
    ReplicationPorts,
};
pub use state::ReplicationSnapshot;

pub use port::{
    BackupCatalogApi, CopyJob, CopyJobFilter, CopyJobState, DbCluster, DbClusterInstance,
    GlobalCluster, GlobalClusterMember, GlobalDatabaseApi, GlobalFailoverState, LagMetric,
    LagMetricsApi, LagSample, MetricWindow, RecoveryPoint, RecoveryPointFilter,
    RecoveryPointStatus,
};
