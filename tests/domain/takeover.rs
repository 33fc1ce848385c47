//! The composed region takeover (`failover`, `failback`) on the engine, wired as the daemon wires
//! it, against the lab world seeded into a fresh moto: Route 53, the Aurora global database and
//! both Cognito pools are emulated by moto and failoverd's extension; health verdicts and lag
//! readings are fixed inputs (their own modules are tested elsewhere).
//!
//! The omicron-style helpers run over the composed plan: every step executed twice is harmless,
//! a failure at each step in turn unwinds as DESIGN §3 says (nothing of a later phase undone
//! once the promotion took effect), and an abort in each phase ends `aborted` before the
//! promotion and `needs_operator` from it on. Between runs the world is put back (traffic and
//! writer in us-east-1, active region us-east-1).

use crate::dns_lab::seed_lab_world;
use crate::support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use failoverd::aws::AwsClients;
use failoverd::cognito::monitor::{CognitoHandle, CognitoMonitor};
use failoverd::config::{load_file, Config, Duration as CfgDuration};
use failoverd::dns::steps::DnsTimings;
use failoverd::dns::verify::StageVerifier;
use failoverd::dns::{ChangeAction, DnsApi, RecordChange, Routing};
use failoverd::engine::report::Report;
use failoverd::engine::testing::{
    abort_at_each_phase, action_failure_can_unwind_from, actions_succeed_idempotently,
    crash_in_each_phase, spawn_runner, wait_finished,
};
use failoverd::engine::{MemoryStore, Mode, PlanCatalog, RunRequest, RunStatus, RunView};
use failoverd::health::monitor::HealthVerdicts;
use failoverd::health::{Health, RegionVerdict};
use failoverd::plans::aurora::AuroraPlanDeps;
use failoverd::plans::cognito::CognitoPlanDeps;
use failoverd::plans::dns::DnsPlanDeps;
use failoverd::plans::{failback, failover, PlanDeps, PlanRegistry, TakeoverParts};
use failoverd::replication::GlobalDatabaseApi;
use failoverd::replication::{LagObservation, LagReading, LagReadings, LagSourceKind};
use failoverd::topology::{ActiveRegionRecord, RegionPair};
use serde_json::json;
use time::OffsetDateTime;

use crate::support::moto::MotoServer;
use crate::support::{COLD, HOT};

const LIMIT: Duration = Duration::from_secs(120);
const ZONE: &str = "MPJUQ3UZI4BN9I99O6AT71";
const GLOBAL: &str = "lab-global";

/// Every stage passes its verification (the verifier is tested with the DNS plan).
struct Passing;

#[async_trait]
impl StageVerifier for Passing {
    async fn verify(&self, _target: &str, _probes: &[String]) -> Result<(), String> {
        Ok(())
    }
}

/// A fresh lag reading of `loss_ms` for every global database.
struct Lag(u64);

impl LagReadings for Lag {
    fn last_lag(&self, global_cluster: &str) -> Option<LagReading> {
        Some(LagReading {
            global_cluster: global_cluster.to_owned(),
            observation: LagObservation {
                lag: Duration::from_millis(self.0),
                rpo_lag: Some(Duration::from_millis(self.0)),
                region: COLD.into(),
                source: LagSourceKind::Cloudwatch,
                observed_at: OffsetDateTime::now_utc(),
            },
            age: Duration::from_secs(5),
            stale: false,
            max_lag: Duration::from_secs(5),
        })
    }
}

fn healthy_both() -> HealthVerdicts {
    let v = |region: &str| RegionVerdict {
        region: region.into(),
        health: Health::Healthy,
        since: tokio::time::Instant::now(),
        down: Vec::new(),
        pending: Vec::new(),
        probes_total: 1,
        probes_up: 1,
        explanation: "its probe is up".into(),
    };
    HealthVerdicts {
        regions: BTreeMap::from([(HOT.to_owned(), v(HOT)), (COLD.to_owned(), v(COLD))]),
    }
}

