//! The `aurora-switchover` plan and its steps, driven by the real engine against the test bed
//! (moto with failoverd's SwitchoverGlobalCluster/FailoverGlobalCluster, with a transition delay
//! so the wait step really polls): graceful switchover, the lag precondition, ungraceful failover
//! with its data-loss estimate, a crash with the promotion in doubt (verified, never repeated),
//! and the engine's idempotency and unwind helpers.

use crate::support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::moto::MotoServer;
use crate::support::{COLD, HOT};
use async_trait::async_trait;
use failoverd::aurora::{AuroraPrecheck, AuroraStepDeps, AuroraTarget, Promotion};
use failoverd::config::{AuroraConfig, Duration as CfgDuration, LagSource};
use failoverd::engine::testing::{
    action_failure_can_unwind, actions_succeed_idempotently, spawn_runner, wait_finished,
    WrappedCatalog,
};
use failoverd::engine::{
    MemoryStore, Mode, PlanCatalog, RunRequest, RunStatus, Step, StepContext, StepDescription,
    StepError, StepId, VerifyOutcome,
};
use failoverd::plans::aurora::{self, AuroraPlanDeps};
use failoverd::plans::PlanRegistry;
use failoverd::replication::{
    DbCluster, GlobalCluster, GlobalDatabaseApi, LagObservation, LagReading, LagReadings,
    LagSourceKind,
};
use failoverd::topology::RegionPair;
use serde_json::{json, Value};
use time::OffsetDateTime;

const GLOBAL: &str = "app-global";
const LIMIT: Duration = Duration::from_secs(120);

async fn seed_global_database(moto: &MotoServer) {
    support::seed_global_database(&moto.endpoint_url(), GLOBAL).await;
    // Promotions take 2 s, as (much longer) on AWS: the wait step has to poll.
    moto.seed("rds/settings", json!({"transition_seconds": 2}))
        .await;
}

/// Counts the promotions requested through the port (the side effects under test).
struct Counting {
    inner: Arc<dyn GlobalDatabaseApi>,
    switchovers: AtomicU32,
    failovers: AtomicU32,
}

#[async_trait]
impl GlobalDatabaseApi for Counting {
    async fn describe_global_cluster(&self, id: &str) -> failoverd::aws::Result<GlobalCluster> {
        self.inner.describe_global_cluster(id).await
    }
    async fn describe_db_cluster(&self, id: &str) -> failoverd::aws::Result<DbCluster> {
        self.inner.describe_db_cluster(id).await
    }
    async fn describe_db_clusters(&self) -> failoverd::aws::Result<Vec<DbCluster>> {
        self.inner.describe_db_clusters().await
    }
    async fn switchover_global_cluster(
        &self,
        id: &str,
        target: &str,
    ) -> failoverd::aws::Result<GlobalCluster> {
        self.switchovers.fetch_add(1, Ordering::SeqCst);
        self.inner.switchover_global_cluster(id, target).await
    }
    async fn failover_global_cluster_allow_data_loss(
        &self,
        id: &str,
        target: &str,
    ) -> failoverd::aws::Result<GlobalCluster> {
        self.failovers.fetch_add(1, Ordering::SeqCst);
        self.inner
            .failover_global_cluster_allow_data_loss(id, target)
            .await
    }
    async fn remove_from_global_cluster(
        &self,
        id: &str,
        member: &str,
    ) -> failoverd::aws::Result<GlobalCluster> {
        self.inner.remove_from_global_cluster(id, member).await
    }
}

/// Lag readings set by the test.
#[derive(Default)]
struct FixedLag(Mutex<Option<LagObservation>>);

impl FixedLag {
    fn set(&self, lag_ms: u64, rpo_ms: Option<u64>, age: Duration) {
        *self.0.lock().unwrap() = Some(LagObservation {
            lag: Duration::from_millis(lag_ms),
            rpo_lag: rpo_ms.map(Duration::from_millis),
            region: COLD.into(),
            source: LagSourceKind::Cloudwatch,
            observed_at: OffsetDateTime::now_utc() - age,
        });
    }
}

