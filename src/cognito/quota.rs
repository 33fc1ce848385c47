//! Cognito's request-rate quotas, respected: one token bucket per quota category, and backoff when
//! Cognito answers `TooManyRequestsException` anyway.
//!
//! Cognito limits each account and region per *category* of operation, shared by every
//! application of the account — including the product's own sign-up and admin traffic. The sync
//! takes only `cognito.quota_share` of each category so that a full copy never starves the
//! application it protects. [`RateLimitedDirectory`] wraps a [`UserDirectory`]: every call takes a
//! token of its category first, and a throttled call (someone else spent the budget) is retried
//! after an exponential backoff, a bounded number of times. Timeouts and other errors are passed
//! through: whether a write took effect is decided by the next diff, not by blind retries.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::port::{Group, NewUser, Page, User, UserDirectory, UserPool, UserPoolReplica};
use crate::port::{ErrorKind, Result};
use crate::token_bucket::TokenBucket;

/// Cognito user-pool quota categories the sync uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaCategory {
    /// `ListUsers`, `ListUsersInGroup`.
    UserList,
    /// `AdminCreateUser`.
    UserCreation,
    /// `AdminUpdateUserAttributes`, `AdminEnableUser`, `AdminDisableUser`, `AdminDeleteUser`,
    /// `AdminAddUserToGroup`, `AdminRemoveUserFromGroup`.
    UserUpdate,
    /// `ListGroups`.
    UserResourceRead,
    /// `CreateGroup`.
    UserResourceUpdate,
    /// `DescribeUserPool`, `ListUserPoolReplicas`.
    UserPoolRead,
}

impl QuotaCategory {
    pub const ALL: [QuotaCategory; 6] = [
        Self::UserList,
        Self::UserCreation,
        Self::UserUpdate,
        Self::UserResourceRead,
        Self::UserResourceUpdate,
        Self::UserPoolRead,
    ];

    /// The account's default rate (requests per second) in AWS's published quota table.
    pub fn default_rps(self) -> f64 {
        match self {
            Self::UserList => 30.0,
            Self::UserCreation => 50.0,
            Self::UserUpdate => 25.0,
            Self::UserResourceRead => 50.0,
            Self::UserResourceUpdate => 25.0,
            Self::UserPoolRead => 15.0,
        }
    }

    /// Fixed metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::UserList => "user_list",
            Self::UserCreation => "user_creation",
            Self::UserUpdate => "user_update",
            Self::UserResourceRead => "user_resource_read",
            Self::UserResourceUpdate => "user_resource_update",
            Self::UserPoolRead => "user_pool_read",
        }
    }
}

/// The rates the sync may use and how it backs off.
#[derive(Clone, Debug, PartialEq)]
pub struct CognitoLimits {
    /// Requests per second per category.
    pub rates: BTreeMap<QuotaCategory, f64>,
    /// Retries of a throttled call, each after a growing backoff.
    pub throttle_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl CognitoLimits {
    /// `share` (0 < share ≤ 1, validated by config) of every default quota. Eight retries from
    /// 200 ms doubling to at most 10 s ride out about 40 s of throttling: a sync is a background
    /// job, so patience is cheap, but a persistent refusal must still surface.
    pub fn with_share(share: f64) -> Self {
        let share = if share.is_finite() && share > 0.0 {
            share.min(1.0)
        } else {
            1.0
        };
        Self {
            rates: QuotaCategory::ALL
                .iter()
                .map(|c| (*c, c.default_rps() * share))
                .collect(),
            throttle_retries: 8,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }

    /// The same rate for every category (tests and benchmarks against the emulator).
    pub fn uniform(rps: f64) -> Self {
        let mut l = Self::with_share(1.0);
        for r in l.rates.values_mut() {
            *r = rps;
        }
        l
    }

    fn rate(&self, c: QuotaCategory) -> f64 {
        self.rates.get(&c).copied().unwrap_or(c.default_rps())
    }

    fn backoff(&self, retry: u32) -> Duration {
        self.initial_backoff
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max_backoff)
    }
}

/// Calls made and throttling met, per category. Cheap to clone; clones share the counters.
#[derive(Clone, Debug, Default)]
pub struct CallCounters {
    inner: Arc<BTreeMap<QuotaCategory, (AtomicU64, AtomicU64)>>,
}

impl CallCounters {
    fn new() -> Self {
        Self {
            inner: Arc::new(
                QuotaCategory::ALL
                    .iter()
                    .map(|c| (*c, (AtomicU64::new(0), AtomicU64::new(0))))
                    .collect(),
            ),
        }
    }

