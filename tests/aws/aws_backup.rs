//! AWS Backup adapter (`BackupCatalogApi`) against moto and failoverd's extension, which adds
//! `ListRecoveryPointsByBackupVault` and `ListCopyJobs` and the seeding endpoints used here.

use crate::support;

use crate::support::moto::MotoServer;
use crate::support::{ACCOUNT, COLD, HOT};
use failoverd::aws::ErrorKind;
use failoverd::replication::{
    BackupCatalogApi, CopyJobFilter, CopyJobState, RecoveryPointFilter, RecoveryPointStatus,
};
use serde_json::json;
use time::macros::datetime;

const VAULT: &str = "cold-vault";

fn cluster_arn(name: &str) -> String {
    format!("arn:aws:rds:{HOT}:{ACCOUNT}:cluster:{name}")
}

fn vault_arn(region: &str, name: &str) -> String {
    format!("arn:aws:backup:{region}:{ACCOUNT}:backup-vault:{name}")
}

async fn create_vault(moto: &MotoServer) {
    aws_sdk_backup::Client::new(&support::raw_config(&moto.endpoint_url(), COLD).await)
        .create_backup_vault()
        .backup_vault_name(VAULT)
        .send()
        .await
        .expect("create vault");
}

#[tokio::test]
async fn recovery_points_are_listed_with_filters() {
    let moto = MotoServer::start().await;
    create_vault(&moto).await;
    let source_vault = vault_arn(HOT, "hot-vault");
    moto.seed(
        "backup/recovery-points",
        json!([
            {"Region": COLD, "BackupVaultName": VAULT, "ResourceArn": cluster_arn("app-hot"),
             "SourceBackupVaultArn": source_vault, "CreationDate": "2026-11-28T10:00:00Z"},
            {"Region": COLD, "BackupVaultName": VAULT, "ResourceArn": cluster_arn("app-hot"),
             "SourceBackupVaultArn": source_vault, "CreationDate": "2026-11-28T12:00:00Z"},
            {"Region": COLD, "BackupVaultName": VAULT, "ResourceArn": cluster_arn("app-hot"),
             "CreationDate": "2026-11-28T13:00:00Z", "Status": "PARTIAL"},
            {"Region": COLD, "BackupVaultName": VAULT, "ResourceArn": cluster_arn("other"),
             "CreationDate": "2026-11-28T12:30:00Z"},
        ]),
    )
    .await;
    let clients = support::clients(&support::settings(&moto.endpoint_url())).await;
    let backup = clients.region(COLD).expect("cold").backup_catalog();

    let all = backup
        .list_recovery_points(VAULT, &RecoveryPointFilter::default())
        .await
        .expect("list all");
    assert_eq!(all.len(), 4, "{all:#?}");
    assert!(all
        .iter()
        .all(|p| p.backup_vault_name.as_deref() == Some(VAULT)));

    let app = backup
        .list_recovery_points(
            VAULT,
            &RecoveryPointFilter {
                resource_arn: Some(cluster_arn("app-hot")),
                created_after: Some(datetime!(2026-11-28 11:00 UTC)),
                ..RecoveryPointFilter::default()
            },
        )
        .await
        .expect("filtered");
    assert_eq!(app.len(), 2, "{app:#?}");
    let completed: Vec<_> = app.iter().filter(|p| p.status.is_restorable()).collect();
    assert_eq!(completed.len(), 1);
    let newest_completed = completed[0];
    assert_eq!(newest_completed.status, RecoveryPointStatus::Completed);
    assert_eq!(
        newest_completed.creation_date,
        Some(datetime!(2026-11-28 12:00 UTC))
    );
    assert_eq!(
        newest_completed.source_backup_vault_arn.as_deref(),
        Some(source_vault.as_str())
    );
    assert_eq!(newest_completed.resource_type.as_deref(), Some("Aurora"));
    assert!(newest_completed.completion_date.is_some());
    assert!(app.iter().any(|p| p.status == RecoveryPointStatus::Partial));

    let by_type = backup
        .list_recovery_points(
            VAULT,
            &RecoveryPointFilter {
                resource_type: Some("EBS".into()),
                ..RecoveryPointFilter::default()
            },
        )
        .await
        .expect("by type");
    assert!(by_type.is_empty());
}

