//! The `dns-switchover` plan on the engine against the test bed (moto's Route 53): staged
//! switchovers both ways, dry runs, abort and verification failure rolling back, crashes between
//! and inside stages, throttling, and records deleted behind failoverd's back.
//!
//! Every test starts its own moto. Weights are always read back through the `DnsApi` port, and
//! every change batch failoverd submits is recorded by a wrapper around it ([`Recorder`]), so a
//! test can assert that each stage was written exactly once.

use crate::support;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::fault_proxy::Fault;
use crate::support::moto::MotoServer;
use crate::support::{COLD as WEST, HOT as EAST};
use async_trait::async_trait;
use aws_sdk_route53::types as sdk;
use failoverd::aws::Result as AwsResult;
use failoverd::config::{
    DnsConfig, DnsRecordConfig, Duration as CfgDuration, HostedZoneConfig, RoutingPolicy,
};
use failoverd::dns::rate_limit::{RateLimitedDns, Route53Limits};
use failoverd::dns::steps::DnsTimings;
use failoverd::dns::verify::StageVerifier;
use failoverd::dns::{
    ChangeAction, ChangeInfo, DnsApi, FailoverRole, RecordChange, RecordSet, Routing,
};
use failoverd::engine::testing::{
    action_failure_can_unwind, actions_succeed_idempotently, spawn_runner, wait_finished,
};
use failoverd::engine::{
    EventKind, MemoryStore, Mode, PlanCatalog, RunRequest, RunStatus, RunView, Runner, SqliteStore,
    StepStatus, Store,
};
use failoverd::health::{HealthCheckStatus, HealthCheckStatusApi};
use failoverd::plans::dns::{register, DnsPlanDeps, NAME};
use failoverd::plans::PlanRegistry;
use failoverd::topology::RegionPair;
use serde_json::json;
use tokio::sync::Notify;

const RUN_LIMIT: Duration = Duration::from_secs(90);
const APP: &str = "app.example.com.";
const API: &str = "api.example.com.";
const WWW: &str = "www.example.com.";

// ---------------------------------------------------------------------------------------------
// The world: one zone, two weighted records and a failover record, hot = us-east-1
// ---------------------------------------------------------------------------------------------

struct Lab {
    zone: String,
    endpoint: String,
    raw: aws_sdk_route53::Client,
    health_check: String,
}

/// The set identifier of `name`'s set in `region`: distinct per record, because moto deletes
/// every set with a given identifier in the zone, whatever its name.
fn sid(name: &str, region: &str) -> String {
    format!("{}-{region}", name.split('.').next().unwrap_or_default())
}

fn rrset(
    name: &str,
    kind: sdk::RrType,
    region: &str,
    value: &str,
) -> sdk::builders::ResourceRecordSetBuilder {
    sdk::ResourceRecordSet::builder()
        .name(name)
        .r#type(kind)
        .set_identifier(sid(name, region))
        .ttl(60)
        .resource_records(sdk::ResourceRecord::builder().value(value).build().unwrap())
}

/// The records as they are before any switchover: all traffic to us-east-1.
fn original_records(health_check: &str) -> Vec<sdk::ResourceRecordSet> {
    vec![
        rrset(APP, sdk::RrType::A, EAST, "192.0.2.10")
            .weight(100)
            .health_check_id(health_check)
            .build()
            .unwrap(),
        rrset(APP, sdk::RrType::A, WEST, "198.51.100.10")
            .weight(0)
            .build()
            .unwrap(),
        rrset(API, sdk::RrType::Cname, EAST, "api.us-east-1.example.net")
            .weight(100)
            .build()
            .unwrap(),
        rrset(API, sdk::RrType::Cname, WEST, "api.us-west-2.example.net")
            .weight(0)
            .build()
            .unwrap(),
        rrset(WWW, sdk::RrType::A, EAST, "192.0.2.20")
            .failover(sdk::ResourceRecordSetFailover::Primary)
            .build()
            .unwrap(),
        rrset(WWW, sdk::RrType::A, WEST, "198.51.100.20")
            .failover(sdk::ResourceRecordSetFailover::Secondary)
            .build()
            .unwrap(),
    ]
}

