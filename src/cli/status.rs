//! `failoverd status`: the `/v1/status` document on one screen.
//!
//! One aligned line per subject — regions, topology, replication, Cognito, GitOps, policy,
//! readiness, leadership, the active run — and the problems that make the standby unfit to take
//! over listed last. The command exits [`super::EXIT_DEGRADED`] when there is any, so it can gate
//! a script. `-v` adds the details (each probe, each readiness check, each component); `-o json`
//! prints the whole document.
//!
//! The document is read as JSON, field by field: a field this version does not know, or one that
//! is missing (an older or newer daemon), is shown as `-`, never a failure.

use std::fmt::Write as _;

use serde_json::Value;
use time::OffsetDateTime;

use crate::engine::report::markdown::time_of_day;

/// Colours for a terminal, or none.
#[derive(Clone, Copy)]
pub struct Paint {
    pub on: bool,
}

impl Paint {
    /// Colour when stdout is a terminal and `NO_COLOR` is not set (<https://no-color.org>).
    pub fn for_stdout() -> Self {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            on: !no_color && std::io::stdout().is_terminal(),
        }
    }
    fn wrap(self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    pub fn good(self, s: &str) -> String {
        self.wrap("32", s)
    }
    pub fn bad(self, s: &str) -> String {
        self.wrap("31", s)
    }
    pub fn warn(self, s: &str) -> String {
        self.wrap("33", s)
    }
    pub fn bold(self, s: &str) -> String {
        self.wrap("1", s)
    }
    pub fn dim(self, s: &str) -> String {
        self.wrap("2", s)
    }
}

/// What the status says, rendered, with what is wrong.
pub struct Rendered {
    pub text: String,
    pub problems: Vec<String>,
}

fn s<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    v.pointer(path)?.as_str()
}

fn f(v: &Value, path: &str) -> Option<f64> {
    v.pointer(path)?.as_f64()
}

fn b(v: &Value, path: &str) -> Option<bool> {
    v.pointer(path)?.as_bool()
}

fn arr<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    v.pointer(path)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// `90061.5` → `1d1h`, `147.2` → `2m27s`, `0.16` → `0.16s`.
pub fn seconds(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".into();
    }
    if secs < 10.0 {
        let t = format!("{secs:.2}");
        let t = t.trim_end_matches('0').trim_end_matches('.');
        return format!("{t}s");
    }
    let total = secs.round() as u64;
    let (d, h, m, sec) = (
        total / 86_400,
        total % 86_400 / 3600,
        total % 3600 / 60,
        total % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) => format!("{m}m{sec:02}s"),
        (0, _, _) => format!("{h}h{m:02}m"),
        _ => format!("{d}d{h}h"),
    }
}

pub(super) fn parse_time(t: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
}

/// How long ago `t` (RFC 3339) was, as of `now`.
fn ago(t: Option<&str>, now: OffsetDateTime) -> String {
    match t.and_then(parse_time) {
        Some(t) => format!("{} ago", seconds((now - t).as_seconds_f64().max(0.0))),
        None => "never".into(),
    }
}

/// The time of day of `t`, for a timeline.
pub fn clock(t: Option<&str>) -> String {
    match t.and_then(parse_time) {
        Some(t) => time_of_day(Some(t)),
        None => "--:--:--".into(),
    }
}

/// Every step of a run view, phase after phase.
pub(super) fn run_steps(run: &Value) -> impl Iterator<Item = &Value> {
    arr(run, "/phases").iter().flat_map(|p| arr(p, "/steps"))
}

/// Whether a step of a run view is at work: executing, compensating, or waiting to try again
/// (a retryable failure shows as `failed` with its `retry`).
pub(super) fn is_busy(step: &Value) -> bool {
    step.get("retry").is_some_and(Value::is_object)
        || s(step, "/status").is_some_and(|x| matches!(x, "running" | "compensating"))
}

/// A step's state in words: its status, or that it waits to try again.
pub(super) fn step_state(step: &Value) -> &str {
    if step.get("retry").is_some_and(Value::is_object) {
        "waiting to retry"
    } else {
        s(step, "/status").unwrap_or("-")
    }
}

