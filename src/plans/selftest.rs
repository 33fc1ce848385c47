//! The built-in `selftest` plan: steps that only wait and record, so the engine (journal, crash
//! recovery, approvals, aborts, drills, metrics) can be exercised and drilled without touching AWS.
//!
//! Each step's side effect is one line `"<run_id> <step>"` appended to
//! `<state_dir>/selftest-effects.log`, and its `verify` looks for that line, so a step left in doubt
//! by a `kill -9` is resolved correctly and an end-to-end test can count executions. Compensation
//! appends `"<run_id> <step> compensated"`.
//!
//! Parameters: `steps` (1..=100, default 3), `step_seconds` (0..=3600, default 1), `fail_at`
//! (1..=steps: that step fails non-retryably, so the run unwinds) and `approval` (wait for an
//! approval before the first step).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::{params, PlanInfo, PlanRegistry};
use crate::engine::{
    Mode, Phase, Plan, PlanError, RetryPolicy, Reversibility, RunId, Step, StepContext,
    StepDescription, StepError, StepId, VerifyOutcome,
};

pub const NAME: &str = "selftest";
pub const EFFECTS_FILE: &str = "selftest-effects.log";

/// The parameters `selftest` accepts.
pub const PARAMETERS: &[&str] = &["steps", "step_seconds", "fail_at", "approval"];

/// What `selftest` is, for `GET /v1/plans`.
pub fn info() -> PlanInfo {
    PlanInfo::new(
        NAME,
        "exercise the engine without touching AWS: steps that wait and record their effect in \
         the state directory",
        PARAMETERS,
    )
}

/// Validated parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct SelftestParams {
    pub steps: u32,
    pub step_seconds: f64,
    pub fail_at: Option<u32>,
    pub approval: bool,
}

impl SelftestParams {
    pub fn parse(params: &Value) -> Result<Self, PlanError> {
        let obj = params::object(params, PARAMETERS)?;
        let steps = params::uint(obj, "steps", 1, 100)?.unwrap_or(3) as u32;
        let step_seconds = params::number(obj, "step_seconds", 0.0, 3600.0)?.unwrap_or(1.0);
        let fail_at = params::uint(obj, "fail_at", 1, u64::from(steps))
            .map_err(|_| {
                params::bad(
                    "fail_at",
                    format!("must be a step number from 1 to {steps}"),
                )
            })?
            .map(|n| n as u32);
        let approval = params::boolean(obj, "approval")?.unwrap_or(false);
        Ok(Self {
            steps,
            step_seconds,
            fail_at,
            approval,
        })
    }
}

/// Register `selftest`, recording effects in `effects`.
pub fn register(registry: &mut PlanRegistry, effects: PathBuf) {
    let effects = Arc::new(effects);
    registry.register(info(), move |mode, params| {
        build(mode, params, Arc::clone(&effects))
    });
}

/// Build the plan: one phase per step (so steps run in order), optionally behind a gate.
pub fn build(_mode: Mode, params: &Value, effects: Arc<PathBuf>) -> Result<Plan, PlanError> {
    let p = SelftestParams::parse(params)?;
    let mut phases = Vec::new();
    for i in 1..=p.steps {
        let step: Arc<dyn Step> = Arc::new(SelftestStep {
            id: StepId::new(format!("selftest-{i}")),
            name: format!("selftest step {i}"),
            seconds: p.step_seconds,
            fail: p.fail_at == Some(i),
            last: i == p.steps,
            effects: Arc::clone(&effects),
        });
        let phase = Phase::steps(format!("phase-{i}"), vec![step]);
        phases.push(if i == 1 && p.approval {
            phase.with_approval("approve the selftest run to start its steps")
        } else {
            phase
        });
    }
    Plan::new(NAME, phases)
}

/// One selftest step: wait, then record a line.
pub struct SelftestStep {
    id: StepId,
    name: String,
    seconds: f64,
    fail: bool,
    last: bool,
    effects: Arc<PathBuf>,
}

impl SelftestStep {
    fn line(&self, run: RunId) -> String {
        format!("{run} {}", self.id)
    }

