//! `failoverd serve`: wires configuration, components and the HTTP API together and runs them
//! until the shutdown future (signals, owned by the binary) resolves.
//!
//! Shutdown order: readiness drops to 503 (load balancers stop sending), the listener stops
//! accepting, event streams end, in-flight requests finish, the run engine stops starting steps
//! and lets in-flight ones record their outcome, background components are told to stop and
//! drained — all within `server.shutdown_grace`, after which whatever remains is abandoned so the
//! process exits in bounded time. (An abandoned step is safe: it is *in doubt* and resolved with
//! `verify` at the next start.)

use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
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
    EngineMetrics, LocalLeadership, ObservedStore, RunGauges, Runner, RunnerConfig, RunnerDeps,
    SqliteStore, StoreError, StoreHealth,
};
use crate::health::HealthMonitor;
use crate::plans::aurora::AuroraPlanDeps;
use crate::plans::cognito::CognitoPlanDeps;
use crate::plans::dns::DnsPlanDeps;
use crate::plans::{PlanDeps, TakeoverParts};
use crate::policy::engine::EngineRunStarter;
use crate::policy::{PolicyHandle, PolicyLoop};
use crate::replication::{ReplicationError, ReplicationHandle, ReplicationMonitor};
use crate::shutdown::stop_channel;
use crate::status::{ComponentState, StatusBoard};
use crate::telemetry;
use crate::topology::{
    ActiveRegionError, ActiveRegionGauge, ActiveRegionRecord, ActiveRegionRecorder, DriftGauge,
    ObservedComponent, RegionPair, TopologyView,
};

pub use crate::shutdown::StopSignal;

