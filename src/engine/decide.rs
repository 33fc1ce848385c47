//! What the runner should do next for a run: a pure function of the run's state and of the tasks the
//! runner has in flight for it. Keeping this pure (like `apply`) makes the driving policy — in-doubt
//! steps first, barriers, gates, retries, unwinding in reverse — testable without a runtime.

use std::collections::{HashMap, HashSet};

use super::event::{EventKind, Outcome, StepId, UnwindCause};
use super::state::{RunState, RunStatus, StepStatus, UnwindNext};

/// Kind of work the runner has in flight for a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    Execute,
    /// Resolving an in-doubt attempt after a restart.
    Verify,
    /// Checking whether a failed irreversible step took effect, while unwinding.
    CheckFailed,
    /// Waiting out a retry backoff.
    RetryWait,
    Compensate,
    Describe,
}

/// The next action for a run.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Append this event; no task is involved.
    Append(EventKind),
    /// Append `StepStarted` (write-ahead), then execute.
    Start {
        step: StepId,
        attempt: u32,
    },
    /// The attempt is in doubt: ask `verify` before anything else happens.
    Verify {
        step: StepId,
        attempt: u32,
    },
    /// Wait the retry backoff before starting the next attempt.
    ScheduleRetry {
        step: StepId,
        failures: u32,
    },
    /// Compensate; `resume` is true when `CompensationStarted` is already in the journal.
    Compensate {
        step: StepId,
        resume: bool,
    },
    Describe {
        step: StepId,
    },
    /// A failed irreversible step blocks unwinding: ask `verify` whether it took effect.
    CheckFailed {
        step: StepId,
    },
    /// The step cannot be undone: stop in `needs_operator`.
    CannotUndo {
        step: StepId,
    },
    /// The step's compensation failed for good: stop in `needs_operator`.
    CompensationFailed {
        step: StepId,
    },
    /// Nothing to do until a task reports, a timer fires or an operator acts.
    Idle,
}

