//! The failover's preflight: read-only checks that a takeover towards a region would work now.
//!
//! Each check is a [`Check`] — one question about the world with a [`Verdict`] — wrapped into an
//! engine step by [`CheckStep`], so the same code answers three callers: the `preflight` phase of
//! a run (a failing check refuses the run before anything changes), a dry run (`describe` asks
//! the question too, so `failoverd run failover --dry-run` shows every answer), and the continuous
//! readiness evaluation (`super::readiness`), which calls [`Check::run`] directly.
//!
//! Existing read-only steps that belong to the preflight (the Aurora checks, the DNS preflight)
//! are wrapped by [`ReadOnlyStep`] so that a dry run executes them too; they keep their ids, so
//! later steps still find their outputs.
//!
//! A step output with `"skipped": true` and `"skipped_reason"` is a check that did not apply
//! (the drill report lists it); `"warning"` is a check that found something worth knowing that
//! does not refuse the takeover.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::cognito::monitor::CognitoHandle;
use crate::config::CognitoMode;
use crate::engine::{
    RetryPolicy, Reversibility, Step, StepContext, StepDescription, StepError, StepId,
    VerifyOutcome,
};
use crate::health::monitor::HealthVerdicts;
use crate::health::Health;
use crate::replication::state::VaultSnapshot;
use crate::replication::LagReadings;

/// The answer of one check.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The check passed; the value says what was seen.
    Pass(Value),
    /// Passed, with something an operator should know.
    Warn(String),
    /// The check does not apply here (nothing configured to check).
    Skip(String),
    /// The takeover must not go ahead. `retryable` when it may clear by itself soon (a probe
    /// still settling).
    Fail { message: String, retryable: bool },
}

impl Verdict {
    fn fail(message: impl Into<String>) -> Self {
        Self::Fail {
            message: message.into(),
            retryable: false,
        }
    }

    /// `pass`, `warning`, `skipped` or `fail`.
    pub fn word(&self) -> &'static str {
        match self {
            Self::Pass(_) => "pass",
            Self::Warn(_) => "warning",
            Self::Skip(_) => "skipped",
            Self::Fail { .. } => "fail",
        }
    }

    /// Whether the takeover may go ahead.
    pub fn ok(&self) -> bool {
        !matches!(self, Self::Fail { .. })
    }

    /// The sentence an operator reads.
    pub fn message(&self) -> String {
        match self {
            Self::Pass(v) => v
                .get("summary")
                .and_then(Value::as_str)
                .unwrap_or("ok")
                .to_owned(),
            Self::Warn(m) | Self::Skip(m) => m.clone(),
            Self::Fail { message, .. } => message.clone(),
        }
    }
}

/// One read-only question about the world.
#[async_trait]
pub trait Check: Send + Sync + 'static {
    /// The step id (stable: it is stored in journals).
    fn id(&self) -> &str;
    fn name(&self) -> String;
    async fn run(&self) -> Verdict;
}

/// A [`Check`] as an engine step.
pub struct CheckStep {
    id: StepId,
    name: String,
    check: Arc<dyn Check>,
}

impl CheckStep {
    /// `check` as a step of a plan.
    pub fn step(check: Arc<dyn Check>) -> Arc<dyn Step> {
        Arc::new(Self {
            id: StepId::new(check.id()),
            name: check.name(),
            check,
        })
    }
}

fn verdict_output(verdict: Verdict) -> Result<Value, StepError> {
    match verdict {
        Verdict::Pass(mut v) => {
            if let Value::Object(o) = &mut v {
                o.insert("check".into(), json!("pass"));
                Ok(v)
            } else {
                Ok(json!({"check": "pass", "detail": v}))
            }
        }
        Verdict::Warn(w) => Ok(json!({"check": "warning", "warning": w})),
        Verdict::Skip(reason) => Ok(json!({"skipped": true, "skipped_reason": reason})),
        Verdict::Fail { message, retryable } => Err(if retryable {
            StepError::retryable(message)
        } else {
            StepError::permanent(message)
        }),
    }
}

