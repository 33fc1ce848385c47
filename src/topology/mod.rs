//! Topology: the region pair, which region is active, and what the world says about it.
//!
//! - [`pair`] — the two regions of the pair and "the other region";
//! - [`active`] — the durably recorded active region and the views other components follow;
//! - [`metrics`] — `failoverd_region_active{region}`;
//! - [`recorder`] — keeps the record in step with completed traffic moves, from the engine's run
//!   updates;
//! - [`observation`] — what a component of the world says ([`Says`], [`Observation`]) and the
//!   port that reads it ([`ObservedComponent`]; the readers live with their domains: `dns`,
//!   `replication`, `cognito`);
//! - [`drift`] — the pure comparison of the observations with the recorded active region;
//! - [`snapshot`], [`view`] — the observed topology as `/v1/status`, the policy and the plans see
//!   it, and the background observation that keeps it current;
//! - [`drift_gauge`] — `failoverd_topology_drift{component}`.

pub mod active;
pub mod drift;
pub mod drift_gauge;
pub mod metrics;
pub mod observation;
pub mod pair;
pub mod recorder;
pub mod snapshot;
pub mod view;

pub use active::{
    ActiveRegion, ActiveRegionError, ActiveRegionRecord, ActiveState, ACTIVE_REGION_FILE,
};
pub use drift::{drift, Drift};
pub use drift_gauge::DriftGauge;
pub use metrics::ActiveRegionGauge;
pub use observation::{
    aurora_component, Observation, ObservedComponent, Reading, Says, COMPONENT_COGNITO,
    COMPONENT_DNS, COMPONENT_WORKLOADS,
};
pub use pair::RegionPair;
pub use recorder::{ActiveRegionRecorder, MovesTraffic};
pub use snapshot::TopologySnapshot;
pub use view::TopologyView;
