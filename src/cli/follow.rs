//! `failoverd runs <id> --follow` and `failoverd run … --follow`: a run's journal as a live
//! timeline, read from `GET /v1/runs/{id}/events` (server-sent events).
//!
//! Each journal entry becomes one line — the time, what happened, the step and its attempt, how
//! long the step took, a retry's wait, an approval prompt with the command that answers it. A
//! dropped connection (failoverd restarting, the leader changing, a network blip) is resumed
//! with `Last-Event-ID`, so no entry is shown twice or lost; while failoverd cannot be reached the
//! follower says so and keeps trying. The command exits with the run's outcome
//! ([`exit_for`]). `-o json` prints each entry as one JSON line instead.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::status::{is_busy, parse_time, run_steps, seconds, step_state, Paint};
use super::stdout;
use super::{Output, EXIT_FAILURE, EXIT_OK, EXIT_REFUSED};
use crate::client::{ApiClient, ClientError};
use crate::engine::report::markdown::time_of_day;
use crate::engine::{EventKind, JournalEntry, Outcome};

/// The exit code of a followed run that ended with `outcome`.
pub fn exit_for(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Succeeded => EXIT_OK,
        Outcome::Failed => super::EXIT_RUN_FAILED,
        Outcome::Aborted => super::EXIT_RUN_ABORTED,
        Outcome::NeedsOperator => super::EXIT_RUN_NEEDS_OPERATOR,
    }
}

/// One server-sent event as parsed from the stream.
#[derive(Debug, Default, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// An incremental parser of `text/event-stream` (the WHATWG rules failoverd's server uses: `id`,
/// `event`, `data` fields, comments, events ended by a blank line).
#[derive(Default)]
pub struct SseParser {
    buffer: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the events they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buffer.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buffer.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if self.has_data || self.current.event.is_some() {
                    out.push(std::mem::take(&mut self.current));
                }
                self.current = SseEvent::default();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_ref(), ""),
            };
            match field {
                "id" => self.current.id = Some(value.to_owned()),
                "event" => self.current.event = Some(value.to_owned()),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
}

/// What the timeline remembers between entries: the run's steps and prompts, and when each
/// step started.
pub struct Timeline {
    paint: Paint,
    run_id: String,
    names: HashMap<String, String>,
    prompts: HashMap<String, String>,
    step_started: HashMap<String, time::OffsetDateTime>,
    run_started: Option<time::OffsetDateTime>,
    /// `selftest (graceful, drill) by alice: "quarterly drill"`.
    headline: String,
}

