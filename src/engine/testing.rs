//! Helpers for testing plans and the engine, after omicron's saga `test_helpers`: every plan built
//! on the engine should pass [`actions_succeed_idempotently`] (each step executed twice is
//! harmless) and [`action_failure_can_unwind`] (a failure at each step in turn unwinds cleanly,
//! compensating in reverse order). They drive a real [`Runner`] on a [`MemoryStore`].
//!
//! These return `Result<_, String>` describing the first broken expectation instead of panicking,
//! so they can live in the library (plan modules' tests and integration tests share them).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;

use super::event::{EventKind, Mode, Reversibility, RunId, StepDescription, StepId};
use super::leadership::{LeaderLease, Leadership, LeadershipError};
use super::metrics::EngineMetrics;
use super::plan::{Phase, Plan, PlanCatalog, PlanError};
use super::runner::{RunRequest, Runner, RunnerConfig, RunnerDeps, RunnerHandle};
use super::state::RunStatus;
use super::step::{RetryPolicy, Step, StepContext, StepError, VerifyOutcome};
use super::store::{FencingToken, MemoryStore, Store};
use super::view::RunView;

/// A [`Leadership`] that grants a fixed token until revoked (tests and single-process tools).
pub struct FixedLeadership {
    token: AtomicU64,
    revoked: AtomicBool,
}

impl FixedLeadership {
    pub fn new(token: u64) -> Self {
        Self {
            token: AtomicU64::new(token),
            revoked: AtomicBool::new(false),
        }
    }

    /// Later acquisitions fail (an existing lease stays valid until the store refuses it).
    pub fn revoke(&self) {
        self.revoked.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl Leadership for FixedLeadership {
    async fn try_acquire(&self) -> Result<Option<LeaderLease>, LeadershipError> {
        if self.revoked.load(Ordering::SeqCst) {
            return Ok(None);
        }
        Ok(Some(LeaderLease::new(
            FencingToken(self.token.load(Ordering::SeqCst)),
            Box::new(()),
        )))
    }
}

/// Start a runner on `store` with `plans`, leading with `token`.
pub fn spawn_runner(
    store: Arc<dyn Store>,
    plans: Arc<dyn PlanCatalog>,
    token: u64,
) -> Result<Runner, String> {
    let metrics = EngineMetrics::unregistered().map_err(|e| e.to_string())?;
    Ok(Runner::spawn(
        RunnerConfig {
            region_pair: "test".into(),
            ..RunnerConfig::default()
        },
        RunnerDeps {
            store,
            plans,
            leadership: Arc::new(FixedLeadership::new(token)),
            metrics,
        },
    ))
}

/// Wait until the run reaches a terminal status (following its event stream), then return it.
pub async fn wait_finished(
    handle: &RunnerHandle,
    id: RunId,
    limit: Duration,
) -> Result<RunView, String> {
    let wait = async {
        let mut events = handle.subscribe(id, 0).await.map_err(|e| e.to_string())?;
        while let Some(e) = events.next().await {
            let e = e.map_err(|e| e.to_string())?;
            if e.event.kind.terminal_outcome().is_some() {
                break;
            }
        }
        // The stream may also end because the runner stopped driving the run; the view says.
        handle.get(id).await.map_err(|e| e.to_string())
    };
    let view = tokio::time::timeout(limit, wait)
        .await
        .map_err(|_| format!("run {id} did not finish within {limit:?}"))??;
    if !view.status.is_terminal() {
        return Err(format!("run {id} stopped in status {:?}", view.status));
    }
    Ok(view)
}

/// A catalog that rebuilds `inner`'s plans with every step passed through `wrap(index, step)`
/// (index = position in plan order).
pub struct WrappedCatalog<F> {
    pub inner: Arc<dyn PlanCatalog>,
    pub wrap: F,
}

impl<F> PlanCatalog for WrappedCatalog<F>
where
    F: Fn(usize, Arc<dyn Step>) -> Arc<dyn Step> + Send + Sync + 'static,
{
    fn build(&self, name: &str, mode: Mode, params: &Value) -> Result<Plan, PlanError> {
        let plan = self.inner.build(name, mode, params)?;
        let mut index = 0;
        let phases = plan
            .phases()
            .iter()
            .map(|p| Phase {
                name: p.name.clone(),
                approval: p.approval.clone(),
                steps: p
                    .steps
                    .iter()
                    .map(|s| {
                        let wrapped = (self.wrap)(index, Arc::clone(s));
                        index += 1;
                        wrapped
                    })
                    .collect(),
            })
            .collect();
        Plan::new(plan.name.clone(), phases)
    }

    fn names(&self) -> Vec<String> {
        self.inner.names()
    }
}

/// Executes the inner step twice per attempt and checks that the second execution succeeds and
/// that `verify` then reports the step done (for steps with a side effect).
struct ExecuteTwice(Arc<dyn Step>);

#[async_trait]
impl Step for ExecuteTwice {
    fn id(&self) -> &StepId {
        self.0.id()
    }
    fn name(&self) -> &str {
        self.0.name()
    }
    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        self.0.describe(ctx).await
    }
    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let first = self.0.execute(ctx).await?;
        let second = self.0.execute(ctx).await.map_err(|e| {
            StepError::permanent(format!("second execution of {} failed: {e}", self.id()))
        })?;
        let _ = second;
        if self.0.reversibility() == Reversibility::NoSideEffect {
            // Nothing to find in the world: re-running such a step is always the answer.
            return Ok(first);
        }
        match self.0.verify(ctx).await? {
            VerifyOutcome::Done(_) => Ok(first),
            VerifyOutcome::NotDone => Err(StepError::permanent(format!(
                "verify of {} says not done after executing it twice",
                self.id()
            ))),
        }
    }
    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        self.0.verify(ctx).await
    }
    fn reversibility(&self) -> Reversibility {
        self.0.reversibility()
    }
    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        self.0.compensate(ctx).await
    }
    fn retry_policy(&self) -> RetryPolicy {
        self.0.retry_policy()
    }
    fn timeout(&self) -> Duration {
        self.0.timeout().saturating_mul(2)
    }
}

