//! A regional outage of the API that moves traffic, end to end: the real binary runs the
//! `dns-switchover` plan on the lab world while the test bed's fault proxy takes Route 53 away
//! (every request blackholed, refused, throttled or answered with a 503, in turn) for a window.
//!
//! * A graceful switchover whose next stage meets a two-minute Route 53 outage waits it out —
//!   the step retrying, shown in the run view and in `/v1/status` (engine `degraded`) — and
//!   completes when the API returns; it does not stop for an operator.
//! * An abort during a 60 s hold interrupts the hold at once; the undo of the stage before it
//!   meets an outage, waits it out too, and the run ends `aborted` with the traffic back.
//!
//! The measured durations are printed (`--nocapture`) for the record; none is asserted beyond
//! telling a wait that was interrupted from one that was waited out.

use std::time::{Duration, Instant};

use crate::lab_support::{
    all_traffic_in, lab_config, seed, started, step, wait_step_running, weights,
    with_health_and_policy, Api, Clusters, Endpoint,
};
use crate::support::fault_proxy::{Fault, FaultPlan, Scope};
use crate::support::harness::Daemon;
use crate::support::{TestBed, COLD, HOT};
use serde_json::{json, Value};
use time::OffsetDateTime;

const POLICY_OFF: &str =
    "  mode: 'off'\n  plan: failover\n  min_unhealthy_for: 1s\n  cooldown: 1h\n  max_data_loss: 1m\n";

/// Everything Route 53 can do wrong during an outage, in turn.
fn route53_outage() -> FaultPlan {
    FaultPlan::Rotate {
        faults: vec![
            Fault::Blackhole,
            Fault::ServerError(503),
            Fault::Drop,
            Fault::Throttle,
        ],
        next: 0,
    }
}

