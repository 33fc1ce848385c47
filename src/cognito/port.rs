//! What the Cognito sync needs from a user pool, in domain terms.
//!
//! The reconciler lists both pools page by page (Cognito's `ListUsers` returns at most 60 users a
//! page, and each page costs one request of the per-category quota the rate limiter accounts for),
//! diffs them, and applies the difference to the cold pool with the admin operations below. Every
//! method maps to exactly one Cognito request so the limiter can charge it to the right quota
//! category. The AWS adapter implements [`UserDirectory`]; [`CognitoPorts`] bundles both regions'
//! directories with the checkpoint store.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

use super::checkpoint::CheckpointStore;
use super::quota::CognitoLimits;
use super::sync::DEFAULT_CONCURRENCY;
use crate::port::Result;

/// Cognito's documented page size limit for `ListUsers`, `ListGroups` and `ListUsersInGroup`.
pub const MAX_PAGE_SIZE: i32 = 60;

/// A user pool's description (the parts the sync and the monitoring use).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPool {
    pub id: String,
    pub name: Option<String>,
    pub arn: Option<String>,
    pub estimated_number_of_users: Option<u64>,
    /// Attributes a user can have written (standard and custom); the sync copies only these.
    pub mutable_attributes: Vec<String>,
    /// `username`, `email`, `phone_number`: what users sign in with.
    pub username_attributes: Vec<String>,
    pub created_at: Option<OffsetDateTime>,
    pub last_modified_at: Option<OffsetDateTime>,
}

/// A user of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    /// Attribute name to value (includes read-only ones such as `sub`).
    pub attributes: BTreeMap<String, String>,
    pub enabled: bool,
    /// `CONFIRMED`, `FORCE_CHANGE_PASSWORD`, `EXTERNAL_PROVIDER`, ...
    pub status: Option<String>,
    pub created_at: Option<OffsetDateTime>,
    pub last_modified_at: Option<OffsetDateTime>,
}

/// A group of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub description: Option<String>,
    pub precedence: Option<i32>,
    pub role_arn: Option<String>,
}

/// A user to create in the cold pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    /// Writable attributes to set.
    pub attributes: BTreeMap<String, String>,
}

/// One page of a listing, and the opaque token for the next one (`None` on the last page).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// Status of a Cognito native multi-Region replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaStatus {
    Creating,
    Inactive,
    Active,
    Deleting,
    Other(String),
}

/// Role of a Cognito native multi-Region replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaRole {
    Primary,
    Secondary,
    Other(String),
}

/// One replica of a pool that uses Cognito's native multi-Region replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPoolReplica {
    pub region: Option<String>,
    pub status: Option<ReplicaStatus>,
    pub role: Option<ReplicaRole>,
    pub user_pool_arn: Option<String>,
}

/// A Cognito user pool directory, in one region. Missing pools, users and groups are
/// `ErrorKind::NotFound` (`ResourceNotFoundException`, `UserNotFoundException`).
#[async_trait]
pub trait UserDirectory: Send + Sync {
    /// `DescribeUserPool`.
    async fn describe_pool(&self, pool_id: &str) -> Result<UserPool>;

    /// One page (at most [`MAX_PAGE_SIZE`]) of `ListUsers`.
    async fn list_users(&self, pool_id: &str, page_token: Option<&str>) -> Result<Page<User>>;

    /// One page of `ListGroups`.
    async fn list_groups(&self, pool_id: &str, page_token: Option<&str>) -> Result<Page<Group>>;

    /// One page of `ListUsersInGroup`.
    async fn list_users_in_group(
        &self,
        pool_id: &str,
        group: &str,
        page_token: Option<&str>,
    ) -> Result<Page<User>>;

    /// `AdminCreateUser` with `MessageAction=SUPPRESS`: the copy must not send the
    /// user an invitation; they already have an account in the hot pool.
    async fn create_user(&self, pool_id: &str, user: &NewUser) -> Result<User>;

    /// `AdminUpdateUserAttributes`.
    async fn update_user_attributes(
        &self,
        pool_id: &str,
        username: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<()>;

    /// `AdminEnableUser`.
    async fn enable_user(&self, pool_id: &str, username: &str) -> Result<()>;

    /// `AdminDisableUser`.
    async fn disable_user(&self, pool_id: &str, username: &str) -> Result<()>;

    /// `AdminDeleteUser`.
    async fn delete_user(&self, pool_id: &str, username: &str) -> Result<()>;

    /// `CreateGroup`.
    async fn create_group(&self, pool_id: &str, group: &Group) -> Result<()>;

    /// `AdminAddUserToGroup`.
    async fn add_user_to_group(&self, pool_id: &str, username: &str, group: &str) -> Result<()>;

    /// `AdminRemoveUserFromGroup`.
    async fn remove_user_from_group(
        &self,
        pool_id: &str,
        username: &str,
        group: &str,
    ) -> Result<()>;

    /// One page of `ListUserPoolReplicas`: the replicas of a pool that uses
    /// Cognito's native multi-Region replication.
    async fn list_user_pool_replicas(
        &self,
        pool_id: &str,
        page_token: Option<&str>,
    ) -> Result<Page<UserPoolReplica>>;
}

/// Each region's Cognito port, where the sync keeps its checkpoint, and (tests) rate overrides:
/// what [`CognitoMonitor`](super::monitor::CognitoMonitor) is built from. The AWS adapter builds it
/// with `AwsClients::cognito_ports`; tests pass fakes.
#[derive(Clone)]
pub struct CognitoPorts {
    directories: Vec<(String, Arc<dyn UserDirectory>)>,
    pub(super) checkpoint: Arc<dyn CheckpointStore>,
    pub(super) limits: Option<CognitoLimits>,
    pub(super) concurrency: usize,
}

impl CognitoPorts {
    pub fn new(
        directories: Vec<(String, Arc<dyn UserDirectory>)>,
        checkpoint: Arc<dyn CheckpointStore>,
    ) -> Self {
        Self {
            directories,
            checkpoint,
            limits: None,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }

    /// Rates other than `quota_share` of Cognito's defaults (tests, benchmarks, the lab).
    pub fn with_limits(mut self, limits: CognitoLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Writes in flight at once (default [`DEFAULT_CONCURRENCY`]).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    pub(super) fn directory(&self, region: &str) -> Option<Arc<dyn UserDirectory>> {
        self.directories
            .iter()
            .find(|(r, _)| r == region)
            .map(|(_, d)| Arc::clone(d))
    }
}
