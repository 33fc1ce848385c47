//! A real partition between failoverd and the hot region, end to end: the hot region's
//! application answers from a network namespace of its own (`support::netns`), and the test cuts
//! the link to it. failoverd's HTTP probe of it goes down — but that probe is one vantage point
//! (this daemon's network path), the region's CloudWatch alarm (a second one, read through the
//! AWS API) still says OK, so the region is only `degraded` and the policy, though it would act
//! (`approval_required`), starts nothing. When the alarm fires as well, two vantage points agree
//! and the policy creates the failover run.

use std::time::Duration;

use crate::lab_support::{lab_config, seed, Api, Clusters, Endpoint};
use crate::support::harness::Daemon;
use crate::support::netns::PartitionedTarget;
use crate::support::{alarms_client, create_alarm, set_alarm, TestBed, COLD, HOT};
use aws_sdk_cloudwatch::types::StateValue;
use serde_json::Value;

/// `config` with a `health:` section of two vantage points per region (HTTP and TCP from here —
/// one vantage point —, the region's CloudWatch alarm) with a quorum of two probes from two
/// vantage points, and the policy acting with approval.
fn two_vantage_config(config: &str, hot: &PartitionedTarget, cold: std::net::SocketAddr) -> String {
    let hot_url = hot.url();
    let hot_addr = hot.addr;
    let start = config.find("\nhealth:").expect("a health section");
    let end = config.find("\ndns:").expect("a dns section after it");
    let health = format!(
        "\nhealth:\n  unhealthy_after: 2\n  healthy_after: 1\n  min_failing: 2\n  require_distinct_kinds: true\n  probes:\n\
         \x20   - {{name: hot-app, region: {HOT}, kind: http, url: '{hot_url}', interval: 300ms, timeout: 300ms}}\n\
         \x20   - {{name: hot-tcp, region: {HOT}, kind: tcp, address: '{hot_addr}', interval: 300ms, timeout: 300ms}}\n\
         \x20   - {{name: hot-alarm, region: {HOT}, kind: cloudwatch_alarm, alarm_name: hot-app-5xx, interval: 1s, timeout: 1s}}\n\
         \x20   - {{name: cold-app, region: {COLD}, kind: http, url: 'http://{cold}/healthz', interval: 300ms, timeout: 300ms}}\n\
         \x20   - {{name: cold-alarm, region: {COLD}, kind: cloudwatch_alarm, alarm_name: cold-app-5xx, interval: 1s, timeout: 1s}}\n\
         policy:\n  mode: approval_required\n  plan: failover\n  min_unhealthy_for: 1s\n  cooldown: 1h\n  max_data_loss: 1m\n"
    );
    format!("{}{}{}", &config[..start], health, &config[end..])
}

fn runs(api: &Api) -> Vec<Value> {
    api.get("/v1/runs")["runs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_partition_seen_from_one_vantage_point_does_not_start_a_failover() {
    let rt = crate::lab_support::runtime();
    let target = PartitionedTarget::start();
    let bed = rt.block_on(TestBed::start());
    rt.block_on(seed(&bed));
    let hot_alarms = rt.block_on(alarms_client(&bed, HOT));
    let cold_alarms = rt.block_on(alarms_client(&bed, COLD));
    rt.block_on(async {
        create_alarm(&hot_alarms, "hot-app-5xx").await;
        set_alarm(&hot_alarms, "hot-app-5xx", StateValue::Ok).await;
        create_alarm(&cold_alarms, "cold-app-5xx").await;
        set_alarm(&cold_alarms, "cold-app-5xx", StateValue::Ok).await;
    });
    let clusters = rt.block_on(Clusters::start());
    let cold = Endpoint::start(&rt);
    let config = two_vantage_config(
        &lab_config(&bed.endpoint_url(), &clusters),
        &target,
        cold.addr,
    );
    let d = Daemon::start(&config);
    let api = Api { d: &d, rt: &rt };
    let verdict = |region: &str| api.get("/v1/status")["health"]["regions"][region].clone();
    api.wait("both regions healthy", 60, || {
        (verdict(HOT)["health"] == "healthy" && verdict(COLD)["health"] == "healthy").then_some(())
    });
    // The policy acts on its own (with approval), once its other conditions hold.
    api.wait("a lag observation", 60, || {
        api.get("/v1/status")["replication"]["aurora"][0]["lag"]
            .is_object()
            .then_some(())
    });

    // (a) The cut: the hot application is unreachable from here, and only from here.
    target.cut();
    assert!(
        !target.reachable(Duration::from_millis(500)),
        "the cut holds"
    );
    let degraded = api.wait("both local probes down", 30, || {
        let v = verdict(HOT);
        (v["down"].as_array().map(Vec::len) == Some(2)).then_some(v)
    });
    assert_eq!(degraded["health"], "degraded", "{degraded:#}");
    let why = degraded["explanation"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    println!("partitioned from this daemon only: {why}");
    // Two probes down (the quorum's count) but from one vantage point.
    assert!(
        why.contains("2 probe(s) down, all seen from 1 vantage point(s)"),
        "{degraded:#}"
    );
    // Well past min_unhealthy_for: the policy still starts nothing, and says why.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(verdict(HOT)["health"], "degraded");
    assert!(runs(&api).is_empty(), "{:#?}", runs(&api));
    let policy = api.get("/v1/status")["policy"].clone();
    println!("the policy: {:#}", policy["last_decision"]);
    assert_eq!(
        policy["last_decision"]["reason"], "hot_region_degraded",
        "{policy:#}"
    );

    // (b) The region's own alarm fires too: two vantage points agree, the policy acts.
    rt.block_on(set_alarm(&hot_alarms, "hot-app-5xx", StateValue::Alarm));
    let run = api.wait("the policy to create the failover", 60, || {
        runs(&api)
            .into_iter()
            .find(|r| r["status"] == "waiting_approval")
    });
    assert_eq!(run["plan"], "failover");
    assert_eq!(run["requested_by"], "auto-failover-policy");
    assert_eq!(verdict(HOT)["health"], "unhealthy");
    let id = run["id"].as_str().unwrap_or_default().to_owned();
    let (code, body) = api.call(Some(serde_json::json!({})), &format!("/v1/runs/{id}/abort"));
    assert!(code == 200 || code == 202, "{code} {body}");
    api.finished(&id, 60);
    target.heal();
    drop(clusters);
}