impl Timeline {
    /// `run` is the run's view (`GET /v1/runs/{id}`), for step names and approval prompts.
    pub fn new(run_id: &str, run: Option<&Value>, paint: Paint) -> Self {
        let mut names = HashMap::new();
        let mut prompts = HashMap::new();
        let phases = run
            .and_then(|r| r.get("phases"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for p in &phases {
            let phase = p.get("name").and_then(Value::as_str).unwrap_or_default();
            if let Some(prompt) = p.pointer("/approval/prompt").and_then(Value::as_str) {
                prompts.insert(phase.to_owned(), prompt.to_owned());
            }
            for st in p
                .get("steps")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let (Some(id), Some(name)) = (
                    st.get("id").and_then(Value::as_str),
                    st.get("name").and_then(Value::as_str),
                ) {
                    names.insert(id.to_owned(), name.to_owned());
                }
            }
        }
        let field = |k: &str| {
            run.and_then(|r| r.get(k))
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_owned()
        };
        let flag = |k: &str| run.and_then(|r| r.get(k)).and_then(Value::as_bool) == Some(true);
        let mut kinds = vec![field("mode")];
        if flag("drill") {
            kinds.push("drill".into());
        }
        if flag("dry_run") {
            kinds.push("dry run".into());
        }
        let headline = if run.is_some() {
            format!(
                "{} ({}) by {}: {:?}",
                field("plan"),
                kinds.join(", "),
                field("requested_by"),
                field("reason")
            )
        } else {
            String::new()
        };
        Self {
            headline,
            paint,
            run_id: run_id.to_owned(),
            names,
            prompts,
            step_started: HashMap::new(),
            run_started: run
                .and_then(|r| r.get("started_at"))
                .and_then(Value::as_str)
                .and_then(parse_time),
        }
    }

    fn step(&self, id: &str) -> String {
        match self.names.get(id) {
            Some(name) if name != id => format!("{id} ({name})"),
            _ => id.to_owned(),
        }
    }

    fn took(&mut self, step: &str, at: time::OffsetDateTime) -> String {
        self.step_started
            .remove(step)
            .map(|s| format!(" in {}", seconds((at - s).as_seconds_f64().max(0.0))))
            .unwrap_or_default()
    }

    /// The line(s) of one entry.
    pub fn render(&mut self, entry: &JournalEntry) -> String {
        let p = self.paint;
        let at = entry.event.at;
        let at_text = time_of_day(Some(at));
        let ((tone, what), text): ((Tone, &str), String) = match &entry.event.kind {
            EventKind::RunStarted => {
                self.run_started.get_or_insert(at);
                ((Tone::Plain, "run started"), self.headline.clone())
            }
            EventKind::StepDescribed { step, description } => (
                (Tone::Plain, "described"),
                format!("{}: {}", self.step(step.as_str()), description.summary),
            ),
            EventKind::StepDescribeFailed { step, error } => (
                (Tone::Warn, "describe failed"),
                format!("{}: {error}", self.step(step.as_str())),
            ),
            EventKind::StepStarted { step, attempt } => {
                self.step_started.insert(step.as_str().to_owned(), at);
                (
                    (Tone::Plain, "step started"),
                    format!("{} attempt {attempt}", self.step(step.as_str())),
                )
            }
            EventKind::StepSucceeded {
                step,
                attempt,
                verified,
                ..
            } => {
                let took = self.took(step.as_str(), at);
                (
                    (Tone::Good, "step succeeded"),
                    format!(
                        "{} attempt {attempt}{took}{}",
                        self.step(step.as_str()),
                        if *verified {
                            " (found done on verification)"
                        } else {
                            ""
                        }
                    ),
                )
            }
            EventKind::StepFailed {
                step,
                attempt,
                error,
                retryable,
                retry_at,
                not_applied,
            } => {
                let took = self.took(step.as_str(), at);
                let next = match retry_at {
                    Some(r) => format!(
                        " — retry in {} (at {})",
                        seconds((*r - at).as_seconds_f64().max(0.0)),
                        time_of_day(Some(*r))
                    ),
                    None if *retryable => " — retryable".into(),
                    None => String::new(),
                };
                (
                    (Tone::Bad, "step failed"),
                    format!(
                        "{} attempt {attempt}{took}: {error}{next}{}",
                        self.step(step.as_str()),
                        if *not_applied {
                            " (nothing applied)"
                        } else {
                            ""
                        }
                    ),
                )
            }
            EventKind::StepInterrupted { step, attempt } => (
                (Tone::Warn, "interrupted"),
                format!(
                    "{} attempt {attempt}: its outcome is checked before anything else",
                    self.step(step.as_str())
                ),
            ),
            EventKind::WaitingApproval { gate } => {
                let prompt = self
                    .prompts
                    .get(gate)
                    .map(|p| format!(": {p}"))
                    .unwrap_or_default();
                (
                    (Tone::Warn, "waiting approval"),
                    format!(
                        "{gate}{prompt}\n{}{}",
                        " ".repeat(28),
                        p.bold(&format!("approve: failoverd approve {}", self.run_id))
                    ),
                )
            }
            EventKind::Approved { gate, by } => {
                ((Tone::Good, "approved"), format!("{gate} by {by}"))
            }
            EventKind::AbortRequested { by } => {
                ((Tone::Warn, "abort requested"), format!("by {by}"))
            }
            EventKind::UnwindStarted { cause } => (
                (Tone::Warn, "unwinding"),
                match cause {
                    crate::engine::UnwindCause::StepFailed { step } => {
                        format!("{} failed for good; undoing completed steps", step)
                    }
                    crate::engine::UnwindCause::Aborted => {
                        "aborted; undoing completed steps".into()
                    }
                },
            ),
            EventKind::StepNotApplied { step } => (
                (Tone::Plain, "not applied"),
                format!("{}: verified it had no effect", self.step(step.as_str())),
            ),
            EventKind::CompensationStarted { step } => {
                self.step_started.insert(step.as_str().to_owned(), at);
                ((Tone::Plain, "compensating"), self.step(step.as_str()))
            }
            EventKind::CompensationFinished { step } => {
                let took = self.took(step.as_str(), at);
                (
                    (Tone::Good, "compensated"),
                    format!("{}{took}", self.step(step.as_str())),
                )
            }
            EventKind::CompensationFailed { step, error } => (
                (Tone::Bad, "compensation failed"),
                format!("{}: {error}", self.step(step.as_str())),
            ),
            EventKind::NeedsOperator { message } => {
                ((Tone::Bad, "needs operator"), message.clone())
            }
            EventKind::RunFinished { outcome } => {
                let took = self
                    .run_started
                    .map(|s| format!(" in {}", seconds((at - s).as_seconds_f64().max(0.0))))
                    .unwrap_or_default();
                let word = outcome.as_str();
                (
                    (Tone::Plain, "run finished"),
                    format!(
                        "{}{took}",
                        if *outcome == Outcome::Succeeded {
                            p.good(word)
                        } else {
                            p.bad(word)
                        }
                    ),
                )
            }
        };
        let padded = format!("{what:<18}");
        let what = match tone {
            Tone::Plain => padded,
            Tone::Good => p.good(&padded),
            Tone::Bad => p.bad(&padded),
            Tone::Warn => p.warn(&padded),
        };
        format!("{}  {what}  {text}\n", p.dim(&at_text))
    }
}

#[derive(Clone, Copy)]
enum Tone {
    Plain,
    Good,
    Bad,
    Warn,
}

/// After this long without an entry, the timeline says what the run is waiting on.
const QUIET: Duration = Duration::from_secs(30);

/// What a run is doing while its journal is quiet: each busy step for how long, a retry's next
/// attempt, an approval it waits for.
fn still(run: &Value, paint: Paint, now: time::OffsetDateTime) -> String {
    let mut out = String::new();
    let at = time_of_day(Some(now));
    if let Some(gate) = run.get("waiting_for_approval").and_then(Value::as_str) {
        out.push_str(&format!(
            "{}  {}  {gate}: approve with failoverd approve {}\n",
            paint.dim(&at),
            paint.warn(&format!("{:<18}", "still waiting")),
            run.get("id").and_then(Value::as_str).unwrap_or("-")
        ));
    }
    for st in run_steps(run).filter(|st| is_busy(st)) {
        let status = step_state(st);
        let id = st.get("id").and_then(Value::as_str).unwrap_or("-");
        let since = st
            .get("started_at")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .map(|t| format!(" for {}", seconds((now - t).as_seconds_f64().max(0.0))))
            .unwrap_or_default();
        let retry = st
            .get("retry")
            .filter(|r| r.is_object())
            .map(|r| {
                let next = r
                    .get("next_attempt_at")
                    .and_then(Value::as_str)
                    .and_then(parse_time)
                    .map(|t| seconds((t - now).as_seconds_f64().max(0.0)))
                    .unwrap_or_else(|| "-".into());
                format!(
                    "; {} failed attempt(s), next in {next}: {}",
                    r.get("attempts").and_then(Value::as_u64).unwrap_or(0),
                    r.get("last_error").and_then(Value::as_str).unwrap_or("")
                )
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "{}  {}  {id} {status}{since}{retry}\n",
            paint.dim(&at),
            format_args!("{:<18}", "still running")
        ));
    }
    out
}

/// How long to wait before reconnecting after `failures` failed connections in a row.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(250 * 2u64.pow(failures.min(4))).min(Duration::from_secs(5))
}

