//! What callers of the runner send and get back: the request to start a run, the errors of
//! starting one and of acting on one (each with a stable `code()` for API clients), and the
//! runner's status.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::engine::event::{Mode, RunId, StepId};
use crate::engine::plan::PlanError;
use crate::engine::state::{IllegalTransition, RunStatus};
use crate::engine::store::{FencingToken, StoreError};
use crate::engine::view::RetryView;

/// A request to start a run (the body of `POST /v1/runs` plus who asked and the idempotency key).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub plan: String,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub drill: bool,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub params: Value,
    /// Set by the API from the authenticated caller.
    #[serde(default)]
    pub requested_by: String,
    /// Set by the API from the `Idempotency-Key` header.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// When the condition the run responds to was detected (set by the auto-failover policy);
    /// kept in the run record, the report's RTO starts there.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub detected_at: Option<time::OffsetDateTime>,
}

impl RunRequest {
    /// Fingerprint of what the request asks for (not who asked), so a reused idempotency key with a
    /// different request is detected.
    pub(super) fn fingerprint(&self) -> String {
        let canonical = serde_json::json!([
            self.plan,
            self.mode,
            self.dry_run,
            self.drill,
            self.reason,
            self.params
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("unknown plan {plan:?} (known plans: {})", known.join(", "))]
    UnknownPlan { plan: String, known: Vec<String> },
    #[error("invalid parameter {field}: {message}")]
    BadParams { field: String, message: String },
    #[error("plan definition is invalid: {message}")]
    InvalidPlan { message: String },
    #[error("run {id} is active for this region pair")]
    RunActive { id: RunId },
    #[error("idempotency key {key:?} was used for a different request (run {run_id})")]
    IdempotencyKeyReused { key: String, run_id: RunId },
    #[error("this failoverd is not the leader")]
    NotLeader,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the runner has stopped")]
    Stopped,
}

impl StartError {
    /// Stable error code for the API's JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            StartError::UnknownPlan { .. } => "unknown_plan",
            StartError::BadParams { .. } => "bad_params",
            StartError::InvalidPlan { .. } => "invalid_plan",
            StartError::RunActive { .. } => "run_active",
            StartError::IdempotencyKeyReused { .. } => "idempotency_key_reused",
            StartError::NotLeader => "not_leader",
            StartError::Store(_) => "store_error",
            StartError::Stopped => "runner_stopped",
        }
    }
}

impl From<PlanError> for StartError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::UnknownPlan { name, known } => StartError::UnknownPlan { plan: name, known },
            PlanError::BadParams { field, message } => StartError::BadParams { field, message },
            PlanError::Invalid { message } => StartError::InvalidPlan { message },
        }
    }
}

/// Errors of commands and queries on an existing run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("run {id} not found")]
    NotFound { id: RunId },
    #[error("run {id} is not waiting for approval (it is {})", status.as_str())]
    NotWaitingApproval { id: RunId, status: RunStatus },
    #[error("run {id} has already finished ({})", status.as_str())]
    AlreadyFinished { id: RunId, status: RunStatus },
    #[error("this failoverd is not the leader")]
    NotLeader,
    #[error(
        "run {id} is not being driven right now (recovering from a store error); retry shortly"
    )]
    NotDriven { id: RunId },
    #[error("journal of run {id} cannot be replayed: {source}")]
    CorruptJournal {
        id: RunId,
        #[source]
        source: IllegalTransition,
    },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the runner has stopped")]
    Stopped,
}

impl RunError {
    /// Stable error code for the API's JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            RunError::NotFound { .. } => "not_found",
            RunError::NotWaitingApproval { .. } => "not_waiting_approval",
            RunError::AlreadyFinished { .. } => "already_finished",
            RunError::NotLeader => "not_leader",
            RunError::NotDriven { .. } => "run_unavailable",
            RunError::CorruptJournal { .. } => "corrupt_journal",
            RunError::Store(_) => "store_error",
            RunError::Stopped => "runner_stopped",
        }
    }
}

/// Leadership and activity of the runner, for `GET /v1/status` and readiness.
#[derive(Clone, Debug, Serialize)]
pub struct RunnerStatus {
    pub region_pair: String,
    pub leader: bool,
    pub fencing_token: Option<FencingToken>,
    pub active_run: Option<RunId>,
    /// Steps of live runs waiting to try again after a retryable error, the soonest first.
    pub retrying: Vec<RetryingStep>,
}

/// A step waiting out a retry (an AWS or Kubernetes API erroring, throttling or timing out).
#[derive(Clone, Debug, Serialize)]
pub struct RetryingStep {
    pub run: RunId,
    pub step: StepId,
    #[serde(flatten)]
    pub retry: RetryView,
}
