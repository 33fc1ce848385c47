//! Health of the hot region: probes, the pure verdict (quorum + hysteresis) and the monitor task.
//!
//! - `port`: what the probes need from AWS (Route 53 health-check status, CloudWatch alarm
//!   state); the AWS adapter implements it.
//! - [`probe`]: one bounded check of one target (HTTP(S), TCP, DNS, Route 53, CloudWatch).
//! - [`verdict`]: the pure per-probe hysteresis and per-region quorum.
//! - [`monitor`]: the tasks that run the probes and keep the verdicts; its handle feeds
//!   `/v1/status` and the failover policy (`crate::policy`).
//! - [`metrics`]: `failoverd_probe_*` and `failoverd_region_health`.

pub mod metrics;
pub mod monitor;
pub mod port;
pub mod probe;
pub mod verdict;

pub use monitor::{
    HealthHandle, HealthMonitor, HealthSnapshot, HealthVerdicts, MonitorError, ProbeStatus,
    RegionStatus,
};
pub use port::{
    AlarmObservation, AlarmState, AlarmStateApi, CheckerObservation, HealthCheckStatus,
    HealthCheckStatusApi,
};
pub use probe::{HealthPorts, ProbeSpecError};
pub use verdict::{CheckResult, Health, ProbeState, RegionVerdict};
