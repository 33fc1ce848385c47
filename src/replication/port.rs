//! What replication tracking and the database steps need from AWS, in domain terms: Aurora Global
//! Database topology and promotion ([`GlobalDatabaseApi`]), the lag metrics CloudWatch publishes for
//! it ([`LagMetricsApi`]), and the AWS Backup catalogue of the cold vault ([`BackupCatalogApi`]).
//!
//! Each instance is bound to one region (the adapter holds that region's client): the daemon
//! usually runs in the standby region and must be able to act there when the hot one is gone.
//! The AWS adapter implements the traits; [`ReplicationPorts`] bundles both regions' ports.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

use crate::port::Result;

/// One member cluster of an Aurora global database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalClusterMember {
    pub db_cluster_arn: String,
    /// The member's region, parsed from its ARN.
    pub region: Option<String>,
    /// Whether this member is the global database's writer (primary).
    pub is_writer: bool,
    /// ARNs of the secondary clusters replicating from this member (set on the writer).
    pub readers: Vec<String>,
    /// `connected` / `pending-resync` for secondaries, as RDS reports it.
    pub synchronization_status: Option<String>,
}

/// An in-progress (or last) switchover/failover of a global database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalFailoverState {
    /// `pending`, `failing-over`, `cancelling`.
    pub status: Option<String>,
    pub from_db_cluster_arn: Option<String>,
    pub to_db_cluster_arn: Option<String>,
    pub is_data_loss_allowed: bool,
}

/// An Aurora global database with its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalCluster {
    pub id: String,
    pub arn: Option<String>,
    /// `available`, `failing-over`, `switching-over`, `modifying`, ...
    pub status: Option<String>,
    pub engine: Option<String>,
    pub engine_version: Option<String>,
    pub members: Vec<GlobalClusterMember>,
    pub failover_state: Option<GlobalFailoverState>,
}

impl GlobalCluster {
    /// The writer member, if the global database has one (it has none mid-failover).
    pub fn writer(&self) -> Option<&GlobalClusterMember> {
        self.members.iter().find(|m| m.is_writer)
    }

    /// The region of the writer member: the region that is *active* for the database.
    pub fn writer_region(&self) -> Option<&str> {
        self.writer().and_then(|m| m.region.as_deref())
    }

    /// The member in `region`, if any.
    pub fn member_in(&self, region: &str) -> Option<&GlobalClusterMember> {
        self.members
            .iter()
            .find(|m| m.region.as_deref() == Some(region))
    }
}

/// One DB instance of a DB cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbClusterInstance {
    pub id: String,
    pub is_writer: bool,
}

/// A regional Aurora DB cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbCluster {
    pub id: String,
    pub arn: Option<String>,
    /// `available`, `backing-up`, `failing-over`, ...
    pub status: Option<String>,
    pub engine: Option<String>,
    /// Writer endpoint.
    pub endpoint: Option<String>,
    pub reader_endpoint: Option<String>,
    /// The global database this cluster belongs to, if RDS reports it.
    pub global_cluster_id: Option<String>,
    pub instances: Vec<DbClusterInstance>,
}

/// Global database topology and promotion in one region.
#[async_trait]
pub trait GlobalDatabaseApi: Send + Sync {
    /// The global database `global_cluster_id` with its members and writer. Unknown id:
    /// `ErrorKind::NotFound` (`GlobalClusterNotFoundFault`).
    async fn describe_global_cluster(&self, global_cluster_id: &str) -> Result<GlobalCluster>;

    /// The DB cluster `db_cluster_id` (identifier or ARN). Unknown: `ErrorKind::NotFound`
    /// (`DBClusterNotFoundFault`).
    async fn describe_db_cluster(&self, db_cluster_id: &str) -> Result<DbCluster>;

    /// Every DB cluster in the region, following pagination.
    async fn describe_db_clusters(&self) -> Result<Vec<DbCluster>>;

    /// Graceful switchover (RPO 0): makes `target_db_cluster_arn` the writer after it caught up.
    async fn switchover_global_cluster(
        &self,
        global_cluster_id: &str,
        target_db_cluster_arn: &str,
    ) -> Result<GlobalCluster>;

    /// Ungraceful failover with `AllowDataLoss`: promotes `target_db_cluster_arn` now, losing what
    /// had not replicated. Used when the writer's region is lost.
    async fn failover_global_cluster_allow_data_loss(
        &self,
        global_cluster_id: &str,
        target_db_cluster_arn: &str,
    ) -> Result<GlobalCluster>;

    /// Detaches `db_cluster_arn` from the global database (it becomes a standalone writable
    /// cluster): the last resort when neither switchover nor failover is possible.
    async fn remove_from_global_cluster(
        &self,
        global_cluster_id: &str,
        db_cluster_arn: &str,
    ) -> Result<GlobalCluster>;
}

/// The CloudWatch metrics Aurora publishes for a global database secondary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LagMetric {
    /// `AuroraGlobalDBReplicationLag`: how far the secondary's storage trails the primary.
    ReplicationLag,
    /// `AuroraGlobalDBRPOLag`: the recovery point objective lag (what a failover would lose).
    RpoLag,
}

