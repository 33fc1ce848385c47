//! DNS switchover: the pure stage planner and the Route 53 steps.
//!
//! `port` defines what the switchover needs from Route 53 ([`DnsApi`]); the AWS adapter implements it.
//! `observed` reads where the traffic goes for the observed topology (`crate::topology`).

pub mod dataplane;
pub mod observed;
pub mod planner;
pub mod port;
pub mod rate_limit;
pub mod signal;
pub mod steps;
pub mod verify;

pub use port::{
    ChangeAction, ChangeInfo, ChangeStatus, DnsApi, FailoverRole, RecordChange, RecordSet,
    RecordTarget, RecordType, Routing,
};
