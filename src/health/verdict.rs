//! The pure health verdict: per-probe hysteresis, then a quorum per region.
//!
//! Deciding that a region is down is the first half of deciding to fail over, so this module is
//! written to be hard to fool (DESIGN.md §1.1):
//!
//! - **Hysteresis per probe.** One failed check means nothing; a probe only counts as *down* after
//!   `unhealthy_after` consecutive failures and as *up* again after `healthy_after` consecutive
//!   successes. A probe that alternates never changes state, so a flapping endpoint cannot make the
//!   verdict flap. A check that could not conclude either way (Route 53 has no checker report yet,
//!   a CloudWatch alarm has insufficient data) is recorded but neither extends nor breaks a streak.
//! - **Quorum per region.** A region is *unhealthy* only when at least `min_failing` of its probes
//!   are down and — with `require_distinct_kinds` — those probes look at the region from at least
//!   two different [vantage points](Vantage). HTTP, TCP and DNS probes all run from this daemon,
//!   over the same network path, so a partition between this daemon and the hot region fails all
//!   of them at once; counting them as one vantage point is what keeps a single-vantage partition
//!   from condemning a healthy region. Route 53's global checkers and the region's own CloudWatch
//!   alarms are the independent witnesses.
//!
//! Everything here is a pure function of observations and time (`tokio::time::Instant`, so tests
//! and the monitor can run on paused time); the monitor task (`super::monitor`) owns the I/O.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use crate::config::{HealthConfig, ProbeKind};

/// The result of one probe check, as the verdict sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// The target answered as expected.
    Success,
    /// The target did not answer as expected; the text says how (shown as evidence).
    Failure(String),
    /// The check could not tell (no data yet); the text says why. Neither extends nor breaks a
    /// streak.
    Inconclusive(String),
}

impl CheckResult {
    /// Fixed label for metrics and the status view.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure(_) => "failure",
            Self::Inconclusive(_) => "inconclusive",
        }
    }
}

/// Thresholds of the per-probe hysteresis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hysteresis {
    /// Consecutive failures before a probe counts as down (at least 1).
    pub unhealthy_after: u32,
    /// Consecutive successes before a probe counts as up (at least 1).
    pub healthy_after: u32,
}

impl Hysteresis {
    pub fn from_config(config: &HealthConfig) -> Self {
        Self {
            // Validation keeps both in 1..=100; `max(1)` keeps the arithmetic meaningful anyway.
            unhealthy_after: config.unhealthy_after.max(1),
            healthy_after: config.healthy_after.max(1),
        }
    }
}

/// What a probe currently counts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeState {
    /// Not enough consecutive results yet to say (the probe just started).
    Pending,
    Up,
    Down,
}

impl ProbeState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

/// The hysteresis state of one probe. Update it with [`ProbeHealth::observe`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeHealth {
    pub state: ProbeState,
    /// When `state` was entered (for `Pending`: when the probe started).
    pub since: Instant,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// The most recent failure's text, kept after recovery so an operator can see what it was.
    pub last_error: Option<String>,
    /// The most recent result of any kind.
    pub last_result: Option<CheckResult>,
    pub last_checked: Option<Instant>,
    /// Checks recorded since the probe started.
    pub checks: u64,
}

impl ProbeHealth {
    /// A probe that has not been checked yet.
    pub fn new(now: Instant) -> Self {
        Self {
            state: ProbeState::Pending,
            since: now,
            consecutive_failures: 0,
            consecutive_successes: 0,
            last_error: None,
            last_result: None,
            last_checked: None,
            checks: 0,
        }
    }

