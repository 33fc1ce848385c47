//! The steps of the data-plane traffic shift (`dns.mode: data_plane`; the signal is described in
//! [`super::signal`]).
//!
//! - [`SignalPreflight`] checks the wiring: each region's alarm watches its signal metric and
//!   alarms on 1, each region's health check follows that alarm, and (graceful) each record set
//!   carries its region's health check. Graceful runs need all of it; an ungraceful run needs the
//!   alarm in the target region and reads the rest within the lost-region budget, reporting what
//!   it could not confirm (the readiness evaluation checks it all every few minutes, while both
//!   regions answer).
//! - [`DnsSignal`] (ungraceful) drains the region being left: `PutMetricData` of 1 in the target
//!   region, then the alarm's `ALARM` state there confirms that Route 53's checkers see the sets
//!   unhealthy; Route 53's own `GetHealthCheckStatus` is read where it answers, and the output says
//!   what was and was not confirmed. No Route 53 write. Compensation serves the region again.
//! - [`SignalClear`] (graceful) serves every drained region once the first stage is in sync: the
//!   records' weights now say where the traffic goes, as the staged shift expects.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::signal::{Drain, Signals, DRAINED, SERVED};
use crate::engine::{
    Mode, Reversibility, Step, StepContext, StepDescription, StepError, StepId, VerifyOutcome,
};
use crate::health::port::{AlarmState, HealthCheckStatusApi};
use crate::topology::RegionPair;

/// Id of the wiring check.
pub const SIGNAL_PREFLIGHT_STEP: &str = "dns-signal-preflight";
/// Id of the step draining the region being left.
pub const SIGNAL_STEP: &str = "dns-signal";
/// Id of the step serving the drained regions after a graceful move's first stage.
pub const SIGNAL_CLEAR_STEP: &str = "dns-signal-clear";

/// Share of Route 53's checkers that must see the drained sets unhealthy for the shift to count
/// as confirmed by Route 53.
const CONFIRM_SHARE: f64 = 0.5;

/// Bound on one Route 53 read made to confirm (not to perform) the shift.
const ROUTE53_READ_BUDGET: Duration = Duration::from_secs(10);

/// What the data-plane steps share.
#[derive(Clone)]
pub struct DataPlaneDeps {
    pub signals: Signals,
    /// Route 53 health-check status, for the confirmation only.
    pub status: std::sync::Arc<dyn HealthCheckStatusApi>,
    /// Bound on every call that needs the region being left (`failover.lost_region_budget`).
    pub budget: Duration,
}

impl DataPlaneDeps {
    fn pair(&self) -> &RegionPair {
        &self.signals.pair
    }

    fn left(&self, target: &str) -> String {
        self.pair().other(target).unwrap_or_default().to_owned()
    }

    /// Wait until `region`'s alarm is in (`drained`) or out of `ALARM`, within `alarm_timeout`.
    /// An abort interrupts the wait of an execution; an undo (which is what an abort runs) waits
    /// to the end.
    async fn await_alarm(
        &self,
        ctx: &StepContext,
        region: &str,
        drained: bool,
        undo: bool,
    ) -> Result<AlarmState, StepError> {
        let timeout = self.signals.config.alarm_timeout.get();
        let started = tokio::time::Instant::now();
        loop {
            let alarm = self.signals.alarm(region).await.map_err(StepError::from)?;
            if (alarm.state == AlarmState::Alarm) == drained {
                return Ok(alarm.state);
            }
            if started.elapsed() >= timeout {
                let (name, _) = self.signals.of(region);
                return Err(StepError::retryable(format!(
                    "alarm {name} in {} is still {:?} {:?} after the signal of {region} was set to {} ({})",
                    self.signals.home(region),
                    alarm.state,
                    timeout,
                    if drained { DRAINED } else { SERVED },
                    alarm.reason.unwrap_or_default()
                )));
            }
            if undo {
                tokio::time::sleep(self.signals.poll_interval).await;
            } else {
                ctx.abort.sleep(self.signals.poll_interval).await?;
            }
        }
    }