/// Copies the engine's leadership into `to` (the components built before the runner follow it)
/// and into the policy's facts, until `stop`.
async fn forward_leadership(
    mut from: tokio::sync::watch::Receiver<Option<bool>>,
    to: tokio::sync::watch::Sender<Option<bool>>,
    policy: PolicyHandle,
    mut stop: StopSignal,
) {
    loop {
        let now = *from.borrow_and_update();
        to.send_replace(now);
        policy.set_leader(now);
        tokio::select! {
            _ = stop.stopped() => break,
            changed = from.changed() => if changed.is_err() { break },
        }
    }
    // Stopping: nothing acts any more.
    to.send_replace(Some(false));
}

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
    #[error(transparent)]
    ActiveRegion(#[from] ActiveRegionError),
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

    // The region pair and the region recorded as active: refuse to start on a record that
    // cannot be read rather than guess which region receives the traffic.
    let pair = RegionPair::from_config(&config);
    crate::topology::metrics::register_pair_info(&registry, &config.pair, &pair)?;
    let active_record = Arc::new(ActiveRegionRecord::open(&state_dir, pair.clone())?);
    let active_region = active_record.view();

    // AWS clients: built without any network I/O, so a machine without AWS access still starts;
    // components that cannot reach their API say so in /v1/status and retry.
    let aws = AwsClients::new(&aws_settings(&config.aws), pair.regions()).await?;
    let replication_ports = aws.replication_ports();

    // Replication lag (Aurora) and AWS Backup copies.
    // Whether this process leads, as the engine finds out (forwarded once the runner exists):
    // the components that write outside the journal act only while it is `Some(true)`.
    let (leader_tx, leader_rx) = tokio::sync::watch::channel(None::<bool>);
    let replication = ReplicationMonitor::spawn(
        &config.replication,
        &pair,
        replication_ports.clone(),
        &registry,
        leader_rx.clone(),
        stop.clone(),
    )?;
    // Cognito: users kept in step from the hot pool to the cold one (or the native replica watched).
    let cognito = match &config.cognito {
        Some(cognito_config) => Some((
            cognito_config,
            CognitoMonitor::spawn(
                cognito_config,
                &pair,
                aws.cognito_ports(&state_dir),
                &registry,
                leader_rx.clone(),
                stop.clone(),
            )?,
        )),
        None => None,
    };

    // Route 53 health-check status and CloudWatch alarms: read by the health probes and by the
    // verification between DNS stages.
    let health_ports = aws.health_ports();

    // The Kubernetes clusters (GitOps): built without network I/O; the monitor reports an
    // unreachable cluster in /v1/status and keeps trying.
    let gitops = config.gitops.as_ref().map(|g| {
        let clusters = crate::kube::clusters(g, aws.credentials())
            .into_iter()
            .map(|c| {
                (
                    c.region().to_owned(),
                    Arc::new(c) as Arc<dyn crate::gitops::ClusterApi>,
                )
            })
            .collect();
        Arc::new(crate::gitops::GitOps {
            clusters,
            config: Arc::new(g.clone()),
        })
    });
    // The observed topology (DNS, each Aurora writer, the Cognito direction) against the recorded
    // active region: drift is shown in /v1/status, exported, blocks automatic failover and
    // refuses the failover's preflight.
    let topology = TopologyView::new(
        active_region.clone(),
        topology_components(
            &config,
            &pair,
            &aws,
            &replication_ports,
            cognito.as_ref().map(|(_, h)| h),
            gitops.as_ref(),
        ),
        config.topology.read_timeout.get(),
    );

    // Health of both regions: the policy's input and the takeover's preflight.
    let health = HealthMonitor::spawn(
        &config.health,
        health_ports.clone(),
        &registry,
        stop.clone(),
    )?;

    let gitops_status = match &gitops {
        Some(g) => {
            let (watch, run) = crate::gitops::monitor::monitor(
                (**g).clone(),
                Some(crate::gitops::monitor::GitOpsGauges::register(&registry)?),
                stop.clone(),
            );
            components.spawn(run);
            Some(watch)
        }
        None => None,
    };

    // The plans, from everything they need.
    let dns_plan = match &config.dns {
        Some(dns) => {
            let verifier = ProbeVerifier::from_ports(&config.health.probes, health_ports.clone())?;
            let deps = DnsPlanDeps::new(
                Arc::new(dns.clone()),
                pair.clone(),
                Arc::new(aws.dns()),
                Arc::new(verifier),
            );
            Some(match data_plane_signals(&config, &pair, &aws) {
                Some(signals) => deps.with_data_plane(crate::dns::dataplane::DataPlaneDeps {
                    signals,
                    status: Arc::new(aws.dns()),
                    budget: config.failover.lost_region_budget.get(),
                }),
                None => deps,
            })
        }
        None => None,
    };
    let plans = Arc::new(crate::plans::register_all(PlanDeps {
        state_dir: state_dir.clone(),
        aurora: Some(AuroraPlanDeps::new(
            &config.replication.aurora,
            &pair,
            &replication_ports,
            Arc::new(replication.clone()),
        )),
        dns: dns_plan,
        cognito: cognito.as_ref().map(|(c, handle)| CognitoPlanDeps {
            handle: handle.clone(),
            replica_health_check_id: c.replica_health_check_id.clone(),
            switch: Some(Arc::new(aws.dns()) as Arc<dyn HealthCheckSwitch>),
        }),
        takeover: Some(TakeoverParts {
            cognito_interval: config
                .cognito
                .as_ref()
                .map_or(Duration::from_secs(60), |c| c.interval.get()),
            health: health.verdicts(),
            vaults: {
                let replication = replication.clone();
                Arc::new(move || replication.snapshot().backup_vaults)
            },
            backup_gate: config.failover.backup_copy_age == cfg::BackupCopyRule::Gate,
            max_data_loss: config.policy.max_data_loss.get(),
            active: Arc::clone(&active_record),
            drift: Some(Arc::new(topology.clone())),
            lost_region_budget: config.failover.lost_region_budget.get(),
        }),
        gitops: gitops.as_ref().map(|g| (pair.clone(), Arc::clone(g))),
        outage_retry: config.failover.retry.outage_retry(),
    }));
    let cognito = cognito.map(|(_, handle)| handle);

    // Readiness: the failover plan's preflight towards the standby, on a timer.
    let readiness = crate::plans::readiness::ReadinessMonitor::new(
        Arc::clone(&plans),
        active_region.clone(),
        config.evaluation.interval.get(),
        &registry,
    )?;
    let readiness_handle = readiness.handle();
    components.spawn(readiness.run(stop.clone()));

    // The run engine: journal in SQLite and leadership by a lock in the state directory, or
    // both in the Kubernetes API (custom resources and a Lease) for replicas on several nodes.
    status.report("engine", ComponentState::Starting, None);
    let (journal, leadership): (
        Arc<dyn crate::engine::Store>,
        Arc<dyn crate::engine::Leadership>,
    ) = match config.state.kubernetes_store() {
        Some(k) => {
            // The cluster failoverd runs in: the standby region's.
            let (store, lease) =
                crate::kube::state_backend(k, &pair.to_string(), pair.cold(), aws.credentials());
            (Arc::new(store), Arc::new(lease))
        }
        None => (
            Arc::new(SqliteStore::open_async(state_dir.join(JOURNAL_FILE)).await?),
            Arc::new(LocalLeadership::new(&state_dir)),
        ),
    };
    let store = ObservedStore::new(journal, &registry)?;
    let journal_health = store.health();
    let grace = config.server.shutdown_grace.get();
    let lease = config.state.kubernetes_store();
    // A follower on a Lease looks as often as the holder renews, so it takes over soon after the
    // Lease expires.
    let leadership_poll = lease.map_or(RunnerConfig::default().leadership_poll, |k| {
        k.renew_interval.get()
    });
    let engine_metrics = EngineMetrics::register(&registry)?;
    engine_metrics.declare_plans(&crate::engine::PlanCatalog::names(plans.as_ref()));
    engine_metrics.set_lease_duration(lease.map_or(leadership_poll, |k| k.lease_duration.get()));
    let runner = Runner::spawn(
        RunnerConfig {
            region_pair: pair.to_string(),
            // Leave part of the grace period for the HTTP server and the other components.
            shutdown_grace: grace.mul_f64(0.6),
            leadership_poll,
            ..RunnerConfig::default()
        },
        RunnerDeps {
            store: Arc::new(store),
            plans: Arc::clone(&plans) as Arc<dyn crate::engine::PlanCatalog>,
            leadership: Arc::clone(&leadership),
            metrics: engine_metrics,
        },
    );
    components.spawn(report_leadership(
        runner.handle(),
        Arc::clone(&leadership),
        journal_health,
        status.clone(),
        stop.clone(),
    ));
    components.spawn(RunGauges::register(runner.handle(), &registry)?.run(stop.clone()));
    components.spawn(
        ActiveRegionGauge::register(&registry, &pair)?.follow(active_region.clone(), stop.clone()),
    );
    let moves_traffic = {
        let plans = Arc::clone(&plans);
        Arc::new(move |name: &str| plans.moves_traffic(name))
    };
    components.spawn(
        ActiveRegionRecorder::new(active_record, runner.handle(), moves_traffic).run(stop.clone()),
    );

    // The policy that may start a failover on its own.
    let (active, standby) = active_region.get();
    let accepts_param: crate::policy::engine::AcceptsParam = {
        let plans = Arc::clone(&plans);
        Arc::new(move |plan: &str, param: &str| {
            plans
                .info(plan)
                .is_some_and(|i| i.parameters.iter().any(|p| p == param))
        })
    };
    let (starter, run_active) =
        EngineRunStarter::new(runner.handle(), active_region.clone(), accepts_param);
    components.spawn(crate::policy::engine::follow_engine(
        runner.handle(),
        run_active,
        stop.clone(),
    ));
    let policy = PolicyLoop::spawn(
        &config.policy,
        &active,
        &standby,
        health.verdicts(),
        Arc::new(starter),
        &registry,
        stop.clone(),
    )?;
    components.spawn(crate::policy::engine::follow_active_region(
        policy.clone(),
        active_region.clone(),
        stop.clone(),
    ));
    if let Some(cognito) = &cognito {
        components.spawn(crate::cognito::direction::follow_active_region(
            cognito.clone(),
            active_region.clone(),
            stop.clone(),
        ));
    }
    components.spawn(mirror_replication(
        replication.clone(),
        status.clone(),
        policy.clone(),
        stop.clone(),
    ));
    // The components that write outside the journal, and the policy (a follower's holds with
    // `not_leader`), follow the engine's leadership.
    components.spawn(forward_leadership(
        runner.handle().leadership(),
        leader_tx,
        policy.clone(),
        stop.clone(),
    ));

    let observe_interval = config.topology.observe_interval.get();
    components.spawn(
        topology
            .clone()
            .observe_every(observe_interval, stop.clone()),
    );
    components.spawn(DriftGauge::register(&registry)?.follow(topology.clone(), stop.clone()));
    let drift_policy = policy.clone();
    components.spawn(topology.clone().follow(stop.clone(), move |snapshot| {
        drift_policy.set_drift(snapshot.drift_summary())
    }));

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
            readiness: Some(readiness_handle),
            topology: Some(topology),
            gitops: gitops_status,
        },
    )
    .with_plans(plans.infos());

    let addr = listen_override.unwrap_or(config.server.listen);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = listener.local_addr().unwrap_or(addr);
    // Replicas on a Lease: say where this one answers, and forward to the leader what only it
    // serves (the Service sends requests to either replica).
    let state = match lease {
        Some(k) => {
            match api::forward::advertised_url(k.advertise_url.as_deref(), bound) {
                Some(url) => {
                    tracing::info!(%url, "advertising this replica's API on the Lease");
                    leadership.advertise(&url);
                }
                None => tracing::warn!(
                    "neither state.kubernetes.advertise_url nor POD_IP is set: the other replica cannot forward requests here while this one leads"
                ),
            }
            match api::forward::LeaderForward::new(Arc::clone(&leadership), k.connect_timeout.get())
            {
                Ok(f) => state.with_forward(f),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot build the client that forwards to the leader");
                    state
                }
            }
        }
        None => state,
    };
    let app = api::router(state.clone());

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

