//! The GitOps steps of a takeover (and of `gitops-resync`): reconcile Flux, sync Argo CD, scale
//! the workloads up in the region taking over; suspend Flux and scale down in the region left.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::argo::{self, ArgoState};
use super::flux::{self, FluxState};
use super::port::{ClusterApi, ObjectKind, ObjectRef};
use super::workloads as wl;
use crate::config::WorkloadConfig;
use crate::engine::{
    AbortSignal, Reversibility, Step, StepContext, StepDescription, StepError, StepId,
    VerifyOutcome,
};
use crate::port::ErrorKind;

/// The reconcile token of a run: the value of `reconcile.fluxcd.io/requestedAt` failoverd sets.
/// Derived from the run id, so a resumed run recognises its own request.
pub fn reconcile_token(ctx: &StepContext) -> String {
    format!("failoverd-{}", ctx.run_id)
}

/// Waits with a deadline, remembering why it waited (the timeout's message).
struct Waiter<'a> {
    what: String,
    abort: &'a AbortSignal,
    deadline: Instant,
    interval: Duration,
    timeout: Duration,
}

impl<'a> Waiter<'a> {
    fn new(
        what: impl Into<String>,
        interval: Duration,
        timeout: Duration,
        abort: &'a AbortSignal,
    ) -> Self {
        Self {
            what: what.into(),
            abort,
            deadline: Instant::now() + timeout,
            interval,
            timeout,
        }
    }

    /// Sleeps until the next look, or fails when the deadline has passed or the run is aborted. A transient API error
    /// is a reason to wait (the API may come back before the deadline), not to fail.
    async fn wait(&self, why: &str) -> Result<(), StepError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(StepError::permanent(format!(
                "{}: not ready after {}: {why}",
                self.what,
                humantime::format_duration(self.timeout)
            )));
        }
        // An abort stops the wait: the change is made, the unwind undoes it now.
        self.abort
            .sleep(self.interval.min(self.deadline - now))
            .await
            .map_err(|e| StepError::permanent(format!("{}: {e}", self.what)))
    }
}

/// A transient error is a reason to keep waiting; anything else fails the step.
fn transient(e: crate::port::Error) -> Result<String, StepError> {
    if e.is_retryable() {
        Ok(format!("{e} (retrying)"))
    } else {
        Err(StepError::permanent(e.to_string()))
    }
}

async fn get_required(
    cluster: &dyn ClusterApi,
    object: &ObjectRef,
    region: &str,
) -> Result<Value, StepError> {
    cluster
        .get(object)
        .await?
        .ok_or_else(|| StepError::permanent(format!("{object} does not exist in {region}")))
}

/// Reconciles a cluster's Flux objects: the sources concurrently, then the Kustomizations and
/// HelmReleases one after the other in the configured order, each awaited until ready.
pub struct FluxReconcile {
    pub id: StepId,
    pub name: String,
    pub region: String,
    pub cluster: Arc<dyn ClusterApi>,
    pub objects: Vec<ObjectRef>,
    pub resume_suspended: bool,
    pub poll: Duration,
    pub wait: Duration,
}

