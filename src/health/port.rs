//! What the health probes need from AWS: the status Route 53's global health checkers report for a
//! health check, and the state of CloudWatch alarms.
//!
//! Both are *independent vantage points* on the hot region (AWS's checkers run from several regions;
//! an alarm aggregates the service's own metrics), which is why the verdict uses them next to the
//! probes failoverd runs itself. The traits speak in domain types; the AWS adapter implements them.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::port::Result;

/// One Route 53 checker's latest observation of a health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckerObservation {
    /// The AWS region the checker runs in (e.g. `us-east-1`).
    pub region: Option<String>,
    /// The checker's IP address.
    pub ip_address: Option<String>,
    /// Whether this checker considers the endpoint healthy.
    pub healthy: bool,
    /// Route 53's status text (`Success: HTTP Status Code 200, OK`, `Failure: ...`).
    pub status: String,
    pub checked_at: Option<OffsetDateTime>,
}

/// What Route 53's checkers currently say about one health check.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthCheckStatus {
    pub checkers: Vec<CheckerObservation>,
}

impl HealthCheckStatus {
    /// Number of checkers that reported.
    pub fn checkers_total(&self) -> usize {
        self.checkers.len()
    }

    /// Number of checkers reporting healthy.
    pub fn checkers_healthy(&self) -> usize {
        self.checkers.iter().filter(|c| c.healthy).count()
    }

    /// Share of checkers reporting healthy, in `0.0..=1.0`; `None` when no checker has reported
    /// (a brand-new health check), which a probe must treat as "unknown", not as "down".
    pub fn healthy_share(&self) -> Option<f64> {
        let total = self.checkers_total();
        if total == 0 {
            None
        } else {
            // Counts are tiny (Route 53 uses at most a few dozen checkers), so the casts are exact.
            Some(self.checkers_healthy() as f64 / total as f64)
        }
    }
}

/// Route 53 health-check status (the API is global).
#[async_trait]
pub trait HealthCheckStatusApi: Send + Sync {
    /// The latest observation of every checker for `health_check_id`. A health check that does not
    /// exist is `ErrorKind::NotFound` (Route 53 `NoSuchHealthCheck`).
    async fn health_check_status(&self, health_check_id: &str) -> Result<HealthCheckStatus>;
}

/// State of a CloudWatch alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
    /// A state this build does not know yet; probes treat it as unknown.
    Unknown(String),
}

/// One alarm's current state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmObservation {
    pub name: String,
    pub state: AlarmState,
    pub reason: Option<String>,
    pub updated_at: Option<OffsetDateTime>,
}

/// CloudWatch alarm state, in one region.
#[async_trait]
pub trait AlarmStateApi: Send + Sync {
    /// The current state of the metric alarm `name`. CloudWatch answers an unknown name with an
    /// empty list rather than an error; the adapter turns that into `ErrorKind::NotFound` so a
    /// mistyped alarm name in the config is loud, not a silently healthy probe.
    async fn alarm_state(&self, name: &str) -> Result<AlarmObservation>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checker(healthy: bool) -> CheckerObservation {
        CheckerObservation {
            region: None,
            ip_address: None,
            healthy,
            status: String::new(),
            checked_at: None,
        }
    }

    #[test]
    fn healthy_share_counts_healthy_checkers() {
        let status = HealthCheckStatus {
            checkers: vec![checker(true), checker(true), checker(false), checker(true)],
        };
        assert_eq!(status.checkers_total(), 4);
        assert_eq!(status.checkers_healthy(), 3);
        assert_eq!(status.healthy_share(), Some(0.75));
    }

    #[test]
    fn no_checker_is_unknown_not_down() {
        assert_eq!(HealthCheckStatus::default().healthy_share(), None);
    }
}

/// The AWS ports the Route 53 and CloudWatch probes read through (the AWS adapter implements
/// them; tests pass fakes).
#[derive(Clone, Default)]
pub struct HealthPorts {
    /// Route 53 health-check status (a global API). Required when a `route53_health_check` probe
    /// is configured.
    pub route53: Option<Arc<dyn HealthCheckStatusApi>>,
    /// CloudWatch alarm state, by region name. Required for each region that has a
    /// `cloudwatch_alarm` probe.
    pub alarms: BTreeMap<String, Arc<dyn AlarmStateApi>>,
}
