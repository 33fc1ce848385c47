//! The journal's vocabulary: identifiers, the immutable run record written once at creation, and the
//! events appended to a run's journal.
//!
//! Everything here is `Serialize`/`Deserialize` because it is what the store persists: a run's state
//! is never stored, only re-derived by folding these events through [`crate::engine::apply`]. Adding
//! a variant is backwards compatible; renaming or removing one is a schema change of the journal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// Identifier of a run. UUIDv7, so identifiers sort by creation time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub Uuid);

impl RunId {
    /// A fresh, time-ordered identifier.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for RunId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for RunId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

/// Identifier of a step, unique within its plan (`"dns-stage-10"`, `"selftest-3"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepId(pub String);

impl StepId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a takeover treats the old region: `graceful` keeps data (e.g. Aurora switchover, RPO 0),
/// `ungraceful` accepts bounded data loss because the old region is unreachable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Graceful,
    Ungraceful,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Graceful => "graceful",
            Mode::Ungraceful => "ungraceful",
        }
    }
}

/// Whether and how a step's effect can be undone when a run unwinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reversibility {
    /// The step only observes or waits; unwinding skips it.
    NoSideEffect,
    /// [`crate::engine::Step::compensate`] undoes the step; it must be idempotent.
    Compensable,
    /// The effect cannot be undone (a database promotion): unwinding past it stops the run in
    /// `needs_operator`.
    Irreversible,
}

/// The shape of a plan as it was when the run was created: stored in the [`RunRecord`] so that the
/// journal can be folded (and checked) without the code that built the plan, and so that a resumed
/// run can detect that the plan's definition changed under it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanLayout {
    pub phases: Vec<PhaseLayout>,
}

/// One phase: an optional approval gate, then steps executed concurrently. The next phase starts only
/// when every step of this one has succeeded (the barrier).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseLayout {
    /// Unique within the plan; also the name of the phase's approval gate.
    pub name: String,
    /// When set, the run waits in `waiting_approval` with this prompt before the phase's steps.
    pub approval: Option<String>,
    pub steps: Vec<StepLayout>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepLayout {
    pub id: StepId,
    pub name: String,
    pub reversibility: Reversibility,
    /// Retry budget from the step's retry policy (at least 1).
    pub max_attempts: u32,
}

impl PlanLayout {
    /// Steps in plan order with their phase index.
    pub fn steps(&self) -> impl Iterator<Item = (usize, &StepLayout)> {
        self.phases
            .iter()
            .enumerate()
            .flat_map(|(i, p)| p.steps.iter().map(move |s| (i, s)))
    }

    pub fn step(&self, id: &StepId) -> Option<(usize, &StepLayout)> {
        self.steps().find(|(_, s)| &s.id == id)
    }
}

/// Everything fixed at a run's creation. Written once by [`crate::engine::Store::create`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    pub plan: String,
    pub mode: Mode,
    pub dry_run: bool,
    pub drill: bool,
    pub reason: String,
    pub params: Value,
    pub requested_by: String,
    /// The region pair the run acts on; at most one active run per pair.
    pub region_pair: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the condition the run responds to was detected — for runs started by the
    /// auto-failover policy, when the hot region's verdict became unhealthy — so the report
    /// measures the RTO from the detection rather than from the run's start. `None` for runs an
    /// operator started, and in journals written before the field existed (hence the default).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub detected_at: Option<OffsetDateTime>,
    pub layout: PlanLayout,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    Aborted,
    /// The engine stopped because a person must check the world (see the run's message).
    NeedsOperator,
}

impl Outcome {
    /// Fixed label value for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Aborted => "aborted",
            Outcome::NeedsOperator => "needs_operator",
        }
    }
}

/// Why a run is unwinding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum UnwindCause {
    /// A step failed for good (non-retryable error or retries exhausted).
    StepFailed { step: StepId },
    /// An operator asked for the run to be aborted.
    Aborted,
}

/// What a step would change, as reported by [`crate::engine::Step::describe`] for dry runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepDescription {
    /// One line: what the step does.
    pub summary: String,
    /// Each concrete change it would make (`"route53: api.example.com weight eu-west-1 0 -> 10"`).
    pub changes: Vec<String>,
}

