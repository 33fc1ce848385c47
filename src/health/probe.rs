//! The probes: one check of one target, always bounded by the probe's timeout.
//!
//! A probe answers one question — "does this target look alive right now?" — as a
//! [`CheckResult`]. Five kinds look at a region from different places: HTTP(S), TCP and DNS from
//! this daemon's own network path, Route 53 health-check status from AWS's global checkers, and
//! CloudWatch alarm state from the region's own metrics (see `verdict::Vantage` for why that
//! matters).
//!
//! Contracts the monitor relies on:
//! - [`ProbeRunner::check`] never takes longer than the probe's timeout (plus scheduling) and never
//!   fails: every problem, including an AWS API that cannot be reached, is a
//!   [`CheckResult::Failure`] carrying the error text that the status view shows as evidence.
//! - A hung target costs one timeout. HTTP and TCP I/O is cancelled when the timeout fires. Name
//!   resolution goes through the system resolver on a blocking thread, which cannot be cancelled,
//!   so each probe allows one resolution in flight: while a previous one is still stuck, the check
//!   fails at once instead of piling up blocked threads.
//! - HTTP checks open a new connection each time (no keep-alive pool) and do not follow
//!   redirects, like Route 53's and load balancers' health checkers: a pooled connection can keep
//!   answering after the listener behind it has stopped accepting.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ProbeConfig, ProbeKind};
use crate::error_chain::error_chain;
use crate::health::port::{AlarmState, AlarmStateApi, HealthCheckStatusApi};
use crate::health::verdict::CheckResult;
use crate::port;

/// Status codes an HTTP probe accepts when the config does not say (redirects count as alive).
pub const DEFAULT_EXPECT_STATUS: RangeInclusive<u16> = 200..=399;

/// Share of Route 53 checkers that must report healthy when the config does not say.
pub const DEFAULT_MIN_HEALTHY_FRACTION: f64 = 0.5;

/// How much of a response body is searched for `body_contains`: health endpoints answer in a few
/// hundred bytes, and a probe must not download an arbitrary page every few seconds.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Why a probe could not be built from its configuration (validation normally catches these
/// first; the monitor refuses to start rather than run a probe that can never succeed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProbeSpecError {
    #[error("probe {probe}: {field} is required for kind {kind}")]
    Missing {
        probe: String,
        field: &'static str,
        kind: &'static str,
    },
    #[error("probe {probe}: {field} {value:?} is invalid: {reason}")]
    Invalid {
        probe: String,
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("probe {probe}: no {api} client was provided for region {region}")]
    MissingPort {
        probe: String,
        api: &'static str,
        region: String,
    },
    #[error("cannot build the HTTP client for the probes: {0}")]
    HttpClient(String),
}

/// Why one check failed (the text becomes the probe's `last_error`).
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ProbeError {
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Request(String),
    #[error("HTTP status {status}, expected {lo}..={hi}")]
    Status { status: u16, lo: u16, hi: u16 },
    #[error("reading the body failed: {0}")]
    Body(String),
    #[error("body (first {searched} bytes) does not contain {needle:?}")]
    BodyMismatch { needle: String, searched: usize },
    #[error("connect to {address} failed: {reason}")]
    Connect { address: String, reason: String },
    #[error("cannot resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    #[error("{host} resolved to no address")]
    NoAddress { host: String },
    #[error("{host} resolved to {answers}, which does not include {expected}")]
    UnexpectedAddress {
        host: String,
        expected: IpAddr,
        answers: String,
    },
    #[error("the previous resolution of {host} has not finished yet (resolver hung?)")]
    ResolverBusy { host: String },
    #[error(transparent)]
    Aws(#[from] port::Error),
    #[error(
        "{healthy} of {total} Route 53 checkers report healthy, below the required {:.0}%{}",
        min_fraction * 100.0,
        sample.as_deref().map(|s| format!(" (e.g. {s})")).unwrap_or_default()
    )]
    CheckersUnhealthy {
        healthy: usize,
        total: usize,
        min_fraction: f64,
        sample: Option<String>,
    },
    #[error("alarm {name} is in ALARM{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    AlarmFiring {
        name: String,
        reason: Option<String>,
    },
}

