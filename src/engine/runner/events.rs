//! The stream of a run's journal entries behind `GET /v1/runs/{id}/events`: the backlog after
//! the caller's last seen seq, then live entries broadcast by the actor, falling back to polling
//! the store when the broadcast lags or this runner does not drive the run. It ends after the
//! run's terminal event.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use tokio::sync::broadcast;

use super::request::RunError;
use crate::engine::event::{JournalEntry, RunId};
use crate::engine::store::Store;

/// How often an event stream for a run this runner does not drive (a follower's) polls the store.
const STREAM_POLL: Duration = Duration::from_secs(1);

/// Events buffered per run for subscribers. A run has at most a few hundred events; a subscriber
/// that falls further behind catches up from the store.
pub(super) const EVENT_BUFFER: usize = 256;

/// A stream of journal entries (for server-sent events); ends after the run's terminal event.
pub type RunEventStream = BoxStream<'static, Result<JournalEntry, RunError>>;

/// The stream over `backlog` (entries after `after_seq`), then `rx` (or the store when `rx` is
/// `None`); `done` when the run had already ended before `after_seq`.
pub(super) fn event_stream(
    backlog: Vec<JournalEntry>,
    rx: Option<broadcast::Receiver<JournalEntry>>,
    after_seq: u64,
    store: Arc<dyn Store>,
    run_id: RunId,
    done: bool,
) -> RunEventStream {
    let st = EventStreamState {
        backlog: backlog.into(),
        rx,
        last_seq: after_seq,
        store,
        run_id,
        done,
    };
    Box::pin(futures::stream::unfold(st, next_stream_item))
}

struct EventStreamState {
    backlog: VecDeque<JournalEntry>,
    rx: Option<broadcast::Receiver<JournalEntry>>,
    last_seq: u64,
    store: Arc<dyn Store>,
    run_id: RunId,
    done: bool,
}

async fn next_stream_item(
    mut st: EventStreamState,
) -> Option<(Result<JournalEntry, RunError>, EventStreamState)> {
    loop {
        if st.done {
            return None;
        }
        if let Some(e) = st.backlog.pop_front() {
            if e.seq <= st.last_seq {
                continue;
            }
            st.last_seq = e.seq;
            st.done = e.event.kind.terminal_outcome().is_some();
            return Some((Ok(e), st));
        }
        match st.rx.as_mut() {
            Some(rx) => match rx.recv().await {
                Ok(e) => {
                    st.backlog.push_back(e);
                    continue;
                }
                // Fell behind: catch up from the store (every event is durable before it is
                // broadcast).
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                // This runner stopped driving the run (finished, deposed, recovering): follow
                // the store from here.
                Err(broadcast::error::RecvError::Closed) => st.rx = None,
            },
            // Not driven by this runner (a follower, or recovery is pending): poll the store.
            None => tokio::time::sleep(STREAM_POLL).await,
        }
        match st.store.events_after(st.run_id, st.last_seq).await {
            Ok(v) => st.backlog.extend(v),
            Err(e) => {
                st.done = true;
                return Some((Err(RunError::Store(e)), st));
            }
        }
    }
}
