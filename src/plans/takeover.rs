//! The region takeover both `failover` and `failback` are made of (DESIGN §3b): preflight →
//! (final Cognito sync ∥ workloads) → Aurora promotion → DNS shift → record the active region.
//!
//! **Graceful** (both regions up, RPO 0): the preflight checks everything in parallel (target
//! healthy, no drift, Aurora lag fresh and within budget, Cognito sync recent, backup copies
//! fresh, DNS records present); a final Cognito sync into the target; `SwitchoverGlobalCluster`
//! and the wait for the writer; the staged DNS shift with verification; then the target is
//! recorded as the active region, which turns the Cognito sync around (the new active pool is
//! the source).
//!
//! **Ungraceful** (the region being left is lost): the preflight checks only the target and the
//! data-loss bound; the final Cognito sync reads the lost region, so it runs on a short budget
//! and is skipped when it cannot finish; `FailoverGlobalCluster` with `AllowDataLoss`
//! (detach-and-promote as the fallback); DNS straight to 100 %.
//!
//! **Abort and failure.** Everything before the promotion has no side effect worth undoing (the
//! checks, the sync copying into the standby pool), so an abort there ends the run `aborted`.
//! The promotion is irreversible, and the engine never unwinds past it: an abort or a failure
//! after it ends `needs_operator`, its message naming the state each later step left (the
//! DNS stage reached, the record).
//!
//! With `gitops` configured, [`prepare`](TakeoverPhases::prepare) also reconciles the target's
//! Flux objects and Argo CD applications and scales its workloads up (concurrently with the
//! final sync; see [`super::gitops`]), the preflight checks that the target's cluster answers,
//! and a graceful takeover may suspend Flux in the region left and scale it down after the
//! record ([`WIND_DOWN_PHASE`]). The scale-up is compensable (abort restores the replicas and
//! HPA bounds it recorded); like everything before the promotion, it is undone by an abort.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::watch;

use super::aurora::{self as aurora_plan, AuroraPlanDeps, Checks};
use super::preflight::{
    BackupCopies, CheckStep, CognitoFresh, DataLossBound, DriftReadings, ReadOnlyStep,
    TargetHealthy, TopologyConsistent,
};
use crate::cognito::monitor::CognitoHandle;
use crate::dns::steps::DnsSwitchoverDeps;
use crate::engine::{
    Mode, Phase, PlanError, RetryPolicy, Reversibility, Step, StepContext, StepDescription,
    StepError, StepId, VerifyOutcome,
};
use crate::health::monitor::HealthVerdicts;
use crate::replication::state::VaultSnapshot;
use crate::topology::{ActiveRegionRecord, RegionPair};

/// Name of the preflight phase (the readiness evaluation runs its steps).
pub const PREFLIGHT_PHASE: &str = "preflight";
/// Name of the phase between the preflight and the promotion.
pub const PREPARE_PHASE: &str = "prepare";
/// Name of the last phase.
pub const RECORD_PHASE: &str = "record-active-region";

/// How long an ungraceful takeover gives a call that needs the region being left (the final
/// Cognito sync reads its pool) before it skips it.
pub const DEFAULT_LOST_REGION_BUDGET: Duration = Duration::from_secs(30);

/// Everything the takeover needs. Built once by the daemon.
#[derive(Clone)]
pub struct TakeoverDeps {
    pub pair: RegionPair,
    /// The DNS steps' dependencies (Route 53 behind the registry's one token bucket).
    pub dns: DnsSwitchoverDeps,
    /// `None` when no Aurora global database is configured.
    pub aurora: Option<AuroraPlanDeps>,
    /// `None` without Cognito, or in native replica mode (no users to copy).
    pub cognito: Option<CognitoHandle>,
    pub cognito_interval: Duration,
    pub health: watch::Receiver<HealthVerdicts>,
    /// The replication monitor's backup vaults.
    pub vaults: Arc<dyn Fn() -> Vec<VaultSnapshot> + Send + Sync>,
    /// `failover.backup_copy_age: gate` (else a warning).
    pub backup_gate: bool,
    /// `policy.max_data_loss`: the ungraceful preflight's bound.
    pub max_data_loss: Duration,
    /// Where the takeover records the new active region.
    pub active: Arc<ActiveRegionRecord>,
    /// The topology observer (drift); `None` when it is not running.
    pub drift: Option<Arc<dyn DriftReadings>>,
    pub lost_region_budget: Duration,
    /// The clusters of the pair (`None` without `gitops`).
    pub gitops: Option<Arc<crate::gitops::GitOps>>,
}

