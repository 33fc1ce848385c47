//! Aurora Global Database takeover: the engine steps that move a global database's writer to the
//! target region. Tracking the database (topology, lag) is `crate::replication`'s job; the steps
//! read its lag observations and call its port (`replication::port::GlobalDatabaseApi`).
//!
//! Three steps per global database, in three phases of the plan (see `plans::aurora`):
//!
//! 1. [`AuroraPrecheck`] (no side effect): the target region has a member; for a *graceful*
//!    switchover the newest lag observation must be fresh and within `max_lag` — a switchover
//!    with a secondary far behind keeps writes blocked while it catches up.
//! 2. [`AuroraPromote`] (irreversible): `SwitchoverGlobalCluster` (graceful, RPO 0) or
//!    `FailoverGlobalCluster` with `AllowDataLoss` (ungraceful), which records the estimated
//!    data-loss window from the last lag observation in its output and the drill measurements.
//!    A promotion cannot be undone, so the step has no compensation: unwinding past it stops the
//!    run for an operator.
//! 3. [`AuroraWaitWriter`] (no side effect): polls until the target cluster is the writer and the
//!    global database is `available` again.
//!
//! Crash safety: `verify` of [`AuroraPromote`] reads the live topology. If the target already is
//! the writer, or a switchover/failover towards it is in progress, the promotion took effect and is
//! never requested again — the in-doubt case after a crash between `StepStarted` and
//! `StepSucceeded`. `execute` asks the same question first, so it is idempotent as well.
//!
//! All calls go to the *target* region's API: for an ungraceful failover the old writer's
//! region is presumed gone.

pub mod steps;

pub use steps::{
    promotion_state, AuroraPrecheck, AuroraPromote, AuroraStepDeps, AuroraTarget, AuroraWaitWriter,
    Promotion, PromotionState, DEFAULT_POLL_INTERVAL, DEFAULT_PROMOTION_TIMEOUT,
};
