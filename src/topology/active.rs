//! The active region: the region failoverd has recorded as receiving the traffic.
//!
//! It starts as the configured hot region and becomes the target of each completed plan that
//! moves traffic (see [`super::recorder`]). It is recorded durably in `<state.dir>/active-region`
//! with [`write_atomically`], so a crash leaves either the old or the new region, never a torn
//! file. At start:
//! - no file means nothing has moved yet: the configured hot region is active;
//! - a file naming a region of the pair is the active region;
//! - anything else (an I/O error, a region outside the pair, an empty file) **stops the start**
//!   with a message naming the file. Guessing "hot" there would, after a failover, resume the
//!   Cognito copy over the pool now in use and point the policy at the region already lost.

use std::path::{Path, PathBuf};

use time::OffsetDateTime;
use tokio::sync::watch;

use super::pair::RegionPair;
use crate::durable_file::write_atomically;
use crate::shutdown::StopSignal;

/// The file in the state directory that records the active region.
pub const ACTIVE_REGION_FILE: &str = "active-region";

/// Why the recorded active region cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ActiveRegionError {
    #[error("cannot read the recorded active region {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the recorded active region {path} names {found:?}, which is not a region of the pair \
         ({either}); if the pair was changed on purpose, write the region that receives the \
         traffic into that file (or remove it when that is the hot region)"
    )]
    NotInPair {
        path: String,
        found: String,
        either: String,
    },
    #[error("cannot record the active region in {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// What is known about the active region right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveState {
    pub active: String,
    pub standby: String,
    /// When the last completed traffic move finished (`None` when none is known). The policy's
    /// cooldown counts from it.
    pub moved_at: Option<OffsetDateTime>,
}

/// The durable record and its writer. One per daemon; [`ActiveRegion`] views are handed out.
pub struct ActiveRegionRecord {
    path: PathBuf,
    pair: RegionPair,
    tx: watch::Sender<ActiveState>,
}

impl ActiveRegionRecord {
    /// Reads `<state_dir>/active-region` (see the module documentation for what is refused).
    pub fn open(state_dir: &Path, pair: RegionPair) -> Result<Self, ActiveRegionError> {
        let path = state_dir.join(ACTIVE_REGION_FILE);
        let active = read_record(&path, &pair)?.unwrap_or_else(|| pair.hot().to_owned());
        let standby = pair.other(&active).unwrap_or(pair.cold()).to_owned();
        let (tx, _) = watch::channel(ActiveState {
            active,
            standby,
            moved_at: None,
        });
        Ok(Self { path, pair, tx })
    }

    pub fn pair(&self) -> &RegionPair {
        &self.pair
    }

    /// The region recorded as active now.
    pub fn active(&self) -> String {
        self.tx.borrow().active.clone()
    }

    /// A cheap, cloneable view that follows every change.
    pub fn view(&self) -> ActiveRegion {
        ActiveRegion {
            rx: self.tx.subscribe(),
        }
    }

    /// Records `region` (one of the pair) as active after a traffic move that finished at
    /// `moved_at`: durably first, then published. When the write fails nothing is published, so
    /// the caller can retry and no component acts on a region the record does not hold.
    pub fn record(
        &self,
        region: &str,
        moved_at: Option<OffsetDateTime>,
    ) -> Result<(), ActiveRegionError> {
        let Some(standby) = self.pair.other(region) else {
            return Err(ActiveRegionError::NotInPair {
                path: self.path.display().to_string(),
                found: region.to_owned(),
                either: self.pair.either(),
            });
        };
        write_atomically(&self.path, format!("{region}\n").as_bytes()).map_err(|source| {
            ActiveRegionError::Write {
                path: self.path.display().to_string(),
                source,
            }
        })?;
        let next = ActiveState {
            active: region.to_owned(),
            standby: standby.to_owned(),
            moved_at,
        };
        self.tx.send_if_modified(|current| {
            let changed = *current != next;
            *current = next;
            changed
        });
        Ok(())
    }
}

/// The active region as the rest of the daemon sees it.
#[derive(Clone)]
pub struct ActiveRegion {
    rx: watch::Receiver<ActiveState>,
}

