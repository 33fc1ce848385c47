//! Health of the hot region: probes, the pure verdict (quorum + hysteresis) and the monitor task.
//!
//! `port` defines what the probes need from AWS (Route 53 health-check status, CloudWatch alarm
//! state); `crate::aws` implements it.

pub mod port;

pub use port::{
    AlarmObservation, AlarmState, AlarmStateApi, CheckerObservation, HealthCheckStatus,
    HealthCheckStatusApi,
};
