//! The runner: an actor that owns every run it drives, and the cloneable [`RunnerHandle`] the HTTP API
//! and the trigger policy use to start, approve, abort and watch runs.
//!
//! One task owns all mutable engine state (live runs, in-flight step tasks, the leader lease), so
//! there are no locks and every append to a journal is ordered: the actor computes the next action
//! with [`decide`], checks the event with [`apply`], makes it durable with the [`Store`], and only
//! then acts (spawns the step's task). Step work runs in tasks of a `JoinSet` that report back to
//! the actor. Dropping the [`Runner`] aborts the actor and all its step tasks — exactly what a crash
//! does, which is safe because `StepStarted` is durable before any side effect.
//!
//! On gaining leadership the runner fences the store with its token and resumes every unfinished
//! run: attempts that were in flight are *in doubt* and are resolved with `verify` first.
//!
//! For the HTTP API: every [`RunnerHandle`] method maps to one route (`start` → `POST /v1/runs`,
//! `list`, `get`, `subscribe` → SSE with `Last-Event-ID` as `after_seq`, `approve`, `abort`,
//! `status` → `/v1/status`); errors carry `code()` for the JSON error body and `http_status()`;
//! views are `Serialize`. A follower (not leader) still answers reads from the store and refuses
//! writes with `not_leader` (503).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::{AbortHandle, JoinError, JoinHandle, JoinSet};

use super::decide::{decide, Action, TaskKind};
use super::event::{
    Event, EventKind, JournalEntry, Mode, RunId, RunRecord, StepDescription, StepId,
};
use super::leadership::{LeaderLease, Leadership};
use super::metrics::EngineMetrics;
use super::plan::{Plan, PlanCatalog, PlanError};
use super::state::{apply, IllegalTransition, RunState, RunStatus};
use super::step::{Step, StepContext, StepError, VerifyOutcome};
use super::store::{FencingToken, IdempotencyKey, RunFilter, Store, StoreError};
use super::updates::{EngineEvents, RunUpdate};
use super::view::{RunSummaryView, RunView};

/// Commands queued for the actor. They come from HTTP handlers and the trigger policy — a handful
/// of callers — and are answered in microseconds, except those that append (start, approve, abort:
/// one fsync each, about a millisecond). 64 lets a burst of dashboard polls queue instead of fail
/// while bounding memory; senders wait (backpressure) when it is full.
const COMMAND_CAPACITY: usize = 64;

/// How often an event stream for a run this runner does not drive (a follower's) polls the store.
const STREAM_POLL: Duration = Duration::from_secs(1);

/// Events buffered per run for subscribers. A run has at most a few hundred events; a subscriber
/// that falls further behind catches up from the store.
const EVENT_BUFFER: usize = 256;

/// Configuration of the runner.
#[derive(Clone, Debug)]
pub struct RunnerConfig {
    /// The region pair this runner acts on (`"us-east-1/us-west-2"`); one active run at a time.
    pub region_pair: String,
    /// How often a follower tries to become leader.
    pub leadership_poll: Duration,
    /// How long after a store error a run is reloaded and resumed.
    pub store_retry: Duration,
    /// How long `shutdown` lets in-flight steps finish before abandoning them (in doubt).
    pub shutdown_grace: Duration,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        Self {
            region_pair: "default".into(),
            leadership_poll: Duration::from_secs(5),
            store_retry: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What the runner is built from.
pub struct RunnerDeps {
    pub store: Arc<dyn Store>,
    pub plans: Arc<dyn PlanCatalog>,
    pub leadership: Arc<dyn Leadership>,
    pub metrics: EngineMetrics,
}

/// A request to start a run (the body of `POST /v1/runs` plus who asked and the idempotency key).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    pub plan: String,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub drill: bool,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub params: Value,
    /// Set by the API from the authenticated caller.
    #[serde(default)]
    pub requested_by: String,
    /// Set by the API from the `Idempotency-Key` header.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

impl RunRequest {
    /// Fingerprint of what the request asks for (not who asked), so a reused idempotency key with a
    /// different request is detected.
    fn fingerprint(&self) -> String {
        let canonical = serde_json::json!([
            self.plan,
            self.mode,
            self.dry_run,
            self.drill,
            self.reason,
            self.params
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("unknown plan {plan:?} (known plans: {})", known.join(", "))]
    UnknownPlan { plan: String, known: Vec<String> },
    #[error("invalid parameter {field}: {message}")]
    BadParams { field: String, message: String },
    #[error("plan definition is invalid: {message}")]
    InvalidPlan { message: String },
    #[error("run {id} is active for this region pair")]
    RunActive { id: RunId },
    #[error("idempotency key {key:?} was used for a different request (run {run_id})")]
    IdempotencyKeyReused { key: String, run_id: RunId },
    #[error("this failoverd is not the leader")]
    NotLeader,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the runner has stopped")]
    Stopped,
}

impl StartError {
    /// Stable error code for the API's JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            StartError::UnknownPlan { .. } => "unknown_plan",
            StartError::BadParams { .. } => "bad_params",
            StartError::InvalidPlan { .. } => "invalid_plan",
            StartError::RunActive { .. } => "run_active",
            StartError::IdempotencyKeyReused { .. } => "idempotency_key_reused",
            StartError::NotLeader => "not_leader",
            StartError::Store(_) => "store_error",
            StartError::Stopped => "runner_stopped",
        }
    }

    /// The HTTP status this error maps to.
    pub fn http_status(&self) -> u16 {
        match self {
            StartError::UnknownPlan { .. } | StartError::BadParams { .. } => 400,
            StartError::RunActive { .. } => 409,
            StartError::IdempotencyKeyReused { .. } => 422,
            StartError::NotLeader | StartError::Stopped => 503,
            StartError::InvalidPlan { .. } | StartError::Store(_) => 500,
        }
    }
}

impl From<PlanError> for StartError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::UnknownPlan { name, known } => StartError::UnknownPlan { plan: name, known },
            PlanError::BadParams { field, message } => StartError::BadParams { field, message },
            PlanError::Invalid { message } => StartError::InvalidPlan { message },
        }
    }
}

