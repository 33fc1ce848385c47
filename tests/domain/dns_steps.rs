//! Timing behaviour of the DNS steps on paused time, against an in-memory Route 53 whose changes
//! stay `PENDING` as long as a test wants: `GetChange` polling, the TTL wait, holds with
//! verification before and after, a change that never gets `INSYNC`, and the rate limit.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::fakes::FakeHealthChecks;
use async_trait::async_trait;
use failoverd::aws::{Error as AwsError, ErrorKind, Result as AwsResult, Service};
use failoverd::config::{
    DnsConfig, DnsRecordConfig, Duration as CfgDuration, HostedZoneConfig, RoutingPolicy,
};
use failoverd::dns::rate_limit::{RateLimitedDns, Route53Limits};
use failoverd::dns::steps::DnsTimings;
use failoverd::dns::verify::StageVerifier;
use failoverd::dns::{
    ChangeAction, ChangeInfo, ChangeStatus, DnsApi, RecordChange, RecordSet, RecordTarget,
    RecordType, Routing,
};
use failoverd::engine::testing::{spawn_runner, wait_finished};
use failoverd::engine::{MemoryStore, Mode, RunRequest, RunStatus, RunView, StepStatus};
use failoverd::health::{HealthCheckStatus, HealthCheckStatusApi};
use failoverd::plans::dns::{register, DnsPlanDeps, NAME};
use failoverd::plans::PlanRegistry;
use failoverd::topology::RegionPair;
use serde_json::json;
use tokio::time::Instant;

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const ZONE: &str = "ZFAKE";
const APP: &str = "app.example.com.";
const LIMIT: Duration = Duration::from_secs(24 * 3600);

/// Route 53 in memory. Change `n` (1-based) stays `PENDING` for `pending_polls` polls, or for
/// ever when listed in `never_insync`.
struct FakeRoute53 {
    records: Mutex<Vec<RecordSet>>,
    changes: Mutex<Vec<u32>>,
    pending_polls: u32,
    never_insync: HashSet<usize>,
    throttle_everything: bool,
    /// The checkers reported for every health check.
    checkers: FakeHealthChecks,
    /// When each call arrived (paused time).
    calls: Mutex<Vec<Instant>>,
}

impl FakeRoute53 {
    fn new(ttl: Duration) -> Self {
        let set = |region: &str, weight| RecordSet {
            name: APP.into(),
            record_type: RecordType::A,
            set_identifier: Some(region.into()),
            routing: Routing::Weighted { weight },
            target: RecordTarget::Values {
                ttl,
                values: vec!["192.0.2.1".into()],
            },
            health_check_id: None,
        };
        Self {
            records: Mutex::new(vec![set(EAST, 100), set(WEST, 0)]),
            changes: Mutex::default(),
            pending_polls: 0,
            never_insync: HashSet::new(),
            throttle_everything: false,
            checkers: FakeHealthChecks::counts(3, 3),
            calls: Mutex::default(),
        }
    }

    /// Attach a health check to the us-west-2 set.
    fn with_west_health_check(self) -> Self {
        self.records.lock().unwrap()[1].health_check_id = Some("hc-west".into());
        self
    }

    fn west_weight(&self) -> Routing {
        self.records.lock().unwrap()[1].routing.clone()
    }

    fn call(&self, op: &str) -> AwsResult<()> {
        self.calls.lock().unwrap().push(Instant::now());
        if self.throttle_everything {
            let mut e = AwsError::new(ErrorKind::Throttled, Service::Route53, op, "Rate exceeded");
            e.code = Some("Throttling".into());
            return Err(e);
        }
        Ok(())
    }
}

#[async_trait]
impl DnsApi for FakeRoute53 {
    async fn list_record_sets(&self, _zone: &str) -> AwsResult<Vec<RecordSet>> {
        self.call("ListResourceRecordSets")?;
        Ok(self.records.lock().unwrap().clone())
    }

