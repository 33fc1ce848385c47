//! The data-plane traffic signal (`dns.mode: data_plane`): moving the traffic without a Route 53
//! API call.
//!
//! Route 53's control plane (`ChangeResourceRecordSets`, `GetChange`, health-check updates) is
//! served from us-east-1, so when that is the region being lost the API that moves traffic may be
//! the one that is impaired. Route 53's *data plane* — its name servers and health checkers —
//! keeps answering. So each region's record sets carry a `CLOUDWATCH_METRIC` health check on an
//! alarm kept **in the other region**, and that alarm follows a metric failoverd publishes there:
//!
//! ```text
//!   region R's sets ──health check──▶ alarm "R drained" in other(R) ◀── PutMetricData (Pair, Region=R)
//! ```
//!
//! Publishing 1 for R *drains* R: its alarm goes to `ALARM`, its health check turns unhealthy and
//! Route 53 answers with the other region's sets (failover records fall over to the SECONDARY,
//! weighted records to the healthy sets, zero weights included). Publishing 0 serves R again.
//! Moving the traffic towards a region needs only `PutMetricData` and `DescribeAlarms` in that
//! region — the one that survives.
//!
//! This module holds the port ([`SignalApi`] for CloudWatch in one region,
//! [`HealthCheckConfigApi`] for reading the health checks' wiring from Route 53), the pure checks
//! of that wiring ([`alarm_problems`], [`health_check_problems`]), the drain readings
//! ([`Signals::drains`]) and the effective routing they give ([`drained_routing`]). The steps are in
//! [`super::dataplane`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::planner::{ManagedRouting, Role, SetRouting, WEIGHT_SCALE};
use crate::config::DataPlaneConfig;
use crate::health::port::AlarmState;
use crate::port::Result;
use crate::topology::RegionPair;

/// The value that drains a region, and the one that serves it.
pub const DRAINED: f64 = 1.0;
pub const SERVED: f64 = 0.0;

/// Dimension names of the signal metric.
pub const PAIR_DIMENSION: &str = "Pair";
pub const REGION_DIMENSION: &str = "Region";

/// The statistics a signal alarm may use: with one value per period they all read the value
/// published (`SampleCount` would count 0s as much as 1s). Route 53 supports no other statistic
/// (no percentiles) on the alarms its health checks follow.
pub const SIGNAL_STATISTICS: &[&str] = &["Maximum", "Minimum", "Average", "Sum"];

/// One metric, as `PutMetricData` names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalMetric {
    pub namespace: String,
    pub metric: String,
    pub dimensions: BTreeMap<String, String>,
}

/// A CloudWatch metric alarm, with what the wiring checks need.
#[derive(Clone, Debug, PartialEq)]
pub struct SignalAlarm {
    pub name: String,
    pub state: AlarmState,
    pub reason: Option<String>,
    pub namespace: Option<String>,
    pub metric: Option<String>,
    pub dimensions: BTreeMap<String, String>,
    pub statistic: Option<String>,
    /// A percentile statistic (`p99`), which Route 53 refuses.
    pub extended_statistic: Option<String>,
    /// A metric-math alarm (`Metrics` instead of one metric).
    pub metric_math: bool,
    pub comparison: Option<String>,
    pub threshold: Option<f64>,
    pub period_seconds: Option<i32>,
    pub evaluation_periods: Option<i32>,
    pub datapoints_to_alarm: Option<i32>,
    pub treat_missing_data: Option<String>,
}

/// CloudWatch in one region, as the signal needs it.
#[async_trait]
pub trait SignalApi: Send + Sync {
    /// `PutMetricData` of one value, timestamped now.
    async fn publish(&self, metric: &SignalMetric, value: f64) -> Result<()>;
    /// `DescribeAlarms` of one metric alarm; one that does not exist is `ErrorKind::NotFound`.
    async fn signal_alarm(&self, name: &str) -> Result<SignalAlarm>;
}

