//! failoverd's subsystems wired as the daemon wires them, against the test bed, fakes, real
//! local servers and PostgreSQL: Cognito sync, DNS steps/switchover/verification and the lab's
//! traffic switch, replication tracking and the Aurora steps, health probes, the policy loop.
//! One module per subject.

#[path = "../support/mod.rs"]
mod support;

mod cognito_sync;
mod dns_lab;
mod dns_steps;
mod dns_switchover;
mod dns_verify;
mod gitops;
mod health_probes;
mod health_tls;
mod kube_state;
mod policy_loop;
mod replication_aurora;
mod replication_heartbeat;
mod replication_steps;
mod takeover;
mod topology_observer;