fn at(event: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(
        event["at"].as_str().unwrap_or_default(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap_or_else(|e| panic!("event time of {event}: {e}"))
}

/// The first timeline event of `kind` (for `step`, when given).
fn event<'a>(run: &'a Value, kind: &str, step: Option<&str>) -> &'a Value {
    run["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["type"] == kind && step.is_none_or(|s| e["step"] == s))
        .unwrap_or_else(|| panic!("no {kind} event for {step:?} in {run:#}"))
}

/// Starts a `dns-switchover` to `target` and waits until its first hold (the 10 % stage applied).
fn switch_until_first_hold(api: &Api, target: &str, reason: &str) -> String {
    let id = api.start(json!({
        "plan": "dns-switchover",
        "reason": reason,
        "params": {"target_region": target}
    }));
    wait_step_running(api, &id, "dns-hold-10", 60);
    id
}

#[test]
fn a_route53_outage_is_waited_out_and_an_abort_acts_at_once() {
    let rt = crate::lab_support::runtime();
    let bed = rt.block_on(TestBed::start());
    rt.block_on(seed(&bed));
    let hot = Endpoint::start(&rt);
    let cold = Endpoint::start(&rt);
    let clusters = rt.block_on(Clusters::start());
    // Backoff capped at 5 s, so the end of the outage is noticed within seconds.
    let base = with_health_and_policy(
        &lab_config(&bed.endpoint_url(), &clusters),
        hot.addr,
        cold.addr,
        POLICY_OFF,
    )
    .replace(
        "  lost_region_budget: 10s\n",
        "  lost_region_budget: 10s\n  retry:\n    max_backoff: 5s\n",
    );
    assert!(
        base.contains("max_backoff: 5s"),
        "config/lab.yaml changed shape"
    );
    let moto = bed.moto.endpoint_url();
    let route53 = Scope::default().service("route53");

    // (a) A switchover whose 50 % stage meets a two-minute Route 53 outage.
    let d = Daemon::start(&base.replace("hold: 0s", "hold: 5s"));
    let api = Api { d: &d, rt: &rt };
    let id = switch_until_first_hold(&api, COLD, "e2e outage");
    let outage = Duration::from_secs(120);
    let outage_started = Instant::now();
    bed.proxy
        .fail_scoped_for(route53.clone(), outage, route53_outage());
    // While it lasts: the stage retries, the run view and /v1/status say so.
    let retry = api.wait("dns-apply-50 retrying", 90, || {
        let run = api.get(&format!("/v1/runs/{id}"));
        assert_eq!(run["status"], "running", "{run:#}");
        let retry = &step(&run, "dns-apply-50")["retry"];
        (retry["attempts"].as_u64() >= Some(3)).then(|| retry.clone())
    });
    assert_eq!(retry["operation"], "execute", "{retry:#}");
    assert!(retry["next_attempt_at"].is_string(), "{retry:#}");
    assert!(retry["last_error"].is_string(), "{retry:#}");
    let status = api.wait("the engine degraded", 30, || {
        let s = api.get("/v1/status");
        (s["components"]["engine"]["state"] == "degraded").then_some(s)
    });
    let engine_error = status["components"]["engine"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(engine_error.contains("dns-apply-50"), "{engine_error}");
    let retrying = &status["engine"]["retrying"][0];
    assert_eq!(retrying["step"], "dns-apply-50", "{status:#}");
    assert_eq!(retrying["run"], id.as_str());
    println!(
        "during the outage: dns-apply-50 failed {} attempts, engine: {engine_error}",
        retrying["attempts"]
    );
    let metrics = api.metrics();
    assert!(
        metrics.contains(
            "failoverd_step_retries_total{plan=\"dns-switchover\",step=\"dns-apply-50\"}"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("failoverd_steps_retrying 1"), "{metrics}");
    let run = api.finished(&id, 300);
    let total = outage_started.elapsed();
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert!(
        all_traffic_in(&rt, &moto, COLD),
        "{:?}",
        weights(&rt, &moto)
    );
    let attempts = started(&run, "dns-apply-50");
    assert!(attempts > 3, "{attempts} attempts of dns-apply-50");
    println!(
        "switchover through a {}s Route 53 outage: {attempts} attempts of dns-apply-50, \
         done {:.1}s after the outage began ({:.1}s after it ended)",
        outage.as_secs(),
        total.as_secs_f64(),
        (total.saturating_sub(outage)).as_secs_f64()
    );
    let status = api.wait("the engine ok again", 30, || {
        let s = api.get("/v1/status");
        (s["components"]["engine"]["state"] == "ok").then_some(s)
    });
    assert_eq!(status["engine"]["retrying"], json!([]), "{status:#}");

    // (b) Back to us-east-1 with 60 s holds: abort in the first hold while Route 53 is out for
    // 20 s. The hold stops at once; the undo of the 10 % stage waits out the outage.
    let dir = d.kill9();
    let d = Daemon::start_in(dir, &base.replace("hold: 0s", "hold: 60s"));
    let api = Api { d: &d, rt: &rt };
    let id = switch_until_first_hold(&api, HOT, "e2e abort in an outage");
    assert!(
        !all_traffic_in(&rt, &moto, COLD),
        "the 10 % stage is applied"
    );
    let undo_outage = Duration::from_secs(20);
    bed.proxy
        .fail_scoped_for(route53.clone(), undo_outage, route53_outage());
    let aborted_at = Instant::now();
    let (code, body) = api.call(Some(json!({})), &format!("/v1/runs/{id}/abort"));
    assert!(code == 200 || code == 202, "{code} {body}");
    let retry = api.wait("the undo retrying", 60, || {
        let run = api.get(&format!("/v1/runs/{id}"));
        let retry = &step(&run, "dns-apply-10")["retry"];
        (retry["operation"] == "compensate").then(|| retry.clone())
    });
    println!("the undo during the outage: {retry}");
    let run = api.finished(&id, 120);
    assert_eq!(run["status"], "aborted", "{run:#}");
    let asked = at(event(&run, "abort_requested", None));
    let interrupted = at(event(&run, "step_interrupted", Some("dns-hold-10")));
    let took = (interrupted - asked).as_seconds_f64();
    println!(
        "abort during a 60 s hold: the hold was interrupted {took:.3}s after the abort was \
         recorded; the run ended {:.1}s after the request (the undo waited out a {}s outage)",
        aborted_at.elapsed().as_secs_f64(),
        undo_outage.as_secs()
    );
    // Interrupted, not waited out (the bound only tells the two apart).
    assert!(took < 30.0, "the hold was waited out: {took}s");
    assert_eq!(step(&run, "dns-apply-10")["status"], "compensated");
    assert!(
        all_traffic_in(&rt, &moto, COLD),
        "the undo put the traffic back: {:?}",
        weights(&rt, &moto)
    );
    drop(clusters);
}
