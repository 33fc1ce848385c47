//! The operator surfaces of the real binary: the HTTP API, the runs API, the command line, and
//! configuration loading. One module per subject.

#[path = "../support/mod.rs"]
mod support;

mod api;
mod cli;
mod cli_client;
mod config_fuzz;
mod config_validation;
mod contract;
mod report_api;
mod runs_api;
