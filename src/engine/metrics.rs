//! Prometheus metrics of the engine. Labels come from a fixed vocabulary: `plan` and `step` are plan
//! and step ids defined in code, `outcome` is one of `succeeded|failed|aborted|needs_operator`.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Step durations range from sub-second checks to Aurora switchovers and DNS TTL waits of tens of
/// minutes.
const STEP_DURATION_BUCKETS: &[f64] = &[
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// The engine's metrics, registered once and cloned into the runner.
#[derive(Clone)]
pub struct EngineMetrics {
    /// `failoverd_runs_total{plan,outcome}`: runs that finished.
    pub runs_total: IntCounterVec,
    /// `failoverd_run_step_duration_seconds{plan,step}`: from a step's first start to its success.
    pub step_duration: HistogramVec,
    /// `failoverd_run_active{plan}`: runs being driven now (0 or 1 per region pair).
    pub run_active: IntGaugeVec,
    /// `failoverd_leader`: 1 while this process holds leadership.
    pub leader: IntGauge,
    /// `failoverd_step_retries_total{plan,step}`: attempts that failed retryably and were
    /// scheduled again (an API erroring, throttling or timing out under a step).
    pub step_retries: IntCounterVec,
    /// `failoverd_steps_retrying`: steps of live runs waiting to try again now.
    pub steps_retrying: IntGauge,
}

impl EngineMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let runs_total = IntCounterVec::new(
            Opts::new(
                "failoverd_runs_total",
                "Runs finished, by plan and outcome.",
            ),
            &["plan", "outcome"],
        )?;
        let step_duration = HistogramVec::new(
            HistogramOpts::new(
                "failoverd_run_step_duration_seconds",
                "Duration of successful run steps, from first start to success.",
            )
            .buckets(STEP_DURATION_BUCKETS.to_vec()),
            &["plan", "step"],
        )?;
        let run_active = IntGaugeVec::new(
            Opts::new(
                "failoverd_run_active",
                "Runs currently being driven, by plan.",
            ),
            &["plan"],
        )?;
        let leader = IntGauge::new(
            "failoverd_leader",
            "1 while this failoverd holds leadership and may drive runs.",
        )?;
        registry.register(Box::new(runs_total.clone()))?;
        registry.register(Box::new(step_duration.clone()))?;
        registry.register(Box::new(run_active.clone()))?;
        let step_retries = IntCounterVec::new(
            Opts::new(
                "failoverd_step_retries_total",
                "Step attempts that failed with a retryable error and were scheduled again, by plan and step.",
            ),
            &["plan", "step"],
        )?;
        let steps_retrying = IntGauge::new(
            "failoverd_steps_retrying",
            "Steps of live runs waiting to try again after a retryable error.",
        )?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(step_retries.clone()))?;
        registry.register(Box::new(steps_retrying.clone()))?;
        Ok(Self {
            runs_total,
            step_duration,
            run_active,
            leader,
            step_retries,
            steps_retrying,
        })
    }

    /// Metrics registered into a private registry (tests, benchmarks).
    pub fn unregistered() -> Result<Self, prometheus::Error> {
        Self::register(&Registry::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_with_fixed_names() {
        let r = Registry::new();
        let m = EngineMetrics::register(&r).unwrap();
        m.runs_total
            .with_label_values(&["selftest", "succeeded"])
            .inc();
        m.step_duration
            .with_label_values(&["selftest", "step-1"])
            .observe(0.2);
        m.run_active.with_label_values(&["selftest"]).set(1);
        m.leader.set(1);
        let names: Vec<_> = r.gather().iter().map(|f| f.name().to_owned()).collect();
        for n in [
            "failoverd_runs_total",
            "failoverd_run_step_duration_seconds",
            "failoverd_run_active",
            "failoverd_leader",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} missing in {names:?}");
        }
        assert!(EngineMetrics::register(&r).is_err(), "double registration");
    }
}
