//! What the GitOps steps need from a Kubernetes cluster: read, list, merge-patch and scale objects,
//! as JSON. `crate::kube` implements it on the `kube` crate; the domain never sees its types.

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::port::Result;

/// The kinds of object failoverd reads or writes in a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ObjectKind {
    GitRepository,
    #[serde(rename = "OCIRepository")]
    OciRepository,
    HelmRepository,
    Kustomization,
    HelmRelease,
    Application,
    Deployment,
    StatefulSet,
    HorizontalPodAutoscaler,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 9] = [
        Self::GitRepository,
        Self::OciRepository,
        Self::HelmRepository,
        Self::Kustomization,
        Self::HelmRelease,
        Self::Application,
        Self::Deployment,
        Self::StatefulSet,
        Self::HorizontalPodAutoscaler,
    ];

    /// The `kind` field, as the API server spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GitRepository => "GitRepository",
            Self::OciRepository => "OCIRepository",
            Self::HelmRepository => "HelmRepository",
            Self::Kustomization => "Kustomization",
            Self::HelmRelease => "HelmRelease",
            Self::Application => "Application",
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
        }
    }

    /// The API group (`""` is never used: every kind here is in a named group).
    pub fn group(self) -> &'static str {
        match self {
            Self::GitRepository | Self::OciRepository | Self::HelmRepository => {
                "source.toolkit.fluxcd.io"
            }
            Self::Kustomization => "kustomize.toolkit.fluxcd.io",
            Self::HelmRelease => "helm.toolkit.fluxcd.io",
            Self::Application => "argoproj.io",
            Self::Deployment | Self::StatefulSet => "apps",
            Self::HorizontalPodAutoscaler => "autoscaling",
        }
    }

    /// The resource name in URLs.
    pub fn plural(self) -> &'static str {
        match self {
            Self::GitRepository => "gitrepositories",
            Self::OciRepository => "ocirepositories",
            Self::HelmRepository => "helmrepositories",
            Self::Kustomization => "kustomizations",
            Self::HelmRelease => "helmreleases",
            Self::Application => "applications",
            Self::Deployment => "deployments",
            Self::StatefulSet => "statefulsets",
            Self::HorizontalPodAutoscaler => "horizontalpodautoscalers",
        }
    }

    /// The version used when discovery cannot tell (the current stable one of each group).
    pub fn default_version(self) -> &'static str {
        match self {
            Self::GitRepository
            | Self::OciRepository
            | Self::HelmRepository
            | Self::Kustomization => "v1",
            Self::HelmRelease | Self::HorizontalPodAutoscaler => "v2",
            Self::Application => "v1alpha1",
            Self::Deployment | Self::StatefulSet => "v1",
        }
    }

    /// A Flux source (reconciled before the objects that apply it).
    pub fn is_flux_source(self) -> bool {
        matches!(
            self,
            Self::GitRepository | Self::OciRepository | Self::HelmRepository
        )
    }

    /// Any Flux object.
    pub fn is_flux(self) -> bool {
        self.is_flux_source() || matches!(self, Self::Kustomization | Self::HelmRelease)
    }

    /// A workload with a `/scale` subresource.
    pub fn is_workload(self) -> bool {
        matches!(self, Self::Deployment | Self::StatefulSet)
    }

    /// Parses the `kind` field.
    pub fn parse(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One namespaced object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
}

impl ObjectRef {
    pub fn new(kind: ObjectKind, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One region's Kubernetes API. Errors use [`crate::port::Service::Kubernetes`]; a lost
/// optimistic-concurrency race is [`crate::port::ErrorKind::Conflict`].
#[async_trait]
pub trait ClusterApi: Send + Sync + 'static {
    /// The object, or `None` when it does not exist.
    async fn get(&self, object: &ObjectRef) -> Result<Option<Value>>;

    /// The objects of `kind` in `namespace` matching `label_selector` (`""` for all).
    async fn list(
        &self,
        kind: ObjectKind,
        namespace: &str,
        label_selector: &str,
    ) -> Result<Vec<Value>>;

    /// An RFC 7386 merge patch; the object as stored afterwards. A patch carrying
    /// `metadata.resourceVersion` fails with `Conflict` when the object changed since.
    async fn merge_patch(&self, object: &ObjectRef, patch: &Value) -> Result<Value>;

    /// Sets `spec.replicas` through the `/scale` subresource (workloads only).
    async fn scale(&self, object: &ObjectRef, replicas: i32) -> Result<()>;
}
