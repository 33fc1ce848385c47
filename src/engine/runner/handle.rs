//! [`RunnerHandle`]: cloneable access to the runner for HTTP handlers and the trigger policy.
//! Writes and live state go through the actor as [`Command`]s with `oneshot` replies; reads of
//! runs the actor does not drive are answered from the store directly, so a follower still serves
//! them.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};

use super::events::{event_stream, RunEventStream};
use super::request::{RunError, RunRequest, RunnerStatus, StartError};
use crate::engine::event::{JournalEntry, RunId};
use crate::engine::state::{RunState, RunStatus};
use crate::engine::store::{RunFilter, Store, StoreError};
use crate::engine::updates::{EngineEvents, RunUpdate};
use crate::engine::view::{RunSummaryView, RunView};

/// What the handle asks of the actor; each carries its reply channel.
pub(super) enum Command {
    Start {
        req: RunRequest,
        reply: oneshot::Sender<Result<RunView, StartError>>,
    },
    Approve {
        id: RunId,
        by: String,
        reply: oneshot::Sender<Result<RunView, RunError>>,
    },
    Abort {
        id: RunId,
        by: String,
        reply: oneshot::Sender<Result<RunView, RunError>>,
    },
    LiveView {
        id: RunId,
        reply: oneshot::Sender<Option<RunView>>,
    },
    LiveStatuses {
        reply: oneshot::Sender<HashMap<RunId, RunStatus>>,
    },
    Subscribe {
        id: RunId,
        after_seq: u64,
        reply: oneshot::Sender<Option<(Vec<JournalEntry>, broadcast::Receiver<JournalEntry>)>>,
    },
    Status {
        reply: oneshot::Sender<RunnerStatus>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Cloneable access to the runner, for HTTP handlers (`Clone + Send + Sync`).
#[derive(Clone)]
pub struct RunnerHandle {
    tx: mpsc::Sender<Command>,
    store: Arc<dyn Store>,
    events: EngineEvents,
}

impl RunnerHandle {
    pub(super) fn new(
        tx: mpsc::Sender<Command>,
        store: Arc<dyn Store>,
        events: EngineEvents,
    ) -> Self {
        Self { tx, store, events }
    }

    /// Every change of a run's status, published after it is durable (see
    /// [`crate::engine::updates`]).
    pub fn updates(&self) -> tokio::sync::broadcast::Receiver<RunUpdate> {
        self.events.subscribe_runs()
    }

    /// Whether this process holds leadership, as it changes (`None` until the first attempt).
    pub fn leadership(&self) -> tokio::sync::watch::Receiver<Option<bool>> {
        self.events.subscribe_leader()
    }

    /// Queue a command; `false` when the actor has stopped.
    pub(super) async fn send(&self, cmd: Command) -> bool {
        self.tx.send(cmd).await.is_ok()
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).await.ok()?;
        rx.await.ok()
    }

    /// Start a run. For a dry run this returns once every step has been described (the view's steps
    /// carry their descriptions); otherwise it returns as soon as the run has started. A repeated
    /// request with the same idempotency key returns the run the key was first used for.
    pub async fn start(&self, req: RunRequest) -> Result<RunView, StartError> {
        self.ask(|reply| Command::Start { req, reply })
            .await
            .ok_or(StartError::Stopped)?
    }

    /// Approve the gate the run waits at.
    pub async fn approve(&self, id: RunId, by: impl Into<String>) -> Result<RunView, RunError> {
        let by = by.into();
        self.ask(|reply| Command::Approve { id, by, reply })
            .await
            .ok_or(RunError::Stopped)?
    }

    /// Abort the run: no further step starts; completed steps are compensated in reverse order.
    /// Aborting a run that is already aborting is a no-op.
    pub async fn abort(&self, id: RunId, by: impl Into<String>) -> Result<RunView, RunError> {
        let by = by.into();
        self.ask(|reply| Command::Abort { id, by, reply })
            .await
            .ok_or(RunError::Stopped)?
    }

    /// The run's view (live state if this runner drives it, else folded from the store).
    pub async fn get(&self, id: RunId) -> Result<RunView, RunError> {
        if let Some(Some(view)) = self.ask(|reply| Command::LiveView { id, reply }).await {
            return Ok(view);
        }
        let (state, journal) = load_state(self.store.as_ref(), id).await?;
        Ok(RunView::new(&state, &journal))
    }

    /// Runs, newest first.
    pub async fn list(&self, filter: RunFilter) -> Result<Vec<RunSummaryView>, RunError> {
        let live = self
            .ask(|reply| Command::LiveStatuses { reply })
            .await
            .unwrap_or_default();
        let mut out = Vec::new();
        for s in self.store.list(&filter).await? {
            let status = match (s.outcome, live.get(&s.record.id)) {
                (Some(o), _) => o.into(),
                (None, Some(status)) => *status,
                (None, None) => match load_state(self.store.as_ref(), s.record.id).await {
                    Ok((state, _)) => state.status,
                    Err(_) => RunStatus::Pending,
                },
            };
            out.push(RunSummaryView::new(&s.record, status, s.finished_at));
        }
        Ok(out)
    }

    /// The run's journal entries after `after_seq`, then live ones until the run ends (resumable:
    /// pass the last seq seen, e.g. from `Last-Event-ID`). On a follower, or while the run is
    /// being recovered, new entries are picked up from the store every second. The stream ends
    /// after the terminal event (at once if the run had already ended before `after_seq`).
    pub async fn subscribe(&self, id: RunId, after_seq: u64) -> Result<RunEventStream, RunError> {
        let live = self
            .ask(|reply| Command::Subscribe {
                id,
                after_seq,
                reply,
            })
            .await
            .flatten();
        let (backlog, rx, done) = match live {
            Some((backlog, rx)) => (backlog, Some(rx), false),
            None => {
                let all = self.store.events_after(id, 0).await.map_err(|e| match e {
                    StoreError::NotFound(id) => RunError::NotFound { id },
                    e => RunError::Store(e),
                })?;
                let finished = all
                    .last()
                    .is_some_and(|e| e.event.kind.terminal_outcome().is_some());
                let backlog: Vec<_> = all.into_iter().filter(|e| e.seq > after_seq).collect();
                let done = finished && backlog.is_empty();
                (backlog, None, done)
            }
        };
        Ok(event_stream(
            backlog,
            rx,
            after_seq,
            Arc::clone(&self.store),
            id,
            done,
        ))
    }

    /// Leadership and the active run.
    pub async fn status(&self) -> Result<RunnerStatus, RunError> {
        self.ask(|reply| Command::Status { reply })
            .await
            .ok_or(RunError::Stopped)
    }
}

/// Load a run and fold its journal.
pub(super) async fn load_state(
    store: &dyn Store,
    id: RunId,
) -> Result<(RunState, Vec<JournalEntry>), RunError> {
    let stored = store.load(id).await.map_err(|e| match e {
        StoreError::NotFound(id) => RunError::NotFound { id },
        e => RunError::Store(e),
    })?;
    let state = RunState::replay(
        Arc::new(stored.record),
        stored.events.iter().map(|e| &e.event),
    )
    .map_err(|source| RunError::CorruptJournal { id, source })?;
    Ok((state, stored.events))
}
