//! `ProbeVerifier`: the stage verification that runs the configured probes directly (HTTP, TCP,
//! DNS, Route 53 health-check status, CloudWatch alarm state), only for the target region.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use failoverd::config::{ProbeConfig, ProbeKind};
use failoverd::dns::verify::{ProbeVerifier, StageVerifier};
use failoverd::health::{AlarmState, AlarmStateApi};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::support::fakes::{FakeAlarm, FakeHealthChecks};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

/// A tiny HTTP server on loopback: `/ok` answers 200 "ready", anything else 503. Stops on drop.
struct Http {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Http {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn http_server() -> Http {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if request.starts_with("GET /ok ") {
                    ("200 OK", "ready")
                } else {
                    ("503 Service Unavailable", "down")
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Http { addr, task }
}

fn probe(name: &str, region: &str, kind: ProbeKind) -> ProbeConfig {
    crate::support::probes::probe(
        name,
        region,
        kind,
        Duration::from_secs(10),
        Duration::from_secs(2),
    )
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

async fn verifier(http: &Http, checkers: FakeHealthChecks, alarm: AlarmState) -> ProbeVerifier {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    };
    let mut west_http = probe("west-http", WEST, ProbeKind::Http);
    west_http.url = Some(format!("http://{}/ok", http.addr));
    west_http.body_contains = Some("ready".into());
    let mut west_wrong_body = probe("west-wrong-body", WEST, ProbeKind::Http);
    west_wrong_body.url = Some(format!("http://{}/ok", http.addr));
    west_wrong_body.body_contains = Some("healthy".into());
    let mut east_http = probe("east-http", EAST, ProbeKind::Http);
    east_http.url = Some(format!("http://{}/down", http.addr));
    let mut west_tcp = probe("west-tcp", WEST, ProbeKind::Tcp);
    west_tcp.address = Some(http.addr.to_string());
    let mut west_tcp_closed = probe("west-tcp-closed", WEST, ProbeKind::Tcp);
    west_tcp_closed.address = Some(closed.to_string());
    let mut west_dns = probe("west-dns", WEST, ProbeKind::Dns);
    west_dns.hostname = Some("localhost".into());
    west_dns.expect_address = Some("127.0.0.1".into());
    let mut west_r53 = probe("west-r53", WEST, ProbeKind::Route53HealthCheck);
    west_r53.health_check_id = Some("hc-west".into());
    let mut west_alarm = probe("west-alarm", WEST, ProbeKind::CloudwatchAlarm);
    west_alarm.alarm_name = Some("west-5xx".into());
    let probes = vec![
        west_http,
        west_wrong_body,
        east_http,
        west_tcp,
        west_tcp_closed,
        west_dns,
        west_r53,
        west_alarm,
    ];
    let alarms: BTreeMap<String, Arc<dyn AlarmStateApi>> = BTreeMap::from([(
        WEST.to_owned(),
        Arc::new(FakeAlarm::new(alarm)) as Arc<dyn AlarmStateApi>,
    )]);
    ProbeVerifier::new(&probes, Arc::new(checkers), alarms)
        .expect("verifier")
        .with_retry_pause(Duration::from_millis(10))
}

#[tokio::test]
async fn passing_probes_of_the_target_region_pass() {
    let http = http_server().await;
    let v = verifier(&http, FakeHealthChecks::counts(2, 3), AlarmState::Ok).await;
    v.verify(
        WEST,
        &names(&[
            "west-http",
            "west-tcp",
            "west-dns",
            "west-r53",
            "west-alarm",
        ]),
    )
    .await
    .expect("all pass");
}

#[tokio::test]
async fn probes_of_the_other_region_are_not_run() {
    let http = http_server().await;
    let v = verifier(&http, FakeHealthChecks::counts(1, 1), AlarmState::Ok).await;
    // east-http fails, but it belongs to the region traffic is leaving.
    v.verify(WEST, &names(&["west-http", "east-http"]))
        .await
        .expect("east probe skipped");
    let err = v
        .verify(EAST, &names(&["west-http", "east-http"]))
        .await
        .expect_err("east-http fails when east is the target");
    assert!(
        err.starts_with("east-http (http):") && err.contains("answered 503"),
        "{err}"
    );
}

#[tokio::test]
async fn every_failing_probe_is_named_with_its_reason() {
    let http = http_server().await;
    let v = verifier(&http, FakeHealthChecks::counts(1, 3), AlarmState::Alarm).await;
    let err = v
        .verify(
            WEST,
            &names(&[
                "west-http",
                "west-wrong-body",
                "west-tcp-closed",
                "west-r53",
                "west-alarm",
                "no-such-probe",
            ]),
        )
        .await
        .expect_err("several fail");
    let failures: Vec<&str> = err.split("; ").collect();
    assert_eq!(failures.len(), 5, "{err}");
    assert!(
        failures[0].starts_with("west-wrong-body (http):") && failures[0].contains("\"healthy\"")
    );
    assert!(
        failures[1].starts_with("west-tcp-closed (tcp): connect"),
        "{err}"
    );
    assert!(
        failures[2].contains("1 of 3 checkers healthy, 0.5 needed"),
        "{err}"
    );
    assert!(
        failures[3].contains("alarm west-5xx is in ALARM: 5xx above threshold"),
        "{err}"
    );
    assert_eq!(failures[4], "no-such-probe: no such probe in health.probes");
}

#[tokio::test]
async fn a_health_check_nobody_reported_on_is_not_healthy() {
    let http = http_server().await;
    let v = verifier(
        &http,
        FakeHealthChecks::counts(0, 0),
        AlarmState::InsufficientData,
    )
    .await;
    let err = v
        .verify(WEST, &names(&["west-r53", "west-alarm"]))
        .await
        .expect_err("no checker reported");
    assert_eq!(
        err,
        "west-r53 (route53_health_check): health check hc-west: no checker has reported yet"
    );
}
