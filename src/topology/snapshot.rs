//! [`TopologySnapshot`]: the last observation of every component, the recorded active region it
//! was compared with, and the drift found — what `/v1/status` shows and the failover plan's
//! preflight reads.

use serde::Serialize;
use time::OffsetDateTime;

use super::drift::{summary, Drift};
use super::observation::Observation;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TopologySnapshot {
    /// The recorded active region the observations were compared with.
    pub active: String,
    pub standby: String,
    /// One per component, in a fixed order (DNS, each Aurora global database, Cognito).
    pub observations: Vec<Observation>,
    pub drift: Vec<Drift>,
    /// When the reads started (`None` before the first observation).
    #[serde(with = "time::serde::rfc3339::option")]
    pub observed_at: Option<OffsetDateTime>,
}

impl TopologySnapshot {
    /// Nothing observed yet.
    pub fn empty(active: String, standby: String) -> Self {
        Self {
            active,
            standby,
            observations: Vec::new(),
            drift: Vec::new(),
            observed_at: None,
        }
    }

    /// The drift's sentences in one line (`None`: no drift), as the failover policy takes it.
    pub fn drift_summary(&self) -> Option<String> {
        summary(&self.drift)
    }

    /// Whether `component` drifts.
    pub fn drifts(&self, component: &str) -> bool {
        self.drift.iter().any(|d| d.component == component)
    }
}
