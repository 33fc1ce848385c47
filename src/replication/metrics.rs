//! Prometheus metrics of the replication trackers.
//!
//! The gauges are computed from the shared state *at scrape time* by a custom collector, not set
//! by the trackers: an age must keep growing while no new data arrives (that is what makes the
//! staleness alert fire), and a lag value must disappear from the lag gauge the moment it becomes
//! stale rather than linger until the next successful poll. Labels come from a fixed vocabulary:
//! `global_cluster`, `vault` and `resource` are configured names (and the ARNs of the protected
//! resources), `region` one of the pair, `source` one of `cloudwatch|heartbeat` (lag) or
//! `topology|cloudwatch|heartbeat|backup_recovery_points|backup_copy_jobs` (poll failures).

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use time::OffsetDateTime;

use super::lag::age;
use super::state::SharedState;

/// Poll-failure `source` label values.
pub(crate) mod poll_source {
    pub const TOPOLOGY: &str = "topology";
    pub const CLOUDWATCH: &str = "cloudwatch";
    pub const HEARTBEAT: &str = "heartbeat";
    pub const RECOVERY_POINTS: &str = "backup_recovery_points";
    pub const COPY_JOBS: &str = "backup_copy_jobs";
}

/// Gauges derived from [`SharedState`] on every scrape.
pub(crate) struct ReplicationCollector {
    state: SharedState,
    lag: GaugeVec,
    rpo_lag: GaugeVec,
    observation_age: GaugeVec,
    stale: IntGaugeVec,
    max_lag: GaugeVec,
    writer: IntGaugeVec,
    copy_age: GaugeVec,
    max_copy_age: GaugeVec,
    copy_jobs_failed: IntGaugeVec,
    /// Serialises scrapes: each one resets and refills the gauges.
    scrape: Mutex<()>,
}

impl ReplicationCollector {
    fn new(state: SharedState) -> Result<Self, prometheus::Error> {
        Ok(Self {
            state,
            lag: GaugeVec::new(
                Opts::new(
                    "failoverd_aurora_replication_lag_seconds",
                    "Replication lag of the Aurora global database secondary in `region`; absent \
                     while the newest observation is stale (see failoverd_aurora_lag_stale).",
                ),
                &["global_cluster", "region", "source"],
            )?,
            rpo_lag: GaugeVec::new(
                Opts::new(
                    "failoverd_aurora_rpo_lag_seconds",
                    "AuroraGlobalDBRPOLag of the secondary in `region` (what an ungraceful failover \
                     would lose), where Aurora publishes it; absent while stale.",
                ),
                &["global_cluster", "region"],
            )?,
            observation_age: GaugeVec::new(
                Opts::new(
                    "failoverd_aurora_lag_observation_age_seconds",
                    "Age of the newest lag observation, computed at scrape time.",
                ),
                &["global_cluster", "source"],
            )?,
            stale: IntGaugeVec::new(
                Opts::new(
                    "failoverd_aurora_lag_stale",
                    "1 when there is no lag observation younger than stale_after: the lag is unknown.",
                ),
                &["global_cluster", "source"],
            )?,
            max_lag: GaugeVec::new(
                Opts::new(
                    "failoverd_aurora_max_lag_seconds",
                    "Configured lag budget (replication.aurora[].max_lag).",
                ),
                &["global_cluster"],
            )?,
            writer: IntGaugeVec::new(
                Opts::new(
                    "failoverd_aurora_writer",
                    "1 for the region of the global database's writer member, 0 for the other \
                     members, as last described by DescribeGlobalClusters.",
                ),
                &["global_cluster", "region"],
            )?,
            copy_age: GaugeVec::new(
                Opts::new(
                    "failoverd_backup_newest_copy_age_seconds",
                    "Age of the newest completed recovery point of each protected resource in the \
                     vault, computed at scrape time.",
                ),
                &["vault", "resource"],
            )?,
            max_copy_age: GaugeVec::new(
                Opts::new(
                    "failoverd_backup_max_copy_age_seconds",
                    "Configured bound on the newest copy's age (replication.backup_vaults[].max_copy_age).",
                ),
                &["vault"],
            )?,
            copy_jobs_failed: IntGaugeVec::new(
                Opts::new(
                    "failoverd_backup_copy_jobs_failed",
                    "Copy jobs into the vault that failed within the vault's max_copy_age window \
                     (listed in the source region).",
                ),
                &["vault"],
            )?,
            scrape: Mutex::new(()),
        })
    }

