//! The report of a run — what a drill or a failover measured — computed from its [`RunView`]
//! alone, so it works for any plan, for runs of older versions, and for a run still in progress.
//! `GET /v1/runs/{id}/report` serves it as JSON or, rendered by [`markdown`], as a document a
//! person attaches to a change ticket.
//!
//! # What is measured, and how
//!
//! - **RTO** (recovery time): from the run's start — or, for a run started by the auto-failover
//!   policy, from the *detection* (`detected_at`: when the hot region's verdict became unhealthy)
//!   — until the traffic shift completed and its verification passed, which is defined as **the
//!   finish of the last phase whose name starts with `dns-`** ([`DNS_PHASE_PREFIX`]): the DNS
//!   phases of the takeover plans are `dns-preflight`, then per stage `dns-stage-<p>-apply`,
//!   `-sync` (Route 53 `INSYNC`) and, graceful, `-hold` (the checks between stages), so the last
//!   one ends when clients are being answered by the new region. The RTO is `null`, with a
//!   reason, when the plan has no such phase, when the run did not complete it (or undid it), and
//!   for dry runs. Phase *names* are the contract here because the report must work from the
//!   journal alone; a plan that moves traffic names its DNS phases this way.
//! - **RPO** (data loss): the largest `aurora.<global>.estimated_data_loss_seconds` measurement
//!   ([`is_data_loss_measurement`]) reported by the run's steps — the Aurora promotion step
//!   estimates it at the moment of promotion; a graceful switchover reports 0. `null`, with a
//!   reason, when no step reported one (no Aurora phase, or the run did not reach it).
//! - **Phase durations**: from the approval request (a gated phase) or the first step's start
//!   until the last step's finish (or the approval, for a phase that is only a gate); the time
//!   spent waiting for approval is also reported on its own ([`Report::approval_wait_seconds`]).
//! - **Critical path**: phases run one after the other (a barrier between them), the steps of a
//!   phase run concurrently, so the time the steps cost the run is the sum over phases of each
//!   phase's longest step. Against the sum of all step durations it shows what running steps
//!   concurrently bought ([`CriticalPath::overlap_seconds`]). Approval waits and the engine's
//!   gaps between phases are not on it.
//!
//! # Conventions steps follow (their output, see [`crate::engine::Step::execute`])
//!
//! - `{"measurements": {"<name>": <number>}}`: numbers the report collects
//!   ([`Report::measurements`]); the RPO reads the data-loss ones.
//! - `{"skipped": true, "skipped_reason": "<why>"}` ([`SKIPPED`], [`SKIPPED_REASON`]): the step
//!   succeeded *without doing its work on purpose* — e.g. an ungraceful takeover that does not
//!   wait on the lost region, or a stage that had nothing to change. The report lists it under
//!   [`Report::skipped`] with the reason, next to the steps that never ran because the run ended
//!   early.
//! - `{"fallback": "<what was done instead>", "fallback_reason": "<why>"}` ([`FALLBACK`],
//!   [`FALLBACK_REASON`]): the step reached its goal another way than planned — e.g. an
//!   ungraceful promotion that had to detach the secondary (`detach-and-promote`) because
//!   `FailoverGlobalCluster` could not complete. Listed under [`Report::fallbacks`].

pub mod markdown;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::event::{EventKind, Mode, Outcome, RunId, StepId, UnwindCause};
use super::state::{RunStatus, StepStatus};
use super::view::{PhaseView, RunView, StepView};

/// Phases whose name starts with this shift traffic; the RTO ends with the last of them.
pub const DNS_PHASE_PREFIX: &str = "dns-";
/// A step output key: `true` when the step deliberately did not do its work.
pub const SKIPPED: &str = "skipped";
/// A step output key: why the step skipped its work (one sentence).
pub const SKIPPED_REASON: &str = "skipped_reason";
/// A step output key: the other way the step reached its goal.
pub const FALLBACK: &str = "fallback";
/// A step output key: why it had to.
pub const FALLBACK_REASON: &str = "fallback_reason";
/// A step output key: an object of named numeric measurements.
pub const MEASUREMENTS: &str = "measurements";
/// Data-loss measurements are `aurora.<global cluster>.estimated_data_loss_seconds`.
const DATA_LOSS_PREFIX: &str = "aurora.";
const DATA_LOSS_SUFFIX: &str = ".estimated_data_loss_seconds";