struct Screen {
    out: String,
    paint: Paint,
}

const LABEL: usize = 11;

impl Screen {
    fn line(&mut self, label: &str, text: &str) {
        let _ = writeln!(
            self.out,
            "{}{}{text}",
            self.paint.bold(label),
            " ".repeat(LABEL.saturating_sub(label.chars().count()))
        );
    }
    fn more(&mut self, text: &str) {
        self.line("", text);
    }
}

fn health_word(paint: Paint, h: &str) -> String {
    match h {
        "healthy" => paint.good(h),
        "unhealthy" => paint.bad(h),
        _ => paint.warn(h),
    }
}

/// Every `{"state": …}` object under `components`, by its path (`replication/aurora/x`).
fn components(v: &Value, path: &str, out: &mut Vec<(String, Value)>) {
    let Some(map) = v.as_object() else { return };
    if map.get("state").is_some_and(Value::is_string) {
        out.push((path.to_owned(), v.clone()));
        return;
    }
    for (k, child) in map {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}/{k}")
        };
        components(child, &p, out);
    }
}

/// Renders `/v1/status` (`status`) with the active run's view (`run`, when there is one).
pub fn render(
    status: &Value,
    run: Option<&Value>,
    verbose: bool,
    paint: Paint,
    now: OffsetDateTime,
) -> Rendered {
    let mut sc = Screen {
        out: String::new(),
        paint,
    };
    let mut problems: Vec<String> = Vec::new();

    // Header.
    let pair = s(status, "/pair").unwrap_or("-");
    let version = s(status, "/version").unwrap_or("-");
    let up = s(status, "/started_at")
        .and_then(parse_time)
        .map_or("-".into(), |t| seconds((now - t).as_seconds_f64().max(0.0)));
    let _ = writeln!(
        sc.out,
        "{}  {}",
        paint.bold(&format!("failoverd {pair}")),
        paint.dim(&format!("v{version}, up {up}"))
    );
    if b(status, "/ready") == Some(false) {
        problems.push("failoverd is not ready (/readyz)".into());
    }

    // Regions.
    let active = s(status, "/regions/active")
        .or(s(status, "/topology/active"))
        .unwrap_or("-")
        .to_owned();
    let standby = s(status, "/regions/standby").unwrap_or("-").to_owned();
    for (role, region) in [("active", &active), ("standby", &standby)] {
        let h = status.pointer(&format!("/health/regions/{region}"));
        let word = h
            .and_then(|h| s(h, "/health"))
            .unwrap_or("unknown")
            .to_owned();
        let explanation = h.and_then(|h| s(h, "/explanation")).unwrap_or("");
        let since = h
            .and_then(|h| f(h, "/for_seconds"))
            .map(|x| format!(" for {}", seconds(x)))
            .unwrap_or_default();
        sc.line(
            if role == "active" { "REGIONS" } else { "" },
            &format!(
                "{role:<8}{region:<16}{}{since}  {}",
                health_word(paint, &word),
                paint.dim(explanation)
            ),
        );
        if word != "healthy" {
            problems.push(format!("the {role} region {region} is {word}"));
        }
    }
    if verbose {
        for p in arr(status, "/health/probes") {
            let state = s(p, "/state").unwrap_or("-");
            let err = if state == "up" {
                String::new()
            } else {
                s(p, "/last_error").unwrap_or("").to_owned()
            };
            sc.more(&format!(
                "  probe {} ({}, {}): {}  {}",
                s(p, "/name").unwrap_or("-"),
                s(p, "/region").unwrap_or("-"),
                s(p, "/kind").unwrap_or("-"),
                if state == "up" {
                    paint.good(state)
                } else {
                    paint.warn(state)
                },
                paint.dim(&err)
            ));
        }
    }

    // Topology.
    let observations: Vec<String> = arr(status, "/topology/observations")
        .iter()
        .map(|o| {
            format!(
                "{} {}",
                s(o, "/component").unwrap_or("-"),
                s(o, "/says/value").unwrap_or("?")
            )
        })
        .collect();
    let drift = arr(status, "/topology/drift");
    let drift_text = if drift.is_empty() {
        paint.good("no drift")
    } else {
        paint.bad(&format!("{} drift", drift.len()))
    };
    sc.line(
        "TOPOLOGY",
        &format!(
            "{drift_text}  {}",
            paint.dim(&if observations.is_empty() {
                "no observation yet".to_owned()
            } else {
                observations.join(", ")
            })
        ),
    );
    for d in drift {
        let text = s(d, "/message")
            .or(s(d, "/detail"))
            .map(str::to_owned)
            .unwrap_or_else(|| d.to_string());
        sc.more(&paint.bad(&text));
        problems.push(format!("topology drift: {text}"));
    }

    // Replication.
    let aurora = arr(status, "/replication/aurora");
    for (i, g) in aurora.iter().enumerate() {
        let name = s(g, "/global_cluster").unwrap_or("-");
        let max = f(g, "/max_lag_seconds");
        let lag = f(g, "/lag/lag_seconds");
        let age = f(g, "/lag/age_seconds");
        let stale = b(g, "/lag/stale").unwrap_or(false);
        let unknown = b(g, "/lag_unknown").unwrap_or(lag.is_none());
        let over = matches!((lag, max), (Some(l), Some(m)) if l > m);
        let lag_text = match lag {
            Some(l) => format!(
                "lag {} / max {}",
                seconds(l),
                max.map_or("-".into(), seconds)
            ),
            None => "lag unknown".into(),
        };
        let lag_text = if over || unknown || stale {
            paint.bad(&lag_text)
        } else {
            paint.good(&lag_text)
        };
        let writer = s(g, "/topology/writer_region").unwrap_or("-");
        let read = age.map_or("-".into(), |a| format!("read {} ago", seconds(a)));
        sc.line(
            if i == 0 { "AURORA" } else { "" },
            &format!(
                "{name:<24}{lag_text}  {}",
                paint.dim(&format!("writer {writer}, {read}"))
            ),
        );
        if over {
            problems.push(format!("Aurora {name}: the lag is over its budget"));
        }
        if stale {
            problems.push(format!("Aurora {name}: the lag reading is stale"));
        } else if unknown {
            let why = s(g, "/lag_error").unwrap_or("no reading yet");
            problems.push(format!("Aurora {name}: the lag is unknown ({why})"));
        }
        if let Some(e) = s(g, "/topology_error") {
            problems.push(format!("Aurora {name}: {e}"));
        }
    }
    let vaults = arr(status, "/replication/backup_vaults");
    for (i, v) in vaults.iter().enumerate() {
        let name = s(v, "/vault").unwrap_or("-");
        let max = f(v, "/max_copy_age_seconds");
        let resources = arr(v, "/resources");
        let newest = resources
            .iter()
            .filter_map(|r| f(r, "/age_seconds"))
            .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.min(a))));
        let too_old: Vec<&str> = resources
            .iter()
            .filter(|r| b(r, "/too_old") == Some(true))
            .filter_map(|r| s(r, "/resource_arn"))
            .collect();
        let failed = v
            .pointer("/failed_copy_jobs")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let copy = match newest {
            Some(a) => format!(
                "newest copy {} old / max {}",
                seconds(a),
                max.map_or("-".into(), seconds)
            ),
            None => "no copy yet".into(),
        };
        let copy = if too_old.is_empty() && newest.is_some() {
            paint.good(&copy)
        } else {
            paint.bad(&copy)
        };
        let jobs = if failed > 0 {
            paint.warn(&format!("  {failed} failed copy job(s)"))
        } else {
            String::new()
        };
        sc.line(
            if i == 0 { "BACKUP" } else { "" },
            &format!("{name:<24}{copy}{jobs}"),
        );
        for r in &too_old {
            problems.push(format!("backup vault {name}: the copy of {r} is too old"));
        }
        for k in ["/recovery_points_error", "/copy_jobs_error"] {
            if let Some(e) = s(v, k) {
                problems.push(format!("backup vault {name}: {e}"));
            }
        }
    }
    if aurora.is_empty() && vaults.is_empty() {
        sc.line("DATA", &paint.dim("no replication configured"));
    }

    // Cognito.
    if let Some(c) = status.get("cognito").filter(|c| c.is_object()) {
        let mode = s(c, "/mode").unwrap_or("-");
        let last = ago(s(c, "/last_success_at"), now);
        let users = match (
            c.pointer("/last_report/hot_users").and_then(Value::as_u64),
            c.pointer("/last_report/cold_users").and_then(Value::as_u64),
        ) {
            (Some(h), Some(cold)) => format!("users {h} hot / {cold} cold"),
            _ => "users -".into(),
        };
        let throttled = c
            .pointer("/throttled_total")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let state = if b(c, "/paused") == Some(true) {
            paint.warn("paused")
        } else if s(c, "/last_error").is_some() {
            paint.bad("failing")
        } else if c.pointer("/last_success_at").is_some_and(Value::is_string) {
            paint.good("synced")
        } else {
            paint.warn("not synced yet")
        };
        sc.line(
            "COGNITO",
            &format!(
                "{mode:<8}{state} {last}  {}",
                paint.dim(&format!("{users}, throttled {throttled}"))
            ),
        );
        if let Some(e) = s(c, "/last_error") {
            sc.more(&paint.bad(e));
            problems.push(format!("Cognito sync: {e}"));
        }
    }

    // GitOps.
    for (i, g) in arr(status, "/gitops").iter().enumerate() {
        let region = s(g, "/region").unwrap_or("-");
        let objects = arr(g, "/objects");
        let ready = objects
            .iter()
            .filter(|o| b(o, "/ready") == Some(true))
            .count();
        let text = if b(g, "/reachable") == Some(false) {
            problems.push(format!("GitOps: the cluster of {region} is unreachable"));
            paint.bad("unreachable")
        } else if ready == objects.len() {
            paint.good(&format!("{ready}/{} ready", objects.len()))
        } else {
            problems.push(format!(
                "GitOps {region}: {} object(s) not ready",
                objects.len() - ready
            ));
            paint.warn(&format!("{ready}/{} ready", objects.len()))
        };
        sc.line(
            if i == 0 { "GITOPS" } else { "" },
            &format!("{region:<16}{text}"),
        );
        if verbose {
            for o in objects.iter().filter(|o| b(o, "/ready") != Some(true)) {
                sc.more(&format!(
                    "  {} {}/{}: {}",
                    s(o, "/kind").unwrap_or("-"),
                    s(o, "/namespace").unwrap_or("-"),
                    s(o, "/name").unwrap_or("-"),
                    s(o, "/detail").unwrap_or("")
                ));
            }
        }
    }

    // Policy.
    if let Some(p) = status.get("policy").filter(|p| p.is_object()) {
        let mode = s(p, "/mode").unwrap_or("-");
        let decision = s(p, "/last_decision/decision").unwrap_or("no decision yet");
        let detail = s(p, "/last_decision/detail").unwrap_or("");
        let since = s(p, "/last_decision/since")
            .map(|t| format!(" (since {})", clock(Some(t))))
            .unwrap_or_default();
        sc.line(
            "POLICY",
            &format!(
                "{mode:<20}{}: {detail}{}",
                paint.bold(decision),
                paint.dim(&since)
            ),
        );
        let blockers: Vec<&str> = arr(p, "/last_decision/blockers")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if verbose && !blockers.is_empty() {
            sc.more(&paint.dim(&format!("blockers: {}", blockers.join(", "))));
        }
        if let Some(until) = s(p, "/cooldown_until") {
            sc.more(&paint.warn(&format!(
                "cooldown until {until}{}",
                s(p, "/cooldown_acknowledged_by")
                    .map(|by| format!(" (acknowledged by {by})"))
                    .unwrap_or_default()
            )));
        }
        if let Some(e) = s(p, "/last_start_failure/message").or(s(p, "/last_start_failure")) {
            sc.more(&paint.bad(&format!("last start failed: {e}")));
            problems.push(format!("the policy could not start its run: {e}"));
        }
    }

    // Readiness.
    if let Some(r) = status.get("readiness").filter(|r| r.is_object()) {
        let plan = s(r, "/plan").unwrap_or("-");
        let modes = r.get("modes").and_then(Value::as_object);
        let mut first = true;
        for (mode, m) in modes.into_iter().flatten() {
            let ready = b(m, "/ready");
            let failing = arr(m, "/failing");
            let word = match ready {
                Some(true) => paint.good("ready"),
                Some(false) => paint.bad(&format!("not ready, {} failing", failing.len())),
                None => paint.warn("not evaluated yet"),
            };
            let target = s(m, "/target_region").unwrap_or("-");
            sc.line(
                if first { "READINESS" } else { "" },
                &format!(
                    "{plan} {mode:<11}{word}  {}",
                    paint.dim(&format!("→ {target}"))
                ),
            );
            first = false;
            if ready == Some(false) {
                problems.push(format!(
                    "the {plan} plan is not ready ({mode}): {}",
                    failing
                        .iter()
                        .filter_map(Value::as_str)
                        .next()
                        .unwrap_or("a check fails")
                ));
            }
            let shown = if verbose { failing.len() } else { 1 };
            for fl in failing.iter().filter_map(Value::as_str).take(shown) {
                sc.more(&paint.dim(&format!("  {fl}")));
            }
        }
        if let Some(e) = s(r, "/error") {
            problems.push(format!("readiness: {e}"));
        }
    }

    // Leadership and components.
    let leader = b(status, "/engine/leader");
    let token = status
        .pointer("/engine/fencing_token")
        .and_then(Value::as_u64);
    let holder = s(status, "/components/engine/error")
        .map(|e| e.strip_prefix("not the leader: ").unwrap_or(e));
    let lead_text = match leader {
        Some(true) => paint.good(&format!(
            "this replica leads{}",
            token
                .map(|t| format!(" (fencing token {t})"))
                .unwrap_or_default()
        )),
        Some(false) => paint.warn(&format!(
            "follower{}",
            holder.map(|h| format!(": {h}")).unwrap_or_default()
        )),
        None => "-".into(),
    };
    sc.line("LEADER", &lead_text);
    let mut comps = Vec::new();
    if let Some(c) = status.get("components") {
        components(c, "", &mut comps);
    }
    // A follower's engine is degraded only in that it does not lead: in an HA pair that is how
    // one of the two always is, not a problem.
    let following = |name: &str, c: &Value| {
        name == "engine"
            && leader == Some(false)
            && s(c, "/error").is_some_and(|e| e.starts_with("not the leader"))
    };
    let not_ok: Vec<&(String, Value)> = comps
        .iter()
        .filter(|(name, c)| s(c, "/state") != Some("ok") && !following(name, c))
        .collect();
    let comp_text = if not_ok.is_empty() {
        paint.good(&format!("{} component(s) ok", comps.len()))
    } else {
        paint.warn(&format!("{} of {} not ok", not_ok.len(), comps.len()))
    };
    sc.line("COMPONENTS", &comp_text);
    for (name, c) in if verbose {
        comps.iter().collect::<Vec<_>>()
    } else {
        not_ok.clone()
    } {
        let state = s(c, "/state").unwrap_or("-");
        let err = s(c, "/error").unwrap_or("");
        sc.more(&format!("  {name}: {state}  {}", paint.dim(err)));
    }
    for (name, c) in &not_ok {
        let state = s(c, "/state").unwrap_or("-");
        if state != "starting" {
            problems.push(format!(
                "component {name} is {state}{}",
                s(c, "/error").map(|e| format!(": {e}")).unwrap_or_default()
            ));
        }
    }

    // The active run.
    match (s(status, "/engine/active_run"), run) {
        (None, _) => sc.line("RUN", &paint.dim("none active")),
        (Some(id), None) => sc.line("RUN", id),
        (Some(id), Some(r)) => {
            let plan = s(r, "/plan").unwrap_or("-");
            let st = s(r, "/status").unwrap_or("-");
            let step = current_step(r);
            sc.line(
                "RUN",
                &format!(
                    "{plan} {} {}{}",
                    paint.bold(st),
                    paint.dim(id),
                    step.map(|s| format!("  step {s}")).unwrap_or_default()
                ),
            );
            if let Some(gate) = s(r, "/waiting_for_approval") {
                sc.more(&paint.warn(&format!(
                    "waiting for approval of {gate}: failoverd approve {id}"
                )));
            }
        }
    }
    for r in arr(status, "/engine/retrying") {
        sc.more(&paint.warn(&format!(
            "step {} retrying{}",
            s(r, "/step").unwrap_or("-"),
            s(r, "/last_error")
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )));
    }

    if problems.is_empty() {
        let _ = writeln!(sc.out, "\n{}", paint.good("all well"));
    } else {
        let _ = writeln!(
            sc.out,
            "\n{}",
            paint.bad(&format!("DEGRADED: {} problem(s)", problems.len()))
        );
        for p in &problems {
            let _ = writeln!(sc.out, "  - {p}");
        }
    }
    Rendered {
        text: sc.out,
        problems,
    }
}