    fn vecs(&self) -> [&dyn Collector; 9] {
        [
            &self.lag,
            &self.rpo_lag,
            &self.observation_age,
            &self.stale,
            &self.max_lag,
            &self.writer,
            &self.copy_age,
            &self.max_copy_age,
            &self.copy_jobs_failed,
        ]
    }

    fn refresh(&self, now: OffsetDateTime) {
        for v in [
            &self.lag,
            &self.rpo_lag,
            &self.observation_age,
            &self.max_lag,
            &self.copy_age,
            &self.max_copy_age,
        ] {
            v.reset();
        }
        for v in [&self.stale, &self.writer, &self.copy_jobs_failed] {
            v.reset();
        }
        let state = self.state.read();
        for a in state.aurora.values() {
            let g = a.global_cluster.as_str();
            let source = a.source.as_str();
            self.max_lag
                .with_label_values(&[g])
                .set(a.max_lag.as_secs_f64());
            let reading = a.reading(now);
            if let Some(r) = &reading {
                self.observation_age
                    .with_label_values(&[g, source])
                    .set(r.age.as_secs_f64());
                if !r.stale {
                    let region = r.observation.region.as_str();
                    self.lag
                        .with_label_values(&[g, region, source])
                        .set(r.observation.lag.as_secs_f64());
                    if let Some(rpo) = r.observation.rpo_lag {
                        self.rpo_lag
                            .with_label_values(&[g, region])
                            .set(rpo.as_secs_f64());
                    }
                }
            }
            self.stale
                .with_label_values(&[g, source])
                .set(i64::from(reading.as_ref().is_none_or(|r| r.stale)));
            if let Some(topology) = &a.topology {
                for m in &topology.members {
                    if let Some(region) = &m.region {
                        self.writer
                            .with_label_values(&[g, region])
                            .set(i64::from(m.is_writer));
                    }
                }
            }
        }
        for v in state.vaults.values() {
            let vault = v.vault.as_str();
            self.max_copy_age
                .with_label_values(&[vault])
                .set(v.max_copy_age.as_secs_f64());
            for (resource, copy) in &v.newest {
                self.copy_age
                    .with_label_values(&[vault, resource])
                    .set(age(copy.created_at, now).as_secs_f64());
            }
            if let Some(failed) = v.failed_copy_jobs {
                self.copy_jobs_failed
                    .with_label_values(&[vault])
                    .set(i64::try_from(failed).unwrap_or(i64::MAX));
            }
        }
    }
}

impl Collector for ReplicationCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.vecs().into_iter().flat_map(|c| c.desc()).collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _guard = self
            .scrape
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.refresh(OffsetDateTime::now_utc());
        self.vecs().into_iter().flat_map(|c| c.collect()).collect()
    }
}

/// The metrics the trackers update directly.
#[derive(Clone)]
pub(crate) struct TrackerMetrics {
    /// `failoverd_replication_poll_failures_total{source}`.
    pub poll_failures: IntCounterVec,
}

impl TrackerMetrics {
    pub(crate) fn failed(&self, source: &str) {
        self.poll_failures.with_label_values(&[source]).inc();
    }
}

/// Registers the collector over `state` and the trackers' counters into `registry`.
pub(crate) fn register(
    registry: &Registry,
    state: SharedState,
) -> Result<TrackerMetrics, prometheus::Error> {
    let poll_failures = IntCounterVec::new(
        Opts::new(
            "failoverd_replication_poll_failures_total",
            "Failed polls of the replication trackers, by what was polled.",
        ),
        &["source"],
    )?;
    // Every label value exists from the start, so `increase()` sees the first failure.
    for source in [
        poll_source::TOPOLOGY,
        poll_source::CLOUDWATCH,
        poll_source::HEARTBEAT,
        poll_source::RECOVERY_POINTS,
        poll_source::COPY_JOBS,
    ] {
        poll_failures.with_label_values(&[source]);
    }
    registry.register(Box::new(ReplicationCollector::new(state)?))?;
    registry.register(Box::new(poll_failures.clone()))?;
    Ok(TrackerMetrics { poll_failures })
}
