//! Cross-field rules. Each check pushes an error with its path and goes on, so that one pass finds
//! every problem.

use std::collections::{BTreeMap, BTreeSet};

use super::load::ConfigError;
use super::model::*;
use super::Duration;

struct Checker<'a> {
    errors: &'a mut Vec<ConfigError>,
    regions: Vec<String>,
}

impl Checker<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    fn pair_list(&self) -> String {
        self.regions.join(", ")
    }

    /// A region named anywhere must be one of the pair.
    fn region(&mut self, path: impl Into<String>, name: &str) {
        if !self.regions.iter().any(|r| r == name) {
            let list = self.pair_list();
            self.err(
                path,
                format!("region {name} is not one of the pair ({list})"),
            );
        }
    }

    /// A map keyed by region must have exactly one entry per region of the pair.
    fn per_region<V>(&mut self, path: &str, map: &BTreeMap<String, V>) {
        for region in self.regions.clone() {
            if !map.contains_key(&region) {
                self.err(path, format!("no entry for region {region}"));
            }
        }
        for key in map.keys() {
            if !self.regions.iter().any(|r| r == key) {
                let list = self.pair_list();
                self.err(
                    format!("{path}.{key}"),
                    format!("region {key} is not one of the pair ({list})"),
                );
            }
        }
    }

    fn positive(&mut self, path: impl Into<String>, d: Duration) {
        if d.is_zero() {
            self.err(path, "must be greater than zero");
        }
    }

    /// Greater than zero and at most `max` (written like the config writes durations).
    fn bounded(&mut self, path: impl Into<String>, d: Duration, max: Duration) {
        let path = path.into();
        if d.is_zero() {
            self.err(path, "must be greater than zero");
        } else {
            self.at_most(path, d, max);
        }
    }

    /// At most `max`; zero allowed.
    fn at_most(&mut self, path: impl Into<String>, d: Duration, max: Duration) {
        if d > max {
            self.err(path, format!("{d} is longer than the maximum of {max}"));
        }
    }

    fn range_u32(&mut self, path: impl Into<String>, v: u32, lo: u32, hi: u32) {
        if v < lo || v > hi {
            self.err(path, format!("{v} is out of range {lo}..={hi}"));
        }
    }

    fn fraction(&mut self, path: impl Into<String>, v: f64, allow_zero: bool) {
        let ok = v.is_finite() && v <= 1.0 && (if allow_zero { v >= 0.0 } else { v > 0.0 });
        if !ok {
            let lo = if allow_zero { "0 <=" } else { "0 <" };
            self.err(path, format!("{v} is out of range ({lo} x <= 1)"));
        }
    }

    fn non_empty(&mut self, path: impl Into<String>, v: &str) {
        if v.trim().is_empty() {
            self.err(path, "must not be empty");
        }
    }
}

/// Exactly one way to reach a cluster, and that one complete.
fn check_connect(c: &mut Checker, at: &str, connect: &ClusterConnect) {
    let ways = connect.ways();
    if ways.len() != 1 {
        c.err(
            at,
            format!(
                "give exactly one of in_cluster: true, eks, kubeconfig, token (found {})",
                ways.len()
            ),
        );
    }
    match connect.way() {
        ConnectWay::Eks(e) => {
            c.non_empty(format!("{at}.eks.cluster_name"), &e.cluster_name);
            if !e.endpoint.starts_with("https://") || !valid_http_url(&e.endpoint) {
                c.err(
                    format!("{at}.eks.endpoint"),
                    format!("{:?} is not an https URL", e.endpoint),
                );
            }
            if e.ca_file.as_os_str().is_empty() {
                c.err(format!("{at}.eks.ca_file"), "must not be empty");
            }
        }
        ConnectWay::Token(t) => {
            if !valid_http_url(&t.endpoint) {
                c.err(
                    format!("{at}.token.endpoint"),
                    format!("{:?} is not an http(s) URL", t.endpoint),
                );
            }
        }
        ConnectWay::Kubeconfig(k) => {
            if let Some(ctx) = &k.context {
                c.non_empty(format!("{at}.kubeconfig.context"), ctx);
            }
        }
        ConnectWay::InCluster => {}
    }
}

/// A lowercase RFC 1123 label (a namespace name).
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// A lowercase RFC 1123 subdomain (an object name).
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

