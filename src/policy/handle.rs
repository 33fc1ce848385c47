//! [`PolicyHandle`]: the policy loop's cloneable handle. Other components feed it facts
//! (replication lag, drift, the active region, failovers and their acknowledgement); it keeps the
//! records `/v1/status` shows ([`PolicyStatus`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;

use super::decision::{PolicyRules, Reason, ReplicationLag};
use crate::config::PolicyMode;

/// The facts other components feed the policy through [`PolicyHandle`].
#[derive(Clone, Debug)]
pub(super) struct Facts {
    pub(super) active_region: String,
    pub(super) standby_region: String,
    pub(super) replication_lag: Option<ReplicationLag>,
    pub(super) drift: Option<String>,
    pub(super) last_failover: Option<Instant>,
    pub(super) acknowledged_by: Option<String>,
    /// Whether this failoverd leads (`None` until known).
    pub(super) leader: Option<bool>,
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
pub(super) struct Records {
    pub(super) last_decision: Option<DecisionRecord>,
    pub(super) last_start: Option<StartRecord>,
    pub(super) last_start_failure: Option<StartFailure>,
}

pub(super) struct PolicyShared {
    pub(super) rules: PolicyRules,
    pub(super) facts: watch::Sender<Facts>,
    pub(super) records: Mutex<Records>,
}

impl PolicyShared {
    pub(super) fn records(&self) -> MutexGuard<'_, Records> {
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
    pub(super) shared: Arc<PolicyShared>,
    pub(super) stopped: watch::Receiver<bool>,
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

    /// Whether this failoverd holds leadership (`None`: not known yet). A follower never starts
    /// a failover: it holds with `not_leader`.
    pub fn set_leader(&self, leader: Option<bool>) {
        self.shared.facts.send_if_modified(|f| {
            let changed = f.leader != leader;
            f.leader = leader;
            changed
        });
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
