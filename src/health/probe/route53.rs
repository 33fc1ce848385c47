//! The Route 53 health-check probe: the share of AWS's global checkers that report the health
//! check healthy must reach `min_healthy_fraction`; with no report yet the check is inconclusive.

use super::{ProbeError, ProbeOutcome};
use crate::health::port::HealthCheckStatusApi;

pub(super) async fn check_route53(
    api: &dyn HealthCheckStatusApi,
    health_check_id: &str,
    min_fraction: f64,
) -> Result<ProbeOutcome, ProbeError> {
    let status = api.health_check_status(health_check_id).await?;
    let Some(share) = status.healthy_share() else {
        return Ok(ProbeOutcome::Inconclusive(format!(
            "no Route 53 checker has reported on health check {health_check_id} yet"
        )));
    };
    if share >= min_fraction {
        return Ok(ProbeOutcome::Pass);
    }
    let sample = status
        .checkers
        .iter()
        .find(|c| !c.healthy)
        .map(|c| match &c.region {
            Some(region) => format!("{region}: {}", c.status),
            None => c.status.clone(),
        });
    Err(ProbeError::CheckersUnhealthy {
        healthy: status.checkers_healthy(),
        total: status.checkers_total(),
        min_fraction,
        sample,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use crate::config::ProbeKind;
    use crate::health::port::{CheckerObservation, HealthCheckStatus, HealthCheckStatusApi};
    use crate::health::probe::spec::test_config as config;
    use crate::health::probe::{HealthPorts, ProbeFactory, ProbeRunner, ProbeSpec};
    use crate::health::verdict::CheckResult;
    use crate::port::{self, ErrorKind, Service};

    struct FakeRoute53(Mutex<port::Result<HealthCheckStatus>>);

    #[async_trait]
    impl HealthCheckStatusApi for FakeRoute53 {
        async fn health_check_status(&self, _id: &str) -> port::Result<HealthCheckStatus> {
            self.0.lock().unwrap().clone()
        }
    }

    fn checkers(healthy: usize, unhealthy: usize) -> HealthCheckStatus {
        let one = |ok: bool| CheckerObservation {
            region: Some("eu-west-1".into()),
            ip_address: None,
            healthy: ok,
            status: if ok {
                "Success: HTTP Status Code 200".into()
            } else {
                "Failure: Connection timed out".into()
            },
            checked_at: None,
        };
        HealthCheckStatus {
            checkers: std::iter::repeat_n(true, healthy)
                .chain(std::iter::repeat_n(false, unhealthy))
                .map(one)
                .collect(),
        }
    }

    fn route53_runner(api: Arc<FakeRoute53>, min: Option<f64>) -> ProbeRunner {
        let mut c = config(ProbeKind::Route53HealthCheck);
        c.health_check_id = Some("hc-1".into());
        c.min_healthy_fraction = min;
        let ports = HealthPorts {
            route53: Some(api),
            alarms: BTreeMap::new(),
        };
        ProbeFactory::new(ports)
            .unwrap()
            .runner(ProbeSpec::from_config(&c).unwrap())
            .unwrap()
    }

    #[tokio::test]
    async fn route53_share_of_healthy_checkers_decides() {
        let api = Arc::new(FakeRoute53(Mutex::new(Ok(checkers(4, 4)))));
        let runner = route53_runner(api.clone(), None);
        assert_eq!(runner.check().await, CheckResult::Success);
        *api.0.lock().unwrap() = Ok(checkers(3, 5));
        let CheckResult::Failure(text) = runner.check().await else {
            panic!("expected a failure")
        };
        assert!(text.contains("3 of 8"), "{text}");
        assert!(text.contains("eu-west-1: Failure"), "{text}");
        *api.0.lock().unwrap() = Ok(checkers(0, 0));
        assert!(matches!(runner.check().await, CheckResult::Inconclusive(_)));

        let strict = route53_runner(api.clone(), Some(1.0));
        *api.0.lock().unwrap() = Ok(checkers(15, 1));
        assert!(matches!(strict.check().await, CheckResult::Failure(_)));
    }

    #[tokio::test]
    async fn an_unreachable_api_is_a_failure_with_the_error() {
        let err = port::Error::new(
            ErrorKind::Unavailable,
            Service::Route53,
            "GetHealthCheckStatus",
            "dispatch failure: connection refused",
        );
        let api = Arc::new(FakeRoute53(Mutex::new(Err(err))));
        let runner = route53_runner(api, None);
        let CheckResult::Failure(text) = runner.check().await else {
            panic!("expected a failure")
        };
        assert!(text.contains("GetHealthCheckStatus"), "{text}");
        assert!(text.contains("connection refused"), "{text}");
    }
}
