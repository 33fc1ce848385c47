//! The replication monitor against the AWS test bed (moto + failoverd's extension, CloudWatch
//! through the fault proxy's CBOR bridge): Aurora topology and CloudWatch lag, staleness, API
//! failures recorded and retried, and AWS Backup copy age and failed copy jobs — checked through
//! the handle (`snapshot`, `last_lag`) and the exported metrics.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::fault_proxy::{Fault, FaultPlan};
use crate::support::{TestBed, ACCOUNT, COLD, HOT};
use aws_sdk_cloudwatch::types as cw;
use failoverd::config::{
    AuroraConfig, BackupVaultConfig, Duration as CfgDuration, LagSource, ReplicationConfig,
};
use failoverd::replication::{
    LagSourceKind, ReplicationHandle, ReplicationMonitor, ReplicationPorts,
};
use failoverd::status::{ComponentState, StatusBoard};
use failoverd::topology::RegionPair;
use prometheus::Registry;
use time::OffsetDateTime;
use tokio::sync::oneshot;

const GLOBAL: &str = "app-global";
/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(60);

/// Publishes one data point of `metric` (milliseconds) for `cluster` at `at`, in COLD.
async fn put_lag(bed: &TestBed, cluster: &str, metric: &str, millis: f64, at: OffsetDateTime) {
    let client =
        aws_sdk_cloudwatch::Client::new(&support::raw_config(&bed.endpoint_url(), COLD).await);
    client
        .put_metric_data()
        .namespace("AWS/RDS")
        .metric_data(
            cw::MetricDatum::builder()
                .metric_name(metric)
                .dimensions(
                    cw::Dimension::builder()
                        .name("DBClusterIdentifier")
                        .value(cluster)
                        .build(),
                )
                .timestamp(aws_smithy_types::DateTime::from_secs(at.unix_timestamp()))
                .value(millis)
                .unit(cw::StandardUnit::Milliseconds)
                .build(),
        )
        .send()
        .await
        .expect("put metric data");
}

fn aurora_config(stale_after: Duration) -> AuroraConfig {
    AuroraConfig {
        global_cluster: GLOBAL.into(),
        clusters: BTreeMap::from([
            (HOT.to_owned(), "app-hot".to_owned()),
            (COLD.to_owned(), "app-cold".to_owned()),
        ]),
        lag_source: LagSource::Cloudwatch,
        max_lag: CfgDuration::from_secs(5),
        stale_after: CfgDuration(stale_after),
        heartbeat: None,
    }
}

/// A running monitor; stopped (and awaited) by [`Monitor::stop`].
struct Monitor {
    handle: ReplicationHandle,
    registry: Registry,
    stop: Option<oneshot::Sender<()>>,
}

impl Monitor {
    async fn start(bed: &TestBed, config: ReplicationConfig) -> Monitor {
        let clients = support::clients(&support::settings(&bed.endpoint_url())).await;
        let registry = Registry::new();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = ReplicationMonitor::spawn_until(
            &config,
            &RegionPair::new(HOT, COLD),
            clients.replication_ports(),
            &registry,
            async move {
                let _ = rx.await;
            },
        )
        .expect("spawn monitor");
        Monitor {
            handle,
            registry,
            stop: Some(tx),
        }
    }

    fn metrics(&self) -> String {
        failoverd::telemetry::render(&self.registry).expect("render metrics")
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(WAIT, self.handle.finished())
            .await
            .expect("trackers stop within the bound");
    }
}

