//! Configuration loading: every error is reported at once, each with its exact path and message.

use failoverd::config::{parse_str, ConfigError};

/// A minimal valid configuration; cases below edit it.
const BASE: &str = r#"
pair: test
regions:
  - name: us-east-1
    role: hot
  - name: us-west-2
    role: cold
"#;

fn errors(yaml: &str) -> Vec<String> {
    match parse_str(yaml) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ConfigError::to_string).collect(),
    }
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

const DNS: &str = r#"
dns:
  zones:
    - name: public
      id: Z1
  records:
    - zone: public
      name: a.example.com.
      type: A
      set_identifiers: {us-east-1: a-e, us-west-2: a-w}
    - zone: public
      name: b.example.com.
      type: A
      set_identifiers: {us-east-1: b-e}
"#;

#[test]
fn base_is_valid() {
    assert_eq!(errors(BASE), Vec::<String>::new());
}

#[test]
fn example_and_lab_configs_are_valid() {
    for file in ["config/example.yaml", "config/lab.yaml"] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        if let Err(e) = failoverd::config::load_file(&path) {
            panic!("{file} is invalid: {e}");
        }
    }
}

/// Each case: the YAML and the exact errors expected, in order.
#[test]
fn bad_configs_name_path_and_problem() {
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown top-level key",
            with("colour: blue\n"),
            vec!["colour: unknown key (expected one of: pair, regions, server, log, state, aws, health, policy, dns, replication, cognito, gitops, topology, failover, evaluation)"],
        ),
        (
            "retry deadlines out of bounds",
            with("failover:\n  retry:\n    route53: 0s\n    aurora: 30d\n    max_backoff: 1h\n"),
            vec![
                "failover.retry.max_backoff: 1h is longer than the maximum of 10m",
                "failover.retry.route53: must be greater than zero",
                "failover.retry.aurora: 30days is longer than the maximum of 1day",
            ],
        ),
        (
            "per-region AWS bounds",
            with("aws:\n  regions:\n    eu-west-9: {connect_timeout: 1s}\n    us-east-1: {attempt_timeout: 40s}\n    us-west-2: {connect_timeout: 0s, timeout: 1s}\n"),
            vec![
                "aws.regions.us-west-2.timeout: unknown key",
                "aws.regions.eu-west-9: region eu-west-9 is not one of the pair (us-east-1, us-west-2)",
                "aws.regions.us-east-1.attempt_timeout: 40s must not exceed the region's operation_timeout (30s)",
                "aws.regions.us-west-2.connect_timeout: must be greater than zero",
            ],
        ),
        (
            "data-plane DNS mode without its signals",
            with("dns:\n  zones: [{name: z, id: Z1}]\n  records: [{zone: z, name: a., type: A, set_identifiers: {us-east-1: a, us-west-2: b}}]\n  mode: data_plane\n"),
            vec!["dns.data_plane: required when dns.mode is data_plane"],
        ),
        (
            "data-plane signals: unused, reserved namespace, missing region, one health check for both",
            with("dns:\n  zones: [{name: z, id: Z1}]\n  records: [{zone: z, name: a., type: A, set_identifiers: {us-east-1: a, us-west-2: b}}]\n  data_plane:\n    namespace: AWS/Route53\n    metric: ''\n    signals:\n      eu-west-1: {alarm: x, health_check: hc-1}\n      us-east-1: {alarm: '', health_check: hc-1}\n    alarm_timeout: 0s\n    confirm_timeout: 2h\n"),
            vec![
                "dns.data_plane: set, but dns.mode is api: set dns.mode to data_plane or remove this section",
                "dns.data_plane.namespace: the AWS/ namespaces are reserved for AWS services",
                "dns.data_plane.metric: must not be empty",
                "dns.data_plane.signals: no entry for region us-west-2",
                "dns.data_plane.signals.eu-west-1: region eu-west-1 is not one of the pair (us-east-1, us-west-2)",
                "dns.data_plane.signals.us-east-1.alarm: must not be empty",
                "dns.data_plane.signals.us-east-1.health_check: the same health check for both regions: each region's sets need their own",
                "dns.data_plane.alarm_timeout: must be greater than zero",
                "dns.data_plane.confirm_timeout: 2h is longer than the maximum of 1h",
            ],
        ),
        (
            "data-plane signal with an unknown key",
            with("dns:\n  zones: [{name: z, id: Z1}]\n  records: [{zone: z, name: a., type: A, set_identifiers: {us-east-1: a, us-west-2: b}}]\n  mode: data_plane\n  data_plane:\n    signals:\n      us-east-1: {alarm: a, health_check: hc-1, region: us-west-2}\n      us-west-2: {alarm: b, health_check: hc-2}\n"),
            vec!["dns.data_plane.signals.us-east-1.region: unknown key"],
        ),
        (
            "unknown retry key",
            with("failover:\n  retry:\n    dns: 5m\n"),
            vec!["failover.retry.dns: unknown key"],
        ),
        (
            "unknown nested key",
            with("server:\n  listen: 127.0.0.1:1\n  timeout: 5s\n"),
            vec!["server.timeout: unknown key"],
        ),
        (
            "unknown key inside a list item",
            with("dns:\n  zones: [{name: z, id: Z1, ttl: 5}]\n  records: [{zone: z, name: a., type: A, set_identifiers: {us-east-1: a, us-west-2: b}}]\n"),
            vec!["dns.zones[0].ttl: unknown key"],
        ),
        (
            "missing region",
            "pair: t\nregions:\n  - name: us-east-1\n    role: hot\n".to_owned(),
            vec!["regions: exactly two regions are required (one hot, one cold), found 1"],
        ),
        (
            "third region",
            with("  - name: eu-west-1\n    role: cold\n"),
            vec!["regions: exactly two regions are required (one hot, one cold), found 3"],
        ),
        (
            "two hot regions",
            "pair: t\nregions:\n  - {name: us-east-1, role: hot}\n  - {name: us-west-2, role: hot}\n".to_owned(),
            vec![
                "regions: exactly one region must have role hot, found 2",
                "regions: exactly one region must have role cold, found 0",
            ],
        ),
        (
            "missing required sections",
            "server: {}\n".to_owned(),
            vec!["pair: required", "regions: required"],
        ),
        (
            "bad duration",
            with("aws:\n  connect_timeout: 5x\n"),
            vec!["aws.connect_timeout: invalid duration \"5x\": unknown time unit \"x\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations) (write it like `500ms`, `30s`, `5m` or `1h`)"],
        ),
        (
            "duration without a unit",
            with("server:\n  request_timeout: 30\n"),
            vec!["server.request_timeout: invalid duration 30: a unit is required (write it like `30s` or `30ms`)"],
        ),
        (
            "out-of-range threshold",
            with("health:\n  unhealthy_after: 0\n  healthy_after: 500\n"),
            vec![
                "health.unhealthy_after: 0 is out of range 1..=100",
                "health.healthy_after: 500 is out of range 1..=100",
            ],
        ),
        (
            "out-of-range fraction",
            with("cognito:\n  pools: {us-east-1: p1, us-west-2: p2}\n  max_delete_fraction: 1.5\n"),
            vec!["cognito.max_delete_fraction: 1.5 is out of range (0 <= x <= 1)"],
        ),
        (
            "inline secret",
            with("replication:\n  aurora:\n    - global_cluster: g\n      clusters: {us-east-1: a, us-west-2: b}\n      lag_source: heartbeat\n      heartbeat:\n        endpoints: {us-east-1: 'h1:5432', us-west-2: 'h2:5432'}\n        database: d\n        user: u\n        password: hunter2\n"),
            vec!["replication.aurora[0].heartbeat.password: inline secrets are not allowed; reference the secret with `{file: PATH}` or `{env: VARIABLE}`"],
        ),
        (
            "record missing a region",
            with(DNS),
            vec!["dns.records[1].set_identifiers: no entry for region us-west-2"],
        ),
        (
            "unknown zone",
            with("dns:\n  zones: [{name: public, id: Z1}]\n  records: [{zone: private, name: a., type: A, set_identifiers: {us-east-1: a, us-west-2: b}}]\n"),
            vec!["dns.records[0].zone: unknown zone \"private\" (dns.zones has: public)"],
        ),
        (
            "region outside the pair",
            with("replication:\n  backup_vaults:\n    - {region: eu-west-1, name: v}\n"),
            vec!["replication.backup_vaults[0].region: region eu-west-1 is not one of the pair (us-east-1, us-west-2)"],
        ),
        (
            "probe kind needs its target",
            with("health:\n  min_failing: 1\n  probes:\n    - {name: p, region: us-east-1, kind: http}\n"),
            vec!["health.probes[0].url: required for kind http"],
        ),
        (
            "policy needing two vantage points",
            with("policy:\n  mode: automatic\nhealth:\n  min_failing: 1\n  probes:\n    - {name: a, region: us-east-1, kind: http, url: 'http://a/'}\n    - {name: b, region: us-east-1, kind: tcp, address: 'a:1'}\n    - {name: c, region: us-west-2, kind: http, url: 'http://c/'}\n    - {name: d, region: us-west-2, kind: route53_health_check, health_check_id: x}\n"),
            vec!["health.require_distinct_kinds: region us-east-1 has probes from 1 vantage point(s); with policy.mode automatic it needs two (local http/tcp/dns, route53_health_check, cloudwatch_alarm) or it can never be found unhealthy"],
        ),
        (
            "topology: unknown key and a zero interval",
            with("topology:\n  observe_interval: 0s\n  every: 5s\n"),
            vec![
                "topology.every: unknown key",
                "topology.observe_interval: must be greater than zero",
            ],
        ),
        (
            "failover and evaluation: a bad rule and a zero interval",
            with("failover:\n  backup_copy_age: maybe\nevaluation:\n  interval: 0s\n"),
            vec![
                "failover.backup_copy_age: unknown variant `maybe`, expected `gate` or `warning`",
                "evaluation.interval: must be greater than zero",
            ],
        ),
        (
            "gitops: a foreign region, two ways to connect, nothing to do, bad workloads",
            with(concat!(
                "gitops:\n  clusters:\n",
                "    - region: eu-west-9\n      connect: {in_cluster: true}\n",
                "      workloads:\n        target_percent: 0\n        items:\n",
                "          - {kind: Deployment, namespace: web, name: api, selector: 'a=b'}\n",
                "          - {kind: StatefulSet, namespace: jobs, selector: 'tier in db'}\n",
                "    - region: us-west-2\n",
                "      connect: {in_cluster: true, token: {endpoint: 'https://k', token: {env: T}}}\n",
                "    - region: us-west-2\n      connect: {eks: {cluster_name: c, endpoint: 'http://k', ca_file: ca.pem}}\n",
                "      flux:\n        objects: [{kind: Kustomization, name: apps}, {kind: Kustomization, name: apps}]\n",
            )),
            vec![
                "gitops.clusters[0].region: region eu-west-9 is not one of the pair (us-east-1, us-west-2)",
                "gitops.clusters[0].workloads.target_percent: 0 is out of range 1..=1000",
                "gitops.clusters[0].workloads.items[0]: give exactly one of name and selector",
                "gitops.clusters[0].workloads.items[1].selector: \"tier in db\" is not a label selector requirement",
                "gitops.clusters[1].connect: give exactly one of in_cluster: true, eks, kubeconfig, token (found 2)",
                "gitops.clusters[1]: configures nothing to do (add flux, argocd or workloads)",
                "gitops.clusters[2].region: region us-west-2 has two clusters",
                "gitops.clusters[2].connect.eks.endpoint: \"http://k\" is not an https URL",
                "gitops.clusters[2].flux.objects[1]: Kustomization flux-system/apps is listed twice",
            ],
        ),
        (
            "gitops: an unknown key and an unknown kind",
            with(concat!(
                "gitops:\n  clusters:\n    - region: us-west-2\n      connect: {in_cluster: true}\n",
                "      flux:\n        objects: [{kind: Bucket, name: b}]\n        suspend: true\n",
            )),
            vec![
                "gitops.clusters[0].flux.objects[0].kind: unknown variant `Bucket`, expected one of `GitRepository`, `OCIRepository`, `HelmRepository`, `Kustomization`, `HelmRelease`",
            ],
        ),
        (
            "wrong type",
            with("aws:\n  max_attempts: many\n"),
            vec!["aws.max_attempts: invalid type: string \"many\", expected u32"],
        ),
        (
            "invalid YAML",
            "pair: [unclosed\n".to_owned(),
            vec![],
        ),
    ];

    for (name, yaml, expected) in cases {
        let got = errors(&yaml);
        if name == "invalid YAML" {
            assert_eq!(got.len(), 1, "{name}: {got:?}");
            assert!(got[0].starts_with("invalid YAML (line "), "{name}: {got:?}");
            continue;
        }
        assert_eq!(got, expected, "case {name:?}");
    }
}

#[test]
fn every_error_is_reported_at_once() {
    // Errors in three different sections, of three different kinds (shape, unknown key, meaning).
    let yaml = with(
        "aws:\n  max_attempts: many\nserver:\n  colour: blue\nhealth:\n  unhealthy_after: 0\n",
    );
    let got = errors(&yaml);
    assert_eq!(
        got,
        vec![
            "server.colour: unknown key",
            "aws.max_attempts: invalid type: string \"many\", expected u32",
            "health.unhealthy_after: 0 is out of range 1..=100",
        ],
        "shape errors of every section and meaning errors of the others come together"
    );

    let yaml = with(&format!(
        "{DNS}health:\n  unhealthy_after: 0\npolicy:\n  plan: ''\n"
    ));
    let got = errors(&yaml);
    assert_eq!(
        got,
        vec![
            "health.unhealthy_after: 0 is out of range 1..=100",
            "policy.plan: must not be empty",
            "dns.records[1].set_identifiers: no entry for region us-west-2",
        ]
    );
}
