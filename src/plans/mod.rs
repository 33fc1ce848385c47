//! The plans failoverd can run, by name, and what each of them moves.
//!
//! Each plan module turns typed, validated parameters (see [`params`]) into **phases**, and its
//! `register` adds the plan to a [`PlanRegistry`] with its [`PlanInfo`]: a one-line description,
//! the parameters it accepts, and whether it moves traffic or the database writer. That metadata —
//! never a list of plan names — decides what a completed run changes (the recorded active region
//! follows plans that move traffic), and `GET /v1/plans` / `failoverd plans` list it. Plans
//! composed of other plans' phases — the region takeover, [`failover`] and [`failback`], built by
//! [`takeover`] from the Aurora, DNS and Cognito phases and the read-only [`preflight`] checks —
//! call those modules' phase functions. [`readiness`] evaluates the failover's preflight towards
//! the standby on a timer.
//!
//! [`PlanDeps`] holds everything plans need, built once by the daemon; [`register_all`] registers
//! every plan whose dependencies are configured. The runner rebuilds plans from the registry when
//! it resumes a run, so builders must be deterministic: they read configuration and parameters,
//! never the world.

pub mod aurora;
pub mod cognito;
pub mod dns;
pub mod failback;
pub mod failover;
pub mod gitops;
pub mod params;
pub mod preflight;
pub mod readiness;
pub mod selftest;
pub mod takeover;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::engine::{Mode, Phase, Plan, PlanCatalog, PlanError};

/// Builds a plan from a mode and request parameters.
pub type PlanBuilder = Arc<dyn Fn(Mode, &Value) -> Result<Plan, PlanError> + Send + Sync>;

/// What a plan is and what it moves (`GET /v1/plans`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PlanInfo {
    pub name: String,
    /// One line for operators.
    pub description: String,
    /// The keys its `params` accept (besides `approval_required`, which every plan accepts).
    pub parameters: Vec<String>,
    /// A successful run sends the traffic to its `target_region` (the active region follows).
    pub moves_traffic: bool,
    /// A successful run moves the database writer to its `target_region`.
    pub moves_writer: bool,
    /// A request without `params.target_region` gets the standby region, as the API sees it at
    /// request time (stored with the run, so a resumed run targets the same region).
    pub target_defaults_to_standby: bool,
}

impl PlanInfo {
    /// A plan that moves nothing.
    pub fn new(name: &str, description: &str, parameters: &[&str]) -> Self {
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            parameters: parameters.iter().map(|p| (*p).to_owned()).collect(),
            moves_traffic: false,
            moves_writer: false,
            target_defaults_to_standby: false,
        }
    }

    pub fn defaulting_target_to_standby(mut self) -> Self {
        self.target_defaults_to_standby = true;
        self
    }

    pub fn moving_traffic(mut self) -> Self {
        self.moves_traffic = true;
        self
    }

    pub fn moving_writer(mut self) -> Self {
        self.moves_writer = true;
        self
    }
}

/// Name → metadata and builder.
#[derive(Clone, Default)]
pub struct PlanRegistry {
    plans: BTreeMap<String, (PlanInfo, PlanBuilder)>,
    /// How the steps acting on AWS and Kubernetes ride out an outage of their API.
    outage_retry: crate::engine::OutageRetry,
}

