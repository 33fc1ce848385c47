//! Two replicas on `state.store: kubernetes`, with the real binary: the journal is custom
//! resources and leadership a Lease in an emulated API server (`support/kube_emulator.py`,
//! serving the CRDs of `deploy/base/crds.yaml`). The leader is killed with SIGKILL in the middle
//! of a run; the other replica takes the Lease once it expires, resumes the run from the
//! journal and finishes it, and no step is executed twice (the selftest plan records each
//! execution in a file both replicas share, and its `verify` reads it for the step in doubt).
//! While it follows, a replica forwards what only the leader serves (starting a run, its event
//! stream) to the leader's API, at the URL the leader wrote on the Lease.

use std::time::{Duration, Instant};

use crate::lab_support::{started, wait_step_running, Api};
use crate::support::harness::{config_yaml, Daemon, OPERATOR_TOKEN};
use crate::support::kube::{KubeEmulator, KubeOptions, DEFAULT_TOKEN};
use serde_json::{json, Value};

const LEASE_SECONDS: u64 = 3;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn ha_config(
    kube_url: &str,
    shared: &std::path::Path,
    token_file: &std::path::Path,
    port: u16,
) -> String {
    let state = format!(
        "state:\n  dir: {}\n  store: kubernetes\n  kubernetes:\n    connect:\n      token: {{endpoint: '{kube_url}', token: {{file: {}}}}}\n    namespace: failoverd\n    lease_duration: {LEASE_SECONDS}s\n    renew_interval: 500ms\n    max_clock_skew: 500ms\n    advertise_url: http://127.0.0.1:{port}\n",
        shared.display(),
        token_file.display()
    );
    let text = config_yaml("")
        .replace("state:\n  dir: state\n", &state)
        .replace("listen: 127.0.0.1:0", &format!("listen: 127.0.0.1:{port}"));
    assert!(text.contains("store: kubernetes"), "{text}");
    text
}

#[test]
fn the_other_replica_takes_over_a_run_when_the_leader_is_killed() {
    let rt = crate::lab_support::runtime();
    let kube = rt.block_on(KubeEmulator::start(KubeOptions {
        seeds: vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "failoverd"}}),
        ],
        ..KubeOptions::default()
    }));
    let shared = tempfile::tempdir().unwrap();
    let token = shared.path().join("kube-token");
    std::fs::write(&token, DEFAULT_TOKEN).unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let config_a = ha_config(&kube.url(), shared.path(), &token, port_a);
    let config_b = ha_config(&kube.url(), shared.path(), &token, port_b);

    let a = Daemon::start(&config_a);
    let api_a = Api { d: &a, rt: &rt };
    api_a.wait_status("A to lead", 30, |s| s["engine"]["leader"] == true);
    let b = Daemon::start(&config_b);
    let api_b = Api { d: &b, rt: &rt };
    let follower = api_b.wait_status("B to follow", 30, |s| {
        s["engine"]["leader"] == false && s["components"]["engine"]["error"].is_string()
    });
    let why = follower["components"]["engine"]["error"].as_str().unwrap();
    assert!(why.contains("holds the Lease failoverd"), "{why}");
    // `failoverd status` on the follower says who leads, and does not count following as a
    // problem (its other problems: no probe is configured here).
    let out = crate::lab_support::cli(&b, crate::support::harness::VIEWER_TOKEN)
        .arg("status")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("LEADER     follower: "), "{text}");
    assert!(
        text.contains("holds the Lease failoverd (fencing token "),
        "{text}"
    );
    assert!(!text.contains("component engine"), "{text}");

    // The run is started through the follower (as through a Service in front of both): B
    // forwards it to A, the leader, which starts it.
    let (code, forwarded_to, run) = rt.block_on(async {
        let r = Daemon::client()
            .post(format!("{}/v1/runs", b.url))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&json!({
                "plan": "selftest",
                "reason": "HA takeover test",
                "params": {"steps": 4, "step_seconds": 1.5},
            }))
            .send()
            .await
            .unwrap();
        let to = r
            .headers()
            .get("failoverd-forwarded-to")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (r.status().as_u16(), to, r.json::<Value>().await.unwrap())
    });
    assert_eq!(code, 202, "{run}");
    assert_eq!(
        forwarded_to.as_deref(),
        Some(format!("http://127.0.0.1:{port_a}").as_str())
    );
    let id = run["id"].as_str().unwrap().to_owned();
    // Both replicas read the same journal.
    let (code, seen) = api_a.call(None, &format!("/v1/runs/{id}"));
    assert_eq!(code, 200, "the leader drives the run: {seen}");
    // The event stream, which the leader serves, through the follower too.
    let first = rt.block_on(async {
        let mut r = Daemon::client()
            .get(format!("{}/v1/runs/{id}/events", b.url))
            .bearer_auth(OPERATOR_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .unwrap_or_default();
        String::from_utf8_lossy(&chunk).into_owned()
    });
    assert!(first.contains("event: run_started"), "{first}");

    // Kill A while a step is running (the second one: the first has left its effect).
    wait_step_running(&api_a, &id, "selftest-2", 30);
    let killed_at = Instant::now();
    drop(a.kill9());

    api_b.wait_status("B to lead", 30, |s| s["engine"]["leader"] == true);
    let took_over = killed_at.elapsed();
    println!("the follower led {took_over:?} after the leader was killed (lease {LEASE_SECONDS}s)");
    assert!(
        took_over < Duration::from_secs(LEASE_SECONDS * 3),
        "takeover took {took_over:?}"
    );
    let done = api_b.finished(&id, 60);
    assert_eq!(done["status"], "succeeded", "{done:#}");
    // The step that had finished on A is not started again; the one in flight at the kill was
    // in doubt: B verified it and ran it again only because its effect was not there.
    assert_eq!(started(&done, "selftest-1"), 1, "{done:#}");
    println!(
        "selftest-2 was started {} time(s)",
        started(&done, "selftest-2")
    );

    // Every step's effect exactly once: the one in flight at the kill was verified, not redone
    // blindly.
    let effects = std::fs::read_to_string(shared.path().join("selftest-effects.log")).unwrap();
    for step in 1..=4 {
        let line = format!("{id} selftest-{step}");
        let n = effects.lines().filter(|l| *l == line).count();
        assert_eq!(n, 1, "selftest-{step} ran {n} times:\n{effects}");
    }
    // The Lease names B, with a newer token than A's.
    let lease = rt.block_on(
        kube.object("/apis/coordination.k8s.io/v1/namespaces/failoverd/leases/failoverd"),
    );
    assert!(
        lease["spec"]["leaseTransitions"].as_i64().unwrap() >= 1,
        "{lease:#}"
    );
    let metrics = api_b.metrics();
    assert!(
        metrics.lines().any(|l| l == "failoverd_leader 1"),
        "{metrics}"
    );
    // The run is a FailoverdRun in the cluster, finished.
    let run = rt.block_on(kube.object(&format!(
        "/apis/failoverd.io/v1alpha1/namespaces/failoverd/failoverdruns/{id}"
    )));
    assert_eq!(run["spec"]["outcome"], "succeeded", "{run:#}");
    assert_eq!(run["metadata"]["labels"]["failoverd.io/finished"], "true");
}
