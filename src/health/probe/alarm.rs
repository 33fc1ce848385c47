//! The CloudWatch alarm probe: `OK` passes, `ALARM` fails with the alarm's reason, anything else
//! (insufficient data, a state this build does not know) is inconclusive.

use super::{ProbeError, ProbeOutcome};
use crate::health::port::{AlarmState, AlarmStateApi};

pub(super) async fn check_alarm(
    api: &dyn AlarmStateApi,
    name: &str,
) -> Result<ProbeOutcome, ProbeError> {
    let alarm = api.alarm_state(name).await?;
    match alarm.state {
        AlarmState::Ok => Ok(ProbeOutcome::Pass),
        AlarmState::Alarm => Err(ProbeError::AlarmFiring {
            name: name.to_owned(),
            reason: alarm.reason,
        }),
        AlarmState::InsufficientData => Ok(ProbeOutcome::Inconclusive(format!(
            "alarm {name} has insufficient data"
        ))),
        AlarmState::Unknown(state) => Ok(ProbeOutcome::Inconclusive(format!(
            "alarm {name} is in state {state:?}, which this build does not know"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use async_trait::async_trait;

    use crate::config::ProbeKind;
    use crate::health::port::{AlarmObservation, AlarmState, AlarmStateApi};
    use crate::health::probe::spec::test_config as config;
    use crate::health::probe::{HealthPorts, ProbeFactory, ProbeSpec};
    use crate::health::verdict::CheckResult;
    use crate::port;

    struct FakeAlarm(Mutex<AlarmState>);

    #[async_trait]
    impl AlarmStateApi for FakeAlarm {
        async fn alarm_state(&self, name: &str) -> port::Result<AlarmObservation> {
            Ok(AlarmObservation {
                name: name.to_owned(),
                state: self.0.lock().unwrap().clone(),
                reason: Some("Threshold Crossed".into()),
                updated_at: None,
            })
        }
    }

    #[tokio::test]
    async fn alarm_state_maps_to_results() {
        let api = Arc::new(FakeAlarm(Mutex::new(AlarmState::Ok)));
        let mut c = config(ProbeKind::CloudwatchAlarm);
        c.alarm_name = Some("api-5xx".into());
        let ports = HealthPorts {
            route53: None,
            alarms: BTreeMap::from([("us-east-1".to_owned(), api.clone() as _)]),
        };
        let runner = ProbeFactory::new(ports)
            .unwrap()
            .runner(ProbeSpec::from_config(&c).unwrap())
            .unwrap();
        assert_eq!(runner.check().await, CheckResult::Success);
        *api.0.lock().unwrap() = AlarmState::Alarm;
        assert_eq!(
            runner.check().await,
            CheckResult::Failure("alarm api-5xx is in ALARM: Threshold Crossed".into())
        );
        *api.0.lock().unwrap() = AlarmState::InsufficientData;
        assert!(matches!(runner.check().await, CheckResult::Inconclusive(_)));
        *api.0.lock().unwrap() = AlarmState::Unknown("NEW".into());
        assert!(matches!(runner.check().await, CheckResult::Inconclusive(_)));
    }
}
