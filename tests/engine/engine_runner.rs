//! The runner through its handle, with the built-in `selftest` plan: lifecycle, approvals, aborts,
//! dry runs, one active run, idempotency keys, typed errors, resumable event streams, metrics.

use std::sync::Arc;
use std::time::Duration;

use failoverd::api::HttpStatus;
use failoverd::engine::testing::{spawn_runner, wait_finished, FixedLeadership};
use failoverd::engine::{
    EngineMetrics, EventKind, MemoryStore, Outcome, RunError, RunFilter, RunRequest, RunStatus,
    Runner, RunnerConfig, RunnerDeps, StartError, StepStatus, Store,
};
use failoverd::plans::PlanRegistry;
use futures::StreamExt;
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(600);

fn selftest(params: serde_json::Value) -> RunRequest {
    RunRequest {
        plan: "selftest".into(),
        params,
        reason: "test".into(),
        requested_by: "alice".into(),
        ..RunRequest::default()
    }
}

struct Bed {
    _dir: tempfile::TempDir,
    effects: std::path::PathBuf,
    store: Arc<MemoryStore>,
    plans: Arc<PlanRegistry>,
}

impl Bed {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let plans = Arc::new(PlanRegistry::builtin(dir.path()));
        Self {
            effects: dir.path().join("selftest-effects.log"),
            _dir: dir,
            store: Arc::new(MemoryStore::new()),
            plans,
        }
    }

    fn runner(&self, token: u64) -> Runner {
        spawn_runner(self.store.clone(), self.plans.clone(), token).unwrap()
    }

    fn effects(&self) -> Vec<String> {
        std::fs::read_to_string(&self.effects)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn selftest_run_succeeds_with_report() {
    let bed = Bed::new();
    let runner = bed.runner(1);
    let h = runner.handle();
    let mut req = selftest(json!({"steps": 3, "step_seconds": 2}));
    req.drill = true;
    let started = h.start(req).await.unwrap();
    assert_eq!(started.status, RunStatus::Running);
    let view = wait_finished(&h, started.id, LIMIT).await.unwrap();
    assert_eq!(view.status, RunStatus::Succeeded);
    let report = view.report.expect("finished runs have a report");
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert!(report.total_duration_seconds >= 0.0);
    assert_eq!(report.steps.len(), 3);
    assert!(report.measurements.unwrap().contains_key("rto_seconds"));
    for p in &view.phases {
        for s in &p.steps {
            assert_eq!(s.status, StepStatus::Succeeded);
            assert_eq!(s.attempts, 1);
        }
    }
    let lines = bed.effects();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for i in 1..=3 {
        assert!(lines.contains(&format!("{} selftest-{i}", view.id)));
    }
    // The journal replays.
    let stored = bed.store.load(view.id).await.unwrap();
    assert_eq!(stored.events.len() as u64, view.last_seq);
    runner.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn one_active_run_and_abort_compensates_in_reverse() {
    let bed = Bed::new();
    let runner = bed.runner(1);
    let h = runner.handle();
    let first = h
        .start(selftest(json!({"steps": 4, "step_seconds": 10})))
        .await
        .unwrap();
    let err = h.start(selftest(json!({}))).await.unwrap_err();
    assert!(
        matches!(err, StartError::RunActive { id } if id == first.id),
        "{err}"
    );
    assert_eq!(err.code(), "run_active");
    assert_eq!(err.http_status(), 409);
    // A dry run is allowed while a run is active: it changes nothing.
    let mut dry = selftest(json!({"steps": 2}));
    dry.dry_run = true;
    let dry = h.start(dry).await.unwrap();
    assert_eq!(dry.status, RunStatus::Succeeded);
    assert!(dry.phases.iter().all(|p| p.steps[0].description.is_some()));

    // Let two steps complete, then abort during the third.
    tokio::time::sleep(Duration::from_secs(25)).await;
    let aborting = h.abort(first.id, "bob").await.unwrap();
    assert_eq!(aborting.abort_requested_by.as_deref(), Some("bob"));
    // Aborting again is a no-op.
    h.abort(first.id, "bob").await.unwrap();
    let view = wait_finished(&h, first.id, LIMIT).await.unwrap();
    assert_eq!(view.status, RunStatus::Aborted);
    let compensated: Vec<_> = view
        .timeline
        .iter()
        .filter_map(|e| match &e.event.kind {
            EventKind::CompensationFinished { step } => Some(step.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(compensated, ["selftest-3", "selftest-2", "selftest-1"]);
    assert!(!view.timeline.iter().any(|e| matches!(&e.event.kind, EventKind::StepStarted { step, .. } if step.as_str() == "selftest-4")));
    let err = h.abort(first.id, "bob").await.unwrap_err();
    assert!(matches!(err, RunError::AlreadyFinished { .. }), "{err}");
    assert_eq!(err.http_status(), 409);
    // No longer active: a new run may start.
    h.start(selftest(json!({"steps": 1, "step_seconds": 0})))
        .await
        .unwrap();
    runner.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn approval_gate_waits_and_errors_are_typed() {
    let bed = Bed::new();
    let runner = bed.runner(1);
    let h = runner.handle();
    let v = h
        .start(selftest(
            json!({"steps": 2, "step_seconds": 1, "approval": true}),
        ))
        .await
        .unwrap();
    assert_eq!(v.status, RunStatus::WaitingApproval);
    tokio::time::sleep(Duration::from_secs(60)).await;
    let v = h.get(v.id).await.unwrap();
    assert_eq!(v.status, RunStatus::WaitingApproval, "waits for a person");
    assert!(bed.effects().is_empty());
    let v = h.approve(v.id, "carol").await.unwrap();
    assert_eq!(v.status, RunStatus::Running);
    let err = h.approve(v.id, "carol").await.unwrap_err();
    assert!(matches!(err, RunError::NotWaitingApproval { .. }), "{err}");
    assert_eq!(err.code(), "not_waiting_approval");
    let done = wait_finished(&h, v.id, LIMIT).await.unwrap();
    assert_eq!(done.status, RunStatus::Succeeded);
    let err = h.approve(v.id, "carol").await.unwrap_err();
    assert!(
        matches!(
            err,
            RunError::NotWaitingApproval {
                status: RunStatus::Succeeded,
                ..
            }
        ),
        "{err}"
    );

    let unknown = failoverd::engine::RunId::new();
    assert!(matches!(
        h.get(unknown).await.unwrap_err(),
        RunError::NotFound { .. }
    ));
    assert!(matches!(
        h.approve(unknown, "x").await.unwrap_err(),
        RunError::NotFound { .. }
    ));
    assert!(matches!(
        h.abort(unknown, "x").await.unwrap_err(),
        RunError::NotFound { .. }
    ));

    let err = h
        .start(RunRequest {
            plan: "nope".into(),
            ..RunRequest::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::UnknownPlan { .. }), "{err}");
    let err = h.start(selftest(json!({"steps": 0}))).await.unwrap_err();
    match err {
        StartError::BadParams { field, .. } => assert_eq!(field, "params.steps"),
        other => panic!("{other}"),
    }
    // Refused requests store nothing.
    assert_eq!(
        bed.store.list(&RunFilter::default()).await.unwrap().len(),
        1
    );
    runner.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn fail_at_unwinds_and_counts_metrics() {
    let bed = Bed::new();
    let registry = prometheus::Registry::new();
    let runner = Runner::spawn(
        RunnerConfig::default(),
        RunnerDeps {
            store: bed.store.clone(),
            plans: bed.plans.clone(),
            leadership: Arc::new(FixedLeadership::new(1)),
            metrics: EngineMetrics::register(&registry).unwrap(),
        },
    );
    let h = runner.handle();
    let status = h.status().await.unwrap();
    assert!(status.leader);
    let v = h
        .start(selftest(
            json!({"steps": 3, "step_seconds": 1, "fail_at": 2}),
        ))
        .await
        .unwrap();
    let v = wait_finished(&h, v.id, LIMIT).await.unwrap();
    assert_eq!(v.status, RunStatus::Failed);
    let step2 = &v.phases[1].steps[0];
    assert!(step2.error.as_deref().unwrap().contains("injected failure"));
    assert_eq!(step2.attempts, 1, "non-retryable: a single attempt");
    let lines = bed.effects();
    assert!(
        lines.contains(&format!("{} selftest-1 compensated", v.id)),
        "{lines:?}"
    );
    assert!(!lines.contains(&format!("{} selftest-2", v.id)));
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.contains(r#"failoverd_runs_total{outcome="failed",plan="selftest"} 1"#),
        "{text}"
    );
    assert!(text.contains("failoverd_leader 1"));
    assert!(
        text.contains(r#"failoverd_run_active{plan="selftest"} 0"#),
        "{text}"
    );
    assert!(text.contains("failoverd_run_step_duration_seconds_bucket"));
    runner.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn idempotency_key_returns_the_same_run() {
    let bed = Bed::new();
    let runner = bed.runner(1);
    let h = runner.handle();
    let mut req = selftest(json!({"steps": 1, "step_seconds": 1}));
    req.idempotency_key = Some("k1".into());
    let a = h.start(req.clone()).await.unwrap();
    let b = h.start(req.clone()).await.unwrap();
    assert_eq!(a.id, b.id);
    wait_finished(&h, a.id, LIMIT).await.unwrap();
    let c = h.start(req.clone()).await.unwrap();
    assert_eq!(a.id, c.id, "also after the run finished");
    let mut other = req.clone();
    other.params = json!({"steps": 2});
    let err = h.start(other).await.unwrap_err();
    assert!(
        matches!(err, StartError::IdempotencyKeyReused { run_id, .. } if run_id == a.id),
        "{err}"
    );
    assert_eq!(
        bed.store.list(&RunFilter::default()).await.unwrap().len(),
        1
    );
    runner.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn event_stream_is_resumable_and_list_shows_runs() {
    let bed = Bed::new();
    let runner = bed.runner(1);
    let h = runner.handle();
    let v = h
        .start(selftest(json!({"steps": 3, "step_seconds": 1})))
        .await
        .unwrap();
    let mut s = h.subscribe(v.id, 0).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(s.next().await.unwrap().unwrap().seq);
    }
    drop(s);
    // Resume after the last seen seq: no gap, no duplicate, ends at the terminal event.
    let rest: Vec<_> = h
        .subscribe(v.id, *seen.last().unwrap())
        .await
        .unwrap()
        .map(|e| e.unwrap())
        .collect()
        .await;
    seen.extend(rest.iter().map(|e| e.seq));
    let expected: Vec<u64> = (1..=seen.len() as u64).collect();
    assert_eq!(seen, expected);
    assert!(rest.last().unwrap().event.kind.terminal_outcome().is_some());
    // After the run: the stream replays from the store.
    let all: Vec<_> = h.subscribe(v.id, 0).await.unwrap().collect().await;
    assert_eq!(all.len(), seen.len());
    // Resuming after the end yields nothing and ends at once.
    let after_end: Vec<_> = h
        .subscribe(v.id, seen.len() as u64)
        .await
        .unwrap()
        .collect()
        .await;
    assert!(after_end.is_empty());
    let list = h.list(RunFilter::default()).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, RunStatus::Succeeded);
    runner.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn kill_mid_step_then_restart_executes_each_step_once() {
    let bed = Bed::new();
    let runner = bed.runner(1);
    let v = runner
        .handle()
        .start(selftest(json!({"steps": 3, "step_seconds": 10})))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(15)).await; // inside step 2
    runner.kill().await;
    let status = bed.store.load(v.id).await.unwrap();
    assert!(status
        .events
        .iter()
        .all(|e| e.event.kind.terminal_outcome().is_none()));
    let runner = bed.runner(2);
    let view = wait_finished(&runner.handle(), v.id, LIMIT).await.unwrap();
    assert_eq!(view.status, RunStatus::Succeeded);
    let lines = bed.effects();
    for i in 1..=3 {
        let n = lines
            .iter()
            .filter(|l| **l == format!("{} selftest-{i}", v.id))
            .count();
        assert_eq!(n, 1, "step {i} executed {n} times: {lines:?}");
    }
    // Step 2 was in doubt and re-executed after verify said it had not happened.
    assert!(view.timeline.iter().any(|e| matches!(&e.event.kind, EventKind::StepInterrupted { step, .. } if step.as_str() == "selftest-2")));
    runner.shutdown().await;
}

/// A step whose description takes `delay`.
struct SlowDescribe {
    id: failoverd::engine::StepId,
    delay: Duration,
}

#[async_trait::async_trait]
impl failoverd::engine::Step for SlowDescribe {
    fn id(&self) -> &failoverd::engine::StepId {
        &self.id
    }
    fn name(&self) -> &str {
        self.id.as_str()
    }
    async fn describe(
        &self,
        _: &failoverd::engine::StepContext,
    ) -> Result<failoverd::engine::StepDescription, failoverd::engine::StepError> {
        tokio::time::sleep(self.delay).await;
        Ok(failoverd::engine::StepDescription {
            summary: format!("describe {}", self.id),
            changes: vec![],
        })
    }
    async fn execute(
        &self,
        _: &failoverd::engine::StepContext,
    ) -> Result<serde_json::Value, failoverd::engine::StepError> {
        Ok(json!({}))
    }
    async fn verify(
        &self,
        _: &failoverd::engine::StepContext,
    ) -> Result<failoverd::engine::VerifyOutcome, failoverd::engine::StepError> {
        Ok(failoverd::engine::VerifyOutcome::NotDone)
    }
    fn reversibility(&self) -> failoverd::engine::Reversibility {
        failoverd::engine::Reversibility::Compensable
    }
}

/// A dry run describes its steps concurrently, but records them in plan order: the first step's
/// description, which takes longest, still comes first in the journal and the timeline.
#[tokio::test]
async fn a_dry_run_records_its_descriptions_in_plan_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut plans = PlanRegistry::builtin(dir.path());
    plans.register(
        failoverd::plans::PlanInfo::new("slow-describe", "test", &[]),
        |_, _| {
            let steps: Vec<Arc<dyn failoverd::engine::Step>> = (1..=4u64)
                .map(|i| {
                    Arc::new(SlowDescribe {
                        id: failoverd::engine::StepId::new(format!("step-{i}")),
                        delay: Duration::from_millis(400 - 100 * i),
                    }) as Arc<dyn failoverd::engine::Step>
                })
                .collect();
            failoverd::engine::Plan::new(
                "slow-describe",
                vec![failoverd::engine::Phase::steps("all", steps)],
            )
        },
    );
    let runner = spawn_runner(Arc::new(MemoryStore::new()), Arc::new(plans), 1).unwrap();
    let view = runner
        .handle()
        .start(RunRequest {
            plan: "slow-describe".into(),
            dry_run: true,
            reason: "order".into(),
            requested_by: "alice".into(),
            ..RunRequest::default()
        })
        .await
        .unwrap();
    assert_eq!(view.status, RunStatus::Succeeded);
    let described: Vec<String> = view
        .timeline
        .iter()
        .filter_map(|e| match &e.event.kind {
            EventKind::StepDescribed { step, .. } => Some(step.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(described, ["step-1", "step-2", "step-3", "step-4"]);
}
