//! What the engine tells the rest of the daemon as it happens: every change of a run's status
//! (started, waiting for approval, unwinding, finished …) and of this process's leadership.
//!
//! The runner publishes an update only after the event that caused it is durable, so a
//! subscriber never acts on something the journal does not hold. Subscribers (the active-region
//! recorder, the run gauges, the policy's view of the engine) must treat a lagged receiver
//! (`RecvError::Lagged`) as "something was missed" and reconcile from the store with
//! [`RunnerHandle::list`](super::RunnerHandle::list); updates are a wake-up, the journal is the
//! truth.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

use super::event::RunRecord;
use super::state::{RunState, RunStatus};

/// Status changes buffered per subscriber. A run changes status a handful of times; 256 covers
/// dozens of runs between two reads by a slow subscriber, and a lagging one reconciles anyway.
const RUN_UPDATE_BUFFER: usize = 256;

/// A run's status changed.
#[derive(Clone, Debug)]
pub struct RunUpdate {
    pub record: Arc<RunRecord>,
    pub status: RunStatus,
    pub finished_at: Option<OffsetDateTime>,
}

/// The publishing side, shared by the runner's actor and its handles.
#[derive(Clone)]
pub(crate) struct EngineEvents {
    runs: broadcast::Sender<RunUpdate>,
    /// `None` until the runner first tried to become leader.
    leader: Arc<watch::Sender<Option<bool>>>,
}

impl EngineEvents {
    pub(crate) fn new() -> Self {
        let (runs, _) = broadcast::channel(RUN_UPDATE_BUFFER);
        let (leader, _) = watch::channel(None);
        Self {
            runs,
            leader: Arc::new(leader),
        }
    }

    pub(crate) fn run_changed(&self, state: &RunState) {
        // No subscriber is not an error: updates are a wake-up, not a record.
        let _ = self.runs.send(RunUpdate {
            record: Arc::clone(&state.record),
            status: state.status,
            finished_at: state.finished_at,
        });
    }

    pub(crate) fn leader(&self, leader: bool) {
        self.leader.send_if_modified(|current| {
            let changed = *current != Some(leader);
            *current = Some(leader);
            changed
        });
    }

    pub(crate) fn subscribe_runs(&self) -> broadcast::Receiver<RunUpdate> {
        self.runs.subscribe()
    }

    pub(crate) fn subscribe_leader(&self) -> watch::Receiver<Option<bool>> {
        self.leader.subscribe()
    }
}
