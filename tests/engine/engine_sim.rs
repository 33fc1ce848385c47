//! Deterministic simulation of the engine (DESIGN.md §6).
//!
//! Seeded random plans (phases, concurrent steps, approval gates, every kind of reversibility and
//! retry budget) whose steps fail retryably or not, before or after their side effect, time out,
//! or "crash the process" mid-step; operators approve, or abort at random times. The runner is
//! killed (dropped with all its tasks) at every journal append boundary — including appends that
//! were persisted but whose acknowledgement was lost — and at random points inside steps and
//! compensations, then restarted on the same store with a newer fencing token. After each seed:
//!
//! - the run ended `succeeded`, `failed`, `aborted` or `needs_operator`;
//! - no step was ever executed once its side effect was in place (steps record every execution
//!   and effect in a shared ledger), and no effect was applied twice;
//! - the journal holds exactly the events the store acknowledged or persisted, in order (a
//!   shadow copy is kept by the store wrapper), and `apply` accepts its replay;
//! - effects agree with the journal and the outcome (succeeded ⇒ every effect once and nothing
//!   compensated; failed/aborted ⇒ every compensable effect compensated, in reverse start order,
//!   and no irreversible effect).
//!
//! Time is paused, so waits, timeouts and backoffs cost nothing.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use failoverd::engine::testing::FixedLeadership;
use failoverd::engine::{
    EngineMetrics, Event, EventKind, FencingToken, IdempotencyKey, JournalEntry, MemoryStore, Mode,
    Phase, Plan, PlanCatalog, PlanError, RetryPolicy, Reversibility, RunFilter, RunId, RunRecord,
    RunRequest, RunState, RunStatus, RunSummary, Runner, RunnerConfig, RunnerDeps, RunnerHandle,
    StartError, Step, StepContext, StepDescription, StepError, StepId, StepStatus, Store,
    StoreError, StoredRun, VerifyOutcome,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::Notify;

// ---------------------------------------------------------------------------------------------
// The simulated world
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Exec {
    Ok,
    RetryableBefore,
    RetryableAfter,
    PermanentBefore,
    PermanentAfter,
    CrashBefore,
    CrashAfter,
    SlowBefore,
    SlowAfter,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Comp {
    Ok,
    Retryable,
    Permanent,
    CrashBefore,
    CrashAfter,
}

#[derive(Clone, Debug)]
pub(super) struct StepSpec {
    pub(super) id: StepId,
    pub(super) reversibility: Reversibility,
    max_attempts: u32,
    duration: Duration,
    pub(super) exec_script: Vec<Exec>,
    comp_script: Vec<Comp>,
    verify_errors: u32,
}

#[derive(Clone, Debug)]
pub(super) struct PhaseSpec {
    pub(super) name: String,
    pub(super) gate: bool,
    pub(super) steps: Vec<StepSpec>,
}

const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Decides when the "process" dies: after a number of acknowledged appends, or when a step says so.
struct CrashSwitch {
    appends_left: AtomicI64,
    ack_lost: bool,
    crashed: AtomicBool,
    notify: Notify,
}

impl CrashSwitch {
    fn new(crash_after: Option<u64>, ack_lost: bool) -> Arc<Self> {
        Arc::new(Self {
            appends_left: AtomicI64::new(crash_after.map_or(i64::MAX, |n| n as i64)),
            ack_lost,
            crashed: AtomicBool::new(false),
            notify: Notify::new(),
        })
    }
    fn crash(&self) {
        self.crashed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
    fn crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
pub(super) struct Ledger {
    effects: HashMap<StepId, u32>,
    executions: HashMap<StepId, u32>,
    compensations: Vec<StepId>,
    verify_calls: HashMap<StepId, u32>,
    comp_calls: HashMap<StepId, u32>,
    pub(super) violations: Vec<String>,
}

pub(super) struct World {
    pub(super) ledger: Mutex<Ledger>,
    switch: Mutex<Arc<CrashSwitch>>,
    crashes_left: AtomicU64,
}

impl World {
    /// A world whose steps never crash the process (the two-replica simulation kills replicas itself).
    pub(super) fn without_crashes() -> Arc<Self> {
        Arc::new(Self {
            ledger: Mutex::new(Ledger::default()),
            switch: Mutex::new(CrashSwitch::new(None, false)),
            crashes_left: AtomicU64::new(0),
        })
    }
    fn switch(&self) -> Arc<CrashSwitch> {
        self.switch.lock().unwrap().clone()
    }
    /// Crash the process if the budget allows; returns whether it did.
    fn try_crash(&self) -> bool {
        let left = self.crashes_left.load(Ordering::SeqCst);
        if left == 0 {
            return false;
        }
        self.crashes_left.store(left - 1, Ordering::SeqCst);
        self.switch().crash();
        true
    }
    fn effect(&self, id: &StepId) {
        let mut l = self.ledger.lock().unwrap();
        let n = l.effects.entry(id.clone()).or_default();
        *n += 1;
        if *n > 1 {
            l.violations.push(format!("effect of {id} applied twice"));
        }
    }
    fn has_effect(&self, id: &StepId) -> bool {
        self.ledger
            .lock()
            .unwrap()
            .effects
            .get(id)
            .copied()
            .unwrap_or(0)
            > 0
    }
}

pub(super) struct SimStep {
    pub(super) spec: StepSpec,
    pub(super) world: Arc<World>,
}

#[async_trait]
impl Step for SimStep {
    fn id(&self) -> &StepId {
        &self.spec.id
    }
    fn name(&self) -> &str {
        self.spec.id.as_str()
    }
    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        Ok(StepDescription {
            summary: format!("simulated {}", self.spec.id),
            changes: vec![],
        })
    }
    async fn execute(&self, _ctx: &StepContext) -> Result<Value, StepError> {
        let id = &self.spec.id;
        let behaviour = {
            let mut l = self.world.ledger.lock().unwrap();
            let n = l.executions.entry(id.clone()).or_default();
            let b = self
                .spec
                .exec_script
                .get(*n as usize)
                .copied()
                .unwrap_or(Exec::Ok);
            *n += 1;
            if l.effects.get(id).copied().unwrap_or(0) > 0 {
                l.violations
                    .push(format!("{id} executed although its effect was in place"));
            }
            b
        };
        let d = self.spec.duration;
        let out = json!({ "step": id.as_str() });
        match behaviour {
            Exec::Ok => {
                tokio::time::sleep(d).await;
                self.world.effect(id);
                Ok(out)
            }
            Exec::RetryableBefore => {
                tokio::time::sleep(d).await;
                Err(StepError::retryable("throttled"))
            }
            Exec::RetryableAfter => {
                self.world.effect(id);
                Err(StepError::retryable("connection reset after the change"))
            }
            Exec::PermanentBefore => Err(StepError::permanent("access denied")),
            Exec::PermanentAfter => {
                self.world.effect(id);
                Err(StepError::permanent("failed after the change"))
            }
            Exec::CrashBefore | Exec::CrashAfter => {
                tokio::time::sleep(d).await;
                if behaviour == Exec::CrashAfter {
                    self.world.effect(id);
                }
                if self.world.try_crash() {
                    std::future::pending::<()>().await;
                }
                if behaviour == Exec::CrashBefore {
                    self.world.effect(id);
                }
                Ok(out)
            }
            Exec::SlowBefore => {
                tokio::time::sleep(STEP_TIMEOUT * 2).await;
                self.world.effect(id);
                Ok(out)
            }
            Exec::SlowAfter => {
                self.world.effect(id);
                tokio::time::sleep(STEP_TIMEOUT * 2).await;
                Ok(out)
            }
        }
    }
    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        let id = &self.spec.id;
        let calls = {
            let mut l = self.world.ledger.lock().unwrap();
            let n = l.verify_calls.entry(id.clone()).or_default();
            *n += 1;
            *n
        };
        if calls <= self.spec.verify_errors {
            return Err(StepError::retryable("describe call throttled"));
        }
        Ok(if self.world.has_effect(id) {
            VerifyOutcome::Done(json!({ "step": id.as_str(), "verified": true }))
        } else {
            VerifyOutcome::NotDone
        })
    }
    fn reversibility(&self) -> Reversibility {
        self.spec.reversibility
    }
    async fn compensate(&self, _ctx: &StepContext) -> Result<(), StepError> {
        let id = &self.spec.id;
        let behaviour = {
            let mut l = self.world.ledger.lock().unwrap();
            let n = l.comp_calls.entry(id.clone()).or_default();
            let b = self
                .spec
                .comp_script
                .get(*n as usize)
                .copied()
                .unwrap_or(Comp::Ok);
            *n += 1;
            b
        };
        let record = || {
            let mut l = self.world.ledger.lock().unwrap();
            if !l.compensations.contains(id) {
                l.compensations.push(id.clone());
            }
        };
        match behaviour {
            Comp::Ok => {
                record();
                Ok(())
            }
            Comp::Retryable => Err(StepError::retryable("throttled")),
            Comp::Permanent => Err(StepError::permanent("cannot undo: resource locked")),
            Comp::CrashBefore | Comp::CrashAfter => {
                if behaviour == Comp::CrashAfter {
                    record();
                }
                if self.world.try_crash() {
                    std::future::pending::<()>().await;
                }
                record();
                Ok(())
            }
        }
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.spec.max_attempts,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(4),
            deadline: None,
        }
    }
    fn timeout(&self) -> Duration {
        STEP_TIMEOUT
    }
}

struct SimCatalog {
    phases: Vec<PhaseSpec>,
    world: Arc<World>,
}

/// The plan `sim` of `phases`, each step made by `step`.
pub(super) fn sim_plan(
    name: &str,
    phases: &[PhaseSpec],
    step: impl Fn(&StepSpec) -> Arc<dyn Step>,
) -> Result<Plan, PlanError> {
    if name != "sim" {
        return Err(PlanError::UnknownPlan {
            name: name.into(),
            known: vec!["sim".into()],
        });
    }
    let phases = phases
        .iter()
        .map(|p| {
            let phase = Phase::steps(p.name.clone(), p.steps.iter().map(&step).collect());
            if p.gate {
                phase.with_approval("go?")
            } else {
                phase
            }
        })
        .collect();
    Plan::new("sim", phases)
}

impl PlanCatalog for SimCatalog {
    fn build(&self, name: &str, _mode: Mode, _params: &Value) -> Result<Plan, PlanError> {
        sim_plan(name, &self.phases, |s| {
            Arc::new(SimStep {
                spec: s.clone(),
                world: Arc::clone(&self.world),
            })
        })
    }
    fn names(&self) -> Vec<String> {
        vec!["sim".into()]
    }
}

// ---------------------------------------------------------------------------------------------
// A store that dies with the process
// ---------------------------------------------------------------------------------------------

struct CrashingStore {
    inner: Arc<MemoryStore>,
    switch: Arc<CrashSwitch>,
    /// Every event the inner store persisted, in order (whether or not acknowledged).
    shadow: Arc<Mutex<HashMap<RunId, Vec<Event>>>>,
    appends: Arc<AtomicU64>,
}

impl CrashingStore {
    fn dead(&self) -> StoreError {
        StoreError::Unavailable("process crashed".into())
    }
}

#[async_trait]
impl Store for CrashingStore {
    async fn fence(&self, token: FencingToken) -> Result<(), StoreError> {
        if self.switch.crashed() {
            return Err(self.dead());
        }
        self.inner.fence(token).await
    }
    async fn create(
        &self,
        record: &RunRecord,
        token: FencingToken,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<(), StoreError> {
        if self.switch.crashed() {
            return Err(self.dead());
        }
        self.inner.create(record, token, idempotency).await
    }
    async fn append(
        &self,
        run_id: RunId,
        expected_seq: u64,
        token: FencingToken,
        event: &Event,
    ) -> Result<u64, StoreError> {
        if self.switch.crashed() {
            return Err(self.dead());
        }
        if self.switch.appends_left.fetch_sub(1, Ordering::SeqCst) <= 0 {
            self.switch.crash();
            if !self.switch.ack_lost {
                return Err(self.dead());
            }
            // Persisted, but the process dies before it learns so.
            if self
                .inner
                .append(run_id, expected_seq, token, event)
                .await
                .is_ok()
            {
                self.shadow
                    .lock()
                    .unwrap()
                    .entry(run_id)
                    .or_default()
                    .push(event.clone());
            }
            return Err(self.dead());
        }
        let seq = self
            .inner
            .append(run_id, expected_seq, token, event)
            .await?;
        self.appends.fetch_add(1, Ordering::SeqCst);
        self.shadow
            .lock()
            .unwrap()
            .entry(run_id)
            .or_default()
            .push(event.clone());
        Ok(seq)
    }
    async fn load(&self, run_id: RunId) -> Result<StoredRun, StoreError> {
        self.inner.load(run_id).await
    }
    async fn events_after(
        &self,
        run_id: RunId,
        after: u64,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        self.inner.events_after(run_id, after).await
    }
    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        self.inner.list(filter).await
    }
    async fn find_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<(RunId, IdempotencyKey)>, StoreError> {
        self.inner.find_idempotency_key(key).await
    }
}

// ---------------------------------------------------------------------------------------------
// Scenario generation
// ---------------------------------------------------------------------------------------------

pub(super) struct Scenario {
    pub(super) phases: Vec<PhaseSpec>,
    /// Abort this long after the start (virtual time), if set.
    pub(super) abort_after: Option<Duration>,
    /// At a gate: abort instead of approving.
    pub(super) abort_at_gate: bool,
    /// Step crashes allowed over the whole scenario.
    step_crashes: u64,
}

fn pick<T: Copy>(rng: &mut StdRng, weighted: &[(u32, T)]) -> T {
    let total: u32 = weighted.iter().map(|(w, _)| w).sum();
    let mut x = rng.random_range(0..total);
    for (w, v) in weighted {
        if x < *w {
            return *v;
        }
        x -= w;
    }
    weighted[0].1
}

pub(super) fn scenario(seed: u64, allow_step_crashes: bool) -> Scenario {
    let mut rng = StdRng::seed_from_u64(seed);
    let phase_count = rng.random_range(1..=4);
    let mut phases = Vec::new();
    for p in 0..phase_count {
        let gate = rng.random_bool(0.2);
        let step_count = if gate {
            rng.random_range(0..=2)
        } else {
            rng.random_range(1..=3)
        };
        let steps = (0..step_count)
            .map(|s| {
                let script_len = rng.random_range(0..=3);
                let exec_script = (0..script_len)
                    .map(|_| {
                        pick(
                            &mut rng,
                            &[
                                (40, Exec::Ok),
                                (12, Exec::RetryableBefore),
                                (8, Exec::RetryableAfter),
                                (4, Exec::PermanentBefore),
                                (3, Exec::PermanentAfter),
                                (if allow_step_crashes { 8 } else { 0 }, Exec::CrashBefore),
                                (if allow_step_crashes { 8 } else { 0 }, Exec::CrashAfter),
                                (4, Exec::SlowBefore),
                                (4, Exec::SlowAfter),
                            ],
                        )
                    })
                    .collect();
                let comp_len = rng.random_range(0..=2);
                let comp_script = (0..comp_len)
                    .map(|_| {
                        pick(
                            &mut rng,
                            &[
                                (60, Comp::Ok),
                                (15, Comp::Retryable),
                                (3, Comp::Permanent),
                                (if allow_step_crashes { 10 } else { 0 }, Comp::CrashBefore),
                                (if allow_step_crashes { 10 } else { 0 }, Comp::CrashAfter),
                            ],
                        )
                    })
                    .collect();
                StepSpec {
                    id: StepId::new(format!("p{p}s{s}")),
                    reversibility: pick(
                        &mut rng,
                        &[
                            (60, Reversibility::Compensable),
                            (20, Reversibility::NoSideEffect),
                            (20, Reversibility::Irreversible),
                        ],
                    ),
                    max_attempts: rng.random_range(1..=3),
                    duration: Duration::from_millis(rng.random_range(0..5000)),
                    exec_script,
                    comp_script,
                    verify_errors: if rng.random_bool(0.1) { 1 } else { 0 },
                }
            })
            .collect();
        phases.push(PhaseSpec {
            name: format!("phase-{p}"),
            gate,
            steps,
        });
    }
    if phases.iter().all(|p| p.steps.is_empty()) {
        phases[0].gate = false;
        phases[0].steps.push(StepSpec {
            id: StepId::new("only"),
            reversibility: Reversibility::Compensable,
            max_attempts: 1,
            duration: Duration::from_secs(1),
            exec_script: vec![],
            comp_script: vec![],
            verify_errors: 0,
        });
    }
    Scenario {
        phases,
        abort_after: rng
            .random_bool(0.2)
            .then(|| Duration::from_millis(rng.random_range(0..20_000))),
        abort_at_gate: rng.random_bool(0.15),
        step_crashes: if allow_step_crashes {
            rng.random_range(0..=3)
        } else {
            0
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Running a scenario with crashes
// ---------------------------------------------------------------------------------------------

/// Where the first incarnation crashes at an append boundary.
#[derive(Clone, Copy, Debug)]
struct AppendCrash {
    after: u64,
    ack_lost: bool,
}

struct Outcome {
    appends: u64,
    incarnations: u32,
    status: RunStatus,
    /// In-doubt or retried attempts that `verify` found done.
    verified: u32,
    /// In-doubt attempts that `verify` found not done.
    interrupted: u32,
    compensations: u32,
    /// Failed irreversible steps that `verify` showed had not taken effect while unwinding.
    not_applied: u32,
}

/// What the simulations explored, so a degenerate simulation fails instead of passing vacuously.
#[derive(Default, Debug)]
struct Coverage {
    sims: u64,
    restarts: u64,
    statuses: HashMap<RunStatus, u64>,
    verified: u64,
    interrupted: u64,
    compensations: u64,
    not_applied: u64,
}

impl Coverage {
    fn add(&mut self, o: &Outcome) {
        self.sims += 1;
        self.restarts += u64::from(o.incarnations - 1);
        *self.statuses.entry(o.status).or_default() += 1;
        self.verified += u64::from(o.verified);
        self.interrupted += u64::from(o.interrupted);
        self.compensations += u64::from(o.compensations);
        self.not_applied += u64::from(o.not_applied);
    }

    fn assert_explored(&self) {
        eprintln!("{self:?}");
        for s in [
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Aborted,
            RunStatus::NeedsOperator,
        ] {
            assert!(
                self.statuses.get(&s).copied().unwrap_or(0) > 0,
                "no run ended {s:?}: {self:?}"
            );
        }
        assert!(
            self.restarts > 0
                && self.verified > 0
                && self.interrupted > 0
                && self.compensations > 0
                && self.not_applied > 0,
            "{self:?}"
        );
    }
}

enum Waited {
    Finished,
    Crashed,
}

async fn operate(
    h: &RunnerHandle,
    id: RunId,
    sc: &Scenario,
    switch: &CrashSwitch,
    started: tokio::time::Instant,
) -> Waited {
    loop {
        if switch.crashed() {
            return Waited::Crashed;
        }
        if let Ok(v) = h.get(id).await {
            if v.status.is_terminal() {
                return Waited::Finished;
            }
            let abort_due = sc.abort_after.is_some_and(|a| started.elapsed() >= a);
            if v.abort_requested_by.is_none()
                && v.status != RunStatus::Unwinding
                && (abort_due || (v.status == RunStatus::WaitingApproval && sc.abort_at_gate))
            {
                let _ = h.abort(id, "sim-operator").await;
            } else if v.status == RunStatus::WaitingApproval {
                let _ = h.approve(id, "sim-operator").await;
            }
        }
        tokio::select! {
            _ = switch.notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

async fn simulate(seed: u64, sc: &Scenario, crash: Option<AppendCrash>) -> Outcome {
    let ctx = format!("seed {seed} crash {crash:?}");
    let world = Arc::new(World {
        ledger: Mutex::new(Ledger::default()),
        switch: Mutex::new(CrashSwitch::new(None, false)),
        crashes_left: AtomicU64::new(sc.step_crashes),
    });
    let inner = Arc::new(MemoryStore::new());
    let shadow: Arc<Mutex<HashMap<RunId, Vec<Event>>>> = Arc::default();
    let appends = Arc::new(AtomicU64::new(0));
    let catalog = Arc::new(SimCatalog {
        phases: sc.phases.clone(),
        world: Arc::clone(&world),
    });
    let mut run_id: Option<RunId> = None;
    let mut incarnation = 0u32;
    let t0 = tokio::time::Instant::now();
    loop {
        incarnation += 1;
        assert!(
            incarnation < 40,
            "{ctx}: no progress after {incarnation} restarts"
        );
        let switch = match (incarnation, crash) {
            (1, Some(c)) => CrashSwitch::new(Some(c.after), c.ack_lost),
            _ => CrashSwitch::new(None, false),
        };
        *world.switch.lock().unwrap() = Arc::clone(&switch);
        let store = Arc::new(CrashingStore {
            inner: Arc::clone(&inner),
            switch: Arc::clone(&switch),
            shadow: Arc::clone(&shadow),
            appends: Arc::clone(&appends),
        });
        let runner = Runner::spawn(
            RunnerConfig {
                region_pair: "sim".into(),
                ..RunnerConfig::default()
            },
            RunnerDeps {
                store,
                plans: catalog.clone(),
                leadership: Arc::new(FixedLeadership::new(u64::from(incarnation))),
                metrics: EngineMetrics::unregistered().unwrap(),
            },
        );
        let h = runner.handle();
        let id = match run_id {
            Some(id) => id,
            None => {
                let req = RunRequest {
                    plan: "sim".into(),
                    reason: format!("seed {seed}"),
                    requested_by: "sim".into(),
                    ..RunRequest::default()
                };
                match h.start(req.clone()).await {
                    Ok(v) => {
                        // While the run waits for approval it cannot finish on its own, so it
                        // is certainly active: a second start must be refused.
                        if !switch.crashed() && v.status == RunStatus::WaitingApproval {
                            let second = h.start(req).await;
                            assert!(
                                matches!(second, Err(StartError::RunActive { id }) if id == v.id),
                                "{ctx}: a second run was not refused: {second:?}"
                            );
                        }
                        run_id = Some(v.id);
                        v.id
                    }
                    Err(e) => panic!("{ctx}: start failed: {e}"),
                }
            }
        };
        match operate(&h, id, sc, &switch, t0).await {
            Waited::Finished => {
                runner.kill().await;
                break;
            }
            Waited::Crashed => runner.kill().await,
        }
    }
    let id = run_id.unwrap();
    let status = check_invariants(&ctx, sc, &world, inner.as_ref(), Some(&shadow), id).await;
    let journal = inner.load(id).await.unwrap().events;
    let count =
        |f: &dyn Fn(&EventKind) -> bool| journal.iter().filter(|e| f(&e.event.kind)).count() as u32;
    Outcome {
        appends: appends.load(Ordering::SeqCst),
        incarnations: incarnation,
        status,
        verified: count(&|k| matches!(k, EventKind::StepSucceeded { verified: true, .. })),
        interrupted: count(&|k| matches!(k, EventKind::StepInterrupted { .. })),
        compensations: count(&|k| matches!(k, EventKind::CompensationFinished { .. })),
        not_applied: count(&|k| matches!(k, EventKind::StepNotApplied { .. })),
    }
}

/// The invariants of one finished simulation; `shadow` (when the store wrapper keeps one) is
/// every event the store persisted, which the journal must equal.
pub(super) async fn check_invariants(
    ctx: &str,
    sc: &Scenario,
    world: &World,
    store: &dyn Store,
    shadow: Option<&Mutex<HashMap<RunId, Vec<Event>>>>,
    id: RunId,
) -> RunStatus {
    let stored = store.load(id).await.unwrap();
    let journal: Vec<Event> = stored.events.iter().map(|e| e.event.clone()).collect();
    // Journal never lost or reordered: exactly what was persisted, dense seqs.
    if let Some(shadow) = shadow {
        let shadow = shadow.lock().unwrap().get(&id).cloned().unwrap_or_default();
        assert_eq!(
            journal, shadow,
            "{ctx}: journal differs from what was persisted"
        );
    }
    for (i, e) in stored.events.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1, "{ctx}: seqs not dense");
    }
    // apply accepts the replay.
    let state = RunState::replay(Arc::new(stored.record.clone()), journal.iter())
        .unwrap_or_else(|e| panic!("{ctx}: replay refused: {e}"));
    assert!(
        state.status.is_terminal(),
        "{ctx}: ended in {:?}",
        state.status
    );

    let ledger = world.ledger.lock().unwrap();
    assert!(
        ledger.violations.is_empty(),
        "{ctx}: {:?}",
        ledger.violations
    );
    let specs: Vec<&StepSpec> = sc.phases.iter().flat_map(|p| p.steps.iter()).collect();
    let effect = |id: &StepId| ledger.effects.get(id).copied().unwrap_or(0);
    for spec in &specs {
        let st = state.step(&spec.id).unwrap();
        assert!(
            effect(&spec.id) <= 1,
            "{ctx}: {} applied {} times",
            spec.id,
            effect(&spec.id)
        );
        if st.attempt == 0 {
            assert_eq!(
                effect(&spec.id),
                0,
                "{ctx}: {} has an effect but never started",
                spec.id
            );
        }
        if matches!(
            st.status,
            StepStatus::Succeeded | StepStatus::Compensating | StepStatus::Compensated
        ) && !matches!(
            st.status,
            StepStatus::Compensating | StepStatus::Compensated
        ) {
            assert_eq!(
                effect(&spec.id),
                1,
                "{ctx}: {} succeeded without effect",
                spec.id
            );
        }
        if st.status == StepStatus::Compensated {
            assert!(
                ledger.compensations.contains(&spec.id),
                "{ctx}: {} compensated in the journal only",
                spec.id
            );
        }
    }
    match state.status {
        RunStatus::Succeeded => {
            for spec in &specs {
                assert_eq!(
                    effect(&spec.id),
                    1,
                    "{ctx}: succeeded but {} not applied once",
                    spec.id
                );
            }
            assert!(
                ledger.compensations.is_empty(),
                "{ctx}: succeeded run compensated"
            );
        }
        RunStatus::Failed | RunStatus::Aborted => {
            for spec in &specs {
                let st = state.step(&spec.id).unwrap();
                match spec.reversibility {
                    Reversibility::Compensable if effect(&spec.id) > 0 => assert_eq!(
                        st.status,
                        StepStatus::Compensated,
                        "{ctx}: effect of {} left in place",
                        spec.id
                    ),
                    Reversibility::Irreversible => assert_eq!(
                        effect(&spec.id),
                        0,
                        "{ctx}: irreversible {} took effect but the run claims a clean unwind",
                        spec.id
                    ),
                    _ => {}
                }
            }
            // Compensations happened in reverse start order.
            let started = &state.started_order;
            let mut expected: Vec<&StepId> = started
                .iter()
                .rev()
                .filter(|s| ledger.compensations.contains(s))
                .collect();
            expected.dedup();
            let actual: Vec<&StepId> = ledger.compensations.iter().collect();
            assert_eq!(actual, expected, "{ctx}: compensation order");
        }
        RunStatus::NeedsOperator => {
            assert!(
                state.message.as_deref().is_some_and(|m| !m.is_empty()),
                "{ctx}: no message"
            );
        }
        other => panic!("{ctx}: not terminal: {other:?}"),
    }
    let ids: HashSet<_> = specs.iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids.len(), specs.len(), "{ctx}: step ids must be unique");
    state.status
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

/// Crash at every append boundary (acknowledged and ack-lost) of the crash-free execution.
#[tokio::test(start_paused = true)]
async fn crash_at_every_event_boundary() {
    let mut cov = Coverage::default();
    for seed in 0..150u64 {
        let sc = scenario(seed, false);
        let clean = simulate(seed, &sc, None).await;
        cov.add(&clean);
        for after in 0..=clean.appends {
            for ack_lost in [false, true] {
                cov.add(&simulate(seed, &sc, Some(AppendCrash { after, ack_lost })).await);
            }
        }
    }
    assert!(cov.sims > 2000, "{cov:?}");
    cov.assert_explored();
}

/// Random crashes inside steps and compensations plus random append crashes, many seeds.
#[tokio::test(start_paused = true)]
async fn random_crashes_inside_steps() {
    let mut cov = Coverage::default();
    for seed in 1000..4000u64 {
        let sc = scenario(seed, true);
        let mut rng = StdRng::seed_from_u64(seed ^ 0xC0FFEE);
        let crash = rng.random_bool(0.5).then(|| AppendCrash {
            after: rng.random_range(0..40),
            ack_lost: rng.random_bool(0.5),
        });
        cov.add(&simulate(seed, &sc, crash).await);
    }
    assert!(
        cov.restarts > 1000,
        "the simulation must actually crash: {cov:?}"
    );
    cov.assert_explored();
}
