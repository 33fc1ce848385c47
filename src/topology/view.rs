//! [`TopologyView`]: reads every component of the world with a bounded timeout, compares the
//! readings with the recorded active region, and publishes the result on a watch channel.
//!
//! Observing runs in the background every `topology.observe_interval` and again whenever the
//! recorded active region changes (a completed failover must not be shown as drift for a whole
//! interval); [`TopologyView::observe_now`] does a fresh read for a caller that cannot use a
//! reading up to one interval old (the failover plan's preflight).
//!
//! Every read is bounded by `topology.read_timeout` and the components are read concurrently, so
//! one pass takes at most that long whatever the world does; a read that fails or times out is an
//! [`Says::Unknown`] observation, never an error of the observer.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use super::active::ActiveRegion;
use super::drift::drift;
use super::observation::{Observation, ObservedComponent, Says};
use super::snapshot::TopologySnapshot;
use crate::shutdown::StopSignal;

struct Inner {
    active: ActiveRegion,
    components: Vec<Arc<dyn ObservedComponent>>,
    read_timeout: Duration,
    tx: watch::Sender<TopologySnapshot>,
}

/// The observed topology. Cheap to clone; every clone shares the same latest snapshot.
#[derive(Clone)]
pub struct TopologyView {
    inner: Arc<Inner>,
}

impl TopologyView {
    /// A view of `components` (in the order they are shown) compared with `active`, each read
    /// bounded by `read_timeout`. Nothing is read until [`TopologyView::observe_now`] or
    /// [`TopologyView::observe_every`].
    pub fn new(
        active: ActiveRegion,
        components: Vec<Arc<dyn ObservedComponent>>,
        read_timeout: Duration,
    ) -> Self {
        let (a, s) = active.get();
        let (tx, _) = watch::channel(TopologySnapshot::empty(a, s));
        Self {
            inner: Arc::new(Inner {
                active,
                components,
                read_timeout,
                tx,
            }),
        }
    }

    /// The latest snapshot (empty before the first observation).
    pub fn snapshot(&self) -> TopologySnapshot {
        self.inner.tx.borrow().clone()
    }

    /// A receiver that sees every new snapshot.
    pub fn subscribe(&self) -> watch::Receiver<TopologySnapshot> {
        self.inner.tx.subscribe()
    }

    /// Reads every component now (concurrently, each within the read timeout), compares with the
    /// recorded active region, stores the result as the latest (unless a pass that started later
    /// has already stored its own) and returns it.
    pub async fn observe_now(&self) -> TopologySnapshot {
        let started = OffsetDateTime::now_utc();
        let timeout = self.inner.read_timeout;
        let reads = self.inner.components.iter().map(|c| async move {
            let component = c.component();
            let result = tokio::time::timeout(timeout, c.read()).await;
            let (says, detail) = match result {
                Ok(Ok(reading)) => (reading.says, reading.detail),
                Ok(Err(error)) => (Says::Unknown(error), String::new()),
                Err(_) => (
                    Says::Unknown(format!(
                        "no answer within {} (topology.read_timeout)",
                        humantime::format_duration(timeout)
                    )),
                    String::new(),
                ),
            };
            if let Says::Unknown(why) = &says {
                tracing::debug!(component, why, "topology component could not be read");
            }
            Observation {
                component,
                says,
                detail,
                observed_at: OffsetDateTime::now_utc(),
            }
        });
        let observations = futures::future::join_all(reads).await;
        // Compared with the region recorded once the reads are done: a move recorded meanwhile
        // is what the readings should agree with.
        let (active, standby) = self.inner.active.get();
        let snapshot = TopologySnapshot {
            drift: drift(&active, &observations),
            active,
            standby,
            observations,
            observed_at: Some(started),
        };
        self.inner.tx.send_if_modified(|current| {
            let newer = current.observed_at.is_none_or(|at| at <= started);
            if newer {
                *current = snapshot.clone();
            }
            newer
        });
        snapshot
    }

    /// Observes every `interval` and whenever the recorded active region changes, until `stop`.
    pub async fn observe_every(self, interval: Duration, mut stop: StopSignal) {
        let mut active = self.inner.active.subscribe();
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drifting: Vec<String> = Vec::new();
        loop {
            tokio::select! {
                biased;
                () = stop.stopped() => return,
                _ = ticks.tick() => {}
                changed = active.changed() => if changed.is_err() { return },
            }
            active.borrow_and_update();
            tokio::select! {
                biased;
                () = stop.stopped() => return,
                snapshot = self.observe_now() => log_drift_changes(&snapshot, &mut drifting),
            }
        }
    }

