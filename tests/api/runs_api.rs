//! The runs API and CLI end to end, with the real binary and its SQLite journal: starting,
//! idempotency, one active run, approvals, aborts, dry runs, server-sent events, bad requests, and
//! `kill -9` in the middle of a run.

use crate::support::harness;

use std::time::{Duration, Instant};

use crate::support::harness::{config_yaml, Daemon, OPERATOR_TOKEN, VIEWER_TOKEN};
use serde_json::{json, Value};

struct Api {
    rt: tokio::runtime::Runtime,
    url: String,
}

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

    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        self.rt.block_on(async {
            let client = Daemon::client();
            let url = format!("{}{path}", self.url);
            let mut req = match method {
                "GET" => client.get(url),
                _ => client.post(url),
            }
            .bearer_auth(OPERATOR_TOKEN);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body), &[])
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None, &[])
    }

    fn start(&self, params: Value) -> String {
        let (status, body) = self.post(
            "/v1/runs",
            json!({"plan": "selftest", "reason": "test", "params": params}),
        );
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Polls the run until `pred` holds (bounded).
    fn wait_run(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, run) = self.get(&format!("/v1/runs/{id}"));
            assert_eq!(status, 200, "{run}");
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

fn status_of(run: &Value) -> &str {
    run["status"].as_str().unwrap_or("")
}

fn finished(run: &Value) -> bool {
    matches!(
        status_of(run),
        "succeeded" | "failed" | "aborted" | "needs_operator"
    )
}

fn succeeded_steps(run: &Value) -> usize {
    run["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["steps"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["status"] == "succeeded")
        .count()
}

#[test]
fn a_selftest_run_completes_with_a_report() {
    let d = Daemon::start(&config_yaml(""));
    let api = Api::new(&d);
    let id = api.start(json!({"steps": 3, "step_seconds": 0.05}));
    let run = api.wait_run(&id, "finished", finished);
    assert_eq!(status_of(&run), "succeeded", "{run:#}");
    assert_eq!(succeeded_steps(&run), 3);
    assert!(
        run["report"]["total_duration_seconds"].as_f64().unwrap() > 0.0,
        "{run:#}"
    );
    assert!(!run["timeline"].as_array().unwrap().is_empty());

    let (status, list) = api.get("/v1/runs");
    assert_eq!(status, 200);
    assert_eq!(list["runs"][0]["id"], id.as_str());
    assert_eq!(list["runs"][0]["status"], "succeeded");
}

#[test]
fn idempotency_key_returns_the_same_run_and_one_run_is_active_at_a_time() {
    let d = Daemon::start(&config_yaml(""));
    let api = Api::new(&d);
    let body =
        json!({"plan": "selftest", "reason": "idem", "params": {"steps": 2, "step_seconds": 5}});
    let (s1, r1) = api.call(
        "POST",
        "/v1/runs",
        Some(body.clone()),
        &[("Idempotency-Key", "abc-1")],
    );
    let (s2, r2) = api.call(
        "POST",
        "/v1/runs",
        Some(body.clone()),
        &[("Idempotency-Key", "abc-1")],
    );
    assert_eq!((s1, s2), (202, 202), "{r1} {r2}");
    assert_eq!(r1["id"], r2["id"]);
    // Same key, different request: refused.
    let mut other = body.clone();
    other["reason"] = json!("something else");
    let (s3, r3) = api.call(
        "POST",
        "/v1/runs",
        Some(other),
        &[("Idempotency-Key", "abc-1")],
    );
    assert_eq!(
        (s3, r3["error"]["code"].as_str()),
        (422, Some("idempotency_key_reused")),
        "{r3}"
    );
    // Another run while the first is active: 409.
    let (s4, r4) = api.post("/v1/runs", body);
    assert_eq!(
        (s4, r4["error"]["code"].as_str()),
        (409, Some("run_active")),
        "{r4}"
    );
    let id = r1["id"].as_str().unwrap();
    let (s5, r5) = api.post(&format!("/v1/runs/{id}/abort"), json!({}));
    assert_eq!(s5, 200, "{r5}");
    let run = api.wait_run(id, "finished", finished);
    assert_eq!(status_of(&run), "aborted", "{run:#}");
}

#[test]
fn approval_gate_waits_for_an_operator() {
    let d = Daemon::start(&config_yaml(""));
    let api = Api::new(&d);
    let id = api.start(json!({"steps": 1, "step_seconds": 0, "approval": true}));
    let run = api.wait_run(&id, "waiting_approval", |r| {
        status_of(r) == "waiting_approval"
    });
    assert_eq!(succeeded_steps(&run), 0);
    // The alert's gauge says a run waits (refreshed every 2 s; bounded wait).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = api.rt.block_on(async {
            Daemon::client()
                .get(format!("{}/metrics", d.url))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        if text.contains("failoverd_run_waiting_approval{plan=\"selftest\"} 1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no waiting-approval gauge:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A viewer cannot approve.
    let code = api.rt.block_on(async {
        Daemon::client()
            .post(format!("{}/v1/runs/{id}/approve", d.url))
            .bearer_auth(VIEWER_TOKEN)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(code, 403);
    let (status, body) = api.post(&format!("/v1/runs/{id}/approve"), json!({}));
    assert_eq!(status, 200, "{body}");
    let run = api.wait_run(&id, "finished", finished);
    assert_eq!(status_of(&run), "succeeded");
}

#[test]
fn dry_run_describes_and_changes_nothing() {
    let d = Daemon::start(&config_yaml(""));
    let api = Api::new(&d);
    let (status, run) = api.post(
        "/v1/runs",
        json!({"plan": "selftest", "reason": "dry", "dry_run": true, "params": {"steps": 2}}),
    );
    assert_eq!(status, 200, "{run}");
    let steps: Vec<Value> = run["phases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["steps"].as_array().cloned().unwrap())
        .collect();
    assert_eq!(steps.len(), 2);
    for s in &steps {
        assert!(s["description"].is_object(), "{s}");
    }
    let effects = d.state_dir().join("selftest-effects.log");
    assert!(
        std::fs::read_to_string(&effects)
            .unwrap_or_default()
            .is_empty(),
        "a dry run executed a step"
    );
}

/// Server-sent events: every journal entry with its seq as the event id; reconnecting with
/// `Last-Event-ID` resumes after it.
#[test]
fn events_stream_and_resume() {
    let d = Daemon::start(&config_yaml(""));
    let api = Api::new(&d);
    let id = api.start(json!({"steps": 2, "step_seconds": 0.05}));
    let run = api.wait_run(&id, "finished", finished);
    let last_seq = run["last_seq"].as_u64().unwrap();

    let read = |last: Option<&str>| -> Vec<(u64, String)> {
        api.rt.block_on(async {
            let mut req = Daemon::client()
                .get(format!("{}/v1/runs/{id}/events", d.url))
                .bearer_auth(VIEWER_TOKEN);
            if let Some(l) = last {
                req = req.header("Last-Event-ID", l);
            }
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            assert!(resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream"));
            // The stream ends after the run's last event.
            let text = tokio::time::timeout(Duration::from_secs(20), resp.text())
                .await
                .expect("event stream of a finished run ends")
                .unwrap();
            let mut out = Vec::new();
            let (mut seq, mut kind) = (None, None);
            for line in text.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    seq = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = Some(v.to_owned());
                } else if line.is_empty() {
                    if let (Some(s), Some(k)) = (seq.take(), kind.take()) {
                        out.push((s, k));
                    }
                }
            }
            out
        })
    };
    let all = read(None);
    assert_eq!(
        all.first().map(|e| e.1.as_str()),
        Some("run_started"),
        "{all:?}"
    );
    assert_eq!(all.last().map(|e| e.0), Some(last_seq), "{all:?}");
    let seqs: Vec<u64> = all.iter().map(|e| e.0).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gapless, ordered: {seqs:?}"
    );
    let resumed = read(Some("3"));
    assert_eq!(resumed.first().map(|e| e.0), Some(4), "{resumed:?}");
    assert_eq!(resumed, all[3..].to_vec());
}

/// Bad requests get a clear 4xx and change nothing stored.
#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let d = Daemon::start(&config_yaml(""));
    let api = Api::new(&d);
    let finished_id = api.start(json!({"steps": 1, "step_seconds": 0}));
    api.wait_run(&finished_id, "finished", finished);
    let (_, before) = api.get("/v1/runs");

    let raw = |body: &str| -> (u16, Value) {
        api.rt.block_on(async {
            let resp = Daemon::client()
                .post(format!("{}/v1/runs", d.url))
                .bearer_auth(OPERATOR_TOKEN)
                .header("content-type", "application/json")
                .body(body.to_owned())
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json().await.unwrap())
        })
    };
    // (case, (status, body) received, status wanted, error code wanted, text the message must hold)
    type Case<'a> = (&'a str, (u16, Value), u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "unknown plan",
            api.post("/v1/runs", json!({"plan": "nope", "reason": "x"})),
            400,
            "unknown_plan",
            "nope",
        ),
        (
            "malformed JSON",
            raw("{\"plan\": "),
            400,
            "invalid_json",
            "EOF",
        ),
        (
            "not an object",
            raw("[1,2]"),
            400,
            "invalid_request",
            "invalid type",
        ),
        (
            "missing plan",
            api.post("/v1/runs", json!({"reason": "x"})),
            400,
            "invalid_request",
            "plan",
        ),
        (
            "missing reason",
            api.post("/v1/runs", json!({"plan": "selftest"})),
            400,
            "invalid_request",
            "reason: required",
        ),
        (
            "unknown field",
            api.post(
                "/v1/runs",
                json!({"plan": "selftest", "reason": "x", "colour": 1}),
            ),
            400,
            "invalid_request",
            "colour",
        ),
        (
            "bad mode",
            api.post(
                "/v1/runs",
                json!({"plan": "selftest", "reason": "x", "mode": "fast"}),
            ),
            400,
            "invalid_request",
            "mode",
        ),
        (
            "bad params",
            api.post(
                "/v1/runs",
                json!({"plan": "selftest", "reason": "x", "params": {"steps": 0}}),
            ),
            400,
            "bad_params",
            "steps",
        ),
        (
            "approve a finished run",
            api.post(&format!("/v1/runs/{finished_id}/approve"), json!({})),
            409,
            "not_waiting_approval",
            "not waiting",
        ),
        (
            "abort a finished run",
            api.post(&format!("/v1/runs/{finished_id}/abort"), json!({})),
            409,
            "already_finished",
            "already finished",
        ),
        (
            "bad run id",
            api.get("/v1/runs/not-a-uuid"),
            400,
            "invalid_run_id",
            "not-a-uuid",
        ),
        (
            "unknown run",
            api.get("/v1/runs/0190b1c4-9d2e-7c3a-8f00-000000000000"),
            404,
            "not_found",
            "not found",
        ),
        (
            "approve an unknown run",
            api.post(
                "/v1/runs/0190b1c4-9d2e-7c3a-8f00-000000000000/approve",
                json!({}),
            ),
            404,
            "not_found",
            "not found",
        ),
        (
            "bad list limit",
            api.get("/v1/runs?limit=0"),
            400,
            "invalid_request",
            "limit",
        ),
    ];
    for (name, (status, body), want_status, want_code, want_text) in cases {
        assert_eq!(status, want_status, "{name}: {body}");
        assert_eq!(body["error"]["code"], want_code, "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(
            message.contains(want_text),
            "{name}: message {message:?} should mention {want_text:?}"
        );
    }
    let (_, after) = api.get("/v1/runs");
    assert_eq!(before, after, "a refused request changed what is stored");
    let run = api.get(&format!("/v1/runs/{finished_id}")).1;
    assert_eq!(status_of(&run), "succeeded");
}