impl FluxReconcile {
    async fn reconcile(
        &self,
        o: &ObjectRef,
        token: &str,
        run: &str,
        abort: &AbortSignal,
    ) -> Result<Value, StepError> {
        let started = Instant::now();
        let obj = get_required(&*self.cluster, o, &self.region).await?;
        let patch = if flux::suspended(&obj) {
            if flux::annotation(&obj, flux::SUSPENDED_BY).is_none() && !self.resume_suspended {
                return Err(StepError::permanent(format!(
                    "{o} in {} is suspended (spec.suspend: true) and failoverd did not suspend \
                     it: resume it, or set resume_suspended in its gitops.clusters[].flux",
                    self.region
                )));
            }
            Some(flux::resume_patch(token, run))
        } else if flux::annotation(&obj, flux::REQUESTED_AT) != Some(token) {
            Some(flux::request_patch(token))
        } else {
            None // requested by an earlier attempt of this run
        };
        if let Some(p) = patch {
            self.cluster.merge_patch(o, &p).await?;
        }
        let waiter = Waiter::new(
            format!("{o} in {}", self.region),
            self.poll,
            self.wait,
            abort,
        );
        loop {
            let why = match self.cluster.get(o).await {
                Ok(Some(obj)) => match flux::state(&obj, Some(token)) {
                    FluxState::Ready { revision } => {
                        return Ok(json!({
                            "object": o.to_string(),
                            "revision": revision,
                            "seconds": started.elapsed().as_secs_f64(),
                        }))
                    }
                    FluxState::Failed(m) => {
                        return Err(StepError::permanent(format!(
                            "{o} in {} failed to reconcile: {m}",
                            self.region
                        )))
                    }
                    FluxState::Suspended => {
                        return Err(StepError::permanent(format!(
                            "{o} in {} was suspended while failoverd waited for it",
                            self.region
                        )))
                    }
                    FluxState::Pending(why) => why,
                },
                Ok(None) => {
                    return Err(StepError::permanent(format!(
                        "{o} disappeared from {} while failoverd waited for it",
                        self.region
                    )))
                }
                Err(e) => transient(e)?,
            };
            waiter.wait(&why).await?;
        }
    }
}

#[async_trait]
impl Step for FluxReconcile {
    fn acts_on(&self) -> Option<crate::engine::OutageApi> {
        Some(crate::engine::OutageApi::Kubernetes)
    }

    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        let token = reconcile_token(ctx);
        let (sources, appliers): (Vec<_>, Vec<_>) =
            self.objects.iter().partition(|o| o.kind.is_flux_source());
        let changes = sources
            .iter()
            .chain(appliers.iter())
            .map(|o| {
                format!(
                    "kubernetes {}: {o}: merge-patch metadata.annotations.\"{}\"={token} (and \
                     spec.suspend=false if failoverd suspended it), then wait for \
                     lastHandledReconcileAt={token}, the current generation and Ready=True",
                    self.region,
                    flux::REQUESTED_AT
                )
            })
            .collect();
        Ok(StepDescription {
            summary: self.name.clone(),
            changes,
        })
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let token = reconcile_token(ctx);
        let run = ctx.run_id.to_string();
        let (sources, appliers): (Vec<_>, Vec<_>) =
            self.objects.iter().partition(|o| o.kind.is_flux_source());
        let mut done = futures::future::try_join_all(
            sources
                .iter()
                .map(|o| self.reconcile(o, &token, &run, &ctx.abort)),
        )
        .await?;
        for o in appliers {
            done.push(self.reconcile(o, &token, &run, &ctx.abort).await?);
        }
        Ok(json!({"region": self.region, "token": token, "objects": done}))
    }

    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        let token = reconcile_token(ctx);
        let done = all_done(&*self.cluster, &self.objects, |o, obj| {
            match flux::state(obj, Some(&token)) {
                FluxState::Ready { revision } => {
                    Some(json!({"object": o.to_string(), "revision": revision}))
                }
                _ => None,
            }
        })
        .await?;
        Ok(done.map_or(VerifyOutcome::NotDone, |done| {
            VerifyOutcome::Done(json!({"region": self.region, "token": token, "objects": done}))
        }))
    }

    /// A reconcile converges the cluster on Git, where Flux keeps it anyway: nothing to undo.
    /// What this run resumed is suspended again.
    fn reversibility(&self) -> Reversibility {
        Reversibility::Compensable
    }

    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        let run = ctx.run_id.to_string();
        patch_marked(
            &*self.cluster,
            &self.objects,
            flux::RESUMED_BY,
            &run,
            &flux::resuspend_patch(),
        )
        .await
    }

    fn operator_check(&self) -> String {
        format!(
            "check the Flux objects in {} (flux get all -A): each Ready at its current generation",
            self.region
        )
    }

    fn timeout(&self) -> Duration {
        let appliers = self
            .objects
            .iter()
            .filter(|o| !o.kind.is_flux_source())
            .count();
        let waits = u32::try_from(appliers + 1).unwrap_or(u32::MAX);
        self.wait
            .saturating_mul(waits)
            .saturating_add(Duration::from_secs(60))
    }
}

