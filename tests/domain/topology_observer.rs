//! The observed topology against the emulated two-region AWS: the lab world seeded into moto,
//! read through the fault proxy by the readers the daemon uses (DNS routing, the Aurora writer,
//! the Cognito sync direction), compared with a recorded active region. A consistent world has no
//! drift; a writer moved without the traffic, and DNS weights at 50/50, are drift; an unreachable
//! API is unknown, not drift, and does not hold the observation up.

use crate::dns_lab::seed_lab_world;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::support::fault_proxy::Fault;
use crate::support::{self, TestBed, COLD, HOT};
use failoverd::cognito::monitor::CognitoMonitor;
use failoverd::cognito::observed::SyncDirectionObservation;
use failoverd::config::load_file;
use failoverd::dns::observed::TrafficObservation;
use failoverd::dns::{ChangeAction, DnsApi, RecordChange, Routing};
use failoverd::replication::observed::WriterObservation;
use failoverd::replication::GlobalDatabaseApi;
use failoverd::topology::{
    ActiveRegionRecord, ObservedComponent, RegionPair, Says, TopologySnapshot, TopologyView,
};

const GLOBAL: &str = "lab-global";
const AURORA: &str = "aurora:lab-global";

fn says<'a>(snapshot: &'a TopologySnapshot, component: &str) -> &'a Says {
    &snapshot
        .observations
        .iter()
        .find(|o| o.component == component)
        .unwrap_or_else(|| panic!("no {component} observation: {snapshot:#?}"))
        .says
}

fn drifting(snapshot: &TopologySnapshot) -> Vec<&str> {
    snapshot
        .drift
        .iter()
        .map(|d| d.component.as_str())
        .collect()
}

/// Sets every weighted set of the zone to `weight`, in one batch.
async fn set_all_weights(dns: &dyn DnsApi, zone: &str, weight: u8) {
    let changes: Vec<RecordChange> = dns
        .list_record_sets(zone)
        .await
        .expect("list the lab zone")
        .into_iter()
        .filter(|r| matches!(r.routing, Routing::Weighted { .. }))
        .map(|mut r| {
            r.routing = Routing::Weighted { weight };
            RecordChange {
                action: ChangeAction::Upsert,
                record_set: r,
            }
        })
        .collect();
    assert_eq!(
        changes.len(),
        4,
        "the lab has two weighted records per region pair"
    );
    dns.change_record_sets(zone, Some("test: split"), &changes)
        .await
        .expect("set the weights");
}

#[tokio::test]
async fn the_observer_finds_drift_in_the_lab_world_and_not_in_an_unreachable_one() {
    let bed = TestBed::start().await;
    seed_lab_world(&bed.moto).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = load_file(&root.join("config/lab.yaml")).expect("config/lab.yaml is valid");
    let dns_config = Arc::new(config.dns.clone().expect("the lab configures dns"));
    let zone = dns_config.zones[0].id.clone();
    let pair = RegionPair::new(HOT, COLD);
    let state = tempfile::tempdir().unwrap();
    let record = ActiveRegionRecord::open(state.path(), pair.clone()).unwrap();

    let clients = support::clients(&support::settings(&bed.endpoint_url())).await;
    let dns: Arc<dyn DnsApi> = Arc::new(clients.dns());
    let registry = failoverd::telemetry::new_registry().unwrap();
    let cognito = CognitoMonitor::build(
        config.cognito.as_ref().expect("the lab configures cognito"),
        &pair,
        clients.cognito_ports(state.path()),
        &registry,
    )
    .expect("cognito handle");
    let components: Vec<Arc<dyn ObservedComponent>> = vec![
        Arc::new(TrafficObservation::new(dns_config, pair.clone(), dns.clone()).expect("records")),
        Arc::new(WriterObservation::new(
            GLOBAL,
            pair.clone(),
            clients.replication_ports(),
        )),
        Arc::new(SyncDirectionObservation::new(cognito.clone()).expect("sync mode")),
    ];
    let view = TopologyView::new(record.view(), components, Duration::from_secs(2));

    // The world as seeded: traffic, writer and sync all in the hot region, the recorded one.
    let consistent = view.observe_now().await;
    assert_eq!(consistent.active, HOT);
    for component in ["dns", AURORA, "cognito"] {
        assert_eq!(
            says(&consistent, component),
            &Says::Region(HOT.into()),
            "{consistent:#?}"
        );
    }
    assert_eq!(drifting(&consistent), Vec::<&str>::new(), "{consistent:#?}");
    assert_eq!(view.snapshot(), consistent, "stored as the latest");

    // A half-finished manual move: the writer switched over to the cold region, DNS untouched.
    let cold_rds = clients.region(COLD).unwrap().global_database();
    let global = cold_rds.describe_global_cluster(GLOBAL).await.unwrap();
    let cold_arn = global
        .member_in(COLD)
        .expect("cold member")
        .db_cluster_arn
        .clone();
    cold_rds
        .switchover_global_cluster(GLOBAL, &cold_arn)
        .await
        .expect("switchover");
    let moved = view.observe_now().await;
    assert_eq!(says(&moved, AURORA), &Says::Region(COLD.into()));
    assert_eq!(drifting(&moved), [AURORA], "{moved:#?}");
    assert_eq!(
        moved.drift[0].message,
        "aurora:lab-global: the writer is in us-west-2 but the recorded active region is us-east-1"
    );
    assert_eq!(
        moved.drift_summary().as_deref(),
        Some(moved.drift[0].message.as_str())
    );

    // DNS at 50/50 as well: split, drift.
    set_all_weights(dns.as_ref(), &zone, 50).await;
    let split = view.observe_now().await;
    assert!(
        matches!(says(&split, "dns"), Says::Split(how) if how.contains("split evenly")),
        "{split:#?}"
    );
    assert_eq!(drifting(&split), ["dns", AURORA], "{split:#?}");

    // Every AWS endpoint hangs (an hour per request): both reads are unknown after the read
    // timeout, nothing is drift, and the observation comes back. The outer timeout only keeps a
    // broken bound from hanging the test binary.
    bed.proxy
        .fail_next(1_000, Fault::Delay(Duration::from_secs(3600)));
    let dark = tokio::time::timeout(Duration::from_secs(120), view.observe_now())
        .await
        .expect("the observation is bounded by the read timeout");
    for component in ["dns", AURORA] {
        assert_eq!(
            says(&dark, component),
            &Says::Unknown("no answer within 2s (topology.read_timeout)".into()),
            "{dark:#?}"
        );
    }
    assert_eq!(says(&dark, "cognito"), &Says::Region(HOT.into()));
    assert_eq!(
        drifting(&dark),
        Vec::<&str>::new(),
        "unknown is not drift: {dark:#?}"
    );

    // Refused instead of hung: unknown with the error, still not drift.
    bed.proxy.fail_next(
        1_000,
        Fault::Error {
            status: 403,
            code: "AccessDenied".into(),
        },
    );
    let denied = view.observe_now().await;
    match says(&denied, AURORA) {
        Says::Unknown(why) => assert!(
            why.contains("cannot describe global cluster lab-global"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    assert!(denied.drift.is_empty(), "{denied:#?}");
    bed.proxy.clear();

    // A paused sync copies in neither direction: unknown, not drift.
    cognito.set_paused(true);
    let paused = view.observe_now().await;
    assert!(
        matches!(says(&paused, "cognito"), Says::Unknown(_)),
        "{paused:#?}"
    );
    assert!(!paused.drifts("cognito"));
}
