//! The health monitor: runs every probe on its own schedule and keeps each region's verdict.
//!
//! One task per probe. Each task waits for its next tick, runs one check (bounded by the probe's
//! timeout, which validation keeps within its interval), and records the result: the probe's
//! hysteresis state and its region's verdict are updated under a short lock, metrics are updated,
//! and a changed verdict is published on a `watch` channel (the policy listens there). Because no
//! task ever waits on another, a hung endpoint costs its own probe one timeout per round and never
//! delays another probe's round. Probe starts are spread over the first interval so a thousand
//! probes do not fire in the same millisecond.
//!
//! The monitor never fails once started: a check that cannot reach its target or its AWS API is a
//! failed check with the error kept as evidence. A probe task that panics (a bug) is logged,
//! recorded as a failed check, and restarted one interval later. It stops when the stop signal
//! fires; [`HealthHandle::stopped`] resolves once every probe task has ended.
//!
//! [`HealthHandle`] is what the rest of the daemon uses: [`HealthHandle::snapshot`] for
//! `/v1/status`, [`HealthHandle::verdicts`] for the policy.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus::Registry;
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use super::metrics::{HealthMetrics, ProbeMetrics};
use super::probe::{HealthPorts, ProbeFactory, ProbeRunner, ProbeSpec, ProbeSpecError};
use super::verdict::{
    region_verdict, CheckResult, Health, Hysteresis, ProbeHealth, ProbeState, ProbeView,
    QuorumRule, RegionVerdict, Vantage,
};
use crate::config::{HealthConfig, ProbeKind};
use crate::shutdown::StopSignal;

/// Why the monitor could not start.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error(transparent)]
    Probe(#[from] ProbeSpecError),
    #[error("probe name {0:?} is used twice")]
    DuplicateProbe(String),
    #[error("health metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("the health monitor must be started inside a Tokio runtime")]
    NoRuntime,
}

/// Every region's current verdict, as published on the watch channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealthVerdicts {
    pub regions: BTreeMap<String, RegionVerdict>,
}

impl HealthVerdicts {
    pub fn region(&self, region: &str) -> Option<&RegionVerdict> {
        self.regions.get(region)
    }
}

/// Starts health monitors.
pub struct HealthMonitor;

impl HealthMonitor {
    /// Starts one task per probe of `config`, reading AWS through `ports`, exporting metrics into
    /// `registry`, until `stop` fires. Must be called inside a Tokio runtime. The regions known to
    /// the monitor are those that have probes; each starts `unknown`.
    pub fn spawn(
        config: &HealthConfig,
        ports: HealthPorts,
        registry: &Registry,
        stop: StopSignal,
    ) -> Result<HealthHandle, MonitorError> {
        let mut stop = stop;
        Self::spawn_until(config, ports, registry, async move { stop.stopped().await })
    }

    /// Like [`HealthMonitor::spawn`], stopping when `shutdown` resolves (for tools and tests that
    /// run the monitor on its own).
    pub fn spawn_until(
        config: &HealthConfig,
        ports: HealthPorts,
        registry: &Registry,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<HealthHandle, MonitorError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| MonitorError::NoRuntime)?;
        let factory = ProbeFactory::new(ports)?;
        let metrics = HealthMetrics::register(registry)?;
        let hysteresis = Hysteresis::from_config(config);
        let rule = QuorumRule::from_config(config);
        let now = Instant::now();

