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
    /// The attempt provably changed nothing (it failed before its write, or the API refused
    /// the write). A step whose every failed attempt says so is not compensated: there is
    /// nothing to undo, and nothing to call during an outage.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_applied: bool,
}

impl StepError {
    /// A transient failure (throttling, timeouts, 5xx).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            not_applied: false,
        }
    }

    /// A failure that retrying will not fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            not_applied: false,
        }
    }

    /// This retryable error made final because its retry budget is spent (`why`, from
    /// [`RetryPolicy::next_attempt`]), saying so in its message.
    pub fn given_up(self, why: &str) -> Self {
        Self {
            message: format!("{} (giving up: {why})", self.message),
            retryable: false,
            not_applied: self.not_applied,
        }
    }

    /// This error, known to have changed nothing (see [`StepError::not_applied`]).
    pub fn nothing_applied(mut self) -> Self {
        self.not_applied = true;
        self
    }
}

/// A failed port call as a step error: retryable exactly when its kind is (throttling, 5xx,
/// timeouts, conflicts), with the call's message.
impl From<crate::port::Error> for StepError {
    fn from(e: crate::port::Error) -> Self {
        Self {
            message: e.to_string(),
            retryable: e.is_retryable(),
            not_applied: false,
        }
    }
}

/// How often and how patiently to retry a step's retryable failures.
///
/// Two budgets: a number of attempts, and — for steps that act on AWS or Kubernetes, where a
/// regional outage means minutes of throttling, 5xx and timeouts — a deadline, counted from the
/// step's first attempt (from the start of a compensation, for a compensation). A step with a
/// deadline is retried until the deadline however many attempts that takes; the run gives up
/// only on a non-retryable error or once the deadline is spent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts including the first (at least 1); `u32::MAX` for a deadline-bound policy.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Retry until this long after the first attempt started, whatever `max_attempts` says.
    pub deadline: Option<Duration>,
}

impl Default for RetryPolicy {
    /// Three attempts, 1 s then 2 s apart: enough to ride out AWS throttling without stretching a
    /// failover by more than seconds.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            deadline: None,
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

    /// Retry transient errors until `deadline` after the first attempt, backing off from 1 s up
    /// to `max_backoff`.
    pub fn until(deadline: Duration, max_backoff: Duration) -> Self {
        Self {
            max_attempts: u32::MAX,
            initial_backoff: Duration::from_secs(1).min(max_backoff),
            max_backoff,
            deadline: Some(deadline),
        }
    }

    /// Delay before the attempt following the `failures`-th failure: exponential, capped.
    pub fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff)
    }

    /// [`RetryPolicy::backoff`] with "equal jitter": half of it fixed, the other half drawn at
    /// random, so that many runners retrying against one recovering API do not call in step.
    pub fn jittered_backoff(&self, failures: u32) -> Duration {
        let base = self.backoff(failures);
        let half = base / 2;
        half + half.mul_f64(rand::random::<f64>())
    }

    /// Whether another attempt may follow the `failures`-th failure of a step that has been
    /// retrying for `elapsed`: `Err` says why not, in words for the run's message.
    pub fn next_attempt(&self, failures: u32, elapsed: Duration) -> Result<Duration, String> {
        let delay = self.jittered_backoff(failures);
        match self.deadline {
            Some(deadline) if elapsed.saturating_add(delay) > deadline => Err(format!(
                "retry deadline of {} spent after {failures} attempts over {}",
                whole_seconds(deadline),
                whole_seconds(elapsed),
            )),
            Some(_) => Ok(delay),
            None if failures >= self.max_attempts.max(1) => Err(format!(
                "no attempts left ({failures} of {})",
                self.max_attempts.max(1)
            )),
            None => Ok(delay),
        }
    }
}

/// The API a step changes the world through, for the retry deadline of an outage
/// ([`OutageRetry`]): a regional outage of that API is ridden out, not given up on after seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutageApi {
    Route53,
    Aurora,
    Cognito,
    Kubernetes,
    CloudWatch,
}

/// How long the steps that act on each API keep retrying transient errors (throttling, 5xx,
/// timeouts, refused connections), and the longest wait between two attempts. Applied to a plan by
/// [`crate::engine::Plan::with_outage_retry`]; the steps' own attempt counts then no longer apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutageRetry {
    pub max_backoff: Duration,
    pub route53: Duration,
    pub aurora: Duration,
    pub cognito: Duration,
    pub kubernetes: Duration,
    pub cloudwatch: Duration,
}

