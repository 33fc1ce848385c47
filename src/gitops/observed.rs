//! The workloads component of the observed topology: the region whose configured workloads are
//! scaled up (`spec.replicas` at or above their `floor_replicas`).
//!
//! It reads what the workloads *ask for*, not how many pods are ready: a region being lost still
//! asks for its replicas, so its failing pods never make the workloads look "elsewhere" and never
//! block the failover away from it (readiness is the monitor's business). Both regions scaled up
//! (a takeover that did not scale the region left down) can carry the load either way: that says
//! no single region and is not drift. Neither scaled up is split — drift: nothing carries the
//! load. A region whose cluster cannot be read makes the component unknown.

use std::sync::Arc;

use async_trait::async_trait;

use super::workloads::spec_replicas;
use super::GitOps;
use crate::topology::{ObservedComponent, Reading, RegionPair, Says, COMPONENT_WORKLOADS};

pub struct WorkloadsObservation {
    gitops: Arc<GitOps>,
    pair: RegionPair,
}

impl WorkloadsObservation {
    /// `None` unless both regions have a cluster with workloads configured.
    pub fn new(gitops: Arc<GitOps>, pair: RegionPair) -> Option<Self> {
        let both = pair.regions().iter().all(|r| {
            gitops.cluster(r).is_some()
                && gitops
                    .settings(r)
                    .is_some_and(|s| s.workloads.as_ref().is_some_and(|w| !w.items.is_empty()))
        });
        both.then_some(Self { gitops, pair })
    }

    /// Whether every configured workload of `region` asks for at least its floor, and how many
    /// replicas they ask for in all.
    async fn scaled_up(&self, region: &str) -> Result<(bool, i64, usize), String> {
        let cluster = self.gitops.cluster(region).ok_or("no cluster")?;
        let w = self
            .gitops
            .settings(region)
            .and_then(|s| s.workloads.as_ref())
            .ok_or("no workloads")?;
        let (mut all, mut total, mut count) = (true, 0i64, 0usize);
        for item in &w.items {
            let objects: Vec<_> = super::read_item(&**cluster, item)
                .await
                .map_err(|e| format!("{region}: {e}"))?
                .into_iter()
                .filter_map(|(_, obj)| obj)
                .collect();
            let floor = i64::from(item.floor_replicas);
            if objects.is_empty() {
                all = false;
            }
            for obj in objects {
                let replicas = i64::from(spec_replicas(&obj));
                all &= replicas >= floor;
                total += replicas;
                count += 1;
            }
        }
        Ok((all, total, count))
    }
}

#[async_trait]
impl ObservedComponent for WorkloadsObservation {
    fn component(&self) -> String {
        COMPONENT_WORKLOADS.to_owned()
    }

    async fn read(&self) -> Result<Reading, String> {
        let [a, b] = self.pair.regions();
        let (ra, rb) = tokio::join!(self.scaled_up(a), self.scaled_up(b));
        let (ra, rb) = (ra?, rb?);
        let detail = format!(
            "{a}: {} replicas over {} workloads{}; {b}: {} over {}{}",
            ra.1,
            ra.2,
            if ra.0 { " (scaled up)" } else { "" },
            rb.1,
            rb.2,
            if rb.0 { " (scaled up)" } else { "" },
        );
        let says = match (ra.0, rb.0) {
            (true, false) => Says::Region(a.to_owned()),
            (false, true) => Says::Region(b.to_owned()),
            (true, true) => Says::Unknown(
                "the workloads are scaled up in both regions: either can carry the load".into(),
            ),
            (false, false) => {
                Says::Split("the workloads are below their floor_replicas in both regions".into())
            }
        };
        Ok(Reading { says, detail })
    }
}
