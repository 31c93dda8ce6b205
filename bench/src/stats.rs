//! Counters and latency histograms shared by the generator's connection tasks.
//!
//! Receivers add to the delivery counter once per read (not per message) and record
//! latencies into one of a few mutex-guarded HDR histograms picked by connection index,
//! so contention stays negligible on two cores. A read's latencies are recorded before
//! its deliveries are counted, so once the counter shows an event its sample is in.
//!
//! Latencies are kept apart by [`Group`]: receivers on the publisher's node and on the
//! other nodes of a cluster (a single server has only the first). Each sample is kept
//! twice, by where it ends ([`End`]): the event's arrival at the receiver's socket and
//! the generator's read of it. Only with `--latency-arrival` do the two differ (the
//! kernel's receive stamp, `crate::arrival`); otherwise both end at the read.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::arrival::Stamped;

/// Histogram shards per group; more than worker threads, so two receivers rarely collide.
const SHARDS: usize = 16;

/// Where a receiver is relative to the publisher, for latencies kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// Connected to the publisher's node (every receiver of a single server).
    SameNode,
    /// Connected to another node of a cluster.
    OtherNode,
}
/// Where a latency sample ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The event reached the receiver's socket (the kernel's receive stamp).
    Arrival,
    /// The generator read it.
    Read,
}

/// One shard's histograms, one per [`End`] (`Arrival` first).
type Shard = Mutex<[Histogram<u64>; 2]>;

/// Percentiles of one histogram, µs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Quantiles {
    /// Median.
    pub(crate) p50_us: u64,
    /// 99th percentile.
    pub(crate) p99_us: u64,
    /// 99.9th percentile.
    pub(crate) p999_us: u64,
    /// Maximum.
    pub(crate) max_us: u64,
}

impl Quantiles {
    /// The percentiles of `hist`.
    pub(crate) fn of(hist: &Histogram<u64>) -> Quantiles {
        Quantiles {
            p50_us: hist.value_at_quantile(0.50),
            p99_us: hist.value_at_quantile(0.99),
            p999_us: hist.value_at_quantile(0.999),
            max_us: hist.max(),
        }
    }
}

/// Highest latency recorded, in microseconds (60 s); larger values are clamped.
const MAX_LATENCY_US: u64 = 60_000_000;
/// How often [`Stats::wait_delivered`] looks at the counter: short next to a phase, long
/// enough not to take a core from the receivers.
const WAIT_POLL: Duration = Duration::from_millis(10);

/// Shared measurement state of one generator run.
#[derive(Debug)]
pub(crate) struct Stats {
    /// Clock origin of payload timestamps.
    epoch: Instant,
    /// Benchmark events received, all receivers together.
    delivered: AtomicU64,
    /// Whether receivers record latencies right now.
    recording: AtomicBool,
    /// Set while a publisher waits for deliveries to catch up.
    publisher_waiting: AtomicBool,
    /// Wakes a waiting publisher when deliveries arrive.
    progress: Notify,
    /// Publish→deliver latencies in µs of each [`Group`] (`SameNode` first), sharded by
    /// connection.
    latency: [Vec<Shard>; 2],
    /// Samples recorded whose read the kernel did not stamp (their arrival is the read).
    unstamped: AtomicU64,
    /// Whether receivers read with the kernel's receive stamp (--latency-arrival).
    arrival: bool,
}

impl Stats {
    /// Fresh counters with the clock origin set to now; with `arrival`, receivers read
    /// with the kernel's receive stamp.
    pub(crate) fn new(arrival: bool) -> anyhow::Result<Stats> {
        let shards = || {
            (0..SHARDS)
                .map(|_| Ok(Mutex::new([histogram()?, histogram()?])))
                .collect::<anyhow::Result<Vec<_>>>()
        };
        let latency = [shards()?, shards()?];
        Ok(Stats {
            epoch: Instant::now(),
            delivered: AtomicU64::new(0),
            recording: AtomicBool::new(false),
            publisher_waiting: AtomicBool::new(false),
            progress: Notify::new(),
            latency,
            unstamped: AtomicU64::new(0),
            arrival,
        })
    }

    /// Whether receivers read with the kernel's receive stamp.
    pub(crate) fn arrival(&self) -> bool {
        self.arrival
    }

    /// Microseconds since the clock origin at `at`.
    pub(crate) fn stamp(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// Total deliveries so far (acquire: pairs with [`Stats::add_delivered`], so the
    /// samples of the deliveries seen are visible).
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
    }

    /// Adds one read's worth of deliveries, after [`Stats::record`] of the same read.
    pub(crate) fn add_delivered(&self, n: u64) {
        if n > 0 {
            self.delivered.fetch_add(n, Ordering::Release);
            if self.publisher_waiting.load(Ordering::Relaxed) {
                self.progress.notify_one();
            }
        }
    }

