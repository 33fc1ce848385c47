//! Prometheus metrics of the Cognito sync, updated after every pass (background or step).
//!
//! Counters of writes and throttling only ever grow; gauges describe the last pass. Throttling is
//! counted by the rate limiter ([`CallCounters`]); the metric is advanced by the difference since
//! the last update so it stays a true counter.
//!
//! In `sync` mode the configured pass interval is exported too
//! (`failoverd_cognito_sync_interval_seconds`), so an alert can say "no successful pass for three
//! intervals" without repeating the configuration; in `native_replica` mode it is absent, and so
//! is that alert.

use std::sync::Mutex;
use std::time::Duration;

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::quota::{CallCounters, QuotaCategory};
use super::sync::SyncReport;

/// The registered metrics.
pub struct SyncMetrics {
    users: IntGaugeVec,
    groups: IntGaugeVec,
    changes: IntCounterVec,
    drift: IntGauge,
    last_success: Gauge,
    throttled: IntCounterVec,
    pass_failures: IntCounter,
    replica_active: IntGaugeVec,
    /// Throttle counts already added to `throttled`, per category.
    throttled_seen: Mutex<[u64; QuotaCategory::ALL.len()]>,
}

impl SyncMetrics {
    /// Registers the metrics in `registry`; `sync_interval` is `cognito.interval` in `sync` mode
    /// (`None` in `native_replica` mode, where failoverd runs no passes).
    pub fn register(
        registry: &Registry,
        sync_interval: Option<Duration>,
    ) -> Result<Self, prometheus::Error> {
        if let Some(interval) = sync_interval {
            // Constant for the life of the process: set once, never read back.
            let gauge = Gauge::new(
                "failoverd_cognito_sync_interval_seconds",
                "cognito.interval: how often the background sync starts a pass (sync mode only)",
            )?;
            gauge.set(interval.as_secs_f64());
            registry.register(Box::new(gauge))?;
        }
        let m = Self {
            users: IntGaugeVec::new(
                Opts::new(
                    "failoverd_cognito_users",
                    "Users in the pool at the last sync pass",
                ),
                &["region"],
            )?,
            groups: IntGaugeVec::new(
                Opts::new(
                    "failoverd_cognito_groups",
                    "Groups in the pool at the last sync pass",
                ),
                &["region"],
            )?,
            changes: IntCounterVec::new(
                Opts::new(
                    "failoverd_cognito_sync_changes_total",
                    "Writes the sync made to the cold pool, by kind",
                ),
                &["kind"],
            )?,
            drift: IntGauge::new(
                "failoverd_cognito_drift_users",
                "Users that still differ between the pools after the last pass \
                 (failed, uncopyable, kept or guarded deletions)",
            )?,
            last_success: Gauge::new(
                "failoverd_cognito_last_sync_success_timestamp_seconds",
                "Unix time of the end of the last successful sync pass",
            )?,
            throttled: IntCounterVec::new(
                Opts::new(
                    "failoverd_cognito_throttled_total",
                    "TooManyRequestsException answers met by the sync, by quota category",
                ),
                &["category"],
            )?,
            pass_failures: IntCounter::new(
                "failoverd_cognito_sync_failures_total",
                "Sync passes that ended with an error",
            )?,
            replica_active: IntGaugeVec::new(
                Opts::new(
                    "failoverd_cognito_replica_active",
                    "Native replica mode: 1 when the pool's replica in the region is active",
                ),
                &["region"],
            )?,
            throttled_seen: Mutex::new([0; QuotaCategory::ALL.len()]),
        };
        registry.register(Box::new(m.users.clone()))?;
        registry.register(Box::new(m.groups.clone()))?;
        registry.register(Box::new(m.changes.clone()))?;
        registry.register(Box::new(m.drift.clone()))?;
        registry.register(Box::new(m.last_success.clone()))?;
        registry.register(Box::new(m.throttled.clone()))?;
        registry.register(Box::new(m.pass_failures.clone()))?;
        registry.register(Box::new(m.replica_active.clone()))?;
        for (kind, _) in super::sync::ChangeCounts::default().by_kind() {
            m.changes.with_label_values(&[kind]);
        }
        for c in QuotaCategory::ALL {
            m.throttled.with_label_values(&[c.label()]);
        }
        Ok(m)
    }

    /// Record a finished pass that ended at `unix_seconds`.
    pub fn pass_succeeded(&self, regions: [&str; 2], report: &SyncReport, unix_seconds: f64) {
        let [hot, cold] = regions;
        self.users
            .with_label_values(&[hot])
            .set(i64::try_from(report.hot_users).unwrap_or(i64::MAX));
        self.users
            .with_label_values(&[cold])
            .set(i64::try_from(report.cold_users).unwrap_or(i64::MAX));
        self.groups
            .with_label_values(&[hot])
            .set(i64::try_from(report.hot_groups).unwrap_or(i64::MAX));
        self.groups
            .with_label_values(&[cold])
            .set(i64::try_from(report.cold_groups).unwrap_or(i64::MAX));
        for (kind, n) in report.changes.by_kind() {
            self.changes.with_label_values(&[kind]).inc_by(n);
        }
        self.drift
            .set(i64::try_from(report.drift_remaining).unwrap_or(i64::MAX));
        self.last_success.set(unix_seconds);
    }

    pub fn pass_failed(&self) {
        self.pass_failures.inc();
    }

    /// Advance the throttling counter to what the limiters have counted.
    pub fn observe_throttling(&self, counters: &[CallCounters]) {
        let Ok(mut seen) = self.throttled_seen.lock() else {
            return;
        };
        for (i, c) in QuotaCategory::ALL.iter().enumerate() {
            let now: u64 = counters.iter().map(|k| k.throttled_in(*c)).sum();
            if now > seen[i] {
                self.throttled
                    .with_label_values(&[c.label()])
                    .inc_by(now - seen[i]);
                seen[i] = now;
            }
        }
    }

    pub fn replica(&self, region: &str, active: bool) {
        self.replica_active
            .with_label_values(&[region])
            .set(i64::from(active));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The values of `failoverd_cognito_sync_interval_seconds` in `registry`.
    fn interval(registry: &Registry) -> Vec<f64> {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == "failoverd_cognito_sync_interval_seconds")
            .flat_map(|f| f.get_metric().iter().map(|m| m.get_gauge().value()))
            .collect()
    }

    #[test]
    fn sync_mode_exports_the_interval() {
        let registry = Registry::new();
        SyncMetrics::register(&registry, Some(Duration::from_secs(90))).unwrap();
        assert_eq!(interval(&registry), [90.0]);
    }

    #[test]
    fn native_replica_mode_exports_no_interval() {
        let registry = Registry::new();
        SyncMetrics::register(&registry, None).unwrap();
        assert!(interval(&registry).is_empty());
        // The other metrics are there in both modes.
        assert!(registry
            .gather()
            .iter()
            .any(|f| f.name() == "failoverd_cognito_last_sync_success_timestamp_seconds"));
    }
}
