//! Rate limits: a token bucket per connection and rule, kept in a table sharded so that
//! connections served by different cores rarely wait for one another.
//!
//! The bucket is the Engine.IO connection's, shared by its sockets in the namespaces
//! one rule covers: a pattern's namespaces (a client may make up to 64 of them on one
//! connection, `MAX_NAMESPACES_PER_CONNECTION` in the engine) draw on one bucket, not
//! one each. Before 2026-12-07 each socket had its own, so a client on one
//! connection had up to 64 times the configured rate. Sockets of one connection under
//! different rules have a bucket per rule, as the rules say.
//!
//! A connection that leaves the rule's last namespace and stays open keeps its bucket
//! for a while ([`IDLE_KEEP`] at most, or until it would be full again): connecting
//! again does not refill it. Its entry then goes, and so does one whose connection
//! closed: every such entry has a place in its shard's queue of idle entries, oldest
//! first, looked at whenever the shard is.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use switchboard_engine::capacity::give_back;
use switchboard_protocol::Sid;
use tokio::time::Instant;

use crate::config::EventRateLimit;

/// Shards of the bucket table. Every event takes one shard's lock for a few
/// nanoseconds; 16 shards make two sockets contend only when they hash alike, which
/// is plenty on machines with a handful of cores.
const SHARDS: usize = 16;

/// Longest a bucket no socket holds stays with its open connection: the time it takes
/// to refill, at most this. Idle entries are one per connection that left the rule's
/// namespaces within this time, so this bounds how many there are with how fast
/// connections come and go.
const IDLE_KEEP: Duration = Duration::from_secs(30);

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

/// One connection's bucket.
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

/// Which socket object holds a connection's bucket: its address, unique among the
/// sockets alive at once (two can share an id, a resumed session's socket while the
/// old one's handlers still run; never an address).
pub(crate) type Owner = usize;

/// The [`Owner`] of `socket`'s entries.
pub(crate) fn owner(socket: &std::sync::Arc<switchboard_engine::Socket>) -> Owner {
    std::sync::Arc::as_ptr(socket) as Owner
}

/// The buckets of the connections with sockets in the namespaces one rule covers, by
/// connection id.
#[derive(Debug)]
pub(crate) struct Limiter {
    limit: EventRateLimit,
    /// `std` mutexes: held for one map operation, never across `.await`.
    shards: Vec<Mutex<Shard>>,
    hasher: RandomState,
    /// How long a bucket no socket holds is kept: until full again, [`IDLE_KEEP`] at
    /// most.
    idle_keep: Duration,
}

/// One shard of the table.
#[derive(Debug, Default)]
struct Shard {
    entries: HashMap<Sid, Entry>,
    /// Entries no socket holds, by when they may go (in the order they were let go:
    /// the keep is the same for all).
    idle: VecDeque<(Instant, Sid)>,
}

/// A connection's bucket and the sockets holding it.
#[derive(Debug)]
struct Entry {
    bucket: Bucket,
    /// At most one per namespace the connection joined under the rule.
    holders: Vec<Owner>,
    /// With no holder: when it may go.
    idle_until: Option<Instant>,
    /// Whether it has its place in [`Shard::idle`]: one at most, however often the
    /// connection leaves and comes back.
    queued: bool,
}

impl Shard {
    /// Drops the idle entries whose time is up; one let go again since it was queued
    /// goes back in the queue with its new time, one held again leaves it.
    fn sweep(&mut self, now: Instant) {
        while let Some(&(until, connection)) = self.idle.front() {
            if until > now {
                break;
            }
            self.idle.pop_front();
            let Some(entry) = self.entries.get_mut(&connection) else {
                continue;
            };
            match entry.idle_until {
                Some(due) if !entry.holders.is_empty() || due > now => {
                    if entry.holders.is_empty() {
                        self.idle.push_back((due, connection));
                    } else {
                        entry.queued = false;
                    }
                }
                Some(_) => {
                    self.entries.remove(&connection);
                }
                None => entry.queued = false,
            }
        }
        give_back(&mut self.idle, 64);
        give_back(&mut self.entries, 64);
    }
}

