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
//!
//! Files: `spec` parses a probe's configuration into a [`ProbeSpec`]; `factory` builds a
//! [`ProbeRunner`] for a spec ([`ProbeFactory`], with the shared HTTP clients and the AWS ports
//! in [`HealthPorts`]); one file per kind does the check (`http`, `tcp`, `dns` with the bounded
//! resolver, `route53`, `alarm`). This file holds the runner, which bounds every check by the
//! probe's timeout, and the errors of a check ([`ProbeError`]).

mod alarm;
mod dns;
mod factory;
mod http;
mod route53;
mod spec;
mod tcp;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::error_chain::error_chain;
use crate::health::port::{AlarmStateApi, HealthCheckStatusApi};
use crate::health::verdict::CheckResult;
use crate::port;

pub use crate::health::port::HealthPorts;
pub use factory::ProbeFactory;
pub use http::MAX_BODY_BYTES;
pub use spec::{
    ProbeSpec, ProbeSpecError, Target, DEFAULT_EXPECT_STATUS, DEFAULT_MIN_HEALTHY_FRACTION,
};

use self::dns::Resolver;

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

/// The I/O a runner checks its target with, paired with the target by [`ProbeFactory::runner`].
enum Io {
    Http(reqwest::Client),
    Resolver(Resolver),
    Route53(Arc<dyn HealthCheckStatusApi>),
    Alarm(Arc<dyn AlarmStateApi>),
}

/// Runs the checks of one probe (built by [`ProbeFactory::runner`]).
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
        match self.outcome().await {
            Ok(ProbeOutcome::Pass) => CheckResult::Success,
            Ok(ProbeOutcome::Inconclusive(why)) => CheckResult::Inconclusive(why),
            Err(e) => CheckResult::Failure(e.to_string()),
        }
    }

    /// One check, bounded by the probe's timeout, with the failure as a typed [`ProbeError`] (for
    /// callers that word failures their own way, such as DNS stage verification).
    pub async fn outcome(&self) -> Result<ProbeOutcome, ProbeError> {
        let timeout = self.spec.timeout;
        match tokio::time::timeout(timeout, self.check_unbounded()).await {
            Ok(result) => result,
            Err(_) => Err(ProbeError::Timeout(timeout)),
        }
    }

    async fn check_unbounded(&self) -> Result<ProbeOutcome, ProbeError> {
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
            ) => {
                http::check_http(client, url, method, expect_status, body_contains.as_deref()).await
            }
            (Target::Tcp { address }, Io::Resolver(resolver)) => {
                tcp::check_tcp(resolver, address).await
            }
            (
                Target::Dns {
                    hostname,
                    expect_address,
                },
                Io::Resolver(resolver),
            ) => dns::check_dns(resolver, hostname, *expect_address).await,
            (
                Target::Route53HealthCheck {
                    health_check_id,
                    min_healthy_fraction,
                },
                Io::Route53(api),
            ) => route53::check_route53(api.as_ref(), health_check_id, *min_healthy_fraction).await,
            (Target::CloudwatchAlarm { alarm_name }, Io::Alarm(api)) => {
                alarm::check_alarm(api.as_ref(), alarm_name).await
            }
            // `ProbeFactory::runner` pairs each target with its I/O; this arm is unreachable by
            // construction but must not panic.
            _ => Err(ProbeError::Request(
                "probe target and client do not match".to_owned(),
            )),
        }
    }
}

/// A check that did not fail: it passed, or it could not conclude (no data yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    Pass,
    Inconclusive(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProbeKind;
    use crate::health::port::HealthCheckStatus;
    use crate::health::probe::spec::test_config as config;
    use async_trait::async_trait;
    use std::collections::BTreeMap;

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
}
