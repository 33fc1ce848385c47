//! Leadership: only one failoverd may drive runs for a region pair, and a deposed one must be
//! refused by the store. A leader holds a [`LeaderLease`] whose fencing token is strictly greater
//! than every earlier leader's; the runner passes it on every write (see
//! [`crate::engine::Store`]'s fencing contract).
//!
//! [`LocalLeadership`] is the single-host implementation: an exclusive lock on
//! `<state_dir>/leader.lock` (released by the kernel when the process dies, so a `kill -9` never
//! leaves a stale lock) and an epoch counter in `<state_dir>/leader.epoch`, incremented and fsynced
//! at each acquisition. `crate::kube::lease` fills the same trait with a Kubernetes Lease: its
//! leases carry a [`Validity`], so the old holder stops acting before the lease can be taken over.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::store::FencingToken;
use crate::durable_file::write_atomically;

/// Errors acquiring leadership.
#[derive(Debug, thiserror::Error)]
pub enum LeadershipError {
    #[error("leadership state in {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("epoch file {path} is corrupt ({content:?}); remove it only after making sure no other failoverd uses this state directory")]
    CorruptEpoch { path: String, content: String },
    #[error("leadership task failed: {0}")]
    Task(String),
}

/// Proof of leadership: the fencing token, and whatever keeps the leadership held (dropping the
/// lease gives it up).
///
/// A lease that must be renewed (a Kubernetes Lease) also carries its [`Validity`]: the instant
/// until which this process may act, moved forward by each renewal, or [`Validity::Lost`]. From
/// that instant on [`LeaderLease::is_held`] is false and the runner writes nothing more, whether
/// or not the renewal task has noticed yet.
pub struct LeaderLease {
    token: FencingToken,
    validity: Option<tokio::sync::watch::Receiver<Validity>>,
    _hold: Box<dyn Send + Sync>,
}

/// How long a renewed lease may still be acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Validity {
    /// Held until this instant unless renewed.
    Until(tokio::time::Instant),
    /// Taken over by another holder, or not renewed in time.
    Lost,
}

impl std::fmt::Debug for LeaderLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderLease")
            .field("token", &self.token)
            .finish()
    }
}

impl LeaderLease {
    /// A lease held by `hold` (a lock guard…) for as long as it is kept.
    pub fn new(token: FencingToken, hold: Box<dyn Send + Sync>) -> Self {
        Self {
            token,
            validity: None,
            _hold: hold,
        }
    }

    /// A lease that is valid only while `validity` says so (its renewal task keeps it; a dropped
    /// sender counts as lost).
    pub fn renewed(
        token: FencingToken,
        hold: Box<dyn Send + Sync>,
        validity: tokio::sync::watch::Receiver<Validity>,
    ) -> Self {
        Self {
            token,
            validity: Some(validity),
            _hold: hold,
        }
    }

    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// Whether this process may still act as leader now.
    pub fn is_held(&self) -> bool {
        match &self.validity {
            None => true,
            Some(rx) => match *rx.borrow() {
                Validity::Until(at) => tokio::time::Instant::now() < at && rx.has_changed().is_ok(),
                Validity::Lost => false,
            },
        }
    }

    /// Resolves once the lease is no longer held; never, for a lease without expiry.
    pub fn expired(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let rx = self.validity.clone();
        async move {
            let Some(mut rx) = rx else {
                return std::future::pending().await;
            };
            loop {
                let validity = *rx.borrow_and_update();
                match validity {
                    Validity::Lost => return,
                    Validity::Until(at) => {
                        tokio::select! {
                            _ = tokio::time::sleep_until(at) => {
                                if *rx.borrow() == validity {
                                    return;
                                }
                            }
                            changed = rx.changed() => {
                                if changed.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A way to become the single active failoverd.
#[async_trait]
pub trait Leadership: Send + Sync + 'static {
    /// Try once to become leader: `Ok(None)` when someone else leads.
    async fn try_acquire(&self) -> Result<Option<LeaderLease>, LeadershipError>;

    /// Who holds leadership, in words, as this process last saw it (`/v1/status` shows it on a
    /// follower). `None`: nothing more to say than "another failoverd".
    fn describe_holder(&self) -> Option<String> {
        None
    }

    /// The URL of the leader's API, when another process leads and said where it answers (a
    /// follower forwards what only the leader serves there).
    fn leader_url(&self) -> Option<String> {
        None
    }

    /// Where this process's API answers, for the other replicas to forward to while it leads.
    fn advertise(&self, _url: &str) {}
}

/// Leadership through an exclusive file lock in the state directory.
#[derive(Clone, Debug)]
pub struct LocalLeadership {
    dir: PathBuf,
}

impl LocalLeadership {
    pub const LOCK_FILE: &'static str = "leader.lock";
    pub const EPOCH_FILE: &'static str = "leader.epoch";

    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: state_dir.into(),
        }
    }

    fn acquire_blocking(dir: &Path) -> Result<Option<LeaderLease>, LeadershipError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| LeadershipError::Io { path, source }
        };
        let lock_path = dir.join(Self::LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let epoch = Self::bump_epoch(dir)?;
        Ok(Some(LeaderLease::new(
            FencingToken(epoch),
            Box::new(HeldLock(lock)),
        )))
    }

    /// Read, increment and durably write the epoch ([`write_atomically`]: a temp file, fsync,
    /// rename, fsync the directory), so a crash never yields a reused or torn epoch.
    fn bump_epoch(dir: &Path) -> Result<u64, LeadershipError> {
        let path = dir.join(Self::EPOCH_FILE);
        let io = |p: &Path| {
            let p = p.display().to_string();
            move |source| LeadershipError::Io { path: p, source }
        };
        let previous = match std::fs::read_to_string(&path) {
            Ok(s) => s
                .trim()
                .parse::<u64>()
                .map_err(|_| LeadershipError::CorruptEpoch {
                    path: path.display().to_string(),
                    content: s.chars().take(64).collect(),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io(&path)(e)),
        };
        let next = previous.saturating_add(1);
        write_atomically(&path, format!("{next}\n").as_bytes()).map_err(io(&path))?;
        Ok(next)
    }
}

/// Keeps the lock file open (and so locked) for the lease's lifetime.
struct HeldLock(#[allow(dead_code)] File);

#[async_trait]
impl Leadership for LocalLeadership {
    async fn try_acquire(&self) -> Result<Option<LeaderLease>, LeadershipError> {
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || Self::acquire_blocking(&dir))
            .await
            .map_err(|e| LeadershipError::Task(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lock_is_exclusive_and_epoch_increases() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalLeadership::new(dir.path());
        let b = LocalLeadership::new(dir.path());
        let lease1 = a.try_acquire().await.unwrap().expect("first acquisition");
        assert_eq!(lease1.token(), FencingToken(1));
        assert!(b.try_acquire().await.unwrap().is_none(), "lock is held");
        drop(lease1);
        let lease2 = b.try_acquire().await.unwrap().expect("released on drop");
        assert_eq!(lease2.token(), FencingToken(2));
    }

    #[tokio::test]
    async fn corrupt_epoch_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LocalLeadership::EPOCH_FILE), "banana").unwrap();
        let err = LocalLeadership::new(dir.path())
            .try_acquire()
            .await
            .unwrap_err();
        assert!(matches!(err, LeadershipError::CorruptEpoch { .. }), "{err}");
    }
}