/// Whether a measurement's name is an estimated data loss (`aurora.<global>.estimated_data_loss_seconds`).
pub fn is_data_loss_measurement(name: &str) -> bool {
    name.len() > DATA_LOSS_PREFIX.len() + DATA_LOSS_SUFFIX.len()
        && name.starts_with(DATA_LOSS_PREFIX)
        && name.ends_with(DATA_LOSS_SUFFIX)
}

/// The report of one run. See the module docs for how each figure is measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// `false` while the run has not finished: the report so far, whose figures may change.
    #[serde(rename = "final")]
    pub is_final: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    pub id: RunId,
    pub plan: String,
    pub mode: Mode,
    pub dry_run: bool,
    pub drill: bool,
    pub reason: String,
    pub requested_by: String,
    pub region_pair: String,
    pub status: RunStatus,
    /// How the run ended; `None` while it runs.
    pub outcome: Option<Outcome>,
    /// For `needs_operator`: what a person must check.
    pub message: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub detected_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// From start to finish (finished runs).
    pub total_duration_seconds: Option<f64>,
    pub rto: Rto,
    pub rpo: Rpo,
    pub critical_path: CriticalPath,
    /// Time spent waiting for approvals, every gate together (an open wait counts until the run
    /// finished, or until the report was generated).
    pub approval_wait_seconds: f64,
    pub phases: Vec<PhaseReport>,
    /// Steps that skipped their work on purpose, and steps that never ran.
    pub skipped: Vec<SkippedStep>,
    /// Steps that reached their goal by a fallback (e.g. detach-and-promote).
    pub fallbacks: Vec<Fallback>,
    /// Steps that failed for good (or whose compensation failed).
    pub errors: Vec<StepFailure>,
    /// Every measurement the steps reported (a later step's value wins on a repeated name).
    pub measurements: BTreeMap<String, f64>,
}

/// Where the RTO starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RtoStart {
    /// The run's `RunStarted` (an operator's run).
    RunStart,
    /// The detection of the outage (`detected_at`, runs started by the policy).
    Detection,
}

/// Recovery time. `seconds` is `None` with a `reason` when it cannot be measured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rto {
    pub seconds: Option<f64>,
    pub from: RtoStart,
    #[serde(with = "time::serde::rfc3339::option")]
    pub from_at: Option<OffsetDateTime>,
    /// The last `dns-` phase of the plan, whose finish ends the RTO.
    pub until_phase: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub until_at: Option<OffsetDateTime>,
    pub reason: Option<String>,
}

/// Data loss at promotion. `seconds` is `None` with a `reason` when unknown.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rpo {
    pub seconds: Option<f64>,
    /// The data-loss measurements the maximum is taken over.
    pub measurements: BTreeMap<String, f64>,
    pub reason: Option<String>,
}

/// What the steps cost the run, phase barrier by phase barrier.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CriticalPath {
    /// Sum over phases of the phase's longest step.
    pub seconds: f64,
    /// Sum of every step's duration (what running them one by one would have cost).
    pub sum_of_steps_seconds: f64,
    /// `sum_of_steps_seconds - seconds`: what concurrency within phases bought.
    pub overlap_seconds: f64,
    /// The longest step of each phase that ran steps, in plan order.
    pub steps: Vec<StepId>,
}

/// Where a phase is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseStatus {
    NotStarted,
    WaitingApproval,
    Running,
    /// Every step succeeded (and the gate, if any, was approved).
    Completed,
    /// A step (or a compensation) failed.
    Failed,
    /// Its steps were undone while the run unwound.
    Compensated,
    /// The run ended with the phase partly done.
    Incomplete,
    /// Dry run: its steps were described.
    Described,
}