/// A Route 53 health check's configuration (`GetHealthCheck`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthCheckConfig {
    pub id: String,
    /// `CLOUDWATCH_METRIC`, `HTTPS`, ...
    pub kind: String,
    pub alarm_region: Option<String>,
    pub alarm_name: Option<String>,
    pub inverted: bool,
    pub disabled: bool,
    /// `Healthy | Unhealthy | LastKnownStatus`, when set.
    pub insufficient_data: Option<String>,
}

/// Route 53 health checks' configuration (the API is global).
#[async_trait]
pub trait HealthCheckConfigApi: Send + Sync {
    /// One that does not exist is `ErrorKind::NotFound` (`NoSuchHealthCheck`).
    async fn health_check_config(&self, id: &str) -> Result<HealthCheckConfig>;
}

/// Whether `value` breaches `threshold` under CloudWatch's `comparison`; `None` for an operator
/// a static-threshold alarm cannot have (anomaly bands).
fn breaches(comparison: &str, value: f64, threshold: f64) -> Option<bool> {
    Some(match comparison {
        "GreaterThanOrEqualToThreshold" => value >= threshold,
        "GreaterThanThreshold" => value > threshold,
        "LessThanThreshold" => value < threshold,
        "LessThanOrEqualToThreshold" => value <= threshold,
        _ => return None,
    })
}

/// What is wrong with `alarm` as the signal of `metric`: one sentence per problem, empty when it
/// is wired as the data-plane mode needs (see the module docs and `docs/architecture.md`).
pub fn alarm_problems(alarm: &SignalAlarm, metric: &SignalMetric) -> Vec<String> {
    let mut out = Vec::new();
    if alarm.metric_math {
        out.push(
            "it is a metric-math alarm; Route 53 health checks follow only alarms on one metric"
                .to_owned(),
        );
    }
    if alarm.namespace.as_deref() != Some(metric.namespace.as_str())
        || alarm.metric.as_deref() != Some(metric.metric.as_str())
    {
        out.push(format!(
            "it watches {}/{}, not the signal metric {}/{}",
            alarm.namespace.as_deref().unwrap_or("-"),
            alarm.metric.as_deref().unwrap_or("-"),
            metric.namespace,
            metric.metric
        ));
    }
    if alarm.dimensions != metric.dimensions {
        let show = |d: &BTreeMap<String, String>| {
            d.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push(format!(
            "its dimensions are {{{}}}, the signal's {{{}}}",
            show(&alarm.dimensions),
            show(&metric.dimensions)
        ));
    }
    if let Some(p) = &alarm.extended_statistic {
        out.push(format!(
            "it uses the percentile {p}; Route 53 supports only {}",
            SIGNAL_STATISTICS.join(", ")
        ));
    } else if !alarm
        .statistic
        .as_deref()
        .is_some_and(|s| SIGNAL_STATISTICS.contains(&s))
    {
        out.push(format!(
            "its statistic is {}; use one of {}",
            alarm.statistic.as_deref().unwrap_or("-"),
            SIGNAL_STATISTICS.join(", ")
        ));
    }
    match alarm.period_seconds {
        Some(p) if p >= 60 && p % 60 == 0 => {}
        p => out.push(format!(
            "its period is {}; Route 53 follows only standard-resolution alarms (a multiple of 60 s)",
            p.map_or("-".to_owned(), |p| format!("{p} s"))
        )),
    }
    match (alarm.comparison.as_deref(), alarm.threshold) {
        (Some(op), Some(t)) => match (breaches(op, DRAINED, t), breaches(op, SERVED, t)) {
            (Some(true), Some(false)) => {}
            (Some(_), Some(_)) => out.push(format!(
                "{op} {t} does not alarm on {DRAINED} (drained) and clear on {SERVED} (served); use GreaterThanOrEqualToThreshold 1"
            )),
            _ => out.push(format!("its comparison {op} is not a static threshold")),
        },
        _ => out.push("it has no static threshold".to_owned()),
    }
    let to_alarm = alarm.datapoints_to_alarm.or(alarm.evaluation_periods);
    if to_alarm != Some(1) {
        out.push(format!(
            "it needs {} breaching period(s) to alarm; the signal publishes one value, so use 1 (EvaluationPeriods 1, DatapointsToAlarm 1)",
            to_alarm.map_or("-".to_owned(), |n| n.to_string())
        ));
    }
    if alarm.treat_missing_data.as_deref() != Some("ignore") {
        out.push(format!(
            "TreatMissingData is {}; use ignore, so the signal holds between two values (and while failoverd is down)",
            alarm.treat_missing_data.as_deref().unwrap_or("missing (the default)")
        ));
    }
    out
}

/// What is wrong with `check` as the health check that follows `alarm` in `alarm_region`.
pub fn health_check_problems(
    check: &HealthCheckConfig,
    alarm_region: &str,
    alarm: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    if check.kind != "CLOUDWATCH_METRIC" {
        out.push(format!(
            "it is a {} health check; the data-plane mode needs CLOUDWATCH_METRIC",
            check.kind
        ));
    }
    if check.alarm_region.as_deref() != Some(alarm_region)
        || check.alarm_name.as_deref() != Some(alarm)
    {
        out.push(format!(
            "it follows alarm {} in {}, not {alarm} in {alarm_region}",
            check.alarm_name.as_deref().unwrap_or("-"),
            check.alarm_region.as_deref().unwrap_or("-")
        ));
    }
    if check.inverted {
        out.push("it is inverted: draining would send the traffic to the region".to_owned());
    }
    if check.disabled {
        out.push(
            "it is disabled: Route 53 would consider the sets healthy whatever the signal"
                .to_owned(),
        );
    }
    match check.insufficient_data.as_deref() {
        None | Some("LastKnownStatus") => {}
        Some(other) => out.push(format!(
            "InsufficientDataHealthStatus is {other}; use LastKnownStatus, so a gap in the alarm's data changes nothing"
        )),
    }
    out
}

/// A region's drain, read from its alarm.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum Drain {
    /// The alarm is in `ALARM`: Route 53 routes around the region.
    Drained,
    /// `OK`, or `INSUFFICIENT_DATA` on an alarm that never had data (its health check's last
    /// known status is healthy).
    Served,
    /// The alarm could not be read.
    Unknown(String),
}

