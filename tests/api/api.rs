//! The HTTP API of the real binary: open endpoints, authentication and roles, the error shape,
//! limits, metrics (checked by `promtool`), graceful shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::harness::{config_yaml, Daemon, OPERATOR_TOKEN, VIEWER_TOKEN};

fn get(d: &Daemon, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = Daemon::client().get(format!("{}{path}", d.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    })
}

#[test]
fn open_endpoints_need_no_token() {
    let d = Daemon::start(&config_yaml(""));
    assert_eq!(get(&d, "/healthz", None).0, 200);
    let (status, body) = get(&d, "/readyz", None);
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
    let (status, body) = get(&d, "/metrics", None);
    assert_eq!(status, 200);
    let text = body.as_str().unwrap();
    assert!(text.contains("failoverd_build_info{"), "{text}");
    assert!(text.contains("process_resident_memory_bytes"), "{text}");
}

#[test]
fn v1_routes_need_a_valid_token() {
    let d = Daemon::start(&config_yaml(""));
    let (status, body) = get(&d, "/v1/status", None);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body) = get(&d, "/v1/status", Some("not-a-token"));
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], "invalid token");
    let (status, body) = get(&d, "/v1/status", Some(VIEWER_TOKEN));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pair"], "e2e");
    assert_eq!(body["regions"]["hot"], "us-east-1");
    assert_eq!(body["regions"]["cold"], "us-west-2");
    let (status, _) = get(&d, "/v1/status", Some(OPERATOR_TOKEN));
    assert_eq!(status, 200);
    let (status, body) = get(&d, "/v1/openapi.json", Some(VIEWER_TOKEN));
    assert_eq!(status, 200);
    assert_eq!(body["openapi"], "3.0.3");
}

#[test]
fn unknown_routes_get_the_error_shape() {
    let d = Daemon::start(&config_yaml(""));
    let (status, body) = get(&d, "/nope", None);
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = get(&d, "/v1/nope", Some(VIEWER_TOKEN));
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    // Under /v1 the token comes first: without one, an unknown route looks like any other.
    let (status, body) = get(&d, "/v1/nope", None);
    assert_eq!(status, 401, "{body}");
    let (status, body) = get(&d, "/v1/nope", Some("not-a-token"));
    assert_eq!(status, 401, "{body}");
}

/// A request written by hand: (status, body as JSON).
fn raw(d: &Daemon, request: &str) -> (u16, serde_json::Value) {
    let addr = d.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let request = request.replace("{addr}", &addr);
    stream.write_all(request.as_bytes()).unwrap();
    stream.flush().unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    // Up to the end of the first response (the server may keep the connection open).
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "reading the answer: {e}; so far {:?}",
                String::from_utf8_lossy(&answer)
            ),
        }
        let text = String::from_utf8_lossy(&answer);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok());
            if length.is_some_and(|n| body.len() >= n) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// Every refused mutating request leaves an audit line (with the token's name when it was