#[async_trait]
impl Step for CheckStep {
    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// Asks the question: a dry run shows the answer, and fails where the run would.
    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        let verdict = self.check.run().await;
        let summary = format!("{}: {}", verdict.word(), verdict.message());
        verdict_output(verdict)?;
        Ok(StepDescription {
            summary,
            changes: Vec::new(),
        })
    }

    async fn execute(&self, _ctx: &StepContext) -> Result<Value, StepError> {
        verdict_output(self.check.run().await)
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        Ok(VerifyOutcome::NotDone)
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::NoSideEffect
    }

    /// A probe still settling gets half a minute; a refusal is final at once.
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(15),
            deadline: None,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
}

/// A read-only step placed in the preflight: `describe` executes it, so a dry run shows (and
/// fails on) its answer. Everything else is the inner step's.
pub struct ReadOnlyStep(pub Arc<dyn Step>);

#[async_trait]
impl Step for ReadOnlyStep {
    fn id(&self) -> &StepId {
        self.0.id()
    }

    fn name(&self) -> &str {
        self.0.name()
    }

    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        let inner = self.0.describe(ctx).await?;
        let out = self.0.execute(ctx).await?;
        let mut summary = format!("pass: {}", inner.summary);
        if let Some(w) = out.get("warning").and_then(Value::as_str) {
            summary = format!("warning: {w}");
        }
        Ok(StepDescription {
            summary,
            changes: inner.changes,
        })
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        self.0.execute(ctx).await
    }

    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        self.0.verify(ctx).await
    }

    fn reversibility(&self) -> Reversibility {
        self.0.reversibility()
    }

    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        self.0.compensate(ctx).await
    }

    fn operator_check(&self) -> String {
        self.0.operator_check()
    }

    fn retry_policy(&self) -> RetryPolicy {
        self.0.retry_policy()
    }

    fn timeout(&self) -> Duration {
        self.0.timeout()
    }
}

/// The target region's health verdict: a takeover towards a region the probes see unhealthy
/// would move the outage, not end it.
pub struct TargetHealthy {
    pub target: String,
    pub verdicts: watch::Receiver<HealthVerdicts>,
}

pub const TARGET_HEALTH_STEP: &str = "preflight-target-health";

/// The pure rule of [`TargetHealthy`].
pub fn target_health_verdict(target: &str, verdicts: &HealthVerdicts) -> Verdict {
    let Some(v) = verdicts.region(target) else {
        return Verdict::Skip(format!(
            "no health probe watches {target}: its health is not checked"
        ));
    };
    match v.health {
        Health::Healthy => Verdict::Pass(json!({
            "summary": format!("{target} is healthy ({} of {} probes up)", v.probes_up, v.probes_total),
            "health": v.health.as_str(),
        })),
        Health::Degraded => Verdict::Warn(format!("{target} is degraded: {}", v.explanation)),
        Health::Unhealthy => Verdict::fail(format!(
            "the target region {target} is unhealthy: {}",
            v.explanation
        )),
        Health::Unknown => Verdict::Fail {
            message: format!(
                "the health of the target region {target} is not known yet: {}",
                v.explanation
            ),
            retryable: true,
        },
    }
}

#[async_trait]
impl Check for TargetHealthy {
    fn id(&self) -> &str {
        TARGET_HEALTH_STEP
    }

    fn name(&self) -> String {
        format!("check the target region {} is healthy", self.target)
    }

    async fn run(&self) -> Verdict {
        target_health_verdict(&self.target, &self.verdicts.borrow())
    }
}

/// Ungraceful: the estimated data loss of promoting now must be known and within
/// `policy.max_data_loss` for every global database — otherwise the takeover needs a person.
pub struct DataLossBound {
    pub databases: Vec<String>,
    pub lag: Arc<dyn LagReadings>,
    pub max_data_loss: Duration,
    /// `params.accept_data_loss`: a person accepted the loss; a refusal becomes a warning.
    pub accepted: bool,
}

pub const DATA_LOSS_STEP: &str = "preflight-data-loss-bound";

