//! The GitOps steps and the standby monitor against the Kubernetes API emulator of the test bed
//! (`tests/support/kube_emulator.py`). No kube-apiserver can be installed on these machines: the
//! emulator speaks the REST conventions the `kube` client relies on (discovery, GET/LIST,
//! merge patch, the `/scale` subresource, `resourceVersion` conflicts, `Status` errors), checks
//! every object against Kubernetes' and the Flux/Argo CD CRDs' schemas, and runs small simulated
//! controllers for Flux, Argo CD, Deployments/StatefulSets and the HPA — including the pitfalls
//! (a stale `Ready`, a token handled while still reconciling, Argo health computed before the
//! sync, an HPA that scales an idle standby back down, pods that never become ready).
//!
//! The clients are failoverd's own (`failoverd::kube::KubeCluster`, HTTPS with the emulator's CA
//! and a bearer token; one test signs an EKS token), the steps the ones the takeover runs.

use std::sync::Arc;
use std::time::Duration;

use failoverd::config::{load_file, GitOpsConfig, SecretRef};
use failoverd::engine::{Mode, RunId, Step, StepContext, VerifyOutcome};
use failoverd::gitops::monitor::check_cluster;
use failoverd::gitops::steps::{ArgoSync, FluxReconcile, ScaleUp, Source};
use failoverd::gitops::{
    argo_applications, flux_objects, ClusterApi, GitOps, ObjectKind, ObjectRef,
};
use failoverd::kube::{Connect, KubeCluster, Timeouts};
use failoverd::port::ErrorKind;
use serde_json::{json, Value};

use crate::support::kube::{KubeEmulator, KubeOptions, DEFAULT_TOKEN};
use crate::support::{COLD, HOT};

