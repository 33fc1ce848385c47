//! The lab's traffic switch: `config/lab.yaml`'s `dns:` section against the lab world seeded
//! into a fresh moto, wired the way the daemon wires it (`plans::dns::register` with a
//! `ProbeVerifier`): a dry run, the switch to us-west-2 and back, as README.md tells.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::moto::MotoServer;
use crate::support::{COLD, HOT};
use failoverd::config::{load_file, Duration as CfgDuration};
use failoverd::dns::verify::ProbeVerifier;
use failoverd::dns::{DnsApi, Routing};
use failoverd::engine::testing::{spawn_runner, wait_finished};
use failoverd::engine::{MemoryStore, Mode, RunRequest, RunStatus};
use failoverd::health::HealthCheckStatusApi;
use failoverd::plans::dns::{register, DnsPlanDeps, NAME};
use failoverd::plans::PlanRegistry;
use failoverd::topology::RegionPair;
use serde_json::json;

/// Seeds the lab world (`tests/support/lab_world.py`) into a fresh moto: the domain tests that
/// work on the lab's records, database and pools share it.
pub(crate) async fn seed_lab_world(moto: &MotoServer) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = tokio::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/support/lab_world.py"))
        .args([
            "--endpoint",
            &moto.endpoint_url(),
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
}

/// `(record name, set identifier) -> weight` of the lab's records.
async fn weights(dns: &dyn DnsApi, zone: &str) -> BTreeMap<(String, String), u8> {
    dns.list_record_sets(zone)
        .await
        .expect("list the lab zone")
        .into_iter()
        .filter_map(|r| match r.routing {
            Routing::Weighted { weight } => Some(((r.name, r.set_identifier?), weight)),
            _ => None,
        })
        .collect()
}

fn lab_weights(to_cold: u8) -> BTreeMap<(String, String), u8> {
    let mut out = BTreeMap::new();
    for name in ["app.lab.failoverd.test.", "api.lab.failoverd.test."] {
        out.insert((name.to_owned(), HOT.to_owned()), 100 - to_cold);
        out.insert((name.to_owned(), COLD.to_owned()), to_cold);
    }
    out
}

#[tokio::test]
async fn the_lab_traffic_switches_to_the_cold_region_and_back() {
    let moto = MotoServer::start().await;
    seed_lab_world(&moto).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = load_file(&root.join("config/lab.yaml")).expect("config/lab.yaml is valid");
    let mut dns_config = config.dns.clone().expect("the lab configures dns");
    // The lab holds each stage 10 s; the test does not need to watch it.
    dns_config.hold = CfgDuration(Duration::ZERO);
    let zone = dns_config.zones[0].id.clone();

    let clients = support::clients(&support::settings(&moto.endpoint_url())).await;
    let api: Arc<dyn DnsApi> = Arc::new(clients.dns());
    let health_checks: Arc<dyn HealthCheckStatusApi> = Arc::new(clients.dns());
    let verifier = ProbeVerifier::new(&config.health.probes, health_checks, BTreeMap::new())
        .expect("verifier");
    let mut registry = PlanRegistry::new();
    register(
        &mut registry,
        DnsPlanDeps::new(
            Arc::new(dns_config),
            RegionPair::new(HOT, COLD),
            api.clone(),
            Arc::new(verifier),
        ),
    );
    let runner = spawn_runner(Arc::new(MemoryStore::new()), Arc::new(registry), 1).unwrap();
    let handle = runner.handle();
    let request = |target: &str, dry_run: bool| RunRequest {
        plan: NAME.into(),
        mode: Mode::Graceful,
        dry_run,
        params: json!({ "target_region": target }),
        reason: "lab traffic switch".into(),
        requested_by: "test".into(),
        ..RunRequest::default()
    };
    assert_eq!(weights(api.as_ref(), &zone).await, lab_weights(0));

    let preview = handle.start(request(COLD, true)).await.expect("dry run");
    assert_eq!(
        preview.status,
        RunStatus::Succeeded,
        "{:?}",
        preview.message
    );
    let first = preview.phases[1].steps[0]
        .description
        .clone()
        .expect("described");
    assert!(
        first.changes.contains(&format!(
            "route53 {zone}: app.lab.failoverd.test. A [us-west-2] weight 0 -> weight 10"
        )),
        "{first:#?}"
    );
    assert_eq!(weights(api.as_ref(), &zone).await, lab_weights(0));

    for (target, share) in [(COLD, 100), (HOT, 0)] {
        let id = handle
            .start(request(target, false))
            .await
            .expect("start")
            .id;
        let view = wait_finished(&handle, id, Duration::from_secs(120))
            .await
            .expect("run finishes");
        assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
        assert_eq!(
            weights(api.as_ref(), &zone).await,
            lab_weights(share),
            "{target}"
        );
    }
    runner.shutdown().await;
}
