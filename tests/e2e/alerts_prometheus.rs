//! End to end: a real Prometheus server (Debian's `prometheus`, started by the test on a free
//! loopback port with its own configuration and a temporary data directory) scrapes the real
//! `failoverd` binary, evaluates `config/prometheus/alerts.yaml`, and
//! `FailoverdAuroraLagOverBudget` fires once the lag — CloudWatch data put into the test bed —
//! crosses the configured budget; `FailoverdRunWaitingApproval` fires while a run waits for an
//! operator. Read from Prometheus's `/api/v1/alerts`.
//!
//! The rules are the shipped file with every `for:` shortened to 2 s (the full durations are
//! covered by `promtool test rules`), so the test takes seconds. The server is
//! [`crate::prometheus_support::Prometheus`].

use crate::prometheus_support::{Prometheus, WAIT};
use crate::support;
use crate::support::harness;

use std::time::Duration;

use crate::support::{TestBed, COLD, HOT};
use aws_sdk_cloudwatch::types as cw;
use time::OffsetDateTime;

const GLOBAL: &str = "app-global";

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
