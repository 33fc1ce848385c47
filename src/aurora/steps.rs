//! The three engine steps for one global database — [`AuroraPrecheck`], [`AuroraPromote`],
//! [`AuroraWaitWriter`] — and what they share: the [`AuroraTarget`], the ports and timings
//! ([`AuroraStepDeps`]), and how a promotion towards the target shows in the live topology
//! ([`promotion_state`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::engine::{
    Mode, RetryPolicy, Reversibility, Step, StepContext, StepDescription, StepError, StepId,
    VerifyOutcome,
};
use crate::port::ErrorKind;
use crate::replication::lag::{LagReading, LagReadings};
use crate::replication::port::{GlobalCluster, GlobalClusterMember, GlobalDatabaseApi};

/// How the writer is moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Promotion {
    /// `SwitchoverGlobalCluster`: waits for the secondary to catch up, RPO 0.
    Switchover,
    /// `FailoverGlobalCluster` with `AllowDataLoss`: promotes now, losing what had not replicated.
    Failover,
}

impl Promotion {
    pub fn for_mode(mode: Mode) -> Self {
        match mode {
            Mode::Graceful => Self::Switchover,
            Mode::Ungraceful => Self::Failover,
        }
    }

    pub fn operation(self) -> &'static str {
        match self {
            Self::Switchover => "SwitchoverGlobalCluster",
            Self::Failover => "FailoverGlobalCluster",
        }
    }
}

/// Where a promotion towards a target stands, from a live `DescribeGlobalClusters`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromotionState {
    /// The target is the writer and the global database is `available`.
    Complete,
    /// The target is the writer, or a switchover/failover towards it is under way.
    InProgress,
    /// Nothing towards the target has happened; the global database is `available`.
    NotStarted,
    /// The global database is busy with something else (another target, a modification).
    Busy { status: String },
}

impl PromotionState {
    /// Whether the promotion has taken effect (it must not be requested again).
    pub fn took_effect(&self) -> bool {
        matches!(self, Self::Complete | Self::InProgress)
    }
}

/// Classifies `global` with respect to a promotion of `target_arn`.
pub fn promotion_state(global: &GlobalCluster, target_arn: &str) -> PromotionState {
    let status = global.status.as_deref().unwrap_or("");
    let target_is_writer = global
        .writer()
        .is_some_and(|w| w.db_cluster_arn == target_arn);
    let towards_target = global
        .failover_state
        .as_ref()
        .and_then(|f| f.to_db_cluster_arn.as_deref())
        == Some(target_arn);
    match (target_is_writer, status) {
        (true, "available") => PromotionState::Complete,
        (true, _) => PromotionState::InProgress,
        (false, _) if towards_target => PromotionState::InProgress,
        (false, "available") => PromotionState::NotStarted,
        (false, other) => PromotionState::Busy {
            status: if other.is_empty() {
                "unknown".to_owned()
            } else {
                other.to_owned()
            },
        },
    }
}

/// What the three steps act on.
#[derive(Clone)]
pub struct AuroraTarget {
    pub global_cluster: String,
    pub target_region: String,
    /// The DB cluster identifier configured for the target region.
    pub target_cluster: String,
    /// The region being left and its configured cluster.
    pub source_region: String,
    pub source_cluster: String,
    pub max_lag: Duration,
}

/// The DB cluster configured for the target when it has left the global database and writes on
/// its own (after a detach-and-promote): `None` while it is a member, or not available yet.
async fn detached_target(
    deps: &AuroraStepDeps,
    target: &AuroraTarget,
) -> Result<Option<String>, StepError> {
    let cluster = deps
        .api
        .describe_db_cluster(&target.target_cluster)
        .await
        .map_err(|e| aws_error(&format!("describing {}", target.target_cluster), e))?;
    let standalone =
        cluster.global_cluster_id.is_none() && cluster.status.as_deref() == Some("available");
    Ok(standalone.then(|| cluster.arn.unwrap_or(cluster.id)))
}

