//! The AWS Backup tracker: how old is the newest restorable copy of each protected resource in the
//! cold vault, and are the cross-region copy jobs failing.
//!
//! A failover to the cold region restores from these copies when replication itself is lost, so
//! their age is an RPO in its own right. The newest point per resource is found by listing the
//! vault: in full on the first round and then once an hour ([`FULL_REFRESH`], which also forgets
//! resources whose points were deleted), and in between only the points created in the last
//! [`INCREMENTAL_LOOKBACK`] — so a vault holding years of points is not listed in full every
//! minute, while a copy that took a day to complete is still picked up.
//!
//! Copy jobs are listed in the *source* region (the other region of the pair): `ListCopyJobs` shows
//! a job in the region that ran it. Only jobs whose destination is this vault count; the vault is
//! recognised by region and name in the destination ARN, so the account id need not be configured.

use std::collections::BTreeMap;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::time::Instant;

use super::metrics::{poll_source, TrackerMetrics};
use super::port::ReplicationPorts;
use super::port::{CopyJob, CopyJobFilter, CopyJobState, RecoveryPoint, RecoveryPointFilter};
use super::state::{record_failure, NewestCopy, SharedState};
use crate::config::BackupVaultConfig;

/// How often the whole vault is listed.
pub const FULL_REFRESH: Duration = Duration::from_secs(3600);
/// Between full listings, points created this long ago or later are listed: comfortably longer
/// than a cross-region copy of a large Aurora snapshot takes to complete.
pub const INCREMENTAL_LOOKBACK: Duration = Duration::from_secs(48 * 3600);

/// The newest restorable recovery point of each resource among `points`.
pub fn newest_per_resource(points: &[RecoveryPoint]) -> BTreeMap<String, NewestCopy> {
    let mut newest: BTreeMap<String, NewestCopy> = BTreeMap::new();
    for p in points.iter().filter(|p| p.status.is_restorable()) {
        let (Some(resource), Some(created_at)) = (
            p.resource_arn.as_ref(),
            p.creation_date.or(p.completion_date),
        ) else {
            continue;
        };
        let candidate = NewestCopy {
            recovery_point_arn: p.arn.clone(),
            created_at,
        };
        match newest.get(resource) {
            Some(current) if current.created_at >= created_at => {}
            _ => {
                newest.insert(resource.clone(), candidate);
            }
        }
    }
    newest
}

/// Merges `update` into `into`, keeping the newer point per resource.
pub fn merge_newest(into: &mut BTreeMap<String, NewestCopy>, update: BTreeMap<String, NewestCopy>) {
    for (resource, copy) in update {
        match into.get(&resource) {
            Some(current) if current.created_at >= copy.created_at => {}
            _ => {
                into.insert(resource, copy);
            }
        }
    }
}

/// Whether `arn` names the backup vault `name` in `region`
/// (`arn:<partition>:backup:<region>:<account>:backup-vault:<name>`).
pub fn is_vault_arn(arn: &str, region: &str, name: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    matches!(
        parts.as_slice(),
        ["arn", _, "backup", r, _, "backup-vault", n] if *r == region && *n == name
    )
}

/// Failed copy jobs among `jobs` whose destination is the vault `name` in `region`.
pub fn count_failed_into(jobs: &[CopyJob], region: &str, name: &str) -> u64 {
    jobs.iter()
        .filter(|j| j.state == CopyJobState::Failed)
        .filter(|j| {
            j.destination_backup_vault_arn
                .as_deref()
                .is_some_and(|arn| is_vault_arn(arn, region, name))
        })
        .count() as u64
}

/// Polls one vault.
pub(crate) struct BackupTracker {
    pub vault: BackupVaultConfig,
    pub source_region: String,
    /// Failed copy jobs are counted over this window.
    pub copy_failure_window: Duration,
    pub ports: ReplicationPorts,
    pub state: SharedState,
    pub metrics: TrackerMetrics,
    pub last_full: Option<Instant>,
}