/// What `failoverd validate --aws` found.
#[derive(Debug, Default)]
pub struct AwsWiring {
    /// What was read and found as configured.
    pub checked: Vec<String>,
    /// What is not wired as the configuration needs, one sentence each.
    pub problems: Vec<String>,
    /// What could not be read (with the error).
    pub unreadable: Vec<String>,
}

/// `failoverd validate --aws`: what the configuration relies on in AWS, read-only — with
/// `dns.mode: data_plane`, each region's alarm (in the other region), its health check, and the
/// health check of every record set. The same checks as the `dns-signal-preflight` step.
pub async fn check_aws_wiring(config: &Config) -> Result<AwsWiring, ClientBuildError> {
    let pair = RegionPair::from_config(config);
    let aws = AwsClients::new(&aws_settings(&config.aws), pair.regions()).await?;
    let mut out = AwsWiring::default();
    let (Some(dns), Some(signals)) = (&config.dns, data_plane_signals(config, &pair, &aws)) else {
        out.checked
            .push("nothing to check: dns.mode is not data_plane".to_owned());
        return Ok(out);
    };
    let mut take = |what: String, result: crate::port::Result<Vec<String>>| match result {
        Ok(p) if p.is_empty() => out.checked.push(what),
        Ok(p) => out.problems.extend(p),
        Err(e) => out.unreadable.push(format!("{what}: {e}")),
    };
    for region in pair.regions() {
        let (alarm, check) = signals.of(region);
        take(
            format!(
                "alarm {alarm} in {} (the signal of {region})",
                signals.home(region)
            ),
            signals.alarm_wiring(region).await,
        );
        take(
            format!("health check {check} (the sets of {region})"),
            signals.health_check_wiring(region).await,
        );
    }
    let api = aws.dns();
    let mut live = crate::dns::planner::LiveRecords::new();
    for zone in crate::dns::planner::zone_ids(dns) {
        match crate::dns::DnsApi::list_record_sets(&api, &zone).await {
            Ok(sets) => {
                live.insert(zone, sets);
            }
            Err(e) => {
                out.unreadable
                    .push(format!("the record sets of hosted zone {zone}: {e}"));
                return Ok(out);
            }
        }
    }
    match crate::dns::planner::current_routing(dns, &pair, &live) {
        Err(e) => out.problems.push(format!("dns.records: {e}")),
        Ok(routing) => {
            let p = crate::dns::signal::record_wiring_problems(&routing, &live, &signals.config);
            if p.is_empty() {
                out.checked.push(format!(
                    "the health checks of {} record set(s)",
                    routing.len()
                ));
            }
            out.problems.extend(p);
        }
    }
    Ok(out)
}

