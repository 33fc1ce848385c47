//! Watches the engine's runs for what the rest of the daemon and the alerts need to know:
//!
//! - runs waiting for an operator's approval, and runs that ended `needs_operator`
//!   (`failoverd_run_waiting_approval{plan}`, `failoverd_run_needs_operator{plan}`);
//! - the **active region** — the region DNS sends traffic to. It starts as the configured hot
//!   region and becomes the target of each completed `dns-switchover`; it is recorded durably in
//!   `<state.dir>/active-region` (and recoverable from the journal), exported as
//!   `failoverd_region_active{region}`, shown in `/v1/status`, and handed to the auto-failover
//!   policy so that after a switchover it watches the new active region and fails over to the
//!   other one; the Cognito sync (hot → cold) is paused while the configured hot region is not
//!   the active one. Each completed traffic move, manual or automatic, also starts the policy's
//!   cooldown (from the time the run finished, so a restart does not reset it).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prometheus::{IntGaugeVec, Opts, Registry};
use time::OffsetDateTime;

use crate::cognito::monitor::CognitoHandle;
use crate::engine::{RunFilter, RunId, RunStatus, RunnerHandle};
use crate::policy::PolicyHandle;
use crate::shutdown::StopSignal;

/// The file in the state directory that records the active region.
pub const ACTIVE_REGION_FILE: &str = "active-region";

/// Plans whose success moves traffic to their `target_region`.
const TRAFFIC_PLANS: &[&str] = &["dns-switchover"];

/// How often runs are looked at. Approval and needs-operator alerts tolerate seconds of delay.
const INTERVAL: Duration = Duration::from_secs(2);

/// How many recent runs are examined each round.
const RECENT_RUNS: usize = 50;

/// A `needs_operator` run keeps `failoverd_run_needs_operator` up this long after it ended, so the
/// alert is seen even if nobody was looking when it happened.
const NEEDS_OPERATOR_WINDOW: time::Duration = time::Duration::hours(24);

/// The active and standby regions, shared with the status endpoint.
#[derive(Clone)]
pub struct ActiveRegion {
    inner: Arc<RwLock<(String, String)>>,
}

impl ActiveRegion {
    /// (active, standby).
    pub fn get(&self) -> (String, String) {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set(&self, active: &str, standby: &str) {
        let mut g = match self.inner.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = (active.to_owned(), standby.to_owned());
    }
}

pub struct RunWatch {
    runner: RunnerHandle,
    policy: Option<PolicyHandle>,
    /// Paused while the configured hot region is not the active one: it copies hot → cold, and
    /// after a failover that would overwrite the pool now in use with the lost region's.
    cognito: Option<CognitoHandle>,
    regions: [String; 2],
    file: PathBuf,
    active: ActiveRegion,
    waiting: IntGaugeVec,
    needs_operator: IntGaugeVec,
    region_active: IntGaugeVec,
    /// The newest traffic-moving run already applied.
    applied: Option<RunId>,
}

impl RunWatch {
    /// Reads the recorded active region (the configured hot region when nothing is recorded, or
    /// when the record names a region outside the pair — logged).
    pub fn new(
        runner: RunnerHandle,
        regions: [&str; 2],
        state_dir: &std::path::Path,
        registry: &Registry,
    ) -> Result<Self, prometheus::Error> {
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
        let region_active = IntGaugeVec::new(
            Opts::new(
                "failoverd_region_active",
                "1 for the region DNS sends traffic to (as recorded by failoverd), 0 for the standby.",
            ),
            &["region"],
        )?;
        registry.register(Box::new(waiting.clone()))?;
        registry.register(Box::new(needs_operator.clone()))?;
        registry.register(Box::new(region_active.clone()))?;

        let file = state_dir.join(ACTIVE_REGION_FILE);
        let [hot, cold] = regions;
        let recorded = std::fs::read_to_string(&file)
            .ok()
            .map(|s| s.trim().to_owned());
        let active = match recorded {
            Some(r) if r == hot || r == cold => r,
            Some(r) if !r.is_empty() => {
                tracing::warn!(recorded = %r, file = %file.display(), "recorded active region is not one of the pair; using the configured hot region");
                hot.to_owned()
            }
            _ => hot.to_owned(),
        };
        let standby = if active == hot { cold } else { hot };
        let watch = Self {
            runner,
            policy: None,
            cognito: None,
            regions: [hot.to_owned(), cold.to_owned()],
            file,
            active: ActiveRegion {
                inner: Arc::new(RwLock::new((active.clone(), standby.to_owned()))),
            },
            waiting,
            needs_operator,
            region_active,
            applied: None,
        };
        watch.publish(&active);
        Ok(watch)
    }

