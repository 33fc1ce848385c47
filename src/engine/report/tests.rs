//! The report model on hand-written journals: each journal is folded through the real `apply`
//! (so every fixture is a journal the engine could have written) and turned into the view the
//! API serves, then into the report.

use std::sync::Arc;

use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::*;
use crate::engine::event::{
    Event, JournalEntry, PhaseLayout, PlanLayout, Reversibility, RunRecord, StepLayout, UnwindCause,
};
use crate::engine::state::RunState;

const T0: i64 = 1_714_557_600; // 2024-05-01T10:00:00Z

fn t(seconds: f64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(T0).unwrap() + Duration::seconds_f64(seconds)
}

/// A phase: name, approval prompt, steps as (id, reversibility).
type PhaseSpec<'a> = (&'a str, Option<&'a str>, &'a [(&'a str, Reversibility)]);

const NONE: Reversibility = Reversibility::NoSideEffect;
const UNDO: Reversibility = Reversibility::Compensable;
const ONCE: Reversibility = Reversibility::Irreversible;

struct Journal {
    record: RunRecord,
    events: Vec<Event>,
}

impl Journal {
    fn new(plan: &str, mode: Mode, phases: &[PhaseSpec<'_>]) -> Self {
        let layout = PlanLayout {
            phases: phases
                .iter()
                .map(|(name, approval, steps)| PhaseLayout {
                    name: (*name).to_owned(),
                    approval: approval.map(str::to_owned),
                    steps: steps
                        .iter()
                        .map(|(id, reversibility)| StepLayout {
                            id: StepId::new(*id),
                            name: format!("step {id}"),
                            reversibility: *reversibility,
                            max_attempts: 3,
                        })
                        .collect(),
                })
                .collect(),
        };
        Self {
            record: RunRecord {
                id: RunId::new(),
                plan: plan.to_owned(),
                mode,
                dry_run: false,
                drill: true,
                reason: "quarterly drill | CHG-42".to_owned(),
                params: json!({}),
                requested_by: "alice".to_owned(),
                region_pair: "prod".to_owned(),
                created_at: t(-1.0),
                detected_at: None,
                layout,
            },
            events: Vec::new(),
        }
    }

    fn detected(mut self, at: OffsetDateTime) -> Self {
        self.record.detected_at = Some(at);
        self
    }

    fn dry_run(mut self) -> Self {
        self.record.dry_run = true;
        self
    }

    fn at(mut self, seconds: f64, kind: EventKind) -> Self {
        self.events.push(Event {
            at: t(seconds),
            kind,
        });
        self
    }

    fn start(self, seconds: f64, step: &str) -> Self {
        self.attempt(seconds, step, 1)
    }

    fn attempt(self, seconds: f64, step: &str, attempt: u32) -> Self {
        self.at(
            seconds,
            EventKind::StepStarted {
                step: StepId::new(step),
                attempt,
            },
        )
    }

    fn ok(self, seconds: f64, step: &str, output: Value) -> Self {
        let attempt = self.attempts_of(step);
        self.at(
            seconds,
            EventKind::StepSucceeded {
                step: StepId::new(step),
                attempt,
                output,
                verified: false,
            },
        )
    }

    fn fail(self, seconds: f64, step: &str, error: &str, retryable: bool) -> Self {
        let attempt = self.attempts_of(step);
        self.at(
            seconds,
            EventKind::StepFailed {
                step: StepId::new(step),
                attempt,
                error: error.to_owned(),
                retryable,
                retry_at: None,
                not_applied: false,
            },
        )
    }

    /// A step started at `from` that succeeded at `to`.
    fn step(self, from: f64, to: f64, step: &str) -> Self {
        self.start(from, step).ok(to, step, json!({}))
    }

    fn attempts_of(&self, step: &str) -> u32 {
        self.events
            .iter()
            .filter(
                |e| matches!(&e.kind, EventKind::StepStarted { step: s, .. } if s.as_str() == step),
            )
            .count() as u32
    }

    fn view(&self) -> RunView {
        let state = RunState::replay(Arc::new(self.record.clone()), self.events.iter())
            .unwrap_or_else(|e| panic!("the fixture is not a legal journal: {e}"));
        let journal: Vec<JournalEntry> = self
            .events
            .iter()
            .enumerate()
            .map(|(i, e)| JournalEntry {
                seq: i as u64 + 1,
                event: e.clone(),
            })
            .collect();
        RunView::new(&state, &journal)
    }

    fn report(&self) -> Report {
        Report::new(&self.view(), t(10_000.0))
    }
}

fn finished(outcome: Outcome) -> EventKind {
    EventKind::RunFinished { outcome }
}

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-6)
}

fn assert_close(a: Option<f64>, b: f64, what: &str) {
    assert!(close(a, b), "{what}: {a:?}, expected {b}");
}

fn phase<'r>(r: &'r Report, name: &str) -> &'r PhaseReport {
    r.phases
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no phase {name}"))
}