/// Errors of commands and queries on an existing run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("run {id} not found")]
    NotFound { id: RunId },
    #[error("run {id} is not waiting for approval (it is {})", status.as_str())]
    NotWaitingApproval { id: RunId, status: RunStatus },
    #[error("run {id} has already finished ({})", status.as_str())]
    AlreadyFinished { id: RunId, status: RunStatus },
    #[error("this failoverd is not the leader")]
    NotLeader,
    #[error(
        "run {id} is not being driven right now (recovering from a store error); retry shortly"
    )]
    NotDriven { id: RunId },
    #[error("journal of run {id} cannot be replayed: {source}")]
    CorruptJournal {
        id: RunId,
        #[source]
        source: IllegalTransition,
    },
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the runner has stopped")]
    Stopped,
}

impl RunError {
    /// Stable error code for the API's JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            RunError::NotFound { .. } => "not_found",
            RunError::NotWaitingApproval { .. } => "not_waiting_approval",
            RunError::AlreadyFinished { .. } => "already_finished",
            RunError::NotLeader => "not_leader",
            RunError::NotDriven { .. } => "run_unavailable",
            RunError::CorruptJournal { .. } => "corrupt_journal",
            RunError::Store(_) => "store_error",
            RunError::Stopped => "runner_stopped",
        }
    }

    /// The HTTP status this error maps to.
    pub fn http_status(&self) -> u16 {
        match self {
            RunError::NotFound { .. } => 404,
            RunError::NotWaitingApproval { .. } | RunError::AlreadyFinished { .. } => 409,
            RunError::NotLeader | RunError::NotDriven { .. } | RunError::Stopped => 503,
            RunError::CorruptJournal { .. } | RunError::Store(_) => 500,
        }
    }
}

/// Leadership and activity of the runner, for `GET /v1/status` and readiness.
#[derive(Clone, Debug, Serialize)]
pub struct RunnerStatus {
    pub region_pair: String,
    pub leader: bool,
    pub fencing_token: Option<FencingToken>,
    pub active_run: Option<RunId>,
}

/// A stream of journal entries (for server-sent events); ends after the run's terminal event.
pub type RunEventStream = BoxStream<'static, Result<JournalEntry, RunError>>;

