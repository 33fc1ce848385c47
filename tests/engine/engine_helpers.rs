//! Omicron-style checks (`actions_succeed_idempotently`, `action_failure_can_unwind`) applied to the
//! built-in `selftest` plan and to a plan mixing compensable, side-effect-free and irreversible
//! steps in concurrent phases — and shown to catch a step that is not idempotent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use failoverd::engine::testing::{action_failure_can_unwind, actions_succeed_idempotently};
use failoverd::engine::{
    EventKind, Mode, Phase, Plan, PlanCatalog, PlanError, Reversibility, RunStatus, Step,
    StepContext, StepDescription, StepError, StepId, VerifyOutcome,
};
use failoverd::plans::PlanRegistry;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(3600);

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn selftest_steps_run_twice_are_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let plans = Arc::new(PlanRegistry::builtin(dir.path()));
    let params = json!({"steps": 4, "step_seconds": 1, "approval": true});
    let view = actions_succeed_idempotently(plans, "selftest", &params, LIMIT)
        .await
        .unwrap();
    let effects = lines(&dir.path().join("selftest-effects.log"));
    for i in 1..=4 {
        let line = format!("{} selftest-{i}", view.id);
        assert_eq!(
            effects.iter().filter(|l| **l == line).count(),
            1,
            "{effects:?}"
        );
    }
    assert_eq!(effects.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn selftest_failure_at_each_step_unwinds_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let plans = Arc::new(PlanRegistry::builtin(dir.path()));
    let params = json!({"steps": 4, "step_seconds": 1});
    let views = action_failure_can_unwind(plans, "selftest", &params, LIMIT)
        .await
        .unwrap();
    assert_eq!(views.len(), 4);
    let effects = lines(&dir.path().join("selftest-effects.log"));
    for (failing, view) in views.iter().enumerate() {
        assert_eq!(view.status, RunStatus::Failed);
        // Every step before the failing one took effect and was compensated; none after ran.
        for i in 1..=4 {
            let did = effects.contains(&format!("{} selftest-{i}", view.id));
            let undone = effects.contains(&format!("{} selftest-{i} compensated", view.id));
            assert_eq!(did, i <= failing, "run {failing}: step {i}");
            assert_eq!(
                undone,
                i <= failing + 1,
                "run {failing}: compensation of step {i}"
            );
        }
    }
}

/// A world of named switches; steps flip them on, compensation flips them off.
#[derive(Default)]
struct Switches(Mutex<HashMap<String, u32>>);

struct SwitchStep {
    id: StepId,
    reversibility: Reversibility,
    switches: Arc<Switches>,
    /// A broken step: each execution adds another effect.
    idempotent: bool,
}

#[async_trait]
impl Step for SwitchStep {
    fn id(&self) -> &StepId {
        &self.id
    }
    fn name(&self) -> &str {
        self.id.as_str()
    }
    async fn describe(&self, _: &StepContext) -> Result<StepDescription, StepError> {
        Ok(StepDescription {
            summary: format!("turn {} on", self.id),
            changes: vec![format!("{}: off -> on", self.id)],
        })
    }
    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut s = self.switches.0.lock().unwrap();
        let n = s.entry(self.key(ctx)).or_default();
        if self.reversibility == Reversibility::NoSideEffect {
            return Ok(json!({}));
        }
        if !self.idempotent && *n > 0 {
            return Err(StepError::permanent(
                "already on: the API refuses a second change",
            ));
        }
        *n = 1;
        Ok(json!({"on": true}))
    }
    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        let s = self.switches.0.lock().unwrap();
        Ok(match s.get(&self.key(ctx)) {
            Some(1) => VerifyOutcome::Done(json!({"on": true})),
            _ => VerifyOutcome::NotDone,
        })
    }
    fn reversibility(&self) -> Reversibility {
        self.reversibility
    }
    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        self.switches.0.lock().unwrap().insert(self.key(ctx), 0);
        Ok(())
    }
}

impl SwitchStep {
    /// Switches are per run, like resources named after the run.
    fn key(&self, ctx: &StepContext) -> String {
        format!("{} {}", ctx.run_id, self.id)
    }
}

struct MixedCatalog {
    switches: Arc<Switches>,
    idempotent: bool,
}

