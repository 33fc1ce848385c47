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
    /// Directory for the run journal (SQLite), the leadership lock and the recorded active region.
    pub dir: PathBuf,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("/var/lib/failoverd"),
        }
    }
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
    /// http: verify the server's TLS certificate (on by default).
    #[serde(default = "default_true")]
    pub tls_verify: bool,
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

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyConfig {
    pub mode: PolicyMode,
    /// The plan started when the policy decides to fail over.
    pub plan: String,
    pub min_unhealthy_for: Duration,
    pub cooldown: Duration,
    pub max_data_loss: Duration,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            mode: PolicyMode::Off,
            plan: "failover".to_owned(),
            min_unhealthy_for: Duration::from_secs(120),
            cooldown: Duration::from_secs(3600),
            max_data_loss: Duration::from_secs(60),
        }
    }
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
}

impl Default for FailoverConfig {
    fn default() -> Self {
        Self {
            backup_copy_age: BackupCopyRule::Warning,
            lost_region_budget: Duration::from_secs(30),
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
