//! `failoverd serve`: wires configuration, components and the HTTP API together and runs them
//! until the shutdown future (signals, owned by the binary) resolves.
//!
//! Shutdown order: readiness drops to 503 (load balancers stop sending), the listener stops
//! accepting, event streams end, in-flight requests finish, the run engine stops starting steps
//! and lets in-flight ones record their outcome, background components are told to stop and
//! drained — all within `server.shutdown_grace`, after which whatever remains is abandoned so the
//! process exits in bounded time. (An abandoned step is safe: it is *in doubt* and resolved with
//! `verify` at the next start.)

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::api::{self, AppState, TokenSet};
use crate::aws::{AwsClients, ClientBuildError, ClientSettings, RetryMode};
use crate::cognito::monitor::CognitoMonitor;
use crate::cognito::replica::HealthCheckSwitch;
use crate::config::{self as cfg, Config};
use crate::dns::verify::ProbeVerifier;
use crate::engine::{
    EngineMetrics, LocalLeadership, Mode, RunRequest, Runner, RunnerConfig, RunnerDeps,
    SqliteStore, StartError, StoreError,
};
use crate::health::port::AlarmStateApi;
use crate::health::{HealthMonitor, HealthPorts};
use crate::plans::PlanRegistry;
use crate::policy::{PolicyHandle, PolicyLoop, RunStartError, RunStarter};
use crate::replication::{ReplicationError, ReplicationHandle, ReplicationMonitor};
use crate::run_watch::{ActiveRegion, RunWatch};
use crate::shutdown::stop_channel;
use crate::status::{ComponentState, StatusBoard};
use crate::telemetry;

pub use crate::shutdown::StopSignal;

/// The run journal's file name inside `state.dir`.
pub const JOURNAL_FILE: &str = "runs.sqlite3";

