//! The DNS component of the observed topology: which region the configured records send the
//! traffic to, read live from Route 53 through [`DnsApi`].
//!
//! The records are located and checked exactly as the switchover does ([`current_routing`]), and
//! the region is the one most of the traffic goes to ([`active_region`]): an even split (a
//! switchover stopped at 50 %) is [`Says::Split`]. Records in a shape the planner refuses (a set
//! deleted behind failoverd's back, an unmanaged weighted set) cannot say a region: the read
//! fails with the planner's sentence and the component is shown unknown — the DNS plan refuses
//! to run on them anyway.
//!
//! In `dns.mode: data_plane` the signal is read too: a drained region gets no traffic whatever its
//! weights ([`drained_routing`]), and while Route 53's API cannot list the records a signal that
//! drains one region still says where the traffic goes.

use std::sync::Arc;

use async_trait::async_trait;

use super::planner::{active_region, current_routing, routing_lines, zone_ids, LiveRecords};
use super::port::DnsApi;
use super::signal::{drained_regions, drained_routing, Drain, Signals};
use crate::config::DnsConfig;
use crate::topology::{ObservedComponent, Reading, RegionPair, Says, COMPONENT_DNS};

pub struct TrafficObservation {
    dns: Arc<DnsConfig>,
    pair: RegionPair,
    api: Arc<dyn DnsApi>,
    /// `dns.mode: data_plane`: a drained region gets no traffic, whatever the weights say.
    signals: Option<Signals>,
    /// Bound on each of the two reads (the records, the signals), within the observer's own.
    budget: std::time::Duration,
}

impl TrafficObservation {
    /// `None` when `dns.records` is empty: there is no traffic to locate.
    pub fn new(dns: Arc<DnsConfig>, pair: RegionPair, api: Arc<dyn DnsApi>) -> Option<Self> {
        (!dns.records.is_empty()).then_some(Self {
            dns,
            pair,
            api,
            signals: None,
            budget: std::time::Duration::from_secs(10),
        })
    }

    /// Read the data-plane signal too (`dns.mode: data_plane`), each read (the records, the
    /// signals) within `budget`: a Route 53 API that blackholes must not hide the signal.
    pub fn with_signals(mut self, signals: Option<Signals>, budget: std::time::Duration) -> Self {
        self.signals = signals;
        self.budget = budget;
        self
    }

    async fn routing(&self) -> Result<Vec<super::planner::SetRouting>, String> {
        let mut live = LiveRecords::new();
        for zone in zone_ids(&self.dns) {
            let sets =
                self.api.list_record_sets(&zone).await.map_err(|e| {
                    format!("cannot list the record sets of hosted zone {zone}: {e}")
                })?;
            live.insert(zone, sets);
        }
        current_routing(&self.dns, &self.pair, &live).map_err(|e| e.to_string())
    }
}

#[async_trait]
impl ObservedComponent for TrafficObservation {
    fn component(&self) -> String {
        COMPONENT_DNS.to_owned()
    }

    async fn read(&self) -> Result<Reading, String> {
        let (routing, drains) = match &self.signals {
            None => (self.routing().await, None),
            Some(signals) => {
                let records = async {
                    tokio::time::timeout(self.budget, self.routing())
                        .await
                        .unwrap_or_else(|_| {
                            Err(format!(
                                "the records were not read within {:?}",
                                self.budget
                            ))
                        })
                };
                let (routing, drains) = tokio::join!(records, signals.drains(self.budget));
                (routing, Some(drains))
            }
        };
        let drained = drains.as_ref().map(drained_regions).unwrap_or_default();
        let signal_line = drains.as_ref().map(|d| {
            d.iter()
                .map(|(region, drain)| match drain {
                    Drain::Drained => format!("{region} drained by the data-plane signal"),
                    Drain::Served => format!("{region} served"),
                    Drain::Unknown(why) => format!("{region}'s signal unknown ({why})"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        });
        let routing = match routing {
            Ok(routing) => drained_routing(&routing, &drained),
            // Route 53's control plane is out, but the signal alone says where the traffic goes
            // when it drains exactly one region.
            Err(e) if drained.len() == 1 => {
                let region = drained.iter().next().cloned().unwrap_or_default();
                let to = self.pair.other(&region).unwrap_or_default().to_owned();
                return Ok(Reading {
                    says: Says::Region(to),
                    detail: format!("{}; records not read: {e}", signal_line.unwrap_or_default()),
                });
            }
            Err(e) => return Err(e),
        };
        let says = match active_region(&routing, &self.pair) {
            Some(region) => Says::Region(region),
            None => Says::Split(format!(
                "the traffic is split evenly between {} and {}",
                self.pair.hot(),
                self.pair.cold()
            )),
        };
        let mut detail = routing_lines(&routing).join("; ");
        if let Some(line) = signal_line {
            detail = format!("{detail}; {line}");
        }
        Ok(Reading { says, detail })
    }
}