const POLL: Duration = Duration::from_millis(100);

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lab's seed world of `region` (what `make lab` serves).
fn lab_world(region: &str) -> Value {
    let path = root().join(format!("lab/kube/{region}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect("lab seed")).expect("json")
}

/// Sets annotation `key` on the `kind`/`name` object of a seed world.
fn annotate(world: &mut Value, kind: &str, name: &str, key: &str, value: &str) {
    let obj = world["items"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} not in the seed"));
    obj["metadata"]["annotations"][key] = json!(value);
}

fn knob(world: &mut Value, kind: &str, name: &str, knob: &str, value: &str) {
    annotate(
        world,
        kind,
        name,
        &format!("emulator.failoverd.test/{knob}"),
        value,
    );
}

/// The lab's gitops section, with test timings.
fn lab_gitops(wait: Duration) -> GitOpsConfig {
    let config = load_file(&root().join("config/lab.yaml")).expect("lab config");
    let mut g = config.gitops.expect("lab gitops");
    g.poll_interval = failoverd::config::Duration(POLL);
    g.reconcile_timeout = failoverd::config::Duration(wait);
    g.ready_timeout = failoverd::config::Duration(wait);
    g
}

/// An emulated cluster with TLS and failoverd's client for it.
struct Cluster {
    emu: KubeEmulator,
    api: Arc<KubeCluster>,
    _token: tempfile::NamedTempFile,
}

impl Cluster {
    async fn start(region: &str, world: Value) -> Cluster {
        Self::start_with(region, world, Duration::from_secs(5)).await
    }

    async fn start_with(region: &str, world: Value, request: Duration) -> Cluster {
        let emu = KubeEmulator::start(KubeOptions {
            tls: true,
            seeds: vec![world],
            ..KubeOptions::default()
        })
        .await;
        let token = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token.path(), DEFAULT_TOKEN).unwrap();
        let api = Arc::new(KubeCluster::new(
            region,
            Connect::Token {
                endpoint: emu.url(),
                ca_file: emu.ca_pem(),
                token: SecretRef::File(token.path().to_owned()),
            },
            Timeouts {
                connect: Duration::from_secs(2),
                request,
            },
        ));
        Cluster {
            emu,
            api,
            _token: token,
        }
    }

    async fn get(&self, kind: ObjectKind, ns: &str, name: &str) -> Value {
        self.api
            .get(&ObjectRef::new(kind, ns, name))
            .await
            .expect("get")
            .unwrap_or_else(|| panic!("{kind} {ns}/{name} missing"))
    }

    /// The write requests (PATCH/PUT/POST) the API answered, as `METHOD path`.
    async fn writes(&self) -> Vec<String> {
        self.emu
            .requests()
            .await
            .into_iter()
            .filter(|r| r["method"] != "GET")
            .map(|r| {
                format!(
                    "{} {} {}",
                    r["method"].as_str().unwrap_or(""),
                    r["path"].as_str().unwrap_or(""),
                    r["status"]
                )
            })
            .collect()
    }
}

fn ctx(run: RunId, mode: Mode) -> StepContext {
    StepContext {
        run_id: run,
        plan: Arc::from("failover"),
        mode,
        drill: false,
        params: Arc::new(Value::Null),
        attempt: 1,
        run_started_at: None,
        outputs: Arc::new(Default::default()),
        abort: Default::default(),
    }
}

fn flux_step(c: &Cluster, g: &GitOpsConfig, region: &str) -> FluxReconcile {
    let settings = g.clusters.iter().find(|c| c.region == region).unwrap();
    let f = settings.flux.as_ref().unwrap();
    FluxReconcile {
        id: failoverd::engine::StepId::new("flux-reconcile"),
        name: "reconcile Flux".into(),
        region: region.into(),
        cluster: c.api.clone(),
        objects: flux_objects(f),
        resume_suspended: f.resume_suspended,
        poll: POLL,
        wait: g.reconcile_timeout.get(),
    }
}

fn argo_step(c: &Cluster, g: &GitOpsConfig, region: &str, refresh_after: Duration) -> ArgoSync {
    let settings = g.clusters.iter().find(|c| c.region == region).unwrap();
    ArgoSync {
        id: failoverd::engine::StepId::new("argocd-sync"),
        name: "sync Argo CD".into(),
        region: region.into(),
        cluster: c.api.clone(),
        applications: argo_applications(settings.argocd.as_ref().unwrap()),
        refresh_after,
        poll: POLL,
        wait: g.reconcile_timeout.get(),
    }
}

fn scale_step(
    target: &Cluster,
    source: Option<Source>,
    g: &GitOpsConfig,
    minimum_success_percent: Option<u32>,
) -> ScaleUp {
    let settings = g.clusters.iter().find(|c| c.region == COLD).unwrap();
    let w = settings.workloads.as_ref().unwrap();
    ScaleUp {
        id: failoverd::engine::StepId::new("workloads-scale-up"),
        name: "scale up".into(),
        region: COLD.into(),
        cluster: target.api.clone(),
        source,
        items: w.items.clone(),
        target_percent: w.target_percent,
        minimum_success_percent,
        poll: POLL,
        wait: g.ready_timeout.get(),
    }
}

fn reconcile_patches(writes: &[String]) -> Vec<String> {
    writes
        .iter()
        .filter(|w| w.starts_with("PATCH") && w.contains("toolkit.fluxcd.io"))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_reconciles_sources_first_then_each_object_in_order_until_ready() {
    let mut world = lab_world(COLD);
    knob(
        &mut world,
        "Kustomization",
        "infra",
        "reconcile-seconds",
        "0.5",
    );
    let c = Cluster::start(COLD, world).await;
    let g = lab_gitops(Duration::from_secs(30));
    let step = flux_step(&c, &g, COLD);
    let run = RunId::new();
    let out = step
        .execute(&ctx(run, Mode::Graceful))
        .await
        .expect("reconcile");
    let objects: Vec<&str> = out["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["object"].as_str().unwrap())
        .collect();
    assert_eq!(
        objects,
        [
            "GitRepository flux-system/platform",
            "Kustomization flux-system/infra",
            "Kustomization flux-system/apps"
        ]
    );
    let writes = c.writes().await;
    let patches = reconcile_patches(&writes);
    assert_eq!(patches.len(), 3, "{writes:#?}");
    assert!(
        patches[0].contains("gitrepositories/platform"),
        "{patches:?}"
    );
    assert!(patches[1].contains("kustomizations/infra"), "{patches:?}");
    assert!(patches[2].contains("kustomizations/apps"), "{patches:?}");
    // `apps` was requested only once `infra` had finished (the order is a dependency order).
    let log = c.emu.requests().await;
    let token = out["token"].as_str().unwrap();
    let infra = c
        .get(ObjectKind::Kustomization, "flux-system", "infra")
        .await;
    assert_eq!(infra["status"]["lastHandledReconcileAt"], token);
    let at = |needle: &str| {
        log.iter()
            .position(|r| {
                r["method"] == "PATCH" && r["path"].as_str().unwrap_or("").ends_with(needle)
            })
            .unwrap()
    };
    let infra_ready_read = log
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r["method"] == "GET"
                && r["path"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with("kustomizations/infra")
        })
        .map(|(i, _)| i)
        .max()
        .unwrap();
    assert!(infra_ready_read < at("kustomizations/apps"));

    // Done, and a second execution (a resumed run) patches nothing again.
    assert!(matches!(
        step.verify(&ctx(run, Mode::Graceful)).await.unwrap(),
        VerifyOutcome::Done(_)
    ));
    step.execute(&ctx(run, Mode::Graceful))
        .await
        .expect("again");
    assert_eq!(reconcile_patches(&c.writes().await).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_ready_false_fails_the_step_with_the_controllers_message() {
    let mut world = lab_world(COLD);
    knob(
        &mut world,
        "Kustomization",
        "apps",
        "ready-false-message",
        "kustomize build failed: accumulating resources: missing.yaml",
    );
    knob(
        &mut world,
        "Kustomization",
        "apps",
        "ready-false-reason",
        "BuildFailed",
    );
    let c = Cluster::start(COLD, world).await;
    let g = lab_gitops(Duration::from_secs(30));
    let err = flux_step(&c, &g, COLD)
        .execute(&ctx(RunId::new(), Mode::Graceful))
        .await
        .unwrap_err();
    assert!(!err.retryable);
    assert!(
        err.message.contains("Kustomization flux-system/apps")
            && err.message.contains("BuildFailed")
            && err.message.contains("missing.yaml"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_ready_or_a_token_handled_while_reconciling_is_not_ready() {
    for pitfall in ["stale-ready", "handled-early"] {
        let mut world = lab_world(COLD);
        knob(&mut world, "Kustomization", "infra", pitfall, "true");
        knob(
            &mut world,
            "Kustomization",
            "infra",
            "never-finishes",
            "true",
        );
        let c = Cluster::start(COLD, world).await;
        let g = lab_gitops(Duration::from_secs(3));
        let err = flux_step(&c, &g, COLD)
            .execute(&ctx(RunId::new(), Mode::Graceful))
            .await
            .unwrap_err();
        assert!(
            err.message.contains("Kustomization flux-system/infra")
                && err.message.contains("not ready after 3s"),
            "{pitfall}: {err}"
        );
        let infra = c
            .get(ObjectKind::Kustomization, "flux-system", "infra")
            .await;
        // The pitfall was really there: a Ready=True condition (stale) or a handled token.
        let conditions = infra["status"]["conditions"].to_string();
        assert!(conditions.contains("Reconciling"), "{pitfall}: {infra}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_object_is_resumed_only_when_failoverd_suspended_it() {
    let mut world = lab_world(COLD);
    let infra = world["items"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|o| o["kind"] == "Kustomization" && o["metadata"]["name"] == "infra")
        .unwrap();
    infra["spec"]["suspend"] = json!(true);
    let c = Cluster::start(COLD, world).await;
    let g = lab_gitops(Duration::from_secs(30));
    let run = RunId::new();
    let err = flux_step(&c, &g, COLD)
        .execute(&ctx(run, Mode::Graceful))
        .await
        .unwrap_err();
    assert!(
        err.message.contains("is suspended") && err.message.contains("resume_suspended"),
        "{err}"
    );

    // Suspended by an earlier takeover out of this region: resumed, reconciled, and an unwind
    // suspends it again.
    let infra = ObjectRef::new(ObjectKind::Kustomization, "flux-system", "infra");
    c.api
        .merge_patch(
            &infra,
            &json!({"metadata": {"annotations": {"failoverd.io/suspended-by": "earlier-run"}}}),
        )
        .await
        .unwrap();
    let step = flux_step(&c, &g, COLD);
    step.execute(&ctx(run, Mode::Graceful))
        .await
        .expect("resumed");
    let obj = c
        .get(ObjectKind::Kustomization, "flux-system", "infra")
        .await;
    assert_eq!(obj["spec"]["suspend"], false);
    step.compensate(&ctx(run, Mode::Graceful)).await.unwrap();
    let obj = c
        .get(ObjectKind::Kustomization, "flux-system", "infra")
        .await;
    assert_eq!(obj["spec"]["suspend"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_health_counts_only_once_computed_after_the_sync_and_a_refresh_is_asked_for() {
    let mut world = lab_world(COLD);
    knob(&mut world, "Application", "web", "stale-health", "true");
    let c = Cluster::start(COLD, world).await;
    let g = lab_gitops(Duration::from_secs(30));
    let run = RunId::new();
    let step = argo_step(&c, &g, COLD, Duration::from_millis(800));
    let out = step.execute(&ctx(run, Mode::Graceful)).await.expect("sync");
    assert_eq!(out["applications"][0]["refreshed"], true, "{out}");
    let app = c.get(ObjectKind::Application, "argocd", "web").await;
    let finished = app["status"]["operationState"]["finishedAt"]
        .as_str()
        .unwrap();
    let reconciled = app["status"]["reconciledAt"].as_str().unwrap();
    assert!(reconciled >= finished, "{reconciled} < {finished}");
    assert_eq!(app["status"]["operationState"]["phase"], "Succeeded");
    let writes = c.emu.requests().await;
    let sync = writes
        .iter()
        .find(|r| r["method"] == "PATCH" && r["body"]["operation"].is_object())
        .expect("the sync request");
    assert_eq!(
        sync["body"]["operation"]["initiatedBy"]["username"],
        "failoverd"
    );
    assert!(sync["body"]["status"]["operationState"].is_null());
    assert!(
        writes.iter().any(|r| r["method"] == "PATCH"
            && r["body"]["metadata"]["annotations"]["argocd.argoproj.io/refresh"] == "hard"),
        "no hard refresh requested"
    );
    assert!(matches!(
        step.verify(&ctx(run, Mode::Graceful)).await.unwrap(),
        VerifyOutcome::Done(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_degraded_or_failed_syncs_do_not_pass() {
    let mut world = lab_world(COLD);
    knob(
        &mut world,
        "Application",
        "web",
        "health-after-sync",
        "Degraded",
    );
    knob(
        &mut world,
        "Application",
        "web",
        "health-lag-seconds",
        "0.2",
    );
    let c = Cluster::start(COLD, world).await;
    let g = lab_gitops(Duration::from_secs(3));
    let err = argo_step(&c, &g, COLD, Duration::from_secs(30))
        .execute(&ctx(RunId::new(), Mode::Graceful))
        .await
        .unwrap_err();
    assert!(err.message.contains("Degraded"), "{err}");

    let mut world = lab_world(COLD);
    knob(
        &mut world,
        "Application",
        "web",
        "sync-fail-message",
        "one or more objects failed to apply: Deployment.apps \"api\" is invalid",
    );
    let c = Cluster::start(COLD, world).await;
    let err = argo_step(&c, &g, COLD, Duration::from_secs(30))
        .execute(&ctx(RunId::new(), Mode::Graceful))
        .await
        .unwrap_err();
    assert!(
        err.message.contains("sync Failed") && err.message.contains("is invalid"),
        "{err}"
    );
}

async fn replicas(c: &Cluster, kind: ObjectKind, ns: &str, name: &str) -> i64 {
    c.get(kind, ns, name).await["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

async fn hpa_min(c: &Cluster) -> i64 {
    c.get(ObjectKind::HorizontalPodAutoscaler, "web", "api")
        .await["spec"]["minReplicas"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_up_follows_the_source_keeps_the_hpa_from_scaling_back_and_abort_restores() {
    let source = Cluster::start(HOT, lab_world(HOT)).await;
    let mut world = lab_world(COLD);
    // The idle standby's HPA scales back down quickly: the pitfall is live.
    knob(
        &mut world,
        "HorizontalPodAutoscaler",
        "api",
        "idle-downscale-seconds",
        "0.5",
    );
    let target = Cluster::start(COLD, world).await;
    // Two lost conflicts on the Deployment's record: retried.
    target
        .emu
        .fault(json!({"conflicts": 2, "match": {"kind": "Deployment", "namespace": "web", "name": "api"}}))
        .await;
    let g = lab_gitops(Duration::from_secs(60));
    let step = scale_step(
        &target,
        Some(Source {
            region: HOT.into(),
            cluster: source.api.clone(),
            budget: Duration::from_secs(5),
        }),
        &g,
        None,
    );
    let run = RunId::new();
    let out = step
        .execute(&ctx(run, Mode::Graceful))
        .await
        .expect("scale up");
    assert_eq!(
        replicas(&target, ObjectKind::Deployment, "web", "api").await,
        4
    );
    assert_eq!(
        replicas(&target, ObjectKind::Deployment, "web", "frontend").await,
        3
    );
    assert_eq!(
        replicas(&target, ObjectKind::StatefulSet, "jobs", "worker").await,
        2
    );
    assert_eq!(hpa_min(&target).await, 4);
    let api = target.get(ObjectKind::Deployment, "web", "api").await;
    assert_eq!(api["status"]["readyReplicas"], 4);
    assert_eq!(out["workloads"][0]["basis"]["source_replicas"], 4, "{out}");
    let conflicts = target
        .emu
        .requests()
        .await
        .iter()
        .filter(|r| r["status"] == 409)
        .count();
    assert_eq!(conflicts, 2);
    // The HPA does not scale it back down.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        replicas(&target, ObjectKind::Deployment, "web", "api").await,
        4
    );
    assert!(matches!(
        step.verify(&ctx(run, Mode::Graceful)).await.unwrap(),
        VerifyOutcome::Done(_)
    ));

    // Abort: the replicas and the HPA bounds recorded before are back, the records are gone.
    step.compensate(&ctx(run, Mode::Graceful)).await.unwrap();
    assert_eq!(
        replicas(&target, ObjectKind::Deployment, "web", "api").await,
        1
    );
    assert_eq!(
        replicas(&target, ObjectKind::Deployment, "web", "frontend").await,
        1
    );
    assert_eq!(hpa_min(&target).await, 1);
    let api = target.get(ObjectKind::Deployment, "web", "api").await;
    assert!(
        api["metadata"]["annotations"]
            .get("failoverd.io/scaled-by")
            .is_none(),
        "{api}"
    );
    // A second compensation (after a crash in the unwind) changes nothing.
    let before = target.writes().await.len();
    step.compensate(&ctx(run, Mode::Graceful)).await.unwrap();
    assert_eq!(target.writes().await.len(), before);
}

/// failoverd's client of a blackholed API endpoint: a TCP listener that accepts and never
/// answers (held open by the returned task).
async fn blackholed(region: &str, request: Duration) -> (KubeCluster, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = KubeCluster::new(
        region,
        Connect::Token {
            endpoint: url,
            ca_file: None,
            token: SecretRef::Env("PATH".into()),
        },
        Timeouts {
            connect: Duration::from_secs(1),
            request,
        },
    );
    (client, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ungraceful_with_the_source_blackholed_uses_the_floor_and_the_minimum_success_share() {
    let (lost, _hole) = blackholed(HOT, Duration::from_secs(30)).await;
    let lost = Arc::new(lost);
    let mut world = lab_world(COLD);
    // One api pod never becomes ready.
    knob(&mut world, "Deployment", "api", "max-ready", "1");
    let target = Cluster::start(COLD, world).await;
    let g = lab_gitops(Duration::from_secs(30));
    let step = scale_step(
        &target,
        Some(Source {
            region: HOT.into(),
            cluster: lost,
            budget: Duration::from_secs(1),
        }),
        &g,
        Some(50),
    );
    let started = std::time::Instant::now();
    let out = step
        .execute(&ctx(RunId::new(), Mode::Ungraceful))
        .await
        .expect("scale up on the floor");
    // Three workloads, each read from the lost region within its 1 s budget.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // The lab's floor for api and frontend is 2, worker has the default 1.
    assert_eq!(
        replicas(&target, ObjectKind::Deployment, "web", "api").await,
        2
    );
    assert_eq!(
        replicas(&target, ObjectKind::Deployment, "web", "frontend").await,
        2
    );
    assert_eq!(
        replicas(&target, ObjectKind::StatefulSet, "jobs", "worker").await,
        1
    );
    let basis = &out["workloads"][0]["basis"];
    assert_eq!(basis["floor_replicas"], 2, "{out}");
    assert!(
        basis["because"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{out}"
    );
    // api: 1 of 2 ready is the 50 % an ungraceful takeover accepts.
    let api = target.get(ObjectKind::Deployment, "web", "api").await;
    assert_eq!(api["status"]["readyReplicas"], 1);

    // Graceful mode waits for all of them: the never-ready pod times the step out.
    let g = lab_gitops(Duration::from_secs(2));
    let err = scale_step(&target, None, &g, None)
        .execute(&ctx(RunId::new(), Mode::Graceful))
        .await
        .unwrap_err();
    assert!(
        err.message.contains("Deployment web/api") && err.message.contains("needs 2"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_waiting_resumes_without_patching_again() {
    let mut world = lab_world(COLD);
    knob(
        &mut world,
        "Kustomization",
        "infra",
        "reconcile-seconds",
        "2",
    );
    knob(&mut world, "Deployment", "api", "pod-start-seconds", "1.5");
    let source = Cluster::start(HOT, lab_world(HOT)).await;
    let target = Cluster::start(COLD, world).await;
    let g = lab_gitops(Duration::from_secs(60));
    let run = RunId::new();
    let source_of = || Source {
        region: HOT.into(),
        cluster: source.api.clone(),
        budget: Duration::from_secs(5),
    };

    // The daemon dies while both steps wait: once `infra` has been asked to reconcile (it takes
    // 2 s, so `apps` has not been asked yet) and every workload has been scaled (api's pods take
    // 1.5 s each to become ready, so the scale-up is still waiting), the futures are dropped.
    let c = ctx(run, Mode::Graceful);
    let flux = Arc::new(flux_step(&target, &g, COLD));
    let scale = Arc::new(scale_step(&target, Some(source_of()), &g, None));
    let running = {
        let (flux, scale, c) = (flux.clone(), scale.clone(), c.clone());
        tokio::spawn(async move {
            let _ = tokio::join!(flux.execute(&c), scale.execute(&c));
        })
    };
    let infra = ObjectRef::new(ObjectKind::Kustomization, "flux-system", "infra");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let requested = target.api.get(&infra).await.unwrap().unwrap()["metadata"]["annotations"]
            .get("reconcile.fluxcd.io/requestedAt")
            .is_some();
        // The workloads are scaled in order; the worker StatefulSet is the last.
        let scaled = replicas(&target, ObjectKind::StatefulSet, "jobs", "worker").await == 2;
        if requested && scaled {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the steps never got going"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    running.abort();
    let _ = running.await;
    assert!(!target
        .get(ObjectKind::Kustomization, "flux-system", "infra")
        .await["status"]["lastHandledReconcileAt"]
        .as_str()
        .unwrap_or("")
        .contains(&run.to_string()));
    let writes_before = target.writes().await;

    // A new process: the steps are in doubt; verify says not done yet, execute resumes.
    let flux = flux_step(&target, &g, COLD);
    let scale = scale_step(&target, Some(source_of()), &g, None);
    assert_eq!(flux.verify(&c).await.unwrap(), VerifyOutcome::NotDone);
    assert_eq!(scale.verify(&c).await.unwrap(), VerifyOutcome::NotDone);
    flux.execute(&c).await.expect("flux resumed");
    scale.execute(&c).await.expect("scale resumed");
    // The only write of the resumed steps is the request `apps` had not received yet.
    let writes_after = target.writes().await;
    assert_eq!(
        &writes_after[writes_before.len()..],
        ["PATCH /apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps 200"],
        "the resumed steps wrote again"
    );
    assert_eq!(
        replicas(&target, ObjectKind::Deployment, "web", "api").await,
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_are_bounded_and_classified() {
    let c = Cluster::start_with(COLD, lab_world(COLD), Duration::from_secs(1)).await;
    let api = ObjectRef::new(ObjectKind::Deployment, "web", "api");
    c.emu.fault(json!({"latency_seconds": 3})).await;
    let started = std::time::Instant::now();
    let err = c.api.get(&api).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(err.is_retryable());
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "{:?}",
        started.elapsed()
    );
    c.emu.fault(json!({"latency_seconds": 0})).await;
    c.emu.fault(json!({"unavailable_seconds": 30})).await;
    let err = c.api.get(&api).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable, "{err}");
    c.emu.fault(json!({"clear": true})).await;
    let missing = ObjectRef::new(ObjectKind::Deployment, "web", "nope");
    assert_eq!(c.api.get(&missing).await.unwrap(), None);
    let err = c
        .api
        .merge_patch(&missing, &json!({"spec": {"replicas": 2}}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err}");
    // Refused credentials are access_denied.
    let wrong = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong.path(), "not-the-token").unwrap();
    let refused = KubeCluster::new(
        COLD,
        Connect::Token {
            endpoint: c.emu.url(),
            ca_file: c.emu.ca_pem(),
            token: SecretRef::File(wrong.path().to_owned()),
        },
        Timeouts {
            connect: Duration::from_secs(1),
            request: Duration::from_secs(5),
        },
    );
    let err = refused.get(&api).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::AccessDenied, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eks_token_made_by_failoverd_is_accepted() {
    let emu = KubeEmulator::start(KubeOptions {
        tls: true,
        tokens: vec!["other".into()],
        eks_cluster: Some("shop-usw2".into()),
        seeds: vec![lab_world(COLD)],
    })
    .await;
    let cluster = KubeCluster::new(
        COLD,
        Connect::Eks {
            cluster_name: "shop-usw2".into(),
            endpoint: emu.url(),
            ca_file: emu.ca_pem().unwrap(),
            region: COLD.into(),
            credentials: Some(crate::support::test_credentials()),
        },
        Timeouts {
            connect: Duration::from_secs(2),
            request: Duration::from_secs(5),
        },
    );
    let api = cluster
        .get(&ObjectRef::new(ObjectKind::Deployment, "web", "api"))
        .await
        .expect("get with an EKS token")
        .expect("exists");
    assert_eq!(api["metadata"]["name"], "api");
    let log = emu.requests().await;
    assert!(log.iter().any(|r| r["auth"] == "eks"), "{log:#?}");
    assert!(log.iter().all(|r| r["auth"] != "static"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_sees_a_ready_standby_a_broken_object_and_an_unreachable_cluster() {
    let g = lab_gitops(Duration::from_secs(30));
    let settings = g
        .clusters
        .iter()
        .find(|c| c.region == COLD)
        .unwrap()
        .clone();
    let c = Cluster::start(COLD, lab_world(COLD)).await;
    let status = check_cluster(&*c.api, &settings, Duration::from_secs(10)).await;
    assert!(status.reachable && status.ready(), "{status:#?}");
    // 3 Flux objects, 1 application, 3 workloads.
    assert_eq!(status.objects.len(), 7);

    let broken = ObjectRef::new(ObjectKind::Kustomization, "flux-system", "apps");
    c.api
        .merge_patch(&broken, &json!({"spec": {"suspend": true}}))
        .await
        .unwrap();
    c.api
        .scale(&ObjectRef::new(ObjectKind::Deployment, "web", "api"), 0)
        .await
        .unwrap();
    let status = check_cluster(&*c.api, &settings, Duration::from_secs(10)).await;
    let not_ready = status.not_ready();
    assert_eq!(not_ready.len(), 2, "{not_ready:?}");
    assert!(
        not_ready[0].contains("flux-system/apps: suspended"),
        "{not_ready:?}"
    );
    assert!(not_ready[1].contains("web/api"), "{not_ready:?}");

    let (lost, _hole) = blackholed(HOT, Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    let status = check_cluster(&lost, &settings, Duration::from_secs(2)).await;
    assert!(!status.reachable && status.error.is_some(), "{status:#?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// `gitops-resync` through the engine: every step twice is harmless, a failing step unwinds,
/// and a crash in each phase resumes to success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitops_resync_through_the_engine() {
    use failoverd::engine::testing::{action_failure_can_unwind, actions_succeed_idempotently};
    use failoverd::engine::RunStatus;
    let c = Cluster::start(COLD, lab_world(COLD)).await;
    let g = lab_gitops(Duration::from_secs(30));
    let gitops = Arc::new(GitOps {
        clusters: [(COLD.to_owned(), c.api.clone() as Arc<dyn ClusterApi>)]
            .into_iter()
            .collect(),
        config: Arc::new(g),
    });
    let mut registry = failoverd::plans::PlanRegistry::new();
    failoverd::plans::gitops::register(
        &mut registry,
        failoverd::topology::RegionPair::new(HOT, COLD),
        gitops,
    );
    let plans: Arc<dyn failoverd::engine::PlanCatalog> = Arc::new(registry);
    let params = json!({"region": COLD});
    let view = actions_succeed_idempotently(
        Arc::clone(&plans),
        "gitops-resync",
        &params,
        Duration::from_secs(60),
    )
    .await
    .expect("idempotent");
    assert_eq!(view.status, RunStatus::Succeeded);
    let views = action_failure_can_unwind(
        plans.clone(),
        "gitops-resync",
        &params,
        Duration::from_secs(60),
    )
    .await
    .expect("unwinds");
    assert_eq!(views.len(), 2);
    let err = plans
        .build(
            "gitops-resync",
            Mode::Graceful,
            &json!({"region": "eu-west-9"}),
        )
        .unwrap_err();
    assert!(err.to_string().contains("params.region"), "{err}");
}

/// The `workloads` component of the topology: the region asking for its floor, both (no single
/// region, not drift), neither (split), or unknown when a cluster cannot be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workloads_component_says_where_the_workloads_are_scaled_up() {
    use failoverd::gitops::observed::WorkloadsObservation;
    use failoverd::topology::{ObservedComponent, RegionPair, Says};
    let hot = Cluster::start(HOT, lab_world(HOT)).await;
    let cold = Cluster::start(COLD, lab_world(COLD)).await;
    let gitops = Arc::new(GitOps {
        clusters: [
            (HOT.to_owned(), hot.api.clone() as Arc<dyn ClusterApi>),
            (COLD.to_owned(), cold.api.clone() as Arc<dyn ClusterApi>),
        ]
        .into_iter()
        .collect(),
        config: Arc::new(lab_gitops(Duration::from_secs(30))),
    });
    let observe = WorkloadsObservation::new(gitops, RegionPair::new(HOT, COLD)).expect("both");
    let says = || async { observe.read().await.map(|r| r.says) };
    assert_eq!(says().await, Ok(Says::Region(HOT.into())));
    // The standby scaled up too (a takeover without scale-down): either region can carry it.
    let api = ObjectRef::new(ObjectKind::Deployment, "web", "api");
    let frontend = ObjectRef::new(ObjectKind::Deployment, "web", "frontend");
    cold.api.scale(&api, 4).await.unwrap();
    cold.api.scale(&frontend, 3).await.unwrap();
    assert!(matches!(says().await, Ok(Says::Unknown(_))));
    // The hot region scaled down below its floor (frontend has no HPA to undo it): the workloads
    // are in us-west-2.
    hot.api.scale(&frontend, 1).await.unwrap();
    assert_eq!(says().await, Ok(Says::Region(COLD.into())));
    // Neither at its floor: split.
    cold.api.scale(&frontend, 1).await.unwrap();
    assert!(matches!(says().await, Ok(Says::Split(_))));
    // A cluster that does not answer: no reading.
    hot.emu.fault(json!({"unavailable_seconds": 30})).await;
    assert!(says().await.is_err());
}

/// A graceful takeover out of a region: Flux suspended there (and resumed by an unwind), and the
/// region scaled back down to what it ran before it took over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_region_left_is_suspended_and_scaled_down() {
    use failoverd::gitops::steps::{FluxSuspend, ScaleDown};
    let c = Cluster::start(COLD, lab_world(COLD)).await;
    let g = lab_gitops(Duration::from_secs(30));
    let settings = g.clusters.iter().find(|c| c.region == COLD).unwrap();
    let appliers: Vec<ObjectRef> = flux_objects(settings.flux.as_ref().unwrap())
        .into_iter()
        .filter(|o| !o.kind.is_flux_source())
        .collect();
    let suspend = FluxSuspend {
        id: failoverd::engine::StepId::new("flux-suspend-left"),
        name: "suspend".into(),
        region: COLD.into(),
        cluster: c.api.clone(),
        objects: appliers.clone(),
    };
    let run = RunId::new();
    let out = suspend.execute(&ctx(run, Mode::Graceful)).await.unwrap();
    assert_eq!(out["suspended"].as_array().unwrap().len(), 2, "{out}");
    for o in &appliers {
        let obj = c.get(o.kind, &o.namespace, &o.name).await;
        assert_eq!(obj["spec"]["suspend"], true);
        assert_eq!(
            obj["metadata"]["annotations"]["failoverd.io/suspended-by"],
            run.to_string()
        );
    }
    assert!(matches!(
        suspend.verify(&ctx(run, Mode::Graceful)).await.unwrap(),
        VerifyOutcome::Done(_)
    ));
    suspend.compensate(&ctx(run, Mode::Graceful)).await.unwrap();
    for o in &appliers {
        assert_eq!(
            c.get(o.kind, &o.namespace, &o.name).await["spec"]["suspend"],
            false
        );
    }

    // Scaled up by a takeover into this region (floor 2, nothing to read from), then left: back
    // to the replicas and HPA bounds from before.
    scale_step(&c, None, &g, None)
        .execute(&ctx(RunId::new(), Mode::Graceful))
        .await
        .unwrap();
    assert_eq!(replicas(&c, ObjectKind::Deployment, "web", "api").await, 2);
    assert_eq!(hpa_min(&c).await, 2);
    let down = ScaleDown {
        id: failoverd::engine::StepId::new("workloads-scale-down-left"),
        name: "scale down".into(),
        region: COLD.into(),
        cluster: c.api.clone(),
        items: settings.workloads.as_ref().unwrap().items.clone(),
    };
    let out = down
        .execute(&ctx(RunId::new(), Mode::Graceful))
        .await
        .unwrap();
    assert!(out.get("warning").is_none(), "{out}");
    assert_eq!(replicas(&c, ObjectKind::Deployment, "web", "api").await, 1);
    assert_eq!(
        replicas(&c, ObjectKind::Deployment, "web", "frontend").await,
        1
    );
    assert_eq!(hpa_min(&c).await, 1);
    // A region that cannot be reached is a warning, not a failed takeover.
    c.emu.fault(json!({"unavailable_seconds": 30})).await;
    let out = down
        .execute(&ctx(RunId::new(), Mode::Graceful))
        .await
        .unwrap();
    assert!(
        out["warning"]
            .as_str()
            .is_some_and(|w| w.contains("not scaled down")),
        "{out}"
    );
}
