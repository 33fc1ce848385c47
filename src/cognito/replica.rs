//! Native replica mode: for pools that use Cognito's own multi-Region replication, failoverd does
//! not copy users; it reports the replica's status and, in a failover, flips the Route 53 health
//! check that steers clients to the replica's region.
//!
//! Flipping means setting the health check's `Inverted` flag: an inverted check reports the
//! opposite of what its endpoint answers, so the (healthy) hot endpoint reads unhealthy and the
//! failover record sends clients to the cold region; un-inverting it is the compensation. Route 53
//! has `UpdateHealthCheck` for this, but failoverd's DNS port (`crate::dns::port`) and health port
//! (`crate::health::port::HealthCheckStatusApi`) only read health checks, so this module defines
//! the smallest port it needs, [`HealthCheckSwitch`], for the AWS adapter to implement.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::{json, Value};

use super::port::{ReplicaRole, ReplicaStatus, UserDirectory, UserPoolReplica};
use crate::engine::{
    RetryPolicy, Reversibility, Step, StepContext, StepDescription, StepError, StepId,
    VerifyOutcome,
};
use crate::port::Result;

/// Writing a Route 53 health check's `Inverted` flag (`GetHealthCheck` / `UpdateHealthCheck` with
/// `Inverted`). Missing health checks are `ErrorKind::NotFound` (`NoSuchHealthCheck`).
#[async_trait]
pub trait HealthCheckSwitch: Send + Sync {
    /// `GetHealthCheck`: whether the check is inverted.
    async fn health_check_inverted(&self, health_check_id: &str) -> Result<bool>;
    /// `UpdateHealthCheck` with `Inverted = inverted` (idempotent).
    async fn set_health_check_inverted(&self, health_check_id: &str, inverted: bool) -> Result<()>;
}

/// What `/v1/status` shows about a native replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReplicaView {
    pub region: Option<String>,
    pub status: String,
    pub role: String,
    pub user_pool_arn: Option<String>,
}

impl From<&UserPoolReplica> for ReplicaView {
    fn from(r: &UserPoolReplica) -> Self {
        Self {
            region: r.region.clone(),
            status: match &r.status {
                Some(ReplicaStatus::Creating) => "creating".into(),
                Some(ReplicaStatus::Inactive) => "inactive".into(),
                Some(ReplicaStatus::Active) => "active".into(),
                Some(ReplicaStatus::Deleting) => "deleting".into(),
                Some(ReplicaStatus::Other(s)) => s.clone(),
                None => "unknown".into(),
            },
            role: match &r.role {
                Some(ReplicaRole::Primary) => "primary".into(),
                Some(ReplicaRole::Secondary) => "secondary".into(),
                Some(ReplicaRole::Other(s)) => s.clone(),
                None => "unknown".into(),
            },
            user_pool_arn: r.user_pool_arn.clone(),
        }
    }
}

/// Bound on `ListUserPoolReplicas` pages (a pool has a handful of replicas).
const MAX_REPLICA_PAGES: usize = 100;

/// Every replica of `pool_id` (`ListUserPoolReplicas`, all pages).
pub async fn list_replicas(dir: &dyn UserDirectory, pool_id: &str) -> Result<Vec<UserPoolReplica>> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_REPLICA_PAGES {
        let page = dir
            .list_user_pool_replicas(pool_id, token.as_deref())
            .await?;
        out.extend(page.items);
        match page.next_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    Ok(out)
}

/// Whether the replica in `region` is active (can serve sign-ins).
pub fn replica_active(replicas: &[UserPoolReplica], region: &str) -> bool {
    replicas
        .iter()
        .any(|r| r.region.as_deref() == Some(region) && r.status == Some(ReplicaStatus::Active))
}

pub const REPLICA_FAILOVER_STEP: &str = "cognito-replica-failover";

/// The failover step of native replica mode: check that the cold region's replica is active, then
/// invert the configured health check. Compensable (un-invert).
pub struct ReplicaFailover {
    id: StepId,
    pub directory: Arc<dyn UserDirectory>,
    pub pool_id: String,
    pub cold_region: String,
    pub health_check_id: String,
    pub switch: Arc<dyn HealthCheckSwitch>,
    /// Ungraceful failovers do not wait for the replica to read `active` (the hot region's API,
    /// which answers for the replicas, may be the thing that is down).
    pub require_active_replica: bool,
}

