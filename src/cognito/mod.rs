//! Cognito user sync from the hot pool to the cold pool: the pure diff, the quota-aware rate
//! limiter and the reconciler.
//!
//! `port` defines what the sync needs from a user pool ([`UserDirectory`]); `crate::aws`
//! implements it.

pub mod checkpoint;
pub mod diff;
pub mod metrics;
pub mod monitor;
pub mod port;
pub mod quota;
pub mod replica;
pub mod sync;

pub use port::{
    Group, NewUser, Page, ReplicaRole, ReplicaStatus, User, UserDirectory, UserPool,
    UserPoolReplica, MAX_PAGE_SIZE,
};
