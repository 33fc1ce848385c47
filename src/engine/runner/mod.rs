//! The runner: an actor that owns every run it drives, and the cloneable [`RunnerHandle`] the HTTP API
//! and the trigger policy use to start, approve, abort and watch runs.
//!
//! One task owns all mutable engine state (live runs, in-flight step tasks, the leader lease), so
//! there are no locks and every append to a journal is ordered: the actor computes the next action
//! with [`decide`](super::decide()), checks the event with [`apply`](super::apply), makes it
//! durable with the [`Store`], and only then acts (spawns the step's task). Step work runs in tasks of a `JoinSet` that report back to
//! the actor. Dropping the [`Runner`] aborts the actor and all its step tasks — exactly what a crash
//! does, which is safe because `StepStarted` is durable before any side effect.
//!
//! On gaining leadership the runner fences the store with its token and resumes every unfinished
//! run: attempts that were in flight are *in doubt* and are resolved with `verify` first.
//!
//! Files, one concept each:
//! - `request`: what callers send and get back — [`RunRequest`], [`StartError`], [`RunError`],
//!   [`RunnerStatus`]; errors carry a stable `code()` (the API maps them to HTTP statuses).
//! - `handle`: [`RunnerHandle`], the cloneable front of the actor, and the commands it sends.
//! - `events`: the resumable stream of a run's journal entries (server-sent events).
//! - `actor`: the task that owns the runs — leadership and resume, commands, driving a run
//!   step by step, and the reports of finished step tasks.
//! - `tasks`: the step tasks themselves (execute, verify, compensate, describe) with their timeouts
//!   and retries.
//!
//! For the HTTP API: every [`RunnerHandle`] method maps to one route (`start` → `POST /v1/runs`,
//! `list`, `get`, `subscribe` → SSE with `Last-Event-ID` as `after_seq`, `approve`, `abort`,
//! `status` → `/v1/status`); errors carry `code()` for the JSON error body (the HTTP status is
//! chosen in `crate::api`); views are `Serialize`. A follower (not leader) still answers reads
//! from the store and refuses writes with `not_leader`.

mod actor;
mod events;
mod handle;
mod request;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use self::actor::Actor;
use self::handle::Command;
use super::leadership::Leadership;
use super::metrics::EngineMetrics;
use super::plan::PlanCatalog;
use super::store::Store;
use super::updates::EngineEvents;

pub use events::RunEventStream;
pub use handle::RunnerHandle;
pub use request::{RetryingStep, RunError, RunRequest, RunnerStatus, StartError};

/// Commands queued for the actor. They come from HTTP handlers and the trigger policy — a handful
/// of callers — and are answered in microseconds, except those that append (start, approve, abort:
/// one fsync each, about a millisecond). 64 lets a burst of dashboard polls queue instead of fail
/// while bounding memory; senders wait (backpressure) when it is full.
const COMMAND_CAPACITY: usize = 64;

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
        let handle = RunnerHandle::new(tx, Arc::clone(&deps.store), events.clone());
        let actor = Actor::new(config, deps, events);
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
        if self.handle.send(Command::Shutdown { reply }).await {
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