/// Which takeover to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Failover { force: bool, accept_data_loss: bool },
    Failback,
}

/// The phases of a takeover, by role, before they are laid out.
pub struct TakeoverPhases {
    pub preflight: Vec<Arc<dyn Step>>,
    pub prepare: Vec<Arc<dyn Step>>,
    pub promote: Vec<Phase>,
    pub dns: Vec<Phase>,
    pub record: Arc<dyn Step>,
    /// Graceful clean-up in the region left, once the target is recorded (GitOps scale-down).
    pub after: Vec<Arc<dyn Step>>,
}

/// Name of the phase after the record (the region left is scaled down).
pub const WIND_DOWN_PHASE: &str = "wind-down-left";

impl TakeoverPhases {
    /// In order: preflight, prepare (when it has steps), promotion, DNS, record.
    pub fn into_phases(self) -> Vec<Phase> {
        let mut phases = vec![Phase::steps(PREFLIGHT_PHASE, self.preflight)];
        if !self.prepare.is_empty() {
            phases.push(Phase::steps(PREPARE_PHASE, self.prepare));
        }
        phases.extend(self.promote);
        phases.extend(self.dns);
        phases.push(Phase::steps(RECORD_PHASE, vec![self.record]));
        if !self.after.is_empty() {
            phases.push(Phase::steps(WIND_DOWN_PHASE, self.after));
        }
        phases
    }
}

/// The takeover towards `target` (one of the pair, validated).
pub fn phases(
    kind: Kind,
    mode: Mode,
    target: &str,
    deps: &TakeoverDeps,
) -> Result<TakeoverPhases, PlanError> {
    let graceful = mode == Mode::Graceful;
    let mut preflight: Vec<Arc<dyn Step>> = vec![CheckStep::step(Arc::new(TargetHealthy {
        target: target.to_owned(),
        verdicts: deps.health.clone(),
    }))];
    if graceful {
        if let Some(drift) = &deps.drift {
            let force = matches!(kind, Kind::Failover { force: true, .. });
            preflight.push(CheckStep::step(Arc::new(TopologyConsistent {
                target: target.to_owned(),
                force,
                readings: Arc::clone(drift),
            })));
        }
        if kind != Kind::Failback {
            if let Some(cognito) = &deps.cognito {
                preflight.push(CheckStep::step(Arc::new(CognitoFresh {
                    handle: cognito.clone(),
                    interval: deps.cognito_interval,
                })));
            }
        }
        preflight.push(CheckStep::step(Arc::new(BackupCopies {
            target: target.to_owned(),
            vaults: Arc::clone(&deps.vaults),
            gate: deps.backup_gate,
        })));
    } else if let Some(aurora) = &deps.aurora {
        preflight.push(CheckStep::step(Arc::new(DataLossBound {
            databases: aurora
                .databases
                .iter()
                .map(|d| d.global_cluster.clone())
                .collect(),
            lag: Arc::clone(&aurora.lag),
            max_data_loss: deps.max_data_loss,
            accepted: matches!(
                kind,
                Kind::Failover {
                    accept_data_loss: true,
                    ..
                }
            ),
        })));
    }

    if let Some(gitops) = &deps.gitops {
        preflight.push(CheckStep::step(Arc::new(
            super::gitops::GitOpsTargetReady {
                target: target.to_owned(),
                gitops: Arc::clone(gitops),
            },
        )));
    }

    let mut promote = Vec::new();
    if let Some(aurora) = &deps.aurora {
        let checks = match kind {
            Kind::Failback => Checks::Failback,
            Kind::Failover { .. } => Checks::Failover,
        };
        let steps = aurora_plan::steps_with(mode, target, aurora, checks)?;
        preflight.extend(
            steps
                .checks
                .into_iter()
                .map(|s| Arc::new(ReadOnlyStep(s)) as Arc<dyn Step>),
        );
        promote.push(Phase::steps("aurora-promote", steps.promotes));
        promote.push(Phase::steps("aurora-wait", steps.waits));
    }

    let mut dns = super::dns::phases(mode, target, &deps.dns)?;
    // The DNS preflight joins the others; its id stays, so the stages find its output.
    let dns_preflight = dns.remove(0);
    preflight.extend(
        dns_preflight
            .steps
            .into_iter()
            .map(|s| Arc::new(ReadOnlyStep(s)) as Arc<dyn Step>),
    );

    let mut prepare = Vec::new();
    if let Some(cognito) = &deps.cognito {
        let (id, why) = match kind {
            Kind::Failover { .. } => ("cognito-final-sync", "final sync"),
            Kind::Failback => ("cognito-reverse-sync", "reverse sync"),
        };
        let sync = super::cognito::sync_towards_step(cognito.clone(), id, target);
        prepare.push(if graceful {
            sync
        } else {
            Arc::new(BestEffort {
                inner: sync,
                budget: deps.lost_region_budget,
                why: format!("the {why} reads the pool of the region being left"),
            }) as Arc<dyn Step>
        });
    }

    let mut after = Vec::new();
    if let Some(gitops) = &deps.gitops {
        let left = deps.pair.other(target).unwrap_or_default().to_owned();
        let steps =
            super::gitops::takeover_steps(gitops, mode, target, &left, deps.lost_region_budget);
        prepare.extend(steps.prepare);
        after = steps.after_record;
    }

    Ok(TakeoverPhases {
        preflight,
        prepare,
        promote,
        dns,
        after,
        record: Arc::new(RecordActiveRegion {
            id: StepId::new(RECORD_PHASE),
            name: format!("record {target} as the active region"),
            target: target.to_owned(),
            record: Arc::clone(&deps.active),
        }),
    })
}

