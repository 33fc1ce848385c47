//! The automatic-failover policy: whether to start a failover now, and why (not).
//!
//! Failing over too eagerly loses data and causes the outage it meant to end; failing over too
//! timidly lets an outage run on (DESIGN.md §1.5). So the decision is one pure function,
//! [`decide`], over everything it depends on, with a fixed vocabulary of [`Reason`]s that is
//! logged, counted (`failoverd_auto_failover_decisions_total{decision,reason}`) and shown in
//! `/v1/status`. It starts the configured plan only when **all** of these hold:
//!
//! 1. no run is active (one run per region pair);
//! 2. the hot region's verdict is `unhealthy` (quorum + hysteresis, `crate::health::verdict`)
//!    and has been for `policy.min_unhealthy_for`;
//! 3. the cold region's verdict is `healthy` — failing over into a sick region helps nobody;
//! 4. no topology drift is reported (the recorded active region disagrees with the world, so
//!    "hot" may not be what we think it is);
//! 5. the last known replication lag is known and within `policy.max_data_loss` — an unknown lag
//!    is never a guess: when it is the **only** unmet condition, the decision is escalated to a
//!    person instead of held while the region stays down — the run is created waiting for
//!    approval with `accept_data_loss` (approving it accepts the loss; the failover plan's
//!    data-loss check then warns instead of refusing);
//! 6. the cooldown since the last failover has passed, or an operator acknowledged it
//!    (anti-flapping: two regions failing over back and forth is worse than either);
//! 7. the previous attempt to start a run did not fail moments ago (a short backoff);
//! 8. the mode is not `off` (`approval_required` creates the run waiting for approval,
//!    `automatic` starts it).
//!
//! Every unmet condition is listed in [`Decision::blockers`] (so status shows what *would* block a
//! failover even while the hot region is healthy); the first in the order above is the
//! [`Decision::reason`].
//!
//! [`PolicyLoop`] drives the function: it re-evaluates on every verdict change, every change of
//! the facts other components feed it through [`PolicyHandle`] (replication lag, drift, active
//! region, acknowledgements), and on a one-second tick (for the time-based conditions), and starts
//! runs through the [`RunStarter`] trait, implemented over the engine by [`engine`].
//!
//! Files:
//! - [`decision`]: the pure [`decide`] and its vocabulary ([`Reason`], [`Action`], [`Decision`],
//!   [`PolicyRules`], [`PolicyInput`]);
//! - [`port`]: [`RunStarter`], what the policy needs from the engine;
//! - [`handle`]: [`PolicyHandle`], the facts it is fed and the status records it keeps;
//! - [`task`]: [`PolicyLoop`], the task that evaluates and acts;
//! - [`engine`]: [`engine::EngineRunStarter`], what an automatic failover run is, and the
//!   followers that keep the policy's view of the engine and of the active region current.

pub mod decision;
pub mod engine;
pub mod handle;
pub mod port;
pub mod task;

pub use decision::{decide, Action, Decision, PolicyInput, PolicyRules, Reason, ReplicationLag};
pub use handle::{DecisionRecord, PolicyHandle, PolicyStatus, StartFailure, StartRecord};
pub use port::{RunStartError, RunStarter};
pub use task::{PolicyError, PolicyLoop, EVALUATION_TICK, START_RETRY_BACKOFF, START_TIMEOUT};