impl LagReadings for FixedLag {
    fn last_lag(&self, global_cluster: &str) -> Option<LagReading> {
        let obs = self.0.lock().unwrap().clone()?;
        Some(LagReading::at(
            global_cluster,
            obs,
            Duration::from_secs(5),
            Duration::from_secs(60),
            OffsetDateTime::now_utc(),
        ))
    }
}

fn aurora_config() -> AuroraConfig {
    AuroraConfig {
        global_cluster: GLOBAL.into(),
        clusters: BTreeMap::from([
            (HOT.to_owned(), "app-hot".to_owned()),
            (COLD.to_owned(), "app-cold".to_owned()),
        ]),
        lag_source: LagSource::Cloudwatch,
        max_lag: CfgDuration::from_secs(5),
        stale_after: CfgDuration::from_secs(60),
        heartbeat: None,
    }
}

struct Bed {
    /// Kept alive for the test's duration (killed on drop).
    _moto: MotoServer,
    cold: Arc<Counting>,
    lag: Arc<FixedLag>,
    plans: Arc<PlanRegistry>,
}

impl Bed {
    async fn start() -> Bed {
        let moto = MotoServer::start().await;
        seed_global_database(&moto).await;
        let clients = support::clients(&support::settings(&moto.endpoint_url())).await;
        let hot: Arc<dyn GlobalDatabaseApi> =
            Arc::new(clients.region(HOT).expect("hot").global_database());
        let cold = Arc::new(Counting {
            inner: Arc::new(clients.region(COLD).expect("cold").global_database()),
            switchovers: AtomicU32::new(0),
            failovers: AtomicU32::new(0),
        });
        let lag = Arc::new(FixedLag::default());
        let mut plans = PlanRegistry::new();
        aurora::register(
            &mut plans,
            AuroraPlanDeps {
                pair: RegionPair::new(HOT, COLD),
                databases: vec![aurora_config()],
                apis: BTreeMap::from([
                    (HOT.to_owned(), hot),
                    (COLD.to_owned(), cold.clone() as Arc<dyn GlobalDatabaseApi>),
                ]),
                lag: lag.clone(),
                poll_interval: Duration::from_millis(200),
                promotion_timeout: Duration::from_secs(60),
            },
        );
        Bed {
            _moto: moto,
            cold,
            lag,
            plans: Arc::new(plans),
        }
    }

    async fn writer_region(&self) -> Option<String> {
        let g = self
            .cold
            .describe_global_cluster(GLOBAL)
            .await
            .expect("describe");
        g.writer_region().map(str::to_owned)
    }

    fn promotions(&self) -> u32 {
        self.cold.switchovers.load(Ordering::SeqCst) + self.cold.failovers.load(Ordering::SeqCst)
    }
}

fn request(mode: Mode, drill: bool) -> RunRequest {
    RunRequest {
        plan: aurora::NAME.into(),
        mode,
        drill,
        params: json!({"target_region": COLD}),
        reason: "test".into(),
        requested_by: "alice".into(),
        ..RunRequest::default()
    }
}