/// Everything the signal needs: the configuration, the pair, CloudWatch in each region and
/// Route 53's health checks.
#[derive(Clone)]
pub struct Signals {
    pub config: Arc<DataPlaneConfig>,
    pub pair: RegionPair,
    /// The pair's name (the `Pair` dimension).
    pub pair_name: String,
    /// CloudWatch by region name.
    pub cloudwatch: BTreeMap<String, Arc<dyn SignalApi>>,
    pub health_checks: Arc<dyn HealthCheckConfigApi>,
    /// Between two reads of an alarm (or a health check's status) while waiting for it.
    pub poll_interval: Duration,
}

impl Signals {
    /// The region whose CloudWatch holds the signal (and the alarm) of `region`: the other one.
    pub fn home(&self, region: &str) -> String {
        self.pair.other(region).unwrap_or_default().to_owned()
    }

    /// The metric that drains `region`.
    pub fn metric(&self, region: &str) -> SignalMetric {
        SignalMetric {
            namespace: self.config.namespace.clone(),
            metric: self.config.metric.clone(),
            dimensions: BTreeMap::from([
                (PAIR_DIMENSION.to_owned(), self.pair_name.clone()),
                (REGION_DIMENSION.to_owned(), region.to_owned()),
            ]),
        }
    }

    /// The alarm name and health check id of `region` (validated to exist for both regions).
    pub fn of(&self, region: &str) -> (&str, &str) {
        self.config
            .signals
            .get(region)
            .map_or(("", ""), |s| (s.alarm.as_str(), s.health_check.as_str()))
    }