/// `state.store` and `state.kubernetes` agree, and the Lease's timings leave the holder time to
/// renew before anyone may take over.
fn check_state_store(c: &mut Checker, state: &StateConfig) {
    let k = match (state.store, &state.kubernetes) {
        (StoreKind::Sqlite, None) => return,
        (StoreKind::Sqlite, Some(_)) => {
            c.err(
                "state.kubernetes",
                "is used only with store: kubernetes (set state.store: kubernetes, or remove this section)",
            );
            return;
        }
        (StoreKind::Kubernetes, None) => {
            c.err(
                "state.kubernetes",
                "is required with store: kubernetes (the cluster, namespace and Lease)",
            );
            return;
        }
        (StoreKind::Kubernetes, Some(k)) => k,
    };
    check_connect(c, "state.kubernetes.connect", &k.connect);
    if let Some(url) = &k.advertise_url {
        let parsed = reqwest::Url::parse(url);
        let ok = parsed.as_ref().is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && (u.path() == "/" || u.path().is_empty())
                && u.query().is_none()
        });
        if !ok {
            c.err(
                "state.kubernetes.advertise_url",
                format!("{url:?} is not a base URL like http://10.0.3.7:8080 (http or https, a host, no path)"),
            );
        }
    }
    if !is_dns_label(&k.namespace) {
        c.err(
            "state.kubernetes.namespace",
            format!(
                "{:?} is not a namespace name (lowercase letters, digits and '-', at most 63)",
                k.namespace
            ),
        );
    }
    if !is_dns_subdomain(&k.lease_name) {
        c.err(
            "state.kubernetes.lease_name",
            format!(
                "{:?} is not an object name (lowercase letters, digits, '-' and '.')",
                k.lease_name
            ),
        );
    }
    c.bounded(
        "state.kubernetes.lease_duration",
        k.lease_duration,
        secs(10 * MINUTE),
    );
    c.bounded(
        "state.kubernetes.renew_interval",
        k.renew_interval,
        secs(5 * MINUTE),
    );
    c.at_most(
        "state.kubernetes.max_clock_skew",
        k.max_clock_skew,
        secs(MINUTE),
    );
    c.bounded(
        "state.kubernetes.connect_timeout",
        k.connect_timeout,
        secs(MINUTE),
    );
    c.bounded(
        "state.kubernetes.request_timeout",
        k.request_timeout,
        secs(MINUTE),
    );
    let (duration, renew, skew) = (
        k.lease_duration.get(),
        k.renew_interval.get(),
        k.max_clock_skew.get(),
    );
    if renew * 2 + skew > duration {
        c.err(
            "state.kubernetes.renew_interval",
            format!(
                "{} leaves too little of lease_duration ({}): the holder must be able to renew twice, plus max_clock_skew ({}), before the Lease may be taken over",
                k.renew_interval, k.lease_duration, k.max_clock_skew
            ),
        );
    }
}

