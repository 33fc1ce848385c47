//! AWS adapters: one client factory, the implementations of the ports the domain modules define
//! (`dns::DnsApi`, `replication::{GlobalDatabaseApi, LagMetricsApi, BackupCatalogApi}`,
//! `cognito::UserDirectory`, `health::{HealthCheckStatusApi, AlarmStateApi}`), and the domain's
//! port bundles built from them ([`AwsClients::replication_ports`],
//! [`AwsClients::cognito_ports`]). Every SDK error is folded into the domain's neutral
//! [`crate::port::Error`] by [`error::from_sdk`].
//!
//! Why one factory: every client must behave the same way under failure — the same connect,
//! attempt and operation timeouts (a call into a dying region must end, not hang), the same bounded
//! SDK retries, the same credentials chain (IRSA in EKS works through it) and, for the test bed and
//! the lab, the same endpoint override. [`AwsClients::new`] builds all of them from one
//! [`ClientSettings`] and the pair's two region names.
//!
//! Building clients performs no network I/O and cannot fail for lack of AWS access: credentials are
//! resolved lazily on the first call, so the daemon starts (and serves its API and metrics) on a
//! machine without AWS, and reports the failures per call instead.
//!
//! TLS uses rustls with the *ring* provider (not aws-lc, which needs a C/CMake build), through
//! `aws-smithy-http-client`; the HTTP client is shared by all service clients so connections are
//! pooled per endpoint.

mod backup;
mod cloudwatch;
mod cognito;
pub mod error;
mod ports;
mod rds;
mod route53;
mod time_conv;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetrySpec;
use aws_types::sdk_config::SharedCredentialsProvider;

pub use backup::BackupCatalog;
pub use cloudwatch::CloudWatchMetrics;
pub use cognito::CognitoDirectory;
pub use error::{classify, from_sdk, is_retryable, Error, ErrorKind, Result, Service};
pub use rds::RdsGlobalDatabase;
pub use route53::Route53Dns;

/// How the SDK retries inside one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RetryMode {
    /// Exponential backoff with jitter and a retry quota (the SDK's standard mode).
    #[default]
    Standard,
    /// Standard plus a client-side rate limiter that slows down after throttling: the right choice
    /// for bulk work against a per-account token bucket (Cognito sync, Route 53).
    Adaptive,
}

/// Settings for every AWS client the daemon builds. The config module maps its `aws:` section onto
/// this struct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// Send every request to this URL instead of the AWS endpoint (emulators, VPC endpoints).
    pub endpoint_url: Option<String>,
    /// Time allowed to establish a TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Time allowed for a whole operation, all retries included: the upper bound on how long a
    /// call can block a step.
    pub operation_timeout: Duration,
    /// Time allowed for one attempt of an operation.
    pub operation_attempt_timeout: Duration,
    /// Attempts per operation, the first one included (1 disables SDK retries).
    pub max_attempts: u32,
    pub retry_mode: RetryMode,
    /// Named profile from the shared config files; `None` uses the default chain's choice
    /// (`AWS_PROFILE`, then `default`).
    pub profile: Option<String>,
    /// Per region: other bounds for that region's services (RDS, CloudWatch, Cognito, Backup),
    /// so calls towards a region being lost give up sooner. Route 53 is global and keeps the
    /// bounds above.
    pub regions: BTreeMap<String, RegionTimeouts>,
}

/// Bounds for one region's clients; `None` keeps the [`ClientSettings`] value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegionTimeouts {
    pub connect_timeout: Option<Duration>,
    pub operation_timeout: Option<Duration>,
    pub operation_attempt_timeout: Option<Duration>,
}

impl ClientSettings {
    /// These settings with `region`'s own bounds applied.
    pub fn for_region(&self, region: &str) -> ClientSettings {
        let mut s = self.clone();
        if let Some(t) = self.regions.get(region) {
            s.connect_timeout = t.connect_timeout.unwrap_or(s.connect_timeout);
            s.operation_timeout = t.operation_timeout.unwrap_or(s.operation_timeout);
            s.operation_attempt_timeout = t
                .operation_attempt_timeout
                .unwrap_or(s.operation_attempt_timeout);
        }
        s
    }
}

impl Default for ClientSettings {
    /// Defaults sized for a control plane that must act while a region is failing: a connect that
    /// takes more than a few seconds is a dead endpoint, an attempt gets 20 s (Aurora and Route 53
    /// control-plane calls normally answer in well under a second), and three attempts within one
    /// minute bound how long any step waits on a single call.
    fn default() -> Self {
        Self {
            endpoint_url: None,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(60),
            operation_attempt_timeout: Duration::from_secs(20),
            max_attempts: 3,
            retry_mode: RetryMode::Standard,
            profile: None,
            regions: BTreeMap::new(),
        }
    }
}

