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

/// A valid DNS section (for the cases that need the failover plan).
const DNS_OK: &str = "dns:\n  zones: [{name: z, id: Z1}]\n  records: [{zone: z, name: a., type: A, set_identifiers: {us-east-1: a, us-west-2: b}}]\n";

/// The "billion laughs": nine levels of nine aliases each.
fn billion_laughs() -> String {
    let mut y = String::from("pair: t\na0: &a0 [lol]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        let items = vec![prev; 9].join(", ");
        y.push_str(&format!("a{i}: &a{i} [{items}]\n"));
    }
    y
}

#[test]
fn a_file_that_is_not_utf8_names_the_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        b"pair: t\nregions:\n  - {name: us-\xffeast-1, role: hot}\n",
    )
    .unwrap();
    let e = failoverd::config::load_file(&path).unwrap_err();
    assert_eq!(
        e.errors
            .iter()
            .map(ConfigError::to_string)
            .collect::<Vec<_>>(),
        ["the file is not UTF-8: byte 0xff at line 3, column 15 (offset 31)"]
    );
}

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
            vec!["aws.connect_timeout: invalid duration \"5x\": unknown time unit \"x\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations) (write it like `500ms`, `30s`, `5m` or `1h`) (line 9, column 20)"],
        ),
        (
            "duration without a unit",
            with("server:\n  request_timeout: 30\n"),
            vec!["server.request_timeout: invalid duration 30: a unit is required (write it like `30s` or `30ms`) (line 9, column 20)"],
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
            with("cognito:\n  pools: {us-east-1: us-east-1_P1, us-west-2: us-west-2_P2}\n  max_delete_fraction: 1.5\n"),
            vec!["cognito.max_delete_fraction: 1.5 is out of range (0 <= x <= 1)"],
        ),
        (
            "inline secret",
            with("replication:\n  aurora:\n    - global_cluster: g\n      clusters: {us-east-1: a, us-west-2: b}\n      lag_source: heartbeat\n      heartbeat:\n        endpoints: {us-east-1: 'h1:5432', us-west-2: 'h2:5432'}\n        database: d\n        user: u\n        password: hunter2\n"),
            vec!["replication.aurora[0].heartbeat.password: inline secrets are not allowed; reference the secret with `{file: PATH}` or `{env: VARIABLE}` (line 17, column 19)"],
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
            with("replication:\n  backup_vaults:\n    - {region: eu-west-1, name: vault}\n"),
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
            vec![
                "policy.plan: unknown plan \"failover\" (the failover plan needs the dns section); this configuration has: aurora-switchover, selftest",
                "policy.data_loss_bound: the policy bounds the data loss by the Aurora replication lag, but replication.aurora is empty, so it could never fail over on its own: configure replication.aurora, or set data_loss_bound: none if the pair keeps no replicated database",
                "health.require_distinct_kinds: region us-east-1 has probes from 1 vantage point(s); with policy.mode automatic it needs two (local http/tcp/dns, route53_health_check, cloudwatch_alarm) or it can never be found unhealthy",
            ],
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
                "failover.backup_copy_age: unknown variant `maybe`, expected `gate` or `warning` (line 9, column 20)",
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
                "gitops.clusters[0].flux.objects[0].kind: unknown variant `Bucket`, expected one of `GitRepository`, `OCIRepository`, `HelmRepository`, `Kustomization`, `HelmRelease` (line 13, column 26)",
            ],
        ),
        (
            "wrong type",
            with("aws:\n  max_attempts: many\n"),
            vec!["aws.max_attempts: invalid type: string \"many\", expected u32 (line 9, column 17)"],
        ),
        (
            "durations past what any setting allows",
            with("replication:\n  aurora:\n    - global_cluster: g\n      clusters: {us-east-1: a, us-west-2: b}\n      stale_after: 20000y\n"),
            vec!["replication.aurora[0].stale_after: invalid duration \"20000y\": longer than 3650 days, more than any setting allows (write it like `500ms`, `30s`, `5m` or `1h`) (line 12, column 20)"],
        ),
        (
            "durations past each setting's maximum",
            with("server:\n  shutdown_grace: 3000days\naws:\n  connect_timeout: 2h\n  attempt_timeout: 2h\n  operation_timeout: 2h\nreplication:\n  interval: 2h\n  aurora:\n    - global_cluster: g\n      clusters: {us-east-1: a, us-west-2: b}\n      stale_after: 8days\n  backup_vaults:\n    - {region: us-west-2, name: vault, max_copy_age: 400days}\npolicy:\n  cooldown: 31days\n  max_data_loss: 2days\n"),
            vec![
                "server.shutdown_grace: 3000days is longer than the maximum of 10m",
                "aws.connect_timeout: 2h is longer than the maximum of 1h",
                "aws.operation_timeout: 2h is longer than the maximum of 1h",
                "aws.attempt_timeout: 2h is longer than the maximum of 1h",
                "policy.cooldown: 31days is longer than the maximum of 30days",
                "policy.max_data_loss: 2days is longer than the maximum of 1day",
                "replication.interval: 2h is longer than the maximum of 1h",
                "replication.aurora[0].stale_after: 8days is longer than the maximum of 7days",
                "replication.backup_vaults[0].max_copy_age: 400days is longer than the maximum of 366days",
            ],
        ),
        (
            "a policy plan the configuration does not provide, or that moves no traffic",
            with(&format!("{DNS_OK}policy:\n  mode: approval_required\n  plan: no-such-plan\n  data_loss_bound: none\nhealth:\n  min_failing: 1\n  require_distinct_kinds: false\n  probes: [{{name: p, region: us-east-1, kind: tcp, address: 'a:1'}}]\n")),
            vec!["policy.plan: unknown plan \"no-such-plan\"; this configuration has: aurora-switchover, dns-switchover, failback, failover, selftest"],
        ),
        (
            "a policy plan that moves no traffic",
            with(&format!("{DNS_OK}policy:\n  mode: automatic\n  plan: selftest\n  data_loss_bound: none\nhealth:\n  min_failing: 1\n  require_distinct_kinds: false\n  probes: [{{name: p, region: us-east-1, kind: tcp, address: 'a:1'}}]\n")),
            vec!["policy.plan: plan selftest does not move the traffic, so it cannot take over from a lost region (use failover)"],
        ),
        (
            "no data-loss bound declared while Aurora is configured",
            with("policy:\n  data_loss_bound: none\nreplication:\n  aurora:\n    - global_cluster: g\n      clusters: {us-east-1: a, us-west-2: b}\n"),
            vec!["policy.data_loss_bound: none, but replication.aurora is configured: its replication lag bounds the data loss"],
        ),
        (
            "DNS: one set identifier for both regions, a record twice, a zone id that is a path",
            with("dns:\n  zones: [{name: z, id: '../../../etc/passwd'}, {name: y, id: /hostedzone/Z1}]\n  records:\n    - {zone: z, name: a.example.com., type: A, set_identifiers: {us-east-1: same, us-west-2: same}}\n    - {zone: z, name: A.example.com, type: A, set_identifiers: {us-east-1: a, us-west-2: b}}\n"),
            vec![
                "dns.zones[0].id: \"../../../etc/passwd\" is not a Route 53 hosted zone id (like Z0123456789ABC)",
                "dns.zones[1].id: \"/hostedzone/Z1\" is not a Route 53 hosted zone id (like Z0123456789ABC) (write it without /hostedzone/)",
                "dns.records[0].set_identifiers.us-west-2: \"same\" is also the set identifier of us-east-1: each region's record set needs its own",
                "dns.records[1]: A.example.com A in zone z is already listed as dns.records[0]",
            ],
        ),
        (
            "names of the wrong shape: region, clusters, vault, pools",
            "pair: t\nregions:\n  - {name: zz-fake-9, role: hot}\n  - {name: us-west-2, role: cold}\nreplication:\n  aurora:\n    - global_cluster: 'my global'\n      clusters: {zz-fake-9: 1abc, us-west-2: 'ok--no'}\n  backup_vaults:\n    - {region: us-west-2, name: 'v/1'}\ncognito:\n  pools: {zz-fake-9: zz-fake-9_Abc, us-west-2: us-east-1_Abc}\n".to_owned(),
            vec![
                "regions[0].name: \"zz-fake-9\" is not an AWS region name (like us-east-1)",
                "replication.aurora[0].global_cluster: \"my global\" is not a global cluster identifier (letters, digits and single hyphens, starting with a letter, at most 63)",
                "replication.aurora[0].clusters.us-west-2: \"ok--no\" is not a DB cluster identifier (letters, digits and single hyphens, starting with a letter, at most 63)",
                "replication.aurora[0].clusters.zz-fake-9: \"1abc\" is not a DB cluster identifier (letters, digits and single hyphens, starting with a letter, at most 63)",
                "replication.backup_vaults[0].name: \"v/1\" is not a backup vault name (2..=50 letters, digits, - and _)",
                "cognito.pools.us-west-2: \"us-east-1_Abc\" is a pool of region us-east-1, not of us-west-2",
            ],
        ),
        (
            "a key of another probe kind",
            with("health:\n  min_failing: 1\n  probes:\n    - {name: p, region: us-east-1, kind: tcp, address: 'a:1', tls_verify: false}\n"),
            vec!["health.probes[0].tls_verify: does not apply to kind tcp"],
        ),
        (
            "a YAML tag",
            "pair: !!binary aGVsbG8=\nregions:\n  - {name: us-east-1, role: hot}\n  - {name: us-west-2, role: !cold cold}\n".to_owned(),
            vec![
                "YAML tags are not supported (found !!binary at line 1, column 7): write a plain value",
                "regions[1].role: YAML tags are not supported (found !cold): write a plain value",
            ],
        ),
        (
            "a second document",
            format!("{BASE}---\npair: other\n"),
            vec!["the file holds more than one YAML document (the second starts at line 8); failoverd reads exactly one"],
        ),
        (
            "aliases that expand past the limit",
            billion_laughs(),
            vec!["invalid YAML: its anchors and aliases expand to too many nodes (the first alias is at line 3, column 10); write the values out"],
        ),
        (
            "a section name that is not a string",
            with("1: x\n"),
            vec!["section names must be strings, found 1"],
        ),
        (
            "invalid YAML",
            "pair: [unclosed\n".to_owned(),
            vec![],
        ),
    ];

    let mut mismatches = Vec::new();
    for (name, yaml, expected) in cases {
        let got = errors(&yaml);
        if name == "invalid YAML" {
            assert_eq!(got.len(), 1, "{name}: {got:?}");
            assert!(got[0].starts_with("invalid YAML (line "), "{name}: {got:?}");
            continue;
        }
        if got != expected {
            mismatches.push(format!(
                "case {name:?}\n  got:      {got:#?}\n  expected: {expected:#?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
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
            "aws.max_attempts: invalid type: string \"many\", expected u32 (line 9, column 17)",
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

#[test]
fn state_kubernetes_is_checked_key_by_key() {
    let ok = with(
        "state:\n  store: kubernetes\n  kubernetes:\n    connect: {in_cluster: true}\n    advertise_url: http://10.0.3.7:8080\n",
    );
    assert_eq!(errors(&ok), Vec::<String>::new());

    let e = errors(&with("state:\n  store: kubernetes\n"));
    assert!(
        e.iter()
            .any(|m| m.starts_with("state.kubernetes: is required with store: kubernetes")),
        "{e:?}"
    );
    let e = errors(&with(
        "state:\n  kubernetes:\n    connect: {in_cluster: true}\n",
    ));
    assert!(
        e.iter()
            .any(|m| m.starts_with("state.kubernetes: is used only with store: kubernetes")),
        "{e:?}"
    );
    let e = errors(&with(
        "state:\n  store: kubernetes\n  kubernetes:\n    connect: {in_cluster: true}\n    namespace: Fail_Overd\n    lease_duration: 10s\n    renew_interval: 5s\n    max_clock_skew: 1s\n    advertise_url: 10.0.3.7:8080/api\n",
    ));
    for want in [
        "state.kubernetes.namespace: \"Fail_Overd\" is not a namespace name",
        "state.kubernetes.renew_interval: 5s leaves too little of lease_duration (10s)",
        "state.kubernetes.advertise_url: \"10.0.3.7:8080/api\" is not a base URL",
    ] {
        assert!(
            e.iter().any(|m| m.starts_with(want)),
            "{want:?} not in {e:?}"
        );
    }
    assert_eq!(e.len(), 3, "{e:?}");
}