impl PlanRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The plans that need nothing but a state directory (`selftest`, recording its effects there).
    pub fn builtin(state_dir: impl Into<PathBuf>) -> Self {
        let mut r = Self::new();
        selftest::register(&mut r, state_dir.into().join(selftest::EFFECTS_FILE));
        r
    }

    /// Steps acting on an API retry its transient errors until these deadlines.
    pub fn set_outage_retry(&mut self, retry: crate::engine::OutageRetry) {
        self.outage_retry = retry;
    }

    /// Add (or replace) a plan.
    pub fn register(
        &mut self,
        info: PlanInfo,
        builder: impl Fn(Mode, &Value) -> Result<Plan, PlanError> + Send + Sync + 'static,
    ) {
        self.plans
            .insert(info.name.clone(), (info, Arc::new(builder)));
    }

    /// The metadata of every registered plan, by name.
    pub fn infos(&self) -> Vec<PlanInfo> {
        self.plans.values().map(|(info, _)| info.clone()).collect()
    }

    /// The metadata of one plan.
    pub fn info(&self, name: &str) -> Option<&PlanInfo> {
        self.plans.get(name).map(|(info, _)| info)
    }

    /// Whether a run of `name` that succeeds moves the traffic.
    pub fn moves_traffic(&self, name: &str) -> bool {
        self.info(name).is_some_and(|i| i.moves_traffic)
    }
}

/// Everything the plans need, built once by the daemon. A part that is not configured is `None`
/// and its plans are not registered.
pub struct PlanDeps {
    /// Where `selftest` records its effects.
    pub state_dir: PathBuf,
    pub aurora: Option<aurora::AuroraPlanDeps>,
    pub dns: Option<dns::DnsPlanDeps>,
    pub cognito: Option<cognito::CognitoPlanDeps>,
    /// The region takeover (`failover`, `failback`): needs `dns`.
    pub takeover: Option<TakeoverParts>,
    /// The clusters (`gitops-resync`, and the takeover's GitOps steps).
    pub gitops: Option<(crate::topology::RegionPair, Arc<crate::gitops::GitOps>)>,
    /// `failover.retry`: how the steps acting on AWS and Kubernetes ride out an outage.
    pub outage_retry: crate::engine::OutageRetry,
}

/// What the takeover plans need beyond the other plans' dependencies (which they share: the DNS
/// steps with their token bucket, the Aurora databases, the Cognito handle).
pub struct TakeoverParts {
    pub cognito_interval: std::time::Duration,
    pub health: tokio::sync::watch::Receiver<crate::health::monitor::HealthVerdicts>,
    pub vaults:
        std::sync::Arc<dyn Fn() -> Vec<crate::replication::state::VaultSnapshot> + Send + Sync>,
    pub backup_gate: bool,
    pub max_data_loss: std::time::Duration,
    pub active: std::sync::Arc<crate::topology::ActiveRegionRecord>,
    pub drift: Option<std::sync::Arc<dyn preflight::DriftReadings>>,
    pub lost_region_budget: std::time::Duration,
}