        let mut runners = Vec::with_capacity(config.probes.len());
        let mut probes = Vec::with_capacity(config.probes.len());
        let mut regions: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut names = std::collections::BTreeSet::new();
        for (index, probe_config) in config.probes.iter().enumerate() {
            if !names.insert(probe_config.name.clone()) {
                return Err(MonitorError::DuplicateProbe(probe_config.name.clone()));
            }
            let spec = ProbeSpec::from_config(probe_config)?;
            probes.push(ProbeSlot {
                name: spec.name.clone(),
                region: spec.region.clone(),
                kind: spec.kind,
                interval: spec.interval,
                timeout: spec.timeout,
                health: ProbeHealth::new(now),
                last_duration: None,
                metrics: metrics.probe(&spec.region, &spec.name),
            });
            regions.entry(spec.region.clone()).or_default().push(index);
            runners.push(Arc::new(factory.runner(spec)?));
        }
        let mut state = MonitorState {
            probes,
            regions: BTreeMap::new(),
        };
        let mut initial = HealthVerdicts::default();
        for (region, indices) in regions {
            let verdict = state.compute(&region, &indices, rule, None, now);
            initial.regions.insert(region.clone(), verdict.clone());
            state
                .regions
                .insert(region, RegionSlot { indices, verdict });
        }
        let (verdicts_tx, verdicts_rx) = watch::channel(initial);
        let (stopped_tx, stopped_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            verdicts: verdicts_tx,
            metrics,
            hysteresis,
            rule,
        });

        let (stop_tx, stop_rx) = watch::channel(false);
        let total = runners.len();
        let mut tasks = JoinSet::new();
        let mut task_probe = HashMap::new();
        for (index, runner) in runners.iter().enumerate() {
            // Spread the first checks over one interval: probe i of n starts i/n into it.
            let phase = runner.spec().interval.mul_f64(index as f64 / total as f64);
            let handle = tasks.spawn_on(
                probe_loop(
                    runner.clone(),
                    index,
                    shared.clone(),
                    phase,
                    stop_rx.clone(),
                ),
                &runtime,
            );
            task_probe.insert(handle.id(), index);
        }
        runtime.spawn(supervise(Supervisor {
            tasks,
            task_probe,
            runners,
            shared: shared.clone(),
            stop_tx,
            stop_rx,
            stopped_tx,
            shutdown: Box::pin(shutdown),
        }));
        tracing::info!(
            probes = total,
            unhealthy_after = hysteresis.unhealthy_after,
            healthy_after = hysteresis.healthy_after,
            min_failing = rule.min_failing,
            min_vantage_points = rule.min_vantage_points,
            "health monitor started"
        );
        Ok(HealthHandle {
            shared,
            verdicts: verdicts_rx,
            stopped: stopped_rx,
        })
    }
}

/// The monitor's cloneable handle.
#[derive(Clone)]
pub struct HealthHandle {
    shared: Arc<Shared>,
    verdicts: watch::Receiver<HealthVerdicts>,
    stopped: watch::Receiver<bool>,
}

impl HealthHandle {
    /// A receiver of the region verdicts; it sees a change when a region's health, its `since`,
    /// or the set of down or pending probes changes (not when only an error text does).
    pub fn verdicts(&self) -> watch::Receiver<HealthVerdicts> {
        self.verdicts.clone()
    }

    /// The current verdicts (with the latest evidence).
    pub fn current(&self) -> HealthVerdicts {
        self.verdicts.borrow().clone()
    }

    /// A serializable view of every region and probe, for `/v1/status`.
    pub fn snapshot(&self) -> HealthSnapshot {
        let now = Instant::now();
        let wall = OffsetDateTime::now_utc();
        let state = self.shared.lock();
        let regions = state
            .regions
            .iter()
            .map(|(name, slot)| (name.clone(), RegionStatus::new(&slot.verdict, now, wall)))
            .collect();
        let probes = state
            .probes
            .iter()
            .map(|p| ProbeStatus::new(p, now, wall))
            .collect();
        HealthSnapshot { regions, probes }
    }

    /// Resolves once the monitor has stopped and every probe task has ended.
    pub async fn stopped(&self) {
        let mut stopped = self.stopped.clone();
        // An error means the supervisor is gone, which also means stopped.
        let _ = stopped.wait_for(|s| *s).await;
    }
}

/// What `/v1/status` shows about health.
#[derive(Clone, Debug, Serialize)]
pub struct HealthSnapshot {
    pub regions: BTreeMap<String, RegionStatus>,
    pub probes: Vec<ProbeStatus>,
}

/// One region's verdict in the status view.
#[derive(Clone, Debug, Serialize)]
pub struct RegionStatus {
    pub health: Health,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Seconds in the current health.
    pub for_seconds: f64,
    pub explanation: String,
    pub probes_total: usize,
    pub probes_up: usize,
    pub down: Vec<DownProbeStatus>,
    pub pending: Vec<String>,
}