/// What to check, by kind.
#[derive(Clone, Debug)]
pub enum Target {
    Http {
        url: reqwest::Url,
        method: reqwest::Method,
        expect_status: RangeInclusive<u16>,
        body_contains: Option<String>,
        tls_verify: bool,
    },
    Tcp {
        address: String,
    },
    Dns {
        hostname: String,
        expect_address: Option<IpAddr>,
    },
    Route53HealthCheck {
        health_check_id: String,
        min_healthy_fraction: f64,
    },
    CloudwatchAlarm {
        alarm_name: String,
    },
}

/// One probe, parsed from its configuration.
#[derive(Clone, Debug)]
pub struct ProbeSpec {
    pub name: String,
    pub region: String,
    pub kind: ProbeKind,
    pub interval: Duration,
    pub timeout: Duration,
    pub target: Target,
}

impl ProbeSpec {
    pub fn from_config(config: &ProbeConfig) -> Result<Self, ProbeSpecError> {
        let name = &config.name;
        let kind = config.kind;
        let missing = |field: &'static str| ProbeSpecError::Missing {
            probe: name.clone(),
            field,
            kind: kind.as_str(),
        };
        let invalid = |field: &'static str, value: &str, reason: String| ProbeSpecError::Invalid {
            probe: name.clone(),
            field,
            value: value.to_owned(),
            reason,
        };
        let target = match kind {
            ProbeKind::Http => {
                let raw = config.url.as_deref().ok_or_else(|| missing("url"))?;
                let url =
                    reqwest::Url::parse(raw).map_err(|e| invalid("url", raw, e.to_string()))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(invalid("url", raw, "not an http(s) URL".to_owned()));
                }
                let method = match config.method.as_deref() {
                    None => reqwest::Method::GET,
                    Some(m) => reqwest::Method::from_bytes(m.as_bytes())
                        .map_err(|e| invalid("method", m, e.to_string()))?,
                };
                let expect_status = match config.expect_status {
                    None => DEFAULT_EXPECT_STATUS,
                    Some([lo, hi]) if lo <= hi => lo..=hi,
                    Some([lo, hi]) => {
                        return Err(invalid(
                            "expect_status",
                            &format!("[{lo}, {hi}]"),
                            "lower bound above upper bound".to_owned(),
                        ))
                    }
                };
                Target::Http {
                    url,
                    method,
                    expect_status,
                    body_contains: config.body_contains.clone().filter(|s| !s.is_empty()),
                    tls_verify: config.tls_verify,
                }
            }
            ProbeKind::Tcp => Target::Tcp {
                address: config.address.clone().ok_or_else(|| missing("address"))?,
            },
            ProbeKind::Dns => {
                let expect_address = match config.expect_address.as_deref() {
                    None => None,
                    Some(raw) => Some(
                        raw.parse::<IpAddr>()
                            .map_err(|e| invalid("expect_address", raw, e.to_string()))?,
                    ),
                };
                Target::Dns {
                    hostname: config.hostname.clone().ok_or_else(|| missing("hostname"))?,
                    expect_address,
                }
            }
            ProbeKind::Route53HealthCheck => {
                let min_healthy_fraction = config
                    .min_healthy_fraction
                    .unwrap_or(DEFAULT_MIN_HEALTHY_FRACTION);
                if !(min_healthy_fraction > 0.0 && min_healthy_fraction <= 1.0) {
                    return Err(invalid(
                        "min_healthy_fraction",
                        &min_healthy_fraction.to_string(),
                        "must be in (0, 1]".to_owned(),
                    ));
                }
                Target::Route53HealthCheck {
                    health_check_id: config
                        .health_check_id
                        .clone()
                        .ok_or_else(|| missing("health_check_id"))?,
                    min_healthy_fraction,
                }
            }
            ProbeKind::CloudwatchAlarm => Target::CloudwatchAlarm {
                alarm_name: config
                    .alarm_name
                    .clone()
                    .ok_or_else(|| missing("alarm_name"))?,
            },
        };
        Ok(Self {
            name: name.clone(),
            region: config.region.clone(),
            kind,
            interval: config.interval.get(),
            timeout: config.timeout.get(),
            target,
        })
    }
}

