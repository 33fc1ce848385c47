//! The run journal on a full volume, with the real binary: the state directory is a small tmpfs
//! mounted for the test (root: CI runs as root; a failed mount fails the test). Filled up, the
//! journal's writes fail: a new run is refused with the cause, the engine turns `degraded` with the
//! journal's error in `/v1/status`, `failoverd_store_errors_total` counts. Once space is freed the
//! next run is accepted and completes, the engine is `ok` again, and the run recorded before is
//! still there.

use std::io::Write;
use std::time::Duration;

use crate::lab_support::{wait, Api};
use crate::support::harness::{config_yaml, Daemon};
use serde_json::json;

/// A tmpfs of `size` at `dir`, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs (needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes zeros into `path` until the volume is full.
fn fill(path: &std::path::Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    // The last partial pages too.
    while f.write(&[0u8; 512]).is_ok_and(|n| n > 0) {
        written += 512;
    }
    let _ = f.sync_all();
    written
}

fn run_body(reason: &str) -> serde_json::Value {
    json!({"plan": "selftest", "reason": reason, "params": {"steps": 2}})
}

#[test]
fn a_full_volume_degrades_the_engine_and_it_recovers_when_space_is_freed() {
    let rt = crate::lab_support::runtime();
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("state");
    let _mount = Tmpfs::mount(&state, "8m");
    let config = config_yaml("").replace(
        "state:\n  dir: state\n",
        &format!("state:\n  dir: {}\n", state.display()),
    );
    assert!(config.contains(&state.display().to_string()));
    let d = Daemon::start(&config);
    let api = Api { d: &d, rt: &rt };
    api.wait_status("leadership", 30, |s| s["engine"]["leader"] == true);
    let before = api.run_to_end(run_body("before the volume fills"));
    assert_eq!(before["status"], "succeeded", "{before:#}");
    let before_id = before["id"].as_str().unwrap().to_owned();

    let filler = state.join("filler");
    let written = fill(&filler);
    println!("filled the volume with {written} bytes");

    let (code, body) = api.call(Some(run_body("on a full volume")), "/v1/runs");
    println!("on a full volume: {code} {body}");
    assert_eq!(code, 500, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("full")),
        "the cause is given: {body}"
    );
    let status = api.wait_status("the engine to report the journal", 30, |s| {
        s["components"]["engine"]["state"] == "degraded"
    });
    let error = status["components"]["engine"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(error.contains("run journal is failing"), "{error}");
    let metrics = api.metrics();
    let errors: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("failoverd_store_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(errors >= 1.0, "counted: {metrics}");

    std::fs::remove_file(&filler).unwrap();
    let after = wait("a run to be accepted once space is freed", 30, || {
        let (code, body) = api.call(Some(run_body("after space was freed")), "/v1/runs");
        (code == 202).then_some(body)
    });
    let id = after["id"].as_str().unwrap().to_owned();
    let done = api.finished(&id, 60);
    assert_eq!(done["status"], "succeeded", "{done:#}");
    api.wait_status("the engine to be ok again", 30, |s| {
        s["components"]["engine"]["state"] == "ok"
    });
    let (code, old) = api.call(None, &format!("/v1/runs/{before_id}"));
    assert_eq!(code, 200, "the run recorded before is still there: {old}");
    assert_eq!(old["status"], "succeeded");
    drop(d);
    std::thread::sleep(Duration::from_millis(200));
}