/// The data-plane DNS signal (`dns.mode: data_plane`): CloudWatch in both regions, Route 53's
/// health checks. `None` in `api` mode.
fn data_plane_signals(
    config: &Config,
    pair: &RegionPair,
    aws: &AwsClients,
) -> Option<crate::dns::signal::Signals> {
    let dns = config.dns.as_ref()?;
    if dns.mode != cfg::DnsMode::DataPlane {
        return None;
    }
    let dp = dns.data_plane.as_ref()?;
    Some(crate::dns::signal::Signals {
        config: Arc::new(dp.clone()),
        pair: pair.clone(),
        pair_name: config.pair.clone(),
        cloudwatch: aws
            .regions()
            .iter()
            .map(|r| {
                (
                    r.region().to_owned(),
                    Arc::new(r.cloudwatch()) as Arc<dyn crate::dns::signal::SignalApi>,
                )
            })
            .collect(),
        health_checks: Arc::new(aws.dns()),
        poll_interval: Duration::from_secs(5),
    })
}

/// Reports the engine in `/v1/status` and `failoverd_component_up{component="engine"}`: its
/// leadership as it changes, and `degraded` while a step waits to retry an API that errors (what
/// fails and when the next attempt is, so an outage is visible before a run gives up).
async fn report_leadership(
    runner: crate::engine::RunnerHandle,
    leadership: Arc<dyn crate::engine::Leadership>,
    journal: Arc<std::sync::Mutex<StoreHealth>>,
    status: StatusBoard,
    mut stop: StopSignal,
) {
    let mut leader = runner.leadership();
    loop {
        let is_leader = *leader.borrow_and_update();
        let journal = journal.lock().map(|h| h.clone()).unwrap_or_default();
        match is_leader {
            None => {} // still `starting`
            // The journal failing outranks everything: no run can make progress.
            Some(_) if journal.failing_since.is_some() => status.report(
                "engine",
                ComponentState::Degraded,
                Some(format!(
                    "the run journal is failing since {} ({}; {} error(s) so far): {}",
                    journal
                        .failing_since
                        .and_then(|t| t
                            .format(&time::format_description::well_known::Rfc3339)
                            .ok())
                        .unwrap_or_default(),
                    journal.operation.as_deref().unwrap_or("?"),
                    journal.errors_total,
                    journal.error.as_deref().unwrap_or("?"),
                )),
            ),
            Some(true) => {
                let retrying = match runner.status().await {
                    Ok(s) => s.retrying,
                    Err(_) => Vec::new(),
                };
                match retrying.first() {
                    None => status.report("engine", ComponentState::Ok, None),
                    Some(first) => status.report(
                        "engine",
                        ComponentState::Degraded,
                        Some(format!(
                            "{} step(s) retrying; {} of run {}: attempt {} failed ({}), next attempt at {}",
                            retrying.len(),
                            first.step,
                            first.run,
                            first.retry.attempts,
                            first.retry.last_error,
                            first
                                .retry
                                .next_attempt_at
                                .format(&time::format_description::well_known::Rfc3339)
                                .unwrap_or_default(),
                        )),
                    ),
                }
            }
            Some(false) => status.report(
                "engine",
                ComponentState::Degraded,
                Some(format!(
                    "not the leader: {}",
                    leadership.describe_holder().unwrap_or_else(|| {
                        "another failoverd holds the state directory lock".into()
                    })
                )),
            ),
        }
        tokio::select! {
            () = stop.stopped() => return,
            // Retries come and go without a leadership change: look again shortly.
            () = tokio::time::sleep(STATUS_INTERVAL) => {}
            changed = leader.changed() => if changed.is_err() {
                status.report("engine", ComponentState::Stopped, Some("the run engine has stopped".into()));
                return;
            },
        }
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

/// The components of the observed topology, in the order `/v1/status` shows them: the DNS
/// records (when configured), each Aurora global database, the Cognito sync direction (sync mode),
/// the workloads (with `gitops` workloads in both regions).
fn topology_components(
    config: &Config,
    pair: &RegionPair,
    aws: &AwsClients,
    replication_ports: &crate::replication::ReplicationPorts,
    cognito: Option<&crate::cognito::monitor::CognitoHandle>,
    gitops: Option<&Arc<crate::gitops::GitOps>>,
) -> Vec<Arc<dyn ObservedComponent>> {
    let mut out: Vec<Arc<dyn ObservedComponent>> = Vec::new();
    if let Some(dns) = &config.dns {
        let api = Arc::new(aws.dns());
        let dns =
            crate::dns::observed::TrafficObservation::new(Arc::new(dns.clone()), pair.clone(), api)
                .map(|d| {
                    d.with_signals(
                        data_plane_signals(config, pair, aws),
                        config.topology.read_timeout.get() / 2,
                    )
                });
        out.extend(dns.map(|d| Arc::new(d) as Arc<dyn ObservedComponent>));
    }
    for a in &config.replication.aurora {
        out.push(Arc::new(
            crate::replication::observed::WriterObservation::new(
                &a.global_cluster,
                pair.clone(),
                replication_ports.clone(),
            ),
        ));
    }
    if let Some(c) = cognito
        .cloned()
        .and_then(crate::cognito::observed::SyncDirectionObservation::new)
    {
        out.push(Arc::new(c));
    }
    if let Some(w) = gitops.and_then(|g| {
        crate::gitops::observed::WorkloadsObservation::new(Arc::clone(g), pair.clone())
    }) {
        out.push(Arc::new(w));
    }
    out
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
        regions: aws
            .regions
            .iter()
            .map(|(region, t)| {
                (
                    region.clone(),
                    crate::aws::RegionTimeouts {
                        connect_timeout: t.connect_timeout.map(|d| d.get()),
                        operation_timeout: t.operation_timeout.map(|d| d.get()),
                        operation_attempt_timeout: t.attempt_timeout.map(|d| d.get()),
                    },
                )
            })
            .collect(),
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