struct World {
    _moto: MotoServer,
    _dir: tempfile::TempDir,
    _health: tokio::sync::watch::Sender<HealthVerdicts>,
    clients: AwsClients,
    plans: Arc<PlanRegistry>,
    record: Arc<ActiveRegionRecord>,
    cognito: CognitoHandle,
}

impl World {
    async fn start(lag_ms: u64) -> World {
        let moto = MotoServer::start().await;
        seed_lab_world(&moto).await;
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let config: Config = load_file(&root.join("config/lab.yaml")).expect("lab config");
        let mut dns = config.dns.clone().expect("lab dns");
        dns.hold = CfgDuration(Duration::ZERO);
        let pair = RegionPair::new(HOT, COLD);
        let clients = support::clients(&support::settings(&moto.endpoint_url())).await;
        let dir = tempfile::tempdir().unwrap();
        let registry = prometheus::Registry::new();
        let cognito = CognitoMonitor::build(
            config.cognito.as_ref().unwrap(),
            &pair,
            clients.cognito_ports(dir.path()),
            &registry,
        )
        .expect("cognito");
        // The preflight wants a recent successful pass, as the background task would have made.
        cognito.sync_now().await.expect("first sync pass");
        let (health_tx, health) = tokio::sync::watch::channel(healthy_both());
        let record = Arc::new(ActiveRegionRecord::open(dir.path(), pair.clone()).unwrap());
        let mut aurora = AuroraPlanDeps::new(
            &config.replication.aurora,
            &pair,
            &clients.replication_ports(),
            Arc::new(Lag(lag_ms)),
        );
        aurora.poll_interval = Duration::from_millis(100);
        let plans = failoverd::plans::register_all(PlanDeps {
            state_dir: dir.path().to_owned(),
            aurora: Some(aurora),
            dns: Some(
                DnsPlanDeps::new(
                    Arc::new(dns),
                    pair.clone(),
                    Arc::new(clients.dns()),
                    Arc::new(Passing),
                )
                .with_timings(DnsTimings {
                    poll_interval: Duration::from_millis(50),
                    insync_timeout: Duration::from_secs(10),
                    unknown_change_wait: Duration::from_millis(10),
                    verify_timeout: Duration::from_secs(10),
                }),
            ),
            cognito: Some(CognitoPlanDeps {
                handle: cognito.clone(),
                replica_health_check_id: None,
                switch: None,
            }),
            takeover: Some(TakeoverParts {
                cognito_interval: Duration::from_secs(600),
                health,
                vaults: Arc::new(Vec::new),
                backup_gate: false,
                max_data_loss: Duration::from_secs(60),
                active: Arc::clone(&record),
                drift: None,
                lost_region_budget: Duration::from_secs(5),
            }),
            gitops: None,
            // Transient errors are ridden out for seconds here, not the production minutes.
            outage_retry: failoverd::engine::OutageRetry {
                max_backoff: Duration::from_secs(1),
                route53: Duration::from_secs(10),
                aurora: Duration::from_secs(10),
                cognito: Duration::from_secs(10),
                kubernetes: Duration::from_secs(10),
                cloudwatch: Duration::from_secs(10),
            },
        });
        World {
            _moto: moto,
            _dir: dir,
            _health: health_tx,
            clients,
            plans: Arc::new(plans),
            record,
            cognito,
        }
    }

    async fn writer(&self) -> Option<String> {
        let api = self.clients.region(HOT).unwrap().global_database();
        api.describe_global_cluster(GLOBAL)
            .await
            .unwrap()
            .writer_region()
            .map(str::to_owned)
    }

    /// Share of each record's weight in `region` (per record name).
    async fn shares(&self, region: &str) -> BTreeMap<String, u8> {
        let mut out = BTreeMap::new();
        for r in self.clients.dns().list_record_sets(ZONE).await.unwrap() {
            if let (Routing::Weighted { weight }, Some(set)) = (&r.routing, &r.set_identifier) {
                if set == region {
                    out.insert(r.name.clone(), *weight);
                }
            }
        }
        out
    }

