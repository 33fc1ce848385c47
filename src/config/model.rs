//! The typed configuration: one struct per YAML section.
//!
//! Every struct here is what serde reads; cross-field rules (exactly two regions, every region
//! referenced is one of them, thresholds in range) live in `validate.rs`, so that all of them are
//! checked and reported together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Duration, SecretRef};

/// The whole configuration file.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// A name for this region pair; shown in status and used in the audit log.
    pub pair: String,
    pub regions: Vec<RegionConfig>,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub state: StateConfig,
    pub aws: AwsConfig,
    pub health: HealthConfig,
    pub policy: PolicyConfig,
    pub dns: Option<DnsConfig>,
    pub replication: ReplicationConfig,
    pub cognito: Option<CognitoConfig>,
    pub gitops: Option<GitOpsConfig>,
    pub failover: FailoverConfig,
    pub evaluation: EvaluationConfig,
    pub topology: TopologyConfig,
}

impl Config {
    /// The region that is active (serving traffic) when nothing else has been recorded yet.
    pub fn hot_region(&self) -> &str {
        self.region_with_role(RegionRole::Hot)
    }

    /// The standby region.
    pub fn cold_region(&self) -> &str {
        self.region_with_role(RegionRole::Cold)
    }

    fn region_with_role(&self, role: RegionRole) -> &str {
        // Validation guarantees exactly one region per role.
        self.regions
            .iter()
            .find(|r| r.role == role)
            .map(|r| r.name.as_str())
            .unwrap_or_default()
    }