/// The value of the sample `name{labels...}` in a text exposition, if present.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Polls `check` every 200 ms until it returns `Some`, at most [`WAIT`].
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn monitor_tracks_topology_and_cloudwatch_lag() {
    let bed = TestBed::start().await;
    support::seed_global_database(&bed.moto.endpoint_url(), GLOBAL).await;
    let now = OffsetDateTime::now_utc();
    put_lag(
        &bed,
        "app-cold",
        "AuroraGlobalDBReplicationLag",
        1500.0,
        now,
    )
    .await;
    put_lag(&bed, "app-cold", "AuroraGlobalDBRPOLag", 900.0, now).await;
    // Another cluster's lag must not be mistaken for ours.
    put_lag(&bed, "other", "AuroraGlobalDBReplicationLag", 99_000.0, now).await;

    let monitor = Monitor::start(
        &bed,
        ReplicationConfig {
            interval: CfgDuration::from_millis(500),
            aurora: vec![aurora_config(Duration::from_secs(300))],
            backup_vaults: Vec::new(),
        },
    )
    .await;
    let reading = eventually("a lag reading", || monitor.handle.last_lag(GLOBAL)).await;
    assert_eq!(reading.observation.lag, Duration::from_millis(1500));
    assert_eq!(
        reading.observation.rpo_lag,
        Some(Duration::from_millis(900))
    );
    assert_eq!(reading.observation.region, COLD);
    assert_eq!(reading.observation.source, LagSourceKind::Cloudwatch);
    assert!(!reading.stale, "{reading:?}");
    assert!(reading.within_budget());
    assert_eq!(
        reading.observation.data_loss_estimate(),
        Duration::from_millis(900)
    );

    let bound = monitor
        .handle
        .worst_data_loss()
        .expect("fresh lag: a bound");
    assert_eq!(bound.estimate, Duration::from_millis(900), "the RPO lag");
    assert_eq!(bound.age, reading.age.max(bound.age));

    let topology = eventually("the topology", || monitor.handle.topology(GLOBAL)).await;
    assert_eq!(topology.writer_region.as_deref(), Some(HOT));
    assert_eq!(topology.status.as_deref(), Some("available"));
    assert_eq!(topology.members.len(), 2);

    let text = monitor.metrics();
    let g = ("global_cluster", GLOBAL);
    assert_eq!(
        sample(
            &text,
            "failoverd_aurora_replication_lag_seconds",
            &[g, ("region", COLD), ("source", "cloudwatch")]
        ),
        Some(1.5),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "failoverd_aurora_rpo_lag_seconds",
            &[g, ("region", COLD)]
        ),
        Some(0.9)
    );
    assert_eq!(sample(&text, "failoverd_aurora_lag_stale", &[g]), Some(0.0));
    assert_eq!(
        sample(&text, "failoverd_aurora_max_lag_seconds", &[g]),
        Some(5.0)
    );
    assert_eq!(
        sample(&text, "failoverd_aurora_writer", &[g, ("region", HOT)]),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "failoverd_aurora_writer", &[g, ("region", COLD)]),
        Some(0.0)
    );
    let age =
        sample(&text, "failoverd_aurora_lag_observation_age_seconds", &[g]).expect("age exported");
    assert!((0.0..300.0).contains(&age), "{age}");

    // The lag rises: the next polls see it.
    put_lag(
        &bed,
        "app-cold",
        "AuroraGlobalDBReplicationLag",
        7000.0,
        now,
    )
    .await;
    let reading = eventually("the higher lag", || {
        monitor
            .handle
            .last_lag(GLOBAL)
            .filter(|r| r.observation.lag == Duration::from_secs(7))
    })
    .await;
    assert!(!reading.within_budget(), "7 s is over the 5 s budget");

    let snapshot = serde_json::to_value(monitor.handle.snapshot()).expect("snapshot serialises");
    assert_eq!(snapshot["aurora"][0]["global_cluster"], GLOBAL);
    assert_eq!(snapshot["aurora"][0]["lag"]["lag_seconds"], 7.0);
    assert_eq!(snapshot["aurora"][0]["lag_unknown"], false);
    assert_eq!(snapshot["aurora"][0]["topology"]["writer_region"], HOT);
    monitor.stop().await;
}

#[tokio::test]
async fn stale_lag_is_reported_as_stale_not_as_current() {
    let bed = TestBed::start().await;
    support::seed_global_database(&bed.moto.endpoint_url(), GLOBAL).await;
    // One data point, 150 s old, against a 120 s stale_after.
    let at = OffsetDateTime::now_utc() - time::Duration::seconds(150);
    put_lag(&bed, "app-cold", "AuroraGlobalDBReplicationLag", 200.0, at).await;

    let monitor = Monitor::start(
        &bed,
        ReplicationConfig {
            interval: CfgDuration::from_millis(500),
            aurora: vec![aurora_config(Duration::from_secs(120))],
            backup_vaults: Vec::new(),
        },
    )
    .await;
    let reading = eventually("a lag reading", || monitor.handle.last_lag(GLOBAL)).await;
    assert!(reading.stale, "{reading:?}");
    assert!(reading.age > Duration::from_secs(120), "{reading:?}");
    assert!(
        !reading.within_budget(),
        "a stale 0.2 s lag is not within budget"
    );

    let text = monitor.metrics();
    let g = ("global_cluster", GLOBAL);
    assert_eq!(
        sample(&text, "failoverd_aurora_replication_lag_seconds", &[g]),
        None,
        "a stale lag must not be exported as current: {text}"
    );
    assert_eq!(sample(&text, "failoverd_aurora_lag_stale", &[g]), Some(1.0));
    let age = sample(&text, "failoverd_aurora_lag_observation_age_seconds", &[g])
        .expect("the age is still exported");
    assert!(age > 120.0, "{age}");
    let snapshot = serde_json::to_value(monitor.handle.snapshot()).expect("snapshot");
    assert_eq!(snapshot["aurora"][0]["lag_unknown"], true);
    assert_eq!(snapshot["aurora"][0]["lag"]["stale"], true);
    assert_eq!(
        monitor.handle.worst_data_loss(),
        None,
        "a stale lag gives the policy no bound"
    );
    monitor.stop().await;
}