/// Syncs a cluster's Argo CD applications concurrently and waits until each is synced and
/// healthy with health computed after the sync.
pub struct ArgoSync {
    pub id: StepId,
    pub name: String,
    pub region: String,
    pub cluster: Arc<dyn ClusterApi>,
    pub applications: Vec<ObjectRef>,
    pub refresh_after: Duration,
    pub poll: Duration,
    pub wait: Duration,
}

impl ArgoSync {
    async fn sync(
        &self,
        o: &ObjectRef,
        run: &str,
        abort: &AbortSignal,
    ) -> Result<Value, StepError> {
        let started = Instant::now();
        let waiter = Waiter::new(
            format!("{o} in {}", self.region),
            self.poll,
            self.wait,
            abort,
        );
        let mut stale_since: Option<Instant> = None;
        let mut refreshed = false;
        loop {
            let app = match self.cluster.get(o).await {
                Ok(Some(app)) => app,
                Ok(None) => {
                    return Err(StepError::permanent(format!(
                        "{o} does not exist in {}",
                        self.region
                    )))
                }
                Err(e) => {
                    waiter.wait(&transient(e)?).await?;
                    continue;
                }
            };
            let why = match argo::state(&app, run) {
                ArgoState::Ready { revision } => {
                    return Ok(json!({
                        "object": o.to_string(),
                        "revision": revision,
                        "refreshed": refreshed,
                        "seconds": started.elapsed().as_secs_f64(),
                    }))
                }
                ArgoState::Failed(m) => {
                    return Err(StepError::permanent(format!("{o} in {}: {m}", self.region)))
                }
                ArgoState::NotRequested { busy: Some(b) } => format!("waiting to sync: {b}"),
                ArgoState::NotRequested { busy: None } => {
                    match self
                        .cluster
                        .merge_patch(o, &argo::sync_patch(&app, run))
                        .await
                    {
                        Ok(_) => "sync requested".to_owned(),
                        Err(e) => transient(e)?,
                    }
                }
                ArgoState::Pending {
                    reason,
                    stale_health,
                } => {
                    if stale_health {
                        let since = *stale_since.get_or_insert_with(Instant::now);
                        if !refreshed && since.elapsed() >= self.refresh_after {
                            match self.cluster.merge_patch(o, &argo::refresh_patch()).await {
                                Ok(_) => refreshed = true,
                                Err(e) => {
                                    transient(e)?;
                                }
                            }
                        }
                    } else {
                        stale_since = None;
                    }
                    reason
                }
            };
            waiter.wait(&why).await?;
        }
    }
}