/// The pure rule of [`DataLossBound`] over each database's newest reading.
pub fn data_loss_verdict(
    readings: &[(String, Option<crate::replication::LagReading>)],
    max: Duration,
) -> Verdict {
    if readings.is_empty() {
        return Verdict::Skip("no Aurora global database is configured".into());
    }
    let mut estimates = serde_json::Map::new();
    let mut worst = Duration::ZERO;
    for (g, reading) in readings {
        let Some(r) = reading else {
            return Verdict::fail(format!(
                "no lag observation for {g}: the data loss of an ungraceful failover cannot be \
                 bounded (policy.max_data_loss {}s); approve with care or fix the lag data",
                max.as_secs_f64()
            ));
        };
        if r.stale {
            return Verdict::fail(format!(
                "the newest lag observation of {g} is {:.0}s old (stale): the data loss of an \
                 ungraceful failover cannot be bounded (policy.max_data_loss {}s)",
                r.age.as_secs_f64(),
                max.as_secs_f64()
            ));
        }
        let estimate = r.observation.data_loss_estimate();
        if estimate > max {
            return Verdict::fail(format!(
                "the estimated data loss of {g} is {:.1}s, over policy.max_data_loss {}s",
                estimate.as_secs_f64(),
                max.as_secs_f64()
            ));
        }
        worst = worst.max(estimate);
        estimates.insert(g.clone(), json!(estimate.as_secs_f64()));
    }
    Verdict::Pass(json!({
        "summary": format!(
            "estimated data loss {:.1}s, within policy.max_data_loss {}s",
            worst.as_secs_f64(),
            max.as_secs_f64()
        ),
        "estimated_data_loss_seconds": estimates,
    }))
}

#[async_trait]
impl Check for DataLossBound {
    fn id(&self) -> &str {
        DATA_LOSS_STEP
    }

    fn name(&self) -> String {
        format!(
            "check the estimated data loss is within policy.max_data_loss ({}s)",
            self.max_data_loss.as_secs_f64()
        )
    }

    async fn run(&self) -> Verdict {
        let readings: Vec<_> = self
            .databases
            .iter()
            .map(|g| (g.clone(), self.lag.last_lag(g)))
            .collect();
        match data_loss_verdict(&readings, self.max_data_loss) {
            Verdict::Fail { message, .. } if self.accepted => Verdict::Warn(format!(
                "accepted by the request (params.accept_data_loss): {message}"
            )),
            other => other,
        }
    }
}

/// Graceful: the last Cognito sync pass succeeded recently (within three intervals), so the
/// final sync has little to copy and no user is missing from the target's pool for long.
pub struct CognitoFresh {
    pub handle: CognitoHandle,
    pub interval: Duration,
}

pub const COGNITO_FRESH_STEP: &str = "preflight-cognito-sync";

/// The pure rule of [`CognitoFresh`].
pub fn cognito_fresh_verdict(
    mode: CognitoMode,
    last_success_at: Option<OffsetDateTime>,
    last_error: Option<&str>,
    interval: Duration,
    now: OffsetDateTime,
) -> Verdict {
    if mode == CognitoMode::NativeReplica {
        return Verdict::Skip("cognito.mode is native_replica: failoverd copies no users".into());
    }
    let bound = interval.saturating_mul(3);
    let error = last_error
        .map(|e| format!(" (last error: {e})"))
        .unwrap_or_default();
    match last_success_at {
        None => Verdict::fail(format!(
            "no Cognito sync pass has succeeded yet{error}: users may be missing from the \
             target's pool"
        )),
        Some(at) => {
            let age = (now - at).max(time::Duration::ZERO);
            let age = Duration::from_secs_f64(age.as_seconds_f64());
            if age > bound {
                Verdict::fail(format!(
                    "the last successful Cognito sync was {:.0}s ago, more than 3 × \
                     cognito.interval ({:.0}s){error}",
                    age.as_secs_f64(),
                    bound.as_secs_f64()
                ))
            } else {
                Verdict::Pass(json!({
                    "summary": format!("last Cognito sync succeeded {:.0}s ago", age.as_secs_f64()),
                    "last_success_age_seconds": age.as_secs_f64(),
                }))
            }
        }
    }
}

