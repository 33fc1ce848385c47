//! `failoverd_topology_drift{component}`: 1 while the component disagrees with the recorded
//! active region, 0 while it agrees or cannot be read (unknown is not drift, see
//! [`super::drift`]). A series appears once its component has been observed.

use prometheus::{IntGaugeVec, Opts, Registry};

use super::snapshot::TopologySnapshot;
use super::view::TopologyView;
use crate::shutdown::StopSignal;

pub struct DriftGauge {
    gauge: IntGaugeVec,
}

impl DriftGauge {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = IntGaugeVec::new(
            Opts::new(
                "failoverd_topology_drift",
                "1 while the component (dns, aurora:<global cluster>, cognito) says another region \
                 than the recorded active region, or is split between the regions.",
            ),
            &["component"],
        )?;
        registry.register(Box::new(gauge.clone()))?;
        Ok(Self { gauge })
    }

    fn set(&self, snapshot: &TopologySnapshot) {
        for o in &snapshot.observations {
            self.gauge
                .with_label_values(&[o.component.as_str()])
                .set(i64::from(snapshot.drifts(&o.component)));
        }
    }

    /// Sets the gauge from every new snapshot, until `stop` fires.
    pub async fn follow(self, view: TopologyView, stop: StopSignal) {
        view.follow(stop, |s| self.set(s)).await;
    }
}
