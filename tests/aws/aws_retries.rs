//! Retry behaviour and error classification of the AWS clients, through the fault-injecting proxy:
//! throttling and 5xx are retried within the budget (for every protocol the adapters speak), a
//! non-retryable error surfaces after one attempt, an exhausted budget surfaces as the retryable
//! kind it was, a dropped connection is retried, and a hung endpoint is a timeout bounded by the
//! operation timeout, not a hang.

use crate::support;

use std::time::{Duration, Instant};

use crate::support::fault_proxy::{Fault, FaultPlan, FaultStats, Scope};
use crate::support::{TestBed, COLD, HOT};
use failoverd::aws::{AwsClients, ClientSettings, ErrorKind, RetryMode};
use failoverd::cognito::UserDirectory;
use failoverd::dns::DnsApi;
use failoverd::replication::{
    BackupCatalogApi, CopyJobFilter, GlobalDatabaseApi, LagMetric, LagMetricsApi, MetricWindow,
};
use time::OffsetDateTime;

/// One cheap, successful call per service (and so per wire protocol).
#[derive(Debug, Clone, Copy)]
enum Call {
    /// REST-XML.
    Route53,
    /// Query/XML.
    Rds,
    /// JSON 1.1.
    Cognito,
    /// RPC v2 CBOR.
    CloudWatch,
    /// REST-JSON.
    Backup,
}

const ALL_CALLS: [Call; 5] = [
    Call::Route53,
    Call::Rds,
    Call::Cognito,
    Call::CloudWatch,
    Call::Backup,
];

/// What a call needs to exist in moto, seeded directly (not through the proxy).
struct Seeded {
    zone_id: String,
    pool_id: String,
}

async fn seed(bed: &TestBed) -> Seeded {
    let url = bed.moto.endpoint_url();
    let route53 = aws_sdk_route53::Client::new(&support::raw_config(&url, HOT).await);
    let zone = route53
        .create_hosted_zone()
        .name("retries.example.com")
        .caller_reference("retries")
        .send()
        .await
        .expect("create zone");
    let zone_id = zone
        .hosted_zone()
        .expect("zone")
        .id()
        .trim_start_matches("/hostedzone/")
        .to_owned();
    let cognito =
        aws_sdk_cognitoidentityprovider::Client::new(&support::raw_config(&url, HOT).await);
    let pool = cognito
        .create_user_pool()
        .pool_name("retries")
        .send()
        .await
        .expect("create pool");
    let pool_id = pool
        .user_pool()
        .and_then(|p| p.id())
        .expect("pool id")
        .to_owned();
    Seeded { zone_id, pool_id }
}

async fn call(
    clients: &AwsClients,
    seeded: &Seeded,
    which: Call,
) -> Result<(), failoverd::aws::Error> {
    let hot = clients.region(HOT).expect("hot");
    match which {
        Call::Route53 => clients
            .dns()
            .list_record_sets(&seeded.zone_id)
            .await
            .map(drop),
        Call::Rds => hot.global_database().describe_db_clusters().await.map(drop),
        Call::Cognito => hot
            .user_directory()
            .list_users(&seeded.pool_id, None)
            .await
            .map(drop),
        Call::CloudWatch => {
            let now = OffsetDateTime::now_utc();
            let window = MetricWindow {
                start: now - time::Duration::minutes(5),
                end: now,
                period: Duration::from_secs(60),
            };
            clients
                .region(COLD)
                .expect("cold")
                .cloudwatch()
                .lag_series("app-cold", LagMetric::ReplicationLag, window)
                .await
                .map(drop)
        }
        Call::Backup => hot
            .backup_catalog()
            .list_copy_jobs(&CopyJobFilter::default())
            .await
            .map(drop),
    }
}

/// Short timeouts so the timeout tests take seconds.
fn fast_settings(bed: &TestBed) -> ClientSettings {
    ClientSettings {
        connect_timeout: Duration::from_secs(2),
        operation_attempt_timeout: Duration::from_secs(1),
        operation_timeout: Duration::from_secs(3),
        ..support::settings(&bed.endpoint_url())
    }
}

