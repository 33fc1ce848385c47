//! failoverd keeps a cold AWS region ready to take over from the hot one, and performs the takeover.
//!
//! The binary (`src/main.rs`) only parses the command line and calls into this library. Modules:
//! configuration (`config`), the HTTP API (`api`), telemetry, the durable run engine (`engine`), the
//! plans built on it (`plans`), and the AWS adapters (`aws`) implementing the ports that the domain
//! modules define.
#![forbid(unsafe_code)]

pub mod aws;
pub mod cognito;
pub mod dns;
pub mod health;
pub mod replication;
pub mod engine;
pub mod plans;
