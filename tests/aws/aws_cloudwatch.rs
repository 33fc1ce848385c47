//! CloudWatch adapter (`LagMetricsApi`, `AlarmStateApi`) against moto.

use crate::support;

use std::time::Duration;

use crate::support::{TestBed, COLD};
use aws_sdk_cloudwatch::types as sdk;
use failoverd::aws::ErrorKind;
use failoverd::health::{AlarmState, AlarmStateApi, HealthCheckStatusApi};
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

/// The data-plane DNS signal through the adapters: an alarm wired as `docs/architecture.md` says
/// passes the wiring check, publishing 1 drains the region (the alarm in the other region goes to
/// ALARM and Route 53's health check on it turns unhealthy), 0 serves it; mis-wirings are named.
#[tokio::test]
async fn the_data_plane_signal_drains_and_serves_through_its_alarm() {
    use failoverd::dns::signal::{Drain, Signals};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    let bed = TestBed::start().await;
    let hot = support::HOT;
    // The alarm draining us-east-1 lives in us-west-2.
    let raw = raw_client(&bed).await;
    let put_alarm = |name: &str, statistic: sdk::Statistic, missing: &str| {
        raw.put_metric_alarm()
            .alarm_name(name)
            .namespace("Failoverd")
            .metric_name("RegionDrained")
            .dimensions(sdk::Dimension::builder().name("Pair").value("test").build())
            .dimensions(sdk::Dimension::builder().name("Region").value(hot).build())
            .statistic(statistic)
            .period(60)
            .evaluation_periods(1)
            .datapoints_to_alarm(1)
            .threshold(1.0)
            .comparison_operator(sdk::ComparisonOperator::GreaterThanOrEqualToThreshold)
            .treat_missing_data(missing)
            .send()
    };
    put_alarm("drain-east", sdk::Statistic::Maximum, "ignore")
        .await
        .expect("put alarm");
    put_alarm(
        "drain-east-miswired",
        sdk::Statistic::SampleCount,
        "missing",
    )
    .await
    .expect("put alarm");
    let r53 = aws_sdk_route53::Client::new(&support::raw_config(&bed.endpoint_url(), hot).await);
    use aws_sdk_route53::types as r53t;
    let check = |reference: &str, config: r53t::HealthCheckConfig| {
        r53.create_health_check()
            .caller_reference(reference)
            .health_check_config(config)
            .send()
    };
    let signal_check = check(
        "signal-east",
        r53t::HealthCheckConfig::builder()
            .r#type(r53t::HealthCheckType::CloudwatchMetric)
            .alarm_identifier(
                r53t::AlarmIdentifier::builder()
                    .region(r53t::CloudWatchRegion::UsWest2)
                    .name("drain-east")
                    .build()
                    .expect("alarm identifier"),
            )
            .insufficient_data_health_status(r53t::InsufficientDataHealthStatus::LastKnownStatus)
            .build()
            .expect("health check config"),
    )
    .await
    .expect("create health check")
    .health_check()
    .expect("health check")
    .id()
    .to_owned();
    let https_check = check(
        "https-west",
        r53t::HealthCheckConfig::builder()
            .r#type(r53t::HealthCheckType::Https)
            .fully_qualified_domain_name("app.example.com")
            .port(443)
            .build()
            .expect("health check config"),
    )
    .await
    .expect("create health check")
    .health_check()
    .expect("health check")
    .id()
    .to_owned();

    let aws = support::clients(&support::settings(&bed.endpoint_url())).await;
    let config = |east_alarm: &str| failoverd::config::DataPlaneConfig {
        namespace: "Failoverd".into(),
        metric: "RegionDrained".into(),
        signals: BTreeMap::from([
            (
                hot.to_owned(),
                failoverd::config::SignalConfig {
                    alarm: east_alarm.into(),
                    health_check: signal_check.clone(),
                },
            ),
            (
                COLD.to_owned(),
                failoverd::config::SignalConfig {
                    alarm: "drain-west".into(),
                    health_check: https_check.clone(),
                },
            ),
        ]),
        alarm_timeout: failoverd::config::Duration(Duration::from_secs(60)),
        confirm_timeout: failoverd::config::Duration(Duration::from_secs(10)),
    };
    let signals = |east_alarm: &str| Signals {
        config: Arc::new(config(east_alarm)),
        pair: failoverd::topology::RegionPair::new(hot, COLD),
        pair_name: "test".into(),
        cloudwatch: aws
            .regions()
            .iter()
            .map(|r| {
                (
                    r.region().to_owned(),
                    Arc::new(r.cloudwatch()) as Arc<dyn failoverd::dns::signal::SignalApi>,
                )
            })
            .collect(),
        health_checks: Arc::new(aws.dns()),
        poll_interval: Duration::from_millis(100),
    };
    let s = signals("drain-east");

    // Wired as documented: nothing to say.
    assert_eq!(
        s.alarm_wiring(hot).await.expect("read"),
        Vec::<String>::new()
    );
    assert_eq!(
        s.health_check_wiring(hot).await.expect("read"),
        Vec::<String>::new()
    );
    let budget = Duration::from_secs(10);
    assert_eq!(s.drain(hot, budget).await, Drain::Served);

    // Drain: the alarm in us-west-2 alarms, Route 53's checkers follow it.
    s.publish(hot, 1.0).await.expect("publish");
    assert_eq!(s.drain(hot, budget).await, Drain::Drained);
    let status = aws
        .dns()
        .health_check_status(&signal_check)
        .await
        .expect("health check status");
    assert_eq!(status.checkers_healthy(), 0, "{status:?}");
    assert!(status.checkers_total() > 0, "{status:?}");

    // The other region's alarm does not exist and its health check is an HTTPS one: both named.
    let missing = s.alarm_wiring(COLD).await.expect_err("no such alarm");
    assert_eq!(missing.kind, ErrorKind::NotFound, "{missing}");
    let wiring = s.health_check_wiring(COLD).await.expect("read").join("\n");
    assert!(wiring.contains("it is a HTTPS health check"), "{wiring}");
    assert!(wiring.contains("follows alarm - in -"), "{wiring}");

    // A mis-wired alarm is refused with each reason.
    let bad = signals("drain-east-miswired")
        .alarm_wiring(hot)
        .await
        .expect("read")
        .join("\n");
    assert!(bad.contains("statistic is SampleCount"), "{bad}");
    assert!(bad.contains("TreatMissingData is missing"), "{bad}");
    assert!(
        bad.starts_with("alarm drain-east-miswired in us-west-2 (the signal of us-east-1)"),
        "{bad}"
    );
}