    /// The state after one more check result at `now`.
    pub fn observe(&self, result: &CheckResult, now: Instant, hysteresis: Hysteresis) -> Self {
        let mut next = self.clone();
        next.checks = self.checks.saturating_add(1);
        next.last_checked = Some(now);
        next.last_result = Some(result.clone());
        match result {
            CheckResult::Success => {
                next.consecutive_successes = self.consecutive_successes.saturating_add(1);
                next.consecutive_failures = 0;
                if self.state != ProbeState::Up
                    && next.consecutive_successes >= hysteresis.healthy_after
                {
                    next.state = ProbeState::Up;
                    next.since = now;
                }
            }
            CheckResult::Failure(error) => {
                next.consecutive_failures = self.consecutive_failures.saturating_add(1);
                next.consecutive_successes = 0;
                next.last_error = Some(error.clone());
                if self.state != ProbeState::Down
                    && next.consecutive_failures >= hysteresis.unhealthy_after
                {
                    next.state = ProbeState::Down;
                    next.since = now;
                }
            }
            CheckResult::Inconclusive(_) => {}
        }
        next
    }
}

/// Where a probe looks at a region from. Probes sharing a vantage point fail together when the
/// path from that point is cut, so a quorum that must span vantage points cannot be met by one
/// partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Vantage {
    /// HTTP, TCP and DNS probes: this daemon's own network path to the region.
    Daemon,
    /// Route 53 health-check status: AWS's checkers in several regions worldwide.
    Route53Checkers,
    /// CloudWatch alarm state: the region's own service metrics.
    RegionMetrics,
}

impl Vantage {
    pub fn of(kind: ProbeKind) -> Self {
        match kind {
            ProbeKind::Http | ProbeKind::Tcp | ProbeKind::Dns => Self::Daemon,
            ProbeKind::Route53HealthCheck => Self::Route53Checkers,
            ProbeKind::CloudwatchAlarm => Self::RegionMetrics,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daemon => "daemon",
            Self::Route53Checkers => "route53_checkers",
            Self::RegionMetrics => "region_metrics",
        }
    }
}

/// The quorum a region's down probes must meet to condemn it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuorumRule {
    /// At least this many probes must be down (at least 1).
    pub min_failing: u32,
    /// The down probes must come from at least this many distinct [`Vantage`] points (1 = no
    /// requirement).
    pub min_vantage_points: u32,
}

impl QuorumRule {
    /// `require_distinct_kinds` means "more than one vantage point": see the module docs for why
    /// HTTP, TCP and DNS probes count as one.
    pub fn from_config(config: &HealthConfig) -> Self {
        Self {
            min_failing: config.min_failing.max(1),
            min_vantage_points: if config.require_distinct_kinds { 2 } else { 1 },
        }
    }
}

/// A region's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No probe has reached a state yet (or the region has no probes).
    Unknown,
    /// The down probes meet the quorum.
    Unhealthy,
    /// Some probes are down, without quorum.
    Degraded,
    /// No probe is down and at least one is up.
    Healthy,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Unhealthy => "unhealthy",
            Self::Degraded => "degraded",
            Self::Healthy => "healthy",
        }
    }

    /// Value of `failoverd_region_health` (0 unhealthy, 1 degraded, 2 healthy); `None` for
    /// unknown, which is exported as no sample rather than as a value alerts could mistake.
    pub fn gauge_value(self) -> Option<i64> {
        match self {
            Self::Unknown => None,
            Self::Unhealthy => Some(0),
            Self::Degraded => Some(1),
            Self::Healthy => Some(2),
        }
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One probe as the region verdict sees it.
#[derive(Clone, Copy, Debug)]
pub struct ProbeView<'a> {
    pub name: &'a str,
    pub kind: ProbeKind,
    pub health: &'a ProbeHealth,
}

/// A down probe cited as evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownProbe {
    pub name: String,
    pub kind: ProbeKind,
    pub since: Instant,
    pub last_error: Option<String>,
}

/// A region's verdict, with how long it has held and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionVerdict {
    pub region: String,
    pub health: Health,
    /// When the region entered `health`.
    pub since: Instant,
    /// The down probes, by name.
    pub down: Vec<DownProbe>,
    /// Probes that have not reached a state yet.
    pub pending: Vec<String>,
    /// Probes counted.
    pub probes_total: usize,
    pub probes_up: usize,
    /// One sentence saying why the verdict is what it is.
    pub explanation: String,
}