/// What an operator must do before failing back to `target` after a detach-and-promote left the
/// global database without a member in the region now active.
pub fn rebuild_steps(target: &AuroraTarget) -> String {
    format!(
        "global database {g} has no member in {src}: {src_cluster} was detached by a \
         detach-and-promote failover and writes on its own, so {tgt} no longer replicates from it. \
         Rebuild before failing back: (1) keep {tgt_cluster} in {tgt} for forensics or delete it \
         (its data stopped at the failover); (2) make {src_cluster} the primary of a global \
         database (remove the old global database {g} once empty, then `aws rds \
         create-global-cluster --global-cluster-identifier {g} --source-db-cluster-identifier \
         <arn of {src_cluster}>` in {src}); (3) add a secondary cluster in {tgt} (`aws rds \
         create-db-cluster --global-cluster-identifier {g} ...` in {tgt}) and update \
         replication.aurora.clusters if its name changed; (4) wait until the lag of {g} is fresh \
         and within max_lag; then run failback (runbooks/failback.md)",
        g = target.global_cluster,
        src = target.source_region,
        src_cluster = target.source_cluster,
        tgt = target.target_region,
        tgt_cluster = target.target_cluster,
    )
}

/// What the steps need from the world.
#[derive(Clone)]
pub struct AuroraStepDeps {
    /// The global database API of the target region.
    pub api: Arc<dyn GlobalDatabaseApi>,
    /// Where the newest lag readings come from (the replication monitor's handle).
    pub lag: Arc<dyn LagReadings>,
    /// How often [`AuroraWaitWriter`] polls.
    pub poll_interval: Duration,
    /// How long [`AuroraWaitWriter`] waits for the promotion to complete.
    pub promotion_timeout: Duration,
}

/// `DescribeGlobalClusters` is cheap and these runs are rare: poll every 5 s.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(5);
/// A switchover of a healthy global database takes about a minute, a failover a few; 20 minutes
/// covers a large secondary catching up.
pub const DEFAULT_PROMOTION_TIMEOUT: Duration = Duration::from_secs(20 * 60);

impl AuroraStepDeps {
    /// With the production timings.
    pub fn new(api: Arc<dyn GlobalDatabaseApi>, lag: Arc<dyn LagReadings>) -> Self {
        Self {
            api,
            lag,
            poll_interval: DEFAULT_POLL_INTERVAL,
            promotion_timeout: DEFAULT_PROMOTION_TIMEOUT,
        }
    }
}

fn aws_error(context: &str, e: crate::port::Error) -> StepError {
    let message = format!("{context}: {e}");
    if e.is_retryable() {
        StepError::retryable(message)
    } else {
        StepError::permanent(message)
    }
}

/// The member of `global` in the target region, checked against the configured cluster id.
fn target_member<'a>(
    global: &'a GlobalCluster,
    target: &AuroraTarget,
) -> Result<&'a GlobalClusterMember, StepError> {
    let member = global.member_in(&target.target_region).ok_or_else(|| {
        StepError::permanent(format!(
            "global database {} has no member in {}",
            target.global_cluster, target.target_region
        ))
    })?;
    let configured = format!(":cluster:{}", target.target_cluster);
    if !(member.db_cluster_arn.ends_with(&configured)
        || member.db_cluster_arn == target.target_cluster)
    {
        return Err(StepError::permanent(format!(
            "the member of {} in {} is {}, but replication.aurora.clusters names {}",
            target.global_cluster,
            target.target_region,
            member.db_cluster_arn,
            target.target_cluster
        )));
    }
    Ok(member)
}

async fn describe(
    deps: &AuroraStepDeps,
    target: &AuroraTarget,
) -> Result<GlobalCluster, StepError> {
    deps.api
        .describe_global_cluster(&target.global_cluster)
        .await
        .map_err(|e| aws_error(&format!("describing {}", target.global_cluster), e))
}

fn lag_json(reading: Option<&LagReading>) -> Value {
    match reading {
        Some(r) => json!({
            "lag_seconds": r.observation.lag.as_secs_f64(),
            "rpo_lag_seconds": r.observation.rpo_lag.map(|d| d.as_secs_f64()),
            "lag_region": r.observation.region,
            "lag_source": r.observation.source.as_str(),
            "lag_observed_at": r.observation.observed_at
                .format(&time::format_description::well_known::Rfc3339)
                .ok(),
            "lag_observation_age_seconds": r.age.as_secs_f64(),
            "lag_stale": r.stale,
        }),
        None => json!({ "lag_seconds": null, "lag_stale": true }),
    }
}

fn merge(into: &mut Value, more: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, more) {
        a.extend(b);
    }
}