/// Follows run `id` until it ends; returns the exit code.
pub async fn follow(client: &ApiClient, id: &str, output: Output, paint: Paint) -> u8 {
    let path = format!("/v1/runs/{}", super::encode_path(id));
    let run: Option<Value> = match client.get(&path).await {
        Ok(v) => Some(v),
        Err(e @ ClientError::Api { .. }) => {
            eprintln!("{e}");
            return EXIT_REFUSED;
        }
        Err(_) => None,
    };
    let mut timeline = Timeline::new(id, run.as_ref(), paint);
    let mut last: u64 = 0;
    let mut failures: u32 = 0;
    let mut reported_outage = false;
    loop {
        let response = match client.events(&format!("{path}/events"), last).await {
            Ok(r) => r,
            // Another replica answers while leadership moves, or failoverd restarts: wait.
            Err(e @ ClientError::Api { status, .. })
                if !(status.is_server_error() || status.as_u16() == 429) =>
            {
                eprintln!("{e}");
                return EXIT_REFUSED;
            }
            Err(e) => {
                if !reported_outage {
                    eprintln!("following run {id}: {e}; retrying");
                    reported_outage = true;
                }
                failures += 1;
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
        };
        if reported_outage {
            eprintln!("following run {id}: reconnected after entry {last}");
            reported_outage = false;
        }
        failures = 0;
        let mut parser = SseParser::default();
        let mut response = response;
        loop {
            let chunk = match tokio::time::timeout(QUIET, response.chunk()).await {
                Err(_) => {
                    if output == Output::Text {
                        if let Ok(run) = client.get::<Value>(&path).await {
                            let line = still(&run, paint, time::OffsetDateTime::now_utc());
                            if stdout::print(&line).is_err() {
                                return EXIT_OK;
                            }
                        }
                    }
                    continue;
                }
                Ok(Ok(Some(c))) => c,
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    eprintln!("following run {id}: the stream broke ({e}); resuming");
                    reported_outage = true;
                    break;
                }
            };
            for ev in parser.feed(&chunk) {
                if ev.event.as_deref() == Some("error") {
                    eprintln!("following run {id}: failoverd says: {}", ev.data);
                    continue;
                }
                let Ok(entry) = serde_json::from_str::<JournalEntry>(&ev.data) else {
                    continue;
                };
                if entry.seq <= last {
                    continue;
                }
                last = entry.seq;
                let line = match output {
                    Output::Json => format!("{}\n", ev.data),
                    Output::Text => timeline.render(&entry),
                };
                match stdout::print(&line) {
                    Ok(()) => {}
                    Err(e) if stdout::is_closed(&e) => return EXIT_OK,
                    Err(e) => {
                        eprintln!("cannot write the output: {e}");
                        return EXIT_FAILURE;
                    }
                }
                if let Some(outcome) = entry.event.kind.terminal_outcome() {
                    return exit_for(outcome);
                }
            }
        }
        // The stream ended before the run did (failoverd stopping, say): resume after `last`.
        tokio::time::sleep(backoff(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parser_joins_split_chunks_and_skips_comments() {
        let mut p = SseParser::default();
        let stream = b": keep-alive\n\nid: 1\nevent: run_started\ndata: {\"a\":\ndata: 1}\n\nid: 2\r\nevent: x\r\ndata: y\r\n\r\n";
        let mut events = Vec::new();
        for chunk in stream.chunks(5) {
            events.extend(p.feed(chunk));
        }
        assert_eq!(
            events,
            vec![
                SseEvent {
                    id: Some("1".into()),
                    event: Some("run_started".into()),
                    data: "{\"a\":\n1}".into()
                },
                SseEvent {
                    id: Some("2".into()),
                    event: Some("x".into()),
                    data: "y".into()
                },
            ]
        );
    }

    fn entry(seq: u64, at: &str, kind: Value) -> JournalEntry {
        let mut event = kind;
        event["at"] = at.into();
        serde_json::from_value(serde_json::json!({"seq": seq, "event": event})).unwrap()
    }

    #[test]
    fn the_timeline_shows_durations_retries_and_the_approve_command() {
        let run = serde_json::json!({
            "started_at": "2026-12-03T13:00:00Z",
            "phases": [{"name": "promote", "approval": {"prompt": "promote the standby?"},
                        "steps": [{"id": "aurora", "name": "fail over Aurora"}]}]
        });
        let mut t = Timeline::new("r-1", Some(&run), Paint { on: false });
        let lines: Vec<String> = [
            entry(1, "2026-12-03T13:00:00Z", serde_json::json!({"type": "run_started"})),
            entry(2, "2026-12-03T13:00:01Z", serde_json::json!({"type": "waiting_approval", "gate": "promote"})),
            entry(3, "2026-12-03T13:00:30Z", serde_json::json!({"type": "approved", "gate": "promote", "by": "alice"})),
            entry(4, "2026-12-03T13:00:30Z", serde_json::json!({"type": "step_started", "step": "aurora", "attempt": 1})),
            entry(5, "2026-12-03T13:00:42Z", serde_json::json!({"type": "step_failed", "step": "aurora", "attempt": 1, "error": "Throttling", "retryable": true, "retry_at": "2026-12-03T13:00:50Z"})),
            entry(6, "2026-12-03T13:00:50Z", serde_json::json!({"type": "step_started", "step": "aurora", "attempt": 2})),
            entry(7, "2026-12-03T13:02:50Z", serde_json::json!({"type": "step_succeeded", "step": "aurora", "attempt": 2, "output": {}, "verified": false})),
            entry(8, "2026-12-03T13:02:51Z", serde_json::json!({"type": "run_finished", "outcome": "succeeded"})),
        ]
        .iter()
        .map(|e| t.render(e))
        .collect();
        let text = lines.concat();
        for want in [
            "13:00:01  waiting approval    promote: promote the standby?",
            "approve: failoverd approve r-1",
            "13:00:30  approved            promote by alice",
            "13:00:42  step failed         aurora (fail over Aurora) attempt 1 in 12s: Throttling — retry in 8s (at 13:00:50)",
            "13:02:50  step succeeded      aurora (fail over Aurora) attempt 2 in 2m00s",
            "13:02:51  run finished        succeeded in 2m51s",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn a_quiet_run_says_what_it_waits_on() {
        let run = serde_json::json!({
            "id": "r-2", "waiting_for_approval": null,
            "phases": [{"name": "p", "steps": [
                {"id": "dns", "status": "failed", "started_at": "2026-12-03T13:00:00Z",
                 "retry": {"operation": "execute", "attempts": 3,
                           "next_attempt_at": "2026-12-03T13:01:40Z",
                           "last_error": "Route 53: Throttling"}},
                {"id": "later", "status": "pending"}]}]
        });
        let now = time::OffsetDateTime::parse(
            "2026-12-03T13:01:30Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(
            still(&run, Paint { on: false }, now),
            "13:01:30  still running       dns waiting to retry for 1m30s; 3 failed attempt(s), next in 10s: Route 53: Throttling\n"
        );
        // A step at work is shown; one done or not begun is not.
        let run = serde_json::json!({"phases": [{"name": "p", "steps": [
            {"id": "a", "status": "succeeded"},
            {"id": "b", "status": "running", "started_at": "2026-12-03T13:01:00Z"},
            {"id": "c", "status": "pending"}]}]});
        assert_eq!(
            still(&run, Paint { on: false }, now),
            "13:01:30  still running       b running for 30s\n"
        );
    }

    #[test]
    fn each_outcome_has_its_exit_code() {
        let codes: Vec<u8> = [
            Outcome::Succeeded,
            Outcome::Failed,
            Outcome::Aborted,
            Outcome::NeedsOperator,
        ]
        .into_iter()
        .map(exit_for)
        .collect();
        assert_eq!(codes, vec![0, 4, 5, 6]);
    }
}
