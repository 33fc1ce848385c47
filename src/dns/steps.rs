//! The Route 53 steps of a DNS switchover, on the durable engine.
//!
//! A switchover is a preflight (1) followed, for each stage, by three steps (2–4) (DESIGN.md §5):
//!
//! 1. [`DnsPreflight`] reads every configured zone, runs the planner (which refuses unsafe shapes
//!    before anything changes), in graceful mode refuses a target whose Route 53 health checks
//!    fail, and records the routing found — in its output, so it is in the journal and survives a
//!    crash. Every compensation restores exactly that.
//! 2. [`DnsApplyStage`] submits one change batch of UPSERTs per zone for the sets that differ from
//!    the stage, so re-applying is harmless and an applied stage costs no write. Its `verify` reads
//!    the live records: after a crash an in-doubt stage is recognised as applied (and not
//!    re-submitted) or as not applied (and submitted once). Compensation restores the recorded
//!    routing and waits for `INSYNC`.
//! 3. [`DnsAwaitSync`] polls `GetChange` until Route 53 reports `INSYNC`, then (optionally) waits
//!    one record TTL so resolvers drop the old answer.
//! 4. [`DnsHoldAndVerify`] runs the stage verification, holds the stage for `dns.hold`, and
//!    (when the hold is not zero) verifies again; a failure fails the step, and the run unwinds to
//!    the recorded routing.
//!
//! Steps compute what to write at execution time, from the live records and the recorded
//! routing, so a plan rebuilt after a restart behaves exactly like the original. All Route 53 calls
//! go through one shared [`RateLimitedDns`](super::rate_limit::RateLimitedDns).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::planner::{
    self, changes_to, current_routing, max_ttl, routing_lines, stage_routing, LiveRecords,
    PlanRefused, SetRouting, SwitchoverPlan, ZoneChanges,
};
use super::port::{ChangeStatus, DnsApi};
use super::verify::StageVerifier;
use crate::config::DnsConfig;
use crate::engine::{
    Mode, RetryPolicy, Reversibility, Step, StepContext, StepDescription, StepError, StepId,
    VerifyOutcome,
};
use crate::topology::RegionPair;

/// Id of the preflight step (its output holds the recorded routing).
pub const PREFLIGHT_STEP: &str = "dns-preflight";

/// Id of the step applying the stage at `percent`.
pub fn apply_step_id(percent: u8) -> StepId {
    StepId::new(format!("dns-apply-{percent}"))
}

/// Id of the step waiting for the stage at `percent` to be in sync.
pub fn sync_step_id(percent: u8) -> StepId {
    StepId::new(format!("dns-sync-{percent}"))
}

/// Id of the step holding and verifying the stage at `percent`.
pub fn hold_step_id(percent: u8) -> StepId {
    StepId::new(format!("dns-hold-{percent}"))
}

/// How long the DNS steps wait for Route 53 and the verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DnsTimings {
    /// Between two `GetChange` calls.
    pub poll_interval: Duration,
    /// How long a change may stay `PENDING` before the wait fails (and is retried).
    pub insync_timeout: Duration,
    /// When a stage was found applied after a crash, its change id is lost: wait this long for
    /// propagation instead of polling.
    pub unknown_change_wait: Duration,
    /// Bound on one run of the stage verification.
    pub verify_timeout: Duration,
}

impl Default for DnsTimings {
    /// Route 53 changes normally reach every authoritative server within 60 s; polling every 5 s
    /// costs one request of the account's 5/s, and five minutes of `PENDING` is abnormal enough to
    /// fail the wait (which the engine retries). Verification gets two minutes: a few probes, each
    /// with its own timeout and a second attempt.
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(5),
            insync_timeout: Duration::from_secs(300),
            unknown_change_wait: Duration::from_secs(60),
            verify_timeout: Duration::from_secs(120),
        }
    }
}