fn measurements(entries: &[(String, f64)]) -> Value {
    let map: Map<String, Value> = entries.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    Value::Object(map)
}

/// Checks the preconditions of the promotion. No side effect.
pub struct AuroraPrecheck {
    id: StepId,
    name: String,
    target: AuroraTarget,
    promotion: Promotion,
    deps: AuroraStepDeps,
    /// Failback: the region being left must still be a member (a detach-and-promote leaves it
    /// alone, and a switchover back would then lose everything written since).
    failback: bool,
}

impl AuroraPrecheck {
    pub fn new(target: AuroraTarget, promotion: Promotion, deps: AuroraStepDeps) -> Self {
        Self {
            id: StepId::new(format!("aurora-check-{}", target.global_cluster)),
            name: format!(
                "check {} can be promoted in {}",
                target.global_cluster, target.target_region
            ),
            target,
            promotion,
            deps,
            failback: false,
        }
    }

    /// The failback's check: `target` must be a secondary of a global database whose writer is
    /// the region being left (see [`rebuild_steps`] when it is not).
    pub fn for_failback(mut self) -> Self {
        self.failback = true;
        self.name = format!(
            "check {} in {} is a secondary again, ready to take the writer back",
            self.target.global_cluster, self.target.target_region
        );
        self
    }
}

#[async_trait]
impl Step for AuroraPrecheck {
    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        let rule = match self.promotion {
            Promotion::Switchover => format!(
                "the newest lag observation must be fresh and at most {:?}",
                self.target.max_lag
            ),
            Promotion::Failover => {
                "any lag is accepted (ungraceful); the estimate is recorded".into()
            }
        };
        Ok(StepDescription {
            summary: format!(
                "check that {} has a member in {}; {rule}",
                self.target.global_cluster, self.target.target_region
            ),
            changes: Vec::new(),
        })
    }

    async fn execute(&self, _ctx: &StepContext) -> Result<Value, StepError> {
        let global = describe(&self.deps, &self.target).await?;
        if self.failback && global.member_in(&self.target.source_region).is_none() {
            return Err(StepError::permanent(rebuild_steps(&self.target)));
        }
        if !self.failback && global.member_in(&self.target.target_region).is_none() {
            if let Some(arn) = detached_target(&self.deps, &self.target).await? {
                // A detach-and-promote already made the target the writer on its own.
                return Ok(json!({
                    "global_cluster": self.target.global_cluster,
                    "target_region": self.target.target_region,
                    "target_cluster_arn": arn,
                    "detached": true,
                    "already_promoted": true,
                }));
            }
        }
        let member = target_member(&global, &self.target)?;
        let state = promotion_state(&global, &member.db_cluster_arn);
        let reading = self.deps.lag.last_lag(&self.target.global_cluster);
        let mut out = json!({
            "global_cluster": self.target.global_cluster,
            "target_region": self.target.target_region,
            "target_cluster_arn": member.db_cluster_arn,
            "writer_region": global.writer_region(),
            "status": global.status,
            "already_promoted": state.took_effect(),
        });
        merge(&mut out, lag_json(reading.as_ref()));
        if let PromotionState::Busy { status } = &state {
            return Err(StepError::permanent(format!(
                "global database {} is {status}: another operation is under way",
                self.target.global_cluster
            )));
        }
        if state.took_effect() || self.promotion == Promotion::Failover {
            return Ok(out);
        }
        match reading {
            None => Err(StepError::permanent(format!(
                "no lag observation for {}: a graceful switchover needs a fresh lag within {:?} \
                 (fix the lag data, or run ungraceful)",
                self.target.global_cluster, self.target.max_lag
            ))),
            Some(r) if r.stale => Err(StepError::permanent(format!(
                "the newest lag observation of {} is {:.0}s old (stale): the current lag is unknown \
                 (fix the lag data, or run ungraceful)",
                self.target.global_cluster,
                r.age.as_secs_f64()
            ))),
            Some(r) if !r.within_budget() => Err(StepError::retryable(format!(
                "lag of {} is {:.1}s, over the {:.1}s budget for a graceful switchover",
                self.target.global_cluster,
                r.lag().as_secs_f64(),
                r.max_lag.as_secs_f64()
            ))),
            Some(_) => Ok(out),
        }
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        // A check has no effect to find; running it again is harmless.
        Ok(VerifyOutcome::NotDone)
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::NoSideEffect
    }

    fn retry_policy(&self) -> RetryPolicy {
        // Lag over budget often clears within a minute.
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(30),
            deadline: None,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(90)
    }
}

