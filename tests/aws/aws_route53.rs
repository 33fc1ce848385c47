//! Route 53 adapter (`DnsApi`, `HealthCheckStatusApi`) against moto.

use crate::support;

use std::time::Duration;

use crate::support::moto::MotoServer;
use aws_sdk_route53::types as sdk;
use failoverd::aws::ErrorKind;
use failoverd::dns::{
    ChangeAction, ChangeStatus, DnsApi, FailoverRole, RecordChange, RecordSet, RecordTarget,
    RecordType, Routing,
};
use failoverd::health::HealthCheckStatusApi;

async fn create_zone(moto: &MotoServer, name: &str) -> String {
    let client = aws_sdk_route53::Client::new(
        &support::raw_config(&moto.endpoint_url(), support::HOT).await,
    );
    let output = client
        .create_hosted_zone()
        .name(name)
        .caller_reference(format!("ref-{name}"))
        .send()
        .await
        .expect("create hosted zone");
    let id = output.hosted_zone().expect("hosted zone").id();
    id.trim_start_matches("/hostedzone/").to_owned()
}

async fn create_health_check(moto: &MotoServer) -> String {
    let client = aws_sdk_route53::Client::new(
        &support::raw_config(&moto.endpoint_url(), support::HOT).await,
    );
    let output = client
        .create_health_check()
        .caller_reference("hc-ref")
        .health_check_config(
            sdk::HealthCheckConfig::builder()
                .r#type(sdk::HealthCheckType::Https)
                .fully_qualified_domain_name("api.us-east-1.example.com")
                .resource_path("/healthz")
                .port(443)
                .build()
                .expect("health check config"),
        )
        .send()
        .await
        .expect("create health check");
    output.health_check().expect("health check").id().to_owned()
}

fn weighted(region: &str, weight: u8, ip: &str, health_check_id: Option<&str>) -> RecordSet {
    RecordSet {
        name: "api.example.com.".into(),
        record_type: RecordType::A,
        set_identifier: Some(region.into()),
        routing: Routing::Weighted { weight },
        target: RecordTarget::Values {
            ttl: Duration::from_secs(60),
            values: vec![ip.into()],
        },
        health_check_id: health_check_id.map(str::to_owned),
    }
}

#[tokio::test]
async fn weighted_records_are_upserted_read_back_and_deleted() {
    let moto = MotoServer::start().await;
    let dns = support::clients(&support::settings(&moto.endpoint_url()))
        .await
        .dns();
    let zone = create_zone(&moto, "example.com").await;
    let health_check = create_health_check(&moto).await;

    let hot = weighted("us-east-1", 100, "192.0.2.10", Some(&health_check));
    let cold = weighted("us-west-2", 0, "198.51.100.10", None);
    let change = dns
        .change_record_sets(
            &zone,
            Some("initial weights"),
            &[
                RecordChange {
                    action: ChangeAction::Upsert,
                    record_set: hot.clone(),
                },
                RecordChange {
                    action: ChangeAction::Upsert,
                    record_set: cold.clone(),
                },
            ],
        )
        .await
        .expect("change batch");
    assert!(!change.id.is_empty());
    assert!(
        !change.id.starts_with("/change/"),
        "prefix is stripped: {}",
        change.id
    );

    let status = dns.change_status(&change.id).await.expect("get change");
    assert_eq!(status.status, ChangeStatus::InSync);

    let records = dns.list_record_sets(&zone).await.expect("list records");
    let api: Vec<&RecordSet> = records
        .iter()
        .filter(|r| r.name == "api.example.com.")
        .collect();
    assert_eq!(api.len(), 2, "{records:#?}");
    assert!(api.contains(&&hot), "{api:#?}");
    assert!(api.contains(&&cold), "{api:#?}");
    // The zone's own SOA and NS records are there too, read as simple routing.
    let soa = records
        .iter()
        .find(|r| r.record_type == RecordType::Other("SOA".into()))
        .expect("SOA record");
    assert_eq!(soa.routing, Routing::Simple);

    // Shift weight: one batch, both records.
    let shifted = [
        RecordChange {
            action: ChangeAction::Upsert,
            record_set: weighted("us-east-1", 50, "192.0.2.10", Some(&health_check)),
        },
        RecordChange {
            action: ChangeAction::Upsert,
            record_set: weighted("us-west-2", 50, "198.51.100.10", None),
        },
    ];
    dns.change_record_sets(&zone, None, &shifted)
        .await
        .expect("shift weights");
    let weights: Vec<_> = dns
        .list_record_sets(&zone)
        .await
        .expect("list records")
        .into_iter()
        .filter(|r| r.name == "api.example.com.")
        .map(|r| (r.set_identifier.clone(), r.routing.clone()))
        .collect();
    assert_eq!(weights.len(), 2);
    assert!(
        weights
            .iter()
            .all(|(_, routing)| *routing == Routing::Weighted { weight: 50 }),
        "{weights:?}"
    );

    dns.change_record_sets(
        &zone,
        None,
        &[RecordChange {
            action: ChangeAction::Delete,
            record_set: shifted[1].record_set.clone(),
        }],
    )
    .await
    .expect("delete record");
    let remaining = dns.list_record_sets(&zone).await.expect("list records");
    assert_eq!(
        remaining
            .iter()
            .filter(|r| r.name == "api.example.com.")
            .count(),
        1
    );
}

