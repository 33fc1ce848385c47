//! Starting the test bed's Python launchers (`moto_server.py`, `kube_emulator.py`): the repo's
//! virtualenv interpreter with piped stdin and stdout, killed on drop, and the wait for the one
//! line a launcher prints when it listens. The launcher exits on its own when the returned stdin
//! closes, so nothing outlives a test.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// Generous: the first start imports moto (or jsonschema and the Kubernetes schemas) on a loaded
/// 2-core machine.
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// `tests/support/<script>` under the repo's virtualenv. A missing `.venv` is a test failure with
/// the command that creates it, not a skip.
pub fn python(script: &str) -> Command {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/support/setup.sh (make test does) to create the test bed's \
         virtualenv",
        python.display()
    );
    let mut command = Command::new(python);
    command
        .arg(root.join("tests/support").join(script))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

/// Spawns `command` (from [`python`]) and waits for its line starting with `ready`; returns the
/// child, its stdin (hold it: closing it stops the launcher) and the rest of that line.
pub async fn start(mut command: Command, what: &str, ready: &str) -> (Child, ChildStdin, String) {
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let stdin = child.stdin.take().expect("child stdin is piped");
    let stdout = child.stdout.take().expect("child stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(READY_TIMEOUT, async {
        while let Some(line) = lines
            .next_line()
            .await
            .unwrap_or_else(|e| panic!("read {what}'s stdout: {e}"))
        {
            if let Some(rest) = line.trim().strip_prefix(ready) {
                return Some(rest.to_owned());
            }
        }
        None
    })
    .await;
    match line {
        Ok(Some(rest)) => (child, stdin, rest),
        Ok(None) => panic!("{what} exited before printing {ready} (see its stderr above)"),
        Err(_) => panic!("{what} did not print {ready} within {READY_TIMEOUT:?}"),
    }
}
