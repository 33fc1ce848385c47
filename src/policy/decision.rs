//! The pure automatic-failover decision: [`decide`] over a [`PolicyInput`] under the
//! [`PolicyRules`], giving a [`Decision`] whose [`Reason`]s are a fixed vocabulary (the conditions
//! and their order are in the `policy` module docs).

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::config::{PolicyConfig, PolicyMode};
use crate::health::verdict::{Health, RegionVerdict};

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
    /// Another failoverd leads: it decides, this one only watches.
    NotLeader,
}

impl Reason {
    /// Every reason, for tests and documentation.
    pub const ALL: [Reason; 15] = [
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
        Reason::NotLeader,
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
            Self::NotLeader => "not_leader",
        }
    }
}

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start the configured plan; with `approval_required` the run waits for an operator. With
    /// `accept_data_loss` the data loss could not be bounded: the run is escalated to a person,
    /// and approving it accepts the loss.
    Start {
        approval_required: bool,
        accept_data_loss: bool,
    },
    Hold,
}

impl Action {
    /// The metric label (`decision="..."`): `start`, `request_approval` or `hold`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start {
                approval_required: false,
                ..
            } => "start",
            Self::Start {
                approval_required: true,
                ..
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
    /// The replication lag bounds the data loss (`policy.data_loss_bound`); without it the lag
    /// is not looked at.
    pub bound_data_loss: bool,
}

impl PolicyRules {
    pub fn from_config(config: &PolicyConfig) -> Self {
        Self {
            mode: config.mode,
            plan: config.plan.clone(),
            min_unhealthy_for: config.min_unhealthy_for.get(),
            cooldown: config.cooldown.get(),
            max_data_loss: config.max_data_loss.get(),
            bound_data_loss: config.data_loss_bound == crate::config::DataLossBound::ReplicationLag,
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
    /// Another failoverd holds leadership (`false` while unknown: the engine refuses a follower's
    /// start anyway).
    pub follower: bool,
}

/// The pure decision. See the module docs for the conditions and their order.
pub fn decide(rules: &PolicyRules, input: &PolicyInput<'_>) -> Decision {
    let now = input.now;
    let mut blockers: Vec<(Reason, String)> = Vec::new();

    if input.follower {
        blockers.push((
            Reason::NotLeader,
            "this failoverd is a follower: the leader decides".to_owned(),
        ));
    }
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
        _ if !rules.bound_data_loss => {}
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

    // Everything says "fail over" except that the data loss cannot be bounded (the lag is unknown
    // or over the budget): that is a decision for a person, not a reason to wait forever while
    // the region is down. Escalate: create the run waiting for approval; approving it accepts
    // the loss.
    let data_loss_only = !blockers.is_empty()
        && blockers.iter().all(|(r, _)| {
            matches!(
                r,
                Reason::ReplicationLagUnknown | Reason::ReplicationLagOverBudget
            )
        });
    if data_loss_only {
        let (reason, detail) = blockers[0].clone();
        let hot = input.hot.map(|h| h.region.as_str()).unwrap_or_default();
        let held = input.hot.map(|h| h.held_for(now)).unwrap_or_default();
        return Decision {
            action: Action::Start {
                approval_required: true,
                accept_data_loss: true,
            },
            reason,
            blockers: Vec::new(),
            detail: format!(
                "hot region {hot} unhealthy for {}, but {detail}: escalated to a person — \
                 approving this run accepts the data loss",
                secs(held)
            ),
        };
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
    let data_loss = if rules.bound_data_loss {
        let lag = input.replication_lag.map(|l| l.lag).unwrap_or_default();
        format!("last known replication lag {}", secs(lag))
    } else {
        "no replicated database (policy.data_loss_bound: none)".to_owned()
    };
    Decision {
        action: Action::Start {
            approval_required: rules.mode == PolicyMode::ApprovalRequired,
            accept_data_loss: false,
        },
        reason: Reason::HotRegionUnhealthy,
        blockers: Vec::new(),
        detail: format!(
            "hot region {hot} unhealthy for {}, {data_loss}; down: {evidence}",
            secs(held),
        ),
    }
}

/// Durations in logs and status, rounded to whole seconds.
pub(super) fn secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
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
            bound_data_loss: true,
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
        follower: bool,
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
                follower: false,
            }
        }