/// The shape of the takeover plans: preflight (two checks concurrently), a Cognito sync
/// concurrent with a scale-up, the Aurora phases, the staged DNS shift, the record.
fn takeover(mode: Mode) -> Journal {
    Journal::new(
        "failover",
        mode,
        &[
            (
                "preflight",
                None,
                &[("check-dns", NONE), ("check-aurora", NONE)],
            ),
            (
                "prepare",
                None,
                &[("cognito-sync", NONE), ("scale-up", UNDO)],
            ),
            ("aurora-promote", None, &[("promote", ONCE)]),
            ("dns-stage-100-apply", None, &[("dns-apply", UNDO)]),
            ("dns-stage-100-sync", None, &[("dns-sync", NONE)]),
            ("record-active-region", None, &[("record", NONE)]),
        ],
    )
}

fn data_loss(seconds: f64) -> Value {
    json!({"measurements": {"aurora.app.estimated_data_loss_seconds": seconds}})
}

#[test]
fn graceful_run_measures_rto_to_the_last_dns_phase_and_the_overlap() {
    let j = takeover(Mode::Graceful)
        .at(0.0, EventKind::RunStarted)
        .step(0.0, 2.0, "check-dns")
        .step(0.0, 5.0, "check-aurora")
        .step(5.0, 25.0, "cognito-sync")
        .step(5.0, 15.0, "scale-up")
        .start(25.0, "promote")
        .ok(55.0, "promote", data_loss(0.0))
        .step(55.0, 56.0, "dns-apply")
        .step(56.0, 86.0, "dns-sync")
        .step(86.0, 87.0, "record")
        .at(87.0, finished(Outcome::Succeeded));
    let r = j.report();

    assert!(r.is_final);
    assert_eq!(r.outcome, Some(Outcome::Succeeded));
    assert_eq!(r.plan, "failover");
    assert_eq!(r.requested_by, "alice");
    assert_close(r.total_duration_seconds, 87.0, "total");
    // RTO: run start (no detection) to the end of dns-stage-100-sync, not of the whole run.
    assert_eq!(r.rto.from, RtoStart::RunStart);
    assert_eq!(r.rto.from_at, Some(t(0.0)));
    assert_eq!(r.rto.until_phase.as_deref(), Some("dns-stage-100-sync"));
    assert_eq!(r.rto.until_at, Some(t(86.0)));
    assert_close(r.rto.seconds, 86.0, "rto");
    assert_eq!(r.rto.reason, None);
    // A graceful switchover reports 0 data loss.
    assert_close(r.rpo.seconds, 0.0, "rpo");
    assert_eq!(r.rpo.reason, None);
    // Critical path: 5 + 20 + 30 + 1 + 30 + 1; the steps' sum adds 2 (check-dns) and 10.
    assert_close(Some(r.critical_path.seconds), 87.0, "critical path");
    assert_close(Some(r.critical_path.sum_of_steps_seconds), 99.0, "sum");
    assert_close(Some(r.critical_path.overlap_seconds), 12.0, "overlap");
    let critical: Vec<&str> = r.critical_path.steps.iter().map(StepId::as_str).collect();
    assert_eq!(
        critical,
        [
            "check-aurora",
            "cognito-sync",
            "promote",
            "dns-apply",
            "dns-sync",
            "record"
        ]
    );
    let prepare = phase(&r, "prepare");
    assert_eq!(prepare.status, PhaseStatus::Completed);
    assert_eq!(prepare.started_at, Some(t(5.0)));
    assert_eq!(prepare.finished_at, Some(t(25.0)));
    assert_close(prepare.duration_seconds, 20.0, "prepare");
    assert_eq!(
        prepare.critical_step.as_ref().map(StepId::as_str),
        Some("cognito-sync")
    );
    let scale = &prepare.steps[1];
    assert_eq!(
        (scale.attempts, scale.verified, scale.not_applied),
        (1, false, false)
    );
    assert_close(scale.duration_seconds, 10.0, "scale-up");
    assert_eq!(r.approval_wait_seconds, 0.0);
    assert!(r.skipped.is_empty() && r.errors.is_empty());
    assert_eq!(
        r.measurements.get("aurora.app.estimated_data_loss_seconds"),
        Some(&0.0)
    );
}

