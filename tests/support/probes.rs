//! Test probe configurations: [`probe`] fills every field of a `ProbeConfig` with its default
//! (TLS verified, nothing else set); tests set what their probe kind needs with `..probe(..)`.

use std::time::Duration;

use failoverd::config::{Duration as ConfigDuration, ProbeConfig, ProbeKind};

/// A probe of `kind` for `region` checked every `interval`, each check bounded by `timeout`.
pub fn probe(
    name: &str,
    region: &str,
    kind: ProbeKind,
    interval: Duration,
    timeout: Duration,
) -> ProbeConfig {
    ProbeConfig {
        name: name.into(),
        region: region.into(),
        kind,
        interval: ConfigDuration(interval),
        timeout: ConfigDuration(timeout),
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