        fn decide(&self, mode: PolicyMode) -> Decision {
            self.decide_with(&rules(mode))
        }

        fn decide_with(&self, rules: &PolicyRules) -> Decision {
            decide(
                rules,
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
                    follower: self.follower,
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
                approval_required: false,
                accept_data_loss: false,
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
                approval_required: true,
                accept_data_loss: false,
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
    fn a_follower_never_starts_a_failover() {
        let t0 = Instant::now();
        let mut world = World::failing_hot(t0);
        assert!(matches!(
            world.decide(PolicyMode::Automatic).action,
            Action::Start { .. }
        ));
        world.follower = true;
        let d = world.decide(PolicyMode::Automatic);
        assert_eq!(hold(&d), Reason::NotLeader);
        // Not even the escalation of an unbounded data loss.
        world.lag = None;
        assert_eq!(
            hold(&world.decide(PolicyMode::Automatic)),
            Reason::NotLeader
        );
    }

    #[test]
    fn without_a_data_loss_bound_the_lag_is_not_looked_at() {
        let t0 = Instant::now();
        let mut world = World::failing_hot(t0);
        world.lag = None;
        let mut r = rules(PolicyMode::Automatic);
        r.bound_data_loss = false;
        let d = world.decide_with(&r);
        assert_eq!(
            d.action,
            Action::Start {
                approval_required: false,
                accept_data_loss: false
            }
        );
        assert!(d.detail.contains("data_loss_bound: none"), "{}", d.detail);
    }

    #[test]
    fn replication_lag_must_be_known_and_within_budget() {
        let t0 = Instant::now();
        let mut world = World::failing_hot(t0);
        // An unbounded data loss is escalated to a person, in either mode.
        let escalated = Action::Start {
            approval_required: true,
            accept_data_loss: true,
        };
        world.lag = None;
        for mode in [PolicyMode::Automatic, PolicyMode::ApprovalRequired] {
            let d = world.decide(mode);
            assert_eq!(d.action, escalated, "{mode:?}");
            assert_eq!(d.reason, Reason::ReplicationLagUnknown);
            assert!(
                d.detail.contains("approving this run accepts"),
                "{}",
                d.detail
            );
        }
        assert_eq!(
            hold(&world.decide(PolicyMode::Off)),
            Reason::ReplicationLagUnknown,
            "never with the policy off"
        );
        world.lag = Some(ReplicationLag {
            lag: Duration::from_secs(61),
            observed_at: world.now - Duration::from_secs(30),
        });
        let d = world.decide(PolicyMode::Automatic);
        assert_eq!(d.action, escalated);
        assert_eq!(d.reason, Reason::ReplicationLagOverBudget);
        assert!(d.detail.contains("1m 1s"), "{}", d.detail);
        assert!(d.detail.contains("30s ago"), "{}", d.detail);
        // Another blocker as well (the standby unhealthy): hold, listing both.
        world.cold = Some(verdict("us-west-2", Health::Unhealthy, world.now));
        let d = world.decide(PolicyMode::Automatic);
        assert_eq!(hold(&d), Reason::ColdRegionNotHealthy);
        assert!(d.blockers.contains(&Reason::ReplicationLagOverBudget));
        world.cold = Some(verdict("us-west-2", Health::Healthy, world.now));
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
            follower: true,
        };
        let d = world.decide(PolicyMode::Off);
        assert_eq!(
            d.blockers,
            [
                Reason::NotLeader,
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
            // Only the lag unknown: escalated to a person rather than held.
            let escalated = code == 1 << 5;
            assert_eq!(start, code == 0 || escalated, "code {code:08b}: {d:?}");
            assert_eq!(
                d.action,
                match (code == 0, escalated) {
                    (true, _) => Action::Start {
                        approval_required: false,
                        accept_data_loss: false
                    },
                    (_, true) => Action::Start {
                        approval_required: true,
                        accept_data_loss: true
                    },
                    _ => Action::Hold,
                },
                "code {code:08b}"
            );
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
