//! Replication tracking: Aurora Global Database lag and topology, and AWS Backup cross-region copy
//! age.
//!
//! `port` defines what the trackers and database steps need from AWS; `crate::aws` implements it.

pub mod port;

pub use port::{
    BackupCatalogApi, CopyJob, CopyJobFilter, CopyJobState, DbCluster, DbClusterInstance,
    GlobalCluster, GlobalClusterMember, GlobalDatabaseApi, GlobalFailoverState, LagMetric,
    LagMetricsApi, LagSample, MetricWindow, RecoveryPoint, RecoveryPointFilter,
    RecoveryPointStatus,
};
