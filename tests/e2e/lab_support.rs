//! What the lab's end-to-end tests share: the seeded lab world (`tests/support/lab_world.py`),
//! `config/lab.yaml` pointed at a test's emulator with short timings, a blocking client of the
//! daemon's API, stub application endpoints for the HTTP probes, and readings of the emulated
//! world taken straight from moto (not through the fault proxy, so an injected outage never
//! blurs what a test asserts).

use crate::support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::harness::{Daemon, OPERATOR_TOKEN};
use crate::support::kube::{KubeEmulator, KubeOptions};
use crate::support::TestBed;
use failoverd::cognito::UserDirectory;
use failoverd::dns::{DnsApi, Routing};
use failoverd::replication::GlobalDatabaseApi;
use serde_json::Value;

/// The lab's hosted zone (lab_world.py's IDs are deterministic).
pub const ZONE: &str = "MPJUQ3UZI4BN9I99O6AT71";
pub const GLOBAL: &str = "lab-global";
pub const COLD_POOL: &str = "us-west-2_f82bd5b3fcce44aa86ffdad7b025a220";
/// Users lab_world.py puts in the hot pool.
pub const LAB_USERS: usize = 64;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The CLI against `d`, with `token` (never from the environment the tests run in).
pub fn cli(d: &Daemon, token: &str) -> std::process::Command {
    let mut c = std::process::Command::new(crate::support::harness::binary());
    c.env_remove("FAILOVERD_TOKEN_FILE")
        .env_remove("NO_COLOR")
        .env("FAILOVERD_URL", &d.url)
        .env("FAILOVERD_TOKEN", token);
    c
}

/// Waits (bounded) for a CLI child to exit; its exit code, stdout and stderr.
pub fn wait_child(mut child: std::process::Child, secs: u64) -> (Option<i32>, String, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Seeds the lab world into the bed's moto (directly, not through the proxy).
pub async fn seed(bed: &TestBed) {
    seed_with(bed, &[]).await;
}

/// Seeds the lab world with `lab_world.py`'s extra arguments; returns the document it prints
/// (every identifier it created).
pub async fn seed_with(bed: &TestBed, args: &[&str]) -> Value {
    let out = tokio::process::Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/support/lab_world.py"))
        .args(["--endpoint", &bed.moto.endpoint_url()])
        .args(args)
        .output()
        .await
        .expect("run lab_world.py (tests/support/setup.sh creates .venv)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("lab_world.py prints its world as JSON")
}

/// The lab's two emulated clusters (`make lab` serves the same seeds on 6443 and 6444): HTTPS
/// with their own CAs, the lab's token.
pub struct Clusters {
    pub hot: KubeEmulator,
    pub cold: KubeEmulator,
}

impl Clusters {
    pub async fn start() -> Clusters {
        let start = |region: &'static str| async move {
            let path = root().join(format!("lab/kube/{region}.json"));
            let seed: Value =
                serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            KubeEmulator::start(KubeOptions {
                tls: true,
                tokens: vec!["lab-kube-token".into()],
                eks_cluster: None,
                seeds: vec![seed],
            })
            .await
        };
        let (hot, cold) = tokio::join!(start(support::HOT), start(support::COLD));
        Clusters { hot, cold }
    }

    /// Points the lab configuration's `gitops` section at these emulators.
    fn apply(&self, config: &str) -> String {
        let token = root().join("config/lab-kube-token");
        let mut out = config.replace(
            "token: {file: lab-kube-token}",
            &format!("token: {{file: '{}'}}", token.display()),
        );
        for (port, region, emu) in [
            ("6443", support::HOT, &self.hot),
            ("6444", support::COLD, &self.cold),
        ] {
            out = out
                .replace(&format!("https://127.0.0.1:{port}"), &emu.url())
                .replace(
                    &format!("../.lab/kube/{region}/ca.pem"),
                    &emu.ca_pem().expect("tls").display().to_string(),
                );
        }
        for needle in [self.hot.url(), self.cold.url(), token.display().to_string()] {
            assert!(
                out.contains(&needle),
                "config/lab.yaml changed shape: {needle} not set"
            );
        }
        out
    }
}

/// The multi-threaded runtime a blocking e2e test drives its emulators and clients on.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the test's runtime")
}

