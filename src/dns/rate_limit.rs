//! Route 53's API rate, respected: a token bucket shared by every DNS step of the daemon, and
//! backoff when Route 53 answers `Throttling` or `PriorRequestNotComplete` anyway.
//!
//! Route 53 limits each AWS account to five control-plane requests per second, counted across
//! every tool of the account. A switchover makes few calls (one change batch per zone per stage,
//! then `GetChange` polls), but a retry storm during a regional incident — exactly when other
//! tooling is busy too — could exhaust the account's budget and delay the takeover. So every call
//! goes through [`RateLimitedDns`]: it takes a token first (waiting if none is left), and when
//! Route 53 still throttles (someone else spent the budget; `PriorRequestNotComplete` means a
//! previous change of the zone is still being applied) it backs off exponentially and retries,
//! a bounded number of times. The SDK's own retries run inside each attempt; these come on top,
//! so a throttled switchover is slower but does not fail.
//!
//! Only throttling is retried here: a timeout may have taken effect, and deciding whether to
//! re-submit a change batch after one is the step's job (`verify` before retry).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::port::{ChangeInfo, DnsApi, RecordChange, RecordSet};
use crate::health::{HealthCheckStatus, HealthCheckStatusApi};
use crate::port::{ErrorKind, Result};
use crate::token_bucket::TokenBucket;

/// How fast failoverd may call Route 53, and how it backs off when throttled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Route53Limits {
    /// Sustained request rate. Route 53 allows 5 per second per account.
    pub requests_per_second: f64,
    /// Requests that may be made at once after a quiet period.
    pub burst: u32,
    /// Retries of a throttled call (after the SDK's own), each after a growing backoff.
    pub throttle_retries: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for Route53Limits {
    /// Route 53's documented account rate (5/s, so a burst of 5); six retries from 1 s doubling to
    /// at most 16 s ride out about 45 s of throttling — longer than any realistic contention, short
    /// enough that a persistent refusal surfaces as a failed step an operator sees.
    fn default() -> Self {
        Self {
            requests_per_second: 5.0,
            burst: 5,
            throttle_retries: 6,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(16),
        }
    }
}

impl Route53Limits {
    fn backoff(&self, retry: u32) -> Duration {
        self.initial_backoff
            .saturating_mul(1u32 << retry.min(16))
            .min(self.max_backoff)
    }
}

/// A [`DnsApi`] that keeps to Route 53's rate limit and backs off when throttled. Clones share the
/// bucket; build one per daemon and give it to every DNS step.
#[derive(Clone)]
pub struct RateLimitedDns {
    inner: Arc<dyn DnsApi>,
    bucket: Arc<TokenBucket>,
    limits: Route53Limits,
    throttled: Arc<AtomicU64>,
}

impl RateLimitedDns {
    pub fn new(inner: Arc<dyn DnsApi>, limits: Route53Limits) -> Self {
        Self {
            inner,
            bucket: Arc::new(TokenBucket::new(limits.requests_per_second, limits.burst)),
            limits,
            throttled: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Calls Route 53 refused as throttled so far (each one was backed off and retried or, past
    /// the retry budget, returned).
    pub fn throttled_total(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    async fn call<T, F, Fut>(&self, operation: &str, f: F) -> Result<T>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<T>> + Send,
        T: Send,
    {
        let mut retry = 0;
        loop {
            self.bucket.acquire().await;
            match f().await {
                Err(e)
                    if e.kind == ErrorKind::Throttled && retry < self.limits.throttle_retries =>
                {
                    self.throttled.fetch_add(1, Ordering::Relaxed);
                    let delay = self.limits.backoff(retry);
                    tracing::warn!(
                        operation,
                        code = e.code.as_deref().unwrap_or(""),
                        retry = retry + 1,
                        delay_ms = delay.as_millis() as u64,
                        "route53 throttled the call; backing off"
                    );
                    tokio::time::sleep(delay).await;
                    retry += 1;
                }
                Err(e) => {
                    if e.kind == ErrorKind::Throttled {
                        self.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    return Err(e);
                }
                Ok(v) => return Ok(v),
            }
        }
    }
}

#[async_trait]
impl DnsApi for RateLimitedDns {
    async fn list_record_sets(&self, hosted_zone_id: &str) -> Result<Vec<RecordSet>> {
        self.call("ListResourceRecordSets", || {
            self.inner.list_record_sets(hosted_zone_id)
        })
        .await
    }

    async fn change_record_sets(
        &self,
        hosted_zone_id: &str,
        comment: Option<&str>,
        changes: &[RecordChange],
    ) -> Result<ChangeInfo> {
        self.call("ChangeResourceRecordSets", || {
            self.inner
                .change_record_sets(hosted_zone_id, comment, changes)
        })
        .await
    }

    async fn change_status(&self, change_id: &str) -> Result<ChangeInfo> {
        self.call("GetChange", || self.inner.change_status(change_id))
            .await
    }
}

#[async_trait]
impl HealthCheckStatusApi for RateLimitedDns {
    async fn health_check_status(&self, health_check_id: &str) -> Result<HealthCheckStatus> {
        self.call("GetHealthCheckStatus", || {
            self.inner.health_check_status(health_check_id)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let l = Route53Limits::default();
        assert_eq!(l.backoff(0), Duration::from_secs(1));
        assert_eq!(l.backoff(3), Duration::from_secs(8));
        assert_eq!(l.backoff(10), Duration::from_secs(16));
    }
}
