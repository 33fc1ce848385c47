//! Continuous readiness: "would a failover work right now?" as a metric, not a hope.
//!
//! Every `evaluation.interval` the `failover` plan is built towards the standby region, in each
//! mode, exactly as a run would build it, and the steps of its preflight phase are executed —
//! they are read-only by construction ([`super::preflight`]) — concurrently, each within its
//! timeout and without retries. The answers are exported as `failoverd_plan_ready{plan,mode}`
//! (1/0) and shown in `/v1/status` (`readiness`: each check, its last result and since when it
//! holds). `failoverd run failover --dry-run` asks the same questions through the engine.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus::{IntGaugeVec, Opts, Registry};
use serde::Serialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::takeover::PREFLIGHT_PHASE;
use super::PlanRegistry;
use crate::engine::{Mode, PlanCatalog, RunId, Step, StepContext};
use crate::shutdown::StopSignal;
use crate::topology::ActiveRegion;

/// The plan whose readiness is evaluated.
pub const PLAN: &str = super::failover::NAME;

/// The longest one check may take in an evaluation (a blackholed API must not hold it up).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// One check's last answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckState {
    pub id: String,
    pub name: String,
    /// `pass`, `warning`, `skipped` or `fail`.
    pub result: &'static str,
    pub message: String,
    /// Since when this check has given this result.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

/// One mode's readiness.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModeReadiness {
    pub ready: bool,
    /// Since when `ready` has held.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    pub target_region: String,
    #[serde(with = "time::serde::rfc3339")]
    pub evaluated_at: OffsetDateTime,
    pub checks: Vec<CheckState>,
    /// The failing checks, in words.
    pub failing: Vec<String>,
}

/// `/v1/status` `readiness`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReadinessSnapshot {
    pub plan: String,
    pub interval_seconds: f64,
    /// By mode (`graceful`, `ungraceful`); empty until the first evaluation.
    pub modes: BTreeMap<String, ModeReadiness>,
    /// Why nothing could be evaluated (the plan is not configured).
    pub error: Option<String>,
}

/// Read access to the evaluations. Cheap to clone.
#[derive(Clone)]
pub struct ReadinessHandle {
    state: Arc<RwLock<ReadinessSnapshot>>,
}

impl ReadinessHandle {
    pub fn snapshot(&self) -> ReadinessSnapshot {
        self.state
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// The evaluation loop.
pub struct ReadinessMonitor {
    plans: Arc<PlanRegistry>,
    active: ActiveRegion,
    interval: Duration,
    gauge: IntGaugeVec,
    handle: ReadinessHandle,
}

impl ReadinessMonitor {
    pub fn new(
        plans: Arc<PlanRegistry>,
        active: ActiveRegion,
        interval: Duration,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "failoverd_plan_ready",
                "1 when every preflight check of the plan towards the standby region passes now, \
                 0 when one fails (evaluated every evaluation.interval).",
            ),
            &["plan", "mode"],
        )?;
        registry.register(Box::new(gauge.clone()))?;
        Ok(Self {
            plans,
            active,
            interval,
            gauge,
            handle: ReadinessHandle {
                state: Arc::new(RwLock::new(ReadinessSnapshot {
                    plan: PLAN.to_owned(),
                    interval_seconds: interval.as_secs_f64(),
                    ..ReadinessSnapshot::default()
                })),
            },
        })
    }

    pub fn handle(&self) -> ReadinessHandle {
        self.handle.clone()
    }

    /// Evaluates now and every interval until `stop` fires.
    pub async fn run(self, mut stop: StopSignal) {
        let mut ticker = tokio::time::interval(self.interval.max(Duration::from_secs(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.stopped() => return,
                _ = ticker.tick() => {}
            }
            tokio::select! {
                biased;
                () = stop.stopped() => return,
                () = self.evaluate() => {}
            }
        }
    }

    /// One evaluation of both modes.
    pub async fn evaluate(&self) {
        if self.plans.info(PLAN).is_none() {
            // Nothing to be ready for: no gauge (an alert on "not ready" would be noise).
            let mut state = self.handle.state.write().unwrap_or_else(|p| p.into_inner());
            state.error = Some(format!(
                "the {PLAN} plan is not configured here (it needs the dns section)"
            ));
            return;
        }
        let (_, standby) = self.active.get();
        for mode in [Mode::Graceful, Mode::Ungraceful] {
            let result = self.evaluate_mode(mode, &standby).await;
            let mut state = self.handle.state.write().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(mut now) => {
                    state.error = None;
                    if let Some(previous) = state.modes.get(mode.as_str()) {
                        carry_since(previous, &mut now);
                    }
                    self.gauge
                        .with_label_values(&[PLAN, mode.as_str()])
                        .set(i64::from(now.ready));
                    state.modes.insert(mode.as_str().to_owned(), now);
                }
                Err(e) => {
                    state.error = Some(e);
                    state.modes.remove(mode.as_str());
                    self.gauge.with_label_values(&[PLAN, mode.as_str()]).set(0);
                }
            }
        }
    }