fn step<'a>(view: &'a failoverd::engine::RunView, id: &str) -> &'a failoverd::engine::StepView {
    view.phases
        .iter()
        .flat_map(|p| p.steps.iter())
        .find(|s| s.id.as_str() == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

#[tokio::test]
async fn graceful_switchover_moves_the_writer() {
    let bed = Bed::start().await;
    bed.lag.set(1_000, None, Duration::from_secs(5));
    let runner = spawn_runner(Arc::new(MemoryStore::new()), bed.plans.clone(), 1).unwrap();
    let h = runner.handle();
    let started = h.start(request(Mode::Graceful, true)).await.unwrap();
    let view = wait_finished(&h, started.id, LIMIT).await.unwrap();
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    assert_eq!(bed.writer_region().await.as_deref(), Some(COLD));
    assert_eq!(bed.cold.switchovers.load(Ordering::SeqCst), 1);
    assert_eq!(bed.cold.failovers.load(Ordering::SeqCst), 0);

    let promote = step(&view, "aurora-promote-app-global");
    let out = promote.output.as_ref().expect("output");
    assert_eq!(out["operation"], "SwitchoverGlobalCluster");
    assert_eq!(out["previous_writer_region"], HOT);
    assert_eq!(out["estimated_data_loss_seconds"], 0.0);
    let wait = step(&view, "aurora-wait-writer-app-global");
    let waited = wait.output.as_ref().expect("output")["waited_seconds"]
        .as_f64()
        .expect("waited");
    assert!(waited >= 1.0, "the 2 s transition was waited for: {waited}");
    let report = view.report.expect("report");
    let m = report.measurements.expect("drill measurements");
    assert_eq!(m["aurora.app-global.estimated_data_loss_seconds"], 0.0);
    assert!(m["aurora.app-global.promotion_wait_seconds"] >= 1.0);
    runner.shutdown().await;
}

#[tokio::test]
async fn graceful_switchover_needs_fresh_lag_within_budget() {
    let bed = Bed::start().await;
    let runner = spawn_runner(Arc::new(MemoryStore::new()), bed.plans.clone(), 1).unwrap();
    let h = runner.handle();

    // No lag observation at all: refused, nothing promoted, the run fails cleanly.
    let started = h.start(request(Mode::Graceful, false)).await.unwrap();
    let view = wait_finished(&h, started.id, LIMIT).await.unwrap();
    assert_eq!(view.status, RunStatus::Failed, "{:?}", view.message);
    let check = step(&view, "aurora-check-app-global");
    assert!(
        check
            .error
            .as_deref()
            .is_some_and(|e| e.contains("no lag observation")),
        "{check:?}"
    );

    // A stale observation (90 s old, stale after 60 s) is refused the same way.
    bed.lag.set(100, None, Duration::from_secs(90));
    let started = h.start(request(Mode::Graceful, false)).await.unwrap();
    let view = wait_finished(&h, started.id, LIMIT).await.unwrap();
    assert_eq!(view.status, RunStatus::Failed);
    let check = step(&view, "aurora-check-app-global");
    assert!(
        check.error.as_deref().is_some_and(|e| e.contains("stale")),
        "{check:?}"
    );
    assert_eq!(bed.promotions(), 0);
    assert_eq!(bed.writer_region().await.as_deref(), Some(HOT));
    runner.shutdown().await;

    // Lag over budget is a retryable refusal (it often clears): checked on the step itself, so
    // the test does not sit through the engine's backoff.
    bed.lag.set(30_000, None, Duration::from_secs(1));
    let precheck = AuroraPrecheck::new(
        AuroraTarget {
            global_cluster: GLOBAL.into(),
            target_region: COLD.into(),
            target_cluster: "app-cold".into(),
            source_region: HOT.into(),
            source_cluster: "app-hot".into(),
            max_lag: Duration::from_secs(5),
        },
        Promotion::Switchover,
        AuroraStepDeps::new(bed.cold.clone(), bed.lag.clone()),
    );
    let ctx = StepContext {
        run_id: failoverd::engine::RunId::new(),
        plan: aurora::NAME.into(),
        mode: Mode::Graceful,
        drill: false,
        params: Arc::new(json!({"target_region": COLD})),
        attempt: 1,
        run_started_at: None,
        outputs: Arc::new(BTreeMap::new()),
        abort: Default::default(),
    };
    let err = precheck.execute(&ctx).await.expect_err("over budget");
    assert!(err.retryable, "{err:?}");
    assert!(err.message.contains("over the 5.0s budget"), "{err:?}");
    // Ungraceful accepts any lag.
    let ungraceful = AuroraPrecheck::new(
        AuroraTarget {
            global_cluster: GLOBAL.into(),
            target_region: COLD.into(),
            target_cluster: "app-cold".into(),
            source_region: HOT.into(),
            source_cluster: "app-hot".into(),
            max_lag: Duration::from_secs(5),
        },
        Promotion::Failover,
        AuroraStepDeps::new(bed.cold.clone(), bed.lag.clone()),
    );
    let out = ungraceful.execute(&ctx).await.expect("ungraceful check");
    assert_eq!(out["lag_seconds"], 30.0);
}

#[tokio::test]
async fn ungraceful_failover_records_the_estimated_data_loss() {
    let bed = Bed::start().await;
    bed.lag.set(4_000, Some(2_500), Duration::from_secs(10));
    let runner = spawn_runner(Arc::new(MemoryStore::new()), bed.plans.clone(), 1).unwrap();
    let h = runner.handle();
    let started = h.start(request(Mode::Ungraceful, true)).await.unwrap();
    let view = wait_finished(&h, started.id, LIMIT).await.unwrap();
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    assert_eq!(bed.writer_region().await.as_deref(), Some(COLD));
    assert_eq!(bed.cold.failovers.load(Ordering::SeqCst), 1);
    assert_eq!(bed.cold.switchovers.load(Ordering::SeqCst), 0);

    let out = step(&view, "aurora-promote-app-global")
        .output
        .clone()
        .expect("output");
    assert_eq!(out["operation"], "FailoverGlobalCluster");
    assert_eq!(
        out["estimated_data_loss_seconds"], 2.5,
        "the RPO lag is the estimate: {out}"
    );
    assert_eq!(out["lag_seconds"], 4.0);
    let age = out["lag_observation_age_seconds"].as_f64().expect("age");
    assert!((10.0..60.0).contains(&age), "{age}");
    let m = view
        .report
        .and_then(|r| r.measurements)
        .expect("drill measurements");
    assert_eq!(m["aurora.app-global.estimated_data_loss_seconds"], 2.5);
    runner.shutdown().await;
}

/// Executes the inner step, then never returns: the runner is killed with `StepStarted`
/// journaled, the side effect applied, and no outcome.
struct HangAfterExecute(Arc<dyn Step>);

#[async_trait]
impl Step for HangAfterExecute {
    fn id(&self) -> &StepId {
        self.0.id()
    }
    fn name(&self) -> &str {
        self.0.name()
    }
    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        self.0.describe(ctx).await
    }
    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        self.0.execute(ctx).await?;
        std::future::pending().await
    }
    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        self.0.verify(ctx).await
    }
    fn reversibility(&self) -> failoverd::engine::Reversibility {
        self.0.reversibility()
    }
    fn retry_policy(&self) -> failoverd::engine::RetryPolicy {
        self.0.retry_policy()
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(3600)
    }
}