/// Requests the switchover or failover. Irreversible.
pub struct AuroraPromote {
    id: StepId,
    name: String,
    target: AuroraTarget,
    promotion: Promotion,
    deps: AuroraStepDeps,
}

impl AuroraPromote {
    pub fn new(target: AuroraTarget, promotion: Promotion, deps: AuroraStepDeps) -> Self {
        let verb = match promotion {
            Promotion::Switchover => "switch over",
            Promotion::Failover => "fail over (allowing data loss)",
        };
        Self {
            id: StepId::new(format!("aurora-promote-{}", target.global_cluster)),
            name: format!(
                "{verb} {} to {}",
                target.global_cluster, target.target_region
            ),
            target,
            promotion,
            deps,
        }
    }

    fn output(&self, member_arn: &str, previous_writer: Option<&str>, requested: bool) -> Value {
        let g = &self.target.global_cluster;
        let mut out = json!({
            "global_cluster": g,
            "operation": self.promotion.operation(),
            "target_region": self.target.target_region,
            "target_cluster_arn": member_arn,
            "previous_writer_region": previous_writer,
            "requested_by_this_attempt": requested,
        });
        match self.promotion {
            Promotion::Switchover => {
                merge(
                    &mut out,
                    json!({
                        "estimated_data_loss_seconds": 0.0,
                        "measurements": measurements(&[(format!("aurora.{g}.estimated_data_loss_seconds"), 0.0)]),
                    }),
                );
            }
            Promotion::Failover => {
                let reading = self.deps.lag.last_lag(g);
                let estimate = reading
                    .as_ref()
                    .map(|r| r.observation.data_loss_estimate().as_secs_f64());
                merge(&mut out, lag_json(reading.as_ref()));
                merge(&mut out, json!({ "estimated_data_loss_seconds": estimate }));
                if let Some(r) = &reading {
                    let mut m = vec![(
                        format!("aurora.{g}.lag_observation_age_seconds"),
                        r.age.as_secs_f64(),
                    )];
                    if let Some(e) = estimate {
                        m.push((format!("aurora.{g}.estimated_data_loss_seconds"), e));
                    }
                    merge(&mut out, json!({ "measurements": measurements(&m) }));
                }
            }
        }
        out
    }
}

impl AuroraPromote {
    /// After a detach-and-promote (this run's, or one whose outcome a crash hid) the target has
    /// left the global database and writes on its own: the promotion took effect.
    async fn already_detached(&self, global: &GlobalCluster) -> Result<Option<Value>, StepError> {
        if self.promotion != Promotion::Failover
            || global.member_in(&self.target.target_region).is_some()
        {
            return Ok(None);
        }
        Ok(detached_target(&self.deps, &self.target)
            .await?
            .map(|arn| self.detached_output(&arn, None, None, false)))
    }

    /// The last resort of an ungraceful failover when `FailoverGlobalCluster` cannot complete:
    /// `RemoveFromGlobalCluster` on the secondary, which becomes a standalone writable cluster.
    /// The global database is then broken and must be rebuilt before a failback
    /// ([`rebuild_steps`]); the report says so.
    async fn detach_and_promote(
        &self,
        member: &str,
        previous: Option<&str>,
        cause: &crate::port::Error,
    ) -> Result<Value, StepError> {
        let g = &self.target.global_cluster;
        tracing::warn!(global_cluster = %g, error = %cause, "FailoverGlobalCluster cannot complete; detaching the secondary (detach-and-promote)");
        match self.deps.api.remove_from_global_cluster(g, member).await {
            Ok(_) => Ok(self.detached_output(member, previous, Some(cause), true)),
            Err(e) => {
                // Maybe an earlier attempt's detach already went through.
                let now = describe(&self.deps, &self.target).await?;
                if let Some(done) = self.already_detached(&now).await? {
                    return Ok(done);
                }
                let message = format!(
                    "FailoverGlobalCluster failed ({cause}) and the fallback RemoveFromGlobalCluster \
                     failed too ({e})"
                );
                Err(if e.is_retryable() {
                    StepError::retryable(message)
                } else {
                    StepError::permanent(message)
                })
            }
        }
    }

