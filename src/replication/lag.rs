//! Lag observations and how fresh they are.
//!
//! A lag number is only meaningful together with *when* it was observed: the policy must never
//! fail over "with 2 s of lag" on the strength of a reading taken before the hot region went dark.
//! So every observation carries its time, readers get its age, and anything older than the
//! configured `stale_after` is marked stale — shown as such in `/v1/status`, dropped from the lag
//! gauge (the staleness gauge and its alert take over), and flagged to the policy — instead of
//! being reused as if it were current.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

/// Where a lag observation came from (the `source` metric label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LagSourceKind {
    /// CloudWatch `AuroraGlobalDBReplicationLag` (and `AuroraGlobalDBRPOLag`) of the secondary.
    Cloudwatch,
    /// The SQL heartbeat row written in the writer and read in the secondary.
    Heartbeat,
}

impl LagSourceKind {
    /// Fixed metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cloudwatch => "cloudwatch",
            Self::Heartbeat => "heartbeat",
        }
    }
}

impl From<crate::config::LagSource> for LagSourceKind {
    fn from(source: crate::config::LagSource) -> Self {
        match source {
            crate::config::LagSource::Cloudwatch => Self::Cloudwatch,
            crate::config::LagSource::Heartbeat => Self::Heartbeat,
        }
    }
}

/// One measurement of how far the secondary trails the writer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LagObservation {
    /// Replication lag of the secondary.
    #[serde(rename = "lag_seconds", serialize_with = "seconds")]
    pub lag: Duration,
    /// The RPO lag (what an ungraceful failover would lose), where Aurora publishes it.
    #[serde(rename = "rpo_lag_seconds", serialize_with = "optional_seconds")]
    pub rpo_lag: Option<Duration>,
    /// The secondary's region: the region whose data trails.
    pub region: String,
    pub source: LagSourceKind,
    /// When the measured state held: the CloudWatch period's start, or the heartbeat read.
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
}

impl LagObservation {
    /// How much data an ungraceful failover would lose, as far as this observation knows: the RPO
    /// lag when Aurora publishes it (it is defined as exactly that), the replication lag otherwise.
    pub fn data_loss_estimate(&self) -> Duration {
        self.rpo_lag.unwrap_or(self.lag)
    }
}

/// Durations are shown to people and scripts as (fractional) seconds, the base unit.
fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn optional_seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Age of an observation at `now`; an observation "from the future" (clock step) has age zero.
pub fn age(observed_at: OffsetDateTime, now: OffsetDateTime) -> Duration {
    let delta = now - observed_at;
    if delta.is_negative() {
        Duration::ZERO
    } else {
        delta.unsigned_abs()
    }
}

/// Whether an observation of age `age` is too old to be used as current.
pub fn is_stale(age: Duration, stale_after: Duration) -> bool {
    age > stale_after
}

/// The newest lag observation of a global database, as handed to the policy and the Aurora
/// steps: the observation plus its age and staleness at the time of the call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LagReading {
    pub global_cluster: String,
    #[serde(flatten)]
    pub observation: LagObservation,
    /// Age at the time the reading was taken.
    #[serde(rename = "age_seconds", serialize_with = "seconds")]
    pub age: Duration,
    /// `age > stale_after`: do not treat `lag` as the current lag.
    pub stale: bool,
    /// The configured budget (`replication.aurora[].max_lag`).
    #[serde(rename = "max_lag_seconds", serialize_with = "seconds")]
    pub max_lag: Duration,
}

impl LagReading {
    /// Builds a reading of `observation` at `now`.
    pub fn at(
        global_cluster: &str,
        observation: LagObservation,
        max_lag: Duration,
        stale_after: Duration,
        now: OffsetDateTime,
    ) -> Self {
        let age = age(observation.observed_at, now);
        Self {
            global_cluster: global_cluster.to_owned(),
            stale: is_stale(age, stale_after),
            observation,
            age,
            max_lag,
        }
    }

    pub fn lag(&self) -> Duration {
        self.observation.lag
    }

    /// Fresh and within budget: what a graceful switchover requires.
    pub fn within_budget(&self) -> bool {
        !self.stale && self.observation.lag <= self.max_lag
    }
}

/// Where the newest lag readings come from: implemented by
/// [`ReplicationHandle`](super::monitor::ReplicationHandle); tests and the policy's unit tests
/// implement it with fixed readings.
pub trait LagReadings: Send + Sync + 'static {
    /// The newest lag reading of `global_cluster`, `None` when nothing was ever observed.
    fn last_lag(&self, global_cluster: &str) -> Option<LagReading>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn obs(lag_ms: u64, rpo_ms: Option<u64>) -> LagObservation {
        LagObservation {
            lag: Duration::from_millis(lag_ms),
            rpo_lag: rpo_ms.map(Duration::from_millis),
            region: "eu-central-1".into(),
            source: LagSourceKind::Cloudwatch,
            observed_at: datetime!(2026-11-28 12:00:00 UTC),
        }
    }

    #[test]
    fn age_is_never_negative() {
        let t = datetime!(2026-11-28 12:00:00 UTC);
        assert_eq!(
            age(t, t + time::Duration::seconds(7)),
            Duration::from_secs(7)
        );
        assert_eq!(age(t, t - time::Duration::seconds(7)), Duration::ZERO);
    }

    #[test]
    fn staleness_is_strictly_beyond_the_bound() {
        let bound = Duration::from_secs(300);
        assert!(!is_stale(Duration::from_secs(300), bound));
        assert!(is_stale(Duration::from_millis(300_001), bound));
    }

    #[test]
    fn reading_marks_old_observations_stale_and_out_of_budget() {
        let t = datetime!(2026-11-28 12:00:00 UTC);
        let fresh = LagReading::at(
            "g",
            obs(2_000, None),
            Duration::from_secs(5),
            Duration::from_secs(60),
            t + time::Duration::seconds(30),
        );
        assert!(!fresh.stale);
        assert!(fresh.within_budget());
        assert_eq!(fresh.age, Duration::from_secs(30));

        let old = LagReading::at(
            "g",
            obs(2_000, None),
            Duration::from_secs(5),
            Duration::from_secs(60),
            t + time::Duration::seconds(61),
        );
        assert!(old.stale);
        assert!(!old.within_budget(), "stale lag is never within budget");

        let over = LagReading::at(
            "g",
            obs(6_000, None),
            Duration::from_secs(5),
            Duration::from_secs(60),
            t,
        );
        assert!(!over.within_budget());
    }

    #[test]
    fn data_loss_estimate_prefers_the_rpo_lag() {
        assert_eq!(
            obs(2_000, None).data_loss_estimate(),
            Duration::from_secs(2)
        );
        assert_eq!(
            obs(2_000, Some(900)).data_loss_estimate(),
            Duration::from_millis(900)
        );
        assert_eq!(
            obs(2_000, Some(4_000)).data_loss_estimate(),
            Duration::from_secs(4)
        );
    }
}
