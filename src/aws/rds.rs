//! RDS adapter: implements [`GlobalDatabaseApi`] for Aurora Global Database.
//!
//! The writer region is derived from the writer member's ARN (`arn:aws:rds:<region>:...`), which
//! is how RDS itself identifies members; that is what the daemon cross-checks against its durable
//! record of the active region.

use async_trait::async_trait;
use aws_sdk_rds::types as sdk;

use super::error::{from_sdk, Error, ErrorKind, Result, Service};
use crate::replication::port::{
    DbCluster, DbClusterInstance, GlobalCluster, GlobalClusterMember, GlobalDatabaseApi,
    GlobalFailoverState,
};

/// Aurora Global Database in one region, through the AWS SDK.
#[derive(Debug, Clone)]
pub struct RdsGlobalDatabase {
    client: aws_sdk_rds::Client,
}

impl RdsGlobalDatabase {
    pub(crate) fn new(client: aws_sdk_rds::Client) -> Self {
        Self { client }
    }
}

const SERVICE: Service = Service::Rds;

#[async_trait]
impl GlobalDatabaseApi for RdsGlobalDatabase {
    async fn describe_global_cluster(&self, global_cluster_id: &str) -> Result<GlobalCluster> {
        const OP: &str = "DescribeGlobalClusters";
        let output = self
            .client
            .describe_global_clusters()
            .global_cluster_identifier(global_cluster_id)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        output
            .global_clusters()
            .iter()
            .find(|c| {
                c.global_cluster_identifier() == Some(global_cluster_id)
                    || c.global_cluster_arn() == Some(global_cluster_id)
            })
            .map(from_sdk_global_cluster)
            .ok_or_else(|| not_found(OP, "global cluster", global_cluster_id))
    }

    async fn describe_db_cluster(&self, db_cluster_id: &str) -> Result<DbCluster> {
        const OP: &str = "DescribeDBClusters";
        let output = self
            .client
            .describe_db_clusters()
            .db_cluster_identifier(db_cluster_id)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        output
            .db_clusters()
            .first()
            .map(from_sdk_db_cluster)
            .ok_or_else(|| not_found(OP, "DB cluster", db_cluster_id))
    }

    async fn describe_db_clusters(&self) -> Result<Vec<DbCluster>> {
        const OP: &str = "DescribeDBClusters";
        let mut clusters = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let output = self
                .client
                .describe_db_clusters()
                .set_marker(marker.take())
                .send()
                .await
                .map_err(|e| from_sdk(SERVICE, OP, &e))?;
            clusters.extend(output.db_clusters().iter().map(from_sdk_db_cluster));
            match output.marker() {
                Some(next) if !next.is_empty() => marker = Some(next.to_owned()),
                _ => return Ok(clusters),
            }
        }
    }

    async fn switchover_global_cluster(
        &self,
        global_cluster_id: &str,
        target_db_cluster_arn: &str,
    ) -> Result<GlobalCluster> {
        const OP: &str = "SwitchoverGlobalCluster";
        let output = self
            .client
            .switchover_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .target_db_cluster_identifier(target_db_cluster_arn)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        output
            .global_cluster()
            .map(from_sdk_global_cluster)
            .ok_or_else(|| Error::missing_field(SERVICE, OP, "GlobalCluster"))
    }

    async fn failover_global_cluster_allow_data_loss(
        &self,
        global_cluster_id: &str,
        target_db_cluster_arn: &str,
    ) -> Result<GlobalCluster> {
        const OP: &str = "FailoverGlobalCluster";
        let output = self
            .client
            .failover_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .target_db_cluster_identifier(target_db_cluster_arn)
            .allow_data_loss(true)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        output
            .global_cluster()
            .map(from_sdk_global_cluster)
            .ok_or_else(|| Error::missing_field(SERVICE, OP, "GlobalCluster"))
    }

    async fn remove_from_global_cluster(
        &self,
        global_cluster_id: &str,
        db_cluster_arn: &str,
    ) -> Result<GlobalCluster> {
        const OP: &str = "RemoveFromGlobalCluster";
        let output = self
            .client
            .remove_from_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .db_cluster_identifier(db_cluster_arn)
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        match output.global_cluster() {
            Some(cluster) => Ok(from_sdk_global_cluster(cluster)),
            // RDS documents the detached-from global cluster in the answer; when an endpoint
            // leaves it out (emulators do), read it back so callers still see the topology —
            // and an unknown global cluster still surfaces as `NotFound`.
            None => self.describe_global_cluster(global_cluster_id).await,
        }
    }
}

