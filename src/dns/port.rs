//! What the DNS switchover needs from Route 53, in domain terms.
//!
//! The stage planner decides weights; the steps apply them through [`DnsApi`]: read the zone's
//! record sets, submit one change batch per stage (Route 53's API rate is a token bucket per
//! account, so a stage is one call, not one call per record), poll the change until `INSYNC`, and
//! check the targets' health checks. The AWS adapter implements the trait.

use async_trait::async_trait;
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;

use crate::health::HealthCheckStatusApi;
use crate::port::Result;

/// DNS record type. Only the types failoverd has reason to touch are named; anything else is
/// carried through unchanged as [`RecordType::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecordType {
    A,
    Aaaa,
    Cname,
    Txt,
    Other(String),
}

impl RecordType {
    pub fn as_str(&self) -> &str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Cname => "CNAME",
            Self::Txt => "TXT",
            Self::Other(other) => other,
        }
    }

    pub fn parse(value: &str) -> Self {
        match value {
            "A" => Self::A,
            "AAAA" => Self::Aaaa,
            "CNAME" => Self::Cname,
            "TXT" => Self::Txt,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Role of a record in failover routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailoverRole {
    Primary,
    Secondary,
}

/// How Route 53 chooses between record sets of the same name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// One record set per name and type.
    Simple,
    /// Weighted routing; Route 53 weights are `0..=255`.
    Weighted { weight: u8 },
    /// Failover routing (active/passive on a health check).
    Failover(FailoverRole),
    /// A routing policy failoverd does not manage (latency, geo, ...). Read back so the planner can
    /// see it; the adapter refuses to write it.
    Unmanaged(String),
}

/// Where a record set points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordTarget {
    /// Plain values (IP addresses, host names, TXT strings) with a TTL.
    Values { ttl: Duration, values: Vec<String> },
    /// A Route 53 alias to an AWS resource (load balancer, another record).
    Alias {
        hosted_zone_id: String,
        dns_name: String,
        evaluate_target_health: bool,
    },
}

/// One record set of a hosted zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSet {
    /// Fully qualified name, as Route 53 returns it (with the trailing dot).
    pub name: String,
    pub record_type: RecordType,
    /// Distinguishes record sets of the same name and type under weighted/failover routing.
    pub set_identifier: Option<String>,
    pub routing: Routing,
    pub target: RecordTarget,
    pub health_check_id: Option<String>,
}

impl RecordSet {
    /// The TTL resolvers may cache this record for (aliases inherit their target's; Route 53 uses
    /// 60 s for alias targets it controls, which is what the switchover waits after `INSYNC`).
    pub fn ttl(&self) -> Duration {
        match &self.target {
            RecordTarget::Values { ttl, .. } => *ttl,
            RecordTarget::Alias { .. } => ALIAS_EFFECTIVE_TTL,
        }
    }
}

/// Route 53 alias records have no TTL of their own; AWS documents 60 seconds for the alias targets
/// a switchover points at (load balancers, other records).
pub const ALIAS_EFFECTIVE_TTL: Duration = Duration::from_secs(60);

/// What to do with a record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeAction {
    /// Create the record set; fails if it exists.
    Create,
    /// Create or replace the record set.
    Upsert,
    /// Delete the record set; it must match the current one exactly.
    Delete,
}

/// One entry of a change batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChange {
    pub action: ChangeAction,
    pub record_set: RecordSet,
}

/// Propagation state of a change batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeStatus {
    /// Not yet applied to all Route 53 authoritative servers.
    Pending,
    /// Applied everywhere; resolvers may still serve the old answer for one TTL.
    InSync,
}

/// A submitted change batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeInfo {
    /// The change id (without the `/change/` prefix Route 53 sometimes adds).
    pub id: String,
    pub status: ChangeStatus,
    pub submitted_at: Option<OffsetDateTime>,
}

/// Route 53, as the DNS switchover sees it. The API is global, so one instance serves both regions.
/// It also reports health-check status (the switchover checks the new targets' health before
/// shifting weight to them).
#[async_trait]
pub trait DnsApi: HealthCheckStatusApi + Send + Sync {
    /// Every record set of the hosted zone, following Route 53's pagination. A zone that does not
    /// exist is `ErrorKind::NotFound` (`NoSuchHostedZone`).
    async fn list_record_sets(&self, hosted_zone_id: &str) -> Result<Vec<RecordSet>>;

    /// Submits `changes` as one atomic change batch.
    async fn change_record_sets(
        &self,
        hosted_zone_id: &str,
        comment: Option<&str>,
        changes: &[RecordChange],
    ) -> Result<ChangeInfo>;

    /// Current propagation state of a change (`NoSuchChange` is `ErrorKind::NotFound`).
    async fn change_status(&self, change_id: &str) -> Result<ChangeInfo>;
}
