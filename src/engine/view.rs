//! Read models of runs for the API: a [`RunView`] (steps, timeline, report) and a [`RunSummaryView`]
//! for lists. Built from a [`RunState`] and its journal; `Serialize` so handlers return them as is.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::event::{
    Event, JournalEntry, Mode, Outcome, Reversibility, RunId, RunRecord, StepDescription, StepId,
};
use super::state::{RunState, RunStatus, StepState, StepStatus};

/// A run with everything an operator wants to see.
#[derive(Clone, Debug, Serialize)]
pub struct RunView {
    pub id: RunId,
    pub plan: String,
    pub mode: Mode,
    pub dry_run: bool,
    pub drill: bool,
    pub reason: String,
    pub params: Value,
    pub requested_by: String,
    pub region_pair: String,
    pub status: RunStatus,
    /// The gate the run waits at, when `status` is `waiting_approval`.
    pub waiting_for_approval: Option<String>,
    pub abort_requested_by: Option<String>,
    /// For `needs_operator`: what a person must check.
    pub message: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When the condition the run responds to was detected (runs started by the auto-failover
    /// policy: when the hot region became unhealthy); the report's RTO starts there.
    #[serde(with = "time::serde::rfc3339::option")]
    pub detected_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Seq of the last journal entry (resume event streams after it).
    pub last_seq: u64,
    pub phases: Vec<PhaseView>,
    /// The journal.
    pub timeline: Vec<TimelineEntry>,
    /// For finished runs.
    pub report: Option<RunReport>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhaseView {
    pub name: String,
    pub approval: Option<ApprovalView>,
    pub steps: Vec<StepView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ApprovalView {
    pub prompt: String,
    pub approved: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepView {
    pub id: StepId,
    pub name: String,
    pub reversibility: Reversibility,
    pub status: StepStatus,
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    pub duration_seconds: Option<f64>,
    pub error: Option<String>,
    pub output: Option<Value>,
    /// True when success was established by `verify` (after a restart or before a retry).
    pub verified: bool,
    /// True for a failed step that `verify` showed had not taken effect (nothing to undo).
    pub not_applied: bool,
    /// Dry runs: what the step would change.
    pub description: Option<StepDescription>,
    /// Set while the step (or its compensation) waits to try again after a retryable error.
    pub retry: Option<RetryView>,
}

/// A step waiting to try again: what failed, how often, and when the next attempt starts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetryView {
    /// What is being retried.
    pub operation: RetriedOperation,
    /// Failed attempts so far.
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub next_attempt_at: OffsetDateTime,
    pub last_error: String,
}

/// The step operation a [`RetryView`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetriedOperation {
    Execute,
    /// Resolving an attempt left in doubt by a restart.
    Verify,
    Compensate,
}

#[derive(Clone, Debug, Serialize)]
pub struct TimelineEntry {
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// Summary of a finished run. The full report (RTO, RPO, critical path, skipped steps) is
/// [`crate::engine::report::Report`], served by `GET /v1/runs/{id}/report`.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    pub outcome: Outcome,
    pub total_duration_seconds: f64,
    pub steps: Vec<StepReport>,
    /// Drills only: measurements contributed by steps (`{"measurements": {...}}` in their output).
    pub measurements: Option<BTreeMap<String, f64>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub id: StepId,
    pub status: StepStatus,
    pub attempts: u32,
    pub duration_seconds: Option<f64>,
}

/// One line of a run list.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummaryView {
    pub id: RunId,
    pub plan: String,
    pub mode: Mode,
    pub dry_run: bool,
    pub drill: bool,
    pub reason: String,
    pub requested_by: String,
    pub status: RunStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

impl RunSummaryView {
    pub fn new(record: &RunRecord, status: RunStatus, finished_at: Option<OffsetDateTime>) -> Self {
        Self {
            id: record.id,
            plan: record.plan.clone(),
            mode: record.mode,
            dry_run: record.dry_run,
            drill: record.drill,
            reason: record.reason.clone(),
            requested_by: record.requested_by.clone(),
            status,
            created_at: record.created_at,
            finished_at,
        }
    }
}

fn seconds(from: Option<OffsetDateTime>, to: Option<OffsetDateTime>) -> Option<f64> {
    Some((to? - from?).as_seconds_f64().max(0.0))
}

impl RetryView {
    /// The wait before a step's next attempt, from the journal (`StepFailed::retry_at`).
    pub fn of_execute(s: &StepState) -> Option<RetryView> {
        match (s.status, s.retry_at) {
            (StepStatus::Failed, Some(at)) => Some(RetryView {
                operation: RetriedOperation::Execute,
                attempts: s.failures,
                next_attempt_at: at,
                last_error: s.last_error.clone().unwrap_or_default(),
            }),
            _ => None,
        }
    }
}

impl RunView {
    /// The view of `state`, whose journal is `journal`.
    pub fn new(state: &RunState, journal: &[JournalEntry]) -> Self {
        let r = &state.record;
        let phases: Vec<PhaseView> = r
            .layout
            .phases
            .iter()
            .map(|p| PhaseView {
                name: p.name.clone(),
                approval: p.approval.as_ref().map(|prompt| ApprovalView {
                    prompt: prompt.clone(),
                    approved: state.approved.contains(&p.name),
                }),
                steps: p
                    .steps
                    .iter()
                    .filter_map(|l| {
                        let s = state.steps.get(&l.id)?;
                        let done = matches!(
                            s.status,
                            StepStatus::Succeeded
                                | StepStatus::Compensating
                                | StepStatus::Compensated
                                | StepStatus::CompensationFailed
                        );
                        Some(StepView {
                            id: l.id.clone(),
                            name: l.name.clone(),
                            reversibility: l.reversibility,
                            status: s.status,
                            attempts: s.attempt,
                            started_at: s.first_started_at,
                            finished_at: s.finished_at,
                            duration_seconds: if done {
                                seconds(s.first_started_at, s.finished_at)
                            } else {
                                None
                            },
                            error: s.last_error.clone(),
                            output: s.output.clone(),
                            verified: s.verified,
                            not_applied: s.not_applied,
                            description: s.description.clone(),
                            retry: RetryView::of_execute(s),
                        })
                    })
                    .collect(),
            })
            .collect();

        let report = state.outcome.map(|outcome| {
            let steps = phases
                .iter()
                .flat_map(|p| p.steps.iter())
                .map(|s| StepReport {
                    id: s.id.clone(),
                    status: s.status,
                    attempts: s.attempts,
                    duration_seconds: s.duration_seconds,
                })
                .collect();
            let measurements = r.drill.then(|| {
                let mut m = BTreeMap::new();
                for s in phases.iter().flat_map(|p| p.steps.iter()) {
                    if let Some(Value::Object(obj)) =
                        s.output.as_ref().and_then(|o| o.get("measurements"))
                    {
                        for (k, v) in obj {
                            if let Some(n) = v.as_f64() {
                                m.insert(k.clone(), n);
                            }
                        }
                    }
                }
                m
            });
            RunReport {
                outcome,
                total_duration_seconds: seconds(state.started_at, state.finished_at).unwrap_or(0.0),
                steps,
                measurements,
            }
        });

        Self {
            id: r.id,
            plan: r.plan.clone(),
            mode: r.mode,
            dry_run: r.dry_run,
            drill: r.drill,
            reason: r.reason.clone(),
            params: r.params.clone(),
            requested_by: r.requested_by.clone(),
            region_pair: r.region_pair.clone(),
            status: state.status,
            waiting_for_approval: state.waiting_gate.clone(),
            abort_requested_by: state.abort_requested_by.clone(),
            message: state.message.clone(),
            created_at: r.created_at,
            detected_at: r.detected_at,
            started_at: state.started_at,
            finished_at: state.finished_at,
            last_seq: state.seq,
            phases,
            timeline: journal
                .iter()
                .map(|e| TimelineEntry {
                    seq: e.seq,
                    event: e.event.clone(),
                })
                .collect(),
            report,
        }
    }
}
