//! [`PolicyLoop`]: the task that re-evaluates [`decide`] on every verdict change, every change of
//! the facts fed through the handle, and on a one-second tick, logs and counts changes of
//! decision, and starts the failover run through the [`RunStarter`].

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{IntCounterVec, Opts, Registry};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;

use super::decision::{decide, secs, Action, PolicyInput, PolicyRules, Reason};
use super::handle::{
    DecisionRecord, Facts, PolicyHandle, PolicyShared, Records, StartFailure, StartRecord,
};
use super::port::{RunStartError, RunStarter};
use crate::config::PolicyConfig;
use crate::health::monitor::HealthVerdicts;
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

/// Why the policy loop could not start.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("policy metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("the policy loop must be started inside a Tokio runtime")]
    NoRuntime,
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
            leader: None,
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
        follower: facts.leader == Some(false),
    };
    let decision = decide(rules, &input);
    // Detection = when the hot region's verdict entered its current health (unhealthy, when the
    // decision is to start): the report's RTO starts there, not at the run's creation.
    let detected_at = input.hot.map(|hot| wall_clock_of(hot.since, now));
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

    let Action::Start {
        approval_required,
        accept_data_loss,
    } = decision.action
    else {
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
        state.starter.start_failover(
            &plan,
            approval_required,
            accept_data_loss,
            &run_reason,
            detected_at,
        ),
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

/// The wall-clock time of `instant`, a monotonic instant before `now`. Verdicts are timed with
/// the monotonic clock (immune to clock steps); the journal records wall-clock times.
fn wall_clock_of(instant: Instant, now: Instant) -> OffsetDateTime {
    let ago = now.saturating_duration_since(instant);
    let ago = time::Duration::try_from(ago).unwrap_or(time::Duration::ZERO);
    OffsetDateTime::now_utc() - ago
}