    async fn change_record_sets(
        &self,
        _zone: &str,
        _comment: Option<&str>,
        changes: &[RecordChange],
    ) -> AwsResult<ChangeInfo> {
        self.call("ChangeResourceRecordSets")?;
        let mut records = self.records.lock().unwrap();
        for c in changes {
            assert_eq!(c.action, ChangeAction::Upsert);
            let slot = records
                .iter_mut()
                .find(|r| r.set_identifier == c.record_set.set_identifier)
                .expect("upsert of a known set");
            *slot = c.record_set.clone();
        }
        let mut all = self.changes.lock().unwrap();
        all.push(0);
        Ok(ChangeInfo {
            id: format!("C{}", all.len()),
            status: ChangeStatus::Pending,
            submitted_at: None,
        })
    }

    async fn change_status(&self, change_id: &str) -> AwsResult<ChangeInfo> {
        self.call("GetChange")?;
        let n: usize = change_id.trim_start_matches('C').parse().unwrap();
        let mut all = self.changes.lock().unwrap();
        all[n - 1] += 1;
        let insync = !self.never_insync.contains(&n) && all[n - 1] > self.pending_polls;
        Ok(ChangeInfo {
            id: change_id.into(),
            status: if insync {
                ChangeStatus::InSync
            } else {
                ChangeStatus::Pending
            },
            submitted_at: None,
        })
    }
}

#[async_trait]
impl HealthCheckStatusApi for FakeRoute53 {
    async fn health_check_status(&self, id: &str) -> AwsResult<HealthCheckStatus> {
        self.checkers.health_check_status(id).await
    }
}

#[derive(Default)]
struct ClockedVerifier {
    at: Mutex<Vec<Instant>>,
}

#[async_trait]
impl StageVerifier for ClockedVerifier {
    async fn verify(&self, _target: &str, _probes: &[String]) -> Result<(), String> {
        self.at.lock().unwrap().push(Instant::now());
        Ok(())
    }
}

fn config(hold: Duration, wait_ttl: bool) -> DnsConfig {
    DnsConfig {
        zones: vec![HostedZoneConfig {
            name: "main".into(),
            id: ZONE.into(),
        }],
        records: vec![DnsRecordConfig {
            zone: "main".into(),
            name: APP.into(),
            record_type: "A".into(),
            routing: RoutingPolicy::Weighted,
            set_identifiers: BTreeMap::from([
                (EAST.into(), EAST.into()),
                (WEST.into(), WEST.into()),
            ]),
        }],
        stages: vec![10, 50, 100],
        hold: CfgDuration(hold),
        wait_ttl_after_insync: wait_ttl,
        verify_probes: vec!["app-west".into()],
        mode: Default::default(),
        data_plane: None,
    }
}

fn timings() -> DnsTimings {
    DnsTimings {
        poll_interval: Duration::from_secs(5),
        insync_timeout: Duration::from_secs(60),
        unknown_change_wait: Duration::from_secs(60),
        verify_timeout: Duration::from_secs(30),
    }
}

async fn run(
    fake: Arc<FakeRoute53>,
    verifier: Arc<ClockedVerifier>,
    config: DnsConfig,
    mode: Mode,
) -> RunView {
    let mut registry = PlanRegistry::new();
    register(
        &mut registry,
        DnsPlanDeps::new(
            Arc::new(config),
            RegionPair::new(EAST, WEST),
            fake,
            verifier,
        )
        .with_timings(timings())
        .with_limits(Route53Limits::default()),
    );
    let runner = spawn_runner(Arc::new(MemoryStore::new()), Arc::new(registry), 1).unwrap();
    let handle = runner.handle();
    let id = handle
        .start(RunRequest {
            plan: NAME.into(),
            mode,
            params: json!({ "target_region": WEST }),
            reason: "paused-time test".into(),
            requested_by: "test".into(),
            ..RunRequest::default()
        })
        .await
        .unwrap()
        .id;
    let view = wait_finished(&handle, id, LIMIT).await.unwrap();
    runner.shutdown().await;
    view
}

fn output(view: &RunView, id: &str) -> serde_json::Value {
    view.phases
        .iter()
        .flat_map(|p| p.steps.iter())
        .find(|s| s.id.as_str() == id)
        .and_then(|s| s.output.clone())
        .unwrap_or_else(|| panic!("no output for {id}"))
}

