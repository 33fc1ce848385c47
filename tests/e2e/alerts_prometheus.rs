//! End to end: a real Prometheus server (Debian's `prometheus`, started by the test on a free
//! loopback port with its own configuration and a temporary data directory) scrapes the real
//! `failoverd` binary, evaluates `config/prometheus/alerts.yaml`, and
//! `FailoverdAuroraLagOverBudget` fires once the lag — CloudWatch data put into the test bed —
//! crosses the configured budget; `FailoverdRunWaitingApproval` fires while a run waits for an
//! operator. Read from Prometheus's `/api/v1/alerts`.
//!
//! The rules are the shipped file with every `for:` shortened to 2 s (the full durations are
//! covered by `promtool test rules`), so the test takes seconds.

use crate::support;
use crate::support::harness;

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{TestBed, COLD, HOT};
use aws_sdk_cloudwatch::types as cw;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::process::{Child, Command};

const GLOBAL: &str = "app-global";
const WAIT: Duration = Duration::from_secs(90);

async fn put_lag(bed: &TestBed, millis: f64) {
    let client =
        aws_sdk_cloudwatch::Client::new(&support::raw_config(&bed.endpoint_url(), COLD).await);
    client
        .put_metric_data()
        .namespace("AWS/RDS")
        .metric_data(
            cw::MetricDatum::builder()
                .metric_name("AuroraGlobalDBReplicationLag")
                .dimensions(
                    cw::Dimension::builder()
                        .name("DBClusterIdentifier")
                        .value("app-cold")
                        .build(),
                )
                .timestamp(aws_smithy_types::DateTime::from_secs(
                    OffsetDateTime::now_utc().unix_timestamp(),
                ))
                .value(millis)
                .unit(cw::StandardUnit::Milliseconds)
                .build(),
        )
        .send()
        .await
        .expect("put metric data");
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The shipped rules with every `for:` shortened to 2 s.
fn fast_rules() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/prometheus/alerts.yaml");
    let text = std::fs::read_to_string(path).expect("read alerts.yaml");
    let mut replaced = 0;
    let out: Vec<String> = text
        .lines()
        .map(|l| match l.split_once("for: ") {
            Some((indent, _)) if indent.trim().is_empty() => {
                replaced += 1;
                format!("{indent}for: 2s")
            }
            _ => l.to_owned(),
        })
        .collect();
    assert!(replaced >= 1, "no `for:` in the rules?");
    out.join("\n")
}

/// A Prometheus server, killed on drop.
struct Prometheus {
    port: u16,
    _dir: tempfile::TempDir,
    _child: Child,
}

impl Prometheus {
    async fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("alerts.yaml"), fast_rules()).expect("write rules");
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules}\n\
                 scrape_configs:\n  - job_name: failoverd\n    static_configs:\n      - targets: ['{target}']\n",
                rules = dir.path().join("alerts.yaml").display()
            ),
        )
        .expect("write config");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus is missing: install Debian's `prometheus` package");
        let server = Prometheus {
            port,
            _dir: dir,
            _child: child,
        };
        let ready = format!("{}/-/ready", server.url());
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(r) = reqwest::get(&ready).await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "prometheus not ready"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.url()))
            .await
            .expect("query prometheus")
            .json()
            .await
            .expect("JSON answer")
    }

    /// Alerts named `name` and their states.
    async fn alert_states(&self, name: &str) -> Vec<(String, Value)> {
        let answer = self.get("/api/v1/alerts").await;
        answer["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .map(|a| {
                (
                    a["state"].as_str().unwrap_or("").to_owned(),
                    a["labels"].clone(),
                )
            })
            .collect()
    }

    /// The value of an instant query's first sample.
    async fn value(&self, query: &str) -> Option<f64> {
        let answer = self
            .get(&format!("/api/v1/query?query={}", urlencode(query)))
            .await;
        answer["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_scraping_failoverd_fires_the_lag_and_approval_alerts() {
    let bed = TestBed::start().await;
    support::seed_global_database(&bed.moto.endpoint_url(), GLOBAL).await;
    put_lag(&bed, 1_000.0).await;

    // failoverd under test, polling every 500 ms with a 5 s budget.
    let config = harness::config_yaml(&format!(
        "aws:\n  endpoint_url: {}\nreplication:\n  interval: 500ms\n  aurora:\n    - global_cluster: {GLOBAL}\n      clusters: {{{HOT}: app-hot, {COLD}: app-cold}}\n      max_lag: 5s\n      stale_after: 5m\n",
        bed.endpoint_url()
    ));
    let daemon = tokio::task::block_in_place(|| harness::Daemon::start(&config));
    let target = daemon.url.trim_start_matches("http://").to_owned();

    let prometheus = Prometheus::start(&target).await;

    // Below budget: Prometheus has the 1 s lag, and the alert is not firing (nor pending).
    let lag_query = format!(
        "failoverd_aurora_replication_lag_seconds{{global_cluster=\"{GLOBAL}\",region=\"{COLD}\"}}"
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    while prometheus.value(&lag_query).await != Some(1.0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus never scraped the 1 s lag"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Several evaluations (1 s apart) with the lag under budget: nothing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(
        prometheus
            .alert_states("FailoverdAuroraLagOverBudget")
            .await
            .is_empty(),
        "no lag alert under budget"
    );

    // The lag crosses the budget.
    put_lag(&bed, 20_000.0).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let labels = loop {
        let states = prometheus
            .alert_states("FailoverdAuroraLagOverBudget")
            .await;
        if let Some((_, labels)) = states.iter().find(|(state, _)| state == "firing") {
            break labels.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lag alert did not fire: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(labels["global_cluster"], GLOBAL);
    assert_eq!(labels["region"], COLD);
    assert_eq!(labels["severity"], "warning");
    assert_eq!(prometheus.value(&lag_query).await, Some(20.0));
    // The lag is fresh: the staleness alert stays quiet.
    assert!(prometheus
        .alert_states("FailoverdAuroraLagDataStale")
        .await
        .is_empty());

    // A run waiting for approval raises its alert.
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/runs", daemon.url))
        .bearer_auth(harness::OPERATOR_TOKEN)
        .json(&serde_json::json!({"plan": "selftest", "reason": "alert test", "params": {"steps": 1, "approval": true}}))
        .send()
        .await
        .expect("start run");
    assert_eq!(resp.status().as_u16(), 202);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let states = prometheus.alert_states("FailoverdRunWaitingApproval").await;
        if let Some((_, labels)) = states.iter().find(|(state, _)| state == "firing") {
            assert_eq!(labels["plan"], "selftest");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the approval alert did not fire: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(daemon);
}
