//! The durable run engine: runs execute plans as append-only journals of events, so that a crash,
//! a restart or a change of leader never loses track of what a failover has already done and never
//! applies a side effect twice.
//!
//! How the pieces fit (DESIGN.md §3):
//! - [`event`]: what a journal contains; [`state`]: the pure `apply(state, event)` that derives a
//!   run's state from it, used live and for recovery; [`decide`]: the pure choice of the next action.
//! - [`step`]: the `Step` trait (`describe`, `execute`, `verify`, `compensate`); [`plan`]: phases of
//!   steps with barriers and approval gates.
//! - [`store`]: the durable journal behind a trait (in memory, SQLite); [`leadership`]: the fencing
//!   token that lets the store refuse a deposed leader.
//! - [`runner`]: the actor that drives runs and its cloneable handle for the API; [`view`]: what the
//!   API returns; [`updates`]: run status changes and leadership as they happen, for the rest of
//!   the daemon; [`run_gauges`]: the run gauges the alerts read; [`metrics`]; [`report`]: a run's
//!   report (RTO, RPO, critical path, skipped steps) from its view, as JSON or Markdown.
//! - `testing` (cargo feature `testing`, for tests and benches): helpers that check a plan's steps
//!   are idempotent and unwind cleanly.

pub mod decide;
pub mod event;
pub mod leadership;
pub mod metrics;
pub mod plan;
pub mod report;
pub mod run_gauges;
pub mod runner;
pub mod state;
pub mod step;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod updates;
pub mod view;

pub use decide::{decide, Action, TaskKind};
pub use event::{
    Event, EventKind, JournalEntry, Mode, Outcome, PhaseLayout, PlanLayout, Reversibility, RunId,
    RunRecord, StepDescription, StepId, StepLayout, UnwindCause,
};
pub use leadership::{LeaderLease, Leadership, LeadershipError, LocalLeadership, Validity};
pub use metrics::EngineMetrics;
pub use plan::{Phase, Plan, PlanCatalog, PlanError};
pub use run_gauges::RunGauges;
pub use runner::{
    RetryingStep, RunError, RunEventStream, RunRequest, Runner, RunnerConfig, RunnerDeps,
    RunnerHandle, RunnerStatus, StartError,
};
pub use state::{apply, IllegalTransition, RunState, RunStatus, StepState, StepStatus, UnwindNext};
pub use step::{
    AbortSignal, OutageApi, OutageRetry, RetryPolicy, Step, StepContext, StepError, VerifyOutcome,
};
pub use store::{
    FencingToken, IdempotencyKey, MemoryStore, ObservedStore, RunFilter, RunSummary, SqliteStore,
    Store, StoreError, StoreHealth, StoredRun,
};
pub use updates::RunUpdate;
pub use view::{
    RetriedOperation, RetryView, RunReport, RunSummaryView, RunView, StepView, TimelineEntry,
};