/// config/lab.yaml, pointed at this test's emulators and directory, with the DNS holds shortened.
pub fn lab_config(endpoint: &str, clusters: &Clusters) -> String {
    let text = clusters.apply(&std::fs::read_to_string(root().join("config/lab.yaml")).unwrap());
    let replaced = text
        .replace("http://127.0.0.1:4566", endpoint)
        .replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0")
        .replace("tokens_file: lab-tokens.yaml", "tokens_file: tokens.yaml")
        .replace("dir: ../.lab/state", "dir: state")
        .replace("hold: 10s", "hold: 0s")
        .replace("interval: 30s", "interval: 1s")
        .replace("observe_interval: 10s", "observe_interval: 1s");
    for needle in [
        "127.0.0.1:0",
        "tokens.yaml",
        "dir: state",
        "hold: 0s",
        "interval: 1s",
        "observe_interval: 1s",
        endpoint,
    ] {
        assert!(
            replaced.contains(needle),
            "config/lab.yaml changed shape: {needle} not set"
        );
    }
    replaced
}

/// `config` with its `health:` and `policy:` sections replaced: one HTTP probe per region on the
/// given stub endpoints (fast), and `policy` (the YAML body of the section, indented).
/// The whole lab a test runs failoverd against: the seeded emulated AWS, both regions'
/// emulated clusters, and both regions' application endpoints (answering).
pub struct LabWorld {
    pub bed: TestBed,
    pub clusters: Clusters,
    pub hot: Endpoint,
    pub cold: Endpoint,
}

impl LabWorld {
    pub fn start(rt: &tokio::runtime::Runtime) -> LabWorld {
        let bed = rt.block_on(TestBed::start());
        rt.block_on(seed(&bed));
        let clusters = rt.block_on(Clusters::start());
        LabWorld {
            bed,
            clusters,
            hot: Endpoint::start(rt),
            cold: Endpoint::start(rt),
        }
    }

    /// `config/lab.yaml` on this world, probing its endpoints, with `policy` (the lines of the
    /// `policy` section).
    pub fn config(&self, policy: &str) -> String {
        with_health_and_policy(
            &lab_config(&self.bed.endpoint_url(), &self.clusters),
            self.hot.addr,
            self.cold.addr,
            policy,
        )
    }
}

pub fn with_health_and_policy(
    config: &str,
    hot: std::net::SocketAddr,
    cold: std::net::SocketAddr,
    policy: &str,
) -> String {
    let start = config.find("\nhealth:").expect("a health section");
    let end = config.find("\ndns:").expect("a dns section after it");
    let health = format!(
        "\nhealth:\n  unhealthy_after: 2\n  healthy_after: 1\n  min_failing: 1\n  require_distinct_kinds: false\n  probes:\n    - {{name: hot-app, region: us-east-1, kind: http, url: 'http://{hot}/healthz', interval: 200ms, timeout: 150ms}}\n    - {{name: cold-app, region: us-west-2, kind: http, url: 'http://{cold}/healthz', interval: 200ms, timeout: 150ms}}\npolicy:\n{policy}"
    );
    format!("{}{}{}", &config[..start], health, &config[end..])
}

/// A blocking client of a daemon's API, with the operator token.
pub struct Api<'a> {
    pub d: &'a Daemon,
    pub rt: &'a tokio::runtime::Runtime,
}