#[tokio::test]
async fn crash_with_the_promotion_in_doubt_is_verified_not_repeated() {
    for mode in [Mode::Graceful, Mode::Ungraceful] {
        let bed = Bed::start().await;
        bed.lag.set(500, None, Duration::from_secs(1));
        let store = Arc::new(MemoryStore::new());
        let crashing = Arc::new(WrappedCatalog {
            inner: bed.plans.clone() as Arc<dyn PlanCatalog>,
            wrap: |_, s: Arc<dyn Step>| {
                if s.id().as_str() == "aurora-promote-app-global" {
                    Arc::new(HangAfterExecute(s)) as Arc<dyn Step>
                } else {
                    s
                }
            },
        });
        let first = spawn_runner(store.clone(), crashing, 1).unwrap();
        let started = first.handle().start(request(mode, false)).await.unwrap();
        // Wait (bounded) for the side effect, then crash.
        let deadline = tokio::time::Instant::now() + LIMIT;
        while bed.promotions() == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "promotion never requested"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        first.kill().await;
        let in_doubt = failoverd::engine::Store::load(store.as_ref(), started.id)
            .await
            .unwrap();
        let kinds: Vec<&str> = in_doubt
            .events
            .iter()
            .map(|e| e.event.kind.name())
            .collect();
        assert_eq!(
            kinds.last(),
            Some(&"step_started"),
            "the crash left the promotion in doubt: {kinds:?}"
        );

        // A new leader resumes the run: verify finds the promotion under way (or done) and the
        // run completes without requesting it again.
        let second = spawn_runner(store.clone(), bed.plans.clone(), 2).unwrap();
        let view = wait_finished(&second.handle(), started.id, LIMIT)
            .await
            .unwrap();
        assert_eq!(
            view.status,
            RunStatus::Succeeded,
            "{mode:?}: {:?}",
            view.message
        );
        assert_eq!(bed.promotions(), 1, "{mode:?}: promotion requested once");
        let promote = step(&view, "aurora-promote-app-global");
        assert!(
            promote.verified,
            "{mode:?}: resolved by verify: {promote:?}"
        );
        assert_eq!(promote.attempts, 1);
        assert_eq!(bed.writer_region().await.as_deref(), Some(COLD));
        second.shutdown().await;
    }
}