#[test]
fn ungraceful_run_reports_the_largest_data_loss_retries_and_skipped_work() {
    let j = Journal::new(
        "failover",
        Mode::Ungraceful,
        &[
            ("preflight", None, &[("fence-old-writer", NONE), ("check", NONE)]),
            ("aurora-promote", None, &[("promote-app", ONCE), ("promote-billing", ONCE)]),
            ("dns-stage-100-apply", None, &[("dns-apply", UNDO)]),
        ],
    )
    .at(0.0, EventKind::RunStarted)
    .start(0.0, "fence-old-writer")
    .ok(
        3.0,
        "fence-old-writer",
        json!({"skipped": true, "skipped_reason": "us-east-1 unreachable: not waiting on the lost region"}),
    )
    .start(0.0, "check")
    .ok(1.0, "check", json!({"skipped": true}))
    .start(3.0, "promote-app")
    .fail(4.0, "promote-app", "throttled", true)
    .attempt(5.0, "promote-app", 2)
    .ok(
        20.0,
        "promote-app",
        json!({"measurements": {"aurora.app.estimated_data_loss_seconds": 1.2, "aurora.app.promote_seconds": 15.0}}),
    )
    .start(3.0, "promote-billing")
    .ok(
        10.0,
        "promote-billing",
        json!({"measurements": {"aurora.billing.estimated_data_loss_seconds": 3.5}}),
    )
    .step(20.0, 21.0, "dns-apply")
    .at(21.0, finished(Outcome::Succeeded));
    let r = j.report();

    assert_close(r.rpo.seconds, 3.5, "rpo is the largest loss");
    assert_eq!(r.rpo.measurements.len(), 2, "{:?}", r.rpo.measurements);
    assert!(!r
        .rpo
        .measurements
        .contains_key("aurora.app.promote_seconds"));
    assert_eq!(
        r.measurements.get("aurora.app.promote_seconds"),
        Some(&15.0)
    );
    assert_close(r.rto.seconds, 21.0, "rto");

    let promote = &phase(&r, "aurora-promote").steps[0];
    assert_eq!(promote.attempts, 2);
    assert_close(promote.duration_seconds, 17.0, "both attempts count");
    assert_eq!(
        promote.error.as_deref(),
        Some("throttled"),
        "the retried error stays visible"
    );
    assert!(
        r.errors.is_empty(),
        "a retried step that succeeded is no error"
    );

    assert_eq!(r.skipped.len(), 2);
    assert_eq!(r.skipped[0].step.as_str(), "fence-old-writer");
    assert_eq!(r.skipped[0].kind, SkipKind::Skipped);
    assert!(r.skipped[0].reason.contains("unreachable"));
    assert_eq!(r.skipped[1].reason, "the step gave no reason");
    assert_eq!(
        phase(&r, "preflight").steps[0].skipped_reason.as_deref(),
        Some("us-east-1 unreachable: not waiting on the lost region")
    );
}

