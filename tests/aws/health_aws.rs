//! The Route 53 and CloudWatch probes through the real AWS adapters, against the test bed (moto
//! behind the fault-injecting proxy).
//!
//! What moto allows us to test: moto reports every health check it knows as healthy from all of
//! its checkers (it never probes the endpoint), so the Route 53 probe's *healthy* path, a missing
//! health check (`NoSuchHealthCheck`), and an unreachable or failing Route 53 API are tested here;
//! the share-of-healthy-checkers rule itself (below the threshold, no checker yet) is tested with
//! a fake port in `src/health/probe.rs` and `tests/domain/health_probes.rs`. CloudWatch alarms can be set
//! to any state in moto (`SetAlarmState`), so the alarm probe is tested through OK → ALARM → OK.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use crate::support::fault_proxy::Fault;
use crate::support::{alarms_client, create_alarm, set_alarm, TestBed, HOT};
use aws_sdk_cloudwatch::types as cw;
use aws_sdk_route53::types as r53;
use failoverd::aws::ClientSettings;
use failoverd::config::{HealthConfig, ProbeConfig, ProbeKind};
use failoverd::health::{
    Health, HealthHandle, HealthMonitor, HealthPorts, ProbeState, ProbeStatus,
};
use prometheus::Registry;
use tokio::sync::oneshot;

/// Bound on every wait (moto answers in milliseconds; this is for a loaded machine).
const DEADLINE: Duration = Duration::from_secs(60);

fn probe(name: &str, kind: ProbeKind) -> ProbeConfig {
    support::probes::probe(
        name,
        HOT,
        kind,
        Duration::from_millis(500),
        Duration::from_millis(500),
    )
}

fn route53_probe(name: &str, health_check_id: &str) -> ProbeConfig {
    ProbeConfig {
        health_check_id: Some(health_check_id.into()),
        min_healthy_fraction: Some(0.5),
        ..probe(name, ProbeKind::Route53HealthCheck)
    }
}

fn alarm_probe(name: &str, alarm: &str) -> ProbeConfig {
    ProbeConfig {
        alarm_name: Some(alarm.into()),
        ..probe(name, ProbeKind::CloudwatchAlarm)
    }
}

/// Client settings for the probes: one attempt per call, so a fault shows up in one check.
fn settings(endpoint_url: &str) -> ClientSettings {
    ClientSettings {
        max_attempts: 1,
        connect_timeout: Duration::from_millis(400),
        operation_attempt_timeout: Duration::from_secs(2),
        operation_timeout: Duration::from_secs(2),
        ..support::settings(endpoint_url)
    }
}

async fn ports(endpoint_url: &str) -> HealthPorts {
    let clients = support::clients(&settings(endpoint_url)).await;
    let cloudwatch = clients
        .region(HOT)
        .expect("hot region clients")
        .cloudwatch();
    HealthPorts {
        route53: Some(Arc::new(clients.dns())),
        alarms: [(HOT.to_owned(), Arc::new(cloudwatch) as _)].into(),
    }
}

async fn create_health_check(bed: &TestBed) -> String {
    let client =
        aws_sdk_route53::Client::new(&support::raw_config(&bed.moto.endpoint_url(), HOT).await);
    let output = client
        .create_health_check()
        .caller_reference("failoverd-health-aws")
        .health_check_config(
            r53::HealthCheckConfig::builder()
                .r#type(r53::HealthCheckType::Https)
                .fully_qualified_domain_name("api.us-east-1.example.com")
                .resource_path("/healthz")
                .port(443)
                .build()
                .expect("health check config"),
        )
        .send()
        .await
        .expect("create health check");
    output.health_check().expect("health check").id().to_owned()
}

struct Monitor {
    handle: HealthHandle,
    stop: Option<oneshot::Sender<()>>,
}

