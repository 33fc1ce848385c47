//! The CLI's client commands against the real binary, on the builtin `selftest` plan:
//! `status` (one screen, `-o json`, its exit code, a closed pipe) and following a run over
//! server-sent events (`run … --follow`, `runs <id> --follow`): the timeline, the exit code per
//! outcome, and a follow that outlives a restart of failoverd, resuming with `Last-Event-ID`
//! without losing or repeating an entry.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::harness::{self, config_yaml, Daemon, OPERATOR_TOKEN, VIEWER_TOKEN};

fn cli(url: &str, token: &str) -> Command {
    let mut c = Command::new(harness::binary());
    c.env_remove("FAILOVERD_TOKEN_FILE")
        .env_remove("NO_COLOR")
        .env("FAILOVERD_URL", url)
        .env("FAILOVERD_TOKEN", token);
    c
}

fn wait_child(mut child: Child, secs: u64) -> (Option<i32>, String, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn api(url: &str, post: Option<Value>, path: &str) -> Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = Daemon::client();
        let req = match post {
            Some(b) => c.post(format!("{url}{path}")).json(&b),
            None => c.get(format!("{url}{path}")),
        };
        let resp = req.bearer_auth(OPERATOR_TOKEN).send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    })
}

#[test]
fn status_is_one_screen_exits_by_its_problems_and_survives_a_closed_pipe() {
    let d = Daemon::start(&config_yaml(""));
    let out = cli(&d.url, VIEWER_TOKEN).arg("status").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // No probe is configured, so neither region's health is known: that is degraded.
    assert_eq!(out.status.code(), Some(7), "{text}");
    assert!(text.lines().count() <= 30, "{text}");
    for want in [
        "failoverd e2e",
        "REGIONS    active  us-east-1       unknown",
        "LEADER     this replica leads",
        "RUN        none active",
        "DEGRADED:",
        "  - the active region us-east-1 is unknown",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }

    let out = cli(&d.url, VIEWER_TOKEN)
        .args(["status", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["pair"], "e2e");

    // `failoverd status | head -0`: the reader is gone before the output is written.
    let mut child = cli(&d.url, VIEWER_TOKEN)
        .args(["status", "-v"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let (code, _, stderr) = wait_child(child, 30);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(7), "{stderr}");

    // A bad token is the API's refusal (3), not a degraded status.
    let out = cli(&d.url, "not-a-token").arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[test]
fn run_follow_prints_the_timeline_and_exits_with_the_outcome() {
    let d = Daemon::start(&config_yaml(""));
    let follow = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "selftest",
            "--reason",
            "follow me",
            "--follow",
            "--param",
            "steps=2",
            "--param",
            "step_seconds=0",
        ];
        args.extend_from_slice(extra);
        let child = cli(&d.url, OPERATOR_TOKEN)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_child(child, 60)
    };

    let (code, out, err) = follow(&[]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    for want in [
        "run started         selftest (graceful) by test-operator: \"follow me\"",
        "step started        selftest-1 (selftest step 1) attempt 1",
        "step succeeded      selftest-2 (selftest step 2) attempt 1 in ",
        "run finished        succeeded in ",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }

    let (code, out, err) = follow(&["--param", "fail_at=2"]);
    assert_eq!(code, Some(4), "{out}\n{err}");
    assert!(out.contains("step failed         selftest-2"), "{out}");
    assert!(out.contains("compensated         selftest-1"), "{out}");
    assert!(out.contains("run finished        failed"), "{out}");

    // `-o json`: one journal entry per line, in order.
    let (code, out, err) = follow(&["-o", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let seqs: Vec<u64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{out}");

    // Aborted at its gate: exit 5.
    let run = api(
        &d.url,
        Some(json!({"plan": "selftest", "reason": "to abort",
                    "params": {"approval": true, "steps": 1, "step_seconds": 0}})),
        "/v1/runs",
    );
    let id = run["id"].as_str().unwrap().to_owned();
    let child = cli(&d.url, VIEWER_TOKEN)
        .args(["runs", &id, "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    api(&d.url, Some(json!({})), &format!("/v1/runs/{id}/abort"));
    let (code, out, err) = wait_child(child, 60);
    assert_eq!(code, Some(5), "{out}\n{err}");
    assert!(
        out.contains(&format!("approve: failoverd approve {id}")),
        "{out}"
    );
    assert!(
        out.contains("abort requested     by test-operator"),
        "{out}"
    );
    assert!(out.contains("run finished        aborted"), "{out}");

    // An unknown run is refused (3) at once.
    let out = cli(&d.url, VIEWER_TOKEN)
        .args(["runs", "0190a5d2-0000-7000-8000-000000000000", "--follow"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

/// failoverd is killed while a follower waits on a run's gate and comes back on the same state
/// and address; the follower reconnects with `Last-Event-ID`, and once the run is approved its
/// timeline has every entry exactly once.
#[test]
fn a_follow_survives_a_restart_of_failoverd() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = config_yaml("").replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let d = Daemon::start(&config);
    let run = api(
        &d.url,
        Some(json!({"plan": "selftest", "reason": "restart",
                    "params": {"approval": true, "steps": 2, "step_seconds": 0}})),
        "/v1/runs",
    );
    let id = run["id"].as_str().unwrap().to_owned();
    let child = cli(&d.url, VIEWER_TOKEN)
        .args(["runs", &id, "--follow", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let dir = d.kill9();
    std::thread::sleep(Duration::from_secs(1));
    let d = Daemon::start_in(dir, &config);
    api(&d.url, Some(json!({})), &format!("/v1/runs/{id}/approve"));
    let (code, out, err) = wait_child(child, 90);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        err.contains("the stream broke") || err.contains("retrying"),
        "the outage is reported: {err}"
    );
    assert!(err.contains("reconnected after entry 2"), "{err}");
    let seqs: Vec<u64> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{out}");
    let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"]["type"], "run_finished", "{out}");
}
