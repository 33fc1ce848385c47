//! A real network partition for the tests: an HTTP server in a network namespace of its own,
//! reached from the test's namespace over a veth pair, and a cut that blackholes the path.
//!
//! [`PartitionedTarget::start`] creates the namespace `fo<pid>` (root is required, as for every
//! test here), a veth pair `fo<pid>h` (this side, `10.213.<n>.1/30`) / `fo<pid>n` (the
//! namespace's side, `10.213.<n>.2/30`), and runs `python3 -m http.server` in the namespace on
//! port 8080. [`PartitionedTarget::cut`] takes the namespace's end of the link down: this side
//! loses carrier and its route stays, so packets towards the target are dropped and connections
//! hang until their timeout — a blackhole, as a cut between a daemon and a region looks from the
//! daemon. [`PartitionedTarget::heal`] brings it back. Everything is removed on drop.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PartitionedTarget {
    ns: String,
    host_if: String,
    ns_if: String,
    pub addr: SocketAddr,
    server: Option<Child>,
    /// What the server serves (removed once it is stopped).
    www: Option<tempfile::TempDir>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl PartitionedTarget {
    /// Sets up the namespace, the link and the server; waits until the server answers.
    pub fn start() -> PartitionedTarget {
        let id = std::process::id() % 100_000;
        let subnet = (id % 250) as u8;
        let ns = format!("fo{id}");
        let target = PartitionedTarget {
            host_if: format!("fo{id}h"),
            ns_if: format!("fo{id}n"),
            addr: SocketAddr::from((Ipv4Addr::new(10, 213, subnet, 2), 8080)),
            ns,
            server: None,
            www: None,
        };
        // Left over from a crashed run of this pid: remove first (errors ignored).
        let _ = ip(&["netns", "del", &target.ns]);
        let _ = ip(&["link", "del", &target.host_if]);
        target.setup(subnet).unwrap_or_else(|e| {
            panic!("setting up the network namespace for the partition test: {e}")
        })
    }

    fn setup(mut self, subnet: u8) -> Result<PartitionedTarget, String> {
        let host_ip = format!("10.213.{subnet}.1/30");
        let ns_ip = format!("10.213.{subnet}.2/30");
        ip(&["netns", "add", &self.ns])?;
        ip(&[
            "link",
            "add",
            &self.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &self.ns_if,
        ])?;
        ip(&["link", "set", &self.ns_if, "netns", &self.ns])?;
        ip(&["addr", "add", &host_ip, "dev", &self.host_if])?;
        ip(&["link", "set", &self.host_if, "up"])?;
        self.in_ns(&["addr", "add", &ns_ip, "dev", &self.ns_if])?;
        self.in_ns(&["link", "set", &self.ns_if, "up"])?;
        self.in_ns(&["link", "set", "lo", "up"])?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join("healthz"), "ok\n").map_err(|e| e.to_string())?;
        let server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "python3",
                "-m",
                "http.server",
                "8080",
            ])
            .args(["--bind", &self.addr.ip().to_string(), "--directory"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the server in the namespace: {e}"))?;
        self.server = Some(server);
        self.www = Some(dir);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "the server in {} never answered on {}",
                    self.ns, self.addr
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(self)
    }

    /// The URL of the target's health page.
    pub fn url(&self) -> String {
        format!("http://{}/healthz", self.addr)
    }

    /// Cuts the link: the target's side goes down, packets towards it are dropped.
    pub fn cut(&self) {
        self.set_link("down");
    }

    /// Heals the cut.
    pub fn heal(&self) {
        self.set_link("up");
    }

    fn set_link(&self, state: &str) {
        self.in_ns(&["link", "set", &self.ns_if, state])
            .unwrap_or_else(|e| panic!("set the target's link {state}: {e}"));
    }

    /// `ip ARGS` inside the namespace.
    fn in_ns(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.ns, "ip"];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Whether a TCP connection to the target completes within `timeout`.
    pub fn reachable(&self, timeout: Duration) -> bool {
        TcpStream::connect_timeout(&self.addr, timeout).is_ok()
    }
}

impl Drop for PartitionedTarget {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
        self.www = None;
        let _ = ip(&["link", "del", &self.host_if]);
        let _ = ip(&["netns", "del", &self.ns]);
    }
}