    fn detached_output(
        &self,
        member: &str,
        previous: Option<&str>,
        cause: Option<&crate::port::Error>,
        requested: bool,
    ) -> Value {
        let mut out = self.output(member, previous, requested);
        merge(
            &mut out,
            json!({
                "operation": "RemoveFromGlobalCluster",
                "fallback": "detach-and-promote",
                "fallback_reason": cause.map_or_else(
                    || "the target was already detached from the global database".to_owned(),
                    |c| format!("FailoverGlobalCluster could not complete: {c}"),
                ),
                "global_database_broken": true,
                "rebuild_before_failback": rebuild_steps(&AuroraTarget {
                    source_region: self.target.target_region.clone(),
                    source_cluster: self.target.target_cluster.clone(),
                    target_region: self.target.source_region.clone(),
                    target_cluster: self.target.source_cluster.clone(),
                    ..self.target.clone()
                }),
            }),
        );
        out
    }
}

#[async_trait]
impl Step for AuroraPromote {
    fn acts_on(&self) -> Option<crate::engine::OutageApi> {
        Some(crate::engine::OutageApi::Aurora)
    }

    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        let mut changes = vec![format!(
            "rds {}: {} -> writer cluster {} in {}",
            self.promotion.operation(),
            self.target.global_cluster,
            self.target.target_cluster,
            self.target.target_region
        )];
        if self.promotion == Promotion::Failover {
            let estimate = match self.deps.lag.last_lag(&self.target.global_cluster) {
                Some(r) => format!(
                    "estimated data loss {:.1}s (lag observation {:.0}s old{})",
                    r.observation.data_loss_estimate().as_secs_f64(),
                    r.age.as_secs_f64(),
                    if r.stale { ", stale" } else { "" }
                ),
                None => "estimated data loss unknown (no lag observation)".to_owned(),
            };
            changes.push(estimate);
        }
        Ok(StepDescription {
            summary: self.name.clone(),
            changes,
        })
    }

    async fn execute(&self, ctx: &StepContext) -> Result<Value, StepError> {
        let global = describe(&self.deps, &self.target).await?;
        if let Some(done) = self.already_detached(&global).await? {
            return Ok(done);
        }
        let member = target_member(&global, &self.target)?.db_cluster_arn.clone();
        let previous = global.writer_region().map(str::to_owned);
        match promotion_state(&global, &member) {
            s if s.took_effect() => return Ok(self.output(&member, previous.as_deref(), false)),
            PromotionState::Busy { status } => {
                return Err(StepError::permanent(format!(
                    "global database {} is {status}: another operation is under way",
                    self.target.global_cluster
                )))
            }
            _ => {}
        }
        let g = self.target.global_cluster.as_str();
        let result = match self.promotion {
            Promotion::Switchover => self.deps.api.switchover_global_cluster(g, &member).await,
            Promotion::Failover => {
                self.deps
                    .api
                    .failover_global_cluster_allow_data_loss(g, &member)
                    .await
            }
        };
        let error = match result {
            Ok(_) => return Ok(self.output(&member, previous.as_deref(), true)),
            Err(e) if e.kind == ErrorKind::Invalid => {
                // Refused for the state it found: maybe because a concurrent request (ours,
                // retried by the SDK after a timeout) already started it.
                let now = describe(&self.deps, &self.target).await?;
                if promotion_state(&now, &member).took_effect() {
                    return Ok(self.output(&member, previous.as_deref(), true));
                }
                e
            }
            Err(e) => e,
        };
        let last_attempt = ctx.attempt >= self.retry_policy().max_attempts;
        if self.promotion == Promotion::Failover && (!error.is_retryable() || last_attempt) {
            return self
                .detach_and_promote(&member, previous.as_deref(), &error)
                .await;
        }
        Err(aws_error(self.promotion.operation(), error))
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        let global = describe(&self.deps, &self.target).await?;
        if let Some(done) = self.already_detached(&global).await? {
            return Ok(VerifyOutcome::Done(done));
        }
        let member = target_member(&global, &self.target)?.db_cluster_arn.clone();
        Ok(match promotion_state(&global, &member) {
            s if s.took_effect() => {
                VerifyOutcome::Done(self.output(&member, global.writer_region(), false))
            }
            PromotionState::Busy { status } => {
                return Err(StepError::permanent(format!(
                    "global database {} is {status} with another target: cannot tell whether the \
                     promotion to {} was requested",
                    self.target.global_cluster, self.target.target_region
                )))
            }
            _ => VerifyOutcome::NotDone,
        })
    }

    fn operator_check(&self) -> String {
        format!(
            "a promotion cannot be undone: check DescribeGlobalClusters {} — if {} is the writer (or \
             becoming it), finish the takeover by hand or run the failback plan; otherwise the \
             old writer is still primary",
            self.target.global_cluster, self.target.target_region
        )
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
            deadline: None,
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
}