/// What every DNS step of a switchover shares.
#[derive(Clone)]
pub struct DnsSwitchoverDeps {
    pub dns: Arc<DnsConfig>,
    pub pair: RegionPair,
    /// Route 53, already rate limited.
    pub api: Arc<dyn DnsApi>,
    pub verifier: Arc<dyn StageVerifier>,
    pub timings: DnsTimings,
    /// The data-plane signal (`dns.mode: data_plane`): the routing a switchover starts from is
    /// what Route 53 effectively answers, drained regions included.
    pub data_plane: Option<super::dataplane::DataPlaneDeps>,
}

impl DnsSwitchoverDeps {
    pub(crate) async fn read_live(&self) -> Result<LiveRecords, StepError> {
        let mut live = LiveRecords::new();
        for zone_id in planner::zone_ids(&self.dns) {
            let sets = self
                .api
                .list_record_sets(&zone_id)
                .await
                .map_err(StepError::from)?;
            live.insert(zone_id, sets);
        }
        Ok(live)
    }

    async fn submit(
        &self,
        batches: &[ZoneChanges],
        comment: &str,
    ) -> Result<BTreeMap<String, String>, StepError> {
        let mut ids = BTreeMap::new();
        for zone in batches {
            let info = self
                .api
                .change_record_sets(&zone.zone_id, Some(comment), &zone.changes)
                .await
                .map_err(|e| {
                    // Route 53 refused the first batch outright: nothing was written.
                    let refused = e.kind.is_refusal();
                    let error = StepError::from(e);
                    if refused && ids.is_empty() {
                        error.nothing_applied()
                    } else {
                        error
                    }
                })?;
            tracing::info!(zone = %zone.zone_id, change = %info.id, changes = ?zone.lines, "route53 change batch submitted");
            ids.insert(zone.zone_id.clone(), info.id);
        }
        Ok(ids)
    }

    /// Poll every change until `INSYNC`, within `insync_timeout`.
    async fn await_insync(&self, change_ids: &BTreeMap<String, String>) -> Result<(), StepError> {
        let deadline = tokio::time::Instant::now() + self.timings.insync_timeout;
        for (zone, id) in change_ids {
            loop {
                let info = self.api.change_status(id).await.map_err(StepError::from)?;
                if info.status == ChangeStatus::InSync {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(StepError::retryable(format!(
                        "route53 change {id} (zone {zone}) is still PENDING after {:?}",
                        self.timings.insync_timeout
                    )));
                }
                tokio::time::sleep(self.timings.poll_interval).await;
            }
        }
        Ok(())
    }

    /// The recorded switchover from the preflight's output; `None` before the preflight ran (dry
    /// runs describe every step without executing any).
    fn recorded(&self, ctx: &StepContext) -> Result<Option<SwitchoverPlan>, StepError> {
        match ctx.outputs.get(&StepId::new(PREFLIGHT_STEP)) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
                StepError::permanent(format!(
                    "the routing recorded by {PREFLIGHT_STEP} cannot be read back: {e}"
                ))
            }),
        }
    }

    /// The routing found when the run started: recorded, or (dry runs) read now. Either way the
    /// live records are checked against the configuration first, so a set deleted since the run
    /// started is refused here.
    fn original(
        &self,
        ctx: &StepContext,
        live: &LiveRecords,
    ) -> Result<Vec<SetRouting>, StepError> {
        let now = current_routing(&self.dns, &self.pair, live).map_err(refused)?;
        Ok(match self.recorded(ctx)? {
            Some(plan) => plan.original,
            None => now,
        })
    }
}

fn refused(e: PlanRefused) -> StepError {
    StepError::permanent(format!("dns switchover refused: {e}"))
}

