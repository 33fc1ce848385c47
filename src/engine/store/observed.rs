//! [`ObservedStore`]: any [`Store`], with its faults counted and remembered, so a journal that
//! cannot be written (a full volume, an I/O error, a damaged page) turns the engine `degraded` in
//! `/v1/status` and `failoverd_store_errors_total` rises (the `FailoverdJournalErrors` alert)
//! instead of only failing requests.
//!
//! A fault is an error of the storage itself ([`StoreError::Sqlite`], `Unavailable`, `Corrupt`,
//! `Decode`, `Open`); refusals the contract defines (a conflict, a stale fencing token, a taken
//! idempotency key, an unknown run) are answers, not faults. The next successful write — or read,
//! for a store that only failed reads — clears the fault.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;
use time::OffsetDateTime;

use super::{FencingToken, IdempotencyKey, RunFilter, RunSummary, Store, StoreError, StoredRun};
use crate::engine::event::{Event, JournalEntry, RunId, RunRecord};

/// The journal's health, for `/v1/status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreHealth {
    /// The last fault, while it lasts.
    pub error: Option<String>,
    /// The operation that failed (`append`, `list`…).
    pub operation: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub failing_since: Option<OffsetDateTime>,
    /// Faults since the start.
    pub errors_total: u64,
}

/// See the module docs.
pub struct ObservedStore {
    inner: Arc<dyn Store>,
    errors: IntCounterVec,
    health: Arc<Mutex<StoreHealth>>,
}

/// Whether `e` is a fault of the storage rather than an answer of the contract.
pub fn is_fault(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Sqlite(_)
            | StoreError::Unavailable(_)
            | StoreError::Corrupt { .. }
            | StoreError::Decode(_)
            | StoreError::Open { .. }
    )
}

impl ObservedStore {
    /// Wraps `inner` and registers `failoverd_store_errors_total{operation}` in `registry`.
    pub fn new(inner: Arc<dyn Store>, registry: &Registry) -> Result<Self, prometheus::Error> {
        let errors = IntCounterVec::new(
            Opts::new(
                "failoverd_store_errors_total",
                "Faults of the run journal (I/O errors, a full volume, damaged data), by operation.",
            ),
            &["operation"],
        )?;
        registry.register(Box::new(errors.clone()))?;
        Ok(Self {
            inner,
            errors,
            health: Arc::new(Mutex::new(StoreHealth::default())),
        })
    }

    /// A handle on the health, for the status reporter.
    pub fn health(&self) -> Arc<Mutex<StoreHealth>> {
        Arc::clone(&self.health)
    }

    fn note<T>(&self, operation: &str, result: Result<T, StoreError>) -> Result<T, StoreError> {
        let Ok(mut h) = self.health.lock() else {
            return result;
        };
        match &result {
            Err(e) if is_fault(e) => {
                self.errors.with_label_values(&[operation]).inc();
                h.errors_total += 1;
                if h.failing_since.is_none() {
                    h.failing_since = Some(OffsetDateTime::now_utc());
                    tracing::error!(operation, error = %e, "the run journal failed");
                }
                h.error = Some(e.to_string());
                h.operation = Some(operation.to_owned());
            }
            // Any answer from the store means it works again.
            _ => {
                if h.failing_since.take().is_some() {
                    tracing::info!(operation, "the run journal works again");
                }
                h.error = None;
                h.operation = None;
            }
        }
        drop(h);
        result
    }
}

#[async_trait]
impl Store for ObservedStore {
    async fn fence(&self, token: FencingToken) -> Result<(), StoreError> {
        let r = self.inner.fence(token).await;
        self.note("fence", r)
    }

    async fn create(
        &self,
        record: &RunRecord,
        token: FencingToken,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<(), StoreError> {
        let r = self.inner.create(record, token, idempotency).await;
        self.note("create", r)
    }

    async fn append(
        &self,
        run_id: RunId,
        expected_seq: u64,
        token: FencingToken,
        event: &Event,
    ) -> Result<u64, StoreError> {
        let r = self.inner.append(run_id, expected_seq, token, event).await;
        self.note("append", r)
    }

    async fn load(&self, run_id: RunId) -> Result<StoredRun, StoreError> {
        let r = self.inner.load(run_id).await;
        self.note("load", r)
    }

    async fn events_after(
        &self,
        run_id: RunId,
        after_seq: u64,
    ) -> Result<Vec<JournalEntry>, StoreError> {
        let r = self.inner.events_after(run_id, after_seq).await;
        self.note("events_after", r)
    }

    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError> {
        let r = self.inner.list(filter).await;
        self.note("list", r)
    }

    async fn find_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<(RunId, IdempotencyKey)>, StoreError> {
        let r = self.inner.find_idempotency_key(key).await;
        self.note("find_idempotency_key", r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::store::MemoryStore;

    #[tokio::test]
    async fn faults_are_counted_and_cleared_answers_are_not_faults() {
        let registry = Registry::new();
        let store = ObservedStore::new(Arc::new(MemoryStore::new()), &registry).unwrap();
        let health = store.health();
        // An unknown run is an answer, not a fault.
        assert!(store.load(RunId::new()).await.is_err());
        assert_eq!(*health.lock().unwrap(), StoreHealth::default());

        let fault: Result<(), StoreError> = Err(StoreError::Unavailable("disk full".into()));
        assert!(store.note("append", fault).is_err());
        let h = health.lock().unwrap().clone();
        assert_eq!(h.errors_total, 1);
        assert_eq!(h.operation.as_deref(), Some("append"));
        assert!(h.failing_since.is_some());
        assert!(h.error.unwrap().contains("disk full"));
        assert_eq!(
            store.errors.with_label_values(&["append"]).get(),
            1,
            "counted by operation"
        );

        store.list(&RunFilter::default()).await.unwrap();
        let h = health.lock().unwrap().clone();
        assert_eq!((h.error, h.failing_since), (None, None), "cleared");
        assert_eq!(h.errors_total, 1, "the total stays");
    }
}
