//! Runs the real `failoverd` binary for end-to-end tests: writes a configuration and a tokens file
//! into a temporary directory, starts `failoverd serve`, waits until it logs that it is serving,
//! and keeps every log line so tests can assert on them (the audit log, shutdown messages).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const VIEWER_TOKEN: &str = "test-viewer-token";
pub const OPERATOR_TOKEN: &str = "test-operator-token";

/// The path of the built binary.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_failoverd")
}

/// A tokens file with one viewer and one operator token.
pub fn tokens_yaml() -> String {
    let h = failoverd::api::auth::hash_token;
    format!(
        "tokens:\n  - name: test-viewer\n    role: viewer\n    sha256: {}\n  - name: test-operator\n    role: operator\n    sha256: {}\n",
        h(VIEWER_TOKEN),
        h(OPERATOR_TOKEN)
    )
}

/// The smallest useful configuration; `extra` is appended (more sections).
pub fn config_yaml(extra: &str) -> String {
    format!(
        "pair: e2e\nregions:\n  - {{name: us-east-1, role: hot}}\n  - {{name: us-west-2, role: cold}}\nserver:\n  listen: 127.0.0.1:0\n  tokens_file: tokens.yaml\n  shutdown_grace: 10s\nstate:\n  dir: state\n{extra}"
    )
}

pub struct Daemon {
    pub child: Child,
    pub url: String,
    pub dir: tempfile::TempDir,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    /// Starts `failoverd serve` on `config` (YAML) in a fresh directory and waits until it serves.
    pub fn start(config: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(dir, config)
    }

    /// Starts in an existing directory (to restart on the same state).
    pub fn start_in(dir: tempfile::TempDir, config: &str) -> Daemon {
        std::fs::write(dir.path().join("config.yaml"), config).expect("write config");
        if !dir.path().join("tokens.yaml").exists() {
            std::fs::write(dir.path().join("tokens.yaml"), tokens_yaml()).expect("write tokens");
        }
        let mut child = Command::new(binary())
            .args(["serve", "--config"])
            .arg(dir.path().join("config.yaml"))
            .env("FAILOVERD_LOG_FORMAT", "json")
            .env("FAILOVERD_LOG", "info")
            .env_remove("RUST_LOG")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn failoverd");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("failoverd is serving") {
                        let _ = tx.send(line.clone());
                    }
                    lines.lock().expect("lines").push(line);
                }
            });
        }
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "failoverd did not start; log:\n{}",
                    lines.lock().expect("lines").join("\n")
                );
            }
        };
        let v: serde_json::Value = serde_json::from_str(&line).expect("json log line");
        let listen = v["listen"].as_str().expect("listen field").to_owned();
        Daemon {
            child,
            url: format!("http://{listen}"),
            dir,
            lines,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// Log lines parsed as JSON.
    pub fn log_json(&self) -> Vec<serde_json::Value> {
        self.log()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits (bounded) until a log line satisfies `pred`.
    pub fn wait_log(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = self.log_json().into_iter().find(|v| pred(v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "no log line for {what}; log:\n{}",
                self.log().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "failoverd did not exit within {within:?}; log:\n{}",
                    self.log().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process (SIGKILL) and returns its directory for a restart.
    pub fn kill9(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }

    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