/// Decide the next action. `busy` maps steps to the task in flight for them; `retry_ready` holds
/// steps whose backoff has elapsed.
pub fn decide(
    state: &RunState,
    busy: &HashMap<StepId, TaskKind>,
    retry_ready: &HashSet<StepId>,
) -> Action {
    let record = &state.record;
    match state.status {
        s if s.is_terminal() => return Action::Idle,
        RunStatus::Pending => return Action::Append(EventKind::RunStarted),
        _ => {}
    }

    if record.dry_run {
        for (_, l) in record.layout.steps() {
            let pending = state
                .steps
                .get(&l.id)
                .is_some_and(|s| s.status == StepStatus::Pending);
            if pending && !busy.contains_key(&l.id) {
                return Action::Describe { step: l.id.clone() };
            }
        }
        if busy.is_empty() && state.all_described() {
            let failed = state.steps.values().any(|s| s.status == StepStatus::Failed);
            let outcome = if failed {
                Outcome::Failed
            } else {
                Outcome::Succeeded
            };
            return Action::Append(EventKind::RunFinished { outcome });
        }
        return Action::Idle;
    }

    // In-doubt attempts are resolved before anything else happens.
    for id in state.running_steps() {
        if !busy.contains_key(id) {
            let attempt = state.steps.get(id).map_or(1, |s| s.attempt);
            return Action::Verify {
                step: id.clone(),
                attempt,
            };
        }
    }
    if busy.values().any(|k| *k == TaskKind::Verify) {
        return Action::Idle;
    }
    let working = busy.values().any(|k| !matches!(k, TaskKind::RetryWait));

    match state.status {
        RunStatus::Running => {
            let failed = state.finally_failed_step();
            if state.abort_requested_by.is_some() || failed.is_some() {
                if working {
                    return Action::Idle;
                }
                // A step that failed because the abort stopped its wait is part of the abort.
                let cause = match failed {
                    Some(step) if state.abort_requested_by.is_none() => {
                        UnwindCause::StepFailed { step: step.clone() }
                    }
                    _ => UnwindCause::Aborted,
                };
                return Action::Append(EventKind::UnwindStarted { cause });
            }
            let Some(phase_idx) = state.current_phase() else {
                if working {
                    return Action::Idle;
                }
                return Action::Append(EventKind::RunFinished {
                    outcome: Outcome::Succeeded,
                });
            };
            let phase = &record.layout.phases[phase_idx];
            if phase.approval.is_some() && !state.approved.contains(&phase.name) {
                if working {
                    return Action::Idle;
                }
                return Action::Append(EventKind::WaitingApproval {
                    gate: phase.name.clone(),
                });
            }
            for l in &phase.steps {
                let Some(s) = state.steps.get(&l.id) else {
                    continue;
                };
                match s.status {
                    StepStatus::Pending | StepStatus::Interrupted if !busy.contains_key(&l.id) => {
                        return Action::Start {
                            step: l.id.clone(),
                            attempt: s.attempt + 1,
                        }
                    }
                    StepStatus::Failed if retry_ready.contains(&l.id) => {
                        return Action::Start {
                            step: l.id.clone(),
                            attempt: s.attempt + 1,
                        }
                    }
                    StepStatus::Failed if !busy.contains_key(&l.id) => {
                        return Action::ScheduleRetry {
                            step: l.id.clone(),
                            failures: s.failures,
                        }
                    }
                    _ => {}
                }
            }
            Action::Idle
        }
        RunStatus::Unwinding => {
            if working {
                return Action::Idle;
            }
            match state.next_unwind() {
                UnwindNext::Compensate(step) => {
                    let resume = state
                        .steps
                        .get(&step)
                        .is_some_and(|s| s.status == StepStatus::Compensating);
                    Action::Compensate { step, resume }
                }
                UnwindNext::CannotUndo(step) => {
                    let failed = state
                        .steps
                        .get(&step)
                        .is_some_and(|s| s.status == StepStatus::Failed);
                    if failed {
                        Action::CheckFailed { step }
                    } else {
                        Action::CannotUndo { step }
                    }
                }
                UnwindNext::CompensationFailed(step) => Action::CompensationFailed { step },
                UnwindNext::Done => {
                    let outcome = match state.unwind_cause {
                        Some(UnwindCause::Aborted) => Outcome::Aborted,
                        _ => Outcome::Failed,
                    };
                    Action::Append(EventKind::RunFinished { outcome })
                }
            }
        }
        _ => Action::Idle,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use time::OffsetDateTime;

    use super::*;
    use crate::engine::event::{
        Event, Mode, PhaseLayout, PlanLayout, Reversibility, RunId, RunRecord, StepLayout,
    };
    use crate::engine::state::apply;

    fn state(events: &[EventKind]) -> RunState {
        let step = |id: &str| StepLayout {
            id: StepId::new(id),
            name: id.into(),
            reversibility: Reversibility::Compensable,
            max_attempts: 2,
        };
        let record = Arc::new(RunRecord {
            id: RunId::new(),
            plan: "t".into(),
            mode: Mode::Graceful,
            dry_run: false,
            drill: false,
            reason: String::new(),
            params: json!({}),
            requested_by: String::new(),
            region_pair: String::new(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            detected_at: None,
            layout: PlanLayout {
                phases: vec![
                    PhaseLayout {
                        name: "one".into(),
                        approval: None,
                        steps: vec![step("a"), step("b")],
                    },
                    PhaseLayout {
                        name: "two".into(),
                        approval: Some("ok?".into()),
                        steps: vec![step("c")],
                    },
                ],
            },
        });
        let mut s = RunState::new(record);
        for k in events {
            s = apply(&s, &Event::now(k.clone())).unwrap();
        }
        s
    }

    fn id(s: &str) -> StepId {
        StepId::new(s)
    }

    fn start(s: &str, attempt: u32) -> EventKind {
        EventKind::StepStarted {
            step: id(s),
            attempt,
        }
    }

    fn ok(s: &str, attempt: u32) -> EventKind {
        EventKind::StepSucceeded {
            step: id(s),
            attempt,
            output: json!({}),
            verified: false,
        }
    }

    #[test]
    fn starts_all_steps_of_a_phase_then_waits_at_the_barrier() {
        let none = HashMap::new();
        let ready = HashSet::new();
        assert_eq!(
            decide(&state(&[]), &none, &ready),
            Action::Append(EventKind::RunStarted)
        );
        let s = state(&[EventKind::RunStarted]);
        assert_eq!(
            decide(&s, &none, &ready),
            Action::Start {
                step: id("a"),
                attempt: 1
            }
        );
        let s = state(&[EventKind::RunStarted, start("a", 1)]);
        let busy = HashMap::from([(id("a"), TaskKind::Execute)]);
        assert_eq!(
            decide(&s, &busy, &ready),
            Action::Start {
                step: id("b"),
                attempt: 1
            }
        );
        let s = state(&[
            EventKind::RunStarted,
            start("a", 1),
            start("b", 1),
            ok("a", 1),
        ]);
        let busy = HashMap::from([(id("b"), TaskKind::Execute)]);
        assert_eq!(decide(&s, &busy, &ready), Action::Idle, "barrier");
        let s = state(&[
            EventKind::RunStarted,
            start("a", 1),
            start("b", 1),
            ok("a", 1),
            ok("b", 1),
        ]);
        assert_eq!(
            decide(&s, &none, &ready),
            Action::Append(EventKind::WaitingApproval { gate: "two".into() })
        );
    }

    #[test]
    fn in_doubt_steps_are_verified_before_anything_else() {
        let s = state(&[EventKind::RunStarted, start("a", 1)]);
        let none = HashMap::new();
        assert_eq!(
            decide(&s, &none, &HashSet::new()),
            Action::Verify {
                step: id("a"),
                attempt: 1
            }
        );
        let busy = HashMap::from([(id("a"), TaskKind::Verify)]);
        assert_eq!(
            decide(&s, &busy, &HashSet::new()),
            Action::Idle,
            "b waits until a is resolved"
        );
    }

    #[test]
    fn retries_wait_for_backoff_and_abort_waits_for_running_steps() {
        let failed = EventKind::StepFailed {
            step: id("a"),
            attempt: 1,
            error: "x".into(),
            retryable: true,
            retry_at: None,
            not_applied: false,
        };
        let s = state(&[EventKind::RunStarted, start("a", 1), failed.clone()]);
        let none = HashMap::new();
        assert_eq!(
            decide(&s, &none, &HashSet::new()),
            Action::ScheduleRetry {
                step: id("a"),
                failures: 1
            }
        );
        let busy = HashMap::from([(id("a"), TaskKind::RetryWait)]);
        assert_eq!(
            decide(&s, &busy, &HashSet::new()),
            Action::Start {
                step: id("b"),
                attempt: 1
            }
        );
        assert_eq!(
            decide(&s, &none, &HashSet::from([id("a")])),
            Action::Start {
                step: id("a"),
                attempt: 2
            }
        );
        let s = state(&[
            EventKind::RunStarted,
            start("a", 1),
            start("b", 1),
            EventKind::AbortRequested { by: "op".into() },
        ]);
        let busy = HashMap::from([(id("a"), TaskKind::Execute), (id("b"), TaskKind::Execute)]);
        assert_eq!(decide(&s, &busy, &HashSet::new()), Action::Idle);
    }
}