    fn call(&self, c: QuotaCategory) {
        if let Some((calls, _)) = self.inner.get(&c) {
            calls.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn throttled(&self, c: QuotaCategory) {
        if let Some((_, t)) = self.inner.get(&c) {
            t.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests sent (retries included) in category `c`.
    pub fn calls(&self, c: QuotaCategory) -> u64 {
        self.inner
            .get(&c)
            .map_or(0, |(n, _)| n.load(Ordering::Relaxed))
    }

    /// Throttled answers received in category `c`.
    pub fn throttled_in(&self, c: QuotaCategory) -> u64 {
        self.inner
            .get(&c)
            .map_or(0, |(_, n)| n.load(Ordering::Relaxed))
    }

    /// Throttled answers in every category.
    pub fn throttled_total(&self) -> u64 {
        QuotaCategory::ALL
            .iter()
            .map(|c| self.throttled_in(*c))
            .sum()
    }

    /// Requests in every category.
    pub fn calls_total(&self) -> u64 {
        QuotaCategory::ALL.iter().map(|c| self.calls(*c)).sum()
    }
}

/// A [`UserDirectory`] that keeps to per-category rates and backs off when throttled. Clones share
/// the buckets: build one per region and give it to everything that calls Cognito there.
#[derive(Clone)]
pub struct RateLimitedDirectory {
    inner: Arc<dyn UserDirectory>,
    buckets: Arc<BTreeMap<QuotaCategory, TokenBucket>>,
    limits: Arc<CognitoLimits>,
    counters: CallCounters,
}

impl RateLimitedDirectory {
    pub fn new(inner: Arc<dyn UserDirectory>, limits: CognitoLimits) -> Self {
        let buckets = QuotaCategory::ALL
            .iter()
            .map(|c| {
                let rate = limits.rate(*c);
                // A burst of one second's worth (at least one request) keeps the rate honest
                // over any second-long window, which is how Cognito measures it.
                let burst = u32::try_from(rate.floor() as i64).unwrap_or(1).max(1);
                (*c, TokenBucket::new(rate, burst))
            })
            .collect();
        Self {
            inner,
            buckets: Arc::new(buckets),
            limits: Arc::new(limits),
            counters: CallCounters::new(),
        }
    }

    /// The counters of this directory (shared by its clones).
    pub fn counters(&self) -> CallCounters {
        self.counters.clone()
    }

    async fn call<T, F, Fut>(&self, category: QuotaCategory, f: F) -> Result<T>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<T>> + Send,
        T: Send,
    {
        let mut retry = 0;
        loop {
            if let Some(b) = self.buckets.get(&category) {
                b.acquire().await;
            }
            self.counters.call(category);
            match f().await {
                Err(e) if e.kind == ErrorKind::Throttled => {
                    self.counters.throttled(category);
                    if retry >= self.limits.throttle_retries {
                        return Err(e);
                    }
                    let wait = self.limits.backoff(retry);
                    tracing::debug!(
                        category = category.label(),
                        retry,
                        wait_ms = wait.as_millis() as u64,
                        "cognito throttled the sync; backing off"
                    );
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl UserDirectory for RateLimitedDirectory {
    async fn describe_pool(&self, pool_id: &str) -> Result<UserPool> {
        self.call(QuotaCategory::UserPoolRead, || {
            self.inner.describe_pool(pool_id)
        })
        .await
    }

    async fn list_users(&self, pool_id: &str, page_token: Option<&str>) -> Result<Page<User>> {
        self.call(QuotaCategory::UserList, || {
            self.inner.list_users(pool_id, page_token)
        })
        .await
    }

    async fn list_groups(&self, pool_id: &str, page_token: Option<&str>) -> Result<Page<Group>> {
        self.call(QuotaCategory::UserResourceRead, || {
            self.inner.list_groups(pool_id, page_token)
        })
        .await
    }

    async fn list_users_in_group(
        &self,
        pool_id: &str,
        group: &str,
        page_token: Option<&str>,
    ) -> Result<Page<User>> {
        self.call(QuotaCategory::UserList, || {
            self.inner.list_users_in_group(pool_id, group, page_token)
        })
        .await
    }

    async fn create_user(&self, pool_id: &str, user: &NewUser) -> Result<User> {
        self.call(QuotaCategory::UserCreation, || {
            self.inner.create_user(pool_id, user)
        })
        .await
    }

    async fn update_user_attributes(
        &self,
        pool_id: &str,
        username: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<()> {
        self.call(QuotaCategory::UserUpdate, || {
            self.inner
                .update_user_attributes(pool_id, username, attributes)
        })
        .await
    }

    async fn enable_user(&self, pool_id: &str, username: &str) -> Result<()> {
        self.call(QuotaCategory::UserUpdate, || {
            self.inner.enable_user(pool_id, username)
        })
        .await
    }

    async fn disable_user(&self, pool_id: &str, username: &str) -> Result<()> {
        self.call(QuotaCategory::UserUpdate, || {
            self.inner.disable_user(pool_id, username)
        })
        .await
    }

    async fn delete_user(&self, pool_id: &str, username: &str) -> Result<()> {
        self.call(QuotaCategory::UserUpdate, || {
            self.inner.delete_user(pool_id, username)
        })
        .await
    }

    async fn create_group(&self, pool_id: &str, group: &Group) -> Result<()> {
        self.call(QuotaCategory::UserResourceUpdate, || {
            self.inner.create_group(pool_id, group)
        })
        .await
    }

    async fn add_user_to_group(&self, pool_id: &str, username: &str, group: &str) -> Result<()> {
        self.call(QuotaCategory::UserUpdate, || {
            self.inner.add_user_to_group(pool_id, username, group)
        })
        .await
    }

    async fn remove_user_from_group(
        &self,
        pool_id: &str,
        username: &str,
        group: &str,
    ) -> Result<()> {
        self.call(QuotaCategory::UserUpdate, || {
            self.inner.remove_user_from_group(pool_id, username, group)
        })
        .await
    }

    async fn list_user_pool_replicas(
        &self,
        pool_id: &str,
        page_token: Option<&str>,
    ) -> Result<Page<UserPoolReplica>> {
        self.call(QuotaCategory::UserPoolRead, || {
            self.inner.list_user_pool_replicas(pool_id, page_token)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::port::{Error, Service};

    /// Answers `ListUsers` with `Throttled` `throttles` times, then with an empty page; every
    /// other call succeeds at once.
    struct Throttling {
        throttles: AtomicU64,
    }

    fn throttled() -> Error {
        Error::new(
            ErrorKind::Throttled,
            Service::Cognito,
            "ListUsers",
            "slow down",
        )
    }

    #[async_trait]
    impl UserDirectory for Throttling {
        async fn describe_pool(&self, _: &str) -> Result<UserPool> {
            Err(Error::new(
                ErrorKind::NotFound,
                Service::Cognito,
                "DescribeUserPool",
                "none",
            ))
        }
        async fn list_users(&self, _: &str, _: Option<&str>) -> Result<Page<User>> {
            let left = self.throttles.load(Ordering::SeqCst);
            if left > 0 {
                self.throttles.store(left - 1, Ordering::SeqCst);
                return Err(throttled());
            }
            Ok(Page {
                items: vec![],
                next_token: None,
            })
        }
        async fn list_groups(&self, _: &str, _: Option<&str>) -> Result<Page<Group>> {
            Ok(Page {
                items: vec![],
                next_token: None,
            })
        }
        async fn list_users_in_group(
            &self,
            _: &str,
            _: &str,
            _: Option<&str>,
        ) -> Result<Page<User>> {
            self.list_users("", None).await
        }
        async fn create_user(&self, _: &str, _: &NewUser) -> Result<User> {
            Err(throttled())
        }
        async fn update_user_attributes(
            &self,
            _: &str,
            _: &str,
            _: &BTreeMap<String, String>,
        ) -> Result<()> {
            Ok(())
        }
        async fn enable_user(&self, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        async fn disable_user(&self, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        async fn delete_user(&self, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        async fn create_group(&self, _: &str, _: &Group) -> Result<()> {
            Ok(())
        }
        async fn add_user_to_group(&self, _: &str, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        async fn remove_user_from_group(&self, _: &str, _: &str, _: &str) -> Result<()> {
            Ok(())
        }
        async fn list_user_pool_replicas(
            &self,
            _: &str,
            _: Option<&str>,
        ) -> Result<Page<UserPoolReplica>> {
            Ok(Page {
                items: vec![],
                next_token: None,
            })
        }
    }

    fn directory(throttles: u64, limits: CognitoLimits) -> RateLimitedDirectory {
        RateLimitedDirectory::new(
            Arc::new(Throttling {
                throttles: AtomicU64::new(throttles),
            }),
            limits,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_calls_back_off_and_succeed_within_the_retry_budget() {
        let dir = directory(3, CognitoLimits::with_share(1.0));
        let started = tokio::time::Instant::now();
        dir.list_users("p", None)
            .await
            .expect("succeeds after 3 throttles");
        // 200 + 400 + 800 ms of backoff.
        assert_eq!(started.elapsed(), Duration::from_millis(1400));
        let c = dir.counters();
        assert_eq!(c.calls(QuotaCategory::UserList), 4);
        assert_eq!(c.throttled_in(QuotaCategory::UserList), 3);
        assert_eq!(c.throttled_total(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn persistent_throttling_surfaces_after_the_retry_budget() {
        let limits = CognitoLimits::with_share(1.0);
        let retries = limits.throttle_retries;
        let dir = directory(0, limits);
        let err = dir
            .create_user(
                "p",
                &NewUser {
                    username: "u".into(),
                    attributes: BTreeMap::new(),
                },
            )
            .await
            .expect_err("always throttled");
        assert_eq!(err.kind, ErrorKind::Throttled);
        assert_eq!(
            dir.counters().calls(QuotaCategory::UserCreation),
            u64::from(retries) + 1
        );
        // Other errors are not retried.
        assert!(dir.describe_pool("p").await.is_err());
        assert_eq!(dir.counters().calls(QuotaCategory::UserPoolRead), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn each_category_keeps_its_own_rate() {
        let mut limits = CognitoLimits::uniform(10.0);
        limits.rates.insert(QuotaCategory::UserUpdate, 5.0);
        let dir = directory(0, limits);
        let started = tokio::time::Instant::now();
        // 10 in the initial burst, then 20 more at 10/s.
        for _ in 0..30 {
            dir.list_groups("p", None).await.unwrap();
        }
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        // A different bucket: its burst of 5 is still there, then 5/s.
        let started = tokio::time::Instant::now();
        for _ in 0..15 {
            dir.enable_user("p", "u").await.unwrap();
        }
        assert_eq!(started.elapsed(), Duration::from_secs(2));
    }

    #[test]
    fn share_scales_every_default_quota() {
        let l = CognitoLimits::with_share(0.5);
        assert_eq!(l.rate(QuotaCategory::UserList), 15.0);
        assert_eq!(l.rate(QuotaCategory::UserCreation), 25.0);
        assert_eq!(l.rate(QuotaCategory::UserUpdate), 12.5);
        let bad = CognitoLimits::with_share(f64::NAN);
        assert_eq!(bad.rate(QuotaCategory::UserList), 30.0);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let l = CognitoLimits::with_share(1.0);
        assert_eq!(l.backoff(0), Duration::from_millis(200));
        assert_eq!(l.backoff(1), Duration::from_millis(400));
        assert_eq!(l.backoff(10), Duration::from_secs(10));
        assert_eq!(l.backoff(1000), Duration::from_secs(10));
    }
}
