//! The actor: one task that owns every run this runner drives, the in-flight step tasks and the
//! leader lease, so there are no locks and every append to a journal is ordered.
//!
//! - this file: the actor's state, its loop, clean shutdown, leadership (acquire, fence, resume
//!   unfinished runs) and the set of live runs;
//! - [`commands`]: the answers to [`Command`]s from the handle (start, approve, abort, views);
//! - [`drive`]: appending events write-ahead and performing the actions `decide` chooses;
//! - [`reports`]: turning finished step tasks into events, and recovering from drive errors
//!   (store errors, a deposed leader, engine bugs).

mod commands;
mod drive;
mod reports;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::{AbortHandle, JoinSet};

use super::events::EVENT_BUFFER;
use super::handle::{load_state, Command};
use super::request::{RunError, StartError};
use super::tasks::{RetryNotes, TaskMeta, TaskReport};
use super::{RunnerConfig, RunnerDeps};
use crate::engine::decide::TaskKind;
use crate::engine::event::{EventKind, JournalEntry, RunId, StepId};
use crate::engine::leadership::{LeaderLease, Leadership};
use crate::engine::metrics::EngineMetrics;
use crate::engine::plan::{Plan, PlanCatalog};
use crate::engine::state::{IllegalTransition, RunState};
use crate::engine::step::{AbortSignal, Step, StepContext};
use crate::engine::store::{FencingToken, RunFilter, Store, StoreError};
use crate::engine::updates::EngineEvents;
use crate::engine::view::{RetryView, RunView};

struct LiveRun {
    /// `None` when the plan can no longer be built (the run is then stopped for an operator).
    plan: Option<Plan>,
    state: RunState,
    journal: Vec<JournalEntry>,
    events: broadcast::Sender<JournalEntry>,
    /// Distinguishes reports of tasks from an earlier incarnation of this run in this process.
    generation: u64,
    busy: HashMap<StepId, (TaskKind, AbortHandle)>,
    retry_ready: HashSet<StepId>,
    /// Retries waited out inside verify and compensate tasks.
    retries: RetryNotes,
    /// When each step's first attempt started in this process (on the runtime's clock, which
    /// tests may pause): with the journal's wall-clock start, what a retry deadline counts from.
    first_attempt: HashMap<StepId, tokio::time::Instant>,
    /// Tells waiting steps the run is aborted ([`StepContext::abort`]).
    abort: tokio::sync::watch::Sender<bool>,
    dry_run_reply: Option<oneshot::Sender<Result<RunView, StartError>>>,
    /// A dry run's descriptions that finished before an earlier step's: recorded in plan order,
    /// so the journal (and the timeline) reads like the plan. Their steps stay `busy` until then.
    described: HashMap<StepId, EventKind>,
}

impl LiveRun {
    /// The buffered descriptions that can be recorded now: those of the pending steps, in plan
    /// order, up to the first one still being described.
    fn take_described_in_order(&mut self) -> Vec<EventKind> {
        let order: Vec<StepId> = self
            .state
            .record
            .layout
            .steps()
            .map(|(_, l)| l.id.clone())
            .collect();
        let mut out = Vec::new();
        for step in order {
            let pending = self
                .state
                .steps
                .get(&step)
                .is_some_and(|s| s.status == crate::engine::StepStatus::Pending);
            if !pending {
                continue;
            }
            match self.described.remove(&step) {
                Some(kind) => {
                    self.busy.remove(&step);
                    out.push(kind);
                }
                None => break,
            }
        }
        out
    }

    fn abort_tasks(&mut self) {
        for (_, (_, h)) in self.busy.drain() {
            h.abort();
        }
    }

    fn view(&self) -> RunView {
        let mut view = RunView::new(&self.state, &self.journal);
        for step in view.phases.iter_mut().flat_map(|p| p.steps.iter_mut()) {
            if let Some(retry) = self.retries.get(&step.id) {
                step.retry = Some(retry);
            }
        }
        view
    }

    /// The steps waiting to try again: the journal's execute retries and the in-task ones.
    fn retrying(&self) -> impl Iterator<Item = (&StepId, RetryView)> + '_ {
        self.state.steps.iter().filter_map(|(id, s)| {
            let retry = self.retries.get(id).or_else(|| RetryView::of_execute(s))?;
            Some((id, retry))
        })
    }

    fn context(&self, attempt: u32) -> StepContext {
        let r = &self.state.record;
        StepContext {
            run_id: r.id,
            plan: Arc::from(r.plan.as_str()),
            mode: r.mode,
            drill: r.drill,
            params: Arc::new(r.params.clone()),
            attempt,
            run_started_at: self.state.started_at,
            outputs: Arc::new(
                self.state
                    .steps
                    .iter()
                    .filter_map(|(id, s)| Some((id.clone(), s.output.clone()?)))
                    .collect(),
            ),
            abort: AbortSignal::new(self.abort.subscribe()),
        }
    }

    fn step(&self, id: &StepId) -> Option<Arc<dyn Step>> {
        self.plan.as_ref()?.step(id).cloned()
    }
}

