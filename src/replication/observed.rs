//! The Aurora components of the observed topology: where each global database's writer is, read
//! live with `DescribeGlobalClusters`.
//!
//! Both regions are asked at once and the first answer wins: either region's RDS API describes
//! the whole global database, and asking them one after the other would spend the whole read
//! timeout on a blackholed region before asking the one that answers. A global database whose
//! writer is moving (`switching-over`, `failing-over`) or that has no writer is
//! [`Says::Split`]: it is in neither region.

use async_trait::async_trait;
use futures::stream::{FuturesUnordered, StreamExt};

use super::aurora::topology_query_order;
use super::port::{GlobalCluster, ReplicationPorts};
use crate::topology::{aurora_component, ObservedComponent, Reading, RegionPair, Says};

pub struct WriterObservation {
    global_cluster: String,
    pair: RegionPair,
    ports: ReplicationPorts,
}

impl WriterObservation {
    pub fn new(
        global_cluster: impl Into<String>,
        pair: RegionPair,
        ports: ReplicationPorts,
    ) -> Self {
        Self {
            global_cluster: global_cluster.into(),
            pair,
            ports,
        }
    }
}

#[async_trait]
impl ObservedComponent for WriterObservation {
    fn component(&self) -> String {
        aurora_component(&self.global_cluster)
    }

    async fn read(&self) -> Result<Reading, String> {
        let id = self.global_cluster.as_str();
        let mut errors = Vec::new();
        let mut asks = FuturesUnordered::new();
        for region in topology_query_order(&self.pair) {
            match self.ports.region(region) {
                Some(ports) => {
                    let api = ports.global_database.clone();
                    asks.push(async move { (region, api.describe_global_cluster(id).await) });
                }
                None => errors.push(format!("{region}: no RDS port")),
            }
        }
        while let Some((region, answer)) = asks.next().await {
            match answer {
                Ok(global) => return Ok(writer_reading(&global)),
                Err(e) => errors.push(format!("{region}: {e}")),
            }
        }
        Err(format!(
            "cannot describe global cluster {id} ({})",
            errors.join("; ")
        ))
    }
}

/// Where the writer of `global` is, as a reading.
pub fn writer_reading(global: &GlobalCluster) -> Reading {
    let status = global.status.as_deref().unwrap_or("unknown");
    let writer = global.writer();
    let detail = format!(
        "status {status}; writer {}",
        writer.map_or("none", |w| w.db_cluster_arn.as_str())
    );
    let says = if matches!(status, "switching-over" | "failing-over") {
        let target = global
            .failover_state
            .as_ref()
            .and_then(|f| f.to_db_cluster_arn.as_deref())
            .and_then(|arn| {
                global
                    .members
                    .iter()
                    .find(|m| m.db_cluster_arn == arn)
                    .and_then(|m| m.region.clone())
            })
            .unwrap_or_else(|| "an unknown region".to_owned());
        Says::Split(format!("the writer is {status} to {target}"))
    } else {
        match writer {
            None => Says::Split(format!(
                "the global database has no writer (status {status})"
            )),
            Some(w) => match &w.region {
                Some(region) => Says::Region(region.clone()),
                None => Says::Unknown(format!(
                    "the writer's ARN {} names no region",
                    w.db_cluster_arn
                )),
            },
        }
    };
    Reading { says, detail }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::port::{GlobalClusterMember, GlobalFailoverState};

    const HOT: &str = "arn:aws:rds:us-east-1:123456789012:cluster:app-hot";
    const COLD: &str = "arn:aws:rds:us-west-2:123456789012:cluster:app-cold";

    fn member(arn: &str, region: Option<&str>, is_writer: bool) -> GlobalClusterMember {
        GlobalClusterMember {
            db_cluster_arn: arn.to_owned(),
            region: region.map(str::to_owned),
            is_writer,
            readers: Vec::new(),
            synchronization_status: None,
        }
    }

    fn global(status: &str, members: Vec<GlobalClusterMember>, to: Option<&str>) -> GlobalCluster {
        GlobalCluster {
            id: "g".into(),
            arn: None,
            status: Some(status.into()),
            engine: None,
            engine_version: None,
            members,
            failover_state: to.map(|to| GlobalFailoverState {
                status: Some("failing-over".into()),
                from_db_cluster_arn: None,
                to_db_cluster_arn: Some(to.into()),
                is_data_loss_allowed: false,
            }),
        }
    }

    #[test]
    fn the_writer_region_is_the_reading() {
        let g = global(
            "available",
            vec![
                member(HOT, Some("us-east-1"), false),
                member(COLD, Some("us-west-2"), true),
            ],
            None,
        );
        let r = writer_reading(&g);
        assert_eq!(r.says, Says::Region("us-west-2".into()));
        assert!(r.detail.contains(COLD), "{}", r.detail);
    }

    #[test]
    fn a_moving_writer_is_split() {
        for status in ["switching-over", "failing-over"] {
            let g = global(
                status,
                vec![
                    member(HOT, Some("us-east-1"), true),
                    member(COLD, Some("us-west-2"), false),
                ],
                Some(COLD),
            );
            assert_eq!(
                writer_reading(&g).says,
                Says::Split(format!("the writer is {status} to us-west-2"))
            );
        }
    }

    #[test]
    fn no_writer_is_split_and_a_writer_without_region_unknown() {
        let g = global(
            "available",
            vec![member(COLD, Some("us-west-2"), false)],
            None,
        );
        assert!(matches!(writer_reading(&g).says, Says::Split(_)));
        let g = global("available", vec![member("x", None, true)], None);
        assert!(matches!(writer_reading(&g).says, Says::Unknown(_)));
    }
}
