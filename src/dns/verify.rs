//! Verification between DNS stages: before more traffic goes to the target region, the probes
//! named in `dns.verify_probes` must pass against it.
//!
//! The switchover depends on the small [`StageVerifier`] trait rather than on the health monitor,
//! so that it can be driven by the monitor's latest verdicts when the daemon has them, and by
//! [`ProbeVerifier`] — which runs the configured probes itself, once, right now — otherwise (and in
//! tests). Running the probes directly also means a stage is never judged on a verdict older than
//! the stage.
//!
//! Only the probes *in the target region* are run: `dns.verify_probes` usually names probes of
//! both regions so the same configuration verifies a switchover and the switch back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{ProbeConfig, ProbeKind};
use crate::error_chain::error_chain;
use crate::health::{AlarmState, AlarmStateApi, HealthCheckStatusApi};

/// Decides whether the target region is fit for more traffic.
#[async_trait]
pub trait StageVerifier: Send + Sync {
    /// Run the probes named `probe_names` that belong to `target_region`. `Err` says, in one line
    /// per failing probe, what failed; the stage is then rolled back.
    async fn verify(&self, target_region: &str, probe_names: &[String]) -> Result<(), String>;
}

/// Why a [`ProbeVerifier`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error("cannot build the HTTP client for DNS stage verification: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// Default accepted HTTP status range (same as the health probes').
const DEFAULT_EXPECT_STATUS: [u16; 2] = [200, 399];
/// Default share of Route 53's checkers that must report healthy.
const DEFAULT_MIN_HEALTHY_FRACTION: f64 = 0.5;
/// Each probe gets this many attempts, so one lost packet does not roll a stage back.
const PROBE_ATTEMPTS: u32 = 2;
/// Pause between a probe's attempts.
const PROBE_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Runs the configured probes directly (HTTP, TCP, DNS, Route 53 health-check status, CloudWatch
/// alarm state), without the health monitor.
pub struct ProbeVerifier {
    probes: BTreeMap<String, ProbeConfig>,
    http: reqwest::Client,
    /// For probes with `tls_verify: false`.
    http_insecure: reqwest::Client,
    health_checks: Arc<dyn HealthCheckStatusApi>,
    /// CloudWatch alarm state, by region.
    alarms: BTreeMap<String, Arc<dyn AlarmStateApi>>,
    retry_pause: Duration,
}

impl ProbeVerifier {
    /// From `health.probes`, Route 53 health-check status (the `DnsApi` serves it) and, for
    /// `cloudwatch_alarm` probes, each region's alarm API.
    pub fn new(
        probes: &[ProbeConfig],
        health_checks: Arc<dyn HealthCheckStatusApi>,
        alarms: BTreeMap<String, Arc<dyn AlarmStateApi>>,
    ) -> Result<Self, VerifierError> {
        let http = reqwest::Client::builder()
            .build()
            .map_err(VerifierError::HttpClient)?;
        let http_insecure = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .map_err(VerifierError::HttpClient)?;
        Ok(Self {
            probes: probes.iter().map(|p| (p.name.clone(), p.clone())).collect(),
            http,
            http_insecure,
            health_checks,
            alarms,
            retry_pause: PROBE_RETRY_PAUSE,
        })
    }

    /// Pause between a probe's two attempts (tests shorten it).
    pub fn with_retry_pause(mut self, pause: Duration) -> Self {
        self.retry_pause = pause;
        self
    }

    async fn check(&self, p: &ProbeConfig) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 1..=PROBE_ATTEMPTS {
            match tokio::time::timeout(p.timeout.get(), self.check_once(p)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => last = e,
                Err(_) => last = format!("no answer within {}", p.timeout),
            }
            if attempt < PROBE_ATTEMPTS {
                tokio::time::sleep(self.retry_pause).await;
            }
        }
        Err(last)
    }

    async fn check_once(&self, p: &ProbeConfig) -> Result<(), String> {
        let missing = |field: &str| format!("probe has no {field}");
        match p.kind {
            ProbeKind::Http => {
                let url = p.url.as_deref().ok_or_else(|| missing("url"))?;
                let method =
                    reqwest::Method::from_bytes(p.method.as_deref().unwrap_or("GET").as_bytes())
                        .map_err(|e| format!("bad method: {e}"))?;
                let client = if p.tls_verify {
                    &self.http
                } else {
                    &self.http_insecure
                };
                let response = client
                    .request(method.clone(), url)
                    .send()
                    .await
                    .map_err(|e| format!("{method} {url}: {}", error_chain(&e)))?;
                let status = response.status().as_u16();
                let [low, high] = p.expect_status.unwrap_or(DEFAULT_EXPECT_STATUS);
                if !(low..=high).contains(&status) {
                    return Err(format!("{url} answered {status}, expected {low}..={high}"));
                }
                if let Some(needle) = &p.body_contains {
                    let body = response
                        .text()
                        .await
                        .map_err(|e| format!("{url}: reading the body: {e}"))?;
                    if !body.contains(needle.as_str()) {
                        return Err(format!("{url}: body does not contain {needle:?}"));
                    }
                }
                Ok(())
            }
            ProbeKind::Tcp => {
                let address = p.address.as_deref().ok_or_else(|| missing("address"))?;
                tokio::net::TcpStream::connect(address)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("connect {address}: {e}"))
            }
            ProbeKind::Dns => {
                let host = p.hostname.as_deref().ok_or_else(|| missing("hostname"))?;
                let addresses: Vec<String> = tokio::net::lookup_host((host, 0))
                    .await
                    .map_err(|e| format!("resolve {host}: {e}"))?
                    .map(|a| a.ip().to_string())
                    .collect();
                match &p.expect_address {
                    Some(want) if !addresses.contains(want) => Err(format!(
                        "{host} resolves to [{}], not to {want}",
                        addresses.join(", ")
                    )),
                    _ if addresses.is_empty() => Err(format!("{host} has no address")),
                    _ => Ok(()),
                }
            }
            ProbeKind::Route53HealthCheck => {
                let id = p
                    .health_check_id
                    .as_deref()
                    .ok_or_else(|| missing("health_check_id"))?;
                let status = self
                    .health_checks
                    .health_check_status(id)
                    .await
                    .map_err(|e| e.to_string())?;
                let min = p
                    .min_healthy_fraction
                    .unwrap_or(DEFAULT_MIN_HEALTHY_FRACTION);
                match status.healthy_share() {
                    None => Err(format!("health check {id}: no checker has reported yet")),
                    Some(share) if share < min => Err(format!(
                        "health check {id}: {} of {} checkers healthy, {min} needed",
                        status.checkers_healthy(),
                        status.checkers_total()
                    )),
                    Some(_) => Ok(()),
                }
            }
            ProbeKind::CloudwatchAlarm => {
                let name = p
                    .alarm_name
                    .as_deref()
                    .ok_or_else(|| missing("alarm_name"))?;
                let api = self
                    .alarms
                    .get(&p.region)
                    .ok_or_else(|| format!("no CloudWatch client for region {}", p.region))?;
                let observation = api.alarm_state(name).await.map_err(|e| e.to_string())?;
                match observation.state {
                    AlarmState::Alarm => Err(format!(
                        "alarm {name} is in ALARM{}",
                        observation
                            .reason
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    )),
                    _ => Ok(()),
                }
            }
        }
    }
}

#[async_trait]
impl StageVerifier for ProbeVerifier {
    async fn verify(&self, target_region: &str, probe_names: &[String]) -> Result<(), String> {
        let mut failures = Vec::new();
        let mut checked = 0;
        for name in probe_names {
            let Some(probe) = self.probes.get(name) else {
                failures.push(format!("{name}: no such probe in health.probes"));
                continue;
            };
            if probe.region != target_region {
                continue;
            }
            checked += 1;
            if let Err(e) = self.check(probe).await {
                failures.push(format!("{name} ({}): {e}", probe.kind.as_str()));
            }
        }
        if checked == 0 && failures.is_empty() && !probe_names.is_empty() {
            tracing::warn!(
                region = target_region,
                "none of dns.verify_probes is in the target region; nothing verified"
            );
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }
}