impl LagMetric {
    /// CloudWatch metric name (namespace `AWS/RDS`, unit milliseconds).
    pub fn metric_name(self) -> &'static str {
        match self {
            Self::ReplicationLag => "AuroraGlobalDBReplicationLag",
            Self::RpoLag => "AuroraGlobalDBRPOLag",
        }
    }
}

/// One data point of a lag series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagSample {
    pub at: OffsetDateTime,
    pub lag: Duration,
}

/// The time window to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricWindow {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
    /// Aggregation period; CloudWatch wants a multiple of 60 s for standard-resolution metrics.
    pub period: Duration,
}

/// Aurora global database lag metrics in one region (the secondary's region).
#[async_trait]
pub trait LagMetricsApi: Send + Sync {
    /// The per-period maximum of `metric` for `db_cluster_id` over `window`, oldest first. A
    /// cluster that published nothing in the window gives an empty series (CloudWatch cannot tell
    /// "no such cluster" from "no data"); callers treat a gap as unknown lag.
    async fn lag_series(
        &self,
        db_cluster_id: &str,
        metric: LagMetric,
        window: MetricWindow,
    ) -> Result<Vec<LagSample>>;
}

/// Status of a recovery point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryPointStatus {
    Creating,
    Completed,
    /// Newer vault types report a finished, restorable recovery point as `AVAILABLE`.
    Available,
    Partial,
    Stopped,
    Deleting,
    Expired,
    Other(String),
}

impl RecoveryPointStatus {
    /// Whether the recovery point can be restored from: what "newest usable copy" counts.
    pub fn is_restorable(&self) -> bool {
        matches!(self, Self::Completed | Self::Available)
    }
}

/// One recovery point in a backup vault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPoint {
    pub arn: String,
    pub backup_vault_name: Option<String>,
    pub resource_arn: Option<String>,
    pub resource_type: Option<String>,
    pub status: RecoveryPointStatus,
    pub creation_date: Option<OffsetDateTime>,
    pub completion_date: Option<OffsetDateTime>,
    /// For a copy: the vault it was copied from.
    pub source_backup_vault_arn: Option<String>,
}

/// Server-side filters for [`BackupCatalogApi::list_recovery_points`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryPointFilter {
    pub resource_arn: Option<String>,
    pub resource_type: Option<String>,
    pub created_after: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
}

/// State of a cross-region copy job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyJobState {
    Created,
    Running,
    Completed,
    Failed,
    Partial,
    Other(String),
}

impl CopyJobState {
    /// AWS's wire value, used for filtering.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Created => "CREATED",
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::Partial => "PARTIAL",
            Self::Other(other) => other,
        }
    }
}

/// One copy job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyJob {
    pub id: String,
    pub state: CopyJobState,
    pub status_message: Option<String>,
    pub resource_arn: Option<String>,
    pub resource_type: Option<String>,
    pub source_recovery_point_arn: Option<String>,
    pub destination_recovery_point_arn: Option<String>,
    pub source_backup_vault_arn: Option<String>,
    pub destination_backup_vault_arn: Option<String>,
    pub creation_date: Option<OffsetDateTime>,
    pub completion_date: Option<OffsetDateTime>,
}

/// Server-side filters for [`BackupCatalogApi::list_copy_jobs`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyJobFilter {
    pub state: Option<CopyJobState>,
    pub resource_arn: Option<String>,
    pub resource_type: Option<String>,
    pub destination_vault_arn: Option<String>,
    pub created_after: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
}

/// The AWS Backup catalogue in one region.
#[async_trait]
pub trait BackupCatalogApi: Send + Sync {
    /// Every recovery point in `backup_vault_name` matching `filter`, following pagination.
    /// Unknown vault: `ErrorKind::NotFound` (`ResourceNotFoundException`).
    async fn list_recovery_points(
        &self,
        backup_vault_name: &str,
        filter: &RecoveryPointFilter,
    ) -> Result<Vec<RecoveryPoint>>;

    /// Every copy job matching `filter`, following pagination.
    async fn list_copy_jobs(&self, filter: &CopyJobFilter) -> Result<Vec<CopyJob>>;
}

/// The ports of one region (the AWS adapter builds them with
/// `AwsClients::replication_ports`; tests pass fakes).
#[derive(Clone)]
pub struct RegionPorts {
    pub region: String,
    pub global_database: Arc<dyn GlobalDatabaseApi>,
    pub lag_metrics: Arc<dyn LagMetricsApi>,
    pub backup: Arc<dyn BackupCatalogApi>,
}

/// The ports of both regions of the pair.
#[derive(Clone)]
pub struct ReplicationPorts {
    regions: Arc<Vec<RegionPorts>>,
}

impl ReplicationPorts {
    pub fn new(regions: Vec<RegionPorts>) -> Self {
        Self {
            regions: Arc::new(regions),
        }
    }

    /// The ports of `region`, if it is one of the pair.
    pub fn region(&self, region: &str) -> Option<&RegionPorts> {
        self.regions.iter().find(|p| p.region == region)
    }
}
