//! Deterministic simulation of two replicas sharing `state.store: kubernetes` (DESIGN.md §6):
//! the Lease leadership and the Kubernetes run journal, each replica running its own `Runner`
//! over its own link to one API server.
//!
//! **What is emulated.** The API server is `failoverd::kube::objects::MemoryCluster`, in memory,
//! with the apiserver's optimistic concurrency (one resourceVersion counter, `409` on a stale
//! version or a taken name). The same `KubeStore` and `LeaseLeadership` code runs against the
//! HTTP API emulator in `domain::kube_state` and with the real binaries in `e2e::ha_e2e`.
//!
//! Each replica reaches the API server through a [`Link`] that the simulation cuts:
//! - **held**: requests are in flight but do not arrive until the link is back; a request is
//!   never withdrawn by its sender, so a deposed leader's renewal or journal append lands late,
//!   after the other replica took over;
//! - **down**: requests fail at once (renewals fail; the leader must stop within its window).
//!
//! Cuts shorter and longer than the acting window, kills of the leading process (restarted later
//! under a new identity), the second replica starting late, and wall clocks offset from each other
//! within `max_clock_skew` are drawn per seed, over the random plans of [`super::engine_sim`]
//! (failing, slow and timing-out steps, gates, aborts). After each seed, beyond the single-process
//! invariants (`check_invariants`: dense journal that replays, each effect at most once, no step
//! executed once its effect was in place, unwinds complete):
//! - no two replicas ever ran a step or a compensation at the same time (each step records which
//!   replica entered it and leaves on drop, so a step stopped by lease expiry leaves then);
//! - every late request from a deposed leader that arrived was refused (`409`), or changed
//!   nothing the new leader relies on (checked by the journal invariants above);
//! - the run finished, on whichever replica led at the end.
//!
//! Time is paused: both replicas share tokio's (virtual) monotonic clock, as two processes share
//! real time; their wall clocks differ. 600 seeds run by default; `HA_SIM_SEEDS=N` runs more
//! (a soak), with the same seeds first.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use failoverd::engine::{
    EngineMetrics, Mode, Plan, PlanCatalog, PlanError, RetryPolicy, Reversibility, RunId,
    RunRequest, RunState, RunStatus, Runner, RunnerConfig, RunnerDeps, Step, StepContext,
    StepDescription, StepError, StepId, Store, VerifyOutcome,
};
use failoverd::kube::journal::{JournalObjects, KubeStore};
use failoverd::kube::lease::{LeaseLeadership, LeaseSettings, WallClock};
use failoverd::kube::objects::{MemoryCluster, Objects};
use failoverd::port::{Error, ErrorKind, Result as PortResult, Service};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;

use super::engine_sim::{
    check_invariants, scenario, sim_plan, Exec, PhaseSpec, Scenario, SimStep, World,
};

const PAIR: &str = "us-east-1/us-west-2";
const NAMESPACE: &str = "failoverd";
const LEASE: &str = "failoverd-leader";
const DURATION: Duration = Duration::from_secs(6);
const RENEW: Duration = Duration::from_secs(2);
const SKEW: Duration = Duration::from_secs(1);
/// Virtual time a seed may take before it counts as stuck.
const LIMIT: Duration = Duration::from_secs(4 * 3600);
const TICK: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------------------------
// The links to the API server
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
enum LinkState {
    Up,
    Held,
    Down,
}

#[derive(Default, Debug)]
struct LinkStats {
    /// Requests that arrived after being held, and what they met.
    late_applied: AtomicU64,
    late_refused: AtomicU64,
}

struct Link {
    state: watch::Sender<LinkState>,
    stats: Arc<LinkStats>,
}

impl Link {
    fn new(stats: Arc<LinkStats>) -> Arc<Self> {
        Arc::new(Self {
            state: watch::channel(LinkState::Up).0,
            stats,
        })
    }
    fn set(&self, s: LinkState) {
        self.state.send_replace(s);
    }
}

