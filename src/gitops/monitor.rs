//! The clusters watched continuously: is each configured GitOps object ready and does each
//! workload keep its standby replicas? Shown in `/v1/status` (`gitops`), exported as
//! `failoverd_gitops_ready{region,kind,namespace,name}` and
//! `failoverd_gitops_cluster_reachable{region}`, and read by the failover's preflight for the
//! region taking over. An unreachable cluster is reported, never fatal.

use std::time::Duration;

use prometheus::{IntGaugeVec, Opts, Registry};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::watch;

use super::argo;
use super::flux::{self, FluxState};
use super::port::{ClusterApi, ObjectKind, ObjectRef};
use super::workloads as wl;
use super::GitOps;
use crate::config::ClusterConfig;
use crate::shutdown::StopSignal;

/// One object's readiness.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObjectStatus {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
    pub ready: bool,
    /// What is wrong, or what was seen.
    pub detail: String,
}

/// One cluster, as last checked.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClusterStatus {
    pub region: String,
    pub reachable: bool,
    /// Why the cluster could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub checked_at: Option<OffsetDateTime>,
    pub objects: Vec<ObjectStatus>,
}

impl ClusterStatus {
    pub fn ready(&self) -> bool {
        self.reachable && self.objects.iter().all(|o| o.ready)
    }

    /// The objects that are not ready, in words.
    pub fn not_ready(&self) -> Vec<String> {
        self.objects
            .iter()
            .filter(|o| !o.ready)
            .map(|o| format!("{} {}/{}: {}", o.kind, o.namespace, o.name, o.detail))
            .collect()
    }
}

/// Every configured cluster (`None` until the first check).
pub type GitOpsStatus = Vec<ClusterStatus>;

fn status(o: &ObjectRef, ready: bool, detail: impl Into<String>) -> ObjectStatus {
    ObjectStatus {
        kind: o.kind,
        namespace: o.namespace.clone(),
        name: o.name.clone(),
        ready,
        detail: detail.into(),
    }
}

/// Checks one cluster now: the steady state of every configured object. Each read is bounded
/// by `timeout`; the first failure to reach the API makes the cluster unreachable.
pub async fn check_cluster(
    cluster: &dyn ClusterApi,
    settings: &ClusterConfig,
    timeout: Duration,
) -> ClusterStatus {
    let result = tokio::time::timeout(timeout, check_objects(cluster, settings)).await;
    let (reachable, error, objects) = match result {
        Ok(Ok(objects)) => (true, None, objects),
        Ok(Err(e)) => (false, Some(e.to_string()), Vec::new()),
        Err(_) => (
            false,
            Some(format!(
                "the API server did not answer within {}",
                humantime::format_duration(timeout)
            )),
            Vec::new(),
        ),
    };
    ClusterStatus {
        region: settings.region.clone(),
        reachable,
        error,
        checked_at: Some(OffsetDateTime::now_utc()),
        objects,
    }
}