#[tokio::test]
async fn no_lag_data_leaves_the_lag_unknown() {
    let bed = TestBed::start().await;
    support::seed_global_database(&bed.moto.endpoint_url(), GLOBAL).await;
    let monitor = Monitor::start(
        &bed,
        ReplicationConfig {
            interval: CfgDuration::from_millis(500),
            aurora: vec![aurora_config(Duration::from_secs(300))],
            backup_vaults: Vec::new(),
        },
    )
    .await;
    let snapshot = eventually("the no-data error", || {
        let s = monitor.handle.snapshot();
        s.aurora[0].lag_error.is_some().then_some(s)
    })
    .await;
    let error = snapshot.aurora[0].lag_error.as_ref().expect("error");
    assert!(
        error.message.contains("no AuroraGlobalDBReplicationLag"),
        "{error:?}"
    );
    assert!(snapshot.aurora[0].lag_unknown);
    assert!(monitor.handle.last_lag(GLOBAL).is_none());
    let text = monitor.metrics();
    assert_eq!(
        sample(
            &text,
            "failoverd_aurora_lag_stale",
            &[("global_cluster", GLOBAL)]
        ),
        Some(1.0),
        "no observation at all counts as stale"
    );
    monitor.stop().await;
}

#[tokio::test]
async fn unreachable_apis_are_recorded_and_retried() {
    let bed = TestBed::start().await;
    support::seed_global_database(&bed.moto.endpoint_url(), GLOBAL).await;
    put_lag(
        &bed,
        "app-cold",
        "AuroraGlobalDBReplicationLag",
        300.0,
        OffsetDateTime::now_utc(),
    )
    .await;
    // Every request fails with a 503 from now on.
    bed.proxy.set_plan(FaultPlan::Share {
        fault: Fault::ServerError(503),
        share: 1.0,
        rng: Box::new(<rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7)),
    });
    let monitor = Monitor::start(
        &bed,
        ReplicationConfig {
            interval: CfgDuration::from_millis(500),
            aurora: vec![aurora_config(Duration::from_secs(300))],
            backup_vaults: Vec::new(),
        },
    )
    .await;
    let snapshot = eventually("two failed rounds", || {
        let s = monitor.handle.snapshot();
        let a = &s.aurora[0];
        (a.topology_error
            .as_ref()
            .is_some_and(|e| e.consecutive >= 2)
            && a.lag_error.is_some())
        .then_some(s)
    })
    .await;
    let a = &snapshot.aurora[0];
    assert!(a.topology.is_none());
    assert!(a.lag.is_none());
    assert!(
        a.topology_error
            .as_ref()
            .is_some_and(|e| e.message.contains(HOT) && e.message.contains(COLD)),
        "both regions were tried: {:?}",
        a.topology_error
    );
    // The status board shows the tracker as unreachable, with the error.
    let board = StatusBoard::new(&Registry::new()).expect("board");
    monitor.handle.report_status(&board);
    let component = board.snapshot()["replication.aurora.app-global"].clone();
    assert_eq!(component.state, ComponentState::Unreachable);
    assert!(component
        .error
        .is_some_and(|e| e.contains("DescribeGlobalClusters")));

    let text = monitor.metrics();
    let failures = sample(
        &text,
        "failoverd_replication_poll_failures_total",
        &[("source", "topology")],
    )
    .expect("failure counter");
    assert!(failures >= 2.0, "{failures}");

    // The APIs come back: the next rounds recover without a restart.
    bed.proxy.set_plan(FaultPlan::None);
    let reading = eventually("recovery", || {
        let s = monitor.handle.snapshot();
        let a = &s.aurora[0];
        (a.topology_error.is_none() && a.lag_error.is_none())
            .then(|| monitor.handle.last_lag(GLOBAL))
            .flatten()
    })
    .await;
    assert_eq!(reading.observation.lag, Duration::from_millis(300));
    assert!(monitor.handle.topology(GLOBAL).is_some());
    monitor.handle.report_status(&board);
    let component = board.snapshot()["replication.aurora.app-global"].clone();
    assert_eq!(component.state, ComponentState::Ok, "{component:?}");
    monitor.stop().await;
}

