//! The `aurora-switchover` plan: move the writer of every configured Aurora global database to
//! `params.target_region`, and nothing else (no DNS, no workloads) — for database-only
//! switchovers, drills of the database part, and as the database phases of the full failover.
//!
//! Mode `graceful` uses `SwitchoverGlobalCluster` (RPO 0, requires fresh lag within `max_lag`);
//! `ungraceful` uses `FailoverGlobalCluster` with `AllowDataLoss` and records the estimated data
//! loss. Three phases, each holding one step per global database (run concurrently):
//! `aurora-check` → `aurora-promote` → `aurora-wait` (see `crate::aurora`), exposed by
//! [`phases`] for plans that move the writer as one part of a larger move.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::params::{self, TARGET_REGION};
use super::{PlanInfo, PlanRegistry};
use crate::aurora::{
    AuroraPrecheck, AuroraPromote, AuroraStepDeps, AuroraTarget, AuroraWaitWriter, Promotion,
    DEFAULT_POLL_INTERVAL, DEFAULT_PROMOTION_TIMEOUT,
};
use crate::config::AuroraConfig;
use crate::engine::{Mode, Phase, Plan, PlanError, Step};
use crate::replication::port::GlobalDatabaseApi;
use crate::replication::{LagReadings, ReplicationPorts};
use crate::topology::RegionPair;

pub const NAME: &str = "aurora-switchover";

/// The parameters `aurora-switchover` accepts.
pub const PARAMETERS: &[&str] = &[TARGET_REGION];

/// What the plan needs: the configured global databases, each region's API and the lag readings.
#[derive(Clone)]
pub struct AuroraPlanDeps {
    pub pair: RegionPair,
    pub databases: Vec<AuroraConfig>,
    /// The global database API of each region of the pair.
    pub apis: BTreeMap<String, Arc<dyn GlobalDatabaseApi>>,
    pub lag: Arc<dyn LagReadings>,
    pub poll_interval: Duration,
    pub promotion_timeout: Duration,
}

impl AuroraPlanDeps {
    /// From the configuration's `replication.aurora`, the pair's ports and the replication
    /// monitor's handle, with production timings.
    pub fn new(
        databases: &[AuroraConfig],
        pair: &RegionPair,
        ports: &ReplicationPorts,
        lag: Arc<dyn LagReadings>,
    ) -> Self {
        Self {
            pair: pair.clone(),
            databases: databases.to_vec(),
            apis: pair
                .regions()
                .iter()
                .filter_map(|r| {
                    ports
                        .region(r)
                        .map(|p| ((*r).to_owned(), Arc::clone(&p.global_database)))
                })
                .collect(),
            lag,
            poll_interval: DEFAULT_POLL_INTERVAL,
            promotion_timeout: DEFAULT_PROMOTION_TIMEOUT,
        }
    }
}

/// What `aurora-switchover` is, for `GET /v1/plans`.
pub fn info() -> PlanInfo {
    PlanInfo::new(
        NAME,
        "move the writer of every Aurora global database in replication.aurora to target_region \
         (graceful: switchover, no data loss; ungraceful: failover allowing bounded data loss)",
        PARAMETERS,
    )
    .moving_writer()
}

/// Register `aurora-switchover`.
pub fn register(registry: &mut PlanRegistry, deps: AuroraPlanDeps) {
    let deps = Arc::new(deps);
    registry.register(info(), move |mode, params| build(mode, params, &deps));
}

/// Build the plan for `mode` from the request's parameters.
pub fn build(mode: Mode, params: &Value, deps: &AuroraPlanDeps) -> Result<Plan, PlanError> {
    let obj = params::object(params, PARAMETERS)?;
    let target_region = params::target_region(obj, &deps.pair)?;
    Plan::new(NAME, phases(mode, &target_region, deps)?)
}

/// The Aurora phases moving every global database's writer to `target_region` (one of the pair,
/// already validated): `aurora-check`, `aurora-promote`, `aurora-wait`.
pub fn phases(
    mode: Mode,
    target_region: &str,
    deps: &AuroraPlanDeps,
) -> Result<Vec<Phase>, PlanError> {
    let s = steps(mode, target_region, deps)?;
    Ok(vec![
        Phase::steps("aurora-check", s.checks),
        Phase::steps("aurora-promote", s.promotes),
        Phase::steps("aurora-wait", s.waits),
    ])
}

/// The steps of the Aurora phases, one per global database in each list, for plans that place
/// them in phases of their own (the failover runs the checks in its preflight).
pub struct AuroraSteps {
    pub checks: Vec<Arc<dyn Step>>,
    pub promotes: Vec<Arc<dyn Step>>,
    pub waits: Vec<Arc<dyn Step>>,
}

/// Which checks the steps make before the promotion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checks {
    /// A failover (or a plain switchover): the target may already be the writer.
    Failover,
    /// A failback: the region being left must still be the global database's primary.
    Failback,
}

/// The Aurora steps moving every global database's writer to `target_region`.
pub fn steps(
    mode: Mode,
    target_region: &str,
    deps: &AuroraPlanDeps,
) -> Result<AuroraSteps, PlanError> {
    steps_with(mode, target_region, deps, Checks::Failover)
}

/// [`steps`] with the checks of `checks`.
pub fn steps_with(
    mode: Mode,
    target_region: &str,
    deps: &AuroraPlanDeps,
    checks_for: Checks,
) -> Result<AuroraSteps, PlanError> {
    let target_region = target_region.to_owned();
    if deps.databases.is_empty() {
        return Err(PlanError::Invalid {
            message: "replication.aurora configures no global database".into(),
        });
    }
    let api = deps
        .apis
        .get(&target_region)
        .ok_or_else(|| PlanError::Invalid {
            message: format!("no AWS clients for region {target_region}"),
        })?;
    let source_region = deps
        .pair
        .other(&target_region)
        .ok_or_else(|| PlanError::Invalid {
            message: format!("{target_region} is not one of the pair {}", deps.pair),
        })?
        .to_owned();
    let promotion = Promotion::for_mode(mode);
    let step_deps = AuroraStepDeps {
        api: Arc::clone(api),
        lag: Arc::clone(&deps.lag),
        poll_interval: deps.poll_interval,
        promotion_timeout: deps.promotion_timeout,
    };
    let mut out = AuroraSteps {
        checks: Vec::new(),
        promotes: Vec::new(),
        waits: Vec::new(),
    };
    for db in &deps.databases {
        let cluster_in = |region: &str| {
            db.clusters
                .get(region)
                .cloned()
                .ok_or_else(|| PlanError::Invalid {
                    message: format!(
                        "replication.aurora {} has no cluster in {region}",
                        db.global_cluster
                    ),
                })
        };
        let target = AuroraTarget {
            global_cluster: db.global_cluster.clone(),
            target_region: target_region.clone(),
            target_cluster: cluster_in(&target_region)?,
            source_region: source_region.clone(),
            source_cluster: cluster_in(&source_region)?,
            max_lag: db.max_lag.get(),
        };
        let check = AuroraPrecheck::new(target.clone(), promotion, step_deps.clone());
        out.checks.push(Arc::new(match checks_for {
            Checks::Failover => check,
            Checks::Failback => check.for_failback(),
        }));
        out.promotes.push(Arc::new(AuroraPromote::new(
            target.clone(),
            promotion,
            step_deps.clone(),
        )));
        out.waits
            .push(Arc::new(AuroraWaitWriter::new(target, step_deps.clone())));
    }
    Ok(out)
}
