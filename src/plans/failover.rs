//! The `failover` plan: move the region — database writer, users, traffic (and, with GitOps, the
//! workloads) — to `params.target_region`, gracefully or after the region being left is lost.
//! See [`super::takeover`] for the phases and what abort does at each of them.
//!
//! Parameters: `target_region` (the API fills in the standby region at request time when it is
//! missing, and the run stores it, so a resumed run is rebuilt identically) and `force` (go ahead
//! despite topology drift — recorded with the run's parameters in the journal and audit log).

use std::sync::Arc;

use serde_json::Value;

use super::params::{self, TARGET_REGION};
use super::takeover::{self, Kind, TakeoverDeps};
use super::{PlanInfo, PlanRegistry};
use crate::engine::{Mode, Plan, PlanError};

pub const NAME: &str = "failover";

/// Go ahead despite topology drift.
pub const FORCE: &str = "force";

/// Ungraceful: go ahead although the data loss is unknown or over `policy.max_data_loss` (the
/// policy sets it on the run it escalates to a person; approving the run accepts the loss).
pub const ACCEPT_DATA_LOSS: &str = "accept_data_loss";

/// The parameters `failover` accepts.
pub const PARAMETERS: &[&str] = &[TARGET_REGION, FORCE, ACCEPT_DATA_LOSS];

/// What `failover` is, for `GET /v1/plans`.
pub fn info() -> PlanInfo {
    PlanInfo::new(
        NAME,
        "move the region to target_region (default: the standby): preflight, final Cognito sync, \
         Aurora promotion, DNS shift, record the active region (graceful: no data loss, staged; \
         ungraceful: the region being left is lost, bounded data loss, traffic at once)",
        PARAMETERS,
    )
    .moving_traffic()
    .moving_writer()
    .defaulting_target_to_standby()
}

/// Register `failover`.
pub fn register(registry: &mut PlanRegistry, deps: Arc<TakeoverDeps>) {
    registry.register(info(), move |mode, params| build(mode, params, &deps));
}

/// Build the plan for `mode` from the request's parameters.
pub fn build(mode: Mode, params: &Value, deps: &TakeoverDeps) -> Result<Plan, PlanError> {
    let obj = params::object(params, PARAMETERS)?;
    let target = params::target_region(obj, &deps.pair)?;
    let force = params::boolean(obj, FORCE)?.unwrap_or(false);
    let accept_data_loss = params::boolean(obj, ACCEPT_DATA_LOSS)?.unwrap_or(false);
    let phases = takeover::phases(
        Kind::Failover {
            force,
            accept_data_loss,
        },
        mode,
        &target,
        deps,
    )?;
    Plan::new(NAME, phases.into_phases())
}