#[tokio::test]
async fn failover_and_alias_records_round_trip() {
    let moto = MotoServer::start().await;
    let dns = support::clients(&support::settings(&moto.endpoint_url()))
        .await
        .dns();
    let zone = create_zone(&moto, "example.org").await;
    let primary = RecordSet {
        name: "www.example.org.".into(),
        record_type: RecordType::Cname,
        set_identifier: Some("primary".into()),
        routing: Routing::Failover(FailoverRole::Primary),
        target: RecordTarget::Values {
            ttl: Duration::from_secs(30),
            values: vec!["lb.us-east-1.example.org".into()],
        },
        health_check_id: None,
    };
    let alias = RecordSet {
        name: "app.example.org.".into(),
        record_type: RecordType::A,
        set_identifier: None,
        routing: Routing::Simple,
        target: RecordTarget::Alias {
            hosted_zone_id: zone.clone(),
            dns_name: "www.example.org.".into(),
            evaluate_target_health: false,
        },
        health_check_id: None,
    };
    dns.change_record_sets(
        &zone,
        None,
        &[
            RecordChange {
                action: ChangeAction::Create,
                record_set: primary.clone(),
            },
            RecordChange {
                action: ChangeAction::Create,
                record_set: alias.clone(),
            },
        ],
    )
    .await
    .expect("create records");
    let records = dns.list_record_sets(&zone).await.expect("list");
    assert!(records.contains(&primary), "{records:#?}");
    let read_alias = records
        .iter()
        .find(|r| r.name == "app.example.org.")
        .expect("alias record");
    assert!(
        matches!(&read_alias.target, RecordTarget::Alias { dns_name, .. } if dns_name.trim_end_matches('.') == "www.example.org"),
        "{read_alias:#?}"
    );
}

#[tokio::test]
async fn listing_follows_route53_pagination() {
    let moto = MotoServer::start().await;
    let dns = support::clients(&support::settings(&moto.endpoint_url()))
        .await
        .dns();
    let zone = create_zone(&moto, "many.example.com").await;
    // Route 53 returns at most 300 record sets a page.
    let changes: Vec<RecordChange> = (0..320)
        .map(|i| RecordChange {
            action: ChangeAction::Create,
            record_set: RecordSet {
                name: format!("host-{i:03}.many.example.com."),
                record_type: RecordType::Txt,
                set_identifier: None,
                routing: Routing::Simple,
                target: RecordTarget::Values {
                    ttl: Duration::from_secs(300),
                    values: vec![format!("\"{i}\"")],
                },
                health_check_id: None,
            },
        })
        .collect();
    dns.change_record_sets(&zone, None, &changes)
        .await
        .expect("create 320 records");
    let records = dns.list_record_sets(&zone).await.expect("list");
    let hosts = records
        .iter()
        .filter(|r| r.name.starts_with("host-"))
        .count();
    assert_eq!(hosts, 320);
    // SOA + NS + 320.
    assert_eq!(records.len(), 322);
}