#[tokio::test]
async fn steps_are_idempotent_and_unwind_to_an_operator() {
    let bed = Bed::start().await;
    bed.lag.set(500, None, Duration::from_secs(1));
    let params = json!({"target_region": COLD});
    // Every step executed twice: still one promotion.
    let view = actions_succeed_idempotently(bed.plans.clone(), aurora::NAME, &params, LIMIT)
        .await
        .unwrap();
    assert_eq!(view.status, RunStatus::Succeeded);
    assert_eq!(bed.promotions(), 1);
    assert_eq!(bed.writer_region().await.as_deref(), Some(COLD));

    // Back to HOT for the unwind runs (they target COLD again).
    let fresh = Bed::start().await;
    fresh.lag.set(500, None, Duration::from_secs(1));
    let views = action_failure_can_unwind(fresh.plans.clone(), aurora::NAME, &params, LIMIT)
        .await
        .unwrap();
    // Failing the check fails the run. A promotion that failed without taking effect (verify
    // finds the writer unchanged) unwinds cleanly to `failed`, too. Failing after the promotion
    // took effect needs an operator, with the promotion's own instructions.
    assert_eq!(views.len(), 3, "check, promote, wait");
    assert_eq!(views[0].status, RunStatus::Failed);
    assert_eq!(views[1].status, RunStatus::Failed, "{:?}", views[1].message);
    for v in &views[2..] {
        assert_eq!(v.status, RunStatus::NeedsOperator, "{:?}", v.message);
        assert!(
            v.message
                .as_deref()
                .is_some_and(|m| m.contains("DescribeGlobalClusters")),
            "{:?}",
            v.message
        );
    }
}

#[test]
fn plan_parameters_are_validated() {
    use failoverd::plans::params;
    let pair = RegionPair::new(HOT, COLD);
    // What `aurora-switchover` does with its parameters before building its phases.
    let target = |p: &Value| {
        let obj = params::object(p, aurora::PARAMETERS)?;
        params::target_region(obj, &pair)
    };
    assert_eq!(target(&json!({"target_region": COLD})).unwrap(), COLD);
    for (params, fragment) in [
        (json!({}), "required"),
        (json!(null), "required"),
        (
            json!({"target_region": "eu-north-9"}),
            "not one of the pair",
        ),
        (json!({"target_region": 3}), "region name"),
        (json!({"target_region": COLD, "x": 1}), "unknown parameter"),
    ] {
        let err = target(&params).unwrap_err();
        assert!(err.to_string().contains(fragment), "{params}: {err}");
    }
}