#[tokio::test]
async fn backup_copy_age_and_failed_copy_jobs() {
    let bed = TestBed::start().await;
    let moto_url = bed.moto.endpoint_url();
    let backup = aws_sdk_backup::Client::new(&support::raw_config(&moto_url, COLD).await);
    backup
        .create_backup_vault()
        .backup_vault_name("cold-vault")
        .send()
        .await
        .expect("create vault");
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let hours = |h: i64| now - h * 3600;
    let db_a = format!("arn:aws:rds:{HOT}:{ACCOUNT}:cluster:app-hot");
    let db_b = format!("arn:aws:rds:{HOT}:{ACCOUNT}:cluster:reports");
    let point = |resource: &str, status: &str, created: i64| {
        serde_json::json!({
            "Region": COLD, "BackupVaultName": "cold-vault", "ResourceArn": resource,
            "Status": status, "CreationDate": created,
        })
    };
    bed.moto
        .seed(
            "backup/recovery-points",
            serde_json::json!([
                point(&db_a, "COMPLETED", hours(30)),
                point(&db_a, "COMPLETED", hours(2)),
                // Newer, but not restorable yet: does not count.
                point(&db_a, "CREATING", hours(0)),
                point(&db_b, "COMPLETED", hours(30)),
            ]),
        )
        .await;
    let cold_vault = format!("arn:aws:backup:{COLD}:{ACCOUNT}:backup-vault:cold-vault");
    let other_vault = format!("arn:aws:backup:{COLD}:{ACCOUNT}:backup-vault:elsewhere");
    let job = |dest: &str, state: &str, created: i64| {
        serde_json::json!({
            "Region": HOT, "ResourceArn": db_a, "DestinationBackupVaultArn": dest,
            "State": state, "CreationDate": created,
        })
    };
    bed.moto
        .seed(
            "backup/copy-jobs",
            serde_json::json!([
                job(&cold_vault, "FAILED", hours(1)),
                job(&cold_vault, "FAILED", hours(5)),
                job(&cold_vault, "COMPLETED", hours(2)),
                job(&other_vault, "FAILED", hours(1)),
                // Outside the 26 h window.
                job(&cold_vault, "FAILED", hours(72)),
            ]),
        )
        .await;

    let monitor = Monitor::start(
        &bed,
        ReplicationConfig {
            interval: CfgDuration::from_millis(500),
            aurora: Vec::new(),
            backup_vaults: vec![BackupVaultConfig {
                region: COLD.into(),
                name: "cold-vault".into(),
                max_copy_age: CfgDuration::from_secs(26 * 3600),
            }],
        },
    )
    .await;
    let snapshot = eventually("the vault's copies and jobs", || {
        let s = monitor.handle.snapshot();
        (s.backup_vaults[0].resources.len() == 2 && s.backup_vaults[0].failed_copy_jobs.is_some())
            .then_some(s)
    })
    .await;
    let vault = &snapshot.backup_vaults[0];
    assert_eq!(vault.source_region, HOT);
    assert_eq!(vault.failed_copy_jobs, Some(2));
    let a = vault
        .resources
        .iter()
        .find(|r| r.resource_arn == db_a)
        .expect("db a");
    assert!(
        (7200.0..7400.0).contains(&a.age_seconds),
        "newest completed copy of a is 2 h old: {a:?}"
    );
    assert!(!a.too_old);
    let b = vault
        .resources
        .iter()
        .find(|r| r.resource_arn == db_b)
        .expect("db b");
    assert!(b.too_old, "30 h > 26 h: {b:?}");

    let text = monitor.metrics();
    let age_b = sample(
        &text,
        "failoverd_backup_newest_copy_age_seconds",
        &[("vault", "cold-vault"), ("resource", &db_b)],
    )
    .expect("age of b");
    assert!((108_000.0..108_300.0).contains(&age_b), "{age_b}");
    assert_eq!(
        sample(
            &text,
            "failoverd_backup_copy_jobs_failed",
            &[("vault", "cold-vault")]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            &text,
            "failoverd_backup_max_copy_age_seconds",
            &[("vault", "cold-vault")]
        ),
        Some(93_600.0)
    );
    monitor.stop().await;
}

#[tokio::test]
async fn spawn_refuses_ports_missing_a_region() {
    let registry = Registry::new();
    let config = ReplicationConfig {
        interval: CfgDuration::from_secs(1),
        aurora: vec![aurora_config(Duration::from_secs(60))],
        backup_vaults: Vec::new(),
    };
    let err = ReplicationMonitor::spawn_until(
        &config,
        &RegionPair::new(HOT, COLD),
        ReplicationPorts::new(Vec::new()),
        &registry,
        std::future::pending(),
    )
    .err()
    .expect("no ports");
    assert!(err.to_string().contains(HOT), "{err}");
}