enum Command {
    Start {
        req: RunRequest,
        reply: oneshot::Sender<Result<RunView, StartError>>,
    },
    Approve {
        id: RunId,
        by: String,
        reply: oneshot::Sender<Result<RunView, RunError>>,
    },
    Abort {
        id: RunId,
        by: String,
        reply: oneshot::Sender<Result<RunView, RunError>>,
    },
    LiveView {
        id: RunId,
        reply: oneshot::Sender<Option<RunView>>,
    },
    LiveStatuses {
        reply: oneshot::Sender<HashMap<RunId, RunStatus>>,
    },
    Subscribe {
        id: RunId,
        after_seq: u64,
        reply: oneshot::Sender<Option<(Vec<JournalEntry>, broadcast::Receiver<JournalEntry>)>>,
    },
    Status {
        reply: oneshot::Sender<RunnerStatus>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Owner of the runner's task. Dropping it aborts the runner at once (as a crash would);
/// [`Runner::shutdown`] stops it cleanly.
pub struct Runner {
    handle: RunnerHandle,
    task: Option<JoinHandle<()>>,
}

impl Runner {
    /// Start the runner: it tries to become leader at once (and then every `leadership_poll`), and
    /// on success resumes every unfinished run.
    pub fn spawn(config: RunnerConfig, deps: RunnerDeps) -> Self {
        let (tx, rx) = mpsc::channel(COMMAND_CAPACITY);
        let events = EngineEvents::new();
        let handle = RunnerHandle {
            tx,
            store: Arc::clone(&deps.store),
            events: events.clone(),
        };
        let actor = Actor {
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
        };
        let task = tokio::spawn(actor.run(rx));
        Self {
            handle,
            task: Some(task),
        }
    }

    pub fn handle(&self) -> RunnerHandle {
        self.handle.clone()
    }

    /// Stop cleanly: no new step starts; in-flight steps get `shutdown_grace` to finish and record
    /// their outcome; steps still running after that are abandoned in doubt (resolved by `verify`
    /// at the next start).
    pub async fn shutdown(mut self) {
        let (reply, done) = oneshot::channel();
        if self
            .handle
            .tx
            .send(Command::Shutdown { reply })
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stop at once, as a crash would (used by tests that simulate `kill -9`).
    pub async fn kill(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Cloneable access to the runner, for HTTP handlers (`Clone + Send + Sync`).
#[derive(Clone)]
pub struct RunnerHandle {
    tx: mpsc::Sender<Command>,
    store: Arc<dyn Store>,
    events: EngineEvents,
}

impl RunnerHandle {
    /// Every change of a run's status, published after it is durable (see [`super::updates`]).
    pub fn updates(&self) -> tokio::sync::broadcast::Receiver<RunUpdate> {
        self.events.subscribe_runs()
    }

    /// Whether this process holds leadership, as it changes (`None` until the first attempt).
    pub fn leadership(&self) -> tokio::sync::watch::Receiver<Option<bool>> {
        self.events.subscribe_leader()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.ok()?;
        rx.await.ok()
    }

    /// Start a run. For a dry run this returns once every step has been described (the view's steps
    /// carry their descriptions); otherwise it returns as soon as the run has started. A repeated
    /// request with the same idempotency key returns the run the key was first used for.
    pub async fn start(&self, req: RunRequest) -> Result<RunView, StartError> {
        self.ask(|reply| Command::Start { req, reply })
            .await
            .ok_or(StartError::Stopped)?
    }

    /// Approve the gate the run waits at.
    pub async fn approve(&self, id: RunId, by: impl Into<String>) -> Result<RunView, RunError> {
        let by = by.into();
        self.ask(|reply| Command::Approve { id, by, reply })
            .await
            .ok_or(RunError::Stopped)?
    }

    /// Abort the run: no further step starts; completed steps are compensated in reverse order.
    /// Aborting a run that is already aborting is a no-op.
    pub async fn abort(&self, id: RunId, by: impl Into<String>) -> Result<RunView, RunError> {
        let by = by.into();
        self.ask(|reply| Command::Abort { id, by, reply })
            .await
            .ok_or(RunError::Stopped)?
    }

    /// The run's view (live state if this runner drives it, else folded from the store).
    pub async fn get(&self, id: RunId) -> Result<RunView, RunError> {
        if let Some(Some(view)) = self.ask(|reply| Command::LiveView { id, reply }).await {
            return Ok(view);
        }
        let (state, journal) = load_state(self.store.as_ref(), id).await?;
        Ok(RunView::new(&state, &journal))
    }

    /// Runs, newest first.
    pub async fn list(&self, filter: RunFilter) -> Result<Vec<RunSummaryView>, RunError> {
        let live = self
            .ask(|reply| Command::LiveStatuses { reply })
            .await
            .unwrap_or_default();
        let mut out = Vec::new();
        for s in self.store.list(&filter).await? {
            let status = match (s.outcome, live.get(&s.record.id)) {
                (Some(o), _) => o.into(),
                (None, Some(status)) => *status,
                (None, None) => match load_state(self.store.as_ref(), s.record.id).await {
                    Ok((state, _)) => state.status,
                    Err(_) => RunStatus::Pending,
                },
            };
            out.push(RunSummaryView::new(&s.record, status, s.finished_at));
        }
        Ok(out)
    }

    /// The run's journal entries after `after_seq`, then live ones until the run ends (resumable:
    /// pass the last seq seen, e.g. from `Last-Event-ID`). On a follower, or while the run is
    /// being recovered, new entries are picked up from the store every second. The stream ends
    /// after the terminal event (at once if the run had already ended before `after_seq`).
    pub async fn subscribe(&self, id: RunId, after_seq: u64) -> Result<RunEventStream, RunError> {
        let live = self
            .ask(|reply| Command::Subscribe {
                id,
                after_seq,
                reply,
            })
            .await
            .flatten();
        let (backlog, rx, done) = match live {
            Some((backlog, rx)) => (backlog, Some(rx), false),
            None => {
                let all = self.store.events_after(id, 0).await.map_err(|e| match e {
                    StoreError::NotFound(id) => RunError::NotFound { id },
                    e => RunError::Store(e),
                })?;
                let finished = all
                    .last()
                    .is_some_and(|e| e.event.kind.terminal_outcome().is_some());
                let backlog: Vec<_> = all.into_iter().filter(|e| e.seq > after_seq).collect();
                let done = finished && backlog.is_empty();
                (backlog, None, done)
            }
        };
        let st = EventStreamState {
            backlog: backlog.into(),
            rx,
            last_seq: after_seq,
            store: Arc::clone(&self.store),
            run_id: id,
            done,
        };
        Ok(Box::pin(futures::stream::unfold(st, next_stream_item)))
    }

    /// Leadership and the active run.
    pub async fn status(&self) -> Result<RunnerStatus, RunError> {
        self.ask(|reply| Command::Status { reply })
            .await
            .ok_or(RunError::Stopped)
    }
}

struct EventStreamState {
    backlog: VecDeque<JournalEntry>,
    rx: Option<broadcast::Receiver<JournalEntry>>,
    last_seq: u64,
    store: Arc<dyn Store>,
    run_id: RunId,
    done: bool,
}

async fn next_stream_item(
    mut st: EventStreamState,
) -> Option<(Result<JournalEntry, RunError>, EventStreamState)> {
    loop {
        if st.done {
            return None;
        }
        if let Some(e) = st.backlog.pop_front() {
            if e.seq <= st.last_seq {
                continue;
            }
            st.last_seq = e.seq;
            st.done = e.event.kind.terminal_outcome().is_some();
            return Some((Ok(e), st));
        }
        match st.rx.as_mut() {
            Some(rx) => match rx.recv().await {
                Ok(e) => {
                    st.backlog.push_back(e);
                    continue;
                }
                // Fell behind: catch up from the store (every event is durable before it is
                // broadcast).
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                // This runner stopped driving the run (finished, deposed, recovering): follow
                // the store from here.
                Err(broadcast::error::RecvError::Closed) => st.rx = None,
            },
            // Not driven by this runner (a follower, or recovery is pending): poll the store.
            None => tokio::time::sleep(STREAM_POLL).await,
        }
        match st.store.events_after(st.run_id, st.last_seq).await {
            Ok(v) => st.backlog.extend(v),
            Err(e) => {
                st.done = true;
                return Some((Err(RunError::Store(e)), st));
            }
        }
    }
}

/// Load a run and fold its journal.
async fn load_state(
    store: &dyn Store,
    id: RunId,
) -> Result<(RunState, Vec<JournalEntry>), RunError> {
    let stored = store.load(id).await.map_err(|e| match e {
        StoreError::NotFound(id) => RunError::NotFound { id },
        e => RunError::Store(e),
    })?;
    let state = RunState::replay(
        Arc::new(stored.record),
        stored.events.iter().map(|e| &e.event),
    )
    .map_err(|source| RunError::CorruptJournal { id, source })?;
    Ok((state, stored.events))
}

// ---------------------------------------------------------------------------------------------
// The actor
// ---------------------------------------------------------------------------------------------

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
    dry_run_reply: Option<oneshot::Sender<Result<RunView, StartError>>>,
}

impl LiveRun {
    fn abort_tasks(&mut self) {
        for (_, (_, h)) in self.busy.drain() {
            h.abort();
        }
    }

    fn view(&self) -> RunView {
        RunView::new(&self.state, &self.journal)
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
        }
    }

    fn step(&self, id: &StepId) -> Option<Arc<dyn Step>> {
        self.plan.as_ref()?.step(id).cloned()
    }
}

struct TaskReport {
    run: RunId,
    generation: u64,
    step: StepId,
    result: TaskResult,
}

enum TaskResult {
    Executed {
        attempt: u32,
        result: Result<(Value, bool), StepError>,
    },
    Verified {
        attempt: u32,
        result: Result<VerifyOutcome, StepError>,
    },
    RetryReady,
    /// Unwinding: did the failed irreversible step take effect?
    CheckedFailed {
        result: Result<VerifyOutcome, StepError>,
    },
    Compensated {
        result: Result<(), StepError>,
    },
    Described {
        result: Result<StepDescription, StepError>,
    },
}

struct TaskMeta {
    run: RunId,
    generation: u64,
    step: StepId,
    kind: TaskKind,
    attempt: u32,
}

enum DriveError {
    Store(StoreError),
    Illegal(IllegalTransition),
    NotLeader,
    Gone,
}

struct Actor {
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
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
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
                _ = tick.tick() => self.on_tick().await,
            }
        }
        self.tasks.shutdown().await;
    }

