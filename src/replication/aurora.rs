//! The Aurora Global Database tracker: topology from `DescribeGlobalClusters` and, when the lag
//! source is CloudWatch, the secondary's `AuroraGlobalDBReplicationLag` / `AuroraGlobalDBRPOLag`.
//!
//! One task per configured global database polls every `replication.interval`. Topology is asked
//! of the cold region first — failoverd usually runs there and must keep working when the hot
//! region's endpoints are gone — then of the other. The secondary whose lag matters is the member
//! that is *not* the writer according to the latest topology (after a switchover the roles swap),
//! or the cold region's member while the topology is unknown. Every failure is recorded in the
//! shared state and counted, and the next tick retries: nothing here ends the task but the stop
//! signal.

use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::lag::{LagObservation, LagSourceKind};
use super::metrics::{poll_source, TrackerMetrics};
use super::port::ReplicationPorts;
use super::port::{LagMetric, LagSample, MetricWindow};
use super::state::{record_failure, SharedState, Topology};
use crate::config::AuroraConfig;
use crate::topology::RegionPair;

/// Aurora publishes the global database metrics once a minute; a shorter period only produces
/// empty buckets, and CloudWatch wants multiples of 60 s for standard-resolution metrics.
pub(crate) const CLOUDWATCH_PERIOD: Duration = Duration::from_secs(60);

/// The regions to ask for the topology, in order: the cold region (where failoverd lives and which
/// survives the loss of the hot one) first.
pub(crate) fn topology_query_order(pair: &RegionPair) -> [&str; 2] {
    [pair.cold(), pair.hot()]
}

/// The secondary region whose lag is tracked: the pair's region that is not the writer per the
/// topology, or the cold region while the writer is unknown.
pub(crate) fn secondary_region<'a>(topology: Option<&Topology>, pair: &'a RegionPair) -> &'a str {
    match topology.and_then(|t| t.writer_region.as_deref()) {
        Some(writer) if writer == pair.cold() => pair.hot(),
        _ => pair.cold(),
    }
}

/// After a switchover the secondary is the other region: an observation of the former
/// secondary (now the writer) says nothing about the current lag, however recent it is, so it is
/// dropped rather than kept as the last known lag (a failback's check, or the data-loss bound,
/// would otherwise judge the lag of the other direction).
pub(crate) fn forget_other_secondary(lag: &mut Option<LagObservation>, secondary: &str) {
    if lag.as_ref().is_some_and(|l| l.region != secondary) {
        *lag = None;
    }
}

/// The writer region per the topology, or the hot region while unknown.
pub(crate) fn writer_region<'a>(topology: Option<&'a Topology>, pair: &'a RegionPair) -> &'a str {
    topology
        .and_then(|t| t.writer_region.as_deref())
        .filter(|w| pair.contains(w))
        .unwrap_or(pair.hot())
}

/// The lag observation from CloudWatch series (oldest first, as the port returns them): the newest
/// replication-lag data point, with the RPO lag of the same or a later period when there is one.
pub(crate) fn observation_from_series(
    lag: &[LagSample],
    rpo: &[LagSample],
    region: &str,
) -> Option<LagObservation> {
    let newest = lag.iter().max_by_key(|s| s.at)?;
    let rpo_lag = rpo
        .iter()
        .filter(|s| s.at >= newest.at)
        .max_by_key(|s| s.at)
        .map(|s| s.lag);
    Some(LagObservation {
        lag: newest.lag,
        rpo_lag,
        region: region.to_owned(),
        source: LagSourceKind::Cloudwatch,
        observed_at: newest.at,
    })
}

/// The window read each poll: long enough to find the newest point that could still be fresh,
/// ending one period in the future so the current (partial) period is included.
pub(crate) fn metric_window(now: OffsetDateTime, stale_after: Duration) -> MetricWindow {
    let back = stale_after.saturating_add(CLOUDWATCH_PERIOD);
    // Validation bounds `stale_after` to days; a date out of range still never panics here.
    MetricWindow {
        start: now
            .checked_sub(back.try_into().unwrap_or(time::Duration::MAX))
            .unwrap_or(now),
        end: now + CLOUDWATCH_PERIOD,
        period: CLOUDWATCH_PERIOD,
    }
}

