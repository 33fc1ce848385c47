//! Drift: a component of the world that disagrees with the recorded active region.
//!
//! The rule, per observation:
//! - [`Says::Region`] of another region than the recorded active one (including a region outside
//!   the pair) is drift: e.g. the writer was moved with `aurora-switchover` but the traffic was
//!   not, so a failover "to the standby" would move the traffic to where the writer already is
//!   and the writer away from it;
//! - [`Says::Split`] is drift: traffic split evenly between the regions, or a global database
//!   whose writer is moving or absent, is in neither region;
//! - [`Says::Unknown`] is **not** drift by itself: an API that cannot be reached (most often
//!   because the hot region is the one being lost) must not block the failover that is meant to
//!   get away from it. It is shown in `/v1/status` next to the drift.
//!
//! Pure, so every case is tested here; the observer applies it to each set of observations.

use serde::Serialize;

use super::observation::{
    Observation, Says, COMPONENT_COGNITO, COMPONENT_DNS, COMPONENT_WORKLOADS,
};

/// One component that disagrees with the recorded active region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub component: String,
    pub says: Says,
    /// One sentence naming the component, what it says and the recorded active region.
    pub message: String,
}

/// The drift among `observations`, in their order, against the recorded `active` region.
pub fn drift(active: &str, observations: &[Observation]) -> Vec<Drift> {
    observations
        .iter()
        .filter_map(|o| {
            let message = match &o.says {
                Says::Region(region) if region == active => return None,
                Says::Unknown(_) => return None,
                Says::Region(region) => format!(
                    "{}: {} {region} but the recorded active region is {active}",
                    o.component,
                    where_it_is(&o.component)
                ),
                Says::Split(how) => format!(
                    "{}: {how}, so it is in neither region while the recorded active region is \
                     {active}",
                    o.component
                ),
            };
            Some(Drift {
                component: o.component.clone(),
                says: o.says.clone(),
                message,
            })
        })
        .collect()
}

/// The drift as one line for the failover policy (`None`: no drift).
pub fn summary(drift: &[Drift]) -> Option<String> {
    (!drift.is_empty()).then(|| {
        drift
            .iter()
            .map(|d| d.message.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// "the writer is in", "the traffic goes to"...: what being in a region means for `component`.
fn where_it_is(component: &str) -> &'static str {
    match component {
        COMPONENT_DNS => "the traffic goes to",
        COMPONENT_COGNITO => "users are copied from",
        COMPONENT_WORKLOADS => "the workloads run in",
        c if c.starts_with("aurora:") => "the writer is in",
        _ => "it says",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::observation::aurora_component;
    use time::OffsetDateTime;

    const ACTIVE: &str = "us-east-1";
    const STANDBY: &str = "us-west-2";

    fn obs(component: &str, says: Says) -> Observation {
        Observation {
            component: component.to_owned(),
            says,
            detail: String::new(),
            observed_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn region(r: &str) -> Says {
        Says::Region(r.to_owned())
    }

    #[test]
    fn a_consistent_world_has_no_drift() {
        let world = [
            obs(COMPONENT_DNS, region(ACTIVE)),
            obs(&aurora_component("lab-global"), region(ACTIVE)),
            obs(COMPONENT_COGNITO, region(ACTIVE)),
        ];
        assert_eq!(drift(ACTIVE, &world), []);
        assert_eq!(drift(ACTIVE, &[]), []);
        assert_eq!(summary(&[]), None);
    }

    #[test]
    fn each_component_in_the_other_region_is_drift_with_its_own_sentence() {
        let cases = [
            (
                COMPONENT_DNS.to_owned(),
                "dns: the traffic goes to us-west-2 but the recorded active region is us-east-1",
            ),
            (
                aurora_component("lab-global"),
                "aurora:lab-global: the writer is in us-west-2 but the recorded active region is us-east-1",
            ),
            (
                COMPONENT_COGNITO.to_owned(),
                "cognito: users are copied from us-west-2 but the recorded active region is us-east-1",
            ),
            (
                COMPONENT_WORKLOADS.to_owned(),
                "workloads: the workloads run in us-west-2 but the recorded active region is us-east-1",
            ),
            (
                "queue".to_owned(),
                "queue: it says us-west-2 but the recorded active region is us-east-1",
            ),
        ];
        for (component, message) in cases {
            let found = drift(ACTIVE, &[obs(&component, region(STANDBY))]);
            assert_eq!(
                found,
                [Drift {
                    component: component.clone(),
                    says: region(STANDBY),
                    message: message.to_owned(),
                }]
            );
        }
    }

    #[test]
    fn a_region_outside_the_pair_is_drift() {
        let found = drift(ACTIVE, &[obs(COMPONENT_DNS, region("eu-west-1"))]);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("eu-west-1"), "{found:?}");
    }

    #[test]
    fn a_split_is_drift_and_says_how() {
        let split =
            Says::Split("the traffic is split evenly between us-east-1 and us-west-2".into());
        let found = drift(ACTIVE, &[obs(COMPONENT_DNS, split.clone())]);
        assert_eq!(
            found,
            [Drift {
                component: COMPONENT_DNS.into(),
                says: split,
                message: "dns: the traffic is split evenly between us-east-1 and us-west-2, so it \
                          is in neither region while the recorded active region is us-east-1"
                    .into(),
            }]
        );
    }

    #[test]
    fn unknown_is_not_drift() {
        let world = [
            obs(COMPONENT_DNS, Says::Unknown("no answer within 10s".into())),
            obs(&aurora_component("g"), Says::Unknown("throttled".into())),
        ];
        assert_eq!(drift(ACTIVE, &world), []);
    }

    #[test]
    fn only_the_disagreeing_components_drift_in_observation_order() {
        let world = [
            obs(COMPONENT_DNS, region(ACTIVE)),
            obs(&aurora_component("b"), region(STANDBY)),
            obs(COMPONENT_COGNITO, Says::Unknown("paused".into())),
            obs(&aurora_component("a"), Says::Split("switching-over".into())),
        ];
        let found = drift(ACTIVE, &world);
        let components: Vec<&str> = found.iter().map(|d| d.component.as_str()).collect();
        assert_eq!(components, ["aurora:b", "aurora:a"]);
        let line = summary(&found).expect("drift");
        assert_eq!(line, format!("{}; {}", found[0].message, found[1].message));
    }

    #[test]
    fn the_same_world_against_the_other_active_region() {
        // After a completed failover the record says us-west-2: the old consistent world drifts
        // everywhere, and a world that moved completely does not.
        let old = [
            obs(COMPONENT_DNS, region(ACTIVE)),
            obs(&aurora_component("g"), region(ACTIVE)),
        ];
        assert_eq!(drift(STANDBY, &old).len(), 2);
        let moved = [
            obs(COMPONENT_DNS, region(STANDBY)),
            obs(&aurora_component("g"), region(STANDBY)),
        ];
        assert_eq!(drift(STANDBY, &moved), []);
    }
}