/// `kill -9` in the middle of a run; the restarted daemon finishes it, each step executed once.
#[test]
fn kill_9_mid_run_resumes_and_executes_each_step_once() {
    let d = Daemon::start(&config_yaml(""));
    let api = Api::new(&d);
    let steps = 6;
    let id = api.start(json!({"steps": steps, "step_seconds": 0.4}));
    api.wait_run(&id, "two steps done", |r| succeeded_steps(r) >= 2);
    let dir = d.kill9();

    let d = Daemon::start_in(dir, &config_yaml(""));
    let api = Api::new(&d);
    let run = api.wait_run(&id, "finished", finished);
    assert_eq!(status_of(&run), "succeeded", "{run:#}");
    assert_eq!(succeeded_steps(&run), steps);
    let effects = std::fs::read_to_string(d.state_dir().join("selftest-effects.log")).unwrap();
    for n in 1..=steps {
        let count = effects
            .lines()
            .filter(|l| {
                l.starts_with(&id)
                    && l.split_whitespace()
                        .nth(1)
                        .is_some_and(|s| s.ends_with(&format!("{n}")))
            })
            .count();
        assert_eq!(count, 1, "step {n} executed {count} times:\n{effects}");
    }
    assert_eq!(
        effects.lines().filter(|l| l.starts_with(&id)).count(),
        steps
    );
}