impl PlanCatalog for MixedCatalog {
    fn build(&self, name: &str, _: Mode, _: &Value) -> Result<Plan, PlanError> {
        let step = |id: &str, r: Reversibility| -> Arc<dyn Step> {
            Arc::new(SwitchStep {
                id: StepId::new(id),
                reversibility: r,
                switches: self.switches.clone(),
                idempotent: self.idempotent,
            })
        };
        use Reversibility::*;
        Plan::new(
            name,
            vec![
                Phase::steps("check", vec![step("precheck", NoSideEffect)]),
                Phase::steps(
                    "prepare",
                    vec![step("scale-up", Compensable), step("dns-10", Compensable)],
                ),
                Phase::steps("promote", vec![step("promote-db", Irreversible)])
                    .with_approval("promote?"),
                Phase::steps("finish", vec![step("dns-100", Compensable)]),
            ],
        )
    }
    fn names(&self) -> Vec<String> {
        vec!["mixed".into()]
    }
}

#[tokio::test(start_paused = true)]
async fn mixed_plan_unwinds_or_stops_for_an_operator() {
    let catalog = Arc::new(MixedCatalog {
        switches: Arc::default(),
        idempotent: true,
    });
    actions_succeed_idempotently(catalog.clone(), "mixed", &json!({}), LIMIT)
        .await
        .unwrap();
    let views = action_failure_can_unwind(catalog, "mixed", &json!({}), LIMIT)
        .await
        .unwrap();
    let statuses: Vec<_> = views.iter().map(|v| v.status).collect();
    use RunStatus::*;
    // precheck, scale-up, dns-10 unwind cleanly; so does a promotion that failed without taking
    // effect (verify says so); a failure after the promotion needs a person.
    assert_eq!(statuses, [Failed, Failed, Failed, Failed, NeedsOperator]);
    assert!(views[3].timeline.iter().any(|e| matches!(
        &e.event.kind,
        EventKind::StepNotApplied { step } if step.as_str() == "promote-db"
    )));
    let msg = views[4].message.as_deref().unwrap();
    assert!(
        msg.contains("promote-db") && msg.contains("cannot be undone"),
        "{msg}"
    );
}

#[tokio::test(start_paused = true)]
async fn helper_catches_a_step_that_is_not_idempotent() {
    let catalog = Arc::new(MixedCatalog {
        switches: Arc::default(),
        idempotent: false,
    });
    let err = actions_succeed_idempotently(catalog, "mixed", &json!({}), LIMIT)
        .await
        .unwrap_err();
    assert!(
        err.contains("ended Failed") || err.contains("second execution"),
        "{err}"
    );
}

/// A step that only waits (a DNS hold, a poll): `NoSideEffect`, and long.
struct Hold {
    id: StepId,
}

#[async_trait]
impl Step for Hold {
    fn id(&self) -> &StepId {
        &self.id
    }
    fn name(&self) -> &str {
        "hold"
    }
    async fn describe(&self, _: &StepContext) -> Result<StepDescription, StepError> {
        Ok(StepDescription {
            summary: "hold 10 minutes".into(),
            changes: vec![],
        })
    }
    async fn execute(&self, _: &StepContext) -> Result<Value, StepError> {
        tokio::time::sleep(Duration::from_secs(600)).await;
        Ok(json!({}))
    }
    async fn verify(&self, _: &StepContext) -> Result<VerifyOutcome, StepError> {
        Ok(VerifyOutcome::NotDone)
    }
    fn reversibility(&self) -> Reversibility {
        Reversibility::NoSideEffect
    }
}

struct HoldCatalog {
    switches: Arc<Switches>,
}

impl PlanCatalog for HoldCatalog {
    fn build(&self, name: &str, _: Mode, _: &Value) -> Result<Plan, PlanError> {
        Plan::new(
            name,
            vec![
                Phase::steps(
                    "stage",
                    vec![Arc::new(SwitchStep {
                        id: StepId::new("dns-10"),
                        reversibility: Reversibility::Compensable,
                        switches: self.switches.clone(),
                        idempotent: true,
                    }) as Arc<dyn Step>],
                ),
                Phase::steps(
                    "hold",
                    vec![Arc::new(Hold {
                        id: StepId::new("hold-10"),
                    }) as Arc<dyn Step>],
                ),
            ],
        )
    }
    fn names(&self) -> Vec<String> {
        vec!["held".into()]
    }
}