impl RegionVerdict {
    /// How long the region has been in its current health at `now`.
    pub fn held_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.since)
    }

    /// Whether `other` says the same thing (health, since and which probes are down); last-error
    /// texts may differ. The monitor publishes a verdict change only when this is false.
    pub fn same_verdict(&self, other: &RegionVerdict) -> bool {
        self.health == other.health
            && self.since == other.since
            && self.pending == other.pending
            && self.down.len() == other.down.len()
            && self
                .down
                .iter()
                .zip(&other.down)
                .all(|(a, b)| a.name == b.name && a.since == b.since)
    }
}

/// The verdict for `region` from its probes at `now`. `previous` is the region's last verdict:
/// when the health is unchanged its `since` carries over, so "unhealthy for 3 minutes" means three
/// minutes of the same health, whatever happened to individual probes meanwhile.
pub fn region_verdict(
    region: &str,
    probes: &[ProbeView<'_>],
    rule: QuorumRule,
    previous: Option<&RegionVerdict>,
    now: Instant,
) -> RegionVerdict {
    let mut down: Vec<DownProbe> = probes
        .iter()
        .filter(|p| p.health.state == ProbeState::Down)
        .map(|p| DownProbe {
            name: p.name.to_owned(),
            kind: p.kind,
            since: p.health.since,
            last_error: p.health.last_error.clone(),
        })
        .collect();
    down.sort_by(|a, b| a.name.cmp(&b.name));
    let mut pending: Vec<String> = probes
        .iter()
        .filter(|p| p.health.state == ProbeState::Pending)
        .map(|p| p.name.to_owned())
        .collect();
    pending.sort();
    let probes_up = probes
        .iter()
        .filter(|p| p.health.state == ProbeState::Up)
        .count();
    let vantages: BTreeSet<Vantage> = down.iter().map(|p| Vantage::of(p.kind)).collect();

    let down_count = down.len();
    let enough_probes = down_count >= rule.min_failing as usize;
    let enough_vantages = vantages.len() >= rule.min_vantage_points as usize;
    let (health, explanation) = if probes.is_empty() {
        (
            Health::Unknown,
            "no probe is configured for this region".to_owned(),
        )
    } else if down_count == 0 && probes_up == 0 {
        (
            Health::Unknown,
            format!(
                "no probe has reached a state yet ({} pending)",
                pending.len()
            ),
        )
    } else if down_count == 0 {
        (
            Health::Healthy,
            format!("{probes_up} of {} probe(s) up, none down", probes.len()),
        )
    } else if enough_probes && enough_vantages {
        (
            Health::Unhealthy,
            format!(
                "{down_count} probe(s) down from {} vantage point(s) ({}), quorum is {} from {}",
                vantages.len(),
                vantage_list(&vantages),
                rule.min_failing,
                rule.min_vantage_points
            ),
        )
    } else if !enough_probes {
        (
            Health::Degraded,
            format!(
                "{down_count} probe(s) down, fewer than the {} needed to condemn the region",
                rule.min_failing
            ),
        )
    } else {
        (
            Health::Degraded,
            format!(
                "{down_count} probe(s) down, all seen from {} vantage point(s) ({}); {} needed to \
                 condemn the region",
                vantages.len(),
                vantage_list(&vantages),
                rule.min_vantage_points
            ),
        )
    };
    let since = match previous {
        Some(p) if p.health == health => p.since,
        _ => now,
    };
    RegionVerdict {
        region: region.to_owned(),
        health,
        since,
        down,
        pending,
        probes_total: probes.len(),
        probes_up,
        explanation,
    }
}

fn vantage_list(vantages: &BTreeSet<Vantage>) -> String {
    vantages
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Hysteresis = Hysteresis {
        unhealthy_after: 3,
        healthy_after: 2,
    };
    const SEC: Duration = Duration::from_secs(1);

    fn fail() -> CheckResult {
        CheckResult::Failure("connection refused".into())
    }

    fn ok() -> CheckResult {
        CheckResult::Success
    }

    fn unsure() -> CheckResult {
        CheckResult::Inconclusive("no data".into())
    }

    /// Feeds `results` one second apart from `start`; returns the final health and the state after
    /// each step.
    fn feed(
        start: Instant,
        initial: ProbeHealth,
        results: &[CheckResult],
        h: Hysteresis,
    ) -> (ProbeHealth, Vec<ProbeState>) {
        let mut health = initial;
        let mut states = Vec::new();
        for (i, r) in results.iter().enumerate() {
            health = health.observe(r, start + SEC * (i as u32 + 1), h);
            states.push(health.state);
        }
        (health, states)
    }

    fn up_probe(start: Instant) -> ProbeHealth {
        feed(start, ProbeHealth::new(start), &[ok(), ok()], H).0
    }

    #[test]
    fn a_new_probe_is_pending_until_a_streak_completes() {
        let t = Instant::now();
        let (_, states) = feed(t, ProbeHealth::new(t), &[ok(), ok()], H);
        assert_eq!(states, [ProbeState::Pending, ProbeState::Up]);
        let (_, states) = feed(t, ProbeHealth::new(t), &[fail(), fail(), fail()], H);
        assert_eq!(
            states,
            [ProbeState::Pending, ProbeState::Pending, ProbeState::Down]
        );
    }

    #[test]
    fn goes_down_after_exactly_unhealthy_after_failures_and_up_after_healthy_after_successes() {
        let t = Instant::now();
        let (health, states) = feed(
            t,
            up_probe(t),
            &[fail(), fail(), fail(), ok(), ok(), fail()],
            H,
        );
        use ProbeState::*;
        assert_eq!(states, [Up, Up, Down, Down, Up, Up]);
        assert_eq!(health.last_error.as_deref(), Some("connection refused"));
        assert_eq!(health.consecutive_failures, 1);
        assert_eq!(health.consecutive_successes, 0);
        assert_eq!(health.checks, 2 + 6);
    }

    #[test]
    fn since_is_the_time_of_the_transition_not_of_the_last_check() {
        let t = Instant::now();
        let start = up_probe(t);
        let (health, _) = feed(t, start, &[fail(), fail(), fail(), fail(), fail()], H);
        assert_eq!(health.state, ProbeState::Down);
        assert_eq!(health.since, t + SEC * 3);
        assert_eq!(health.last_checked, Some(t + SEC * 5));
    }

    #[test]
    fn a_flapping_probe_never_changes_state() {
        let t = Instant::now();
        let flapping: Vec<CheckResult> = (0..50)
            .map(|i| if i % 2 == 0 { fail() } else { ok() })
            .collect();
        let (_, states) = feed(t, up_probe(t), &flapping, H);
        assert!(states.iter().all(|s| *s == ProbeState::Up), "{states:?}");
        // Two failures, one success: still never three in a row.
        let bursty: Vec<CheckResult> = (0..60)
            .map(|i| if i % 3 == 2 { ok() } else { fail() })
            .collect();
        let (_, states) = feed(t, up_probe(t), &bursty, H);
        assert!(states.iter().all(|s| *s == ProbeState::Up), "{states:?}");
        // And a down probe that gets one success between failures stays down.
        let down = feed(t, ProbeHealth::new(t), &[fail(), fail(), fail()], H).0;
        let (_, states) = feed(t, down, &flapping, H);
        assert!(states.iter().all(|s| *s == ProbeState::Down), "{states:?}");
    }

    #[test]
    fn inconclusive_results_neither_extend_nor_break_a_streak() {
        let t = Instant::now();
        let (health, states) = feed(
            t,
            up_probe(t),
            &[fail(), unsure(), fail(), unsure(), unsure(), fail()],
            H,
        );
        use ProbeState::*;
        assert_eq!(states, [Up, Up, Up, Up, Up, Down]);
        assert_eq!(health.last_result, Some(fail()));
        // Inconclusive alone never establishes a state.
        let (health, _) = feed(t, ProbeHealth::new(t), &vec![unsure(); 20], H);
        assert_eq!(health.state, Pending);
        assert_eq!(health.checks, 20);
        assert_eq!(health.last_result, Some(unsure()));
    }

    #[test]
    fn thresholds_of_one_react_to_every_result() {
        let h = Hysteresis {
            unhealthy_after: 1,
            healthy_after: 1,
        };
        let t = Instant::now();
        let (_, states) = feed(t, ProbeHealth::new(t), &[ok(), fail(), ok(), fail()], h);
        use ProbeState::*;
        assert_eq!(states, [Up, Down, Up, Down]);
    }

    #[test]
    fn every_sequence_of_six_results_follows_the_streak_rule() {
        // Exhaustive over all 3^6 sequences of six results from each starting state (pending, up,
        // down), checked against a direct restatement of the rule: 2 successes in a row make a
        // probe up, 3 failures in a row make it down, inconclusive results are skipped.
        let t = Instant::now();
        let alphabet = [ok(), fail(), unsure()];
        let starts = [
            ProbeHealth::new(t),
            up_probe(t),
            feed(t, ProbeHealth::new(t), &[fail(), fail(), fail()], H).0,
        ];
        for start in starts {
            for code in 0..3usize.pow(6) {
                let seq: Vec<CheckResult> = (0..6)
                    .map(|i| alphabet[(code / 3usize.pow(i)) % 3].clone())
                    .collect();
                let (_, states) = feed(t, start.clone(), &seq, H);
                let mut state = start.state;
                let (mut f, mut s) = (start.consecutive_failures, start.consecutive_successes);
                for (r, got) in seq.iter().zip(&states) {
                    match r {
                        CheckResult::Success => {
                            s += 1;
                            f = 0;
                            if s >= 2 {
                                state = ProbeState::Up;
                            }
                        }
                        CheckResult::Failure(_) => {
                            f += 1;
                            s = 0;
                            if f >= 3 {
                                state = ProbeState::Down;
                            }
                        }
                        CheckResult::Inconclusive(_) => {}
                    }
                    assert_eq!(*got, state, "sequence {seq:?} from {:?}", start.state);
                }
            }
        }
    }

    struct Probe {
        name: &'static str,
        kind: ProbeKind,
        health: ProbeHealth,
    }

    fn probe(name: &'static str, kind: ProbeKind, state: ProbeState, t: Instant) -> Probe {
        let health = match state {
            ProbeState::Pending => ProbeHealth::new(t),
            ProbeState::Up => up_probe(t),
            ProbeState::Down => feed(t, up_probe(t), &[fail(), fail(), fail()], H).0,
        };
        Probe { name, kind, health }
    }

    fn verdict(
        probes: &[Probe],
        rule: QuorumRule,
        previous: Option<&RegionVerdict>,
        now: Instant,
    ) -> RegionVerdict {
        let views: Vec<ProbeView<'_>> = probes
            .iter()
            .map(|p| ProbeView {
                name: p.name,
                kind: p.kind,
                health: &p.health,
            })
            .collect();
        region_verdict("us-east-1", &views, rule, previous, now)
    }

    const QUORUM: QuorumRule = QuorumRule {
        min_failing: 2,
        min_vantage_points: 2,
    };

    use ProbeKind::*;
    use ProbeState::{Down as D, Pending as P, Up as U};

    #[test]
    fn no_probes_or_only_pending_probes_is_unknown() {
        let t = Instant::now();
        let v = verdict(&[], QUORUM, None, t);
        assert_eq!(v.health, Health::Unknown);
        let v = verdict(
            &[probe("a", Http, P, t), probe("b", Route53HealthCheck, P, t)],
            QUORUM,
            None,
            t,
        );
        assert_eq!(v.health, Health::Unknown);
        assert_eq!(v.pending, ["a", "b"]);
    }

    #[test]
    fn all_up_is_healthy_and_pending_probes_do_not_prevent_it() {
        let t = Instant::now();
        let v = verdict(
            &[probe("a", Http, U, t), probe("b", Route53HealthCheck, P, t)],
            QUORUM,
            None,
            t,
        );
        assert_eq!(v.health, Health::Healthy);
        assert_eq!(v.probes_up, 1);
        assert_eq!(v.pending, ["b"]);
        assert!(v.down.is_empty());
    }

    #[test]
    fn one_probe_down_is_degraded_with_the_evidence() {
        let t = Instant::now();
        let v = verdict(
            &[
                probe("api", Http, D, t),
                probe("r53", Route53HealthCheck, U, t),
                probe("alarm", CloudwatchAlarm, U, t),
            ],
            QUORUM,
            None,
            t,
        );
        assert_eq!(v.health, Health::Degraded);
        assert_eq!(v.down.len(), 1);
        assert_eq!(v.down[0].name, "api");
        assert_eq!(v.down[0].last_error.as_deref(), Some("connection refused"));
        assert!(
            v.explanation.contains("fewer than the 2"),
            "{}",
            v.explanation
        );
    }

    #[test]
    fn a_single_vantage_partition_does_not_condemn_the_region() {
        // The path from this daemon to the region is cut: every probe the daemon runs itself fails,
        // while AWS's global checkers and the region's alarms see the region serving.
        let t = Instant::now();
        let v = verdict(
            &[
                probe("api", Http, D, t),
                probe("api-2", Http, D, t),
                probe("db", Tcp, D, t),
                probe("dns", Dns, D, t),
                probe("r53", Route53HealthCheck, U, t),
                probe("alarm", CloudwatchAlarm, U, t),
            ],
            QUORUM,
            None,
            t,
        );
        assert_eq!(v.health, Health::Degraded, "{}", v.explanation);
        assert_eq!(v.down.len(), 4);
        assert!(
            v.explanation.contains("1 vantage point"),
            "{}",
            v.explanation
        );
        // Route 53's checkers alone (one vantage point) cannot condemn it either.
        let v = verdict(
            &[
                probe("r53-a", Route53HealthCheck, D, t),
                probe("r53-b", Route53HealthCheck, D, t),
                probe("api", Http, U, t),
            ],
            QUORUM,
            None,
            t,
        );
        assert_eq!(v.health, Health::Degraded);
    }

    #[test]
    fn quorum_from_two_vantage_points_is_unhealthy() {
        let t = Instant::now();
        let v = verdict(
            &[
                probe("api", Http, D, t),
                probe("r53", Route53HealthCheck, D, t),
                probe("alarm", CloudwatchAlarm, U, t),
            ],
            QUORUM,
            None,
            t,
        );
        assert_eq!(v.health, Health::Unhealthy, "{}", v.explanation);
        let names: Vec<&str> = v.down.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["api", "r53"]);
    }

    #[test]
    fn without_the_vantage_requirement_the_count_alone_decides() {
        let rule = QuorumRule {
            min_failing: 2,
            min_vantage_points: 1,
        };
        let t = Instant::now();
        let v = verdict(
            &[probe("api", Http, D, t), probe("db", Tcp, D, t)],
            rule,
            None,
            t,
        );
        assert_eq!(v.health, Health::Unhealthy);
        let v = verdict(
            &[probe("api", Http, D, t), probe("db", Tcp, U, t)],
            rule,
            None,
            t,
        );
        assert_eq!(v.health, Health::Degraded);
    }

    #[test]
    fn every_combination_of_three_probe_states_gets_the_right_health() {
        let t = Instant::now();
        let kinds = [Http, Tcp, Route53HealthCheck];
        let states = [P, U, D];
        for rule in [
            QUORUM,
            QuorumRule {
                min_failing: 1,
                min_vantage_points: 1,
            },
            QuorumRule {
                min_failing: 2,
                min_vantage_points: 1,
            },
            QuorumRule {
                min_failing: 3,
                min_vantage_points: 2,
            },
        ] {
            for code in 0..27usize {
                let probes: Vec<Probe> = (0..3)
                    .map(|i| {
                        let state = states[(code / 3usize.pow(i as u32)) % 3];
                        probe(["a", "b", "c"][i], kinds[i], state, t)
                    })
                    .collect();
                let down: Vec<&Probe> = probes.iter().filter(|p| p.health.state == D).collect();
                let up = probes.iter().filter(|p| p.health.state == U).count();
                let vantages: BTreeSet<Vantage> =
                    down.iter().map(|p| Vantage::of(p.kind)).collect();
                let expected = if down.is_empty() && up == 0 {
                    Health::Unknown
                } else if down.is_empty() {
                    Health::Healthy
                } else if down.len() >= rule.min_failing as usize
                    && vantages.len() >= rule.min_vantage_points as usize
                {
                    Health::Unhealthy
                } else {
                    Health::Degraded
                };
                let v = verdict(&probes, rule, None, t);
                assert_eq!(v.health, expected, "code {code} rule {rule:?}");
                assert_eq!(v.down.len(), down.len());
                assert_eq!(v.probes_up, up);
            }
        }
    }

    #[test]
    fn since_carries_over_while_the_health_is_unchanged() {
        let t = Instant::now();
        let mut probes = vec![
            probe("api", Http, D, t),
            probe("r53", Route53HealthCheck, D, t),
            probe("alarm", CloudwatchAlarm, U, t),
        ];
        let first = verdict(&probes, QUORUM, None, t + SEC * 10);
        assert_eq!(first.health, Health::Unhealthy);
        assert_eq!(first.since, t + SEC * 10);
        // A third probe goes down: still unhealthy, since unchanged, evidence updated.
        probes[2] = probe("alarm", CloudwatchAlarm, D, t);
        let second = verdict(&probes, QUORUM, Some(&first), t + SEC * 20);
        assert_eq!(second.since, first.since);
        assert_eq!(second.down.len(), 3);
        assert!(!second.same_verdict(&first));
        assert_eq!(second.held_for(t + SEC * 70), SEC * 60);
        // Recovery of two probes: degraded, since resets.
        probes[0] = probe("api", Http, U, t);
        probes[1] = probe("r53", Route53HealthCheck, U, t);
        let third = verdict(&probes, QUORUM, Some(&second), t + SEC * 30);
        assert_eq!(third.health, Health::Degraded);
        assert_eq!(third.since, t + SEC * 30);
    }

    #[test]
    fn same_verdict_ignores_error_text_changes() {
        let t = Instant::now();
        let probes = vec![
            probe("api", Http, D, t),
            probe("r53", Route53HealthCheck, U, t),
        ];
        let first = verdict(&probes, QUORUM, None, t);
        let mut changed = probes;
        changed[0].health.last_error = Some("timed out".into());
        let second = verdict(&changed, QUORUM, Some(&first), t + SEC);
        assert!(second.same_verdict(&first));
        assert_eq!(second.down[0].last_error.as_deref(), Some("timed out"));
    }

    #[test]
    fn gauge_values_follow_the_documented_scale() {
        assert_eq!(Health::Unhealthy.gauge_value(), Some(0));
        assert_eq!(Health::Degraded.gauge_value(), Some(1));
        assert_eq!(Health::Healthy.gauge_value(), Some(2));
        assert_eq!(Health::Unknown.gauge_value(), None);
    }

    #[test]
    fn config_maps_onto_the_rules() {
        let mut config = HealthConfig::default();
        assert_eq!(
            QuorumRule::from_config(&config),
            QuorumRule {
                min_failing: 2,
                min_vantage_points: 2
            }
        );
        config.require_distinct_kinds = false;
        assert_eq!(QuorumRule::from_config(&config).min_vantage_points, 1);
        assert_eq!(
            Hysteresis::from_config(&config),
            Hysteresis {
                unhealthy_after: 3,
                healthy_after: 2
            }
        );
    }
}