/// Injects `count` x `fault` before `which`, which must still succeed; returns what the proxy did
/// for this call alone.
async fn survives(
    bed: &TestBed,
    clients: &AwsClients,
    seeded: &Seeded,
    fault: Fault,
    count: u64,
    which: Call,
) -> FaultStats {
    bed.proxy.fail_next(count, fault.clone());
    let before = bed.proxy.stats();
    call(clients, seeded, which)
        .await
        .unwrap_or_else(|e| panic!("{which:?} should succeed through {count} x {fault:?}: {e}"));
    let after = bed.proxy.stats();
    bed.proxy.clear();
    FaultStats {
        requests: after.requests - before.requests,
        forwarded: after.forwarded - before.forwarded,
        throttled: after.throttled - before.throttled,
        errors: after.errors - before.errors,
        server_errors: after.server_errors - before.server_errors,
        delayed: after.delayed - before.delayed,
        dropped: after.dropped - before.dropped,
        blackholed: after.blackholed - before.blackholed,
    }
}

async fn start() -> (TestBed, Seeded, AwsClients) {
    let bed = TestBed::start().await;
    let seeded = seed(&bed).await;
    let clients = support::clients(&support::settings(&bed.endpoint_url())).await;
    (bed, seeded, clients)
}

#[tokio::test]
async fn throttling_is_retried_within_the_budget_for_every_protocol() {
    let (bed, seeded, clients) = start().await;
    for which in ALL_CALLS {
        let stats = survives(&bed, &clients, &seeded, Fault::Throttle, 2, which).await;
        assert_eq!(stats.throttled, 2, "{which:?}: {stats:?}");
        assert_eq!(stats.forwarded, 1, "{which:?}: {stats:?}");
        assert_eq!(
            stats.requests, 3,
            "{which:?}: three attempts of three: {stats:?}"
        );
    }
}

#[tokio::test]
async fn server_errors_are_retried_within_the_budget_for_every_protocol() {
    let (bed, seeded, clients) = start().await;
    for which in ALL_CALLS {
        let stats = survives(&bed, &clients, &seeded, Fault::ServerError(503), 2, which).await;
        assert_eq!(
            (stats.server_errors, stats.forwarded),
            (2, 1),
            "{which:?}: {stats:?}"
        );
        let stats = survives(&bed, &clients, &seeded, Fault::ServerError(500), 1, which).await;
        assert_eq!(
            (stats.server_errors, stats.forwarded),
            (1, 1),
            "{which:?}: {stats:?}"
        );
    }
}

#[tokio::test]
async fn route53_prior_request_not_complete_is_retried() {
    let (bed, seeded, clients) = start().await;
    let fault = Fault::Error {
        status: 400,
        code: "PriorRequestNotComplete".into(),
    };
    let stats = survives(&bed, &clients, &seeded, fault, 2, Call::Route53).await;
    assert_eq!((stats.errors, stats.forwarded), (2, 1), "{stats:?}");
}

#[tokio::test]
async fn an_exhausted_budget_surfaces_the_retryable_kind() {
    let (bed, seeded, clients) = start().await;
    for which in ALL_CALLS {
        bed.proxy.fail_next(10, Fault::Throttle);
        let before = bed.proxy.stats();
        let err = call(&clients, &seeded, which)
            .await
            .expect_err("throttled every time");
        let after = bed.proxy.stats();
        assert_eq!(err.kind, ErrorKind::Throttled, "{which:?}: {err}");
        assert!(err.is_retryable());
        assert!(
            matches!(
                err.code.as_deref(),
                Some("Throttling" | "TooManyRequestsException" | "ThrottlingException")
            ),
            "{which:?}: {err}"
        );
        assert_eq!(
            after.throttled - before.throttled,
            3,
            "{which:?}: max_attempts is 3"
        );
        assert_eq!(after.forwarded, before.forwarded, "{which:?}");

        bed.proxy.fail_next(10, Fault::ServerError(503));
        let err = call(&clients, &seeded, which)
            .await
            .expect_err("503 every time");
        assert_eq!(err.kind, ErrorKind::Unavailable, "{which:?}: {err}");
        assert!(err.is_retryable());
    }
    bed.proxy.clear();
}