/// recognised); wrong methods and unknown routes answer only after the token; a body that is not
/// sent as JSON is refused with 415; a declared length over the limit gets 413 at once.
#[test]
fn refused_mutating_requests_are_audited_and_routes_answer_only_after_the_token() {
    let d = Daemon::start(&config_yaml(""));
    let post = |path: &str, token: Option<&str>, content_type: &str, body: &str| {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        raw(&d, &format!(
            "POST {path} HTTP/1.1\r\nHost: {{addr}}\r\n{auth}Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    let run = r#"{"plan":"selftest","reason":"refusals","params":{"steps":1,"step_seconds":0}}"#;
    let audit = |what: &str, route: &str, outcome: u16, token: &str| {
        d.wait_log(what, |v| {
            v["audit"] == true
                && v["route"] == route
                && v["outcome"] == outcome
                && v["token"] == token
        })
    };

    // No token, or a wrong one: 401, audited without a name.
    assert_eq!(post("/v1/runs", None, "application/json", run).0, 401);
    audit("401 without a token", "/v1/runs", 401, "-");
    assert_eq!(
        post("/v1/runs", Some("wrong"), "application/json", run).0,
        401
    );
    // A wrong method or an unknown route: 401 without a valid token, 405/404 with one.
    let (status, body) = post("/v1/status", None, "application/json", "{}");
    assert_eq!(status, 401, "{body}");
    audit("401 on a wrong method", "/v1/status", 401, "-");
    let (status, body) = post("/v1/status", Some(OPERATOR_TOKEN), "application/json", "{}");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed")),
        "{body}"
    );
    audit("405", "/v1/status", 405, "test-operator");
    let (status, body) = post("/v1/nope", Some(OPERATOR_TOKEN), "application/json", "{}");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found")),
        "{body}"
    );
    audit("404", "/v1/nope", 404, "test-operator");

    // JSON sent as another type.
    let (status, body) = post("/v1/runs", Some(OPERATOR_TOKEN), "text/plain", run);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("text/plain"),
        "{body}"
    );
    audit("415", "/v1/runs", 415, "test-operator");
    // A parameter after the type is fine.
    let (status, body) = post(
        "/v1/runs",
        Some(OPERATOR_TOKEN),
        "application/json; charset=utf-8",
        run,
    );
    assert_eq!(status, 202, "{body}");

    // A declared length over the limit (64 KiB in the test config): 413 without waiting for
    // the body, which never comes; the request deadline would have answered 503.
    let (status, body) = raw(&d, &format!(
        "POST /v1/runs HTTP/1.1\r\nHost: {{addr}}\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{{\"plan\""
    ));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("body_too_large")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("10000000"),
        "{body}"
    );
    audit("413", "/v1/runs", 413, "test-operator");

    // The message of a syntax error starts with what is wrong.
    let (status, body) = post(
        "/v1/runs",
        Some(OPERATOR_TOKEN),
        "application/json",
        "{\"plan\": ",
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_json")),
        "{body}"
    );
    assert!(
        !body["error"]["message"].as_str().unwrap().starts_with('?'),
        "{body}"
    );
}

