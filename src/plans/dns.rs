//! The `dns-switchover` plan: move the traffic of every record in `dns.records` to
//! `params.target_region`, and nothing else (no database, no workloads) — for DNS-only moves,
//! drills of the traffic shift, and as the DNS phases of the full failover.
//!
//! Mode `graceful` walks `dns.stages` (e.g. 10 → 50 → 100 % to the target), each stage applied,
//! awaited (`INSYNC`, then one TTL if configured) and held for `dns.hold` with the verification
//! probes before and after the hold; a failed verification unwinds the run to the routing found
//! at its start. `ungraceful` goes straight to 100 % without hold or verification: it is used when
//! the old region is lost, so there is nothing better to roll back to.
//!
//! Phases (one step each, so the run is visible step by step): `dns-preflight`, then per stage
//! `dns-stage-<p>-apply`, `dns-stage-<p>-sync` and (graceful) `dns-stage-<p>-hold`. The plan is
//! built from configuration and parameters only — what to write is decided by the steps from the
//! live records — so a resumed run rebuilds exactly the same plan.
//!
//! The phases are exposed by [`phases`] for plans that move traffic as one part of a larger move.
//!
//! `target_region` is required: defaulting it to "the region not receiving traffic" would make the
//! plan depend on the world at build time, and a run resumed after the traffic moved would then
//! target the other region.

use std::sync::Arc;

use serde_json::Value;

use super::params::{self, TARGET_REGION};
use super::{PlanInfo, PlanRegistry};
use crate::config::DnsConfig;
use crate::dns::dataplane::{
    DataPlaneDeps, DnsSignal, SignalClear, SignalPreflight, SIGNAL_CLEAR_STEP, SIGNAL_STEP,
};
use crate::dns::port::DnsApi;
use crate::dns::rate_limit::{RateLimitedDns, Route53Limits};
use crate::dns::steps::{
    DnsApplyStage, DnsAwaitSync, DnsHoldAndVerify, DnsPreflight, DnsSwitchoverDeps, DnsTimings,
    PREFLIGHT_STEP,
};
use crate::dns::verify::StageVerifier;
use crate::engine::{Mode, Phase, Plan, PlanError, Step};
use crate::health::port::HealthCheckStatusApi;
use crate::topology::RegionPair;

pub const NAME: &str = "dns-switchover";

/// The parameters `dns-switchover` accepts.
pub const PARAMETERS: &[&str] = &[TARGET_REGION];

/// What the DNS phases need: the `dns:` section, the pair, Route 53, the stage verifier, and the
/// timings and rate limit (production defaults from [`DnsPlanDeps::new`]).
#[derive(Clone)]
pub struct DnsPlanDeps {
    pub dns: Arc<DnsConfig>,
    pub pair: RegionPair,
    pub api: Arc<dyn DnsApi>,
    pub verifier: Arc<dyn StageVerifier>,
    pub timings: DnsTimings,
    pub limits: Route53Limits,
    /// `dns.mode: data_plane`: the signal (its Route 53 status reads go through the same token
    /// bucket as the rest).
    pub data_plane: Option<DataPlaneDeps>,
}

impl DnsPlanDeps {
    /// With production timings and Route 53's rate limit.
    pub fn new(
        dns: Arc<DnsConfig>,
        pair: RegionPair,
        api: Arc<dyn DnsApi>,
        verifier: Arc<dyn StageVerifier>,
    ) -> Self {
        Self {
            dns,
            pair,
            api,
            verifier,
            timings: DnsTimings::default(),
            limits: Route53Limits::default(),
            data_plane: None,
        }
    }

    /// The data-plane signal (`dns.mode: data_plane`).
    pub fn with_data_plane(mut self, data_plane: DataPlaneDeps) -> Self {
        self.data_plane = Some(data_plane);
        self
    }

    /// Explicit timings (tests, the lab).
    pub fn with_timings(mut self, timings: DnsTimings) -> Self {
        self.timings = timings;
        self
    }