#[tokio::test(start_paused = true)]
async fn the_sync_step_polls_until_insync_then_waits_one_ttl() {
    let fake = Arc::new(FakeRoute53 {
        pending_polls: 3,
        ..FakeRoute53::new(Duration::from_secs(30))
    });
    let view = run(
        fake.clone(),
        Arc::default(),
        config(Duration::ZERO, true),
        Mode::Ungraceful,
    )
    .await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    let sync = output(&view, "dns-sync-100");
    // Three PENDING answers 5 s apart, then INSYNC, then the 30 s TTL.
    assert_eq!(sync["insync_seconds"], 15.0);
    assert_eq!(sync["ttl_waited_seconds"], 30);
    assert_eq!(fake.changes.lock().unwrap().as_slice(), [4]);
    assert_eq!(fake.west_weight(), Routing::Weighted { weight: 100 });
}

#[tokio::test(start_paused = true)]
async fn without_wait_ttl_the_stage_moves_on_at_insync() {
    let fake = Arc::new(FakeRoute53::new(Duration::from_secs(300)));
    let view = run(
        fake,
        Arc::default(),
        config(Duration::ZERO, false),
        Mode::Ungraceful,
    )
    .await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    assert_eq!(output(&view, "dns-sync-100")["ttl_waited_seconds"], 0);
}

#[tokio::test(start_paused = true)]
async fn each_stage_is_verified_before_and_after_its_hold() {
    let fake = Arc::new(FakeRoute53::new(Duration::from_secs(60)));
    let verifier = Arc::new(ClockedVerifier::default());
    let hold = Duration::from_secs(300);
    let view = run(fake, verifier.clone(), config(hold, false), Mode::Graceful).await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    let at = verifier.at.lock().unwrap().clone();
    assert_eq!(at.len(), 6, "two verifications per stage");
    for pair in at.chunks(2) {
        assert_eq!(pair[1] - pair[0], hold, "the hold separates them");
    }
    assert_eq!(output(&view, "dns-hold-50")["held_seconds"], 300.0);
}

#[tokio::test(start_paused = true)]
async fn a_change_that_never_gets_insync_fails_the_stage_and_restores() {
    let fake = Arc::new(FakeRoute53 {
        never_insync: HashSet::from([1]),
        ..FakeRoute53::new(Duration::from_secs(60))
    });
    let view = run(
        fake.clone(),
        Arc::default(),
        config(Duration::ZERO, false),
        Mode::Ungraceful,
    )
    .await;
    assert_eq!(view.status, RunStatus::Failed, "{:?}", view.message);
    let sync = view
        .phases
        .iter()
        .flat_map(|p| p.steps.iter())
        .find(|s| s.id.as_str() == "dns-sync-100")
        .unwrap();
    assert_eq!(sync.status, StepStatus::Failed);
    // Waited out like a Route 53 outage: retried until the 30-minute deadline, then given up.
    assert!(sync.attempts > 3, "{} attempts", sync.attempts);
    let error = sync.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("route53 change C1 (zone ZFAKE) is still PENDING after 60s")
            && error.contains("(giving up: retry deadline of 30m spent after"),
        "{error}"
    );
    // The restoring change (C2) was submitted and awaited.
    assert_eq!(fake.changes.lock().unwrap().len(), 2);
    assert_eq!(fake.west_weight(), Routing::Weighted { weight: 0 });
}

#[tokio::test(start_paused = true)]
async fn calls_are_spaced_to_five_per_second() {
    let fake = Arc::new(FakeRoute53::new(Duration::from_secs(60)));
    let limited = Arc::new(RateLimitedDns::new(fake.clone(), Route53Limits::default()));
    let start = Instant::now();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let limited = limited.clone();
            tokio::spawn(async move { limited.list_record_sets(ZONE).await })
        })
        .collect();
    for c in calls {
        c.await.unwrap().unwrap();
    }
    let mut at: Vec<Duration> = fake
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|t| *t - start)
        .collect();
    at.sort();
    for (k, t) in at.iter().enumerate() {
        // The burst of 5 is immediate; call k waits for (k - 4) refills of 200 ms.
        // (A millisecond of slack for the float arithmetic of the bucket.)
        let earliest = Duration::from_millis(200 * (k.saturating_sub(4) as u64));
        assert!(
            *t + Duration::from_millis(1) >= earliest,
            "call {k} at {t:?}, before {earliest:?}"
        );
    }
    let last = at[19].as_millis();
    assert!((2999..=3001).contains(&last), "{last} ms");
}