    /// Route 53's checkers on `region`'s health check, until at least half see it unhealthy or
    /// `confirm_timeout` passes; a read that fails or does not answer ends it at once (Route 53's
    /// API being out is what this mode is for). Never fails: returns whether it was confirmed,
    /// and how.
    async fn confirm_unhealthy(&self, ctx: &StepContext, region: &str) -> (bool, String) {
        let (_, id) = self.signals.of(region);
        let timeout = self.signals.config.confirm_timeout.get();
        let started = tokio::time::Instant::now();
        let mut last;
        loop {
            let budget = ROUTE53_READ_BUDGET.min(timeout.saturating_sub(started.elapsed()));
            match tokio::time::timeout(budget, self.status.health_check_status(id)).await {
                Ok(Ok(status)) => {
                    let unhealthy = status.checkers_total() - status.checkers_healthy();
                    last = format!(
                        "{unhealthy} of {} Route 53 checkers report health check {id} unhealthy",
                        status.checkers_total()
                    );
                    if status.healthy_share().is_some_and(|s| s < CONFIRM_SHARE) {
                        return (true, last);
                    }
                }
                // Route 53's API is out (the reason for this mode): nothing to wait for.
                Ok(Err(e)) => {
                    return (
                        false,
                        format!("not confirmed by Route 53: GetHealthCheckStatus {id}: {e}"),
                    )
                }
                Err(_) => {
                    return (
                        false,
                        format!(
                            "not confirmed by Route 53: GetHealthCheckStatus {id}: no answer within {budget:?}"
                        ),
                    )
                }
            }
            if started.elapsed() >= timeout || ctx.abort.is_requested() {
                return (
                    false,
                    format!("not confirmed by Route 53 within {timeout:?}: {last}"),
                );
            }
            if ctx.abort.sleep(self.signals.poll_interval).await.is_err() {
                return (
                    false,
                    format!("not confirmed by Route 53 (aborted): {last}"),
                );
            }
        }
    }
}

/// A read bounded by `budget`: `Err(why)` when it failed or did not answer.
async fn bounded<T>(
    budget: Duration,
    what: impl std::future::Future<Output = crate::port::Result<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(budget, what).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {budget:?}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Preflight
// ---------------------------------------------------------------------------------------------

/// Checks that the signal is wired as the mode needs (see the module docs).
pub struct SignalPreflight {
    id: StepId,
    deps: DataPlaneDeps,
    /// The records (graceful: each set must carry its region's health check).
    dns: super::steps::DnsSwitchoverDeps,
    target: String,
}

impl SignalPreflight {
    pub fn new(deps: DataPlaneDeps, dns: super::steps::DnsSwitchoverDeps, target: String) -> Self {
        Self {
            id: StepId::new(SIGNAL_PREFLIGHT_STEP),
            deps,
            dns,
            target,
        }
    }

    /// `(checked, not confirmed)` lines, or the refusal.
    async fn check(&self, mode: Mode) -> Result<(Vec<String>, Vec<String>), StepError> {
        let s = &self.deps.signals;
        let left = self.deps.left(&self.target);
        let mut problems = Vec::new();
        let mut checked = Vec::new();
        let mut unconfirmed = Vec::new();
        let graceful = mode == Mode::Graceful;

        // The signal this run would set lives in the target region: always required.
        problems.extend(s.alarm_wiring(&left).await.map_err(StepError::from)?);
        checked.push(format!(
            "alarm {} in {} (the signal of {left})",
            s.of(&left).0,
            self.target
        ));

        // The rest needs the region being left, or Route 53's control plane.
        let budget = if graceful {
            self.dns.timings.verify_timeout
        } else {
            self.deps.budget
        };
        let mut other = |what: String, result: Result<Vec<String>, String>| match result {
            Ok(p) => {
                problems.extend(p);
                checked.push(what);
                Ok(())
            }
            Err(e) if graceful => Err(StepError::retryable(format!("{what}: {e}"))),
            Err(e) => {
                unconfirmed.push(format!("{what}: {e}"));
                Ok(())
            }
        };
        // Read concurrently: each may wait its whole budget on a region that is lost.
        let (target_alarm, left_check, target_check) = tokio::join!(
            bounded(budget, s.alarm_wiring(&self.target)),
            bounded(budget, s.health_check_wiring(&left)),
            bounded(budget, s.health_check_wiring(&self.target)),
        );
        other(
            format!(
                "alarm {} in {left} (the signal of {})",
                s.of(&self.target).0,
                self.target
            ),
            target_alarm,
        )?;
        for (region, result) in [
            (left.as_str(), left_check),
            (self.target.as_str(), target_check),
        ] {
            other(
                format!("health check {} (the sets of {region})", s.of(region).1),
                result,
            )?;
        }
        if graceful {
            let live = self.dns.read_live().await?;
            let routing = super::planner::current_routing(&self.dns.dns, &self.dns.pair, &live)
                .map_err(|e| StepError::permanent(format!("dns switchover refused: {e}")))?;
            problems.extend(super::signal::record_wiring_problems(
                &routing, &live, &s.config,
            ));
            checked.push(format!(
                "the health checks of {} record set(s)",
                routing.len()
            ));
        }
        if !problems.is_empty() {
            return Err(StepError::permanent(format!(
                "the data-plane DNS signal is not wired as dns.mode data_plane needs: {}",
                problems.join("; ")
            )));
        }
        Ok((checked, unconfirmed))
    }
}

#[async_trait]
impl Step for SignalPreflight {
    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        "check the wiring of the data-plane DNS signal"
    }

    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        let (checked, unconfirmed) = self.check(ctx.mode).await?;
        Ok(StepDescription {
            summary: format!(
                "check the alarms and health checks the data-plane shift towards {} relies on",
                self.target
            ),
            changes: checked
                .into_iter()
                .map(|c| format!("checked: {c}"))
                .chain(
                    unconfirmed
                        .into_iter()
                        .map(|u| format!("not confirmed: {u}")),
                )
                .collect(),
        })
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let (checked, unconfirmed) = self.check(ctx.mode).await?;
        if !unconfirmed.is_empty() {
            tracing::warn!(
                ?unconfirmed,
                "parts of the data-plane signal could not be checked"
            );
        }
        Ok(json!({ "checked": checked, "not_confirmed": unconfirmed }))
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        Ok(VerifyOutcome::NotDone)
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::NoSideEffect
    }
}

