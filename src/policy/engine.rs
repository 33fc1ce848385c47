//! The auto-failover policy's view of the engine and of the topology.
//!
//! - [`EngineRunStarter`] implements the policy's [`RunStarter`] over the run engine: what an
//!   automatic failover *is* — the configured plan, `ungraceful` (the policy acts only when the
//!   active region is unhealthy, when a graceful switchover, which needs that region's
//!   cooperation, cannot be relied on), towards the current standby region, requested by
//!   `auto-failover-policy`, behind an approval gate in `approval_required` mode, with the time
//!   the outage was detected so the run's report measures the RTO from there.
//! - [`follow_engine`] keeps "is a run active?" current from the engine's run updates.
//! - [`follow_active_region`] hands the policy the active/standby pair after every recorded
//!   traffic move, and starts its cooldown from the time that move finished (so a restart does
//!   not reset it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;

use super::{PolicyHandle, RunStartError, RunStarter};
use crate::engine::{Mode, RunFilter, RunRequest, RunnerHandle, StartError};
use crate::shutdown::StopSignal;
use crate::topology::ActiveRegion;

/// Who automatic runs are requested by (journal, audit log, `/v1/runs`).
pub const REQUESTED_BY: &str = "auto-failover-policy";

/// Starts the policy's failover runs on the engine.
pub struct EngineRunStarter {
    runner: RunnerHandle,
    /// Kept current by [`follow_engine`]; the engine itself refuses a second run in any case.
    active: Arc<AtomicBool>,
    regions: ActiveRegion,
    /// Whether a plan (by name) accepts a parameter: the plans' own metadata.
    accepts_param: AcceptsParam,
}

/// Whether plan `.0` accepts parameter `.1`.
pub type AcceptsParam = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

impl EngineRunStarter {
    /// Also returns the flag that [`follow_engine`] keeps current.
    pub fn new(
        runner: RunnerHandle,
        regions: ActiveRegion,
        accepts_param: AcceptsParam,
    ) -> (Self, Arc<AtomicBool>) {
        let active = Arc::new(AtomicBool::new(false));
        (
            Self {
                runner,
                active: Arc::clone(&active),
                regions,
                accepts_param,
            },
            active,
        )
    }
}

#[async_trait::async_trait]
impl RunStarter for EngineRunStarter {
    async fn start_failover(
        &self,
        plan: &str,
        approval_required: bool,
        accept_data_loss: bool,
        reason: &str,
        detected_at: Option<OffsetDateTime>,
    ) -> Result<String, RunStartError> {
        let mut params = serde_json::json!({
            crate::plans::params::TARGET_REGION: self.regions.get().1,
            crate::plans::APPROVAL_REQUIRED: approval_required,
        });
        // Only plans that bound the data loss know the parameter (the others refuse it).
        let knows = (self.accepts_param)(plan, crate::plans::failover::ACCEPT_DATA_LOSS);
        if accept_data_loss && knows {
            params[crate::plans::failover::ACCEPT_DATA_LOSS] = serde_json::Value::Bool(true);
        }
        let request = RunRequest {
            plan: plan.to_owned(),
            mode: Mode::Ungraceful,
            dry_run: false,
            drill: false,
            reason: reason.to_owned(),
            params,
            requested_by: REQUESTED_BY.to_owned(),
            idempotency_key: None,
            detected_at,
        };
        match self.runner.start(request).await {
            Ok(view) => {
                self.active.store(true, Ordering::Release);
                Ok(view.id.to_string())
            }
            Err(StartError::RunActive { id }) => Err(RunStartError::RunActive(id.to_string())),
            Err(e @ (StartError::NotLeader | StartError::Stopped | StartError::Store(_))) => {
                Err(RunStartError::Unavailable(e.to_string()))
            }
            Err(e) => Err(RunStartError::Refused(e.to_string())),
        }
    }

    fn active_run(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }
}

/// Keeps `active` equal to "some run is unfinished", from the engine's run updates (and from the
/// journal at start and after missed updates).
pub async fn follow_engine(runner: RunnerHandle, active: Arc<AtomicBool>, mut stop: StopSignal) {
    let mut updates = runner.updates();
    let reconcile = |runner: RunnerHandle, active: Arc<AtomicBool>| async move {
        if let Ok(runs) = runner.list(RunFilter::unfinished()).await {
            active.store(!runs.is_empty(), Ordering::Release);
        }
    };
    reconcile(runner.clone(), Arc::clone(&active)).await;
    loop {
        tokio::select! {
            () = stop.stopped() => return,
            update = updates.recv() => match update {
                Ok(u) => active.store(!u.status.is_terminal(), Ordering::Release),
                Err(RecvError::Lagged(_)) => reconcile(runner.clone(), Arc::clone(&active)).await,
                Err(RecvError::Closed) => return,
            },
        }
    }
}

/// Hands the policy every change of the active region, and starts its cooldown from the last
/// completed traffic move.
pub async fn follow_active_region(policy: PolicyHandle, active: ActiveRegion, stop: StopSignal) {
    active
        .follow(stop, |state| {
            policy.set_regions(&state.active, &state.standby);
            if let Some(finished) = state.moved_at {
                policy.record_failover(instant_of(finished));
            }
        })
        .await;
}

/// The monotonic instant corresponding to a wall-clock time in the past.
fn instant_of(at: OffsetDateTime) -> tokio::time::Instant {
    let ago = std::time::Duration::try_from(OffsetDateTime::now_utc() - at).unwrap_or_default();
    tokio::time::Instant::now()
        .checked_sub(ago)
        .unwrap_or_else(tokio::time::Instant::now)
}
