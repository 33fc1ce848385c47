//! The health monitor against real local servers (HTTP and TCP on `127.0.0.1:0`) that the tests
//! stop and start: detection and recovery within the hysteresis bound, the region quorum, a
//! partition seen from this daemon alone, HTTP status/body checks, and a hung server that must not
//! delay the other probes.
//!
//! Real sockets need real time (paused Tokio time would fire timeouts while I/O is pending), so
//! the bounds are asserted in *rounds* (checks counted by the monitor), never in elapsed time; every
//! wait is bounded by [`DEADLINE`] so a broken monitor fails the test instead of hanging it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Redirect;
use axum::routing::get;
use axum::Router;
use failoverd::config::{Duration as ConfigDuration, HealthConfig, ProbeConfig, ProbeKind};
use failoverd::health::{
    Health, HealthHandle, HealthMonitor, HealthPorts, ProbeState, ProbeStatus,
};
use prometheus::Registry;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::fakes::FakeHealthChecks;

/// Upper bound on every wait: generous for a loaded 2-core machine, finite so a broken monitor
/// fails the test.
const DEADLINE: Duration = Duration::from_secs(60);

/// How often the tests look at the monitor's snapshot.
const POLL: Duration = Duration::from_millis(20);

const HOT: &str = "us-east-1";
const COLD: &str = "us-west-2";

// ---------------------------------------------------------------------------------------------
// Servers the tests stop and start.

/// What a server does with the connections it accepts.
#[derive(Clone, Copy)]
enum Behaviour {
    /// Serves HTTP (axum): `/healthz` 200 "ok", `/unavailable` 503, `/body` a longer text,
    /// `/moved` a redirect (303).
    Http,
    /// Accepts TCP connections and closes them.
    Tcp,
    /// Accepts TCP connections and holds them without ever answering.
    Hung,
}

struct Server {
    addr: SocketAddr,
    behaviour: Behaviour,
    task: Option<JoinHandle<()>>,
    /// While stopped: a socket bound to the port but not listening, so connections are refused
    /// and no other test (running in parallel) can be given the port in the meantime.
    reserved: Option<TcpSocket>,
}