/// Waits for the promotion to complete. No side effect.
pub struct AuroraWaitWriter {
    id: StepId,
    name: String,
    target: AuroraTarget,
    deps: AuroraStepDeps,
}

/// A promotion that shows no trace in the topology for this long after it was requested did not
/// happen (RDS answers `DescribeGlobalClusters` consistently within seconds).
const NOT_STARTED_GRACE: Duration = Duration::from_secs(120);

impl AuroraWaitWriter {
    pub fn new(target: AuroraTarget, deps: AuroraStepDeps) -> Self {
        Self {
            id: StepId::new(format!("aurora-wait-writer-{}", target.global_cluster)),
            name: format!(
                "wait until {} writes in {}",
                target.global_cluster, target.target_region
            ),
            target,
            deps,
        }
    }

    fn output(&self, member: &str, waited: Duration) -> Value {
        let g = &self.target.global_cluster;
        json!({
            "global_cluster": g,
            "writer_region": self.target.target_region,
            "writer_cluster_arn": member,
            "waited_seconds": waited.as_secs_f64(),
            "measurements": measurements(&[(format!("aurora.{g}.promotion_wait_seconds"), waited.as_secs_f64())]),
        })
    }
}

#[async_trait]
impl Step for AuroraWaitWriter {
    fn acts_on(&self) -> Option<crate::engine::OutageApi> {
        Some(crate::engine::OutageApi::Aurora)
    }

