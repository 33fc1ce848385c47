//! Takeover RTO benchmark (plain `main`, run with `cargo bench --bench takeover`): the real
//! binary runs the `failover` plan on the lab world (moto from `tests/support`, so
//! `tests/support/setup.sh` must have run) with realistic latencies injected, and the measured
//! RTO is compared with the plan's critical path.
//!
//! Latencies (environment variables, defaults in brackets):
//! * `FAILOVERD_BENCH_PROMOTION_SECONDS` [20]: how long the emulated Aurora switchover/failover
//!   stays in progress (moto `transition_seconds`); AWS takes one to a few minutes;
//! * `FAILOVERD_BENCH_ROUTE53_MS` [300]: added to every Route 53 call (the fault proxy's delay:
//!   moto's `GetChange` is `INSYNC` at once, so this stands for the control plane's latency);
//! * `FAILOVERD_BENCH_GETCHANGE_MS` [2000]: added to each `GetChange` on top (propagation);
//! * `FAILOVERD_BENCH_HOLD` [5s]: `dns.hold` of each graceful stage.
//!
//! **RTO** = from the run's start to the end of its last `dns-` phase (traffic in the target).
//! **Critical path** = the sum, over the phases up to that one, of each phase's longest step —
//! the time the plan needs if the engine added nothing (phases are barriers, steps in a phase
//! run concurrently). The ratio RTO / critical path is the engine's overhead (journal writes,
//! scheduling): 1.00 is ideal.
//!
//! Measured on the 2-core development machine (2026-12-02, release build, moto 5.2.5, the
//! defaults above; no GitOps configured, so `prepare` holds the final Cognito sync alone):
//!
//! | run | preflight | prepare | promote + wait | DNS | RTO | critical path | ratio |
//! |---|---|---|---|---|---|---|---|
//! | graceful us-east-1 → us-west-2 (10/50/100 %, 5 s holds) | 0.93 s | 0.16 s | 20.07 s | 23.8 s | 45.02 s | 44.99 s | 1.001 |
//! | ungraceful us-west-2 → us-east-1 (100 % at once) | 0.31 s | 0.13 s | 20.07 s | 2.95 s | 23.48 s | 23.46 s | 1.001 |
//!
//! The engine adds about 30 ms over a run of ~15 phases. The promotion wait is quantised by
//! `aurora-wait`'s 5 s poll (a 20 s transition happened to end on a poll); a graceful stage
//! costs apply + one `GetChange` + the hold.

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "../tests/e2e/lab_support.rs"]
#[allow(dead_code)]
mod lab_support;

use std::time::Duration;

use anyhow::{bail, Context};
use lab_support::{lab_config, put_lag, seed, set_transition_seconds, with_health_and_policy};
use serde_json::{json, Value};
use support::fault_proxy::{Fault, FaultPlan, Scope};
use support::harness::Daemon;
use support::TestBed;
use time::OffsetDateTime;

fn env_u64(name: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a number")),
        Err(_) => Ok(default),
    }
}

fn instant(v: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_str()?, &time::format_description::well_known::Rfc3339).ok()
}

/// What a finished run measured, in seconds.
struct Measured {
    /// Run start to the end of its last `dns-` phase.
    rto: f64,
    /// Sum of each phase's longest step, up to that phase.
    critical_path: f64,
    /// Each phase's longest step.
    phases: Vec<(String, f64)>,
}

fn measure(run: &Value) -> anyhow::Result<Measured> {
    let start = instant(&run["started_at"]).context("run started_at")?;
    let phases = run["phases"].as_array().context("phases")?;
    let last_dns = phases
        .iter()
        .rposition(|p| p["name"].as_str().is_some_and(|n| n.starts_with("dns-")))
        .context("no dns- phase")?;
    let mut critical = 0.0;
    let mut breakdown = Vec::new();
    let mut end = start;
    for phase in &phases[..=last_dns] {
        let steps = phase["steps"].as_array().context("steps")?;
        let longest = steps
            .iter()
            .filter_map(|s| s["duration_seconds"].as_f64())
            .fold(0.0, f64::max);
        critical += longest;
        breakdown.push((phase["name"].as_str().unwrap_or("?").to_owned(), longest));
        for s in steps {
            if let Some(f) = instant(&s["finished_at"]) {
                end = end.max(f);
            }
        }
    }
    Ok(Measured {
        rto: (end - start).as_seconds_f64(),
        critical_path: critical,
        phases: breakdown,
    })
}