#[async_trait]
impl Check for CognitoFresh {
    fn id(&self) -> &str {
        COGNITO_FRESH_STEP
    }

    fn name(&self) -> String {
        "check the Cognito sync succeeded within 3 × cognito.interval".into()
    }

    async fn run(&self) -> Verdict {
        let s = self.handle.snapshot();
        cognito_fresh_verdict(
            self.handle.mode(),
            s.last_success_at,
            s.last_error.as_deref(),
            self.interval,
            OffsetDateTime::now_utc(),
        )
    }
}

/// The newest AWS Backup copy of every protected resource in the target region's vaults is
/// within the vault's `max_copy_age` — the last line of defence if the promoted database turns
/// out damaged. A gate or a warning (`failover.backup_copy_age`).
pub struct BackupCopies {
    pub target: String,
    pub vaults: Arc<dyn Fn() -> Vec<VaultSnapshot> + Send + Sync>,
    pub gate: bool,
}

pub const BACKUP_STEP: &str = "preflight-backup-copies";

/// The pure rule of [`BackupCopies`].
pub fn backup_verdict(target: &str, vaults: &[VaultSnapshot], gate: bool) -> Verdict {
    let here: Vec<&VaultSnapshot> = vaults.iter().filter(|v| v.region == target).collect();
    if here.is_empty() {
        return Verdict::Skip(format!("no backup vault is tracked in {target}"));
    }
    let mut problems = Vec::new();
    let mut newest: Option<f64> = None;
    for v in &here {
        if v.recovery_points_observed_at.is_none() {
            problems.push(format!(
                "vault {}: recovery points not observed yet",
                v.vault
            ));
            continue;
        }
        if v.resources.is_empty() {
            problems.push(format!("vault {}: no completed copy", v.vault));
        }
        for r in &v.resources {
            newest = Some(newest.map_or(r.age_seconds, |n: f64| n.min(r.age_seconds)));
            if r.too_old {
                problems.push(format!(
                    "vault {}: the newest copy of {} is {:.0}s old, over max_copy_age {:.0}s",
                    v.vault, r.resource_arn, r.age_seconds, v.max_copy_age_seconds
                ));
            }
        }
    }
    if problems.is_empty() {
        return Verdict::Pass(json!({
            "summary": format!(
                "backup copies in {target} are within max_copy_age (newest {:.0}s old)",
                newest.unwrap_or(0.0)
            ),
        }));
    }
    let message = problems.join("; ");
    if gate {
        Verdict::fail(format!(
            "{message} (failover.backup_copy_age is gate; set it to warning to fail over anyway)"
        ))
    } else {
        Verdict::Warn(message)
    }
}

#[async_trait]
impl Check for BackupCopies {
    fn id(&self) -> &str {
        BACKUP_STEP
    }

    fn name(&self) -> String {
        format!(
            "check the newest backup copies in {} are within max_copy_age",
            self.target
        )
    }

    async fn run(&self) -> Verdict {
        backup_verdict(&self.target, &(self.vaults)(), self.gate)
    }
}

/// One disagreement between the world and the recorded active region, as the preflight sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftItem {
    /// `dns`, `aurora:<global cluster>`, `cognito`, ...
    pub component: String,
    /// The region the component says is active, when it names one (not split or unknown).
    pub region: Option<String>,
    /// One sentence.
    pub message: String,
}

/// Where the preflight reads drift from: a fresh observation of the world (the topology
/// observer), bounded in time.
#[async_trait]
pub trait DriftReadings: Send + Sync + 'static {
    async fn drift_now(&self) -> Vec<DriftItem>;
}

/// The topology observer answers with a fresh, bounded observation.
#[async_trait]
impl DriftReadings for crate::topology::TopologyView {
    async fn drift_now(&self) -> Vec<DriftItem> {
        self.observe_now()
            .await
            .drift
            .into_iter()
            .map(|d| DriftItem {
                region: match &d.says {
                    crate::topology::Says::Region(r) => Some(r.clone()),
                    _ => None,
                },
                component: d.component,
                message: d.message,
            })
            .collect()
    }
}

