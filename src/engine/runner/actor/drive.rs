//! Driving a run: every event is checked with `apply` and made durable before anything acts on
//! it; then the action `decide` chooses is performed — an append, or a step task spawned into the
//! actor's `JoinSet`.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Actor, DriveError};
use crate::engine::decide::{decide, Action, TaskKind};
use crate::engine::event::{Event, EventKind, JournalEntry, Reversibility, RunId, StepId};
use crate::engine::leadership::LeaderLease;
use crate::engine::runner::tasks::{
    check_failed_task, compensate_task, describe_task, execute_task, verify_task, RetryNotes,
    TaskMeta, TaskReport, TaskResult,
};
use crate::engine::state::{apply, IllegalTransition, RunStatus, StepStatus};
use crate::engine::step::{Step, StepContext};
use crate::engine::store::StoreError;

impl Actor {
    /// Check `kind` with `apply`, make it durable, then update the live state and notify
    /// subscribers. Nothing acts on an event before it is durable.
    pub(super) async fn append(&mut self, id: RunId, kind: EventKind) -> Result<(), DriveError> {
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
    pub(super) async fn drive(&mut self, id: RunId) {
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
    pub(super) fn retire_if_finished(&mut self, id: RunId) {
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
                    live.first_attempt
                        .entry(step.clone())
                        .or_insert_with(tokio::time::Instant::now);
                }
                tracing::debug!(run = %id, %step, attempt, "step started");
                self.spawn(id, step, TaskKind::Execute, attempt, execute_task(s, ctx))
            }
            Action::Verify { step, attempt } => {
                let s = self.step_of(id, &step)?;
                let ctx = self.context(id, attempt)?;
                tracing::info!(run = %id, %step, attempt, "step in doubt; verifying");
                let notes = self.retry_notes(id)?;
                let task = verify_task(s, ctx, step.clone(), notes);
                self.spawn(id, step, TaskKind::Verify, attempt, task)
            }
            Action::ScheduleRetry { step, failures } => {
                let s = self.step_of(id, &step)?;
                // The time `StepFailed` recorded (so a restart does not wait twice), else the
                // policy's backoff.
                let due = self
                    .live
                    .get(&id)
                    .and_then(|l| l.state.steps.get(&step))
                    .and_then(|st| st.retry_at);
                let delay = match due {
                    Some(at) => (at - time::OffsetDateTime::now_utc())
                        .try_into()
                        .unwrap_or_default(),
                    None => s.retry_policy().backoff(failures),
                };
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
                let notes = self.retry_notes(id)?;
                let task = compensate_task(s, ctx, step.clone(), notes);
                self.spawn(id, step, TaskKind::Compensate, 0, task)
            }
            Action::Describe { step } => {
                let s = self.step_of(id, &step)?;
                let ctx = self.context(id, 0)?;
                self.spawn(id, step, TaskKind::Describe, 0, describe_task(s, ctx))
            }
            Action::CheckFailed { step } => {
                let s = self.step_of(id, &step)?;
                let ctx = self.context(id, 0)?;
                tracing::info!(run = %id, %step, "checking whether the failed irreversible step took effect");
                let notes = self.retry_notes(id)?;
                let task = check_failed_task(s, ctx, step.clone(), notes);
                self.spawn(id, step, TaskKind::CheckFailed, 0, task)
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

    pub(super) fn cannot_undo_message(&self, id: RunId, step: &StepId) -> String {
        let check = self
            .step_of(id, step)
            .map(|s| s.operator_check())
            .unwrap_or_else(|_| format!("check the effect of step {step}"));
        let state = self.live.get(&id).map(|l| &l.state);
        let forward_only = state
            .and_then(|s| s.point_of_no_return())
            .filter(|(_, barrier)| barrier == step)
            .and_then(|(phase, _)| {
                let state = state?;
                let later = state.started_after_phase(phase);
                let not_started = state.not_started_after_phase(phase);
                if later.is_empty() && not_started.is_empty() {
                    return None;
                }
                let mut text = String::from("; the plan only goes forward past it");
                if !later.is_empty() {
                    let list: Vec<String> = later
                        .iter()
                        .map(|(later_id, status)| {
                            // Side-effect-free steps need no checking.
                            let check = self
                                .step_of(id, later_id)
                                .ok()
                                .filter(|s| s.reversibility() != Reversibility::NoSideEffect)
                                .map(|s| format!(" — {}", s.operator_check()))
                                .unwrap_or_default();
                            format!("{later_id} {}{check}", step_status_word(*status))
                        })
                        .collect();
                    text.push_str(&format!(
                        ", so the later steps were left as they are: {}",
                        list.join("; ")
                    ));
                }
                if !not_started.is_empty() {
                    let list: Vec<String> = not_started.iter().map(|s| s.to_string()).collect();
                    text.push_str(&format!(
                        "; not started (finish them by hand or run the plan again): {}",
                        list.join(", ")
                    ));
                }
                Some(text)
            })
            .unwrap_or_default();
        let (what, error) = match state.and_then(|s| s.steps.get(step)) {
            Some(s) if s.status == StepStatus::Failed => (
                "failed and may have partly taken effect",
                s.last_error
                    .clone()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
            ),
            _ => ("took effect", String::new()),
        };
        format!(
            "the run is unwinding, but step {step}{error} {what} and cannot be undone automatically: {check}{forward_only}; \
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

    fn retry_notes(&self, id: RunId) -> Result<RetryNotes, DriveError> {
        Ok(self.live.get(&id).ok_or(DriveError::Gone)?.retries.clone())
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
        // A lease that stops being held stops the step at once, even while the actor is busy
        // (waiting on the journal, say): the step is dropped where it is, as a crash would leave
        // it, and whoever leads next resolves it from the journal. The task then waits to be
        // aborted by the actor's step-down.
        let expired = self.lease.as_ref().map(LeaderLease::expired);
        let handle = self.tasks.spawn(async move {
            let result = match expired {
                None => fut.await,
                Some(expired) => tokio::select! {
                    result = fut => result,
                    () = expired => std::future::pending().await,
                },
            };
            TaskReport {
                run: id,
                generation,
                step: report_step,
                result,
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
}

/// How a step's status reads in an operator message.
fn step_status_word(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "not started",
        StepStatus::Running => "in progress (in doubt)",
        StepStatus::Succeeded => "done",
        StepStatus::Failed => "failed (may have partly taken effect)",
        StepStatus::Interrupted => "interrupted (had not taken effect)",
        StepStatus::Described => "described",
        StepStatus::Compensating => "being undone",
        StepStatus::Compensated => "undone",
        StepStatus::CompensationFailed => "undo failed",
    }
}