/// The step a run is at: the first running one, else the first pending one.
fn current_step(run: &Value) -> Option<String> {
    let steps: Vec<&Value> = run_steps(run).collect();
    steps
        .iter()
        .find(|st| is_busy(st))
        .or_else(|| steps.iter().find(|st| s(st, "/status") == Some("pending")))
        .map(|st| {
            format!(
                "{} ({}, attempt {})",
                s(st, "/id").unwrap_or("-"),
                step_state(st),
                st.pointer("/attempts").and_then(Value::as_u64).unwrap_or(0)
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = include_str!("testdata/status-lab.json");

    fn now() -> OffsetDateTime {
        parse_time("2026-12-03T13:01:43Z").unwrap()
    }

    #[test]
    fn the_lab_status_fits_one_screen_and_names_what_is_wrong() {
        let v: Value = serde_json::from_str(LAB).unwrap();
        let r = render(&v, None, false, Paint { on: false }, now());
        assert!(r.text.lines().count() <= 24, "{}", r.text);
        for want in [
            "REGIONS    active  us-east-1       healthy for 23s",
            "standby us-west-2       healthy",
            "AURORA     lab-global              lag 0.16s / max 5s",
            "BACKUP     lab-cold-vault          newest copy 1h00m old / max 1d2h  1 failed copy job(s)",
            "COGNITO    sync    synced 20s ago",
            "users 64 hot / 64 cold, throttled 0",
            "POLICY     approval_required   hold: hot region us-east-1 is healthy",
            "LEADER     this replica leads (fencing token 1)",
            "RUN        none active",
            "GITOPS     us-east-1",
        ] {
            assert!(r.text.contains(want), "missing {want:?} in\n{}", r.text);
        }
        // The lab's readiness was evaluated before the standby's first probe result.
        assert!(
            r.problems
                .iter()
                .any(|p| p.starts_with("the failover plan is not ready (graceful)")),
            "{:?}",
            r.problems
        );
        assert!(r.text.contains("DEGRADED:"), "{}", r.text);
        assert!(!r.text.contains('\x1b'), "no colour when off");
    }

    #[test]
    fn all_well_when_nothing_is_wrong_and_degraded_by_each_problem() {
        let mut v: Value = serde_json::from_str(LAB).unwrap();
        for m in ["graceful", "ungraceful"] {
            v["readiness"]["modes"][m]["ready"] = Value::Bool(true);
            v["readiness"]["modes"][m]["failing"] = Value::Array(vec![]);
        }
        let r = render(&v, None, false, Paint { on: false }, now());
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(r.text.contains("all well"));

        let mut lagging = v.clone();
        lagging["replication"]["aurora"][0]["lag"]["lag_seconds"] = 9.5.into();
        let r = render(&lagging, None, false, Paint { on: false }, now());
        assert_eq!(
            r.problems,
            vec!["Aurora lab-global: the lag is over its budget".to_owned()]
        );

        let mut down = v.clone();
        down["health"]["regions"]["us-east-1"]["health"] = "unhealthy".into();
        down["components"]["engine"]["state"] = "unreachable".into();
        down["components"]["engine"]["error"] = "store: disk full".into();
        let r = render(&down, None, false, Paint { on: false }, now());
        assert_eq!(
            r.problems,
            vec![
                "the active region us-east-1 is unhealthy".to_owned(),
                "component engine is unreachable: store: disk full".to_owned()
            ]
        );
    }

    #[test]
    fn a_follower_says_who_leads_and_is_not_degraded_for_following() {
        let mut v: Value = serde_json::from_str(LAB).unwrap();
        for m in ["graceful", "ungraceful"] {
            v["readiness"]["modes"][m]["ready"] = Value::Bool(true);
            v["readiness"]["modes"][m]["failing"] = Value::Array(vec![]);
        }
        v["engine"]["leader"] = false.into();
        v["components"]["engine"]["state"] = "degraded".into();
        v["components"]["engine"]["error"] =
            "not the leader: failoverd-7d9c_1a2b3c4d holds the Lease failoverd (fencing token 42)"
                .into();
        let r = render(&v, None, false, Paint { on: false }, now());
        assert!(
            r.text.contains(
                "LEADER     follower: failoverd-7d9c_1a2b3c4d holds the Lease failoverd (fencing token 42)"
            ),
            "{}",
            r.text
        );
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        // The same component degraded for another reason on the leader is a problem.
        v["engine"]["leader"] = true.into();
        v["components"]["engine"]["error"] = "journal: disk full".into();
        let r = render(&v, None, false, Paint { on: false }, now());
        assert_eq!(
            r.problems,
            vec!["component engine is degraded: journal: disk full".to_owned()]
        );
    }

    #[test]
    fn an_unknown_or_partial_document_renders_without_failing() {
        for doc in [
            "{}",
            "[]",
            "null",
            r#"{"regions": 3, "health": {"regions": []}}"#,
        ] {
            let v: Value = serde_json::from_str(doc).unwrap();
            let r = render(&v, None, true, Paint { on: true }, now());
            assert!(r.text.contains("REGIONS"), "{doc}: {}", r.text);
        }
    }

    #[test]
    fn the_active_run_shows_its_step_and_how_to_approve() {
        let mut v: Value = serde_json::from_str(LAB).unwrap();
        v["engine"]["active_run"] = "01a23bff-5624-73e2-bde3-ff287994c92b".into();
        let run = serde_json::json!({
            "plan": "failover", "status": "waiting_approval", "waiting_for_approval": "promote",
            "phases": [{"name": "promote", "steps": [
                {"id": "preflight", "status": "succeeded", "attempts": 1},
                {"id": "aurora-switchover", "status": "pending", "attempts": 0}]}]
        });
        let r = render(&v, Some(&run), false, Paint { on: false }, now());
        assert!(
            r.text.contains("RUN        failover waiting_approval 01a23bff-5624-73e2-bde3-ff287994c92b  step aurora-switchover (pending, attempt 0)"),
            "{}",
            r.text
        );
        assert!(r
            .text
            .contains("failoverd approve 01a23bff-5624-73e2-bde3-ff287994c92b"));

        // A step waiting to retry is `failed` with its `retry`: it is the current step.
        let run = serde_json::json!({
            "plan": "failover", "status": "running",
            "phases": [{"name": "dns", "steps": [
                {"id": "dns-apply-10", "status": "failed", "attempts": 3,
                 "retry": {"operation": "execute", "attempts": 3,
                           "next_attempt_at": "2026-12-03T13:02:00Z", "last_error": "Throttling"}},
                {"id": "dns-apply-50", "status": "pending", "attempts": 0}]}]
        });
        let r = render(&v, Some(&run), false, Paint { on: false }, now());
        assert!(
            r.text
                .contains("step dns-apply-10 (waiting to retry, attempt 3)"),
            "{}",
            r.text
        );
    }

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(seconds(0.16), "0.16s");
        assert_eq!(seconds(5.0), "5s");
        assert_eq!(seconds(23.4), "23s");
        assert_eq!(seconds(147.2), "2m27s");
        assert_eq!(seconds(7243.0), "2h00m");
        assert_eq!(seconds(93_600.0), "1d2h");
        assert_eq!(seconds(f64::NAN), "-");
    }
}
