//! Cognito user sync from the hot pool to the cold pool: the pure diff, the quota-aware rate
//! limiter and the reconciler.
//!
//! `port` defines what the sync needs from a user pool ([`UserDirectory`]) and the bundle the
//! component is built from ([`CognitoPorts`]); the AWS adapter implements and builds them.
//!
//! - `diff`: what to write to the cold pool, as pure functions (matching, copyable attributes,
//!   the deletion guard).
//! - `quota`: one token bucket per Cognito quota category, backoff on throttling.
//! - `sync`: one pass — streams the hot pool page by page and applies the diff.
//! - `checkpoint`: where a pass records its progress so that a crash resumes it.
//! - `replica`: native multi-Region replica mode (status, the health-check failover step).
//! - `metrics`, `monitor`: the daemon component ([`monitor::CognitoMonitor::spawn`]) and its
//!   handle for `/v1/status` and the plans (`crate::plans::cognito`); `direction`: the sync
//!   pauses while the configured hot region is not the active one; `observed`: the sync's
//!   direction for the observed topology (`crate::topology`).

pub mod checkpoint;
pub mod diff;
pub mod direction;
pub mod metrics;
pub mod monitor;
pub mod observed;
pub mod port;
pub mod quota;
pub mod replica;
pub mod sync;

pub use port::{
    CognitoPorts, Group, NewUser, Page, ReplicaRole, ReplicaStatus, User, UserDirectory, UserPool,
    UserPoolReplica, MAX_PAGE_SIZE,
};