impl Limiter {
    /// An empty table for `limit`.
    pub(crate) fn new(limit: EventRateLimit) -> Self {
        let refill = f64::from(limit.burst) / limit.events_per_second;
        Limiter {
            limit,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            idle_keep: Duration::try_from_secs_f64(refill).map_or(IDLE_KEEP, |d| d.min(IDLE_KEEP)),
        }
    }

    fn shard(&self, connection: Sid) -> MutexGuard<'_, Shard> {
        let index = (self.hasher.hash_one(connection) as usize) % SHARDS;
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connected socket (`owner`) of `connection` holds its bucket: a full one if
    /// it is the connection's first socket under the rule, else the one its other
    /// sockets draw on.
    pub(crate) fn insert(&self, connection: Sid, owner: Owner, now: Instant) {
        let mut shard = self.shard(connection);
        shard.sweep(now);
        let entry = shard.entries.entry(connection).or_insert_with(|| Entry {
            bucket: Bucket::new(&self.limit, now),
            holders: Vec::new(),
            idle_until: None,
            queued: false,
        });
        if !entry.holders.contains(&owner) {
            entry.holders.push(owner);
        }
        entry.idle_until = None;
    }

    /// A disconnected socket lets go of its connection's bucket. With its last
    /// holder the bucket goes if the connection is closed (`open` false), and is kept
    /// a while if it is open (see the module docs). A socket that never held it (one
    /// closed before its connection handlers ran) changes nothing.
    pub(crate) fn remove(&self, connection: Sid, owner: Owner, open: bool, now: Instant) {
        let mut shard = self.shard(connection);
        shard.sweep(now);
        let Some(entry) = shard.entries.get_mut(&connection) else {
            return;
        };
        let held = entry.holders.len();
        entry.holders.retain(|o| *o != owner);
        if entry.holders.is_empty() && held > 0 {
            if open {
                let until = now + self.idle_keep;
                entry.idle_until = Some(until);
                if !std::mem::replace(&mut entry.queued, true) {
                    shard.idle.push_back((until, connection));
                }
            } else {
                shard.entries.remove(&connection);
            }
        }
    }

    /// Charges one event to `connection`. One without a bucket (an event racing its
    /// socket's disconnect) is allowed: it is gone a moment later anyway.
    pub(crate) fn check(&self, connection: Sid, now: Instant) -> Verdict {
        match self.shard(connection).entries.get_mut(&connection) {
            Some(entry) => entry.bucket.take(&self.limit, now),
            None => Verdict::Allowed,
        }
    }

    /// Connections with a bucket.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).entries.len())
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
    async fn the_table_keeps_one_bucket_per_connection() {
        let limiter = Limiter::new(LIMIT);
        let (a, b) = (sid(1), sid(2));
        limiter.insert(a, 1, Instant::now());
        limiter.insert(b, 2, Instant::now());
        for _ in 0..5 {
            assert_eq!(limiter.check(a, Instant::now()), Verdict::Allowed);
        }
        assert_eq!(limiter.check(a, Instant::now()), Verdict::Limited);
        assert_eq!(limiter.check(b, Instant::now()), Verdict::Allowed);
        limiter.remove(a, 3, false, Instant::now());
        assert_eq!(
            limiter.len(),
            2,
            "a socket that never held it changes nothing"
        );
        limiter.remove(a, 1, false, Instant::now());
        assert_eq!(limiter.len(), 1);
        assert_eq!(limiter.check(a, Instant::now()), Verdict::Allowed);
    }