    /// The two region names, hot first.
    pub fn region_names(&self) -> [&str; 2] {
        [self.hot_region(), self.cold_region()]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionRole {
    /// Serves traffic when failoverd first starts.
    Hot,
    /// The standby that takes over.
    Cold,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegionConfig {
    pub name: String,
    pub role: RegionRole,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    pub shutdown_grace: Duration,
    pub tokens_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            request_timeout: Duration::from_secs(30),
            body_limit_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(20),
            tokens_file: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `RUST_LOG`-style filter, e.g. `info` or `info,failoverd::engine=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: "info".to_owned(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct StateConfig {
    /// Directory for the run journal (SQLite), the leadership lock and the recorded active region
    /// (with `store: kubernetes`, only the recorded active region, which is rebuilt from the
    /// journal at start).
    pub dir: PathBuf,
    /// Where runs are journaled and how leadership is held.
    pub store: StoreKind,
    /// The cluster, namespace and Lease of `store: kubernetes`.
    pub kubernetes: Option<KubernetesState>,
}

impl StateConfig {
    /// The Kubernetes store's settings when `store: kubernetes` is selected (validation makes
    /// the section present exactly then).
    pub fn kubernetes_store(&self) -> Option<&KubernetesState> {
        self.kubernetes
            .as_ref()
            .filter(|_| self.store == StoreKind::Kubernetes)
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/lib/failoverd"),
            store: StoreKind::Sqlite,
            kubernetes: None,
        }
    }
}

/// `state.store`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// SQLite in `state.dir`, leadership by a lock file there: one replica (or several sharing
    /// one host's disk).
    #[default]
    Sqlite,
    /// Custom resources in a Kubernetes namespace, leadership on a Lease there: replicas on
    /// different nodes.
    Kubernetes,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Kubernetes => "kubernetes",
        }
    }
}

/// `state.kubernetes`: the journal's custom resources and the leader Lease.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KubernetesState {
    /// How to reach the cluster (the one failoverd runs in: `in_cluster: true`).
    pub connect: ClusterConnect,
    /// The namespace of the Lease and the journal's objects.
    #[serde(default = "default_state_namespace")]
    pub namespace: String,
    /// The Lease's name.
    #[serde(default = "default_lease_name")]
    pub lease_name: String,
    /// How long a Lease not renewed stays its holder's.
    #[serde(default = "default_lease_duration")]
    pub lease_duration: Duration,
    /// How often the holder renews it.
    #[serde(default = "default_renew_interval")]
    pub renew_interval: Duration,
    /// The largest difference between two replicas' clocks that is tolerated.
    #[serde(default = "default_max_clock_skew")]
    pub max_clock_skew: Duration,
    /// Time allowed to connect to the API server.
    #[serde(default = "default_kube_connect_timeout")]
    pub connect_timeout: Duration,
    /// Time allowed for one API request.
    #[serde(default = "default_state_request_timeout")]
    pub request_timeout: Duration,
    /// The URL this replica's API answers on for the other replica (written on the Lease while
    /// it leads; the follower forwards what only the leader serves there). Default: from the
    /// `POD_IP` environment variable (the downward API) and the port listened on.
    #[serde(default)]
    pub advertise_url: Option<String>,
}

fn default_state_namespace() -> String {
    "failoverd".to_owned()
}

fn default_lease_name() -> String {
    "failoverd".to_owned()
}

fn default_lease_duration() -> Duration {
    Duration::from_secs(15)
}

fn default_renew_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_max_clock_skew() -> Duration {
    Duration::from_secs(2)
}

fn default_state_request_timeout() -> Duration {
    Duration::from_secs(5)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RetryMode {
    #[default]
    Standard,
    Adaptive,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct AwsConfig {
    /// Send every AWS call to this endpoint instead of AWS (an emulator such as the lab's moto).
    pub endpoint_url: Option<String>,
    /// A named profile from the shared AWS config files; the default credential chain otherwise.
    pub profile: Option<String>,
    pub connect_timeout: Duration,
    /// Bound on one API operation, all retries included.
    pub operation_timeout: Duration,
    /// Bound on one attempt of an operation.
    pub attempt_timeout: Duration,
    pub max_attempts: u32,
    pub retry_mode: RetryMode,
    /// Per region of the pair: shorter (or longer) bounds for its regional services, so calls
    /// towards a region being lost give up in seconds. Route 53 (global) keeps the ones above.
    pub regions: BTreeMap<String, RegionTimeouts>,
}

/// See [`AwsConfig::regions`]; each bound left out is the `aws` section's.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RegionTimeouts {
    pub connect_timeout: Option<Duration>,
    pub operation_timeout: Option<Duration>,
    pub attempt_timeout: Option<Duration>,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            endpoint_url: None,
            profile: None,
            connect_timeout: Duration::from_secs(3),
            operation_timeout: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(10),
            max_attempts: 4,
            retry_mode: RetryMode::Standard,
            regions: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    Http,
    Tcp,
    Dns,
    Route53HealthCheck,
    CloudwatchAlarm,
}

impl ProbeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Http => "http",
            ProbeKind::Tcp => "tcp",
            ProbeKind::Dns => "dns",
            ProbeKind::Route53HealthCheck => "route53_health_check",
            ProbeKind::CloudwatchAlarm => "cloudwatch_alarm",
        }
    }
}

/// One health probe. The fields that apply depend on `kind`; validation says which are required.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeConfig {
    pub name: String,
    pub region: String,
    pub kind: ProbeKind,
    #[serde(default = "default_probe_interval")]
    pub interval: Duration,
    #[serde(default = "default_probe_timeout")]
    pub timeout: Duration,
    /// http: the URL to request.
    pub url: Option<String>,
    /// http: the method (GET by default).
    pub method: Option<String>,
    /// http: accepted status range, inclusive, e.g. `[200, 299]`.
    pub expect_status: Option<[u16; 2]>,
    /// http: a substring the body must contain.
    pub body_contains: Option<String>,
    /// http: verify the server's TLS certificate (on when not set).
    pub tls_verify: Option<bool>,
    /// tcp: `host:port`.
    pub address: Option<String>,
    /// dns: the name to resolve.
    pub hostname: Option<String>,
    /// dns: an address the answer must contain.
    pub expect_address: Option<String>,
    /// route53_health_check: the health check id.
    pub health_check_id: Option<String>,
    /// route53_health_check: the share of AWS's checkers that must report healthy (0..=1).
    pub min_healthy_fraction: Option<f64>,
    /// cloudwatch_alarm: the alarm name; the probe fails while it is in ALARM.
    pub alarm_name: Option<String>,
}

fn default_probe_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_probe_timeout() -> Duration {
    Duration::from_secs(3)
}

fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthConfig {
    /// Consecutive failures before a probe counts as down.
    pub unhealthy_after: u32,
    /// Consecutive successes before a down probe counts as up again.
    pub healthy_after: u32,
    /// How many down probes condemn a region.
    pub min_failing: u32,
    /// The down probes must be of at least two kinds, so one vantage point alone cannot condemn
    /// a region.
    pub require_distinct_kinds: bool,
    pub probes: Vec<ProbeConfig>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            unhealthy_after: 3,
            healthy_after: 2,
            min_failing: 2,
            require_distinct_kinds: true,
            probes: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PolicyMode {
    #[default]
    Off,
    ApprovalRequired,
    Automatic,
}

impl PolicyMode {
    /// As the configuration spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyMode::Off => "off",
            PolicyMode::ApprovalRequired => "approval_required",
            PolicyMode::Automatic => "automatic",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyConfig {
    pub mode: PolicyMode,
    /// The plan started when the policy decides to fail over.
    pub plan: String,
    pub min_unhealthy_for: Duration,
    pub cooldown: Duration,
    pub max_data_loss: Duration,
    /// What bounds the data loss of an automatic failover: the Aurora replication lag (the
    /// default), or nothing because the pair keeps no replicated database (`none`, refused when
    /// `replication.aurora` is configured).
    pub data_loss_bound: DataLossBound,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            mode: PolicyMode::Off,
            plan: "failover".to_owned(),
            min_unhealthy_for: Duration::from_secs(120),
            cooldown: Duration::from_secs(3600),
            max_data_loss: Duration::from_secs(60),
            data_loss_bound: DataLossBound::ReplicationLag,
        }
    }
}

/// See [`PolicyConfig::data_loss_bound`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DataLossBound {
    /// The last known Aurora replication lag must be within `max_data_loss`.
    #[default]
    ReplicationLag,
    /// The pair keeps no replicated database: there is no data loss to bound.
    None,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostedZoneConfig {
    /// A short name the records refer to.
    pub name: String,
    /// The Route 53 hosted zone id, e.g. `Z0123456789ABC`.
    pub id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RoutingPolicy {
    #[default]
    Weighted,
    Failover,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DnsRecordConfig {
    /// The `name` of a zone in `dns.zones`.
    pub zone: String,
    /// Fully qualified record name, e.g. `app.example.com.`.
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    #[serde(default)]
    pub routing: RoutingPolicy,
    /// The record set's `SetIdentifier` for each region of the pair.
    pub set_identifiers: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DnsConfig {
    pub zones: Vec<HostedZoneConfig>,
    pub records: Vec<DnsRecordConfig>,
    /// Percent of traffic sent to the target region at each stage of a graceful switchover.
    #[serde(default = "default_stages")]
    pub stages: Vec<u8>,
    /// How long each stage is held (and verified) before the next.
    #[serde(default = "default_hold")]
    pub hold: Duration,
    /// After Route 53 reports INSYNC, also wait one record TTL so resolvers pick up the change.
    #[serde(default = "default_true")]
    pub wait_ttl_after_insync: bool,
    /// Names of `health.probes` (in the target region) that must pass during each hold.
    #[serde(default)]
    pub verify_probes: Vec<String>,
    /// How an ungraceful move shifts the traffic: `api` writes the records through Route 53's
    /// control plane; `data_plane` sets a signal in the target region that the records' health
    /// checks follow, with no Route 53 call (see `data_plane`).
    #[serde(default)]
    pub mode: DnsMode,
    /// The signals of `mode: data_plane`; required with it.
    #[serde(default)]
    pub data_plane: Option<DataPlaneConfig>,
}

/// See [`DnsConfig::mode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DnsMode {
    #[default]
    Api,
    DataPlane,
}

/// The data-plane traffic signal (`dns.mode: data_plane`). Each region's record sets carry a
/// Route 53 `CLOUDWATCH_METRIC` health check on an alarm kept in the *other* region, which
/// follows a metric failoverd publishes there (`namespace`/`metric`, dimensions `Pair` and
/// `Region`): 1 drains the region (its sets turn unhealthy and Route 53 answers with the other
/// region's), 0 serves it. Moving the traffic towards a region then needs only `PutMetricData` in
/// that region.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DataPlaneConfig {
    #[serde(default = "default_signal_namespace")]
    pub namespace: String,
    #[serde(default = "default_signal_metric")]
    pub metric: String,
    /// By region of the pair: the alarm (in the other region) and the health check its sets use.
    pub signals: BTreeMap<String, SignalConfig>,
    /// How long a step waits for the alarm to follow the published value.
    #[serde(default = "default_alarm_timeout")]
    pub alarm_timeout: Duration,
    /// How long the signal step waits for Route 53's checkers to report the drained region
    /// unhealthy before it reports the shift as not confirmed by Route 53 (it does not fail).
    #[serde(default = "default_confirm_timeout")]
    pub confirm_timeout: Duration,
}

/// One region's signal.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SignalConfig {
    /// Name of the CloudWatch alarm, in the other region of the pair.
    pub alarm: String,
    /// Id of the Route 53 health check on that alarm, used by this region's record sets.
    pub health_check: String,
}

fn default_signal_namespace() -> String {
    "Failoverd".to_owned()
}

fn default_signal_metric() -> String {
    "RegionDrained".to_owned()
}

fn default_alarm_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_confirm_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_stages() -> Vec<u8> {
    vec![10, 50, 100]
}

fn default_hold() -> Duration {
    Duration::from_secs(60)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LagSource {
    #[default]
    Cloudwatch,
    Heartbeat,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeartbeatConfig {
    /// Host and port of the hot writer and the cold reader, by region name.
    pub endpoints: BTreeMap<String, String>,
    pub database: String,
    pub user: String,
    pub password: SecretRef,
    #[serde(default = "default_heartbeat_table")]
    pub table: String,
    #[serde(default = "default_heartbeat_interval")]
    pub interval: Duration,
}

fn default_heartbeat_table() -> String {
    "failoverd_heartbeat".to_owned()
}

fn default_heartbeat_interval() -> Duration {
    Duration::from_secs(1)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuroraConfig {
    pub global_cluster: String,
    /// The DB cluster identifier of the member in each region.
    pub clusters: BTreeMap<String, String>,
    #[serde(default)]
    pub lag_source: LagSource,
    /// Lag above which a graceful switchover is refused and the alert fires.
    #[serde(default = "default_max_lag")]
    pub max_lag: Duration,
    /// Observations older than this are reported as stale.
    #[serde(default = "default_stale_after")]
    pub stale_after: Duration,
    pub heartbeat: Option<HeartbeatConfig>,
}

fn default_max_lag() -> Duration {
    Duration::from_secs(5)
}

fn default_stale_after() -> Duration {
    Duration::from_secs(300)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackupVaultConfig {
    pub region: String,
    pub name: String,
    /// Newest completed copy older than this raises the alert.
    #[serde(default = "default_max_copy_age")]
    pub max_copy_age: Duration,
}

fn default_max_copy_age() -> Duration {
    Duration::from_secs(26 * 3600)
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ReplicationConfig {
    pub interval: Duration,
    pub aurora: Vec<AuroraConfig>,
    pub backup_vaults: Vec<BackupVaultConfig>,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            aurora: Vec::new(),
            backup_vaults: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CognitoMode {
    /// failoverd copies users, groups and memberships from the hot pool to the cold one.
    #[default]
    Sync,
    /// The pool uses Cognito's own multi-Region replica; failoverd monitors it.
    NativeReplica,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CognitoConfig {
    #[serde(default)]
    pub mode: CognitoMode,
    /// The user pool id in each region.
    pub pools: BTreeMap<String, String>,
    #[serde(default = "default_cognito_interval")]
    pub interval: Duration,
    /// Delete cold-pool users that no longer exist in the hot pool.
    #[serde(default)]
    pub delete_missing: bool,
    /// A sync that would delete more than this share of the cold pool stops and reports instead.
    #[serde(default = "default_max_delete_fraction")]
    pub max_delete_fraction: f64,
    /// Share of each Cognito API quota category failoverd may use (0 < share <= 1).
    #[serde(default = "default_quota_share")]
    pub quota_share: f64,
    /// native_replica: the Route 53 health check that steers the replica failover.
    pub replica_health_check_id: Option<String>,
}

fn default_cognito_interval() -> Duration {
    Duration::from_secs(300)
}

fn default_max_delete_fraction() -> f64 {
    0.05
}

fn default_quota_share() -> f64 {
    0.5
}

/// How the `failover` and `failback` plans judge and bound a takeover.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct FailoverConfig {
    /// A backup copy in the target region older than its vault's `max_copy_age`: refuse the
    /// takeover (`gate`) or go ahead with a warning in the run (`warning`).
    pub backup_copy_age: BackupCopyRule,
    /// Ungraceful: how long a call that needs the region being left (the final Cognito sync
    /// reads its pool) may take before it is skipped.
    pub lost_region_budget: Duration,
    /// How long the steps that act on each API retry its transient errors (throttling, 5xx,
    /// timeouts, refused connections) before the run gives up on them, compensations included.
    pub retry: RetryConfig,
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self {
            backup_copy_age: BackupCopyRule::Warning,
            lost_region_budget: Duration::from_secs(30),
            retry: RetryConfig::default(),
        }
    }
}

/// See [`FailoverConfig::retry`]: a deadline per API, counted from a step's first attempt.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryConfig {
    /// The longest wait between two attempts (the backoff doubles from 1 s up to it, jittered).
    pub max_backoff: Duration,
    /// DNS stages, their `INSYNC` waits, the Cognito replica's health check.
    pub route53: Duration,
    /// The promotion and the wait for the new writer.
    pub aurora: Duration,
    /// The final user sync.
    pub cognito: Duration,
    /// The GitOps steps.
    pub kubernetes: Duration,
    /// The data-plane traffic signal (`PutMetricData` in the target region).
    pub cloudwatch: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        let d = crate::engine::OutageRetry::default();
        Self {
            max_backoff: Duration(d.max_backoff),
            route53: Duration(d.route53),
            aurora: Duration(d.aurora),
            cognito: Duration(d.cognito),
            kubernetes: Duration(d.kubernetes),
            cloudwatch: Duration(d.cloudwatch),
        }
    }
}

impl RetryConfig {
    pub fn outage_retry(&self) -> crate::engine::OutageRetry {
        crate::engine::OutageRetry {
            max_backoff: self.max_backoff.get(),
            route53: self.route53.get(),
            aurora: self.aurora.get(),
            cognito: self.cognito.get(),
            kubernetes: self.kubernetes.get(),
            cloudwatch: self.cloudwatch.get(),
        }
    }
}

/// See [`FailoverConfig::backup_copy_age`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupCopyRule {
    Gate,
    #[default]
    Warning,
}

/// The continuous readiness evaluation: the `failover` plan's preflight towards the standby,
/// read-only, on a timer.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct EvaluationConfig {
    pub interval: Duration,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(300),
        }
    }
}

/// How failoverd observes the world it compares with the recorded active region (where DNS sends
/// the traffic, where each Aurora writer is, which way the Cognito sync copies).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TopologyConfig {
    /// How often every component is read. Drift blocks automatic failover, so a drift that
    /// appears between two reads is seen at most this late.
    pub observe_interval: Duration,
    /// The longest one component's read may take; past it the component is reported unknown, so
    /// a blackholed region's API never stalls the other readings.
    pub read_timeout: Duration,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            observe_interval: Duration::from_secs(30),
            read_timeout: Duration::from_secs(10),
        }
    }
}

