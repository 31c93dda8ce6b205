//! New sessions per client address over time (`engine.handshakes_per_ip_per_second`
//! and `engine.handshake_burst_per_ip`): a token bucket per address key (an IPv4
//! address or an IPv6 /64, as `max_sessions_per_ip` counts them), taken by every
//! handshake (long-polling, WebSocket, Server-Sent Events) before it gets a slot.
//!
//! What it bounds: a client that opens and closes sessions in a loop. Each one costs
//! the node a handshake, the application's `connection` hooks and token checks, and
//! gives the client fresh per-connection budgets (a namespace's rate-limit bucket);
//! `max_sessions_per_ip` bounds how many it holds at once, not how fast it turns them
//! over.
//!
//! Only addresses whose bucket is not full have an entry: an entry is swept once its
//! bucket has refilled, so the table holds the addresses that handshook within the
//! last `burst ÷ rate` seconds. It holds at most [`MAX_TRACKED`]; past that (a client
//! spread over that many networks, keeping each one's bucket from refilling) the
//! addresses without an entry share one overflow bucket, [`OVERFLOW_SHARE`] times an
//! address's: neither let through unbounded (the flood would then get every handshake
//! it wants from fresh addresses) nor held to one address's rate (which would lock
//! real clients out).
//!
//! Pure: a key and an instant in, a decision out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::client_ip::ClientKey;
use crate::bucket::take;
use crate::config::HandshakeRate;

/// Most addresses with an entry at once (about 5 MB of table).
pub(crate) const MAX_TRACKED: usize = 100_000;

/// How many addresses' worth the shared bucket of untracked addresses holds and
/// refills (see the module docs).
pub(crate) const OVERFLOW_SHARE: f64 = 64.0;

/// The table is swept when it has grown to this, or to twice what the last sweep left.
const MIN_SWEEP: usize = 1024;

/// At [`MAX_TRACKED`], how long after a sweep the next may run: a sweep walks the
/// whole table, so a flood of new addresses must not make every handshake pay one.
const SWEEP_AT_CAP_EVERY: Duration = Duration::from_secs(1);

/// The buckets of every address that handshook recently.
#[derive(Debug)]
pub(crate) struct HandshakeRates {
    rate: f64,
    burst: f64,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    /// Tokens left and when they were last counted, per address.
    buckets: HashMap<ClientKey, (f64, Instant)>,
    /// The size at which the next sweep runs.
    sweep_at: usize,
    /// When the last sweep ran.
    swept: Option<Instant>,
    /// The bucket the addresses without an entry share while the table is full.
    overflow: (f64, Instant),
}

