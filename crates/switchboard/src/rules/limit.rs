//! Per-socket rate limits: a token bucket per socket, kept in a table sharded so that
//! sockets served by different cores rarely wait for one another.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use switchboard_protocol::Sid;
use tokio::time::Instant;

use crate::config::EventRateLimit;

/// Shards of the bucket table. Every event takes one shard's lock for a few
/// nanoseconds; 16 shards make two sockets contend only when they hash alike, which
/// is plenty on machines with a handful of cores.
const SHARDS: usize = 16;

/// What the limiter says about one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the limit.
    Allowed,
    /// Over the limit: refuse the event.
    Limited,
    /// Over the limit `disconnect_after` times in a row: disconnect the socket.
    Disconnect,
}

/// One socket's bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    last: Instant,
    /// Refusals since the bucket was last full.
    violations: u32,
}

impl Bucket {
    /// A full bucket: a new socket may send a burst at once.
    pub(crate) fn new(limit: &EventRateLimit, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(limit.burst),
            last: now,
            violations: 0,
        }
    }

    /// Takes a token for one event at `now`.
    ///
    /// Refusals are forgiven once the bucket has refilled completely, that is once the
    /// client has been quiet for `burst / events_per_second`: an honest client that
    /// overshot now and then is never disconnected, while a flood never lets the bucket
    /// refill and reaches `disconnect_after`.
    pub(crate) fn take(&mut self, limit: &EventRateLimit, now: Instant) -> Verdict {
        let burst = f64::from(limit.burst);
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.events_per_second).min(burst);
        self.last = now;
        if self.tokens >= burst {
            self.violations = 0;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allowed;
        }
        self.violations = self.violations.saturating_add(1);
        match limit.disconnect_after {
            0 => Verdict::Limited,
            n if self.violations >= n => Verdict::Disconnect,
            _ => Verdict::Limited,
        }
    }
}

/// Which socket object an entry keyed by socket id is for: its address, unique among
/// the sockets alive at once. Two can share an id (a resumed session's socket, while
/// the old one's handlers still run), never an address.
pub(crate) type Owner = usize;

/// The [`Owner`] of `socket`'s entries.
pub(crate) fn owner(socket: &std::sync::Arc<switchboard_engine::Socket>) -> Owner {
    std::sync::Arc::as_ptr(socket) as Owner
}

/// The buckets of every socket of the namespaces one rule covers.
#[derive(Debug)]
pub(crate) struct Limiter {
    limit: EventRateLimit,
    /// `std` mutexes: held for one map operation, never across `.await`. Each bucket
    /// with the [`Owner`] it was made for.
    shards: Vec<Mutex<HashMap<Sid, (Owner, Bucket)>>>,
    hasher: RandomState,
}

impl Limiter {
    /// An empty table for `limit`.
    pub(crate) fn new(limit: EventRateLimit) -> Self {
        Limiter {
            limit,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, sid: Sid) -> MutexGuard<'_, HashMap<Sid, (Owner, Bucket)>> {
        let index = (self.hasher.hash_one(sid) as usize) % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives a connected socket a full bucket.
    pub(crate) fn insert(&self, sid: Sid, owner: Owner, now: Instant) {
        let bucket = Bucket::new(&self.limit, now);
        self.shard(sid).insert(sid, (owner, bucket));
    }

    /// Forgets a disconnected socket: its bucket, not one made since for another
    /// socket under the same id (a session resumed while this one's disconnect
    /// handlers had not run yet).
    pub(crate) fn remove(&self, sid: Sid, owner: Owner) {
        let mut shard = self.shard(sid);
        if shard.get(&sid).is_some_and(|(o, _)| *o == owner) {
            shard.remove(&sid);
        }
    }

    /// Charges one event to `sid`. A socket without a bucket (an event racing its
    /// disconnect) is allowed: it is gone a moment later anyway.
    pub(crate) fn check(&self, sid: Sid, now: Instant) -> Verdict {
        match self.shard(sid).get_mut(&sid) {
            Some((_, bucket)) => bucket.take(&self.limit, now),
            None => Verdict::Allowed,
        }
    }

    /// Sockets with a bucket.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const LIMIT: EventRateLimit = EventRateLimit {
        events_per_second: 10.0,
        burst: 5,
        disconnect_after: 3,
    };

    fn sid(n: u8) -> Sid {
        Sid::from_random([n; 15])
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_the_rate_applies() {
        let mut bucket = Bucket::new(&LIMIT, Instant::now());
        for _ in 0..5 {
            assert_eq!(bucket.take(&LIMIT, Instant::now()), Verdict::Allowed);
        }
        assert_eq!(bucket.take(&LIMIT, Instant::now()), Verdict::Limited);
        // 10 per second: one token every 100 ms.
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(bucket.take(&LIMIT, Instant::now()), Verdict::Allowed);
        assert_eq!(bucket.take(&LIMIT, Instant::now()), Verdict::Limited);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_disconnected_after_the_configured_refusals() {
        let mut bucket = Bucket::new(&LIMIT, Instant::now());
        let verdicts: Vec<Verdict> = (0..9)
            .map(|_| bucket.take(&LIMIT, Instant::now()))
            .collect();
        assert_eq!(verdicts[..5], [Verdict::Allowed; 5]);
        assert_eq!(verdicts[5..7], [Verdict::Limited; 2]);
        assert_eq!(verdicts[7], Verdict::Disconnect);
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_forgiven_once_the_bucket_refills() {
        let mut bucket = Bucket::new(&LIMIT, Instant::now());
        for _ in 0..7 {
            bucket.take(&LIMIT, Instant::now());
        }
        // Two refusals so far; a quiet half second refills all 5 tokens.
        tokio::time::advance(Duration::from_millis(500)).await;
        for _ in 0..5 {
            assert_eq!(bucket.take(&LIMIT, Instant::now()), Verdict::Allowed);
        }
        assert_eq!(bucket.take(&LIMIT, Instant::now()), Verdict::Limited);
        assert_eq!(bucket.take(&LIMIT, Instant::now()), Verdict::Limited);
        assert_eq!(bucket.take(&LIMIT, Instant::now()), Verdict::Disconnect);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_disconnect_after_only_refuses() {
        let limit = EventRateLimit {
            disconnect_after: 0,
            ..LIMIT
        };
        let mut bucket = Bucket::new(&limit, Instant::now());
        let refused = (0..100)
            .map(|_| bucket.take(&limit, Instant::now()))
            .filter(|v| *v == Verdict::Limited)
            .count();
        assert_eq!(refused, 95);
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_keeps_one_bucket_per_socket() {
        let limiter = Limiter::new(LIMIT);
        let (a, b) = (sid(1), sid(2));
        limiter.insert(a, 1, Instant::now());
        limiter.insert(b, 2, Instant::now());
        for _ in 0..5 {
            assert_eq!(limiter.check(a, Instant::now()), Verdict::Allowed);
        }
        assert_eq!(limiter.check(a, Instant::now()), Verdict::Limited);
        assert_eq!(limiter.check(b, Instant::now()), Verdict::Allowed);
        limiter.remove(a, 3);
        assert_eq!(
            limiter.len(),
            2,
            "another socket's bucket under that id stays"
        );
        limiter.remove(a, 1);
        assert_eq!(limiter.len(), 1);
        assert_eq!(limiter.check(a, Instant::now()), Verdict::Allowed);
    }
}
