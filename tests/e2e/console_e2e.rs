//! The failover console in a real browser: headless Chromium (Debian's `chromium`), driven by
//! Playwright (`tests/support/console_browser.py`), against the real binary on the lab world.
//!
//! This test starts the bed and failoverd, checks what the page shell serves without a token
//! (static bytes, a strict policy, no data), and starts one run that waits for an operator's
//! approval. The browser then does what an SRE would: it is refused with a wrong token, watches
//! with a viewer token (the active region, the regions' health, the waiting run and its live
//! timeline), is refused approval with that token (the page shows the API's 403), approves with
//! an operator token, sees the run finish and the active region move, and aborts a second run.
//! Afterwards the test checks, through the API and the audit log, that those clicks were the
//! API's requests with the tokens entered — the page has no other way to act.

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::lab_support::{all_traffic_in, Api, LabWorld};
use crate::support::harness::{Daemon, OPERATOR_TOKEN, VIEWER_TOKEN};
use serde_json::{json, Value};

/// The whole browser session takes well under a minute here; five mean something hangs.
const BROWSER_DEADLINE: Duration = Duration::from_secs(300);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Debian's Chromium (`scripts/install-test-deps.sh` installs it).
fn chromium() -> PathBuf {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    found.unwrap_or_else(|| {
        panic!("no chromium in /usr/bin: run scripts/install-test-deps.sh (make test does)")
    })
}

/// `GET path` without a token: (status, headers, body).
fn get_open(
    rt: &tokio::runtime::Runtime,
    d: &Daemon,
    path: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    rt.block_on(async {
        let resp = Daemon::client()
            .get(format!("{}{path}", d.url))
            .send()
            .await
            .expect("GET");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.text().await.expect("body"))
    })
}

#[test]
fn the_console_approves_and_aborts_runs_in_a_real_browser() {
    let chromium = chromium();
    let python = root().join(".venv/bin/python");
    let rt = crate::lab_support::runtime();
    // Both regions' application endpoints answer: nothing starts a run but this test.
    let world = LabWorld::start(&rt);
    let endpoint = world.bed.endpoint_url();
    let config = world.config(
        "  mode: approval_required\n  plan: failover\n  min_unhealthy_for: 1s\n  cooldown: 1h\n  max_data_loss: 1m\n",
    );
    let d = Daemon::start(&config);
    let api = Api { d: &d, rt: &rt };

    // The shell, without a token: static bytes under a strict policy, none of the pair's data.
    let (status, headers, html) = get_open(&rt, &d, "/");
    assert_eq!(status, 200, "{html}");
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    for secret in [
        "us-east-1",
        "us-west-2",
        "lab-global",
        failoverd::telemetry::VERSION,
    ] {
        assert!(!html.contains(secret), "the shell shows {secret:?}");
    }
    let (status, headers, _) = get_open(&rt, &d, "/console/console.js");
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    let (status, _, _) = get_open(&rt, &d, "/v1/status");
    assert_eq!(status, 401, "the page's data stays behind the token");
    // A browser revalidates on each load: the same tag gets 304 and no body.
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let (status, body) = rt.block_on(async {
        let resp = Daemon::client()
            .get(format!("{}/console/console.js", d.url))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("GET");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    });
    assert_eq!((status, body.as_str()), (304, ""));
    // The page is read-only: other methods get the API's 405.
    let (status, body) = rt.block_on(async {
        let resp = Daemon::client()
            .post(format!("{}/", d.url))
            .send()
            .await
            .expect("POST");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    });
    assert_eq!(status, 405, "{body}");
    assert!(body.contains("method_not_allowed"), "{body}");

    api.wait_status("both regions healthy, topology observed", 60, |s| {
        s["health"]["regions"]["us-east-1"]["health"] == "healthy"
            && s["health"]["regions"]["us-west-2"]["health"] == "healthy"
            && s["topology"]["observations"].as_array().map(Vec::len) == Some(4)
    });
    // A DNS switchover (a drill) gated on an operator's approval: the run the browser approves.
    let approved = api.start(json!({
        "plan": "dns-switchover", "reason": "console e2e", "drill": true,
        "params": {"target_region": "us-west-2", "approval_required": true},
    }));
    api.wait("the run waits for approval", 30, || {
        (api.get(&format!("/v1/runs/{approved}"))["status"] == "waiting_approval").then_some(())
    });
    let artifacts =
        std::env::temp_dir().join(format!("failoverd-console-e2e-{}", std::process::id()));
    let mut child = Command::new(&python)
        .arg(root().join("tests/support/console_browser.py"))
        .args(["--url", &d.url])
        .args(["--chromium", &chromium.display().to_string()])
        .args(["--viewer-token", VIEWER_TOKEN])
        .args(["--operator-token", OPERATOR_TOKEN])
        .args(["--run", &approved])
        .arg("--artifacts")
        .arg(&artifacts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a hung session is ended with Playwright's driver; Chromium
        // (in a group of its own) exits when the driver's end of its DevTools pipe closes.
        .process_group(0)
        .spawn()
        .expect("run tests/support/console_browser.py (scripts/install-test-deps.sh installs Playwright)");
    let deadline = Instant::now() + BROWSER_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the browser session") {
            break status;
        }
        if Instant::now() > deadline {
            kill_group(child.id());
            let _ = child.wait();
            panic!("the browser session did not end within {BROWSER_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().expect("browser session output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        status.success(),
        "the browser session failed ({status}); screenshot and page text in {}:\n{stdout}\n{}",
        artifacts.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&artifacts);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .expect("the session prints its findings as one JSON line");

    // What the browser did is what the API recorded.
    let run = api.get(&format!("/v1/runs/{approved}"));
    assert_eq!(run["status"], "succeeded", "{run:#}");
    assert!(
        all_traffic_in(&rt, &endpoint, "us-west-2"),
        "the approved switchover moved DNS"
    );
    let aborted = report["aborted_run"]
        .as_str()
        .expect("the session names the run it aborted");
    let run = api.get(&format!("/v1/runs/{aborted}"));
    assert_eq!(run["status"], "aborted", "{run:#}");
    assert_eq!(run["abort_requested_by"], "test-operator", "{run:#}");
    // The audit log (JSON lines, fields at the top level): the viewer's approve refused before
    // any handler, the operator's carried out, both on this run.
    let audit: Vec<Value> = d
        .log_json()
        .into_iter()
        .filter(|l| l["audit"] == true)
        .collect();
    let approvals: Vec<(String, u64)> = audit
        .iter()
        .filter(|l| {
            l["path"] == format!("/v1/runs/{approved}/approve")
                || l["route"] == format!("/v1/runs/{approved}/approve")
        })
        .map(|l| {
            (
                l["token"].as_str().unwrap_or("-").to_owned(),
                l["outcome"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        approvals,
        vec![
            ("test-viewer".to_owned(), 403),
            ("test-operator".to_owned(), 200)
        ],
        "{audit:#?}"
    );
}

/// Ends a process group: the Python session and Playwright's driver (Chromium follows).
fn kill_group(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .status();
}