impl Lab {
    /// Seeds moto (directly, not through the code under test) at `endpoint`.
    async fn seed(endpoint: &str) -> Lab {
        let raw = aws_sdk_route53::Client::new(&support::raw_config(endpoint, EAST).await);
        let zone = raw
            .create_hosted_zone()
            .name("example.com")
            .caller_reference("dns-switchover")
            .send()
            .await
            .expect("create hosted zone")
            .hosted_zone()
            .expect("hosted zone")
            .id()
            .trim_start_matches("/hostedzone/")
            .to_owned();
        let health_check = raw
            .create_health_check()
            .caller_reference("hc-east")
            .health_check_config(
                sdk::HealthCheckConfig::builder()
                    .r#type(sdk::HealthCheckType::Https)
                    .fully_qualified_domain_name("app.us-east-1.example.com")
                    .resource_path("/healthz")
                    .port(443)
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create health check")
            .health_check()
            .expect("health check")
            .id()
            .to_owned();
        let changes = original_records(&health_check)
            .into_iter()
            .map(|r| {
                sdk::Change::builder()
                    .action(sdk::ChangeAction::Create)
                    .resource_record_set(r)
                    .build()
                    .unwrap()
            })
            .collect();
        raw.change_resource_record_sets()
            .hosted_zone_id(&zone)
            .change_batch(
                sdk::ChangeBatch::builder()
                    .set_changes(Some(changes))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("seed records");
        Lab {
            zone,
            endpoint: endpoint.to_owned(),
            raw,
            health_check,
        }
    }

    fn config(&self) -> DnsConfig {
        config_for(&self.zone)
    }

    /// failoverd's own Route 53 adapter (the port), talking to `endpoint`.
    async fn port(&self) -> Arc<dyn DnsApi> {
        Arc::new(
            support::clients(&support::settings(&self.endpoint))
                .await
                .dns(),
        )
    }

    /// `(name, set identifier) -> routing` of the three records, read through the port.
    async fn routing(&self) -> BTreeMap<(String, String), Routing> {
        self.port()
            .await
            .list_record_sets(&self.zone)
            .await
            .expect("list records")
            .into_iter()
            .filter(|r| [APP, API, WWW].contains(&r.name.as_str()))
            .map(|r| ((r.name, r.set_identifier.unwrap_or_default()), r.routing))
            .collect()
    }

    async fn delete(&self, record: sdk::ResourceRecordSet) {
        self.raw
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .change_batch(
                sdk::ChangeBatch::builder()
                    .changes(
                        sdk::Change::builder()
                            .action(sdk::ChangeAction::Delete)
                            .resource_record_set(record)
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("delete record");
    }
}

/// The switchover's configuration for the lab's zone: the three records, stages 10/50/100, no hold.
fn config_for(zone: &str) -> DnsConfig {
    let record = |name: &str, kind: &str, routing| DnsRecordConfig {
        zone: "main".into(),
        name: name.into(),
        record_type: kind.into(),
        routing,
        set_identifiers: BTreeMap::from([
            (EAST.into(), sid(name, EAST)),
            (WEST.into(), sid(name, WEST)),
        ]),
    };
    DnsConfig {
        zones: vec![HostedZoneConfig {
            name: "main".into(),
            id: zone.to_owned(),
        }],
        records: vec![
            record(APP, "A", RoutingPolicy::Weighted),
            record(API, "CNAME", RoutingPolicy::Weighted),
            record(WWW, "A", RoutingPolicy::Failover),
        ],
        stages: vec![10, 50, 100],
        hold: CfgDuration::from_secs(0),
        wait_ttl_after_insync: false,
        verify_probes: vec!["app-us-west-2".into(), "app-us-east-1".into()],
        mode: Default::default(),
        data_plane: None,
    }
}

fn key(name: &str, region: &str) -> (String, String) {
    (name.to_owned(), sid(name, region))
}

/// The routing with `share` % of the weighted traffic to us-west-2 and www's primary in `primary`.
fn expected(share: u8, primary: &str) -> BTreeMap<(String, String), Routing> {
    let role = |region: &str| {
        Routing::Failover(if region == primary {
            FailoverRole::Primary
        } else {
            FailoverRole::Secondary
        })
    };
    BTreeMap::from([
        (
            key(APP, EAST),
            Routing::Weighted {
                weight: 100 - share,
            },
        ),
        (key(APP, WEST), Routing::Weighted { weight: share }),
        (
            key(API, EAST),
            Routing::Weighted {
                weight: 100 - share,
            },
        ),
        (key(API, WEST), Routing::Weighted { weight: share }),
        (key(WWW, EAST), role(EAST)),
        (key(WWW, WEST), role(WEST)),
    ])
}

fn all_east() -> BTreeMap<(String, String), Routing> {
    expected(0, EAST)
}

fn all_west() -> BTreeMap<(String, String), Routing> {
    expected(100, WEST)
}

// ---------------------------------------------------------------------------------------------
// Instruments: a recording DnsApi that can hang (to crash the runner), a scripted verifier
// ---------------------------------------------------------------------------------------------

/// Where [`Recorder`] stops answering, so the test can kill the runner with a step in doubt.
#[derive(Clone, Copy, Debug)]
enum Hang {
    /// Before forwarding the n-th change batch (1-based): the change never happens.
    BeforeChange(usize),
    /// After forwarding the n-th change batch: the change happened, the step never learns it.
    AfterChange(usize),
}

/// Every change batch that reached Route 53, as `[(name, set, routing)]`, across incarnations.
#[derive(Default)]
struct Ledger {
    batches: Mutex<Vec<Vec<(String, String, Routing)>>>,
}

impl Ledger {
    fn batches(&self) -> Vec<Vec<(String, String, Routing)>> {
        self.batches.lock().unwrap().clone()
    }

    /// The weight written for `name`'s us-west-2 set in each batch that wrote it.
    fn west_weights(&self, name: &str) -> Vec<u8> {
        self.batches()
            .iter()
            .flatten()
            .filter_map(|(n, s, r)| match r {
                Routing::Weighted { weight } if n == name && *s == sid(name, WEST) => Some(*weight),
                _ => None,
            })
            .collect()
    }
}

struct Recorder {
    inner: Arc<dyn DnsApi>,
    ledger: Arc<Ledger>,
    changes: AtomicUsize,
    hang: Option<Hang>,
    hung: Arc<Notify>,
}

impl Recorder {
    fn new(inner: Arc<dyn DnsApi>, ledger: Arc<Ledger>, hang: Option<Hang>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            ledger,
            changes: AtomicUsize::new(0),
            hang,
            hung: Arc::new(Notify::new()),
        })
    }

    async fn hang_forever(&self) -> ! {
        self.hung.notify_one();
        std::future::pending::<()>().await;
        unreachable!("pending never completes")
    }
}

#[async_trait]
impl DnsApi for Recorder {
    async fn list_record_sets(&self, hosted_zone_id: &str) -> AwsResult<Vec<RecordSet>> {
        self.inner.list_record_sets(hosted_zone_id).await
    }

    async fn change_record_sets(
        &self,
        hosted_zone_id: &str,
        comment: Option<&str>,
        changes: &[RecordChange],
    ) -> AwsResult<ChangeInfo> {
        let n = self.changes.fetch_add(1, Ordering::SeqCst) + 1;
        if matches!(self.hang, Some(Hang::BeforeChange(at)) if at == n) {
            self.hang_forever().await;
        }
        let info = self
            .inner
            .change_record_sets(hosted_zone_id, comment, changes)
            .await?;
        assert!(changes.iter().all(|c| c.action == ChangeAction::Upsert));
        self.ledger.batches.lock().unwrap().push(
            changes
                .iter()
                .map(|c| {
                    (
                        c.record_set.name.clone(),
                        c.record_set.set_identifier.clone().unwrap_or_default(),
                        c.record_set.routing.clone(),
                    )
                })
                .collect(),
        );
        if matches!(self.hang, Some(Hang::AfterChange(at)) if at == n) {
            self.hang_forever().await;
        }
        Ok(info)
    }

    async fn change_status(&self, change_id: &str) -> AwsResult<ChangeInfo> {
        self.inner.change_status(change_id).await
    }
}

#[async_trait]
impl HealthCheckStatusApi for Recorder {
    async fn health_check_status(&self, id: &str) -> AwsResult<HealthCheckStatus> {
        self.inner.health_check_status(id).await
    }
}

/// What the scripted verifier does on a given call (1-based).
#[derive(Clone)]
enum Verdict {
    Fail(&'static str),
    /// Signal `reached`, then wait for `release` and pass.
    Block {
        reached: Arc<Notify>,
        release: Arc<Notify>,
    },
    /// Signal `reached` and never answer (the runner is killed meanwhile).
    Hang(Arc<Notify>),
}

#[derive(Default)]
struct ScriptedVerifier {
    script: HashMap<usize, Verdict>,
    calls: Mutex<Vec<(String, Vec<String>)>>,
}

impl ScriptedVerifier {
    fn with(script: impl IntoIterator<Item = (usize, Verdict)>) -> Arc<Self> {
        Arc::new(Self {
            script: script.into_iter().collect(),
            calls: Mutex::default(),
        })
    }

    fn calls(&self) -> Vec<(String, Vec<String>)> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl StageVerifier for ScriptedVerifier {
    async fn verify(&self, target_region: &str, probe_names: &[String]) -> Result<(), String> {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push((target_region.to_owned(), probe_names.to_vec()));
            calls.len()
        };
        match self.script.get(&n).cloned() {
            None => Ok(()),
            Some(Verdict::Fail(why)) => Err(why.to_owned()),
            Some(Verdict::Block { reached, release }) => {
                reached.notify_one();
                release.notified().await;
                Ok(())
            }
            Some(Verdict::Hang(reached)) => {
                reached.notify_one();
                std::future::pending::<()>().await;
                Ok(())
            }
        }
    }
}

/// Test timings: poll quickly, no propagation allowance to sit out.
fn timings() -> DnsTimings {
    DnsTimings {
        poll_interval: Duration::from_millis(50),
        insync_timeout: Duration::from_secs(10),
        unknown_change_wait: Duration::from_millis(10),
        verify_timeout: Duration::from_secs(30),
    }
}

fn limits() -> Route53Limits {
    Route53Limits {
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        ..Route53Limits::default()
    }
}

fn catalog(
    config: DnsConfig,
    api: Arc<dyn DnsApi>,
    verifier: Arc<dyn StageVerifier>,
) -> Arc<dyn PlanCatalog> {
    let mut registry = PlanRegistry::new();
    register(
        &mut registry,
        DnsPlanDeps::new(Arc::new(config), RegionPair::new(EAST, WEST), api, verifier)
            .with_timings(timings())
            .with_limits(limits()),
    );
    Arc::new(registry)
}

fn request(target: &str, mode: Mode) -> RunRequest {
    RunRequest {
        plan: NAME.into(),
        mode,
        params: json!({ "target_region": target }),
        reason: "dns switchover test".into(),
        requested_by: "test".into(),
        ..RunRequest::default()
    }
}

async fn run_to_end(runner: &Runner, req: RunRequest) -> RunView {
    let handle = runner.handle();
    let view = handle.start(req).await.expect("start run");
    wait_finished(&handle, view.id, RUN_LIMIT)
        .await
        .expect("run finishes")
}

fn step<'a>(view: &'a RunView, id: &str) -> &'a failoverd::engine::StepView {
    view.phases
        .iter()
        .flat_map(|p| p.steps.iter())
        .find(|s| s.id.as_str() == id)
        .unwrap_or_else(|| panic!("no step {id} in {:?}", view.phases))
}

fn step_ids(view: &RunView) -> Vec<String> {
    view.phases
        .iter()
        .flat_map(|p| p.steps.iter())
        .map(|s| s.id.as_str().to_owned())
        .collect()
}

async fn wait_for(notify: &Notify, what: &str) {
    tokio::time::timeout(RUN_LIMIT, notify.notified())
        .await
        .unwrap_or_else(|_| panic!("{what} was not reached within {RUN_LIMIT:?}"));
}

// ---------------------------------------------------------------------------------------------
// The fixture: one test's world, built in a chain
// ---------------------------------------------------------------------------------------------

/// A fresh moto seeded with the lab's records ([`Lab`]), failoverd's port wrapped in a
/// [`Recorder`] that writes every batch to a [`Ledger`], a [`ScriptedVerifier`], and a runner on
/// a memory store serving the plan with [`config_for`]'s configuration. Tests destructure it.
struct DnsWorld {
    moto: MotoServer,
    lab: Lab,
    ledger: Arc<Ledger>,
    verifier: Arc<ScriptedVerifier>,
    runner: Runner,
}

#[derive(Default)]
struct DnsWorldBuilder {
    script: Vec<(usize, Verdict)>,
}

impl DnsWorld {
    /// The lab's zone with all traffic in us-east-1 (us-west-2 the other region).
    fn two_regions() -> DnsWorldBuilder {
        DnsWorldBuilder::default()
    }
}

impl DnsWorldBuilder {
    /// What the verifier does on the given calls (1-based); every other call passes.
    fn verdicts(mut self, script: impl IntoIterator<Item = (usize, Verdict)>) -> Self {
        self.script.extend(script);
        self
    }

