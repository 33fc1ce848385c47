//! The SQL heartbeat against two real PostgreSQL servers — a primary (the "hot writer") and a
//! streaming-replication standby (the "cold reader") — started by the test (see `support/pg.rs`).
//! Replay on the standby is paused with `pg_wal_replay_pause()`: the lag must grow; after
//! `pg_wal_replay_resume()` it must fall back. Through the whole monitor (handle and metrics),
//! with AWS unreachable (the topology poll fails and the heartbeat keeps working).

use crate::support::pg;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::support::pg::PgServer;
use async_trait::async_trait;
use failoverd::aws::{Error as AwsError, ErrorKind, Result as AwsResult, Service};
use failoverd::config::{
    AuroraConfig, Duration as CfgDuration, HeartbeatConfig, LagSource, ReplicationConfig, SecretRef,
};
use failoverd::replication::heartbeat::{HeartbeatError, HeartbeatProbe};
use failoverd::replication::{
    BackupCatalogApi, CopyJob, CopyJobFilter, DbCluster, GlobalCluster, GlobalDatabaseApi,
    LagMetric, LagMetricsApi, LagSample, LagSourceKind, MetricWindow, RecoveryPoint,
    RecoveryPointFilter, RegionPorts, ReplicationHandle, ReplicationMonitor, ReplicationPorts,
};
use failoverd::topology::RegionPair;
use prometheus::Registry;
use tokio::sync::oneshot;

const HOT: &str = "hot-1";
const COLD: &str = "cold-1";
const GLOBAL: &str = "app-global";
const WAIT: Duration = Duration::from_secs(60);

/// AWS that never answers: the heartbeat must not depend on it.
struct NoAws;

fn down() -> AwsError {
    AwsError::new(
        ErrorKind::Unavailable,
        Service::Rds,
        "DescribeGlobalClusters",
        "test: AWS is unreachable",
    )
}

#[async_trait]
impl GlobalDatabaseApi for NoAws {
    async fn describe_global_cluster(&self, _: &str) -> AwsResult<GlobalCluster> {
        Err(down())
    }
    async fn describe_db_cluster(&self, _: &str) -> AwsResult<DbCluster> {
        Err(down())
    }
    async fn describe_db_clusters(&self) -> AwsResult<Vec<DbCluster>> {
        Err(down())
    }
    async fn switchover_global_cluster(&self, _: &str, _: &str) -> AwsResult<GlobalCluster> {
        Err(down())
    }
    async fn failover_global_cluster_allow_data_loss(
        &self,
        _: &str,
        _: &str,
    ) -> AwsResult<GlobalCluster> {
        Err(down())
    }
    async fn remove_from_global_cluster(&self, _: &str, _: &str) -> AwsResult<GlobalCluster> {
        Err(down())
    }
}

#[async_trait]
impl LagMetricsApi for NoAws {
    async fn lag_series(
        &self,
        _: &str,
        _: LagMetric,
        _: MetricWindow,
    ) -> AwsResult<Vec<LagSample>> {
        Err(down())
    }
}

#[async_trait]
impl BackupCatalogApi for NoAws {
    async fn list_recovery_points(
        &self,
        _: &str,
        _: &RecoveryPointFilter,
    ) -> AwsResult<Vec<RecoveryPoint>> {
        Err(down())
    }
    async fn list_copy_jobs(&self, _: &CopyJobFilter) -> AwsResult<Vec<CopyJob>> {
        Err(down())
    }
}

fn no_aws() -> ReplicationPorts {
    let aws = Arc::new(NoAws);
    ReplicationPorts::new(
        [HOT, COLD]
            .into_iter()
            .map(|region| RegionPorts {
                region: region.into(),
                global_database: aws.clone(),
                lag_metrics: aws.clone(),
                backup: aws.clone(),
            })
            .collect(),
    )
}

fn heartbeat_config(
    writer: &str,
    reader: &str,
    password_file: &std::path::Path,
    interval: Duration,
) -> HeartbeatConfig {
    HeartbeatConfig {
        endpoints: BTreeMap::from([
            (HOT.to_owned(), writer.to_owned()),
            (COLD.to_owned(), reader.to_owned()),
        ]),
        database: "postgres".into(),
        user: pg::USER.into(),
        password: SecretRef::File(password_file.to_owned()),
        table: "failoverd_heartbeat".into(),
        interval: CfgDuration(interval),
    }
}

/// One global database measured by the heartbeat between `primary` and `standby`, every second.
fn heartbeat_replication(
    primary: &PgServer,
    standby: &PgServer,
    password: &std::path::Path,
) -> ReplicationConfig {
    ReplicationConfig {
        interval: CfgDuration::from_secs(1),
        aurora: vec![AuroraConfig {
            global_cluster: GLOBAL.into(),
            clusters: BTreeMap::from([
                (HOT.to_owned(), "app-hot".to_owned()),
                (COLD.to_owned(), "app-cold".to_owned()),
            ]),
            lag_source: LagSource::Heartbeat,
            max_lag: CfgDuration::from_secs(5),
            stale_after: CfgDuration::from_secs(30),
            heartbeat: Some(heartbeat_config(
                &primary.endpoint(),
                &standby.endpoint(),
                password,
                Duration::from_millis(200),
            )),
        }],
        backup_vaults: Vec::new(),
    }
}

