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
use tokio::process::{Child, ChildStdin};
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
        let mut command = super::launcher::python("moto_server.py");
        command.args(["--host", "127.0.0.1", "--port", "0"]);
        let (child, stdin, rest) =
            super::launcher::start(command, "moto", "MOTO_READY port=").await;
        let port = rest
            .parse::<u16>()
            .unwrap_or_else(|_| panic!("moto printed a bad port: {rest:?}"));
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
