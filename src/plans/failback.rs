//! The `failback` plan: back to the original region once it has recovered. Always graceful:
//! the preflight checks that the target is healthy and that every Aurora global database has it
//! as a secondary again, with fresh lag within `max_lag` — after a detach-and-promote it is not,
//! and the refusal lists the operator's steps to rebuild the global database
//! (`runbooks/failback.md`); a **reverse Cognito sync** copies into the target's pool what
//! changed in the standby's during the outage (deletions guarded as in the forward sync); then
//! the graceful takeover towards it (see [`super::takeover`]).

use std::sync::Arc;

use serde_json::Value;

use super::params::{self, TARGET_REGION};
use super::takeover::{self, Kind, TakeoverDeps};
use super::{PlanInfo, PlanRegistry};
use crate::engine::{Mode, Plan, PlanError};

pub const NAME: &str = "failback";

/// The parameters `failback` accepts.
pub const PARAMETERS: &[&str] = &[TARGET_REGION];

/// What `failback` is, for `GET /v1/plans`.
pub fn info() -> PlanInfo {
    PlanInfo::new(
        NAME,
        "return to the recovered original region (target_region, default: the standby): check it \
         is an Aurora secondary again, reverse Cognito sync, then a graceful failover towards it",
        PARAMETERS,
    )
    .moving_traffic()
    .moving_writer()
    .defaulting_target_to_standby()
}

/// Register `failback`.
pub fn register(registry: &mut PlanRegistry, deps: Arc<TakeoverDeps>) {
    registry.register(info(), move |mode, params| build(mode, params, &deps));
}

/// Build the plan from the request's parameters; `ungraceful` is refused.
pub fn build(mode: Mode, params: &Value, deps: &TakeoverDeps) -> Result<Plan, PlanError> {
    let obj = params::object(params, PARAMETERS)?;
    let target = params::target_region(obj, &deps.pair)?;
    if mode != Mode::Graceful {
        return Err(PlanError::Invalid {
            message: "failback is graceful only: both regions must be up (for a region that is \
                      lost, run failover in ungraceful mode)"
                .into(),
        });
    }
    let phases = takeover::phases(Kind::Failback, mode, &target, deps)?;
    Plan::new(NAME, phases.into_phases())
}
