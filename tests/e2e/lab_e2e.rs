//! The lab, end to end: the real binary on `config/lab.yaml` against a freshly seeded emulated
//! two-region AWS (moto + failoverd's extension, behind the test bed's proxy). What `make lab`
//! shows a person, checked: status sees the Aurora topology and lag and the backup copies, a
//! staged DNS switchover moves the lab's traffic and back, an Aurora switchover moves the writer
//! (and, the traffic staying, shows as topology drift).

use std::time::Duration;

use std::process::Stdio;

use crate::lab_support::{
    cli, lab_config, seed, wait_child, weights, Api, Clusters, LabWorld, COLD_POOL, LAB_USERS,
};
use crate::support::harness::{Daemon, VIEWER_TOKEN};
use crate::support::TestBed;
use serde_json::json;

#[test]
fn lab_status_dns_switchover_and_aurora_switchover() {
    let rt = crate::lab_support::runtime();
    let bed = rt.block_on(TestBed::start());
    rt.block_on(seed(&bed));
    let clusters = rt.block_on(Clusters::start());
    let endpoint = bed.endpoint_url();
    let d = Daemon::start(&lab_config(&endpoint, &clusters));
    let api = Api { d: &d, rt: &rt };

    // The emulated clusters: both reachable, every GitOps object and workload ready.
    let gitops = api.wait("both clusters checked", 60, || {
        let (_, s) = api.call(None, "/v1/status");
        let g = s["gitops"].clone();
        (g.as_array().is_some_and(|c| c.len() == 2)).then_some(g)
    });
    for cluster in gitops.as_array().unwrap() {
        assert_eq!(cluster["reachable"], true, "{cluster:#}");
        let objects = cluster["objects"].as_array().unwrap();
        assert_eq!(objects.len(), 7, "{cluster:#}");
        assert!(objects.iter().all(|o| o["ready"] == true), "{cluster:#}");
    }
    let metrics = api.metrics();
    assert!(
        metrics.contains(
            "failoverd_gitops_ready{kind=\"Kustomization\",name=\"apps\",namespace=\"flux-system\",region=\"us-west-2\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("failoverd_gitops_cluster_reachable{region=\"us-east-1\"} 1"),
        "{metrics}"
    );

    // Status: the Aurora topology (writer in the hot region) and a lag reading, the backup vault.
    let status = api.wait("replication in status", 60, || {
        let (_, s) = api.call(None, "/v1/status");
        let aurora = &s["replication"]["aurora"][0];
        (aurora["topology"]["writer_region"] == "us-east-1" && aurora["lag"].is_object())
            .then_some(s)
    });
    assert_eq!(
        status["replication"]["aurora"][0]["global_cluster"],
        "lab-global"
    );
    assert!(
        status["replication"]["backup_vaults"][0].is_object(),
        "{:#}",
        status["replication"]
    );
    let (_, metrics) = rt.block_on(async {
        let r = Daemon::client()
            .get(format!("{}/metrics", d.url))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    });
    assert!(
        metrics.contains("failoverd_aurora_replication_lag_seconds{"),
        "{metrics}"
    );
    assert!(
        metrics.contains("failoverd_backup_newest_copy_age_seconds{"),
        "{metrics}"
    );
    // Topology: traffic, writer, sync direction and the scaled-up workloads all in the recorded
    // active region.
    let topology = api.wait("topology observed", 30, || {
        let (_, s) = api.call(None, "/v1/status");
        let t = s["topology"].clone();
        (t["observations"].as_array().map(Vec::len) == Some(4)).then_some(t)
    });
    assert_eq!(topology["active"], "us-east-1", "{topology:#}");
    assert_eq!(topology["drift"], json!([]), "{topology:#}");
    for (i, component) in ["dns", "aurora:lab-global", "cognito", "workloads"]
        .iter()
        .enumerate()
    {
        let o = &topology["observations"][i];
        assert_eq!(o["component"], *component, "{topology:#}");
        assert_eq!(
            o["says"],
            json!({"kind": "region", "value": "us-east-1"}),
            "{o:#}"
        );
    }
    let metrics = api.metrics();
    assert!(
        metrics.contains("failoverd_topology_drift{component=\"aurora:lab-global\"} 0"),
        "{metrics}"
    );

    // DNS: a dry run shows the stages; the switchover moves every record to us-west-2, and back.
    let before = weights(&rt, &endpoint);
    assert!(
        before
            .iter()
            .all(|(_, set, w)| (set == "us-east-1") == (*w == 100)),
        "{before:?}"
    );
    let (status, dry) = api.call(
        Some(json!({"plan": "dns-switchover", "reason": "preview", "dry_run": true, "params": {"target_region": "us-west-2"}})),
        "/v1/runs",
    );
    assert_eq!(status, 200, "{dry}");
    assert_eq!(weights(&rt, &endpoint), before, "a dry run changed DNS");

    let run = api.run_to_end(json!({"plan": "dns-switchover", "reason": "lab e2e", "drill": true, "params": {"target_region": "us-west-2"}}));
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let after = weights(&rt, &endpoint);
    assert!(
        after
            .iter()
            .all(|(_, set, w)| (set == "us-west-2") == (*w == 100)),
        "{after:?}"
    );
    assert!(run["report"]["total_duration_seconds"].as_f64().unwrap() > 0.0);
    // The active region follows the traffic, durably; the Cognito sync turns around (the
    // active region's pool is its source).
    api.wait_status("active region us-west-2, sync reversed", 60, |s| {
        s["regions"]["active"] == "us-west-2"
            && s["regions"]["standby"] == "us-east-1"
            && s["cognito"]["regions"][0] == "us-west-2"
            && s["cognito"]["paused"] == false
    });
    let recorded = std::fs::read_to_string(d.state_dir().join("active-region")).unwrap();
    assert_eq!(recorded.trim(), "us-west-2");
    let metrics = rt.block_on(async {
        Daemon::client()
            .get(format!("{}/metrics", d.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    assert!(
        metrics.contains("failoverd_region_active{region=\"us-west-2\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("failoverd_region_active{region=\"us-east-1\"} 0"),
        "{metrics}"
    );

    let run = api.run_to_end(json!({"plan": "dns-switchover", "reason": "lab e2e back", "params": {"target_region": "us-east-1"}}));
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(weights(&rt, &endpoint), before);
    api.wait_status("active region back to us-east-1", 60, |s| {
        s["regions"]["active"] == "us-east-1"
            && s["cognito"]["regions"][0] == "us-east-1"
            && s["cognito"]["paused"] == false
    });

    // Cognito: the sync plan fills the (initially empty) cold pool with the hot pool's 64 users.
    let run = api.run_to_end(json!({"plan": "cognito-sync", "reason": "lab e2e"}));
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let cold_users = crate::lab_support::pool_users(&rt, &endpoint, "us-west-2", COLD_POOL);
    assert_eq!(cold_users, LAB_USERS);
    let (_, s) = api.call(None, "/v1/status");
    assert!(s["cognito"].is_object(), "{s:#}");

    // Aurora: a graceful switchover makes the cold cluster the writer, and status follows.
    let run = api.run_to_end(json!({"plan": "aurora-switchover", "reason": "lab e2e", "params": {"target_region": "us-west-2"}}));
    assert_eq!(run["status"], "succeeded", "{run:#}");
    api.wait("writer in us-west-2", 60, || {
        let (_, s) = api.call(None, "/v1/status");
        (s["replication"]["aurora"][0]["topology"]["writer_region"] == "us-west-2").then_some(())
    });
    // The writer moved, the traffic did not: drift, exported, and it blocks automatic failover.
    let status = api.wait("aurora drift", 30, || {
        let (_, s) = api.call(None, "/v1/status");
        (s["topology"]["drift"].as_array().map(Vec::len) == Some(1)).then_some(s)
    });
    let drift = &status["topology"]["drift"][0];
    assert_eq!(drift["component"], "aurora:lab-global", "{drift:#}");
    assert_eq!(
        drift["message"],
        "aurora:lab-global: the writer is in us-west-2 but the recorded active region is us-east-1"
    );
    assert_eq!(
        status["policy"]["drift"], drift["message"],
        "{:#}",
        status["policy"]
    );
    let metrics = api.metrics();
    assert!(
        metrics.contains("failoverd_topology_drift{component=\"aurora:lab-global\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("failoverd_topology_drift{component=\"dns\"} 0"),
        "{metrics}"
    );
}

/// The automatic path, as in `make lab`: the hot region's endpoint goes down, the policy
/// (approval_required, plan `failover`) creates the ungraceful failover run waiting for an
/// operator, the operator approves, the writer and the traffic move.
#[test]
fn hot_region_loss_creates_an_approval_gated_failover_that_moves_traffic() {
    let rt = crate::lab_support::runtime();
    let mut world = LabWorld::start(&rt);
    let endpoint = world.bed.endpoint_url();
    let config = world.config(
        "  mode: approval_required\n  plan: failover\n  min_unhealthy_for: 1s\n  cooldown: 1h\n  max_data_loss: 1m\n",
    );
    let d = Daemon::start(&config);
    let api = Api { d: &d, rt: &rt };

    // Both regions healthy: no run.
    api.wait("both regions healthy", 30, || {
        let (_, s) = api.call(None, "/v1/status");
        (s["health"]["regions"]["us-east-1"]["health"] == "healthy"
            && s["health"]["regions"]["us-west-2"]["health"] == "healthy")
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let (_, runs) = api.call(None, "/v1/runs");
    assert_eq!(runs["runs"].as_array().unwrap().len(), 0, "{runs}");

    // The hot region goes down: a failover run (ungraceful) appears, waiting for approval.
    world.hot.stop();
    let run = api.wait("policy to create the run", 60, || {
        let (_, runs) = api.call(None, "/v1/runs");
        runs["runs"]
            .as_array()
            .and_then(|r| r.first().cloned())
            .filter(|r| r["status"] == "waiting_approval")
    });
    assert_eq!(run["plan"], "failover");
    assert_eq!(run["mode"], "ungraceful");
    assert_eq!(run["requested_by"], "auto-failover-policy");
    let id = run["id"].as_str().unwrap().to_owned();
    let (_, status) = api.call(None, "/v1/status");
    assert_eq!(
        status["health"]["regions"]["us-east-1"]["health"], "unhealthy",
        "{:#}",
        status["health"]
    );
    let before = weights(&rt, &endpoint);
    assert!(
        before
            .iter()
            .all(|(_, set, w)| (set == "us-east-1") == (*w == 100)),
        "nothing moves before approval: {before:?}"
    );

    // What the on-call sees: `failoverd status` names the problem, the run and the command that
    // approves it, and exits 7 (degraded).
    let out = cli(&d, VIEWER_TOKEN).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{text}");
    for want in [
        "the active region us-east-1 is unhealthy",
        &format!("RUN        failover waiting_approval {id}"),
        &format!("failoverd approve {id}"),
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains('\x1b'), "no colour into a pipe: {text}");
    // `status -o json` is the whole document, with the same exit code.
    let out = cli(&d, VIEWER_TOKEN)
        .args(["status", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["engine"]["active_run"], id.as_str(), "{doc:#}");

    // `runs <id> --follow` shows the timeline live and exits with the outcome.
    let follow = cli(&d, VIEWER_TOKEN)
        .args(["runs", &id, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let (code, body) = api.call(Some(json!({})), &format!("/v1/runs/{id}/approve"));
    assert_eq!(code, 200, "{body}");
    let (exit, timeline, stderr) = wait_child(follow, 120);
    assert_eq!(exit, Some(0), "{timeline}\n{stderr}");
    for want in [
        "run started         failover (ungraceful) by auto-failover-policy",
        "waiting approval",
        "approved",
        "step succeeded",
        "run finished        succeeded in ",
    ] {
        assert!(timeline.contains(want), "missing {want:?} in\n{timeline}");
    }
    let run = api.wait("failover to finish", 120, || {
        let (_, run) = api.call(None, &format!("/v1/runs/{id}"));
        matches!(
            run["status"].as_str(),
            Some("succeeded" | "failed" | "aborted" | "needs_operator")
        )
        .then_some(run)
    });
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let after = weights(&rt, &endpoint);
    assert!(
        after
            .iter()
            .all(|(_, set, w)| (set == "us-west-2") == (*w == 100)),
        "{after:?}"
    );
    // The whole region moved: the writer too (what `make lab` shows after the approval).
    assert_eq!(
        crate::lab_support::aurora_topology(&rt, &world.bed.moto.endpoint_url())
            .0
            .as_deref(),
        Some("us-west-2")
    );

    // ... and the workloads: the standby cluster carries the hot one's replicas (its API still
    // answers: only the hot application endpoint is down), its HPA raised.
    let api_deploy = world
        .clusters
        .cold
        .object_blocking(&rt, "/apis/apps/v1/namespaces/web/deployments/api");
    assert_eq!(api_deploy["spec"]["replicas"], 4, "{api_deploy:#}");
    assert_eq!(api_deploy["status"]["readyReplicas"], 4, "{api_deploy:#}");
    let hpa = world.clusters.cold.object_blocking(
        &rt,
        "/apis/autoscaling/v2/namespaces/web/horizontalpodautoscalers/api",
    );
    assert_eq!(hpa["spec"]["minReplicas"], 4, "{hpa:#}");
    let prepare: Vec<&str> = run["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "prepare")
        .expect("a prepare phase")["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    for id in [
        "cognito-final-sync",
        "flux-reconcile",
        "argocd-sync",
        "workloads-scale-up",
    ] {
        assert!(prepare.contains(&id), "{id} in {prepare:?}");
    }

    // Cooldown: no second run while the hot region stays down.
    std::thread::sleep(Duration::from_secs(2));
    let (_, runs) = api.call(None, "/v1/runs");
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
    let (_, status) = api.call(None, "/v1/status");
    assert!(status["policy"].is_object(), "{status:#}");
    // The active region is now us-west-2 (healthy): the policy watches it, not the lost one.
    api.wait_status("active region us-west-2", 60, |s| {
        s["regions"]["active"] == "us-west-2"
    });
    // An operator can acknowledge the failover to clear the cooldown; with the new active
    // region healthy, nothing more starts.
    let (code, body) = api.call(Some(json!({})), "/v1/policy/acknowledge");
    assert_eq!(
        (code, body["acknowledged_by"].as_str()),
        (200, Some("test-operator")),
        "{body}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let (_, runs) = api.call(None, "/v1/runs");
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
}