#[test]
fn aborted_at_a_gate_reports_the_wait_what_never_ran_and_no_rto() {
    let j = Journal::new(
        "failover",
        Mode::Graceful,
        &[
            ("preflight", None, &[("check", NONE)]),
            ("dns-stage-10-apply", None, &[("dns-10", UNDO)]),
            (
                "dns-stage-100-apply",
                Some("send all traffic?"),
                &[("dns-100", UNDO)],
            ),
        ],
    )
    .at(0.0, EventKind::RunStarted)
    .step(0.0, 1.0, "check")
    .step(1.0, 3.0, "dns-10")
    .at(
        3.0,
        EventKind::WaitingApproval {
            gate: "dns-stage-100-apply".into(),
        },
    )
    .at(63.0, EventKind::AbortRequested { by: "bob".into() })
    .at(
        63.0,
        EventKind::UnwindStarted {
            cause: UnwindCause::Aborted,
        },
    )
    .at(
        63.0,
        EventKind::CompensationStarted {
            step: StepId::new("dns-10"),
        },
    )
    .at(
        65.0,
        EventKind::CompensationFinished {
            step: StepId::new("dns-10"),
        },
    )
    .at(65.0, finished(Outcome::Aborted));
    let r = j.report();

    assert_eq!(r.outcome, Some(Outcome::Aborted));
    // The open wait lasted until the run ended, not until the report was generated.
    assert_close(Some(r.approval_wait_seconds), 62.0, "approval wait");
    let gate = phase(&r, "dns-stage-100-apply");
    assert_eq!(gate.status, PhaseStatus::NotStarted);
    let approval = gate.approval.as_ref().unwrap();
    assert_eq!(approval.approved_by, None);
    assert_eq!(approval.requested_at, Some(t(3.0)));
    assert_eq!(
        phase(&r, "dns-stage-10-apply").status,
        PhaseStatus::Compensated
    );
    assert_eq!(r.rto.seconds, None);
    let reason = r.rto.reason.as_deref().unwrap();
    assert!(reason.contains("dns-stage-100-apply"), "{reason}");
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].kind, SkipKind::NotRun);
    assert_eq!(r.skipped[0].reason, "the run was aborted by bob");
    assert!(r.rpo.seconds.is_none() && r.rpo.reason.is_some());
}

#[test]
fn needs_operator_keeps_the_message_the_error_and_the_irreversible_promotion() {
    let j = takeover(Mode::Ungraceful)
        .at(0.0, EventKind::RunStarted)
        .step(0.0, 1.0, "check-dns")
        .step(0.0, 1.0, "check-aurora")
        .step(1.0, 2.0, "cognito-sync")
        .step(1.0, 2.0, "scale-up")
        .start(2.0, "promote")
        .ok(12.0, "promote", data_loss(4.0))
        .start(12.0, "dns-apply")
        .fail(
            13.0,
            "dns-apply",
            "Route 53: AccessDenied | no\npermission",
            false,
        )
        .at(
            13.0,
            EventKind::UnwindStarted {
                cause: UnwindCause::StepFailed {
                    step: StepId::new("dns-apply"),
                },
            },
        )
        // Past the promotion nothing is undone: the run stops for a person at once.
        .at(
            14.0,
            EventKind::NeedsOperator {
                message: "promote was applied and cannot be undone: check the writer".into(),
            },
        );
    let r = j.report();

    assert_eq!(r.outcome, Some(Outcome::NeedsOperator));
    assert_eq!(r.status, RunStatus::NeedsOperator);
    assert!(r.message.as_deref().unwrap().contains("cannot be undone"));
    // The promotion happened: its data loss is the RPO even though the run did not succeed.
    assert_close(r.rpo.seconds, 4.0, "rpo");
    assert_eq!(r.rto.seconds, None);
    // The failed step's error comes from the journal.
    assert_eq!(r.errors.len(), 1);
    assert_eq!(r.errors[0].step.as_str(), "dns-apply");
    assert_eq!(r.errors[0].during, FailureDuring::Execute);
    assert!(r.errors[0].error.contains("AccessDenied"));
    let not_run: Vec<&str> = r.skipped.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(not_run, ["dns-sync", "record"]);
    assert!(r.skipped[0].reason.contains("operator"));
}