#[tokio::test]
async fn a_non_retryable_error_surfaces_after_one_attempt() {
    let (bed, seeded, clients) = start().await;
    for which in ALL_CALLS {
        bed.proxy.fail_next(
            10,
            Fault::Error {
                status: 403,
                code: "AccessDeniedException".into(),
            },
        );
        let before = bed.proxy.stats();
        let err = call(&clients, &seeded, which).await.expect_err("denied");
        let after = bed.proxy.stats();
        assert_eq!(err.kind, ErrorKind::AccessDenied, "{which:?}: {err}");
        assert!(!err.is_retryable());
        assert_eq!(
            after.requests - before.requests,
            1,
            "{which:?}: not retried"
        );
    }
    bed.proxy.clear();

    // moto's own "not found" answer: one request, classified NotFound.
    let before = bed.proxy.stats();
    let err = clients
        .dns()
        .list_record_sets("ZNOSUCHZONE")
        .await
        .expect_err("no zone");
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(bed.proxy.stats().requests - before.requests, 1);
}

#[tokio::test]
async fn a_dropped_connection_is_retried_and_then_unavailable() {
    let (bed, seeded, clients) = start().await;
    let stats = survives(&bed, &clients, &seeded, Fault::Drop, 1, Call::Rds).await;
    assert_eq!((stats.dropped, stats.forwarded), (1, 1), "{stats:?}");

    bed.proxy.fail_next(10, Fault::Drop);
    let err = call(&clients, &seeded, Call::Cognito)
        .await
        .expect_err("dropped every time");
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
    assert_eq!(bed.proxy.stats().dropped - stats.dropped, 3);
}

#[tokio::test]
async fn a_hung_endpoint_is_a_timeout_bounded_by_the_operation_timeout() {
    let bed = TestBed::start().await;
    let seeded = seed(&bed).await;
    let settings = fast_settings(&bed);
    let clients = support::clients(&settings).await;
    for which in [Call::Route53, Call::Cognito] {
        bed.proxy
            .fail_next(100, Fault::Delay(Duration::from_secs(60)));
        let started = Instant::now();
        let err = call(&clients, &seeded, which)
            .await
            .expect_err("hung endpoint");
        let elapsed = started.elapsed();
        assert_eq!(err.kind, ErrorKind::Timeout, "{which:?}: {err}");
        assert!(err.is_retryable());
        assert!(
            elapsed >= settings.operation_attempt_timeout,
            "{which:?}: gave up after {elapsed:?}, before one attempt timed out"
        );
        assert!(
            elapsed < settings.operation_timeout + Duration::from_secs(5),
            "{which:?}: took {elapsed:?}, the operation timeout is {:?}",
            settings.operation_timeout
        );
        assert!(bed.proxy.stats().delayed >= 1);
    }

    // A delay shorter than the attempt timeout is just a slow answer.
    bed.proxy
        .fail_next(1, Fault::Delay(Duration::from_millis(300)));
    call(&clients, &seeded, Call::Rds)
        .await
        .expect("slow but in time");
}

#[tokio::test]
async fn a_share_of_throttling_is_absorbed_deterministically() {
    let bed = TestBed::start().await;
    let seeded = seed(&bed).await;
    let settings = ClientSettings {
        max_attempts: 5,
        ..support::settings(&bed.endpoint_url())
    };
    let clients = support::clients(&settings).await;
    bed.proxy.fail_share(0.3, Fault::Throttle, 7);
    for _ in 0..10 {
        call(&clients, &seeded, Call::Cognito)
            .await
            .expect("absorbed by retries");
    }
    let stats = bed.proxy.stats();
    assert_eq!(stats.forwarded, 10, "{stats:?}");
    assert!(
        stats.throttled > 0,
        "seed 7 throttles some requests: {stats:?}"
    );
    assert_eq!(stats.requests, stats.forwarded + stats.throttled);
}

