//! Prometheus metrics of the health monitor.
//!
//! Label values come from the configuration (region and probe names, validated unique), plus a
//! fixed `result` vocabulary (`success`, `failure`, `inconclusive`), so cardinality is bounded by
//! the number of configured probes. Each probe keeps its own children so the hot path (one check
//! per probe per interval, a thousand probes in the benchmark) does no label hashing.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use super::verdict::{CheckResult, Health, ProbeState};

/// Probe durations range from sub-millisecond (a refused loopback connect) to the probe timeout
/// (seconds; a hung endpoint lands in the bucket of its timeout).
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The metric families, registered once per monitor.
#[derive(Clone)]
pub struct HealthMetrics {
    probe_up: IntGaugeVec,
    probe_duration: HistogramVec,
    probe_checks: IntCounterVec,
    region_health: IntGaugeVec,
}

impl HealthMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let probe_up = IntGaugeVec::new(
            Opts::new(
                "failoverd_probe_up",
                "1 while the probe counts as up, 0 while it counts as down (after the hysteresis \
                 of health.unhealthy_after / health.healthy_after); absent until it has a state.",
            ),
            &["region", "probe"],
        )?;
        let probe_duration = HistogramVec::new(
            HistogramOpts::new(
                "failoverd_probe_duration_seconds",
                "Duration of each probe check, including checks that failed or timed out.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["region", "probe"],
        )?;
        let probe_checks = IntCounterVec::new(
            Opts::new(
                "failoverd_probe_checks_total",
                "Probe checks by result (success, failure, inconclusive).",
            ),
            &["region", "probe", "result"],
        )?;
        let region_health = IntGaugeVec::new(
            Opts::new(
                "failoverd_region_health",
                "Health verdict of the region: 0 unhealthy, 1 degraded, 2 healthy; absent while \
                 unknown.",
            ),
            &["region"],
        )?;
        registry.register(Box::new(probe_up.clone()))?;
        registry.register(Box::new(probe_duration.clone()))?;
        registry.register(Box::new(probe_checks.clone()))?;
        registry.register(Box::new(region_health.clone()))?;
        Ok(Self {
            probe_up,
            probe_duration,
            probe_checks,
            region_health,
        })
    }

    /// The children of one probe, created up front so its series exist from the start.
    pub fn probe(&self, region: &str, probe: &str) -> ProbeMetrics {
        let labels = [region, probe];
        ProbeMetrics {
            region: region.to_owned(),
            probe: probe.to_owned(),
            up: self.probe_up.clone(),
            duration: self.probe_duration.with_label_values(&labels),
            success: self
                .probe_checks
                .with_label_values(&[region, probe, "success"]),
            failure: self
                .probe_checks
                .with_label_values(&[region, probe, "failure"]),
            inconclusive: self
                .probe_checks
                .with_label_values(&[region, probe, "inconclusive"]),
            up_child: None,
        }
    }

    /// Exports a region's health; unknown removes the sample.
    pub fn set_region_health(&self, region: &str, health: Health) {
        match health.gauge_value() {
            Some(value) => self.region_health.with_label_values(&[region]).set(value),
            None => {
                // Absent already is fine: removing a missing series is not an error here.
                let _ = self.region_health.remove_label_values(&[region]);
            }
        }
    }
}

/// The metric children of one probe.
pub struct ProbeMetrics {
    region: String,
    probe: String,
    up: IntGaugeVec,
    /// Created on the first state, so a pending probe exports no `probe_up` sample.
    up_child: Option<IntGauge>,
    duration: Histogram,
    success: IntCounter,
    failure: IntCounter,
    inconclusive: IntCounter,
}

impl ProbeMetrics {
    pub fn record(&mut self, result: &CheckResult, seconds: f64, state: ProbeState) {
        self.duration.observe(seconds);
        match result {
            CheckResult::Success => self.success.inc(),
            CheckResult::Failure(_) => self.failure.inc(),
            CheckResult::Inconclusive(_) => self.inconclusive.inc(),
        }
        let value = match state {
            ProbeState::Pending => return,
            ProbeState::Up => 1,
            ProbeState::Down => 0,
        };
        let gauge = self.up_child.get_or_insert_with(|| {
            self.up
                .with_label_values(&[self.region.as_str(), self.probe.as_str()])
        });
        gauge.set(value);
    }
}