/// Resolves when `lease` stops being held (a renewed lease that expired or was taken over);
/// never while there is none.
fn lease_expired(lease: Option<&LeaderLease>) -> impl std::future::Future<Output = ()> + Send {
    let expired = lease.map(LeaderLease::expired);
    async move {
        match expired {
            Some(f) => f.await,
            None => std::future::pending().await,
        }
    }
}

enum DriveError {
    Store(StoreError),
    Illegal(IllegalTransition),
    NotLeader,
    Gone,
}

pub(super) struct Actor {
    config: RunnerConfig,
    store: Arc<dyn Store>,
    plans: Arc<dyn PlanCatalog>,
    leadership: Arc<dyn Leadership>,
    metrics: EngineMetrics,
    lease: Option<LeaderLease>,
    live: HashMap<RunId, LiveRun>,
    tasks: JoinSet<TaskReport>,
    task_meta: HashMap<tokio::task::Id, TaskMeta>,
    /// Runs dropped after a store error, to reload and resume.
    stalled: HashSet<RunId>,
    next_generation: u64,
    stopping: bool,
    /// Plans whose `failoverd_run_active` gauge has been set (to reset them to 0).
    active_plans: HashSet<String>,
    /// Status changes and leadership, published once durable.
    events: EngineEvents,
}

impl Actor {
    pub(super) fn new(config: RunnerConfig, deps: RunnerDeps, events: EngineEvents) -> Self {
        Self {
            config,
            store: deps.store,
            plans: deps.plans,
            leadership: deps.leadership,
            metrics: deps.metrics,
            lease: None,
            live: HashMap::new(),
            tasks: JoinSet::new(),
            task_meta: HashMap::new(),
            stalled: HashSet::new(),
            next_generation: 0,
            stopping: false,
            active_plans: HashSet::new(),
            events,
        }
    }