    /// Waits until at least `expected` deliveries in total have arrived; `false` if they
    /// have not within `within` (the server lost events, or stalled that long).
    pub(crate) async fn wait_delivered(&self, expected: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.delivered() < expected {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
        true
    }

    /// Resolves after the next deliveries arrive (or soon after, if some just did).
    pub(crate) async fn deliveries_arrived(&self) {
        self.publisher_waiting.store(true, Ordering::Relaxed);
        self.progress.notified().await;
        self.publisher_waiting.store(false, Ordering::Relaxed);
    }

    /// Whether latencies are being recorded.
    pub(crate) fn recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    /// Starts (clearing earlier samples) or stops latency recording.
    pub(crate) fn set_recording(&self, on: bool) {
        if on {
            for shard in self.latency.iter().flatten() {
                lock(shard).iter_mut().for_each(Histogram::reset);
            }
            self.unstamped.store(0, Ordering::Relaxed);
        }
        self.recording.store(on, Ordering::Relaxed);
    }

    /// Records latencies of deliveries stamped `stamps`, received by a receiver of
    /// `group` in one read that `at` dates. Without arrival stamps the two ends are the
    /// same read and only the first histogram is kept (the phase reports no second).
    pub(crate) fn record(&self, (group, shard): (Group, usize), at: Stamped, stamps: &[u64]) {
        let ends = [self.stamp(at.arrived), self.stamp(at.read)];
        let kept = if self.arrival { 2 } else { 1 };
        let mut hists = lock(&self.latency[group as usize][shard % SHARDS]);
        for (hist, end) in hists.iter_mut().zip(ends).take(kept) {
            for &stamp in stamps {
                hist.saturating_record(end.saturating_sub(stamp).clamp(1, MAX_LATENCY_US));
            }
        }
        if at.fell_back {
            self.unstamped
                .fetch_add(stamps.len() as u64, Ordering::Relaxed);
        }
    }

    /// Samples recorded since recording started whose read the kernel did not stamp.
    pub(crate) fn unstamped(&self) -> u64 {
        self.unstamped.load(Ordering::Relaxed)
    }

    /// All shards of every group merged, the samples ending at `end`.
    pub(crate) fn latency(&self, end: End) -> anyhow::Result<Histogram<u64>> {
        merged(self.latency.iter().flatten(), end)
    }

    /// With arrival stamps, the percentiles of the samples ended at the read, of `group`
    /// (`None`: every group); without, `None` (the read is what the phase reports, and
    /// nothing is merged for it).
    pub(crate) fn quantiles_at_read(
        &self,
        group: Option<Group>,
    ) -> anyhow::Result<Option<Quantiles>> {
        if !self.arrival {
            return Ok(None);
        }
        let hist = match group {
            Some(g) => self.latency_of(g, End::Read)?,
            None => self.latency(End::Read)?,
        };
        Ok(Some(Quantiles::of(&hist)))
    }

    /// All shards of one group merged, the samples ending at `end`.
    pub(crate) fn latency_of(&self, group: Group, end: End) -> anyhow::Result<Histogram<u64>> {
        merged(self.latency[group as usize].iter(), end)
    }
}

/// An empty latency histogram.
fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?)
}

/// One histogram holding every sample of `shards` ending at `end`.
fn merged<'a>(shards: impl Iterator<Item = &'a Shard>, end: End) -> anyhow::Result<Histogram<u64>> {
    let mut all = histogram()?;
    for shard in shards {
        all.add(&lock(shard)[end as usize])?;
    }
    Ok(all)
}

/// Locks a shard, ignoring poisoning (a histogram stays usable after a panic elsewhere).
fn lock(shard: &Shard) -> std::sync::MutexGuard<'_, [Histogram<u64>; 2]> {
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read of one delivery stamped 1,000 µs after the origin, arrived 3 ms and read
    /// 5 ms after that (the stamps in µs since the origin).
    fn one_read(stats: &Stats) {
        let at = Stamped {
            arrived: stats.epoch + Duration::from_micros(4_000),
            read: stats.epoch + Duration::from_micros(6_000),
            fell_back: false,
        };
        stats.set_recording(true);
        stats.record((Group::OtherNode, 3), at, &[1_000]);
    }

    #[test]
    fn a_stamped_sample_ends_twice_an_unstamped_one_once() {
        let stamped = Stats::new(true).unwrap();
        one_read(&stamped);
        let arrival = stamped.latency_of(Group::OtherNode, End::Arrival).unwrap();
        let read = stamped.latency(End::Read).unwrap();
        // HDR histograms report a bucket's highest equivalent value.
        assert_eq!(arrival.len(), 1);
        assert!(
            arrival.equivalent(arrival.max(), 3_000),
            "{}",
            arrival.max()
        );
        assert_eq!(read.len(), 1);
        assert!(read.equivalent(read.max(), 5_000), "{}", read.max());
        assert_eq!(
            stamped
                .latency_of(Group::SameNode, End::Arrival)
                .unwrap()
                .len(),
            0
        );

        let unstamped = Stats::new(false).unwrap();
        one_read(&unstamped);
        assert_eq!(unstamped.latency(End::Arrival).unwrap().len(), 1);
        assert_eq!(unstamped.latency(End::Read).unwrap().len(), 0, "kept once");
    }
}
