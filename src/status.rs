//! What failoverd knows about its own components, for `/v1/status` and metrics.
//!
//! Every background component (an AWS poller, the run engine, a probe loop) reports here instead
//! of failing the process: the cold region's failoverd must keep running when the hot region's
//! APIs disappear, and say so. A component that cannot reach its API sets itself `unreachable`
//! with the error and keeps retrying.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use prometheus::{IntGaugeVec, Opts, Registry};
use serde::Serialize;
use time::OffsetDateTime;

/// The state of one component.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    /// Started, no result yet.
    Starting,
    /// Working normally.
    Ok,
    /// Working, with problems (e.g. some calls fail).
    Degraded,
    /// Cannot reach what it depends on; retrying.
    Unreachable,
    /// Stopped on purpose or after an error it cannot recover from.
    Stopped,
}

impl ComponentState {
    /// Every state, for the one-hot `failoverd_component_state{component,state}`.
    pub const ALL: [ComponentState; 5] = [
        ComponentState::Starting,
        ComponentState::Ok,
        ComponentState::Degraded,
        ComponentState::Unreachable,
        ComponentState::Stopped,
    ];

    /// The `state` label value (the same word `/v1/status` uses).
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentState::Starting => "starting",
            ComponentState::Ok => "ok",
            ComponentState::Degraded => "degraded",
            ComponentState::Unreachable => "unreachable",
            ComponentState::Stopped => "stopped",
        }
    }
}

/// One component's last report.
#[derive(Clone, Debug, Serialize)]
pub struct ComponentStatus {
    pub state: ComponentState,
    /// What is wrong, when something is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_ok: Option<OffsetDateTime>,
    /// Consecutive failed attempts.
    pub failures: u64,
}

/// Shared, cheap to clone; components write, the API reads.
#[derive(Clone)]
pub struct StatusBoard {
    inner: Arc<RwLock<BTreeMap<String, ComponentStatus>>>,
    up: IntGaugeVec,
    state: IntGaugeVec,
}

impl StatusBoard {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let up = IntGaugeVec::new(
            Opts::new(
                "failoverd_component_up",
                "1 when the component reports ok or degraded, 0 when it is starting, unreachable or stopped.",
            ),
            &["component"],
        )?;
        let state = IntGaugeVec::new(
            Opts::new(
                "failoverd_component_state",
                "1 for the component's current state (starting, ok, degraded, unreachable, stopped), 0 for the others.",
            ),
            &["component", "state"],
        )?;
        registry.register(Box::new(up.clone()))?;
        registry.register(Box::new(state.clone()))?;
        Ok(Self {
            inner: Arc::new(RwLock::new(BTreeMap::new())),
            up,
            state,
        })
    }

    /// Records a component's state; `error` says what is wrong when it is not ok.
    pub fn report(&self, component: &str, state: ComponentState, error: Option<String>) {
        let now = OffsetDateTime::now_utc();
        let mut map = match self.inner.write() {
            Ok(guard) => guard,
            // A writer panicked mid-update; the map itself is still consistent (each update is a
            // single insert), so keep serving it.
            Err(poisoned) => poisoned.into_inner(),
        };
        let previous = map.get(component).cloned();
        let ok = matches!(state, ComponentState::Ok | ComponentState::Degraded);
        let entry = ComponentStatus {
            state,
            error,
            since: match &previous {
                Some(p) if p.state == state => p.since,
                _ => now,
            },
            last_ok: if ok {
                Some(now)
            } else {
                previous.as_ref().and_then(|p| p.last_ok)
            },
            failures: match (&previous, ok) {
                (_, true) => 0,
                (Some(p), false) if state == ComponentState::Unreachable => p.failures + 1,
                (Some(p), false) => p.failures,
                (None, false) => u64::from(state == ComponentState::Unreachable),
            },
        };
        map.insert(component.to_owned(), entry);
        self.up.with_label_values(&[component]).set(i64::from(ok));
        for s in ComponentState::ALL {
            self.state
                .with_label_values(&[component, s.as_str()])
                .set(i64::from(s == state));
        }
    }

    /// A copy of every component's status.
    pub fn snapshot(&self) -> BTreeMap<String, ComponentStatus> {
        match self.inner.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_consecutive_failures_and_resets_on_success() {
        let board = StatusBoard::new(&Registry::new()).unwrap();
        board.report("aws", ComponentState::Starting, None);
        board.report("aws", ComponentState::Unreachable, Some("refused".into()));
        board.report("aws", ComponentState::Unreachable, Some("refused".into()));
        let s = board.snapshot()["aws"].clone();
        assert_eq!(s.failures, 2);
        assert_eq!(s.last_ok, None);
        board.report("aws", ComponentState::Ok, None);
        let s = board.snapshot()["aws"].clone();
        assert_eq!(s.failures, 0);
        assert!(s.last_ok.is_some());
        assert_eq!(board.up.with_label_values(&["aws"]).get(), 1);
    }

    #[test]
    fn exports_exactly_the_current_state() {
        let board = StatusBoard::new(&Registry::new()).unwrap();
        let current = |board: &StatusBoard| -> Vec<&'static str> {
            ComponentState::ALL
                .iter()
                .filter(|s| board.state.with_label_values(&["aws", s.as_str()]).get() == 1)
                .map(|s| s.as_str())
                .collect()
        };
        board.report("aws", ComponentState::Starting, None);
        assert_eq!(current(&board), ["starting"]);
        board.report("aws", ComponentState::Unreachable, Some("refused".into()));
        assert_eq!(current(&board), ["unreachable"]);
        assert_eq!(board.up.with_label_values(&["aws"]).get(), 0);
        board.report("aws", ComponentState::Degraded, Some("slow".into()));
        assert_eq!(current(&board), ["degraded"]);
        assert_eq!(board.up.with_label_values(&["aws"]).get(), 1);
        // The label values are the words /v1/status uses.
        for s in ComponentState::ALL {
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                serde_json::Value::from(s.as_str())
            );
        }
    }
}