#[async_trait]
impl Step for ArgoSync {
    fn acts_on(&self) -> Option<crate::engine::OutageApi> {
        Some(crate::engine::OutageApi::Kubernetes)
    }

    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        let changes = self
            .applications
            .iter()
            .map(|o| {
                format!(
                    "kubernetes {}: {o}: merge-patch operation.sync (initiatedBy failoverd, info \
                     {}={}) and status.operationState=null, then wait for phase Succeeded, \
                     Synced, and Healthy once reconciledAt >= finishedAt",
                    self.region,
                    argo::RUN_INFO,
                    ctx.run_id
                )
            })
            .collect();
        Ok(StepDescription {
            summary: self.name.clone(),
            changes,
        })
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let run = ctx.run_id.to_string();
        let done = futures::future::try_join_all(
            self.applications
                .iter()
                .map(|o| self.sync(o, &run, &ctx.abort)),
        )
        .await?;
        Ok(json!({"region": self.region, "applications": done}))
    }

    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        let run = ctx.run_id.to_string();
        let done = all_done(
            &*self.cluster,
            &self.applications,
            |o, app| match argo::state(app, &run) {
                ArgoState::Ready { revision } => {
                    Some(json!({"object": o.to_string(), "revision": revision}))
                }
                _ => None,
            },
        )
        .await?;
        Ok(done.map_or(VerifyOutcome::NotDone, |done| {
            VerifyOutcome::Done(json!({"region": self.region, "applications": done}))
        }))
    }

    /// A sync converges the cluster on Git, where Argo CD keeps it anyway: nothing to undo.
    fn reversibility(&self) -> Reversibility {
        Reversibility::Compensable
    }

    async fn compensate(&self, _ctx: &StepContext) -> Result<(), StepError> {
        Ok(())
    }

    fn operator_check(&self) -> String {
        format!(
            "check the Argo CD applications in {} (argocd app list): Synced and Healthy",
            self.region
        )
    }

    fn timeout(&self) -> Duration {
        self.wait.saturating_add(Duration::from_secs(60))
    }
}

/// Where the step reads the replicas of the region being left.
#[derive(Clone)]
pub struct Source {
    pub region: String,
    pub cluster: Arc<dyn ClusterApi>,
    /// Each read gets at most this long (short in an ungraceful takeover: the region is lost).
    pub budget: Duration,
}

/// Scales the workloads of the region taking over to their share of the region left, with
/// their HPAs raised, and waits until they are ready.
pub struct ScaleUp {
    pub id: StepId,
    pub name: String,
    pub region: String,
    pub cluster: Arc<dyn ClusterApi>,
    pub source: Option<Source>,
    pub items: Vec<WorkloadConfig>,
    pub target_percent: u32,
    /// `Some` in an ungraceful takeover: the share of the target that must be ready.
    pub minimum_success_percent: Option<u32>,
    pub poll: Duration,
    pub wait: Duration,
}

/// One resolved workload and its configuration.
struct Resolved<'a> {
    object: ObjectRef,
    item: &'a WorkloadConfig,
}

/// How many times a write guarded by a resourceVersion is retried after a conflict.
const CONFLICT_RETRIES: u32 = 5;

async fn resolve<'a>(
    cluster: &dyn ClusterApi,
    items: &'a [WorkloadConfig],
) -> Result<Vec<Resolved<'a>>, crate::port::Error> {
    let mut out = Vec::new();
    for item in items {
        for (object, _) in super::resolve_item(cluster, item).await? {
            out.push(Resolved { object, item });
        }
    }
    Ok(out)
}

