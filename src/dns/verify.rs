//! Verification between DNS stages: before more traffic goes to the target region, the probes
//! named in `dns.verify_probes` must pass against it.
//!
//! The switchover depends on the small [`StageVerifier`] trait rather than on the health monitor,
//! so that it can be driven by the monitor's latest verdicts when the daemon has them, and by
//! [`ProbeVerifier`] — which runs the configured probes itself, once, right now — otherwise (and in
//! tests). Running the probes directly also means a stage is never judged on a verdict older than
//! the stage. The checks are the health module's own probes (`crate::health::probe`), so a probe
//! means the same thing to the monitor and to a switchover.
//!
//! Only the probes *in the target region* are run: `dns.verify_probes` usually names probes of
//! both regions so the same configuration verifies a switchover and the switch back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::config::{ProbeConfig, ProbeKind};
use crate::health::probe::{
    HealthPorts, ProbeError, ProbeFactory, ProbeOutcome, ProbeRunner, ProbeSpec, ProbeSpecError,
    Target,
};
use crate::health::{AlarmStateApi, HealthCheckStatusApi};

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
    #[error("cannot build the probes for DNS stage verification: {0}")]
    Probes(#[source] ProbeSpecError),
}

/// Each probe gets this many attempts, so one lost packet does not roll a stage back.
const PROBE_ATTEMPTS: u32 = 2;
/// Pause between a probe's attempts.
const PROBE_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// A configured probe: its kind and region, and its runner or why it cannot be built.
struct Probe {
    kind: ProbeKind,
    region: String,
    runner: Result<ProbeRunner, String>,
}

/// Runs the configured probes directly with the health module's probes (HTTP, TCP, DNS, Route 53
/// health-check status, CloudWatch alarm state), without the health monitor.
pub struct ProbeVerifier {
    /// Each configured probe's runner, or why it cannot be built (reported when it is asked for).
    probes: BTreeMap<String, Probe>,
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
        Self::from_ports(
            probes,
            HealthPorts {
                route53: Some(health_checks),
                alarms,
            },
        )
    }

    /// From `health.probes` and the same ports the health monitor reads through.
    pub fn from_ports(probes: &[ProbeConfig], ports: HealthPorts) -> Result<Self, VerifierError> {
        let factory = ProbeFactory::new(ports).map_err(VerifierError::Probes)?;
        let probes = probes
            .iter()
            .map(|p| {
                let runner = ProbeSpec::from_config(p)
                    .and_then(|spec| factory.runner(spec))
                    .map_err(|e| e.to_string());
                let probe = Probe {
                    kind: p.kind,
                    region: p.region.clone(),
                    runner,
                };
                (p.name.clone(), probe)
            })
            .collect();
        Ok(Self {
            probes,
            retry_pause: PROBE_RETRY_PAUSE,
        })
    }

    /// Pause between a probe's two attempts (tests shorten it).
    pub fn with_retry_pause(mut self, pause: Duration) -> Self {
        self.retry_pause = pause;
        self
    }

    async fn check(&self, runner: &ProbeRunner) -> Result<(), String> {
        let mut last = String::new();
        for attempt in 1..=PROBE_ATTEMPTS {
            match passed(runner.spec(), runner.outcome().await) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            if attempt < PROBE_ATTEMPTS {
                tokio::time::sleep(self.retry_pause).await;
            }
        }
        Err(last)
    }
}

/// Whether one check lets traffic move, and if not why, in the words of a stage verification.
///
/// A stage needs evidence: a Route 53 health check nobody has reported on yet is not healthy. A
/// CloudWatch alarm holds a stage back only while it is in `ALARM` (a new region's alarms often
/// have insufficient data).
fn passed(spec: &ProbeSpec, outcome: Result<ProbeOutcome, ProbeError>) -> Result<(), String> {
    match (outcome, &spec.target) {
        (Ok(ProbeOutcome::Pass), _) => Ok(()),
        (Ok(ProbeOutcome::Inconclusive(_)), Target::CloudwatchAlarm { .. }) => Ok(()),
        (Ok(ProbeOutcome::Inconclusive(_)), Target::Route53HealthCheck { health_check_id, .. }) => {
            Err(format!(
                "health check {health_check_id}: no checker has reported yet"
            ))
        }
        (Ok(ProbeOutcome::Inconclusive(why)), _) => Err(why),
        (Err(ProbeError::Status { status, lo, hi }), Target::Http { url, .. }) => {
            Err(format!("{url} answered {status}, expected {lo}..={hi}"))
        }
        (
            Err(ProbeError::CheckersUnhealthy {
                healthy,
                total,
                min_fraction,
                ..
            }),
            Target::Route53HealthCheck { health_check_id, .. },
        ) => Err(format!(
            "health check {health_check_id}: {healthy} of {total} checkers healthy, {min_fraction} needed"
        )),
        (Err(e), _) => Err(e.to_string()),
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
            let result = match &probe.runner {
                Ok(runner) => self.check(runner).await,
                Err(e) => Err(e.clone()),
            };
            if let Err(e) = result {
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
