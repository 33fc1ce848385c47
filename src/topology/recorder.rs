//! Keeps the recorded active region in step with the runs: when a run of a plan that moves
//! traffic succeeds (not a dry run), its `target_region` becomes the active region.
//!
//! Driven by the engine's run updates (published once durable). At start, and whenever updates
//! were missed (a lagged subscription), it reconciles from the journal: the newest completed
//! traffic move among the recent runs decides — this also covers a run that finished while the
//! process stopped before it could record it. A record that cannot be written is retried until
//! it can; nothing is published until it is durable.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;

use super::active::ActiveRegionRecord;
use crate::engine::{RunFilter, RunId, RunStatus, RunnerHandle};
use crate::shutdown::StopSignal;

/// How many recent runs a reconciliation examines.
const RECENT_RUNS: usize = 50;

/// Pause before retrying a record that could not be written (a full or read-only disk).
const WRITE_RETRY: Duration = Duration::from_secs(5);

/// Whether a plan (by name) moves traffic — the plans' own metadata decides, never a list of
/// names here.
pub type MovesTraffic = Arc<dyn Fn(&str) -> bool + Send + Sync>;

pub struct ActiveRegionRecorder {
    record: ActiveRegionRecord,
    runner: RunnerHandle,
    moves_traffic: MovesTraffic,
    /// The newest traffic move already recorded.
    applied: Option<RunId>,
    /// A move whose record could not be written yet.
    pending: Option<(RunId, String, Option<OffsetDateTime>)>,
}

impl ActiveRegionRecorder {
    pub fn new(
        record: ActiveRegionRecord,
        runner: RunnerHandle,
        moves_traffic: MovesTraffic,
    ) -> Self {
        Self {
            record,
            runner,
            moves_traffic,
            applied: None,
            pending: None,
        }
    }

    /// Runs until `stop` fires (or the engine goes away).
    pub async fn run(mut self, mut stop: StopSignal) {
        // Subscribe before reconciling so nothing between the two is missed.
        let mut updates = self.runner.updates();
        self.reconcile().await;
        loop {
            let retry = self.pending.is_some();
            tokio::select! {
                () = stop.stopped() => return,
                () = tokio::time::sleep(WRITE_RETRY), if retry => self.flush(),
                update = updates.recv() => match update {
                    Ok(u) if u.status == RunStatus::Succeeded => self.consider(Succeeded {
                        id: u.record.id,
                        plan: &u.record.plan,
                        dry_run: u.record.dry_run,
                        params: &u.record.params,
                        finished_at: u.finished_at,
                    }),
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "run updates missed; reconciling from the journal");
                        self.reconcile().await;
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }

    /// The newest completed traffic move among the recent runs.
    async fn reconcile(&mut self) {
        let runs = match self
            .runner
            .list(RunFilter {
                limit: Some(RECENT_RUNS),
                ..RunFilter::default()
            })
            .await
        {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list runs to reconcile the active region");
                return;
            }
        };
        let newest = runs.iter().find(|r| {
            (self.moves_traffic)(&r.plan) && !r.dry_run && r.status == RunStatus::Succeeded
        });
        let Some(newest) = newest else { return };
        if self.applied == Some(newest.id) {
            return;
        }
        match self.runner.get(newest.id).await {
            Ok(view) => self.consider(Succeeded {
                id: view.id,
                plan: &view.plan,
                dry_run: view.dry_run,
                params: &view.params,
                finished_at: view.finished_at,
            }),
            Err(e) => tracing::warn!(error = %e, run = %newest.id, "cannot read run"),
        }
    }

    fn consider(&mut self, run: Succeeded<'_>) {
        if run.dry_run || !(self.moves_traffic)(run.plan) || self.applied == Some(run.id) {
            return;
        }
        let Some(target) = run.params.get("target_region").and_then(|v| v.as_str()) else {
            tracing::warn!(run = %run.id, plan = %run.plan, "a traffic move without target_region; active region unchanged");
            return;
        };
        if !self.record.pair().contains(target) {
            tracing::warn!(run = %run.id, target, "a traffic move to a region outside the pair; active region unchanged");
            return;
        }
        self.pending = Some((run.id, target.to_owned(), run.finished_at));
        self.flush();
    }

    fn flush(&mut self) {
        let Some((id, target, finished_at)) = self.pending.take() else {
            return;
        };
        let before = self.record.view().get().0;
        match self.record.record(&target, finished_at) {
            Ok(()) => {
                if before != target {
                    tracing::info!(active = %target, run = %id, "active region changed");
                }
                self.applied = Some(id);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot record the active region; retrying");
                self.pending = Some((id, target, finished_at));
            }
        }
    }
}

/// A run that succeeded, as far as the recorder is concerned.
struct Succeeded<'a> {
    id: RunId,
    plan: &'a str,
    dry_run: bool,
    params: &'a serde_json::Value,
    finished_at: Option<OffsetDateTime>,
}
