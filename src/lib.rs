//! failoverd keeps a cold AWS region ready to take over from the hot one, and performs the takeover.
//!
//! The binary (`src/main.rs`) only parses the command line and calls into this library. Modules:
//! configuration (`config`), the HTTP API (`api`), telemetry, the durable run engine (`engine`), the
//! plans built on it (`plans`), the region pair and the recorded active region (`topology`), the
//! domain modules, and the AWS adapters (`aws`) implementing the ports that the domain modules
//! define. `daemon` is the composition root: the one place that knows both sides.
#![forbid(unsafe_code)]

// Entry points.
pub mod cli;
pub mod client;
pub mod daemon;
pub mod shutdown;

// Configuration, the HTTP API, and what the process reports about itself.
pub mod api;
pub mod config;
pub mod status;
pub mod telemetry;

// The durable run engine and the plans it runs.
pub mod engine;
pub mod plans;

// Domain modules (pure decisions and their ports) and the AWS adapters.
pub mod aurora;
pub mod aws;
pub mod cognito;
pub mod dns;
pub mod health;
pub mod policy;
pub mod replication;
pub mod topology;