#[tokio::test]
async fn health_check_status_reports_the_checkers() {
    let moto = MotoServer::start().await;
    let dns = support::clients(&support::settings(&moto.endpoint_url()))
        .await
        .dns();
    let health_check = create_health_check(&moto).await;
    let status = dns
        .health_check_status(&health_check)
        .await
        .expect("health check status");
    assert!(status.checkers_total() >= 1, "{status:?}");
    assert_eq!(status.healthy_share(), Some(1.0), "{status:?}");
    assert!(status.checkers.iter().all(|c| c.checked_at.is_some()));
}

#[tokio::test]
async fn missing_resources_are_not_found() {
    let moto = MotoServer::start().await;
    let dns = support::clients(&support::settings(&moto.endpoint_url()))
        .await
        .dns();

    let err = dns
        .list_record_sets("Z0000000000000NOSUCH")
        .await
        .expect_err("no such zone");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.code.as_deref(), Some("NoSuchHostedZone"));
    assert_eq!(err.operation, "ListResourceRecordSets");

    let change = [RecordChange {
        action: ChangeAction::Upsert,
        record_set: weighted("us-east-1", 1, "192.0.2.1", None),
    }];
    let err = dns
        .change_record_sets("Z0000000000000NOSUCH", None, &change)
        .await
        .expect_err("no such zone");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.code.as_deref(), Some("NoSuchHostedZone"));

    let err = dns
        .health_check_status("00000000-0000-0000-0000-000000000000")
        .await
        .expect_err("no such health check");
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    assert_eq!(err.code.as_deref(), Some("NoSuchHealthCheck"));
    // moto's GetChange answers INSYNC for any id, so `NoSuchChange` cannot be observed here; its
    // classification is covered by the unit tests of `aws::error`.
}

#[tokio::test]
async fn invalid_batches_are_refused_before_calling_route53() {
    let moto = MotoServer::start().await;
    let dns = support::clients(&support::settings(&moto.endpoint_url()))
        .await
        .dns();
    let err = dns
        .change_record_sets("Z1", None, &[])
        .await
        .expect_err("empty batch");
    assert_eq!(err.kind, ErrorKind::Invalid);
    let mut latency = weighted("us-east-1", 1, "192.0.2.1", None);
    latency.routing = Routing::Unmanaged("latency us-east-1".into());
    let err = dns
        .change_record_sets(
            "Z1",
            None,
            &[RecordChange {
                action: ChangeAction::Upsert,
                record_set: latency,
            }],
        )
        .await
        .expect_err("unmanaged routing");
    assert_eq!(err.kind, ErrorKind::Invalid);
}

/// The switch a Cognito native-replica failover uses: invert a health check, read it back, undo.
#[tokio::test]
async fn health_check_inversion_round_trips() {
    use failoverd::cognito::replica::HealthCheckSwitch;
    let moto = MotoServer::start().await;
    let id = create_health_check(&moto).await;
    let dns = support::clients(&support::settings(&moto.endpoint_url()))
        .await
        .dns();
    assert!(!dns.health_check_inverted(&id).await.unwrap());
    dns.set_health_check_inverted(&id, true).await.unwrap();
    assert!(dns.health_check_inverted(&id).await.unwrap());
    dns.set_health_check_inverted(&id, true).await.unwrap();
    assert!(dns.health_check_inverted(&id).await.unwrap(), "idempotent");
    dns.set_health_check_inverted(&id, false).await.unwrap();
    assert!(!dns.health_check_inverted(&id).await.unwrap());
    let missing = dns
        .health_check_inverted("00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(
        missing.unwrap_err().kind,
        failoverd::aws::ErrorKind::NotFound
    );
}