    async fn evaluate_mode(&self, mode: Mode, target: &str) -> Result<ModeReadiness, String> {
        let params = json!({ super::params::TARGET_REGION: target });
        let plan = self
            .plans
            .build(PLAN, mode, &params)
            .map_err(|e| format!("the {PLAN} plan cannot be built: {e}"))?;
        let steps: Vec<Arc<dyn Step>> = plan
            .phases()
            .iter()
            .find(|p| p.name == PREFLIGHT_PHASE)
            .map(|p| p.steps.clone())
            .unwrap_or_default();
        let ctx = StepContext {
            run_id: RunId::new(),
            plan: Arc::from(PLAN),
            mode,
            drill: false,
            params: Arc::new(params),
            attempt: 1,
            run_started_at: None,
            outputs: Arc::new(BTreeMap::new()),
            abort: Default::default(),
        };
        let now = OffsetDateTime::now_utc();
        let answers = futures::future::join_all(steps.iter().map(|s| {
            let ctx = ctx.clone();
            async move {
                let limit = s.timeout().min(CHECK_TIMEOUT);
                let answer = match tokio::time::timeout(limit, s.execute(&ctx)).await {
                    Ok(Ok(out)) => Ok(out),
                    Ok(Err(e)) => Err(e.message),
                    Err(_) => Err(format!("no answer within {limit:?}")),
                };
                (s.id().to_string(), s.name().to_owned(), answer)
            }
        }))
        .await;
        let checks: Vec<CheckState> = answers
            .into_iter()
            .map(|(id, name, answer)| {
                let (result, message) = classify(&answer);
                CheckState {
                    id,
                    name,
                    result,
                    message,
                    since: now,
                }
            })
            .collect();
        let failing: Vec<String> = checks
            .iter()
            .filter(|c| c.result == "fail")
            .map(|c| format!("{}: {}", c.id, c.message))
            .collect();
        Ok(ModeReadiness {
            ready: failing.is_empty(),
            since: now,
            target_region: target.to_owned(),
            evaluated_at: now,
            checks,
            failing,
        })
    }
}

/// The result word and sentence of one preflight step's answer.
pub fn classify(answer: &Result<Value, String>) -> (&'static str, String) {
    match answer {
        Err(e) => ("fail", e.clone()),
        Ok(out) if out.get("skipped").and_then(Value::as_bool) == Some(true) => (
            "skipped",
            out.get("skipped_reason")
                .and_then(Value::as_str)
                .unwrap_or("not applicable")
                .to_owned(),
        ),
        Ok(out) => match out.get("warning").and_then(Value::as_str) {
            Some(w) => ("warning", w.to_owned()),
            None => (
                "pass",
                out.get("summary")
                    .and_then(Value::as_str)
                    .unwrap_or("ok")
                    .to_owned(),
            ),
        },
    }
}

/// Keeps the `since` of every check (and of the verdict) whose result did not change.
fn carry_since(previous: &ModeReadiness, now: &mut ModeReadiness) {
    if previous.ready == now.ready && previous.target_region == now.target_region {
        now.since = previous.since;
    }
    for check in &mut now.checks {
        if let Some(p) = previous.checks.iter().find(|p| p.id == check.id) {
            if p.result == check.result {
                check.since = p.since;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_like_the_report_reads_them() {
        assert_eq!(classify(&Err("no".into())), ("fail", "no".to_owned()));
        assert_eq!(
            classify(&Ok(json!({"skipped": true, "skipped_reason": "nothing"}))).0,
            "skipped"
        );
        assert_eq!(
            classify(&Ok(json!({"check": "warning", "warning": "old copy"}))),
            ("warning", "old copy".to_owned())
        );
        assert_eq!(
            classify(&Ok(json!({"check": "pass", "summary": "fine"}))),
            ("pass", "fine".to_owned())
        );
    }

    #[tokio::test]
    async fn without_the_plan_there_is_no_gauge_and_status_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let record = crate::topology::ActiveRegionRecord::open(
            dir.path(),
            crate::topology::RegionPair::new("a-1", "b-1"),
        )
        .unwrap();
        let registry = Registry::new();
        let monitor = ReadinessMonitor::new(
            Arc::new(PlanRegistry::builtin(dir.path())),
            record.view(),
            Duration::from_secs(300),
            &registry,
        )
        .unwrap();
        monitor.evaluate().await;
        let snapshot = monitor.handle().snapshot();
        assert!(snapshot.modes.is_empty());
        assert!(
            snapshot
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("not configured"),
            "{snapshot:?}"
        );
        assert!(registry
            .gather()
            .iter()
            .all(|f| f.name() != "failoverd_plan_ready" || f.get_metric().is_empty()));
    }

    #[test]
    fn since_is_kept_while_a_result_holds() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let t1 = t0 + time::Duration::minutes(5);
        let check = |result, since| CheckState {
            id: "c".into(),
            name: "c".into(),
            result,
            message: String::new(),
            since,
        };
        let readiness = |ready, checks, since| ModeReadiness {
            ready,
            since,
            target_region: "b".into(),
            evaluated_at: since,
            checks,
            failing: Vec::new(),
        };
        let before = readiness(false, vec![check("fail", t0)], t0);
        let mut same = readiness(false, vec![check("fail", t1)], t1);
        carry_since(&before, &mut same);
        assert_eq!(same.since, t0);
        assert_eq!(same.checks[0].since, t0);
        let mut changed = readiness(true, vec![check("pass", t1)], t1);
        carry_since(&before, &mut changed);
        assert_eq!(changed.since, t1);
        assert_eq!(changed.checks[0].since, t1);
    }
}
