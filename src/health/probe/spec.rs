//! A probe's configuration parsed into a [`ProbeSpec`]: what to check ([`Target`]) and how
//! often, with defaults filled in and every error naming the probe and the field.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use crate::config::{ProbeConfig, ProbeKind};

/// Status codes an HTTP probe accepts when the config does not say (redirects count as alive).
pub const DEFAULT_EXPECT_STATUS: RangeInclusive<u16> = 200..=399;

/// Share of Route 53 checkers that must report healthy when the config does not say.
pub const DEFAULT_MIN_HEALTHY_FRACTION: f64 = 0.5;

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
                    tls_verify: config.tls_verify.unwrap_or(true),
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

/// A probe configuration of `kind` with every optional field unset (for tests).
#[cfg(test)]
pub(crate) fn test_config(kind: ProbeKind) -> ProbeConfig {
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
        tls_verify: None,
        address: None,
        hostname: None,
        expect_address: None,
        health_check_id: None,
        min_healthy_fraction: None,
        alarm_name: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::probe::{HealthPorts, ProbeFactory};

    fn config(kind: ProbeKind) -> ProbeConfig {
        test_config(kind)
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
}
