//! What the policy needs from the engine: [`RunStarter`], implemented by the daemon over the
//! runner, and its error.

use async_trait::async_trait;
use time::OffsetDateTime;

/// Why a run could not be started.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RunStartError {
    #[error("a run is already active: {0}")]
    RunActive(String),
    #[error("the engine refused the run: {0}")]
    Refused(String),
    #[error("the engine is unavailable: {0}")]
    Unavailable(String),
}

/// What the policy needs from the engine. The daemon implements it over the runner.
#[async_trait]
pub trait RunStarter: Send + Sync {
    /// Starts `plan` as a failover (with `approval_required`, the run is created waiting for an
    /// operator's approval; with `accept_data_loss`, approving it accepts an unbounded data
    /// loss — the plan's data-loss check then warns instead of refusing); `reason` is recorded on the run, and so is `detected_at` — when the
    /// hot region's verdict became unhealthy — from which the run's report measures the RTO.
    /// Returns the run's id.
    async fn start_failover(
        &self,
        plan: &str,
        approval_required: bool,
        accept_data_loss: bool,
        reason: &str,
        detected_at: Option<OffsetDateTime>,
    ) -> Result<String, RunStartError>;

    /// Whether a run is active (of any plan: one run per region pair).
    fn active_run(&self) -> bool;
}
