//! Real PostgreSQL servers for the heartbeat tests: a primary and a streaming-replication standby
//! made with `pg_basebackup -R`, from Debian's packages (`postgresql`, which installs the
//! versioned server under `/usr/lib/postgresql/<major>/bin`).
//!
//! Each server lives in its own temporary directory (data, socket, log), listens on a free
//! loopback port, and is stopped (`pg_ctl stop -m immediate`) when its handle drops, so a failing
//! test leaves nothing running. PostgreSQL refuses to run as root; tests run as root in CI, so
//! every server command then runs as the `postgres` system user (created by the package) through
//! `runuser -u postgres --`, with the directories handed to that user first. As any other user,
//! the commands run directly. `FAILOVERD_PG_BIN` overrides the binary directory.
#![allow(dead_code)]

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The superuser the tests connect as (initdb's `-U`).
pub const USER: &str = "failoverd";
pub const PASSWORD: &str = "heartbeat-test-password";

/// The newest installed server's binary directory.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FAILOVERD_PG_BIN") {
        return PathBuf::from(dir);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "/usr/lib/postgresql is missing: install Debian's `postgresql` package \
             (scripts/install-test-deps.sh does)",
        )
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .expect("no PostgreSQL server under /usr/lib/postgresql/*/bin")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a server binary (as `postgres` when we are root), panicking with its output on failure.
fn run(bin: &Path, args: &[&str]) {
    let mut cmd = if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    let out = cmd
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed ({}):\n{}\n{}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free loopback port")
}

/// Hands `dir` to the `postgres` user when running as root.
fn give_to_postgres(dir: &Path) {
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .expect("run chown");
        assert!(status.success(), "chown {} failed", dir.display());
    }
}

/// A running server; stopped on drop.
pub struct PgServer {
    bin: PathBuf,
    root: tempfile::TempDir,
    data: PathBuf,
    port: u16,
}

impl PgServer {
    /// `initdb` + start a primary that accepts streaming replication.
    pub fn primary() -> PgServer {
        let bin = bin_dir();
        let root = tempfile::tempdir().expect("tempdir");
        let pwfile = root.path().join("pwfile");
        std::fs::write(&pwfile, PASSWORD).expect("write pwfile");
        give_to_postgres(root.path());
        let data = root.path().join("data");
        run(
            &bin.join("initdb"),
            &[
                "-D",
                path(&data),
                "-U",
                USER,
                &format!("--pwfile={}", path(&pwfile)),
                // Replication over the local socket needs no password; TCP clients (the
                // heartbeat) authenticate like on Aurora.
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let server = PgServer {
            bin,
            port: free_port(),
            data,
            root,
        };
        server.configure(&["wal_level = replica", "max_wal_senders = 4"]);
        server.start();
        server
    }

    /// A hot standby of `primary`, streaming from it (`pg_basebackup -R`).
    pub fn standby_of(primary: &PgServer) -> PgServer {
        let bin = bin_dir();
        let root = tempfile::tempdir().expect("tempdir");
        give_to_postgres(root.path());
        let data = root.path().join("data");
        run(
            &bin.join("pg_basebackup"),
            &[
                "-h",
                path(primary.socket_dir()),
                "-p",
                &primary.port.to_string(),
                "-U",
                USER,
                "-D",
                path(&data),
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        let server = PgServer {
            bin,
            port: free_port(),
            data,
            root,
        };
        server.configure(&["hot_standby = on"]);
        server.start();
        server
    }

    /// Appends settings (later lines win, so the standby's copy of the primary's port is
    /// overridden) and the per-server port, listen address and socket directory.
    fn configure(&self, extra: &[&str]) {
        let mut lines = vec![
            format!("port = {}", self.port),
            "listen_addresses = '127.0.0.1'".to_owned(),
            format!("unix_socket_directories = '{}'", path(self.socket_dir())),
            "fsync = off".to_owned(),
            "max_connections = 20".to_owned(),
        ];
        lines.extend(extra.iter().map(|s| (*s).to_owned()));
        let conf = self.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("read postgresql.conf");
        text.push_str("\n# failoverd tests\n");
        for l in lines {
            text.push_str(&l);
            text.push('\n');
        }
        std::fs::write(&conf, text).expect("write postgresql.conf");
    }

    fn start(&self) {
        let log = self.root.path().join("server.log");
        run(
            &self.bin.join("pg_ctl"),
            &[
                "-D",
                path(&self.data),
                "-l",
                path(&log),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    pub fn socket_dir(&self) -> &Path {
        self.root.path()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, as written in `heartbeat.endpoints`.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A client over TCP as the superuser (for test-side SQL such as pausing replay).
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(USER)
            .password(PASSWORD)
            .dbname("postgres")
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect to test server");
        tokio::spawn(connection);
        client
    }

    /// The server log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let mut cmd = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = cmd
            .args(["-D", path(&self.data), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}
