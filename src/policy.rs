//! The automatic-failover policy: whether to start a failover now, and why (not).
//!
//! Failing over too eagerly loses data and causes the outage it meant to end; failing over too
//! timidly lets an outage run on (DESIGN.md §1.5). So the decision is one pure function,
//! [`decide`], over everything it depends on, with a fixed vocabulary of [`Reason`]s that is
//! logged, counted (`failoverd_auto_failover_decisions_total{decision,reason}`) and shown in
//! `/v1/status`. It starts the configured plan only when **all** of these hold:
//!
//! 1. no run is active (one run per region pair);
//! 2. the hot region's verdict is `unhealthy` (quorum + hysteresis, `crate::health::verdict`)
//!    and has been for `policy.min_unhealthy_for`;
//! 3. the cold region's verdict is `healthy` — failing over into a sick region helps nobody;
//! 4. no topology drift is reported (the recorded active region disagrees with the world, so
//!    "hot" may not be what we think it is);
//! 5. the last known replication lag is known and within `policy.max_data_loss` — an unknown lag
//!    is a refusal, never a guess;
//! 6. the cooldown since the last failover has passed, or an operator acknowledged it
//!    (anti-flapping: two regions failing over back and forth is worse than either);
//! 7. the previous attempt to start a run did not fail moments ago (a short backoff);
//! 8. the mode is not `off` (`approval_required` creates the run waiting for approval,
//!    `automatic` starts it).
//!
//! Every unmet condition is listed in [`Decision::blockers`] (so status shows what *would* block a
//! failover even while the hot region is healthy); the first in the order above is the
//! [`Decision::reason`].
//!
//! [`PolicyLoop`] drives the function: it re-evaluates on every verdict change, every change of
//! the facts other components feed it through [`PolicyHandle`] (replication lag, drift, active
//! region, acknowledgements), and on a one-second tick (for the time-based conditions), and starts
//! runs through the [`RunStarter`] trait that the daemon implements over the engine.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::{PolicyConfig, PolicyMode};
use crate::health::monitor::HealthVerdicts;
use crate::health::verdict::{Health, RegionVerdict};
use crate::shutdown::StopSignal;

/// How often the loop re-evaluates without a change of input: the time-based conditions
/// (`min_unhealthy_for`, cooldown) are decided at most this late. One second is negligible next to
/// the minutes those durations are configured in, and an evaluation costs microseconds.
pub const EVALUATION_TICK: Duration = Duration::from_secs(1);

/// After a failed attempt to start a run, wait this long before the next attempt, so an engine
/// that refuses (no leadership, unknown plan) is not asked every second.
pub const START_RETRY_BACKOFF: Duration = Duration::from_secs(30);

/// Bound on one call to [`RunStarter::start_failover`]; creating a run is a journal write.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the policy decided what it decided. The labels are a fixed vocabulary for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Every condition holds: the hot region is lost and failing over is safe.
    HotRegionUnhealthy,
    /// A run (of any plan) is already active.
    RunActive,
    HotRegionHealthy,
    HotRegionDegraded,
    /// No verdict for the hot region yet.
    HotRegionUnknown,
    /// Unhealthy, but not for `min_unhealthy_for` yet.
    UnhealthyTooBriefly,
    ColdRegionNotHealthy,
    TopologyDrift,
    ReplicationLagUnknown,
    ReplicationLagOverBudget,
    /// Within the cooldown after the last failover, not acknowledged.
    Cooldown,
    /// A start attempt failed recently.
    StartBackoff,
    PolicyOff,
    /// The engine refused or failed to start the run.
    StartFailed,
}

impl Reason {
    /// Every reason, for tests and documentation.
    pub const ALL: [Reason; 14] = [
        Reason::HotRegionUnhealthy,
        Reason::RunActive,
        Reason::HotRegionHealthy,
        Reason::HotRegionDegraded,
        Reason::HotRegionUnknown,
        Reason::UnhealthyTooBriefly,
        Reason::ColdRegionNotHealthy,
        Reason::TopologyDrift,
        Reason::ReplicationLagUnknown,
        Reason::ReplicationLagOverBudget,
        Reason::Cooldown,
        Reason::StartBackoff,
        Reason::PolicyOff,
        Reason::StartFailed,
    ];

    /// The metric label (`reason="..."`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HotRegionUnhealthy => "hot_region_unhealthy",
            Self::RunActive => "run_active",
            Self::HotRegionHealthy => "hot_region_healthy",
            Self::HotRegionDegraded => "hot_region_degraded",
            Self::HotRegionUnknown => "hot_region_unknown",
            Self::UnhealthyTooBriefly => "unhealthy_too_briefly",
            Self::ColdRegionNotHealthy => "cold_region_not_healthy",
            Self::TopologyDrift => "topology_drift",
            Self::ReplicationLagUnknown => "replication_lag_unknown",
            Self::ReplicationLagOverBudget => "replication_lag_over_budget",
            Self::Cooldown => "cooldown",
            Self::StartBackoff => "start_backoff",
            Self::PolicyOff => "policy_off",
            Self::StartFailed => "start_failed",
        }
    }
}

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start the configured plan; with `approval_required` the run waits for an operator.
    Start {
        approval_required: bool,
    },
    Hold,
}

