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
    record: Arc<ActiveRegionRecord>,
    runner: RunnerHandle,
    moves_traffic: MovesTraffic,
    /// The newest traffic move already recorded.
    applied: Option<RunId>,
    /// A move whose record could not be written yet.
    pending: Option<(RunId, String, Option<OffsetDateTime>)>,
}

impl ActiveRegionRecorder {
    pub fn new(
        record: Arc<ActiveRegionRecord>,
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
        let before = self.record.active();
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;
    use serde_json::{json, Value};

    use super::*;
    use crate::engine::testing::{spawn_runner, wait_finished};
    use crate::engine::{
        MemoryStore, Mode, Phase, Plan, RunRequest, Step, StepContext, StepDescription, StepError,
        StepId, VerifyOutcome,
    };
    use crate::plans::{params, PlanInfo, PlanRegistry};
    use crate::topology::{ActiveRegion, RegionPair};

    struct Nothing(StepId);

    #[async_trait]
    impl Step for Nothing {
        fn id(&self) -> &StepId {
            &self.0
        }
        fn name(&self) -> &str {
            "nothing"
        }
        async fn describe(&self, _: &StepContext) -> Result<StepDescription, StepError> {
            Ok(StepDescription {
                summary: "nothing".into(),
                changes: Vec::new(),
            })
        }
        async fn execute(&self, _: &StepContext) -> Result<Value, StepError> {
            Ok(Value::Null)
        }
        async fn verify(&self, _: &StepContext) -> Result<VerifyOutcome, StepError> {
            Ok(VerifyOutcome::NotDone)
        }
    }

    /// `move` moves traffic to its `target_region`; `other` takes the same parameter and moves
    /// nothing.
    fn registry(pair: &RegionPair) -> PlanRegistry {
        let mut registry = PlanRegistry::new();
        for (name, traffic) in [("move", true), ("other", false)] {
            let mut info = PlanInfo::new(name, "test", &[params::TARGET_REGION]);
            info.moves_traffic = traffic;
            let pair = pair.clone();
            registry.register(info, move |_mode, p| {
                let obj = params::object(p, &[params::TARGET_REGION])?;
                params::target_region(obj, &pair)?;
                Plan::new(
                    name,
                    vec![Phase::steps(
                        "only",
                        vec![Arc::new(Nothing(StepId::new("nothing"))) as Arc<dyn Step>],
                    )],
                )
            });
        }
        registry
    }

    async fn run(runner: &RunnerHandle, plan: &str, target: &str, dry_run: bool) {
        let view = runner
            .start(RunRequest {
                plan: plan.into(),
                mode: Mode::Graceful,
                dry_run,
                params: json!({ "target_region": target }),
                reason: "test".into(),
                requested_by: "test".into(),
                ..RunRequest::default()
            })
            .await
            .expect("run starts");
        if !dry_run {
            wait_finished(runner, view.id, Duration::from_secs(10))
                .await
                .expect("run finishes");
        }
    }

    async fn becomes(view: &ActiveRegion, region: &str) {
        let mut rx = view.subscribe();
        tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|s| s.active == region))
            .await
            .unwrap_or_else(|_| panic!("active region never became {region}"))
            .expect("record alive");
    }

    /// A runner on an in-memory journal with the `move` and `other` plans, and a state directory.
    struct Fixture {
        dir: tempfile::TempDir,
        pair: RegionPair,
        registry: Arc<PlanRegistry>,
        runner: crate::engine::Runner,
    }

    impl Fixture {
        fn new() -> Self {
            let pair = RegionPair::new("us-east-1", "us-west-2");
            let registry = Arc::new(registry(&pair));
            let runner =
                spawn_runner(Arc::new(MemoryStore::new()), registry.clone(), 1).expect("runner");
            Self {
                dir: tempfile::tempdir().expect("tempdir"),
                pair,
                registry,
                runner,
            }
        }

        fn handle(&self) -> RunnerHandle {
            self.runner.handle()
        }

        /// Opens the record and starts a recorder on it; stop it with the trigger.
        fn recorder(
            &self,
        ) -> (
            ActiveRegion,
            crate::shutdown::StopTrigger,
            tokio::task::JoinHandle<()>,
        ) {
            let record =
                Arc::new(ActiveRegionRecord::open(self.dir.path(), self.pair.clone()).unwrap());
            let view = record.view();
            let (trigger, stop) = crate::shutdown::stop_channel();
            let moves: MovesTraffic = {
                let registry = self.registry.clone();
                Arc::new(move |name: &str| registry.moves_traffic(name))
            };
            let task =
                tokio::spawn(ActiveRegionRecorder::new(record, self.handle(), moves).run(stop));
            (view, trigger, task)
        }
    }

    #[tokio::test]
    async fn only_completed_traffic_moves_change_the_active_region() {
        let f = Fixture::new();
        let handle = f.handle();
        let (view, trigger, task) = f.recorder();

        // A plan that moves nothing, and a dry run of one that moves traffic: no change.
        run(&handle, "other", "us-west-2", false).await;
        run(&handle, "move", "us-west-2", true).await;
        // Nothing marks "the recorder ignored an update", so give it ample time to act wrongly.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(view.state().active, "us-east-1");
        assert_eq!(view.state().moved_at, None);
        // Then a real move: recorded, published, and on disk.
        run(&handle, "move", "us-west-2", false).await;
        becomes(&view, "us-west-2").await;
        let state = view.state();
        assert_eq!(state.standby, "us-east-1");
        assert!(
            state.moved_at.is_some(),
            "the cooldown needs the time of the move"
        );
        let on_disk = std::fs::read_to_string(f.dir.path().join(super::super::ACTIVE_REGION_FILE));
        assert_eq!(on_disk.unwrap().trim(), "us-west-2");

        // And back.
        run(&handle, "move", "us-east-1", false).await;
        becomes(&view, "us-east-1").await;
        trigger.stop();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_move_finished_while_nobody_recorded_it_is_found_in_the_journal() {
        let f = Fixture::new();
        // The run completes before any recorder exists (a crash between the run's end and the
        // record, then a restart).
        run(&f.handle(), "move", "us-west-2", false).await;

        let (view, trigger, task) = f.recorder();
        becomes(&view, "us-west-2").await;
        trigger.stop();
        task.await.unwrap();
    }
}