impl Default for OutageRetry {
    /// Minutes: long enough for a regional API event, short enough that an operator hears of a
    /// takeover that cannot finish within the hour.
    fn default() -> Self {
        Self {
            max_backoff: Duration::from_secs(30),
            route53: Duration::from_secs(30 * 60),
            aurora: Duration::from_secs(15 * 60),
            cognito: Duration::from_secs(15 * 60),
            kubernetes: Duration::from_secs(15 * 60),
            cloudwatch: Duration::from_secs(15 * 60),
        }
    }
}

impl OutageRetry {
    /// The policy of a step acting on `api`.
    pub fn policy(&self, api: OutageApi) -> RetryPolicy {
        let deadline = match api {
            OutageApi::Route53 => self.route53,
            OutageApi::Aurora => self.aurora,
            OutageApi::Cognito => self.cognito,
            OutageApi::Kubernetes => self.kubernetes,
            OutageApi::CloudWatch => self.cloudwatch,
        };
        RetryPolicy::until(deadline, self.max_backoff)
    }
}

/// `2m 5s`, not `2m 5s 312ms 40us`: for messages.
fn whole_seconds(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_secs(d.as_secs()))
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
    /// Set when an operator aborts the run: a step that waits after making its change stops
    /// waiting and fails, so the unwind can undo it now rather than when the wait would end.
    pub abort: AbortSignal,
}

/// Whether the run's abort was requested (see [`StepContext::abort`]). The default is never.
#[derive(Clone, Debug, Default)]
pub struct AbortSignal(Option<tokio::sync::watch::Receiver<bool>>);

impl AbortSignal {
    pub(crate) fn new(rx: tokio::sync::watch::Receiver<bool>) -> Self {
        Self(Some(rx))
    }

    pub fn is_requested(&self) -> bool {
        self.0.as_ref().is_some_and(|rx| *rx.borrow())
    }

    /// Completes once the abort is requested (never, for the default signal).
    pub async fn requested(&self) {
        match &self.0 {
            Some(rx) => {
                let mut rx = rx.clone();
                // The sender going away (the run retired) is no abort: wait forever then too.
                if rx.wait_for(|a| *a).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }

    /// Sleeps for `d`, or fails the step when the run is aborted first.
    pub async fn sleep(&self, d: std::time::Duration) -> Result<(), StepError> {
        tokio::select! {
            () = tokio::time::sleep(d) => Ok(()),
            () = self.requested() => Err(StepError::permanent("the run was aborted while this step waited")),
        }
    }
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

    /// The API this step changes the world through, when it should ride out that API's outage
    /// (see [`OutageRetry`]). `None` (the default): the step's own [`Step::retry_policy`] alone —
    /// checks, whose retries wait for a condition to clear, and steps with a budget of their own.
    fn acts_on(&self) -> Option<OutageApi> {
        None
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
            deadline: None,
        };
        assert_eq!(p.backoff(1), Duration::from_secs(1));
        assert_eq!(p.backoff(2), Duration::from_secs(2));
        assert_eq!(p.backoff(3), Duration::from_secs(4));
        assert_eq!(p.backoff(4), Duration::from_secs(5));
        assert_eq!(p.backoff(1000), Duration::from_secs(5));
    }

    #[test]
    fn jitter_stays_between_half_and_the_whole_backoff() {
        let p = RetryPolicy::until(Duration::from_secs(600), Duration::from_secs(30));
        for failures in 1..40 {
            let base = p.backoff(failures);
            let j = p.jittered_backoff(failures);
            assert!(j >= base / 2 && j <= base, "{failures}: {j:?} vs {base:?}");
        }
    }

    #[test]
    fn a_deadline_bound_policy_retries_until_its_deadline_whatever_the_attempts() {
        let p = RetryPolicy::until(Duration::from_secs(120), Duration::from_secs(10));
        assert!(p.next_attempt(500, Duration::from_secs(60)).is_ok());
        let spent = p.next_attempt(37, Duration::from_secs(119)).unwrap_err();
        assert!(
            spent.contains("retry deadline of 2m spent after 37 attempts"),
            "{spent}"
        );
        let counted = RetryPolicy::default();
        assert!(counted.next_attempt(2, Duration::ZERO).is_ok());
        assert_eq!(
            counted.next_attempt(3, Duration::ZERO).unwrap_err(),
            "no attempts left (3 of 3)"
        );
    }
}