#[tokio::test(start_paused = true)]
async fn persistent_throttling_is_retried_within_its_budget_then_surfaces() {
    let fake = Arc::new(FakeRoute53 {
        throttle_everything: true,
        ..FakeRoute53::new(Duration::from_secs(60))
    });
    let limits = Route53Limits::default();
    let limited = RateLimitedDns::new(fake.clone(), limits);
    let start = Instant::now();
    let err = limited.list_record_sets(ZONE).await.expect_err("throttled");
    assert_eq!(err.kind, ErrorKind::Throttled);
    assert_eq!(
        fake.calls.lock().unwrap().len(),
        7,
        "one call and six retries"
    );
    assert_eq!(limited.throttled_total(), 7);
    // 1 + 2 + 4 + 8 + 16 + 16 s of backoff.
    assert_eq!(start.elapsed(), Duration::from_secs(47));
}

#[tokio::test(start_paused = true)]
async fn a_graceful_switchover_refuses_a_target_its_health_check_calls_unhealthy() {
    let fake = Arc::new(
        FakeRoute53 {
            checkers: FakeHealthChecks::counts(1, 3),
            ..FakeRoute53::new(Duration::from_secs(60))
        }
        .with_west_health_check(),
    );
    let view = run(
        fake.clone(),
        Arc::default(),
        config(Duration::ZERO, false),
        Mode::Graceful,
    )
    .await;
    assert_eq!(view.status, RunStatus::Failed, "{:?}", view.message);
    let preflight = &view.phases[0].steps[0];
    let error = preflight.error.clone().unwrap_or_default();
    assert!(
        error.contains(
            "app.example.com. A [us-west-2]: health check hc-west: 1 of 3 checkers healthy"
        ),
        "{error}"
    );
    assert!(fake.changes.lock().unwrap().is_empty(), "nothing written");

    // Healthy enough (2 of 3): the same switchover goes ahead.
    let fake = Arc::new(
        FakeRoute53 {
            checkers: FakeHealthChecks::counts(2, 3),
            ..FakeRoute53::new(Duration::from_secs(60))
        }
        .with_west_health_check(),
    );
    let view = run(
        fake,
        Arc::default(),
        config(Duration::ZERO, false),
        Mode::Graceful,
    )
    .await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
}

#[tokio::test(start_paused = true)]
async fn an_ungraceful_switchover_goes_ahead_whatever_the_health_checks_say() {
    let fake = Arc::new(
        FakeRoute53 {
            checkers: FakeHealthChecks::counts(0, 3),
            ..FakeRoute53::new(Duration::from_secs(60))
        }
        .with_west_health_check(),
    );
    let view = run(
        fake.clone(),
        Arc::default(),
        config(Duration::ZERO, false),
        Mode::Ungraceful,
    )
    .await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    assert_eq!(fake.west_weight(), Routing::Weighted { weight: 100 });
}

#[tokio::test(start_paused = true)]
async fn a_stage_that_changes_nothing_does_not_wait_a_ttl() {
    // Already all in us-west-2: every stage is in place, nothing is written or waited for.
    let fake = Arc::new(FakeRoute53::new(Duration::from_secs(600)));
    {
        let mut records = fake.records.lock().unwrap();
        records[0].routing = Routing::Weighted { weight: 0 };
        records[1].routing = Routing::Weighted { weight: 100 };
    }
    let start = Instant::now();
    let view = run(
        fake.clone(),
        Arc::default(),
        config(Duration::ZERO, true),
        Mode::Graceful,
    )
    .await;
    assert_eq!(view.status, RunStatus::Succeeded, "{:?}", view.message);
    assert!(fake.changes.lock().unwrap().is_empty());
    for p in [10, 50, 100] {
        assert_eq!(
            output(&view, &format!("dns-sync-{p}"))["ttl_waited_seconds"],
            0
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(600),
        "{:?}",
        start.elapsed()
    );
}
