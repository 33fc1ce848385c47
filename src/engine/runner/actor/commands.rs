//! The actor's answers to the handle's commands: start a run (idempotency, one active run per
//! region pair, write-ahead creation), approve its gate, abort it, and views of live runs.

use std::sync::Arc;

use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::{Actor, LiveRun};
use crate::engine::decide::TaskKind;
use crate::engine::event::{EventKind, Reversibility, RunId, RunRecord, StepId};
use crate::engine::runner::handle::{load_state, Command};
use crate::engine::runner::request::{
    RetryingStep, RunError, RunRequest, RunnerStatus, StartError,
};
use crate::engine::state::{RunState, RunStatus};
use crate::engine::store::{IdempotencyKey, StoreError};
use crate::engine::view::RunView;

use super::reports::drive_error_to_run_error;

impl Actor {
    pub(super) async fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Start { req, reply } => self.on_start(req, reply).await,
            Command::Approve { id, by, reply } => {
                let r = self.on_approve(id, by).await;
                let _ = reply.send(r);
            }
            Command::Abort { id, by, reply } => {
                let r = self.on_abort(id, by).await;
                let _ = reply.send(r);
            }
            Command::LiveView { id, reply } => {
                let _ = reply.send(self.live.get(&id).map(LiveRun::view));
            }
            Command::LiveStatuses { reply } => {
                let _ = reply.send(
                    self.live
                        .iter()
                        .map(|(id, l)| (*id, l.state.status))
                        .collect(),
                );
            }
            Command::Subscribe {
                id,
                after_seq,
                reply,
            } => {
                let _ = reply.send(self.live.get(&id).map(|l| {
                    let backlog = l
                        .journal
                        .iter()
                        .filter(|e| e.seq > after_seq)
                        .cloned()
                        .collect();
                    (backlog, l.events.subscribe())
                }));
            }
            Command::Status { reply } => {
                let retrying = self.retrying();
                self.metrics.steps_retrying.set(retrying.len() as i64);
                let _ = reply.send(RunnerStatus {
                    region_pair: self.config.region_pair.clone(),
                    leader: self.token().is_some(),
                    fencing_token: self.token(),
                    active_run: self.active_run(),
                    retrying,
                });
            }
            Command::Shutdown { reply } => {
                // Handled in `run`; answer anyway if it ever arrives here.
                let _ = reply.send(());
            }
        }
    }

    /// Every step of a live run that waits to try again.
    fn retrying(&self) -> Vec<RetryingStep> {
        let mut out: Vec<RetryingStep> = self
            .live
            .values()
            .flat_map(|live| {
                let run = live.state.record.id;
                live.retrying().map(move |(step, retry)| RetryingStep {
                    run,
                    step: step.clone(),
                    retry,
                })
            })
            .collect();
        out.sort_by_key(|r| r.retry.next_attempt_at);
        out
    }

    pub(super) async fn view_of(&self, id: RunId) -> Result<RunView, RunError> {
        if let Some(live) = self.live.get(&id) {
            return Ok(live.view());
        }
        let (state, journal) = load_state(self.store.as_ref(), id).await?;
        Ok(RunView::new(&state, &journal))
    }

    async fn on_start(
        &mut self,
        mut req: RunRequest,
        reply: oneshot::Sender<Result<RunView, StartError>>,
    ) {
        match self.prepare_start(&mut req).await {
            Ok(Started::Existing(view)) => {
                let _ = reply.send(Ok(*view));
            }
            Ok(Started::New(id)) => {
                if req.dry_run {
                    if let Some(live) = self.live.get_mut(&id) {
                        live.dry_run_reply = Some(reply);
                    }
                    self.drive(id).await;
                } else {
                    self.drive(id).await;
                    let _ = reply.send(self.view_of(id).await.map_err(|e| match e {
                        RunError::Store(e) => StartError::Store(e),
                        other => StartError::Store(StoreError::Unavailable(other.to_string())),
                    }));
                }
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    async fn prepare_start(&mut self, req: &mut RunRequest) -> Result<Started, StartError> {
        let token = self.token().ok_or(StartError::NotLeader)?;
        if req.params.is_null() {
            req.params = Value::Object(Default::default());
        }
        let fingerprint = req.fingerprint();
        if let Some(key) = &req.idempotency_key {
            if let Some((run_id, existing)) = self.store.find_idempotency_key(key).await? {
                if existing.fingerprint != fingerprint {
                    return Err(StartError::IdempotencyKeyReused {
                        key: key.clone(),
                        run_id,
                    });
                }
                return self
                    .view_of(run_id)
                    .await
                    .map(|v| Started::Existing(Box::new(v)))
                    .map_err(|e| StartError::Store(StoreError::Unavailable(e.to_string())));
            }
        }
        let plan = self.plans.build(&req.plan, req.mode, &req.params)?;
        if !req.dry_run {
            if let Some(id) = self.active_run() {
                return Err(StartError::RunActive { id });
            }
        }
        let record = RunRecord {
            id: RunId::new(),
            plan: req.plan.clone(),
            mode: req.mode,
            dry_run: req.dry_run,
            drill: req.drill,
            reason: req.reason.clone(),
            params: req.params.clone(),
            requested_by: req.requested_by.clone(),
            region_pair: self.config.region_pair.clone(),
            created_at: OffsetDateTime::now_utc(),
            detected_at: req.detected_at,
            layout: plan.layout(),
        };
        let idempotency = req.idempotency_key.as_ref().map(|key| IdempotencyKey {
            key: key.clone(),
            fingerprint: fingerprint.clone(),
        });
        match self
            .store
            .create(&record, token, idempotency.as_ref())
            .await
        {
            Ok(()) => {}
            Err(StoreError::StaleFencingToken { .. }) => {
                self.depose().await;
                return Err(StartError::NotLeader);
            }
            Err(StoreError::IdempotencyKeyTaken {
                key,
                run_id,
                same_request,
            }) => {
                if !same_request {
                    return Err(StartError::IdempotencyKeyReused { key, run_id });
                }
                return self
                    .view_of(run_id)
                    .await
                    .map(|v| Started::Existing(Box::new(v)))
                    .map_err(|e| StartError::Store(StoreError::Unavailable(e.to_string())));
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(run = %record.id, plan = %record.plan, dry_run = record.dry_run, drill = record.drill, by = %record.requested_by, "run created");
        let id = record.id;
        let state = RunState::new(Arc::new(record));
        self.insert_live(state, Vec::new(), Some(plan), None);
        Ok(Started::New(id))
    }

    async fn on_approve(&mut self, id: RunId, by: String) -> Result<RunView, RunError> {
        if self.token().is_none() {
            return Err(RunError::NotLeader);
        }
        let Some(live) = self.live.get(&id) else {
            let (state, _) = load_state(self.store.as_ref(), id).await?;
            return Err(RunError::NotWaitingApproval {
                id,
                status: state.status,
            });
        };
        let (RunStatus::WaitingApproval, Some(gate)) =
            (live.state.status, live.state.waiting_gate.clone())
        else {
            return Err(RunError::NotWaitingApproval {
                id,
                status: live.state.status,
            });
        };
        tracing::info!(run = %id, %gate, %by, "gate approved");
        if let Err(e) = self.append(id, EventKind::Approved { gate, by }).await {
            let err = drive_error_to_run_error(id, &e);
            self.on_drive_error(id, e).await;
            return Err(err);
        }
        self.drive(id).await;
        self.view_of(id).await
    }

    async fn on_abort(&mut self, id: RunId, by: String) -> Result<RunView, RunError> {
        if self.token().is_none() {
            return Err(RunError::NotLeader);
        }
        let Some(live) = self.live.get(&id) else {
            let (state, _) = load_state(self.store.as_ref(), id).await?;
            if state.status.is_terminal() {
                return Err(RunError::AlreadyFinished {
                    id,
                    status: state.status,
                });
            }
            return Err(RunError::NotDriven { id });
        };
        if live.state.abort_requested_by.is_some()
            || live.state.status == RunStatus::Unwinding
            || live.state.record.dry_run
        {
            return Ok(live.view());
        }
        tracing::info!(run = %id, %by, "abort requested");
        if let Err(e) = self.append(id, EventKind::AbortRequested { by }).await {
            let err = drive_error_to_run_error(id, &e);
            self.on_drive_error(id, e).await;
            return Err(err);
        }
        if let Some(live) = self.live.get(&id) {
            live.abort.send_replace(true);
        }
        if let Err(e) = self.interrupt_waits(id).await {
            let err = drive_error_to_run_error(id, &e);
            self.on_drive_error(id, e).await;
            return Err(err);
        }
        self.drive(id).await;
        self.view_of(id).await
    }

    /// An abort does not wait for the steps that only observe or wait (a DNS hold, a poll for a
    /// writer or a change, a preflight check): their tasks are stopped at once and recorded as
    /// interrupted — they had no effect to undo — so the unwind starts now instead of when the
    /// wait would have ended. A step with a side effect in flight finishes (or times out) first.
    async fn interrupt_waits(&mut self, id: RunId) -> Result<(), super::DriveError> {
        let Some(live) = self.live.get(&id) else {
            return Ok(());
        };
        let waits: Vec<(StepId, u32)> = live
            .busy
            .iter()
            .filter(|(step, (kind, _))| {
                *kind == TaskKind::Execute
                    && live
                        .step(step)
                        .is_some_and(|s| s.reversibility() == Reversibility::NoSideEffect)
            })
            .filter_map(|(step, _)| Some((step.clone(), live.state.steps.get(step)?.attempt)))
            .collect();
        for (step, attempt) in waits {
            if let Some(live) = self.live.get_mut(&id) {
                if let Some((_, handle)) = live.busy.remove(&step) {
                    handle.abort();
                }
            }
            tracing::info!(run = %id, %step, "abort: the wait is interrupted");
            self.append(id, EventKind::StepInterrupted { step, attempt })
                .await?;
        }
        Ok(())
    }
}

enum Started {
    Existing(Box<RunView>),
    New(RunId),
}