fn not_found(operation: &str, what: &str, id: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        SERVICE,
        operation,
        format!("{what} {id} not found"),
    )
}

/// The region of an ARN (`arn:<partition>:<service>:<region>:<account>:<resource>`).
pub(crate) fn region_of_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some(_), Some(region)) if !region.is_empty() => Some(region),
        _ => None,
    }
}

fn from_sdk_global_cluster(cluster: &sdk::GlobalCluster) -> GlobalCluster {
    GlobalCluster {
        id: cluster
            .global_cluster_identifier()
            .unwrap_or_default()
            .to_owned(),
        arn: cluster.global_cluster_arn().map(str::to_owned),
        status: cluster.status().map(str::to_owned),
        engine: cluster.engine().map(str::to_owned),
        engine_version: cluster.engine_version().map(str::to_owned),
        members: cluster
            .global_cluster_members()
            .iter()
            .map(|member| {
                let arn = member.db_cluster_arn().unwrap_or_default().to_owned();
                GlobalClusterMember {
                    region: region_of_arn(&arn).map(str::to_owned),
                    db_cluster_arn: arn,
                    is_writer: member.is_writer().unwrap_or(false),
                    readers: member.readers().to_vec(),
                    synchronization_status: member
                        .synchronization_status()
                        .map(|s| s.as_str().to_owned()),
                }
            })
            .collect(),
        failover_state: cluster.failover_state().map(|state| GlobalFailoverState {
            status: state.status().map(|s| s.as_str().to_owned()),
            from_db_cluster_arn: state.from_db_cluster_arn().map(str::to_owned),
            to_db_cluster_arn: state.to_db_cluster_arn().map(str::to_owned),
            is_data_loss_allowed: state.is_data_loss_allowed().unwrap_or(false),
        }),
    }
}

fn from_sdk_db_cluster(cluster: &sdk::DbCluster) -> DbCluster {
    DbCluster {
        id: cluster
            .db_cluster_identifier()
            .unwrap_or_default()
            .to_owned(),
        arn: cluster.db_cluster_arn().map(str::to_owned),
        status: cluster.status().map(str::to_owned),
        engine: cluster.engine().map(str::to_owned),
        endpoint: cluster.endpoint().map(str::to_owned),
        reader_endpoint: cluster.reader_endpoint().map(str::to_owned),
        global_cluster_id: cluster.global_cluster_identifier().map(str::to_owned),
        instances: cluster
            .db_cluster_members()
            .iter()
            .map(|m| DbClusterInstance {
                id: m.db_instance_identifier().unwrap_or_default().to_owned(),
                is_writer: m.is_cluster_writer().unwrap_or(false),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_comes_from_the_arn() {
        assert_eq!(
            region_of_arn("arn:aws:rds:eu-west-1:123456789012:cluster:app"),
            Some("eu-west-1")
        );
        assert_eq!(region_of_arn("arn:aws:rds::123:global-cluster:g"), None);
        assert_eq!(region_of_arn("not-an-arn"), None);
    }

    #[test]
    fn writer_region_is_the_writer_members_region() {
        let cluster = sdk::GlobalCluster::builder()
            .global_cluster_identifier("g")
            .global_cluster_members(
                sdk::GlobalClusterMember::builder()
                    .db_cluster_arn("arn:aws:rds:eu-west-1:1:cluster:hot")
                    .is_writer(true)
                    .readers("arn:aws:rds:eu-central-1:1:cluster:cold")
                    .build(),
            )
            .global_cluster_members(
                sdk::GlobalClusterMember::builder()
                    .db_cluster_arn("arn:aws:rds:eu-central-1:1:cluster:cold")
                    .is_writer(false)
                    .build(),
            )
            .build();
        let cluster = from_sdk_global_cluster(&cluster);
        assert_eq!(cluster.writer_region(), Some("eu-west-1"));
        assert_eq!(
            cluster.member_in("eu-central-1").map(|m| m.is_writer),
            Some(false)
        );
    }
}
