//! The lab's two-region world (`tests/support/lab_world.py`), seeded into a fresh moto and read
//! back through failoverd's ports: what the daemon sees when `make lab` runs.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::{TestBed, COLD, HOT};
use failoverd::cognito::UserDirectory;
use failoverd::dns::{DnsApi, RecordType, Routing};
use failoverd::health::HealthCheckStatusApi;
use failoverd::replication::{
    BackupCatalogApi, CopyJobFilter, CopyJobState, GlobalDatabaseApi, LagMetric, LagMetricsApi,
    MetricWindow, RecoveryPointFilter,
};
use serde_json::Value;
use time::OffsetDateTime;

/// Runs the lab seeder against `bed`'s moto and returns its JSON description of the world.
async fn seed_lab_world(bed: &TestBed) -> Value {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/support/lab_world.py"))
        .args([
            "--endpoint",
            &bed.moto.endpoint_url(),
            "--hot",
            HOT,
            "--cold",
            COLD,
        ])
        .output()
        .await
        .expect("run lab_world.py (tests/support/setup.sh creates .venv)");
    assert!(
        output.status.success(),
        "lab_world.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("lab_world.py prints JSON")
}

fn text<'a>(world: &'a Value, pointer: &str) -> &'a str {
    world
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("world has no text at {pointer}"))
}

#[tokio::test]
async fn the_lab_world_reads_back_through_the_ports() {
    let bed = TestBed::start().await;
    let world = seed_lab_world(&bed).await;
    let clients = support::clients(&support::settings(&bed.endpoint_url())).await;
    let hot = clients.region(HOT).expect("hot");
    let cold = clients.region(COLD).expect("cold");

    // Aurora: the writer is in the hot region, the cold cluster is its secondary.
    let global = cold
        .global_database()
        .describe_global_cluster(text(&world, "/aurora/global_cluster_id"))
        .await
        .expect("global cluster");
    assert_eq!(global.writer_region(), Some(HOT));
    assert_eq!(
        global.member_in(COLD).map(|m| m.db_cluster_arn.as_str()),
        Some(text(&world, &format!("/aurora/clusters/{COLD}/arn")))
    );
    let secondary = cold
        .global_database()
        .describe_db_cluster(text(&world, &format!("/aurora/clusters/{COLD}/id")))
        .await
        .expect("cold cluster");
    assert_eq!(secondary.global_cluster_id.as_deref(), Some("lab-global"));

    // Route 53: weighted records, 100 % hot, each tied to its region's health check.
    let dns = clients.dns();
    let zone = text(&world, "/route53/hosted_zone_id");
    let records = dns.list_record_sets(zone).await.expect("records");
    let app: Vec<_> = records
        .iter()
        .filter(|r| r.name == "app.lab.failoverd.test.")
        .collect();
    assert_eq!(app.len(), 2, "{records:#?}");
    for record in &app {
        assert_eq!(record.record_type, RecordType::A);
        let region = record.set_identifier.as_deref().expect("set identifier");
        let expected_weight = if region == HOT { 100 } else { 0 };
        assert_eq!(
            record.routing,
            Routing::Weighted {
                weight: expected_weight
            },
            "{record:?}"
        );
        assert_eq!(record.ttl(), Duration::from_secs(60));
        assert_eq!(
            record.health_check_id.as_deref(),
            Some(text(&world, &format!("/route53/health_checks/{region}")))
        );
    }
    let hot_check = dns
        .health_check_status(text(&world, &format!("/route53/health_checks/{HOT}")))
        .await
        .expect("health check status");
    assert!(hot_check.healthy_share().is_some());

    // Cognito: 64 users (6 disabled) and 3 groups in the hot pool; the cold pool is empty.
    let directory = hot.user_directory();
    let hot_pool = text(&world, &format!("/cognito/pools/{HOT}/id"));
    let mut users = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = directory
            .list_users(hot_pool, token.as_deref())
            .await
            .expect("users");
        users.extend(page.items);
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(users.len(), 64);
    let disabled: BTreeSet<_> = users
        .iter()
        .filter(|u| !u.enabled)
        .map(|u| u.username.as_str())
        .collect();
    let expected_disabled: BTreeSet<_> = world["cognito"]["disabled_users"]
        .as_array()
        .expect("disabled users")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(disabled, expected_disabled);
    let groups = directory.list_groups(hot_pool, None).await.expect("groups");
    assert_eq!(groups.items.len(), 3);
    let admins = directory
        .list_users_in_group(hot_pool, "admins", None)
        .await
        .expect("admins");
    assert_eq!(
        admins.items.len() as u64,
        world["cognito"]["groups"]["admins"]["members"]
            .as_u64()
            .expect("count")
    );
    let pool = directory.describe_pool(hot_pool).await.expect("pool");
    for custom in ["custom:tenant", "custom:plan"] {
        assert!(
            pool.mutable_attributes.iter().any(|a| a == custom),
            "{pool:?}"
        );
    }
    let cold_pool = text(&world, &format!("/cognito/pools/{COLD}/id"));
    let cold_users = cold
        .user_directory()
        .list_users(cold_pool, None)
        .await
        .expect("cold users");
    assert!(cold_users.items.is_empty());

    // Backup: recovery points of the Aurora cluster in the cold vault; one failed copy job.
    let aurora_arn = text(&world, "/backup/protected_resources/aurora");
    let points = cold
        .backup_catalog()
        .list_recovery_points(
            text(&world, &format!("/backup/vaults/{COLD}/name")),
            &RecoveryPointFilter {
                resource_arn: Some(aurora_arn.to_owned()),
                ..RecoveryPointFilter::default()
            },
        )
        .await
        .expect("recovery points");
    let expected = world["backup"]["recovery_points"][aurora_arn]
        .as_array()
        .expect("points")
        .len();
    assert_eq!(points.len(), expected);
    assert!(points.iter().any(|p| p.status.is_restorable()));
    let failed = hot
        .backup_catalog()
        .list_copy_jobs(&CopyJobFilter {
            state: Some(CopyJobState::Failed),
            ..CopyJobFilter::default()
        })
        .await
        .expect("failed copy jobs");
    assert_eq!(failed.len(), 1);

    // CloudWatch: 15 minutes of lag for the cold cluster.
    let now = OffsetDateTime::now_utc();
    let window = MetricWindow {
        start: now - time::Duration::minutes(20),
        end: now + time::Duration::minutes(1),
        period: Duration::from_secs(60),
    };
    for metric in [LagMetric::ReplicationLag, LagMetric::RpoLag] {
        let series = cold
            .cloudwatch()
            .lag_series("lab-cold", metric, window)
            .await
            .expect("lag");
        assert!(series.len() >= 14, "{metric:?}: {series:#?}");
    }
}