    pub(super) async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        self.try_lead().await;
        let period = self.config.leadership_poll.min(self.config.store_retry);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                cmd = rx.recv() => match cmd {
                    None => break,
                    Some(Command::Shutdown { reply }) => {
                        self.shutdown().await;
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.on_command(cmd).await,
                },
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.on_joined(joined).await;
                }
                _ = lease_expired(self.lease.as_ref()) => self.on_lease_expired().await,
                _ = tick.tick() => self.on_tick().await,
            }
        }
        self.tasks.shutdown().await;
    }

    async fn shutdown(&mut self) {
        self.stopping = true;
        // Retry backoffs and steps that only wait or observe are stopped at once (left in doubt,
        // verified at the next start); steps with a side effect in flight get the grace period.
        for live in self.live.values_mut() {
            let plan = live.plan.as_ref();
            live.busy.retain(|step, (kind, h)| {
                let waits_only = *kind == TaskKind::Execute
                    && plan.and_then(|p| p.step(step)).is_some_and(|s| {
                        s.reversibility() == crate::engine::event::Reversibility::NoSideEffect
                    });
                let keep = *kind != TaskKind::RetryWait && !waits_only;
                if !keep {
                    h.abort();
                }
                keep
            });
        }
        let deadline = tokio::time::Instant::now() + self.config.shutdown_grace;
        while !self.tasks.is_empty() {
            tokio::select! {
                Some(joined) = self.tasks.join_next_with_id() => self.on_joined(joined).await,
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.tasks.shutdown().await;
        for live in self.live.values_mut() {
            if let Some(reply) = live.dry_run_reply.take() {
                let _ = reply.send(Err(StartError::Stopped));
            }
        }
        self.live.clear();
        self.update_active_gauge();
        self.metrics.leader.set(0);
        self.events.leader(false);
        self.lease = None;
    }

    /// The fencing token to write with: `None` once the lease is not held, even before its
    /// expiry has been handled, so nothing is written (no step is started) past it.
    fn token(&self) -> Option<FencingToken> {
        self.lease
            .as_ref()
            .filter(|l| l.is_held())
            .map(LeaderLease::token)
    }

    async fn on_lease_expired(&mut self) {
        if self.lease.is_some() {
            tracing::error!(
                "leadership lost: the lease was taken over or not renewed in time; stepping down"
            );
            self.depose().await;
        }
    }

    async fn try_lead(&mut self) {
        if self.lease.is_some() || self.stopping {
            return;
        }
        let lease = match self.leadership.try_acquire().await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                self.events.leader(false);
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not acquire leadership");
                self.events.leader(false);
                return;
            }
        };
        if let Err(e) = self.store.fence(lease.token()).await {
            tracing::warn!(error = %e, token = %lease.token(), "leadership acquired but the store refused the fencing token");
            self.events.leader(false);
            return;
        }
        tracing::info!(token = %lease.token(), "became leader; resuming unfinished runs");
        self.lease = Some(lease);
        self.metrics.leader.set(1);
        self.events.leader(true);
        match self.store.list(&RunFilter::unfinished()).await {
            Ok(runs) => {
                for s in runs {
                    self.stalled.insert(s.record.id);
                }
            }
            Err(e) => tracing::error!(error = %e, "could not list unfinished runs"),
        }
        self.resume_stalled().await;
    }

    async fn on_tick(&mut self) {
        if self.lease.is_none() {
            self.try_lead().await;
        } else {
            self.resume_stalled().await;
        }
    }

    async fn resume_stalled(&mut self) {
        let ids: Vec<RunId> = self.stalled.drain().collect();
        for id in ids {
            if self.lease.is_none() {
                break;
            }
            if !self.live.contains_key(&id) {
                self.resume(id).await;
            }
        }
    }

    /// Reload a run from the store and drive it; in-doubt attempts are resolved first by `decide`.
    async fn resume(&mut self, id: RunId) {
        let (state, journal) = match load_state(self.store.as_ref(), id).await {
            Ok(x) => x,
            Err(RunError::Store(e)) => {
                tracing::warn!(run = %id, error = %e, "could not load run; will retry");
                self.stalled.insert(id);
                return;
            }
            Err(e) => {
                tracing::error!(run = %id, error = %e, "cannot resume run: its journal cannot be replayed by this version");
                return;
            }
        };
        if state.status.is_terminal() {
            return;
        }
        let record = Arc::clone(&state.record);
        let (plan, problem) = match self.plans.build(&record.plan, record.mode, &record.params) {
            Ok(plan) if plan.layout() == record.layout => (Some(plan), None),
            Ok(_) => (None, Some(format!(
                "the definition of plan {} changed since run {id} started, so it cannot be resumed safely; \
                 check which steps took effect (see the run's timeline) and finish the work by hand",
                record.plan
            ))),
            Err(e) => (None, Some(format!(
                "plan {} can no longer be built ({e}); check which steps of run {id} took effect (see its timeline) and finish the work by hand",
                record.plan
            ))),
        };
        self.insert_live(state, journal, plan, None);
        if let Some(message) = problem {
            if let Err(e) = self.append(id, EventKind::NeedsOperator { message }).await {
                self.on_drive_error(id, e).await;
                return;
            }
        }
        self.drive(id).await;
    }

    fn insert_live(
        &mut self,
        state: RunState,
        journal: Vec<JournalEntry>,
        plan: Option<Plan>,
        dry_run_reply: Option<oneshot::Sender<Result<RunView, StartError>>>,
    ) {
        self.next_generation += 1;
        let id = state.record.id;
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let state_abort = state.abort_requested_by.is_some();
        self.live.insert(
            id,
            LiveRun {
                plan,
                state,
                journal,
                events,
                generation: self.next_generation,
                busy: HashMap::new(),
                retry_ready: HashSet::new(),
                retries: RetryNotes::default(),
                first_attempt: HashMap::new(),
                abort: tokio::sync::watch::Sender::new(state_abort),
                dry_run_reply,
                described: HashMap::new(),
            },
        );
        self.update_active_gauge();
    }

    fn update_active_gauge(&mut self) {
        let mut counts: HashMap<String, i64> = HashMap::new();
        for live in self.live.values() {
            if !live.state.record.dry_run {
                *counts.entry(live.state.record.plan.clone()).or_default() += 1;
            }
        }
        for plan in self.active_plans.iter() {
            if !counts.contains_key(plan) {
                self.metrics
                    .run_active
                    .with_label_values(&[plan.as_str()])
                    .set(0);
            }
        }
        for (plan, n) in &counts {
            self.metrics
                .run_active
                .with_label_values(&[plan.as_str()])
                .set(*n);
            self.active_plans.insert(plan.clone());
        }
    }

    /// The unfinished (non-dry) run, if any: one being driven, or one waiting to be reloaded after
    /// a store error (it is still unfinished, so a second run must not start beside it).
    fn active_run(&self) -> Option<RunId> {
        self.live
            .values()
            .find(|l| !l.state.record.dry_run && !l.state.status.is_terminal())
            .map(|l| l.state.record.id)
            .or_else(|| self.stalled.iter().min().copied())
    }
}