#[tokio::test]
async fn recovery_point_listing_follows_pagination() {
    let moto = MotoServer::start().await;
    create_vault(&moto).await;
    // The service pages at 1000 recovery points.
    let items: Vec<_> = (0..1005)
        .map(|i| {
            json!({"Region": COLD, "BackupVaultName": VAULT,
                   "ResourceArn": cluster_arn(&format!("db-{i}")),
                   "CreationDate": 1_795_800_000 + i})
        })
        .collect();
    moto.seed("backup/recovery-points", json!(items)).await;
    let clients = support::clients(&support::settings(&moto.endpoint_url())).await;
    let points = clients
        .region(COLD)
        .expect("cold")
        .backup_catalog()
        .list_recovery_points(VAULT, &RecoveryPointFilter::default())
        .await
        .expect("list");
    assert_eq!(points.len(), 1005);
    let unique: std::collections::BTreeSet<_> = points.iter().map(|p| p.arn.clone()).collect();
    assert_eq!(unique.len(), 1005, "no recovery point listed twice");
}

#[tokio::test]
async fn copy_jobs_are_listed_with_filters() {
    let moto = MotoServer::start().await;
    let destination = vault_arn(COLD, VAULT);
    moto.seed(
        "backup/copy-jobs",
        json!([
            {"Region": HOT, "ResourceArn": cluster_arn("app-hot"), "DestinationBackupVaultArn": destination,
             "CreationDate": "2026-11-28T10:00:00Z"},
            {"Region": HOT, "ResourceArn": cluster_arn("app-hot"), "DestinationBackupVaultArn": destination,
             "CreationDate": "2026-11-28T11:00:00Z", "State": "FAILED"},
            {"Region": HOT, "ResourceArn": cluster_arn("app-hot"), "DestinationBackupVaultArn": destination,
             "CreationDate": "2026-11-28T12:00:00Z", "State": "RUNNING"},
        ]),
    )
    .await;
    let clients = support::clients(&support::settings(&moto.endpoint_url())).await;
    let backup = clients.region(HOT).expect("hot").backup_catalog();

    let all = backup
        .list_copy_jobs(&CopyJobFilter::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 3, "{all:#?}");
    assert!(all
        .iter()
        .all(|j| j.destination_backup_vault_arn.as_deref() == Some(destination.as_str())));

    let failed = backup
        .list_copy_jobs(&CopyJobFilter {
            state: Some(CopyJobState::Failed),
            ..CopyJobFilter::default()
        })
        .await
        .expect("failed jobs");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    let job = &failed[0];
    assert_eq!(job.state, CopyJobState::Failed);
    assert!(job.status_message.is_some(), "a failed job says why");
    assert!(!job.id.is_empty());
    assert_eq!(job.creation_date, Some(datetime!(2026-11-28 11:00 UTC)));

    let recent = backup
        .list_copy_jobs(&CopyJobFilter {
            created_after: Some(datetime!(2026-11-28 10:30 UTC)),
            destination_vault_arn: Some(destination.clone()),
            resource_arn: Some(cluster_arn("app-hot")),
            ..CopyJobFilter::default()
        })
        .await
        .expect("recent jobs");
    assert_eq!(recent.len(), 2, "{recent:#?}");

    // Jobs are listed in the region that ran them.
    let cold_jobs = clients
        .region(COLD)
        .expect("cold")
        .backup_catalog()
        .list_copy_jobs(&CopyJobFilter::default())
        .await
        .expect("list in cold");
    assert!(cold_jobs.is_empty());
}

#[tokio::test]
async fn an_unknown_vault_is_not_found() {
    let moto = MotoServer::start().await;
    let clients = support::clients(&support::settings(&moto.endpoint_url())).await;
    let err = clients
        .region(COLD)
        .expect("cold")
        .backup_catalog()
        .list_recovery_points("no-such-vault", &RecoveryPointFilter::default())
        .await
        .expect_err("unknown vault");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.code.as_deref(), Some("ResourceNotFoundException"));
    assert_eq!(err.operation, "ListRecoveryPointsByBackupVault");
}
