//! What the actor does when a step task finishes (its result becomes the next journal event) and
//! when driving a run fails: a store error stalls the run for a reload, a newer fencing token
//! deposes this runner, an illegal transition stops the run for an operator.

use tokio::task::JoinError;

use super::{Actor, DriveError};
use crate::engine::decide::TaskKind;
use crate::engine::event::{EventKind, RunId};
use crate::engine::runner::request::{RunError, StartError};
use crate::engine::runner::tasks::{TaskReport, TaskResult};
use crate::engine::step::{StepError, VerifyOutcome};
use crate::engine::store::StoreError;

/// What becomes of a failed attempt: a retryable error within the step's budget gets the time of
/// the next attempt; one past its budget (the deadline, or the attempts) is final, and its
/// message says which budget ran out.
fn schedule_retry(
    live: &super::LiveRun,
    step: &crate::engine::event::StepId,
    e: StepError,
) -> (StepError, Option<time::OffsetDateTime>) {
    if !e.retryable {
        return (e, None);
    }
    let Some(s) = live.step(step) else {
        return (
            StepError {
                retryable: false,
                ..e
            },
            None,
        );
    };
    let now = time::OffsetDateTime::now_utc();
    let (failures, first) = live
        .state
        .steps
        .get(step)
        .map_or((1, None), |st| (st.failures + 1, st.first_started_at));
    // The longer of the journal's wall-clock reckoning (it survives restarts) and this process's
    // runtime clock (which paused-time tests advance).
    let wall: std::time::Duration = first
        .map(|f| (now - f).try_into().unwrap_or_default())
        .unwrap_or_default();
    let runtime = live
        .first_attempt
        .get(step)
        .map(tokio::time::Instant::elapsed)
        .unwrap_or_default();
    let elapsed = wall.max(runtime);
    match s.retry_policy().next_attempt(failures, elapsed) {
        Ok(delay) => (e, Some(now + delay)),
        Err(why) => (e.given_up(&why), None),
    }
}

impl Actor {
    pub(super) async fn on_joined(
        &mut self,
        joined: Result<(tokio::task::Id, TaskReport), JoinError>,
    ) {
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
        let describing = matches!(report.result, TaskResult::Described { .. });
        if !describing {
            live.busy.remove(&step);
        }
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
                let (e, retry_at) = schedule_retry(live, &step, e);
                if retry_at.is_some() {
                    self.metrics
                        .step_retries
                        .with_label_values(&[live.state.record.plan.as_str(), step.as_str()])
                        .inc();
                }
                match retry_at {
                    Some(at) => {
                        tracing::warn!(run = %id, %step, attempt, error = %e, next_attempt_at = %at, "step failed; retrying")
                    }
                    None => {
                        tracing::warn!(run = %id, %step, attempt, error = %e, retryable = e.retryable, "step failed")
                    }
                }
                Some(EventKind::StepFailed {
                    step: step.clone(),
                    attempt,
                    error: e.message,
                    retryable: e.retryable,
                    retry_at,
                    not_applied: e.not_applied,
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
        let kinds = match kind {
            Some(kind) if describing => {
                let Some(live) = self.live.get_mut(&id) else {
                    return;
                };
                live.described.insert(step.clone(), kind);
                live.take_described_in_order()
            }
            other => other.into_iter().collect(),
        };
        for kind in kinds {
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

    pub(super) async fn on_drive_error(&mut self, id: RunId, e: DriveError) {
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
                if self.lease.is_some() {
                    // The lease is held no more (expired between two checks): step down at once.
                    tracing::error!(run = %id, "leadership lost while driving the run; stepping down");
                    self.depose().await;
                } else {
                    self.drop_live(id, StartError::NotLeader);
                }
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

    pub(super) fn drop_live(&mut self, id: RunId, reason: StartError) {
        if let Some(mut live) = self.live.remove(&id) {
            live.abort_tasks();
            if let Some(reply) = live.dry_run_reply.take() {
                let _ = reply.send(Err(reason));
            }
        }
        self.update_active_gauge();
    }

    pub(super) async fn depose(&mut self) {
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

pub(super) fn drive_error_to_run_error(id: RunId, e: &DriveError) -> RunError {
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