impl PhaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseStatus::NotStarted => "not_started",
            PhaseStatus::WaitingApproval => "waiting_approval",
            PhaseStatus::Running => "running",
            PhaseStatus::Completed => "completed",
            PhaseStatus::Failed => "failed",
            PhaseStatus::Compensated => "compensated",
            PhaseStatus::Incomplete => "incomplete",
            PhaseStatus::Described => "described",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseReport {
    pub name: String,
    pub status: PhaseStatus,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Approval request (or first step start) to last step finish (or approval).
    pub duration_seconds: Option<f64>,
    pub approval: Option<ApprovalReport>,
    /// The longest step: the phase's share of the critical path.
    pub critical_step: Option<StepId>,
    pub steps: Vec<StepLine>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApprovalReport {
    pub prompt: String,
    #[serde(with = "time::serde::rfc3339::option")]
    pub requested_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub approved_at: Option<OffsetDateTime>,
    pub approved_by: Option<String>,
    pub wait_seconds: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepLine {
    pub id: StepId,
    pub name: String,
    pub status: StepStatus,
    pub attempts: u32,
    /// Success was established by `verify` (after a restart or before a retry).
    pub verified: bool,
    /// Failed, and `verify` showed it had not taken effect.
    pub not_applied: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// First start to finish, all attempts included; `None` while it runs or if it never ran.
    pub duration_seconds: Option<f64>,
    /// The step skipped its work on purpose, for this reason.
    pub skipped_reason: Option<String>,
    pub error: Option<String>,
}

/// Why a step did not do its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipKind {
    /// The step succeeded without doing its work, on purpose (`"skipped": true` in its output).
    Skipped,
    /// The run ended before the step started.
    NotRun,
}

/// A step that reached its goal another way than planned.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fallback {
    pub step: StepId,
    pub name: String,
    pub fallback: String,
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SkippedStep {
    pub phase: String,
    pub step: StepId,
    pub name: String,
    pub kind: SkipKind,
    pub reason: String,
}

/// When a step's error happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureDuring {
    Execute,
    Compensate,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepFailure {
    pub phase: String,
    pub step: StepId,
    pub name: String,
    pub attempts: u32,
    pub during: FailureDuring,
    pub error: String,
    /// `verify` showed the failed step had not taken effect.
    pub not_applied: bool,
}

fn seconds_between(from: Option<OffsetDateTime>, to: Option<OffsetDateTime>) -> Option<f64> {
    Some((to? - from?).as_seconds_f64().max(0.0))
}

/// The gate of one phase as the journal tells it.
#[derive(Default)]
struct GateEvents {
    requested_at: Option<OffsetDateTime>,
    approved_at: Option<OffsetDateTime>,
    approved_by: Option<String>,
}

impl Report {
    /// The report of `view` as of `now` (used only for an approval wait still open).
    pub fn new(view: &RunView, now: OffsetDateTime) -> Self {
        let is_final = view.status.is_terminal();
        let gates = gate_events(view);
        let until = view.finished_at.unwrap_or(now);

        let mut phases = Vec::with_capacity(view.phases.len());
        let mut approval_wait_seconds = 0.0;
        for phase in &view.phases {
            let gate = gates.get(&phase.name);
            let approval = phase.approval.as_ref().map(|a| {
                let requested_at = gate.and_then(|g| g.requested_at);
                let approved_at = gate.and_then(|g| g.approved_at);
                // An open wait lasts until the run ended (aborted while waiting) or until now.
                let wait_end = approved_at.or(requested_at.map(|_| until));
                ApprovalReport {
                    prompt: a.prompt.clone(),
                    requested_at,
                    approved_at,
                    approved_by: gate.and_then(|g| g.approved_by.clone()),
                    wait_seconds: seconds_between(requested_at, wait_end),
                }
            });
            approval_wait_seconds += approval
                .as_ref()
                .and_then(|a| a.wait_seconds)
                .unwrap_or(0.0);
            phases.push(phase_report(view, phase, approval));
        }

        let critical_path = critical_path(&phases);
        let measurements = measurements(&view.phases);
        let rto = rto(view, &phases);
        let rpo = rpo(view, &measurements);
        let skipped = skipped(view, &phases);
        let fallbacks = fallbacks(view);
        let errors = errors(view, &phases);

        Self {
            is_final,
            generated_at: now,
            id: view.id,
            plan: view.plan.clone(),
            mode: view.mode,
            dry_run: view.dry_run,
            drill: view.drill,
            reason: view.reason.clone(),
            requested_by: view.requested_by.clone(),
            region_pair: view.region_pair.clone(),
            status: view.status,
            outcome: outcome_of(view.status),
            message: view.message.clone(),
            created_at: view.created_at,
            detected_at: view.detected_at,
            started_at: view.started_at,
            finished_at: view.finished_at,
            total_duration_seconds: seconds_between(view.started_at, view.finished_at),
            rto,
            rpo,
            critical_path,
            approval_wait_seconds,
            phases,
            skipped,
            fallbacks,
            errors,
            measurements,
        }
    }
}

fn fallbacks(view: &RunView) -> Vec<Fallback> {
    view.phases
        .iter()
        .flat_map(|p| p.steps.iter())
        .filter_map(|s| {
            let out = s.output.as_ref()?;
            let fallback = out.get(FALLBACK)?.as_str()?.to_owned();
            Some(Fallback {
                step: s.id.clone(),
                name: s.name.clone(),
                fallback,
                reason: out
                    .get(FALLBACK_REASON)
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .collect()
}

fn outcome_of(status: RunStatus) -> Option<Outcome> {
    match status {
        RunStatus::Succeeded => Some(Outcome::Succeeded),
        RunStatus::Failed => Some(Outcome::Failed),
        RunStatus::Aborted => Some(Outcome::Aborted),
        RunStatus::NeedsOperator => Some(Outcome::NeedsOperator),
        RunStatus::Pending
        | RunStatus::Running
        | RunStatus::WaitingApproval
        | RunStatus::Unwinding => None,
    }
}

/// The first approval request and the approval of each gate, from the timeline.
fn gate_events(view: &RunView) -> BTreeMap<String, GateEvents> {
    let mut gates: BTreeMap<String, GateEvents> = BTreeMap::new();
    for entry in &view.timeline {
        match &entry.event.kind {
            EventKind::WaitingApproval { gate } => {
                let g = gates.entry(gate.clone()).or_default();
                // A restart writes the request again; the wait started with the first.
                g.requested_at.get_or_insert(entry.event.at);
            }
            EventKind::Approved { gate, by } => {
                let g = gates.entry(gate.clone()).or_default();
                g.approved_at = Some(entry.event.at);
                g.approved_by = Some(by.clone());
            }
            _ => {}
        }
    }
    gates
}

fn skipped_reason(step: &StepView) -> Option<String> {
    let out = step.output.as_ref()?;
    if out.get(SKIPPED).and_then(Value::as_bool) != Some(true) {
        return None;
    }
    Some(
        out.get(SKIPPED_REASON)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| "the step gave no reason".to_owned()),
    )
}

fn step_line(step: &StepView) -> StepLine {
    // While a retry runs, `finished_at` is the previous attempt's: no duration yet.
    let duration_seconds = match step.status {
        StepStatus::Pending | StepStatus::Running => None,
        _ => seconds_between(step.started_at, step.finished_at),
    };
    StepLine {
        id: step.id.clone(),
        name: step.name.clone(),
        status: step.status,
        attempts: step.attempts,
        verified: step.verified,
        not_applied: step.not_applied,
        started_at: step.started_at,
        finished_at: step.finished_at,
        duration_seconds,
        skipped_reason: skipped_reason(step),
        error: step.error.clone(),
    }
}

fn phase_report(
    view: &RunView,
    phase: &PhaseView,
    approval: Option<ApprovalReport>,
) -> PhaseReport {
    let steps: Vec<StepLine> = phase.steps.iter().map(step_line).collect();
    let status = phase_status(view, phase);
    let first_step_start = steps.iter().filter_map(|s| s.started_at).min();
    let started_at = approval
        .as_ref()
        .and_then(|a| a.requested_at)
        .or(first_step_start);
    let finished_at = match status {
        PhaseStatus::NotStarted | PhaseStatus::WaitingApproval | PhaseStatus::Running => None,
        _ if steps.is_empty() => approval.as_ref().and_then(|a| a.approved_at),
        _ => steps
            .iter()
            .filter(|s| s.duration_seconds.is_some())
            .filter_map(|s| s.finished_at)
            .max(),
    };
    let critical_step = steps
        .iter()
        .filter_map(|s| s.duration_seconds.map(|d| (d, &s.id)))
        // The first of equally long steps, for a stable answer.
        .fold(None::<(f64, &StepId)>, |best, (d, id)| match best {
            Some((b, _)) if b >= d => best,
            _ => Some((d, id)),
        })
        .map(|(_, id)| id.clone());
    PhaseReport {
        name: phase.name.clone(),
        status,
        started_at,
        finished_at,
        duration_seconds: seconds_between(started_at, finished_at),
        approval,
        critical_step,
        steps,
    }
}

fn phase_status(view: &RunView, phase: &PhaseView) -> PhaseStatus {
    use StepStatus as S;
    let has = |f: fn(StepStatus) -> bool| phase.steps.iter().any(|s| f(s.status));
    let all = |f: fn(StepStatus) -> bool| phase.steps.iter().all(|s| f(s.status));
    let gate_open = phase.approval.as_ref().is_some_and(|a| !a.approved);
    if view.waiting_for_approval.as_deref() == Some(phase.name.as_str()) {
        return PhaseStatus::WaitingApproval;
    }
    if has(|s| matches!(s, S::Running | S::Compensating)) {
        return PhaseStatus::Running;
    }
    if has(|s| matches!(s, S::Failed | S::CompensationFailed)) {
        return PhaseStatus::Failed;
    }
    if !phase.steps.is_empty() && all(|s| s == S::Described) {
        return PhaseStatus::Described;
    }
    if !gate_open && all(|s| s == S::Succeeded) {
        return PhaseStatus::Completed;
    }
    if has(|s| s == S::Compensated) {
        return PhaseStatus::Compensated;
    }
    let approved = phase.approval.as_ref().is_some_and(|a| a.approved);
    if all(|s| s == S::Pending) && !approved {
        return PhaseStatus::NotStarted;
    }
    // Partly done (or approved with no step started yet).
    if view.status.is_terminal() {
        PhaseStatus::Incomplete
    } else {
        PhaseStatus::Running
    }
}

fn critical_path(phases: &[PhaseReport]) -> CriticalPath {
    let mut seconds = 0.0;
    let mut sum = 0.0;
    let mut steps = Vec::new();
    for phase in phases {
        let durations = phase.steps.iter().filter_map(|s| s.duration_seconds);
        sum += durations.clone().sum::<f64>();
        seconds += durations.fold(0.0, f64::max);
        if let Some(id) = &phase.critical_step {
            steps.push(id.clone());
        }
    }
    CriticalPath {
        seconds,
        sum_of_steps_seconds: sum,
        overlap_seconds: (sum - seconds).max(0.0),
        steps,
    }
}

fn measurements(phases: &[PhaseView]) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for step in phases.iter().flat_map(|p| p.steps.iter()) {
        if let Some(Value::Object(obj)) = step.output.as_ref().and_then(|o| o.get(MEASUREMENTS)) {
            for (k, v) in obj {
                if let Some(n) = v.as_f64().filter(|n| n.is_finite()) {
                    m.insert(k.clone(), n);
                }
            }
        }
    }
    m
}

fn rto(view: &RunView, phases: &[PhaseReport]) -> Rto {
    let (from, from_at) = match view.detected_at {
        Some(at) => (RtoStart::Detection, Some(at)),
        None => (RtoStart::RunStart, view.started_at),
    };
    let last_dns = phases
        .iter()
        .rev()
        .find(|p| p.name.starts_with(DNS_PHASE_PREFIX));
    let mut rto = Rto {
        seconds: None,
        from,
        from_at,
        until_phase: last_dns.map(|p| p.name.clone()),
        until_at: None,
        reason: None,
    };
    let unmeasured = |mut rto: Rto, reason: String| {
        rto.reason = Some(reason);
        rto
    };
    if view.dry_run {
        return unmeasured(rto, "a dry run moves no traffic".to_owned());
    }
    let Some(phase) = last_dns else {
        return unmeasured(
            rto,
            format!(
                "plan {} has no DNS phase (no phase named {DNS_PHASE_PREFIX}*), so it moves no traffic to time",
                view.plan
            ),
        );
    };
    if phase.status != PhaseStatus::Completed {
        let why = match phase.status {
            PhaseStatus::Compensated => "was undone when the run unwound".to_owned(),
            PhaseStatus::NotStarted if view.status.is_terminal() => {
                "never started: the run ended before the DNS shift".to_owned()
            }
            status => format!("is {}", status.as_str()),
        };
        return unmeasured(
            rto,
            format!("the DNS shift did not complete: phase {} {why}", phase.name),
        );
    }
    let Some(from_at) = from_at else {
        return unmeasured(rto, "the run has no start time".to_owned());
    };
    rto.until_at = phase.finished_at;
    rto.seconds = seconds_between(Some(from_at), phase.finished_at);
    if rto.seconds.is_none() {
        rto.reason = Some(format!("phase {} has no finish time", phase.name));
    }
    rto
}

fn rpo(view: &RunView, measurements: &BTreeMap<String, f64>) -> Rpo {
    let losses: BTreeMap<String, f64> = measurements
        .iter()
        .filter(|(k, _)| is_data_loss_measurement(k))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    let seconds = losses.values().copied().fold(None, |max: Option<f64>, v| {
        Some(max.map_or(v, |m| m.max(v)))
    });
    let reason = match seconds {
        Some(_) => None,
        None if view.dry_run => Some("a dry run promotes no database".to_owned()),
        None => Some(format!(
            "no step reported an estimated data loss ({DATA_LOSS_PREFIX}<global>{DATA_LOSS_SUFFIX}): \
             the plan has no Aurora promotion or the run did not reach it"
        )),
    };
    Rpo {
        seconds,
        measurements: losses,
        reason,
    }
}

fn skipped(view: &RunView, phases: &[PhaseReport]) -> Vec<SkippedStep> {
    let ended_early = (view.status.is_terminal() && !view.dry_run).then(|| why_not_run(view));
    let mut out = Vec::new();
    for phase in phases {
        for step in &phase.steps {
            let (kind, reason) = if let Some(reason) = &step.skipped_reason {
                (SkipKind::Skipped, reason.clone())
            } else if let (StepStatus::Pending, Some(why)) = (step.status, &ended_early) {
                (SkipKind::NotRun, why.clone())
            } else {
                continue;
            };
            out.push(SkippedStep {
                phase: phase.name.clone(),
                step: step.id.clone(),
                name: step.name.clone(),
                kind,
                reason,
            });
        }
    }
    out
}

/// Why the steps that never started did not: the way the run ended.
fn why_not_run(view: &RunView) -> String {
    match (view.status, failed_for_good(view)) {
        (RunStatus::Aborted, _) => format!(
            "the run was aborted{}",
            view.abort_requested_by
                .as_deref()
                .map(|by| format!(" by {by}"))
                .unwrap_or_default()
        ),
        (RunStatus::NeedsOperator, _) => {
            "the run stopped for an operator before this step (see the message)".to_owned()
        }
        (_, Some(step)) => format!("the run failed at step {step} before this step"),
        _ => format!("the run ended ({}) before this step", view.status.as_str()),
    }
}

/// The step whose failure for good made the run unwind, from the timeline.
fn failed_for_good(view: &RunView) -> Option<&StepId> {
    view.timeline.iter().find_map(|e| match &e.event.kind {
        EventKind::UnwindStarted {
            cause: UnwindCause::StepFailed { step },
        } => Some(step),
        _ => None,
    })
}

/// Failed steps in plan order. The errors come from the timeline, because a failed step that
/// was then compensated is no longer `failed`, and a failed compensation overwrites the step's
/// last error.
fn errors(view: &RunView, phases: &[PhaseReport]) -> Vec<StepFailure> {
    let mut execute: BTreeMap<&StepId, &str> = BTreeMap::new();
    let mut compensate: BTreeMap<&StepId, &str> = BTreeMap::new();
    for entry in &view.timeline {
        match &entry.event.kind {
            EventKind::StepFailed { step, error, .. }
            | EventKind::StepDescribeFailed { step, error } => {
                execute.insert(step, error);
            }
            EventKind::CompensationFailed { step, error } => {
                compensate.insert(step, error);
            }
            _ => {}
        }
    }
    let for_good = failed_for_good(view);
    let mut out = Vec::new();
    for phase in phases {
        for step in &phase.steps {
            let failure = |during, error: Option<&str>| StepFailure {
                phase: phase.name.clone(),
                step: step.id.clone(),
                name: step.name.clone(),
                attempts: step.attempts,
                during,
                error: error
                    .map(str::to_owned)
                    .or_else(|| step.error.clone())
                    .unwrap_or_else(|| "no error was recorded".to_owned()),
                not_applied: step.not_applied,
            };
            if step.status == StepStatus::Failed || for_good == Some(&step.id) {
                out.push(failure(
                    FailureDuring::Execute,
                    execute.get(&step.id).copied(),
                ));
            }
            if let Some(error) = compensate.get(&step.id) {
                out.push(failure(FailureDuring::Compensate, Some(error)));
            }
        }
    }
    out
}