/// The factory could not build clients from the settings given.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("aws.max_attempts must be at least 1")]
    NoAttempts,
    #[error("aws.endpoint_url {url:?} is not an http(s) URL")]
    EndpointUrl { url: String },
    #[error("region name must not be empty")]
    EmptyRegion,
    #[error("the two regions of a pair must differ, both are {0:?}")]
    SameRegion(String),
}

/// The clients of one region.
#[derive(Debug, Clone)]
pub struct RegionalClients {
    region: String,
    rds: aws_sdk_rds::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    cognito: aws_sdk_cognitoidentityprovider::Client,
    backup: aws_sdk_backup::Client,
}

impl RegionalClients {
    fn new(base: &SdkConfig, region: &str, settings: &ClientSettings) -> Self {
        let region_value = Region::new(region.to_owned());
        let timeouts = timeout_config(&settings.for_region(region));
        Self {
            region: region.to_owned(),
            rds: aws_sdk_rds::Client::from_conf(
                aws_sdk_rds::config::Builder::from(base)
                    .region(region_value.clone())
                    .timeout_config(timeouts.clone())
                    .build(),
            ),
            cloudwatch: aws_sdk_cloudwatch::Client::from_conf(
                aws_sdk_cloudwatch::config::Builder::from(base)
                    .region(region_value.clone())
                    .timeout_config(timeouts.clone())
                    .build(),
            ),
            cognito: aws_sdk_cognitoidentityprovider::Client::from_conf(
                aws_sdk_cognitoidentityprovider::config::Builder::from(base)
                    .region(region_value.clone())
                    .timeout_config(timeouts.clone())
                    .build(),
            ),
            backup: aws_sdk_backup::Client::from_conf(
                aws_sdk_backup::config::Builder::from(base)
                    .region(region_value)
                    .timeout_config(timeouts)
                    .build(),
            ),
        }
    }

    /// The region these clients talk to.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Aurora Global Database port for this region.
    pub fn global_database(&self) -> RdsGlobalDatabase {
        RdsGlobalDatabase::new(self.rds.clone())
    }

    /// Lag metrics and alarm state (CloudWatch) for this region.
    pub fn cloudwatch(&self) -> CloudWatchMetrics {
        CloudWatchMetrics::new(self.cloudwatch.clone())
    }

    /// Cognito user directory for this region.
    pub fn user_directory(&self) -> CognitoDirectory {
        CognitoDirectory::new(self.cognito.clone())
    }

    /// AWS Backup catalogue for this region.
    pub fn backup_catalog(&self) -> BackupCatalog {
        BackupCatalog::new(self.backup.clone())
    }
}

/// Every AWS client of a region pair: per-region clients for the regional services and one
/// Route 53 client (a global service).
#[derive(Debug, Clone)]
pub struct AwsClients {
    regions: Arc<[RegionalClients; 2]>,
    route53: aws_sdk_route53::Client,
    credentials: Option<SharedCredentialsProvider>,
}

impl AwsClients {
    /// Builds the clients for the pair `regions` with credentials from the default chain
    /// (environment, shared profile, SSO, web identity/IRSA, ECS/EC2 metadata). No network I/O.
    pub async fn new(
        settings: &ClientSettings,
        regions: [&str; 2],
    ) -> Result<Self, ClientBuildError> {
        Self::build(settings, regions, None).await
    }

    /// Like [`AwsClients::new`], with an explicit credentials provider instead of the default
    /// chain: for emulators and the lab, which accept any static key.
    pub async fn with_credentials(
        settings: &ClientSettings,
        regions: [&str; 2],
        credentials: SharedCredentialsProvider,
    ) -> Result<Self, ClientBuildError> {
        Self::build(settings, regions, Some(credentials)).await
    }

    async fn build(
        settings: &ClientSettings,
        regions: [&str; 2],
        credentials: Option<SharedCredentialsProvider>,
    ) -> Result<Self, ClientBuildError> {
        validate(settings, regions)?;
        let [first, second] = regions;

        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http_client())
            // The loader needs a region to build the chain's own clients (STS for web identity,
            // SSO); the services get theirs below.
            .region(Region::new(first.to_owned()))
            .timeout_config(timeout_config(settings))
            .retry_config(retry_config(settings));
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile.clone());
        }
        if let Some(credentials) = credentials {
            loader = loader.credentials_provider(credentials);
        }
        // `load` reads environment variables and shared config files; it does not contact AWS.
        let base = loader.load().await;

        let route53 = aws_sdk_route53::Client::from_conf(
            aws_sdk_route53::config::Builder::from(&base)
                .region(Region::new(route53_signing_region(first)))
                .build(),
        );
        Ok(Self {
            regions: Arc::new([
                RegionalClients::new(&base, first, settings),
                RegionalClients::new(&base, second, settings),
            ]),
            route53,
            credentials: base.credentials_provider(),
        })
    }

    /// The clients of `region`, if it is one of the pair.
    pub fn region(&self, region: &str) -> Option<&RegionalClients> {
        self.regions.iter().find(|r| r.region == region)
    }

    /// Both regions' clients, in the order given to the constructor.
    pub fn regions(&self) -> &[RegionalClients; 2] {
        &self.regions
    }

    /// The credentials every client signs with (the EKS tokens are signed with them too).
    pub fn credentials(&self) -> Option<SharedCredentialsProvider> {
        self.credentials.clone()
    }

    /// The Route 53 port (DNS changes and health-check status); global.
    pub fn dns(&self) -> Route53Dns {
        Route53Dns::new(self.route53.clone())
    }
}

