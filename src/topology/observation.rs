//! What one component of the world says about which region is active, and the port through
//! which it is read.
//!
//! A component is one thing that can be in one region or the other: the DNS records (where the
//! traffic goes), each Aurora global database (where its writer is), the Cognito sync (which pool
//! it copies from), and the workloads (where they are scaled up). Each is
//! read by an [`ObservedComponent`] that lives next to its own domain (`dns`, `replication`,
//! `cognito`, `gitops`), because those modules build on this one (the region pair, the
//! active region): this module only defines what a reading is and compares readings.

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;

/// The component name of the DNS records' routing.
pub const COMPONENT_DNS: &str = "dns";
/// The component name of the Cognito sync direction.
pub const COMPONENT_COGNITO: &str = "cognito";
/// The component name of the GitOps workloads (the region where they are scaled up; read by
/// `gitops::observed`).
pub const COMPONENT_WORKLOADS: &str = "workloads";

/// The component name of an Aurora global database: `aurora:<global cluster>`.
pub fn aurora_component(global_cluster: &str) -> String {
    format!("aurora:{global_cluster}")
}

/// Which region a component says is active.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Says {
    /// The component is in this region (it may be outside the pair).
    Region(String),
    /// The component is in neither region, or in both: traffic split evenly, a writer moving or
    /// absent. The text says how.
    Split(String),
    /// The component could not be read (an API error or no answer in time), or has no direction
    /// (a paused sync). The text says why. Not drift by itself: see [`super::drift`].
    Unknown(String),
}

impl Says {
    /// `us-east-1`, `split: ...`, `unknown: ...`.
    pub fn describe(&self) -> String {
        match self {
            Says::Region(region) => region.clone(),
            Says::Split(how) => format!("split: {how}"),
            Says::Unknown(why) => format!("unknown: {why}"),
        }
    }
}

/// One component's reading at one time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Observation {
    /// `dns`, `aurora:<global cluster>`, `cognito`.
    pub component: String,
    pub says: Says,
    /// What was read, for a person (the records' weights, the writer's ARN...).
    pub detail: String,
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
}

/// What a successful read returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    pub says: Says,
    pub detail: String,
}

/// Reads one component of the world. Implemented next to each domain (the DNS routing in `dns`,
/// the Aurora writer in `replication`, the sync direction in `cognito`) and handed to the
/// [`TopologyView`](super::TopologyView) by the daemon.
#[async_trait]
pub trait ObservedComponent: Send + Sync {
    /// The component's name (`dns`, `aurora:<global cluster>`, `cognito`, `workloads`).
    fn component(&self) -> String;

    /// Reads the component once. An error (naming what could not be read) becomes an
    /// [`Says::Unknown`] observation; the observer bounds the call with its own timeout, so an
    /// implementation need not, but should not retry for long.
    async fn read(&self) -> Result<Reading, String>;
}