    fn id(&self) -> &StepId {
        &self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    async fn describe(&self, _ctx: &StepContext) -> Result<StepDescription, StepError> {
        Ok(StepDescription {
            summary: format!(
                "poll DescribeGlobalClusters every {:?} (up to {:?}) until {} is the writer and \
                 {} is available",
                self.deps.poll_interval,
                self.deps.promotion_timeout,
                self.target.target_region,
                self.target.global_cluster
            ),
            changes: Vec::new(),
        })
    }

    async fn execute(&self, _ctx: &StepContext) -> Result<Value, StepError> {
        let started = Instant::now();
        let deadline = started + self.deps.promotion_timeout;
        let mut not_started_since: Option<Instant> = None;
        loop {
            let last;
            match self
                .deps
                .api
                .describe_global_cluster(&self.target.global_cluster)
                .await
            {
                Ok(global) if global.member_in(&self.target.target_region).is_none() => {
                    // Detach-and-promote: the target writes on its own once available.
                    match detached_target(&self.deps, &self.target).await {
                        Ok(Some(arn)) => return Ok(self.output(&arn, started.elapsed())),
                        Ok(None) => last = "the detached target is not available yet".to_owned(),
                        Err(e) if e.retryable => last = e.message,
                        Err(e) => return Err(e),
                    }
                }
                Ok(global) => {
                    let member = target_member(&global, &self.target)?.db_cluster_arn.clone();
                    let state = promotion_state(&global, &member);
                    last = format!(
                        "status {}, writer {}",
                        global.status.as_deref().unwrap_or("unknown"),
                        global.writer_region().unwrap_or("none")
                    );
                    match state {
                        PromotionState::Complete => {
                            return Ok(self.output(&member, started.elapsed()))
                        }
                        PromotionState::NotStarted => {
                            let since = *not_started_since.get_or_insert_with(Instant::now);
                            if since.elapsed() >= NOT_STARTED_GRACE {
                                return Err(StepError::permanent(format!(
                                    "no promotion of {} towards {} is under way ({last}): it was \
                                     refused or rolled back",
                                    self.target.global_cluster, self.target.target_region
                                )));
                            }
                        }
                        PromotionState::InProgress | PromotionState::Busy { .. } => {
                            not_started_since = None;
                        }
                    }
                }
                Err(e) if e.is_retryable() => last = e.to_string(),
                Err(e) => return Err(aws_error("waiting for the new writer", e)),
            }
            if Instant::now() >= deadline {
                return Err(StepError::retryable(format!(
                    "{} did not complete its promotion to {} within {:?} ({last})",
                    self.target.global_cluster,
                    self.target.target_region,
                    self.deps.promotion_timeout
                )));
            }
            tokio::time::sleep(self.deps.poll_interval).await;
        }
    }

    async fn verify(&self, _ctx: &StepContext) -> Result<VerifyOutcome, StepError> {
        let global = describe(&self.deps, &self.target).await?;
        if global.member_in(&self.target.target_region).is_none() {
            return Ok(match detached_target(&self.deps, &self.target).await? {
                Some(arn) => VerifyOutcome::Done(self.output(&arn, Duration::ZERO)),
                None => VerifyOutcome::NotDone,
            });
        }
        let member = target_member(&global, &self.target)?.db_cluster_arn.clone();
        Ok(match promotion_state(&global, &member) {
            PromotionState::Complete => VerifyOutcome::Done(self.output(&member, Duration::ZERO)),
            _ => VerifyOutcome::NotDone,
        })
    }

    fn reversibility(&self) -> Reversibility {
        Reversibility::NoSideEffect
    }

    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 2,
            initial_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
            deadline: None,
        }
    }

    fn timeout(&self) -> Duration {
        // Room for the last poll after the deadline.
        self.deps
            .promotion_timeout
            .saturating_add(self.deps.poll_interval)
            .saturating_add(Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::port::GlobalFailoverState;

    const HOT: &str = "arn:aws:rds:hot-1:1:cluster:app-hot";
    const COLD: &str = "arn:aws:rds:cold-1:1:cluster:app-cold";

    fn global(status: &str, writer: Option<&str>, to: Option<&str>) -> GlobalCluster {
        let member = |arn: &str, region: &str| GlobalClusterMember {
            db_cluster_arn: arn.into(),
            region: Some(region.into()),
            is_writer: writer == Some(arn),
            readers: Vec::new(),
            synchronization_status: None,
        };
        GlobalCluster {
            id: "g".into(),
            arn: None,
            status: Some(status.into()),
            engine: None,
            engine_version: None,
            members: vec![member(HOT, "hot-1"), member(COLD, "cold-1")],
            failover_state: to.map(|to| GlobalFailoverState {
                status: Some("failing-over".into()),
                from_db_cluster_arn: Some(HOT.into()),
                to_db_cluster_arn: Some(to.into()),
                is_data_loss_allowed: false,
            }),
        }
    }

    #[test]
    fn promotion_states() {
        use PromotionState::*;
        assert_eq!(
            promotion_state(&global("available", Some(HOT), None), COLD),
            NotStarted
        );
        assert_eq!(
            promotion_state(&global("switching-over", Some(HOT), Some(COLD)), COLD),
            InProgress
        );
        assert_eq!(
            promotion_state(&global("failing-over", None, Some(COLD)), COLD),
            InProgress
        );
        assert_eq!(
            promotion_state(&global("modifying", Some(COLD), None), COLD),
            InProgress
        );
        assert_eq!(
            promotion_state(&global("available", Some(COLD), None), COLD),
            Complete
        );
        assert_eq!(
            promotion_state(&global("switching-over", Some(COLD), Some(HOT)), HOT),
            InProgress
        );
        assert_eq!(
            promotion_state(&global("modifying", Some(HOT), None), COLD),
            Busy {
                status: "modifying".into()
            }
        );
        assert!(!Busy { status: "x".into() }.took_effect());
    }

    #[test]
    fn target_member_must_match_the_configured_cluster() {
        let g = global("available", Some(HOT), None);
        let target = |cluster: &str| AuroraTarget {
            global_cluster: "g".into(),
            target_region: "cold-1".into(),
            target_cluster: cluster.into(),
            source_region: "hot-1".into(),
            source_cluster: "app-hot".into(),
            max_lag: Duration::from_secs(5),
        };
        assert_eq!(
            target_member(&g, &target("app-cold"))
                .unwrap()
                .db_cluster_arn,
            COLD
        );
        assert!(target_member(&g, &target("app-other")).is_err());
        let nowhere = AuroraTarget {
            target_region: "elsewhere-1".into(),
            ..target("app-cold")
        };
        assert!(target_member(&g, &nowhere).is_err());
    }
}