// ---------------------------------------------------------------------------------------------
// Drain the region being left
// ---------------------------------------------------------------------------------------------

/// Drains the region being left through the signal in the target region (see the module docs).
pub struct DnsSignal {
    id: StepId,
    deps: DataPlaneDeps,
    target: String,
}

impl DnsSignal {
    pub fn new(deps: DataPlaneDeps, target: String) -> Self {
        Self {
            id: StepId::new(SIGNAL_STEP),
            deps,
            target,
        }
    }
}

#[async_trait]
impl Step for DnsSignal {
    fn acts_on(&self) -> Option<crate::engine::OutageApi> {
        Some(crate::engine::OutageApi::CloudWatch)
    }

    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        "drain the region left through the data-plane DNS signal"
    }

    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        let s = &self.deps.signals;
        let left = self.deps.left(&self.target);
        let (alarm, check) = s.of(&left);
        let metric = s.metric(&left);
        Ok(StepDescription {
            summary: format!(
                "send the traffic to {} with no Route 53 call: drain {left} (its sets' health check {check} follows alarm {alarm} in {})",
                self.target, self.target
            ),
            changes: vec![
                format!(
                    "cloudwatch {}: PutMetricData {}/{} {{Pair={}, Region={left}}} = {DRAINED}, then wait for alarm {alarm} to be ALARM",
                    self.target, metric.namespace, metric.metric, s.pair_name
                ),
                format!(
                    "cloudwatch {left} (best effort, within {:?}): the signal of {} = {SERVED}",
                    self.deps.budget, self.target
                ),
            ],
        })
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let s = &self.deps.signals;
        let left = self.deps.left(&self.target);
        let started = tokio::time::Instant::now();
        s.publish(&left, DRAINED).await.map_err(|e| {
            let refused = e.kind.is_refusal();
            let error = StepError::from(e);
            if refused {
                error.nothing_applied()
            } else {
                error
            }
        })?;
        tracing::info!(drained = %left, target_region = %self.target, "data-plane signal set");
        // The target's own signal lives in the region left: serve it if that region answers (a
        // target drained too would leave Route 53 answering as if both were healthy).
        // Concurrently with the wait for the alarm, so a blackholed region costs nothing.
        let serve_target = async {
            match bounded(self.deps.budget, s.publish(&self.target, SERVED)).await {
                Ok(()) => format!("the signal of {} set to {SERVED} in {left}", self.target),
                Err(e) => format!(
                    "the signal of {} could not be set in {left}: {e}",
                    self.target
                ),
            }
        };
        let alarm = async {
            let state = self.deps.await_alarm(ctx, &left, true, false).await;
            (state, started.elapsed().as_secs_f64())
        };
        let (target_signal, (state, alarm_seconds)) = tokio::join!(serve_target, alarm);
        let state = state?;
        let (confirmed, route53) = self.deps.confirm_unhealthy(ctx, &left).await;
        if !confirmed {
            tracing::warn!(%route53, "the data-plane shift is not confirmed by Route 53");
        }
        let (alarm, check) = s.of(&left);
        Ok(json!({
            "target_region": self.target,
            "drained_region": left,
            "alarm": { "name": alarm, "region": self.target, "state": format!("{state:?}"), "seconds": alarm_seconds },
            "health_check": check,
            "target_signal": target_signal,
            "route53_confirmed": confirmed,
            "route53": route53,
        }))
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        let left = self.deps.left(&self.target);
        let alarm = self
            .deps
            .signals
            .alarm(&left)
            .await
            .map_err(StepError::from)?;
        Ok(if alarm.state == AlarmState::Alarm {
            VerifyOutcome::Done(json!({
                "target_region": self.target,
                "drained_region": left,
                "alarm": { "name": alarm.name, "region": self.target, "state": "Alarm" },
                "route53_confirmed": false,
                "route53": "not read: the step was found done after a restart",
            }))
        } else {
            VerifyOutcome::NotDone
        })
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::Compensable
    }

    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        let left = self.deps.left(&self.target);
        self.deps
            .signals
            .publish(&left, SERVED)
            .await
            .map_err(StepError::from)?;
        self.deps.await_alarm(ctx, &left, false, true).await?;
        Ok(())
    }

    fn operator_check(&self) -> String {
        let left = self.deps.left(&self.target);
        let (alarm, _) = self.deps.signals.of(&left);
        format!(
            "read the state of alarm {alarm} in {} (ALARM drains {left})",
            self.target
        )
    }

    fn timeout(&self) -> Duration {
        let c = &self.deps.signals.config;
        c.alarm_timeout.get() + c.confirm_timeout.get() + self.deps.budget + Duration::from_secs(60)
    }
}