/// The AWS ports the Route 53 and CloudWatch probes read through (the AWS adapter implements
/// them; tests pass fakes).
#[derive(Clone, Default)]
pub struct HealthPorts {
    /// Route 53 health-check status (a global API). Required when a `route53_health_check` probe
    /// is configured.
    pub route53: Option<Arc<dyn HealthCheckStatusApi>>,
    /// CloudWatch alarm state, by region name. Required for each region that has a
    /// `cloudwatch_alarm` probe.
    pub alarms: BTreeMap<String, Arc<dyn AlarmStateApi>>,
}

/// What the probes of one monitor share: the HTTP clients (one verifying TLS, one not) and the
/// AWS ports.
#[derive(Clone)]
pub struct ProbeFactory {
    http_verified: reqwest::Client,
    http_unverified: reqwest::Client,
    ports: HealthPorts,
}

impl ProbeFactory {
    pub fn new(ports: HealthPorts) -> Result<Self, ProbeSpecError> {
        Ok(Self {
            http_verified: http_client(true)?,
            http_unverified: http_client(false)?,
            ports,
        })
    }

    /// A runner for `spec`; fails when the port its kind needs was not provided.
    pub fn runner(&self, spec: ProbeSpec) -> Result<ProbeRunner, ProbeSpecError> {
        let missing_port = |api: &'static str| ProbeSpecError::MissingPort {
            probe: spec.name.clone(),
            api,
            region: spec.region.clone(),
        };
        let io = match &spec.target {
            Target::Http { tls_verify, .. } => Io::Http(if *tls_verify {
                self.http_verified.clone()
            } else {
                self.http_unverified.clone()
            }),
            Target::Tcp { .. } | Target::Dns { .. } => Io::Resolver(Resolver::default()),
            Target::Route53HealthCheck { .. } => Io::Route53(
                self.ports
                    .route53
                    .clone()
                    .ok_or_else(|| missing_port("Route 53 health-check status"))?,
            ),
            Target::CloudwatchAlarm { .. } => Io::Alarm(
                self.ports
                    .alarms
                    .get(&spec.region)
                    .cloned()
                    .ok_or_else(|| missing_port("CloudWatch alarm state"))?,
            ),
        };
        Ok(ProbeRunner { spec, io })
    }
}