fn validate(settings: &ClientSettings, regions: [&str; 2]) -> Result<(), ClientBuildError> {
    if settings.max_attempts == 0 {
        return Err(ClientBuildError::NoAttempts);
    }
    if let Some(url) = &settings.endpoint_url {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(ClientBuildError::EndpointUrl { url: url.clone() });
        }
    }
    let [first, second] = regions;
    if first.is_empty() || second.is_empty() {
        return Err(ClientBuildError::EmptyRegion);
    }
    if first == second {
        return Err(ClientBuildError::SameRegion(first.to_owned()));
    }
    Ok(())
}

/// Route 53's control plane is a single global endpoint signed for one region per partition;
/// pinning it keeps DNS changes working whichever of the pair's regions is down.
fn route53_signing_region(pair_region: &str) -> String {
    if pair_region.starts_with("cn-") {
        "cn-northwest-1".to_owned()
    } else if pair_region.starts_with("us-gov-") {
        "us-gov-west-1".to_owned()
    } else {
        "us-east-1".to_owned()
    }
}

/// One HTTPS client (rustls + ring, system trust roots; plain HTTP allowed for emulators) shared by
/// every service client.
fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

fn timeout_config(settings: &ClientSettings) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(settings.connect_timeout)
        .operation_timeout(settings.operation_timeout)
        .operation_attempt_timeout(settings.operation_attempt_timeout)
        .build()
}

fn retry_config(settings: &ClientSettings) -> RetryConfig {
    let config = match settings.retry_mode {
        RetryMode::Standard => RetryConfig::standard(),
        // Under the SDK's default (legacy, "2.0") retry behaviour, the adaptive rate limiter
        // charges a throttled retry 10 tokens against a bucket whose capacity follows the
        // measured send rate (about 1 token for a control plane making a few calls a second), so
        // the first throttle stalls the operation for ~20 s — past any sensible operation
        // timeout (tests/aws/aws_retries.rs shows it). Retry behaviour 2.1 charges one token per
        // attempt, which keeps the limiter's pacing in seconds.
        RetryMode::Adaptive => RetryConfig::adaptive().with_retry_spec(RetrySpec::v2_1()),
    };
    config.with_max_attempts(settings.max_attempts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route53_is_signed_in_the_partition_home_region() {
        assert_eq!(route53_signing_region("eu-west-1"), "us-east-1");
        assert_eq!(route53_signing_region("cn-north-1"), "cn-northwest-1");
        assert_eq!(route53_signing_region("us-gov-east-1"), "us-gov-west-1");
    }

    #[test]
    fn settings_are_validated() {
        let ok = ClientSettings::default();
        assert!(validate(&ok, ["eu-west-1", "eu-central-1"]).is_ok());
        assert!(matches!(
            validate(&ok, ["eu-west-1", "eu-west-1"]),
            Err(ClientBuildError::SameRegion(_))
        ));
        assert!(matches!(
            validate(&ok, ["", "eu-west-1"]),
            Err(ClientBuildError::EmptyRegion)
        ));
        let no_attempts = ClientSettings {
            max_attempts: 0,
            ..ClientSettings::default()
        };
        assert!(matches!(
            validate(&no_attempts, ["a", "b"]),
            Err(ClientBuildError::NoAttempts)
        ));
        let bad_url = ClientSettings {
            endpoint_url: Some("localhost:5000".into()),
            ..ClientSettings::default()
        };
        assert!(matches!(
            validate(&bad_url, ["a", "b"]),
            Err(ClientBuildError::EndpointUrl { .. })
        ));
    }

    #[tokio::test]
    async fn clients_build_without_aws_access() {
        let settings = ClientSettings {
            // Nothing listens here; building must not try.
            endpoint_url: Some("http://127.0.0.1:9".into()),
            profile: Some("failoverd-test-profile-that-does-not-exist".into()),
            ..ClientSettings::default()
        };
        let clients = AwsClients::new(&settings, ["eu-west-1", "eu-central-1"])
            .await
            .expect("building clients needs no AWS access");
        assert_eq!(clients.regions()[0].region(), "eu-west-1");
        assert!(clients.region("eu-central-1").is_some());
        assert!(clients.region("us-east-1").is_none());
    }
}