#[test]
fn a_fallback_is_reported_with_its_reason() {
    let mut promote = data_loss(3.0);
    promote["fallback"] = json!("detach-and-promote");
    promote["fallback_reason"] = json!("FailoverGlobalCluster could not complete: refused");
    let j = takeover(Mode::Ungraceful)
        .at(0.0, EventKind::RunStarted)
        .step(0.0, 1.0, "check-dns")
        .step(0.0, 1.0, "check-aurora")
        .step(1.0, 2.0, "cognito-sync")
        .step(1.0, 2.0, "scale-up")
        .start(2.0, "promote")
        .ok(5.0, "promote", promote);
    let r = j.report();
    assert_eq!(r.fallbacks.len(), 1, "{:?}", r.fallbacks);
    assert_eq!(r.fallbacks[0].step.as_str(), "promote");
    assert_eq!(r.fallbacks[0].fallback, "detach-and-promote");
    assert!(r.fallbacks[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("could not complete"));
    let md = markdown::render(&r);
    assert!(md.contains("## Fallbacks"), "{md}");
    assert!(
        md.contains("detach-and-promote: FailoverGlobalCluster"),
        "{md}"
    );
}

#[test]
fn a_failed_run_names_the_step_and_a_failed_compensation() {
    let j = Journal::new(
        "dns-switchover",
        Mode::Graceful,
        &[
            ("dns-stage-10-apply", None, &[("dns-10", UNDO)]),
            ("dns-stage-50-apply", None, &[("dns-50", UNDO)]),
            ("dns-stage-100-apply", None, &[("dns-100", UNDO)]),
        ],
    )
    .at(0.0, EventKind::RunStarted)
    .step(0.0, 1.0, "dns-10")
    .start(1.0, "dns-50")
    .fail(2.0, "dns-50", "health check failed", false)
    .at(
        2.0,
        EventKind::UnwindStarted {
            cause: UnwindCause::StepFailed {
                step: StepId::new("dns-50"),
            },
        },
    )
    .at(
        2.0,
        EventKind::CompensationStarted {
            step: StepId::new("dns-50"),
        },
    )
    .at(
        3.0,
        EventKind::CompensationFinished {
            step: StepId::new("dns-50"),
        },
    )
    .at(
        3.0,
        EventKind::CompensationStarted {
            step: StepId::new("dns-10"),
        },
    )
    .at(
        4.0,
        EventKind::CompensationFailed {
            step: StepId::new("dns-10"),
            error: "throttled".into(),
        },
    )
    .at(
        4.0,
        EventKind::NeedsOperator {
            message: "compensation of dns-10 failed".into(),
        },
    );
    let r = j.report();
    let errors: Vec<(&str, FailureDuring, &str)> = r
        .errors
        .iter()
        .map(|e| (e.step.as_str(), e.during, e.error.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            ("dns-10", FailureDuring::Compensate, "throttled"),
            ("dns-50", FailureDuring::Execute, "health check failed"),
        ]
    );
    assert_eq!(phase(&r, "dns-stage-10-apply").status, PhaseStatus::Failed);

    // Same failure, unwound cleanly: the steps that never ran say where the run failed.
    let j = Journal::new(
        "dns-switchover",
        Mode::Graceful,
        &[
            ("dns-stage-10-apply", None, &[("dns-10", NONE)]),
            ("dns-stage-100-apply", None, &[("dns-100", NONE)]),
        ],
    )
    .at(0.0, EventKind::RunStarted)
    .start(0.0, "dns-10")
    .fail(1.0, "dns-10", "boom", false)
    .at(
        1.0,
        EventKind::UnwindStarted {
            cause: UnwindCause::StepFailed {
                step: StepId::new("dns-10"),
            },
        },
    )
    .at(1.0, finished(Outcome::Failed));
    let r = j.report();
    assert_eq!(r.outcome, Some(Outcome::Failed));
    assert_eq!(
        r.skipped[0].reason,
        "the run failed at step dns-10 before this step"
    );
    assert_eq!(r.errors.len(), 1);
    assert!(r
        .rto
        .reason
        .as_deref()
        .unwrap()
        .contains("dns-stage-100-apply"));
}

#[test]
fn a_policy_started_run_measures_rto_from_detection() {
    let j = takeover(Mode::Ungraceful)
        .detected(t(-120.0))
        .at(0.0, EventKind::RunStarted)
        .step(0.0, 1.0, "check-dns")
        .step(0.0, 1.0, "check-aurora")
        .step(1.0, 2.0, "cognito-sync")
        .step(1.0, 2.0, "scale-up")
        .step(2.0, 10.0, "promote")
        .step(10.0, 11.0, "dns-apply")
        .step(11.0, 30.0, "dns-sync")
        .step(30.0, 31.0, "record")
        .at(31.0, finished(Outcome::Succeeded));
    let r = j.report();
    assert_eq!(r.detected_at, Some(t(-120.0)));
    assert_eq!(r.rto.from, RtoStart::Detection);
    assert_eq!(r.rto.from_at, Some(t(-120.0)));
    assert_close(
        r.rto.seconds,
        150.0,
        "detection to the end of dns-stage-100-sync",
    );
    assert_close(r.total_duration_seconds, 31.0, "the run itself");
    // The promotion reported no data loss measurement.
    assert_eq!(r.rpo.seconds, None);
    assert!(r
        .rpo
        .reason
        .as_deref()
        .unwrap()
        .contains("estimated_data_loss_seconds"));
}

#[test]
fn an_approved_gate_counts_its_wait_in_the_phase_and_the_total() {
    let j = Journal::new(
        "selftest",
        Mode::Graceful,
        &[
            ("gate", Some("go?"), &[]),
            ("phase-1", Some("really?"), &[("s1", UNDO)]),
        ],
    )
    .at(0.0, EventKind::RunStarted)
    .at(
        0.0,
        EventKind::WaitingApproval {
            gate: "gate".into(),
        },
    )
    .at(
        30.0,
        EventKind::Approved {
            gate: "gate".into(),
            by: "carol".into(),
        },
    )
    .at(
        30.0,
        EventKind::WaitingApproval {
            gate: "phase-1".into(),
        },
    )
    .at(
        40.0,
        EventKind::Approved {
            gate: "phase-1".into(),
            by: "dave".into(),
        },
    )
    .step(40.0, 45.0, "s1")
    .at(45.0, finished(Outcome::Succeeded));
    let r = j.report();
    assert_close(Some(r.approval_wait_seconds), 40.0, "both gates");
    let gate = phase(&r, "gate");
    assert_eq!(gate.status, PhaseStatus::Completed);
    assert_close(
        gate.duration_seconds,
        30.0,
        "a gate-only phase lasts its wait",
    );
    let p1 = phase(&r, "phase-1");
    assert_close(p1.duration_seconds, 15.0, "wait + step");
    assert_eq!(
        p1.approval.as_ref().unwrap().approved_by.as_deref(),
        Some("dave")
    );
    assert_close(
        Some(r.critical_path.seconds),
        5.0,
        "approvals are not on the path",
    );
    // No DNS phase: no RTO, and the reason says why.
    assert_eq!(r.rto.seconds, None);
    assert!(r.rto.reason.as_deref().unwrap().contains("no DNS phase"));
}

#[test]
fn an_unfinished_run_gives_the_report_so_far() {
    let j = takeover(Mode::Graceful)
        .at(0.0, EventKind::RunStarted)
        .step(0.0, 2.0, "check-dns")
        .step(0.0, 5.0, "check-aurora")
        .start(5.0, "cognito-sync")
        .start(5.0, "scale-up")
        .fail(6.0, "scale-up", "timeout", true)
        .attempt(7.0, "scale-up", 2);
    let r = j.report();
    assert!(!r.is_final);
    assert_eq!(r.outcome, None);
    assert_eq!(r.status, RunStatus::Running);
    assert_eq!(r.total_duration_seconds, None);
    assert_eq!(phase(&r, "preflight").status, PhaseStatus::Completed);
    let prepare = phase(&r, "prepare");
    assert_eq!(prepare.status, PhaseStatus::Running);
    assert_eq!(prepare.finished_at, None);
    assert!(prepare.steps.iter().all(|s| s.duration_seconds.is_none()));
    assert_eq!(phase(&r, "aurora-promote").status, PhaseStatus::NotStarted);
    assert!(
        r.skipped.is_empty(),
        "nothing is 'not run' while the run goes on"
    );
    assert!(
        r.errors.is_empty(),
        "a step being retried has not failed for good"
    );
    assert!(r.rto.reason.as_deref().unwrap().contains("not_started"));
    assert_close(Some(r.critical_path.seconds), 5.0, "so far");
}

#[test]
fn a_dry_run_measures_nothing() {
    let j = takeover(Mode::Graceful)
        .dry_run()
        .at(0.0, EventKind::RunStarted);
    let mut j = [
        "check-dns",
        "check-aurora",
        "cognito-sync",
        "scale-up",
        "promote",
        "dns-apply",
        "dns-sync",
        "record",
    ]
    .iter()
    .fold(j, |j, step| {
        j.at(
            0.5,
            EventKind::StepDescribed {
                step: StepId::new(*step),
                description: crate::engine::StepDescription {
                    summary: "would".into(),
                    changes: vec![],
                },
            },
        )
    });
    j = j.at(1.0, finished(Outcome::Succeeded));
    let r = j.report();
    assert!(r.dry_run);
    assert!(r.phases.iter().all(|p| p.status == PhaseStatus::Described));
    assert_eq!(r.rto.seconds, None);
    assert!(r.rto.reason.as_deref().unwrap().contains("dry run"));
    assert!(r.rpo.reason.as_deref().unwrap().contains("dry run"));
    assert!(r.skipped.is_empty(), "described steps are not 'not run'");
}

#[test]
fn data_loss_measurement_names() {
    assert!(is_data_loss_measurement(
        "aurora.app.estimated_data_loss_seconds"
    ));
    assert!(is_data_loss_measurement(
        "aurora.a.b.estimated_data_loss_seconds"
    ));
    assert!(!is_data_loss_measurement(
        "aurora..estimated_data_loss_seconds"
    ));
    assert!(!is_data_loss_measurement("aurora.app.promote_seconds"));
    assert!(!is_data_loss_measurement(
        "rds.app.estimated_data_loss_seconds"
    ));
}

#[test]
fn the_json_shape_is_the_documented_one() {
    let j = takeover(Mode::Graceful).at(0.0, EventKind::RunStarted);
    let v = serde_json::to_value(j.report()).unwrap();
    assert_eq!(v["final"], false);
    assert_eq!(v["rto"]["from"], "run_start");
    assert_eq!(v["phases"][0]["status"], "not_started");
    // Every property the OpenAPI schema requires is present, and no other.
    let spec: Value = serde_json::from_str(crate::api::OPENAPI).unwrap();
    let schema = &spec["components"]["schemas"]["Report"];
    let mut required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut actual: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    required.sort_unstable();
    actual.sort_unstable();
    assert_eq!(required, actual);
    for (name, value) in [
        ("ReportRto", &v["rto"]),
        ("ReportRpo", &v["rpo"]),
        ("ReportCriticalPath", &v["critical_path"]),
        ("ReportPhase", &v["phases"][0]),
        ("ReportStep", &v["phases"][0]["steps"][0]),
    ] {
        let mut required: Vec<&str> = spec["components"]["schemas"][name]["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut actual: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        required.sort_unstable();
        actual.sort_unstable();
        assert_eq!(required, actual, "{name}");
    }
}

mod markdown_document {
    use super::*;

    #[test]
    fn a_finished_drill_reads_as_a_change_ticket_attachment() {
        let j = takeover(Mode::Graceful)
            .at(0.0, EventKind::RunStarted)
            .step(0.0, 2.0, "check-dns")
            .step(0.0, 5.0, "check-aurora")
            .step(5.0, 25.0, "cognito-sync")
            .start(5.0, "scale-up")
            .ok(
                15.0,
                "scale-up",
                json!({"skipped": true, "skipped_reason": "already\nscaled | up"}),
            )
            .start(25.0, "promote")
            .ok(55.0, "promote", data_loss(0.0))
            .step(55.0, 56.0, "dns-apply")
            .step(56.0, 86.0, "dns-sync")
            .step(86.0, 87.0, "record")
            .at(87.0, finished(Outcome::Succeeded));
        let md = markdown::render(&j.report());
        assert!(
            md.starts_with("# Run report: failover (drill) — succeeded\n"),
            "{md}"
        );
        for line in [
            "| Plan | failover |",
            "| Mode | graceful |",
            "| Drill | yes |",
            "| Requested by | alice |",
            // The pipe in the reason must not break the table.
            "| Reason | quarterly drill \\| CHG-42 |",
            "| Outcome | **succeeded** | |",
            "| Critical path | 1 min 27.0 s |",
        ] {
            assert!(md.contains(line), "missing {line:?} in:\n{md}");
        }
        assert!(md.contains("| RTO | 1 min 26.0 s | from run start (2024-05-01T10:00:00Z) to the end of the last DNS phase, dns-stage-100-sync (2024-05-01T10:01:26Z) |"), "{md}");
        assert!(md.contains("| RPO | 0.0 s | estimated data loss at promotion, the largest of aurora.app.estimated_data_loss_seconds = 0.0 s |"), "{md}");
        assert!(
            md.contains("| **prepare** | | completed | | 10:00:05 | 20.0 s |"),
            "{md}"
        );
        assert!(md.contains("| | step cognito-sync (`cognito-sync`) | succeeded | 1 | 10:00:05 | 20.0 s | critical path |"), "{md}");
        assert!(md.contains("| | step scale-up (`scale-up`) | succeeded (skipped) | 1 | 10:00:05 | 10.0 s | skipped: already scaled \\| up |"), "{md}");
        assert!(
            md.contains(
                "- `scale-up` (step scale-up, phase prepare) — skipped: already scaled | up"
            ),
            "{md}"
        );
        assert!(md.contains("No step failed."), "{md}");
        assert!(!md.contains("Not final"), "{md}");
        assert_tables_are_rectangular(&md);
    }

    #[test]
    fn unfinished_needs_operator_and_unmeasured_runs_say_so() {
        let running = takeover(Mode::Graceful)
            .at(0.0, EventKind::RunStarted)
            .start(0.0, "check-dns");
        let md = markdown::render(&running.report());
        assert!(md.contains("> **Not final**: the run is running"), "{md}");
        assert!(
            md.starts_with("# Run report: failover (drill) — running"),
            "{md}"
        );
        assert!(
            md.contains("| RTO | — | not measured: the DNS shift did not complete"),
            "{md}"
        );

        let stuck = takeover(Mode::Ungraceful)
            .at(0.0, EventKind::RunStarted)
            .at(
                1.0,
                EventKind::NeedsOperator {
                    message: "check the writer\nin us-west-2".into(),
                },
            );
        let md = markdown::render(&stuck.report());
        assert!(
            md.contains("## Operator action needed\n\n> check the writer\n> in us-west-2\n"),
            "{md}"
        );
        assert!(
            md.contains("| RPO | — | unknown: no step reported an estimated data loss"),
            "{md}"
        );
        assert!(
            md.contains("— not run: the run stopped for an operator"),
            "{md}"
        );
    }

    /// Every row of each table has as many cells as the table's header (escaped pipes are text).
    fn assert_tables_are_rectangular(md: &str) {
        let cells = |line: &str| line.replace("\\|", "").matches('|').count();
        let mut header: Option<usize> = None;
        for line in md.lines() {
            if !line.starts_with('|') {
                header = None;
                continue;
            }
            match header {
                None => header = Some(cells(line)),
                Some(n) => assert_eq!(cells(line), n, "row {line:?} in:\n{md}"),
            }
        }
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(markdown::seconds(0.04), "0.0 s");
        assert_eq!(markdown::seconds(4.24), "4.2 s");
        assert_eq!(markdown::seconds(4.26), "4.3 s");
        assert_eq!(markdown::seconds(59.96), "1 min 0.0 s");
        assert_eq!(markdown::seconds(119.96), "2 min 0.0 s");
        assert_eq!(markdown::seconds(125.0), "2 min 5.0 s");
        assert_eq!(markdown::seconds(3725.0), "1 h 2 min 5 s");
        assert_eq!(markdown::seconds(f64::NAN), "—");
    }
}