/// Records the target as the active region: the policy then watches it, and the Cognito sync
/// copies from its pool. Idempotent; `verify` reads the record.
pub struct RecordActiveRegion {
    id: StepId,
    name: String,
    target: String,
    record: Arc<ActiveRegionRecord>,
}

#[async_trait]
impl Step for RecordActiveRegion {
    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        let other = self.record.pair().other(&self.target).unwrap_or_default();
        Ok(StepDescription {
            summary: self.name.clone(),
            changes: vec![
                format!(
                    "state: active region {} -> {}",
                    self.record.active(),
                    self.target
                ),
                format!(
                    "cognito: the sync copies {} -> {other} from then on",
                    self.target
                ),
            ],
        })
    }

    async fn execute(&self, _ctx: &StepContext) -> Result<Value, StepError> {
        let previous = self.record.active();
        self.record
            .record(&self.target, Some(OffsetDateTime::now_utc()))
            .map_err(|e| StepError::retryable(e.to_string()))?;
        Ok(self.output(Some(&previous)))
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        Ok(if self.record.active() == self.target {
            VerifyOutcome::Done(self.output(None))
        } else {
            VerifyOutcome::NotDone
        })
    }

    fn operator_check(&self) -> String {
        format!(
            "check that the state directory's active-region file names {}",
            self.target
        )
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            deadline: None,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30)
    }
}

impl RecordActiveRegion {
    fn output(&self, previous: Option<&str>) -> Value {
        json!({
            "active_region": self.target,
            "previous_active_region": previous,
            "cognito_source_region": self.target,
        })
    }
}

/// A step that needs the region being left, in an ungraceful takeover: one attempt within
/// `budget`, and on failure or timeout the step succeeds as *skipped* with the reason, so the
/// lost region never holds up the takeover. Its effect must not be needed by later steps.
pub struct BestEffort {
    pub inner: Arc<dyn Step>,
    pub budget: Duration,
    pub why: String,
}

#[async_trait]
impl Step for BestEffort {
    fn id(&self) -> &StepId {
        self.inner.id()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        let mut d = self.inner.describe(ctx).await?;
        d.summary = format!(
            "{} (best effort: skipped if it cannot finish within {:?}, because {})",
            d.summary, self.budget, self.why
        );
        Ok(d)
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let reason = match tokio::time::timeout(self.budget, self.inner.execute(ctx)).await {
            Ok(Ok(out)) => return Ok(out),
            Ok(Err(e)) => format!("{} failed: {e}", self.why),
            Err(_) => format!(
                "{}, and it did not finish within {:?}",
                self.why, self.budget
            ),
        };
        tracing::warn!(step = %self.inner.id(), %reason, "best-effort step skipped");
        Ok(json!({ "skipped": true, "skipped_reason": reason }))
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        Ok(VerifyOutcome::NotDone)
    }

    fn reversibility(&self) -> Reversibility {
        self.inner.reversibility()
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::no_retry()
    }

    fn timeout(&self) -> Duration {
        self.budget.saturating_add(Duration::from_secs(5))
    }
}