    fn api(&self, home: &str) -> Result<&Arc<dyn SignalApi>> {
        self.cloudwatch.get(home).ok_or_else(|| {
            crate::port::Error::new(
                crate::port::ErrorKind::Invalid,
                crate::port::Service::CloudWatch,
                "PutMetricData",
                format!("no CloudWatch client for region {home}"),
            )
        })
    }

    /// Publish `value` as `region`'s signal, in its home region.
    pub async fn publish(&self, region: &str, value: f64) -> Result<()> {
        self.api(&self.home(region))?
            .publish(&self.metric(region), value)
            .await
    }

    /// `region`'s alarm, read in its home region.
    pub async fn alarm(&self, region: &str) -> Result<SignalAlarm> {
        let (alarm, _) = self.of(region);
        self.api(&self.home(region))?.signal_alarm(alarm).await
    }

    /// `region`'s drain, each read bounded by `budget`.
    pub async fn drain(&self, region: &str, budget: Duration) -> Drain {
        match tokio::time::timeout(budget, self.alarm(region)).await {
            Ok(Ok(a)) => match a.state {
                AlarmState::Alarm => Drain::Drained,
                AlarmState::Ok | AlarmState::InsufficientData => Drain::Served,
                AlarmState::Unknown(s) => Drain::Unknown(format!("alarm state {s:?}")),
            },
            Ok(Err(e)) => Drain::Unknown(e.to_string()),
            Err(_) => Drain::Unknown(format!("no answer within {budget:?}")),
        }
    }

    /// Both regions' drains, read concurrently.
    pub async fn drains(&self, budget: Duration) -> BTreeMap<String, Drain> {
        let [a, b] = self.pair.regions();
        let (da, db) = tokio::join!(self.drain(a, budget), self.drain(b, budget));
        BTreeMap::from([(a.to_owned(), da), (b.to_owned(), db)])
    }

    /// The wiring problems of `region`'s alarm (read in its home region), one sentence each,
    /// prefixed with what they are about.
    pub async fn alarm_wiring(&self, region: &str) -> Result<Vec<String>> {
        let (name, _) = self.of(region);
        let alarm = self.alarm(region).await?;
        let home = self.home(region);
        Ok(alarm_problems(&alarm, &self.metric(region))
            .into_iter()
            .map(|p| format!("alarm {name} in {home} (the signal of {region}): {p}"))
            .collect())
    }

    /// The wiring problems of `region`'s health check.
    pub async fn health_check_wiring(&self, region: &str) -> Result<Vec<String>> {
        let (alarm, id) = self.of(region);
        let check = self.health_checks.health_check_config(id).await?;
        Ok(health_check_problems(&check, &self.home(region), alarm)
            .into_iter()
            .map(|p| format!("health check {id} (the sets of {region}): {p}"))
            .collect())
    }
}

/// The regions drained, from readings.
pub fn drained_regions(drains: &BTreeMap<String, Drain>) -> BTreeSet<String> {
    drains
        .iter()
        .filter(|(_, d)| **d == Drain::Drained)
        .map(|(r, _)| r.clone())
        .collect()
}