    async fn shutdown(&mut self) {
        self.stopping = true;
        for live in self.live.values_mut() {
            live.busy.retain(|_, (kind, h)| {
                let keep = *kind != TaskKind::RetryWait;
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

    fn token(&self) -> Option<FencingToken> {
        self.lease.as_ref().map(LeaderLease::token)
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
                dry_run_reply,
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

    async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Start { req, reply } => self.on_start(req, reply).await,
            Command::Approve { id, by, reply } => {
                let r = self.on_approve(id, by).await;
                let _ = reply.send(r);
            }
            Command::Abort { id, by, reply } => {
                let r = self.on_abort(id, by).await;
                let _ = reply.send(r);
            }
            Command::LiveView { id, reply } => {
                let _ = reply.send(self.live.get(&id).map(LiveRun::view));
            }
            Command::LiveStatuses { reply } => {
                let _ = reply.send(
                    self.live
                        .iter()
                        .map(|(id, l)| (*id, l.state.status))
                        .collect(),
                );
            }
            Command::Subscribe {
                id,
                after_seq,
                reply,
            } => {
                let _ = reply.send(self.live.get(&id).map(|l| {
                    let backlog = l
                        .journal
                        .iter()
                        .filter(|e| e.seq > after_seq)
                        .cloned()
                        .collect();
                    (backlog, l.events.subscribe())
                }));
            }
            Command::Status { reply } => {
                let _ = reply.send(RunnerStatus {
                    region_pair: self.config.region_pair.clone(),
                    leader: self.lease.is_some(),
                    fencing_token: self.token(),
                    active_run: self.active_run(),
                });
            }
            Command::Shutdown { reply } => {
                // Handled in `run`; answer anyway if it ever arrives here.
                let _ = reply.send(());
            }
        }
    }

    async fn view_of(&self, id: RunId) -> Result<RunView, RunError> {
        if let Some(live) = self.live.get(&id) {
            return Ok(live.view());
        }
        let (state, journal) = load_state(self.store.as_ref(), id).await?;
        Ok(RunView::new(&state, &journal))
    }

    async fn on_start(
        &mut self,
        mut req: RunRequest,
        reply: oneshot::Sender<Result<RunView, StartError>>,
    ) {
        match self.prepare_start(&mut req).await {
            Ok(Started::Existing(view)) => {
                let _ = reply.send(Ok(*view));
            }
            Ok(Started::New(id)) => {
                if req.dry_run {
                    if let Some(live) = self.live.get_mut(&id) {
                        live.dry_run_reply = Some(reply);
                    }
                    self.drive(id).await;
                } else {
                    self.drive(id).await;
                    let _ = reply.send(self.view_of(id).await.map_err(|e| match e {
                        RunError::Store(e) => StartError::Store(e),
                        other => StartError::Store(StoreError::Unavailable(other.to_string())),
                    }));
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    async fn prepare_start(&mut self, req: &mut RunRequest) -> Result<Started, StartError> {
        let token = self.token().ok_or(StartError::NotLeader)?;
        if req.params.is_null() {
            req.params = Value::Object(Default::default());
        }
        let fingerprint = req.fingerprint();
        if let Some(key) = &req.idempotency_key {
            if let Some((run_id, existing)) = self.store.find_idempotency_key(key).await? {
                if existing.fingerprint != fingerprint {
                    return Err(StartError::IdempotencyKeyReused {
                        key: key.clone(),
                        run_id,
                    });
                }
                return self
                    .view_of(run_id)
                    .await
                    .map(|v| Started::Existing(Box::new(v)))
                    .map_err(|e| StartError::Store(StoreError::Unavailable(e.to_string())));
            }
        }
        let plan = self.plans.build(&req.plan, req.mode, &req.params)?;
        if !req.dry_run {
            if let Some(id) = self.active_run() {
                return Err(StartError::RunActive { id });
            }
        }
        let record = RunRecord {
            id: RunId::new(),
            plan: req.plan.clone(),
            mode: req.mode,
            dry_run: req.dry_run,
            drill: req.drill,
            reason: req.reason.clone(),
            params: req.params.clone(),
            requested_by: req.requested_by.clone(),
            region_pair: self.config.region_pair.clone(),
            created_at: OffsetDateTime::now_utc(),
            layout: plan.layout(),
        };
        let idempotency = req.idempotency_key.as_ref().map(|key| IdempotencyKey {
            key: key.clone(),
            fingerprint: fingerprint.clone(),
        });
        match self
            .store
            .create(&record, token, idempotency.as_ref())
            .await
        {
            Ok(()) => {}
            Err(StoreError::StaleFencingToken { .. }) => {
                self.depose().await;
                return Err(StartError::NotLeader);
            }
            Err(StoreError::IdempotencyKeyTaken {
                key,
                run_id,
                same_request,
            }) => {
                if !same_request {
                    return Err(StartError::IdempotencyKeyReused { key, run_id });
                }
                return self
                    .view_of(run_id)
                    .await
                    .map(|v| Started::Existing(Box::new(v)))
                    .map_err(|e| StartError::Store(StoreError::Unavailable(e.to_string())));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(run = %record.id, plan = %record.plan, dry_run = record.dry_run, drill = record.drill, by = %record.requested_by, "run created");
        let id = record.id;
        let state = RunState::new(Arc::new(record));
        self.insert_live(state, Vec::new(), Some(plan), None);
        Ok(Started::New(id))
    }

    async fn on_approve(&mut self, id: RunId, by: String) -> Result<RunView, RunError> {
        if self.lease.is_none() {
            return Err(RunError::NotLeader);
        }
        let Some(live) = self.live.get(&id) else {
            let (state, _) = load_state(self.store.as_ref(), id).await?;
            return Err(RunError::NotWaitingApproval {
                id,
                status: state.status,
            });
        };
        let (RunStatus::WaitingApproval, Some(gate)) =
            (live.state.status, live.state.waiting_gate.clone())
        else {
            return Err(RunError::NotWaitingApproval {
                id,
                status: live.state.status,
            });
        };
        tracing::info!(run = %id, %gate, %by, "gate approved");
        if let Err(e) = self.append(id, EventKind::Approved { gate, by }).await {
            let err = drive_error_to_run_error(id, &e);
            self.on_drive_error(id, e).await;
            return Err(err);
        }
        self.drive(id).await;
        self.view_of(id).await
    }

    async fn on_abort(&mut self, id: RunId, by: String) -> Result<RunView, RunError> {
        if self.lease.is_none() {
            return Err(RunError::NotLeader);
        }
        let Some(live) = self.live.get(&id) else {
            let (state, _) = load_state(self.store.as_ref(), id).await?;
            if state.status.is_terminal() {
                return Err(RunError::AlreadyFinished {
                    id,
                    status: state.status,
                });
            }
            return Err(RunError::NotDriven { id });
        };
        if live.state.abort_requested_by.is_some()
            || live.state.status == RunStatus::Unwinding
            || live.state.record.dry_run
        {
            return Ok(live.view());
        }
        tracing::info!(run = %id, %by, "abort requested");
        if let Err(e) = self.append(id, EventKind::AbortRequested { by }).await {
            let err = drive_error_to_run_error(id, &e);
            self.on_drive_error(id, e).await;
            return Err(err);
        }
        self.drive(id).await;
        self.view_of(id).await
    }

    /// Check `kind` with `apply`, make it durable, then update the live state and notify
    /// subscribers. Nothing acts on an event before it is durable.
    async fn append(&mut self, id: RunId, kind: EventKind) -> Result<(), DriveError> {
        let token = self.token().ok_or(DriveError::NotLeader)?;
        let store = Arc::clone(&self.store);
        let live = self.live.get_mut(&id).ok_or(DriveError::Gone)?;
        let event = Event::now(kind);
        let next = apply(&live.state, &event).map_err(DriveError::Illegal)?;
        let seq = store
            .append(id, live.state.seq, token, &event)
            .await
            .map_err(DriveError::Store)?;
        if seq != next.seq {
            return Err(DriveError::Store(StoreError::Conflict {
                run_id: id,
                expected: next.seq,
                actual: seq,
            }));
        }
        let record = Arc::clone(&next.record);
        if let EventKind::StepSucceeded { step, .. } = &event.kind {
            if let Some(started) = next.steps.get(step).and_then(|s| s.first_started_at) {
                let secs = (event.at - started).as_seconds_f64().max(0.0);
                self.metrics
                    .step_duration
                    .with_label_values(&[record.plan.as_str(), step.as_str()])
                    .observe(secs);
            }
        }
        if let Some(outcome) = event.kind.terminal_outcome() {
            if !record.dry_run {
                self.metrics
                    .runs_total
                    .with_label_values(&[record.plan.as_str(), outcome.as_str()])
                    .inc();
            }
            tracing::info!(run = %id, outcome = outcome.as_str(), "run finished");
        }
        let status_changed = live.state.status != next.status;
        live.state = next;
        if status_changed {
            self.events.run_changed(&live.state);
        }
        let entry = JournalEntry { seq, event };
        live.journal.push(entry.clone());
        let _ = live.events.send(entry);
        Ok(())
    }

    /// Perform actions for the run until it is idle, then retire it if it finished.
    async fn drive(&mut self, id: RunId) {
        loop {
            if self.stopping {
                return;
            }
            let Some(live) = self.live.get(&id) else {
                return;
            };
            let busy: HashMap<StepId, TaskKind> = live
                .busy
                .iter()
                .map(|(s, (k, _))| (s.clone(), *k))
                .collect();
            let action = decide(&live.state, &busy, &live.retry_ready);
            if action == Action::Idle {
                break;
            }
            if let Err(e) = self.perform(id, action).await {
                self.on_drive_error(id, e).await;
                return;
            }
        }
        self.retire_if_finished(id);
    }

    /// Remove a finished run from the live set. Tasks still in flight for it (another in-doubt
    /// verification when one already stopped the run for an operator) no longer matter.
    fn retire_if_finished(&mut self, id: RunId) {
        let finished = self
            .live
            .get(&id)
            .is_some_and(|l| l.state.status.is_terminal());
        if !finished {
            return;
        }
        if let Some(mut live) = self.live.remove(&id) {
            live.abort_tasks();
            if let Some(reply) = live.dry_run_reply.take() {
                let _ = reply.send(Ok(live.view()));
            }
        }
        self.update_active_gauge();
    }

    async fn perform(&mut self, id: RunId, action: Action) -> Result<(), DriveError> {
        match action {
            Action::Idle => Ok(()),
            Action::Append(kind) => self.append(id, kind).await,
            Action::Start { step, attempt } => {
                let s = self.step_of(id, &step)?;
                self.append(
                    id,
                    EventKind::StepStarted {
                        step: step.clone(),
                        attempt,
                    },
                )
                .await?;
                let ctx = self.context(id, attempt)?;
                if let Some(live) = self.live.get_mut(&id) {
                    live.retry_ready.remove(&step);
                }
                tracing::debug!(run = %id, %step, attempt, "step started");
                self.spawn(id, step, TaskKind::Execute, attempt, execute_task(s, ctx))
            }
            Action::Verify { step, attempt } => {
                let s = self.step_of(id, &step)?;
                let ctx = self.context(id, attempt)?;
                tracing::info!(run = %id, %step, attempt, "step in doubt; verifying");
                self.spawn(id, step, TaskKind::Verify, attempt, verify_task(s, ctx))
            }
            Action::ScheduleRetry { step, failures } => {
                let s = self.step_of(id, &step)?;
                let delay = s.retry_policy().backoff(failures);
                self.spawn(id, step, TaskKind::RetryWait, 0, async move {
                    tokio::time::sleep(delay).await;
                    TaskResult::RetryReady
                })
            }
            Action::Compensate { step, resume } => {
                let s = self.step_of(id, &step)?;
                if !resume {
                    self.append(id, EventKind::CompensationStarted { step: step.clone() })
                        .await?;
                }
                let ctx = self.context(id, 0)?;
                self.spawn(id, step, TaskKind::Compensate, 0, compensate_task(s, ctx))
            }
            Action::Describe { step } => {
                let s = self.step_of(id, &step)?;
                let ctx = self.context(id, 0)?;
                self.spawn(id, step, TaskKind::Describe, 0, async move {
                    let result = match tokio::time::timeout(s.timeout(), s.describe(&ctx)).await {
                        Ok(r) => r,
                        Err(_) => Err(StepError::retryable(format!(
                            "describe timed out after {:?}",
                            s.timeout()
                        ))),
                    };
                    TaskResult::Described { result }
                })
            }
            Action::CheckFailed { step } => {
                let s = self.step_of(id, &step)?;
                let ctx = self.context(id, 0)?;
                tracing::info!(run = %id, %step, "checking whether the failed irreversible step took effect");
                self.spawn(id, step, TaskKind::CheckFailed, 0, async move {
                    match verify_task(s, ctx).await {
                        TaskResult::Verified { result, .. } => TaskResult::CheckedFailed { result },
                        other => other,
                    }
                })
            }
            Action::CannotUndo { step } => {
                let message = self.cannot_undo_message(id, &step);
                tracing::warn!(run = %id, %step, "run needs an operator: {message}");
                self.append(id, EventKind::NeedsOperator { message }).await
            }
            Action::CompensationFailed { step } => {
                let check = self
                    .step_of(id, &step)
                    .map(|s| s.operator_check())
                    .unwrap_or_else(|_| format!("check the effect of step {step}"));
                let error = self
                    .live
                    .get(&id)
                    .and_then(|l| l.state.steps.get(&step))
                    .and_then(|s| s.last_error.clone())
                    .unwrap_or_default();
                let message = format!(
                    "compensation of step {step} failed ({error}); it may be partly undone: {check}, then undo it by hand"
                );
                self.append(id, EventKind::NeedsOperator { message }).await
            }
        }
    }

    fn cannot_undo_message(&self, id: RunId, step: &StepId) -> String {
        let check = self
            .step_of(id, step)
            .map(|s| s.operator_check())
            .unwrap_or_else(|_| format!("check the effect of step {step}"));
        let (what, error) = match self.live.get(&id).and_then(|l| l.state.steps.get(step)) {
            Some(s) if s.status == super::state::StepStatus::Failed => (
                "failed and may have partly taken effect",
                s.last_error
                    .clone()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
            ),
            _ => ("took effect", String::new()),
        };
        format!(
            "the run is unwinding, but step {step}{error} {what} and cannot be undone automatically: {check}; \
             earlier steps were not compensated"
        )
    }

    fn step_of(&self, id: RunId, step: &StepId) -> Result<Arc<dyn Step>, DriveError> {
        self.live
            .get(&id)
            .ok_or(DriveError::Gone)?
            .step(step)
            .ok_or_else(|| {
                DriveError::Illegal(IllegalTransition {
                    status: self
                        .live
                        .get(&id)
                        .map_or(RunStatus::Pending, |l| l.state.status),
                    event: "step_lookup",
                    reason: format!("step {step} is not in the plan"),
                })
            })
    }

    fn context(&self, id: RunId, attempt: u32) -> Result<StepContext, DriveError> {
        Ok(self.live.get(&id).ok_or(DriveError::Gone)?.context(attempt))
    }

    fn spawn(
        &mut self,
        id: RunId,
        step: StepId,
        kind: TaskKind,
        attempt: u32,
        fut: impl std::future::Future<Output = TaskResult> + Send + 'static,
    ) -> Result<(), DriveError> {
        let live = self.live.get_mut(&id).ok_or(DriveError::Gone)?;
        let generation = live.generation;
        let report_step = step.clone();
        let handle = self.tasks.spawn(async move {
            TaskReport {
                run: id,
                generation,
                step: report_step,
                result: fut.await,
            }
        });
        self.task_meta.insert(
            handle.id(),
            TaskMeta {
                run: id,
                generation,
                step: step.clone(),
                kind,
                attempt,
            },
        );
        live.busy.insert(step, (kind, handle));
        Ok(())
    }

    async fn on_joined(&mut self, joined: Result<(tokio::task::Id, TaskReport), JoinError>) {
        let report = match joined {
            Ok((tid, report)) => {
                self.task_meta.remove(&tid);
                report
            }
            Err(e) => {
                let Some(meta) = self.task_meta.remove(&e.id()) else {
                    return;
                };
                if e.is_cancelled() {
                    return;
                }
                let panicked = StepError::permanent(format!("step task panicked: {e}"));
                let result = match meta.kind {
                    TaskKind::Execute => TaskResult::Executed {
                        attempt: meta.attempt,
                        result: Err(panicked),
                    },
                    TaskKind::Verify => TaskResult::Verified {
                        attempt: meta.attempt,
                        result: Err(panicked),
                    },
                    TaskKind::RetryWait => TaskResult::RetryReady,
                    TaskKind::CheckFailed => TaskResult::CheckedFailed {
                        result: Err(panicked),
                    },
                    TaskKind::Compensate => TaskResult::Compensated {
                        result: Err(panicked),
                    },
                    TaskKind::Describe => TaskResult::Described {
                        result: Err(panicked),
                    },
                };
                TaskReport {
                    run: meta.run,
                    generation: meta.generation,
                    step: meta.step,
                    result,
                }
            }
        };
        let id = report.run;
        let step = report.step;
        let Some(live) = self.live.get_mut(&id) else {
            return;
        };
        if live.generation != report.generation {
            return;
        }
        live.busy.remove(&step);
        let kind = match report.result {
            TaskResult::Executed {
                attempt,
                result: Ok((output, verified)),
            } => Some(EventKind::StepSucceeded {
                step: step.clone(),
                attempt,
                output,
                verified,
            }),
            TaskResult::Executed {
                attempt,
                result: Err(e),
            } => {
                tracing::warn!(run = %id, %step, attempt, error = %e, retryable = e.retryable, "step failed");
                Some(EventKind::StepFailed {
                    step: step.clone(),
                    attempt,
                    error: e.message,
                    retryable: e.retryable,
                })
            }
            TaskResult::Verified {
                attempt,
                result: Ok(VerifyOutcome::Done(output)),
            } => Some(EventKind::StepSucceeded {
                step: step.clone(),
                attempt,
                output,
                verified: true,
            }),
            TaskResult::Verified {
                attempt,
                result: Ok(VerifyOutcome::NotDone),
            } => Some(EventKind::StepInterrupted {
                step: step.clone(),
                attempt,
            }),
            TaskResult::Verified {
                attempt,
                result: Err(e),
            } => {
                let check = live
                    .step(&step)
                    .map(|s| s.operator_check())
                    .unwrap_or_default();
                Some(EventKind::NeedsOperator {
                    message: format!(
                        "attempt {attempt} of step {step} was interrupted and whether it took effect could not be determined ({e}): {check}"
                    ),
                })
            }
            TaskResult::RetryReady => {
                live.retry_ready.insert(step.clone());
                None
            }
            TaskResult::CheckedFailed {
                result: Ok(VerifyOutcome::NotDone),
            } => Some(EventKind::StepNotApplied { step: step.clone() }),
            TaskResult::CheckedFailed {
                result: Ok(VerifyOutcome::Done(_)),
            } => Some(EventKind::NeedsOperator {
                message: self.cannot_undo_message(id, &step),
            }),
            TaskResult::CheckedFailed { result: Err(e) } => {
                let check = live
                    .step(&step)
                    .map(|s| s.operator_check())
                    .unwrap_or_default();
                Some(EventKind::NeedsOperator {
                    message: format!(
                        "the run is unwinding, but step {step} failed and whether it took effect could not be determined ({e}); it cannot be undone automatically: {check}; earlier steps were not compensated"
                    ),
                })
            }
            TaskResult::Compensated { result: Ok(()) } => {
                Some(EventKind::CompensationFinished { step: step.clone() })
            }
            TaskResult::Compensated { result: Err(e) } => Some(EventKind::CompensationFailed {
                step: step.clone(),
                error: e.message,
            }),
            TaskResult::Described { result: Ok(d) } => Some(EventKind::StepDescribed {
                step: step.clone(),
                description: d,
            }),
            TaskResult::Described { result: Err(e) } => Some(EventKind::StepDescribeFailed {
                step: step.clone(),
                error: e.message,
            }),
        };
        if let Some(kind) = kind {
            if let Err(e) = self.append(id, kind).await {
                self.on_drive_error(id, e).await;
                return;
            }
        }
        if self.stopping {
            return;
        }
        self.drive(id).await;
    }

    async fn on_drive_error(&mut self, id: RunId, e: DriveError) {
        match e {
            DriveError::Store(StoreError::StaleFencingToken { presented, current }) => {
                tracing::error!(run = %id, %presented, %current, "another failoverd holds a newer fencing token; stepping down");
                self.depose().await;
            }
            DriveError::Store(e) => {
                tracing::error!(run = %id, error = %e, "store error while driving run; will reload and resume it");
                self.drop_live(id, StartError::Store(e));
                self.stalled.insert(id);
            }
            DriveError::NotLeader => {
                self.drop_live(id, StartError::NotLeader);
            }
            DriveError::Gone => {}
            DriveError::Illegal(illegal) => {
                tracing::error!(run = %id, error = %illegal, "engine bug: illegal transition");
                let message = format!(
                    "internal error in the engine ({illegal}); check the run's timeline and the state of its steps"
                );
                if let Err(e2) = self.append(id, EventKind::NeedsOperator { message }).await {
                    let reason = match e2 {
                        DriveError::Store(e) => e.to_string(),
                        DriveError::Illegal(i) => i.to_string(),
                        DriveError::NotLeader => "not leader".into(),
                        DriveError::Gone => "gone".into(),
                    };
                    tracing::error!(run = %id, error = %reason, "could not stop run for an operator");
                    self.drop_live(id, StartError::Store(StoreError::Unavailable(reason)));
                } else {
                    if let Some(live) = self.live.get_mut(&id) {
                        live.abort_tasks();
                    }
                    self.retire_if_finished(id);
                }
            }
        }
    }

    fn drop_live(&mut self, id: RunId, reason: StartError) {
        if let Some(mut live) = self.live.remove(&id) {
            live.abort_tasks();
            if let Some(reply) = live.dry_run_reply.take() {
                let _ = reply.send(Err(reason));
            }
        }
        self.update_active_gauge();
    }

    async fn depose(&mut self) {
        let ids: Vec<RunId> = self.live.keys().copied().collect();
        for id in ids {
            self.drop_live(id, StartError::NotLeader);
        }
        self.stalled.clear();
        self.lease = None;
        self.metrics.leader.set(0);
        self.events.leader(false);
    }
}

enum Started {
    Existing(Box<RunView>),
    New(RunId),
}

fn drive_error_to_run_error(id: RunId, e: &DriveError) -> RunError {
    match e {
        DriveError::Store(StoreError::StaleFencingToken { .. }) | DriveError::NotLeader => {
            RunError::NotLeader
        }
        DriveError::Store(e) => RunError::Store(StoreError::Unavailable(e.to_string())),
        DriveError::Illegal(i) => RunError::CorruptJournal {
            id,
            source: i.clone(),
        },
        DriveError::Gone => RunError::NotDriven { id },
    }
}

async fn with_timeout<T>(
    limit: Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, StepError>>,
) -> Result<T, StepError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(StepError::retryable(format!(
            "{what} timed out after {limit:?}"
        ))),
    }
}

/// One attempt: for retries, first ask `verify` whether an earlier attempt already took effect.
async fn execute_task(step: Arc<dyn Step>, ctx: StepContext) -> TaskResult {
    let attempt = ctx.attempt;
    let limit = step.timeout();
    if attempt > 1 {
        match with_timeout(limit, "verify", step.verify(&ctx)).await {
            Ok(VerifyOutcome::Done(output)) => {
                return TaskResult::Executed {
                    attempt,
                    result: Ok((output, true)),
                }
            }
            Ok(VerifyOutcome::NotDone) => {}
            Err(e) => {
                return TaskResult::Executed {
                    attempt,
                    result: Err(StepError {
                        message: format!("verify before retry failed: {}", e.message),
                        retryable: e.retryable,
                    }),
                }
            }
        }
    }
    let result = with_timeout(limit, "execute", step.execute(&ctx))
        .await
        .map(|v| (v, false));
    TaskResult::Executed { attempt, result }
}

/// Resolve an in-doubt attempt; `verify` errors are retried with the step's policy.
async fn verify_task(step: Arc<dyn Step>, ctx: StepContext) -> TaskResult {
    let policy = step.retry_policy();
    let attempts = policy.max_attempts.max(1);
    let mut n = 0;
    loop {
        n += 1;
        match with_timeout(step.timeout(), "verify", step.verify(&ctx)).await {
            Ok(o) => {
                return TaskResult::Verified {
                    attempt: ctx.attempt,
                    result: Ok(o),
                }
            }
            Err(e) if e.retryable && n < attempts => {
                tokio::time::sleep(policy.backoff(n)).await;
            }
            Err(e) => {
                return TaskResult::Verified {
                    attempt: ctx.attempt,
                    result: Err(e),
                }
            }
        }
    }
}

/// Compensate a step; retryable errors are retried with the step's policy.
async fn compensate_task(step: Arc<dyn Step>, ctx: StepContext) -> TaskResult {
    let policy = step.retry_policy();
    let attempts = policy.max_attempts.max(1);
    let mut n = 0;
    loop {
        n += 1;
        match with_timeout(step.timeout(), "compensate", step.compensate(&ctx)).await {
            Ok(()) => return TaskResult::Compensated { result: Ok(()) },
            Err(e) if e.retryable && n < attempts => {
                tokio::time::sleep(policy.backoff(n)).await;
            }
            Err(e) => return TaskResult::Compensated { result: Err(e) },
        }
    }
}
