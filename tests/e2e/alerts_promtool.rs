//! `config/prometheus/alerts.yaml` through `promtool` (Debian's `prometheus` package): the rules
//! are valid, their unit tests (`alerts_test.yaml`) pass, every alert links (by an absolute URL
//! under the default base that `scripts/gen-prometheusrule.py` rebases) to its own section of
//! `runbooks/alerts.md`, and the replication and topology metrics pass `promtool check metrics`.

use crate::prometheus_support::promtool;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The base of every `runbook_url` in alerts.yaml (`DEFAULT_RUNBOOK_BASE_URL` of
/// scripts/gen-prometheusrule.py, which replaces it with the published one).
const RUNBOOK_BASE_URL: &str = "https://failoverd.example/";

#[test]
fn promtool_check_rules_accepts_the_alert_file() {
    let (ok, out) = promtool(&["check", "rules", "config/prometheus/alerts.yaml"], None);
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS: 20 rules found"), "{out}");
}

#[test]
fn promtool_unit_tests_of_the_alerts_pass() {
    let (ok, out) = promtool(
        &["test", "rules", "config/prometheus/alerts_test.yaml"],
        None,
    );
    assert!(ok, "{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

/// GitHub's anchor for a heading: lower case, spaces to dashes, punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn every_alert_links_to_its_runbook_section() {
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("config/prometheus/alerts.yaml")).expect("read"),
    )
    .expect("YAML");
    let runbook = std::fs::read_to_string(root().join("runbooks/alerts.md")).expect("read runbook");
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(anchor)
        .collect();
    let mut alerts = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let name = rule["alert"].as_str().expect("alerting rule").to_owned();
            let url = rule["annotations"]["runbook_url"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} has no runbook_url"));
            let path = url.strip_prefix(RUNBOOK_BASE_URL).unwrap_or_else(|| {
                panic!("{name}: {url} is not an absolute URL under {RUNBOOK_BASE_URL}")
            });
            let (file, fragment) = path
                .split_once('#')
                .unwrap_or_else(|| panic!("{name}: {url} has no anchor"));
            assert_eq!(file, "runbooks/alerts.md", "{name}");
            assert!(Path::new(&root().join(file)).exists());
            assert_eq!(
                fragment,
                name.to_lowercase(),
                "{name} links to its own section"
            );
            assert!(
                anchors.contains(fragment),
                "{name}: no section #{fragment} in runbooks/alerts.md ({anchors:?})"
            );
            for key in ["summary", "description"] {
                assert!(
                    rule["annotations"][key].as_str().is_some(),
                    "{name} has no {key}"
                );
            }
            assert!(rule["labels"]["severity"].as_str().is_some(), "{name}");
            alerts.push(name);
        }
    }
    for wanted in [
        "FailoverdAuroraLagOverBudget",
        "FailoverdAuroraLagDataStale",
        "FailoverdBackupCopyTooOld",
        "FailoverdBackupCopyJobsFailing",
        "FailoverdHotRegionUnhealthy",
        "FailoverdRunWaitingApproval",
        "FailoverdRunNeedsOperator",
        "FailoverdTopologyDrift",
        "FailoverdRunsFailing",
        "FailoverdCognitoSyncNotSucceeding",
        "FailoverdDown",
        "FailoverdInstanceDown",
        "FailoverdNoLeader",
        "FailoverdComponentUnreachable",
    ] {
        assert!(alerts.iter().any(|a| a == wanted), "{wanted} missing");
    }
    // And no orphan sections: every runbook section belongs to an alert.
    let linked: BTreeSet<String> = alerts.iter().map(|a| a.to_lowercase()).collect();
    assert_eq!(anchors, linked);
}

