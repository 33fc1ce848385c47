//! `failoverd_region_active{region}`: 1 for the region recorded as receiving the traffic, 0 for
//! the standby.

use prometheus::{IntGaugeVec, Opts, Registry};

use super::active::ActiveRegion;
use super::pair::RegionPair;
use crate::shutdown::StopSignal;

pub struct ActiveRegionGauge {
    gauge: IntGaugeVec,
    pair: RegionPair,
}

impl ActiveRegionGauge {
    pub fn register(registry: &Registry, pair: &RegionPair) -> Result<Self, prometheus::Error> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "failoverd_region_active",
                "1 for the region DNS sends traffic to (as recorded by failoverd), 0 for the standby.",
            ),
            &["region"],
        )?;
        registry.register(Box::new(gauge.clone()))?;
        Ok(Self {
            gauge,
            pair: pair.clone(),
        })
    }

    fn set(&self, active: &str) {
        for r in self.pair.regions() {
            self.gauge
                .with_label_values(&[r])
                .set(i64::from(r == active));
        }
    }

    /// Sets the gauge now and after every change, until `stop` fires.
    pub async fn follow(self, active: ActiveRegion, stop: StopSignal) {
        active.follow(stop, |s| self.set(&s.active)).await;
    }
}