impl BackupTracker {
    pub(crate) async fn run(mut self, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                _ = ticks.tick() => {}
            }
            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return,
                _ = self.poll() => {}
            }
        }
    }

    pub(crate) async fn poll(&mut self) {
        self.poll_recovery_points().await;
        self.poll_copy_jobs().await;
    }

    async fn poll_recovery_points(&mut self) {
        let name = self.vault.name.clone();
        let now = OffsetDateTime::now_utc();
        let full = self.last_full.is_none_or(|t| t.elapsed() >= FULL_REFRESH);
        let filter = RecoveryPointFilter {
            created_after: (!full).then(|| now - INCREMENTAL_LOOKBACK),
            ..RecoveryPointFilter::default()
        };
        let result = match self.ports.region(&self.vault.region) {
            Some(p) => p
                .backup
                .list_recovery_points(&name, &filter)
                .await
                .map_err(|e| e.to_string()),
            None => Err(format!("no AWS clients for region {}", self.vault.region)),
        };
        match result {
            Ok(points) => {
                let newest = newest_per_resource(&points);
                if full {
                    self.last_full = Some(Instant::now());
                }
                self.state.update_vault(&name, |v| {
                    if full {
                        v.newest = newest;
                    } else {
                        merge_newest(&mut v.newest, newest);
                    }
                    v.recovery_points_observed_at = Some(now);
                    v.recovery_points_error = None;
                });
            }
            Err(message) => {
                self.metrics.failed(poll_source::RECOVERY_POINTS);
                tracing::warn!(vault = %name, region = %self.vault.region, error = %message, "listing recovery points failed");
                self.state.update_vault(&name, |v| {
                    record_failure(&mut v.recovery_points_error, message, now)
                });
            }
        }
    }

    async fn poll_copy_jobs(&mut self) {
        let name = self.vault.name.clone();
        let now = OffsetDateTime::now_utc();
        let filter = CopyJobFilter {
            state: Some(CopyJobState::Failed),
            created_after: Some(
                now.checked_sub(
                    self.copy_failure_window
                        .try_into()
                        .unwrap_or(time::Duration::MAX),
                )
                .unwrap_or(now),
            ),
            ..CopyJobFilter::default()
        };
        let result = match self.ports.region(&self.source_region) {
            Some(p) => p
                .backup
                .list_copy_jobs(&filter)
                .await
                .map_err(|e| e.to_string()),
            None => Err(format!("no AWS clients for region {}", self.source_region)),
        };
        match result {
            Ok(jobs) => {
                let failed = count_failed_into(&jobs, &self.vault.region, &name);
                self.state.update_vault(&name, |v| {
                    v.failed_copy_jobs = Some(failed);
                    v.copy_jobs_observed_at = Some(now);
                    v.copy_jobs_error = None;
                });
            }
            Err(message) => {
                self.metrics.failed(poll_source::COPY_JOBS);
                tracing::warn!(vault = %name, region = %self.source_region, error = %message, "listing copy jobs failed");
                self.state.update_vault(&name, |v| {
                    record_failure(&mut v.copy_jobs_error, message, now)
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::port::RecoveryPointStatus;
    use time::macros::datetime;

    fn point(arn: &str, resource: &str, status: RecoveryPointStatus, hour: u8) -> RecoveryPoint {
        RecoveryPoint {
            arn: arn.into(),
            backup_vault_name: Some("v".into()),
            resource_arn: Some(resource.into()),
            resource_type: Some("Aurora".into()),
            status,
            creation_date: Some(
                datetime!(2026-11-28 00:00:00 UTC) + time::Duration::hours(i64::from(hour)),
            ),
            completion_date: None,
            source_backup_vault_arn: None,
        }
    }

    #[test]
    fn newest_restorable_point_per_resource() {
        let points = [
            point("p1", "db-a", RecoveryPointStatus::Completed, 1),
            point("p2", "db-a", RecoveryPointStatus::Completed, 5),
            point("p3", "db-a", RecoveryPointStatus::Creating, 9),
            point("p4", "db-a", RecoveryPointStatus::Partial, 8),
            point("p5", "db-b", RecoveryPointStatus::Available, 3),
            point("p6", "db-c", RecoveryPointStatus::Expired, 3),
        ];
        let newest = newest_per_resource(&points);
        assert_eq!(newest.len(), 2, "{newest:?}");
        assert_eq!(newest["db-a"].recovery_point_arn, "p2");
        assert_eq!(newest["db-b"].recovery_point_arn, "p5");
    }

    #[test]
    fn merge_keeps_the_newer_point() {
        let mut into = newest_per_resource(&[
            point("old", "db-a", RecoveryPointStatus::Completed, 5),
            point("b", "db-b", RecoveryPointStatus::Completed, 5),
        ]);
        merge_newest(
            &mut into,
            newest_per_resource(&[
                point("new", "db-a", RecoveryPointStatus::Completed, 6),
                point("older-b", "db-b", RecoveryPointStatus::Completed, 4),
                point("c", "db-c", RecoveryPointStatus::Completed, 1),
            ]),
        );
        assert_eq!(into["db-a"].recovery_point_arn, "new");
        assert_eq!(into["db-b"].recovery_point_arn, "b");
        assert_eq!(into["db-c"].recovery_point_arn, "c");
    }

    #[test]
    fn vault_arns_match_region_and_name() {
        let arn = "arn:aws:backup:us-west-2:123456789012:backup-vault:cold-vault";
        assert!(is_vault_arn(arn, "us-west-2", "cold-vault"));
        assert!(!is_vault_arn(arn, "us-east-1", "cold-vault"));
        assert!(!is_vault_arn(arn, "us-west-2", "cold"));
        assert!(!is_vault_arn(
            "arn:aws:rds:us-west-2:1:cluster:cold-vault",
            "us-west-2",
            "cold-vault"
        ));
        assert!(!is_vault_arn("garbage", "us-west-2", "cold-vault"));
    }

    #[test]
    fn only_failed_jobs_into_the_vault_count() {
        let job = |state: CopyJobState, dest: &str| CopyJob {
            id: "j".into(),
            state,
            status_message: None,
            resource_arn: None,
            resource_type: None,
            source_recovery_point_arn: None,
            destination_recovery_point_arn: None,
            source_backup_vault_arn: None,
            destination_backup_vault_arn: Some(dest.into()),
            creation_date: None,
            completion_date: None,
        };
        let ours = "arn:aws:backup:us-west-2:1:backup-vault:cold";
        let other = "arn:aws:backup:us-west-2:1:backup-vault:elsewhere";
        let jobs = [
            job(CopyJobState::Failed, ours),
            job(CopyJobState::Failed, ours),
            job(CopyJobState::Completed, ours),
            job(CopyJobState::Failed, other),
        ];
        assert_eq!(count_failed_into(&jobs, "us-west-2", "cold"), 2);
    }
}
