//! The API against its contract: schemathesis (PyPI, installed in `.venv` by `make test`) reads
//! the real binary's `/v1/openapi.json` and sends generated requests — valid and invalid bodies,
//! parameters and headers, without and with the token, and stateful sequences that follow the
//! document's links (start a run, then read, stream, approve, abort it) — and checks every
//! response against the document: status codes, content types, headers and bodies (the run and
//! status schemas forbid undocumented keys). Zero failures is the bar.
//! `tests/support/schemathesis.toml` holds the one exception, with its reason.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::harness::{config_yaml, Daemon, OPERATOR_TOKEN};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_real_api_matches_its_openapi_document() {
    let schemathesis = root().join(".venv/bin/schemathesis");
    assert!(
        schemathesis.exists(),
        "{} is missing: run scripts/install-test-deps.sh (make test does)",
        schemathesis.display()
    );
    let d = Daemon::start(&config_yaml(""));
    let mut child = Command::new(&schemathesis)
        .arg("--no-color")
        .arg("--config-file")
        .arg(root().join("tests/support/schemathesis.toml"))
        .args(["run", &format!("{}/v1/openapi.json", d.url)])
        .args(["-H", &format!("Authorization: Bearer {OPERATOR_TOKEN}")])
        .args(["--max-examples", "60", "--seed", "1", "--workers", "1"])
        .args(["--request-timeout", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run schemathesis");
    // Bounded: a run takes seconds here; ten minutes means something hangs.
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for schemathesis") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("schemathesis did not finish within 10 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().expect("schemathesis output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("generated") || l.contains(" in ") && l.starts_with('='))
        .collect();
    println!("schemathesis: {}", summary.join(" | "));
    assert!(
        status.success(),
        "schemathesis found failures ({status}):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("passed"),
        "schemathesis ran no test case:\n{stdout}"
    );
}
