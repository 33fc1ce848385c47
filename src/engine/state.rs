//! A run's state and the one pure transition function that derives it from the journal.
//!
//! `apply(state, event)` is the only way a [`RunState`] changes: the runner calls it on every event
//! *before* persisting it (so the engine can never write an event it could not replay), and recovery
//! folds the stored journal through it. Modelled on steno's `SagaLog::next_status`: one `match` on
//! (status, event) with an explicit catch-all that names the illegal pair.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::event::{
    Event, EventKind, Outcome, PhaseLayout, Reversibility, RunRecord, StepDescription, StepId,
    StepLayout, UnwindCause,
};

/// Where a run is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Created, `RunStarted` not yet written.
    Pending,
    Running,
    WaitingApproval,
    /// Compensating completed steps after a failure or an abort.
    Unwinding,
    Succeeded,
    Failed,
    Aborted,
    NeedsOperator,
}

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded
                | RunStatus::Failed
                | RunStatus::Aborted
                | RunStatus::NeedsOperator
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::WaitingApproval => "waiting_approval",
            RunStatus::Unwinding => "unwinding",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Aborted => "aborted",
            RunStatus::NeedsOperator => "needs_operator",
        }
    }
}

impl From<Outcome> for RunStatus {
    fn from(o: Outcome) -> Self {
        match o {
            Outcome::Succeeded => RunStatus::Succeeded,
            Outcome::Failed => RunStatus::Failed,
            Outcome::Aborted => RunStatus::Aborted,
            Outcome::NeedsOperator => RunStatus::NeedsOperator,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    /// `StepStarted` written, no outcome yet. After a restart this is the *in doubt* state.
    Running,
    Succeeded,
    Failed,
    /// In doubt after a restart, and `verify` said it had not taken effect.
    Interrupted,
    Described,
    Compensating,
    Compensated,
    CompensationFailed,
}

/// The derived state of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct StepState {
    pub status: StepStatus,
    /// Number of the latest attempt (0 = never started).
    pub attempt: u32,
    /// Attempts that ended in `StepFailed` (interrupted attempts do not count against the budget).
    pub failures: u32,
    pub last_error: Option<String>,
    pub last_failure_retryable: bool,
    pub output: Option<Value>,
    pub verified: bool,
    pub description: Option<StepDescription>,
    pub first_started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

impl StepState {
    fn new() -> Self {
        Self {
            status: StepStatus::Pending,
            attempt: 0,
            failures: 0,
            last_error: None,
            last_failure_retryable: false,
            output: None,
            verified: false,
            description: None,
            first_started_at: None,
            finished_at: None,
        }
    }
}

/// The fold of a run's journal.
#[derive(Clone, Debug, PartialEq)]
pub struct RunState {
    pub record: Arc<RunRecord>,
    /// Number of events applied; the `expected_seq` of the next append.
    pub seq: u64,
    pub status: RunStatus,
    pub steps: BTreeMap<StepId, StepState>,
    pub approved: BTreeSet<String>,
    pub waiting_gate: Option<String>,
    pub abort_requested_by: Option<String>,
    pub unwind_cause: Option<UnwindCause>,
    /// Steps in the order of their first `StepStarted`; unwinding walks it backwards.
    pub started_order: Vec<StepId>,
    pub message: Option<String>,
    pub outcome: Option<Outcome>,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
}

/// What unwinding must do next (derived from the state, see [`RunState::next_unwind`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnwindNext {
    /// Compensate this step (or keep compensating it, if it is `Compensating`).
    Compensate(StepId),
    /// This step took (or may have taken) effect and cannot be undone.
    CannotUndo(StepId),
    /// A compensation failed for good.
    CompensationFailed(StepId),
    /// Everything that needed undoing has been undone.
    Done,
}

/// An event that is not legal in the run's current state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("illegal event {event} in state {status:?}: {reason}")]
pub struct IllegalTransition {
    pub status: RunStatus,
    pub event: &'static str,
    pub reason: String,
}

impl RunState {
    /// The state of a run that was created and has no events yet.
    pub fn new(record: Arc<RunRecord>) -> Self {
        let steps = record
            .layout
            .steps()
            .map(|(_, s)| (s.id.clone(), StepState::new()))
            .collect();
        Self {
            record,
            seq: 0,
            status: RunStatus::Pending,
            steps,
            approved: BTreeSet::new(),
            waiting_gate: None,
            abort_requested_by: None,
            unwind_cause: None,
            started_order: Vec::new(),
            message: None,
            outcome: None,
            started_at: None,
            finished_at: None,
        }
    }