#[tokio::test]
async fn adaptive_mode_rides_out_throttling() {
    let bed = TestBed::start().await;
    let seeded = seed(&bed).await;
    let settings = ClientSettings {
        retry_mode: RetryMode::Adaptive,
        ..support::settings(&bed.endpoint_url())
    };
    let clients = support::clients(&settings).await;
    bed.proxy.fail_next(2, Fault::Throttle);
    // Under the SDK's legacy retry behaviour the first throttle stalled adaptive clients past the
    // 20 s operation timeout; the factory opts adaptive mode into retry behaviour 2.1.
    for _ in 0..3 {
        call(&clients, &seeded, Call::Cognito)
            .await
            .expect("adaptive retries absorb the throttling within the operation timeout");
    }
    let stats = bed.proxy.stats();
    assert_eq!((stats.throttled, stats.forwarded), (2, 3), "{stats:?}");
}

/// A scoped plan is one region's outage: the requests signed for the hot region fail in turn
/// (dropped, 503), the cold region's and the excluded global service's go through, and requests
/// outside the scope do not use up the plan.
#[tokio::test]
async fn a_region_scoped_outage_fails_only_that_regions_requests() {
    let (bed, seeded, clients) = start().await;
    bed.proxy.fail_scoped(
        Scope::region(HOT).except_service("route53"),
        FaultPlan::Rotate {
            faults: vec![Fault::Drop, Fault::ServerError(503)],
            next: 0,
        },
    );
    let cold = clients.region(COLD).expect("cold").global_database();
    cold.describe_db_clusters()
        .await
        .expect("the cold region answers");
    call(&clients, &seeded, Call::Route53)
        .await
        .expect("Route 53 signs for us-east-1 but is excluded");
    let before = bed.proxy.stats();
    let err = call(&clients, &seeded, Call::Rds)
        .await
        .expect_err("the hot region is out");
    assert!(err.is_retryable(), "{err}");
    let after = bed.proxy.stats();
    // Three attempts, alternately dropped and refused with a 503; none forwarded.
    assert_eq!(
        (
            after.dropped - before.dropped,
            after.server_errors - before.server_errors,
            after.forwarded - before.forwarded
        ),
        (2, 1, 0),
        "{after:?}"
    );
    call(&clients, &seeded, Call::Cognito)
        .await
        .expect_err("every hot service is out");
}

/// An action scope fails one operation and nothing else.
#[tokio::test]
async fn an_action_scoped_fault_fails_only_that_operation() {
    let (bed, seeded, clients) = start().await;
    bed.proxy.fail_scoped(
        Scope::action("DescribeDBClusters"),
        FaultPlan::Next {
            fault: Fault::Error {
                status: 400,
                code: "InvalidGlobalClusterStateFault".into(),
            },
            remaining: 1,
        },
    );
    let hot = clients.region(HOT).expect("hot").global_database();
    let other = hot
        .describe_global_cluster("no-such-global")
        .await
        .expect_err("moto's own answer");
    assert_eq!(
        other.kind,
        ErrorKind::NotFound,
        "another RDS action reaches moto: {other}"
    );
    call(&clients, &seeded, Call::Cognito)
        .await
        .expect("another service goes through");
    let err = hot
        .describe_db_clusters()
        .await
        .expect_err("the scoped action fails");
    assert!(
        err.to_string().contains("InvalidGlobalClusterStateFault"),
        "{err}"
    );
    hot.describe_db_clusters()
        .await
        .expect("the plan is used up");
}