impl Server {
    async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        Self {
            addr,
            behaviour,
            task: Some(serve(listener, behaviour)),
            reserved: None,
        }
    }

    /// Stops accepting; the port refuses connections until [`Server::restart`].
    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
            self.reserved = Some(bound(self.addr).expect("reserve the stopped server's port"));
        }
    }

    /// Listens again on the same port.
    async fn restart(&mut self) {
        self.stop().await;
        self.reserved = None;
        let mut attempts = 0;
        let listener = loop {
            match bound(self.addr).and_then(|socket| socket.listen(128)) {
                Ok(listener) => break listener,
                Err(e) if attempts < 50 => {
                    attempts += 1;
                    eprintln!("rebinding {}: {e}; retrying", self.addr);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.task = Some(serve(listener, self.behaviour));
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A socket bound to `addr` (with `SO_REUSEADDR`, as a listener is), not yet listening.
fn bound(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

fn serve(listener: TcpListener, behaviour: Behaviour) -> JoinHandle<()> {
    match behaviour {
        Behaviour::Http => {
            let app = Router::new()
                .route("/healthz", get(|| async { "ok" }))
                .route(
                    "/unavailable",
                    get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }),
                )
                .route(
                    "/body",
                    get(|| async { "status: all systems nominal\n".repeat(50) }),
                )
                .route("/moved", get(|| async { Redirect::to("/healthz") }));
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            })
        }
        Behaviour::Tcp => tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                drop(stream);
            }
        }),
        Behaviour::Hung => tokio::spawn(async move {
            // Held until the task is aborted: the peer sees an open connection that never answers.
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration and observation helpers.

fn probe(name: &str, region: &str, kind: ProbeKind, interval_ms: u64) -> ProbeConfig {
    let every = Duration::from_millis(interval_ms);
    crate::support::probes::probe(name, region, kind, every, every)
}

fn http(name: &str, region: &str, url: String, interval_ms: u64) -> ProbeConfig {
    ProbeConfig {
        url: Some(url),
        ..probe(name, region, ProbeKind::Http, interval_ms)
    }
}

fn tcp(name: &str, region: &str, addr: SocketAddr, interval_ms: u64) -> ProbeConfig {
    ProbeConfig {
        address: Some(addr.to_string()),
        ..probe(name, region, ProbeKind::Tcp, interval_ms)
    }
}

fn health(
    unhealthy_after: u32,
    healthy_after: u32,
    min_failing: u32,
    require_distinct_kinds: bool,
    probes: Vec<ProbeConfig>,
) -> HealthConfig {
    HealthConfig {
        unhealthy_after,
        healthy_after,
        min_failing,
        require_distinct_kinds,
        probes,
    }
}

/// A running monitor; stops it (and checks that it stops) on [`Monitor::shutdown`].
struct Monitor {
    handle: HealthHandle,
    registry: Registry,
    stop: Option<oneshot::Sender<()>>,
}

impl Monitor {
    fn start(config: &HealthConfig, ports: HealthPorts) -> Self {
        let registry = Registry::new();
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = HealthMonitor::spawn_until(config, ports, &registry, async move {
            let _ = stopped.await;
        })
        .expect("start the monitor");
        Self {
            handle,
            registry,
            stop: Some(stop),
        }
    }

    fn probe(&self, name: &str) -> ProbeStatus {
        self.handle
            .snapshot()
            .probes
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no probe {name}"))
    }

    fn region(&self, region: &str) -> Health {
        self.handle.snapshot().regions[region].health
    }

    /// Waits (bounded) until `name`'s status satisfies `done`; returns that status.
    async fn wait_probe(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&ProbeStatus) -> bool,
    ) -> ProbeStatus {
        let waited = tokio::time::timeout(DEADLINE, async {
            loop {
                let status = self.probe(name);
                if done(&status) {
                    return status;
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            panic!(
                "probe {name}: {what} not reached within {DEADLINE:?}: {:?}",
                self.probe(name)
            )
        })
    }

    /// Waits (bounded) until `region` has health `expected`.
    async fn wait_region(&self, region: &str, expected: Health) {
        let mut verdicts = self.handle.verdicts();
        let waited = tokio::time::timeout(
            DEADLINE,
            verdicts.wait_for(|v| v.region(region).map(|r| r.health) == Some(expected)),
        )
        .await;
        match waited {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => panic!("the monitor stopped"),
            Err(_) => panic!(
                "region {region} not {expected} within {DEADLINE:?}: {:#?}",
                self.handle.snapshot().regions
            ),
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEADLINE, self.handle.stopped())
            .await
            .expect("the monitor stops");
    }
}

/// The check count at which the probe entered its current state: later checks (the test may
/// look a round late) only extended the streak that caused the transition.
fn checks_at_transition(status: &ProbeStatus, threshold: u32) -> u64 {
    let streak = match status.state {
        ProbeState::Down => status.consecutive_failures,
        ProbeState::Up => status.consecutive_successes,
        ProbeState::Pending => 0,
    };
    status.checks - u64::from(streak.saturating_sub(threshold))
}

// ---------------------------------------------------------------------------------------------
// Tests.

/// Detection and recovery of one probe against a server that stops and restarts, in rounds:
/// after the stop, the probe is down after `unhealthy_after` failed checks, plus at most one check
/// that was already in flight (that is: within `interval × unhealthy_after` plus one interval);
/// recovery likewise with `healthy_after`.
async fn detect_and_recover(behaviour: Behaviour, kind: ProbeKind) {
    const UNHEALTHY_AFTER: u32 = 3;
    const HEALTHY_AFTER: u32 = 2;
    let mut server = Server::start(behaviour).await;
    let probe = match kind {
        ProbeKind::Http => http("target", HOT, server.url("/healthz"), 200),
        _ => tcp("target", HOT, server.addr, 200),
    };
    let monitor = Monitor::start(
        &health(UNHEALTHY_AFTER, HEALTHY_AFTER, 1, false, vec![probe]),
        HealthPorts::default(),
    );
    monitor
        .wait_probe("target", "up", |p| p.state == ProbeState::Up)
        .await;
    monitor.wait_region(HOT, Health::Healthy).await;

    for round in 0..2 {
        server.stop().await;
        let before = monitor.probe("target").checks;
        let down = monitor
            .wait_probe("target", "down", |p| p.state == ProbeState::Down)
            .await;
        let rounds = checks_at_transition(&down, UNHEALTHY_AFTER) - before;
        assert!(
            (u64::from(UNHEALTHY_AFTER)..=u64::from(UNHEALTHY_AFTER) + 1).contains(&rounds),
            "round {round}: down after {rounds} checks (from check {before}): {down:?}"
        );
        let error = down.last_error.clone().unwrap_or_default();
        let expected = match kind {
            ProbeKind::Http => "request failed",
            _ => "connect to",
        };
        assert!(error.contains(expected), "{error}");
        monitor.wait_region(HOT, Health::Unhealthy).await;

        server.restart().await;
        let before = monitor.probe("target").checks;
        let up = monitor
            .wait_probe("target", "up again", |p| p.state == ProbeState::Up)
            .await;
        let rounds = checks_at_transition(&up, HEALTHY_AFTER) - before;
        assert!(
            (u64::from(HEALTHY_AFTER)..=u64::from(HEALTHY_AFTER) + 1).contains(&rounds),
            "round {round}: up after {rounds} checks (from check {before}): {up:?}"
        );
        monitor.wait_region(HOT, Health::Healthy).await;
    }
    let metrics = failoverd::telemetry::render(&monitor.registry).expect("render");
    assert!(
        metrics.contains(r#"failoverd_probe_up{probe="target",region="us-east-1"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"failoverd_region_health{region="us-east-1"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains("failoverd_probe_duration_seconds_bucket"));
    monitor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_probe_detects_a_stopped_server_and_its_recovery_within_the_bound() {
    detect_and_recover(Behaviour::Http, ProbeKind::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_probe_detects_a_stopped_listener_and_its_recovery_within_the_bound() {
    detect_and_recover(Behaviour::Tcp, ProbeKind::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_is_unhealthy_only_with_the_quorum_of_down_probes() {
    let mut hot_http = Server::start(Behaviour::Http).await;
    let mut hot_tcp = Server::start(Behaviour::Tcp).await;
    let cold_http = Server::start(Behaviour::Http).await;
    let cold_tcp = Server::start(Behaviour::Tcp).await;
    let config = health(
        2,
        1,
        2,
        false,
        vec![
            http("hot-api", HOT, hot_http.url("/healthz"), 200),
            tcp("hot-db", HOT, hot_tcp.addr, 200),
            http("cold-api", COLD, cold_http.url("/healthz"), 200),
            tcp("cold-db", COLD, cold_tcp.addr, 200),
        ],
    );
    let monitor = Monitor::start(&config, HealthPorts::default());
    monitor.wait_region(HOT, Health::Healthy).await;
    monitor.wait_region(COLD, Health::Healthy).await;

    hot_http.stop().await;
    monitor.wait_region(HOT, Health::Degraded).await;
    let snapshot = monitor.handle.snapshot();
    let hot = &snapshot.regions[HOT];
    assert_eq!(hot.down.len(), 1);
    assert_eq!(hot.down[0].probe, "hot-api");
    assert!(hot.down[0].last_error.is_some());

    hot_tcp.stop().await;
    monitor.wait_region(HOT, Health::Unhealthy).await;
    let snapshot = monitor.handle.snapshot();
    let down: Vec<&str> = snapshot.regions[HOT]
        .down
        .iter()
        .map(|d| d.probe.as_str())
        .collect();
    assert_eq!(down, ["hot-api", "hot-db"]);
    assert_eq!(monitor.region(COLD), Health::Healthy);
    let json = serde_json::to_value(&snapshot).expect("serialize");
    assert_eq!(json["regions"][HOT]["health"], "unhealthy");
    assert!(json["regions"][HOT]["since"].is_string());

    hot_http.restart().await;
    hot_tcp.restart().await;
    monitor.wait_region(HOT, Health::Healthy).await;
    monitor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_seen_only_from_this_daemon_does_not_condemn_the_region() {
    // Everything the daemon probes itself fails (HTTP and TCP, the same network path), while
    // Route 53's global checkers still see the region serving: degraded, never unhealthy.
    let mut api = Server::start(Behaviour::Http).await;
    let mut db = Server::start(Behaviour::Tcp).await;
    let checkers = Arc::new(FakeHealthChecks::in_regions(
        &["eu-west-1", "ap-southeast-1"],
        true,
    ));
    let config = health(
        2,
        1,
        2,
        true,
        vec![
            http("hot-api", HOT, api.url("/healthz"), 200),
            tcp("hot-db", HOT, db.addr, 200),
            ProbeConfig {
                health_check_id: Some("hc-hot".into()),
                ..probe("hot-route53", HOT, ProbeKind::Route53HealthCheck, 200)
            },
        ],
    );
    let ports = HealthPorts {
        route53: Some(checkers.clone()),
        ..HealthPorts::default()
    };
    let monitor = Monitor::start(&config, ports);
    monitor.wait_region(HOT, Health::Healthy).await;

    api.stop().await;
    db.stop().await;
    monitor
        .wait_probe("hot-api", "down", |p| p.state == ProbeState::Down)
        .await;
    let db_down = monitor
        .wait_probe("hot-db", "down", |p| p.state == ProbeState::Down)
        .await;
    // Several more rounds with both local probes down: the region stays degraded.
    monitor
        .wait_probe("hot-db", "five more checks", |p| {
            p.checks >= db_down.checks + 5
        })
        .await;
    let snapshot = monitor.handle.snapshot();
    let hot = &snapshot.regions[HOT];
    assert_eq!(hot.health, Health::Degraded, "{hot:?}");
    assert_eq!(hot.down.len(), 2);
    assert!(
        hot.explanation.contains("vantage point"),
        "{}",
        hot.explanation
    );

    // The global checkers agree: now it is unhealthy.
    checkers.set_healthy(false);
    monitor.wait_region(HOT, Health::Unhealthy).await;
    let r53 = monitor.probe("hot-route53");
    assert!(
        r53.last_error
            .as_deref()
            .is_some_and(|e| e.contains("0 of 2 Route 53 checkers")),
        "{r53:?}"
    );

    api.restart().await;
    db.restart().await;
    checkers.set_healthy(true);
    monitor.wait_region(HOT, Health::Healthy).await;
    monitor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_probes_check_the_status_range_and_the_body() {
    let server = Server::start(Behaviour::Http).await;
    let mut config = health(
        1,
        1,
        1,
        false,
        vec![
            http("ok", HOT, server.url("/healthz"), 200),
            http("unavailable", HOT, server.url("/unavailable"), 200),
            ProbeConfig {
                body_contains: Some("all systems nominal".into()),
                ..http("body", HOT, server.url("/body"), 200)
            },
            ProbeConfig {
                body_contains: Some("degraded".into()),
                ..http("wrong-body", HOT, server.url("/body"), 200)
            },
            // Redirects are not followed: a 303 is within the default range [200, 399]...
            http("moved", HOT, server.url("/moved"), 200),
            // ...and outside an explicit [200, 299].
            ProbeConfig {
                expect_status: Some([200, 299]),
                ..http("moved-strict", HOT, server.url("/moved"), 200)
            },
            ProbeConfig {
                method: Some("POST".into()),
                ..http("post", HOT, server.url("/healthz"), 200)
            },
        ],
    );
    config
        .probes
        .iter_mut()
        .for_each(|p| p.timeout = ConfigDuration::from_millis(1000));
    config
        .probes
        .iter_mut()
        .for_each(|p| p.interval = ConfigDuration::from_millis(1000));
    let monitor = Monitor::start(&config, HealthPorts::default());
    let settled = |p: &ProbeStatus| p.state != ProbeState::Pending;
    for (name, state, error) in [
        ("ok", ProbeState::Up, None),
        (
            "unavailable",
            ProbeState::Down,
            Some("HTTP status 503, expected 200..=399"),
        ),
        ("body", ProbeState::Up, None),
        (
            "wrong-body",
            ProbeState::Down,
            Some("does not contain \"degraded\""),
        ),
        ("moved", ProbeState::Up, None),
        (
            "moved-strict",
            ProbeState::Down,
            Some("HTTP status 303, expected 200..=299"),
        ),
        ("post", ProbeState::Down, Some("HTTP status 405")),
    ] {
        let status = monitor.wait_probe(name, "a state", settled).await;
        assert_eq!(status.state, state, "{status:?}");
        if let Some(error) = error {
            let got = status.last_error.clone().unwrap_or_default();
            assert!(got.contains(error), "{name}: {got}");
        }
        assert!(status.last_duration_seconds.is_some());
    }
    monitor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_does_not_delay_the_other_probes() {
    const HUNG_TIMEOUT_MS: u64 = 800;
    const FINE_INTERVAL_MS: u64 = 100;
    let hung = Server::start(Behaviour::Hung).await;
    let fine = Server::start(Behaviour::Http).await;
    let config = health(
        2,
        1,
        1,
        false,
        vec![
            ProbeConfig {
                timeout: ConfigDuration::from_millis(HUNG_TIMEOUT_MS),
                ..http("hung", HOT, hung.url("/healthz"), 1000)
            },
            http("fine", COLD, fine.url("/healthz"), FINE_INTERVAL_MS),
        ],
    );
    let monitor = Monitor::start(&config, HealthPorts::default());
    // Four hung checks take at least 4 × 800 ms of timeouts, one after the other.
    const HUNG_CHECKS: u64 = 4;
    let hung_status = monitor
        .wait_probe("hung", "four checks", |p| p.checks >= HUNG_CHECKS)
        .await;
    let fine_status = monitor.probe("fine");
    // In those ≥ 3.2 s the fine probe has a round every 100 ms (~32). Were it held up by the hung
    // probe it would have about one round per hung check; 16 leaves room for a loaded machine.
    assert!(
        fine_status.checks >= 16,
        "the fine probe ran only {} checks while the hung one ran {}",
        fine_status.checks,
        hung_status.checks
    );
    assert_eq!(fine_status.state, ProbeState::Up);
    assert_eq!(hung_status.state, ProbeState::Down);
    assert_eq!(
        hung_status.last_error.as_deref(),
        Some("no answer within 800ms")
    );
    // Each hung round costs one timeout, not more.
    let duration = hung_status.last_duration_seconds.unwrap_or_default();
    assert!(
        (0.8..3.0).contains(&duration),
        "a hung check took {duration} s"
    );
    assert_eq!(monitor.region(COLD), Health::Healthy);
    assert_eq!(monitor.region(HOT), Health::Unhealthy);
    // The hung probe's task is not stuck: it keeps checking.
    monitor
        .wait_probe("hung", "more checks", |p| p.checks >= HUNG_CHECKS + 2)
        .await;
    monitor.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_probes_resolve_through_the_system_resolver() {
    // `localhost` is in /etc/hosts on every Linux, so no network is needed; `.invalid` never
    // resolves (RFC 6761).
    let dns = |name: &str, hostname: &str, expect: Option<&str>| ProbeConfig {
        hostname: Some(hostname.into()),
        expect_address: expect.map(str::to_owned),
        timeout: ConfigDuration::from_millis(2000),
        ..probe(name, HOT, ProbeKind::Dns, 2000)
    };
    let config = health(
        1,
        1,
        1,
        false,
        vec![
            dns("localhost", "localhost", Some("127.0.0.1")),
            dns("wrong-answer", "localhost", Some("192.0.2.10")),
            dns("no-such-name", "no-such-host.invalid", None),
        ],
    );
    let monitor = Monitor::start(&config, HealthPorts::default());
    let settled = |p: &ProbeStatus| p.state != ProbeState::Pending;
    let ok = monitor.wait_probe("localhost", "a state", settled).await;
    assert_eq!(ok.state, ProbeState::Up, "{ok:?}");
    let wrong = monitor.wait_probe("wrong-answer", "a state", settled).await;
    assert_eq!(wrong.state, ProbeState::Down, "{wrong:?}");
    assert!(
        wrong
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("does not include 192.0.2.10")),
        "{wrong:?}"
    );
    let missing = monitor.wait_probe("no-such-name", "a state", settled).await;
    assert_eq!(missing.state, ProbeState::Down, "{missing:?}");
    assert!(
        missing
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("cannot resolve no-such-host.invalid")
                || e.contains("no answer within")),
        "{missing:?}"
    );
    monitor.shutdown().await;
}