/// One journal entry: what happened and when (wall clock of the writer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// An event stamped with the current wall-clock time.
    pub fn now(kind: EventKind) -> Self {
        Self {
            at: OffsetDateTime::now_utc(),
            kind,
        }
    }
}

/// The events of a run's journal. See [`crate::engine::apply`] for which event is legal when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    RunStarted,
    /// Dry runs only: what the step would change.
    StepDescribed {
        step: StepId,
        description: StepDescription,
    },
    /// Dry runs only: `describe` failed.
    StepDescribeFailed {
        step: StepId,
        error: String,
    },
    /// Written (durably) *before* the step's side effect.
    StepStarted {
        step: StepId,
        attempt: u32,
    },
    /// Written after the side effect. `verified` is true when the engine learnt of the success from
    /// `verify` (after a restart, or before a retry) rather than from `execute`.
    StepSucceeded {
        step: StepId,
        attempt: u32,
        output: Value,
        verified: bool,
    },
    /// An attempt failed. A retryable failure within the step's budget carries `retry_at`, when
    /// the next attempt starts (waited out again after a restart); a final one does not.
    StepFailed {
        step: StepId,
        attempt: u32,
        error: String,
        retryable: bool,
        #[serde(
            default,
            with = "time::serde::rfc3339::option",
            skip_serializing_if = "Option::is_none"
        )]
        retry_at: Option<OffsetDateTime>,
        /// The attempt provably changed nothing (`StepError::not_applied`); absent (false) in
        /// journals written before the field existed, which keeps their failed steps
        /// compensated as before.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        not_applied: bool,
    },
    /// The attempt was in doubt after a restart and `verify` found it had not taken effect; the step
    /// will be started again.
    StepInterrupted {
        step: StepId,
        attempt: u32,
    },
    WaitingApproval {
        gate: String,
    },
    Approved {
        gate: String,
        by: String,
    },
    AbortRequested {
        by: String,
    },
    UnwindStarted {
        cause: UnwindCause,
    },
    /// Unwinding: a failed irreversible step was checked with `verify` and had not taken effect,
    /// so there is nothing to undo and unwinding continues past it.
    StepNotApplied {
        step: StepId,
    },
    /// Written before the step's compensation runs.
    CompensationStarted {
        step: StepId,
    },
    CompensationFinished {
        step: StepId,
    },
    CompensationFailed {
        step: StepId,
        error: String,
    },
    /// Terminal: the engine cannot proceed safely on its own.
    NeedsOperator {
        message: String,
    },
    /// Terminal (`succeeded`, `failed` or `aborted`; `needs_operator` uses its own event).
    RunFinished {
        outcome: Outcome,
    },
}

impl EventKind {
    /// Stable name of the variant (the serialized `type`), for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::RunStarted => "run_started",
            EventKind::StepDescribed { .. } => "step_described",
            EventKind::StepDescribeFailed { .. } => "step_describe_failed",
            EventKind::StepStarted { .. } => "step_started",
            EventKind::StepSucceeded { .. } => "step_succeeded",
            EventKind::StepFailed { .. } => "step_failed",
            EventKind::StepInterrupted { .. } => "step_interrupted",
            EventKind::WaitingApproval { .. } => "waiting_approval",
            EventKind::Approved { .. } => "approved",
            EventKind::AbortRequested { .. } => "abort_requested",
            EventKind::UnwindStarted { .. } => "unwind_started",
            EventKind::StepNotApplied { .. } => "step_not_applied",
            EventKind::CompensationStarted { .. } => "compensation_started",
            EventKind::CompensationFinished { .. } => "compensation_finished",
            EventKind::CompensationFailed { .. } => "compensation_failed",
            EventKind::NeedsOperator { .. } => "needs_operator",
            EventKind::RunFinished { .. } => "run_finished",
        }
    }

    /// The outcome this event ends the run with, if it is terminal. Stores use it to index finished
    /// runs without understanding the rest of the journal.
    pub fn terminal_outcome(&self) -> Option<Outcome> {
        match self {
            EventKind::RunFinished { outcome } => Some(*outcome),
            EventKind::NeedsOperator { .. } => Some(Outcome::NeedsOperator),
            _ => None,
        }
    }
}

/// An event with its position in the journal (1-based, dense).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub seq: u64,
    pub event: Event,
}
