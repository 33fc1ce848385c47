//! The step tasks the actor spawns: each runs one operation of a [`Step`] under the step's
//! timeout (and, for verify and compensate, its retry policy) and returns a [`TaskResult`] the
//! actor turns into the next journal event.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use serde_json::Value;
use time::OffsetDateTime;

use crate::engine::decide::TaskKind;
use crate::engine::event::{RunId, StepDescription, StepId};
use crate::engine::step::{Step, StepContext, StepError, VerifyOutcome};
use crate::engine::view::{RetriedOperation, RetryView};

pub(super) struct TaskReport {
    pub(super) run: RunId,
    pub(super) generation: u64,
    pub(super) step: StepId,
    pub(super) result: TaskResult,
}

pub(super) enum TaskResult {
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

pub(super) struct TaskMeta {
    pub(super) run: RunId,
    pub(super) generation: u64,
    pub(super) step: StepId,
    pub(super) kind: TaskKind,
    pub(super) attempt: u32,
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
pub(super) async fn execute_task(step: Arc<dyn Step>, ctx: StepContext) -> TaskResult {
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
                    // This attempt only looked: whatever earlier attempts did, it did nothing.
                    result: Err(StepError {
                        message: format!("verify before retry failed: {}", e.message),
                        retryable: e.retryable,
                        not_applied: true,
                    }),
                };
            }
        }
    }
    let result = with_timeout(limit, "execute", step.execute(&ctx))
        .await
        .map(|v| (v, false));
    TaskResult::Executed { attempt, result }
}

/// The retries a run's in-task loops (verify, compensate) are waiting out, for its view: the
/// actor knows of execute retries from the journal, not of these.
#[derive(Clone, Default)]
pub(super) struct RetryNotes(Arc<Mutex<HashMap<StepId, RetryView>>>);

impl RetryNotes {
    fn set(&self, step: &StepId, retry: RetryView) {
        self.lock().insert(step.clone(), retry);
    }

    fn clear(&self, step: &StepId) {
        self.lock().remove(step);
    }

    pub(super) fn get(&self, step: &StepId) -> Option<RetryView> {
        self.lock().get(step).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StepId, RetryView>> {
        // Each update is one insert or remove: a poisoned map is still consistent.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `call` under the step's timeout, its retryable errors retried with the step's policy (until
/// its deadline, counted from now); each wait is noted in `notes` for the run's view.
async fn with_retries<T, F, Fut>(
    step: &dyn Step,
    id: &StepId,
    operation: RetriedOperation,
    notes: &RetryNotes,
    mut call: F,
) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StepError>>,
{
    let policy = step.retry_policy();
    let what = match operation {
        RetriedOperation::Execute => "execute",
        RetriedOperation::Verify => "verify",
        RetriedOperation::Compensate => "compensate",
    };
    let started = Instant::now();
    let mut failures = 0;
    let result = loop {
        match with_timeout(step.timeout(), what, call()).await {
            Err(e) if e.retryable => {
                failures += 1;
                match policy.next_attempt(failures, started.elapsed()) {
                    Ok(delay) => {
                        tracing::warn!(step = %id, operation = what, attempt = failures, error = %e.message, "retrying in {delay:?}");
                        notes.set(
                            id,
                            RetryView {
                                operation,
                                attempts: failures,
                                next_attempt_at: OffsetDateTime::now_utc() + delay,
                                last_error: e.message,
                            },
                        );
                        tokio::time::sleep(delay).await;
                    }
                    Err(why) => break Err(e.given_up(&why)),
                }
            }
            other => break other,
        }
    };
    notes.clear(id);
    result
}

/// Resolve an in-doubt attempt; `verify` errors are retried with the step's policy.
pub(super) async fn verify_task(
    step: Arc<dyn Step>,
    ctx: StepContext,
    id: StepId,
    notes: RetryNotes,
) -> TaskResult {
    let result = with_retries(&*step, &id, RetriedOperation::Verify, &notes, || {
        step.verify(&ctx)
    })
    .await;
    TaskResult::Verified {
        attempt: ctx.attempt,
        result,
    }
}

/// Compensate a step; retryable errors are retried with the step's policy (a step bound by a
/// deadline is compensated until that deadline: an undo waits out an outage like the change did).
pub(super) async fn compensate_task(
    step: Arc<dyn Step>,
    ctx: StepContext,
    id: StepId,
    notes: RetryNotes,
) -> TaskResult {
    let result = with_retries(&*step, &id, RetriedOperation::Compensate, &notes, || {
        step.compensate(&ctx)
    })
    .await;
    TaskResult::Compensated { result }
}

/// Describe the step (dry runs), bounded by its timeout.
pub(super) async fn describe_task(step: Arc<dyn Step>, ctx: StepContext) -> TaskResult {
    let result = match tokio::time::timeout(step.timeout(), step.describe(&ctx)).await {
        Ok(r) => r,
        Err(_) => Err(StepError::retryable(format!(
            "describe timed out after {:?}",
            step.timeout()
        ))),
    };
    TaskResult::Described { result }
}

/// Unwinding after an irreversible step failed: did it take effect anyway?
pub(super) async fn check_failed_task(
    step: Arc<dyn Step>,
    ctx: StepContext,
    id: StepId,
    notes: RetryNotes,
) -> TaskResult {
    match verify_task(step, ctx, id, notes).await {
        TaskResult::Verified { result, .. } => TaskResult::CheckedFailed { result },
        other => other,
    }
}