async fn check_objects(
    cluster: &dyn ClusterApi,
    settings: &ClusterConfig,
) -> Result<Vec<ObjectStatus>, crate::port::Error> {
    let mut out = Vec::new();
    if let Some(f) = &settings.flux {
        for o in super::flux_objects(f) {
            out.push(match cluster.get(&o).await? {
                None => status(&o, false, "does not exist"),
                Some(obj) => match flux::state(&obj, None) {
                    FluxState::Ready { revision } => {
                        status(&o, true, revision.unwrap_or_else(|| "ready".into()))
                    }
                    FluxState::Suspended => {
                        let by = flux::annotation(&obj, flux::SUSPENDED_BY)
                            .map(|r| format!(" by failoverd run {r}"))
                            .unwrap_or_default();
                        status(&o, false, format!("suspended{by}"))
                    }
                    FluxState::Pending(why) => status(&o, false, why),
                    FluxState::Failed(why) => status(&o, false, why),
                },
            });
        }
    }
    if let Some(a) = &settings.argocd {
        for o in super::argo_applications(a) {
            out.push(match cluster.get(&o).await? {
                None => status(&o, false, "does not exist"),
                Some(app) => match argo::steady(&app) {
                    Ok(()) => status(&o, true, "Synced, Healthy"),
                    Err(why) => status(&o, false, why),
                },
            });
        }
    }
    if let Some(w) = &settings.workloads {
        for item in &w.items {
            let objects = super::read_item(cluster, item).await?;
            if let (true, Some(sel)) = (objects.is_empty(), &item.selector) {
                let o = ObjectRef::new(item.kind.into(), &item.namespace, format!("[{sel}]"));
                out.push(status(&o, false, "no workload matches the selector"));
            }
            let need = i32::try_from(item.standby_replicas).unwrap_or(i32::MAX);
            for (o, obj) in objects {
                out.push(match obj {
                    None => status(&o, false, "does not exist"),
                    Some(obj) => {
                        let r = wl::rollout(&obj);
                        let ok = r.observed && r.ready >= need;
                        status(
                            &o,
                            ok,
                            format!("{} (standby needs {need} ready)", r.describe()),
                        )
                    }
                });
            }
        }
    }
    Ok(out)
}

/// The gauges.
pub struct GitOpsGauges {
    ready: IntGaugeVec,
    reachable: IntGaugeVec,
}

impl GitOpsGauges {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let ready = IntGaugeVec::new(
            Opts::new(
                "failoverd_gitops_ready",
                "1 while the GitOps object or workload is ready (Flux Ready at its generation, \
                 Argo CD Synced and Healthy, a workload with its standby replicas ready).",
            ),
            &["region", "kind", "namespace", "name"],
        )?;
        let reachable = IntGaugeVec::new(
            Opts::new(
                "failoverd_gitops_cluster_reachable",
                "1 while the region's Kubernetes API answered the last check.",
            ),
            &["region"],
        )?;
        registry.register(Box::new(ready.clone()))?;
        registry.register(Box::new(reachable.clone()))?;
        Ok(Self { ready, reachable })
    }

    fn set(&self, c: &ClusterStatus) {
        self.reachable
            .with_label_values(&[c.region.as_str()])
            .set(i64::from(c.reachable));
        // While unreachable the last known object series stay as they were: the reachability
        // gauge says why they are stale.
        for o in &c.objects {
            self.ready
                .with_label_values(&[
                    c.region.as_str(),
                    o.kind.as_str(),
                    o.namespace.as_str(),
                    o.name.as_str(),
                ])
                .set(i64::from(o.ready));
        }
    }
}

/// Checks every configured cluster at once and then every `monitor_interval`, publishing to the
/// returned receiver; the future runs until `stop` (the daemon spawns it with its components).
pub fn monitor(
    gitops: GitOps,
    gauges: Option<GitOpsGauges>,
    mut stop: StopSignal,
) -> (GitOpsWatch, impl std::future::Future<Output = ()> + Send) {
    let (tx, rx) = watch::channel(None);
    let run = async move {
        let interval = gitops.config.monitor_interval.get();
        let timeout = live_timeout(&gitops);
        loop {
            let mut all = Vec::new();
            for settings in &gitops.config.clusters {
                let Some(cluster) = gitops.cluster(&settings.region) else {
                    continue;
                };
                let c = check_cluster(&**cluster, settings, timeout).await;
                if let Some(g) = &gauges {
                    g.set(&c);
                }
                if !c.reachable {
                    tracing::warn!(region = %c.region, error = c.error.as_deref().unwrap_or(""),
                        "kubernetes cluster unreachable");
                }
                all.push(c);
            }
            tx.send_replace(Some(all));
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.stopped() => return,
            }
        }
    };
    (rx, run)
}

/// A cheap handle on the latest check, for the preflight and `/v1/status`.
pub type GitOpsWatch = watch::Receiver<Option<GitOpsStatus>>;

/// The bound of one check of a cluster (the monitor's, and the preflight's live one).
pub fn live_timeout(gitops: &GitOps) -> Duration {
    gitops.config.request_timeout.get().saturating_mul(4)
}
