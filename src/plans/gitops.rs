//! The GitOps phases: what a takeover does in the clusters (DESIGN §3b), the `gitops-resync`
//! plan on its own, and the preflight check of the region taking over.
//!
//! In a takeover towards `target`, the `prepare` phase (concurrently with the final Cognito
//! sync) reconciles the target's Flux objects, syncs its Argo CD applications and scales its
//! workloads up to their share of the region left, waiting until they are ready; a graceful
//! takeover also suspends Flux in the region left when configured. After the active region is
//! recorded, a graceful takeover scales the region left back down when configured.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::params::{self, bad};
use super::preflight::{Check, Verdict};
use super::{PlanInfo, PlanRegistry};
use crate::engine::{Mode, Phase, Plan, PlanError, Step, StepId};
use crate::gitops::monitor::{check_cluster, live_timeout};
use crate::gitops::steps::{ArgoSync, FluxReconcile, FluxSuspend, ScaleDown, ScaleUp, Source};
use crate::gitops::{argo_applications, flux_objects, GitOps};
use crate::topology::RegionPair;

pub const RESYNC: &str = "gitops-resync";
/// `gitops-resync`'s parameter.
pub const REGION: &str = "region";

/// Stable step ids (stored in journals).
pub const FLUX_RECONCILE: &str = "flux-reconcile";
pub const ARGOCD_SYNC: &str = "argocd-sync";
pub const WORKLOADS_SCALE_UP: &str = "workloads-scale-up";
pub const FLUX_SUSPEND_LEFT: &str = "flux-suspend-left";
pub const WORKLOADS_SCALE_DOWN_LEFT: &str = "workloads-scale-down-left";
pub const CHECK_ID: &str = "check-gitops";

/// The reconcile steps of `region` (Flux, Argo CD), when configured.
fn reconcile_steps(gitops: &GitOps, region: &str) -> Vec<Arc<dyn Step>> {
    let mut steps: Vec<Arc<dyn Step>> = Vec::new();
    let (Some(settings), Some(cluster)) = (gitops.settings(region), gitops.cluster(region)) else {
        return steps;
    };
    let poll = gitops.poll_interval();
    let wait = gitops.config.reconcile_timeout.get();
    if let Some(f) = &settings.flux {
        steps.push(Arc::new(FluxReconcile {
            id: StepId::new(FLUX_RECONCILE),
            name: format!("reconcile Flux in {region}"),
            region: region.to_owned(),
            cluster: Arc::clone(cluster),
            objects: flux_objects(f),
            resume_suspended: f.resume_suspended,
            poll,
            wait,
        }));
    }
    if let Some(a) = &settings.argocd {
        steps.push(Arc::new(ArgoSync {
            id: StepId::new(ARGOCD_SYNC),
            name: format!("sync Argo CD applications in {region}"),
            region: region.to_owned(),
            cluster: Arc::clone(cluster),
            applications: argo_applications(a),
            refresh_after: a.refresh_after.get(),
            poll,
            wait,
        }));
    }
    steps
}

/// The takeover's GitOps steps, by phase.
pub struct TakeoverSteps {
    /// Run in `prepare`, alongside the final Cognito sync.
    pub prepare: Vec<Arc<dyn Step>>,
    /// Run after the target is recorded as active (graceful clean-up in the region left).
    pub after_record: Vec<Arc<dyn Step>>,
}