impl HandshakeRates {
    /// The limiter of `limit`; `None` when it is off (a rate of 0).
    pub(crate) fn new(limit: HandshakeRate, now: Instant) -> Option<Self> {
        let burst = f64::from(limit.burst.max(1));
        (limit.per_second > 0).then(|| HandshakeRates {
            rate: f64::from(limit.per_second),
            burst,
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                sweep_at: MIN_SWEEP,
                swept: None,
                overflow: (burst * OVERFLOW_SHARE, now),
            }),
        })
    }

    /// Takes a token of `key`'s bucket at `now`, or says how long until it has one.
    pub(crate) fn take(&self, key: ClientKey, now: Instant) -> Result<(), Duration> {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        let len = table.buckets.len();
        let at_cap_and_due = len >= MAX_TRACKED
            && table
                .swept
                .is_none_or(|at| now.saturating_duration_since(at) >= SWEEP_AT_CAP_EVERY);
        if (len >= table.sweep_at || at_cap_and_due) && !table.buckets.contains_key(&key) {
            self.sweep(&mut table, now);
        }
        if table.buckets.len() >= MAX_TRACKED && !table.buckets.contains_key(&key) {
            let share = (self.rate * OVERFLOW_SHARE, self.burst * OVERFLOW_SHARE);
            return take(&mut table.overflow, share, now);
        }
        let (rate, burst) = (self.rate, self.burst);
        let bucket = table.buckets.entry(key).or_insert((burst, now));
        take(bucket, (rate, burst), now)
    }

    /// Drops the entries whose bucket is full again at `now`.
    fn sweep(&self, table: &mut Table, now: Instant) {
        let (rate, burst) = (self.rate, self.burst);
        table.buckets.retain(|_, (tokens, last)| {
            *tokens + now.saturating_duration_since(*last).as_secs_f64() * rate < burst
        });
        table.sweep_at = MIN_SWEEP.max(table.buckets.len().saturating_mul(2));
        table.swept = Some(now);
    }

    /// How many addresses have an entry.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .buckets
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: u32, burst: u32) -> HandshakeRates {
        HandshakeRates::new(HandshakeRate { per_second, burst }, Instant::now()).expect("on")
    }

    fn v4(n: u32) -> ClientKey {
        ClientKey::V4(n)
    }

    #[test]
    fn a_rate_of_zero_is_off() {
        assert!(
            HandshakeRates::new(
                HandshakeRate {
                    per_second: 0,
                    burst: 10
                },
                Instant::now()
            )
            .is_none()
        );
    }

    #[test]
    fn an_address_gets_its_burst_then_the_rate_and_is_told_when_to_come_back() {
        let t0 = Instant::now();
        let rates = limiter(2, 5);
        for _ in 0..5 {
            assert_eq!(rates.take(v4(1), t0), Ok(()));
        }
        assert_eq!(rates.take(v4(1), t0), Err(Duration::from_millis(500)));
        // Another address has its own bucket.
        assert_eq!(rates.take(v4(2), t0), Ok(()));
        // A refused handshake spends nothing: the token is there 500 ms on.
        assert_eq!(
            rates.take(v4(1), t0 + Duration::from_millis(250)),
            Err(Duration::from_millis(250))
        );
        assert_eq!(rates.take(v4(1), t0 + Duration::from_millis(500)), Ok(()));
        assert!(rates.take(v4(1), t0 + Duration::from_millis(500)).is_err());
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(
            (0..20).filter(|_| rates.take(v4(1), later).is_ok()).count(),
            5
        );
    }

    #[test]
    fn an_instant_before_the_last_refills_nothing_twice() {
        let t0 = Instant::now();
        let rates = limiter(1, 1);
        let later = t0 + Duration::from_secs(1);
        assert_eq!(rates.take(v4(1), t0), Ok(()));
        assert_eq!(rates.take(v4(1), later), Ok(()));
        // A caller that read the clock earlier must not turn the bucket's clock back,
        // or the second between would be refilled again.
        assert!(rates.take(v4(1), t0).is_err());
        assert!(rates.take(v4(1), later).is_err());
    }

    #[test]
    fn addresses_whose_bucket_refilled_are_swept_as_the_table_grows() {
        let t0 = Instant::now();
        let rates = limiter(10, 10);
        for n in 0..MIN_SWEEP as u32 {
            rates.take(v4(n), t0).unwrap();
        }
        assert_eq!(rates.tracked(), MIN_SWEEP);
        // A second on, every bucket is full again: the next new address sweeps them.
        let later = t0 + Duration::from_secs(1);
        rates.take(v4(u32::MAX), later).unwrap();
        assert_eq!(rates.tracked(), 1);
    }

    #[test]
    fn past_the_cap_new_addresses_share_an_overflow_bucket_and_known_ones_stay_bounded() {
        let t0 = Instant::now();
        let rates = limiter(1, 2);
        for n in 0..MAX_TRACKED as u32 {
            rates.take(v4(n), t0).unwrap();
        }
        assert_eq!(rates.tracked(), MAX_TRACKED);
        // Every bucket is still short of full: new addresses cannot get an entry, and
        // share one bucket of 64 addresses' worth (128 at once, then 64 a second)
        // rather than pass unbounded.
        let soon = t0 + Duration::from_millis(100);
        let passed = (0..1000)
            .filter(|n| rates.take(ClientKey::V6(1_000 + n), soon).is_ok())
            .count();
        assert_eq!(passed, 2 * OVERFLOW_SHARE as usize);
        let stranger = ClientKey::V6(7);
        let half_a_second = soon + Duration::from_millis(500);
        let back = (0..100)
            .filter(|_| rates.take(stranger, half_a_second).is_ok())
            .count();
        assert_eq!(back, OVERFLOW_SHARE as usize / 2, "64 a second come back");
        assert_eq!(rates.tracked(), MAX_TRACKED);
        // An address with an entry keeps its bound.
        assert_eq!(rates.take(v4(0), soon), Ok(()));
        assert!(rates.take(v4(0), soon).is_err());
        // Once the buckets refill, the next sweep (at most one a second at the cap)
        // makes room and the stranger is counted again.
        let later = t0 + Duration::from_secs(3);
        assert_eq!(rates.take(stranger, later), Ok(()));
        assert_eq!(rates.tracked(), 1);
        assert_eq!(rates.take(stranger, later), Ok(()));
        assert!(rates.take(stranger, later).is_err());
    }
}