// ---------------------------------------------------------------------------------------------
// Serve the drained regions (graceful)
// ---------------------------------------------------------------------------------------------

/// Serves every drained region once a graceful move's first stage is in sync (module docs).
pub struct SignalClear {
    id: StepId,
    deps: DataPlaneDeps,
    verify_timeout: Duration,
}

impl SignalClear {
    pub fn new(deps: DataPlaneDeps, verify_timeout: Duration) -> Self {
        Self {
            id: StepId::new(SIGNAL_CLEAR_STEP),
            deps,
            verify_timeout,
        }
    }
}

#[async_trait]
impl Step for SignalClear {
    fn acts_on(&self) -> Option<crate::engine::OutageApi> {
        Some(crate::engine::OutageApi::CloudWatch)
    }

    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        "serve the regions drained by the data-plane DNS signal"
    }

    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        Ok(StepDescription {
            summary: "set every region's data-plane signal to 0 once the first stage is in sync, so the records' weights decide (undo: nothing — the stage's undo restores weights that give a drained region no traffic)".to_owned(),
            changes: Vec::new(),
        })
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let drains = self.deps.signals.drains(self.verify_timeout).await;
        let mut served = Vec::new();
        for (region, drain) in &drains {
            match drain {
                Drain::Served => {}
                Drain::Unknown(why) => {
                    return Err(StepError::retryable(format!(
                        "cannot read the data-plane signal of {region}: {why}"
                    )))
                }
                Drain::Drained => {
                    self.deps
                        .signals
                        .publish(region, SERVED)
                        .await
                        .map_err(StepError::from)?;
                    self.deps.await_alarm(ctx, region, false, false).await?;
                    tracing::info!(%region, "data-plane signal cleared");
                    served.push(region.clone());
                }
            }
        }
        Ok(json!({ "served": served }))
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        Ok(VerifyOutcome::NotDone)
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::Compensable
    }

    async fn compensate(&self, _ctx: &StepContext) -> Result<(), StepError> {
        // The stage's compensation restores the routing found at the start, in which a region
        // that was drained has no traffic: draining it again would change nothing.
        Ok(())
    }

    fn timeout(&self) -> Duration {
        2 * self.deps.signals.config.alarm_timeout.get() + self.verify_timeout
    }
}
