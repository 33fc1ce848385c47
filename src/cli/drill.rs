//! `failoverd drill`: a drill round trip — fail over to the standby region and back — as one
//! command, ending with both runs' reports and the totals a drill is judged by.
//!
//! 1. starts the failover plan with `drill: true` in the chosen mode (params `{}` — the plan's
//!    defaults, the target being the standby region — unless `--param` adds some, e.g.
//!    `approval_required=true` to have a person approve each leg);
//! 2. follows it to the end by polling `GET /v1/runs/{id}` every `--poll-interval`, printing a
//!    line per phase/step change (and how to approve when the run waits at a gate);
//! 3. only if it succeeded, starts the failback plan (`graceful`: in a drill both regions are up,
//!    and the way back must lose no data) with `drill: true`, and follows it;
//! 4. prints both Markdown reports and a summary: the total wall time (failover start to failback
//!    finish, from the server's timestamps) and the sum of the two RTOs.
//!
//! Exit code 0 when both runs succeeded, [`EXIT_RUN_FAILED`] when one did not (the failback is
//! then not started), 3 when the API refused a request, 1 when it could not be reached.
//! Polling survives a short loss of the API (a failoverd restart mid-drill: the run resumes from
//! its journal) and gives up after [`MAX_POLL_FAILURES`] failures in a row.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::report::{self as report_cmd};
use super::{encode_path, runtime, stdout, ApiArgs, ModeArg, Output};
use super::{EXIT_FAILURE, EXIT_INVALID, EXIT_OK, EXIT_REFUSED, EXIT_RUN_FAILED};
use crate::client::{ApiClient, ClientError};
use crate::engine::report::markdown::seconds;

/// The plans of the round trip by default.
pub const FAILOVER_PLAN: &str = crate::plans::failover::NAME;
pub const FAILBACK_PLAN: &str = crate::plans::failback::NAME;

/// Polling bounds: often enough to see each phase, never hammering the API.
const POLL_MIN: Duration = Duration::from_millis(100);
const POLL_MAX: Duration = Duration::from_secs(60);
/// Failed polls in a row before giving up (at the default 2 s: about a minute, enough for a
/// failoverd restart or a leader change).
pub const MAX_POLL_FAILURES: u32 = 30;

#[derive(Args, Debug)]
pub struct DrillArgs {
    /// Why the drill is run (kept in both runs' journals and the audit log).
    #[arg(long)]
    pub reason: String,
    /// How the failover is drilled: graceful (staged, no data loss) or ungraceful (as if the
    /// active region were lost). The failback is always graceful.
    #[arg(long, value_enum, default_value = "graceful")]
    pub mode: ModeArg,
    /// The plan that moves to the standby region.
    #[arg(long, default_value = FAILOVER_PLAN)]
    pub failover_plan: String,
    /// The plan that moves back.
    #[arg(long, default_value = FAILBACK_PLAN)]
    pub failback_plan: String,
    /// A parameter for both plans as key=value (repeatable; by default none, so each plan
    /// uses its defaults), e.g. `--param approval_required=true`.
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// How often to poll the runs (100ms to 60s).
    #[arg(long, default_value = "2s", value_parser = poll_interval)]
    pub poll_interval: Duration,
    #[command(flatten)]
    pub api: ApiArgs,
}

fn poll_interval(raw: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(raw).map_err(|e| format!("{raw:?}: {e}"))?;
    if !(POLL_MIN..=POLL_MAX).contains(&d) {
        return Err(format!("{raw:?}: must be from 100ms to 60s"));
    }
    Ok(d)
}

/// Why the drill stopped before its end.
#[derive(Debug, thiserror::Error)]
enum DrillError {
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error("stdout is closed")]
    OutputClosed,
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

impl From<std::io::Error> for DrillError {
    fn from(e: std::io::Error) -> Self {
        if stdout::is_closed(&e) {
            DrillError::OutputClosed
        } else {
            DrillError::Output(e)
        }
    }
}

/// Where progress lines go: stdout for text, stderr with `--output json` (stdout is the JSON).
struct Progress {
    output: Output,
}

impl Progress {
    fn line(&self, line: &str) -> Result<(), DrillError> {
        match self.output {
            Output::Text => stdout::print(&format!("{line}\n"))?,
            Output::Json => eprintln!("{line}"),
        }
        Ok(())
    }
}