/// A down probe cited as evidence.
#[derive(Clone, Debug, Serialize)]
pub struct DownProbeStatus {
    pub probe: String,
    pub kind: ProbeKind,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    pub last_error: Option<String>,
}

impl RegionStatus {
    fn new(verdict: &RegionVerdict, now: Instant, wall: OffsetDateTime) -> Self {
        Self {
            health: verdict.health,
            since: to_wall(verdict.since, now, wall),
            for_seconds: verdict.held_for(now).as_secs_f64(),
            explanation: verdict.explanation.clone(),
            probes_total: verdict.probes_total,
            probes_up: verdict.probes_up,
            down: verdict
                .down
                .iter()
                .map(|d| DownProbeStatus {
                    probe: d.name.clone(),
                    kind: d.kind,
                    since: to_wall(d.since, now, wall),
                    last_error: d.last_error.clone(),
                })
                .collect(),
            pending: verdict.pending.clone(),
        }
    }
}

/// One probe in the status view.
#[derive(Clone, Debug, Serialize)]
pub struct ProbeStatus {
    pub name: String,
    pub region: String,
    pub kind: ProbeKind,
    pub vantage: Vantage,
    pub state: ProbeState,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// `success`, `failure` or `inconclusive`; absent before the first check.
    pub last_result: Option<&'static str>,
    /// The most recent failure (kept after recovery), or why the last check was inconclusive.
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_checked: Option<OffsetDateTime>,
    pub last_duration_seconds: Option<f64>,
    pub checks: u64,
    pub interval_seconds: f64,
    pub timeout_seconds: f64,
}

impl ProbeStatus {
    fn new(slot: &ProbeSlot, now: Instant, wall: OffsetDateTime) -> Self {
        let h = &slot.health;
        let last_error = match &h.last_result {
            Some(CheckResult::Inconclusive(why)) => Some(why.clone()),
            _ => h.last_error.clone(),
        };
        Self {
            name: slot.name.clone(),
            region: slot.region.clone(),
            kind: slot.kind,
            vantage: Vantage::of(slot.kind),
            state: h.state,
            since: to_wall(h.since, now, wall),
            consecutive_failures: h.consecutive_failures,
            consecutive_successes: h.consecutive_successes,
            last_result: h.last_result.as_ref().map(CheckResult::label),
            last_error,
            last_checked: h.last_checked.map(|t| to_wall(t, now, wall)),
            last_duration_seconds: slot.last_duration.map(|d| d.as_secs_f64()),
            checks: h.checks,
            interval_seconds: slot.interval.as_secs_f64(),
            timeout_seconds: slot.timeout.as_secs_f64(),
        }
    }
}

/// The wall-clock time of monotonic instant `t`, given the two clocks read together.
fn to_wall(t: Instant, now: Instant, wall: OffsetDateTime) -> OffsetDateTime {
    let ago = now.saturating_duration_since(t);
    time::Duration::try_from(ago)
        .ok()
        .and_then(|ago| wall.checked_sub(ago))
        .unwrap_or(wall)
}

struct Shared {
    state: Mutex<MonitorState>,
    verdicts: watch::Sender<HealthVerdicts>,
    metrics: HealthMetrics,
    hysteresis: Hysteresis,
    rule: QuorumRule,
}

struct MonitorState {
    probes: Vec<ProbeSlot>,
    regions: BTreeMap<String, RegionSlot>,
}

struct ProbeSlot {
    name: String,
    region: String,
    kind: ProbeKind,
    interval: Duration,
    timeout: Duration,
    health: ProbeHealth,
    last_duration: Option<Duration>,
    metrics: ProbeMetrics,
}

struct RegionSlot {
    indices: Vec<usize>,
    verdict: RegionVerdict,
}