fn unreachable_error(operation: &str) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        Service::Kubernetes,
        operation,
        "the API server is unreachable (simulated link down)",
    )
}

/// One replica's view of one kind's objects, through its link.
struct Linked {
    inner: Arc<dyn Objects>,
    link: Arc<Link>,
}

type Call<T> =
    Box<dyn FnOnce(Arc<dyn Objects>) -> Pin<Box<dyn Future<Output = PortResult<T>> + Send>> + Send>;

impl Linked {
    /// Sends the request on its own task: once sent it arrives (late, while the link is held)
    /// even if the sender stops waiting or dies.
    async fn send<T: Send + 'static>(
        &self,
        operation: &'static str,
        call: Call<T>,
    ) -> PortResult<T> {
        let mut rx = self.link.state.subscribe();
        let inner = Arc::clone(&self.inner);
        let stats = Arc::clone(&self.link.stats);
        let task = tokio::spawn(async move {
            let mut held = false;
            loop {
                let state = *rx.borrow_and_update();
                match state {
                    LinkState::Up => break,
                    LinkState::Down => return Err(unreachable_error(operation)),
                    LinkState::Held => {
                        held = true;
                        if rx.changed().await.is_err() {
                            return Err(unreachable_error(operation));
                        }
                    }
                }
            }
            let r = call(inner).await;
            if held {
                match &r {
                    Err(e) if e.kind == ErrorKind::Conflict => {
                        stats.late_refused.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {
                        stats.late_applied.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => {}
                }
            }
            r
        });
        task.await
            .unwrap_or_else(|_| Err(unreachable_error(operation)))
    }
}

#[async_trait]
impl Objects for Linked {
    async fn get(&self, name: &str) -> PortResult<Option<Value>> {
        let name = name.to_owned();
        self.send(
            "Get",
            Box::new(move |o| Box::pin(async move { o.get(&name).await })),
        )
        .await
    }
    async fn create(&self, object: &Value) -> PortResult<Value> {
        let object = object.clone();
        self.send(
            "Create",
            Box::new(move |o| Box::pin(async move { o.create(&object).await })),
        )
        .await
    }
    async fn replace(&self, name: &str, object: &Value) -> PortResult<Value> {
        let (name, object) = (name.to_owned(), object.clone());
        self.send(
            "Replace",
            Box::new(move |o| Box::pin(async move { o.replace(&name, &object).await })),
        )
        .await
    }
    async fn delete(&self, name: &str, resource_version: Option<&str>) -> PortResult<bool> {
        let (name, rv) = (name.to_owned(), resource_version.map(str::to_owned));
        self.send(
            "Delete",
            Box::new(move |o| Box::pin(async move { o.delete(&name, rv.as_deref()).await })),
        )
        .await
    }
    async fn list(&self, label_selector: &str) -> PortResult<Vec<Value>> {
        let selector = label_selector.to_owned();
        self.send(
            "List",
            Box::new(move |o| Box::pin(async move { o.list(&selector).await })),
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Steps that notice two replicas acting at once
// ---------------------------------------------------------------------------------------------

/// Which replicas are inside a step's `execute` or `compensate` right now.
#[derive(Default)]
struct Acting {
    inside: Mutex<HashMap<&'static str, u32>>,
    overlaps: Mutex<Vec<String>>,
    /// The replica being killed by the simulation (its steps stop with it).
    killing: Mutex<Option<&'static str>>,
    /// Steps with a side effect stopped before they returned, other than by a kill or their
    /// timeout: stopped because their replica's lease ran out.
    stopped_by_expiry: AtomicU64,
}

struct Inside {
    acting: Arc<Acting>,
    replica: &'static str,
    /// Whether the step may be stopped for a reason of its own (its timeout; an abort's
    /// interruption of a wait).
    may_stop: bool,
    returned: bool,
}

impl Acting {
    fn enter(self: &Arc<Self>, replica: &'static str, what: String, may_stop: bool) -> Inside {
        let mut inside = self.inside.lock().unwrap();
        if let Some((other, _)) = inside.iter().find(|(r, n)| **r != replica && **n > 0) {
            self.overlaps.lock().unwrap().push(format!(
                "{replica} entered {what} while {other} was inside a step"
            ));
        }
        *inside.entry(replica).or_default() += 1;
        Inside {
            acting: Arc::clone(self),
            replica,
            may_stop,
            returned: false,
        }
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        *self
            .acting
            .inside
            .lock()
            .unwrap()
            .entry(self.replica)
            .or_default() -= 1;
        let killed = *self.acting.killing.lock().unwrap() == Some(self.replica);
        if !self.returned && !self.may_stop && !killed {
            self.acting.stopped_by_expiry.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct GuardedStep {
    inner: SimStep,
    replica: &'static str,
    acting: Arc<Acting>,
}

#[async_trait]
impl Step for GuardedStep {
    fn id(&self) -> &StepId {
        self.inner.id()
    }
    fn name(&self) -> &str {
        self.inner.name()
    }
    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        self.inner.describe(ctx).await
    }
    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let spec = &self.inner.spec;
        let may_stop = spec.reversibility == Reversibility::NoSideEffect
            || spec
                .exec_script
                .iter()
                .any(|e| matches!(e, Exec::SlowBefore | Exec::SlowAfter));
        let mut inside =
            self.acting
                .enter(self.replica, format!("execute {}", self.id()), may_stop);
        let r = self.inner.execute(ctx).await;
        inside.returned = true;
        r
    }
    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        self.inner.verify(ctx).await
    }
    fn reversibility(&self) -> Reversibility {
        self.inner.reversibility()
    }
    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        let mut inside =
            self.acting
                .enter(self.replica, format!("compensate {}", self.id()), false);
        let r = self.inner.compensate(ctx).await;
        inside.returned = true;
        r
    }
    fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry_policy()
    }
    fn timeout(&self) -> Duration {
        self.inner.timeout()
    }
}

struct HaCatalog {
    phases: Vec<PhaseSpec>,
    world: Arc<World>,
    replica: &'static str,
    acting: Arc<Acting>,
}

impl PlanCatalog for HaCatalog {
    fn build(&self, name: &str, _mode: Mode, _params: &Value) -> Result<Plan, PlanError> {
        sim_plan(name, &self.phases, |s| {
            Arc::new(GuardedStep {
                inner: SimStep {
                    spec: s.clone(),
                    world: Arc::clone(&self.world),
                },
                replica: self.replica,
                acting: Arc::clone(&self.acting),
            })
        })
    }
    fn names(&self) -> Vec<String> {
        vec!["sim".into()]
    }
}

// ---------------------------------------------------------------------------------------------
// Replicas
// ---------------------------------------------------------------------------------------------

struct Shared {
    cluster: Arc<MemoryCluster>,
    world: Arc<World>,
    acting: Arc<Acting>,
    phases: Vec<PhaseSpec>,
    t0: Instant,
}

struct Replica {
    name: &'static str,
    /// The wall clock's offset from true time, in milliseconds.
    offset_ms: i64,
    link: Arc<Link>,
    runner: Option<Runner>,
    incarnation: u32,
    /// When a killed replica comes back.
    restart_at: Option<Instant>,
}

fn journal_objects(objects: &dyn Fn(&str) -> Arc<dyn Objects>) -> JournalObjects {
    JournalObjects {
        runs: objects("FailoverdRun"),
        states: objects("FailoverdState"),
        keys: objects("FailoverdIdempotencyKey"),
    }
}

impl Replica {
    fn new(name: &'static str, offset_ms: i64, stats: &Arc<LinkStats>) -> Self {
        Self {
            name,
            offset_ms,
            link: Link::new(Arc::clone(stats)),
            runner: None,
            incarnation: 0,
            restart_at: None,
        }
    }

    fn start(&mut self, shared: &Shared) {
        self.incarnation += 1;
        self.link.set(LinkState::Up);
        let objects = |kind: &str| -> Arc<dyn Objects> {
            Arc::new(Linked {
                inner: Arc::new(shared.cluster.objects(kind, NAMESPACE)),
                link: Arc::clone(&self.link),
            })
        };
        let (t0, offset) = (shared.t0, self.offset_ms);
        let base = OffsetDateTime::from_unix_timestamp(1_796_083_200).unwrap();
        let wall: WallClock =
            Arc::new(move || base + (Instant::now() - t0) + time::Duration::milliseconds(offset));
        let leadership = LeaseLeadership::new(
            objects("Lease"),
            LeaseSettings {
                name: LEASE.into(),
                identity: format!("{}-{}", self.name, self.incarnation),
                duration: DURATION,
                renew_interval: RENEW,
                max_clock_skew: SKEW,
                // A killed process does not release; the simulation's kills are crashes.
                release_on_drop: false,
            },
            wall,
        );
        let runner = Runner::spawn(
            RunnerConfig {
                region_pair: PAIR.into(),
                leadership_poll: RENEW,
                ..RunnerConfig::default()
            },
            RunnerDeps {
                store: Arc::new(KubeStore::new(journal_objects(&objects), PAIR)),
                plans: Arc::new(HaCatalog {
                    phases: shared.phases.clone(),
                    world: Arc::clone(&shared.world),
                    replica: self.name,
                    acting: Arc::clone(&shared.acting),
                }),
                leadership: Arc::new(leadership),
                metrics: EngineMetrics::unregistered().unwrap(),
            },
        );
        self.runner = Some(runner);
    }

    fn leads(&self) -> bool {
        self.runner
            .as_ref()
            .is_some_and(|r| *r.handle().leadership().borrow() == Some(true))
    }
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// The leader's link holds requests for this long.
    Hold(Duration),
    /// The leader's link refuses requests for this long.
    Down(Duration),
    /// The leading process dies and comes back after this long.
    Kill(Duration),
}

#[derive(Debug)]
struct HaScenario {
    faults: Vec<(Duration, Fault)>,
    /// When the second replica starts.
    b_starts: Duration,
    offsets_ms: [i64; 2],
}

fn ha_scenario(seed: u64) -> HaScenario {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x4A11_0C8E);
    let window = DURATION - SKEW;
    let span =
        |rng: &mut StdRng| {
            // Shorter than the acting window (the leader survives) or longer (it is deposed).
            if rng.random_bool(0.4) {
                Duration::from_millis(rng.random_range(200..window.as_millis() as u64 - 500))
            } else {
                Duration::from_millis(rng.random_range(
                    DURATION.as_millis() as u64 + 1000..DURATION.as_millis() as u64 * 5,
                ))
            }
        };
    let mut faults = Vec::new();
    let mut at = Duration::ZERO;
    for _ in 0..rng.random_range(1..=3) {
        at += Duration::from_millis(rng.random_range(500..15_000));
        let fault = match rng.random_range(0..3) {
            0 => Fault::Hold(span(&mut rng)),
            1 => Fault::Down(span(&mut rng)),
            _ => Fault::Kill(Duration::from_millis(rng.random_range(0..20_000))),
        };
        faults.push((at, fault));
    }
    let half = SKEW.as_millis() as i64 / 2;
    HaScenario {
        faults,
        b_starts: Duration::from_millis(rng.random_range(0..10_000)),
        offsets_ms: [
            rng.random_range(-half..=half),
            rng.random_range(-half..=half),
        ],
    }
}

// ---------------------------------------------------------------------------------------------
// One seed
// ---------------------------------------------------------------------------------------------

#[derive(Default, Debug)]
struct HaCoverage {
    sims: u64,
    takeovers: u64,
    kills: u64,
    deposed: u64,
    statuses: HashMap<RunStatus, u64>,
    interrupted: u64,
    verified: u64,
    late_refused: u64,
    late_applied: u64,
    stopped_by_expiry: u64,
}

/// The run as stored, read past the links.
async fn stored_status(store: &KubeStore, id: RunId) -> Option<RunStatus> {
    let stored = store.load(id).await.ok()?;
    let events: Vec<_> = stored.events.iter().map(|e| e.event.clone()).collect();
    RunState::replay(Arc::new(stored.record), events.iter())
        .ok()
        .map(|s| s.status)
}

async fn ask<T>(f: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(Duration::from_secs(1), f).await.ok()
}

async fn simulate(seed: u64, sc: &Scenario, ha: &HaScenario, cov: &mut HaCoverage) {
    let ctx = format!("seed {seed} {ha:?}");
    let stats = Arc::new(LinkStats::default());
    let shared = Shared {
        cluster: MemoryCluster::new(),
        world: World::without_crashes(),
        acting: Arc::default(),
        phases: sc.phases.clone(),
        t0: Instant::now(),
    };
    let observer = {
        let cluster = Arc::clone(&shared.cluster);
        KubeStore::new(
            journal_objects(&|kind: &str| -> Arc<dyn Objects> {
                Arc::new(cluster.objects(kind, NAMESPACE))
            }),
            PAIR,
        )
    };
    let mut replicas = [
        Replica::new("a", ha.offsets_ms[0], &stats),
        Replica::new("b", ha.offsets_ms[1], &stats),
    ];
    replicas[0].start(&shared);
    // The run starts on the first leader.
    let id = loop {
        assert!(shared.t0.elapsed() < LIMIT, "{ctx}: a never led");
        if replicas[0].leads() {
            let h = replicas[0].runner.as_ref().unwrap().handle();
            let req = RunRequest {
                plan: "sim".into(),
                reason: format!("seed {seed}"),
                requested_by: "sim".into(),
                ..RunRequest::default()
            };
            match h.start(req).await {
                Ok(v) => break v.id,
                Err(e) => panic!("{ctx}: start failed: {e}"),
            }
        }
        tokio::time::sleep(TICK).await;
    };
    let started = Instant::now();
    let mut faults = ha.faults.clone();
    faults.reverse();
    let mut restore: Vec<(Instant, usize)> = Vec::new();
    let mut led: [bool; 2] = [true, false];
    let final_status = loop {
        let now = Instant::now();
        assert!(
            now - shared.t0 < LIMIT,
            "{ctx}: not finished after {LIMIT:?} (acting: {:?})",
            shared.acting.overlaps.lock().unwrap()
        );
        if replicas[1].runner.is_none()
            && replicas[1].incarnation == 0
            && now - shared.t0 >= ha.b_starts
        {
            replicas[1].start(&shared);
        }
        for r in replicas.iter_mut() {
            if r.restart_at.is_some_and(|at| now >= at) {
                r.restart_at = None;
                r.start(&shared);
            }
        }
        restore.retain(|(at, i)| {
            if now >= *at {
                replicas[*i].link.set(LinkState::Up);
                false
            } else {
                true
            }
        });
        while faults.last().is_some_and(|(at, _)| now - started >= *at) {
            let (_, fault) = faults.pop().unwrap();
            let Some(i) = replicas.iter().position(Replica::leads) else {
                continue;
            };
            match fault {
                Fault::Hold(d) => {
                    replicas[i].link.set(LinkState::Held);
                    restore.push((now + d, i));
                }
                Fault::Down(d) => {
                    replicas[i].link.set(LinkState::Down);
                    restore.push((now + d, i));
                }
                Fault::Kill(after) => {
                    if let Some(runner) = replicas[i].runner.take() {
                        *shared.acting.killing.lock().unwrap() = Some(replicas[i].name);
                        runner.kill().await;
                        *shared.acting.killing.lock().unwrap() = None;
                    }
                    replicas[i].restart_at = Some(now + after);
                    cov.kills += 1;
                }
            }
        }
        for (i, r) in replicas.iter().enumerate() {
            let leads = r.leads();
            if led[i] && !leads && r.runner.is_some() {
                cov.deposed += 1;
            }
            led[i] = leads;
        }

        if let Some(status) = stored_status(&observer, id).await {
            if status.is_terminal() {
                break status;
            }
        }
        // The operator, through whichever replica leads.
        if let Some(h) = replicas
            .iter()
            .find(|r| r.leads())
            .map(|r| r.runner.as_ref().unwrap().handle())
        {
            if let Some(Ok(v)) = ask(h.get(id)).await {
                let abort_due = sc.abort_after.is_some_and(|a| started.elapsed() >= a);
                if v.abort_requested_by.is_none()
                    && v.status != RunStatus::Unwinding
                    && !v.status.is_terminal()
                    && (abort_due || (v.status == RunStatus::WaitingApproval && sc.abort_at_gate))
                {
                    let _ = ask(h.abort(id, "sim-operator")).await;
                } else if v.status == RunStatus::WaitingApproval {
                    let _ = ask(h.approve(id, "sim-operator")).await;
                }
            }
        }
        tokio::time::sleep(TICK).await;
    };
    for r in replicas.iter_mut() {
        if let Some(runner) = r.runner.take() {
            *shared.acting.killing.lock().unwrap() = Some(r.name);
            runner.kill().await;
        }
        r.link.set(LinkState::Up);
    }
    // Requests still in flight arrive now; the journal must be unharmed by them.
    tokio::time::sleep(DURATION).await;

    let overlaps = shared.acting.overlaps.lock().unwrap().clone();
    assert!(overlaps.is_empty(), "{ctx}: {overlaps:?}");
    let status = check_invariants(&ctx, sc, &shared.world, &observer, None, id).await;
    assert_eq!(
        status, final_status,
        "{ctx}: the journal changed after the run finished"
    );
    let lease = shared
        .cluster
        .peek("Lease", NAMESPACE, LEASE)
        .expect("the Lease");
    cov.takeovers += lease
        .pointer("/spec/leaseTransitions")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let journal = observer.load(id).await.unwrap().events;
    let count = |f: &dyn Fn(&failoverd::engine::EventKind) -> bool| {
        journal.iter().filter(|e| f(&e.event.kind)).count() as u64
    };
    cov.interrupted +=
        count(&|k| matches!(k, failoverd::engine::EventKind::StepInterrupted { .. }));
    cov.verified += count(&|k| {
        matches!(
            k,
            failoverd::engine::EventKind::StepSucceeded { verified: true, .. }
        )
    });
    cov.late_refused += stats.late_refused.load(Ordering::SeqCst);
    cov.late_applied += stats.late_applied.load(Ordering::SeqCst);
    cov.stopped_by_expiry += shared.acting.stopped_by_expiry.load(Ordering::SeqCst);
    cov.sims += 1;
    *cov.statuses.entry(status).or_default() += 1;
}

/// Two replicas over the Kubernetes store and Lease, with cuts, kills and skewed clocks.
#[tokio::test(start_paused = true)]
async fn two_replicas_with_cuts_kills_and_skew() {
    let mut cov = HaCoverage::default();
    let stats = {
        let mut all = Vec::new();
        let seeds: u64 = std::env::var("HA_SIM_SEEDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600);
        for seed in 0..seeds {
            let sc = scenario(seed, false);
            let ha = ha_scenario(seed);
            let before = Instant::now();
            simulate(seed, &sc, &ha, &mut cov).await;
            all.push(before.elapsed());
        }
        all
    };
    eprintln!(
        "{cov:?}; virtual time per seed up to {:?}",
        stats.iter().max()
    );
    assert!(
        cov.takeovers > 20 && cov.kills > 10 && cov.deposed > 10,
        "{cov:?}"
    );
    assert!(cov.interrupted > 0 && cov.verified > 0, "{cov:?}");
    assert!(cov.late_refused > 0 && cov.late_applied > 0, "{cov:?}");
    assert!(
        cov.stopped_by_expiry > 0,
        "no lease ran out during a step: {cov:?}"
    );
    for s in [RunStatus::Succeeded, RunStatus::Failed, RunStatus::Aborted] {
        assert!(
            cov.statuses.get(&s).copied().unwrap_or(0) > 0,
            "no run ended {s:?}: {cov:?}"
        );
    }
}