    /// Fold a whole journal (recovery).
    pub fn replay<'a>(
        record: Arc<RunRecord>,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<Self, IllegalTransition> {
        let mut state = Self::new(record);
        for e in events {
            state = apply(&state, e)?;
        }
        Ok(state)
    }

    pub fn step(&self, id: &StepId) -> Option<&StepState> {
        self.steps.get(id)
    }

    fn layout_of(&self, id: &StepId) -> Option<(usize, &StepLayout)> {
        self.record.layout.step(id)
    }

    fn phase_complete(&self, phase: &PhaseLayout) -> bool {
        (phase.approval.is_none() || self.approved.contains(&phase.name))
            && phase.steps.iter().all(|s| {
                self.steps
                    .get(&s.id)
                    .is_some_and(|st| st.status == StepStatus::Succeeded)
            })
    }

    /// Index of the first phase that is not complete; `None` when all are.
    pub fn current_phase(&self) -> Option<usize> {
        self.record
            .layout
            .phases
            .iter()
            .position(|p| !self.phase_complete(p))
    }

    /// Steps whose latest attempt has started and has no outcome.
    pub fn running_steps(&self) -> impl Iterator<Item = &StepId> {
        self.steps
            .iter()
            .filter(|(_, s)| s.status == StepStatus::Running)
            .map(|(id, _)| id)
    }

    /// A step that failed for good: non-retryable error, or its retry budget is spent.
    pub fn finally_failed_step(&self) -> Option<&StepId> {
        self.record.layout.steps().map(|(_, l)| l).find_map(|l| {
            let s = self.steps.get(&l.id)?;
            (s.status == StepStatus::Failed
                && (!s.last_failure_retryable || s.failures >= l.max_attempts))
                .then_some(&l.id)
        })
    }

    /// Whether every step has been described (dry runs).
    pub fn all_described(&self) -> bool {
        self.steps
            .values()
            .all(|s| matches!(s.status, StepStatus::Described | StepStatus::Failed))
    }

