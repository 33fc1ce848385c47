//! Plans: ordered phases of concurrently executed steps, and the catalog the runner builds them from.
//!
//! A plan is rebuilt from its name, mode and parameters whenever a run is started or resumed; its
//! [`PlanLayout`] is stored with the run so that a resumed run notices when the code that defines the
//! plan changed under it (and stops for an operator instead of guessing).

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use std::time::Duration;

use super::event::{
    Mode, PhaseLayout, PlanLayout, Reversibility, StepDescription, StepId, StepLayout,
};
use super::step::{
    OutageApi, OutageRetry, RetryPolicy, Step, StepContext, StepError, VerifyOutcome,
};

/// A phase: an optional approval gate, then steps run concurrently; the next phase starts when all
/// of them have succeeded.
#[derive(Clone)]
pub struct Phase {
    pub name: String,
    pub approval: Option<String>,
    pub steps: Vec<Arc<dyn Step>>,
}

impl Phase {
    /// A phase of steps run concurrently.
    pub fn steps(name: impl Into<String>, steps: Vec<Arc<dyn Step>>) -> Self {
        Self {
            name: name.into(),
            approval: None,
            steps,
        }
    }

    /// A phase that only waits for an operator's approval.
    pub fn approval(name: impl Into<String>, prompt: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            approval: Some(prompt.into()),
            steps: Vec::new(),
        }
    }

    /// Require approval before this phase's steps run.
    pub fn with_approval(mut self, prompt: impl Into<String>) -> Self {
        self.approval = Some(prompt.into());
        self
    }
}

/// A validated plan ready to run.
#[derive(Clone)]
pub struct Plan {
    pub name: String,
    phases: Vec<Phase>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("name", &self.name)
            .field("layout", &self.layout())
            .finish()
    }
}

/// Why a plan could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("unknown plan {name:?} (known plans: {})", known.join(", "))]
    UnknownPlan { name: String, known: Vec<String> },
    #[error("invalid parameter {field}: {message}")]
    BadParams { field: String, message: String },
    #[error("invalid plan: {message}")]
    Invalid { message: String },
}

impl Plan {
    /// Check the plan's shape: at least one phase, unique phase names and step ids, no empty phase
    /// without a gate.
    pub fn new(name: impl Into<String>, phases: Vec<Phase>) -> Result<Self, PlanError> {
        let name = name.into();
        let invalid = |message: String| PlanError::Invalid { message };
        if phases.is_empty() {
            return Err(invalid(format!("plan {name} has no phases")));
        }
        let mut phase_names = HashSet::new();
        let mut step_ids = HashSet::new();
        for p in &phases {
            if !phase_names.insert(p.name.clone()) {
                return Err(invalid(format!("duplicate phase name {}", p.name)));
            }
            if p.steps.is_empty() && p.approval.is_none() {
                return Err(invalid(format!(
                    "phase {} has neither steps nor a gate",
                    p.name
                )));
            }
            for s in &p.steps {
                if !step_ids.insert(s.id().clone()) {
                    return Err(invalid(format!("duplicate step id {}", s.id())));
                }
                if s.retry_policy().max_attempts == 0 {
                    return Err(invalid(format!("step {} allows 0 attempts", s.id())));
                }
            }
        }
        Ok(Self { name, phases })
    }

    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    pub fn step(&self, id: &StepId) -> Option<&Arc<dyn Step>> {
        self.phases
            .iter()
            .flat_map(|p| p.steps.iter())
            .find(|s| s.id() == id)
    }

    /// The plan's shape, as stored with each run.
    pub fn layout(&self) -> PlanLayout {
        PlanLayout {
            phases: self
                .phases
                .iter()
                .map(|p| PhaseLayout {
                    name: p.name.clone(),
                    approval: p.approval.clone(),
                    steps: p
                        .steps
                        .iter()
                        .map(|s| StepLayout {
                            id: s.id().clone(),
                            name: s.name().to_owned(),
                            reversibility: s.reversibility(),
                            max_attempts: s.retry_policy().max_attempts,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

impl Plan {
    /// The plan with every step that acts on an API ([`Step::acts_on`]) retrying that API's
    /// transient errors until the deadline `retry` gives it.
    pub fn with_outage_retry(mut self, retry: &OutageRetry) -> Plan {
        for phase in &mut self.phases {
            for step in &mut phase.steps {
                if let Some(api) = step.acts_on() {
                    *step = Arc::new(OutageRetried {
                        inner: Arc::clone(step),
                        policy: retry.policy(api),
                    });
                }
            }
        }
        self
    }
}

/// A step under its API's outage retry policy; everything else is the step's own.
struct OutageRetried {
    inner: Arc<dyn Step>,
    policy: RetryPolicy,
}

#[async_trait::async_trait]
impl Step for OutageRetried {
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
        self.inner.execute(ctx).await
    }
    async fn verify(&self, ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        self.inner.verify(ctx).await
    }
    fn reversibility(&self) -> Reversibility {
        self.inner.reversibility()
    }
    async fn compensate(&self, ctx: &StepContext) -> Result<(), StepError> {
        self.inner.compensate(ctx).await
    }
    fn operator_check(&self) -> String {
        self.inner.operator_check()
    }
    fn retry_policy(&self) -> RetryPolicy {
        self.policy
    }
    fn acts_on(&self) -> Option<OutageApi> {
        self.inner.acts_on()
    }
    fn timeout(&self) -> Duration {
        self.inner.timeout()
    }
}

/// Where the runner gets plans from (implemented by [`crate::plans::PlanRegistry`]).
pub trait PlanCatalog: Send + Sync + 'static {
    /// Build the named plan for `mode` from request parameters. Errors name the bad field.
    fn build(&self, name: &str, mode: Mode, params: &Value) -> Result<Plan, PlanError>;

    /// Names of the plans that can be built.
    fn names(&self) -> Vec<String>;
}
