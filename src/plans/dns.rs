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
//! `target_region` is required: defaulting it to "the region not receiving traffic" would make the
//! plan depend on the world at build time, and a run resumed after the traffic moved would then
//! target the other region.

use std::sync::Arc;

use serde_json::Value;

use super::{params, PlanRegistry};
use crate::config::DnsConfig;
use crate::dns::port::DnsApi;
use crate::dns::rate_limit::{RateLimitedDns, Route53Limits};
use crate::dns::steps::{
    DnsApplyStage, DnsAwaitSync, DnsHoldAndVerify, DnsPreflight, DnsSwitchoverDeps, DnsTimings,
    PREFLIGHT_STEP,
};
use crate::dns::verify::StageVerifier;
use crate::engine::{Mode, Phase, Plan, PlanError, Step};

pub const NAME: &str = "dns-switchover";

/// Register `dns-switchover` with production timings and Route 53's rate limit. All runs share
/// one token bucket.
pub fn register(
    registry: &mut PlanRegistry,
    dns: Arc<DnsConfig>,
    regions: [String; 2],
    api: Arc<dyn DnsApi>,
    verifier: Arc<dyn StageVerifier>,
) {
    register_with(
        registry,
        dns,
        regions,
        api,
        verifier,
        DnsTimings::default(),
        Route53Limits::default(),
    );
}

/// [`register`] with explicit timings and limits (tests, the lab).
pub fn register_with(
    registry: &mut PlanRegistry,
    dns: Arc<DnsConfig>,
    regions: [String; 2],
    api: Arc<dyn DnsApi>,
    verifier: Arc<dyn StageVerifier>,
    timings: DnsTimings,
    limits: Route53Limits,
) {
    let deps = DnsSwitchoverDeps {
        dns,
        regions,
        api: Arc::new(RateLimitedDns::new(api, limits)),
        verifier,
        timings,
    };
    registry.register(NAME, move |mode, params| build(mode, params, &deps));
}

/// The validated `target_region` parameter.
pub fn target_region(params: &Value, regions: &[String; 2]) -> Result<String, PlanError> {
    let obj = params::object(params, &["target_region"])?;
    match obj.and_then(|o| o.get("target_region")) {
        Some(Value::String(r)) if regions.contains(r) => Ok(r.clone()),
        Some(Value::String(r)) => Err(params::bad(
            "target_region",
            format!(
                "{r:?} is not one of the pair ({}, {})",
                regions[0], regions[1]
            ),
        )),
        Some(_) => Err(params::bad("target_region", "must be a region name")),
        None => Err(params::bad(
            "target_region",
            format!(
                "required: the region to send the traffic to ({} or {})",
                regions[0], regions[1]
            ),
        )),
    }
}

/// The stages a mode walks through.
pub fn stages_for(mode: Mode, dns: &DnsConfig) -> Vec<u8> {
    match mode {
        Mode::Graceful => dns.stages.clone(),
        Mode::Ungraceful => vec![100],
    }
}

/// Build the plan for `mode`.
pub fn build(mode: Mode, params: &Value, deps: &DnsSwitchoverDeps) -> Result<Plan, PlanError> {
    let target = target_region(params, &deps.regions)?;
    let stages = stages_for(mode, &deps.dns);
    crate::dns::planner::check_stages(&stages).map_err(|e| PlanError::Invalid {
        message: e.to_string(),
    })?;
    let mut phases = vec![Phase::steps(
        PREFLIGHT_STEP,
        vec![Arc::new(DnsPreflight::new(
            deps.clone(),
            target.clone(),
            stages.clone(),
        )) as Arc<dyn Step>],
    )];
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
    Plan::new(NAME, phases)
}