pub fn command(args: DrillArgs) -> u8 {
    let client = match args.api.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_INVALID;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    match rt.block_on(drill(&client, &args)) {
        Ok(code) => code,
        // The reader went away: nobody is left to tell (the runs go on in failoverd).
        Err(DrillError::OutputClosed) => EXIT_FAILURE,
        Err(DrillError::Api(e @ ClientError::Api { .. })) => {
            eprintln!("{e}");
            EXIT_REFUSED
        }
        Err(e) => {
            eprintln!("{e}");
            EXIT_FAILURE
        }
    }
}

/// One leg of the round trip, after it ended.
struct Leg {
    label: &'static str,
    run: Value,
    report_json: Value,
    report_text: String,
}

impl Leg {
    fn succeeded(&self) -> bool {
        self.run["status"] == "succeeded"
    }
}

async fn drill(client: &ApiClient, args: &DrillArgs) -> Result<u8, DrillError> {
    let progress = Progress {
        output: args.api.output,
    };
    let params = match super::parse_params(&args.params) {
        Ok(map) => Value::Object(map),
        Err(e) => {
            eprintln!("{e}");
            return Ok(EXIT_INVALID);
        }
    };
    let mode = match args.mode {
        ModeArg::Graceful => "graceful",
        ModeArg::Ungraceful => "ungraceful",
    };
    let failover = leg(
        client,
        &progress,
        args,
        &params,
        ("failover", &args.failover_plan, mode),
    )
    .await?;
    let failback = if failover.succeeded() {
        Some(
            leg(
                client,
                &progress,
                args,
                &params,
                ("failback", &args.failback_plan, "graceful"),
            )
            .await?,
        )
    } else {
        progress.line(&format!(
            "[failover] the run ended {}: the failback is not started",
            failover.run["status"].as_str().unwrap_or("unknown")
        ))?;
        None
    };
    let legs: Vec<&Leg> = std::iter::once(&failover)
        .chain(failback.as_ref())
        .collect();
    let totals = Totals::of(&legs);
    match args.api.output {
        Output::Text => {
            let mut doc = String::new();
            for leg in &legs {
                doc.push('\n');
                doc.push_str(&leg.report_text);
            }
            doc.push('\n');
            doc.push_str(&totals.markdown(&legs, failback.is_none()));
            stdout::print(&doc)?;
        }
        Output::Json => {
            let value = json!({
                "failover": failover.report_json,
                "failback": failback.as_ref().map(|l| &l.report_json),
                "total_wall_seconds": totals.wall_seconds,
                "rto_sum_seconds": totals.rto_sum_seconds,
                "succeeded": totals.succeeded,
            });
            stdout::print(&format!(
                "{}\n",
                serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
            ))?;
        }
    }
    Ok(if totals.succeeded {
        EXIT_OK
    } else {
        EXIT_RUN_FAILED
    })
}

