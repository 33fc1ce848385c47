//! [`ProbeFactory`]: what the probes of one monitor share — the HTTP clients (one verifying
//! TLS, one not) and the AWS ports ([`HealthPorts`]) — and the runner it builds for each spec.

use super::dns::Resolver;
use super::spec::{ProbeSpec, ProbeSpecError, Target};
use super::{error_chain, Io, ProbeRunner};
use crate::health::port::HealthPorts;

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