/// Reads `o` and writes the patch `patch_for` computes from what was read (`None`: nothing to
/// write); after a lost resourceVersion race it reads and computes again, up to
/// [`CONFLICT_RETRIES`] times. Returns what was read and, when a patch was written, the object
/// after it; `None` when the object does not exist.
async fn guarded_patch(
    cluster: &dyn ClusterApi,
    o: &ObjectRef,
    patch_for: impl Fn(&Value) -> Option<Value>,
) -> Result<Option<(Value, Option<Value>)>, StepError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(obj) = cluster.get(o).await? else {
            return Ok(None);
        };
        let Some(patch) = patch_for(&obj) else {
            return Ok(Some((obj, None)));
        };
        match cluster.merge_patch(o, &patch).await {
            Ok(after) => return Ok(Some((obj, Some(after)))),
            Err(e) if e.kind == ErrorKind::Conflict && attempt < CONFLICT_RETRIES => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes `patch` to each of `objects` that carries the annotation `marker` = `run` (an
/// unwind undoing what this run marked, and nothing else).
async fn patch_marked(
    cluster: &dyn ClusterApi,
    objects: &[ObjectRef],
    marker: &str,
    run: &str,
    patch: &Value,
) -> Result<(), StepError> {
    for o in objects {
        if let Some(obj) = cluster.get(o).await? {
            if flux::annotation(&obj, marker) == Some(run) {
                cluster.merge_patch(o, patch).await?;
            }
        }
    }
    Ok(())
}

/// The outputs of `done` for every object, or `None` at the first one missing or not done
/// (`verify` of the reconcile and sync steps).
async fn all_done(
    cluster: &dyn ClusterApi,
    objects: &[ObjectRef],
    done: impl Fn(&ObjectRef, &Value) -> Option<Value>,
) -> Result<Option<Vec<Value>>, StepError> {
    let mut out = Vec::new();
    for o in objects {
        let Some(obj) = cluster.get(o).await? else {
            return Ok(None);
        };
        match done(o, &obj) {
            Some(v) => out.push(v),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

async fn hpas_for(
    cluster: &dyn ClusterApi,
    o: &ObjectRef,
) -> Result<Vec<(ObjectRef, Value)>, crate::port::Error> {
    Ok(cluster
        .list(ObjectKind::HorizontalPodAutoscaler, &o.namespace, "")
        .await?
        .into_iter()
        .filter(|h| wl::hpa_targets(h, o.kind.as_str(), &o.name))
        .filter_map(|h| {
            let name = h.pointer("/metadata/name")?.as_str()?.to_owned();
            Some((
                ObjectRef::new(ObjectKind::HorizontalPodAutoscaler, &o.namespace, name),
                h,
            ))
        })
        .collect())
}

impl ScaleUp {
    /// The replicas the region left runs, or why they are unknown.
    async fn source_replicas(&self, o: &ObjectRef) -> Result<i32, String> {
        let Some(source) = &self.source else {
            return Err("no cluster is configured for the region being left".into());
        };
        match tokio::time::timeout(source.budget, source.cluster.get(o)).await {
            Ok(Ok(Some(obj))) => Ok(wl::spec_replicas(&obj)),
            Ok(Ok(None)) => Err(format!("{o} does not exist in {}", source.region)),
            Ok(Err(e)) => Err(format!("{} did not answer: {e}", source.region)),
            Err(_) => Err(format!(
                "{} did not answer within {}",
                source.region,
                humantime::format_duration(source.budget)
            )),
        }
    }

    /// Records, raises the HPA and scales one workload; returns what it decided.
    async fn scale_one(&self, r: &Resolved<'_>, run: &str) -> Result<Value, StepError> {
        let o = &r.object;
        let floor = i32::try_from(r.item.floor_replicas).unwrap_or(i32::MAX);
        let ours = |obj: &Value| wl::recorded(obj).is_some_and(|(by, _, _)| by == run);
        let obj = get_required(&*self.cluster, o, &self.region).await?;
        let (obj, basis) = if ours(&obj) {
            (obj, json!("recorded by an earlier attempt"))
        } else {
            // Read once: a lost race on the record is retried without asking the region left again.
            let (source, basis) = match self.source_replicas(o).await {
                Ok(n) => (Some(n), json!({"source_replicas": n})),
                Err(why) => (None, json!({"floor_replicas": floor, "because": why})),
            };
            let (read, after) = guarded_patch(&*self.cluster, o, |obj| {
                let current = wl::spec_replicas(obj);
                let target = wl::takeover_target(source, self.target_percent, floor, current);
                (!ours(obj)).then(|| wl::record_patch(obj, run, current, target))
            })
            .await?
            .ok_or_else(|| {
                StepError::permanent(format!("{o} does not exist in {}", self.region))
            })?;
            (after.unwrap_or(read), basis)
        };
        let (_, before, target) = wl::recorded(&obj).ok_or_else(|| {
            StepError::permanent(format!(
                "{o}: the record failoverd wrote cannot be read back"
            ))
        })?;
        let mut hpas = Vec::new();
        for (href, _) in hpas_for(&*self.cluster, o).await? {
            if let Some((read, Some(_))) = guarded_patch(&*self.cluster, &href, |hpa| {
                wl::hpa_raise_patch(hpa, run, target)
            })
            .await?
            {
                hpas.push(json!({"hpa": href.name, "before": wl::hpa_bounds(&read)}));
            }
        }
        if wl::spec_replicas(&obj) < target {
            self.cluster.scale(o, target).await?;
        }
        Ok(json!({
            "object": o.to_string(),
            "replicas_before": before,
            "target": target,
            "basis": basis,
            "hpas_raised": hpas,
        }))
    }

    async fn await_ready(
        &self,
        decided: &[(ObjectRef, i32)],
        abort: &AbortSignal,
    ) -> Result<Vec<Value>, StepError> {
        let waiter = Waiter::new(
            format!("the workloads in {}", self.region),
            self.poll,
            self.wait,
            abort,
        );
        loop {
            let mut pending = Vec::new();
            let mut seen = Vec::new();
            for (o, target) in decided {
                let required = wl::required_ready(*target, self.minimum_success_percent);
                match self.cluster.get(o).await {
                    Ok(Some(obj)) => {
                        let r = wl::rollout(&obj);
                        if r.reached(*target, required) {
                            seen.push(json!({"object": o.to_string(), "ready": r.ready, "target": target}));
                        } else {
                            pending.push(format!("{o}: {} (needs {required})", r.describe()));
                        }
                    }
                    Ok(None) => {
                        return Err(StepError::permanent(format!(
                            "{o} disappeared from {}",
                            self.region
                        )))
                    }
                    Err(e) => pending.push(transient(e)?),
                }
            }
            if pending.is_empty() {
                return Ok(seen);
            }
            waiter.wait(&pending.join("; ")).await?;
        }
    }
}

#[async_trait]
impl Step for ScaleUp {
    fn acts_on(&self) -> Option<crate::engine::OutageApi> {
        Some(crate::engine::OutageApi::Kubernetes)
    }

    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        let resolved = resolve(&*self.cluster, &self.items).await?;
        let mut changes = Vec::new();
        for r in &resolved {
            let current = match self.cluster.get(&r.object).await? {
                Some(obj) => wl::spec_replicas(&obj),
                None => {
                    changes.push(format!(
                        "kubernetes {}: {} does not exist (the run would fail)",
                        self.region, r.object
                    ));
                    continue;
                }
            };
            let floor = i32::try_from(r.item.floor_replicas).unwrap_or(i32::MAX);
            let source = self.source_replicas(&r.object).await.ok();
            let target = wl::takeover_target(source, self.target_percent, floor, current);
            changes.push(format!(
                "kubernetes {}: {}: record annotations {}/{}/{}, raise its HPA's minReplicas to \
                 {target}, PATCH /scale spec.replicas {current} -> {target} ({}), then wait \
                 for {} ready",
                self.region,
                r.object,
                wl::SCALED_BY,
                wl::REPLICAS_BEFORE,
                wl::REPLICAS_TARGET,
                match source {
                    Some(n) => format!("{}% of {n} in the region left", self.target_percent),
                    None => format!("floor {floor}: the region left cannot be read"),
                },
                wl::required_ready(target, self.minimum_success_percent)
            ));
        }
        Ok(StepDescription {
            summary: self.name.clone(),
            changes,
        })
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let started = Instant::now();
        let run = ctx.run_id.to_string();
        let resolved = resolve(&*self.cluster, &self.items).await?;
        let mut decided = Vec::new();
        let mut workloads = Vec::new();
        for r in &resolved {
            let d = self.scale_one(r, &run).await?;
            let target = d["target"].as_i64().and_then(|t| i32::try_from(t).ok());
            decided.push((r.object.clone(), target.unwrap_or(1)));
            workloads.push(d);
        }
        let ready = self.await_ready(&decided, &ctx.abort).await?;
        Ok(json!({
            "region": self.region,
            "workloads": workloads,
            "ready": ready,
            "minimum_success_percent": self.minimum_success_percent,
            "measurements": {"workloads_ready_seconds": started.elapsed().as_secs_f64()},
        }))
    }

    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        let run = ctx.run_id.to_string();
        let resolved = resolve(&*self.cluster, &self.items).await?;
        let mut ready = Vec::new();
        for r in &resolved {
            let Some(obj) = self.cluster.get(&r.object).await? else {
                return Ok(VerifyOutcome::NotDone);
            };
            match wl::recorded(&obj) {
                Some((by, _, target)) if by == run => {
                    let required = wl::required_ready(target, self.minimum_success_percent);
                    if !wl::rollout(&obj).reached(target, required) {
                        return Ok(VerifyOutcome::NotDone);
                    }
                    ready.push(json!({"object": r.object.to_string(), "target": target}));
                }
                _ => return Ok(VerifyOutcome::NotDone),
            }
        }
        Ok(VerifyOutcome::Done(
            json!({"region": self.region, "ready": ready}),
        ))
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::Compensable
    }

    /// Restores the replicas and HPA bounds this run recorded; touches nothing it did not
    /// record (so it is a no-op when the step never got to change anything).
    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        let run = ctx.run_id.to_string();
        let resolved = resolve(&*self.cluster, &self.items).await?;
        for r in &resolved {
            let Some(obj) = self.cluster.get(&r.object).await? else {
                continue;
            };
            for (href, hpa) in hpas_for(&*self.cluster, &r.object).await? {
                if let Some(p) = wl::hpa_restore_patch(&hpa, &run) {
                    self.cluster.merge_patch(&href, &p).await?;
                }
            }
            if let Some((by, before, _)) = wl::recorded(&obj) {
                if by == run {
                    self.cluster.scale(&r.object, before).await?;
                    self.cluster
                        .merge_patch(&r.object, &wl::forget_patch())
                        .await?;
                }
            }
        }
        Ok(())
    }

    fn operator_check(&self) -> String {
        format!(
            "check the workloads in {} (kubectl get deploy,sts,hpa -A): the replicas and HPA \
             bounds recorded in the {} annotations",
            self.region,
            wl::REPLICAS_BEFORE
        )
    }

    fn timeout(&self) -> Duration {
        self.wait.saturating_add(Duration::from_secs(120))
    }
}

/// Suspends the Kustomizations and HelmReleases of the region a graceful takeover leaves, so
/// that Flux does not undo the scale-down there; compensation resumes them.
pub struct FluxSuspend {
    pub id: StepId,
    pub name: String,
    pub region: String,
    pub cluster: Arc<dyn ClusterApi>,
    pub objects: Vec<ObjectRef>,
}

#[async_trait]
impl Step for FluxSuspend {
    fn acts_on(&self) -> Option<crate::engine::OutageApi> {
        Some(crate::engine::OutageApi::Kubernetes)
    }

    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        Ok(StepDescription {
            summary: self.name.clone(),
            changes: self
                .objects
                .iter()
                .map(|o| {
                    format!(
                        "kubernetes {}: {o}: merge-patch spec.suspend=true, annotation {}={}",
                        self.region,
                        flux::SUSPENDED_BY,
                        ctx.run_id
                    )
                })
                .collect(),
        })
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let run = ctx.run_id.to_string();
        let mut suspended = Vec::new();
        let mut left = Vec::new();
        for o in &self.objects {
            let Some(obj) = self.cluster.get(o).await? else {
                left.push(json!({"object": o.to_string(), "why": "does not exist"}));
                continue;
            };
            if flux::suspended(&obj) && flux::annotation(&obj, flux::SUSPENDED_BY) != Some(&run) {
                left.push(json!({"object": o.to_string(), "why": "already suspended"}));
                continue;
            }
            self.cluster
                .merge_patch(o, &flux::suspend_patch(&run))
                .await?;
            suspended.push(o.to_string());
        }
        Ok(json!({"region": self.region, "suspended": suspended, "left_alone": left}))
    }

    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        let run = ctx.run_id.to_string();
        let mut suspended = Vec::new();
        for o in &self.objects {
            if let Some(obj) = self.cluster.get(o).await? {
                if !flux::suspended(&obj) {
                    return Ok(VerifyOutcome::NotDone);
                }
                if flux::annotation(&obj, flux::SUSPENDED_BY) == Some(&run) {
                    suspended.push(o.to_string());
                }
            }
        }
        Ok(VerifyOutcome::Done(
            json!({"region": self.region, "suspended": suspended}),
        ))
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::Compensable
    }

    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        let run = ctx.run_id.to_string();
        patch_marked(
            &*self.cluster,
            &self.objects,
            flux::SUSPENDED_BY,
            &run,
            &flux::unsuspend_patch(),
        )
        .await
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
}

