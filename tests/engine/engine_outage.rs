//! Retry budgets that match outages: a step acting on an API rides out its transient errors until
//! the API's deadline (however many attempts that takes), shows the wait in the run view and the
//! runner's status while it lasts, gives up saying which budget ran out, and a compensation
//! waits out an outage the same way.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use failoverd::engine::testing::{spawn_runner, wait_finished};
use failoverd::engine::{
    MemoryStore, Mode, OutageApi, OutageRetry, Phase, Plan, PlanCatalog, PlanError,
    RetriedOperation, Reversibility, RunRequest, RunStatus, RunView, Runner, RunnerHandle, Step,
    StepContext, StepDescription, StepError, StepId, StepStatus, VerifyOutcome,
};
use serde_json::{json, Value};

/// An API that refuses connections while `down`.
#[derive(Default)]
struct Api {
    down: AtomicBool,
    calls: AtomicU32,
    applied: AtomicBool,
    /// Goes down once the change is made (before a later step's refusal unwinds it).
    down_after_change: AtomicBool,
}

impl Api {
    fn call(&self) -> Result<(), StepError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err(StepError::retryable("connection refused (route53)"))
        } else {
            Ok(())
        }
    }
}

/// A change through `api`; `fail_permanently` makes it a refusal instead (to start an unwind).
struct Change {
    id: StepId,
    api: Arc<Api>,
    fail_permanently: bool,
    /// The API's failure happens before the write (a read first): the attempt changed nothing.
    reads_first: bool,
}

#[async_trait]
impl Step for Change {
    fn id(&self) -> &StepId {
        &self.id
    }
    fn name(&self) -> &str {
        "change"
    }
    async fn describe(&self, _: &StepContext) -> Result<StepDescription, StepError> {
        Ok(StepDescription {
            summary: "change".into(),
            changes: vec![],
        })
    }
    async fn execute(&self, _: &StepContext) -> Result<Value, StepError> {
        if self.fail_permanently {
            return Err(StepError::permanent("InvalidChangeBatch"));
        }
        if self.reads_first {
            self.api.call().map_err(StepError::nothing_applied)?;
        }
        self.api.call()?;
        self.api.applied.store(true, Ordering::SeqCst);
        if self.api.down_after_change.load(Ordering::SeqCst) {
            self.api.down.store(true, Ordering::SeqCst);
        }
        Ok(json!({}))
    }
    async fn verify(&self, _: &StepContext) -> Result<VerifyOutcome, StepError> {
        self.api.call()?;
        Ok(if self.api.applied.load(Ordering::SeqCst) {
            VerifyOutcome::Done(json!({}))
        } else {
            VerifyOutcome::NotDone
        })
    }
    fn reversibility(&self) -> Reversibility {
        Reversibility::Compensable
    }
    async fn compensate(&self, _: &StepContext) -> Result<(), StepError> {
        self.api.call()?;
        self.api.applied.store(false, Ordering::SeqCst);
        Ok(())
    }
    fn acts_on(&self) -> Option<OutageApi> {
        Some(OutageApi::Route53)
    }
}

/// `change` (through `api`), then optionally `refused` (a permanent failure), under `retry`.
struct Catalog {
    api: Arc<Api>,
    retry: OutageRetry,
    then_refused: bool,
    reads_first: bool,
}

impl PlanCatalog for Catalog {
    fn build(&self, name: &str, _: Mode, _: &Value) -> Result<Plan, PlanError> {
        let mut phases = vec![Phase::steps(
            "change",
            vec![Arc::new(Change {
                id: StepId::new("change"),
                api: self.api.clone(),
                fail_permanently: false,
                reads_first: self.reads_first,
            }) as Arc<dyn Step>],
        )];
        if self.then_refused {
            phases.push(Phase::steps(
                "refused",
                vec![Arc::new(Change {
                    id: StepId::new("refused"),
                    api: Arc::new(Api::default()),
                    fail_permanently: true,
                    reads_first: false,
                }) as Arc<dyn Step>],
            ));
        }
        Ok(Plan::new(name, phases)?.with_outage_retry(&self.retry))
    }
    fn names(&self) -> Vec<String> {
        vec!["outage".into()]
    }
}

fn retry(deadline: Duration) -> OutageRetry {
    OutageRetry {
        max_backoff: Duration::from_millis(100),
        route53: deadline,
        aurora: deadline,
        cognito: deadline,
        kubernetes: deadline,
        cloudwatch: deadline,
    }
}

async fn start(h: &RunnerHandle) -> failoverd::engine::RunView {
    h.start(RunRequest {
        plan: "outage".into(),
        reason: "test".into(),
        requested_by: "alice".into(),
        ..RunRequest::default()
    })
    .await
    .unwrap()
}

/// A runner on a fresh store for the plan of `catalog`, and a started run of it.
async fn run_with(api: &Arc<Api>, deadline: Duration, then_refused: bool) -> (Runner, RunView) {
    run_of(Catalog {
        api: api.clone(),
        retry: retry(deadline),
        then_refused,
        reads_first: false,
    })
    .await
}

async fn run_of(catalog: Catalog) -> (Runner, RunView) {
    let catalog = Arc::new(catalog);
    let runner = spawn_runner(Arc::new(MemoryStore::new()), catalog, 1).unwrap();
    let run = start(&runner.handle()).await;
    (runner, run)
}

