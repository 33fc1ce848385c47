//! The policy loop end to end on paused time: verdicts in, runs started through a fake engine,
//! decisions counted and visible in the status view.
//!
//! The pure decision is tested exhaustively in `src/policy.rs`; these tests check the driver: it
//! re-evaluates on verdict changes and on its tick, starts a run exactly once, respects the run,
//! the cooldown and its acknowledgement, backs off after a failed start, and stops.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use failoverd::config::{Duration as ConfigDuration, PolicyConfig, PolicyMode, ProbeKind};
use failoverd::health::verdict::DownProbe;
use failoverd::health::{Health, HealthVerdicts, RegionVerdict};
use failoverd::policy::{PolicyHandle, PolicyLoop, Reason, RunStartError, RunStarter};
use prometheus::Registry;
use time::OffsetDateTime;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

const HOT: &str = "us-east-1";
const COLD: &str = "us-west-2";

/// A fake engine: records starts, reports a run active after each start until the test ends it,
/// and refuses the next `refuse` starts.
#[derive(Default)]
struct Engine {
    starts: Mutex<Vec<(String, bool, String)>>,
    /// The `detected_at` of each start.
    detected: Mutex<Vec<Option<OffsetDateTime>>>,
    active: AtomicBool,
    refuse: AtomicUsize,
}

#[async_trait]
impl RunStarter for Engine {
    async fn start_failover(
        &self,
        plan: &str,
        approval_required: bool,
        _accept_data_loss: bool,
        reason: &str,
        detected_at: Option<OffsetDateTime>,
    ) -> Result<String, RunStartError> {
        if self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(RunStartError::Refused("not the leader".into()));
        }
        self.detected.lock().unwrap().push(detected_at);
        let mut starts = self.starts.lock().unwrap();
        starts.push((plan.to_owned(), approval_required, reason.to_owned()));
        self.active.store(true, Ordering::SeqCst);
        Ok(format!("run-{}", starts.len()))
    }

    fn active_run(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }
}

impl Engine {
    fn starts(&self) -> Vec<(String, bool, String)> {
        self.starts.lock().unwrap().clone()
    }
}

fn verdict(region: &str, health: Health, since: Instant) -> RegionVerdict {
    let down = match health {
        Health::Unhealthy => vec![
            DownProbe {
                name: format!("{region}-api"),
                kind: ProbeKind::Http,
                since,
                last_error: Some("request failed: connection refused".into()),
            },
            DownProbe {
                name: format!("{region}-route53"),
                kind: ProbeKind::Route53HealthCheck,
                since,
                last_error: Some("0 of 8 Route 53 checkers report healthy".into()),
            },
        ],
        _ => Vec::new(),
    };
    RegionVerdict {
        region: region.into(),
        health,
        since,
        down,
        pending: Vec::new(),
        probes_total: 3,
        probes_up: 1,
        explanation: format!("{health} (test)"),
    }
}

fn verdicts(hot: Health, cold: Health, since: Instant) -> HealthVerdicts {
    HealthVerdicts {
        regions: [
            (HOT.to_owned(), verdict(HOT, hot, since)),
            (COLD.to_owned(), verdict(COLD, cold, since)),
        ]
        .into(),
    }
}

fn config(mode: PolicyMode) -> PolicyConfig {
    PolicyConfig {
        mode,
        plan: "dns-switchover".into(),
        min_unhealthy_for: ConfigDuration::from_secs(120),
        cooldown: ConfigDuration::from_secs(3600),
        max_data_loss: ConfigDuration::from_secs(60),
        data_loss_bound: Default::default(),
    }
}

struct Fixture {
    engine: Arc<Engine>,
    verdicts: watch::Sender<HealthVerdicts>,
    handle: PolicyHandle,
    registry: Registry,
    stop: Option<oneshot::Sender<()>>,
}

impl Fixture {
    /// The loop in `mode` with both regions healthy and a known, small replication lag.
    fn start(mode: PolicyMode) -> Self {
        let engine = Arc::new(Engine::default());
        let (verdicts, rx) =
            watch::channel(verdicts(Health::Healthy, Health::Healthy, Instant::now()));
        let registry = Registry::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = PolicyLoop::spawn_until(
            &config(mode),
            HOT,
            COLD,
            rx,
            engine.clone(),
            &registry,
            async move {
                let _ = stopped.await;
            },
        )
        .expect("start the policy loop");
        handle.set_replication_lag(Some(Duration::from_secs(1)));
        Self {
            engine,
            verdicts,
            handle,
            registry,
            stop: Some(stop),
        }
    }

    fn hot_unhealthy_now(&self) {
        self.verdicts
            .send_replace(verdicts(Health::Unhealthy, Health::Healthy, Instant::now()));
    }

    fn reason(&self) -> Option<Reason> {
        self.handle.last_decision().map(|d| d.reason)
    }

    fn count(&self, decision: &str, reason: &str) -> u64 {
        let text = failoverd::telemetry::render(&self.registry).expect("render");
        let needle =
            format!("failoverd_auto_failover_decisions_total{{decision=\"{decision}\",reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .map(|v| v.trim().parse().expect("a count"))
            .unwrap_or(0)
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), self.handle.stopped())
            .await
            .expect("the loop stops");
    }
}