/// Why the daemon could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tokens(#[from] api::auth::TokensError),
    #[error("cannot create state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the run journal: {0}")]
    Journal(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("AWS clients: {0}")]
    Aws(#[from] ClientBuildError),
    #[error("replication monitor: {0}")]
    Replication(#[from] ReplicationError),
    #[error(transparent)]
    DnsVerifier(#[from] crate::dns::verify::VerifierError),
    #[error("Cognito sync: {0}")]
    Cognito(#[from] crate::cognito::monitor::CognitoError),
    #[error("health monitor: {0}")]
    Health(#[from] crate::health::MonitorError),
    #[error("auto-failover policy: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    #[error("HTTP server failed: {0}")]
    Server(std::io::Error),
}

/// Runs the daemon until `shutdown` resolves, then stops within `server.shutdown_grace`.
pub async fn serve(
    config: Config,
    listen_override: Option<SocketAddr>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let config = Arc::new(config);
    let tokens = match &config.server.tokens_file {
        Some(path) => TokenSet::load(path)?,
        None => {
            tracing::warn!(
                "server.tokens_file is not set: every /v1 request will be refused with 401"
            );
            TokenSet::default()
        }
    };
    let registry = telemetry::new_registry()?;
    let status = StatusBoard::new(&registry)?;

    let state_dir = config.state.dir.clone();
    std::fs::create_dir_all(&state_dir).map_err(|source| ServeError::StateDir {
        path: state_dir.display().to_string(),
        source,
    })?;

    let (trigger, stop) = stop_channel();
    let mut components: JoinSet<()> = JoinSet::new();

    // AWS clients: built without any network I/O, so a machine without AWS access still starts;
    // components that cannot reach their API say so in /v1/status and retry.
    let regions = config.region_names();
    let aws = AwsClients::new(&aws_settings(&config.aws), regions).await?;
    let replication_ports = aws.replication_ports();

    // Replication lag (Aurora) and AWS Backup copies.
    let replication = ReplicationMonitor::spawn(
        &config.replication,
        regions,
        replication_ports.clone(),
        &registry,
        stop.clone(),
    )?;
    // The run engine: journal in SQLite, leadership by a lock in the state directory.
    status.report("engine", ComponentState::Starting, None);
    let store = SqliteStore::open_async(state_dir.join(JOURNAL_FILE)).await?;
    let mut plans = PlanRegistry::builtin(&state_dir);
    crate::plans::aurora::register(
        &mut plans,
        crate::plans::aurora::AuroraPlanDeps::new(
            &config.replication.aurora,
            regions,
            &replication_ports,
            Arc::new(replication.clone()),
        ),
    );
    // Cognito: users kept in step from the hot pool to the cold one (or the native replica watched).
    let cognito = match &config.cognito {
        Some(cognito_config) => {
            let handle = CognitoMonitor::spawn(
                cognito_config,
                regions,
                aws.cognito_ports(&state_dir),
                &registry,
                stop.clone(),
            )?;
            let switch: Arc<dyn HealthCheckSwitch> = Arc::new(aws.dns());
            crate::plans::cognito::register(
                &mut plans,
                handle.clone(),
                cognito_config.replica_health_check_id.clone(),
                Some(switch),
            );
            Some(handle)
        }
        None => None,
    };
    if let Some(dns) = &config.dns {
        let verifier =
            ProbeVerifier::new(&config.health.probes, Arc::new(aws.dns()), alarm_apis(&aws))?;
        crate::plans::dns::register(
            &mut plans,
            Arc::new(dns.clone()),
            regions.map(str::to_owned),
            Arc::new(aws.dns()),
            Arc::new(verifier),
        );
    }
    let grace = config.server.shutdown_grace.get();
    let runner = Runner::spawn(
        RunnerConfig {
            region_pair: format!("{}/{}", config.hot_region(), config.cold_region()),
            // Leave part of the grace period for the HTTP server and the other components.
            shutdown_grace: grace.mul_f64(0.6),
            ..RunnerConfig::default()
        },
        RunnerDeps {
            store: Arc::new(store),
            plans: Arc::new(plans),
            leadership: Arc::new(LocalLeadership::new(&state_dir)),
            metrics: EngineMetrics::register(&registry)?,
        },
    );
    let engine_active = Arc::new(AtomicBool::new(false));
    components.spawn(watch_engine(
        runner.handle(),
        status.clone(),
        engine_active.clone(),
        stop.clone(),
    ));

    // Health of both regions, and the policy that may start a failover on its own.
    let health = HealthMonitor::spawn(
        &config.health,
        HealthPorts {
            route53: Some(Arc::new(aws.dns())),
            alarms: alarm_apis(&aws),
        },
        &registry,
        stop.clone(),
    )?;
    let mut run_watch = RunWatch::new(runner.handle(), regions, &state_dir, &registry)?;
    let active_region = run_watch.active_region();
    let (active, standby) = active_region.get();
    let policy = PolicyLoop::spawn(
        &config.policy,
        &active,
        &standby,
        health.verdicts(),
        Arc::new(EngineRunStarter {
            runner: runner.handle(),
            active: engine_active,
            regions: active_region.clone(),
        }),
        &registry,
        stop.clone(),
    )?;
    run_watch.attach_policy(policy.clone());
    if let Some(cognito) = &cognito {
        run_watch.attach_cognito(cognito.clone());
    }
    components.spawn(run_watch.run(stop.clone()));
    components.spawn(mirror_replication(
        replication.clone(),
        status.clone(),
        policy.clone(),
        stop.clone(),
    ));

    let state = AppState::new(
        config.clone(),
        Arc::new(tokens),
        registry,
        status,
        runner.handle(),
        stop.clone(),
        api::Monitors {
            replication: Some(replication.clone()),
            health: Some(health.clone()),
            policy: Some(policy.clone()),
            active_region: Some(active_region.clone()),
            cognito,
        },
    );
    let app = api::router(state.clone());

    let addr = listen_override.unwrap_or(config.server.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);

    state.ready.store(true, Ordering::Release);
    tracing::info!(
        listen = %bound,
        pair = %config.pair,
        hot = config.hot_region(),
        cold = config.cold_region(),
        state_dir = %state_dir.display(),
        version = telemetry::VERSION,
        "failoverd is serving"
    );

    let mut server_stop = stop.clone();
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(async move { server_stop.stopped().await })
        .into_future();
    tokio::pin!(server);

    let result = tokio::select! {
        result = &mut server => result.map_err(ServeError::Server),
        () = shutdown => {
            let deadline = Instant::now() + grace;
            tracing::info!(grace = %humantime::format_duration(grace), "shutting down");
            state.ready.store(false, Ordering::Release);
            trigger.stop();
            let result = match tokio::time::timeout_at(deadline.into(), &mut server).await {
                Ok(result) => result.map_err(ServeError::Server),
                Err(_) => {
                    tracing::warn!("in-flight requests did not finish within the grace period; closing them");
                    Ok(())
                }
            };
            if tokio::time::timeout_at(deadline.into(), runner.shutdown()).await.is_err() {
                tracing::warn!("the run engine did not stop within the grace period; in-flight steps are left in doubt and will be verified at the next start");
            }
            drain(&mut components, deadline).await;
            result
        }
    };
    tracing::info!("failoverd stopped");
    result
}

/// How often the engine's leadership is reflected in the status board.
const ENGINE_STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// Reports the engine's leadership in `/v1/status` and `failoverd_component_up{component="engine"}`,
/// and keeps `active` (is a run active?) current for the policy.
async fn watch_engine(
    runner: crate::engine::RunnerHandle,
    status: StatusBoard,
    active: Arc<AtomicBool>,
    mut stop: StopSignal,
) {
    loop {
        let answer = runner.status().await;
        if let Ok(s) = &answer {
            active.store(s.active_run.is_some(), Ordering::Release);
        }
        match answer {
            Ok(s) if s.leader => status.report("engine", ComponentState::Ok, None),
            Ok(_) => status.report(
                "engine",
                ComponentState::Degraded,
                Some("not the leader: another failoverd holds the state directory lock".into()),
            ),
            Err(e) => status.report("engine", ComponentState::Stopped, Some(e.to_string())),
        }
        tokio::select! {
            () = stop.stopped() => return,
            () = tokio::time::sleep(ENGINE_STATUS_INTERVAL) => {}
        }
    }
}

/// The policy's view of the engine: it starts failover runs and knows whether one is active.
///
/// The target of an automatic failover is the current standby region, and the run is
/// `ungraceful`: the policy acts only when the active region is unhealthy, when a graceful
/// switchover (which needs the active region's cooperation) cannot be relied on.
struct EngineRunStarter {
    runner: crate::engine::RunnerHandle,
    /// Kept current by [`watch_engine`]; the engine itself refuses a second run in any case.
    active: Arc<AtomicBool>,
    regions: ActiveRegion,
}

#[async_trait::async_trait]
impl RunStarter for EngineRunStarter {
    async fn start_failover(
        &self,
        plan: &str,
        approval_required: bool,
        reason: &str,
    ) -> Result<String, RunStartError> {
        let request = RunRequest {
            plan: plan.to_owned(),
            mode: Mode::Ungraceful,
            dry_run: false,
            drill: false,
            reason: reason.to_owned(),
            params: serde_json::json!({
                "target_region": self.regions.get().1,
                crate::plans::APPROVAL_REQUIRED: approval_required,
            }),
            requested_by: "auto-failover-policy".to_owned(),
            idempotency_key: None,
        };
        match self.runner.start(request).await {
            Ok(view) => {
                self.active.store(true, Ordering::Release);
                Ok(view.id.to_string())
            }
            Err(StartError::RunActive { id }) => Err(RunStartError::RunActive(id.to_string())),
            Err(e @ (StartError::NotLeader | StartError::Stopped | StartError::Store(_))) => {
                Err(RunStartError::Unavailable(e.to_string()))
            }
            Err(e) => Err(RunStartError::Refused(e.to_string())),
        }
    }

    fn active_run(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }
}

/// How often component states are copied into the status board.
const STATUS_INTERVAL: Duration = Duration::from_secs(2);

/// Mirrors the replication trackers' state into `/v1/status` and `failoverd_component_up`, and
/// gives the policy the replication lag it bounds data loss with: the worst estimate over every
/// Aurora global cluster, or unknown when any is missing or stale.
async fn mirror_replication(
    replication: ReplicationHandle,
    status: StatusBoard,
    policy: PolicyHandle,
    mut stop: StopSignal,
) {
    loop {
        replication.report_status(&status);
        policy.set_replication_lag(replication.worst_data_loss().map(|b| b.estimate));
        tokio::select! {
            () = stop.stopped() => break,
            () = tokio::time::sleep(STATUS_INTERVAL) => {}
        }
    }
    replication.finished().await;
}

/// The CloudWatch alarm-state port of each region of the pair (health probes and DNS stage
/// verification both read alarms).
fn alarm_apis(aws: &AwsClients) -> BTreeMap<String, Arc<dyn AlarmStateApi>> {
    aws.regions()
        .iter()
        .map(|r| {
            let api: Arc<dyn AlarmStateApi> = Arc::new(r.cloudwatch());
            (r.region().to_owned(), api)
        })
        .collect()
}

/// The `aws:` section as the client factory's settings.
pub fn aws_settings(aws: &cfg::AwsConfig) -> ClientSettings {
    ClientSettings {
        endpoint_url: aws.endpoint_url.clone(),
        connect_timeout: aws.connect_timeout.get(),
        operation_timeout: aws.operation_timeout.get(),
        operation_attempt_timeout: aws.attempt_timeout.get(),
        max_attempts: aws.max_attempts,
        retry_mode: match aws.retry_mode {
            cfg::RetryMode::Standard => RetryMode::Standard,
            cfg::RetryMode::Adaptive => RetryMode::Adaptive,
        },
        profile: aws.profile.clone(),
    }
}

/// Waits for the background components to stop, abandoning them at the deadline.
async fn drain(components: &mut JoinSet<()>, deadline: Instant) {
    let all = async { while components.join_next().await.is_some() {} };
    if tokio::time::timeout_at(deadline.into(), all).await.is_err() {
        tracing::warn!(
            remaining = components.len(),
            "components did not stop within the grace period; aborting them"
        );
        components.abort_all();
    }
}