/// Every plan whose dependencies are configured.
pub fn register_all(deps: PlanDeps) -> PlanRegistry {
    let PlanDeps {
        state_dir,
        aurora,
        dns,
        cognito,
        takeover,
        gitops,
        outage_retry,
    } = deps;
    let mut registry = PlanRegistry::builtin(state_dir);
    registry.set_outage_retry(outage_retry);
    let takeover_aurora = aurora.clone().filter(|a| !a.databases.is_empty());
    let takeover_cognito = cognito
        .as_ref()
        .map(|c| c.handle.clone())
        .filter(|h| h.mode() == crate::config::CognitoMode::Sync);
    if let Some(aurora) = aurora {
        aurora::register(&mut registry, aurora);
    }
    if let Some(dns) = dns {
        // One token bucket for every plan that writes Route 53.
        let steps = dns.steps();
        dns::register_with(&mut registry, dns.pair.clone(), steps.clone());
        if let Some(p) = takeover {
            let deps = std::sync::Arc::new(takeover::TakeoverDeps {
                pair: dns.pair.clone(),
                dns: steps,
                aurora: takeover_aurora,
                cognito: takeover_cognito,
                cognito_interval: p.cognito_interval,
                health: p.health,
                vaults: p.vaults,
                backup_gate: p.backup_gate,
                max_data_loss: p.max_data_loss,
                active: p.active,
                drift: p.drift,
                lost_region_budget: p.lost_region_budget,
                gitops: gitops.as_ref().map(|(_, g)| Arc::clone(g)),
            });
            failover::register(&mut registry, std::sync::Arc::clone(&deps));
            failback::register(&mut registry, deps);
        }
    }
    if let Some(cognito) = cognito {
        cognito::register(&mut registry, cognito);
    }
    if let Some((pair, g)) = gitops {
        gitops::register(&mut registry, pair, g);
    }
    registry
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
        let (_, builder) = self.plans.get(name).ok_or_else(|| PlanError::UnknownPlan {
            name: name.to_owned(),
            known: self.names(),
        })?;
        let (params, gate) = take_approval(params)?;
        let plan = builder(mode, &params)?.with_outage_retry(&self.outage_retry);
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
        self.plans.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The plans a configuration gives the daemon, from the plans' own metadata, under the
    /// conditions [`register_all`] registers them on.
    fn configured(config: &crate::config::Config) -> Vec<PlanInfo> {
        let mut out = vec![selftest::info(), aurora::info()];
        if config.dns.is_some() {
            out.extend([dns::info(), failover::info(), failback::info()]);
        }
        if let Some(c) = &config.cognito {
            out.push(match c.mode {
                crate::config::CognitoMode::Sync => cognito::sync_info(),
                crate::config::CognitoMode::NativeReplica => cognito::replica_failover_info(),
            });
        }
        if config.gitops.is_some() {
            out.push(gitops::resync_info());
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Validation checks `policy.plan` against `config::provided_plans`; it must say what the
    /// plans' own metadata says, for every shape of configuration in the shipped files and the
    /// configuration corpus.
    #[test]
    fn validation_knows_the_plans_each_configuration_provides() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![
            root.join("config/example.yaml"),
            root.join("config/lab.yaml"),
        ];
        for entry in std::fs::read_dir(root.join("tests/fuzz/corpus")).unwrap() {
            files.push(entry.unwrap().path());
        }
        for file in files {
            let config = crate::config::load_file(&file).unwrap();
            let from_metadata: Vec<(String, bool)> = configured(&config)
                .into_iter()
                .map(|i| (i.name, i.moves_traffic))
                .collect();
            let from_validation: Vec<(String, bool)> = crate::config::provided_plans(&config)
                .into_iter()
                .map(|(n, m)| (n.to_owned(), m))
                .collect();
            assert_eq!(from_validation, from_metadata, "{}", file.display());
        }
    }

    #[test]
    fn an_unknown_plan_lists_the_known_ones() {
        let dir = tempfile::tempdir().unwrap();
        let registry = PlanRegistry::builtin(dir.path());
        let err = registry
            .build("nope", Mode::Graceful, &json!({}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown plan \"nope\" (known plans: selftest)"
        );
    }

    #[test]
    fn metadata_says_what_each_plan_moves() {
        let dir = tempfile::tempdir().unwrap();
        let registry = PlanRegistry::builtin(dir.path());
        let info = registry.info(selftest::NAME).unwrap();
        assert!(!info.moves_traffic && !info.moves_writer);
        assert!(!registry.moves_traffic(selftest::NAME));
        assert!(!registry.moves_traffic("nope"));
        assert_eq!(registry.infos().len(), 1);
    }

    #[test]
    fn approval_required_adds_a_gate_and_must_be_a_boolean() {
        let dir = tempfile::tempdir().unwrap();
        let registry = PlanRegistry::builtin(dir.path());
        let plan = registry
            .build(
                selftest::NAME,
                Mode::Graceful,
                &json!({"approval_required": true}),
            )
            .unwrap();
        assert_eq!(plan.phases()[0].name, APPROVAL_PHASE);
        let err = registry
            .build(
                selftest::NAME,
                Mode::Graceful,
                &json!({"approval_required": "yes"}),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("params.approval_required"),
            "{err}"
        );
    }
}
