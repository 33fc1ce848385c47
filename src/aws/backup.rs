//! AWS Backup adapter: implements [`BackupCatalogApi`] (recovery points of a vault and copy jobs).
//!
//! Filters are pushed to the service (`ByResourceArn`, `ByCreatedAfter`, `ByState`, ...) so a
//! vault with years of recovery points is not listed in full every tracking round.

use async_trait::async_trait;
use aws_sdk_backup::types as sdk;

use super::error::{from_sdk, Result, Service};
use super::time_conv::{to_offset, to_sdk};
use crate::replication::port::{
    BackupCatalogApi, CopyJob, CopyJobFilter, CopyJobState, RecoveryPoint, RecoveryPointFilter,
    RecoveryPointStatus,
};

/// AWS Backup in one region, through the AWS SDK.
#[derive(Debug, Clone)]
pub struct BackupCatalog {
    client: aws_sdk_backup::Client,
}

impl BackupCatalog {
    pub(crate) fn new(client: aws_sdk_backup::Client) -> Self {
        Self { client }
    }
}

const SERVICE: Service = Service::Backup;

#[async_trait]
impl BackupCatalogApi for BackupCatalog {
    async fn list_recovery_points(
        &self,
        backup_vault_name: &str,
        filter: &RecoveryPointFilter,
    ) -> Result<Vec<RecoveryPoint>> {
        const OP: &str = "ListRecoveryPointsByBackupVault";
        let mut points = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let output = self
                .client
                .list_recovery_points_by_backup_vault()
                .backup_vault_name(backup_vault_name)
                .set_by_resource_arn(filter.resource_arn.clone())
                .set_by_resource_type(filter.resource_type.clone())
                .set_by_created_after(filter.created_after.map(to_sdk))
                .set_by_created_before(filter.created_before.map(to_sdk))
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| from_sdk(SERVICE, OP, &e))?;
            points.extend(output.recovery_points().iter().map(|p| {
                RecoveryPoint {
                    arn: p.recovery_point_arn().unwrap_or_default().to_owned(),
                    backup_vault_name: p.backup_vault_name().map(str::to_owned),
                    resource_arn: p.resource_arn().map(str::to_owned),
                    resource_type: p.resource_type().map(str::to_owned),
                    status: p
                        .status()
                        .map(from_sdk_status)
                        .unwrap_or_else(|| RecoveryPointStatus::Other(String::new())),
                    creation_date: p.creation_date().and_then(to_offset),
                    completion_date: p.completion_date().and_then(to_offset),
                    source_backup_vault_arn: p.source_backup_vault_arn().map(str::to_owned),
                }
            }));
            match output.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(points),
            }
        }
    }

    async fn list_copy_jobs(&self, filter: &CopyJobFilter) -> Result<Vec<CopyJob>> {
        const OP: &str = "ListCopyJobs";
        let mut jobs = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            let output = self
                .client
                .list_copy_jobs()
                .set_by_state(
                    filter
                        .state
                        .as_ref()
                        .map(|s| sdk::CopyJobState::from(s.as_str())),
                )
                .set_by_resource_arn(filter.resource_arn.clone())
                .set_by_resource_type(filter.resource_type.clone())
                .set_by_destination_vault_arn(filter.destination_vault_arn.clone())
                .set_by_created_after(filter.created_after.map(to_sdk))
                .set_by_created_before(filter.created_before.map(to_sdk))
                .set_next_token(next_token.take())
                .send()
                .await
                .map_err(|e| from_sdk(SERVICE, OP, &e))?;
            jobs.extend(output.copy_jobs().iter().map(|j| {
                CopyJob {
                    id: j.copy_job_id().unwrap_or_default().to_owned(),
                    state: j
                        .state()
                        .map(from_sdk_state)
                        .unwrap_or_else(|| CopyJobState::Other(String::new())),
                    status_message: j.status_message().map(str::to_owned),
                    resource_arn: j.resource_arn().map(str::to_owned),
                    resource_type: j.resource_type().map(str::to_owned),
                    source_recovery_point_arn: j.source_recovery_point_arn().map(str::to_owned),
                    destination_recovery_point_arn: j
                        .destination_recovery_point_arn()
                        .map(str::to_owned),
                    source_backup_vault_arn: j.source_backup_vault_arn().map(str::to_owned),
                    destination_backup_vault_arn: j
                        .destination_backup_vault_arn()
                        .map(str::to_owned),
                    creation_date: j.creation_date().and_then(to_offset),
                    completion_date: j.completion_date().and_then(to_offset),
                }
            }));
            match output.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => return Ok(jobs),
            }
        }
    }
}

fn from_sdk_status(status: &sdk::RecoveryPointStatus) -> RecoveryPointStatus {
    match status {
        sdk::RecoveryPointStatus::Creating => RecoveryPointStatus::Creating,
        sdk::RecoveryPointStatus::Completed => RecoveryPointStatus::Completed,
        sdk::RecoveryPointStatus::Available => RecoveryPointStatus::Available,
        sdk::RecoveryPointStatus::Partial => RecoveryPointStatus::Partial,
        sdk::RecoveryPointStatus::Stopped => RecoveryPointStatus::Stopped,
        sdk::RecoveryPointStatus::Deleting => RecoveryPointStatus::Deleting,
        sdk::RecoveryPointStatus::Expired => RecoveryPointStatus::Expired,
        other => RecoveryPointStatus::Other(other.as_str().to_owned()),
    }
}

fn from_sdk_state(state: &sdk::CopyJobState) -> CopyJobState {
    match state {
        sdk::CopyJobState::Created => CopyJobState::Created,
        sdk::CopyJobState::Running => CopyJobState::Running,
        sdk::CopyJobState::Completed => CopyJobState::Completed,
        sdk::CopyJobState::Failed => CopyJobState::Failed,
        sdk::CopyJobState::Partial => CopyJobState::Partial,
        other => CopyJobState::Other(other.as_str().to_owned()),
    }
}