/// After a graceful takeover: scales the region left back to its standby size (what an earlier
/// takeover recorded, else `standby_replicas`) and lowers its HPAs. Best effort: the takeover
/// is complete, so a failure here is reported in the output, not a failed run.
pub struct ScaleDown {
    pub id: StepId,
    pub name: String,
    pub region: String,
    pub cluster: Arc<dyn ClusterApi>,
    pub items: Vec<WorkloadConfig>,
}

impl ScaleDown {
    async fn scale_down(&self) -> Result<Vec<Value>, crate::port::Error> {
        let mut done = Vec::new();
        for r in resolve(&*self.cluster, &self.items).await? {
            let Some(obj) = self.cluster.get(&r.object).await? else {
                continue;
            };
            let standby = i32::try_from(r.item.standby_replicas).unwrap_or(i32::MAX);
            let recorded = wl::recorded(&obj);
            let to = recorded.as_ref().map_or(standby, |(_, before, _)| *before);
            for (href, hpa) in hpas_for(&*self.cluster, &r.object).await? {
                let patch = match recorded.as_ref() {
                    Some((by, _, _)) => wl::hpa_restore_patch(&hpa, by),
                    None => None,
                }
                .or_else(|| wl::hpa_lower_patch(&hpa, to.max(1)));
                if let Some(p) = patch {
                    self.cluster.merge_patch(&href, &p).await?;
                }
            }
            let from = wl::spec_replicas(&obj);
            if from > to {
                self.cluster.scale(&r.object, to).await?;
            }
            if recorded.is_some() {
                self.cluster
                    .merge_patch(&r.object, &wl::forget_patch())
                    .await?;
            }
            done.push(json!({"object": r.object.to_string(), "from": from, "to": to.min(from)}));
        }
        Ok(done)
    }
}

#[async_trait]
impl Step for ScaleDown {
    fn acts_on(&self) -> Option<crate::engine::OutageApi> {
        Some(crate::engine::OutageApi::Kubernetes)
    }

    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        Ok(StepDescription {
            summary: self.name.clone(),
            changes: self
                .items
                .iter()
                .map(|i| {
                    format!(
                        "kubernetes {}: {:?} {}/{}: PATCH /scale spec.replicas to the replicas \
                         recorded before failoverd scaled it up, else {}; lower its HPA to match",
                        self.region,
                        i.kind,
                        i.namespace,
                        i.name.as_deref().or(i.selector.as_deref()).unwrap_or(""),
                        i.standby_replicas
                    )
                })
                .collect(),
        })
    }

    async fn execute(&self, _ctx: &StepContext) -> Result<Value, StepError> {
        Ok(match self.scale_down().await {
            Ok(done) => json!({"region": self.region, "scaled_down": done}),
            Err(e) => json!({
                "region": self.region,
                "warning": format!("the region left was not scaled down: {e}"),
            }),
        })
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        Ok(VerifyOutcome::NotDone)
    }

    fn operator_check(&self) -> String {
        format!(
            "scale the workloads in {} back to their standby size if wanted",
            self.region
        )
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
}
