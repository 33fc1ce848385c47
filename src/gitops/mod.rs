//! GitOps in the region taking over: reconcile its Flux objects and Argo CD applications, scale
//! its workloads up to carry the load, and wait until all of it is really ready (DESIGN §3b, §5).
//!
//! - [`port`]: what the steps need from a cluster ([`ClusterApi`]), implemented by `crate::kube`;
//! - [`flux`], [`argo`], [`workloads`]: pure decisions over the objects' JSON (is this reconcile
//!   handled and ready, is this sync finished with fresh health, how many replicas, is the
//!   rollout there) and the exact patches;
//! - [`steps`]: the engine steps built from them (each with `describe`, a truthful `verify` and
//!   honest reversibility);
//! - [`monitor`]: the standby cluster watched continuously (`/v1/status`,
//!   `failoverd_gitops_ready`);
//! - [`observed`]: the `workloads` component of the observed topology (which region is scaled
//!   up).
//!
//! Everything a step changes carries a marker of the run (a reconcile token, an `info` entry, an
//! annotation), so that after a crash `verify` can tell its own effect from someone else's and a
//! resumed run never patches twice.

pub mod argo;
pub mod flux;
pub mod monitor;
pub mod observed;
pub mod port;
pub mod steps;
pub mod workloads;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use port::{ClusterApi, ObjectKind, ObjectRef};

use crate::config::{self as cfg, GitOpsConfig};

/// The clusters of the pair and what to do in each, as the daemon built them.
#[derive(Clone)]
pub struct GitOps {
    /// By region; a region without a cluster configured is absent.
    pub clusters: BTreeMap<String, Arc<dyn ClusterApi>>,
    pub config: Arc<GitOpsConfig>,
}

impl GitOps {
    pub fn cluster(&self, region: &str) -> Option<&Arc<dyn ClusterApi>> {
        self.clusters.get(region)
    }

    /// The configuration of `region`'s cluster.
    pub fn settings(&self, region: &str) -> Option<&cfg::ClusterConfig> {
        self.config.clusters.iter().find(|c| c.region == region)
    }

    pub fn poll_interval(&self) -> Duration {
        self.config.poll_interval.get()
    }
}

impl From<cfg::FluxKind> for ObjectKind {
    fn from(k: cfg::FluxKind) -> Self {
        match k {
            cfg::FluxKind::GitRepository => Self::GitRepository,
            cfg::FluxKind::OciRepository => Self::OciRepository,
            cfg::FluxKind::HelmRepository => Self::HelmRepository,
            cfg::FluxKind::Kustomization => Self::Kustomization,
            cfg::FluxKind::HelmRelease => Self::HelmRelease,
        }
    }
}

impl From<cfg::WorkloadKind> for ObjectKind {
    fn from(k: cfg::WorkloadKind) -> Self {
        match k {
            cfg::WorkloadKind::Deployment => Self::Deployment,
            cfg::WorkloadKind::StatefulSet => Self::StatefulSet,
        }
    }
}

/// The workloads one configured item names: the named one (not read: `None`), or every one its
/// label selector matches (with the object the LIST returned).
pub async fn resolve_item(
    cluster: &dyn ClusterApi,
    item: &cfg::WorkloadConfig,
) -> crate::port::Result<Vec<(ObjectRef, Option<serde_json::Value>)>> {
    let kind: ObjectKind = item.kind.into();
    Ok(match (&item.name, &item.selector) {
        (Some(name), _) => vec![(ObjectRef::new(kind, &item.namespace, name), None)],
        (None, Some(selector)) => cluster
            .list(kind, &item.namespace, selector)
            .await?
            .into_iter()
            .filter_map(|obj| {
                let name = obj.pointer("/metadata/name")?.as_str()?.to_owned();
                Some((ObjectRef::new(kind, &item.namespace, name), Some(obj)))
            })
            .collect(),
        (None, None) => Vec::new(),
    })
}

/// [`resolve_item`] with every workload read: `None` for a named one that does not exist.
pub async fn read_item(
    cluster: &dyn ClusterApi,
    item: &cfg::WorkloadConfig,
) -> crate::port::Result<Vec<(ObjectRef, Option<serde_json::Value>)>> {
    let mut out = Vec::new();
    for (o, listed) in resolve_item(cluster, item).await? {
        let obj = match listed {
            Some(obj) => Some(obj),
            None => cluster.get(&o).await?,
        };
        out.push((o, obj));
    }
    Ok(out)
}

/// The configured Flux objects of a cluster.
pub fn flux_objects(c: &cfg::FluxConfig) -> Vec<ObjectRef> {
    c.objects
        .iter()
        .map(|o| ObjectRef::new(o.kind.into(), &o.namespace, &o.name))
        .collect()
}

/// The configured Argo CD applications of a cluster.
pub fn argo_applications(c: &cfg::ArgoConfig) -> Vec<ObjectRef> {
    c.applications
        .iter()
        .map(|a| ObjectRef::new(ObjectKind::Application, &a.namespace, &a.name))
        .collect()
}