/// A blackholed region: requests signed for it are accepted and never answered, so each call
/// ends in a timeout bounded by the operation timeout, while the other region answers at once.
#[tokio::test]
async fn a_blackholed_region_times_out_within_the_operation_timeout() {
    let bed = TestBed::start().await;
    let seeded = seed(&bed).await;
    let settings = fast_settings(&bed);
    let clients = support::clients(&settings).await;
    bed.proxy.fail_scoped(
        Scope::region(HOT).except_service("route53"),
        FaultPlan::Always(Fault::Blackhole),
    );
    let started = Instant::now();
    let err = call(&clients, &seeded, Call::Cognito)
        .await
        .expect_err("the hot region never answers");
    let elapsed = started.elapsed();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(
        elapsed < settings.operation_timeout + Duration::from_secs(5),
        "took {elapsed:?}, the operation timeout is {:?}",
        settings.operation_timeout
    );
    assert!(bed.proxy.stats().blackholed >= 1);
    let cold = clients.region(COLD).expect("cold").global_database();
    cold.describe_db_clusters()
        .await
        .expect("the cold region answers");
    call(&clients, &seeded, Call::Route53)
        .await
        .expect("Route 53 is excluded from the blackhole");
}

/// An error burst with an end: every Route 53 request fails while the window lasts, then the
/// same call succeeds without the plan being touched.
#[tokio::test]
async fn an_error_burst_ends_with_its_window() {
    let (bed, seeded, clients) = start().await;
    // Longer than the call with its own retries (3 attempts, backoff of up to 2 s and 4 s), also
    // on a loaded machine.
    let window = Duration::from_secs(15);
    let window_started = Instant::now();
    bed.proxy.fail_scoped_for(
        Scope::default().service("route53"),
        window,
        FaultPlan::Always(Fault::ServerError(503)),
    );
    let err = call(&clients, &seeded, Call::Route53)
        .await
        .expect_err("inside the window");
    assert!(err.is_retryable(), "{err}");
    call(&clients, &seeded, Call::Rds)
        .await
        .expect("other services are outside the scope");
    tokio::time::sleep_until((window_started + window + Duration::from_millis(100)).into()).await;
    let before = bed.proxy.stats();
    call(&clients, &seeded, Call::Route53)
        .await
        .expect("the window is over");
    assert_eq!(bed.proxy.stats().server_errors, before.server_errors);
}

/// Per-region bounds: us-east-1's calls get a 1 s attempt and a 2 s operation, so a blackholed
/// us-east-1 fails within seconds, while us-west-2 keeps the 10 s attempt and answers a 3 s slow
/// reply.
#[tokio::test]
async fn a_region_can_have_shorter_bounds_than_the_other() {
    let bed = TestBed::start().await;
    let seeded = seed(&bed).await;
    let mut settings = support::settings(&bed.endpoint_url());
    settings.regions.insert(
        HOT.to_owned(),
        failoverd::aws::RegionTimeouts {
            connect_timeout: Some(Duration::from_secs(1)),
            operation_timeout: Some(Duration::from_secs(2)),
            operation_attempt_timeout: Some(Duration::from_secs(1)),
        },
    );
    let clients = support::clients(&settings).await;
    bed.proxy.fail_scoped(
        Scope::region(HOT).except_service("route53"),
        FaultPlan::Always(Fault::Blackhole),
    );
    let started = Instant::now();
    let err = call(&clients, &seeded, Call::Cognito)
        .await
        .expect_err("the hot region never answers");
    let elapsed = started.elapsed();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    println!("a blackholed us-east-1 call gave up after {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(8),
        "took {elapsed:?}: the region's 2 s operation bound was not applied"
    );
    bed.proxy.fail_scoped(
        Scope::region(COLD).except_service("route53"),
        FaultPlan::Always(Fault::Delay(Duration::from_secs(3))),
    );
    let cold = clients.region(COLD).expect("cold").global_database();
    cold.describe_db_clusters()
        .await
        .expect("us-west-2 keeps the 10 s attempt bound");
}