#[tokio::test]
async fn replication_metrics_pass_promtool_check_metrics() {
    use failoverd::config::{
        AuroraConfig, BackupVaultConfig, Duration as CfgDuration, LagSource, ReplicationConfig,
    };
    use failoverd::replication::ReplicationMonitor;
    use std::collections::BTreeMap;

    // Nothing answers on this port: the trackers record errors, and the metrics that exist
    // without data (budgets, staleness, failure counters) are exported.
    let settings = failoverd::aws::ClientSettings {
        endpoint_url: Some("http://127.0.0.1:9".into()),
        max_attempts: 1,
        connect_timeout: std::time::Duration::from_millis(200),
        ..failoverd::aws::ClientSettings::default()
    };
    let clients = failoverd::aws::AwsClients::with_credentials(
        &settings,
        ["us-east-1", "us-west-2"],
        aws_types::sdk_config::SharedCredentialsProvider::new(
            aws_sdk_rds::config::Credentials::new("testing", "testing", None, None, "tests"),
        ),
    )
    .await
    .expect("clients");
    let registry = failoverd::telemetry::new_registry().expect("registry");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handle = ReplicationMonitor::spawn_until(
        &ReplicationConfig {
            interval: CfgDuration::from_millis(200),
            aurora: vec![AuroraConfig {
                global_cluster: "app".into(),
                clusters: BTreeMap::from([
                    ("us-east-1".to_owned(), "app-hot".to_owned()),
                    ("us-west-2".to_owned(), "app-cold".to_owned()),
                ]),
                lag_source: LagSource::Cloudwatch,
                max_lag: CfgDuration::from_secs(5),
                stale_after: CfgDuration::from_secs(60),
                heartbeat: None,
            }],
            backup_vaults: vec![BackupVaultConfig {
                region: "us-west-2".into(),
                name: "cold-vault".into(),
                max_copy_age: CfgDuration::from_secs(3600),
            }],
        },
        &failoverd::topology::RegionPair::new("us-east-1", "us-west-2"),
        clients.replication_ports(),
        &registry,
        async move {
            let _ = rx.await;
        },
    )
    .expect("spawn");
    // Bounded wait for the first failed rounds.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while handle.snapshot().aurora[0].topology_error.is_none() {
        assert!(tokio::time::Instant::now() < deadline, "no failed round");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let text = failoverd::telemetry::render(&registry).expect("render");
    for name in [
        "failoverd_aurora_max_lag_seconds",
        "failoverd_aurora_lag_stale",
        "failoverd_backup_max_copy_age_seconds",
        "failoverd_replication_poll_failures_total",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let (ok, out) = promtool(&["check", "metrics"], Some(&text));
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}"
    );
    let _ = tx.send(());
    tokio::time::timeout(std::time::Duration::from_secs(30), handle.finished())
        .await
        .expect("stops");
}

/// A component that always says `us-west-2`.
struct InTheColdRegion(&'static str);

#[async_trait::async_trait]
impl failoverd::topology::ObservedComponent for InTheColdRegion {
    fn component(&self) -> String {
        self.0.to_owned()
    }

    async fn read(&self) -> Result<failoverd::topology::Reading, String> {
        Ok(failoverd::topology::Reading {
            says: failoverd::topology::Says::Region("us-west-2".into()),
            detail: String::new(),
        })
    }
}

#[tokio::test]
async fn topology_drift_metric_passes_promtool_check_metrics() {
    use failoverd::topology::{ActiveRegionRecord, DriftGauge, RegionPair, TopologyView};
    use std::sync::Arc;

    let dir = tempfile::tempdir().expect("tempdir");
    let record = ActiveRegionRecord::open(dir.path(), RegionPair::new("us-east-1", "us-west-2"))
        .expect("record");
    let view = TopologyView::new(
        record.view(),
        vec![
            Arc::new(InTheColdRegion("dns")),
            Arc::new(InTheColdRegion("aurora:app")),
        ],
        std::time::Duration::from_secs(1),
    );
    let registry = failoverd::telemetry::new_registry().expect("registry");
    let (trigger, stop) = failoverd::shutdown::stop_channel();
    let gauge = tokio::spawn(
        DriftGauge::register(&registry)
            .expect("register")
            .follow(view.clone(), stop),
    );
    let mut updates = view.subscribe();
    view.observe_now().await;
    // The gauge follows the view; wait until it has seen the observation.
    updates.changed().await.expect("published");
    let set = async {
        loop {
            let text = failoverd::telemetry::render(&registry).expect("render");
            if text.contains("failoverd_topology_drift{component=\"aurora:app\"} 1") {
                break text;
            }
            tokio::task::yield_now().await;
        }
    };
    let text = tokio::time::timeout(std::time::Duration::from_secs(30), set)
        .await
        .expect("the gauge follows the view");
    assert!(
        text.contains("failoverd_topology_drift{component=\"dns\"} 1"),
        "{text}"
    );
    let (ok, out) = promtool(&["check", "metrics"], Some(&text));
    assert!(
        ok && out.trim().is_empty(),
        "promtool check metrics:\n{out}"
    );
    trigger.stop();
    gauge.await.expect("the gauge task stops");
}
