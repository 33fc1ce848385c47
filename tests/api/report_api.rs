//! Run reports end to end, on the real binary and the builtin `selftest` plan:
//! `GET /v1/runs/{id}/report` in JSON and Markdown (so far, then final), its errors and auth, and
//! the `report` and `drill` commands of the CLI.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::harness::{self, config_yaml, Daemon, OPERATOR_TOKEN, VIEWER_TOKEN};

struct Api {
    rt: tokio::runtime::Runtime,
    url: String,
}

/// (status, content type, body).
type Answer = (u16, String, String);

impl Api {
    fn new(d: &Daemon) -> Self {
        Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            url: d.url.clone(),
        }
    }

    fn request(
        &self,
        post: Option<Value>,
        path: &str,
        token: Option<&str>,
        accept: Option<&str>,
    ) -> Answer {
        self.rt.block_on(async {
            let client = Daemon::client();
            let url = format!("{}{path}", self.url);
            let mut req = match &post {
                Some(body) => client.post(url).json(body),
                None => client.get(url),
            };
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            if let Some(a) = accept {
                req = req.header("accept", a);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let ctype = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            (status, ctype, resp.text().await.unwrap())
        })
    }

    fn get_json(&self, path: &str) -> Value {
        let (status, _, body) = self.request(None, path, Some(VIEWER_TOKEN), None);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let (status, _, text) = self.request(Some(body), path, Some(OPERATOR_TOKEN), None);
        assert!(status == 200 || status == 202, "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Polls until `pred` holds for the run (bounded).
    fn wait_run(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let run = self.get_json(&format!("/v1/runs/{id}"));
            if pred(&run) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run never became {what}: {run:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert!(v["error"]["message"].is_string(), "{v}");
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

fn status(run: &Value) -> &str {
    run["status"].as_str().unwrap_or("")
}

/// The report of a selftest drill waiting at its gate is "so far"; once approved and finished it
/// is final, and both representations say the same.
#[test]
fn report_of_a_selftest_drill_so_far_then_final_in_json_and_markdown() {
    let d = Daemon::start(&config_yaml(""));
    let api = Api::new(&d);
    let run = api.post(
        "/v1/runs",
        json!({"plan": "selftest", "drill": true, "reason": "CHG-7 drill",
               "params": {"steps": 2, "step_seconds": 0.05, "approval": true}}),
    );
    let id = run["id"].as_str().unwrap().to_owned();
    api.wait_run(&id, "waiting_approval", |r| status(r) == "waiting_approval");

    let so_far = api.get_json(&format!("/v1/runs/{id}/report"));
    assert_eq!(so_far["final"], false, "{so_far:#}");
    assert_eq!(so_far["status"], "waiting_approval");
    assert_eq!(so_far["outcome"], Value::Null);
    assert_eq!(so_far["phases"][0]["status"], "waiting_approval");
    assert!(so_far["phases"][0]["approval"]["requested_at"].is_string());
    let (code, ctype, md) = api.request(
        None,
        &format!("/v1/runs/{id}/report"),
        Some(VIEWER_TOKEN),
        Some("text/markdown"),
    );
    assert_eq!(code, 200);
    assert!(ctype.starts_with("text/markdown"), "{ctype}");
    assert!(
        md.contains("> **Not final**: the run is waiting_approval"),
        "{md}"
    );

    api.post(&format!("/v1/runs/{id}/approve"), json!({}));
    api.wait_run(&id, "succeeded", |r| status(r) == "succeeded");

    let r = api.get_json(&format!("/v1/runs/{id}/report"));
    assert_eq!(r["final"], true, "{r:#}");
    assert_eq!(r["outcome"], "succeeded");
    assert_eq!(r["plan"], "selftest");
    assert_eq!(r["drill"], true);
    assert_eq!(r["requested_by"], "test-operator");
    assert_eq!(r["reason"], "CHG-7 drill");
    assert_eq!(
        r["critical_path"]["steps"],
        json!(["selftest-1", "selftest-2"])
    );
    assert!(
        r["critical_path"]["seconds"].as_f64().unwrap() >= 0.1,
        "{r:#}"
    );
    assert!(r["approval_wait_seconds"].as_f64().unwrap() > 0.0, "{r:#}");
    assert_eq!(r["phases"][0]["approval"]["approved_by"], "test-operator");
    // selftest moves no traffic and promotes no database: both are unmeasured, with reasons.
    assert_eq!(r["rto"]["seconds"], Value::Null);
    assert!(
        r["rto"]["reason"]
            .as_str()
            .unwrap()
            .contains("no DNS phase"),
        "{r:#}"
    );
    assert_eq!(r["rpo"]["seconds"], Value::Null);
    assert!(r["rpo"]["reason"].is_string());
    assert!(r["measurements"]["rto_seconds"].as_f64().is_some(), "{r:#}");
    assert_eq!(r["skipped"], json!([]));
    assert_eq!(r["errors"], json!([]));

    let (code, ctype, md) = api.request(
        None,
        &format!("/v1/runs/{id}/report"),
        Some(VIEWER_TOKEN),
        Some("text/markdown, application/json;q=0.5"),
    );
    assert_eq!(code, 200);
    assert!(ctype.starts_with("text/markdown"), "{ctype}");
    assert!(
        md.starts_with("# Run report: selftest (drill) — succeeded\n"),
        "{md}"
    );
    for line in [
        &format!("| Run | `{id}` |"),
        "| Requested by | test-operator |",
        "| Reason | CHG-7 drill |",
        "| Outcome | **succeeded** | |",
        "| **phase-1** | | completed |",
        "## Skipped\n\nNothing was skipped.",
        "## Errors\n\nNo step failed.",
    ] {
        assert!(md.contains(line), "missing {line:?} in:\n{md}");
    }
    assert!(!md.contains("Not final"), "{md}");
}

#[test]
fn report_errors_and_auth() {
    let d = Daemon::start(&config_yaml(""));
    let api = Api::new(&d);
    let unknown = "0190a5d2-0000-7000-8000-000000000000";
    let path = format!("/v1/runs/{unknown}/report");

    let (code, ctype, body) = api.request(None, &path, Some(VIEWER_TOKEN), None);
    assert_eq!(code, 404, "{body}");
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert_eq!(error_code(&body), "not_found");
    assert!(body.contains(unknown), "the error names the run: {body}");
    // Asking for Markdown does not change the error's shape.
    let (code, _, body) = api.request(None, &path, Some(VIEWER_TOKEN), Some("text/markdown"));
    assert_eq!((code, error_code(&body).as_str()), (404, "not_found"));

    let (code, _, body) = api.request(None, "/v1/runs/nope/report", Some(VIEWER_TOKEN), None);
    assert_eq!((code, error_code(&body).as_str()), (400, "invalid_run_id"));

    let (code, _, body) = api.request(None, &path, None, None);
    assert_eq!((code, error_code(&body).as_str()), (401, "unauthorized"));
    let (code, _, body) = api.request(None, &path, Some("not-a-token"), None);
    assert_eq!((code, error_code(&body).as_str()), (401, "unauthorized"));

    // A viewer may read a real run's report; a format nobody offers is refused.
    let run = api.post(
        "/v1/runs",
        json!({"plan": "selftest", "reason": "t", "params": {"steps": 1, "step_seconds": 0}}),
    );
    let id = run["id"].as_str().unwrap();
    let (code, _, body) = api.request(
        None,
        &format!("/v1/runs/{id}/report"),
        Some(VIEWER_TOKEN),
        None,
    );
    assert_eq!(code, 200, "{body}");
    let (code, _, body) = api.request(
        None,
        &format!("/v1/runs/{id}/report"),
        Some(VIEWER_TOKEN),
        Some("text/html"),
    );
    assert_eq!((code, error_code(&body).as_str()), (406, "not_acceptable"));

    // The endpoint is in the OpenAPI document with both media types.
    let spec = api.get_json("/v1/openapi.json");
    let ok = &spec["paths"]["/v1/runs/{id}/report"]["get"]["responses"]["200"]["content"];
    assert!(
        ok["application/json"].is_object() && ok["text/markdown"].is_object(),
        "{ok}"
    );
}

fn cli(d: &Daemon, token_file: &std::path::Path) -> Command {
    let mut c = Command::new(harness::binary());
    c.env_remove("FAILOVERD_TOKEN")
        .env("FAILOVERD_URL", &d.url)
        .env("FAILOVERD_TOKEN_FILE", token_file);
    c
}

#[test]
fn cli_report_prints_markdown_or_json_and_survives_a_closed_pipe() {
    let d = Daemon::start(&config_yaml(""));
    let token_file = d.path().join("viewer.token");
    std::fs::write(&token_file, VIEWER_TOKEN).unwrap();
    let api = Api::new(&d);
    let run = api.post(
        "/v1/runs",
        json!({"plan": "selftest", "drill": true, "reason": "cli report",
               "params": {"steps": 1, "step_seconds": 0}}),
    );
    let id = run["id"].as_str().unwrap().to_owned();
    api.wait_run(&id, "succeeded", |r| status(r) == "succeeded");

    let out = cli(&d, &token_file).args(["report", &id]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("# Run report: selftest (drill) — succeeded"),
        "{stdout}"
    );

    let out = cli(&d, &token_file)
        .args(["report", &id, "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["id"].as_str(), &report["final"]),
        (Some(id.as_str()), &json!(true))
    );

    let out = cli(&d, &token_file)
        .args(["report", "0190a5d2-0000-7000-8000-000000000000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_found"));

    // `failoverd report <id> | head -0`: the reader is gone before the report arrives (the
    // command needs an HTTP round trip first). The command ends quietly, without a panic.
    let mut child = cli(&d, &token_file)
        .args(["report", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// `failoverd drill` with `selftest` standing in for the two takeover plans: both legs run as
/// drills, both reports and the totals are printed.
#[test]
fn cli_drill_round_trip_prints_both_reports_and_totals() {
    let d = Daemon::start(&config_yaml(""));
    let token_file = d.path().join("op.token");
    std::fs::write(&token_file, OPERATOR_TOKEN).unwrap();
    let out = cli(&d, &token_file)
        .args([
            "drill",
            "--reason",
            "quarterly drill",
            "--failover-plan",
            "selftest",
            "--failback-plan",
            "selftest",
            "--param",
            "steps=2",
            "--param",
            "step_seconds=0.05",
            "--poll-interval",
            "100ms",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout
            .matches("# Run report: selftest (drill) — succeeded")
            .count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("[failover] started run "), "{stdout}");
    assert!(
        stdout.contains("[failback] phase-2 / selftest-2: succeeded"),
        "{stdout}"
    );
    assert!(stdout.contains("# Drill round trip"), "{stdout}");
    assert!(
        stdout.contains("| Result | **both runs succeeded** |"),
        "{stdout}"
    );
    // selftest moves no traffic: there is no RTO to add up, and the summary says so.
    assert!(stdout.contains("| Sum of RTOs | unknown"), "{stdout}");

    let api = Api::new(&d);
    let runs = api.get_json("/v1/runs");
    let runs = runs["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs
        .iter()
        .all(|r| r["drill"] == true && r["reason"] == "quarterly drill"));
}

/// A failover leg that does not succeed ends the drill with exit 4, and no failback is started.
#[test]
fn cli_drill_stops_after_a_failed_failover() {
    let d = Daemon::start(&config_yaml(""));
    let token_file = d.path().join("op.token");
    std::fs::write(&token_file, OPERATOR_TOKEN).unwrap();
    let child = cli(&d, &token_file)
        .args([
            "drill",
            "--reason",
            "drill that is aborted",
            "--failover-plan",
            "selftest",
            "--failback-plan",
            "selftest",
            "--param",
            "approval=true",
            "--param",
            "step_seconds=0",
            "--poll-interval",
            "100ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The failover waits at its gate until we abort it.
    let api = Api::new(&d);
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let runs = api.get_json("/v1/runs");
        if let Some(r) = runs["runs"].as_array().and_then(|a| a.first()) {
            if r["status"] == "waiting_approval" {
                break r["id"].as_str().unwrap().to_owned();
            }
        }
        assert!(Instant::now() < deadline, "no run waits for approval");
        std::thread::sleep(Duration::from_millis(50));
    };
    api.post(&format!("/v1/runs/{id}/abort"), json!({}));
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains("waits for approval at phase-1"), "{stdout}");
    assert!(stdout.contains("the failback is not started"), "{stdout}");
    assert!(
        stdout.contains("# Run report: selftest (drill) — aborted"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| Failback | not started: the failover did not succeed |"),
        "{stdout}"
    );
    let runs = api.get_json("/v1/runs");
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1, "{runs}");
}
