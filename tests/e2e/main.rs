//! End to end: the lab (the real binary against the emulated two-region AWS) and the alert rules
//! (through `promtool` and a real Prometheus server). One module per subject.

#[path = "../support/mod.rs"]
mod support;

mod alerts_prometheus;
mod alerts_promtool;
mod lab_e2e;