/// The CLI client commands against the daemon.
#[test]
fn cli_client_commands() {
    let d = Daemon::start(&config_yaml(""));
    let token_file = d.path().join("op.token");
    std::fs::write(&token_file, OPERATOR_TOKEN).unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(harness::binary())
            .args(args)
            .args(["--url", &d.url, "--token-file"])
            .arg(&token_file)
            .env_remove("FAILOVERD_TOKEN")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = cli(&[
        "run",
        "selftest",
        "--reason",
        "cli",
        "--param",
        "steps=1",
        "--param",
        "step_seconds=0",
        "--output",
        "json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let run: Value = serde_json::from_str(&out).unwrap();
    let id = run["id"].as_str().unwrap().to_owned();
    let api = Api::new(&d);
    api.wait_run(&id, "finished", finished);
    let (code, out, _) = cli(&["runs", "--output", "json"]);
    assert_eq!(code, Some(0));
    let list: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["runs"][0]["id"], id.as_str());
    let (code, out, _) = cli(&["runs", &id]);
    assert_eq!(code, Some(0));
    assert!(out.contains("status: succeeded"), "{out}");
    // No probe configured: the regions' health is unknown, so status says degraded (7).
    let (code, out, _) = cli(&["status"]);
    assert_eq!(code, Some(7), "{out}");
    assert!(out.starts_with("failoverd e2e"), "{out}");
    // Refused by the API: exit 3 with the error's code.
    let (code, _, err) = cli(&["approve", &id]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("not_waiting_approval"), "{err}");
    // API not reachable: exit 1.
    let out = std::process::Command::new(harness::binary())
        .args(["status", "--url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn plans_say_what_they_move_and_an_unknown_plan_lists_them() {
    let d = Daemon::start(&config_yaml(""));
    let api = Api::new(&d);
    let (status, body) = api.get("/v1/plans");
    assert_eq!(status, 200, "{body}");
    let plans = body["plans"].as_array().expect("plans array");
    let names: Vec<&str> = plans.iter().filter_map(|p| p["name"].as_str()).collect();
    // No dns/cognito sections: only the plans whose dependencies are configured.
    assert_eq!(names, ["aurora-switchover", "selftest"], "{body}");
    let aurora = &plans[0];
    assert_eq!(aurora["moves_writer"], true, "{aurora}");
    assert_eq!(aurora["moves_traffic"], false, "{aurora}");
    assert_eq!(aurora["parameters"], json!(["target_region"]), "{aurora}");
    let selftest = &plans[1];
    assert_eq!(selftest["moves_writer"], false, "{selftest}");
    assert_eq!(selftest["moves_traffic"], false, "{selftest}");
    assert!(selftest["description"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));

    let (status, body) = api.post("/v1/runs", json!({"plan": "nope", "reason": "x"}));
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("aurora-switchover, selftest"),
        "the error lists the known plans: {message}"
    );

    // `failoverd plans`: a table by default, the document with -o json.
    let token_file = d.path().join("viewer.token");
    std::fs::write(&token_file, harness::VIEWER_TOKEN).unwrap();
    let cli = |extra: &[&str]| {
        let out = std::process::Command::new(harness::binary())
            .arg("plans")
            .args(["--url", &d.url, "--token-file"])
            .arg(&token_file)
            .args(extra)
            .env_remove("FAILOVERD_TOKEN")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = cli(&[]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("PLAN "), "{table}");
    assert!(
        lines.iter().any(|l| l.starts_with("aurora-switchover")
            && l.contains(" writer ")
            && l.contains("target_region")),
        "{table}"
    );
    assert!(lines.iter().any(|l| l.starts_with("selftest ")), "{table}");
    let doc: Value = serde_json::from_str(&cli(&["-o", "json"])).unwrap();
    assert_eq!(doc["plans"].as_array().map(Vec::len), Some(2), "{doc}");
}

#[test]
fn serve_refuses_a_recorded_active_region_it_cannot_trust() {
    for (what, make) in [
        (
            "a region outside the pair",
            (|p: &std::path::Path| std::fs::write(p, "eu-west-1\n").unwrap())
                as fn(&std::path::Path),
        ),
        ("an unreadable record", |p: &std::path::Path| {
            std::fs::create_dir_all(p).unwrap()
        }),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        make(&dir.path().join("state").join("active-region"));
        std::fs::write(dir.path().join("config.yaml"), config_yaml("")).unwrap();
        std::fs::write(dir.path().join("tokens.yaml"), harness::tokens_yaml()).unwrap();
        let out = std::process::Command::new(harness::binary())
            .args(["serve", "--config"])
            .arg(dir.path().join("config.yaml"))
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{what}: {stderr}");
        assert!(stderr.contains("active-region"), "{what}: {stderr}");
    }
}

/// `reason` is at most 1000 characters, counted as characters (what the OpenAPI `maxLength`
/// means), not bytes: 1000 three-byte characters are accepted, 1001 are not.
#[test]
fn the_reason_limit_counts_characters() {
    let d = Daemon::start(&config_yaml(""));
    let api = Api::new(&d);
    let dry = |reason: String| {
        api.post(
            "/v1/runs",
            json!({"plan": "selftest", "reason": reason, "dry_run": true, "params": {"steps": 1}}),
        )
    };
    let (code, body) = dry("漢".repeat(1000));
    assert_eq!(code, 200, "{body}");
    let (code, body) = dry("漢".repeat(1001));
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"]["message"], "reason: at most 1000 characters");
}
