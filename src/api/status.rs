//! `GET /v1/status`: what failoverd knows right now.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use time::OffsetDateTime;

use super::AppState;
use crate::engine::RunnerStatus;
use crate::status::ComponentStatus;

/// `/v1/status` must answer even when the engine is busy or stuck: it is what an operator looks at
/// when something is wrong.
const ENGINE_STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Serialize)]
pub struct StatusView {
    pub pair: String,
    pub version: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub ready: bool,
    pub regions: RegionsView,
    pub components: BTreeMap<String, ComponentStatus>,
    /// Leadership and the active run; null when the engine did not answer in time.
    pub engine: Option<RunnerStatus>,
    /// Aurora topology and lag, AWS Backup copies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<crate::replication::ReplicationSnapshot>,
    /// Each region's verdict with its evidence, and every probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::HealthSnapshot>,
    /// The auto-failover policy: mode, facts, last decision and refusals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy::PolicyStatus>,
    /// Cognito: pools, last sync, drift (or the native replica).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cognito: Option<serde_json::Value>,
    /// Whether a failover towards the standby would pass its preflight now, in each mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness: Option<crate::plans::readiness::ReadinessSnapshot>,
    /// The observed topology: what each component (DNS, each Aurora writer, the Cognito sync)
    /// says about the active region, and the drift from the recorded one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topology: Option<crate::topology::TopologySnapshot>,
    /// Each configured cluster: reachable, and each GitOps object and workload ready (null
    /// until the first check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gitops: Option<Option<crate::gitops::monitor::GitOpsStatus>>,
}

#[derive(Serialize)]
pub struct RegionsView {
    /// The region configured as hot.
    pub hot: String,
    /// The region configured as cold.
    pub cold: String,
    /// The region DNS sends traffic to, as recorded after each completed plan that moves traffic.
    pub active: String,
    /// The other one: where a failover goes.
    pub standby: String,
}

pub async fn get_status(State(state): State<AppState>) -> Json<StatusView> {
    let config = &state.config;
    let engine = tokio::time::timeout(ENGINE_STATUS_TIMEOUT, state.runner.status())
        .await
        .ok()
        .and_then(Result::ok);
    Json(StatusView {
        pair: config.pair.clone(),
        version: crate::telemetry::VERSION,
        started_at: state.started_at,
        ready: state.ready.load(std::sync::atomic::Ordering::Acquire),
        regions: {
            let (active, standby) = state
                .monitors
                .active_region
                .as_ref()
                .map(|a| a.get())
                .unwrap_or_else(|| {
                    (
                        config.hot_region().to_owned(),
                        config.cold_region().to_owned(),
                    )
                });
            RegionsView {
                hot: config.hot_region().to_owned(),
                cold: config.cold_region().to_owned(),
                active,
                standby,
            }
        },
        components: state.status.snapshot(),
        engine,
        replication: state.monitors.replication.as_ref().map(|r| r.snapshot()),
        health: state.monitors.health.as_ref().map(|h| h.snapshot()),
        policy: state.monitors.policy.as_ref().map(|p| p.status()),
        cognito: state
            .monitors
            .cognito
            .as_ref()
            .and_then(|c| serde_json::to_value(c.snapshot()).ok()),
        readiness: state.monitors.readiness.as_ref().map(|r| r.snapshot()),
        topology: state.monitors.topology.as_ref().map(|t| t.snapshot()),
        gitops: state.monitors.gitops.as_ref().map(|g| g.borrow().clone()),
    })
}

/// `POST /v1/policy/acknowledge`: an operator clears the cooldown after a failover, so the
/// policy may act again before it runs out (after checking that failing back or over again is
/// wanted). `409 nothing_to_acknowledge` when there was no failover.
pub async fn acknowledge(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<super::Principal>,
) -> Result<Json<serde_json::Value>, super::ApiError> {
    let Some(policy) = &state.monitors.policy else {
        return Err(super::ApiError::not_found(
            "the auto-failover policy is not running",
        ));
    };
    if policy.acknowledge(&principal.name) {
        Ok(Json(serde_json::json!({"acknowledged_by": principal.name})))
    } else {
        Err(super::ApiError::conflict(
            "nothing_to_acknowledge",
            "no failover has been recorded, so there is no cooldown to clear",
        ))
    }
}
