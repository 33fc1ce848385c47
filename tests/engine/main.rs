//! The durable run engine: the runner through its handle, the SQLite store, deterministic
//! simulation, and the idempotency/unwind helpers of `engine::testing` (cargo feature `testing`).
//! One module per subject.

mod engine_ha_sim;
mod engine_helpers;
mod engine_outage;
mod engine_runner;
mod engine_sim;
mod engine_sqlite;