    #[tokio::test(start_paused = true)]
    async fn sockets_of_one_connection_share_its_bucket_until_the_last_leaves() {
        let limiter = Limiter::new(LIMIT);
        let connection = sid(7);
        // Three namespaces of a pattern on one connection; one joins twice.
        for owner in [1, 2, 3, 2] {
            limiter.insert(connection, owner, Instant::now());
        }
        // Their events draw on one burst of 5, not 5 each.
        for _ in 0..5 {
            assert_eq!(limiter.check(connection, Instant::now()), Verdict::Allowed);
        }
        assert_eq!(limiter.check(connection, Instant::now()), Verdict::Limited);
        // A new socket of the connection gets no fresh bucket.
        limiter.insert(connection, 4, Instant::now());
        assert_eq!(limiter.check(connection, Instant::now()), Verdict::Limited);
        for owner in [1, 2, 3] {
            limiter.remove(connection, owner, false, Instant::now());
            assert_eq!(limiter.len(), 1, "held while a socket is left");
        }
        limiter.remove(connection, 4, false, Instant::now());
        assert_eq!(limiter.len(), 0, "the connection closed");
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_connection_that_connects_again_keeps_its_drained_bucket_a_while() {
        // Refills in 5 / 10 = 0.5 s: kept that long.
        let limiter = Limiter::new(LIMIT);
        let connection = sid(7);
        limiter.insert(connection, 1, Instant::now());
        for _ in 0..5 {
            limiter.check(connection, Instant::now());
        }
        limiter.remove(connection, 1, true, Instant::now());
        assert_eq!(limiter.len(), 1, "kept for the open connection");
        // Connecting again: the same, empty, bucket.
        limiter.insert(connection, 2, Instant::now());
        assert_eq!(limiter.check(connection, Instant::now()), Verdict::Limited);
        limiter.remove(connection, 2, true, Instant::now());
        // Once it would be full again, it goes (with the next look at its shard).
        tokio::time::advance(Duration::from_millis(500)).await;
        limiter.remove(sid(7), 99, true, Instant::now());
        assert_eq!(limiter.len(), 0, "gone once refilled");
        // An entry held again is not swept by its old place in the queue.
        limiter.insert(connection, 3, Instant::now());
        limiter.remove(connection, 3, true, Instant::now());
        limiter.insert(connection, 4, Instant::now());
        tokio::time::advance(Duration::from_secs(1)).await;
        limiter.insert(connection, 4, Instant::now());
        assert_eq!(limiter.len(), 1, "held again, kept");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_leaving_and_coming_back_takes_one_place_in_the_idle_queue() {
        let limiter = Limiter::new(LIMIT);
        let connection = sid(3);
        for owner in 0..100 {
            limiter.insert(connection, owner, Instant::now());
            limiter.remove(connection, owner, true, Instant::now());
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        let queued = |limiter: &Limiter| -> usize {
            limiter
                .shards
                .iter()
                .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).idle.len())
                .sum()
        };
        assert_eq!(queued(&limiter), 1);
        // Due from its first leave, kept from its last: requeued, then gone.
        tokio::time::advance(Duration::from_millis(450)).await;
        limiter.remove(connection, 999, true, Instant::now());
        assert_eq!((limiter.len(), queued(&limiter)), (1, 1));
        tokio::time::advance(Duration::from_millis(100)).await;
        limiter.remove(connection, 999, true, Instant::now());
        assert_eq!((limiter.len(), queued(&limiter)), (0, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_refill_is_kept_no_longer_than_the_cap() {
        let limit = EventRateLimit {
            events_per_second: 0.001,
            burst: 100,
            disconnect_after: 0,
        };
        let limiter = Limiter::new(limit);
        assert_eq!(limiter.idle_keep, IDLE_KEEP);
        limiter.insert(sid(1), 1, Instant::now());
        limiter.remove(sid(1), 1, true, Instant::now());
        tokio::time::advance(IDLE_KEEP - Duration::from_millis(1)).await;
        limiter.remove(sid(1), 99, true, Instant::now());
        assert_eq!(limiter.len(), 1, "not refilled, within the cap");
        tokio::time::advance(Duration::from_millis(1)).await;
        // The next look at its shard drops it.
        limiter.remove(sid(1), 99, true, Instant::now());
        assert_eq!(limiter.len(), 0);
    }
}
