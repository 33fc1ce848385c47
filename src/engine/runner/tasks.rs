//! The step tasks the actor spawns: each runs one operation of a [`Step`] under the step's
//! timeout (and, for verify and compensate, its retry policy) and returns a [`TaskResult`] the
//! actor turns into the next journal event.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::engine::decide::TaskKind;
use crate::engine::event::{RunId, StepDescription, StepId};
use crate::engine::step::{Step, StepContext, StepError, VerifyOutcome};

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
pub(super) async fn verify_task(step: Arc<dyn Step>, ctx: StepContext) -> TaskResult {
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
pub(super) async fn compensate_task(step: Arc<dyn Step>, ctx: StepContext) -> TaskResult {
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
pub(super) async fn check_failed_task(step: Arc<dyn Step>, ctx: StepContext) -> TaskResult {
    match verify_task(step, ctx).await {
        TaskResult::Verified { result, .. } => TaskResult::CheckedFailed { result },
        other => other,
    }
}
