//! Cognito plans: `cognito-sync` (one sync pass now, e.g. before a planned switchover or as the
//! final sync of a failover) and `cognito-replica-failover` (native replica mode: flip the
//! configured Route 53 health check so sign-ins go to the replica's region).
//!
//! Both take no parameters; the pools, regions and health check come from configuration through
//! the [`CognitoHandle`], so a resumed run rebuilds the same plan. The sync step shares the
//! background task's lock and checkpoint, so a step never runs alongside a background pass and a
//! step interrupted by a crash resumes where it stopped.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{params, PlanInfo, PlanRegistry};
use crate::cognito::monitor::{CognitoError, CognitoHandle};
use crate::cognito::replica::{HealthCheckSwitch, ReplicaFailover, REPLICA_FAILOVER_STEP};
use crate::config::CognitoMode;
use crate::engine::{
    Mode, Phase, Plan, PlanError, RetryPolicy, Reversibility, Step, StepContext, StepDescription,
    StepError, StepId, VerifyOutcome,
};

pub const SYNC_PLAN: &str = "cognito-sync";
pub const REPLICA_FAILOVER_PLAN: &str = "cognito-replica-failover";
pub const SYNC_STEP: &str = "cognito-sync";

/// What the Cognito plans need: the monitor's handle (pools, regions, the sync's lock and
/// checkpoint) and, for native replica mode, the health check to flip and the port that flips it.
#[derive(Clone)]
pub struct CognitoPlanDeps {
    pub handle: CognitoHandle,
    pub replica_health_check_id: Option<String>,
    pub switch: Option<Arc<dyn HealthCheckSwitch>>,
}

/// What `cognito-sync` is, for `GET /v1/plans`.
pub fn sync_info() -> PlanInfo {
    PlanInfo::new(
        SYNC_PLAN,
        "one Cognito sync pass now: copy users, groups and memberships from the hot pool to the \
         cold pool",
        &[],
    )
}

/// What `cognito-replica-failover` is, for `GET /v1/plans`.
pub fn replica_failover_info() -> PlanInfo {
    PlanInfo::new(
        REPLICA_FAILOVER_PLAN,
        "native replica mode: flip the configured Route 53 health check so sign-ins go to the \
         replica's region",
        &[],
    )
}

/// Register the plans that fit the handle's mode: `cognito-sync` in sync mode;
/// `cognito-replica-failover` in native replica mode when a health check id and a `switch` are
/// given.
pub fn register(registry: &mut PlanRegistry, deps: CognitoPlanDeps) {
    let CognitoPlanDeps {
        handle,
        replica_health_check_id,
        switch,
    } = deps;
    match handle.mode() {
        CognitoMode::Sync => {
            registry.register(sync_info(), move |_mode, params| {
                params::object(params, &[])?;
                Plan::new(SYNC_PLAN, sync_phases(&handle))
            });
        }
        CognitoMode::NativeReplica => {
            let (Some(id), Some(switch)) = (replica_health_check_id, switch) else {
                tracing::warn!(
                    "cognito native replica mode without replica_health_check_id or a health \
                     check port: no failover plan registered"
                );
                return;
            };
            registry.register(replica_failover_info(), move |mode, params| {
                build_replica_failover(mode, params, &handle, &id, &switch)
            });
        }
    }
}

/// The phase of one sync pass (this plan, and the final sync of a failover).
pub fn sync_phases(handle: &CognitoHandle) -> Vec<Phase> {
    vec![Phase::steps(SYNC_STEP, vec![sync_step(handle.clone())])]
}

fn build_replica_failover(
    mode: Mode,
    params: &Value,
    handle: &CognitoHandle,
    health_check_id: &str,
    switch: &Arc<dyn HealthCheckSwitch>,
) -> Result<Plan, PlanError> {
    params::object(params, &[])?;
    let step = ReplicaFailover::new(
        handle.hot_directory(),
        handle.pools()[0].clone(),
        handle.regions().cold().to_owned(),
        health_check_id.to_owned(),
        Arc::clone(switch),
        mode == Mode::Graceful,
    );
    Plan::new(
        REPLICA_FAILOVER_PLAN,
        vec![Phase::steps(REPLICA_FAILOVER_STEP, vec![Arc::new(step)])],
    )
}