/// Polls one global database.
pub(crate) struct AuroraTracker {
    pub config: AuroraConfig,
    pub pair: RegionPair,
    pub ports: ReplicationPorts,
    pub state: SharedState,
    pub metrics: TrackerMetrics,
    /// Publishes the writer region for the heartbeat (which writes there).
    pub writer: watch::Sender<String>,
}

impl AuroraTracker {
    /// Polls every `interval` until `stop` turns true.
    pub(crate) async fn run(self, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                _ = ticks.tick() => {}
            }
            // A poll is bounded by the AWS clients' operation timeouts; the stop signal still
            // interrupts it so shutdown never waits on a dying region.
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                _ = self.poll() => {}
            }
        }
    }

    pub(crate) async fn poll(&self) {
        self.poll_topology().await;
        if LagSourceKind::from(self.config.lag_source) == LagSourceKind::Cloudwatch {
            self.poll_cloudwatch().await;
        }
    }

    async fn poll_topology(&self) {
        let id = self.config.global_cluster.as_str();
        let mut errors = Vec::new();
        for region in topology_query_order(&self.pair) {
            let Some(api) = self.ports.region(region).map(|p| &p.global_database) else {
                continue;
            };
            match api.describe_global_cluster(id).await {
                Ok(global) => {
                    let now = OffsetDateTime::now_utc();
                    let topology = Topology::from_global(&global, now);
                    // Mid-failover there is no writer: keep the last known one rather than
                    // falling back to the configured hot region.
                    if topology.writer_region.is_some() {
                        let writer = writer_region(Some(&topology), &self.pair).to_owned();
                        self.writer.send_if_modified(|w| {
                            let changed = *w != writer;
                            *w = writer;
                            changed
                        });
                    }
                    self.state.update_aurora(id, |a| {
                        a.topology = Some(topology);
                        a.topology_error = None;
                    });
                    return;
                }
                Err(e) => errors.push(format!("{region}: {e}")),
            }
        }
        self.metrics.failed(poll_source::TOPOLOGY);
        let message = format!(
            "DescribeGlobalClusters {id} failed in every region: {}",
            errors.join("; ")
        );
        tracing::warn!(global_cluster = id, error = %message, "aurora topology poll failed");
        let now = OffsetDateTime::now_utc();
        self.state
            .update_aurora(id, |a| record_failure(&mut a.topology_error, message, now));
    }

    async fn poll_cloudwatch(&self) {
        let id = self.config.global_cluster.as_str();
        let topology = self
            .state
            .read()
            .aurora
            .get(id)
            .and_then(|a| a.topology.clone());
        let region = secondary_region(topology.as_ref(), &self.pair).to_owned();
        let now = OffsetDateTime::now_utc();
        let result = self.read_lag(&region, now).await;
        match result {
            Ok(Some(observation)) => self.state.update_aurora(id, |a| {
                a.lag = Some(observation);
                a.lag_error = None;
            }),
            Ok(None) => {
                let message = format!(
                    "CloudWatch has no {} data for the secondary in {region} in the last {}s",
                    LagMetric::ReplicationLag.metric_name(),
                    self.config
                        .stale_after
                        .get()
                        .saturating_add(CLOUDWATCH_PERIOD)
                        .as_secs()
                );
                self.state.update_aurora(id, |a| {
                    forget_other_secondary(&mut a.lag, &region);
                    record_failure(&mut a.lag_error, message, now);
                });
            }
            Err(message) => {
                self.metrics.failed(poll_source::CLOUDWATCH);
                tracing::warn!(global_cluster = id, %region, error = %message, "aurora lag poll failed");
                self.state.update_aurora(id, |a| {
                    forget_other_secondary(&mut a.lag, &region);
                    record_failure(&mut a.lag_error, message, now);
                });
            }
        }
    }

    async fn read_lag(
        &self,
        region: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LagObservation>, String> {
        let Some(cluster) = self.config.clusters.get(region) else {
            return Err(format!(
                "replication.aurora has no cluster for region {region}"
            ));
        };
        let Some(ports) = self.ports.region(region) else {
            return Err(format!("no AWS clients for region {region}"));
        };
        let window = metric_window(now, self.config.stale_after.get());
        let lag = ports
            .lag_metrics
            .lag_series(cluster, LagMetric::ReplicationLag, window)
            .await
            .map_err(|e| e.to_string())?;
        // The RPO lag is optional (not every engine version publishes it): a failure to read it
        // does not invalidate the replication lag.
        let rpo = match ports
            .lag_metrics
            .lag_series(cluster, LagMetric::RpoLag, window)
            .await
        {
            Ok(rpo) => rpo,
            Err(e) => {
                tracing::debug!(%region, error = %e, "no AuroraGlobalDBRPOLag");
                Vec::new()
            }
        };
        Ok(observation_from_series(&lag, &rpo, region))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn regions() -> RegionPair {
        RegionPair::new("hot-1", "cold-1")
    }

    fn topology(writer: Option<&str>) -> Topology {
        Topology {
            status: Some("available".into()),
            writer_region: writer.map(str::to_owned),
            members: Vec::new(),
            transition_to: None,
            observed_at: datetime!(2026-11-28 12:00:00 UTC),
        }
    }

    fn sample(secs: i64, lag_ms: u64) -> LagSample {
        LagSample {
            at: datetime!(2026-11-28 12:00:00 UTC) + time::Duration::seconds(secs),
            lag: Duration::from_millis(lag_ms),
        }
    }

    #[test]
    fn an_observation_of_the_former_secondary_is_forgotten() {
        let observed = |region: &str| LagObservation {
            lag: Duration::from_millis(200),
            rpo_lag: None,
            region: region.into(),
            source: LagSourceKind::Cloudwatch,
            observed_at: datetime!(2026-11-28 12:00:00 UTC),
        };
        let mut lag = Some(observed("cold-1"));
        forget_other_secondary(&mut lag, "cold-1");
        assert_eq!(lag, Some(observed("cold-1")), "same secondary: kept");
        forget_other_secondary(&mut lag, "hot-1");
        assert_eq!(
            lag, None,
            "the roles swapped: the old direction's lag is no lag"
        );
        forget_other_secondary(&mut lag, "hot-1");
        assert_eq!(lag, None);
    }

    #[test]
    fn cold_region_is_asked_first() {
        assert_eq!(topology_query_order(&regions()), ["cold-1", "hot-1"]);
    }

    #[test]
    fn the_secondary_follows_the_writer() {
        let r = regions();
        assert_eq!(secondary_region(None, &r), "cold-1");
        assert_eq!(
            secondary_region(Some(&topology(Some("hot-1"))), &r),
            "cold-1"
        );
        assert_eq!(
            secondary_region(Some(&topology(Some("cold-1"))), &r),
            "hot-1"
        );
        // Mid-failover there is no writer: keep watching the cold member.
        assert_eq!(secondary_region(Some(&topology(None)), &r), "cold-1");
        assert_eq!(writer_region(Some(&topology(Some("cold-1"))), &r), "cold-1");
        assert_eq!(
            writer_region(Some(&topology(Some("elsewhere"))), &r),
            "hot-1"
        );
        assert_eq!(writer_region(None, &r), "hot-1");
    }

    #[test]
    fn newest_sample_wins_with_matching_rpo() {
        let lag = [sample(0, 900), sample(120, 300), sample(60, 5_000)];
        let rpo = [sample(0, 10_000), sample(120, 700)];
        let obs = observation_from_series(&lag, &rpo, "cold-1").expect("observation");
        assert_eq!(obs.lag, Duration::from_millis(300));
        assert_eq!(obs.rpo_lag, Some(Duration::from_millis(700)));
        assert_eq!(obs.observed_at, sample(120, 0).at);
        assert_eq!(obs.region, "cold-1");

        // An RPO point older than the newest lag point is not paired with it.
        let obs = observation_from_series(&lag, &rpo[..1], "cold-1").expect("observation");
        assert_eq!(obs.rpo_lag, None);
        assert!(observation_from_series(&[], &rpo, "cold-1").is_none());
    }

    #[test]
    fn window_covers_stale_after_and_the_current_period() {
        let now = datetime!(2026-11-28 12:00:00 UTC);
        let w = metric_window(now, Duration::from_secs(300));
        assert_eq!(w.start, now - time::Duration::seconds(360));
        assert_eq!(w.end, now + time::Duration::seconds(60));
        assert_eq!(w.period, CLOUDWATCH_PERIOD);
    }
}
