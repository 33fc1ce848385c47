//! One emulated Kubernetes API server per test.
//!
//! [`KubeEmulator::start`] runs the repo's launcher (`tests/support/kube_emulator.py`: the
//! apiserver emulator with its simulated Flux, Argo CD, workload and HPA controllers, documented
//! in that file) from the repo's virtualenv on a free loopback port and waits for its
//! `KUBE_READY port=<N> ca=<path|->` line. Each test owns its emulator, so tests run in parallel
//! without sharing state, and nothing outlives the test: the child is killed when the handle drops,
//! and the launcher also exits on its own when its stdin pipe (held here) closes. The TLS
//! material and the seed files live in a temporary directory owned by the handle.
//!
//! A missing `.venv` is a test failure, not a skip: `make test` (via `tests/support/setup.sh`)
//! prepares it, and a test bed that silently does not run is worse than a red test.

use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;
use tokio::process::{Child, ChildStdin};

/// The token [`KubeOptions::default`] accepts.
pub const DEFAULT_TOKEN: &str = "kube-test-token";

/// How to start the emulator.
#[derive(Debug, Clone)]
pub struct KubeOptions {
    /// HTTPS with a fresh CA ([`KubeEmulator::ca_pem`]) instead of plain HTTP.
    pub tls: bool,
    /// Accepted bearer tokens; the first is the one the handle's own requests use.
    pub tokens: Vec<String>,
    /// Also accept EKS tokens (`aws eks get-token`'s shape) for this cluster name.
    pub eks_cluster: Option<String>,
    /// Objects loaded before the server listens: each value is one object or `{"items": [...]}`.
    /// Statuses given are kept; missing namespaces are created.
    pub seeds: Vec<serde_json::Value>,
}

impl Default for KubeOptions {
    /// Plain HTTP, one token ([`DEFAULT_TOKEN`]), no EKS tokens, nothing seeded.
    fn default() -> Self {
        KubeOptions {
            tls: false,
            tokens: vec![DEFAULT_TOKEN.to_owned()],
            eks_cluster: None,
            seeds: Vec::new(),
        }
    }
}

/// A running emulated apiserver, killed on drop.
pub struct KubeEmulator {
    port: u16,
    ca: Option<PathBuf>,
    token: Option<String>,
    http: reqwest::Client,
    _stdin: ChildStdin,
    _child: Child,
    // Dropped last: the child may still read its certificate files until it is gone.
    _dir: TempDir,
}

impl KubeEmulator {
    /// Starts the emulator on a free loopback port with `opts`.
    pub async fn start(opts: KubeOptions) -> KubeEmulator {
        let dir = tempfile::Builder::new()
            .prefix("kube-emulator-")
            .tempdir()
            .expect("create the emulator's temporary directory");
        let mut command = super::launcher::python("kube_emulator.py");
        command.args(["--host", "127.0.0.1", "--port", "0"]);
        for token in &opts.tokens {
            command.arg("--token").arg(token);
        }
        if let Some(cluster) = &opts.eks_cluster {
            command.arg("--eks-cluster").arg(cluster);
        }
        if opts.tls {
            command.arg("--tls-dir").arg(dir.path().join("tls"));
        }
        for (i, seed) in opts.seeds.iter().enumerate() {
            let file = dir.path().join(format!("seed-{i}.json"));
            let body = if seed.get("items").is_some() {
                seed.clone()
            } else {
                serde_json::json!({ "items": [seed] })
            };
            std::fs::write(&file, serde_json::to_vec(&body).expect("seed is JSON"))
                .unwrap_or_else(|e| panic!("write {}: {e}", file.display()));
            command.arg("--seed").arg(&file);
        }
        let (child, stdin, rest) =
            super::launcher::start(command, "the kube emulator", "KUBE_READY port=").await;
        let (port, ca) = rest
            .split_once(" ca=")
            .and_then(|(port, ca)| Some((port.parse::<u16>().ok()?, ca)))
            .unwrap_or_else(|| panic!("the kube emulator printed a bad ready line: {rest:?}"));
        let ca = (ca != "-").then(|| PathBuf::from(ca));
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(ca) = &ca {
            let pem = std::fs::read(ca).unwrap_or_else(|e| panic!("read {}: {e}", ca.display()));
            let cert = reqwest::Certificate::from_pem(&pem).expect("the emulator's CA is PEM");
            http = http.add_root_certificate(cert);
        }
        KubeEmulator {
            port,
            ca,
            token: opts.tokens.first().cloned(),
            http: http.build().expect("build the HTTP client"),
            _stdin: stdin,
            _child: child,
            _dir: dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:<port>`, or `https://` with [`KubeOptions::tls`].
    pub fn url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA that signed the server certificate (SANs 127.0.0.1, ::1, localhost), with TLS.
    pub fn ca_pem(&self) -> Option<PathBuf> {
        self.ca.clone()
    }

    /// The first accepted token, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Creates or replaces objects (one object or `{"items": [...]}`), statuses kept; panics
    /// unless the emulator accepts them all (they are schema-validated).
    pub async fn seed(&self, objects: serde_json::Value) {
        self.control(reqwest::Method::POST, "objects", Some(objects))
            .await;
    }

    /// Injects faults: `{"conflicts": N, "match": {"kind", "namespace", "name"}}`,
    /// `{"unavailable_seconds": S}`, `{"latency_seconds": S}`, `{"clear": true}`.
    pub async fn fault(&self, body: serde_json::Value) {
        self.control(reqwest::Method::POST, "faults", Some(body))
            .await;
    }

    /// Every request to the API so far: `{"method", "path", "query", "content_type", "body",
    /// "status", "auth"}`.
    pub async fn requests(&self) -> Vec<serde_json::Value> {
        match self.control(reqwest::Method::GET, "requests", None).await {
            serde_json::Value::Array(entries) => entries,
            other => panic!("the request log is not an array: {other}"),
        }
    }

    pub async fn clear_requests(&self) {
        self.control(reqwest::Method::DELETE, "requests", None)
            .await;
    }

    /// GETs `api_path` (e.g. `/apis/apps/v1/namespaces/web/deployments/api`) with the first
    /// token and returns the JSON answer: the object, or the `Status` of an error (a missing
    /// object answers `reason: NotFound`). These requests appear in [`Self::requests`] too.
    pub async fn object(&self, api_path: &str) -> serde_json::Value {
        let url = format!("{}{api_path}", self.url());
        let mut request = self.http.get(&url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let text = response.text().await.expect("read the emulator's answer");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {text}"))
    }

    /// [`Self::object`] from synchronous test code.
    pub fn object_blocking(
        &self,
        rt: &tokio::runtime::Runtime,
        api_path: &str,
    ) -> serde_json::Value {
        rt.block_on(self.object(api_path))
    }

    async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let url = format!("{}/_emulator/{path}", self.url());
        let mut request = self.http.request(method.clone(), &url);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status();
        let text = response.text().await.expect("read the emulator's answer");
        assert!(status.is_success(), "{method} {url}: {status}: {text}");
        serde_json::from_str(&text).expect("the emulator answers JSON")
    }
}
