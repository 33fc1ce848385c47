//! A real Prometheus server for the end-to-end tests (Debian's `prometheus`): started on a free
//! loopback port with its own configuration and a temporary data directory, scraping one target
//! every second as job `failoverd` (the job name the shipped alerts expect) and evaluating the
//! shipped alert rules with every `for:` shortened to 2 s (the full durations are covered by
//! `promtool test rules`). Killed on drop.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

/// How long a test waits for Prometheus to be ready, or for something to show up in it.
pub const WAIT: Duration = Duration::from_secs(90);

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The shipped rules with every `for:` shortened to 2 s.
fn fast_rules() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/prometheus/alerts.yaml");
    let text = std::fs::read_to_string(path).expect("read alerts.yaml");
    let mut replaced = 0;
    let out: Vec<String> = text
        .lines()
        .map(|l| match l.split_once("for: ") {
            Some((indent, _)) if indent.trim().is_empty() => {
                replaced += 1;
                format!("{indent}for: 2s")
            }
            _ => l.to_owned(),
        })
        .collect();
    assert!(replaced >= 1, "no `for:` in the rules?");
    out.join("\n")
}

/// A Prometheus server, killed on drop.
pub struct Prometheus {
    port: u16,
    _dir: tempfile::TempDir,
    _child: Child,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) and waits until it is ready.
    pub async fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("alerts.yaml"), fast_rules()).expect("write rules");
        std::fs::write(
            dir.path().join("prometheus.yml"),
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules}\n\
                 scrape_configs:\n  - job_name: failoverd\n    static_configs:\n      - targets: ['{target}']\n",
                rules = dir.path().join("alerts.yaml").display()
            ),
        )
        .expect("write config");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus is missing: install Debian's `prometheus` package");
        let server = Prometheus {
            port,
            _dir: dir,
            _child: child,
        };
        let ready = format!("{}/-/ready", server.url());
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(r) = reqwest::get(&ready).await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "prometheus not ready"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.url()))
            .await
            .expect("query prometheus")
            .json()
            .await
            .expect("JSON answer")
    }

    /// Alerts named `name` and their states.
    pub async fn alert_states(&self, name: &str) -> Vec<(String, Value)> {
        let answer = self.get("/api/v1/alerts").await;
        answer["data"]["alerts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .map(|a| {
                (
                    a["state"].as_str().unwrap_or("").to_owned(),
                    a["labels"].clone(),
                )
            })
            .collect()
    }

    /// The whole answer of an instant query (`status`, `data` or `error`).
    pub async fn query(&self, query: &str) -> Value {
        self.get(&format!("/api/v1/query?query={}", urlencode(query)))
            .await
    }

    /// The value of an instant query's first sample.
    pub async fn value(&self, query: &str) -> Option<f64> {
        self.query(query).await["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }

    /// The values of `label` on the series `selector` selects (what Grafana's
    /// `label_values(selector, label)` lists).
    pub async fn label_values(&self, selector: &str, label: &str) -> Vec<String> {
        let answer = self
            .get(&format!(
                "/api/v1/label/{label}/values?match[]={}",
                urlencode(selector)
            ))
            .await;
        assert_eq!(answer["status"], "success", "{selector}: {answer}");
        answer["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `promtool` in the repository root (with `stdin` piped in, when given): whether it
/// succeeded, and its stdout and stderr.
pub fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = std::process::Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is missing: install Debian's `prometheus` package");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        std::io::Write::write_all(&mut pipe, text.as_bytes()).expect("write to promtool");
    }
    let out = child.wait_with_output().expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
