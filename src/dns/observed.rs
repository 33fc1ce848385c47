//! The DNS component of the observed topology: which region the configured records send the
//! traffic to, read live from Route 53 through [`DnsApi`].
//!
//! The records are located and checked exactly as the switchover does ([`current_routing`]), and
//! the region is the one most of the traffic goes to ([`active_region`]): an even split (a
//! switchover stopped at 50 %) is [`Says::Split`]. Records in a shape the planner refuses (a set
//! deleted behind failoverd's back, an unmanaged weighted set) cannot say a region: the read
//! fails with the planner's sentence and the component is shown unknown — the DNS plan refuses
//! to run on them anyway.

use std::sync::Arc;

use async_trait::async_trait;

use super::planner::{active_region, current_routing, routing_lines, zone_ids, LiveRecords};
use super::port::DnsApi;
use crate::config::DnsConfig;
use crate::topology::{ObservedComponent, Reading, RegionPair, Says, COMPONENT_DNS};

pub struct TrafficObservation {
    dns: Arc<DnsConfig>,
    pair: RegionPair,
    api: Arc<dyn DnsApi>,
}

impl TrafficObservation {
    /// `None` when `dns.records` is empty: there is no traffic to locate.
    pub fn new(dns: Arc<DnsConfig>, pair: RegionPair, api: Arc<dyn DnsApi>) -> Option<Self> {
        (!dns.records.is_empty()).then_some(Self { dns, pair, api })
    }
}

#[async_trait]
impl ObservedComponent for TrafficObservation {
    fn component(&self) -> String {
        COMPONENT_DNS.to_owned()
    }

    async fn read(&self) -> Result<Reading, String> {
        let mut live = LiveRecords::new();
        for zone in zone_ids(&self.dns) {
            let sets =
                self.api.list_record_sets(&zone).await.map_err(|e| {
                    format!("cannot list the record sets of hosted zone {zone}: {e}")
                })?;
            live.insert(zone, sets);
        }
        let routing = current_routing(&self.dns, &self.pair, &live).map_err(|e| e.to_string())?;
        let says = match active_region(&routing, &self.pair) {
            Some(region) => Says::Region(region),
            None => Says::Split(format!(
                "the traffic is split evenly between {} and {}",
                self.pair.hot(),
                self.pair.cold()
            )),
        };
        Ok(Reading {
            says,
            detail: routing_lines(&routing).join("; "),
        })
    }
}