/// Fails (non-retryably) instead of executing the inner step.
struct FailInstead(Arc<dyn Step>);

#[async_trait]
impl Step for FailInstead {
    fn id(&self) -> &StepId {
        self.0.id()
    }
    fn name(&self) -> &str {
        self.0.name()
    }
    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        self.0.describe(ctx).await
    }
    async fn execute(&self, _ctx: &StepContext) -> Result<Value, StepError> {
        Err(StepError::permanent(format!(
            "injected failure at {}",
            self.id()
        )))
    }
    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        self.0.verify(ctx).await
    }
    fn reversibility(&self) -> Reversibility {
        self.0.reversibility()
    }
    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        self.0.compensate(ctx).await
    }
    fn operator_check(&self) -> String {
        self.0.operator_check()
    }
    fn retry_policy(&self) -> RetryPolicy {
        self.0.retry_policy()
    }
    fn timeout(&self) -> Duration {
        self.0.timeout()
    }
}

/// Gates are approved automatically by the helpers.
async fn run_approving(
    handle: &RunnerHandle,
    req: RunRequest,
    limit: Duration,
) -> Result<RunView, String> {
    let view = handle.start(req).await.map_err(|e| e.to_string())?;
    let id = view.id;
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let view = handle.get(id).await.map_err(|e| e.to_string())?;
        if view.status.is_terminal() {
            return Ok(view);
        }
        if view.status == RunStatus::WaitingApproval {
            handle
                .approve(id, "test")
                .await
                .map_err(|e| e.to_string())?;
            continue;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "run {id} did not finish within {limit:?} ({:?})",
                view.status
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn request(plan: &str, params: &Value) -> RunRequest {
    RunRequest {
        plan: plan.to_owned(),
        params: params.clone(),
        reason: "engine test helper".into(),
        requested_by: "test".into(),
        ..RunRequest::default()
    }
}

/// Run `plan` with every step executed twice per attempt; the run must succeed. Returns the view
/// so the caller can also check the world holds each effect once.
pub async fn actions_succeed_idempotently(
    plans: Arc<dyn PlanCatalog>,
    plan: &str,
    params: &Value,
    limit: Duration,
) -> Result<RunView, String> {
    let catalog = Arc::new(WrappedCatalog {
        inner: plans,
        wrap: |_, s: Arc<dyn Step>| Arc::new(ExecuteTwice(s)) as Arc<dyn Step>,
    });
    let runner = spawn_runner(Arc::new(MemoryStore::new()), catalog, 1)?;
    let view = run_approving(&runner.handle(), request(plan, params), limit).await;
    runner.shutdown().await;
    let view = view?;
    if view.status != RunStatus::Succeeded {
        return Err(format!(
            "run with every step executed twice ended {:?}: {:?}",
            view.status, view.message
        ));
    }
    Ok(view)
}

/// For each step in turn, run `plan` with that step failing (without executing it); each run must
/// unwind cleanly: end `failed` (or `needs_operator` when an irreversible step had already taken
/// effect), with every compensable step that started compensated, in the reverse of the order the
/// steps started. Returns the views (one per step).
pub async fn action_failure_can_unwind(
    plans: Arc<dyn PlanCatalog>,
    plan: &str,
    params: &Value,
    limit: Duration,
) -> Result<Vec<RunView>, String> {
    action_failure_can_unwind_from(plans, plan, Mode::Graceful, params, limit, || async {}).await
}

/// [`action_failure_can_unwind`] in `mode`, calling `reset` before each run so that every run
/// starts from the same world (a plan past its point of no return leaves the world moved).
pub async fn action_failure_can_unwind_from<R, F>(
    plans: Arc<dyn PlanCatalog>,
    plan: &str,
    mode: Mode,
    params: &Value,
    limit: Duration,
    reset: R,
) -> Result<Vec<RunView>, String>
where
    R: Fn() -> F,
    F: std::future::Future<Output = ()>,
{
    let count = plans
        .build(plan, mode, params)
        .map_err(|e| e.to_string())?
        .layout()
        .steps()
        .count();
    let mut views = Vec::new();
    for failing in 0..count {
        reset().await;
        let catalog = Arc::new(WrappedCatalog {
            inner: Arc::clone(&plans),
            wrap: move |i, s: Arc<dyn Step>| {
                if i == failing {
                    Arc::new(FailInstead(s)) as Arc<dyn Step>
                } else {
                    s
                }
            },
        });
        let runner = spawn_runner(Arc::new(MemoryStore::new()), catalog, 1)?;
        let req = RunRequest {
            mode,
            ..request(plan, params)
        };
        let view = run_approving(&runner.handle(), req, limit).await;
        runner.shutdown().await;
        let view = view?;
        check_unwound(&view, failing)?;
        views.push(view);
    }
    Ok(views)
}

/// For each phase with steps in turn, run `plan` and request an abort while that phase's steps
/// are executing (they are held until the abort is recorded, then run to completion). Each run
/// must end as DESIGN §3 says: `aborted`, with every compensable step that started compensated in
/// reverse start order — or, when an irreversible step has taken effect (possibly in the aborted
/// phase itself), `needs_operator` with nothing of a later phase undone; and no step of a later
/// phase may start. `reset` is called before each run. Returns the views (one per phase).
pub async fn abort_at_each_phase<R, F>(
    plans: Arc<dyn PlanCatalog>,
    plan: &str,
    mode: Mode,
    params: &Value,
    limit: Duration,
    reset: R,
) -> Result<Vec<RunView>, String>
where
    R: Fn() -> F,
    F: std::future::Future<Output = ()>,
{
    let layout = plans
        .build(plan, mode, params)
        .map_err(|e| e.to_string())?
        .layout();
    let phase_of_step = phase_of_each_step(&layout);
    let mut views = Vec::new();
    for (phase, p) in layout.phases.iter().enumerate() {
        if p.steps.is_empty() {
            continue;
        }
        reset().await;
        let gate = Arc::new(AbortGate::default());
        let catalog = Arc::new(WrappedCatalog {
            inner: Arc::clone(&plans),
            wrap: {
                let gate = Arc::clone(&gate);
                let phase_of_step = phase_of_step.clone();
                move |i, s: Arc<dyn Step>| {
                    if phase_of_step.get(i) == Some(&phase) {
                        Arc::new(HeldUntilAbort {
                            inner: s,
                            gate: Arc::clone(&gate),
                        }) as Arc<dyn Step>
                    } else {
                        s
                    }
                }
            },
        });
        let runner = spawn_runner(Arc::new(MemoryStore::new()), catalog, 1)?;
        let handle = runner.handle();
        let result = async {
            let req = RunRequest {
                mode,
                ..request(plan, params)
            };
            let id = handle.start(req).await.map_err(|e| e.to_string())?.id;
            // Approve gates until a step of the phase is executing.
            approve_until(&handle, id, &p.name, limit, || {
                gate.reached.load(Ordering::SeqCst)
            })
            .await?;
            handle.abort(id, "test").await.map_err(|e| e.to_string())?;
            gate.release();
            wait_finished(&handle, id, limit).await
        }
        .await;
        gate.release();
        runner.shutdown().await;
        let view = result?;
        check_aborted(&view, phase)?;
        views.push(view);
    }
    Ok(views)
}

/// For each phase with steps in turn, run `plan`, and "kill the process" (drop the runner with
/// its tasks) right after the phase's steps took effect but before their outcome was journalled —
/// every one of them *in doubt*. A new runner on the same store (a newer fencing token) must
/// resume the run to `succeeded`, resolving each in-doubt step with `verify` instead of executing
/// it again. `reset` is called before each run. Returns the resumed runs' views.
pub async fn crash_in_each_phase<R, F>(
    plans: Arc<dyn PlanCatalog>,
    plan: &str,
    mode: Mode,
    params: &Value,
    limit: Duration,
    reset: R,
) -> Result<Vec<RunView>, String>
where
    R: Fn() -> F,
    F: std::future::Future<Output = ()>,
{
    let layout = plans
        .build(plan, mode, params)
        .map_err(|e| e.to_string())?
        .layout();
    let phase_of_step = phase_of_each_step(&layout);
    let mut views = Vec::new();
    for (phase, p) in layout.phases.iter().enumerate() {
        if p.steps.is_empty() {
            continue;
        }
        reset().await;
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let done = Arc::new(AtomicU64::new(0));
        let catalog = Arc::new(WrappedCatalog {
            inner: Arc::clone(&plans),
            wrap: {
                let done = Arc::clone(&done);
                let phase_of_step = phase_of_step.clone();
                move |i, s: Arc<dyn Step>| {
                    if phase_of_step.get(i) == Some(&phase) {
                        Arc::new(CrashAfterEffect {
                            inner: s,
                            done: Arc::clone(&done),
                        }) as Arc<dyn Step>
                    } else {
                        s
                    }
                }
            },
        });
        let first = spawn_runner(Arc::clone(&store), catalog, 1)?;
        let handle = first.handle();
        let req = RunRequest {
            mode,
            ..request(plan, params)
        };
        let id = handle.start(req).await.map_err(|e| e.to_string())?.id;
        approve_until(&handle, id, &p.name, limit, || {
            done.load(Ordering::SeqCst) >= p.steps.len() as u64
        })
        .await?;
        drop(first);
        let second = spawn_runner(Arc::clone(&store), Arc::clone(&plans), 2)?;
        let view = async {
            let deadline = tokio::time::Instant::now() + limit;
            loop {
                let view = second.handle().get(id).await.map_err(|e| e.to_string())?;
                if view.status.is_terminal() {
                    return Ok(view);
                }
                if view.status == RunStatus::WaitingApproval {
                    second
                        .handle()
                        .approve(id, "test")
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!(
                        "crash in phase {}: the resumed run did not finish within {limit:?}",
                        p.name
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        .await;
        second.shutdown().await;
        let view = view?;
        if view.status != RunStatus::Succeeded {
            return Err(format!(
                "crash in phase {}: the resumed run ended {:?} ({:?})",
                p.name, view.status, view.message
            ));
        }
        for l in &p.steps {
            let starts = view
                .timeline
                .iter()
                .filter(|e| matches!(&e.event.kind, EventKind::StepStarted { step, .. } if step == &l.id))
                .count();
            let s = view
                .phases
                .iter()
                .flat_map(|p| p.steps.iter())
                .find(|s| s.id == l.id);
            let verified = s.is_some_and(|s| s.verified);
            // A step with a side effect must be found done, never executed again; a step without
            // one may simply run again.
            if l.reversibility != Reversibility::NoSideEffect && (!verified || starts != 1) {
                return Err(format!(
                    "crash in phase {}: step {} was started {starts} time(s), verified: {verified}",
                    p.name, l.id
                ));
            }
        }
        views.push(view);
    }
    Ok(views)
}

/// Executes the inner step, then never returns: the process "dies" with the effect in place and
/// no outcome journalled.
struct CrashAfterEffect {
    inner: Arc<dyn Step>,
    done: Arc<AtomicU64>,
}

#[async_trait]
impl Step for CrashAfterEffect {
    fn id(&self) -> &StepId {
        self.inner.id()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        self.inner.describe(ctx).await
    }
    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let result = self.inner.execute(ctx).await;
        self.done.fetch_add(1, Ordering::SeqCst);
        result?;
        std::future::pending().await
    }
    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        self.inner.verify(ctx).await
    }
    fn reversibility(&self) -> Reversibility {
        self.inner.reversibility()
    }
    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        self.inner.compensate(ctx).await
    }
    fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry_policy()
    }
    fn timeout(&self) -> Duration {
        self.inner.timeout()
    }
}

/// The phase index of every step, in plan order (the index [`WrappedCatalog`] passes).
fn phase_of_each_step(layout: &super::event::PlanLayout) -> Vec<usize> {
    layout
        .phases
        .iter()
        .enumerate()
        .flat_map(|(i, p)| std::iter::repeat_n(i, p.steps.len()))
        .collect()
}

/// The index of the phase holding step `id`.
fn phase_of(view: &RunView, id: &StepId) -> Option<usize> {
    view.phases
        .iter()
        .position(|p| p.steps.iter().any(|s| &s.id == id))
}

/// Approves the run's gates until `reached()` (a step of phase `phase` got where the caller
/// waits for), failing if the run ends first or `limit` passes.
async fn approve_until(
    handle: &RunnerHandle,
    id: RunId,
    phase: &str,
    limit: Duration,
    reached: impl Fn() -> bool,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    while !reached() {
        let view = handle.get(id).await.map_err(|e| e.to_string())?;
        if view.status.is_terminal() {
            return Err(format!(
                "run ended {:?} before phase {phase} ran ({:?})",
                view.status, view.message
            ));
        }
        if view.status == RunStatus::WaitingApproval {
            handle
                .approve(id, "test")
                .await
                .map_err(|e| e.to_string())?;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("phase {phase} was not reached within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Lets the steps of one phase start, and holds them until the abort has been requested.
#[derive(Default)]
struct AbortGate {
    reached: AtomicBool,
    released: tokio::sync::Notify,
    open: AtomicBool,
}

impl AbortGate {
    fn release(&self) {
        self.open.store(true, Ordering::SeqCst);
        self.released.notify_waiters();
    }

    async fn wait(&self) {
        self.reached.store(true, Ordering::SeqCst);
        loop {
            let notified = self.released.notified();
            if self.open.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

struct HeldUntilAbort {
    inner: Arc<dyn Step>,
    gate: Arc<AbortGate>,
}

#[async_trait]
impl Step for HeldUntilAbort {
    fn id(&self) -> &StepId {
        self.inner.id()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        self.inner.describe(ctx).await
    }
    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        self.gate.wait().await;
        self.inner.execute(ctx).await
    }
    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        self.inner.verify(ctx).await
    }
    fn reversibility(&self) -> Reversibility {
        self.inner.reversibility()
    }
    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        self.inner.compensate(ctx).await
    }
    fn operator_check(&self) -> String {
        self.inner.operator_check()
    }
    fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry_policy()
    }
    fn timeout(&self) -> Duration {
        self.inner.timeout().saturating_add(Duration::from_secs(60))
    }
}

/// What unwinding must do to a run whose started steps are `started` (in start order), given the
/// step that failed instead of executing (if any): the compensations expected, in order, and
/// whether the run must stop for an operator. Past an irreversible step that took effect nothing
/// of a later phase is undone.
fn expected_unwind(
    view: &RunView,
    started: &[StepId],
    failed_id: Option<&StepId>,
) -> (Vec<StepId>, bool) {
    let steps: Vec<_> = view.phases.iter().flat_map(|p| p.steps.iter()).collect();
    let reversibility = |id: &StepId| steps.iter().find(|s| &s.id == id).map(|s| s.reversibility);
    let phase_of = |id: &StepId| phase_of(view, id);
    let barrier = started
        .iter()
        .filter(|id| {
            Some(*id) != failed_id && reversibility(id) == Some(Reversibility::Irreversible)
        })
        .filter_map(&phase_of)
        .max();
    let mut expected = Vec::new();
    for id in started.iter().rev() {
        match reversibility(id) {
            Some(Reversibility::Compensable) => {
                if barrier.is_some_and(|b| phase_of(id).is_some_and(|p| p > b)) {
                    return (expected, true);
                }
                expected.push(id.clone());
            }
            Some(Reversibility::NoSideEffect) => {}
            // The injected failure happens instead of the step, so `verify` finds nothing to undo.
            Some(Reversibility::Irreversible) if Some(id) == failed_id => {}
            Some(Reversibility::Irreversible) | None => return (expected, true),
        }
    }
    (expected, false)
}

fn started_and_compensated(view: &RunView) -> (Vec<StepId>, Vec<StepId>) {
    let mut started = Vec::new();
    let mut compensated = Vec::new();
    for e in &view.timeline {
        match &e.event.kind {
            EventKind::StepStarted { step, .. } if !started.contains(step) => {
                started.push(step.clone())
            }
            EventKind::CompensationStarted { step } => compensated.push(step.clone()),
            _ => {}
        }
    }
    (started, compensated)
}

fn check_aborted(view: &RunView, phase: usize) -> Result<(), String> {
    let name = &view.phases[phase].name;
    let (started, compensated) = started_and_compensated(view);
    let (expected, blocked) = expected_unwind(view, &started, None);
    let want = if blocked {
        RunStatus::NeedsOperator
    } else {
        RunStatus::Aborted
    };
    if view.status != want {
        return Err(format!(
            "abort in phase {name}: run ended {:?}, expected {want:?} ({:?})",
            view.status, view.message
        ));
    }
    if compensated != expected {
        return Err(format!(
            "abort in phase {name}: compensated {compensated:?}, expected {expected:?}"
        ));
    }
    let phase_of = |id: &StepId| phase_of(view, id);
    if let Some(late) = started.iter().find(|s| phase_of(s) > Some(phase)) {
        return Err(format!(
            "abort in phase {name}: step {late} of a later phase started anyway"
        ));
    }
    Ok(())
}

fn check_unwound(view: &RunView, failing: usize) -> Result<(), String> {
    let layout: Vec<_> = view.phases.iter().flat_map(|p| p.steps.iter()).collect();
    let failed_id = &layout[failing].id;
    let (started, compensated) = started_and_compensated(view);
    let (expected, blocked) = expected_unwind(view, &started, Some(failed_id));
    let want_status = if blocked {
        RunStatus::NeedsOperator
    } else {
        RunStatus::Failed
    };
    if view.status != want_status {
        return Err(format!(
            "failure at {failed_id}: run ended {:?}, expected {want_status:?} ({:?})",
            view.status, view.message
        ));
    }
    if compensated != expected {
        return Err(format!(
            "failure at {failed_id}: compensated {compensated:?}, expected {expected:?} (reverse start order)"
        ));
    }
    let phase_of = |id: &StepId| phase_of(view, id);
    if let Some(late) = started.iter().find(|s| phase_of(s) > phase_of(failed_id)) {
        return Err(format!(
            "failure at {failed_id}: step {late} of a later phase started anyway"
        ));
    }
    Ok(())
}
