//! The region takeover end to end: the real binary runs the `failover` and `failback` plans on
//! the lab world (`tests/support/lab_world.py`, behind the test bed's fault proxy), with the DNS
//! holds at 0 s and the monitors on 1 s intervals. What is checked is the emulated world itself,
//! read straight from moto: the Aurora writer, the Route 53 weights, the Cognito pools, and the
//! daemon's record of the active region.
//!
//! Each test owns one world and walks it through several cases in a row, so the suite starts
//! four emulators, not one per case:
//! * [`graceful_failover_failback_drift_and_aborts`]: a graceful failover and the failback; the
//!   writer moved alone (`aurora-switchover`) and the failover completing the move; aborts
//!   before the promotion (`aborted`, nothing moved) and after it (`needs_operator`, DNS left
//!   where it was);
//! * [`ungraceful_failover_through_an_outage_then_detach_and_promote`]: the hot region's AWS
//!   endpoints are blackholed (us-east-1 only, Route 53 aside) and its EKS API hangs; the ungraceful failover completes without
//!   it; the failback once it is back; then `FailoverGlobalCluster` failing makes the plan detach
//!   and promote, and the failback is refused with the rebuild steps;
//! * [`data_loss_bound_refuses_and_kill9_resumes_without_double_effects`]: an RPO lag over
//!   `policy.max_data_loss` refuses the ungraceful failover; a graceful one killed with SIGKILL
//!   in `prepare`, while `aurora-wait` polls a promotion in progress, and while a DNS stage waits
//!   for `INSYNC` resumes after each restart and succeeds, with exactly one
//!   `SwitchoverGlobalCluster` and one `ChangeResourceRecordSets` per stage reaching AWS.
//!
//! * [`data_plane_failover_with_route53_down_then_failback`]: `dns.mode: data_plane` — with
//!   us-east-1 blackholed *including Route 53's control plane*, the ungraceful failover moves the
//!   traffic through the signal in us-west-2 alone (the answers Route 53's name servers give move,
//!   no Route 53 request reaches AWS during the run); the graceful failback converges the records'
//!   weights and clears the signal.
//!
//! No timing is asserted; the run durations are printed (`--nocapture`) for the record.

use std::time::{Duration, Instant};

use crate::lab_support::{
    all_traffic_in, aurora_topology, lab_config, phase_names, pool_users, put_lag,
    set_transition_seconds, started, step, wait_step_running, weights, with_health_and_policy, Api,
    Clusters, Endpoint, COLD_POOL, LAB_USERS,
};
use crate::support::fault_proxy::{Fault, FaultPlan, Scope};
use crate::support::harness::Daemon;
use crate::support::{TestBed, COLD, HOT};
use serde_json::{json, Value};

/// The policy of these tests: never start a run on its own (the tests start every run).
const POLICY_OFF: &str =
    "  mode: 'off'\n  plan: failover\n  min_unhealthy_for: 1s\n  cooldown: 1h\n  max_data_loss: 1m\n";

/// One world: the runtime, the test bed (seeded) and the stub application endpoints.
struct World {
    rt: tokio::runtime::Runtime,
    bed: TestBed,
    _hot: Endpoint,
    _cold: Endpoint,
    /// The lab's emulated EKS clusters (the takeover's GitOps phases act on them).
    clusters: Clusters,
    config: String,
    /// What `lab_world.py` created.
    seeded: Value,
}

impl World {
    fn start() -> World {
        Self::start_with(&[])
    }

    /// A world seeded with `lab_world.py`'s extra arguments.
    fn start_with(seed_args: &[&str]) -> World {
        let rt = crate::lab_support::runtime();
        let bed = rt.block_on(TestBed::start());
        let seeded = rt.block_on(crate::lab_support::seed_with(&bed, seed_args));
        let hot = Endpoint::start(&rt);
        let cold = Endpoint::start(&rt);
        let clusters = rt.block_on(Clusters::start());
        let config = with_health_and_policy(
            &lab_config(&bed.endpoint_url(), &clusters),
            hot.addr,
            cold.addr,
            POLICY_OFF,
        )
        .replace("lost_region_budget: 10s", "lost_region_budget: 5s");
        assert!(
            config.contains("lost_region_budget: 5s"),
            "config/lab.yaml changed shape"
        );
        World {
            rt,
            bed,
            _hot: hot,
            _cold: cold,
            clusters,
            config,
            seeded,
        }
    }

    /// `spec.replicas` of a workload in a region's cluster.
    fn replicas(&self, region: &str, path: &str) -> i64 {
        let emu = if region == HOT {
            &self.clusters.hot
        } else {
            &self.clusters.cold
        };
        let obj = emu.object_blocking(&self.rt, path);
        obj["spec"]["replicas"]
            .as_i64()
            .unwrap_or_else(|| panic!("{path} in {region}: {obj:#}"))
    }

    /// The PATCH requests a region's cluster answered whose path ends with `suffix`.
    fn patches(&self, region: &str, suffix: &str) -> usize {
        let emu = if region == HOT {
            &self.clusters.hot
        } else {
            &self.clusters.cold
        };
        self.rt
            .block_on(emu.requests())
            .iter()
            .filter(|r| {
                r["method"] == "PATCH"
                    && r["status"] == 200
                    && r["path"].as_str().is_some_and(|p| p.ends_with(suffix))
            })
            .count()
    }

    /// moto itself (not the proxy): what the tests read the world through.
    fn moto(&self) -> String {
        self.bed.moto.endpoint_url()
    }

