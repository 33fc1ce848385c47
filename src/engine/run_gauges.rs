//! The run gauges the alerts read: `failoverd_run_waiting_approval{plan}` (runs waiting for an
//! operator's approval) and `failoverd_run_needs_operator{plan}` (runs that ended needing an
//! operator within the last 24 hours, so the alert is seen even if nobody was looking when it
//! happened).
//!
//! Kept current from the runner's status updates; at start, and when updates were missed, the
//! recent runs are read from the journal.

use std::collections::HashMap;
use std::time::Duration;

use prometheus::{IntGaugeVec, Opts, Registry};
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;

use super::event::RunId;
use super::runner::RunnerHandle;
use super::state::RunStatus;
use super::store::RunFilter;
use crate::shutdown::StopSignal;

/// How long a `needs_operator` run keeps its gauge up after it ended.
const NEEDS_OPERATOR_WINDOW: time::Duration = time::Duration::hours(24);

/// How many recent runs are read when reconciling from the journal.
const RECENT_RUNS: usize = 50;

/// How often the 24-hour window is re-applied when nothing else happens.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Known {
    plan: String,
    status: RunStatus,
    finished_at: Option<OffsetDateTime>,
}

pub struct RunGauges {
    runner: RunnerHandle,
    waiting: IntGaugeVec,
    needs_operator: IntGaugeVec,
    runs: HashMap<RunId, Known>,
}

impl RunGauges {
    pub fn register(runner: RunnerHandle, registry: &Registry) -> Result<Self, prometheus::Error> {
        let waiting = IntGaugeVec::new(
            Opts::new(
                "failoverd_run_waiting_approval",
                "Runs waiting for an operator's approval, by plan.",
            ),
            &["plan"],
        )?;
        let needs_operator = IntGaugeVec::new(
            Opts::new(
                "failoverd_run_needs_operator",
                "Runs that ended needing an operator within the last 24 hours, by plan.",
            ),
            &["plan"],
        )?;
        registry.register(Box::new(waiting.clone()))?;
        registry.register(Box::new(needs_operator.clone()))?;
        Ok(Self {
            runner,
            waiting,
            needs_operator,
            runs: HashMap::new(),
        })
    }

    /// Runs until `stop` fires (or the engine goes away).
    pub async fn run(mut self, mut stop: StopSignal) {
        let mut updates = self.runner.updates();
        self.reconcile().await;
        let mut expiry = tokio::time::interval(EXPIRY_INTERVAL);
        loop {
            tokio::select! {
                () = stop.stopped() => return,
                _ = expiry.tick() => self.publish(),
                update = updates.recv() => match update {
                    Ok(u) => {
                        self.runs.insert(u.record.id, Known {
                            plan: u.record.plan.clone(),
                            status: u.status,
                            finished_at: u.finished_at,
                        });
                        self.publish();
                    }
                    Err(RecvError::Lagged(_)) => self.reconcile().await,
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }

    async fn reconcile(&mut self) {
        match self
            .runner
            .list(RunFilter {
                limit: Some(RECENT_RUNS),
                ..RunFilter::default()
            })
            .await
        {
            Ok(runs) => {
                for r in runs {
                    self.runs.insert(
                        r.id,
                        Known {
                            plan: r.plan,
                            status: r.status,
                            finished_at: r.finished_at,
                        },
                    );
                }
                self.publish();
            }
            Err(e) => tracing::debug!(error = %e, "cannot list runs"),
        }
    }

    /// Recomputes both gauges and forgets runs that no longer count.
    fn publish(&mut self) {
        let now = OffsetDateTime::now_utc();
        let recent = |k: &Known| {
            k.finished_at
                .is_none_or(|f| now - f < NEEDS_OPERATOR_WINDOW)
        };
        self.runs.retain(|_, k| match k.status {
            RunStatus::NeedsOperator => recent(k),
            s => !s.is_terminal(),
        });
        self.waiting.reset();
        self.needs_operator.reset();
        for k in self.runs.values() {
            match k.status {
                RunStatus::WaitingApproval => {
                    self.waiting.with_label_values(&[k.plan.as_str()]).inc()
                }
                RunStatus::NeedsOperator => self
                    .needs_operator
                    .with_label_values(&[k.plan.as_str()])
                    .inc(),
                _ => {}
            }
        }
    }
}
