//! The `Step` trait: the unit of work of a plan, and what the engine needs from it to be crash-safe.
//!
//! The engine writes `StepStarted` durably before calling [`Step::execute`] and `StepSucceeded`
//! after it returns, so after a crash it may not know whether an attempt took effect. It then asks
//! [`Step::verify`] — "look at the world: is this done?" — and only re-executes on `NotDone`. The same
//! question is asked before every retry, because a failed or timed-out attempt may have half
//! happened. A step is therefore correct when `verify` is truthful and `execute` is idempotent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::event::{Mode, Reversibility, RunId, StepDescription, StepId};

/// Result of [`Step::verify`].
#[derive(Clone, Debug, PartialEq)]
pub enum VerifyOutcome {
    /// The step's effect is in place; the value becomes the step's output.
    Done(Value),
    /// The effect is not in place; executing the step is safe.
    NotDone,
}

/// An error from a step. `retryable` errors are retried with the step's [`RetryPolicy`]; others
/// fail the step at once and unwind the run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize)]
#[error("{message}")]
pub struct StepError {
    pub message: String,
    pub retryable: bool,
}

impl StepError {
    /// A transient failure (throttling, timeouts, 5xx).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
        }
    }

    /// A failure that retrying will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
        }
    }
}

/// A failed port call as a step error: retryable exactly when its kind is (throttling, 5xx,
/// timeouts, conflicts), with the call's message.
impl From<crate::port::Error> for StepError {
    fn from(e: crate::port::Error) -> Self {
        Self {
            message: e.to_string(),
            retryable: e.is_retryable(),
        }
    }
}

/// How often and how patiently to retry a step's retryable failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (at least 1).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, 1 s then 2 s apart: enough to ride out AWS throttling without stretching a
    /// failover by more than seconds.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// A single attempt.
    pub fn no_retry() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Delay before the attempt following the `failures`-th failure: exponential, capped.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff)
    }
}

/// What a step knows about the run it is part of.
#[derive(Clone, Debug)]
pub struct StepContext {
    pub run_id: RunId,
    pub plan: Arc<str>,
    pub mode: Mode,
    pub drill: bool,
    pub params: Arc<Value>,
    /// The attempt being made (1-based); 0 for `describe`.
    pub attempt: u32,
    pub run_started_at: Option<OffsetDateTime>,
    /// Outputs of the steps that have succeeded so far.
    pub outputs: Arc<BTreeMap<StepId, Value>>,
}

/// One unit of work. See the module docs for the crash-safety contract.
#[async_trait]
pub trait Step: Send + Sync + 'static {
    /// Unique within the plan, stable across releases (it is stored in journals).
    fn id(&self) -> &StepId;

    /// Human-readable name.
    fn name(&self) -> &str;

    /// What the step would change, without changing anything (dry runs).
    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError>;

    /// Make the change. Must be idempotent. The returned value is the step's output; a
    /// `{"measurements": {"name": number}}` member is copied into drill reports.
    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError>;

    /// Inspect the world: has this step's effect already taken place?
    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError>;

    /// Whether unwinding can undo the step. Default: it cannot.
    fn reversibility(&self) -> Reversibility {
        Reversibility::Irreversible
    }

    /// Undo the step (only called when [`Step::reversibility`] is `Compensable`). Must be idempotent
    /// and safe when the effect never happened (a compensation may be re-run after a crash, and a
    /// failed step is compensated too because it may have half happened).
    async fn compensate(&self, _ctx: &StepContext) -> Result<(), StepError> {
        Err(StepError::permanent(format!(
            "step {} has no compensation",
            self.id()
        )))
    }

    /// What a person must check when this step cannot be undone or its state cannot be determined.
    fn operator_check(&self) -> String {
        format!(
            "check whether the effect of step '{}' is in place",
            self.name()
        )
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }

    /// Upper bound for one `execute` (and for one `verify`, `describe` or `compensate`).
    fn timeout(&self) -> Duration {
        Duration::from_secs(300)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_exponential_and_capped() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
        };
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(2), Duration::from_secs(2));
        assert_eq!(p.backoff(3), Duration::from_secs(4));
        assert_eq!(p.backoff(4), Duration::from_secs(5));
        assert_eq!(p.backoff(1000), Duration::from_secs(5));
    }
}