/// The routing Route 53 effectively answers with when the regions in `drained` are drained: in
/// each record where one region is drained and another is not, the drained region's sets get no
/// traffic (weight 0, or SECONDARY) and the others keep theirs (an all-zero rest becomes
/// [`WEIGHT_SCALE`], the PRIMARY role moves to them). A record whose every region is drained is
/// unchanged: with every set unhealthy, Route 53 answers as if all were healthy.
pub fn drained_routing(routing: &[SetRouting], drained: &BTreeSet<String>) -> Vec<SetRouting> {
    if drained.is_empty() {
        return routing.to_vec();
    }
    let mut out = Vec::with_capacity(routing.len());
    let mut start = 0;
    while start < routing.len() {
        let same = |s: &SetRouting| {
            s.zone_id == routing[start].zone_id
                && s.name == routing[start].name
                && s.record_type == routing[start].record_type
        };
        let end = start + routing[start..].iter().take_while(|s| same(s)).count();
        let record = &routing[start..end];
        let drained_here = record.iter().any(|s| drained.contains(&s.region));
        let served_here = record.iter().any(|s| !drained.contains(&s.region));
        if !(drained_here && served_here) {
            out.extend(record.iter().cloned());
            start = end;
            continue;
        }
        let rest_weight: u32 = record
            .iter()
            .filter(|s| !drained.contains(&s.region))
            .map(|s| match s.routing {
                ManagedRouting::Weighted { weight } => u32::from(weight),
                ManagedRouting::Failover { .. } => 0,
            })
            .sum();
        for s in record {
            let is_drained = drained.contains(&s.region);
            let routing = match s.routing {
                ManagedRouting::Weighted { weight } => ManagedRouting::Weighted {
                    weight: if is_drained {
                        0
                    } else if rest_weight == 0 {
                        WEIGHT_SCALE
                    } else {
                        weight
                    },
                },
                ManagedRouting::Failover { .. } => ManagedRouting::Failover {
                    role: if is_drained {
                        Role::Secondary
                    } else {
                        Role::Primary
                    },
                },
            };
            out.push(SetRouting {
                routing,
                ..s.clone()
            });
        }
        start = end;
    }
    out
}