    async fn append_line(&self, line: String) -> Result<(), StepError> {
        let path = Arc::clone(&self.effects);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path.as_path())?;
            f.write_all(format!("{line}\n").as_bytes())?;
            f.sync_all()
        })
        .await
        .map_err(|e| StepError::retryable(format!("effects writer failed: {e}")))?
        .map_err(|e| StepError::retryable(format!("writing {}: {e}", self.effects.display())))
    }

    async fn has_line(&self, line: String) -> Result<bool, StepError> {
        let path = Arc::clone(&self.effects);
        tokio::task::spawn_blocking(move || match std::fs::read_to_string(path.as_path()) {
            Ok(s) => Ok(s.lines().any(|l| l == line)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        })
        .await
        .map_err(|e| StepError::retryable(format!("effects reader failed: {e}")))?
        .map_err(|e| StepError::retryable(format!("reading {}: {e}", self.effects.display())))
    }

    fn output(&self, ctx: &StepContext) -> Value {
        let mut out = json!({ "waited_seconds": self.seconds });
        if self.last && ctx.drill {
            if let Some(started) = ctx.run_started_at {
                let rto = (time::OffsetDateTime::now_utc() - started).as_seconds_f64();
                out["measurements"] = json!({ "rto_seconds": rto.max(0.0) });
            }
        }
        out
    }
}

#[async_trait]
impl Step for SelftestStep {
    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn describe(&self, ctx: &StepContext) -> Result<StepDescription, StepError> {
        Ok(StepDescription {
            summary: format!("wait {}s, then record that {} ran", self.seconds, self.id),
            changes: vec![format!(
                "append {:?} to {}",
                self.line(ctx.run_id),
                self.effects.display()
            )],
        })
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        tokio::time::sleep(Duration::from_secs_f64(self.seconds)).await;
        if self.fail {
            return Err(StepError::permanent(format!(
                "injected failure at {} (params.fail_at)",
                self.id
            )));
        }
        // Idempotent: record the effect only once even if executed again.
        let line = self.line(ctx.run_id);
        if !self.has_line(line.clone()).await? {
            self.append_line(line).await?;
        }
        Ok(self.output(ctx))
    }

    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        Ok(if self.has_line(self.line(ctx.run_id)).await? {
            VerifyOutcome::Done(self.output(ctx))
        } else {
            VerifyOutcome::NotDone
        })
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::Compensable
    }

    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        let line = format!("{} compensated", self.line(ctx.run_id));
        if !self.has_line(line.clone()).await? {
            self.append_line(line).await?;
        }
        Ok(())
    }

    fn operator_check(&self) -> String {
        format!(
            "check {} for the line of step {}",
            self.effects.display(),
            self.id
        )
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            deadline: None,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.seconds + 30.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: PlanError) -> String {
        match e {
            PlanError::BadParams { field, .. } => field,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let p = SelftestParams::parse(&Value::Null).unwrap();
        assert_eq!(
            p,
            SelftestParams {
                steps: 3,
                step_seconds: 1.0,
                fail_at: None,
                approval: false
            }
        );
    }

    #[test]
    fn bad_params_name_the_field() {
        let cases = [
            (json!({"steps": 0}), "params.steps"),
            (json!({"steps": 101}), "params.steps"),
            (json!({"steps": "3"}), "params.steps"),
            (json!({"step_seconds": -1}), "params.step_seconds"),
            (json!({"step_seconds": 3601}), "params.step_seconds"),
            (json!({"steps": 2, "fail_at": 3}), "params.fail_at"),
            (json!({"fail_at": 0}), "params.fail_at"),
            (json!({"approval": "yes"}), "params.approval"),
            (json!({"stepz": 2}), "params.stepz"),
            (json!([1]), "params"),
        ];
        for (params, field) in cases {
            let e = SelftestParams::parse(&params).unwrap_err();
            assert_eq!(field_of(e), field, "{params}");
        }
    }

    #[test]
    fn plan_shape() {
        let plan = build(
            Mode::Graceful,
            &json!({"steps": 4, "approval": true}),
            Arc::new(PathBuf::from("/nonexistent")),
        )
        .unwrap();
        let layout = plan.layout();
        assert_eq!(layout.phases.len(), 4);
        assert!(layout.phases[0].approval.is_some());
        assert!(layout.phases[1].approval.is_none());
        assert_eq!(layout.phases[3].steps[0].id.as_str(), "selftest-4");
    }
}