#[test]
fn metrics_pass_promtool_check_metrics() {
    let d = Daemon::start(&config_yaml(""));
    let (status, body) = get(&d, "/metrics", None);
    assert_eq!(status, 200);
    let text = body.as_str().unwrap().to_owned();
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (make test installs it from Debian's prometheus package)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SIGTERM while a request is in flight (its body half sent): the request completes, then the
/// process exits 0 within the grace period.
#[test]
fn graceful_shutdown_finishes_in_flight_requests() {
    let mut d = Daemon::start(&config_yaml(""));
    let addr = d.url.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = br#"{"plan":"selftest","reason":"shutdown test","params":{"steps":1}}"#;
    let head = format!(
        "POST /v1/runs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {OPERATOR_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body[..10]).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    d.signal("TERM");
    d.wait_log("shutdown begins", |v| v["message"] == "shutting down");
    // New connections are refused once shutdown has begun…
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        TcpStream::connect(&addr).is_err() || {
            // …or, if the kernel still accepted it, it is closed without an answer.
            let mut s = TcpStream::connect(&addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
            let mut buf = [0u8; 64];
            matches!(s.read(&mut buf), Ok(0) | Err(_))
        },
        "a new connection was served after shutdown began"
    );
    // …but the in-flight request is finished and answered.
    stream.write_all(&body[10..]).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(
        response.starts_with("HTTP/1.1 "),
        "no response to the in-flight request: {response:?}"
    );
    let code: u16 = response[9..12].parse().unwrap();
    assert_eq!(
        code, 202,
        "the in-flight run request is accepted: {response}"
    );
    assert_eq!(d.wait_exit(Duration::from_secs(15)), Some(0));
    d.wait_log("stopped", |v| v["message"] == "failoverd stopped");
}

/// The auth matrix on a mutating route, and the audit line of every mutating request: token name,
/// route, parameters, outcome.
#[test]
fn mutating_requests_need_operator_and_are_audited() {
    let d = Daemon::start(&config_yaml(""));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let post = |token: Option<&str>| {
        rt.block_on(async {
            let mut req = Daemon::client()
                .post(format!("{}/v1/runs", d.url))
                .json(&serde_json::json!({"plan": "selftest", "reason": "audit me", "params": {"steps": 1, "step_seconds": 0}}));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        })
    };
    let (status, body) = post(None);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = post(Some("wrong"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = post(Some(VIEWER_TOKEN));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, body) = post(Some(OPERATOR_TOKEN));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["requested_by"], "test-operator");

    let line = d.wait_log("audit line", |v| {
        v["audit"] == true && v["token"] == "test-operator"
    });
    assert_eq!(line["route"], "/v1/runs");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["outcome"], 202);
    assert!(
        line["params"].as_str().unwrap().contains("audit me"),
        "{line}"
    );
    let refused = d.wait_log("refusal audit", |v| {
        v["audit"] == true && v["token"] == "test-viewer"
    });
    assert_eq!(refused["outcome"], 403);
    assert_eq!(refused["route"], "/v1/runs");
}

/// A body over `server.body_limit_bytes` is refused with 413 in the error shape.
#[test]
fn oversized_bodies_are_refused() {
    let d = Daemon::start(&config_yaml(""));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (status, body) = rt.block_on(async {
        let big = "x".repeat(100 * 1024);
        let resp = Daemon::client()
            .post(format!("{}/v1/runs", d.url))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&serde_json::json!({"plan": "selftest", "reason": big}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<serde_json::Value>().await.unwrap())
    });
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "body_too_large");
}

/// The cold region must survive the hot region's APIs disappearing: with every AWS endpoint on a
/// closed port, failoverd starts, keeps answering, and reports the component as unreachable.
#[test]
fn serves_while_aws_is_unreachable() {
    // A port with nothing listening: bind, note it, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let d = Daemon::start(&config_yaml(&format!(
        "aws:\n  endpoint_url: http://{closed}\n  connect_timeout: 200ms\n  attempt_timeout: 500ms\n  operation_timeout: 1s\n  max_attempts: 1\nreplication:\n  interval: 1s\n  aurora:\n    - global_cluster: orders\n      clusters: {{us-east-1: orders-e, us-west-2: orders-w}}\n  backup_vaults:\n    - {{region: us-west-2, name: dr}}\n"
    )));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let component = loop {
        let (status, body) = get(&d, "/v1/status", Some(VIEWER_TOKEN));
        assert_eq!(status, 200);
        let c = body["components"]["replication.aurora.orders"].clone();
        if c["state"] == "unreachable" {
            break c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never unreachable: {body:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(component["failures"].as_u64().unwrap() >= 1, "{component}");
    assert!(
        component["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{component}"
    );
    // Still alive and ready, and the metric says the component is down.
    assert_eq!(get(&d, "/healthz", None).0, 200);
    assert_eq!(get(&d, "/readyz", None).0, 200);
    let (_, metrics) = get(&d, "/metrics", None);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("failoverd_component_up{component=\"replication.aurora.orders\"} 0"),
        "{metrics}"
    );
    // It keeps retrying: the failure count grows.
    let first = component["failures"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = get(&d, "/v1/status", Some(VIEWER_TOKEN));
        if body["components"]["replication.aurora.orders"]["failures"]
            .as_u64()
            .unwrap_or(0)
            > first
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no retry: {body:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Acknowledging when there was no failover is refused, and a viewer cannot acknowledge.
#[test]
fn policy_acknowledge_needs_a_failover_and_an_operator() {
    let d = Daemon::start(&config_yaml(""));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let post = |token: &str| {
        rt.block_on(async {
            let resp = Daemon::client()
                .post(format!("{}/v1/policy/acknowledge", d.url))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<serde_json::Value>().await.unwrap())
        })
    };
    assert_eq!(post(VIEWER_TOKEN).0, 403);
    let (status, body) = post(OPERATOR_TOKEN);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("nothing_to_acknowledge")),
        "{body}"
    );
}
