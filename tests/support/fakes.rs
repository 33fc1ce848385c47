//! Configurable in-memory fakes of the health ports, shared by the tests that wire probes or
//! stage verification without AWS: [`FakeHealthChecks`] (`HealthCheckStatusApi`, Route 53's
//! health-check checkers) and [`FakeAlarm`] (`AlarmStateApi`, one CloudWatch alarm).

use std::sync::Mutex;

use async_trait::async_trait;
use failoverd::aws::Result as PortResult;
use failoverd::health::{
    AlarmObservation, AlarmState, AlarmStateApi, CheckerObservation, HealthCheckStatus,
    HealthCheckStatusApi,
};

/// Route 53's checkers as the test sets them; every health-check id gets the same answer.
pub struct FakeHealthChecks {
    checkers: Mutex<Vec<CheckerObservation>>,
}

impl FakeHealthChecks {
    /// `total` anonymous checkers (no region, empty status), the first `healthy` of them healthy.
    pub fn counts(healthy: usize, total: usize) -> Self {
        let checkers = (0..total)
            .map(|i| CheckerObservation {
                region: None,
                ip_address: None,
                healthy: i < healthy,
                status: String::new(),
                checked_at: None,
            })
            .collect();
        FakeHealthChecks {
            checkers: Mutex::new(checkers),
        }
    }

    /// One checker per region in `regions`, all `healthy` or not, with Route 53's status texts.
    pub fn in_regions(regions: &[&str], healthy: bool) -> Self {
        let checkers = regions
            .iter()
            .map(|region| CheckerObservation {
                region: Some((*region).into()),
                ip_address: None,
                healthy,
                status: route53_status(healthy),
                checked_at: None,
            })
            .collect();
        FakeHealthChecks {
            checkers: Mutex::new(checkers),
        }
    }

    /// Every checker now reports `healthy` (with the matching Route 53 status text).
    pub fn set_healthy(&self, healthy: bool) {
        for checker in self.checkers.lock().unwrap().iter_mut() {
            checker.healthy = healthy;
            checker.status = route53_status(healthy);
        }
    }
}

fn route53_status(healthy: bool) -> String {
    if healthy {
        "Success: HTTP Status Code 200, OK".into()
    } else {
        "Failure: Connection timed out".into()
    }
}

#[async_trait]
impl HealthCheckStatusApi for FakeHealthChecks {
    async fn health_check_status(&self, _id: &str) -> PortResult<HealthCheckStatus> {
        Ok(HealthCheckStatus {
            checkers: self.checkers.lock().unwrap().clone(),
        })
    }
}

/// A CloudWatch alarm in the state the test sets; every alarm name gets the same state and reason.
pub struct FakeAlarm {
    state: Mutex<AlarmState>,
    reason: Option<String>,
}

impl FakeAlarm {
    /// An alarm in `state`, with the reason "5xx above threshold".
    pub fn new(state: AlarmState) -> Self {
        FakeAlarm {
            state: Mutex::new(state),
            reason: Some("5xx above threshold".into()),
        }
    }

    pub fn set(&self, state: AlarmState) {
        *self.state.lock().unwrap() = state;
    }
}

#[async_trait]
impl AlarmStateApi for FakeAlarm {
    async fn alarm_state(&self, name: &str) -> PortResult<AlarmObservation> {
        Ok(AlarmObservation {
            name: name.into(),
            state: self.state.lock().unwrap().clone(),
            reason: self.reason.clone(),
            updated_at: None,
        })
    }
}
