//! The command line: `validate` exit codes and output, `hash-token`.

use std::io::Write;
use std::process::{Command, Stdio};

fn failoverd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_failoverd"))
}

#[test]
fn validate_accepts_the_example_with_a_summary() {
    let out = failoverd()
        .args([
            "validate",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.yaml"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "one-line summary: {stdout}");
    assert!(
        stdout.contains("ok — pair example-prod: us-east-1 (hot) / us-west-2 (cold)"),
        "{stdout}"
    );
}

#[test]
fn validate_prints_every_error_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "pair: x\nregions:\n  - {name: us-east-1, role: hot}\n  - {name: us-west-2, role: cold}\n  - {name: eu-west-1, role: cold}\naws:\n  connect_timeout: soon\nhealth:\n  unhealthy_after: 0\n",
    )
    .unwrap();
    let out = failoverd().arg("validate").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml: 3 error(s)"), "{stderr}");
    assert!(
        stderr.contains("aws.connect_timeout: invalid duration \"soon\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("regions: exactly two regions are required (one hot, one cold), found 3"),
        "{stderr}"
    );
    assert!(
        stderr.contains("health.unhealthy_after: 0 is out of range 1..=100"),
        "{stderr}"
    );
}

#[test]
fn validate_of_a_missing_file_names_it_and_exits_2() {
    let out = failoverd()
        .args(["validate", "/nonexistent/failoverd.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/nonexistent/failoverd.yaml") && stderr.contains("cannot read file"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_an_invalid_config_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "pair: x\n").unwrap();
    let out = failoverd()
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("regions: required"));
}

#[test]
fn usage_errors_exit_2() {
    let out = failoverd().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn hash_token_hashes_stdin_and_generates() {
    let mut child = failoverd()
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        failoverd::api::auth::hash_token("s3cret")
    );

    let out = failoverd()
        .args([
            "hash-token",
            "--generate",
            "--name",
            "ci",
            "--role",
            "viewer",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // The generated token hashes to the printed entry, and the entry is a valid tokens file.
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("# fod_"))
        .map(|rest| format!("fod_{rest}"))
        .expect("token line");
    let entries: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let set = failoverd::api::TokenSet::parse(&format!("tokens:\n{entries}\n")).unwrap();
    let who = set
        .authenticate(&token)
        .expect("generated token authenticates");
    assert_eq!(who.name, "ci");
    assert_eq!(who.role, failoverd::api::Role::Viewer);
}
