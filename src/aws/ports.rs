//! The domain modules' port bundles, built from the SDK clients: the one place that knows which
//! adapter stands behind which port of which region.

use std::path::Path;
use std::sync::Arc;

use super::AwsClients;
use crate::cognito::checkpoint::{FileCheckpoint, CHECKPOINT_FILE};
use crate::cognito::{CognitoPorts, UserDirectory};
use crate::health::{AlarmStateApi, HealthCheckStatusApi, HealthPorts};
use crate::replication::{RegionPorts, ReplicationPorts};

impl AwsClients {
    /// Route 53 health-check status (a global API) and each region's CloudWatch alarm state, for
    /// the health probes and the verification between DNS stages.
    pub fn health_ports(&self) -> HealthPorts {
        HealthPorts {
            route53: Some(Arc::new(self.dns()) as Arc<dyn HealthCheckStatusApi>),
            alarms: self
                .regions()
                .iter()
                .map(|c| {
                    (
                        c.region().to_owned(),
                        Arc::new(c.cloudwatch()) as Arc<dyn AlarmStateApi>,
                    )
                })
                .collect(),
        }
    }

    /// Aurora Global Database, CloudWatch lag metrics and AWS Backup of both regions.
    pub fn replication_ports(&self) -> ReplicationPorts {
        ReplicationPorts::new(
            self.regions()
                .iter()
                .map(|c| RegionPorts {
                    region: c.region().to_owned(),
                    global_database: Arc::new(c.global_database()),
                    lag_metrics: Arc::new(c.cloudwatch()),
                    backup: Arc::new(c.backup_catalog()),
                })
                .collect(),
        )
    }

    /// The Cognito user directories of both regions; the sync's checkpoint in `state_dir`.
    pub fn cognito_ports(&self, state_dir: &Path) -> CognitoPorts {
        CognitoPorts::new(
            self.regions()
                .iter()
                .map(|c| {
                    (
                        c.region().to_owned(),
                        Arc::new(c.user_directory()) as Arc<dyn UserDirectory>,
                    )
                })
                .collect(),
            Arc::new(FileCheckpoint::new(state_dir.join(CHECKPOINT_FILE))),
        )
    }
}
