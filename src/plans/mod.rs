//! The plans failoverd can run, by name. Each builder turns a mode and the request's JSON
//! parameters into a [`Plan`], rejecting bad parameters with an error naming the field. The runner
//! rebuilds plans from the registry when it resumes a run, so builders must be deterministic.

pub mod aurora;
pub mod cognito;
pub mod dns;
pub mod selftest;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::engine::{Mode, Phase, Plan, PlanCatalog, PlanError};

/// Builds a plan from a mode and request parameters.
pub type PlanBuilder = Arc<dyn Fn(Mode, &Value) -> Result<Plan, PlanError> + Send + Sync>;

/// Name → builder.
#[derive(Clone, Default)]
pub struct PlanRegistry {
    builders: BTreeMap<String, PlanBuilder>,
}

impl PlanRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The built-in plans; `state_dir` is where `selftest` records its effects.
    pub fn builtin(state_dir: impl Into<PathBuf>) -> Self {
        let mut r = Self::new();
        selftest::register(&mut r, state_dir.into().join(selftest::EFFECTS_FILE));
        r
    }

    /// Add (or replace) a plan.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        builder: impl Fn(Mode, &Value) -> Result<Plan, PlanError> + Send + Sync + 'static,
    ) {
        self.builders.insert(name.into(), Arc::new(builder));
    }
}

/// The parameter every plan accepts: wait for an operator's approval before the first phase.
pub const APPROVAL_REQUIRED: &str = "approval_required";

/// The name of the gate phase added by [`APPROVAL_REQUIRED`].
pub const APPROVAL_PHASE: &str = "operator-approval";

/// Removes `approval_required` from the parameters (the plan's own builder does not know it).
fn take_approval(params: &Value) -> Result<(Value, bool), PlanError> {
    let Value::Object(map) = params else {
        return Ok((params.clone(), false));
    };
    let mut map = map.clone();
    let gate = match map.remove(APPROVAL_REQUIRED) {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(params::bad(APPROVAL_REQUIRED, "must be true or false")),
    };
    Ok((Value::Object(map), gate))
}

impl PlanCatalog for PlanRegistry {
    /// Builds the named plan. With `params.approval_required: true` (any plan) the run first waits
    /// in `waiting_approval` for an operator; the auto-failover policy's `approval_required` mode
    /// uses this. The parameters are stored with the run, so a resumed run is rebuilt with the
    /// same gate.
    fn build(&self, name: &str, mode: Mode, params: &Value) -> Result<Plan, PlanError> {
        let builder = self
            .builders
            .get(name)
            .ok_or_else(|| PlanError::UnknownPlan {
                name: name.to_owned(),
            })?;
        let (params, gate) = take_approval(params)?;
        let plan = builder(mode, &params)?;
        if !gate {
            return Ok(plan);
        }
        let mut phases = vec![Phase::approval(
            APPROVAL_PHASE,
            format!(
                "approve plan {name} ({}) before it changes anything",
                mode.as_str()
            ),
        )];
        phases.extend(plan.phases().iter().cloned());
        Plan::new(name, phases)
    }

    fn names(&self) -> Vec<String> {
        self.builders.keys().cloned().collect()
    }
}

/// Helpers for plan builders validating JSON parameters (errors name `params.<field>`).
pub mod params {
    use serde_json::{Map, Value};

    use crate::engine::PlanError;

    pub fn bad(field: &str, message: impl Into<String>) -> PlanError {
        PlanError::BadParams {
            field: format!("params.{field}"),
            message: message.into(),
        }
    }

    /// The parameters object (`null` counts as empty), refusing keys not in `known`.
    pub fn object<'a>(
        params: &'a Value,
        known: &[&str],
    ) -> Result<Option<&'a Map<String, Value>>, PlanError> {
        let obj = match params {
            Value::Null => return Ok(None),
            Value::Object(o) => o,
            _ => {
                return Err(PlanError::BadParams {
                    field: "params".into(),
                    message: "must be an object".into(),
                })
            }
        };
        if let Some(k) = obj.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(bad(
                k,
                format!("unknown parameter (expected one of: {})", known.join(", ")),
            ));
        }
        Ok(Some(obj))
    }

    /// An optional unsigned integer in `min..=max`.
    pub fn uint(
        obj: Option<&Map<String, Value>>,
        field: &str,
        min: u64,
        max: u64,
    ) -> Result<Option<u64>, PlanError> {
        let Some(v) = obj.and_then(|o| o.get(field)) else {
            return Ok(None);
        };
        if v.is_null() {
            return Ok(None);
        }
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(bad(
                field,
                format!("must be an integer from {min} to {max}"),
            )),
        }
    }

    /// An optional number in `min..=max`.
    pub fn number(
        obj: Option<&Map<String, Value>>,
        field: &str,
        min: f64,
        max: f64,
    ) -> Result<Option<f64>, PlanError> {
        let Some(v) = obj.and_then(|o| o.get(field)) else {
            return Ok(None);
        };
        if v.is_null() {
            return Ok(None);
        }
        match v.as_f64() {
            Some(n) if n.is_finite() && n >= min && n <= max => Ok(Some(n)),
            _ => Err(bad(field, format!("must be a number from {min} to {max}"))),
        }
    }

    /// An optional boolean.
    pub fn boolean(
        obj: Option<&Map<String, Value>>,
        field: &str,
    ) -> Result<Option<bool>, PlanError> {
        match obj.and_then(|o| o.get(field)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(bad(field, "must be true or false")),
        }
    }
}