/// Polls until the run's first step waits to retry after at least `attempts` failures.
async fn until_retrying(h: &RunnerHandle, run: &RunView, attempts: u32) -> RunView {
    until(h, run, |v| {
        v.phases[0].steps[0]
            .retry
            .as_ref()
            .is_some_and(|r| r.attempts >= attempts)
    })
    .await
}

/// Polls the run until `pred` holds (bounded).
async fn until(h: &RunnerHandle, view: &RunView, pred: impl Fn(&RunView) -> bool) -> RunView {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = h.get(view.id).await.unwrap();
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "condition never held: {v:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_waited_out_however_many_attempts_it_takes() {
    let api = Arc::new(Api::default());
    api.down.store(true, Ordering::SeqCst);
    let (runner, run) = run_with(&api, Duration::from_secs(600), false).await;
    let h = runner.handle();
    // Far more failures than the three attempts a step used to get.
    let waiting = until_retrying(&h, &run, 8).await;
    let step = &waiting.phases[0].steps[0];
    let retry = step.retry.as_ref().unwrap();
    assert_eq!(retry.operation, RetriedOperation::Execute);
    // Retries ask `verify` first (an attempt may have half happened), which fails the same way.
    assert_eq!(
        retry.last_error,
        "verify before retry failed: connection refused (route53)"
    );
    assert_eq!(waiting.status, RunStatus::Running);
    let status = h.status().await.unwrap();
    assert_eq!(status.retrying.len(), 1, "{:?}", status.retrying);
    assert_eq!(status.retrying[0].step.as_str(), "change");
    assert!(status.retrying[0].retry.attempts >= 8);
    // The journal says when the next attempt is due.
    let json = serde_json::to_value(&waiting.timeline).unwrap();
    assert!(
        json.as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "step_failed" && e["retry_at"].is_string()),
        "{json:#}"
    );

    api.down.store(false, Ordering::SeqCst);
    let done = wait_finished(&h, run.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Succeeded, "{:?}", done.message);
    assert!(done.phases[0].steps[0].retry.is_none());
    assert!(h.status().await.unwrap().retrying.is_empty());
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_deadline_fails_the_step_and_says_so() {
    let api = Arc::new(Api::default());
    api.down.store(true, Ordering::SeqCst);
    let (runner, run) = run_with(&api, Duration::from_secs(1), false).await;
    let h = runner.handle();
    let done = wait_finished(&h, run.id, Duration::from_secs(60))
        .await
        .unwrap();
    let step = &done.phases[0].steps[0];
    let error = step.error.clone().unwrap_or_default();
    assert!(
        error.starts_with(
            "connection refused (route53) (giving up: retry deadline of 1s spent after"
        ),
        "{error}"
    );
    assert!(step.attempts > 3, "{} attempts", step.attempts);
    assert!(step.retry.is_none());
    // Whether the failed step half happened cannot be read from an API that is still down: its
    // compensation waits out the same deadline, then a person is asked, with both reasons.
    assert_eq!(done.status, RunStatus::NeedsOperator);
    let message = done.message.unwrap_or_default();
    assert!(
        message.starts_with("compensation of step change failed (connection refused (route53) (giving up: retry deadline of 1s"),
        "{message}"
    );
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compensation_waits_out_an_outage_too() {
    let api = Arc::new(Api::default());
    api.down_after_change.store(true, Ordering::SeqCst);
    let (runner, run) = run_with(&api, Duration::from_secs(600), true).await;
    let h = runner.handle();
    let waiting = until_retrying(&h, &run, 5).await;
    let retry = waiting.phases[0].steps[0].retry.clone().unwrap();
    assert_eq!(retry.operation, RetriedOperation::Compensate);
    assert_eq!(waiting.status, RunStatus::Unwinding);
    assert_eq!(h.status().await.unwrap().retrying.len(), 1);
    assert!(api.applied.load(Ordering::SeqCst));

    api.down.store(false, Ordering::SeqCst);
    let done = wait_finished(&h, run.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Failed, "{:?}", done.message);
    assert_eq!(done.phases[0].steps[0].status, StepStatus::Compensated);
    assert!(!api.applied.load(Ordering::SeqCst));
    runner.shutdown().await;
}

/// A step whose attempts all failed before their write is not undone: the run gives up on it
/// and ends `failed`, without calling the API that is down to "undo" what never happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_that_changed_nothing_is_not_undone() {
    let api = Arc::new(Api::default());
    api.down.store(true, Ordering::SeqCst);
    let (runner, run) = run_of(Catalog {
        api: api.clone(),
        retry: retry(Duration::from_secs(1)),
        then_refused: false,
        reads_first: true,
    })
    .await;
    let h = runner.handle();
    let done = wait_finished(&h, run.id, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(done.status, RunStatus::Failed, "{:?}", done.message);
    let step = &done.phases[0].steps[0];
    assert_eq!(step.status, StepStatus::Failed);
    assert!(step.not_applied, "{step:#?}");
    let calls = api.calls.load(Ordering::SeqCst);
    let compensations = done.timeline.iter().any(|e| {
        matches!(
            e.event.kind,
            failoverd::engine::EventKind::CompensationStarted { .. }
        )
    });
    assert!(!compensations, "nothing was compensated ({calls} calls)");
    runner.shutdown().await;
}
