//! Durable storage of runs: the record written at creation and the append-only journal.
//!
//! # Crash-recovery contract
//!
//! Every implementation of [`Store`] must guarantee:
//!
//! 1. **Durability before acknowledgement.** When `create` or `append` returns `Ok`, the data
//!    survives a crash of the process and of the machine (SQLite: WAL with `synchronous=FULL`).
//!    When they return `Err`, the write may or may not have happened (a lost acknowledgement):
//!    callers recover by reloading, never by assuming.
//! 2. **Compare-and-swap appends.** `append(run, expected_seq, …)` succeeds only if the journal
//!    currently ends at `expected_seq`; the new event gets `expected_seq + 1`. Journals are dense,
//!    1-based, and never reordered or truncated.
//! 3. **Fencing.** The store remembers the highest fencing token it has seen (via `fence`, `create`
//!    or `append`) and refuses writes carrying a lower one with [`StoreError::StaleFencingToken`], so
//!    a deposed leader cannot write even if it still believes it leads.
//! 4. **Atomic idempotency keys.** `create` with a key that is already mapped refuses, naming the run
//!    the key belongs to, so a repeated `POST /v1/runs` never creates a second run.
//!
//! The runner derives everything else (state, views) by folding journals through
//! [`crate::engine::apply`]; the store only indexes what listing needs (terminal outcome).

mod memory;
mod observed;
mod sqlite;

pub use memory::MemoryStore;
pub use observed::{is_fault, ObservedStore, StoreHealth};
pub use sqlite::{SqliteStore, WAL_SIZE_LIMIT};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::event::{Event, JournalEntry, Outcome, RunId, RunRecord};

/// Monotonic token of a leadership term; writes with an older token than the newest seen are
/// refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FencingToken(pub u64);

impl std::fmt::Display for FencingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// An idempotency key and a fingerprint of the request that used it first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyKey {
    pub key: String,
    pub fingerprint: String,
}

/// A stored run: its record and its whole journal.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRun {
    pub record: RunRecord,
    pub events: Vec<JournalEntry>,
}

/// What listing returns per run.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    pub record: RunRecord,
    pub last_seq: u64,
    /// `None` while the run is unfinished.
    pub outcome: Option<Outcome>,
    pub finished_at: Option<OffsetDateTime>,
}

/// Which runs to list. Results are newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub unfinished_only: bool,
    pub plan: Option<String>,
    pub limit: Option<usize>,
}

impl RunFilter {
    pub fn unfinished() -> Self {
        Self {
            unfinished_only: true,
            ..Self::default()
        }
    }

    pub fn matches(&self, s: &RunSummary) -> bool {
        (!self.unfinished_only || s.outcome.is_none())
            && self.plan.as_ref().is_none_or(|p| *p == s.record.plan)
    }
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("run {0} not found")]
    NotFound(RunId),
    #[error("run {0} already exists")]
    AlreadyExists(RunId),
    #[error("journal of run {run_id} is at seq {actual}, writer expected {expected}")]
    Conflict {
        run_id: RunId,
        expected: u64,
        actual: u64,
    },
    #[error("fencing token {presented} is stale: the store has seen {current}")]
    StaleFencingToken {
        presented: FencingToken,
        current: FencingToken,
    },
    #[error("idempotency key {key:?} already used by run {run_id}")]
    IdempotencyKeyTaken {
        key: String,
        run_id: RunId,
        same_request: bool,
    },
    #[error("store schema version {found} is newer than this failoverd supports ({supported}); upgrade failoverd")]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("store at {path} is corrupt or not a failoverd store: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("cannot open {path}: {detail}")]
    Open { path: String, detail: String },
    #[error("stored data could not be decoded: {0}")]
    Decode(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// Fixed label / error code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::NotFound(_) => "not_found",
            StoreError::AlreadyExists(_) => "already_exists",
            StoreError::Conflict { .. } => "conflict",
            StoreError::StaleFencingToken { .. } => "stale_fencing_token",
            StoreError::IdempotencyKeyTaken { .. } => "idempotency_key_taken",
            StoreError::SchemaTooNew { .. } => "schema_too_new",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Open { .. } => "open",
            StoreError::Decode(_) => "decode",
            StoreError::Sqlite(_) => "sqlite",
            StoreError::Unavailable(_) => "unavailable",
        }
    }
}

/// Durable run storage. See the module docs for the crash-recovery contract every implementation
/// must keep.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Record that `token` is the newest fencing token; refuse if a newer one was seen. A new leader
    /// calls this before anything else so the old leader is refused from then on.
    async fn fence(&self, token: FencingToken) -> Result<(), StoreError>;

    /// Store a new run with an empty journal (and map its idempotency key, if any, atomically).
    async fn create(
        &self,
        record: &RunRecord,
        token: FencingToken,
        idempotency: Option<&IdempotencyKey>,
    ) -> Result<(), StoreError>;

    /// Append `event` if the journal ends at `expected_seq`; returns the event's seq.
    async fn append(
        &self,
        run_id: RunId,
        expected_seq: u64,
        token: FencingToken,
        event: &Event,
    ) -> Result<u64, StoreError>;

    /// The run's record and whole journal.
    async fn load(&self, run_id: RunId) -> Result<StoredRun, StoreError>;

    /// Journal entries with `seq > after_seq` (resumable event streams).
    async fn events_after(
        &self,
        run_id: RunId,
        after_seq: u64,
    ) -> Result<Vec<JournalEntry>, StoreError>;

    /// Runs matching `filter`, newest first.
    async fn list(&self, filter: &RunFilter) -> Result<Vec<RunSummary>, StoreError>;

    /// The run an idempotency key maps to.
    async fn find_idempotency_key(
        &self,
        key: &str,
    ) -> Result<Option<(RunId, IdempotencyKey)>, StoreError>;
}
