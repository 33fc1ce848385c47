//! Engine benchmarks (plain `main`, run with `cargo bench --bench engine`):
//!
//! - journal appends per second on the SQLite store (WAL, `synchronous=FULL`, file in a tempdir);
//! - the engine's overhead per no-op step (write-ahead `StepStarted`, `StepSucceeded`, `apply`,
//!   task spawn, decide), with the in-memory and the SQLite store, for sequential steps (one phase
//!   each) and for one phase of concurrent steps.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use failoverd::engine::testing::{spawn_runner, wait_finished};
use failoverd::engine::{
    Event, EventKind, FencingToken, MemoryStore, Mode, Phase, Plan, PlanCatalog, PlanError,
    PlanLayout, Reversibility, RunId, RunRecord, RunRequest, RunStatus, SqliteStore, Step,
    StepContext, StepDescription, StepError, StepId, Store, VerifyOutcome,
};
use serde_json::{json, Value};

struct NoOp(StepId);

#[async_trait]
impl Step for NoOp {
    fn id(&self) -> &StepId {
        &self.0
    }
    fn name(&self) -> &str {
        self.0.as_str()
    }
    async fn describe(&self, _: &StepContext) -> Result<StepDescription, StepError> {
        Ok(StepDescription {
            summary: String::new(),
            changes: vec![],
        })
    }
    async fn execute(&self, _: &StepContext) -> Result<Value, StepError> {
        Ok(Value::Null)
    }
    async fn verify(&self, _: &StepContext) -> Result<VerifyOutcome, StepError> {
        Ok(VerifyOutcome::NotDone)
    }
    fn reversibility(&self) -> Reversibility {
        Reversibility::NoSideEffect
    }
}

/// `seq-N`: N phases of one step; `par-N`: one phase of N steps.
struct NoOpPlans;

impl PlanCatalog for NoOpPlans {
    fn build(&self, name: &str, _: Mode, _: &Value) -> Result<Plan, PlanError> {
        let unknown = || PlanError::UnknownPlan {
            name: name.into(),
            known: Vec::new(),
        };
        let (kind, n) = name.split_once('-').ok_or_else(unknown)?;
        let n: usize = n.parse().map_err(|_| unknown())?;
        let step = |i: usize| Arc::new(NoOp(StepId::new(format!("s{i}")))) as Arc<dyn Step>;
        let phases = match kind {
            "seq" => (0..n)
                .map(|i| Phase::steps(format!("p{i}"), vec![step(i)]))
                .collect(),
            "par" => vec![Phase::steps("p", (0..n).map(step).collect())],
            _ => return Err(unknown()),
        };
        Plan::new(name, phases)
    }
    fn names(&self) -> Vec<String> {
        vec![]
    }
}

async fn appends_per_second(store: &SqliteStore, n: u64) -> f64 {
    let record = RunRecord {
        id: RunId::new(),
        plan: "bench".into(),
        mode: Mode::Graceful,
        dry_run: false,
        drill: false,
        reason: String::new(),
        params: json!({}),
        requested_by: "bench".into(),
        region_pair: "a/b".into(),
        created_at: time::OffsetDateTime::now_utc(),
        detected_at: None,
        layout: PlanLayout { phases: vec![] },
    };
    store.create(&record, FencingToken(1), None).await.unwrap();
    let event = Event::now(EventKind::StepSucceeded {
        step: StepId::new("dns-stage-50"),
        attempt: 1,
        output: json!({"change_id": "C2682N5HXP0BZ4", "weights": {"eu-west-1": 50, "eu-central-1": 50}}),
        verified: false,
    });
    let t = Instant::now();
    for seq in 0..n {
        store
            .append(record.id, seq, FencingToken(1), &event)
            .await
            .unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// Mean wall time per step over `runs` consecutive runs of `plan` (one runner, one store).
async fn per_step_overhead(
    store: Arc<dyn Store>,
    plan: &str,
    steps: usize,
    runs: usize,
) -> Duration {
    let runner = spawn_runner(store, Arc::new(NoOpPlans), 1).unwrap();
    let h = runner.handle();
    let t = Instant::now();
    for _ in 0..runs {
        let view = h
            .start(RunRequest {
                plan: plan.into(),
                requested_by: "bench".into(),
                ..RunRequest::default()
            })
            .await
            .unwrap();
        let done = wait_finished(&h, view.id, Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(done.status, RunStatus::Succeeded);
    }
    let elapsed = t.elapsed();
    runner.shutdown().await;
    elapsed / (steps * runs) as u32
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        println!(
            "engine benchmarks (state files in {})",
            dir.path().display()
        );

        let store = SqliteStore::open_async(dir.path().join("appends.db"))
            .await
            .unwrap();
        appends_per_second(&store, 50).await; // warm up
        let rate = appends_per_second(&store, 2000).await;
        println!(
            "sqlite journal appends (WAL, synchronous=FULL): {rate:.0} appends/s ({:.3} ms each)",
            1000.0 / rate
        );

        // Per-run state is folded and scanned per event, so the overhead grows with plan size;
        // real plans have tens of steps.
        for (steps, runs) in [(10usize, 100usize), (100, 10), (500, 2)] {
            for (label, kind) in [("sequential", "seq"), ("concurrent", "par")] {
                let plan = format!("{kind}-{steps}");
                let mem = per_step_overhead(Arc::new(MemoryStore::new()), &plan, steps, runs).await;
                let path = dir.path().join(format!("{plan}.db"));
                let sqlite = SqliteStore::open_async(&path).await.unwrap();
                let sql = per_step_overhead(Arc::new(sqlite), &plan, steps, runs).await;
                println!(
                    "no-op step overhead, {steps:>3} steps {label:<10}: memory store {:>7.1} µs, sqlite store {:>7.3} ms",
                    mem.as_secs_f64() * 1e6,
                    sql.as_secs_f64() * 1e3
                );
            }
        }
    });
}