/// The EKS clusters of the pair and what the takeover does in them: reconcile the GitOps objects
/// (Flux, Argo CD) and scale the workloads of the region taking over.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GitOpsConfig {
    /// How often a step or the standby monitor reads the objects it waits for.
    #[serde(default = "default_gitops_poll")]
    pub poll_interval: Duration,
    /// The longest wait for one Flux object or Argo CD application to be ready.
    #[serde(default = "default_gitops_wait")]
    pub reconcile_timeout: Duration,
    /// The longest wait for the scaled workloads to be ready.
    #[serde(default = "default_gitops_wait")]
    pub ready_timeout: Duration,
    /// Time allowed to connect to an API server.
    #[serde(default = "default_kube_connect_timeout")]
    pub connect_timeout: Duration,
    /// Time allowed for one API request.
    #[serde(default = "default_kube_request_timeout")]
    pub request_timeout: Duration,
    /// How often the standby cluster's GitOps objects and workloads are checked.
    #[serde(default = "default_gitops_monitor")]
    pub monitor_interval: Duration,
    pub clusters: Vec<ClusterConfig>,
}

fn default_gitops_poll() -> Duration {
    Duration::from_secs(2)
}

fn default_gitops_wait() -> Duration {
    Duration::from_secs(600)
}

fn default_kube_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_kube_request_timeout() -> Duration {
    Duration::from_secs(15)
}

