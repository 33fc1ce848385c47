//! failoverd keeps a cold AWS region ready to take over from the hot one, and performs the takeover.
//!
//! The binary (`src/main.rs`) only parses the command line and calls into this library. Modules:
//! configuration (`config`), the HTTP API (`api`), telemetry, the durable run engine (`engine`), the
//! plans built on it (`plans`), and the AWS adapters (`aws`) implementing the ports that the domain
//! modules define.
#![forbid(unsafe_code)]

pub mod config;
pub mod api;
pub mod cli;
pub mod daemon;
pub mod status;
pub mod telemetry;
pub mod client;
pub mod aws;
pub mod dns;
pub mod replication;
pub mod cognito;
pub mod health;
pub mod policy;
pub mod engine;
pub mod plans;
pub mod shutdown;
pub mod run_watch;