/// Where a probe looks from: HTTP, TCP and DNS probes all run from this daemon over the same
/// network path, so together they are one vantage point; Route 53's checkers and a CloudWatch
/// alarm are others.
fn vantage(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Http | ProbeKind::Tcp | ProbeKind::Dns => "local",
        ProbeKind::Route53HealthCheck => "route53",
        ProbeKind::CloudwatchAlarm => "cloudwatch",
    }
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4`, `cn-north-1`…: an area AWS
/// names regions by, an optional partition (`gov`, `iso`…), a direction and a number.
fn looks_like_region(name: &str) -> bool {
    const AREAS: &[&str] = &["af", "ap", "ca", "cn", "eu", "il", "me", "mx", "sa", "us"];
    const PARTITIONS: &[&str] = &["gov", "iso", "isob", "isoe", "isof"];
    const DIRECTIONS: &[&str] = &[
        "central",
        "north",
        "south",
        "east",
        "west",
        "northeast",
        "northwest",
        "southeast",
        "southwest",
    ];
    let parts: Vec<&str> = name.split('-').collect();
    let (area, partition, direction, number) = match parts.as_slice() {
        [a, d, n] => (*a, None, *d, *n),
        [a, p, d, n] => (*a, Some(*p), *d, *n),
        _ => return false,
    };
    AREAS.contains(&area)
        && partition.is_none_or(|p| PARTITIONS.contains(&p))
        && DIRECTIONS.contains(&direction)
        && !number.is_empty()
        && number.len() <= 2
        && number.chars().all(|c| c.is_ascii_digit())
        && !number.starts_with('0')
}

/// A Route 53 hosted zone id as the API returns it without its `/hostedzone/` prefix.
fn looks_like_zone_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// An RDS cluster identifier (DB cluster or global cluster): 1..=63 letters, digits and
/// hyphens, starting with a letter, no trailing hyphen, no two hyphens in a row.
fn looks_like_rds_identifier(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--")
}

/// A Cognito user pool id is `<region>_<id>`: the region it lives in, `_`, letters and digits.
fn check_pool_id(region: &str, id: &str) -> Result<(), String> {
    let Some((prefix, rest)) = id.split_once('_') else {
        return Err(format!(
            "{id:?} is not a user pool id (like {region}_AbC123xyz)"
        ));
    };
    if id.len() > 55 || rest.is_empty() || !rest.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{id:?} is not a user pool id (like {region}_AbC123xyz)"
        ));
    }
    if prefix != region {
        return Err(format!(
            "{id:?} is a pool of region {prefix}, not of {region}"
        ));
    }
    Ok(())
}

/// The longest a few kinds of setting may be (see docs/configuration.md, "Bounds").
const MINUTE: u64 = 60;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;
fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn valid_http_url(url: &str) -> bool {
    match url.parse::<http::Uri>() {
        Ok(uri) => matches!(uri.scheme_str(), Some("http") | Some("https")) && uri.host().is_some(),
        Err(_) => false,
    }
}

/// The plans a configuration provides, by name, and whether each moves the traffic, sorted by
/// name: what `policy.plan` is checked against. A test in `crate::plans` builds the same list
/// from the plans' own metadata and keeps the two equal (the plans module is above this one, so
/// validation cannot ask it).
pub fn provided_plans(config: &Config) -> Vec<(&'static str, bool)> {
    let mut out = vec![("selftest", false), ("aurora-switchover", false)];
    if config.dns.is_some() {
        out.extend([
            ("dns-switchover", true),
            ("failover", true),
            ("failback", true),
        ]);
    }
    if let Some(c) = &config.cognito {
        out.push(match c.mode {
            CognitoMode::Sync => ("cognito-sync", false),
            CognitoMode::NativeReplica => ("cognito-replica-failover", false),
        });
    }
    if config.gitops.is_some() {
        out.push(("gitops-resync", false));
    }
    out.sort();
    out
}

pub(super) fn validate(config: &Config, errors: &mut Vec<ConfigError>) {
    let mut c = Checker {
        errors,
        regions: Vec::new(),
    };

    c.non_empty("pair", &config.pair);

    // Regions: exactly two, one hot and one cold, distinct, real-looking names.
    if config.regions.len() != 2 {
        c.err(
            "regions",
            format!(
                "exactly two regions are required (one hot, one cold), found {}",
                config.regions.len()
            ),
        );
    }
    let mut seen = BTreeSet::new();
    for (i, r) in config.regions.iter().enumerate() {
        if !looks_like_region(&r.name) {
            c.err(
                format!("regions[{i}].name"),
                format!("{:?} is not an AWS region name (like us-east-1)", r.name),
            );
        }
        if !seen.insert(r.name.as_str()) {
            c.err(
                format!("regions[{i}].name"),
                format!("region {} is listed twice", r.name),
            );
        }
    }
    if config.regions.len() == 2 {
        for role in [RegionRole::Hot, RegionRole::Cold] {
            let n = config.regions.iter().filter(|r| r.role == role).count();
            if n != 1 {
                let role = match role {
                    RegionRole::Hot => "hot",
                    RegionRole::Cold => "cold",
                };
                c.err(
                    "regions",
                    format!("exactly one region must have role {role}, found {n}"),
                );
            }
        }
    }
    c.regions = config.regions.iter().map(|r| r.name.clone()).collect();

    // Server.
    let s = &config.server;
    c.positive("server.request_timeout", s.request_timeout);
    if s.request_timeout.get() > std::time::Duration::from_secs(600) {
        c.err("server.request_timeout", "must be at most 10m");
    }
    if !(1024..=16 * 1024 * 1024).contains(&s.body_limit_bytes) {
        c.err(
            "server.body_limit_bytes",
            format!("{} is out of range 1024..=16777216", s.body_limit_bytes),
        );
    }
    c.bounded("server.shutdown_grace", s.shutdown_grace, secs(10 * MINUTE));

    // Logging.
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&config.log.level) {
        c.err(
            "log.level",
            format!("invalid filter {:?}: {e}", config.log.level),
        );
    }

    if config.state.dir.as_os_str().is_empty() {
        c.err("state.dir", "must not be empty");
    }
    check_state_store(&mut c, &config.state);

    // AWS.
    let a = &config.aws;
    if let Some(url) = &a.endpoint_url {
        if !valid_http_url(url) {
            c.err("aws.endpoint_url", format!("{url:?} is not an http(s) URL"));
        }
    }
    c.bounded("aws.connect_timeout", a.connect_timeout, secs(HOUR));
    c.bounded("aws.operation_timeout", a.operation_timeout, secs(HOUR));
    c.bounded("aws.attempt_timeout", a.attempt_timeout, secs(HOUR));
    if a.attempt_timeout > a.operation_timeout {
        c.err(
            "aws.attempt_timeout",
            "must not exceed aws.operation_timeout",
        );
    }
    for (region, t) in &a.regions {
        let path = format!("aws.regions.{region}");
        c.region(&path, region);
        let connect = t.connect_timeout.unwrap_or(a.connect_timeout);
        let operation = t.operation_timeout.unwrap_or(a.operation_timeout);
        let attempt = t.attempt_timeout.unwrap_or(a.attempt_timeout);
        for (key, d) in [
            ("connect_timeout", connect),
            ("operation_timeout", operation),
            ("attempt_timeout", attempt),
        ] {
            c.bounded(format!("{path}.{key}"), d, secs(HOUR));
        }
        if attempt > operation {
            c.err(
                format!("{path}.attempt_timeout"),
                format!("{attempt} must not exceed the region's operation_timeout ({operation})"),
            );
        }
    }
    c.range_u32("aws.max_attempts", a.max_attempts, 1, 10);

    // Health.
    let h = &config.health;
    c.range_u32("health.unhealthy_after", h.unhealthy_after, 1, 100);
    c.range_u32("health.healthy_after", h.healthy_after, 1, 100);
    c.range_u32("health.min_failing", h.min_failing, 1, 100);
    let mut probe_names = BTreeSet::new();
    for (i, p) in h.probes.iter().enumerate() {
        let at = |k: &str| format!("health.probes[{i}].{k}");
        c.non_empty(at("name"), &p.name);
        if !probe_names.insert(p.name.as_str()) {
            c.err(at("name"), format!("probe name {} is used twice", p.name));
        }
        c.region(at("region"), &p.region);
        c.bounded(at("interval"), p.interval, secs(HOUR));
        c.positive(at("timeout"), p.timeout);
        if p.timeout > p.interval {
            c.err(at("timeout"), "must not exceed the probe's interval");
        }
        let required: &[(&str, bool)] = match p.kind {
            ProbeKind::Http => &[("url", p.url.is_some())],
            ProbeKind::Tcp => &[("address", p.address.is_some())],
            ProbeKind::Dns => &[("hostname", p.hostname.is_some())],
            ProbeKind::Route53HealthCheck => &[("health_check_id", p.health_check_id.is_some())],
            ProbeKind::CloudwatchAlarm => &[("alarm_name", p.alarm_name.is_some())],
        };
        for (field, present) in required {
            if !present {
                c.err(at(field), format!("required for kind {}", p.kind.as_str()));
            }
        }
        let allowed: &[&str] = match p.kind {
            ProbeKind::Http => &[
                "url",
                "method",
                "expect_status",
                "body_contains",
                "tls_verify",
            ],
            ProbeKind::Tcp => &["address"],
            ProbeKind::Dns => &["hostname", "expect_address"],
            ProbeKind::Route53HealthCheck => &["health_check_id", "min_healthy_fraction"],
            ProbeKind::CloudwatchAlarm => &["alarm_name"],
        };
        let present = [
            ("url", p.url.is_some()),
            ("method", p.method.is_some()),
            ("expect_status", p.expect_status.is_some()),
            ("body_contains", p.body_contains.is_some()),
            ("tls_verify", p.tls_verify.is_some()),
            ("address", p.address.is_some()),
            ("hostname", p.hostname.is_some()),
            ("expect_address", p.expect_address.is_some()),
            ("health_check_id", p.health_check_id.is_some()),
            ("min_healthy_fraction", p.min_healthy_fraction.is_some()),
            ("alarm_name", p.alarm_name.is_some()),
        ];
        for (field, is_set) in present {
            if is_set && !allowed.contains(&field) {
                c.err(
                    at(field),
                    format!("does not apply to kind {}", p.kind.as_str()),
                );
            }
        }
        if let Some(url) = &p.url {
            if !valid_http_url(url) {
                c.err(at("url"), format!("{url:?} is not an http(s) URL"));
            }
        }
        if let Some(method) = &p.method {
            if method.parse::<http::Method>().is_err() || method.is_empty() {
                c.err(at("method"), format!("{method:?} is not an HTTP method"));
            }
        }
        if let Some([lo, hi]) = p.expect_status {
            if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) || lo > hi {
                c.err(
                    at("expect_status"),
                    format!("[{lo}, {hi}] is not a status range within 100..=599"),
                );
            }
        }
        if let Some(addr) = &p.address {
            let ok = addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                c.err(at("address"), format!("{addr:?} is not host:port"));
            }
        }
        if let Some(f) = p.min_healthy_fraction {
            c.fraction(at("min_healthy_fraction"), f, false);
        }
    }
    for region in c.regions.clone() {
        let n = h.probes.iter().filter(|p| p.region == region).count();
        if n > 0 && (h.min_failing as usize) > n {
            c.err(
                "health.min_failing",
                format!(
                    "{} exceeds the {n} probe(s) of region {region}, which could then never be condemned",
                    h.min_failing
                ),
            );
        }
    }

    // Policy.
    let p = &config.policy;
    c.non_empty("policy.plan", &p.plan);
    c.bounded("policy.min_unhealthy_for", p.min_unhealthy_for, secs(DAY));
    c.at_most("policy.cooldown", p.cooldown, secs(30 * DAY));
    c.at_most("policy.max_data_loss", p.max_data_loss, secs(DAY));
    if p.data_loss_bound == DataLossBound::None && !config.replication.aurora.is_empty() {
        c.err(
            "policy.data_loss_bound",
            "none, but replication.aurora is configured: its replication lag bounds the data loss",
        );
    }
    if p.mode != PolicyMode::Off {
        let plans = provided_plans(config);
        match plans.iter().find(|(name, _)| *name == p.plan) {
            None => {
                let names: Vec<&str> = plans.iter().map(|(name, _)| *name).collect();
                let hint = if p.plan == "failover" {
                    " (the failover plan needs the dns section)"
                } else {
                    ""
                };
                c.err(
                    "policy.plan",
                    format!(
                        "unknown plan {:?}{hint}; this configuration has: {}",
                        p.plan,
                        names.join(", ")
                    ),
                );
            }
            Some((_, moves_traffic)) if !moves_traffic => c.err(
                "policy.plan",
                format!(
                    "plan {} does not move the traffic, so it cannot take over from a lost region (use failover)",
                    p.plan
                ),
            ),
            Some(_) => {}
        }
        if p.data_loss_bound == DataLossBound::ReplicationLag
            && config.replication.aurora.is_empty()
        {
            c.err(
                "policy.data_loss_bound",
                "the policy bounds the data loss by the Aurora replication lag, but replication.aurora is empty, so it could never fail over on its own: configure replication.aurora, or set data_loss_bound: none if the pair keeps no replicated database",
            );
        }
    }
    if p.mode != PolicyMode::Off {
        let hot = config.hot_region().to_owned();
        if !h.probes.iter().any(|probe| probe.region == hot) {
            c.err(
                "policy.mode",
                format!("automatic decisions need health.probes for the hot region {hot}"),
            );
        } else if h.require_distinct_kinds {
            // Either region can be the active one (after a switchover): each must be condemnable.
            for region in c.regions.clone() {
                let vantages: BTreeSet<&str> = h
                    .probes
                    .iter()
                    .filter(|probe| probe.region == region)
                    .map(|probe| vantage(probe.kind))
                    .collect();
                if vantages.len() < 2 {
                    c.err(
                        "health.require_distinct_kinds",
                        format!(
                            "region {region} has probes from {} vantage point(s); with policy.mode {} it needs two (local http/tcp/dns, route53_health_check, cloudwatch_alarm) or it can never be found unhealthy",
                            vantages.len(),
                            p.mode.as_str()
                        ),
                    );
                }
            }
        }
    }

    // DNS.
    if let Some(dns) = &config.dns {
        let mut zone_names = BTreeSet::new();
        for (i, z) in dns.zones.iter().enumerate() {
            c.non_empty(format!("dns.zones[{i}].name"), &z.name);
            if !zone_names.insert(z.name.as_str()) {
                c.err(
                    format!("dns.zones[{i}].name"),
                    format!("zone {} is declared twice", z.name),
                );
            }
            if !looks_like_zone_id(&z.id) {
                let hint = if z.id.starts_with("/hostedzone/") {
                    " (write it without /hostedzone/)"
                } else {
                    ""
                };
                c.err(
                    format!("dns.zones[{i}].id"),
                    format!(
                        "{:?} is not a Route 53 hosted zone id (like Z0123456789ABC){hint}",
                        z.id
                    ),
                );
            }
        }
        if dns.records.is_empty() {
            c.err("dns.records", "at least one record is required");
        }
        let mut record_keys = BTreeMap::new();
        for (i, r) in dns.records.iter().enumerate() {
            let at = |k: &str| format!("dns.records[{i}].{k}");
            let key = (
                r.zone.clone(),
                r.name.trim_end_matches('.').to_ascii_lowercase(),
                r.record_type.clone(),
            );
            if let Some(first) = record_keys.insert(key, i) {
                c.err(
                    format!("dns.records[{i}]"),
                    format!(
                        "{} {} in zone {} is already listed as dns.records[{first}]",
                        r.name, r.record_type, r.zone
                    ),
                );
            }
            if !zone_names.contains(r.zone.as_str()) {
                let known: Vec<&str> = zone_names.iter().copied().collect();
                c.err(
                    at("zone"),
                    format!(
                        "unknown zone {:?} (dns.zones has: {})",
                        r.zone,
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            c.non_empty(at("name"), &r.name);
            const TYPES: &[&str] = &["A", "AAAA", "CNAME", "TXT", "MX", "SRV", "CAA", "NS"];
            if !TYPES.contains(&r.record_type.as_str()) {
                c.err(
                    at("type"),
                    format!(
                        "{:?} is not a supported record type ({})",
                        r.record_type,
                        TYPES.join(", ")
                    ),
                );
            }
            c.per_region(&at("set_identifiers"), &r.set_identifiers);
            let mut by_value: BTreeMap<&str, &str> = BTreeMap::new();
            for (region, id) in &r.set_identifiers {
                let path = format!("dns.records[{i}].set_identifiers.{region}");
                if id.is_empty() || id.chars().count() > 128 {
                    c.err(path, "a set identifier is 1..=128 characters");
                } else if let Some(other) = by_value.insert(id.as_str(), region.as_str()) {
                    c.err(
                        path,
                        format!("{id:?} is also the set identifier of {other}: each region's record set needs its own"),
                    );
                }
            }
        }
        if dns.stages.is_empty() {
            c.err("dns.stages", "at least one stage is required");
        }
        for (i, w) in dns.stages.iter().enumerate() {
            if *w == 0 || *w > 100 {
                c.err(
                    format!("dns.stages[{i}]"),
                    format!("{w} is out of range 1..=100"),
                );
            }
            if i > 0 && dns.stages[i - 1] >= *w {
                c.err(format!("dns.stages[{i}]"), "stages must increase");
            }
        }
        if dns.stages.last().is_some_and(|w| *w != 100) {
            c.err("dns.stages", "the last stage must be 100");
        }
        c.at_most("dns.hold", dns.hold, secs(HOUR));
        for (i, name) in dns.verify_probes.iter().enumerate() {
            if !h.probes.iter().any(|p| &p.name == name) {
                c.err(
                    format!("dns.verify_probes[{i}]"),
                    format!("no probe named {name:?} in health.probes"),
                );
            }
        }
        validate_data_plane(&mut c, dns);
    }

    // Replication.
    let rep = &config.replication;
    c.bounded("replication.interval", rep.interval, secs(HOUR));
    for (i, a) in rep.aurora.iter().enumerate() {
        let at = |k: &str| format!("replication.aurora[{i}].{k}");
        if !looks_like_rds_identifier(&a.global_cluster) {
            c.err(
                at("global_cluster"),
                format!("{:?} is not a global cluster identifier (letters, digits and single hyphens, starting with a letter, at most 63)", a.global_cluster),
            );
        }
        c.per_region(&at("clusters"), &a.clusters);
        for (region, id) in &a.clusters {
            if !looks_like_rds_identifier(id) {
                c.err(
                    format!("{}.{region}", at("clusters")),
                    format!("{id:?} is not a DB cluster identifier (letters, digits and single hyphens, starting with a letter, at most 63)"),
                );
            }
        }
        c.bounded(at("max_lag"), a.max_lag, secs(DAY));
        c.bounded(at("stale_after"), a.stale_after, secs(7 * DAY));
        match (&a.lag_source, &a.heartbeat) {
            (LagSource::Heartbeat, None) => {
                c.err(at("heartbeat"), "required when lag_source is heartbeat")
            }
            (LagSource::Cloudwatch, Some(_)) => c.err(
                at("heartbeat"),
                "set lag_source: heartbeat to use the heartbeat",
            ),
            _ => {}
        }
        if let Some(hb) = &a.heartbeat {
            c.per_region(&at("heartbeat.endpoints"), &hb.endpoints);
            c.non_empty(at("heartbeat.database"), &hb.database);
            c.non_empty(at("heartbeat.user"), &hb.user);
            c.bounded(at("heartbeat.interval"), hb.interval, secs(5 * MINUTE));
            let table_ok = !hb.table.is_empty()
                && hb
                    .table
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.');
            if !table_ok {
                c.err(
                    at("heartbeat.table"),
                    format!("{:?} is not a plain table name", hb.table),
                );
            }
        }
    }
    for (i, v) in rep.backup_vaults.iter().enumerate() {
        c.region(format!("replication.backup_vaults[{i}].region"), &v.region);
        let name_ok = (2..=50).contains(&v.name.len())
            && v.name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
        if !name_ok {
            c.err(
                format!("replication.backup_vaults[{i}].name"),
                format!(
                    "{:?} is not a backup vault name (2..=50 letters, digits, - and _)",
                    v.name
                ),
            );
        }
        c.bounded(
            format!("replication.backup_vaults[{i}].max_copy_age"),
            v.max_copy_age,
            secs(366 * DAY),
        );
    }

    // Cognito.
    if let Some(cog) = &config.cognito {
        c.per_region("cognito.pools", &cog.pools);
        for (region, id) in &cog.pools {
            if let Err(e) = check_pool_id(region, id) {
                c.err(format!("cognito.pools.{region}"), e);
            }
        }
        c.bounded("cognito.interval", cog.interval, secs(DAY));
        c.fraction("cognito.max_delete_fraction", cog.max_delete_fraction, true);
        c.fraction("cognito.quota_share", cog.quota_share, false);
        match (cog.mode, &cog.replica_health_check_id) {
            (CognitoMode::NativeReplica, None) => c.err(
                "cognito.replica_health_check_id",
                "required when mode is native_replica",
            ),
            (CognitoMode::Sync, Some(_)) => c.err(
                "cognito.replica_health_check_id",
                "applies only when mode is native_replica",
            ),
            _ => {}
        }
    }

    if let Some(g) = &config.gitops {
        validate_gitops(&mut c, g);
    }

    // Failover and readiness.
    c.bounded(
        "failover.lost_region_budget",
        config.failover.lost_region_budget,
        secs(HOUR),
    );
    let r = &config.failover.retry;
    c.bounded(
        "failover.retry.max_backoff",
        r.max_backoff,
        Duration::from_secs(600),
    );
    for (key, d) in [
        ("route53", r.route53),
        ("aurora", r.aurora),
        ("cognito", r.cognito),
        ("kubernetes", r.kubernetes),
        ("cloudwatch", r.cloudwatch),
    ] {
        c.bounded(
            format!("failover.retry.{key}"),
            d,
            Duration::from_secs(24 * 3600),
        );
    }
    c.bounded("evaluation.interval", config.evaluation.interval, secs(DAY));
    // Topology.
    let t = &config.topology;
    c.bounded("topology.observe_interval", t.observe_interval, secs(HOUR));
    c.bounded("topology.read_timeout", t.read_timeout, secs(5 * MINUTE));
}

/// `dns.mode: data_plane` and its signals.
fn validate_data_plane(c: &mut Checker, dns: &crate::config::DnsConfig) {
    use crate::config::DnsMode;
    let Some(dp) = &dns.data_plane else {
        if dns.mode == DnsMode::DataPlane {
            c.err("dns.data_plane", "required when dns.mode is data_plane");
        }
        return;
    };
    if dns.mode != DnsMode::DataPlane {
        c.err(
            "dns.data_plane",
            "set, but dns.mode is api: set dns.mode to data_plane or remove this section",
        );
    }
    // CloudWatch: namespaces and metric names are 1..=255 characters, and `AWS/` is reserved.
    for (key, value) in [("namespace", &dp.namespace), ("metric", &dp.metric)] {
        let at = format!("dns.data_plane.{key}");
        if value.trim().is_empty() {
            c.err(at, "must not be empty");
        } else if value.len() > 255 {
            c.err(at, "CloudWatch allows at most 255 characters");
        } else if key == "namespace" && value.starts_with("AWS/") {
            c.err(at, "the AWS/ namespaces are reserved for AWS services");
        }
    }
    c.per_region("dns.data_plane.signals", &dp.signals);
    let mut alarms = BTreeSet::new();
    for (region, signal) in &dp.signals {
        let at = |k: &str| format!("dns.data_plane.signals.{region}.{k}");
        c.non_empty(at("alarm"), &signal.alarm);
        if signal.alarm.len() > 255 {
            c.err(
                at("alarm"),
                "CloudWatch alarm names are at most 255 characters",
            );
        }
        c.non_empty(at("health_check"), &signal.health_check);
        if !signal.health_check.is_empty() && !alarms.insert(signal.health_check.as_str()) {
            c.err(
                at("health_check"),
                "the same health check for both regions: each region's sets need their own",
            );
        }
    }
    c.bounded(
        "dns.data_plane.alarm_timeout",
        dp.alarm_timeout,
        Duration::from_secs(3600),
    );
    c.bounded(
        "dns.data_plane.confirm_timeout",
        dp.confirm_timeout,
        Duration::from_secs(3600),
    );
}

/// A Kubernetes label selector in its string form: comma-separated requirements `k=v`, `k==v`,
/// `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`; keys and values as Kubernetes spells them.
fn check_label_selector(s: &str) -> Result<(), String> {
    fn key_ok(k: &str) -> bool {
        let name = k.rsplit('/').next().unwrap_or(k);
        !name.is_empty()
            && name.len() <= 63
            && k.len() <= 317
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    }
    fn value_ok(v: &str) -> bool {
        v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    }
    if s.trim().is_empty() {
        return Err("must not be empty".into());
    }
    // Split on commas outside parentheses.
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, ch) in s.char_indices() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("{s:?}: unbalanced parentheses"));
        }
    }
    if depth != 0 {
        return Err(format!("{s:?}: unbalanced parentheses"));
    }
    parts.push(&s[start..]);
    for part in parts {
        let part = part.trim();
        let bad = || format!("{part:?} is not a label selector requirement");
        let ok = if let Some(k) = part.strip_prefix('!') {
            key_ok(k.trim())
        } else if let Some((k, v)) = part
            .split_once("!=")
            .or_else(|| part.split_once("=="))
            .or_else(|| part.split_once('='))
        {
            key_ok(k.trim()) && value_ok(v.trim())
        } else if let Some((k, rest)) = part
            .split_once(" notin ")
            .or_else(|| part.split_once(" in "))
        {
            let rest = rest.trim();
            key_ok(k.trim())
                && rest.starts_with('(')
                && rest.ends_with(')')
                && rest[1..rest.len() - 1]
                    .split(',')
                    .all(|v| value_ok(v.trim()))
        } else {
            key_ok(part)
        };
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

fn validate_gitops(c: &mut Checker<'_>, g: &GitOpsConfig) {
    c.positive("gitops.poll_interval", g.poll_interval);
    c.positive("gitops.reconcile_timeout", g.reconcile_timeout);
    c.positive("gitops.ready_timeout", g.ready_timeout);
    c.positive("gitops.connect_timeout", g.connect_timeout);
    c.positive("gitops.request_timeout", g.request_timeout);
    c.positive("gitops.monitor_interval", g.monitor_interval);
    let day = std::time::Duration::from_secs(86_400);
    for (path, d) in [
        ("gitops.reconcile_timeout", g.reconcile_timeout),
        ("gitops.ready_timeout", g.ready_timeout),
        ("gitops.monitor_interval", g.monitor_interval),
    ] {
        if d.get() > day {
            c.err(path, "must be at most 24h");
        }
    }
    for (path, d) in [
        ("gitops.poll_interval", g.poll_interval),
        ("gitops.connect_timeout", g.connect_timeout),
        ("gitops.request_timeout", g.request_timeout),
    ] {
        if d.get() > std::time::Duration::from_secs(300) {
            c.err(path, "must be at most 5m");
        }
    }
    if g.clusters.is_empty() {
        c.err("gitops.clusters", "must list at least one cluster");
    }
    let mut seen = BTreeSet::new();
    for (i, cl) in g.clusters.iter().enumerate() {
        let at = format!("gitops.clusters[{i}]");
        c.region(format!("{at}.region"), &cl.region);
        if !seen.insert(cl.region.as_str()) {
            c.err(
                format!("{at}.region"),
                format!("region {} has two clusters", cl.region),
            );
        }
        check_connect(c, &format!("{at}.connect"), &cl.connect);
        if cl.flux.is_none() && cl.argocd.is_none() && cl.workloads.is_none() {
            c.err(
                at.clone(),
                "configures nothing to do (add flux, argocd or workloads)",
            );
        }
        if let Some(f) = &cl.flux {
            if f.objects.is_empty() {
                c.err(format!("{at}.flux.objects"), "must not be empty");
            }
            let mut names = BTreeSet::new();
            for (j, o) in f.objects.iter().enumerate() {
                let p = format!("{at}.flux.objects[{j}]");
                c.non_empty(format!("{p}.name"), &o.name);
                c.non_empty(format!("{p}.namespace"), &o.namespace);
                if !names.insert((format!("{:?}", o.kind), &o.namespace, &o.name)) {
                    c.err(
                        p,
                        format!("{:?} {}/{} is listed twice", o.kind, o.namespace, o.name),
                    );
                }
            }
        }
        if let Some(a) = &cl.argocd {
            if a.applications.is_empty() {
                c.err(format!("{at}.argocd.applications"), "must not be empty");
            }
            for (j, app) in a.applications.iter().enumerate() {
                c.non_empty(format!("{at}.argocd.applications[{j}].name"), &app.name);
                c.non_empty(
                    format!("{at}.argocd.applications[{j}].namespace"),
                    &app.namespace,
                );
            }
            c.bounded(
                format!("{at}.argocd.refresh_after"),
                a.refresh_after,
                secs(HOUR),
            );
        }
        if let Some(w) = &cl.workloads {
            let p = format!("{at}.workloads");
            c.range_u32(format!("{p}.target_percent"), w.target_percent, 1, 1000);
            c.range_u32(
                format!("{p}.minimum_success_percent"),
                w.minimum_success_percent,
                1,
                100,
            );
            if w.items.is_empty() {
                c.err(format!("{p}.items"), "must not be empty");
            }
            for (j, item) in w.items.iter().enumerate() {
                let q = format!("{p}.items[{j}]");
                c.non_empty(format!("{q}.namespace"), &item.namespace);
                match (&item.name, &item.selector) {
                    (Some(n), None) => c.non_empty(format!("{q}.name"), n),
                    (None, Some(s)) => {
                        if let Err(e) = check_label_selector(s) {
                            c.err(format!("{q}.selector"), e);
                        }
                    }
                    _ => c.err(q.clone(), "give exactly one of name and selector"),
                }
                c.range_u32(
                    format!("{q}.standby_replicas"),
                    item.standby_replicas,
                    0,
                    10_000,
                );
                c.range_u32(
                    format!("{q}.floor_replicas"),
                    item.floor_replicas,
                    1,
                    10_000,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::looks_like_region;

    #[test]
    fn label_selectors() {
        for ok in [
            "app=web",
            "app.kubernetes.io/part-of=shop,tier!=db",
            "env in (prod, staging)",
            "env notin (dev)",
            "canary",
            "!canary",
            "a==b",
        ] {
            assert!(super::check_label_selector(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a=b=c", "env in prod", "a=(b", "=b", "a b"] {
            assert!(super::check_label_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn region_names() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "ap-southeast-4",
            "cn-north-1",
            "us-iso-east-1",
            "mx-central-1",
            "il-central-1",
        ] {
            assert!(looks_like_region(ok), "{ok}");
        }
        for bad in [
            "us-east",
            "US-EAST-1",
            "useast1",
            "us--1",
            "us-east-1a",
            "",
            "zz-fake-9",
            "us-up-1",
            "us-foo-east-1",
            "us-east-01",
        ] {
            assert!(!looks_like_region(bad), "{bad}");
        }
    }
}