impl Monitor {
    fn start(probes: Vec<ProbeConfig>, ports: HealthPorts) -> Self {
        let config = HealthConfig {
            unhealthy_after: 1,
            healthy_after: 1,
            min_failing: 1,
            require_distinct_kinds: false,
            probes,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = HealthMonitor::spawn_until(&config, ports, &Registry::new(), async move {
            let _ = stopped.await;
        })
        .expect("start the monitor");
        Self {
            handle,
            stop: Some(stop),
        }
    }

    fn probe(&self, name: &str) -> ProbeStatus {
        self.handle
            .snapshot()
            .probes
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no probe {name}"))
    }

    /// Waits (bounded) for a check of `name` that started after this call and satisfies `done`.
    async fn wait(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&ProbeStatus) -> bool,
    ) -> ProbeStatus {
        let after = self.probe(name).checks + 1;
        let waited = tokio::time::timeout(DEADLINE, async {
            loop {
                let status = self.probe(name);
                if status.checks > after && done(&status) {
                    return status;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            panic!(
                "probe {name}: {what} not reached within {DEADLINE:?}: {:?}",
                self.probe(name)
            )
        })
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEADLINE, self.handle.stopped())
            .await
            .expect("the monitor stops");
    }
}

fn up(status: &ProbeStatus) -> bool {
    status.state == ProbeState::Up
}

fn down_with(error: &'static str) -> impl Fn(&ProbeStatus) -> bool {
    move |status| {
        status.state == ProbeState::Down
            && status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains(error))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route53_and_cloudwatch_probes_through_the_test_bed() {
    let bed = TestBed::start().await;
    let health_check = create_health_check(&bed).await;
    let alarms = alarms_client(&bed, HOT).await;
    create_alarm(&alarms, "api-5xx").await;
    set_alarm(&alarms, "api-5xx", cw::StateValue::Ok).await;

    let monitor = Monitor::start(
        vec![
            route53_probe("route53", &health_check),
            route53_probe("route53-missing", "00000000-0000-0000-0000-000000000000"),
            alarm_probe("alarm", "api-5xx"),
            alarm_probe("alarm-missing", "no-such-alarm"),
        ],
        ports(&bed.endpoint_url()).await,
    );

    // moto's checkers all report healthy.
    monitor.wait("route53", "up", up).await;
    // A mistyped id or alarm name is loud: down, with the API's answer as the evidence.
    monitor
        .wait("route53-missing", "down", down_with("NoSuchHealthCheck"))
        .await;
    monitor
        .wait("alarm-missing", "down", down_with("does not exist"))
        .await;
    monitor.wait("alarm", "up", up).await;

    // The alarm fires: the probe is down while it is in ALARM, with the alarm's reason.
    set_alarm(&alarms, "api-5xx", cw::StateValue::Alarm).await;
    let firing = monitor
        .wait("alarm", "down", down_with("alarm api-5xx is in ALARM"))
        .await;
    assert!(
        firing
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("set by the test")),
        "{firing:?}"
    );
    set_alarm(&alarms, "api-5xx", cw::StateValue::Ok).await;
    monitor.wait("alarm", "up again", up).await;

    // Insufficient data says nothing either way: the probe keeps its state.
    set_alarm(&alarms, "api-5xx", cw::StateValue::InsufficientData).await;
    let unsure = monitor
        .wait("alarm", "an inconclusive check", |p| {
            p.last_result == Some("inconclusive")
        })
        .await;
    assert_eq!(unsure.state, ProbeState::Up);

    // AWS answers 503 to everything: both probes fail with the error recorded, and recover.
    bed.proxy.fail_share(1.0, Fault::ServerError(503), 7);
    let failed = monitor
        .wait("route53", "down", |p| p.state == ProbeState::Down)
        .await;
    let error = failed.last_error.unwrap_or_default();
    assert!(error.contains("GetHealthCheckStatus"), "{error}");
    assert!(error.contains("unavailable"), "{error}");
    monitor
        .wait("alarm", "down", |p| {
            p.state == ProbeState::Down
                && p.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("DescribeAlarms"))
        })
        .await;
    assert_eq!(
        monitor.handle.snapshot().regions[HOT].health,
        Health::Unhealthy
    );
    bed.proxy.clear();
    set_alarm(&alarms, "api-5xx", cw::StateValue::Ok).await;
    monitor.wait("route53", "up again", up).await;
    monitor.wait("alarm", "up again", up).await;
    monitor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_aws_api_is_a_probe_failure_not_a_crash() {
    // Nothing listens on this port: every call is refused.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let monitor = Monitor::start(
        vec![
            route53_probe("route53", "11111111-2222-3333-4444-555555555555"),
            alarm_probe("alarm", "api-5xx"),
        ],
        ports(&format!("http://{closed}")).await,
    );
    for name in ["route53", "alarm"] {
        let status = monitor
            .wait(name, "down", |p| p.state == ProbeState::Down)
            .await;
        let error = status.last_error.unwrap_or_default();
        assert!(
            error.contains("unavailable")
                || error.contains("timeout")
                || error.contains("no answer"),
            "{name}: {error}"
        );
    }
    // And it keeps checking.
    monitor
        .wait("route53", "more checks", |p| p.state == ProbeState::Down)
        .await;
    monitor.shutdown().await;
}
