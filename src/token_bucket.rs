//! A token bucket: how failoverd keeps to a provider's request-rate quota before the provider has
//! to refuse it.
//!
//! Route 53 (five requests per second per account) and Cognito (a rate per quota category) both
//! meter their APIs this way, and both budgets are shared with every other client of the account,
//! so failoverd paces its own calls: the DNS steps through `dns::rate_limit`, the Cognito sync
//! through `cognito::quota`, each with its own buckets.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

/// A token bucket: `rate` tokens per second, at most `burst` saved up. Callers reserve a token and
/// sleep until it is theirs, so waiting callers are served in order and never spin.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    /// May go negative: tokens already promised to waiting callers.
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    /// A full bucket. A non-positive or non-finite rate is raised to one request per second.
    pub fn new(rate: f64, burst: u32) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        let burst = f64::from(burst.max(1));
        Self {
            rate,
            burst,
            state: Mutex::new(BucketState {
                tokens: burst,
                refilled_at: Instant::now(),
            }),
        }
    }

    /// Wait until a token is available and take it.
    pub async fn acquire(&self) {
        let wait = {
            let mut s = self.state.lock().await;
            let now = Instant::now();
            let elapsed = now.saturating_duration_since(s.refilled_at).as_secs_f64();
            s.tokens = (s.tokens + elapsed * self.rate).min(self.burst);
            s.refilled_at = now;
            s.tokens -= 1.0;
            if s.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-s.tokens / self.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_allows_the_burst_then_the_rate() {
        let bucket = TokenBucket::new(5.0, 5);
        let start = Instant::now();
        for _ in 0..5 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst is free");
        for _ in 0..10 {
            bucket.acquire().await;
        }
        // Ten more at 5/s take two seconds.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(1990) && elapsed <= Duration::from_millis(2010),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_refills_while_idle_but_not_beyond_the_burst() {
        let bucket = TokenBucket::new(5.0, 5);
        for _ in 0..5 {
            bucket.acquire().await;
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        let start = Instant::now();
        for _ in 0..6 {
            bucket.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }
}