impl Api<'_> {
    pub fn call(&self, post: Option<Value>, path: &str) -> (u16, Value) {
        self.rt.block_on(async {
            let c = Daemon::client();
            let url = format!("{}{path}", self.d.url);
            let req = match post {
                Some(b) => c.post(url).json(&b),
                None => c.get(url),
            };
            let resp = req.bearer_auth(OPERATOR_TOKEN).send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap_or(Value::Null))
        })
    }

    pub fn get(&self, path: &str) -> Value {
        self.call(None, path).1
    }

    /// Polls `f` every 200 ms until it answers, for at most `secs`.
    pub fn wait<T>(&self, what: &str, secs: u64, f: impl FnMut() -> Option<T>) -> T {
        wait(what, secs, f)
    }

    /// Polls `/v1/status` every 200 ms until `done` holds, for at most `secs`, and returns that
    /// status; a timeout shows the last status seen.
    pub fn wait_status(&self, what: &str, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (code, status) = self.call(None, "/v1/status");
            if done(&status) {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the last status ({code}): {status:#}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts a run and returns its id.
    pub fn start(&self, body: Value) -> String {
        let (status, run) = self.call(Some(body), "/v1/runs");
        assert_eq!(status, 202, "{run}");
        run["id"].as_str().unwrap().to_owned()
    }

    /// Waits (at most `secs`) for run `id` to end and returns its view.
    pub fn finished(&self, id: &str, secs: u64) -> Value {
        self.wait("run to finish", secs, || {
            let run = self.get(&format!("/v1/runs/{id}"));
            matches!(
                run["status"].as_str(),
                Some("succeeded" | "failed" | "aborted" | "needs_operator")
            )
            .then_some(run)
        })
    }

    pub fn run_to_end(&self, body: Value) -> Value {
        let id = self.start(body);
        self.finished(&id, 120)
    }

    pub fn metrics(&self) -> String {
        self.rt.block_on(async {
            Daemon::client()
                .get(format!("{}/metrics", self.d.url))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        })
    }
}

/// Polls `f` every 200 ms until it answers, for at most `secs`.
pub fn wait<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The weighted records of the lab zone: (name, set identifier, weight), sorted.
pub fn weights(rt: &tokio::runtime::Runtime, endpoint: &str) -> Vec<(String, String, u8)> {
    rt.block_on(async {
        let clients = support::clients(&support::settings(endpoint)).await;
        let mut out: Vec<(String, String, u8)> = clients
            .dns()
            .list_record_sets(ZONE)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|r| match r.routing {
                Routing::Weighted { weight } => Some((
                    r.name.clone(),
                    r.set_identifier.clone().unwrap_or_default(),
                    weight,
                )),
                _ => None,
            })
            .collect();
        out.sort();
        out
    })
}

/// Whether every weighted record sends all its traffic to `region`.
pub fn all_traffic_in(rt: &tokio::runtime::Runtime, endpoint: &str, region: &str) -> bool {
    let w = weights(rt, endpoint);
    !w.is_empty() && w.iter().all(|(_, set, w)| (set == region) == (*w == 100))
}

/// The lab global database's writer region (`None` without a writer) and its member regions.
pub fn aurora_topology(
    rt: &tokio::runtime::Runtime,
    endpoint: &str,
) -> (Option<String>, Vec<String>) {
    rt.block_on(async {
        let clients = support::clients(&support::settings(endpoint)).await;
        let global = clients
            .region(support::COLD)
            .unwrap()
            .global_database()
            .describe_global_cluster(GLOBAL)
            .await
            .unwrap();
        let mut members: Vec<String> = global
            .members
            .iter()
            .filter_map(|m| m.region.clone())
            .collect();
        members.sort();
        (global.writer_region().map(str::to_owned), members)
    })
}

/// How many users the pool `pool` of `region` holds.
pub fn pool_users(rt: &tokio::runtime::Runtime, endpoint: &str, region: &str, pool: &str) -> usize {
    rt.block_on(async {
        let clients = support::clients(&support::settings(endpoint)).await;
        let dir = clients.region(region).unwrap().user_directory();
        let (mut n, mut token) = (0, None::<String>);
        loop {
            let page = dir.list_users(pool, token.as_deref()).await.unwrap();
            n += page.items.len();
            token = page.next_token;
            if token.is_none() {
                break n;
            }
        }
    })
}

/// Puts fresh Aurora lag datapoints (replication lag and RPO lag, milliseconds, now) for
/// `cluster` into CloudWatch in `region` — what Aurora publishes for a secondary.
pub fn put_lag(endpoint: &str, region: &str, cluster: &str, lag_ms: f64, rpo_ms: f64) {
    const SCRIPT: &str = r#"
import sys, datetime, boto3
endpoint, region, cluster, lag, rpo = sys.argv[1:6]
cw = boto3.client("cloudwatch", endpoint_url=endpoint, region_name=region,
                  aws_access_key_id="testing", aws_secret_access_key="testing")
now = datetime.datetime.now(datetime.timezone.utc)
dims = [{"Name": "DBClusterIdentifier", "Value": cluster}]
cw.put_metric_data(Namespace="AWS/RDS", MetricData=[
    {"MetricName": "AuroraGlobalDBReplicationLag", "Dimensions": dims, "Timestamp": now,
     "Value": float(lag), "Unit": "Milliseconds"},
    {"MetricName": "AuroraGlobalDBRPOLag", "Dimensions": dims, "Timestamp": now,
     "Value": float(rpo), "Unit": "Milliseconds"},
])
"#;
    let out = std::process::Command::new(root().join(".venv/bin/python"))
        .args(["-c", SCRIPT, endpoint, region, cluster])
        .args([lag_ms.to_string(), rpo_ms.to_string()])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "put_metric_data: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sets the emulated Aurora switchover/failover duration (`failoverd_moto/admin.py`).
pub fn set_transition_seconds(rt: &tokio::runtime::Runtime, bed: &TestBed, seconds: f64) {
    rt.block_on(bed.moto.seed(
        "rds/settings",
        serde_json::json!({ "transition_seconds": seconds }),
    ));
}

/// A tiny HTTP server answering 200 to anything, until stopped or dropped.
pub struct Endpoint {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Endpoint {
    pub fn start(rt: &tokio::runtime::Runtime) -> Endpoint {
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        rt.spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut rx => return,
                    accepted = listener.accept() => {
                        let Ok((mut sock, _)) = accepted else { continue };
                        tokio::spawn(async move {
                            use tokio::io::{AsyncReadExt, AsyncWriteExt};
                            let mut buf = [0u8; 1024];
                            let _ = sock.read(&mut buf).await;
                            let _ = sock
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                                .await;
                        });
                    }
                }
            }
        });
        Endpoint {
            addr,
            stop: Some(tx),
        }
    }

    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The run's step `id` (from its phases).
pub fn step<'a>(run: &'a Value, id: &str) -> &'a Value {
    run["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["steps"].as_array().into_iter().flatten())
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {run:#}"))
}

pub fn phase_names(run: &Value) -> Vec<String> {
    run["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

/// `StepStarted` events of step `id` in the run's timeline (one per executed attempt).
pub fn started(run: &Value, id: &str) -> usize {
    run["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "step_started" && e["step"] == id)
        .count()
}

/// Waits until step `id` of run `run_id` is running.
pub fn wait_step_running(api: &Api, run_id: &str, id: &str, secs: u64) {
    api.wait(&format!("step {id} running"), secs, || {
        let run = api.get(&format!("/v1/runs/{run_id}"));
        assert!(
            !matches!(
                run["status"].as_str(),
                Some("succeeded" | "failed" | "aborted" | "needs_operator")
            ),
            "the run ended before {id} was seen running: {run:#}"
        );
        (step(&run, id)["status"] == "running").then_some(())
    });
}