    fn api<'a>(&'a self, d: &'a Daemon) -> Api<'a> {
        Api { d, rt: &self.rt }
    }

    fn writer(&self) -> Option<String> {
        aurora_topology(&self.rt, &self.moto()).0
    }

    fn traffic_in(&self, region: &str) -> bool {
        all_traffic_in(&self.rt, &self.moto(), region)
    }

    /// Asserts the whole world is in `region`: writer, traffic, the record.
    fn assert_all_in(&self, api: &Api, region: &str, context: &str) {
        assert_eq!(self.writer().as_deref(), Some(region), "writer ({context})");
        assert!(
            self.traffic_in(region),
            "traffic ({context}): {:?}",
            weights(&self.rt, &self.moto())
        );
        let s = api.get("/v1/status");
        assert_eq!(s["regions"]["active"], region, "active ({context})");
        let recorded = std::fs::read_to_string(api.d.state_dir().join("active-region"))
            .unwrap_or_else(|_| HOT.to_owned());
        assert_eq!(recorded.trim(), region, "active-region file ({context})");
    }

    /// How many requests matching `scope` reached moto so far.
    fn reached(&self, scope: &Scope) -> usize {
        self.bed.proxy.forwarded_matching(scope)
    }
}

/// Waits until the daemon is ready for a takeover towards `target`: both regions' verdicts known
/// (the target healthy), a lag observation for the lab global database, the Cognito sync done
/// once.
fn wait_ready(api: &Api, target: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = api.get("/v1/status");
        if s["health"]["regions"][target]["health"] == "healthy"
            && s["replication"]["aurora"][0]["lag"].is_object()
            && s["cognito"]["last_success_at"].is_string()
        {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "not ready for a takeover towards {target}: {s:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until the lag the daemon tracks comes from `region` (the current secondary's).
fn wait_lag_from(api: &Api, region: &str) {
    api.wait(&format!("a lag observation from {region}"), 60, || {
        let s = api.get("/v1/status");
        (s["replication"]["aurora"][0]["lag"]["region"] == region).then_some(())
    });
}

fn seconds(run: &Value) -> f64 {
    run["report"]["total_duration_seconds"]
        .as_f64()
        .unwrap_or(f64::NAN)
}

const PROMOTE: &str = "aurora-promote-lab-global";
const CHECK: &str = "aurora-check-lab-global";
const WAIT_WRITER: &str = "aurora-wait-writer-lab-global";

#[test]
fn graceful_failover_failback_drift_and_aborts() {
    const API: &str = "/apis/apps/v1/namespaces/web/deployments/api";
    let w = World::start();
    let d = Daemon::start(&w.config);
    let api = w.api(&d);
    wait_ready(&api, COLD);
    w.assert_all_in(&api, HOT, "seeded");
    // Readiness: the failover's preflight towards the standby passes, in both modes.
    let readiness = api.wait("ready for a failover", 60, || {
        let r = api.get("/v1/status")["readiness"].clone();
        (r["modes"]["graceful"]["ready"] == true && r["modes"]["ungraceful"]["ready"] == true)
            .then_some(r)
    });
    assert_eq!(readiness["modes"]["graceful"]["target_region"], COLD);
    let checks: Vec<&str> = readiness["modes"]["graceful"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    for id in [
        "preflight-target-health",
        "preflight-topology",
        CHECK,
        "dns-preflight",
    ] {
        assert!(checks.contains(&id), "{id} in {readiness:#}");
    }
    let metrics = api.metrics();
    assert!(
        metrics.contains("failoverd_plan_ready{mode=\"graceful\",plan=\"failover\"} 1"),
        "readiness is exported: {metrics}"
    );

    // (a) A graceful failover without parameters: the target is the standby.
    let started_at = Instant::now();
    let run = api.run_to_end(json!({"plan": "failover", "reason": "e2e graceful"}));
    println!(
        "graceful failover: {:.1}s (report {:.1}s)",
        started_at.elapsed().as_secs_f64(),
        seconds(&run)
    );
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["params"]["target_region"], COLD, "{:#}", run["params"]);
    let phases = phase_names(&run);
    for expected in [
        "preflight",
        "prepare",
        "aurora-promote",
        "aurora-wait",
        "dns-stage-10-apply",
        "dns-stage-10-sync",
        "dns-stage-10-hold",
        "dns-stage-50-apply",
        "dns-stage-100-hold",
        "record-active-region",
    ] {
        assert!(
            phases.iter().any(|p| p == expected),
            "{expected} in {phases:?}"
        );
    }
    for s in run["phases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["steps"].as_array().unwrap())
    {
        assert_eq!(s["status"], "succeeded", "{s:#}");
    }
    for id in [
        "preflight-target-health",
        "preflight-cognito-sync",
        "preflight-backup-copies",
        CHECK,
        "dns-preflight",
    ] {
        step(&run, id);
    }
    assert_eq!(
        step(&run, PROMOTE)["output"]["operation"],
        "SwitchoverGlobalCluster"
    );
    w.assert_all_in(&api, COLD, "after the failover");
    // The workloads moved with it: the standby cluster reconciled and runs the hot one's
    // replicas (api 4, frontend 3, worker 2), in `prepare`, next to the final sync.
    for id in [
        "flux-reconcile",
        "argocd-sync",
        "workloads-scale-up",
        "check-gitops",
    ] {
        assert_eq!(step(&run, id)["status"], "succeeded", "{id}");
    }
    assert_eq!(w.replicas(COLD, API), 4);
    assert_eq!(
        w.replicas(COLD, "/apis/apps/v1/namespaces/jobs/statefulsets/worker"),
        2
    );
    // ... concurrently with the final Cognito sync: their time windows overlap.
    let window = |id: &str| {
        let s = step(&run, id);
        let at = |k: &str| {
            time::OffsetDateTime::parse(
                s[k].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        };
        (at("started_at"), at("finished_at"))
    };
    let sync = window("cognito-final-sync");
    for id in ["flux-reconcile", "argocd-sync", "workloads-scale-up"] {
        let g = window(id);
        assert!(
            g.0 < sync.1 && sync.0 < g.1,
            "{id} {g:?} runs alongside the final sync {sync:?}"
        );
    }
    assert_eq!(
        step(&run, "workloads-scale-up")["output"]["workloads"][0]["basis"]["source_replicas"],
        4
    );
    assert_eq!(
        pool_users(&w.rt, &w.moto(), COLD, COLD_POOL),
        LAB_USERS,
        "the cold pool holds the hot pool's users"
    );
    api.wait(
        "status: writer us-west-2, Cognito from us-west-2",
        30,
        || {
            let s = api.get("/v1/status");
            (s["replication"]["aurora"][0]["topology"]["writer_region"] == COLD
                && s["cognito"]["regions"][0] == COLD
                && s["cognito"]["paused"] == false)
                .then_some(())
        },
    );

    // The failback needs a fresh lag of the new secondary (lab-hot, in us-east-1). Until Aurora
    // publishes one, the lag of the former secondary (lab-cold, now the writer) is no lag at all:
    // the failback's check refuses.
    api.wait("the former secondary's lag forgotten", 30, || {
        let s = api.get("/v1/status");
        (s["replication"]["aurora"][0]["lag"].is_null()).then_some(())
    });
    let run = api.run_to_end(json!({"plan": "failback", "reason": "e2e no lag yet"}));
    assert_eq!(run["status"], "failed", "{run:#}");
    let check = step(&run, CHECK);
    assert!(
        check["error"]
            .as_str()
            .is_some_and(|e| e.contains("no lag observation")),
        "{check:#}"
    );
    assert_eq!(started(&run, PROMOTE), 0);
    w.assert_all_in(&api, COLD, "after the refused failback");
    put_lag(&w.moto(), HOT, "lab-hot", 150.0, 600.0);
    wait_lag_from(&api, HOT);
    let started_at = Instant::now();
    let run = api.run_to_end(json!({"plan": "failback", "reason": "e2e back"}));
    println!(
        "graceful failback: {:.1}s (report {:.1}s)",
        started_at.elapsed().as_secs_f64(),
        seconds(&run)
    );
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(run["params"]["target_region"], HOT);
    step(&run, "cognito-reverse-sync");
    assert_eq!(
        step(&run, CHECK)["output"]["lag_region"],
        HOT,
        "the failback's check judged the lag of the current secondary"
    );
    w.assert_all_in(&api, HOT, "after the failback");
    api.wait("Cognito from us-east-1 again", 30, || {
        (api.get("/v1/status")["cognito"]["regions"][0] == HOT).then_some(())
    });

    // (g) The writer moved alone: the failover completes the move (its promotion finds the
    // writer already there).
    let run = api.run_to_end(json!({"plan": "aurora-switchover", "reason": "e2e writer alone", "params": {"target_region": COLD}}));
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(w.writer().as_deref(), Some(COLD));
    assert!(w.traffic_in(HOT));
    // The half-finished move is drift, reported before the failover that completes it.
    let drift = api.wait("drift reported", 30, || {
        let s = api.get("/v1/status");
        s["topology"]["drift"]
            .as_array()
            .filter(|d| !d.is_empty())
            .map(|d| d[0].clone())
    });
    assert_eq!(drift["component"], "aurora:lab-global", "{drift:#}");
    let run = api.run_to_end(json!({"plan": "failover", "reason": "e2e complete the move"}));
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert_eq!(
        step(&run, PROMOTE)["output"]["requested_by_this_attempt"],
        false
    );
    // The preflight saw the drift and let it pass: it points where the failover goes.
    let topology = &step(&run, "preflight-topology")["output"];
    assert!(
        topology["summary"]
            .as_str()
            .unwrap_or_default()
            .contains("aurora:lab-global already in us-west-2"),
        "{topology:#}"
    );
    w.assert_all_in(&api, COLD, "after completing the move");
    api.wait("no drift once the move is complete", 30, || {
        (api.get("/v1/status")["topology"]["drift"] == json!([])).then_some(())
    });
    let run = api.run_to_end(json!({"plan": "failback", "reason": "e2e back again"}));
    assert_eq!(run["status"], "succeeded", "{run:#}");
    w.assert_all_in(&api, HOT, "after the second failback");

    // `failoverd drill`: the round trip on the real plans, both reports and the totals.
    wait_lag_from(&api, COLD);
    let out = std::process::Command::new(crate::support::harness::binary())
        .env_remove("FAILOVERD_TOKEN_FILE")
        .env("FAILOVERD_URL", &d.url)
        .env("FAILOVERD_TOKEN", crate::support::harness::OPERATOR_TOKEN)
        .args(["drill", "--reason", "e2e drill", "--poll-interval", "200ms"])
        .output()
        .expect("run failoverd drill");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("# Run report: failover (drill) — succeeded"),
        "{stdout}"
    );
    assert!(
        stdout.contains("# Run report: failback (drill) — succeeded"),
        "{stdout}"
    );
    w.assert_all_in(&api, HOT, "after the drill round trip");

    // (e) Abort during the preflight (the Aurora check held up by a slow DescribeGlobalClusters).
    w.bed.proxy.fail_scoped(
        Scope::action("DescribeGlobalClusters"),
        FaultPlan::Rotate {
            faults: vec![Fault::Delay(Duration::from_millis(2500))],
            next: 0,
        },
    );
    let id = api.start(json!({"plan": "failover", "reason": "e2e abort in preflight"}));
    wait_step_running(&api, &id, CHECK, 30);
    let (code, body) = api.call(Some(json!({})), &format!("/v1/runs/{id}/abort"));
    assert!(code == 200 || code == 202, "{code} {body}");
    let run = api.finished(&id, 60);
    w.bed.proxy.clear();
    assert_eq!(run["status"], "aborted", "{run:#}");
    assert_eq!(started(&run, PROMOTE), 0, "{run:#}");
    w.assert_all_in(&api, HOT, "after the abort in preflight");

    // Abort during `prepare` (the final sync's ListUsers held up), once the standby's workloads
    // have been scaled up: the unwind puts back the replicas and the HPA it found. (The standby
    // cluster is reset to the lab's seed first: the earlier failover left it scaled up.)
    w.rt.block_on(
        w.clusters.cold.seed(
            serde_json::from_str::<Value>(
                &std::fs::read_to_string(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/lab/kube/us-west-2.json"
                ))
                .unwrap(),
            )
            .unwrap(),
        ),
    );
    assert_eq!(w.replicas(COLD, API), 1);
    w.bed.proxy.fail_scoped(
        Scope::action("ListUsers"),
        FaultPlan::Rotate {
            faults: vec![Fault::Delay(Duration::from_millis(2000))],
            next: 0,
        },
    );
    let id = api.start(json!({"plan": "failover", "reason": "e2e abort in prepare"}));
    wait_step_running(&api, &id, "cognito-final-sync", 60);
    api.wait("the standby scaled up", 60, || {
        (w.replicas(COLD, API) == 4).then_some(())
    });
    let (code, body) = api.call(Some(json!({})), &format!("/v1/runs/{id}/abort"));
    assert!(code == 200 || code == 202, "{code} {body}");
    let run = api.finished(&id, 60);
    w.bed.proxy.clear();
    assert_eq!(run["status"], "aborted", "{run:#}");
    assert_eq!(started(&run, PROMOTE), 0, "{run:#}");
    w.assert_all_in(&api, HOT, "after the abort in prepare");
    assert_eq!(
        w.replicas(COLD, API),
        1,
        "the unwind restored the standby's replicas"
    );
    let hpa = w.clusters.cold.object_blocking(
        &w.rt,
        "/apis/autoscaling/v2/namespaces/web/horizontalpodautoscalers/api",
    );
    assert_eq!(hpa["spec"]["minReplicas"], 1, "and its HPA: {hpa:#}");

    // Abort after the promotion, during a DNS hold: the plan does not unwind past the promotion,
    // and the traffic stays where the stage put it.
    let dir = d.kill9();
    let held = w.config.replace("hold: 0s", "hold: 60s");
    let d = Daemon::start_in(dir, &held);
    let api = w.api(&d);
    wait_ready(&api, COLD);
    let id = api.start(json!({"plan": "failover", "reason": "e2e abort in a hold"}));
    wait_step_running(&api, &id, "dns-hold-10", 60);
    let aborted_at = Instant::now();
    let (code, body) = api.call(Some(json!({})), &format!("/v1/runs/{id}/abort"));
    assert!(code == 200 || code == 202, "{code} {body}");
    let run = api.finished(&id, 60);
    println!(
        "abort during a 60 s hold: the run ended {:.1}s after the abort request",
        aborted_at.elapsed().as_secs_f64()
    );
    assert_eq!(run["status"], "needs_operator", "{run:#}");
    let message = run["message"].as_str().unwrap_or_default();
    // Each later step is named with its state: the 10 % stage done, the rest not started.
    for done in ["aurora-wait-writer-lab-global done", "dns-apply-10 done"] {
        assert!(message.contains(done), "{done:?} in the message: {message}");
    }
    let not_started = message
        .split("not started")
        .nth(1)
        .unwrap_or_else(|| panic!("the steps not started in the message: {message}"));
    for later in ["dns-apply-50", "dns-hold-100", "record-active-region"] {
        assert!(
            not_started.contains(later),
            "{later} not started: {message}"
        );
    }
    assert_eq!(w.writer().as_deref(), Some(COLD), "the promotion stays");
    let now = weights(&w.rt, &w.moto());
    assert!(
        now.iter()
            .all(|(_, set, weight)| *weight == if set == COLD { 10 } else { 90 }),
        "DNS is left at the 10 % stage, not rolled back: {now:?}"
    );
    assert_eq!(api.get("/v1/status")["regions"]["active"], HOT);
}

#[test]
fn ungraceful_failover_through_an_outage_then_detach_and_promote() {
    const API: &str = "/apis/apps/v1/namespaces/web/deployments/api";
    let w = World::start();
    let d = Daemon::start(&w.config);
    let api = w.api(&d);
    wait_ready(&api, COLD);

    // (b) us-east-1 is lost: every request signed for it is blackholed (accepted, never
    // answered), as a lost region's endpoints do. Route 53 signs for us-east-1 too but is a
    // global service; it stays up here (its loss is the data-plane mode's subject).
    w.bed.proxy.fail_scoped(
        Scope::region(HOT).except_service("route53"),
        FaultPlan::Always(Fault::Blackhole),
    );
    // Its EKS API blackholes too (every answer held for a minute).
    w.rt.block_on(w.clusters.hot.fault(json!({"latency_seconds": 60})));
    let started_at = Instant::now();
    let run = api.run_to_end(
        json!({"plan": "failover", "mode": "ungraceful", "reason": "e2e us-east-1 lost"}),
    );
    println!(
        "ungraceful failover with us-east-1 blackholed: {:.1}s (report {:.1}s)",
        started_at.elapsed().as_secs_f64(),
        seconds(&run)
    );
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let sync = &step(&run, "cognito-final-sync")["output"];
    println!(
        "final sync through the outage: {} ({:.1}s)",
        sync["skipped_reason"],
        step(&run, "cognito-final-sync")["duration_seconds"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );
    assert_eq!(sync["skipped"], true, "{sync:#}");
    assert!(
        sync["skipped_reason"]
            .as_str()
            .is_some_and(|r| r.contains("region being left")),
        "{sync:#}"
    );
    step(&run, "preflight-data-loss-bound");
    assert_eq!(
        step(&run, PROMOTE)["output"]["operation"],
        "FailoverGlobalCluster"
    );
    let phases = phase_names(&run);
    assert!(
        phases.contains(&"dns-stage-100-apply".to_owned())
            && !phases.iter().any(|p| p.starts_with("dns-stage-10-")),
        "ungraceful goes straight to 100 %: {phases:?}"
    );
    assert!(
        w.bed.proxy.stats().blackholed > 0,
        "the outage was exercised: {:?}",
        w.bed.proxy.stats()
    );
    w.assert_all_in(&api, COLD, "after the ungraceful failover");
    // The lost cluster's replicas could not be read within lost_region_budget: the standby
    // scaled to the configured floor (api and frontend 2, worker 1).
    let scale = &step(&run, "workloads-scale-up")["output"];
    assert_eq!(
        scale["workloads"][0]["basis"]["floor_replicas"], 2,
        "{scale:#}"
    );
    assert!(
        scale["workloads"][0]["basis"]["because"]
            .as_str()
            .is_some_and(|b| b.contains("us-east-1 did not answer")),
        "{scale:#}"
    );
    assert_eq!(w.replicas(COLD, API), 2);

    // The region comes back; the failback (graceful) once the new secondary's lag is known.
    w.bed.proxy.clear();
    w.rt.block_on(w.clusters.hot.fault(json!({"clear": true})));
    put_lag(&w.moto(), HOT, "lab-hot", 150.0, 600.0);
    wait_lag_from(&api, HOT);
    let run = api.run_to_end(json!({"plan": "failback", "reason": "e2e us-east-1 is back"}));
    assert_eq!(run["status"], "succeeded", "{run:#}");
    w.assert_all_in(&api, HOT, "after the failback");

    // (f) FailoverGlobalCluster cannot complete: the plan detaches the secondary and promotes it.
    wait_lag_from(&api, COLD);
    w.bed.proxy.fail_scoped(
        Scope::action("FailoverGlobalCluster"),
        FaultPlan::Rotate {
            faults: vec![Fault::Error {
                status: 400,
                code: "InvalidGlobalClusterStateFault".into(),
            }],
            next: 0,
        },
    );
    let run =
        api.run_to_end(json!({"plan": "failover", "mode": "ungraceful", "reason": "e2e detach"}));
    w.bed.proxy.clear();
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let promote = &step(&run, PROMOTE)["output"];
    assert_eq!(promote["fallback"], "detach-and-promote", "{promote:#}");
    assert_eq!(
        promote["operation"], "RemoveFromGlobalCluster",
        "{promote:#}"
    );
    let (_, members) = aurora_topology(&w.rt, &w.moto());
    assert_eq!(
        members,
        vec![HOT.to_owned()],
        "lab-cold left the global database"
    );
    assert!(w.traffic_in(COLD));
    assert_eq!(api.get("/v1/status")["regions"]["active"], COLD);

    // The failback is refused: us-west-2 is no member any more, the global database must be
    // rebuilt first.
    let run = api.run_to_end(json!({"plan": "failback", "reason": "e2e refused"}));
    assert_eq!(run["status"], "failed", "{run:#}");
    let check = step(&run, CHECK);
    assert_eq!(check["status"], "failed", "{check:#}");
    let error = check["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("detach") && error.contains("lab-global"),
        "the rebuild steps: {error}"
    );
    assert_eq!(started(&run, PROMOTE), 0);
    assert!(w.traffic_in(COLD), "nothing moved");
}

#[test]
fn data_loss_bound_refuses_and_kill9_resumes_without_double_effects() {
    const API: &str = "/apis/apps/v1/namespaces/web/deployments/api";
    let w = World::start();
    let d = Daemon::start(&w.config);
    let api = w.api(&d);
    wait_ready(&api, COLD);

    // (c) The secondary's RPO lag is 2 min, over policy.max_data_loss (1 min).
    put_lag(&w.moto(), COLD, "lab-cold", 200.0, 120_000.0);
    api.wait("the RPO lag seen", 60, || {
        let lag = &api.get("/v1/status")["replication"]["aurora"][0]["lag"];
        (lag["rpo_lag_seconds"].as_f64().unwrap_or(0.0) >= 100.0).then_some(())
    });
    let run =
        api.run_to_end(json!({"plan": "failover", "mode": "ungraceful", "reason": "e2e bound"}));
    assert_eq!(run["status"], "failed", "{run:#}");
    let bound = step(&run, "preflight-data-loss-bound");
    assert_eq!(bound["status"], "failed", "{bound:#}");
    assert!(
        bound["error"]
            .as_str()
            .is_some_and(|e| e.contains("policy.max_data_loss")),
        "{bound:#}"
    );
    assert_eq!(started(&run, PROMOTE), 0);
    w.assert_all_in(&api, HOT, "after the refusal");

    // (d) A graceful failover (the replication lag is 200 ms), killed three times.
    let switchovers = Scope::action("SwitchoverGlobalCluster");
    let changes = Scope::action("ChangeResourceRecordSets");
    let changes_before = w.reached(&changes);
    // 1. In `prepare`: the final sync's ListUsers is slow.
    w.bed.proxy.fail_scoped(
        Scope::action("ListUsers"),
        FaultPlan::Rotate {
            faults: vec![Fault::Delay(Duration::from_millis(1500))],
            next: 0,
        },
    );
    let started_at = Instant::now();
    let id = api.start(json!({"plan": "failover", "reason": "e2e kill -9"}));
    wait_step_running(&api, &id, "cognito-final-sync", 60);
    let dir = d.kill9();
    w.bed.proxy.clear();
    // 2. While `aurora-wait` polls: the promotion takes 8 s.
    set_transition_seconds(&w.rt, &w.bed, 8.0);
    let d = Daemon::start_in(dir, &w.config);
    let api = w.api(&d);
    wait_step_running(&api, &id, WAIT_WRITER, 90);
    assert_eq!(w.reached(&switchovers), 1);
    let dir = d.kill9();
    // 3. While a DNS stage waits for INSYNC: GetChange is slow.
    w.bed.proxy.fail_scoped(
        Scope::action("GetChange"),
        FaultPlan::Rotate {
            faults: vec![Fault::Delay(Duration::from_millis(1500))],
            next: 0,
        },
    );
    let d = Daemon::start_in(dir, &w.config);
    let api = w.api(&d);
    wait_step_running(&api, &id, "dns-sync-50", 90);
    let dir = d.kill9();
    w.bed.proxy.clear();
    let d = Daemon::start_in(dir, &w.config);
    let api = w.api(&d);
    let run = api.finished(&id, 120);
    println!(
        "graceful failover with three kill -9: {:.1}s (report {:.1}s)",
        started_at.elapsed().as_secs_f64(),
        seconds(&run)
    );
    set_transition_seconds(&w.rt, &w.bed, 0.0);
    assert_eq!(run["status"], "succeeded", "{run:#}");
    w.assert_all_in(&api, COLD, "after the resumed failover");

    // No side effect twice: one switchover request reached AWS, one record change per stage.
    assert_eq!(w.reached(&switchovers), 1, "SwitchoverGlobalCluster calls");
    assert_eq!(
        w.reached(&changes) - changes_before,
        3,
        "ChangeResourceRecordSets calls (stages 10, 50, 100)"
    );
    // The journal: the promotion executed once; the steps in doubt at each kill were verified
    // or started again.
    assert_eq!(started(&run, PROMOTE), 1, "{:#}", run["timeline"]);
    for id in ["dns-apply-10", "dns-apply-50", "dns-apply-100"] {
        assert_eq!(started(&run, id), 1, "{id}: {:#}", run["timeline"]);
    }
    assert!(
        started(&run, "cognito-final-sync") >= 2,
        "the sync in doubt ran again: {:#}",
        run["timeline"]
    );
    // The GitOps steps in doubt at the first kill were verified or resumed without asking the
    // standby cluster twice: one reconcile request per Flux object, one sync of the
    // application, one scale of each workload.
    for suffix in [
        "gitrepositories/platform",
        "kustomizations/infra",
        "kustomizations/apps",
        "statefulsets/worker/scale",
    ] {
        assert_eq!(w.patches(COLD, suffix), 1, "PATCH {suffix}");
    }
    // The api Deployment has an HPA, raised before the scale: a kill between the two leaves the
    // HPA to scale it, and the resumed step finds it done. Never twice, and at its target.
    assert!(
        w.patches(COLD, "deployments/api/scale") <= 1,
        "PATCH deployments/api/scale"
    );
    assert_eq!(w.replicas(COLD, API), 4, "the api Deployment at its target");
    let syncs =
        w.rt.block_on(w.clusters.cold.requests())
            .iter()
            .filter(|r| r["method"] == "PATCH" && r["body"]["operation"]["sync"].is_object())
            .count();
    assert_eq!(syncs, 1, "Argo CD sync operations requested");
    assert_eq!(w.replicas(COLD, API), 4);
    assert_eq!(
        pool_users(&w.rt, &w.moto(), COLD, COLD_POOL),
        LAB_USERS,
        "the final sync, resumed, copied every user once"
    );
}

/// What Route 53's name servers answer for `name` (`type`) over 200 queries, read from moto's
/// emulation of them (`/_failoverd/route53/resolve`): value → count.
fn resolved(w: &World, name: &str, rtype: &str) -> std::collections::BTreeMap<String, u64> {
    let url = format!(
        "{}/_failoverd/route53/resolve?zone={}&name={name}&type={rtype}&samples=200",
        w.moto(),
        crate::lab_support::ZONE
    );
    let body: Value = w.rt.block_on(async {
        reqwest::get(&url)
            .await
            .expect("resolve")
            .json()
            .await
            .expect("resolve JSON")
    });
    serde_json::from_value(body["answers"].clone()).unwrap_or_else(|e| panic!("{e}: {body:#}"))
}

/// Freezes the clock moto evaluates CloudWatch alarms by at `at` (`None`: the real time again).
fn set_alarm_clock(w: &World, at: Option<time::OffsetDateTime>) {
    let now = at.map(|t| t.unix_timestamp());
    let status = w.rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{}/_failoverd/clock", w.moto()))
            .json(&json!({ "now": now }))
            .send()
            .await
            .expect("set the alarm clock")
            .status()
    });
    assert!(status.is_success(), "{status}");
}

/// The lab's app record answers only with `region`'s address.
fn answers_only(w: &World, region: &str, context: &str) {
    let address = if region == HOT {
        "192.0.2.10"
    } else {
        "198.51.100.10"
    };
    let answers = resolved(w, "app.lab.failoverd.test.", "A");
    assert_eq!(
        answers.keys().collect::<Vec<_>>(),
        vec![address],
        "answers for app ({context}): {answers:?}"
    );
}

#[test]
fn data_plane_failover_with_route53_down_then_failback() {
    let mut w = World::start_with(&["--dns-mode", "data_plane"]);
    let signals = &w.seeded["signals"]["regions"].clone();
    let block = format!(
        "  mode: data_plane\n  data_plane:\n    alarm_timeout: 2m\n    confirm_timeout: 5s\n    signals:\n      us-east-1: {{alarm: {}, health_check: {}}}\n      us-west-2: {{alarm: {}, health_check: {}}}\n",
        signals[HOT]["alarm"].as_str().unwrap(),
        signals[HOT]["health_check"].as_str().unwrap(),
        signals[COLD]["alarm"].as_str().unwrap(),
        signals[COLD]["health_check"].as_str().unwrap(),
    );
    let anchor = "  wait_ttl_after_insync: false\n";
    assert!(w.config.contains(anchor), "config/lab.yaml changed shape");
    w.config = w.config.replace(anchor, &format!("{anchor}{block}"));
    let d = Daemon::start(&w.config);
    let api = w.api(&d);
    wait_ready(&api, COLD);
    answers_only(&w, HOT, "before");

    // `failoverd validate --aws` reads the same wiring: as seeded, then with the two regions'
    // health checks swapped (each region's sets then carry the other's signal).
    let validate = |file: &std::path::Path| {
        let out = std::process::Command::new(crate::support::harness::binary())
            .args(["validate", "--aws"])
            .arg(file)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("run failoverd validate --aws");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = validate(&d.path().join("config.yaml"));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(stdout.matches("checked: ").count(), 5, "{stdout}");
    println!("validate --aws:\n{stdout}");
    let (east, west) = (
        signals[HOT]["health_check"].as_str().unwrap(),
        signals[COLD]["health_check"].as_str().unwrap(),
    );
    let swapped = w
        .config
        .replace(east, "EAST")
        .replace(west, east)
        .replace("EAST", west);
    let miswired = d.path().join("miswired.yaml");
    std::fs::write(&miswired, swapped).expect("write the mis-wired config");
    let (code, stdout, stderr) = validate(&miswired);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!(
            "not wired: health check {west} (the sets of us-east-1): it follows alarm lab-us-west-2-drained in us-east-1, not lab-us-east-1-drained in us-west-2"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "record set app.lab.failoverd.test. A [us-east-1] (us-east-1) has health check"
        ),
        "{stderr}"
    );

    // The readiness evaluation checks the signal's wiring in both modes, while both regions answer.
    api.wait(
        "both modes ready, the data-plane wiring checked",
        60,
        || {
            let s = api.get("/v1/status");
            let ready = |mode: &str| {
                let m = &s["readiness"]["modes"][mode];
                m["ready"] == true
                    && m["checks"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|c| c["id"] == "dns-signal-preflight" && c["result"] == "pass")
            };
            (ready("graceful") && ready("ungraceful")).then_some(())
        },
    );

    // us-east-1 is lost, and with it Route 53's control plane (signed for us-east-1): every
    // request blackholed.
    let route53 = Scope::default().service("route53");
    w.bed
        .proxy
        .fail_scoped(Scope::region(HOT), FaultPlan::Always(Fault::Blackhole));
    // Requests already on their way when the region went may still land: let them.
    std::thread::sleep(Duration::from_secs(2));
    let route53_before = w.reached(&route53);
    let started_at = Instant::now();
    let run = api.run_to_end(
        json!({"plan": "failover", "mode": "ungraceful", "reason": "e2e us-east-1 and Route 53 lost"}),
    );
    println!(
        "data-plane ungraceful failover with us-east-1 and Route 53 blackholed: {:.1}s (report {:.1}s)",
        started_at.elapsed().as_secs_f64(),
        seconds(&run)
    );
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let phases = phase_names(&run);
    assert!(
        phases.contains(&"dns-signal".to_owned())
            && !phases.iter().any(|p| p.starts_with("dns-stage-")),
        "the data-plane shift writes no record: {phases:?}"
    );
    let signal = &step(&run, "dns-signal")["output"];
    println!("dns-signal: {signal:#}");
    assert_eq!(signal["drained_region"], HOT, "{signal:#}");
    assert_eq!(signal["alarm"]["state"], "Alarm", "{signal:#}");
    // Route 53's API did not answer, so its checkers' view could not be read: said, not hidden.
    assert_eq!(signal["route53_confirmed"], false, "{signal:#}");
    assert!(
        signal["route53"]
            .as_str()
            .is_some_and(|r| r.starts_with("not confirmed by Route 53")),
        "{signal:#}"
    );
    let wiring = &step(&run, "dns-signal-preflight")["output"];
    assert!(
        !wiring["not_confirmed"].as_array().unwrap().is_empty(),
        "the parts in us-east-1 and Route 53 are reported unconfirmed: {wiring:#}"
    );
    assert_eq!(
        w.reached(&route53),
        route53_before,
        "no Route 53 request reached AWS during the data-plane failover"
    );
    assert!(
        w.bed.proxy.stats().blackholed > 0,
        "{:?}",
        w.bed.proxy.stats()
    );
    // What resolvers get has moved, though the weights still say us-east-1.
    answers_only(&w, COLD, "after the data-plane failover");
    assert!(
        w.traffic_in(HOT),
        "the weights were not written: {:?}",
        weights(&w.rt, &w.moto())
    );
    assert_eq!(w.writer().as_deref(), Some(COLD));
    // The observed topology follows the signal, with Route 53's API out: no drift.
    let topology = api.wait("the signal observed", 30, || {
        let s = api.get("/v1/status");
        let dns = s["topology"]["observations"]
            .as_array()?
            .iter()
            .find(|c| c["component"] == "dns")?
            .clone();
        (dns["says"]["value"] == COLD && s["topology"]["active"] == COLD)
            .then_some(s["topology"].clone())
    });
    assert!(
        !topology["drift"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["component"] == "dns"),
        "{topology:#}"
    );
    println!(
        "DNS observed during the outage: {}",
        topology["observations"][0]["detail"]
    );

    // us-east-1 and Route 53 come back; the failback is graceful, through the records' weights:
    // its first stage converges them and serves us-east-1 again.
    w.bed.proxy.clear();
    put_lag(&w.moto(), HOT, "lab-hot", 150.0, 600.0);
    wait_lag_from(&api, HOT);
    // The drain's 1 must leave the alarm's 60 s window before it can clear (on AWS, up to two
    // minutes with the evaluation interval): the clock the emulator evaluates alarms by is moved
    // on by that much instead of waiting for it — and only ever forward, as time goes.
    let mut alarm_clock = time::OffsetDateTime::now_utc();
    let mut two_minutes_later = || {
        alarm_clock += Duration::from_secs(130);
        set_alarm_clock(&w, Some(alarm_clock));
    };
    two_minutes_later();
    let run = api.run_to_end(json!({"plan": "failback", "reason": "e2e us-east-1 is back"}));
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let cleared = &step(&run, "dns-signal-clear")["output"];
    assert_eq!(cleared["served"], json!([HOT]), "{cleared:#}");
    w.assert_all_in(&api, HOT, "after the failback");
    answers_only(&w, HOT, "after the failback");
    println!("failback: {:.1}s", seconds(&run));

    // Everything up: the data-plane move (the DNS plan alone) is confirmed by Route 53's checkers.
    let shift = |target: &str, mode: &str, reason: &str| {
        json!({"plan": "dns-switchover", "mode": mode, "reason": reason,
               "params": {"target_region": target}})
    };
    let run = api.run_to_end(shift(COLD, "ungraceful", "e2e data-plane shift, all up"));
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let signal = &step(&run, "dns-signal")["output"];
    assert_eq!(signal["route53_confirmed"], true, "{signal:#}");
    assert_eq!(
        signal["target_signal"],
        format!("the signal of {COLD} set to 0 in {HOT}"),
        "{signal:#}"
    );
    println!("confirmed: {}", signal["route53"]);
    assert!(
        signal["route53"]
            .as_str()
            .is_some_and(|r| r.starts_with("8 of 8 Route 53 checkers report")),
        "{signal:#}"
    );
    answers_only(&w, COLD, "after the data-plane shift");
    two_minutes_later();
    let run = api.run_to_end(shift(HOT, "graceful", "e2e back through the weights"));
    assert_eq!(run["status"], "succeeded", "{run:#}");
    answers_only(&w, HOT, "after the graceful shift back");
    assert!(w.traffic_in(HOT), "{:?}", weights(&w.rt, &w.moto()));

    // An abort while the drain retries a failing PutMetricData in us-west-2 (a 503 may have been
    // acted on): the drain is undone — 0 published once CloudWatch answers again, the alarm
    // awaited — and the run ends aborted.
    w.bed.proxy.fail_scoped(
        Scope {
            action: Some("PutMetricData".into()),
            ..Scope::region(COLD).service("monitoring")
        },
        FaultPlan::Always(Fault::ServerError(503)),
    );
    let id = api.start(shift(COLD, "ungraceful", "e2e abort during the drain"));
    api.wait("dns-signal retrying", 60, || {
        let run = api.get(&format!("/v1/runs/{id}"));
        (step(&run, "dns-signal")["retry"]["attempts"].as_u64() >= Some(1)).then_some(())
    });
    let (code, body) = api.call(Some(json!({})), &format!("/v1/runs/{id}/abort"));
    assert!(code == 200 || code == 202, "{code} {body}");
    api.wait("the undo retrying", 60, || {
        let run = api.get(&format!("/v1/runs/{id}"));
        (step(&run, "dns-signal")["retry"]["operation"] == "compensate").then_some(())
    });
    w.bed.proxy.clear();
    let run = api.finished(&id, 120);
    assert_eq!(run["status"], "aborted", "{run:#}");
    assert_eq!(step(&run, "dns-signal")["status"], "compensated", "{run:#}");
    answers_only(&w, HOT, "after the aborted drain");
    set_alarm_clock(&w, None);
}