    /// Traffic and writer back in us-east-1, us-east-1 recorded active.
    async fn reset(&self) {
        let dns = self.clients.dns();
        let changes: Vec<RecordChange> = dns
            .list_record_sets(ZONE)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| matches!(r.routing, Routing::Weighted { .. }))
            .map(|mut r| {
                let weight = if r.set_identifier.as_deref() == Some(HOT) {
                    100
                } else {
                    0
                };
                r.routing = Routing::Weighted { weight };
                RecordChange {
                    action: ChangeAction::Upsert,
                    record_set: r,
                }
            })
            .collect();
        dns.change_record_sets(ZONE, Some("test reset"), &changes)
            .await
            .unwrap();
        let api = self.clients.region(HOT).unwrap().global_database();
        let global = api.describe_global_cluster(GLOBAL).await.unwrap();
        if global.writer_region() != Some(HOT) {
            let hot = global.member_in(HOT).unwrap().db_cluster_arn.clone();
            api.switchover_global_cluster(GLOBAL, &hot).await.unwrap();
        }
        self.record.record(HOT, None).unwrap();
        self.cognito.set_source(HOT).unwrap();
    }
}

fn request(plan: &str, mode: Mode) -> RunRequest {
    RunRequest {
        plan: plan.into(),
        mode,
        params: json!({ "target_region": COLD }),
        reason: "takeover test".into(),
        requested_by: "test".into(),
        ..RunRequest::default()
    }
}

async fn run(plans: &Arc<PlanRegistry>, req: RunRequest) -> RunView {
    let runner = spawn_runner(
        Arc::new(MemoryStore::new()),
        Arc::clone(plans) as Arc<dyn PlanCatalog>,
        1,
    )
    .unwrap();
    let handle = runner.handle();
    let id = handle.start(req).await.expect("start").id;
    let view = wait_finished(&handle, id, LIMIT).await.expect("finishes");
    runner.shutdown().await;
    view
}

fn step<'a>(view: &'a RunView, id: &str) -> &'a failoverd::engine::StepView {
    view.phases
        .iter()
        .flat_map(|p| p.steps.iter())
        .find(|s| s.id.as_str() == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

#[tokio::test]
async fn graceful_failover_moves_writer_users_and_traffic_then_failback_returns() {
    let w = World::start(100).await;
    let view = run(&w.plans, request(failover::NAME, Mode::Graceful)).await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    let phases: Vec<&str> = view.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        phases,
        [
            "preflight",
            "prepare",
            "aurora-promote",
            "aurora-wait",
            "dns-stage-10-apply",
            "dns-stage-10-sync",
            "dns-stage-10-hold",
            "dns-stage-50-apply",
            "dns-stage-50-sync",
            "dns-stage-50-hold",
            "dns-stage-100-apply",
            "dns-stage-100-sync",
            "dns-stage-100-hold",
            "record-active-region"
        ]
    );
    assert_eq!(w.writer().await.as_deref(), Some(COLD));
    assert!(w.shares(COLD).await.values().all(|&s| s == 100));
    assert_eq!(w.record.active(), COLD);
    // The record moved the Cognito direction: the new active pool is the source.
    assert_eq!(
        step(&view, "record-active-region").output.as_ref().unwrap()["cognito_source_region"],
        COLD
    );
    let final_sync = step(&view, "cognito-final-sync").output.clone().unwrap();
    assert_eq!(final_sync["to_region"], COLD, "{final_sync:#}");
    assert_eq!(
        step(&view, "aurora-promote-lab-global")
            .output
            .as_ref()
            .unwrap()["operation"],
        "SwitchoverGlobalCluster"
    );
    // The report: RTO up to the verified end of the DNS shift, RPO 0 for a switchover, and the
    // critical path no longer than the run.
    let report = Report::new(&view, OffsetDateTime::now_utc());
    assert_eq!(
        report.rto.until_phase.as_deref(),
        Some("dns-stage-100-hold"),
        "{:?}",
        report.rto
    );
    let rto = report.rto.seconds.expect("an RTO");
    assert!(rto > 0.0 && rto <= report.total_duration_seconds.unwrap());
    assert_eq!(report.rpo.seconds, Some(0.0), "{:?}", report.rpo);
    assert!(report.critical_path.seconds <= report.total_duration_seconds.unwrap() + 0.001);

    // Failback: the reverse sync copies into the original pool, the writer and traffic return.
    w.cognito.set_source(COLD).unwrap();
    let back = run(
        &w.plans,
        RunRequest {
            params: json!({ "target_region": HOT }),
            ..request(failback::NAME, Mode::Graceful)
        },
    )
    .await;
    assert_eq!(back.status, RunStatus::Succeeded, "{:?}", back.message);
    let reverse = step(&back, "cognito-reverse-sync").output.clone().unwrap();
    assert_eq!(
        (&reverse["from_region"], &reverse["to_region"]),
        (&json!(COLD), &json!(HOT)),
        "{reverse:#}"
    );
    assert_eq!(w.writer().await.as_deref(), Some(HOT));
    assert!(w.shares(HOT).await.values().all(|&s| s == 100));
    assert_eq!(w.record.active(), HOT);

    // A failback is graceful only.
    let err = w
        .plans
        .build(
            failback::NAME,
            Mode::Ungraceful,
            &json!({"target_region": HOT}),
        )
        .unwrap_err();
    assert!(err.to_string().contains("graceful only"), "{err}");
}