    pub fn active_region(&self) -> ActiveRegion {
        self.active.clone()
    }

    /// Pauses the Cognito sync while the configured hot region is not the active one.
    pub fn attach_cognito(&mut self, cognito: CognitoHandle) {
        let (active, _) = self.active.get();
        self.cognito = Some(cognito);
        self.publish(&active);
    }

    /// Keeps the policy's active/standby pair in step with the active region.
    pub fn attach_policy(&mut self, policy: PolicyHandle) {
        let (active, _) = self.active.get();
        self.policy = Some(policy);
        self.publish(&active);
    }

    fn publish(&self, active: &str) {
        let standby = self
            .regions
            .iter()
            .find(|r| *r != active)
            .cloned()
            .unwrap_or_default();
        self.active.set(active, &standby);
        for r in &self.regions {
            self.region_active
                .with_label_values(&[r.as_str()])
                .set(i64::from(r == active));
        }
        if let Some(policy) = &self.policy {
            policy.set_regions(active, &standby);
        }
        if let Some(cognito) = &self.cognito {
            let paused = self.regions[0] != active;
            if paused {
                tracing::info!(active, "Cognito sync paused: the configured hot region is not active (it copies hot to cold)");
            }
            cognito.set_paused(paused);
        }
    }

    /// Runs until `stop` fires.
    pub async fn run(mut self, mut stop: StopSignal) {
        loop {
            self.round().await;
            tokio::select! {
                () = stop.stopped() => return,
                () = tokio::time::sleep(INTERVAL) => {}
            }
        }
    }

    async fn round(&mut self) {
        let runs = match self
            .runner
            .list(RunFilter {
                limit: Some(RECENT_RUNS),
                ..RunFilter::default()
            })
            .await
        {
            Ok(runs) => runs,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list runs");
                return;
            }
        };
        let now = OffsetDateTime::now_utc();
        self.waiting.reset();
        self.needs_operator.reset();
        for r in &runs {
            match r.status {
                RunStatus::WaitingApproval => {
                    self.waiting.with_label_values(&[r.plan.as_str()]).inc()
                }
                RunStatus::NeedsOperator
                    if r.finished_at
                        .is_none_or(|f| now - f < NEEDS_OPERATOR_WINDOW) =>
                {
                    self.needs_operator
                        .with_label_values(&[r.plan.as_str()])
                        .inc()
                }
                _ => {}
            }
        }
        // The newest completed traffic move decides the active region.
        let newest = runs.iter().find(|r| {
            TRAFFIC_PLANS.contains(&r.plan.as_str())
                && !r.dry_run
                && r.status == RunStatus::Succeeded
        });
        let Some(newest) = newest else { return };
        if self.applied == Some(newest.id) {
            return;
        }
        let view = match self.runner.get(newest.id).await {
            Ok(v) => v,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read run");
                return;
            }
        };
        self.applied = Some(newest.id);
        let Some(target) = view.params.get("target_region").and_then(|v| v.as_str()) else {
            return;
        };
        if !self.regions.iter().any(|r| r == target) {
            return;
        }
        if self.active.get().0 != target {
            tracing::info!(active = target, run = %newest.id, "active region changed");
        }
        // The cooldown counts from the last traffic move, whoever started it and across restarts.
        if let (Some(policy), Some(finished)) = (&self.policy, newest.finished_at) {
            let ago = std::time::Duration::try_from(now - finished).unwrap_or_default();
            let at = tokio::time::Instant::now()
                .checked_sub(ago)
                .unwrap_or_else(tokio::time::Instant::now);
            policy.record_failover(at);
        }
        if let Err(e) = write_atomically(&self.file, target) {
            tracing::warn!(error = %e, file = %self.file.display(), "cannot record the active region; it will be recorded at the next round");
            self.applied = None;
        }
        self.publish(target);
    }
}

fn write_atomically(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}
