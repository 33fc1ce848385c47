//! The stop signal shared by the daemon's components.
//!
//! The binary owns the OS signals; the daemon turns the first one into this broadcast, and every
//! background component and long-lived response (event streams) holds a [`StopSignal`] and ends
//! when it fires.

use tokio::sync::watch;

/// Fires once, when shutdown begins. Cheap to clone.
#[derive(Clone)]
pub struct StopSignal {
    rx: watch::Receiver<bool>,
    /// For [`StopSignal::never`]: keeps the channel open so it never reads as closed.
    _keep_open: Option<std::sync::Arc<watch::Sender<bool>>>,
}

/// The sending side, held by whoever decides to stop.
pub struct StopTrigger(watch::Sender<bool>);

/// A connected trigger and signal.
pub fn stop_channel() -> (StopTrigger, StopSignal) {
    let (tx, rx) = watch::channel(false);
    (
        StopTrigger(tx),
        StopSignal {
            rx,
            _keep_open: None,
        },
    )
}

impl StopTrigger {
    /// Starts shutdown; every [`StopSignal`] resolves.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl StopSignal {
    /// Resolves once shutdown has begun (at once if it already has).
    pub async fn stopped(&mut self) {
        // An error means the trigger is gone, which also means stop.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    pub fn is_stopped(&self) -> bool {
        *self.rx.borrow()
    }

    /// A signal that never fires (for tests and tools that run components on their own).
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        Self {
            rx,
            _keep_open: Some(std::sync::Arc::new(tx)),
        }
    }
}