#[tokio::test]
async fn ungraceful_failover_refuses_beyond_the_data_loss_bound_and_goes_straight_to_100() {
    // 90 s of estimated data loss against policy.max_data_loss = 60 s: refused in the preflight.
    let w = World::start(90_000).await;
    let view = run(&w.plans, request(failover::NAME, Mode::Ungraceful)).await;
    assert_eq!(view.status, RunStatus::Failed, "{:?}", view.message);
    let check = step(&view, "preflight-data-loss-bound");
    assert!(
        check
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("over policy.max_data_loss 60s"),
        "{:?}",
        check.error
    );
    assert_eq!(w.writer().await.as_deref(), Some(HOT), "nothing moved");
    assert!(w.shares(HOT).await.values().all(|&s| s == 100));
    // A person accepting the loss (the policy escalates such a run to approval with this flag):
    // the check warns, the takeover goes ahead.
    let accepted = run(
        &w.plans,
        RunRequest {
            params: json!({ "target_region": COLD, "accept_data_loss": true }),
            ..request(failover::NAME, Mode::Ungraceful)
        },
    )
    .await;
    assert_eq!(
        accepted.status,
        RunStatus::Succeeded,
        "{:?}",
        accepted.message
    );
    let warning = step(&accepted, "preflight-data-loss-bound")
        .output
        .clone()
        .unwrap();
    assert!(
        warning["warning"]
            .as_str()
            .unwrap_or_default()
            .starts_with("accepted by the request"),
        "{warning:#}"
    );
    assert_eq!(w.writer().await.as_deref(), Some(COLD));

    let w = World::start(2_000).await;
    let view = run(&w.plans, request(failover::NAME, Mode::Ungraceful)).await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    assert!(
        !view.phases.iter().any(|p| p.name.ends_with("-hold")),
        "ungraceful has no holds"
    );
    let promote = step(&view, "aurora-promote-lab-global")
        .output
        .clone()
        .unwrap();
    assert_eq!(promote["operation"], "FailoverGlobalCluster");
    assert_eq!(promote["estimated_data_loss_seconds"], 2.0);
    let report = Report::new(&view, OffsetDateTime::now_utc());
    assert_eq!(report.rpo.seconds, Some(2.0), "{:?}", report.rpo);
    assert_eq!(
        report.rto.until_phase.as_deref(),
        Some("dns-stage-100-sync")
    );
    assert_eq!(w.writer().await.as_deref(), Some(COLD));
    assert!(w.shares(COLD).await.values().all(|&s| s == 100));
}

