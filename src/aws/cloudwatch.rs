//! CloudWatch adapter: implements [`LagMetricsApi`] (Aurora global database lag) and
//! [`AlarmStateApi`] (alarm state for the health probes) and [`SignalApi`] (the data-plane DNS
//! signal).
//!
//! Lag is read with `GetMetricData` rather than `GetMetricStatistics` because it pages and returns
//! the series already sorted, and it is the API AWS recommends for bulk reads.

use async_trait::async_trait;
use aws_sdk_cloudwatch::types as sdk;
use std::time::Duration;

use super::error::{from_sdk, Error, ErrorKind, Result, Service};
use super::time_conv::{to_offset, to_sdk};
use crate::dns::signal::{SignalAlarm, SignalApi, SignalMetric};
use crate::health::port::{AlarmObservation, AlarmState, AlarmStateApi};
use crate::replication::port::{LagMetric, LagMetricsApi, LagSample, MetricWindow};

/// CloudWatch in one region, through the AWS SDK.
#[derive(Debug, Clone)]
pub struct CloudWatchMetrics {
    client: aws_sdk_cloudwatch::Client,
}

impl CloudWatchMetrics {
    pub(crate) fn new(client: aws_sdk_cloudwatch::Client) -> Self {
        Self { client }
    }

    /// `DescribeAlarms` of the alarm `name`, of the given types.
    async fn describe_alarm(
        &self,
        name: &str,
        types: &[sdk::AlarmType],
    ) -> Result<aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput> {
        self.client
            .describe_alarms()
            .alarm_names(name)
            .set_alarm_types(Some(types.to_vec()))
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, DESCRIBE_ALARMS, &e))
    }
}

const DESCRIBE_ALARMS: &str = "DescribeAlarms";

const SERVICE: Service = Service::CloudWatch;

/// Aurora publishes the global database metrics in this namespace, per DB cluster.
const RDS_NAMESPACE: &str = "AWS/RDS";
const CLUSTER_DIMENSION: &str = "DBClusterIdentifier";
/// The query id inside one `GetMetricData` call (any `[a-z][a-zA-Z0-9_]*`).
const QUERY_ID: &str = "lag";

#[async_trait]
impl LagMetricsApi for CloudWatchMetrics {
    async fn lag_series(
        &self,
        db_cluster_id: &str,
        metric: LagMetric,
        window: MetricWindow,
    ) -> Result<Vec<LagSample>> {
        const OP: &str = "GetMetricData";
        let period = i32::try_from(window.period.as_secs())
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Invalid,
                    SERVICE,
                    OP,
                    format!(
                        "period {:?} must be a positive number of seconds",
                        window.period
                    ),
                )
            })?;
        let query = sdk::MetricDataQuery::builder()
            .id(QUERY_ID)
            .return_data(true)
            .metric_stat(
                sdk::MetricStat::builder()
                    .metric(
                        sdk::Metric::builder()
                            .namespace(RDS_NAMESPACE)
                            .metric_name(metric.metric_name())
                            .dimensions(
                                sdk::Dimension::builder()
                                    .name(CLUSTER_DIMENSION)
                                    .value(db_cluster_id)
                                    .build(),
                            )
                            .build(),
                    )
                    .period(period)
                    // The worst lag in each period is what an RPO bound is about.
                    .stat("Maximum")
                    .build(),
            )
            .build();

        let mut samples = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let output = self
                .client
                .get_metric_data()
                .metric_data_queries(query.clone())
                .start_time(to_sdk(window.start))
                .end_time(to_sdk(window.end))
                .scan_by(sdk::ScanBy::TimestampAscending)
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| from_sdk(SERVICE, OP, &e))?;
            for result in output.metric_data_results() {
                for (at, value) in result.timestamps().iter().zip(result.values()) {
                    let Some(at) = to_offset(at) else { continue };
                    samples.push(LagSample {
                        at,
                        lag: millis_to_duration(*value),
                    });
                }
            }
            match output.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => break,
            }
        }
        // Ascending is requested, but an emulator or a multi-page answer need not honour it
        // across pages; callers rely on the order.
        samples.sort_by_key(|s| s.at);
        Ok(samples)
    }
}

/// Aurora reports lag in milliseconds as a float; negative or non-finite values (seen right after
/// a switchover) mean "no lag measured" and become zero rather than a panic in `Duration`.
fn millis_to_duration(millis: f64) -> Duration {
    if millis.is_finite() && millis > 0.0 {
        Duration::from_secs_f64(millis / 1000.0)
    } else {
        Duration::ZERO
    }
}