/// The takeover's GitOps steps towards `target`, out of `left`.
pub fn takeover_steps(
    gitops: &GitOps,
    mode: Mode,
    target: &str,
    left: &str,
    lost_region_budget: Duration,
) -> TakeoverSteps {
    let graceful = mode == Mode::Graceful;
    let mut prepare = reconcile_steps(gitops, target);
    let mut after = Vec::new();
    if let (Some(settings), Some(cluster)) = (gitops.settings(target), gitops.cluster(target)) {
        if let Some(w) = &settings.workloads {
            let source = gitops.cluster(left).map(|c| Source {
                region: left.to_owned(),
                cluster: Arc::clone(c),
                budget: if graceful {
                    live_timeout(gitops)
                } else {
                    lost_region_budget
                },
            });
            prepare.push(Arc::new(ScaleUp {
                id: StepId::new(WORKLOADS_SCALE_UP),
                name: format!("scale up the workloads in {target}"),
                region: target.to_owned(),
                cluster: Arc::clone(cluster),
                source,
                items: w.items.clone(),
                target_percent: w.target_percent,
                minimum_success_percent: (!graceful).then_some(w.minimum_success_percent),
                poll: gitops.poll_interval(),
                wait: gitops.config.ready_timeout.get(),
            }));
        }
    }
    if graceful {
        if let (Some(settings), Some(cluster)) = (gitops.settings(left), gitops.cluster(left)) {
            if let Some(f) = settings.flux.as_ref().filter(|f| f.suspend_when_left) {
                let objects = flux_objects(f)
                    .into_iter()
                    .filter(|o| !o.kind.is_flux_source())
                    .collect::<Vec<_>>();
                if !objects.is_empty() {
                    prepare.push(Arc::new(FluxSuspend {
                        id: StepId::new(FLUX_SUSPEND_LEFT),
                        name: format!("suspend Flux in {left}, the region left"),
                        region: left.to_owned(),
                        cluster: Arc::clone(cluster),
                        objects,
                    }));
                }
            }
            if let Some(w) = settings
                .workloads
                .as_ref()
                .filter(|w| w.scale_down_when_left)
            {
                after.push(Arc::new(ScaleDown {
                    id: StepId::new(WORKLOADS_SCALE_DOWN_LEFT),
                    name: format!("scale down the workloads in {left}, the region left"),
                    region: left.to_owned(),
                    cluster: Arc::clone(cluster),
                    items: w.items.clone(),
                }) as Arc<dyn Step>);
            }
        }
    }
    TakeoverSteps {
        prepare,
        after_record: after,
    }
}

/// The failover preflight's look at the region taking over: its API must answer (the takeover
/// cannot scale anything up otherwise); objects that are not ready yet are a warning, since the
/// takeover reconciles them.
pub struct GitOpsTargetReady {
    pub target: String,
    pub gitops: Arc<GitOps>,
}

#[async_trait]
impl Check for GitOpsTargetReady {
    fn id(&self) -> &str {
        CHECK_ID
    }

    fn name(&self) -> String {
        format!("the Kubernetes cluster in {} answers", self.target)
    }

    async fn run(&self) -> Verdict {
        let (Some(settings), Some(cluster)) = (
            self.gitops.settings(&self.target),
            self.gitops.cluster(&self.target),
        ) else {
            return Verdict::Skip(format!("no cluster is configured for {}", self.target));
        };
        let status = check_cluster(&**cluster, settings, live_timeout(&self.gitops)).await;
        if !status.reachable {
            return Verdict::Fail {
                message: format!(
                    "the Kubernetes API of {} cannot be read: {}",
                    self.target,
                    status.error.as_deref().unwrap_or("unknown error")
                ),
                retryable: true,
            };
        }
        let not_ready = status.not_ready();
        if not_ready.is_empty() {
            Verdict::Pass(json!({
                "summary": format!("{} objects ready in {}", status.objects.len(), self.target),
                "objects": status.objects.len(),
            }))
        } else {
            Verdict::Warn(format!(
                "not ready in {} (the takeover reconciles them): {}",
                self.target,
                not_ready.join("; ")
            ))
        }
    }
}

/// What `gitops-resync` is.
pub fn resync_info() -> PlanInfo {
    PlanInfo::new(
        RESYNC,
        "reconcile the GitOps objects (Flux, Argo CD) of params.region and wait until they are \
         ready; moves nothing",
        &[REGION],
    )
}

/// Register `gitops-resync`.
pub fn register(registry: &mut PlanRegistry, pair: RegionPair, gitops: Arc<GitOps>) {
    registry.register(resync_info(), move |mode, params| {
        build_resync(mode, params, &pair, &gitops)
    });
}

fn build_resync(
    _mode: Mode,
    params: &Value,
    pair: &RegionPair,
    gitops: &GitOps,
) -> Result<Plan, PlanError> {
    let obj = params::object(params, &[REGION])?;
    let region = match obj.and_then(|o| o.get(REGION)) {
        Some(Value::String(r)) if pair.contains(r) => r.clone(),
        Some(Value::String(r)) => {
            return Err(bad(
                REGION,
                format!("{r:?} is not one of the pair ({})", pair.either()),
            ))
        }
        Some(_) => return Err(bad(REGION, "must be a region name")),
        None => return Err(bad(REGION, format!("required ({})", pair.either()))),
    };
    let steps = reconcile_steps(gitops, &region);
    if steps.is_empty() {
        return Err(bad(
            REGION,
            format!("no Flux objects or Argo CD applications are configured for {region}"),
        ));
    }
    Plan::new(RESYNC, vec![Phase::steps("reconcile", steps)])
}
