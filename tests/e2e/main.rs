//! End to end: the lab (the real binary against the emulated two-region AWS), the alert rules
//! (through `promtool` and a real Prometheus server) and the Grafana dashboard (every query
//! against a real Prometheus scraping the lab), the region takeover (`failover`, `failback`) on
//! the lab world, two replicas on the Kubernetes store, and the failover console in a real
//! browser (headless Chromium). One module per subject; `lab_support` holds what the lab modules
//! share.

#[path = "../support/mod.rs"]
mod support;

mod alerts_prometheus;
mod alerts_promtool;
mod console_e2e;
mod dashboard_e2e;
mod ha_e2e;
mod journal_e2e;
mod lab_e2e;
mod lab_support;
mod leader_e2e;
mod outage_e2e;
mod partition_e2e;
mod prometheus_support;
mod takeover_e2e;
