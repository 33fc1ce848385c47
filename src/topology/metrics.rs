//! `failoverd_region_active{region}`: 1 for the region recorded as receiving the traffic, 0 for
//! the standby; `failoverd_region_pair_info{pair,hot,cold}`: which pair this failoverd keeps (the
//! dashboard's pair selector, and a join key for a Prometheus that watches several pairs).

use prometheus::{IntGaugeVec, Opts, Registry};

use super::active::ActiveRegion;
use super::pair::RegionPair;
use crate::shutdown::StopSignal;

/// Registers `failoverd_region_pair_info{pair,hot,cold} 1`: `pair` is the configuration's `pair`,
/// `hot` and `cold` its regions by configured role (not by which is active now).
pub fn register_pair_info(
    registry: &Registry,
    name: &str,
    pair: &RegionPair,
) -> Result<(), prometheus::Error> {
    let info = IntGaugeVec::new(
        Opts::new(
            "failoverd_region_pair_info",
            "Always 1; the labels name the region pair this failoverd keeps and its configured hot and cold regions.",
        ),
        &["pair", "hot", "cold"],
    )?;
    info.with_label_values(&[name, pair.hot(), pair.cold()])
        .set(1);
    registry.register(Box::new(info))
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_info_names_the_pair_and_its_roles() {
        let registry = Registry::new();
        register_pair_info(
            &registry,
            "shop-prod",
            &RegionPair::new("us-east-1", "us-west-2"),
        )
        .unwrap();
        let text = crate::telemetry::render(&registry).unwrap();
        assert!(
            text.contains(
                "failoverd_region_pair_info{cold=\"us-west-2\",hot=\"us-east-1\",pair=\"shop-prod\"} 1"
            ),
            "{text}"
        );
    }
}