fn to_value<T: Serialize>(v: &T) -> Result<Value, StepError> {
    serde_json::to_value(v)
        .map_err(|e| StepError::permanent(format!("cannot record step output: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Preflight
// ---------------------------------------------------------------------------------------------

/// Checks every record, plans every stage and records the routing found (see the module docs).
pub struct DnsPreflight {
    id: StepId,
    deps: DnsSwitchoverDeps,
    target: String,
    stages: Vec<u8>,
}

impl DnsPreflight {
    pub fn new(deps: DnsSwitchoverDeps, target: String, stages: Vec<u8>) -> Self {
        Self {
            id: StepId::new(PREFLIGHT_STEP),
            deps,
            target,
            stages,
        }
    }

    /// The live records, the plan, and the regions drained by the data-plane signal.
    async fn plan(&self) -> Result<(LiveRecords, SwitchoverPlan, Vec<String>), StepError> {
        let live = self.deps.read_live().await?;
        let mut original =
            current_routing(&self.deps.dns, &self.deps.pair, &live).map_err(refused)?;
        let mut drained = Vec::new();
        if let Some(signals) = self.deps.data_plane.as_ref().map(|d| &d.signals) {
            let drains = signals.drains(self.deps.timings.verify_timeout).await;
            for (region, drain) in &drains {
                match drain {
                    super::signal::Drain::Unknown(why) => {
                        return Err(StepError::retryable(format!(
                            "cannot read the data-plane signal of {region} (alarm {} in {}): {why}",
                            signals.of(region).0,
                            signals.home(region)
                        )))
                    }
                    super::signal::Drain::Drained => drained.push(region.clone()),
                    super::signal::Drain::Served => {}
                }
            }
            original =
                super::signal::drained_routing(&original, &super::signal::drained_regions(&drains));
        }
        let plan = planner::plan_from(&self.deps.pair, original, &self.target, &self.stages)
            .map_err(refused)?;
        Ok((live, plan, drained))
    }

    /// Graceful runs only send traffic to sets whose Route 53 health check (if any) is healthy
    /// according to at least half of AWS's checkers. Returns one line per health check looked at.
    async fn check_target_health(
        &self,
        live: &LiveRecords,
        plan: &SwitchoverPlan,
        drained: &[String],
    ) -> Result<Vec<String>, StepError> {
        let mut seen = Vec::new();
        let mut unhealthy = Vec::new();
        for set in plan.original.iter().filter(|s| s.region == self.target) {
            let Some(id) = planner::live_set(live, set).and_then(|l| l.health_check_id.clone())
            else {
                continue;
            };
            // A drained target's signal is cleared once its first stage is in sync: its health
            // check follows the signal, not the region's health.
            if let Some(signals) = self.deps.data_plane.as_ref().map(|d| &d.signals) {
                if drained.contains(&self.target) && signals.of(&self.target).1 == id {
                    seen.push(format!(
                        "{}: health check {id} follows the data-plane signal, which drains {} until the first stage",
                        set.label(),
                        self.target
                    ));
                    continue;
                }
            }
            let status = self
                .deps
                .api
                .health_check_status(&id)
                .await
                .map_err(StepError::from)?;
            let line = match status.healthy_share() {
                None => format!("{}: health check {id} has no report yet", set.label()),
                Some(share) => {
                    let line = format!(
                        "{}: health check {id}: {} of {} checkers healthy",
                        set.label(),
                        status.checkers_healthy(),
                        status.checkers_total()
                    );
                    if share < MIN_TARGET_HEALTHY_SHARE {
                        unhealthy.push(line.clone());
                    }
                    line
                }
            };
            seen.push(line);
        }
        if unhealthy.is_empty() {
            Ok(seen)
        } else {
            Err(StepError::permanent(format!(
                "dns switchover refused: the target region's health checks are failing ({}); \
                 use mode ungraceful to switch anyway",
                unhealthy.join("; ")
            )))
        }
    }
}

/// Share of Route 53's checkers that must report a target set healthy before a graceful
/// switchover sends it traffic (the health probes' default `min_healthy_fraction`).
pub const MIN_TARGET_HEALTHY_SHARE: f64 = 0.5;

#[async_trait]
impl Step for DnsPreflight {
    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        "check the DNS records and record their routing"
    }

    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        let (live, plan, drained) = self.plan().await?;
        if ctx.mode == Mode::Graceful {
            self.check_target_health(&live, &plan, &drained).await?;
        }
        let active = planner::active_region(&plan.original, &self.deps.pair)
            .unwrap_or_else(|| "split evenly".to_owned());
        Ok(StepDescription {
            summary: format!(
                "check {} record sets (and, graceful, the target's Route 53 health checks) and record their routing (traffic now: {active}); stages to {}: {:?} %",
                plan.original.len(),
                self.target,
                self.stages
            ),
            changes: routing_lines(&plan.original)
                .into_iter()
                .map(|l| format!("now: {l}"))
                .collect(),
        })
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let (live, plan, drained) = self.plan().await?;
        if ctx.mode == Mode::Graceful {
            let health = self.check_target_health(&live, &plan, &drained).await?;
            tracing::info!(target_region = %self.target, ?health, "target health checks pass");
        }
        tracing::info!(target_region = %self.target, original = ?routing_lines(&plan.original), "dns switchover planned");
        to_value(&plan)
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        // Nothing in the world records a preflight; reading again is always safe because no
        // later step has started while this one is in doubt.
        Ok(VerifyOutcome::NotDone)
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::NoSideEffect
    }
}

// ---------------------------------------------------------------------------------------------
// Apply a stage
// ---------------------------------------------------------------------------------------------

/// What [`DnsApplyStage`] records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOutput {
    pub percent: u8,
    pub target_region: String,
    /// Change id of each batch submitted, by hosted zone id.
    pub change_ids: BTreeMap<String, String>,
    /// Some of the stage was found already applied by an earlier, interrupted attempt, so its
    /// change id is unknown and propagation cannot be polled.
    pub unconfirmed: bool,
    /// The highest TTL of the stage's sets, in seconds.
    pub ttl_seconds: u64,
    pub changes: Vec<String>,
}

/// Applies one stage's routing (see the module docs).
pub struct DnsApplyStage {
    id: StepId,
    deps: DnsSwitchoverDeps,
    target: String,
    percent: u8,
    /// The stage before this one (its routing is what this stage changes); `None` for the first.
    previous: Option<u8>,
}

impl DnsApplyStage {
    pub fn new(deps: DnsSwitchoverDeps, target: String, percent: u8, previous: Option<u8>) -> Self {
        Self {
            id: apply_step_id(percent),
            deps,
            target,
            percent,
            previous,
        }
    }

    /// The live records, the recorded routing and this stage's routing.
    async fn stage(
        &self,
        ctx: &StepContext,
    ) -> Result<(LiveRecords, Vec<SetRouting>, Vec<SetRouting>), StepError> {
        let live = self.deps.read_live().await?;
        let original = self.deps.original(ctx, &live)?;
        let desired = stage_routing(&original, &self.target, self.percent).map_err(refused)?;
        Ok((live, original, desired))
    }

    fn comment(&self, ctx: &StepContext) -> String {
        format!(
            "failoverd run {}: {} % to {}",
            ctx.run_id, self.percent, self.target
        )
    }
}

#[async_trait]
impl Step for DnsApplyStage {
    fn acts_on(&self) -> Option<crate::engine::OutageApi> {
        Some(crate::engine::OutageApi::Route53)
    }

    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        "apply DNS stage"
    }

    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        let (_, original, desired) = self.stage(ctx).await?;
        let from = match self.previous {
            Some(p) => stage_routing(&original, &self.target, p).map_err(refused)?,
            None => original,
        };
        let lines = planner::diff_lines(&from, &desired);
        Ok(StepDescription {
            summary: format!(
                "route {} % of traffic to {}: one UPSERT change batch per zone, {} set(s) changed; stage routing: {}",
                self.percent,
                self.target,
                lines.len(),
                routing_lines(&desired).join("; ")
            ),
            changes: lines,
        })
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        // Until the first batch is sent this attempt has only read.
        let (live, original, desired) =
            self.stage(ctx).await.map_err(StepError::nothing_applied)?;
        let batches = changes_to(&live, &desired)
            .map_err(refused)
            .map_err(StepError::nothing_applied)?;
        let change_ids = self.deps.submit(&batches, &self.comment(ctx)).await?;
        // A zone this stage moves away from the original routing that needed no batch now was
        // applied by an earlier attempt whose change id is lost.
        let unconfirmed = ctx.attempt > 1
            && desired.iter().any(|d| {
                !change_ids.contains_key(&d.zone_id)
                    && original
                        .iter()
                        .any(|o| o.label() == d.label() && o.zone_id == d.zone_id && o != d)
            });
        to_value(&ApplyOutput {
            percent: self.percent,
            target_region: self.target.clone(),
            change_ids,
            unconfirmed,
            ttl_seconds: max_ttl(&live, &desired).as_secs(),
            changes: batches.into_iter().flat_map(|z| z.lines).collect(),
        })
    }

    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        let (live, original, desired) = self.stage(ctx).await?;
        if !planner::is_applied(&live, &desired).map_err(refused)? {
            return Ok(VerifyOutcome::NotDone);
        }
        Ok(VerifyOutcome::Done(to_value(&ApplyOutput {
            percent: self.percent,
            target_region: self.target.clone(),
            change_ids: BTreeMap::new(),
            unconfirmed: desired != original,
            ttl_seconds: max_ttl(&live, &desired).as_secs(),
            changes: Vec::new(),
        })?))
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::Compensable
    }

    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        let Some(recorded) = self.deps.recorded(ctx)? else {
            return Err(StepError::permanent(format!(
                "no routing was recorded by {PREFLIGHT_STEP}, so there is nothing to restore"
            )));
        };
        let live = self.deps.read_live().await?;
        // Restore every set that still exists, even when one has gone: the traffic should go
        // back as far as it can; the missing set is then reported for an operator.
        let (present, missing) = planner::split_present(&live, &recorded.original);
        let batches = changes_to(&live, &present).map_err(refused)?;
        if !batches.is_empty() {
            let comment = format!(
                "failoverd run {}: restore the routing found at the start",
                ctx.run_id
            );
            let ids = self.deps.submit(&batches, &comment).await?;
            self.deps.await_insync(&ids).await?;
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(StepError::permanent(format!(
            "restored the routing of every other set, but {} no longer exist(s) in Route 53 (deleted behind failoverd's back?)",
            missing
                .iter()
                .map(|s| format!("{} ({})", s.label(), s.region))
                .collect::<Vec<_>>()
                .join(", ")
        )))
    }

    fn operator_check(&self) -> String {
        format!(
            "compare the weights of the records in dns.records with the routing recorded in the output of step {PREFLIGHT_STEP}"
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Wait for INSYNC (+ TTL)
// ---------------------------------------------------------------------------------------------

/// The longest TTL wait after `INSYNC`. Records a switchover moves should have TTLs of a minute or
/// so; a record with a TTL of a day would otherwise hold a failover for a day. Resolvers that cache
/// longer than this keep the old answer a little longer, which the hold and verification cover.
pub const MAX_TTL_WAIT: Duration = Duration::from_secs(15 * 60);

/// Waits until the stage's changes are `INSYNC`, then optionally one TTL.
pub struct DnsAwaitSync {
    id: StepId,
    apply: StepId,
    deps: DnsSwitchoverDeps,
    percent: u8,
}

impl DnsAwaitSync {
    pub fn new(deps: DnsSwitchoverDeps, percent: u8) -> Self {
        Self {
            id: sync_step_id(percent),
            apply: apply_step_id(percent),
            deps,
            percent,
        }
    }
}

#[async_trait]
impl Step for DnsAwaitSync {
    fn acts_on(&self) -> Option<crate::engine::OutageApi> {
        Some(crate::engine::OutageApi::Route53)
    }

    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        "wait for Route 53 INSYNC"
    }

    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        let ttl = if self.deps.dns.wait_ttl_after_insync {
            ", then one record TTL"
        } else {
            ""
        };
        Ok(StepDescription {
            summary: format!(
                "poll GetChange until the {} % stage is INSYNC{ttl}",
                self.percent
            ),
            changes: Vec::new(),
        })
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let applied: ApplyOutput = ctx
            .outputs
            .get(&self.apply)
            .ok_or_else(|| StepError::permanent(format!("step {} has no output", self.apply)))
            .and_then(|v| {
                serde_json::from_value(v.clone()).map_err(|e| {
                    StepError::permanent(format!("output of {} unreadable: {e}", self.apply))
                })
            })?;
        let started = tokio::time::Instant::now();
        self.deps.await_insync(&applied.change_ids).await?;
        if applied.unconfirmed {
            tokio::time::sleep(self.deps.timings.unknown_change_wait).await;
        }
        let insync = started.elapsed();
        // Nothing written by this stage: resolvers have nothing stale to drop.
        let changed = !applied.change_ids.is_empty() || applied.unconfirmed;
        let ttl = if self.deps.dns.wait_ttl_after_insync && changed {
            let ttl = Duration::from_secs(applied.ttl_seconds);
            if ttl > MAX_TTL_WAIT {
                tracing::warn!(
                    ttl_seconds = applied.ttl_seconds,
                    "record TTL above {MAX_TTL_WAIT:?}; waiting only that long"
                );
            }
            ttl.min(MAX_TTL_WAIT)
        } else {
            Duration::ZERO
        };
        tokio::time::sleep(ttl).await;
        Ok(json!({
            "insync_seconds": insync.as_secs_f64(),
            "ttl_waited_seconds": ttl.as_secs(),
        }))
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        // Waiting again is harmless.
        Ok(VerifyOutcome::NotDone)
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::NoSideEffect
    }

    fn timeout(&self) -> Duration {
        // Every wait this step can make, plus a margin for the GetChange calls themselves.
        self.deps.timings.insync_timeout
            + self.deps.timings.unknown_change_wait
            + MAX_TTL_WAIT
            + Duration::from_secs(60)
    }
}