impl ActiveRegion {
    /// (active, standby).
    pub fn get(&self) -> (String, String) {
        let s = self.rx.borrow();
        (s.active.clone(), s.standby.clone())
    }

    /// The whole current state.
    pub fn state(&self) -> ActiveState {
        self.rx.borrow().clone()
    }

    /// A receiver to wait on changes with.
    pub fn subscribe(&self) -> watch::Receiver<ActiveState> {
        self.rx.clone()
    }

    /// Calls `on_change` with the current state now and after every change, until `stop` fires
    /// or the record is dropped. What the components that follow the active region run.
    pub async fn follow(self, mut stop: StopSignal, mut on_change: impl FnMut(&ActiveState)) {
        let mut rx = self.rx;
        loop {
            let state = rx.borrow_and_update().clone();
            on_change(&state);
            tokio::select! {
                () = stop.stopped() => return,
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }
}

fn read_record(path: &Path, pair: &RegionPair) -> Result<Option<String>, ActiveRegionError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ActiveRegionError::Read {
                path: path.display().to_string(),
                source,
            })
        }
    };
    let region = text.trim();
    if pair.contains(region) {
        Ok(Some(region.to_owned()))
    } else {
        Err(ActiveRegionError::NotInPair {
            path: path.display().to_string(),
            found: region.to_owned(),
            either: pair.either(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> RegionPair {
        RegionPair::new("us-east-1", "us-west-2")
    }

    #[test]
    fn a_missing_record_means_the_hot_region() {
        let dir = tempfile::tempdir().unwrap();
        let record = ActiveRegionRecord::open(dir.path(), pair()).unwrap();
        assert_eq!(
            record.view().get(),
            ("us-east-1".to_owned(), "us-west-2".to_owned())
        );
    }

    #[test]
    fn a_recorded_region_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let record = ActiveRegionRecord::open(dir.path(), pair()).unwrap();
        let view = record.view();
        record.record("us-west-2", None).unwrap();
        assert_eq!(view.get().0, "us-west-2", "views follow the record");
        drop(record);
        let again = ActiveRegionRecord::open(dir.path(), pair()).unwrap();
        assert_eq!(
            again.view().get(),
            ("us-west-2".to_owned(), "us-east-1".to_owned())
        );
        assert!(!dir.path().join("active-region.tmp").exists());
    }

    #[test]
    fn an_unreadable_record_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: reading it fails with an error other than
        // NotFound, as an I/O error would.
        std::fs::create_dir(dir.path().join(ACTIVE_REGION_FILE)).unwrap();
        let err = ActiveRegionRecord::open(dir.path(), pair())
            .err()
            .expect("an unreadable record is refused");
        assert!(matches!(err, ActiveRegionError::Read { .. }), "{err}");
        assert!(err.to_string().contains("active-region"), "{err}");
    }

    #[test]
    fn a_record_outside_the_pair_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        for content in ["eu-west-1\n", "", "\n"] {
            std::fs::write(dir.path().join(ACTIVE_REGION_FILE), content).unwrap();
            let err = ActiveRegionRecord::open(dir.path(), pair())
                .err()
                .expect("a region outside the pair is refused");
            let text = err.to_string();
            assert!(text.contains("us-east-1 or us-west-2"), "{text}");
        }
    }

    #[test]
    fn recording_a_region_outside_the_pair_is_refused_and_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let record = ActiveRegionRecord::open(dir.path(), pair()).unwrap();
        assert!(record.record("eu-west-1", None).is_err());
        assert_eq!(record.view().get().0, "us-east-1");
        assert!(!dir.path().join(ACTIVE_REGION_FILE).exists());
    }

    #[test]
    fn a_failed_write_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let record = ActiveRegionRecord::open(dir.path(), pair()).unwrap();
        // The temporary file's place is taken by a directory: the write fails.
        std::fs::create_dir(dir.path().join("active-region.tmp")).unwrap();
        let err = record.record("us-west-2", None).unwrap_err();
        assert!(matches!(err, ActiveRegionError::Write { .. }), "{err}");
        assert_eq!(record.view().get().0, "us-east-1");
    }
}