    /// The next thing unwinding must do: walk started steps in reverse start order.
    pub fn next_unwind(&self) -> UnwindNext {
        for id in self.started_order.iter().rev() {
            let (Some(st), Some((_, layout))) = (self.steps.get(id), self.layout_of(id)) else {
                continue;
            };
            match st.status {
                StepStatus::Compensating => return UnwindNext::Compensate(id.clone()),
                StepStatus::CompensationFailed => {
                    return UnwindNext::CompensationFailed(id.clone())
                }
                StepStatus::Succeeded | StepStatus::Failed | StepStatus::Running => {
                    match layout.reversibility {
                        Reversibility::NoSideEffect => continue,
                        Reversibility::Compensable => return UnwindNext::Compensate(id.clone()),
                        Reversibility::Irreversible => return UnwindNext::CannotUndo(id.clone()),
                    }
                }
                StepStatus::Pending
                | StepStatus::Interrupted
                | StepStatus::Described
                | StepStatus::Compensated => continue,
            }
        }
        UnwindNext::Done
    }
}

fn illegal(state: &RunState, event: &Event, reason: impl Into<String>) -> IllegalTransition {
    IllegalTransition {
        status: state.status,
        event: event.kind.name(),
        reason: reason.into(),
    }
}

/// The transition function: the state after `event`, or why `event` is not legal now.
///
/// Pure: no I/O, no clock (timestamps come from the event), so replaying a journal always yields
/// the state the live runner had.
pub fn apply(state: &RunState, event: &Event) -> Result<RunState, IllegalTransition> {
    use EventKind as E;
    use RunStatus as S;

    let mut next = state.clone();
    next.seq = state.seq + 1;
    let dry_run = state.record.dry_run;

    // Looks up a step's state mutably, or fails with "unknown step".
    macro_rules! step_mut {
        ($id:expr) => {
            match next.steps.get_mut($id) {
                Some(s) => s,
                None => return Err(illegal(state, event, format!("unknown step {}", $id))),
            }
        };
    }

    match (state.status, &event.kind) {
        (S::Pending, E::RunStarted) => {
            next.status = S::Running;
            next.started_at = Some(event.at);
        }

        (S::Running, E::StepDescribed { step, description }) if dry_run => {
            let s = step_mut!(step);
            if s.status != StepStatus::Pending {
                return Err(illegal(
                    state,
                    event,
                    format!("step {step} already described"),
                ));
            }
            s.status = StepStatus::Described;
            s.description = Some(description.clone());
        }
        (S::Running, E::StepDescribeFailed { step, error }) if dry_run => {
            let s = step_mut!(step);
            if s.status != StepStatus::Pending {
                return Err(illegal(
                    state,
                    event,
                    format!("step {step} already described"),
                ));
            }
            s.status = StepStatus::Failed;
            s.last_error = Some(error.clone());
        }

        (S::Running, E::StepStarted { step, attempt }) if !dry_run => {
            if state.abort_requested_by.is_some() {
                return Err(illegal(state, event, "abort requested: no step may start"));
            }
            if state.finally_failed_step().is_some() {
                return Err(illegal(state, event, "a step failed: no step may start"));
            }
            let Some((phase_idx, layout)) = state.layout_of(step) else {
                return Err(illegal(state, event, format!("unknown step {step}")));
            };
            let max_attempts = layout.max_attempts;
            if state.current_phase() != Some(phase_idx) {
                return Err(illegal(
                    state,
                    event,
                    format!("step {step} is not in the current phase"),
                ));
            }
            let phase = &state.record.layout.phases[phase_idx];
            if phase.approval.is_some() && !state.approved.contains(&phase.name) {
                return Err(illegal(
                    state,
                    event,
                    format!("gate {} not approved", phase.name),
                ));
            }
            let s = step_mut!(step);
            let may_start = match s.status {
                StepStatus::Pending | StepStatus::Interrupted => true,
                StepStatus::Failed => s.last_failure_retryable && s.failures < max_attempts,
                _ => false,
            };
            if !may_start || *attempt != s.attempt + 1 {
                return Err(illegal(
                    state,
                    event,
                    format!(
                        "step {step} cannot start attempt {attempt} from {:?} (attempt {})",
                        s.status, s.attempt
                    ),
                ));
            }
            s.status = StepStatus::Running;
            s.attempt = *attempt;
            if s.first_started_at.is_none() {
                s.first_started_at = Some(event.at);
                next.started_order.push(step.clone());
            }
        }
        (
            S::Running,
            E::StepSucceeded {
                step,
                attempt,
                output,
                verified,
            },
        ) => {
            let s = step_mut!(step);
            if s.status != StepStatus::Running || s.attempt != *attempt {
                return Err(illegal(
                    state,
                    event,
                    format!("step {step} attempt {attempt} is not running"),
                ));
            }
            s.status = StepStatus::Succeeded;
            s.output = Some(output.clone());
            s.verified = *verified;
            s.finished_at = Some(event.at);
        }
        (
            S::Running,
            E::StepFailed {
                step,
                attempt,
                error,
                retryable,
            },
        ) => {
            let s = step_mut!(step);
            if s.status != StepStatus::Running || s.attempt != *attempt {
                return Err(illegal(
                    state,
                    event,
                    format!("step {step} attempt {attempt} is not running"),
                ));
            }
            s.status = StepStatus::Failed;
            s.failures += 1;
            s.last_error = Some(error.clone());
            s.last_failure_retryable = *retryable;
            s.finished_at = Some(event.at);
        }
        (S::Running, E::StepInterrupted { step, attempt }) => {
            let s = step_mut!(step);
            if s.status != StepStatus::Running || s.attempt != *attempt {
                return Err(illegal(
                    state,
                    event,
                    format!("step {step} attempt {attempt} is not running"),
                ));
            }
            s.status = StepStatus::Interrupted;
        }

        (S::Running, E::WaitingApproval { gate }) if !dry_run => {
            if state.abort_requested_by.is_some() || state.finally_failed_step().is_some() {
                return Err(illegal(state, event, "run is stopping"));
            }
            if state.running_steps().next().is_some() {
                return Err(illegal(state, event, "steps are still running"));
            }
            let current = state
                .current_phase()
                .map(|i| &state.record.layout.phases[i]);
            match current {
                Some(p)
                    if p.name == *gate
                        && p.approval.is_some()
                        && !state.approved.contains(gate) => {}
                _ => {
                    return Err(illegal(
                        state,
                        event,
                        format!("gate {gate} is not the pending gate"),
                    ))
                }
            }
            next.status = S::WaitingApproval;
            next.waiting_gate = Some(gate.clone());
        }
        (S::WaitingApproval, E::Approved { gate, .. }) => {
            if state.waiting_gate.as_ref() != Some(gate) {
                return Err(illegal(state, event, format!("not waiting at gate {gate}")));
            }
            next.status = S::Running;
            next.waiting_gate = None;
            next.approved.insert(gate.clone());
        }

        (S::Pending | S::Running | S::WaitingApproval, E::AbortRequested { by }) => {
            if state.abort_requested_by.is_some() {
                return Err(illegal(state, event, "abort already requested"));
            }
            next.abort_requested_by = Some(by.clone());
            if state.status == S::WaitingApproval {
                next.status = S::Running;
                next.waiting_gate = None;
            }
        }

        (S::Running, E::UnwindStarted { cause }) if !dry_run => {
            if state.running_steps().next().is_some() {
                return Err(illegal(state, event, "steps are still running"));
            }
            let justified = match cause {
                UnwindCause::Aborted => state.abort_requested_by.is_some(),
                UnwindCause::StepFailed { step } => state.finally_failed_step() == Some(step),
            };
            if !justified {
                return Err(illegal(
                    state,
                    event,
                    format!("no reason to unwind ({cause:?})"),
                ));
            }
            next.status = S::Unwinding;
            next.unwind_cause = Some(cause.clone());
        }
        (S::Unwinding, E::CompensationStarted { step }) => {
            if state.next_unwind() != UnwindNext::Compensate(step.clone()) {
                return Err(illegal(
                    state,
                    event,
                    format!("step {step} is not next to compensate"),
                ));
            }
            let s = step_mut!(step);
            if s.status == StepStatus::Compensating {
                return Err(illegal(
                    state,
                    event,
                    format!("step {step} is already compensating"),
                ));
            }
            s.status = StepStatus::Compensating;
        }
        (S::Unwinding, E::CompensationFinished { step }) => {
            let s = step_mut!(step);
            if s.status != StepStatus::Compensating {
                return Err(illegal(
                    state,
                    event,
                    format!("step {step} is not compensating"),
                ));
            }
            s.status = StepStatus::Compensated;
        }
        (S::Unwinding, E::CompensationFailed { step, error }) => {
            let s = step_mut!(step);
            if s.status != StepStatus::Compensating {
                return Err(illegal(
                    state,
                    event,
                    format!("step {step} is not compensating"),
                ));
            }
            s.status = StepStatus::CompensationFailed;
            s.last_error = Some(error.clone());
        }

        (
            S::Pending | S::Running | S::WaitingApproval | S::Unwinding,
            E::NeedsOperator { message },
        ) => {
            next.status = S::NeedsOperator;
            next.message = Some(message.clone());
            next.outcome = Some(Outcome::NeedsOperator);
            next.finished_at = Some(event.at);
            next.waiting_gate = None;
        }

        (S::Running, E::RunFinished { outcome }) => {
            let legal = if dry_run {
                state.all_described()
                    && match outcome {
                        Outcome::Succeeded => state
                            .steps
                            .values()
                            .all(|s| s.status == StepStatus::Described),
                        Outcome::Failed => {
                            state.steps.values().any(|s| s.status == StepStatus::Failed)
                        }
                        _ => false,
                    }
            } else {
                *outcome == Outcome::Succeeded
                    && state.current_phase().is_none()
                    && state.abort_requested_by.is_none()
            };
            if !legal {
                return Err(illegal(
                    state,
                    event,
                    format!("run cannot finish {outcome:?} now"),
                ));
            }
            next.status = (*outcome).into();
            next.outcome = Some(*outcome);
            next.finished_at = Some(event.at);
        }
        (S::Unwinding, E::RunFinished { outcome }) => {
            let expected = match state.unwind_cause {
                Some(UnwindCause::Aborted) => Outcome::Aborted,
                Some(UnwindCause::StepFailed { .. }) => Outcome::Failed,
                None => return Err(illegal(state, event, "unwinding without a cause")),
            };
            if *outcome != expected || state.next_unwind() != UnwindNext::Done {
                return Err(illegal(
                    state,
                    event,
                    format!("unwinding cannot finish {outcome:?} now"),
                ));
            }
            next.status = (*outcome).into();
            next.outcome = Some(*outcome);
            next.finished_at = Some(event.at);
        }

        (status, kind) => {
            return Err(illegal(
                state,
                event,
                format!(
                    "{} is not legal while the run is {}",
                    kind.name(),
                    status.as_str()
                ),
            ))
        }
    }
    Ok(next)
}
