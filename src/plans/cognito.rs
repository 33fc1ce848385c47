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

/// The sync pass as a step (for this plan and the failover plan's final sync).
pub fn sync_step(handle: CognitoHandle) -> Arc<dyn Step> {
    Arc::new(CognitoSyncStep {
        id: StepId::new(SYNC_STEP),
        handle,
    })
}

/// One sync pass. Idempotent by construction (it writes only the difference it finds), so
/// `verify` answers `NotDone` and a retry or resumed run simply runs another pass — which resumes
/// from the checkpoint and finds finished work already in place.
pub struct CognitoSyncStep {
    id: StepId,
    handle: CognitoHandle,
}

#[async_trait]
impl Step for CognitoSyncStep {
    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        "copy Cognito users, groups and memberships to the cold pool"
    }

    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        let [hot, cold] = self.handle.regions().regions();
        let [hot_pool, cold_pool] = self.handle.pools();
        Ok(StepDescription {
            summary: format!("sync Cognito pool {hot_pool} ({hot}) to {cold_pool} ({cold})"),
            changes: vec![format!(
                "cognito {cold}: create/update/enable/disable users, create groups, \
                 add/remove memberships in {cold_pool} to match {hot_pool}"
            )],
        })
    }

    async fn execute(&self, _ctx: &StepContext) -> Result<Value, StepError> {
        match self.handle.sync_now().await {
            Ok(report) => {
                let mut out = serde_json::to_value(&report).unwrap_or(Value::Null);
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
        }
    }

    /// A full copy of 100,000 users at half of the 50/s creation quota takes about 70 minutes;
    /// passes after the first take seconds. Two hours covers the first copy of large pools.
    fn timeout(&self) -> Duration {
        Duration::from_secs(2 * 3600)
    }
}