impl MonitorState {
    fn compute(
        &self,
        region: &str,
        indices: &[usize],
        rule: QuorumRule,
        previous: Option<&RegionVerdict>,
        now: Instant,
    ) -> RegionVerdict {
        let views: Vec<ProbeView<'_>> = indices
            .iter()
            .filter_map(|&i| self.probes.get(i))
            .map(|p| ProbeView {
                name: &p.name,
                kind: p.kind,
                health: &p.health,
            })
            .collect();
        region_verdict(region, &views, rule, previous, now)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, MonitorState> {
        // Every update under this lock is a few field assignments; a panic in one leaves a usable
        // state, so keep serving it.
        match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Records one check of probe `index` that took `duration` and ended at `now`.
    fn record(&self, index: usize, result: CheckResult, duration: Duration, now: Instant) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(slot) = state.probes.get_mut(index) else {
            return;
        };
        let before = slot.health.state;
        slot.health = slot.health.observe(&result, now, self.hysteresis);
        slot.last_duration = Some(duration);
        let after = slot.health.state;
        slot.metrics.record(&result, duration.as_secs_f64(), after);
        if before != after {
            let error = slot.health.last_error.as_deref().unwrap_or("");
            if after == ProbeState::Down {
                tracing::warn!(probe = %slot.name, region = %slot.region, from = before.as_str(), to = after.as_str(), error, "probe is down");
            } else {
                tracing::info!(probe = %slot.name, region = %slot.region, from = before.as_str(), to = after.as_str(), "probe state changed");
            }
        }
        // The verdict depends on states, and on the error texts of down probes (evidence).
        if before == after && after != ProbeState::Down {
            return;
        }
        let region = slot.region.clone();
        let Some(region_slot) = state.regions.get(&region) else {
            return;
        };
        let verdict = state.compute(
            &region,
            &region_slot.indices,
            self.rule,
            Some(&region_slot.verdict),
            now,
        );
        let previous_health = region_slot.verdict.health;
        let changed = !verdict.same_verdict(&region_slot.verdict);
        if verdict.health != previous_health {
            self.metrics.set_region_health(&region, verdict.health);
            let down: Vec<&str> = verdict.down.iter().map(|d| d.name.as_str()).collect();
            match verdict.health {
                Health::Unhealthy | Health::Degraded => tracing::warn!(
                    region = %region,
                    from = previous_health.as_str(),
                    to = verdict.health.as_str(),
                    down = ?down,
                    explanation = %verdict.explanation,
                    "region health changed"
                ),
                Health::Healthy | Health::Unknown => tracing::info!(
                    region = %region,
                    from = previous_health.as_str(),
                    to = verdict.health.as_str(),
                    explanation = %verdict.explanation,
                    "region health changed"
                ),
            }
        }
        self.verdicts.send_if_modified(|all| {
            all.regions.insert(region.clone(), verdict.clone());
            changed
        });
        if let Some(region_slot) = state.regions.get_mut(&region) {
            region_slot.verdict = verdict;
        }
    }
}

/// The life of one probe: wait for the tick, check, record; until stopped.
async fn probe_loop(
    runner: Arc<ProbeRunner>,
    index: usize,
    shared: Arc<Shared>,
    phase: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let interval = runner.spec().interval;
    let mut ticker = tokio::time::interval_at(Instant::now() + phase, interval);
    // A late round (an overloaded host) shifts the schedule instead of bursting to catch up.
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            _ = ticker.tick() => {}
        }
        let started = Instant::now();
        let result = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return,
            result = runner.check() => result,
        };
        let ended = Instant::now();
        shared.record(
            index,
            result,
            ended.saturating_duration_since(started),
            ended,
        );
    }
}

