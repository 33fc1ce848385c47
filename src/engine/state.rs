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
    /// When the next attempt after a retryable failure is due (`StepFailed::retry_at`).
    pub retry_at: Option<OffsetDateTime>,
    /// Some failed attempt may have changed something (it did not say `not_applied`).
    pub maybe_applied: bool,
    pub output: Option<Value>,
    pub verified: bool,
    /// A failed step that `verify` found had not taken effect (nothing to undo).
    pub not_applied: bool,
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
            retry_at: None,
            maybe_applied: false,
            output: None,
            verified: false,
            not_applied: false,
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
        let no_return = self.point_of_no_return();
        for id in self.started_order.iter().rev() {
            let (Some(st), Some((phase, layout))) = (self.steps.get(id), self.layout_of(id)) else {
                continue;
            };
            // Past an irreversible step that took effect the plan only goes forward: undoing
            // later phases would leave the world half-way back (traffic returned to a region
            // whose database is no longer the writer).
            if let Some((barrier_phase, barrier)) = &no_return {
                let undoable = layout.reversibility == Reversibility::Compensable
                    && matches!(
                        st.status,
                        StepStatus::Succeeded | StepStatus::Failed | StepStatus::Running
                    )
                    && !st.not_applied;
                if phase > *barrier_phase && undoable {
                    return UnwindNext::CannotUndo(barrier.clone());
                }
            }
            match st.status {
                StepStatus::Compensating => return UnwindNext::Compensate(id.clone()),
                StepStatus::CompensationFailed => {
                    return UnwindNext::CompensationFailed(id.clone())
                }
                StepStatus::Failed if st.not_applied => continue,
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

impl RunState {
    /// The last irreversible step that has taken effect (succeeded), with its phase index: the
    /// point past which unwinding compensates nothing.
    pub fn point_of_no_return(&self) -> Option<(usize, StepId)> {
        self.started_order
            .iter()
            .filter_map(|id| {
                let st = self.steps.get(id)?;
                let (phase, layout) = self.layout_of(id)?;
                (layout.reversibility == Reversibility::Irreversible
                    && st.status == StepStatus::Succeeded)
                    .then(|| (phase, id.clone()))
            })
            .max_by_key(|(phase, _)| *phase)
    }

    /// Steps of phases after `phase` that have not started, in plan order (for operator
    /// messages: what an operator still has to do by hand).
    pub fn not_started_after_phase(&self, phase: usize) -> Vec<StepId> {
        self.record
            .layout
            .phases
            .iter()
            .skip(phase + 1)
            .flat_map(|p| p.steps.iter())
            .filter(|s| !self.started_order.contains(&s.id))
            .map(|s| s.id.clone())
            .collect()
    }

    /// Steps of phases after `phase` that have started, with their status (for operator messages).
    pub fn started_after_phase(&self, phase: usize) -> Vec<(StepId, StepStatus)> {
        self.started_order
            .iter()
            .filter_map(|id| {
                let st = self.steps.get(id)?;
                let (p, _) = self.layout_of(id)?;
                (p > phase).then(|| (id.clone(), st.status))
            })
            .collect()
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
                retry_at,
                not_applied,
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
            s.retry_at = *retry_at;
            // Nothing to undo only while every failed attempt changed nothing.
            s.maybe_applied |= !*not_applied;
            s.not_applied = !s.maybe_applied;
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
        (S::Unwinding, E::StepNotApplied { step }) => {
            if state.next_unwind() != UnwindNext::CannotUndo(step.clone()) {
                return Err(illegal(
                    state,
                    event,
                    format!("step {step} is not blocking unwinding"),
                ));
            }
            let s = step_mut!(step);
            if s.status != StepStatus::Failed {
                return Err(illegal(state, event, format!("step {step} did not fail")));
            }
            s.not_applied = true;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{Mode, PlanLayout, RunId};
    use serde_json::json;

    fn step(id: &str, r: Reversibility, max_attempts: u32) -> StepLayout {
        StepLayout {
            id: StepId::new(id),
            name: id.into(),
            reversibility: r,
            max_attempts,
        }
    }

    /// Phase 1: a (compensable), b (irreversible) concurrently; phase 2 behind gate "go": c.
    fn record(dry_run: bool) -> Arc<RunRecord> {
        Arc::new(RunRecord {
            id: RunId::new(),
            plan: "t".into(),
            mode: Mode::Graceful,
            dry_run,
            drill: false,
            reason: String::new(),
            params: json!({}),
            requested_by: "me".into(),
            region_pair: "a/b".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            detected_at: None,
            layout: PlanLayout {
                phases: vec![
                    PhaseLayout {
                        name: "one".into(),
                        approval: None,
                        steps: vec![
                            step("a", Reversibility::Compensable, 2),
                            step("b", Reversibility::Irreversible, 1),
                        ],
                    },
                    PhaseLayout {
                        name: "go".into(),
                        approval: Some("go?".into()),
                        steps: vec![step("c", Reversibility::Compensable, 1)],
                    },
                ],
            },
        })
    }

    fn ev(kind: EventKind) -> Event {
        Event {
            at: OffsetDateTime::UNIX_EPOCH,
            kind,
        }
    }
    fn id(s: &str) -> StepId {
        StepId::new(s)
    }
    fn started(s: &str, attempt: u32) -> Event {
        ev(EventKind::StepStarted {
            step: id(s),
            attempt,
        })
    }
    fn succeeded(s: &str, attempt: u32) -> Event {
        ev(EventKind::StepSucceeded {
            step: id(s),
            attempt,
            output: json!({}),
            verified: false,
        })
    }
    fn failed(s: &str, attempt: u32, retryable: bool) -> Event {
        ev(EventKind::StepFailed {
            step: id(s),
            attempt,
            error: "boom".into(),
            retryable,
            retry_at: None,
            not_applied: false,
        })
    }

    fn fold(record: Arc<RunRecord>, events: &[Event]) -> Result<RunState, IllegalTransition> {
        RunState::replay(record, events.iter())
    }

    fn happy_path() -> Vec<Event> {
        vec![
            ev(EventKind::RunStarted),
            started("a", 1),
            started("b", 1),
            failed("a", 1, true),
            started("a", 2),
            succeeded("a", 2),
            succeeded("b", 1),
            ev(EventKind::WaitingApproval { gate: "go".into() }),
            ev(EventKind::Approved {
                gate: "go".into(),
                by: "op".into(),
            }),
            started("c", 1),
            succeeded("c", 1),
            ev(EventKind::RunFinished {
                outcome: Outcome::Succeeded,
            }),
        ]
    }

    #[test]
    fn happy_path_folds_to_succeeded() {
        let s = fold(record(false), &happy_path()).unwrap();
        assert_eq!(s.status, RunStatus::Succeeded);
        assert_eq!(s.seq, 12);
        assert_eq!(s.steps[&id("a")].attempt, 2);
        assert_eq!(s.steps[&id("a")].failures, 1);
        assert_eq!(s.started_order, [id("a"), id("b"), id("c")]);
        assert_eq!(s.outcome, Some(Outcome::Succeeded));
    }

    #[test]
    fn every_prefix_of_a_legal_journal_is_legal_and_nothing_follows_the_end() {
        let events = happy_path();
        for n in 0..=events.len() {
            fold(record(false), &events[..n]).unwrap();
        }
        let done = fold(record(false), &events).unwrap();
        for e in &events {
            assert!(
                apply(&done, e).is_err(),
                "{:?} accepted after the end",
                e.kind
            );
        }
    }

    #[test]
    fn illegal_transitions_are_refused() {
        let r = record(false);
        let base = [ev(EventKind::RunStarted)];
        let cases: Vec<(Vec<Event>, &str)> = vec![
            (vec![started("a", 1)], "step before RunStarted"),
            (
                vec![ev(EventKind::RunStarted), ev(EventKind::RunStarted)],
                "started twice",
            ),
            (
                vec![base[0].clone(), started("c", 1)],
                "barrier: phase 2 before phase 1",
            ),
            (vec![base[0].clone(), started("zz", 1)], "unknown step"),
            (vec![base[0].clone(), started("a", 2)], "attempt skipped"),
            (
                vec![base[0].clone(), succeeded("a", 1)],
                "success without start",
            ),
            (
                vec![base[0].clone(), started("a", 1), started("a", 2)],
                "restart while running",
            ),
            (
                vec![
                    base[0].clone(),
                    started("b", 1),
                    failed("b", 1, true),
                    started("b", 2),
                ],
                "retry budget of 1 exceeded",
            ),
            (
                vec![
                    base[0].clone(),
                    started("a", 1),
                    failed("a", 1, false),
                    started("a", 2),
                ],
                "retry after permanent failure",
            ),
            (
                vec![
                    base[0].clone(),
                    started("a", 1),
                    started("b", 1),
                    succeeded("a", 1),
                    succeeded("b", 1),
                    started("c", 1),
                ],
                "gate not approved",
            ),
            (
                vec![
                    base[0].clone(),
                    ev(EventKind::Approved {
                        gate: "go".into(),
                        by: "x".into(),
                    }),
                ],
                "approve while not waiting",
            ),
            (
                vec![
                    base[0].clone(),
                    ev(EventKind::WaitingApproval { gate: "go".into() }),
                ],
                "gate before its phase",
            ),
            (
                vec![
                    base[0].clone(),
                    ev(EventKind::RunFinished {
                        outcome: Outcome::Succeeded,
                    }),
                ],
                "finish early",
            ),
            (
                vec![
                    base[0].clone(),
                    ev(EventKind::UnwindStarted {
                        cause: UnwindCause::Aborted,
                    }),
                ],
                "unwind without abort",
            ),
            (
                vec![
                    base[0].clone(),
                    ev(EventKind::AbortRequested { by: "x".into() }),
                    started("a", 1),
                ],
                "start after abort",
            ),
            (
                vec![
                    base[0].clone(),
                    ev(EventKind::AbortRequested { by: "x".into() }),
                    ev(EventKind::AbortRequested { by: "y".into() }),
                ],
                "abort twice",
            ),
            (
                vec![
                    base[0].clone(),
                    ev(EventKind::StepDescribed {
                        step: id("a"),
                        description: StepDescription {
                            summary: String::new(),
                            changes: vec![],
                        },
                    }),
                ],
                "describe in a real run",
            ),
            (
                vec![
                    base[0].clone(),
                    ev(EventKind::RunFinished {
                        outcome: Outcome::NeedsOperator,
                    }),
                ],
                "needs_operator via RunFinished",
            ),
        ];
        for (events, why) in cases {
            assert!(fold(r.clone(), &events).is_err(), "accepted: {why}");
        }
    }

    #[test]
    fn a_step_whose_every_attempt_changed_nothing_is_not_compensated() {
        let r = record(false);
        let nothing = |attempt| {
            ev(EventKind::StepFailed {
                step: id("a"),
                attempt,
                error: "connection refused before the write".into(),
                retryable: true,
                retry_at: None,
                not_applied: true,
            })
        };
        let unwind = ev(EventKind::UnwindStarted {
            cause: UnwindCause::StepFailed { step: id("a") },
        });
        // a (compensable, 2 attempts) failed twice without writing anything: nothing to undo.
        let events = vec![
            ev(EventKind::RunStarted),
            started("a", 1),
            nothing(1),
            started("a", 2),
            nothing(2),
            unwind.clone(),
        ];
        let s = fold(r.clone(), &events).unwrap();
        assert!(s.steps[&id("a")].not_applied);
        assert_eq!(s.next_unwind(), UnwindNext::Done);
        // One attempt that may have written is enough to undo it.
        let events = vec![
            ev(EventKind::RunStarted),
            started("a", 1),
            failed("a", 1, true),
            started("a", 2),
            nothing(2),
            unwind,
        ];
        let s = fold(r, &events).unwrap();
        assert!(!s.steps[&id("a")].not_applied);
        assert_eq!(s.next_unwind(), UnwindNext::Compensate(id("a")));
    }

    #[test]
    fn unwinding_goes_in_reverse_and_stops_at_irreversible_steps() {
        let r = record(false);
        let mut events = vec![
            ev(EventKind::RunStarted),
            started("a", 1),
            started("b", 1),
            succeeded("a", 1),
            failed("b", 1, false),
        ];
        let s = fold(r.clone(), &events).unwrap();
        assert_eq!(s.finally_failed_step(), Some(&id("b")));
        events.push(ev(EventKind::UnwindStarted {
            cause: UnwindCause::StepFailed { step: id("b") },
        }));
        let s = fold(r.clone(), &events).unwrap();
        // b started last, failed and is irreversible: a person must check it.
        assert_eq!(s.next_unwind(), UnwindNext::CannotUndo(id("b")));
        let mut compensate_a = events.clone();
        compensate_a.push(ev(EventKind::CompensationStarted { step: id("a") }));
        assert!(fold(r.clone(), &compensate_a).is_err(), "skipped b");
        // Either verify shows b never took effect and unwinding continues with a...
        let mut not_applied = events.clone();
        not_applied.push(ev(EventKind::StepNotApplied { step: id("b") }));
        let s = fold(r.clone(), &not_applied).unwrap();
        assert_eq!(s.next_unwind(), UnwindNext::Compensate(id("a")));
        not_applied.push(ev(EventKind::StepNotApplied { step: id("b") }));
        assert!(
            fold(r.clone(), &not_applied).is_err(),
            "b is no longer blocking"
        );
        // ...or a person must check it.
        events.push(ev(EventKind::NeedsOperator {
            message: "check b".into(),
        }));
        let s = fold(r, &events).unwrap();
        assert_eq!(s.status, RunStatus::NeedsOperator);
    }

    #[test]
    fn past_an_irreversible_step_that_took_effect_later_phases_are_not_undone() {
        let r = record(false);
        let events = vec![
            ev(EventKind::RunStarted),
            started("a", 1),
            started("b", 1),
            succeeded("a", 1),
            succeeded("b", 1),
            ev(EventKind::WaitingApproval { gate: "go".into() }),
            ev(EventKind::Approved {
                gate: "go".into(),
                by: "op".into(),
            }),
            started("c", 1),
            succeeded("c", 1),
            ev(EventKind::AbortRequested { by: "op".into() }),
            ev(EventKind::UnwindStarted {
                cause: UnwindCause::Aborted,
            }),
        ];
        let s = fold(r.clone(), &events).unwrap();
        assert_eq!(s.point_of_no_return(), Some((0, id("b"))));
        assert_eq!(
            s.started_after_phase(0),
            vec![(id("c"), StepStatus::Succeeded)]
        );
        assert!(s.not_started_after_phase(0).is_empty());
        let before_c = fold(r.clone(), &events[..7]).unwrap();
        assert_eq!(before_c.not_started_after_phase(0), vec![id("c")]);
        assert!(before_c.started_after_phase(0).is_empty());
        // c is compensable, but undoing it would go half-way back past b: stop for a person.
        assert_eq!(s.next_unwind(), UnwindNext::CannotUndo(id("b")));
        let mut compensate_c = events.clone();
        compensate_c.push(ev(EventKind::CompensationStarted { step: id("c") }));
        assert!(fold(r.clone(), &compensate_c).is_err());

        // Before b took effect, the same abort compensates as usual.
        let before = vec![
            ev(EventKind::RunStarted),
            started("a", 1),
            succeeded("a", 1),
            ev(EventKind::AbortRequested { by: "op".into() }),
        ];
        let s = fold(r, &before).unwrap();
        assert_eq!(s.point_of_no_return(), None);
    }

    #[test]
    fn abort_compensates_then_finishes_aborted() {
        let r = record(false);
        let mut events = vec![
            ev(EventKind::RunStarted),
            started("a", 1),
            succeeded("a", 1),
            ev(EventKind::AbortRequested { by: "op".into() }),
            ev(EventKind::UnwindStarted {
                cause: UnwindCause::Aborted,
            }),
        ];
        let s = fold(r.clone(), &events).unwrap();
        assert_eq!(s.next_unwind(), UnwindNext::Compensate(id("a")));
        let early = [
            events.clone(),
            vec![ev(EventKind::RunFinished {
                outcome: Outcome::Aborted,
            })],
        ]
        .concat();
        assert!(
            fold(r.clone(), &early).is_err(),
            "finished before compensating"
        );
        events.push(ev(EventKind::CompensationStarted { step: id("a") }));
        events.push(ev(EventKind::CompensationFinished { step: id("a") }));
        let wrong = [
            events.clone(),
            vec![ev(EventKind::RunFinished {
                outcome: Outcome::Failed,
            })],
        ]
        .concat();
        assert!(
            fold(r.clone(), &wrong).is_err(),
            "aborted run cannot finish failed"
        );
        events.push(ev(EventKind::RunFinished {
            outcome: Outcome::Aborted,
        }));
        assert_eq!(fold(r, &events).unwrap().status, RunStatus::Aborted);
    }

    #[test]
    fn in_doubt_attempt_can_be_interrupted_and_restarted() {
        let r = record(false);
        let events = vec![
            ev(EventKind::RunStarted),
            started("a", 1),
            ev(EventKind::StepInterrupted {
                step: id("a"),
                attempt: 1,
            }),
            started("a", 2),
        ];
        let s = fold(r, &events).unwrap();
        assert_eq!(s.steps[&id("a")].status, StepStatus::Running);
        assert_eq!(
            s.steps[&id("a")].failures,
            0,
            "interruptions do not use the retry budget"
        );
    }

    #[test]
    fn dry_run_describes_every_step() {
        let r = record(true);
        let d = |s: &str| {
            ev(EventKind::StepDescribed {
                step: id(s),
                description: StepDescription {
                    summary: s.into(),
                    changes: vec![],
                },
            })
        };
        let mut events = vec![ev(EventKind::RunStarted), d("a"), d("b")];
        let early = [
            events.clone(),
            vec![ev(EventKind::RunFinished {
                outcome: Outcome::Succeeded,
            })],
        ]
        .concat();
        assert!(fold(r.clone(), &early).is_err());
        assert!(
            fold(r.clone(), &[events.clone(), vec![started("c", 1)]].concat()).is_err(),
            "dry runs never execute"
        );
        events.push(d("c"));
        events.push(ev(EventKind::RunFinished {
            outcome: Outcome::Succeeded,
        }));
        assert_eq!(fold(r, &events).unwrap().status, RunStatus::Succeeded);
    }

    #[test]
    fn events_round_trip_through_json() {
        for e in happy_path() {
            let json = serde_json::to_string(&e).unwrap();
            let back: Event = serde_json::from_str(&json).unwrap();
            assert_eq!(back, e, "{json}");
        }
        let json = serde_json::to_value(started("a", 1)).unwrap();
        assert_eq!(json["type"], "step_started");
        assert_eq!(json["step"], "a");
    }
}
