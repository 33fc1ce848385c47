//! Prometheus metrics of the engine. Labels come from a fixed vocabulary: `plan` and `step` are plan
//! and step ids defined in code, `outcome` is one of `succeeded|failed|aborted|needs_operator`.
//!
//! `failoverd_runs_total` is created at zero for every plan and outcome when the plans are known
//! ([`EngineMetrics::declare_plans`]): a counter that first appears at 1 has no earlier sample,
//! so `increase()` in an alert would miss the first failed run of a process.

use std::time::Duration;

use prometheus::{
    Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use super::event::Outcome;

/// Every run outcome, in the order of [`Outcome`]'s variants.
const OUTCOMES: [Outcome; 4] = [
    Outcome::Succeeded,
    Outcome::Failed,
    Outcome::Aborted,
    Outcome::NeedsOperator,
];

/// Fails to compile when [`Outcome`] gains a variant that [`OUTCOMES`] does not list.
const _: fn(Outcome) = |o| match o {
    Outcome::Succeeded | Outcome::Failed | Outcome::Aborted | Outcome::NeedsOperator => {}
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
    /// `failoverd_leader_lease_duration_seconds`: how long a lost holder's leadership may stay
    /// unclaimed before another instance takes it (see [`EngineMetrics::set_lease_duration`]).
    pub lease_duration: Gauge,
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
        let lease_duration = Gauge::new(
            "failoverd_leader_lease_duration_seconds",
            "How long leadership lost with its holder stays unclaimed at most before another \
             failoverd takes it: state.kubernetes.lease_duration on a Lease, the leadership poll \
             interval on the state directory's lock file.",
        )?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(step_retries.clone()))?;
        registry.register(Box::new(steps_retrying.clone()))?;
        registry.register(Box::new(lease_duration.clone()))?;
        Ok(Self {
            runs_total,
            step_duration,
            run_active,
            leader,
            step_retries,
            steps_retrying,
            lease_duration,
        })
    }

    /// Creates `failoverd_runs_total{plan,outcome}` at zero for every plan and outcome, so the
    /// first run that ends is an increase Prometheus can see.
    pub fn declare_plans<S: AsRef<str>>(&self, plans: &[S]) {
        for plan in plans {
            for outcome in OUTCOMES {
                self.runs_total
                    .with_label_values(&[plan.as_ref(), outcome.as_str()]);
            }
        }
    }

    /// Exports the leadership's lease: on a Kubernetes Lease its `lease_duration` (a lost holder's
    /// Lease is taken over once it has gone unrenewed that long); on the lock file, which the
    /// kernel releases as soon as its holder dies, the interval at which followers try to lock it.
    pub fn set_lease_duration(&self, lease: Duration) {
        self.lease_duration.set(lease.as_secs_f64());
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

    fn counter_samples(r: &Registry, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        let mut out: Vec<_> = r
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| f.get_metric().to_vec())
            .map(|m| {
                let labels: Vec<(String, String)> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_owned(), l.value().to_owned()))
                    .collect();
                (labels, m.get_counter().value())
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn declared_plans_have_every_outcome_at_zero() {
        let r = Registry::new();
        let m = EngineMetrics::register(&r).unwrap();
        assert!(counter_samples(&r, "failoverd_runs_total").is_empty());
        m.declare_plans(&["failover", "selftest"]);
        let samples = counter_samples(&r, "failoverd_runs_total");
        assert_eq!(samples.len(), 8, "{samples:?}");
        assert!(samples.iter().all(|(_, v)| *v == 0.0), "{samples:?}");
        for outcome in ["succeeded", "failed", "aborted", "needs_operator"] {
            for plan in ["failover", "selftest"] {
                let wanted = vec![
                    ("outcome".to_owned(), outcome.to_owned()),
                    ("plan".to_owned(), plan.to_owned()),
                ];
                assert!(
                    samples.iter().any(|(l, _)| *l == wanted),
                    "{plan}/{outcome} missing: {samples:?}"
                );
            }
        }
        // Declaring again keeps what was counted.
        m.runs_total
            .with_label_values(&["failover", "failed"])
            .inc();
        m.declare_plans(&["failover"]);
        assert_eq!(
            m.runs_total
                .with_label_values(&["failover", "failed"])
                .get(),
            1
        );
    }

    #[test]
    fn lease_duration_is_exported_in_seconds() {
        let r = Registry::new();
        let m = EngineMetrics::register(&r).unwrap();
        m.set_lease_duration(Duration::from_millis(15_500));
        let value = r
            .gather()
            .iter()
            .find(|f| f.name() == "failoverd_leader_lease_duration_seconds")
            .map(|f| f.get_metric()[0].get_gauge().value());
        assert_eq!(value, Some(15.5));
    }
}