fn http_client(tls_verify: bool) -> Result<reqwest::Client, ProbeSpecError> {
    reqwest::Client::builder()
        .user_agent(concat!("failoverd-probe/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(0)
        .danger_accept_invalid_certs(!tls_verify)
        .build()
        .map_err(|e| ProbeSpecError::HttpClient(error_chain(&e)))
}

enum Io {
    Http(reqwest::Client),
    Resolver(Resolver),
    Route53(Arc<dyn HealthCheckStatusApi>),
    Alarm(Arc<dyn AlarmStateApi>),
}

/// Runs the checks of one probe.
pub struct ProbeRunner {
    spec: ProbeSpec,
    io: Io,
}

impl ProbeRunner {
    pub fn spec(&self) -> &ProbeSpec {
        &self.spec
    }

    /// One check, bounded by the probe's timeout.
    pub async fn check(&self) -> CheckResult {
        let timeout = self.spec.timeout;
        match tokio::time::timeout(timeout, self.check_unbounded()).await {
            Ok(Ok(Verdict::Pass)) => CheckResult::Success,
            Ok(Ok(Verdict::Inconclusive(why))) => CheckResult::Inconclusive(why),
            Ok(Err(e)) => CheckResult::Failure(e.to_string()),
            Err(_) => CheckResult::Failure(ProbeError::Timeout(timeout).to_string()),
        }
    }

    async fn check_unbounded(&self) -> Result<Verdict, ProbeError> {
        match (&self.spec.target, &self.io) {
            (
                Target::Http {
                    url,
                    method,
                    expect_status,
                    body_contains,
                    ..
                },
                Io::Http(client),
            ) => check_http(client, url, method, expect_status, body_contains.as_deref()).await,
            (Target::Tcp { address }, Io::Resolver(resolver)) => check_tcp(resolver, address).await,
            (
                Target::Dns {
                    hostname,
                    expect_address,
                },
                Io::Resolver(resolver),
            ) => check_dns(resolver, hostname, *expect_address).await,
            (
                Target::Route53HealthCheck {
                    health_check_id,
                    min_healthy_fraction,
                },
                Io::Route53(api),
            ) => check_route53(api.as_ref(), health_check_id, *min_healthy_fraction).await,
            (Target::CloudwatchAlarm { alarm_name }, Io::Alarm(api)) => {
                check_alarm(api.as_ref(), alarm_name).await
            }
            // `ProbeFactory::runner` pairs each target with its I/O; this arm is unreachable by
            // construction but must not panic.
            _ => Err(ProbeError::Request(
                "probe target and client do not match".to_owned(),
            )),
        }
    }
}

/// A passed check, or one that could not conclude.
enum Verdict {
    Pass,
    Inconclusive(String),
}

async fn check_http(
    client: &reqwest::Client,
    url: &reqwest::Url,
    method: &reqwest::Method,
    expect: &RangeInclusive<u16>,
    body_contains: Option<&str>,
) -> Result<Verdict, ProbeError> {
    let mut response = client
        .request(method.clone(), url.clone())
        .send()
        .await
        .map_err(|e| ProbeError::Request(error_chain(&e)))?;
    let status = response.status().as_u16();
    if !expect.contains(&status) {
        return Err(ProbeError::Status {
            status,
            lo: *expect.start(),
            hi: *expect.end(),
        });
    }
    let Some(needle) = body_contains else {
        return Ok(Verdict::Pass);
    };
    let needle_bytes = needle.as_bytes();
    let mut body: Vec<u8> = Vec::new();
    while body.len() < MAX_BODY_BYTES {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| ProbeError::Body(error_chain(&e)))?;
        let Some(chunk) = chunk else { break };
        // Search only where a match can newly appear: the tail of what was read plus the chunk.
        let from = body
            .len()
            .saturating_sub(needle_bytes.len().saturating_sub(1));
        let take = chunk.len().min(MAX_BODY_BYTES - body.len());
        body.extend_from_slice(&chunk[..take]);
        if contains(&body[from..], needle_bytes) {
            return Ok(Verdict::Pass);
        }
    }
    Err(ProbeError::BodyMismatch {
        needle: needle.to_owned(),
        searched: body.len(),
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

async fn check_tcp(resolver: &Resolver, address: &str) -> Result<Verdict, ProbeError> {
    let targets: Vec<SocketAddr> = match address.parse::<SocketAddr>() {
        Ok(addr) => vec![addr],
        Err(_) => {
            let (host, port) = address
                .rsplit_once(':')
                .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p)))
                .ok_or_else(|| ProbeError::Resolve {
                    host: address.to_owned(),
                    reason: "not host:port".to_owned(),
                })?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            resolver.resolve(host, port).await?
        }
    };
    let mut last_error = String::from("no address to connect to");
    for target in targets {
        match tokio::net::TcpStream::connect(target).await {
            Ok(_stream) => return Ok(Verdict::Pass),
            Err(e) => last_error = format!("{target}: {e}"),
        }
    }
    Err(ProbeError::Connect {
        address: address.to_owned(),
        reason: last_error,
    })
}

async fn check_dns(
    resolver: &Resolver,
    hostname: &str,
    expect: Option<IpAddr>,
) -> Result<Verdict, ProbeError> {
    let answers = resolver.resolve(hostname, 0).await?;
    if answers.is_empty() {
        return Err(ProbeError::NoAddress {
            host: hostname.to_owned(),
        });
    }
    match expect {
        Some(expected) if !answers.iter().any(|a| a.ip() == expected) => {
            let mut ips: Vec<String> = answers.iter().map(|a| a.ip().to_string()).collect();
            ips.dedup();
            Err(ProbeError::UnexpectedAddress {
                host: hostname.to_owned(),
                expected,
                answers: ips.join(", "),
            })
        }
        _ => Ok(Verdict::Pass),
    }
}

async fn check_route53(
    api: &dyn HealthCheckStatusApi,
    health_check_id: &str,
    min_fraction: f64,
) -> Result<Verdict, ProbeError> {
    let status = api.health_check_status(health_check_id).await?;
    let Some(share) = status.healthy_share() else {
        return Ok(Verdict::Inconclusive(format!(
            "no Route 53 checker has reported on health check {health_check_id} yet"
        )));
    };
    if share >= min_fraction {
        return Ok(Verdict::Pass);
    }
    let sample = status
        .checkers
        .iter()
        .find(|c| !c.healthy)
        .map(|c| match &c.region {
            Some(region) => format!("{region}: {}", c.status),
            None => c.status.clone(),
        });
    Err(ProbeError::CheckersUnhealthy {
        healthy: status.checkers_healthy(),
        total: status.checkers_total(),
        min_fraction,
        sample,
    })
}

async fn check_alarm(api: &dyn AlarmStateApi, name: &str) -> Result<Verdict, ProbeError> {
    let alarm = api.alarm_state(name).await?;
    match alarm.state {
        AlarmState::Ok => Ok(Verdict::Pass),
        AlarmState::Alarm => Err(ProbeError::AlarmFiring {
            name: name.to_owned(),
            reason: alarm.reason,
        }),
        AlarmState::InsufficientData => Ok(Verdict::Inconclusive(format!(
            "alarm {name} has insufficient data"
        ))),
        AlarmState::Unknown(state) => Ok(Verdict::Inconclusive(format!(
            "alarm {name} is in state {state:?}, which this build does not know"
        ))),
    }
}

/// The system resolver on a blocking thread, at most one resolution in flight per probe.
#[derive(Default)]
struct Resolver {
    busy: Arc<AtomicBool>,
}

/// Clears the in-flight flag when the blocking resolution ends, however it ends.
struct BusyGuard(Arc<AtomicBool>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Resolver {
    async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, ProbeError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(ProbeError::ResolverBusy {
                host: host.to_owned(),
            });
        }
        let guard = BusyGuard(self.busy.clone());
        let owned = host.to_owned();
        let lookup = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            (owned.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect::<Vec<_>>())
        });
        match lookup.await {
            Ok(Ok(addrs)) => Ok(addrs),
            Ok(Err(e)) => Err(ProbeError::Resolve {
                host: host.to_owned(),
                reason: e.to_string(),
            }),
            Err(e) => Err(ProbeError::Resolve {
                host: host.to_owned(),
                reason: format!("resolver task failed: {e}"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::port::{AlarmObservation, CheckerObservation, HealthCheckStatus};
    use crate::port::{ErrorKind, Service};
    use async_trait::async_trait;
    use std::sync::Mutex;

    fn config(kind: ProbeKind) -> ProbeConfig {
        ProbeConfig {
            name: "p".into(),
            region: "us-east-1".into(),
            kind,
            interval: crate::config::Duration::from_secs(10),
            timeout: crate::config::Duration::from_secs(3),
            url: None,
            method: None,
            expect_status: None,
            body_contains: None,
            tls_verify: true,
            address: None,
            hostname: None,
            expect_address: None,
            health_check_id: None,
            min_healthy_fraction: None,
            alarm_name: None,
        }
    }

    #[test]
    fn http_spec_defaults() {
        let mut c = config(ProbeKind::Http);
        c.url = Some("https://api.example.com/healthz".into());
        let spec = ProbeSpec::from_config(&c).unwrap();
        match spec.target {
            Target::Http {
                method,
                expect_status,
                tls_verify,
                body_contains,
                ..
            } => {
                assert_eq!(method, reqwest::Method::GET);
                assert_eq!(expect_status, 200..=399);
                assert!(tls_verify);
                assert_eq!(body_contains, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(spec.timeout, Duration::from_secs(3));
        assert_eq!(spec.interval, Duration::from_secs(10));
    }

    #[test]
    fn spec_errors_name_the_probe_and_field() {
        let c = config(ProbeKind::Http);
        assert_eq!(
            ProbeSpec::from_config(&c).unwrap_err(),
            ProbeSpecError::Missing {
                probe: "p".into(),
                field: "url",
                kind: "http"
            }
        );
        let mut c = config(ProbeKind::Http);
        c.url = Some("ftp://x".into());
        assert!(matches!(
            ProbeSpec::from_config(&c),
            Err(ProbeSpecError::Invalid { field: "url", .. })
        ));
        let mut c = config(ProbeKind::Dns);
        c.hostname = Some("x".into());
        c.expect_address = Some("not-an-ip".into());
        assert!(matches!(
            ProbeSpec::from_config(&c),
            Err(ProbeSpecError::Invalid {
                field: "expect_address",
                ..
            })
        ));
        let mut c = config(ProbeKind::Route53HealthCheck);
        c.health_check_id = Some("hc".into());
        let spec = ProbeSpec::from_config(&c).unwrap();
        assert!(matches!(
            spec.target,
            Target::Route53HealthCheck {
                min_healthy_fraction,
                ..
            } if min_healthy_fraction == 0.5
        ));
        let err = ProbeFactory::new(HealthPorts::default())
            .unwrap()
            .runner(spec)
            .err()
            .unwrap();
        assert!(matches!(err, ProbeSpecError::MissingPort { .. }), "{err}");
    }

    #[test]
    fn substring_search_handles_edges() {
        assert!(contains(b"status: ok", b"ok"));
        assert!(!contains(b"o", b"ok"));
        assert!(contains(b"anything", b""));
    }

    struct FakeRoute53(Mutex<port::Result<HealthCheckStatus>>);

    #[async_trait]
    impl HealthCheckStatusApi for FakeRoute53 {
        async fn health_check_status(&self, _id: &str) -> port::Result<HealthCheckStatus> {
            self.0.lock().unwrap().clone()
        }
    }

    fn checkers(healthy: usize, unhealthy: usize) -> HealthCheckStatus {
        let one = |ok: bool| CheckerObservation {
            region: Some("eu-west-1".into()),
            ip_address: None,
            healthy: ok,
            status: if ok {
                "Success: HTTP Status Code 200".into()
            } else {
                "Failure: Connection timed out".into()
            },
            checked_at: None,
        };
        HealthCheckStatus {
            checkers: std::iter::repeat_n(true, healthy)
                .chain(std::iter::repeat_n(false, unhealthy))
                .map(one)
                .collect(),
        }
    }

    fn route53_runner(api: Arc<FakeRoute53>, min: Option<f64>) -> ProbeRunner {
        let mut c = config(ProbeKind::Route53HealthCheck);
        c.health_check_id = Some("hc-1".into());
        c.min_healthy_fraction = min;
        let ports = HealthPorts {
            route53: Some(api),
            alarms: BTreeMap::new(),
        };
        ProbeFactory::new(ports)
            .unwrap()
            .runner(ProbeSpec::from_config(&c).unwrap())
            .unwrap()
    }

    #[tokio::test]
    async fn route53_share_of_healthy_checkers_decides() {
        let api = Arc::new(FakeRoute53(Mutex::new(Ok(checkers(4, 4)))));
        let runner = route53_runner(api.clone(), None);
        assert_eq!(runner.check().await, CheckResult::Success);
        *api.0.lock().unwrap() = Ok(checkers(3, 5));
        let CheckResult::Failure(text) = runner.check().await else {
            panic!("expected a failure")
        };
        assert!(text.contains("3 of 8"), "{text}");
        assert!(text.contains("eu-west-1: Failure"), "{text}");
        *api.0.lock().unwrap() = Ok(checkers(0, 0));
        assert!(matches!(runner.check().await, CheckResult::Inconclusive(_)));

        let strict = route53_runner(api.clone(), Some(1.0));
        *api.0.lock().unwrap() = Ok(checkers(15, 1));
        assert!(matches!(strict.check().await, CheckResult::Failure(_)));
    }

    #[tokio::test]
    async fn an_unreachable_api_is_a_failure_with_the_error() {
        let err = port::Error::new(
            ErrorKind::Unavailable,
            Service::Route53,
            "GetHealthCheckStatus",
            "dispatch failure: connection refused",
        );
        let api = Arc::new(FakeRoute53(Mutex::new(Err(err))));
        let runner = route53_runner(api, None);
        let CheckResult::Failure(text) = runner.check().await else {
            panic!("expected a failure")
        };
        assert!(text.contains("GetHealthCheckStatus"), "{text}");
        assert!(text.contains("connection refused"), "{text}");
    }

    struct FakeAlarm(Mutex<AlarmState>);

    #[async_trait]
    impl AlarmStateApi for FakeAlarm {
        async fn alarm_state(&self, name: &str) -> port::Result<AlarmObservation> {
            Ok(AlarmObservation {
                name: name.to_owned(),
                state: self.0.lock().unwrap().clone(),
                reason: Some("Threshold Crossed".into()),
                updated_at: None,
            })
        }
    }

    #[tokio::test]
    async fn alarm_state_maps_to_results() {
        let api = Arc::new(FakeAlarm(Mutex::new(AlarmState::Ok)));
        let mut c = config(ProbeKind::CloudwatchAlarm);
        c.alarm_name = Some("api-5xx".into());
        let ports = HealthPorts {
            route53: None,
            alarms: BTreeMap::from([("us-east-1".to_owned(), api.clone() as _)]),
        };
        let runner = ProbeFactory::new(ports)
            .unwrap()
            .runner(ProbeSpec::from_config(&c).unwrap())
            .unwrap();
        assert_eq!(runner.check().await, CheckResult::Success);
        *api.0.lock().unwrap() = AlarmState::Alarm;
        assert_eq!(
            runner.check().await,
            CheckResult::Failure("alarm api-5xx is in ALARM: Threshold Crossed".into())
        );
        *api.0.lock().unwrap() = AlarmState::InsufficientData;
        assert!(matches!(runner.check().await, CheckResult::Inconclusive(_)));
        *api.0.lock().unwrap() = AlarmState::Unknown("NEW".into());
        assert!(matches!(runner.check().await, CheckResult::Inconclusive(_)));
    }

    struct HungRoute53;

    #[async_trait]
    impl HealthCheckStatusApi for HungRoute53 {
        async fn health_check_status(&self, _id: &str) -> port::Result<HealthCheckStatus> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_api_costs_exactly_one_timeout() {
        let mut c = config(ProbeKind::Route53HealthCheck);
        c.health_check_id = Some("hc".into());
        let ports = HealthPorts {
            route53: Some(Arc::new(HungRoute53)),
            alarms: BTreeMap::new(),
        };
        let runner = ProbeFactory::new(ports)
            .unwrap()
            .runner(ProbeSpec::from_config(&c).unwrap())
            .unwrap();
        let start = tokio::time::Instant::now();
        let result = runner.check().await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        assert_eq!(result, CheckResult::Failure("no answer within 3s".into()));
    }

    #[tokio::test]
    async fn dns_probe_checks_the_expected_address() {
        // `localhost` resolves through /etc/hosts on every Linux; an IP literal needs no lookup.
        let resolver = Resolver::default();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(matches!(
            check_dns(&resolver, "127.0.0.1", Some(loopback)).await,
            Ok(Verdict::Pass)
        ));
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        let err = check_dns(&resolver, "127.0.0.1", Some(other))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, ProbeError::UnexpectedAddress { .. }), "{err}");
        assert!(matches!(
            check_dns(&resolver, "localhost", None).await,
            Ok(Verdict::Pass)
        ));
        // `.invalid` never resolves (RFC 6761); bounded in case the sandbox's resolver is slow.
        let err = tokio::time::timeout(
            Duration::from_secs(30),
            check_dns(&resolver, "no-such-host.invalid", None),
        )
        .await
        .expect("the system resolver answered within 30 s")
        .err()
        .unwrap();
        assert!(matches!(err, ProbeError::Resolve { .. }), "{err}");
    }

    #[test]
    fn a_busy_resolver_refuses_a_second_lookup() {
        let resolver = Resolver::default();
        resolver.busy.store(true, Ordering::Release);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt
            .block_on(resolver.resolve("example.com", 80))
            .unwrap_err();
        assert!(matches!(err, ProbeError::ResolverBusy { .. }));
        // An IP literal needs no resolver, busy or not.
        assert!(rt.block_on(resolver.resolve("10.0.0.1", 80)).is_ok());
    }
}
