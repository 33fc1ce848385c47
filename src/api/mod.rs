//! The HTTP API: health and readiness, metrics, and the authenticated `/v1` routes.
//!
//! `/healthz`, `/readyz` and `/metrics` are open (probes and Prometheus must not need tokens);
//! everything under `/v1` needs a bearer token (see [`auth`]) and mutating requests need the
//! `operator` role and are audited (see [`middleware`]). `/` is the failover console, a static
//! page that reads everything it shows from `/v1` with the token its user enters (see [`console`]).

pub mod auth;
pub mod console;
mod error;
pub mod forward;
mod middleware;
mod report;
mod runs;
mod status;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus::Registry;
use time::OffsetDateTime;

pub use auth::{Principal, Role, TokenSet};
pub use error::{ApiError, HttpStatus, JsonBody};
pub use middleware::principal;

use crate::config::Config;
use crate::engine::RunnerHandle;
use crate::shutdown::StopSignal;
use crate::status::StatusBoard;

/// What every handler can reach. Cheap to clone (everything is shared).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub tokens: Arc<TokenSet>,
    pub registry: Registry,
    pub status: StatusBoard,
    /// Set once the configuration is loaded and every component has started.
    pub ready: Arc<AtomicBool>,
    pub request_timeout: Duration,
    pub body_limit: usize,
    pub started_at: OffsetDateTime,
    pub runner: RunnerHandle,
    /// Ends long-lived responses (event streams) when the daemon stops.
    pub stop: StopSignal,
    /// Views of the background monitors, for `/v1/status`.
    pub monitors: Monitors,
    /// The plans that can be run, for `GET /v1/plans`.
    pub plans: Arc<[crate::plans::PlanInfo]>,
    /// How a follower reaches the leader (`state.store: kubernetes`).
    pub forward: Option<Arc<forward::LeaderForward>>,
}

/// The background monitors whose state `/v1/status` shows.
#[derive(Clone, Default)]
pub struct Monitors {
    pub replication: Option<crate::replication::ReplicationHandle>,
    pub health: Option<crate::health::HealthHandle>,
    pub policy: Option<crate::policy::PolicyHandle>,
    pub active_region: Option<crate::topology::ActiveRegion>,
    pub cognito: Option<crate::cognito::monitor::CognitoHandle>,
    pub readiness: Option<crate::plans::readiness::ReadinessHandle>,
    pub topology: Option<crate::topology::TopologyView>,
    /// The clusters' GitOps objects and workloads, as last checked.
    pub gitops: Option<crate::gitops::monitor::GitOpsWatch>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        tokens: Arc<TokenSet>,
        registry: Registry,
        status: StatusBoard,
        runner: RunnerHandle,
        stop: StopSignal,
        monitors: Monitors,
    ) -> Self {
        let request_timeout = config.server.request_timeout.get();
        let body_limit = config.server.body_limit_bytes;
        Self {
            config,
            tokens,
            registry,
            status,
            ready: Arc::new(AtomicBool::new(false)),
            request_timeout,
            body_limit,
            started_at: OffsetDateTime::now_utc(),
            runner,
            stop,
            monitors,
            plans: Arc::from(Vec::new()),
            forward: None,
        }
    }

    /// Forward what only the leader serves to it while this replica follows.
    pub fn with_forward(mut self, forward: forward::LeaderForward) -> Self {
        self.forward = Some(Arc::new(forward));
        self
    }

    /// The plans `GET /v1/plans` lists.
    pub fn with_plans(mut self, plans: Vec<crate::plans::PlanInfo>) -> Self {
        self.plans = plans.into();
        self
    }
}

/// The `/v1` routes, before authentication is layered on. Other modules add their routes here.
fn v1_routes() -> Router<AppState> {
    Router::new()
        .route("/status", get(status::get_status))
        .route("/openapi.json", get(openapi))
        .route("/plans", get(plans))
        .merge(runs::routes())
        .route(
            "/policy/acknowledge",
            axum::routing::post(status::acknowledge),
        )
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    // `route_layer` runs on matched routes only; `layer` on everything under `/v1`, the 404 and
    // 405 answers included, so those come only after a valid token.
    let v1 = v1_routes()
        .route_layer(axum::middleware::from_fn(middleware::expose_route))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::forward_to_leader,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authorize,
        ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/v1", v1)
        .merge(console::routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.body_limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::deadline,
        ))
        .with_state(state)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}

/// The process is alive and serving HTTP. Deliberately checks nothing else: a liveness probe
/// that fails because AWS is unreachable would restart the one process that must survive that.
async fn healthz() -> impl IntoResponse {
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({"status": "ok"})),
    )
}

/// Ready once the configuration is loaded and every component has started.
async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ready"})),
        )
            .into_response()
    } else {
        ApiError::unavailable("not_ready", "failoverd is still starting").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    match crate::telemetry::render(&state.registry) {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => ApiError::internal(format!("cannot render metrics: {e}")).into_response(),
    }
}

/// The OpenAPI description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// `GET /v1/plans`: what can be run, and what each plan moves.
async fn plans(State(state): State<AppState>) -> Response {
    axum::Json(serde_json::json!({ "plans": &*state.plans })).into_response()
}

/// `GET /v1/openapi.json`: [`OPENAPI`], with the names of the plans this daemon provides as the
/// `enum` of a run request's `plan` (they depend on the configuration).
async fn openapi(State(state): State<AppState>) -> Response {
    static BASE: std::sync::LazyLock<Option<serde_json::Value>> =
        std::sync::LazyLock::new(|| serde_json::from_str(OPENAPI).ok());
    let Some(mut doc) = (*BASE).clone() else {
        return ApiError::internal("the embedded OpenAPI document is not JSON").into_response();
    };
    if let Some(plan) = doc.pointer_mut("/components/schemas/CreateRun/properties/plan") {
        let names: Vec<&str> = state.plans.iter().map(|p| p.name.as_str()).collect();
        plan["enum"] = serde_json::json!(names);
    }
    axum::Json(doc).into_response()
}
