//! In-memory [`Store`]: the reference implementation of the contract, used by tests and the
//! deterministic simulation. "Durable" means: survives dropping the runner, as long as the store
//! value lives.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{FencingToken, IdempotencyKey, RunFilter, RunSummary, Store, StoreError, StoredRun};
use crate::engine::event::{Event, JournalEntry, RunId, RunRecord};

#[derive(Default)]
struct Inner {
    fence: u64,
    runs: HashMap<RunId, StoredRun>,
    /// Creation order, for newest-first listing.
    order: Vec<RunId>,
    idempotency: HashMap<String, (RunId, IdempotencyKey)>,
}

impl Inner {
    fn check_fence(&mut self, token: FencingToken) -> Result<(), StoreError> {
        if token.0 < self.fence {
            return Err(StoreError::StaleFencingToken {
                presented: token,
                current: FencingToken(self.fence),
            });
        }
        self.fence = token.0;
        Ok(())
    }
}

/// A [`Store`] held in process memory.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, StoreError> {
        self.inner
            .lock()
            .map_err(|_| StoreError::Unavailable("memory store lock poisoned".into()))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn fence(&self, token: FencingToken) -> Result<(), StoreError> {
        self.lock()?.check_fence(token)
    }

    async fn create(
        &self,
        record: &RunRecord,
        token: FencingToken,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock()?;
        inner.check_fence(token)?;
        if inner.runs.contains_key(&record.id) {
            return Err(StoreError::AlreadyExists(record.id));
        }
        if let Some(k) = idempotency {
            if let Some((run_id, existing)) = inner.idempotency.get(&k.key) {
                return Err(StoreError::IdempotencyKeyTaken {
                    key: k.key.clone(),
                    run_id: *run_id,
                    same_request: existing.fingerprint == k.fingerprint,
                });
            }
            inner
                .idempotency
                .insert(k.key.clone(), (record.id, k.clone()));
        }
        inner.runs.insert(
            record.id,
            StoredRun {
                record: record.clone(),
                events: Vec::new(),
            },
        );
        inner.order.push(record.id);
        Ok(())
    }

    async fn append(
        &self,
        run_id: RunId,
        expected_seq: u64,
        token: FencingToken,
        event: &Event,
    ) -> Result<u64, StoreError> {
        let mut inner = self.lock()?;
        inner.check_fence(token)?;
        let run = inner
            .runs
            .get_mut(&run_id)
            .ok_or(StoreError::NotFound(run_id))?;
        let actual = run.events.len() as u64;
        if actual != expected_seq {
            return Err(StoreError::Conflict {
                run_id,
                expected: expected_seq,
                actual,
            });
        }
        let seq = actual + 1;
        run.events.push(JournalEntry {
            seq,
            event: event.clone(),
        });
        Ok(seq)
    }

    async fn load(&self, run_id: RunId) -> Result<StoredRun, StoreError> {
        self.lock()?
            .runs
            .get(&run_id)
            .cloned()
            .ok_or(StoreError::NotFound(run_id))
    }

    async fn events_after(
        &self,
        run_id: RunId,
        after_seq: u64,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let inner = self.lock()?;
        let run = inner
            .runs
            .get(&run_id)
            .ok_or(StoreError::NotFound(run_id))?;
        Ok(run
            .events
            .iter()
            .filter(|e| e.seq > after_seq)
            .cloned()
            .collect())
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let inner = self.lock()?;
        let summaries = inner.order.iter().rev().filter_map(|id| {
            let run = inner.runs.get(id)?;
            let last = run.events.last();
            let outcome = last.and_then(|e| e.event.kind.terminal_outcome());
            Some(RunSummary {
                record: run.record.clone(),
                last_seq: run.events.len() as u64,
                outcome,
                finished_at: outcome.and(last.map(|e| e.event.at)),
            })
        });
        Ok(summaries
            .filter(|s| filter.matches(s))
            .take(filter.limit.unwrap_or(usize::MAX))
            .collect())
    }

    async fn find_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<(RunId, IdempotencyKey)>, StoreError> {
        Ok(self.lock()?.idempotency.get(key).cloned())
    }
}