fn default_gitops_monitor() -> Duration {
    Duration::from_secs(60)
}

/// One region's cluster.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterConfig {
    pub region: String,
    pub connect: ClusterConnect,
    pub flux: Option<FluxConfig>,
    pub argocd: Option<ArgoConfig>,
    pub workloads: Option<WorkloadsConfig>,
}

/// How failoverd reaches a cluster's API server: exactly one of the four (validation checks).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ClusterConnect {
    /// The cluster failoverd runs in (its service account).
    #[serde(default)]
    pub in_cluster: bool,
    /// An EKS cluster: failoverd makes its own token (a presigned STS `GetCallerIdentity`, as
    /// `aws eks get-token` does) from its AWS credentials, and refreshes it before expiry.
    pub eks: Option<EksConnect>,
    /// A kubeconfig file and context.
    pub kubeconfig: Option<KubeconfigConnect>,
    /// An API server with a bearer token (a service-account token of the other cluster).
    pub token: Option<TokenConnect>,
}

/// The one way of [`ClusterConnect`] that is set.
#[derive(Clone, Copy, Debug)]
pub enum ConnectWay<'a> {
    InCluster,
    Eks(&'a EksConnect),
    Kubeconfig(&'a KubeconfigConnect),
    Token(&'a TokenConnect),
}

impl ClusterConnect {
    /// Every way that is set (validation requires exactly one).
    pub fn ways(&self) -> Vec<ConnectWay<'_>> {
        let mut out = Vec::new();
        if self.in_cluster {
            out.push(ConnectWay::InCluster);
        }
        if let Some(e) = &self.eks {
            out.push(ConnectWay::Eks(e));
        }
        if let Some(k) = &self.kubeconfig {
            out.push(ConnectWay::Kubeconfig(k));
        }
        if let Some(t) = &self.token {
            out.push(ConnectWay::Token(t));
        }
        out
    }

    /// The way to connect (the first set; in-cluster when none is, which validation refuses).
    pub fn way(&self) -> ConnectWay<'_> {
        self.ways()
            .into_iter()
            .next()
            .unwrap_or(ConnectWay::InCluster)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EksConnect {
    /// The EKS cluster's name (the token is bound to it).
    pub cluster_name: String,
    /// The API server endpoint (`aws eks describe-cluster --query cluster.endpoint`).
    pub endpoint: String,
    /// PEM file of the cluster's CA (`cluster.certificateAuthority.data`, base64-decoded).
    pub ca_file: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KubeconfigConnect {
    /// Default: `$KUBECONFIG`, then `~/.kube/config`.
    pub path: Option<PathBuf>,
    /// Default: the file's current context.
    pub context: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TokenConnect {
    pub endpoint: String,
    /// PEM file of the API server's CA; default: the system's trust roots.
    pub ca_file: Option<PathBuf>,
    pub token: SecretRef,
}

/// A Flux object kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FluxKind {
    GitRepository,
    #[serde(rename = "OCIRepository")]
    OciRepository,
    HelmRepository,
    Kustomization,
    HelmRelease,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FluxObjectConfig {
    pub kind: FluxKind,
    #[serde(default = "default_flux_namespace")]
    pub namespace: String,
    pub name: String,
}

fn default_flux_namespace() -> String {
    "flux-system".to_owned()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FluxConfig {
    /// Reconciled sources first, then the Kustomizations and HelmReleases one after the other,
    /// in this order.
    pub objects: Vec<FluxObjectConfig>,
    /// Resume an object found suspended instead of failing (objects failoverd itself suspended
    /// are always resumed).
    #[serde(default)]
    pub resume_suspended: bool,
    /// When a graceful takeover leaves this region, suspend its Kustomizations and HelmReleases
    /// so they do not fight the scale-down; a takeover back into it resumes them.
    #[serde(default)]
    pub suspend_when_left: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArgoAppConfig {
    #[serde(default = "default_argo_namespace")]
    pub namespace: String,
    pub name: String,
}

fn default_argo_namespace() -> String {
    "argocd".to_owned()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ArgoConfig {
    /// Synced concurrently.
    pub applications: Vec<ArgoAppConfig>,
    /// Ask for a hard refresh when the health is still older than the sync this long after it
    /// finished.
    #[serde(default = "default_argo_refresh_after")]
    pub refresh_after: Duration,
}

fn default_argo_refresh_after() -> Duration {
    Duration::from_secs(30)
}

/// A workload kind with a `/scale` subresource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkloadsConfig {
    /// Replicas of the region taking over, in percent of what the region being left runs.
    #[serde(default = "default_target_percent")]
    pub target_percent: u32,
    /// Ungraceful takeovers go ahead once this share of the target replicas is ready.
    #[serde(default = "default_minimum_success_percent")]
    pub minimum_success_percent: u32,
    /// After a graceful takeover, scale the region left back to its standby replicas.
    #[serde(default)]
    pub scale_down_when_left: bool,
    pub items: Vec<WorkloadConfig>,
}

fn default_target_percent() -> u32 {
    100
}

fn default_minimum_success_percent() -> u32 {
    100
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkloadConfig {
    pub kind: WorkloadKind,
    pub namespace: String,
    /// One workload by name, or every workload matching `selector`.
    pub name: Option<String>,
    /// A label selector (`app.kubernetes.io/part-of=shop`).
    pub selector: Option<String>,
    /// Ready replicas the standby must keep (the standby monitor checks it).
    #[serde(default = "one")]
    pub standby_replicas: u32,
    /// The fewest replicas a takeover scales to; the target when the region being left cannot
    /// be read.
    #[serde(default = "one")]
    pub floor_replicas: u32,
}

fn one() -> u32 {
    1
}
