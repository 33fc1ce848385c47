//! One moto server per test.
//!
//! [`MotoServer::start`] runs the repo's launcher (`tests/support/moto_server.py`, which loads
//! failoverd's moto extension) from the repo's virtualenv on a free loopback port and waits for its
//! `MOTO_READY port=<N>` line. Each test owns its server, so tests run in parallel without sharing
//! state, and nothing outlives the test: the child is killed when the handle drops, and the
//! launcher also exits on its own when its stdin pipe (held here) closes.
//!
//! A missing `.venv` is a test failure, not a skip: `make test` (via `tests/support/setup.sh`)
//! prepares it, and a test bed that silently does not run is worse than a red test.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// Generous: the first start imports all of moto (a few seconds on a loaded 2-core machine).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A running moto server, killed on drop.
pub struct MotoServer {
    port: u16,
    // Field order matters only for readability: both are released on drop, which ends the child.
    _stdin: ChildStdin,
    _child: Child,
}

impl MotoServer {
    /// Starts moto with failoverd's extension on a free loopback port.
    pub async fn start() -> MotoServer {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let python = root.join(".venv/bin/python");
        let script = root.join("tests/support/moto_server.py");
        assert!(
            python.exists(),
            "{} is missing: run tests/support/setup.sh (make test does) to create the test bed's \
             virtualenv",
            python.display()
        );
        let mut child = Command::new(&python)
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let stdin = child.stdin.take().expect("child stdin is piped");
        let stdout = child.stdout.take().expect("child stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(READY_TIMEOUT, async {
            while let Some(line) = lines.next_line().await.expect("read moto's stdout") {
                if let Some(port) = line.trim().strip_prefix("MOTO_READY port=") {
                    return port.parse::<u16>().ok();
                }
            }
            None
        })
        .await;
        let port = match ready {
            Ok(Some(port)) => port,
            Ok(None) => panic!("moto exited before printing MOTO_READY (see its stderr above)"),
            Err(_) => panic!("moto did not print MOTO_READY within {READY_TIMEOUT:?}"),
        };
        MotoServer {
            port,
            _stdin: stdin,
            _child: child,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// POSTs `body` to one of the extension's seeding endpoints (`/_failoverd/<path>`) and returns
    /// the JSON answer; panics unless moto answers 2xx.
    pub async fn seed(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let url = format!("{}/_failoverd/{path}", self.endpoint_url());
        let response = reqwest::Client::new()
            .post(&url)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = response.status();
        let text = response.text().await.expect("read the seeding answer");
        assert!(status.is_success(), "POST {url}: {status}: {text}");
        serde_json::from_str(&text).expect("seeding answer is JSON")
    }
}