#[tokio::test]
async fn the_composed_failover_passes_the_engine_helpers() {
    let w = World::start(100).await;
    let plans = Arc::clone(&w.plans) as Arc<dyn PlanCatalog>;
    let params = json!({ "target_region": COLD });

    let view = actions_succeed_idempotently(plans.clone(), failover::NAME, &params, LIMIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(view.status, RunStatus::Succeeded);
    assert_eq!(w.writer().await.as_deref(), Some(COLD));

    let views = action_failure_can_unwind_from(
        plans.clone(),
        failover::NAME,
        Mode::Graceful,
        &params,
        LIMIT,
        || w.reset(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    // Before the promotion a failure leaves nothing to undo; from it on the run needs a person,
    // and the DNS stages after it are left where they are.
    let promote_at = views[0]
        .phases
        .iter()
        .flat_map(|p| p.steps.iter())
        .position(|s| s.id.as_str() == "aurora-promote-lab-global")
        .unwrap();
    for (i, v) in views.iter().enumerate() {
        let want = if i <= promote_at {
            RunStatus::Failed
        } else {
            RunStatus::NeedsOperator
        };
        assert_eq!(v.status, want, "failure at step {i}: {:?}", v.message);
    }
    let late = views.last().unwrap().message.clone().unwrap_or_default();
    assert!(
        late.contains("aurora-promote-lab-global") && late.contains("left as they are"),
        "{late}"
    );

    for mode in [Mode::Graceful, Mode::Ungraceful] {
        let views =
            abort_at_each_phase(plans.clone(), failover::NAME, mode, &params, LIMIT, || {
                w.reset()
            })
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        let outcome: Vec<(String, RunStatus)> = views
            .iter()
            .map(|v| {
                let aborted_in = v
                    .phases
                    .iter()
                    .rev()
                    .find(|p| p.steps.iter().any(|s| s.started_at.is_some()))
                    .map(|p| p.name.clone())
                    .unwrap_or_default();
                (aborted_in, v.status)
            })
            .collect();
        for (phase, status) in &outcome {
            let before_promotion = phase == "preflight" || phase == "prepare";
            let want = if before_promotion {
                RunStatus::Aborted
            } else {
                RunStatus::NeedsOperator
            };
            assert_eq!(*status, want, "{mode:?}, abort in {phase}: {outcome:?}");
        }
        // An abort during the DNS shift leaves the traffic where it got to: never back to a
        // region whose database is no longer the writer.
        let (i, _) = outcome
            .iter()
            .enumerate()
            .find(|(_, (phase, _))| phase.starts_with("dns-stage-100"))
            .expect("an abort during the last DNS stage");
        let message = views[i].message.clone().unwrap_or_default();
        assert!(message.contains("dns-apply-100"), "{message}");
        assert!(
            !views[i].timeline.iter().any(|e| matches!(
                e.event.kind,
                failoverd::engine::EventKind::CompensationStarted { .. }
            )),
            "nothing is undone past the promotion"
        );
    }
}

#[tokio::test]
async fn a_crash_in_each_phase_resumes_without_applying_a_step_twice() {
    let w = World::start(100).await;
    let plans = Arc::clone(&w.plans) as Arc<dyn PlanCatalog>;
    let params = json!({ "target_region": COLD });
    for mode in [Mode::Graceful, Mode::Ungraceful] {
        let views =
            crash_in_each_phase(plans.clone(), failover::NAME, mode, &params, LIMIT, || {
                w.reset()
            })
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(
            views.len(),
            views[0].phases.len(),
            "{mode:?}: a crash in every phase"
        );
        assert_eq!(w.writer().await.as_deref(), Some(COLD));
        assert!(w.shares(COLD).await.values().all(|&s| s == 100));
        assert_eq!(w.record.active(), COLD);
    }
}