impl ReplicaFailover {
    pub fn new(
        directory: Arc<dyn UserDirectory>,
        pool_id: String,
        cold_region: String,
        health_check_id: String,
        switch: Arc<dyn HealthCheckSwitch>,
        require_active_replica: bool,
    ) -> Self {
        Self {
            id: StepId::new(REPLICA_FAILOVER_STEP),
            directory,
            pool_id,
            cold_region,
            health_check_id,
            switch,
            require_active_replica,
        }
    }
}

fn step_error(what: &str, e: crate::port::Error) -> StepError {
    if e.is_retryable() {
        StepError::retryable(format!("{what}: {e}"))
    } else {
        StepError::permanent(format!("{what}: {e}"))
    }
}

#[async_trait]
impl Step for ReplicaFailover {
    fn acts_on(&self) -> Option<crate::engine::OutageApi> {
        Some(crate::engine::OutageApi::Route53)
    }

    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        "flip the Cognito replica health check"
    }

    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        Ok(StepDescription {
            summary: format!(
                "send sign-ins of pool {} to its replica in {}",
                self.pool_id, self.cold_region
            ),
            changes: vec![format!(
                "route53: health check {} inverted false -> true",
                self.health_check_id
            )],
        })
    }

    async fn execute(&self, _ctx: &StepContext) -> Result<Value, StepError> {
        let mut replica_status = Value::Null;
        if self.require_active_replica {
            let replicas = list_replicas(self.directory.as_ref(), &self.pool_id)
                .await
                .map_err(|e| step_error("ListUserPoolReplicas", e))?;
            if !replica_active(&replicas, &self.cold_region) {
                return Err(StepError::permanent(format!(
                    "the replica of pool {} in {} is not active: {:?}",
                    self.pool_id,
                    self.cold_region,
                    replicas.iter().map(ReplicaView::from).collect::<Vec<_>>()
                )));
            }
            replica_status = json!("active");
        }
        self.switch
            .set_health_check_inverted(&self.health_check_id, true)
            .await
            .map_err(|e| step_error("UpdateHealthCheck", e))?;
        Ok(json!({
            "health_check_id": self.health_check_id,
            "inverted": true,
            "replica": replica_status,
        }))
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        let inverted = self
            .switch
            .health_check_inverted(&self.health_check_id)
            .await
            .map_err(|e| step_error("GetHealthCheck", e))?;
        Ok(if inverted {
            VerifyOutcome::Done(
                json!({ "health_check_id": self.health_check_id, "inverted": true }),
            )
        } else {
            VerifyOutcome::NotDone
        })
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::Compensable
    }

    async fn compensate(&self, _ctx: &StepContext) -> Result<(), StepError> {
        self.switch
            .set_health_check_inverted(&self.health_check_id, false)
            .await
            .map_err(|e| step_error("UpdateHealthCheck", e))
    }

    fn operator_check(&self) -> String {
        format!(
            "check in Route 53 whether health check {} is inverted (sign-ins go to {})",
            self.health_check_id, self.cold_region
        )
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(region: &str, status: ReplicaStatus) -> UserPoolReplica {
        UserPoolReplica {
            region: Some(region.into()),
            status: Some(status),
            role: Some(ReplicaRole::Secondary),
            user_pool_arn: None,
        }
    }

    #[test]
    fn only_an_active_replica_in_the_region_counts() {
        let rs = vec![
            replica("us-east-1", ReplicaStatus::Active),
            replica("us-west-2", ReplicaStatus::Creating),
        ];
        assert!(replica_active(&rs, "us-east-1"));
        assert!(!replica_active(&rs, "us-west-2"));
        assert!(!replica_active(&rs, "eu-west-1"));
        let v = ReplicaView::from(&rs[1]);
        assert_eq!(
            (v.status.as_str(), v.role.as_str()),
            ("creating", "secondary")
        );
    }
}