impl Action {
    /// The metric label (`decision="..."`): `start`, `request_approval` or `hold`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start {
                approval_required: false,
            } => "start",
            Self::Start {
                approval_required: true,
            } => "request_approval",
            Self::Hold => "hold",
        }
    }
}

/// The outcome of one evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    /// Why: the start reason, or the first unmet condition.
    pub reason: Reason,
    /// Every unmet condition, in priority order (empty when starting).
    pub blockers: Vec<Reason>,
    /// A sentence for logs, status and the run's `reason`.
    pub detail: String,
}

/// The policy's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRules {
    pub mode: PolicyMode,
    pub plan: String,
    pub min_unhealthy_for: Duration,
    pub cooldown: Duration,
    pub max_data_loss: Duration,
}

impl PolicyRules {
    pub fn from_config(config: &PolicyConfig) -> Self {
        Self {
            mode: config.mode,
            plan: config.plan.clone(),
            min_unhealthy_for: config.min_unhealthy_for.get(),
            cooldown: config.cooldown.get(),
            max_data_loss: config.max_data_loss.get(),
        }
    }
}

/// The last replication lag measured between the hot writer and the cold reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicationLag {
    pub lag: Duration,
    pub observed_at: Instant,
}

/// Everything [`decide`] looks at.
#[derive(Clone, Debug)]
pub struct PolicyInput<'a> {
    pub now: Instant,
    /// The verdict of the region currently active (`None`: no verdict yet).
    pub hot: Option<&'a RegionVerdict>,
    /// The verdict of the standby region.
    pub cold: Option<&'a RegionVerdict>,
    pub run_active: bool,
    /// When the last failover started.
    pub last_failover: Option<Instant>,
    /// An operator acknowledged the last failover, clearing the cooldown.
    pub cooldown_acknowledged: bool,
    /// `None`: unknown.
    pub replication_lag: Option<ReplicationLag>,
    /// A description of the drift between the recorded topology and the world, if any.
    pub drift: Option<&'a str>,
    /// No start attempt before this instant (after a failed one).
    pub retry_not_before: Option<Instant>,
}

