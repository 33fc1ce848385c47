//! CloudWatch adapter (`LagMetricsApi`, `AlarmStateApi`) against moto.

use crate::support;

use std::time::Duration;

use crate::support::{TestBed, COLD};
use aws_sdk_cloudwatch::types as sdk;
use failoverd::aws::ErrorKind;
use failoverd::health::{AlarmState, AlarmStateApi};
use failoverd::replication::{LagMetric, LagMetricsApi, MetricWindow};
use time::OffsetDateTime;

async fn raw_client(bed: &TestBed) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(&support::raw_config(&bed.endpoint_url(), COLD).await)
}

/// Publishes `values` (milliseconds) of `metric` for `cluster`, one a minute ending now.
async fn publish_lag(
    client: &aws_sdk_cloudwatch::Client,
    cluster: &str,
    metric: &str,
    values: &[f64],
    now: OffsetDateTime,
) {
    let count = values.len() as i64;
    let data = values.iter().enumerate().map(|(i, value)| {
        let at = now - time::Duration::minutes(count - 1 - i as i64);
        sdk::MetricDatum::builder()
            .metric_name(metric)
            .dimensions(
                sdk::Dimension::builder()
                    .name("DBClusterIdentifier")
                    .value(cluster)
                    .build(),
            )
            .timestamp(aws_smithy_types::DateTime::from_secs(at.unix_timestamp()))
            .value(*value)
            .unit(sdk::StandardUnit::Milliseconds)
            .build()
    });
    client
        .put_metric_data()
        .namespace("AWS/RDS")
        .set_metric_data(Some(data.collect()))
        .send()
        .await
        .expect("put metric data");
}

#[tokio::test]
async fn lag_series_reads_the_aurora_global_metrics() {
    let bed = TestBed::start().await;
    let raw = raw_client(&bed).await;
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("valid");
    publish_lag(
        &raw,
        "app-cold",
        "AuroraGlobalDBReplicationLag",
        &[120.0, 80.0, 1500.0],
        now,
    )
    .await;
    publish_lag(&raw, "app-cold", "AuroraGlobalDBRPOLag", &[900.0], now).await;
    // Another cluster's lag must not leak into the series.
    publish_lag(
        &raw,
        "other",
        "AuroraGlobalDBReplicationLag",
        &[99_999.0],
        now,
    )
    .await;

    let clients = support::clients(&support::settings(&bed.endpoint_url())).await;
    let metrics = clients.region(COLD).expect("cold").cloudwatch();
    let window = MetricWindow {
        start: now - time::Duration::minutes(10),
        end: now + time::Duration::minutes(1),
        period: Duration::from_secs(60),
    };
    let series = metrics
        .lag_series("app-cold", LagMetric::ReplicationLag, window)
        .await
        .expect("replication lag");
    let lags: Vec<Duration> = series.iter().map(|s| s.lag).collect();
    assert_eq!(
        lags,
        [
            Duration::from_millis(120),
            Duration::from_millis(80),
            Duration::from_millis(1500)
        ],
        "{series:#?}"
    );
    assert!(
        series.windows(2).all(|w| w[0].at < w[1].at),
        "oldest first: {series:#?}"
    );

    let rpo = metrics
        .lag_series("app-cold", LagMetric::RpoLag, window)
        .await
        .expect("rpo lag");
    assert_eq!(
        rpo.iter().map(|s| s.lag).collect::<Vec<_>>(),
        [Duration::from_millis(900)]
    );

    // A cluster that published nothing has an empty series (CloudWatch cannot tell it apart
    // from a missing cluster), not an error.
    let none = metrics
        .lag_series("no-such-cluster", LagMetric::ReplicationLag, window)
        .await
        .expect("empty series");
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_zero_period_is_refused() {
    let bed = TestBed::start().await;
    let clients = support::clients(&support::settings(&bed.endpoint_url())).await;
    let now = OffsetDateTime::now_utc();
    let err = clients
        .region(COLD)
        .expect("cold")
        .cloudwatch()
        .lag_series(
            "app-cold",
            LagMetric::ReplicationLag,
            MetricWindow {
                start: now,
                end: now,
                period: Duration::ZERO,
            },
        )
        .await
        .expect_err("zero period");
    assert_eq!(err.kind, ErrorKind::Invalid);
}

#[tokio::test]
async fn alarm_state_is_read_and_missing_alarms_are_not_found() {
    let bed = TestBed::start().await;
    let raw = raw_client(&bed).await;
    raw.put_metric_alarm()
        .alarm_name("hot-region-5xx")
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_ELB_5XX_Count")
        .statistic(sdk::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(10.0)
        .comparison_operator(sdk::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("put alarm");
    raw.set_alarm_state()
        .alarm_name("hot-region-5xx")
        .state_value(sdk::StateValue::Alarm)
        .state_reason("5xx above threshold")
        .send()
        .await
        .expect("set alarm state");

    let clients = support::clients(&support::settings(&bed.endpoint_url())).await;
    let alarms = clients.region(COLD).expect("cold").cloudwatch();
    let alarm = alarms
        .alarm_state("hot-region-5xx")
        .await
        .expect("alarm state");
    assert_eq!(alarm.name, "hot-region-5xx");
    assert_eq!(alarm.state, AlarmState::Alarm);
    assert_eq!(alarm.reason.as_deref(), Some("5xx above threshold"));

    let err = alarms
        .alarm_state("no-such-alarm")
        .await
        .expect_err("missing alarm");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.operation, "DescribeAlarms");
}
