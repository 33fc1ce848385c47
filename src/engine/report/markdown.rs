//! A [`Report`] as Markdown: the document a person attaches to a change ticket after a drill or
//! a failover — who ran what and why, the measured RTO/RPO and how each was measured, every phase
//! and step with its duration, what was skipped and why, and what failed.
//!
//! Pure (the report carries everything, including when it was generated), so the output of a
//! finished run never changes. Table cells are escaped: step errors and reasons come from the
//! world and may hold `|` or newlines.

use std::fmt::Write;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{FailureDuring, Report, RtoStart, SkipKind, StepLine};

/// `report` as a Markdown document.
pub fn render(report: &Report) -> String {
    let mut md = String::new();
    // Writing to a String cannot fail; the results are ignored on purpose below.
    let _ = write_document(&mut md, report);
    md
}

fn write_document(md: &mut String, r: &Report) -> std::fmt::Result {
    let outcome = match r.outcome {
        Some(o) => o.as_str(),
        None => r.status.as_str(),
    };
    let kind = match (r.drill, r.dry_run) {
        (_, true) => " (dry run)",
        (true, false) => " (drill)",
        (false, false) => "",
    };
    writeln!(md, "# Run report: {}{kind} — {outcome}", cell(&r.plan))?;
    writeln!(md)?;
    if !r.is_final {
        writeln!(
            md,
            "> **Not final**: the run is {} — this is the report so far.",
            r.status.as_str()
        )?;
        writeln!(md)?;
    }
    writeln!(md, "| | |")?;
    writeln!(md, "|---|---|")?;
    writeln!(md, "| Run | `{}` |", r.id)?;
    writeln!(md, "| Plan | {} |", cell(&r.plan))?;
    writeln!(md, "| Mode | {} |", r.mode.as_str())?;
    writeln!(md, "| Drill | {} |", yes_no(r.drill))?;
    writeln!(md, "| Dry run | {} |", yes_no(r.dry_run))?;
    writeln!(md, "| Requested by | {} |", cell(&r.requested_by))?;
    writeln!(md, "| Reason | {} |", cell(&r.reason))?;
    writeln!(md, "| Region pair | {} |", cell(&r.region_pair))?;
    if r.detected_at.is_some() {
        writeln!(md, "| Outage detected | {} |", at(r.detected_at))?;
    }
    writeln!(md, "| Started | {} |", at(r.started_at))?;
    writeln!(md, "| Finished | {} |", at(r.finished_at))?;
    writeln!(md, "| Report generated | {} |", at(Some(r.generated_at)))?;
    writeln!(md)?;

    writeln!(md, "## Summary")?;
    writeln!(md)?;
    writeln!(md, "| Measure | Value | How it was measured |")?;
    writeln!(md, "|---|---|---|")?;
    writeln!(md, "| Outcome | **{outcome}** | |")?;
    let rto_from = match r.rto.from {
        RtoStart::RunStart => "run start",
        RtoStart::Detection => "outage detection",
    };
    let rto_how = match (&r.rto.reason, &r.rto.until_phase) {
        (Some(reason), _) => format!("not measured: {reason}"),
        (None, Some(phase)) => format!(
            "from {rto_from} ({}) to the end of the last DNS phase, {phase} ({})",
            at(r.rto.from_at),
            at(r.rto.until_at)
        ),
        (None, None) => String::new(),
    };
    writeln!(
        md,
        "| RTO | {} | {} |",
        opt_seconds(r.rto.seconds),
        cell(&rto_how)
    )?;
    let rpo_how = match &r.rpo.reason {
        Some(reason) => format!("unknown: {reason}"),
        None => format!(
            "estimated data loss at promotion, the largest of {}",
            r.rpo
                .measurements
                .iter()
                .map(|(k, v)| format!("{k} = {}", seconds(*v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    writeln!(
        md,
        "| RPO | {} | {} |",
        opt_seconds(r.rpo.seconds),
        cell(&rpo_how)
    )?;
    let cp = &r.critical_path;
    writeln!(
        md,
        "| Critical path | {} | the longest step of each phase, summed (phases run one after the other, a phase's steps concurrently) |",
        seconds(cp.seconds)
    )?;
    writeln!(
        md,
        "| Sum of step durations | {} | running the steps concurrently saved {} |",
        seconds(cp.sum_of_steps_seconds),
        seconds(cp.overlap_seconds)
    )?;
    writeln!(
        md,
        "| Waiting for approval | {} | every approval gate together |",
        seconds(r.approval_wait_seconds)
    )?;
    writeln!(
        md,
        "| Total duration | {} | run start to finish |",
        opt_seconds(r.total_duration_seconds)
    )?;
    writeln!(md)?;

    if let Some(message) = &r.message {
        writeln!(md, "## Operator action needed")?;
        writeln!(md)?;
        for line in message.lines() {
            writeln!(md, "> {line}")?;
        }
        writeln!(md)?;
    }

    writeln!(md, "## Phases and steps")?;
    writeln!(md)?;
    writeln!(
        md,
        "| Phase | Step | Status | Attempts | Started | Duration | Notes |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|")?;
    for phase in &r.phases {
        let mut notes = Vec::new();
        if let Some(a) = &phase.approval {
            match (&a.approved_by, a.wait_seconds) {
                (Some(by), Some(wait)) => {
                    notes.push(format!("approved by {by} after {}", seconds(wait)))
                }
                (None, Some(wait)) => notes.push(format!("waited {} for approval", seconds(wait))),
                _ => notes.push("approval gate".to_owned()),
            }
        }
        writeln!(
            md,
            "| **{}** | | {} | | {} | {} | {} |",
            cell(&phase.name),
            phase.status.as_str(),
            time_of_day(phase.started_at),
            opt_seconds(phase.duration_seconds),
            cell(&notes.join("; "))
        )?;
        for step in &phase.steps {
            let critical = phase.critical_step.as_ref() == Some(&step.id);
            writeln!(
                md,
                "| | {} | {} | {} | {} | {} | {} |",
                cell(&format!("{} (`{}`)", step.name, step.id)),
                status_of(step),
                step.attempts,
                time_of_day(step.started_at),
                opt_seconds(step.duration_seconds),
                cell(&step_notes(step, critical))
            )?;
        }
    }
    writeln!(md)?;

    writeln!(md, "## Skipped")?;
    writeln!(md)?;
    if r.skipped.is_empty() {
        writeln!(md, "Nothing was skipped.")?;
    }
    for s in &r.skipped {
        let kind = match s.kind {
            SkipKind::Skipped => "skipped",
            SkipKind::NotRun => "not run",
        };
        writeln!(
            md,
            "- `{}` ({}, phase {}) — {kind}: {}",
            s.step,
            one_line(&s.name),
            one_line(&s.phase),
            one_line(&s.reason)
        )?;
    }
    writeln!(md)?;

    if !r.fallbacks.is_empty() {
        writeln!(md, "## Fallbacks")?;
        writeln!(md)?;
        for f in &r.fallbacks {
            writeln!(
                md,
                "- `{}` ({}) — {}{}",
                f.step,
                one_line(&f.name),
                one_line(&f.fallback),
                f.reason
                    .as_deref()
                    .map(|r| format!(": {}", one_line(r)))
                    .unwrap_or_default()
            )?;
        }
        writeln!(md)?;
    }

    writeln!(md, "## Errors")?;
    writeln!(md)?;
    if r.errors.is_empty() {
        writeln!(md, "No step failed.")?;
    }
    for e in &r.errors {
        let during = match e.during {
            FailureDuring::Execute => "failed",
            FailureDuring::Compensate => "could not be undone",
        };
        let applied = if e.not_applied {
            " (verified: it had not taken effect)"
        } else {
            ""
        };
        writeln!(
            md,
            "- `{}` (phase {}) {during} after {} attempt(s){applied}: {}",
            e.step,
            one_line(&e.phase),
            e.attempts,
            one_line(&e.error)
        )?;
    }

    if !r.measurements.is_empty() {
        writeln!(md)?;
        writeln!(md, "## Measurements")?;
        writeln!(md)?;
        writeln!(md, "| Name | Value |")?;
        writeln!(md, "|---|---|")?;
        for (k, v) in &r.measurements {
            writeln!(md, "| {} | {v} |", cell(k))?;
        }
    }
    Ok(())
}

fn status_of(step: &StepLine) -> String {
    if step.skipped_reason.is_some() {
        format!("{} (skipped)", step_status(step))
    } else {
        step_status(step).to_owned()
    }
}

fn step_status(step: &StepLine) -> &'static str {
    use crate::engine::StepStatus as S;
    match step.status {
        S::Pending => "pending",
        S::Running => "running",
        S::Succeeded => "succeeded",
        S::Failed => "failed",
        S::Interrupted => "interrupted",
        S::Described => "described",
        S::Compensating => "compensating",
        S::Compensated => "compensated",
        S::CompensationFailed => "compensation failed",
    }
}

fn step_notes(step: &StepLine, critical: bool) -> String {
    let mut notes = Vec::new();
    if critical {
        notes.push("critical path".to_owned());
    }
    if step.verified {
        notes.push("success established by verify".to_owned());
    }
    if step.not_applied {
        notes.push("had not taken effect".to_owned());
    }
    if let Some(reason) = &step.skipped_reason {
        notes.push(format!("skipped: {reason}"));
    }
    notes.join("; ")
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// A duration for people: `4.2 s`, `2 min 5.0 s`, `1 h 2 min 5 s`.
pub fn seconds(s: f64) -> String {
    if !s.is_finite() {
        return "—".to_owned();
    }
    // Round once, to the tenth shown, so 119.96 s is "2 min 0.0 s", not "1 min 60.0 s".
    let s = (s * 10.0).round() / 10.0;
    if s < 60.0 {
        return format!("{s:.1} s");
    }
    if s < 3600.0 {
        let m = (s / 60.0).floor();
        return format!("{m} min {:.1} s", s - m * 60.0);
    }
    let whole = s.round() as u64;
    format!(
        "{} h {} min {} s",
        whole / 3600,
        (whole % 3600) / 60,
        whole % 60
    )
}

fn opt_seconds(s: Option<f64>) -> String {
    s.map(seconds).unwrap_or_else(|| "—".to_owned())
}

fn at(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "—".to_owned())
}

/// `HH:MM:SS` (UTC), enough within one run's table; the header has the full times.
pub fn time_of_day(t: Option<OffsetDateTime>) -> String {
    match t {
        Some(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
        }
        None => "—".to_owned(),
    }
}

/// Text safe in a table cell: no pipes, no line breaks.
fn cell(s: &str) -> String {
    one_line(s).replace('|', "\\|")
}

fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
