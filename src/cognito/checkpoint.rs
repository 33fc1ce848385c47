//! Where a sync pass records how far it got, so that a pass interrupted by a crash resumes at the
//! hot pool's next unprocessed page instead of starting over.
//!
//! Crash-recovery contract: [`CheckpointStore::save`] is called after every hot page whose writes
//! have all been applied (or reported), and it replaces the previous checkpoint atomically, so a
//! loaded checkpoint never names a page whose writes are unfinished. Writes made after the last
//! checkpoint are not redone either: the resumed pass re-reads the cold pool and diffs against it,
//! so a user created just before the crash is found and left alone. A pass that finishes clears
//! the checkpoint. A checkpoint for other pools (configuration changed) is ignored.

use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::durable_file::write_atomically;

/// File name under the state directory.
pub const CHECKPOINT_FILE: &str = "cognito-sync.json";

/// Progress of an unfinished pass.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub hot_pool: String,
    pub cold_pool: String,
    /// Token of the first hot page not yet processed (`None`: the pass had finished the users).
    pub next_hot_token: Option<String>,
    pub hot_pages_done: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("checkpoint {path}: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
}

/// Durable storage of the one checkpoint.
#[async_trait]
pub trait CheckpointStore: Send + Sync {
    async fn load(&self) -> Result<Option<Checkpoint>, CheckpointError>;
    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError>;
    async fn clear(&self) -> Result<(), CheckpointError>;
}

/// A JSON file, replaced atomically and durably ([`write_atomically`]: a temporary file, fsync,
/// rename, fsync of the directory).
#[derive(Clone, Debug)]
pub struct FileCheckpoint {
    path: PathBuf,
}

impl FileCheckpoint {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    fn io(&self, source: std::io::Error) -> CheckpointError {
        CheckpointError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }
}

#[async_trait]
impl CheckpointStore for FileCheckpoint {
    async fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        match tokio::fs::read(&self.path).await {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| CheckpointError::Json {
                        path: self.path.display().to_string(),
                        source,
                    })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io(e)),
        }
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let bytes = serde_json::to_vec(checkpoint).map_err(|source| CheckpointError::Json {
            path: self.path.display().to_string(),
            source,
        })?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await
            .map_err(|e| self.io(std::io::Error::other(e)))?
            .map_err(|e| self.io(e))
    }

    async fn clear(&self) -> Result<(), CheckpointError> {
        match tokio::fs::remove_file(&self.path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io(e)),
        }
    }
}

/// In memory (tests, tools that run one pass).
#[derive(Debug, Default)]
pub struct MemoryCheckpoint {
    slot: Mutex<Option<Checkpoint>>,
}

#[async_trait]
impl CheckpointStore for MemoryCheckpoint {
    async fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        Ok(self.slot.lock().map(|s| s.clone()).unwrap_or_default())
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        if let Ok(mut s) = self.slot.lock() {
            *s = Some(checkpoint.clone());
        }
        Ok(())
    }

    async fn clear(&self) -> Result<(), CheckpointError> {
        if let Ok(mut s) = self.slot.lock() {
            *s = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn file_checkpoint_round_trips_and_clears() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpoint::new(dir.path().join(CHECKPOINT_FILE));
        assert_eq!(store.load().await.unwrap(), None);
        let cp = Checkpoint {
            hot_pool: "h".into(),
            cold_pool: "c".into(),
            next_hot_token: Some("t".into()),
            hot_pages_done: 3,
        };
        store.save(&cp).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(cp));
        store.clear().await.unwrap();
        store.clear().await.unwrap();
        assert_eq!(store.load().await.unwrap(), None);
    }
}