/// The sync pass in the current direction as a step (this plan).
pub fn sync_step(handle: CognitoHandle) -> Arc<dyn Step> {
    Arc::new(CognitoSyncStep {
        id: StepId::new(SYNC_STEP),
        name: "copy Cognito users, groups and memberships from the active pool to the standby \
               pool"
            .into(),
        handle,
        towards: None,
    })
}

/// A pass copying *into* `destination`'s pool from the other region's, whatever the current
/// direction: the failover's final sync (`step_id` `cognito-final-sync`) and the failback's
/// reverse sync (`cognito-reverse-sync`).
pub fn sync_towards_step(handle: CognitoHandle, step_id: &str, destination: &str) -> Arc<dyn Step> {
    let source = handle.regions().other(destination).unwrap_or_default();
    Arc::new(CognitoSyncStep {
        id: StepId::new(step_id),
        name: format!("copy Cognito users, groups and memberships from {source} to {destination}"),
        handle,
        towards: Some(destination.to_owned()),
    })
}

/// One sync pass. Idempotent by construction (it writes only the difference it finds), so
/// `verify` answers `NotDone` and a retry or resumed run simply runs another pass — which resumes
/// from the checkpoint and finds finished work already in place.
pub struct CognitoSyncStep {
    id: StepId,
    name: String,
    handle: CognitoHandle,
    /// `None`: the current direction; `Some(region)`: into that region's pool.
    towards: Option<String>,
}

impl CognitoSyncStep {
    /// Source and destination regions of the pass this step runs.
    fn direction(&self) -> (String, String) {
        let pair = self.handle.regions();
        match &self.towards {
            Some(to) => (pair.other(to).unwrap_or_default().to_owned(), to.clone()),
            None => {
                let from = self
                    .handle
                    .source_region()
                    .unwrap_or_else(|| pair.hot().to_owned());
                let to = pair.other(&from).unwrap_or_default().to_owned();
                (from, to)
            }
        }
    }
}

#[async_trait]
impl Step for CognitoSyncStep {
    fn acts_on(&self) -> Option<crate::engine::OutageApi> {
        Some(crate::engine::OutageApi::Cognito)
    }

    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        let (from, to) = self.direction();
        let from_pool = self.handle.pool_of(&from).unwrap_or_default();
        let to_pool = self.handle.pool_of(&to).unwrap_or_default();
        Ok(StepDescription {
            summary: format!("sync Cognito pool {from_pool} ({from}) to {to_pool} ({to})"),
            changes: vec![format!(
                "cognito {to}: create/update/enable/disable users, create groups, \
                 add/remove memberships in {to_pool} to match {from_pool}"
            )],
        })
    }

    async fn execute(&self, _ctx: &StepContext) -> Result<Value, StepError> {
        let result = match &self.towards {
            Some(to) => self.handle.sync_towards(to).await,
            None => self.handle.sync_now().await,
        };
        match result {
            Ok(report) => {
                let (from, to) = self.direction();
                let mut out = serde_json::to_value(&report).unwrap_or(Value::Null);
                out["from_region"] = json!(from);
                out["to_region"] = json!(to);
                out["measurements"] = json!({
                    "cognito_sync_seconds": report.duration_ms as f64 / 1000.0,
                    "cognito_drift_remaining": report.drift_remaining,
                });
                Ok(out)
            }
            Err(CognitoError::Sync(e)) if e.is_retryable() => {
                Err(StepError::retryable(e.to_string()))
            }
            Err(e) => Err(StepError::permanent(e.to_string())),
        }
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        Ok(VerifyOutcome::NotDone)
    }

    /// Copies in the cold pool need no undoing: they only make the standby more ready.
    fn reversibility(&self) -> Reversibility {
        Reversibility::NoSideEffect
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(60),
            deadline: None,
        }
    }

    /// A full copy of 100,000 users at half of the 50/s creation quota takes about 70 minutes;
    /// passes after the first take seconds. Two hours covers the first copy of large pools.
    fn timeout(&self) -> Duration {
        Duration::from_secs(2 * 3600)
    }
}