/// Starts one leg — (label, plan, mode) — and follows it to its end.
async fn leg(
    client: &ApiClient,
    progress: &Progress,
    args: &DrillArgs,
    params: &Value,
    (label, plan, mode): (&'static str, &str, &str),
) -> Result<Leg, DrillError> {
    let body = json!({
        "plan": plan,
        "mode": mode,
        "drill": true,
        "dry_run": false,
        "reason": args.reason,
        "params": params,
    });
    let started: Value = client.post("/v1/runs", &body, &[]).await?;
    let id = started["id"].as_str().unwrap_or_default().to_owned();
    if id.is_empty() {
        return Err(DrillError::Api(ClientError::Protocol {
            url: "/v1/runs".to_owned(),
            message: format!("the created run has no id: {started}"),
        }));
    }
    progress.line(&format!(
        "[{label}] started run {id} ({plan}, {mode}, drill)"
    ))?;
    let run = follow(client, progress, label, &id, args.poll_interval).await?;
    let report_text = report_cmd::fetch(client, &id, Output::Text).await?;
    let report_json: Value = client
        .get(&format!("/v1/runs/{}/report", encode_path(&id)))
        .await?;
    Ok(Leg {
        label,
        run,
        report_json,
        report_text,
    })
}

/// What a progress line is about: the run, or one step of a phase.
type Snapshot = BTreeMap<String, String>;

/// The step lines of `run`: `phase / step` → `status (attempt n)`.
fn snapshot(run: &Value) -> Snapshot {
    let mut out = Snapshot::new();
    for phase in run["phases"].as_array().into_iter().flatten() {
        let name = phase["name"].as_str().unwrap_or("?");
        for step in phase["steps"].as_array().into_iter().flatten() {
            let status = step["status"].as_str().unwrap_or("?");
            if status == "pending" {
                continue;
            }
            let mut line = status.to_owned();
            let attempts = step["attempts"].as_u64().unwrap_or(0);
            if attempts > 1 {
                let _ = write!(line, " (attempt {attempts})");
            }
            if let Some(d) = step["duration_seconds"].as_f64() {
                let _ = write!(line, " in {}", seconds(d));
            }
            if let Some(e) = step["error"].as_str().filter(|_| status == "failed") {
                let _ = write!(line, ": {e}");
            }
            out.insert(
                format!("{name} / {}", step["id"].as_str().unwrap_or("?")),
                line,
            );
        }
    }
    out
}

/// Polls run `id` until it is finished, printing every change; returns the finished run.
async fn follow(
    client: &ApiClient,
    progress: &Progress,
    label: &str,
    id: &str,
    interval: Duration,
) -> Result<Value, DrillError> {
    let path = format!("/v1/runs/{}", encode_path(id));
    let mut seen = Snapshot::new();
    let mut last_status = String::new();
    let mut failures = 0u32;
    loop {
        let run: Value = match client.get(&path).await {
            Ok(run) => {
                failures = 0;
                run
            }
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Protocol { .. }))
                if failures + 1 < MAX_POLL_FAILURES =>
            {
                failures += 1;
                if failures == 1 {
                    eprintln!("[{label}] cannot poll run {id} (retrying): {e}");
                }
                tokio::time::sleep(interval).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for (key, line) in snapshot(&run) {
            if seen.get(&key) != Some(&line) {
                progress.line(&format!("[{label}] {key}: {line}"))?;
                seen.insert(key, line);
            }
        }
        let status = run["status"].as_str().unwrap_or("unknown").to_owned();
        if status != last_status {
            let line = match status.as_str() {
                "waiting_approval" => format!(
                    "[{label}] run {id} waits for approval at {}: failoverd approve {id}",
                    run["waiting_for_approval"].as_str().unwrap_or("a gate")
                ),
                "needs_operator" => format!(
                    "[{label}] run {id} needs an operator: {}",
                    run["message"].as_str().unwrap_or("see the run")
                ),
                other => format!("[{label}] run {id}: {other}"),
            };
            progress.line(&line)?;
            last_status = status.clone();
        }
        if matches!(
            status.as_str(),
            "succeeded" | "failed" | "aborted" | "needs_operator"
        ) {
            return Ok(run);
        }
        tokio::time::sleep(interval).await;
    }
}

/// The round trip's figures.
struct Totals {
    wall_seconds: Option<f64>,
    rto_sum_seconds: Option<f64>,
    succeeded: bool,
}

fn timestamp(v: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok()
}

impl Totals {
    fn of(legs: &[&Leg]) -> Self {
        let first = legs.first().map(|l| &l.report_json);
        let last = legs.last().map(|l| &l.report_json);
        let start = first.and_then(|r| timestamp(&r["started_at"]).or(timestamp(&r["created_at"])));
        let end = last.and_then(|r| timestamp(&r["finished_at"]));
        let wall_seconds = match (start, end) {
            (Some(s), Some(e)) => Some((e - s).as_seconds_f64().max(0.0)),
            _ => None,
        };
        let rtos: Option<Vec<f64>> = legs
            .iter()
            .map(|l| l.report_json["rto"]["seconds"].as_f64())
            .collect();
        Self {
            wall_seconds,
            rto_sum_seconds: rtos.map(|r| r.iter().sum()),
            succeeded: legs.len() == 2 && legs.iter().all(|l| l.succeeded()),
        }
    }

    fn markdown(&self, legs: &[&Leg], failback_skipped: bool) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "# Drill round trip");
        let _ = writeln!(md);
        let _ = writeln!(md, "| | |");
        let _ = writeln!(md, "|---|---|");
        for leg in legs {
            let r = &leg.report_json;
            let rto = r["rto"]["seconds"]
                .as_f64()
                .map(seconds)
                .unwrap_or_else(|| "not measured".to_owned());
            let _ = writeln!(
                md,
                "| {} | `{}` {}, {} — RTO {rto} |",
                capitalised(leg.label),
                r["id"].as_str().unwrap_or("?"),
                r["plan"].as_str().unwrap_or("?"),
                r["status"].as_str().unwrap_or("?"),
            );
        }
        if failback_skipped {
            let _ = writeln!(
                md,
                "| Failback | not started: the failover did not succeed |"
            );
        }
        let _ = writeln!(
            md,
            "| Total wall time | {} |",
            self.wall_seconds
                .map(seconds)
                .unwrap_or_else(|| "unknown".to_owned())
        );
        let _ = writeln!(
            md,
            "| Sum of RTOs | {} |",
            self.rto_sum_seconds.map(seconds).unwrap_or_else(|| {
                "unknown: a run's RTO was not measured (see its report)".to_owned()
            })
        );
        let _ = writeln!(
            md,
            "| Result | **{}** |",
            if self.succeeded {
                "both runs succeeded"
            } else {
                "the drill did not complete"
            }
        );
        md
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_interval_is_bounded() {
        assert_eq!(poll_interval("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(poll_interval("100ms").unwrap(), POLL_MIN);
        assert!(poll_interval("10ms").unwrap_err().contains("100ms to 60s"));
        assert!(poll_interval("2m").is_err());
        assert!(poll_interval("soon").is_err());
    }

    #[test]
    fn snapshot_lines_say_what_changed() {
        let run = json!({"phases": [{"name": "dns-stage-10-apply", "steps": [
            {"id": "a", "status": "pending", "attempts": 0},
            {"id": "b", "status": "succeeded", "attempts": 2, "duration_seconds": 3.0},
            {"id": "c", "status": "failed", "attempts": 1, "error": "denied"}
        ]}]});
        let s = snapshot(&run);
        assert_eq!(s.len(), 2, "pending steps are not news: {s:?}");
        assert_eq!(
            s["dns-stage-10-apply / b"],
            "succeeded (attempt 2) in 3.0 s"
        );
        assert_eq!(s["dns-stage-10-apply / c"], "failed: denied");
    }

    fn leg(label: &'static str, status: &str, report: Value) -> Leg {
        Leg {
            label,
            run: json!({"status": status}),
            report_json: report,
            report_text: String::new(),
        }
    }

    #[test]
    fn totals_add_the_rtos_and_span_both_runs() {
        let a = leg(
            "failover",
            "succeeded",
            json!({"id": "1", "plan": "failover", "status": "succeeded",
                   "started_at": "2024-05-01T10:00:00Z", "finished_at": "2024-05-01T10:02:00Z",
                   "rto": {"seconds": 90.0}}),
        );
        let b = leg(
            "failback",
            "succeeded",
            json!({"id": "2", "plan": "failback", "status": "succeeded",
                   "started_at": "2024-05-01T10:03:00Z", "finished_at": "2024-05-01T10:05:30Z",
                   "rto": {"seconds": 100.5}}),
        );
        let t = Totals::of(&[&a, &b]);
        assert_eq!(t.wall_seconds, Some(330.0));
        assert_eq!(t.rto_sum_seconds, Some(190.5));
        assert!(t.succeeded);
        let md = t.markdown(&[&a, &b], false);
        assert!(md.contains("| Total wall time | 5 min 30.0 s |"), "{md}");
        assert!(md.contains("| Sum of RTOs | 3 min 10.5 s |"), "{md}");
        assert!(
            md.contains("| Failback | `2` failback, succeeded — RTO 1 min 40.5 s |"),
            "{md}"
        );

        // A failed failover: no failback, unknown RTO sum, not a success.
        let failed = leg(
            "failover",
            "failed",
            json!({"id": "1", "status": "failed", "started_at": "2024-05-01T10:00:00Z",
                   "finished_at": "2024-05-01T10:00:10Z", "rto": {"seconds": null}}),
        );
        let t = Totals::of(&[&failed]);
        assert!(!t.succeeded);
        assert_eq!(t.rto_sum_seconds, None);
        assert_eq!(t.wall_seconds, Some(10.0));
        let md = t.markdown(&[&failed], true);
        assert!(
            md.contains("not started: the failover did not succeed"),
            "{md}"
        );
        assert!(md.contains("the drill did not complete"), "{md}");
    }
}