/// The sets whose live health check is not the signal of their region: one line each.
pub fn record_wiring_problems(
    routing: &[SetRouting],
    live: &super::planner::LiveRecords,
    signals: &DataPlaneConfig,
) -> Vec<String> {
    let mut out = Vec::new();
    for set in routing {
        let want = signals
            .signals
            .get(&set.region)
            .map(|s| s.health_check.as_str());
        let have = super::planner::live_set(live, set).and_then(|l| l.health_check_id.as_deref());
        if have != want {
            out.push(format!(
                "record set {} ({}) has health check {}, not the signal's {}",
                set.label(),
                set.region,
                have.unwrap_or("none"),
                want.unwrap_or("-")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric() -> SignalMetric {
        SignalMetric {
            namespace: "Failoverd".into(),
            metric: "RegionDrained".into(),
            dimensions: BTreeMap::from([
                ("Pair".into(), "prod".into()),
                ("Region".into(), "us-east-1".into()),
            ]),
        }
    }

    fn good_alarm() -> SignalAlarm {
        SignalAlarm {
            name: "drain-us-east-1".into(),
            state: AlarmState::Ok,
            reason: None,
            namespace: Some("Failoverd".into()),
            metric: Some("RegionDrained".into()),
            dimensions: metric().dimensions,
            statistic: Some("Maximum".into()),
            extended_statistic: None,
            metric_math: false,
            comparison: Some("GreaterThanOrEqualToThreshold".into()),
            threshold: Some(1.0),
            period_seconds: Some(60),
            evaluation_periods: Some(1),
            datapoints_to_alarm: Some(1),
            treat_missing_data: Some("ignore".into()),
        }
    }

    #[test]
    fn a_well_wired_alarm_has_no_problem() {
        assert!(alarm_problems(&good_alarm(), &metric()).is_empty());
        // LessThan 0.5 inverted semantics: 1 does not breach, 0 does — refused.
        let a = SignalAlarm {
            comparison: Some("LessThanThreshold".into()),
            threshold: Some(0.5),
            ..good_alarm()
        };
        let p = alarm_problems(&a, &metric());
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("does not alarm on 1"), "{p:?}");
    }

    #[test]
    fn every_miswiring_of_an_alarm_is_named() {
        let a = SignalAlarm {
            namespace: Some("Other".into()),
            dimensions: BTreeMap::new(),
            statistic: None,
            extended_statistic: Some("p99".into()),
            period_seconds: Some(10),
            evaluation_periods: Some(3),
            datapoints_to_alarm: None,
            treat_missing_data: Some("breaching".into()),
            ..good_alarm()
        };
        let p = alarm_problems(&a, &metric()).join("\n");
        for needle in [
            "watches Other/RegionDrained",
            "dimensions are {}",
            "percentile p99",
            "period is 10 s",
            "needs 3 breaching period(s)",
            "TreatMissingData is breaching",
        ] {
            assert!(p.contains(needle), "{needle:?} missing from:\n{p}");
        }
        let count = SignalAlarm {
            statistic: Some("SampleCount".into()),
            ..good_alarm()
        };
        assert!(alarm_problems(&count, &metric())[0].contains("statistic is SampleCount"));
    }

    #[test]
    fn every_miswiring_of_a_health_check_is_named() {
        let good = HealthCheckConfig {
            id: "hc-1".into(),
            kind: "CLOUDWATCH_METRIC".into(),
            alarm_region: Some("us-west-2".into()),
            alarm_name: Some("drain-us-east-1".into()),
            inverted: false,
            disabled: false,
            insufficient_data: Some("LastKnownStatus".into()),
        };
        assert!(health_check_problems(&good, "us-west-2", "drain-us-east-1").is_empty());
        let bad = HealthCheckConfig {
            kind: "HTTPS".into(),
            alarm_region: Some("us-east-1".into()),
            inverted: true,
            disabled: true,
            insufficient_data: Some("Unhealthy".into()),
            ..good
        };
        let p = health_check_problems(&bad, "us-west-2", "drain-us-east-1").join("\n");
        for needle in [
            "HTTPS health check",
            "follows alarm drain-us-east-1 in us-east-1",
            "inverted",
            "disabled",
            "InsufficientDataHealthStatus is Unhealthy",
        ] {
            assert!(p.contains(needle), "{needle:?} missing from:\n{p}");
        }
    }

    fn set(region: &str, routing: ManagedRouting) -> SetRouting {
        SetRouting {
            zone_id: "Z1".into(),
            name: "app.example.com.".into(),
            record_type: "A".into(),
            set_identifier: region.into(),
            region: region.into(),
            routing,
        }
    }

    fn w(weight: u8) -> ManagedRouting {
        ManagedRouting::Weighted { weight }
    }

    #[test]
    fn a_drained_region_gets_no_traffic() {
        let routing = vec![set("east", w(100)), set("west", w(0))];
        let d = drained_routing(&routing, &BTreeSet::from(["east".to_owned()]));
        assert_eq!(d, vec![set("east", w(0)), set("west", w(100))]);
        // Nothing drained, or the region already without traffic: unchanged weights kept.
        assert_eq!(drained_routing(&routing, &BTreeSet::new()), routing);
        let d = drained_routing(&routing, &BTreeSet::from(["west".to_owned()]));
        assert_eq!(d, routing);
        // A split keeps the rest's weights.
        let split = vec![set("east", w(50)), set("west", w(30))];
        let d = drained_routing(&split, &BTreeSet::from(["east".to_owned()]));
        assert_eq!(d, vec![set("east", w(0)), set("west", w(30))]);
    }

    #[test]
    fn both_drained_is_answered_as_both_served_and_failover_roles_swap() {
        let routing = vec![set("east", w(100)), set("west", w(0))];
        let both = BTreeSet::from(["east".to_owned(), "west".to_owned()]);
        assert_eq!(drained_routing(&routing, &both), routing);
        let primary = ManagedRouting::Failover {
            role: Role::Primary,
        };
        let secondary = ManagedRouting::Failover {
            role: Role::Secondary,
        };
        let f = vec![set("east", primary), set("west", secondary)];
        let d = drained_routing(&f, &BTreeSet::from(["east".to_owned()]));
        assert_eq!(d, vec![set("east", secondary), set("west", primary)]);
    }
}