/// An abort during a long side-effect-free wait acts at once: the wait is interrupted (nothing to
/// undo) and the unwind compensates the stage before it — it does not wait out the 10 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_interrupts_a_wait_at_once() {
    use failoverd::engine::testing::{spawn_runner, wait_finished};
    use failoverd::engine::{MemoryStore, RunRequest, StepStatus};
    let switches = Arc::new(Switches::default());
    let catalog = Arc::new(HoldCatalog {
        switches: switches.clone(),
    });
    let runner = spawn_runner(Arc::new(MemoryStore::new()), catalog, 1).unwrap();
    let h = runner.handle();
    let run = h
        .start(RunRequest {
            plan: "held".into(),
            reason: "test".into(),
            requested_by: "alice".into(),
            ..RunRequest::default()
        })
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = h.get(run.id).await.unwrap();
        let hold = v.phases[1].steps[0].status;
        if hold == StepStatus::Running {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hold never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.abort(run.id, "bob").await.unwrap();
    // Well inside the hold's 10 minutes (the bound only tells an interrupted wait from one
    // waited out).
    let view = wait_finished(&h, run.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(view.status, RunStatus::Aborted, "{:?}", view.message);
    assert!(view.timeline.iter().any(|e| matches!(
        &e.event.kind,
        EventKind::StepInterrupted { step, .. } if step.as_str() == "hold-10"
    )));
    assert!(view.timeline.iter().any(|e| matches!(
        &e.event.kind,
        EventKind::CompensationFinished { step } if step.as_str() == "dns-10"
    )));
    assert!(switches.0.lock().unwrap().values().all(|n| *n == 0));
    runner.shutdown().await;
}

/// A change, then a long wait for it to take (a GitOps reconcile): compensable, and the wait
/// watches the run's abort signal.
struct ChangeThenWait {
    id: StepId,
    changed: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait]
impl Step for ChangeThenWait {
    fn id(&self) -> &StepId {
        &self.id
    }
    fn name(&self) -> &str {
        "change then wait"
    }
    async fn describe(&self, _: &StepContext) -> Result<StepDescription, StepError> {
        Ok(StepDescription {
            summary: "change, then wait 10 minutes for it".into(),
            changes: vec![],
        })
    }
    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        self.changed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        ctx.abort.sleep(Duration::from_secs(600)).await?;
        Ok(json!({}))
    }
    async fn verify(&self, _: &StepContext) -> Result<VerifyOutcome, StepError> {
        Ok(VerifyOutcome::NotDone)
    }
    fn reversibility(&self) -> Reversibility {
        Reversibility::Compensable
    }
    async fn compensate(&self, _: &StepContext) -> Result<(), StepError> {
        self.changed
            .store(false, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

struct ChangeThenWaitCatalog {
    changed: Arc<std::sync::atomic::AtomicBool>,
}

impl PlanCatalog for ChangeThenWaitCatalog {
    fn build(&self, name: &str, _: Mode, _: &Value) -> Result<Plan, PlanError> {
        Plan::new(
            name,
            vec![Phase::steps(
                "reconcile",
                vec![Arc::new(ChangeThenWait {
                    id: StepId::new("reconcile"),
                    changed: self.changed.clone(),
                }) as Arc<dyn Step>],
            )],
        )
    }
    fn names(&self) -> Vec<String> {
        vec!["reconcile".into()]
    }
}

/// An abort while a step with a side effect waits for it to take: the wait stops at once, the
/// step is compensated, and the run ends `aborted` (not `failed`) — not 10 minutes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_stops_the_wait_of_a_step_that_changed_something() {
    use failoverd::engine::testing::{spawn_runner, wait_finished};
    use failoverd::engine::{MemoryStore, RunRequest, StepStatus};
    use std::sync::atomic::Ordering;
    let changed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let catalog = Arc::new(ChangeThenWaitCatalog {
        changed: changed.clone(),
    });
    let runner = spawn_runner(Arc::new(MemoryStore::new()), catalog, 1).unwrap();
    let h = runner.handle();
    let run = h
        .start(RunRequest {
            plan: "reconcile".into(),
            reason: "test".into(),
            requested_by: "alice".into(),
            ..RunRequest::default()
        })
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !changed.load(Ordering::SeqCst) {
        assert!(std::time::Instant::now() < deadline, "the step never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let asked = std::time::Instant::now();
    h.abort(run.id, "bob").await.unwrap();
    let view = wait_finished(&h, run.id, Duration::from_secs(30))
        .await
        .unwrap();
    println!("the run ended {:?} after the abort", asked.elapsed());
    assert_eq!(view.status, RunStatus::Aborted, "{:?}", view.message);
    let step = &view.phases[0].steps[0];
    assert_eq!(step.status, StepStatus::Compensated);
    assert!(
        step.error
            .as_deref()
            .is_some_and(|e| e.contains("aborted while this step waited")),
        "{:?}",
        step.error
    );
    assert!(!changed.load(Ordering::SeqCst));
    runner.shutdown().await;
}
