//! What the integration-test binaries share: each `tests/<area>/main.rs` (and `benches/cognito.rs`)
//! includes this module once, as `support`, and uses a different part of it:
//! - the AWS test bed, here: a moto server per test ([`moto::MotoServer`]), a fault-injecting
//!   proxy in front of it ([`fault_proxy::FaultProxy`]), and helpers that build failoverd's
//!   clients (the code under test) and raw SDK clients (for seeding moto with what a test needs,
//!   independently of the ports being tested);
//! - [`harness`]: the real `failoverd` binary run as a daemon;
//! - [`pg`]: real PostgreSQL servers (primary and standby) for the heartbeat;
//! - [`kube`]: an emulated Kubernetes API server per test ([`kube::KubeEmulator`]);
//! - [`fakes`]: configurable in-memory fakes of the ports the tests share; [`probes`]: test probe
//!   configurations.
//!
//! The Python side of the test bed (moto launcher, failoverd's moto extension, the lab world and
//! its pytest suite) lives next to this file.
#![allow(dead_code)]

pub mod fakes;
pub mod fault_proxy;
pub mod harness;
pub mod kube;
pub mod launcher;
pub mod moto;
pub mod netns;
pub mod pg;
pub mod probes;

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_route53::config::Credentials;
use aws_types::sdk_config::SharedCredentialsProvider;
use failoverd::aws::{AwsClients, ClientSettings, RetryMode};
use fault_proxy::FaultProxy;
use moto::MotoServer;

/// The pair used by the tests: moto's default region and a second one.
pub const HOT: &str = "us-east-1";
pub const COLD: &str = "us-west-2";
/// moto's default account.
pub const ACCOUNT: &str = "123456789012";

/// Static credentials: moto accepts any key, and tests must never pick up a developer's real
/// credentials from the default chain.
pub fn test_credentials() -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        "testing",
        "testing",
        None,
        None,
        "failoverd-tests",
    ))
}

/// Settings for talking to the test bed at `endpoint_url`: short timeouts so a fault shows up in
/// seconds, three attempts.
pub fn settings(endpoint_url: &str) -> ClientSettings {
    ClientSettings {
        endpoint_url: Some(endpoint_url.to_owned()),
        connect_timeout: Duration::from_secs(2),
        operation_timeout: Duration::from_secs(20),
        operation_attempt_timeout: Duration::from_secs(10),
        max_attempts: 3,
        retry_mode: RetryMode::Standard,
        profile: None,
        regions: Default::default(),
    }
}

/// failoverd's clients for the test pair, built by the factory under test.
pub async fn clients(settings: &ClientSettings) -> AwsClients {
    AwsClients::with_credentials(settings, [HOT, COLD], test_credentials())
        .await
        .expect("build clients")
}

/// An SDK config for seeding moto directly in `region` (no retries: seeding must not hide
/// emulator errors).
pub async fn raw_config(endpoint_url: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                ))
                .build_https(),
        )
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint_url)
        .credentials_provider(test_credentials())
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

/// moto with the fault proxy in front: what tests that inject faults talk to.
pub struct TestBed {
    pub moto: MotoServer,
    pub proxy: FaultProxy,
}

impl TestBed {
    pub async fn start() -> TestBed {
        let moto = MotoServer::start().await;
        let proxy = FaultProxy::start(moto.addr()).await;
        TestBed { moto, proxy }
    }

    /// The proxy's URL: the endpoint to give clients.
    pub fn endpoint_url(&self) -> String {
        self.proxy.endpoint_url()
    }
}

/// Seeds an Aurora global database `global` (aurora-postgresql 16.4) into moto at `moto_url`:
/// writer cluster `app-hot` in [`HOT`], secondary `app-cold` in [`COLD`].
pub async fn seed_global_database(moto_url: &str, global: &str) {
    let hot = aws_sdk_rds::Client::new(&raw_config(moto_url, HOT).await);
    let cold = aws_sdk_rds::Client::new(&raw_config(moto_url, COLD).await);
    let writer = hot
        .create_db_cluster()
        .db_cluster_identifier("app-hot")
        .engine("aurora-postgresql")
        .engine_version("16.4")
        .master_username("failoverd")
        .master_user_password("not-a-secret-password")
        .send()
        .await
        .expect("create writer cluster");
    let hot_arn = writer
        .db_cluster()
        .and_then(|c| c.db_cluster_arn())
        .expect("writer ARN")
        .to_owned();
    hot.create_global_cluster()
        .global_cluster_identifier(global)
        .source_db_cluster_identifier(&hot_arn)
        .send()
        .await
        .expect("create global cluster");
    cold.create_db_cluster()
        .db_cluster_identifier("app-cold")
        .engine("aurora-postgresql")
        .engine_version("16.4")
        .global_cluster_identifier(global)
        .send()
        .await
        .expect("create secondary cluster");
}

/// CloudWatch goes through the proxy (it transcodes the SDK's CBOR for moto).
pub async fn alarms_client(bed: &TestBed, region: &str) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(&raw_config(&bed.endpoint_url(), region).await)
}

pub async fn create_alarm(client: &aws_sdk_cloudwatch::Client, name: &str) {
    client
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_ELB_5XX_Count")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(10.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("put alarm");
}

pub async fn set_alarm(
    client: &aws_sdk_cloudwatch::Client,
    name: &str,
    state: aws_sdk_cloudwatch::types::StateValue,
) {
    client
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("set by the test")
        .send()
        .await
        .expect("set alarm state");
}