fn report(label: &str, run: &Value) -> anyhow::Result<()> {
    if run["status"] != "succeeded" {
        bail!("{label}: the run did not succeed: {run:#}");
    }
    let Measured {
        rto,
        critical_path: critical,
        phases: breakdown,
    } = measure(run)?;
    println!("\n{label}");
    for (phase, longest) in &breakdown {
        println!("  {phase:<28} {longest:>7.2} s");
    }
    println!(
        "  RTO (start -> end of the last dns- phase): {rto:.2} s\n  critical path (sum of each phase's longest step): {critical:.2} s\n  ratio RTO / critical path: {:.3}",
        rto / critical
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; a filter argument selects nothing here.
    let promotion = env_u64("FAILOVERD_BENCH_PROMOTION_SECONDS", 20)?;
    let route53_ms = env_u64("FAILOVERD_BENCH_ROUTE53_MS", 300)?;
    let get_change_ms = env_u64("FAILOVERD_BENCH_GETCHANGE_MS", 2000)?;
    let hold = std::env::var("FAILOVERD_BENCH_HOLD").unwrap_or_else(|_| "5s".into());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bed = rt.block_on(TestBed::start());
    rt.block_on(seed(&bed));
    let hot = lab_support::Endpoint::start(&rt);
    let cold = lab_support::Endpoint::start(&rt);
    let clusters = rt.block_on(lab_support::Clusters::start());
    let config = with_health_and_policy(
        &lab_config(&bed.endpoint_url(), &clusters),
        hot.addr,
        cold.addr,
        "  mode: 'off'\n  plan: failover\n  min_unhealthy_for: 1s\n  cooldown: 1h\n  max_data_loss: 1m\n",
    )
    .replace("hold: 0s", &format!("hold: {hold}"));
    let d = Daemon::start(&config);
    let api = lab_support::Api { d: &d, rt: &rt };
    api.wait("daemon ready", 90, || {
        let s = api.get("/v1/status");
        (s["health"]["regions"]["us-west-2"]["health"] == "healthy"
            && s["replication"]["aurora"][0]["lag"].is_object()
            && s["cognito"]["last_success_at"].is_string())
        .then_some(())
    });

    set_transition_seconds(&rt, &bed, promotion as f64);
    // Every Route 53 call slow, GetChange (propagation) slower.
    let delayed = |scope: Scope, ms: u64| FaultPlan::Scoped {
        scope,
        plan: Box::new(FaultPlan::Rotate {
            faults: vec![Fault::Delay(Duration::from_millis(ms))],
            next: 0,
        }),
    };
    bed.proxy.set_plan(FaultPlan::FirstOf(vec![
        delayed(Scope::action("GetChange"), route53_ms + get_change_ms),
        delayed(Scope::region("us-east-1").service("route53"), route53_ms),
    ]));
    println!(
        "takeover bench: promotion {promotion} s, Route 53 +{route53_ms} ms a call, GetChange +{} ms, hold {hold}",
        route53_ms + get_change_ms
    );
    let run =
        api.run_to_end(json!({"plan": "failover", "reason": "bench graceful", "drill": true}));
    report("graceful failover us-east-1 -> us-west-2", &run)?;

    put_lag(
        &bed.moto.endpoint_url(),
        "us-east-1",
        "lab-hot",
        150.0,
        600.0,
    );
    api.wait("lag of lab-hot", 60, || {
        (api.get("/v1/status")["replication"]["aurora"][0]["lag"]["region"] == "us-east-1")
            .then_some(())
    });
    let run = api.run_to_end(json!({"plan": "failover", "mode": "ungraceful", "reason": "bench ungraceful", "drill": true, "params": {"target_region": "us-east-1"}}));
    report("ungraceful failover us-west-2 -> us-east-1", &run)?;
    Ok(())
}