    /// An explicit Route 53 rate limit (tests).
    pub fn with_limits(mut self, limits: Route53Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The steps' shared dependencies, Route 53 behind one token bucket: build this once and use
    /// it for every plan of the registry, so that all runs share the account's rate.
    pub fn steps(&self) -> DnsSwitchoverDeps {
        let api: Arc<dyn DnsApi> =
            Arc::new(RateLimitedDns::new(Arc::clone(&self.api), self.limits));
        DnsSwitchoverDeps {
            dns: Arc::clone(&self.dns),
            pair: self.pair.clone(),
            api: Arc::clone(&api),
            verifier: Arc::clone(&self.verifier),
            timings: self.timings,
            data_plane: self.data_plane.clone().map(|mut d| {
                d.status = api as Arc<dyn HealthCheckStatusApi>;
                d
            }),
        }
    }
}

/// What `dns-switchover` is, for `GET /v1/plans`.
pub fn info() -> PlanInfo {
    PlanInfo::new(
        NAME,
        "move the traffic of every record in dns.records to target_region, in stages with \
         verification (graceful) or at once (ungraceful)",
        PARAMETERS,
    )
    .moving_traffic()
}

/// Register `dns-switchover`. All its runs share one Route 53 token bucket.
pub fn register(registry: &mut PlanRegistry, deps: DnsPlanDeps) {
    register_with(registry, deps.pair.clone(), deps.steps());
}

/// Register `dns-switchover` on steps' dependencies built once ([`DnsPlanDeps::steps`]), shared
/// with other plans that write Route 53.
pub fn register_with(registry: &mut PlanRegistry, pair: RegionPair, steps: DnsSwitchoverDeps) {
    registry.register(info(), move |mode, params| {
        build(mode, params, &pair, &steps)
    });
}

/// Build the plan for `mode` from the request's parameters.
pub fn build(
    mode: Mode,
    params: &Value,
    pair: &RegionPair,
    deps: &DnsSwitchoverDeps,
) -> Result<Plan, PlanError> {
    let obj = params::object(params, PARAMETERS)?;
    let target = params::target_region(obj, pair)?;
    Plan::new(NAME, phases(mode, &target, deps)?)
}

/// The stages a mode walks through.
pub fn stages_for(mode: Mode, dns: &DnsConfig) -> Vec<u8> {
    match mode {
        Mode::Graceful => dns.stages.clone(),
        Mode::Ungraceful => vec![100],
    }
}

/// The DNS phases moving the traffic to `target` (one of the pair, already validated):
/// `dns-preflight`, then per stage apply, sync and (graceful) hold.
pub fn phases(mode: Mode, target: &str, deps: &DnsSwitchoverDeps) -> Result<Vec<Phase>, PlanError> {
    let stages = stages_for(mode, &deps.dns);
    crate::dns::planner::check_stages(&stages).map_err(|e| PlanError::Invalid {
        message: e.to_string(),
    })?;
    let target = target.to_owned();
    if let Some(dp) = &deps.data_plane {
        let check = Arc::new(SignalPreflight::new(
            dp.clone(),
            deps.clone(),
            target.clone(),
        )) as Arc<dyn Step>;
        if mode == Mode::Ungraceful {
            // No Route 53 call: the signal in the target region moves the traffic.
            return Ok(vec![
                Phase::steps(PREFLIGHT_STEP, vec![check]),
                Phase::steps(
                    SIGNAL_STEP,
                    vec![Arc::new(DnsSignal::new(dp.clone(), target)) as Arc<dyn Step>],
                ),
            ]);
        }
    }
    let mut preflight = vec![Arc::new(DnsPreflight::new(
        deps.clone(),
        target.clone(),
        stages.clone(),
    )) as Arc<dyn Step>];
    if let Some(dp) = &deps.data_plane {
        preflight.push(Arc::new(SignalPreflight::new(
            dp.clone(),
            deps.clone(),
            target.clone(),
        )));
    }
    let mut phases = vec![Phase::steps(PREFLIGHT_STEP, preflight)];
    let mut previous = None;
    for &percent in &stages {
        phases.push(Phase::steps(
            format!("dns-stage-{percent}-apply"),
            vec![Arc::new(DnsApplyStage::new(
                deps.clone(),
                target.clone(),
                percent,
                previous,
            ))],
        ));
        phases.push(Phase::steps(
            format!("dns-stage-{percent}-sync"),
            vec![Arc::new(DnsAwaitSync::new(deps.clone(), percent))],
        ));
        if let (Some(dp), None) = (&deps.data_plane, previous) {
            // The first stage is in sync: the weights now say where the traffic goes.
            phases.push(Phase::steps(
                SIGNAL_CLEAR_STEP,
                vec![Arc::new(SignalClear::new(
                    dp.clone(),
                    deps.timings.verify_timeout,
                ))],
            ));
        }
        if mode == Mode::Graceful {
            phases.push(Phase::steps(
                format!("dns-stage-{percent}-hold"),
                vec![Arc::new(DnsHoldAndVerify::new(
                    deps.clone(),
                    target.clone(),
                    percent,
                    deps.dns.hold.get(),
                ))],
            ));
        }
        previous = Some(percent);
    }
    Ok(phases)
}