/// The pure decision. See the module docs for the conditions and their order.
pub fn decide(rules: &PolicyRules, input: &PolicyInput<'_>) -> Decision {
    let now = input.now;
    let mut blockers: Vec<(Reason, String)> = Vec::new();

    if input.run_active {
        blockers.push((Reason::RunActive, "a run is already active".to_owned()));
    }
    match input.hot {
        None => blockers.push((
            Reason::HotRegionUnknown,
            "no health verdict for the hot region".to_owned(),
        )),
        Some(hot) => match hot.health {
            Health::Unhealthy => {
                let held = hot.held_for(now);
                if held < rules.min_unhealthy_for {
                    blockers.push((
                        Reason::UnhealthyTooBriefly,
                        format!(
                            "hot region {} unhealthy for {}, less than {}",
                            hot.region,
                            secs(held),
                            secs(rules.min_unhealthy_for)
                        ),
                    ));
                }
            }
            Health::Healthy => blockers.push((
                Reason::HotRegionHealthy,
                format!("hot region {} is healthy", hot.region),
            )),
            Health::Degraded => blockers.push((
                Reason::HotRegionDegraded,
                format!(
                    "hot region {} is degraded, not unhealthy: {}",
                    hot.region, hot.explanation
                ),
            )),
            Health::Unknown => blockers.push((
                Reason::HotRegionUnknown,
                format!(
                    "hot region {} health is unknown: {}",
                    hot.region, hot.explanation
                ),
            )),
        },
    }
    match input.cold {
        Some(cold) if cold.health == Health::Healthy => {}
        Some(cold) => blockers.push((
            Reason::ColdRegionNotHealthy,
            format!(
                "cold region {} is {}: {}",
                cold.region, cold.health, cold.explanation
            ),
        )),
        None => blockers.push((
            Reason::ColdRegionNotHealthy,
            "no health verdict for the cold region".to_owned(),
        )),
    }
    if let Some(drift) = input.drift {
        blockers.push((Reason::TopologyDrift, format!("topology drift: {drift}")));
    }
    match input.replication_lag {
        None => blockers.push((
            Reason::ReplicationLagUnknown,
            "replication lag is unknown, so the data loss of a failover cannot be bounded"
                .to_owned(),
        )),
        Some(lag) if lag.lag > rules.max_data_loss => blockers.push((
            Reason::ReplicationLagOverBudget,
            format!(
                "last known replication lag {} (measured {} ago) exceeds max_data_loss {}",
                secs(lag.lag),
                secs(now.saturating_duration_since(lag.observed_at)),
                secs(rules.max_data_loss)
            ),
        )),
        Some(_) => {}
    }
    if let Some(last) = input.last_failover {
        let since = now.saturating_duration_since(last);
        if since < rules.cooldown && !input.cooldown_acknowledged {
            blockers.push((
                Reason::Cooldown,
                format!(
                    "last failover {} ago, cooldown is {} (an operator can acknowledge it)",
                    secs(since),
                    secs(rules.cooldown)
                ),
            ));
        }
    }
    if let Some(not_before) = input.retry_not_before {
        if now < not_before {
            blockers.push((
                Reason::StartBackoff,
                format!(
                    "the last start attempt failed; next attempt in {}",
                    secs(not_before.saturating_duration_since(now))
                ),
            ));
        }
    }
    if rules.mode == PolicyMode::Off {
        blockers.push((
            Reason::PolicyOff,
            "policy.mode is off: failovers are started by operators only".to_owned(),
        ));
    }

    if let Some((reason, detail)) = blockers.first().cloned() {
        return Decision {
            action: Action::Hold,
            reason,
            blockers: blockers.into_iter().map(|(r, _)| r).collect(),
            detail,
        };
    }
    // Every condition holds; `hot` and the lag are known here.
    let hot = input.hot.map(|h| h.region.as_str()).unwrap_or_default();
    let held = input.hot.map(|h| h.held_for(now)).unwrap_or_default();
    let evidence = input
        .hot
        .map(|h| {
            h.down
                .iter()
                .map(|d| match &d.last_error {
                    Some(e) => format!("{} ({e})", d.name),
                    None => d.name.clone(),
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    let lag = input.replication_lag.map(|l| l.lag).unwrap_or_default();
    Decision {
        action: Action::Start {
            approval_required: rules.mode == PolicyMode::ApprovalRequired,
        },
        reason: Reason::HotRegionUnhealthy,
        blockers: Vec::new(),
        detail: format!(
            "hot region {hot} unhealthy for {}, last known replication lag {}; down: {evidence}",
            secs(held),
            secs(lag)
        ),
    }
}

/// Durations in logs and status, rounded to whole seconds.
fn secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

/// Why a run could not be started.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RunStartError {
    #[error("a run is already active: {0}")]
    RunActive(String),
    #[error("the engine refused the run: {0}")]
    Refused(String),
    #[error("the engine is unavailable: {0}")]
    Unavailable(String),
}

/// What the policy needs from the engine. The daemon implements it over the runner.
#[async_trait]
pub trait RunStarter: Send + Sync {
    /// Starts `plan` as a failover (with `approval_required`, the run is created waiting for an
    /// operator's approval); `reason` is recorded on the run. Returns the run's id.
    async fn start_failover(
        &self,
        plan: &str,
        approval_required: bool,
        reason: &str,
    ) -> Result<String, RunStartError>;

    /// Whether a run is active (of any plan: one run per region pair).
    fn active_run(&self) -> bool;
}

/// Why the policy loop could not start.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("the policy loop must be started inside a Tokio runtime")]
    NoRuntime,
}

/// The facts other components feed the policy through [`PolicyHandle`].
#[derive(Clone, Debug)]
struct Facts {
    active_region: String,
    standby_region: String,
    replication_lag: Option<ReplicationLag>,
    drift: Option<String>,
    last_failover: Option<Instant>,
    acknowledged_by: Option<String>,
}

/// A decision as recorded for status.
#[derive(Clone, Debug, Serialize)]
pub struct DecisionRecord {
    /// `start`, `request_approval` or `hold`.
    pub decision: &'static str,
    pub reason: Reason,
    pub blockers: Vec<Reason>,
    pub detail: String,
    /// When this decision was first reached (it may have been re-confirmed since).
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

/// The last run the policy started.
#[derive(Clone, Debug, Serialize)]
pub struct StartRecord {
    pub run_id: String,
    pub plan: String,
    pub approval_required: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The last failed attempt to start a run.
#[derive(Clone, Debug, Serialize)]
pub struct StartFailure {
    pub error: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What `/v1/status` shows about the policy.
#[derive(Clone, Debug, Serialize)]
pub struct PolicyStatus {
    pub mode: PolicyMode,
    pub plan: String,
    pub active_region: String,
    pub standby_region: String,
    pub last_decision: Option<DecisionRecord>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_failover_at: Option<OffsetDateTime>,
    /// When the cooldown ends (absent when none applies or it was acknowledged).
    #[serde(with = "time::serde::rfc3339::option")]
    pub cooldown_until: Option<OffsetDateTime>,
    pub cooldown_acknowledged_by: Option<String>,
    pub replication_lag_seconds: Option<f64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub replication_lag_observed_at: Option<OffsetDateTime>,
    pub drift: Option<String>,
    pub last_start: Option<StartRecord>,
    pub last_start_failure: Option<StartFailure>,
}

#[derive(Default)]
struct Records {
    last_decision: Option<DecisionRecord>,
    last_start: Option<StartRecord>,
    last_start_failure: Option<StartFailure>,
}

struct PolicyShared {
    rules: PolicyRules,
    facts: watch::Sender<Facts>,
    records: Mutex<Records>,
}

impl PolicyShared {
    fn records(&self) -> MutexGuard<'_, Records> {
        match self.records.lock() {
            Ok(guard) => guard,
            // Each update is one field assignment; the records stay consistent.
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The policy loop's cloneable handle: feeds it facts and reads its status.
#[derive(Clone)]
pub struct PolicyHandle {
    shared: Arc<PolicyShared>,
    stopped: watch::Receiver<bool>,
}

impl PolicyHandle {
    /// The latest replication lag measurement (`None`: unknown, e.g. the metric is missing).
    pub fn set_replication_lag(&self, lag: Option<Duration>) {
        let lag = lag.map(|lag| ReplicationLag {
            lag,
            observed_at: Instant::now(),
        });
        self.shared.facts.send_modify(|f| f.replication_lag = lag);
    }

    /// Reports topology drift (`None`: none). While drift is reported, no failover starts.
    pub fn set_drift(&self, drift: Option<String>) {
        self.shared.facts.send_if_modified(|f| {
            let changed = f.drift != drift;
            f.drift = drift;
            changed
        });
    }

    /// The active and standby regions (after a completed switchover they trade places).
    pub fn set_regions(&self, active: &str, standby: &str) {
        self.shared.facts.send_if_modified(|f| {
            let changed = f.active_region != active || f.standby_region != standby;
            f.active_region = active.to_owned();
            f.standby_region = standby.to_owned();
            changed
        });
    }

    /// Records a failover started at `at` (by an operator, or found in the journal at start-up)
    /// so the cooldown applies to it as to the policy's own.
    pub fn record_failover(&self, at: Instant) {
        self.shared.facts.send_modify(|f| {
            if f.last_failover.is_none_or(|last| at > last) {
                f.last_failover = Some(at);
                f.acknowledged_by = None;
            }
        });
    }

    /// An operator acknowledges the last failover, clearing its cooldown. Returns whether there
    /// was a failover to acknowledge.
    pub fn acknowledge(&self, by: &str) -> bool {
        let mut acknowledged = false;
        self.shared.facts.send_if_modified(|f| {
            if f.last_failover.is_some() {
                f.acknowledged_by = Some(by.to_owned());
                acknowledged = true;
            }
            acknowledged
        });
        if acknowledged {
            tracing::warn!(by, "failover cooldown acknowledged by an operator");
        }
        acknowledged
    }

    /// The last decision, if any evaluation happened yet.
    pub fn last_decision(&self) -> Option<DecisionRecord> {
        self.shared.records().last_decision.clone()
    }

    /// A serializable view for `/v1/status`.
    pub fn status(&self) -> PolicyStatus {
        let now = Instant::now();
        let wall = OffsetDateTime::now_utc();
        let facts = self.shared.facts.borrow().clone();
        let records = self.shared.records();
        let rules = &self.shared.rules;
        let cooldown_until = match (&facts.last_failover, &facts.acknowledged_by) {
            (Some(last), None) if now.saturating_duration_since(*last) < rules.cooldown => {
                Some(to_wall(*last + rules.cooldown, now, wall))
            }
            _ => None,
        };
        PolicyStatus {
            mode: rules.mode,
            plan: rules.plan.clone(),
            active_region: facts.active_region,
            standby_region: facts.standby_region,
            last_decision: records.last_decision.clone(),
            last_failover_at: facts.last_failover.map(|t| to_wall(t, now, wall)),
            cooldown_until,
            cooldown_acknowledged_by: facts.acknowledged_by,
            replication_lag_seconds: facts.replication_lag.map(|l| l.lag.as_secs_f64()),
            replication_lag_observed_at: facts
                .replication_lag
                .map(|l| to_wall(l.observed_at, now, wall)),
            drift: facts.drift,
            last_start: records.last_start.clone(),
            last_start_failure: records.last_start_failure.clone(),
        }
    }

    /// Resolves once the loop has stopped.
    pub async fn stopped(&self) {
        let mut stopped = self.stopped.clone();
        let _ = stopped.wait_for(|s| *s).await;
    }
}

/// The wall-clock time of `t` (which may be in the future), given both clocks read together.
fn to_wall(t: Instant, now: Instant, wall: OffsetDateTime) -> OffsetDateTime {
    let shift = |d: Duration| time::Duration::try_from(d).ok();
    if t >= now {
        shift(t - now)
            .and_then(|d| wall.checked_add(d))
            .unwrap_or(wall)
    } else {
        shift(now - t)
            .and_then(|d| wall.checked_sub(d))
            .unwrap_or(wall)
    }
}

/// Starts policy loops.
pub struct PolicyLoop;

impl PolicyLoop {
    /// Starts the loop for the pair (`active_region`, `standby_region`), reading verdicts from
    /// the health monitor and starting runs through `starter`, until `stop` fires.
    pub fn spawn(
        config: &PolicyConfig,
        active_region: &str,
        standby_region: &str,
        verdicts: watch::Receiver<HealthVerdicts>,
        starter: Arc<dyn RunStarter>,
        registry: &Registry,
        stop: StopSignal,
    ) -> Result<PolicyHandle, PolicyError> {
        let mut stop = stop;
        Self::spawn_until(
            config,
            active_region,
            standby_region,
            verdicts,
            starter,
            registry,
            async move { stop.stopped().await },
        )
    }

    /// Like [`PolicyLoop::spawn`], stopping when `shutdown` resolves.
    pub fn spawn_until(
        config: &PolicyConfig,
        active_region: &str,
        standby_region: &str,
        verdicts: watch::Receiver<HealthVerdicts>,
        starter: Arc<dyn RunStarter>,
        registry: &Registry,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<PolicyHandle, PolicyError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| PolicyError::NoRuntime)?;
        let decisions = IntCounterVec::new(
            Opts::new(
                "failoverd_auto_failover_decisions_total",
                "Automatic-failover policy decisions: counted when the decision or its reason \
                 changes, and at every start attempt (decision start, request_approval, hold, \
                 failed).",
            ),
            &["decision", "reason"],
        )?;
        registry.register(Box::new(decisions.clone()))?;
        let rules = PolicyRules::from_config(config);
        let (facts, facts_rx) = watch::channel(Facts {
            active_region: active_region.to_owned(),
            standby_region: standby_region.to_owned(),
            replication_lag: None,
            drift: None,
            last_failover: None,
            acknowledged_by: None,
        });
        let shared = Arc::new(PolicyShared {
            rules,
            facts,
            records: Mutex::new(Records::default()),
        });
        let (stopped_tx, stopped_rx) = watch::channel(false);
        tracing::info!(
            mode = ?config.mode,
            plan = %config.plan,
            active_region,
            standby_region,
            "failover policy started"
        );
        runtime.spawn(run_loop(
            LoopState {
                shared: shared.clone(),
                verdicts,
                facts: facts_rx,
                starter,
                decisions,
                last: None,
                retry_not_before: None,
            },
            shutdown,
            stopped_tx,
        ));
        Ok(PolicyHandle {
            shared,
            stopped: stopped_rx,
        })
    }
}

struct LoopState {
    shared: Arc<PolicyShared>,
    verdicts: watch::Receiver<HealthVerdicts>,
    facts: watch::Receiver<Facts>,
    starter: Arc<dyn RunStarter>,
    decisions: IntCounterVec,
    /// The last (action, reason), to count and log changes only.
    last: Option<(Action, Reason)>,
    retry_not_before: Option<Instant>,
}

async fn run_loop(
    mut state: LoopState,
    shutdown: impl Future<Output = ()> + Send,
    stopped: watch::Sender<bool>,
) {
    tokio::pin!(shutdown);
    let mut tick = tokio::time::interval(EVALUATION_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            changed = state.verdicts.changed() => {
                if changed.is_err() {
                    tracing::warn!("the health monitor has stopped; the failover policy stops too");
                    break;
                }
            }
            // The handle (which owns the sender) may be dropped by callers; keep ticking then.
            Ok(()) = state.facts.changed() => {}
            _ = tick.tick() => {}
        }
        evaluate(&mut state).await;
    }
    tracing::info!("failover policy stopped");
    let _ = stopped.send(true);
}

async fn evaluate(state: &mut LoopState) {
    let now = Instant::now();
    let verdicts = state.verdicts.borrow_and_update().clone();
    let facts = state.facts.borrow_and_update().clone();
    let rules = &state.shared.rules;
    let input = PolicyInput {
        now,
        hot: verdicts.region(&facts.active_region),
        cold: verdicts.region(&facts.standby_region),
        run_active: state.starter.active_run(),
        last_failover: facts.last_failover,
        cooldown_acknowledged: facts.acknowledged_by.is_some(),
        replication_lag: facts.replication_lag,
        drift: facts.drift.as_deref(),
        retry_not_before: state.retry_not_before,
    };
    let decision = decide(rules, &input);
    let key = (decision.action, decision.reason);
    let changed = state.last != Some(key);
    if changed {
        state
            .decisions
            .with_label_values(&[decision.action.as_str(), decision.reason.as_str()])
            .inc();
        let blockers: Vec<&str> = decision.blockers.iter().map(|r| r.as_str()).collect();
        match decision.action {
            Action::Hold => tracing::info!(
                decision = decision.action.as_str(),
                reason = decision.reason.as_str(),
                blockers = ?blockers,
                detail = %decision.detail,
                "failover policy decision"
            ),
            Action::Start { .. } => tracing::warn!(
                decision = decision.action.as_str(),
                reason = decision.reason.as_str(),
                detail = %decision.detail,
                plan = %rules.plan,
                "failover policy decision: starting the failover plan"
            ),
        }
        state.shared.records().last_decision = Some(DecisionRecord {
            decision: decision.action.as_str(),
            reason: decision.reason,
            blockers: decision.blockers.clone(),
            detail: decision.detail.clone(),
            since: OffsetDateTime::now_utc(),
        });
        state.last = Some(key);
    } else if let Some(record) = state.shared.records().last_decision.as_mut() {
        // Same decision: keep its first time, refresh what it says (durations, evidence).
        record.blockers = decision.blockers.clone();
        record.detail = decision.detail.clone();
    }

    let Action::Start { approval_required } = decision.action else {
        return;
    };
    let plan = rules.plan.clone();
    let run_reason = format!(
        "automatic failover ({}): {}",
        if approval_required {
            "approval required"
        } else {
            "automatic"
        },
        decision.detail
    );
    let started = tokio::time::timeout(
        START_TIMEOUT,
        state
            .starter
            .start_failover(&plan, approval_required, &run_reason),
    )
    .await
    .unwrap_or_else(|_| {
        Err(RunStartError::Unavailable(format!(
            "no answer within {}",
            secs(START_TIMEOUT)
        )))
    });
    match started {
        Ok(run_id) => {
            tracing::warn!(run = %run_id, plan = %plan, approval_required, "failover run started by the policy");
            state.shared.facts.send_modify(|f| {
                f.last_failover = Some(now);
                f.acknowledged_by = None;
            });
            state.retry_not_before = None;
            state.shared.records().last_start = Some(StartRecord {
                run_id,
                plan,
                approval_required,
                at: OffsetDateTime::now_utc(),
            });
        }
        Err(error) => {
            tracing::error!(plan = %plan, error = %error, "the failover policy could not start the run");
            state
                .decisions
                .with_label_values(&["failed", Reason::StartFailed.as_str()])
                .inc();
            state.retry_not_before = Some(now + START_RETRY_BACKOFF);
            state.shared.records().last_start_failure = Some(StartFailure {
                error: error.to_string(),
                at: OffsetDateTime::now_utc(),
            });
            // The next evaluation holds with `start_backoff`; count it as the change it is.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProbeKind;
    use crate::health::verdict::DownProbe;

    const MIN: Duration = Duration::from_secs(60);

    fn rules(mode: PolicyMode) -> PolicyRules {
        PolicyRules {
            mode,
            plan: "dns-switchover".into(),
            min_unhealthy_for: Duration::from_secs(120),
            cooldown: Duration::from_secs(3600),
            max_data_loss: Duration::from_secs(60),
        }
    }

    fn verdict(region: &str, health: Health, since: Instant) -> RegionVerdict {
        let down = if health == Health::Unhealthy {
            vec![
                DownProbe {
                    name: "api".into(),
                    kind: ProbeKind::Http,
                    since,
                    last_error: Some("connection refused".into()),
                },
                DownProbe {
                    name: "r53".into(),
                    kind: ProbeKind::Route53HealthCheck,
                    since,
                    last_error: None,
                },
            ]
        } else {
            Vec::new()
        };
        RegionVerdict {
            region: region.into(),
            health,
            since,
            down,
            pending: Vec::new(),
            probes_total: 3,
            probes_up: 1,
            explanation: format!("{health} for the test"),
        }
    }

    /// A world in which every condition for a failover holds at `now`.
    struct World {
        now: Instant,
        hot: Option<RegionVerdict>,
        cold: Option<RegionVerdict>,
        run_active: bool,
        last_failover: Option<Instant>,
        acknowledged: bool,
        lag: Option<ReplicationLag>,
        drift: Option<String>,
        retry_not_before: Option<Instant>,
    }

    impl World {
        fn failing_hot(t0: Instant) -> Self {
            let now = t0 + 10 * MIN;
            Self {
                now,
                hot: Some(verdict("us-east-1", Health::Unhealthy, t0)),
                cold: Some(verdict("us-west-2", Health::Healthy, t0)),
                run_active: false,
                last_failover: None,
                acknowledged: false,
                lag: Some(ReplicationLag {
                    lag: Duration::from_secs(2),
                    observed_at: now - MIN,
                }),
                drift: None,
                retry_not_before: None,
            }
        }

        fn decide(&self, mode: PolicyMode) -> Decision {
            decide(
                &rules(mode),
                &PolicyInput {
                    now: self.now,
                    hot: self.hot.as_ref(),
                    cold: self.cold.as_ref(),
                    run_active: self.run_active,
                    last_failover: self.last_failover,
                    cooldown_acknowledged: self.acknowledged,
                    replication_lag: self.lag,
                    drift: self.drift.as_deref(),
                    retry_not_before: self.retry_not_before,
                },
            )
        }
    }

    fn hold(d: &Decision) -> Reason {
        assert_eq!(d.action, Action::Hold, "{d:?}");
        d.reason
    }

    #[test]
    fn starts_when_every_condition_holds() {
        let t0 = Instant::now();
        let world = World::failing_hot(t0);
        let d = world.decide(PolicyMode::Automatic);
        assert_eq!(
            d.action,
            Action::Start {
                approval_required: false
            }
        );
        assert_eq!(d.reason, Reason::HotRegionUnhealthy);
        assert!(d.blockers.is_empty());
        assert!(
            d.detail.contains("us-east-1 unhealthy for 10m"),
            "{}",
            d.detail
        );
        assert!(
            d.detail.contains("api (connection refused)"),
            "{}",
            d.detail
        );
        let d = world.decide(PolicyMode::ApprovalRequired);
        assert_eq!(
            d.action,
            Action::Start {
                approval_required: true
            }
        );
        assert_eq!(d.action.as_str(), "request_approval");
    }

    #[test]
    fn mode_off_never_starts_and_says_so_last() {
        let t0 = Instant::now();
        let world = World::failing_hot(t0);
        let d = world.decide(PolicyMode::Off);
        assert_eq!(hold(&d), Reason::PolicyOff);
        assert_eq!(d.blockers, [Reason::PolicyOff]);
        // With the hot region healthy, the health is the reason and off is still listed.
        let mut world = world;
        world.hot = Some(verdict("us-east-1", Health::Healthy, t0));
        let d = world.decide(PolicyMode::Off);
        assert_eq!(hold(&d), Reason::HotRegionHealthy);
        assert_eq!(d.blockers, [Reason::HotRegionHealthy, Reason::PolicyOff]);
    }

    #[test]
    fn the_hot_region_must_be_unhealthy_for_min_unhealthy_for() {
        let t0 = Instant::now();
        let mut world = World::failing_hot(t0);
        for (health, reason) in [
            (Health::Healthy, Reason::HotRegionHealthy),
            (Health::Degraded, Reason::HotRegionDegraded),
            (Health::Unknown, Reason::HotRegionUnknown),
        ] {
            world.hot = Some(verdict("us-east-1", health, t0));
            assert_eq!(hold(&world.decide(PolicyMode::Automatic)), reason);
        }
        world.hot = None;
        assert_eq!(
            hold(&world.decide(PolicyMode::Automatic)),
            Reason::HotRegionUnknown
        );
        // Unhealthy since t0: 119 s is too brief, 120 s is enough.
        world.hot = Some(verdict("us-east-1", Health::Unhealthy, t0));
        world.now = t0 + Duration::from_secs(119);
        let d = world.decide(PolicyMode::Automatic);
        assert_eq!(hold(&d), Reason::UnhealthyTooBriefly);
        assert!(d.detail.contains("1m 59s"), "{}", d.detail);
        world.now = t0 + Duration::from_secs(120);
        assert!(matches!(
            world.decide(PolicyMode::Automatic).action,
            Action::Start { .. }
        ));
    }

    #[test]
    fn a_flapping_hot_region_never_accumulates_unhealthy_time() {
        // The verdict flips every 90 s (less than min_unhealthy_for): `since` restarts at each
        // flip, so no evaluation ever finds two minutes of unbroken unhealthiness.
        let t0 = Instant::now();
        let mut world = World::failing_hot(t0);
        for step in 0..40u32 {
            let flip = t0 + Duration::from_secs(90) * (step / 9);
            world.now = t0 + Duration::from_secs(10) * step;
            let health = if (step / 9) % 2 == 0 {
                Health::Unhealthy
            } else {
                Health::Healthy
            };
            world.hot = Some(verdict("us-east-1", health, flip));
            let d = world.decide(PolicyMode::Automatic);
            assert_eq!(d.action, Action::Hold, "step {step}: {d:?}");
        }
    }

    #[test]
    fn a_single_vantage_partition_seen_as_degraded_does_not_fail_over() {
        // The verdict turns a partition seen from this daemon alone into `degraded` (see
        // health::verdict); however long it lasts, the policy holds.
        let t0 = Instant::now();
        let mut world = World::failing_hot(t0);
        world.hot = Some(verdict("us-east-1", Health::Degraded, t0));
        world.now = t0 + Duration::from_secs(24 * 3600);
        let d = world.decide(PolicyMode::Automatic);
        assert_eq!(hold(&d), Reason::HotRegionDegraded);
    }

    #[test]
    fn the_cold_region_must_be_healthy() {
        let t0 = Instant::now();
        let mut world = World::failing_hot(t0);
        for health in [Health::Unhealthy, Health::Degraded, Health::Unknown] {
            world.cold = Some(verdict("us-west-2", health, t0));
            let d = world.decide(PolicyMode::Automatic);
            assert_eq!(hold(&d), Reason::ColdRegionNotHealthy);
            assert!(d.detail.contains(health.as_str()), "{}", d.detail);
        }
        world.cold = None;
        assert_eq!(
            hold(&world.decide(PolicyMode::Automatic)),
            Reason::ColdRegionNotHealthy
        );
    }

    #[test]
    fn an_active_run_holds_first() {
        let t0 = Instant::now();
        let mut world = World::failing_hot(t0);
        world.run_active = true;
        world.drift = Some("DNS points at us-west-2".into());
        let d = world.decide(PolicyMode::Automatic);
        assert_eq!(hold(&d), Reason::RunActive);
        assert_eq!(d.blockers, [Reason::RunActive, Reason::TopologyDrift]);
    }

    #[test]
    fn drift_blocks() {
        let t0 = Instant::now();
        let mut world = World::failing_hot(t0);
        world.drift = Some("Aurora writer is in us-west-2".into());
        let d = world.decide(PolicyMode::Automatic);
        assert_eq!(hold(&d), Reason::TopologyDrift);
        assert!(d.detail.contains("Aurora writer"), "{}", d.detail);
    }

    #[test]
    fn replication_lag_must_be_known_and_within_budget() {
        let t0 = Instant::now();
        let mut world = World::failing_hot(t0);
        world.lag = None;
        assert_eq!(
            hold(&world.decide(PolicyMode::Automatic)),
            Reason::ReplicationLagUnknown
        );
        world.lag = Some(ReplicationLag {
            lag: Duration::from_secs(61),
            observed_at: world.now - Duration::from_secs(30),
        });
        let d = world.decide(PolicyMode::Automatic);
        assert_eq!(hold(&d), Reason::ReplicationLagOverBudget);
        assert!(d.detail.contains("1m 1s"), "{}", d.detail);
        assert!(d.detail.contains("30s ago"), "{}", d.detail);
        // Exactly at the budget is within it.
        world.lag = Some(ReplicationLag {
            lag: Duration::from_secs(60),
            observed_at: world.now,
        });
        assert!(matches!(
            world.decide(PolicyMode::Automatic).action,
            Action::Start { .. }
        ));
    }

    #[test]
    fn cooldown_blocks_until_it_passes_or_is_acknowledged() {
        let t0 = Instant::now();
        let mut world = World::failing_hot(t0);
        world.last_failover = Some(world.now - Duration::from_secs(3599));
        let d = world.decide(PolicyMode::Automatic);
        assert_eq!(hold(&d), Reason::Cooldown);
        assert!(d.detail.contains("acknowledge"), "{}", d.detail);
        world.acknowledged = true;
        assert!(matches!(
            world.decide(PolicyMode::Automatic).action,
            Action::Start { .. }
        ));
        world.acknowledged = false;
        world.last_failover = Some(world.now - Duration::from_secs(3600));
        assert!(matches!(
            world.decide(PolicyMode::Automatic).action,
            Action::Start { .. }
        ));
    }

    #[test]
    fn a_failed_start_backs_off() {
        let t0 = Instant::now();
        let mut world = World::failing_hot(t0);
        world.retry_not_before = Some(world.now + Duration::from_secs(1));
        assert_eq!(
            hold(&world.decide(PolicyMode::Automatic)),
            Reason::StartBackoff
        );
        world.retry_not_before = Some(world.now);
        assert!(matches!(
            world.decide(PolicyMode::Automatic).action,
            Action::Start { .. }
        ));
    }

    #[test]
    fn all_blockers_are_listed_in_priority_order() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(10);
        let world = World {
            now,
            hot: Some(verdict("us-east-1", Health::Unhealthy, t0)),
            cold: Some(verdict("us-west-2", Health::Degraded, t0)),
            run_active: true,
            last_failover: Some(t0),
            acknowledged: false,
            lag: None,
            drift: Some("x".into()),
            retry_not_before: Some(now + MIN),
        };
        let d = world.decide(PolicyMode::Off);
        assert_eq!(
            d.blockers,
            [
                Reason::RunActive,
                Reason::UnhealthyTooBriefly,
                Reason::ColdRegionNotHealthy,
                Reason::TopologyDrift,
                Reason::ReplicationLagUnknown,
                Reason::Cooldown,
                Reason::StartBackoff,
                Reason::PolicyOff,
            ]
        );
    }

    #[test]
    fn exhaustively_starts_only_when_nothing_blocks() {
        // Every combination of the boolean conditions: a start iff all are favourable.
        let t0 = Instant::now();
        for code in 0..(1u32 << 8) {
            let bit = |i: u32| code & (1 << i) != 0;
            let mut world = World::failing_hot(t0);
            world.run_active = bit(0);
            if bit(1) {
                world.hot = Some(verdict("us-east-1", Health::Degraded, t0));
            }
            if bit(2) {
                world.hot = world.hot.take().map(|h| RegionVerdict {
                    since: world.now,
                    ..h
                });
            }
            if bit(3) {
                world.cold = Some(verdict("us-west-2", Health::Unhealthy, t0));
            }
            if bit(4) {
                world.drift = Some("drift".into());
            }
            if bit(5) {
                world.lag = None;
            }
            if bit(6) {
                world.last_failover = Some(world.now);
            }
            let mode = if bit(7) {
                PolicyMode::Off
            } else {
                PolicyMode::Automatic
            };
            let d = world.decide(mode);
            let start = matches!(d.action, Action::Start { .. });
            assert_eq!(start, code == 0, "code {code:08b}: {d:?}");
            assert_eq!(d.blockers.is_empty(), start);
            if !start {
                assert_eq!(d.blockers[0], d.reason);
            }
        }
    }

    #[test]
    fn reason_labels_are_unique_snake_case() {
        let labels: std::collections::BTreeSet<&str> =
            Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), Reason::ALL.len());
        for label in labels {
            assert!(
                label.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{label}"
            );
        }
        for r in Reason::ALL {
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::Value::String(r.as_str().into())
            );
        }
    }
}