// ---------------------------------------------------------------------------------------------
// Hold and verify
// ---------------------------------------------------------------------------------------------

/// Verifies the target region, holds the stage, verifies again.
pub struct DnsHoldAndVerify {
    id: StepId,
    deps: DnsSwitchoverDeps,
    target: String,
    percent: u8,
    hold: Duration,
}

impl DnsHoldAndVerify {
    pub fn new(deps: DnsSwitchoverDeps, target: String, percent: u8, hold: Duration) -> Self {
        Self {
            id: hold_step_id(percent),
            deps,
            target,
            percent,
            hold,
        }
    }

    async fn run_verifier(&self) -> Result<(), StepError> {
        let probes = &self.deps.dns.verify_probes;
        if probes.is_empty() {
            return Ok(());
        }
        let limit = self.deps.timings.verify_timeout;
        match tokio::time::timeout(limit, self.deps.verifier.verify(&self.target, probes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(StepError::permanent(format!(
                "verification of {} at {} % failed: {why}",
                self.target, self.percent
            ))),
            Err(_) => Err(StepError::permanent(format!(
                "verification of {} at {} % did not finish within {limit:?}",
                self.target, self.percent
            ))),
        }
    }
}

#[async_trait]
impl Step for DnsHoldAndVerify {
    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        "hold the DNS stage and verify"
    }

    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        let probes = if self.deps.dns.verify_probes.is_empty() {
            "no verification configured".to_owned()
        } else {
            format!(
                "verify {} with probes [{}]",
                self.target,
                self.deps.dns.verify_probes.join(", ")
            )
        };
        Ok(StepDescription {
            summary: format!(
                "hold {} % for {:?}; {probes} before and after the hold",
                self.percent, self.hold
            ),
            changes: Vec::new(),
        })
    }

    async fn execute(&self, _ctx: &StepContext) -> Result<Value, StepError> {
        self.run_verifier().await?;
        if !self.hold.is_zero() {
            tokio::time::sleep(self.hold).await;
            self.run_verifier().await?;
        }
        Ok(json!({
            "held_seconds": self.hold.as_secs_f64(),
            "verified_with": self.deps.dns.verify_probes,
        }))
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        // A hold interrupted by a crash is held (and verified) again in full.
        Ok(VerifyOutcome::NotDone)
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::NoSideEffect
    }

    fn retry_policy(&self) -> RetryPolicy {
        // A failed verification is the answer, not a transient error.
        RetryPolicy::no_retry()
    }

    fn timeout(&self) -> Duration {
        self.hold + self.deps.timings.verify_timeout * 2 + Duration::from_secs(30)
    }
}
