//! Per-key rate limiting: one token bucket per configured API key.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::auth::KeyId;
use crate::config::RateLimit;
use crate::http::ApiError;

/// One bucket per key, indexed by the [`KeyId`] that authentication found (so a
/// bucket belongs to a key only through the constant-time lookup).
///
/// A `std` mutex: each check is a few float operations and never awaits, and API
/// request rates are far too low for contention to matter.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<Vec<Bucket>>,
}

/// Tokens left and when they were last counted.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// Full buckets for `keys` keys.
    pub(crate) fn new(limit: RateLimit, keys: usize, now: Instant) -> Self {
        let full = Bucket {
            tokens: f64::from(limit.burst),
            updated: now,
        };
        RateLimiter {
            limit,
            buckets: Mutex::new(vec![full; keys]),
        }
    }

    /// Takes a token from `key`'s bucket, or says how long until one is there.
    pub(crate) fn check(&self, key: KeyId, now: Instant) -> Result<(), ApiError> {
        if self.limit.per_second == 0 {
            return Ok(());
        }
        let rate = f64::from(self.limit.per_second);
        let burst = f64::from(self.limit.burst);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let Some(bucket) = buckets.get_mut(key.index()) else {
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let retry_after = Duration::from_secs_f64((1.0 - bucket.tokens) / rate);
        Err(ApiError::RateLimited { retry_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: u32, burst: u32, now: Instant) -> RateLimiter {
        RateLimiter::new(RateLimit { per_second, burst }, 2, now)
    }

    /// The ids of two keys, made the way the API makes them: by finding the keys.
    fn key_ids() -> [KeyId; 2] {
        let keys = switchboard_auth::ApiKeys::new(["key-zero", "key-one"]);
        [b"key-zero".as_slice(), b"key-one"].map(|key| keys.find(key).expect("a configured key"))
    }

    #[test]
    fn a_burst_passes_then_the_steady_rate_applies() {
        let start = Instant::now();
        let l = limiter(10, 3, start);
        let [zero, one] = key_ids();
        for _ in 0..3 {
            assert!(l.check(zero, start).is_ok());
        }
        let Err(ApiError::RateLimited { retry_after }) = l.check(zero, start) else {
            panic!("the fourth request at once must be limited");
        };
        assert_eq!(retry_after, Duration::from_millis(100));
        // Another key has its own bucket.
        assert!(l.check(one, start).is_ok());
        // One token every 100 ms.
        assert!(l.check(zero, start + Duration::from_millis(100)).is_ok());
        assert!(l.check(zero, start + Duration::from_millis(150)).is_err());
        // Never more than the burst, however long the pause.
        let later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(l.check(zero, later).is_ok());
        }
        assert!(l.check(zero, later).is_err());
    }

    #[test]
    fn zero_per_second_turns_limiting_off() {
        let start = Instant::now();
        let l = limiter(0, 1, start);
        let [zero, _] = key_ids();
        for _ in 0..1000 {
            assert!(l.check(zero, start).is_ok());
        }
    }
}