struct Supervisor {
    tasks: JoinSet<()>,
    task_probe: HashMap<tokio::task::Id, usize>,
    runners: Vec<Arc<ProbeRunner>>,
    shared: Arc<Shared>,
    stop_tx: watch::Sender<bool>,
    stop_rx: watch::Receiver<bool>,
    stopped_tx: watch::Sender<bool>,
    shutdown: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Waits for the shutdown, restarting probe tasks that panic meanwhile; then stops the probe
/// tasks and waits for them.
async fn supervise(mut s: Supervisor) {
    loop {
        tokio::select! {
            biased;
            () = &mut s.shutdown => break,
            Some(joined) = s.tasks.join_next_with_id() => {
                let (id, failure) = match joined {
                    Ok((id, ())) => (id, None),
                    Err(e) => (e.id(), Some(e.to_string())),
                };
                let Some(index) = s.task_probe.remove(&id) else { continue };
                let Some(runner) = s.runners.get(index).cloned() else { continue };
                let reason = failure.unwrap_or_else(|| "probe task ended unexpectedly".to_owned());
                tracing::error!(probe = %runner.spec().name, error = %reason, "probe task failed; restarting it after one interval");
                s.shared.record(
                    index,
                    CheckResult::Failure(format!("probe task failed: {reason}")),
                    Duration::ZERO,
                    Instant::now(),
                );
                let interval = runner.spec().interval;
                let handle = s.tasks.spawn(probe_loop(runner, index, s.shared.clone(), interval, s.stop_rx.clone()));
                s.task_probe.insert(handle.id(), index);
            }
        }
    }
    let _ = s.stop_tx.send(true);
    // Probe tasks return as soon as they see the stop (their checks are cancelled), so this is
    // quick; the daemon bounds it with its shutdown grace anyway.
    while s.tasks.join_next().await.is_some() {}
    tracing::info!("health monitor stopped");
    let _ = s.stopped_tx.send(true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProbeConfig;
    use crate::health::port::{AlarmObservation, AlarmState, AlarmStateApi};
    use crate::port;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// An alarm API whose state the test sets, and that counts its calls.
    struct ScriptedAlarm {
        firing: AtomicBool,
        hang: AtomicBool,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl AlarmStateApi for ScriptedAlarm {
        async fn alarm_state(&self, name: &str) -> port::Result<AlarmObservation> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.hang.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            Ok(AlarmObservation {
                name: name.to_owned(),
                state: if self.firing.load(Ordering::SeqCst) {
                    AlarmState::Alarm
                } else {
                    AlarmState::Ok
                },
                reason: None,
                updated_at: None,
            })
        }
    }

    fn alarm_probe(name: &str, region: &str, interval: u64) -> ProbeConfig {
        ProbeConfig {
            name: name.into(),
            region: region.into(),
            kind: ProbeKind::CloudwatchAlarm,
            interval: crate::config::Duration::from_secs(interval),
            timeout: crate::config::Duration::from_secs(1),
            url: None,
            method: None,
            expect_status: None,
            body_contains: None,
            tls_verify: None,
            address: None,
            hostname: None,
            expect_address: None,
            health_check_id: None,
            min_healthy_fraction: None,
            alarm_name: Some(name.into()),
        }
    }

    fn scripted() -> Arc<ScriptedAlarm> {
        Arc::new(ScriptedAlarm {
            firing: AtomicBool::new(false),
            hang: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn hysteresis_and_verdicts_follow_the_checks_on_paused_time() {
        let api = scripted();
        let config = HealthConfig {
            unhealthy_after: 3,
            healthy_after: 2,
            min_failing: 1,
            require_distinct_kinds: false,
            probes: vec![alarm_probe("alarm", "us-east-1", 10)],
        };
        let ports = HealthPorts {
            route53: None,
            alarms: BTreeMap::from([("us-east-1".to_owned(), api.clone() as _)]),
        };
        let registry = Registry::new();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = HealthMonitor::spawn_until(&config, ports, &registry, async move {
            let _ = stop_rx.await;
        })
        .unwrap();
        let mut verdicts = handle.verdicts();
        assert_eq!(
            verdicts.borrow().region("us-east-1").unwrap().health,
            Health::Unknown
        );
        // Checks at t = 0, 10, ...: healthy after the second.
        verdicts.changed().await.unwrap();
        assert_eq!(
            verdicts
                .borrow_and_update()
                .region("us-east-1")
                .unwrap()
                .health,
            Health::Healthy
        );
        assert_eq!(api.calls.load(Ordering::SeqCst), 2);
        api.firing.store(true, Ordering::SeqCst);
        verdicts.changed().await.unwrap();
        let v = verdicts
            .borrow_and_update()
            .region("us-east-1")
            .unwrap()
            .clone();
        assert_eq!(v.health, Health::Unhealthy);
        assert_eq!(
            api.calls.load(Ordering::SeqCst),
            5,
            "down after exactly 3 failed checks"
        );
        assert_eq!(
            v.down[0].last_error.as_deref(),
            Some("alarm alarm is in ALARM")
        );

        let snapshot = handle.snapshot();
        assert_eq!(snapshot.probes[0].state, ProbeState::Down);
        assert_eq!(snapshot.probes[0].consecutive_failures, 3);
        assert_eq!(snapshot.regions["us-east-1"].health, Health::Unhealthy);
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(json["regions"]["us-east-1"]["health"], "unhealthy");
        assert_eq!(json["probes"][0]["last_result"], "failure");

        let text = crate::telemetry::render(&registry).unwrap();
        assert!(
            text.contains("failoverd_region_health{region=\"us-east-1\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("failoverd_probe_up{probe=\"alarm\",region=\"us-east-1\"} 0"),
            "{text}"
        );
        assert!(text.contains(
            "failoverd_probe_checks_total{probe=\"alarm\",region=\"us-east-1\",result=\"failure\"} 3"
        ));

        stop_tx.send(()).unwrap();
        handle.stopped().await;
        let calls = api.calls.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(
            api.calls.load(Ordering::SeqCst),
            calls,
            "no check after stop"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_probe_does_not_delay_the_others() {
        let hung = scripted();
        hung.hang.store(true, Ordering::SeqCst);
        let fine = scripted();
        let mut slow = alarm_probe("hung", "us-east-1", 2);
        slow.timeout = crate::config::Duration::from_secs(2);
        let config = HealthConfig {
            probes: vec![slow, alarm_probe("fine", "us-west-2", 1)],
            ..HealthConfig::default()
        };
        let ports = HealthPorts {
            route53: None,
            alarms: BTreeMap::from([
                ("us-east-1".to_owned(), hung.clone() as _),
                ("us-west-2".to_owned(), fine.clone() as _),
            ]),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = HealthMonitor::spawn_until(&config, ports, &Registry::new(), async move {
            let _ = stop_rx.await;
        })
        .unwrap();
        tokio::time::sleep(Duration::from_millis(30_500)).await;
        // The fine probe (1 s interval, starting at 0.5 s) ran every round: 0.5, 1.5, ... 29.5 s.
        assert_eq!(fine.calls.load(Ordering::SeqCst), 30);
        let snapshot = handle.snapshot();
        let hung_status = snapshot.probes.iter().find(|p| p.name == "hung").unwrap();
        // The hung one timed out every round (at 2, 4, ... 30 s) and is down.
        assert_eq!(hung_status.checks, 15);
        assert_eq!(hung_status.state, ProbeState::Down);
        assert_eq!(
            hung_status.last_error.as_deref(),
            Some("no answer within 2s")
        );
        assert_eq!(hung_status.last_duration_seconds, Some(2.0));
        stop_tx.send(()).unwrap();
        handle.stopped().await;
    }

    #[tokio::test(start_paused = true)]
    async fn stops_on_the_daemon_stop_signal() {
        let api = scripted();
        let config = HealthConfig {
            probes: vec![alarm_probe("alarm", "us-east-1", 10)],
            ..HealthConfig::default()
        };
        let ports = HealthPorts {
            route53: None,
            alarms: BTreeMap::from([("us-east-1".to_owned(), api.clone() as _)]),
        };
        let (trigger, signal) = crate::shutdown::stop_channel();
        let handle = HealthMonitor::spawn(&config, ports, &Registry::new(), signal).unwrap();
        tokio::time::sleep(Duration::from_secs(25)).await;
        assert_eq!(
            api.calls.load(Ordering::SeqCst),
            3,
            "checks at 0, 10 and 20 s"
        );
        trigger.stop();
        handle.stopped().await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(api.calls.load(Ordering::SeqCst), 3, "no check after stop");
    }

    #[test]
    fn spawning_outside_a_runtime_is_an_error() {
        let err = HealthMonitor::spawn_until(
            &HealthConfig::default(),
            HealthPorts::default(),
            &Registry::new(),
            async {},
        )
        .err()
        .unwrap();
        assert!(matches!(err, MonitorError::NoRuntime));
    }

    #[tokio::test]
    async fn a_probe_without_its_port_is_refused_at_start() {
        let config = HealthConfig {
            probes: vec![alarm_probe("alarm", "us-east-1", 10)],
            ..HealthConfig::default()
        };
        let err =
            HealthMonitor::spawn_until(&config, HealthPorts::default(), &Registry::new(), async {})
                .err()
                .unwrap();
        assert!(matches!(err, MonitorError::Probe(_)), "{err}");
    }
}