#[async_trait]
impl AlarmStateApi for CloudWatchMetrics {
    async fn alarm_state(&self, name: &str) -> Result<AlarmObservation> {
        let output = self
            .describe_alarm(
                name,
                &[sdk::AlarmType::MetricAlarm, sdk::AlarmType::CompositeAlarm],
            )
            .await?;
        let metric = output
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(name))
            .map(|a| {
                observation(
                    name,
                    a.state_value(),
                    a.state_reason(),
                    a.state_updated_timestamp(),
                )
            });
        let composite = || {
            output
                .composite_alarms()
                .iter()
                .find(|a| a.alarm_name() == Some(name))
                .map(|a| {
                    observation(
                        name,
                        a.state_value(),
                        a.state_reason(),
                        a.state_updated_timestamp(),
                    )
                })
        };
        metric.or_else(composite).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                SERVICE,
                DESCRIBE_ALARMS,
                format!("alarm {name} does not exist"),
            )
        })
    }
}

fn observation(
    name: &str,
    state: Option<&sdk::StateValue>,
    reason: Option<&str>,
    updated: Option<&aws_smithy_types::DateTime>,
) -> AlarmObservation {
    AlarmObservation {
        name: name.to_owned(),
        state: match state {
            Some(sdk::StateValue::Ok) => AlarmState::Ok,
            Some(sdk::StateValue::Alarm) => AlarmState::Alarm,
            Some(sdk::StateValue::InsufficientData) => AlarmState::InsufficientData,
            Some(other) => AlarmState::Unknown(other.as_str().to_owned()),
            None => AlarmState::Unknown(String::new()),
        },
        reason: reason.map(str::to_owned),
        updated_at: updated.and_then(to_offset),
    }
}

/// The data-plane DNS signal: `PutMetricData` of one value (stamped by CloudWatch on receipt, so
/// this host's clock does not matter) and the alarm that follows it.
#[async_trait]
impl SignalApi for CloudWatchMetrics {
    async fn publish(&self, metric: &SignalMetric, value: f64) -> Result<()> {
        const OP: &str = "PutMetricData";
        let mut datum = sdk::MetricDatum::builder()
            .metric_name(&metric.metric)
            .value(value)
            .unit(sdk::StandardUnit::None);
        for (name, value) in &metric.dimensions {
            datum = datum.dimensions(sdk::Dimension::builder().name(name).value(value).build());
        }
        self.client
            .put_metric_data()
            .namespace(&metric.namespace)
            .metric_data(datum.build())
            .send()
            .await
            .map_err(|e| from_sdk(SERVICE, OP, &e))?;
        Ok(())
    }

    async fn signal_alarm(&self, name: &str) -> Result<SignalAlarm> {
        let output = self
            .describe_alarm(name, &[sdk::AlarmType::MetricAlarm])
            .await?;
        let a = output
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(name))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    SERVICE,
                    DESCRIBE_ALARMS,
                    format!("metric alarm {name} does not exist"),
                )
            })?;
        let seen = observation(
            name,
            a.state_value(),
            a.state_reason(),
            a.state_updated_timestamp(),
        );
        Ok(SignalAlarm {
            name: name.to_owned(),
            state: seen.state,
            reason: seen.reason,
            namespace: a.namespace().map(str::to_owned),
            metric: a.metric_name().map(str::to_owned),
            dimensions: a
                .dimensions()
                .iter()
                .filter_map(|d| Some((d.name()?.to_owned(), d.value()?.to_owned())))
                .collect(),
            statistic: a.statistic().map(|s| s.as_str().to_owned()),
            extended_statistic: a.extended_statistic().map(str::to_owned),
            metric_math: !a.metrics().is_empty(),
            comparison: a.comparison_operator().map(|c| c.as_str().to_owned()),
            threshold: a.threshold(),
            period_seconds: a.period(),
            evaluation_periods: a.evaluation_periods(),
            datapoints_to_alarm: a.datapoints_to_alarm(),
            treat_missing_data: a.treat_missing_data().map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_milliseconds() {
        assert_eq!(millis_to_duration(1500.0), Duration::from_millis(1500));
        assert_eq!(millis_to_duration(-3.0), Duration::ZERO);
        assert_eq!(millis_to_duration(f64::NAN), Duration::ZERO);
    }
}