/// Graceful: the world agrees with the recorded active region — or disagrees only by already
/// being where the failover goes (a half-finished move, which the failover completes). Any other
/// drift refuses unless the request says `force: true`.
pub struct TopologyConsistent {
    pub target: String,
    pub force: bool,
    pub readings: Arc<dyn DriftReadings>,
}

pub const TOPOLOGY_STEP: &str = "preflight-topology";

/// The pure rule of [`TopologyConsistent`].
pub fn topology_verdict(target: &str, drift: &[DriftItem], force: bool) -> Verdict {
    let (completing, blocking): (Vec<&DriftItem>, Vec<&DriftItem>) = drift
        .iter()
        .partition(|d| d.region.as_deref() == Some(target));
    if blocking.is_empty() {
        let summary = if completing.is_empty() {
            "no drift: every component agrees with the recorded active region".to_owned()
        } else {
            format!(
                "{} already in {target}; this failover completes the move",
                completing
                    .iter()
                    .map(|d| d.component.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Verdict::Pass(json!({
            "summary": summary,
            "completing": completing.iter().map(|d| d.message.clone()).collect::<Vec<_>>(),
        }));
    }
    let sentences: Vec<&str> = blocking.iter().map(|d| d.message.as_str()).collect();
    if force {
        Verdict::Warn(format!(
            "drift ignored because the request says force: true: {}",
            sentences.join("; ")
        ))
    } else {
        Verdict::fail(format!(
            "topology drift: {} — resolve it (runbooks/alerts.md#failoverdtopologydrift) or \
             start the failover with params.force: true",
            sentences.join("; ")
        ))
    }
}

#[async_trait]
impl Check for TopologyConsistent {
    fn id(&self) -> &str {
        TOPOLOGY_STEP
    }

    fn name(&self) -> String {
        "check the world agrees with the recorded active region (no drift)".into()
    }

    async fn run(&self) -> Verdict {
        topology_verdict(&self.target, &self.readings.drift_now().await, self.force)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::health::RegionVerdict;
    use crate::replication::state::ResourceCopySnapshot;
    use crate::replication::{LagObservation, LagReading, LagSourceKind};

    fn verdicts(health: Health) -> HealthVerdicts {
        let v = RegionVerdict {
            region: "b".into(),
            health,
            since: tokio::time::Instant::now(),
            down: Vec::new(),
            pending: Vec::new(),
            probes_total: 2,
            probes_up: 2,
            explanation: "because".into(),
        };
        HealthVerdicts {
            regions: BTreeMap::from([("b".to_owned(), v)]),
        }
    }

    #[test]
    fn target_health() {
        assert_eq!(
            target_health_verdict("b", &verdicts(Health::Healthy)).word(),
            "pass"
        );
        assert_eq!(
            target_health_verdict("b", &verdicts(Health::Degraded)).word(),
            "warning"
        );
        assert_eq!(
            target_health_verdict("b", &verdicts(Health::Unhealthy)),
            Verdict::fail("the target region b is unhealthy: because")
        );
        assert!(matches!(
            target_health_verdict("b", &verdicts(Health::Unknown)),
            Verdict::Fail {
                retryable: true,
                ..
            }
        ));
        assert_eq!(
            target_health_verdict("c", &verdicts(Health::Healthy)).word(),
            "skipped"
        );
    }

    fn reading(loss_ms: u64, stale: bool) -> LagReading {
        LagReading {
            global_cluster: "g".into(),
            observation: LagObservation {
                lag: Duration::from_millis(loss_ms / 2),
                rpo_lag: Some(Duration::from_millis(loss_ms)),
                region: "b".into(),
                source: LagSourceKind::Cloudwatch,
                observed_at: OffsetDateTime::UNIX_EPOCH,
            },
            age: Duration::from_secs(if stale { 900 } else { 10 }),
            stale,
            max_lag: Duration::from_secs(5),
        }
    }

    #[test]
    fn data_loss_bound() {
        let max = Duration::from_secs(60);
        let one = |r| vec![("g".to_owned(), r)];
        assert!(data_loss_verdict(&one(Some(reading(30_000, false))), max).ok());
        let over = data_loss_verdict(&one(Some(reading(61_000, false))), max);
        assert!(
            over.message()
                .contains("61.0s, over policy.max_data_loss 60s"),
            "{over:?}"
        );
        assert!(!data_loss_verdict(&one(Some(reading(1_000, true))), max).ok());
        assert!(data_loss_verdict(&one(None), max)
            .message()
            .contains("cannot be bounded"));
        assert_eq!(data_loss_verdict(&[], max).word(), "skipped");
    }

    #[test]
    fn cognito_freshness() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1);
        let minute = Duration::from_secs(60);
        let at = |s: i64| Some(now - time::Duration::seconds(s));
        assert!(cognito_fresh_verdict(CognitoMode::Sync, at(150), None, minute, now).ok());
        let old = cognito_fresh_verdict(CognitoMode::Sync, at(200), Some("throttled"), minute, now);
        assert!(old.message().contains("200s ago"), "{old:?}");
        assert!(old.message().contains("throttled"), "{old:?}");
        assert!(!cognito_fresh_verdict(CognitoMode::Sync, None, None, minute, now).ok());
        assert_eq!(
            cognito_fresh_verdict(CognitoMode::NativeReplica, None, None, minute, now).word(),
            "skipped"
        );
    }

    fn vault(region: &str, ages: &[(f64, bool)], observed: bool) -> VaultSnapshot {
        VaultSnapshot {
            vault: format!("vault-{region}"),
            region: region.into(),
            source_region: "a".into(),
            max_copy_age_seconds: 3600.0,
            resources: ages
                .iter()
                .enumerate()
                .map(|(i, (age, too_old))| ResourceCopySnapshot {
                    resource_arn: format!("arn:r{i}"),
                    recovery_point_arn: format!("arn:p{i}"),
                    created_at: OffsetDateTime::UNIX_EPOCH,
                    age_seconds: *age,
                    too_old: *too_old,
                })
                .collect(),
            recovery_points_observed_at: observed.then_some(OffsetDateTime::UNIX_EPOCH),
            failed_copy_jobs: None,
            copy_failure_window_seconds: 86400.0,
            copy_jobs_observed_at: None,
            recovery_points_error: None,
            copy_jobs_error: None,
        }
    }

    #[test]
    fn drift_refuses_unless_it_is_the_move_being_completed_or_forced() {
        let d = |c: &str, r: Option<&str>| DriftItem {
            component: c.into(),
            region: r.map(str::to_owned),
            message: format!("{c} disagrees"),
        };
        assert!(topology_verdict("b", &[], false).ok());
        // Writer already in the target: the failover finishes the half-done move.
        let half_done = topology_verdict("b", &[d("aurora:g", Some("b"))], false);
        assert_eq!(half_done.word(), "pass");
        assert!(
            half_done.message().contains("aurora:g already in b"),
            "{half_done:?}"
        );
        // Split traffic, or a component in neither: refused, unless forced.
        let split = [d("dns", None), d("aurora:g", Some("b"))];
        let refused = topology_verdict("b", &split, false);
        assert!(!refused.ok());
        assert!(refused.message().contains("dns disagrees"), "{refused:?}");
        assert!(
            !refused.message().contains("aurora:g disagrees"),
            "{refused:?}"
        );
        assert_eq!(topology_verdict("b", &split, true).word(), "warning");
        assert!(!topology_verdict("a", &[d("dns", Some("b"))], false).ok());
    }

    #[test]
    fn backup_copies_gate_or_warn() {
        let fresh = [vault("b", &[(100.0, false)], true)];
        assert_eq!(backup_verdict("b", &fresh, true).word(), "pass");
        let old = [vault("b", &[(100.0, false), (7200.0, true)], true)];
        let gate = backup_verdict("b", &old, true);
        assert!(!gate.ok());
        assert!(gate.message().contains("arn:r1 is 7200s old"), "{gate:?}");
        assert_eq!(backup_verdict("b", &old, false).word(), "warning");
        assert_eq!(backup_verdict("c", &old, true).word(), "skipped");
        assert!(!backup_verdict("b", &[vault("b", &[], false)], true).ok());
    }
}