    async fn build(self) -> DnsWorld {
        let moto = MotoServer::start().await;
        let lab = Lab::seed(&moto.endpoint_url()).await;
        let ledger = Arc::new(Ledger::default());
        let verifier = ScriptedVerifier::with(self.script);
        let api = Recorder::new(lab.port().await, ledger.clone(), None);
        let runner = spawn_runner(
            Arc::new(MemoryStore::new()),
            catalog(lab.config(), api, verifier.clone()),
            1,
        )
        .unwrap();
        DnsWorld {
            moto,
            lab,
            ledger,
            verifier,
            runner,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn staged_switchover_and_the_reverse_move_every_record() {
    let DnsWorld {
        moto: _moto,
        lab,
        ledger,
        verifier,
        runner,
    } = DnsWorld::two_regions().build().await;
    assert_eq!(lab.routing().await, all_east());

    let view = run_to_end(&runner, request(WEST, Mode::Graceful)).await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    assert_eq!(
        step_ids(&view),
        [
            "dns-preflight",
            "dns-apply-10",
            "dns-sync-10",
            "dns-hold-10",
            "dns-apply-50",
            "dns-sync-50",
            "dns-hold-50",
            "dns-apply-100",
            "dns-sync-100",
            "dns-hold-100",
        ]
    );
    assert_eq!(lab.routing().await, all_west());
    // One batch per stage, with exactly the stage's weights; the failover record flips at 100.
    let batches = ledger.batches();
    assert_eq!(batches.len(), 3, "{batches:#?}");
    assert_eq!(ledger.west_weights(APP), [10, 50, 100]);
    assert_eq!(ledger.west_weights(API), [10, 50, 100]);
    assert_eq!(batches[0].len(), 4);
    assert_eq!(batches[2].len(), 6);
    // Verified once per stage (hold 0), against the target region.
    let calls = verifier.calls();
    assert_eq!(calls.len(), 3);
    assert!(calls
        .iter()
        .all(|(region, probes)| region == WEST && probes.len() == 2));
    // The preflight recorded the original routing in the journal.
    let recorded = step(&view, "dns-preflight").output.clone().expect("output");
    assert_eq!(recorded["target_region"], WEST);
    assert_eq!(recorded["original"].as_array().map(Vec::len), Some(6));
    // The health check of the east set is still attached.
    let records = lab.port().await.list_record_sets(&lab.zone).await.unwrap();
    let east = records
        .iter()
        .find(|r| r.name == APP && r.set_identifier.as_deref() == Some(sid(APP, EAST).as_str()))
        .unwrap();
    assert_eq!(
        east.health_check_id.as_deref(),
        Some(lab.health_check.as_str())
    );

    // And back.
    let view = run_to_end(&runner, request(EAST, Mode::Graceful)).await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    assert_eq!(lab.routing().await, all_east());
    assert_eq!(ledger.batches().len(), 6);
    assert_eq!(ledger.west_weights(APP), [10, 50, 100, 90, 50, 0]);
    assert!(verifier.calls()[3..]
        .iter()
        .all(|(region, _)| region == EAST));
    runner.shutdown().await;
}

#[tokio::test]
async fn ungraceful_goes_straight_to_100_without_hold() {
    let DnsWorld {
        moto: _moto,
        lab,
        ledger,
        verifier,
        runner,
    } = DnsWorld::two_regions().build().await;
    let view = run_to_end(&runner, request(WEST, Mode::Ungraceful)).await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    assert_eq!(
        step_ids(&view),
        ["dns-preflight", "dns-apply-100", "dns-sync-100"]
    );
    assert_eq!(lab.routing().await, all_west());
    assert_eq!(ledger.batches().len(), 1);
    assert!(verifier.calls().is_empty());
    runner.shutdown().await;
}

#[tokio::test]
async fn dry_run_shows_each_stage_weights_and_changes_nothing() {
    let DnsWorld {
        moto: _moto,
        lab,
        ledger,
        verifier: _,
        runner,
    } = DnsWorld::two_regions().build().await;
    let view = runner
        .handle()
        .start(RunRequest {
            dry_run: true,
            ..request(WEST, Mode::Graceful)
        })
        .await
        .expect("dry run");
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    let changes = |id: &str| {
        step(&view, id)
            .description
            .clone()
            .unwrap_or_else(|| panic!("{id} has no description"))
            .changes
    };
    let zone = &lab.zone;
    let (app_east, app_west) = (sid(APP, EAST), sid(APP, WEST));
    let (api_east, api_west) = (sid(API, EAST), sid(API, WEST));
    let www_west = sid(WWW, WEST);
    assert_eq!(
        changes("dns-apply-10"),
        [
            format!("route53 {zone}: {APP} A [{app_east}] weight 100 -> weight 90"),
            format!("route53 {zone}: {APP} A [{app_west}] weight 0 -> weight 10"),
            format!("route53 {zone}: {API} CNAME [{api_east}] weight 100 -> weight 90"),
            format!("route53 {zone}: {API} CNAME [{api_west}] weight 0 -> weight 10"),
        ]
    );
    assert_eq!(
        changes("dns-apply-50"),
        [
            format!("route53 {zone}: {APP} A [{app_east}] weight 90 -> weight 50"),
            format!("route53 {zone}: {APP} A [{app_west}] weight 10 -> weight 50"),
            format!("route53 {zone}: {API} CNAME [{api_east}] weight 90 -> weight 50"),
            format!("route53 {zone}: {API} CNAME [{api_west}] weight 10 -> weight 50"),
        ]
    );
    let last = changes("dns-apply-100");
    assert_eq!(last.len(), 6, "{last:#?}");
    assert!(last.contains(&format!(
        "route53 {zone}: {WWW} A [{www_west}] SECONDARY -> PRIMARY"
    )));
    assert!(changes("dns-preflight")
        .contains(&format!("now: {APP} A [{app_east}] ({EAST}): weight 100")));
    assert!(ledger.batches().is_empty(), "a dry run writes nothing");
    assert_eq!(lab.routing().await, all_east());
    runner.shutdown().await;
}

#[tokio::test]
async fn abort_in_the_middle_restores_the_original_weights() {
    let reached = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let DnsWorld {
        moto: _moto,
        lab,
        ledger,
        verifier: _,
        runner,
    } = DnsWorld::two_regions()
        .verdicts([(
            2,
            Verdict::Block {
                reached: reached.clone(),
                release: release.clone(),
            },
        )])
        .build()
        .await;
    let handle = runner.handle();
    let id = handle
        .start(request(WEST, Mode::Graceful))
        .await
        .unwrap()
        .id;
    wait_for(&reached, "the hold of the 50 % stage").await;
    assert_eq!(lab.routing().await, expected(50, EAST));
    handle.abort(id, "test").await.expect("abort");
    release.notify_one();
    let view = wait_finished(&handle, id, RUN_LIMIT).await.unwrap();
    assert_eq!(view.status, RunStatus::Aborted, "{:?}", view.message);
    assert_eq!(lab.routing().await, all_east());
    // Stage 10, stage 50, then one restoring batch (the second compensation finds nothing to do).
    assert_eq!(ledger.west_weights(APP), [10, 50, 0]);
    assert_eq!(step(&view, "dns-apply-100").status, StepStatus::Pending);
    runner.shutdown().await;
}

#[tokio::test]
async fn a_verification_failure_at_the_second_stage_rolls_back() {
    let DnsWorld {
        moto: _moto,
        lab,
        ledger,
        verifier,
        runner,
    } = DnsWorld::two_regions()
        .verdicts([(2, Verdict::Fail("app-us-west-2: 503"))])
        .build()
        .await;
    let view = run_to_end(&runner, request(WEST, Mode::Graceful)).await;
    assert_eq!(view.status, RunStatus::Failed, "{:?}", view.message);
    let hold = step(&view, "dns-hold-50");
    assert_eq!(hold.status, StepStatus::Failed);
    let error = hold.error.clone().unwrap_or_default();
    assert!(
        error.contains("verification of us-west-2 at 50 % failed: app-us-west-2: 503"),
        "{error}"
    );
    assert_eq!(lab.routing().await, all_east());
    assert_eq!(ledger.west_weights(APP), [10, 50, 0]);
    let compensated: Vec<_> = view
        .timeline
        .iter()
        .filter_map(|e| match &e.event.kind {
            EventKind::CompensationFinished { step } => Some(step.as_str().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(compensated, ["dns-apply-50", "dns-apply-10"]);
    assert_eq!(verifier.calls().len(), 2);
    runner.shutdown().await;
}

/// Run to the hang, kill the runner (as `kill -9` would), resume on the same store.
async fn crash_and_resume(
    lab: &Lab,
    store: Arc<dyn Store>,
    hang: Option<Hang>,
    verifier: Arc<ScriptedVerifier>,
    reached: Option<Arc<Notify>>,
    ledger: Arc<Ledger>,
) -> RunView {
    let first = Recorder::new(lab.port().await, ledger.clone(), hang);
    let hung = first.hung.clone();
    let runner = spawn_runner(
        store.clone(),
        catalog(lab.config(), first, verifier.clone()),
        1,
    )
    .unwrap();
    let id = runner
        .handle()
        .start(request(WEST, Mode::Graceful))
        .await
        .unwrap()
        .id;
    match reached {
        Some(reached) => wait_for(&reached, "the verifier's hang").await,
        None => wait_for(&hung, "the change batch hang").await,
    }
    runner.kill().await;

    let second = Recorder::new(lab.port().await, ledger, None);
    let runner = spawn_runner(store, catalog(lab.config(), second, verifier), 2).unwrap();
    let view = wait_finished(&runner.handle(), id, RUN_LIMIT)
        .await
        .expect("resumed run finishes");
    runner.shutdown().await;
    view
}

#[tokio::test]
async fn a_crash_after_a_stage_was_written_resumes_without_rewriting_it() {
    let moto = MotoServer::start().await;
    let lab = Lab::seed(&moto.endpoint_url()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open_async(dir.path().join("state.db"))
            .await
            .unwrap(),
    );
    let ledger = Arc::new(Ledger::default());
    let view = crash_and_resume(
        &lab,
        store,
        Some(Hang::AfterChange(2)),
        ScriptedVerifier::with([]),
        None,
        ledger.clone(),
    )
    .await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    assert_eq!(lab.routing().await, all_west());
    // Each stage written exactly once: the in-doubt 50 % stage was recognised by `verify`.
    assert_eq!(ledger.west_weights(APP), [10, 50, 100]);
    let apply = step(&view, "dns-apply-50");
    assert!(apply.verified, "{apply:?}");
    assert_eq!(apply.output.as_ref().unwrap()["unconfirmed"], true);
}

#[tokio::test]
async fn a_crash_before_a_stage_was_written_writes_it_once() {
    let moto = MotoServer::start().await;
    let lab = Lab::seed(&moto.endpoint_url()).await;
    let ledger = Arc::new(Ledger::default());
    let view = crash_and_resume(
        &lab,
        Arc::new(MemoryStore::new()),
        Some(Hang::BeforeChange(2)),
        ScriptedVerifier::with([]),
        None,
        ledger.clone(),
    )
    .await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    assert_eq!(lab.routing().await, all_west());
    assert_eq!(ledger.west_weights(APP), [10, 50, 100]);
    let interrupted: Vec<_> = view
        .timeline
        .iter()
        .filter_map(|e| match &e.event.kind {
            EventKind::StepInterrupted { step, .. } => Some(step.as_str().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(interrupted, ["dns-apply-50"]);
}

#[tokio::test]
async fn a_crash_between_stages_resumes_at_the_next_stage() {
    let moto = MotoServer::start().await;
    let lab = Lab::seed(&moto.endpoint_url()).await;
    let ledger = Arc::new(Ledger::default());
    let reached = Arc::new(Notify::new());
    // The first stage's hold never answers: the runner dies with stage 10 applied and held.
    let verifier = ScriptedVerifier::with([(1, Verdict::Hang(reached.clone()))]);
    let view = crash_and_resume(
        &lab,
        Arc::new(MemoryStore::new()),
        None,
        verifier.clone(),
        Some(reached),
        ledger.clone(),
    )
    .await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    assert_eq!(lab.routing().await, all_west());
    // Stage 10 is not written again, 50 and 100 are not skipped.
    assert_eq!(ledger.west_weights(APP), [10, 50, 100]);
    // The interrupted hold is held and verified again, then each later stage once.
    assert_eq!(verifier.calls().len(), 4);
    assert!(!step(&view, "dns-apply-10").verified);
}

#[tokio::test]
async fn throttling_delays_the_run_but_does_not_fail_it() {
    let bed = support::TestBed::start().await;
    let lab = Lab::seed(&bed.moto.endpoint_url()).await;
    let through_proxy = Lab {
        endpoint: bed.endpoint_url(),
        zone: lab.zone.clone(),
        raw: lab.raw.clone(),
        health_check: lab.health_check.clone(),
    };
    let ledger = Arc::new(Ledger::default());
    let api = Recorder::new(through_proxy.port().await, ledger.clone(), None);
    let runner = spawn_runner(
        Arc::new(MemoryStore::new()),
        catalog(lab.config(), api, ScriptedVerifier::with([])),
        1,
    )
    .unwrap();
    // More throttles in a row than the SDK retries (3 attempts a call): failoverd's own backoff
    // has to carry the run through.
    bed.proxy.fail_next(8, Fault::Throttle);
    let view = run_to_end(&runner, request(WEST, Mode::Graceful)).await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    assert_eq!(bed.proxy.stats().throttled, 8);
    assert_eq!(lab.routing().await, all_west());
    assert_eq!(ledger.west_weights(APP), [10, 50, 100]);
    runner.shutdown().await;
}

#[tokio::test]
async fn prior_request_not_complete_is_backed_off_and_retried() {
    let bed = support::TestBed::start().await;
    let lab = Lab::seed(&bed.moto.endpoint_url()).await;
    let port: Arc<dyn DnsApi> = Arc::new(
        support::clients(&support::settings(&bed.endpoint_url()))
            .await
            .dns(),
    );
    let limited = RateLimitedDns::new(port, limits());
    let mut record = lab.port().await.list_record_sets(&lab.zone).await.unwrap();
    record
        .retain(|r| r.name == APP && r.set_identifier.as_deref() == Some(sid(APP, WEST).as_str()));
    let mut west = record.pop().expect("west set");
    west.routing = Routing::Weighted { weight: 7 };
    bed.proxy.fail_next(
        5,
        Fault::Error {
            status: 400,
            code: "PriorRequestNotComplete".into(),
        },
    );
    limited
        .change_record_sets(
            &lab.zone,
            None,
            &[RecordChange {
                action: ChangeAction::Upsert,
                record_set: west,
            }],
        )
        .await
        .expect("the change goes through after the backoff");
    assert!(limited.throttled_total() >= 1);
    assert_eq!(
        lab.routing().await[&key(APP, WEST)],
        Routing::Weighted { weight: 7 }
    );
}

#[tokio::test]
async fn a_record_deleted_behind_failoverds_back_is_refused_before_any_change() {
    let DnsWorld {
        moto: _moto,
        lab,
        ledger,
        verifier: _,
        runner,
    } = DnsWorld::two_regions().build().await;
    lab.delete(original_records(&lab.health_check).swap_remove(1))
        .await;
    let view = run_to_end(&runner, request(WEST, Mode::Graceful)).await;
    assert_eq!(view.status, RunStatus::Failed);
    let error = step(&view, "dns-preflight")
        .error
        .clone()
        .unwrap_or_default();
    assert!(
        error.contains("app.example.com. A")
            && error.contains("us-west-2")
            && error.contains("deleted behind failoverd's back"),
        "{error}"
    );
    assert!(ledger.batches().is_empty());
    assert_eq!(step(&view, "dns-apply-10").status, StepStatus::Pending);
    runner.shutdown().await;
}

#[tokio::test]
async fn a_record_deleted_mid_run_stops_the_next_stage_and_asks_an_operator() {
    let reached = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let DnsWorld {
        moto: _moto,
        lab,
        ledger,
        verifier: _,
        runner,
    } = DnsWorld::two_regions()
        .verdicts([(
            1,
            Verdict::Block {
                reached: reached.clone(),
                release: release.clone(),
            },
        )])
        .build()
        .await;
    let handle = runner.handle();
    let id = handle
        .start(request(WEST, Mode::Graceful))
        .await
        .unwrap()
        .id;
    wait_for(&reached, "the hold of the 10 % stage").await;
    // Someone deletes the API record's us-west-2 set (as it is now, at weight 10).
    let doomed = rrset(API, sdk::RrType::Cname, WEST, "api.us-west-2.example.net")
        .weight(10)
        .build()
        .unwrap();
    lab.delete(doomed).await;
    release.notify_one();
    let view = wait_finished(&handle, id, RUN_LIMIT).await.unwrap();
    let error = step(&view, "dns-apply-50")
        .error
        .clone()
        .unwrap_or_default();
    assert!(
        error.contains("api.example.com. CNAME") && error.contains("us-west-2"),
        "{error}"
    );
    // Nothing beyond stage 10 was written. Every set that still exists is restored; the deleted
    // one cannot be, so the run stops for an operator instead of pretending.
    assert_eq!(
        ledger.west_weights(APP),
        [10, 0],
        "{:?} {:#?}",
        view.message,
        view.timeline
            .iter()
            .map(|e| &e.event.kind)
            .collect::<Vec<_>>()
    );
    let mut routing = all_east();
    routing.remove(&key(API, WEST));
    assert_eq!(lab.routing().await, routing);
    assert_eq!(view.status, RunStatus::NeedsOperator, "{:?}", view.message);
    let message = view.message.clone().unwrap_or_default();
    assert!(
        message.contains("api.example.com. CNAME [api-us-west-2]")
            && message.contains("dns-preflight"),
        "{message}"
    );
    runner.shutdown().await;
}

#[tokio::test]
async fn every_step_is_idempotent_and_every_failure_unwinds_to_the_original() {
    let moto = MotoServer::start().await;
    let lab = Lab::seed(&moto.endpoint_url()).await;
    let params = json!({ "target_region": WEST });
    let plans = catalog(lab.config(), lab.port().await, ScriptedVerifier::with([]));
    let views = action_failure_can_unwind(plans.clone(), NAME, &params, RUN_LIMIT)
        .await
        .expect("every failure unwinds cleanly");
    assert_eq!(views.len(), 10);
    assert_eq!(lab.routing().await, all_east());
    actions_succeed_idempotently(plans, NAME, &params, RUN_LIMIT)
        .await
        .expect("every step can run twice");
    assert_eq!(lab.routing().await, all_west());
}

#[tokio::test]
async fn bad_parameters_are_refused_naming_the_field() {
    let unreachable: Arc<dyn DnsApi> = Arc::new(
        support::clients(&support::settings("http://127.0.0.1:9"))
            .await
            .dns(),
    );
    let plans = catalog(config_for("Z1"), unreachable, ScriptedVerifier::with([]));
    for (params, field) in [
        (json!({}), "params.target_region"),
        (
            json!({ "target_region": "eu-west-1" }),
            "params.target_region",
        ),
        (json!({ "target_region": 3 }), "params.target_region"),
        (json!({ "target_region": WEST, "extra": 1 }), "params.extra"),
    ] {
        let err = plans
            .build(NAME, Mode::Graceful, &params)
            .expect_err("refused");
        assert!(err.to_string().contains(field), "{params}: {err}");
    }
    let plan = plans
        .build(NAME, Mode::Graceful, &json!({ "target_region": WEST }))
        .expect("valid");
    assert_eq!(plan.layout().steps().count(), 10);
}