fn password_file() -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), format!("{}\n", pg::PASSWORD)).expect("write password");
    file
}

/// Polls the handle every 100 ms until `check` accepts the fresh heartbeat lag, at most `WAIT`.
async fn wait_for_lag(
    handle: &ReplicationHandle,
    what: &str,
    servers: &[&PgServer],
    check: impl Fn(Duration) -> bool,
) -> Duration {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(r) = handle.last_lag(GLOBAL) {
            if !r.stale && check(r.observation.lag) {
                return r.observation.lag;
            }
        }
        if tokio::time::Instant::now() >= deadline {
            let logs: Vec<String> = servers.iter().map(|s| s.log()).collect();
            panic!(
                "timed out waiting for {what}; last reading {:?}; snapshot {:?}; server logs:\n{}",
                handle.last_lag(GLOBAL),
                serde_json::to_string(&handle.snapshot()),
                logs.join("\n---\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn heartbeat_lag_metric(registry: &Registry) -> Option<f64> {
    let text = failoverd::telemetry::render(registry).expect("render");
    text.lines()
        .find(|l| {
            l.starts_with("failoverd_aurora_replication_lag_seconds{")
                && l.contains("source=\"heartbeat\"")
                && l.contains(&format!("region=\"{COLD}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn heartbeat_lag_grows_while_replay_is_paused_and_falls_after_resume() {
    let primary = PgServer::primary();
    let standby = PgServer::standby_of(&primary);
    let password = password_file();
    let config = heartbeat_replication(&primary, &standby, password.path());
    let registry = Registry::new();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let handle = ReplicationMonitor::spawn_until(
        &config,
        &RegionPair::new(HOT, COLD),
        no_aws(),
        &registry,
        async move {
            let _ = stop_rx.await;
        },
    )
    .expect("spawn monitor");
    let servers = [&primary, &standby];

    // The table is created in the writer, replicates, and the lag settles near zero.
    let settled = wait_for_lag(&handle, "a small lag", &servers, |lag| {
        lag < Duration::from_secs(1)
    })
    .await;
    let reading = handle.last_lag(GLOBAL).expect("reading");
    assert_eq!(reading.observation.source, LagSourceKind::Heartbeat);
    assert_eq!(reading.observation.region, COLD);
    assert!(reading.within_budget(), "{settled:?}");
    // AWS being unreachable is recorded, and does not stop the heartbeat.
    let snapshot = handle.snapshot();
    assert!(snapshot.aurora[0].topology_error.is_some());

    // Pause replay on the standby: the reader's copy stops advancing, the lag grows.
    let standby_sql = standby.client().await;
    standby_sql
        .batch_execute("SELECT pg_wal_replay_pause()")
        .await
        .expect("pause replay");
    let grown = wait_for_lag(&handle, "the lag to grow past 3 s", &servers, |lag| {
        lag > Duration::from_secs(3)
    })
    .await;
    // It keeps growing, past the 5 s budget.
    let later = wait_for_lag(&handle, "the lag to pass 6 s", &servers, |lag| {
        lag > Duration::from_secs(6)
    })
    .await;
    assert!(later > grown);
    let reading = handle.last_lag(GLOBAL).expect("reading");
    assert!(!reading.within_budget(), "{reading:?}");
    let exported = heartbeat_lag_metric(&registry).expect("lag exported");
    assert!(exported > 3.0, "{exported}");

    // Resume: the standby replays the backlog, the lag falls back.
    standby_sql
        .batch_execute("SELECT pg_wal_replay_resume()")
        .await
        .expect("resume replay");
    let fallen = wait_for_lag(&handle, "the lag to fall below 1 s", &servers, |lag| {
        lag < Duration::from_secs(1)
    })
    .await;
    assert!(fallen < later);
    assert!(handle.last_lag(GLOBAL).expect("reading").within_budget());

    let _ = stop_tx.send(());
    tokio::time::timeout(WAIT, handle.finished())
        .await
        .expect("monitor stops");
}

#[tokio::test]
async fn heartbeat_probe_reports_each_failure_precisely() {
    let primary = PgServer::primary();
    let password = password_file();
    // A reader nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let mut probe = HeartbeatProbe::new(&heartbeat_config(
        &primary.endpoint(),
        &format!("127.0.0.1:{closed}"),
        password.path(),
        Duration::from_millis(200),
    ))
    .expect("probe");
    let err = probe.beat(HOT, COLD).await.expect_err("reader is down");
    assert!(
        matches!(&err, HeartbeatError::Connect { region, .. } if region == COLD),
        "{err}"
    );

    // Reading the writer itself "as the reader" works (the row is there): lag ~0.
    let mut same = HeartbeatProbe::new(&heartbeat_config(
        &primary.endpoint(),
        &primary.endpoint(),
        password.path(),
        Duration::from_millis(200),
    ))
    .expect("probe");
    let obs = same.beat(HOT, COLD).await.expect("beat");
    assert!(obs.lag < Duration::from_secs(1), "{obs:?}");

    // A server without the table (an unrelated primary) reads as "not replicated yet".
    let unrelated = PgServer::primary();
    let mut fresh = HeartbeatProbe::new(&heartbeat_config(
        &primary.endpoint(),
        &unrelated.endpoint(),
        password.path(),
        Duration::from_millis(200),
    ))
    .expect("probe");
    let err = fresh.beat(HOT, COLD).await.expect_err("no table there");
    assert!(matches!(err, HeartbeatError::NotReplicated { .. }), "{err}");

    // A wrong password is an authentication failure on connect, not a panic.
    let wrong = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(wrong.path(), "not-the-password").expect("write");
    let mut denied = HeartbeatProbe::new(&heartbeat_config(
        &primary.endpoint(),
        &primary.endpoint(),
        wrong.path(),
        Duration::from_millis(200),
    ))
    .expect("probe");
    let err = denied.beat(HOT, COLD).await.expect_err("bad password");
    assert!(
        matches!(&err, HeartbeatError::Connect { region, .. } if region == HOT),
        "{err}"
    );
}

/// A follower measures without writing: `observe` reads the writer's clock and the row the leader
/// wrote (an upper bound of the lag, by up to one interval), creates no table where there is none,
/// and never changes the row.
#[tokio::test]
async fn a_follower_observes_the_lag_without_writing() {
    let primary = PgServer::primary();
    let standby = PgServer::standby_of(&primary);
    let password = password_file();
    let config = heartbeat_config(
        &primary.endpoint(),
        &standby.endpoint(),
        password.path(),
        Duration::from_millis(200),
    );
    let table_exists = |client: tokio_postgres::Client| async move {
        client
            .query_one("SELECT to_regclass('failoverd_heartbeat') IS NOT NULL", &[])
            .await
            .expect("query")
            .get::<_, bool>(0)
    };

    // Before any leader wrote: nothing to read, and the follower creates nothing.
    let mut follower = HeartbeatProbe::new(&config).expect("probe");
    let err = follower.observe(HOT, COLD).await.expect_err("no row yet");
    assert!(matches!(err, HeartbeatError::NotReplicated { .. }), "{err}");
    assert!(
        !table_exists(primary.client().await).await,
        "no table created"
    );

    // The leader writes once; the follower's readings follow it and leave the row alone.
    let mut leader = HeartbeatProbe::new(&config).expect("probe");
    let written = tokio::time::timeout(WAIT, async {
        loop {
            match leader.beat(HOT, COLD).await {
                Ok(obs) => break obs,
                Err(HeartbeatError::NotReplicated { .. }) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("the leader's beat replicates");
    let row = |client: tokio_postgres::Client| async move {
        client
            .query_one(
                "SELECT extract(epoch FROM written_at)::float8 FROM failoverd_heartbeat WHERE id = 1",
                &[],
            )
            .await
            .expect("row")
            .get::<_, f64>(0)
    };
    let before = row(primary.client().await).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = follower.observe(HOT, COLD).await.expect("observe");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let second = follower.observe(HOT, COLD).await.expect("observe");
    assert_eq!(
        row(primary.client().await).await,
        before,
        "the row is untouched"
    );
    assert!(
        second.lag > first.lag && first.lag >= Duration::from_millis(250),
        "without new writes the upper bound grows: leader {:?}, follower {:?} then {:?}",
        written.lag,
        first.lag,
        second.lag
    );
    assert_eq!(second.source, LagSourceKind::Heartbeat);
}

/// Through the monitor: with the engine's leadership `Some(false)` the heartbeat writes nothing
/// (not even its table); once this failoverd leads it writes and the lag is measured.
#[tokio::test]
async fn the_monitor_writes_the_heartbeat_only_while_leading() {
    let primary = PgServer::primary();
    let standby = PgServer::standby_of(&primary);
    let password = password_file();
    let config = heartbeat_replication(&primary, &standby, password.path());
    let (leader, leader_rx) = tokio::sync::watch::channel(Some(false));
    let (trigger, stop) = failoverd::shutdown::stop_channel();
    let handle = ReplicationMonitor::spawn(
        &config,
        &RegionPair::new(HOT, COLD),
        no_aws(),
        &Registry::new(),
        leader_rx,
        stop,
    )
    .expect("spawn monitor");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let exists = primary
        .client()
        .await
        .query_one("SELECT to_regclass('failoverd_heartbeat') IS NOT NULL", &[])
        .await
        .expect("query")
        .get::<_, bool>(0);
    assert!(!exists, "a follower created the heartbeat table");
    assert!(handle.last_lag(GLOBAL).is_none(), "nothing to measure yet");

    leader.send_replace(Some(true));
    let servers = [&primary, &standby];
    wait_for_lag(&handle, "the leader's heartbeat", &servers, |lag| {
        lag < Duration::from_secs(1)
    })
    .await;
    trigger.stop();
    tokio::time::timeout(WAIT, handle.finished())
        .await
        .expect("monitor stops");
}
