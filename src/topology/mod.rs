//! Topology: the region pair, which region is active, and (as the failover plans grow) what the
//! world says about it.
//!
//! - [`pair`] — the two regions of the pair and "the other region";
//! - [`active`] — the durably recorded active region and the views other components follow;
//! - [`metrics`] — `failoverd_region_active{region}`;
//! - [`recorder`] — keeps the record in step with completed traffic moves, from the engine's run
//!   updates.

pub mod active;
pub mod metrics;
pub mod pair;
pub mod recorder;

pub use active::{
    ActiveRegion, ActiveRegionError, ActiveRegionRecord, ActiveState, ACTIVE_REGION_FILE,
};
pub use metrics::ActiveRegionGauge;
pub use pair::RegionPair;
pub use recorder::{ActiveRegionRecorder, MovesTraffic};