    /// Calls `on_change` with the latest snapshot now and after every new one, until `stop`.
    pub async fn follow(self, mut stop: StopSignal, mut on_change: impl FnMut(&TopologySnapshot)) {
        let mut rx = self.subscribe();
        loop {
            let snapshot = rx.borrow_and_update().clone();
            on_change(&snapshot);
            tokio::select! {
                () = stop.stopped() => return,
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }
}

/// Logs drift when it appears and when it clears, not at every pass while it lasts.
fn log_drift_changes(snapshot: &TopologySnapshot, drifting: &mut Vec<String>) {
    for d in &snapshot.drift {
        if !drifting.contains(&d.component) {
            tracing::warn!(component = %d.component, "topology drift: {}", d.message);
        }
    }
    for component in drifting.iter() {
        if !snapshot.drifts(component) {
            tracing::info!(component = %component, "topology drift cleared");
        }
    }
    *drifting = snapshot.drift.iter().map(|d| d.component.clone()).collect();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shutdown::stop_channel;
    use crate::topology::{
        ActiveRegionRecord, Reading, RegionPair, COMPONENT_COGNITO, COMPONENT_DNS,
    };
    use async_trait::async_trait;
    use std::sync::Mutex;

    /// A component that answers what it is told (or hangs, or fails).
    struct Scripted {
        name: &'static str,
        answer: Mutex<Option<Result<Says, String>>>,
    }

    impl Scripted {
        fn new(name: &'static str, answer: Option<Result<Says, String>>) -> Arc<Self> {
            Arc::new(Self {
                name,
                answer: Mutex::new(answer),
            })
        }

        fn set(&self, answer: Option<Result<Says, String>>) {
            *self.answer.lock().unwrap() = answer;
        }
    }

    #[async_trait]
    impl ObservedComponent for Scripted {
        fn component(&self) -> String {
            self.name.to_owned()
        }

        async fn read(&self) -> Result<Reading, String> {
            let answer = self.answer.lock().unwrap().clone();
            match answer {
                None => std::future::pending().await,
                Some(result) => result.map(|says| Reading {
                    says,
                    detail: "scripted".into(),
                }),
            }
        }
    }

    fn region(r: &str) -> Option<Result<Says, String>> {
        Some(Ok(Says::Region(r.to_owned())))
    }

    fn record() -> (tempfile::TempDir, ActiveRegionRecord) {
        let dir = tempfile::tempdir().unwrap();
        let record =
            ActiveRegionRecord::open(dir.path(), RegionPair::new("us-east-1", "us-west-2"))
                .unwrap();
        (dir, record)
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_or_failing_read_is_unknown_and_the_others_are_still_read() {
        let (_dir, record) = record();
        let dns = Scripted::new(COMPONENT_DNS, None);
        let aurora = Scripted::new("aurora:g", Some(Err("RDS said no".into())));
        let cognito = Scripted::new(COMPONENT_COGNITO, region("us-west-2"));
        let view = TopologyView::new(
            record.view(),
            vec![dns, aurora, cognito],
            Duration::from_secs(10),
        );
        assert_eq!(view.snapshot().observed_at, None, "nothing read yet");
        let snapshot = view.observe_now().await;
        let says: Vec<&Says> = snapshot.observations.iter().map(|o| &o.says).collect();
        assert_eq!(
            says,
            [
                &Says::Unknown("no answer within 10s (topology.read_timeout)".into()),
                &Says::Unknown("RDS said no".into()),
                &Says::Region("us-west-2".into()),
            ]
        );
        // Only the component that says another region drifts.
        let drifting: Vec<&str> = snapshot
            .drift
            .iter()
            .map(|d| d.component.as_str())
            .collect();
        assert_eq!(drifting, [COMPONENT_COGNITO]);
        assert_eq!(view.snapshot(), snapshot, "stored as the latest");
        assert!(snapshot.drift_summary().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_recorded_move_is_observed_again_at_once() {
        let (_dir, record) = record();
        let dns = Scripted::new(COMPONENT_DNS, region("us-east-1"));
        let view = TopologyView::new(record.view(), vec![dns.clone()], Duration::from_secs(1));
        let (trigger, stop) = stop_channel();
        let task = tokio::spawn(view.clone().observe_every(Duration::from_secs(3600), stop));
        let mut rx = view.subscribe();
        let first = rx
            .wait_for(|s| s.observed_at.is_some())
            .await
            .unwrap()
            .clone();
        assert_eq!(first.drift, []);

        // Traffic moved and the move is recorded: well before the next interval, the view
        // compares with the new active region.
        let before = tokio::time::Instant::now();
        dns.set(region("us-west-2"));
        record.record("us-west-2", None).unwrap();
        let after = rx
            .wait_for(|s| s.active == "us-west-2")
            .await
            .unwrap()
            .clone();
        assert!(
            before.elapsed() < Duration::from_secs(3600),
            "observed again by the change, not by the next tick (paused clock)"
        );
        assert_eq!(after.drift, []);
        assert_eq!(after.observations[0].says, Says::Region("us-west-2".into()));
        trigger.stop();
        task.await.unwrap();
    }
}