async fn sleep(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}

#[tokio::test(start_paused = true)]
async fn automatic_mode_starts_once_after_min_unhealthy_for_then_respects_run_and_cooldown() {
    let f = Fixture::start(PolicyMode::Automatic);
    sleep(5).await;
    assert_eq!(f.reason(), Some(Reason::HotRegionHealthy));

    f.hot_unhealthy_now();
    sleep(119).await;
    assert_eq!(f.reason(), Some(Reason::UnhealthyTooBriefly));
    assert!(f.engine.starts().is_empty());

    sleep(2).await;
    let starts = f.engine.starts();
    assert_eq!(starts.len(), 1, "{starts:?}");
    let (plan, approval_required, reason) = &starts[0];
    assert_eq!(plan, "dns-switchover");
    assert!(!approval_required);
    assert!(reason.contains("us-east-1 unhealthy for 2m"), "{reason}");
    assert!(reason.contains("connection refused"), "{reason}");
    // The run carries when the outage was detected (the verdict turned unhealthy, 121 s of
    // paused time ago), not when the run started: its RTO is measured from there.
    let detected = f.engine.detected.lock().unwrap()[0].expect("detected_at is set");
    let ago = OffsetDateTime::now_utc() - detected;
    assert!(ago >= time::Duration::seconds(120), "detected {ago} ago");
    assert_eq!(f.count("start", "hot_region_unhealthy"), 1);
    let status = f.handle.status();
    assert_eq!(
        status.last_start.as_ref().map(|s| s.run_id.as_str()),
        Some("run-1")
    );
    assert!(status.last_failover_at.is_some());
    assert!(status.cooldown_until.is_some());

    // While the run is active, and after it, nothing else starts (run, then cooldown).
    sleep(60).await;
    assert_eq!(f.reason(), Some(Reason::RunActive));
    f.engine.active.store(false, Ordering::SeqCst);
    sleep(600).await;
    assert_eq!(f.reason(), Some(Reason::Cooldown));
    assert_eq!(f.engine.starts().len(), 1);
    // Counted once per change, not once per tick.
    assert_eq!(f.count("hold", "run_active"), 1);
    assert_eq!(f.count("hold", "cooldown"), 1);

    // An operator acknowledges the cooldown; the region is still unhealthy, so it starts again.
    assert!(f.handle.acknowledge("alice"));
    sleep(2).await;
    assert_eq!(f.engine.starts().len(), 2);
    assert_eq!(f.count("start", "hot_region_unhealthy"), 2);
    f.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_cooldown_also_ends_by_itself() {
    let f = Fixture::start(PolicyMode::Automatic);
    f.hot_unhealthy_now();
    sleep(121).await;
    assert_eq!(f.engine.starts().len(), 1);
    f.engine.active.store(false, Ordering::SeqCst);
    sleep(3600 - 10).await;
    assert_eq!(f.reason(), Some(Reason::Cooldown));
    assert_eq!(f.engine.starts().len(), 1);
    sleep(20).await;
    assert_eq!(f.engine.starts().len(), 2);
    f.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn approval_required_creates_the_run_waiting_for_approval() {
    let f = Fixture::start(PolicyMode::ApprovalRequired);
    f.hot_unhealthy_now();
    sleep(125).await;
    let starts = f.engine.starts();
    assert_eq!(starts.len(), 1);
    assert!(starts[0].1, "approval_required");
    assert_eq!(f.count("request_approval", "hot_region_unhealthy"), 1);
    assert!(f
        .handle
        .status()
        .last_start
        .is_some_and(|s| s.approval_required));
    f.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn mode_off_never_starts_and_says_it_would_have() {
    let f = Fixture::start(PolicyMode::Off);
    f.hot_unhealthy_now();
    sleep(3 * 3600).await;
    assert!(f.engine.starts().is_empty());
    assert_eq!(f.reason(), Some(Reason::PolicyOff));
    assert_eq!(f.count("hold", "policy_off"), 1);
    f.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn unknown_or_excessive_lag_and_drift_refuse_with_their_reason() {
    let f = Fixture::start(PolicyMode::Automatic);
    // Drift holds; the lag unknown on top of it changes nothing.
    f.handle
        .set_drift(Some("Aurora writer is in us-west-2".into()));
    f.handle.set_replication_lag(None);
    f.hot_unhealthy_now();
    sleep(300).await;
    assert_eq!(f.reason(), Some(Reason::TopologyDrift));
    let status = f.handle.status();
    let decision = status.last_decision.expect("a decision");
    assert_eq!(decision.decision, "hold");
    assert!(
        decision.blockers.contains(&Reason::ReplicationLagUnknown),
        "{decision:?}"
    );
    assert!(f.engine.starts().is_empty());

    f.handle.set_replication_lag(Some(Duration::from_secs(90)));
    sleep(2).await;
    assert_eq!(f.reason(), Some(Reason::TopologyDrift));
    assert_eq!(f.handle.status().replication_lag_seconds, Some(90.0));

    f.handle.set_replication_lag(Some(Duration::from_secs(5)));
    sleep(2).await;
    assert_eq!(f.reason(), Some(Reason::TopologyDrift));
    assert!(f.engine.starts().is_empty());

    let json = serde_json::to_value(f.handle.status()).expect("serialize");
    assert_eq!(json["last_decision"]["reason"], "topology_drift");
    assert_eq!(json["drift"], "Aurora writer is in us-west-2");
    assert_eq!(json["mode"], "automatic");

    f.handle.set_drift(None);
    sleep(2).await;
    assert_eq!(f.engine.starts().len(), 1);
    f.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_unbounded_data_loss_is_escalated_to_a_person() {
    let f = Fixture::start(PolicyMode::Automatic);
    f.handle.set_replication_lag(None);
    f.hot_unhealthy_now();
    sleep(300).await;
    // Automatic mode, but the data loss cannot be bounded: the run waits for a person.
    let starts = f.engine.starts();
    assert_eq!(starts.len(), 1, "{starts:?}");
    let (_, approval_required, reason) = &starts[0];
    assert!(*approval_required);
    assert!(
        reason.contains("approving this run accepts the data loss"),
        "{reason}"
    );
    assert_eq!(f.reason(), Some(Reason::RunActive));
    assert_eq!(f.count("request_approval", "replication_lag_unknown"), 1);
    f.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_sick_cold_region_is_not_a_destination() {
    let f = Fixture::start(PolicyMode::Automatic);
    f.verdicts.send_replace(verdicts(
        Health::Unhealthy,
        Health::Degraded,
        Instant::now(),
    ));
    sleep(600).await;
    assert_eq!(f.reason(), Some(Reason::ColdRegionNotHealthy));
    assert!(f.engine.starts().is_empty());
    f.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_flapping_hot_region_is_never_failed_over() {
    let f = Fixture::start(PolicyMode::Automatic);
    for _ in 0..20 {
        f.hot_unhealthy_now();
        sleep(100).await;
        f.verdicts
            .send_replace(verdicts(Health::Degraded, Health::Healthy, Instant::now()));
        sleep(30).await;
    }
    assert!(f.engine.starts().is_empty());
    assert_eq!(f.count("hold", "unhealthy_too_briefly"), 20);
    f.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_start_is_counted_and_retried_after_the_backoff() {
    let f = Fixture::start(PolicyMode::Automatic);
    f.engine.refuse.store(1, Ordering::SeqCst);
    f.hot_unhealthy_now();
    sleep(125).await;
    assert!(f.engine.starts().is_empty());
    assert_eq!(f.count("failed", "start_failed"), 1);
    assert_eq!(f.reason(), Some(Reason::StartBackoff));
    let failure = f.handle.status().last_start_failure.expect("a failure");
    assert!(
        failure.error.contains("not the leader"),
        "{}",
        failure.error
    );
    sleep(31).await;
    assert_eq!(f.engine.starts().len(), 1);
    f.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn after_a_switchover_the_other_region_is_hot() {
    let f = Fixture::start(PolicyMode::Automatic);
    // us-east-1 is down but is now the standby: nothing to do.
    f.handle.set_regions(COLD, HOT);
    f.hot_unhealthy_now();
    sleep(600).await;
    assert_eq!(f.reason(), Some(Reason::HotRegionHealthy));
    assert_eq!(f.handle.status().active_region, COLD);
    assert!(f.engine.starts().is_empty());
    f.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_loop_stops_with_the_monitor() {
    let f = Fixture::start(PolicyMode::Automatic);
    sleep(2).await;
    // Keep the stop trigger alive: the loop must stop because the verdicts end, not because of it.
    let Fixture {
        verdicts,
        handle,
        stop,
        ..
    } = f;
    drop(verdicts);
    tokio::time::timeout(Duration::from_secs(10), handle.stopped())
        .await
        .expect("the loop stops when the verdict channel closes");
    drop(stop);
}

#[tokio::test(start_paused = true)]
async fn the_loop_stops_on_the_daemon_stop_signal() {
    let engine = Arc::new(Engine::default());
    let (_verdicts, rx) =
        watch::channel(verdicts(Health::Unhealthy, Health::Healthy, Instant::now()));
    let (trigger, signal) = failoverd::shutdown::stop_channel();
    let handle = PolicyLoop::spawn(
        &config(PolicyMode::Automatic),
        HOT,
        COLD,
        rx,
        engine.clone(),
        &Registry::new(),
        signal,
    )
    .expect("start the policy loop");
    handle.set_replication_lag(Some(Duration::from_secs(1)));
    sleep(10).await;
    assert_eq!(
        handle.last_decision().map(|d| d.reason),
        Some(Reason::UnhealthyTooBriefly)
    );
    trigger.stop();
    tokio::time::timeout(Duration::from_secs(10), handle.stopped())
        .await
        .expect("the loop stops");
    // Stopped before min_unhealthy_for elapsed: it never starts anything afterwards.
    sleep(600).await;
    assert!(engine.starts().is_empty());
}
