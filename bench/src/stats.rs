//! Counters and latency histograms shared by the generator's connection tasks.
//!
//! Receivers add to the delivery counter once per read (not per message) and record
//! latencies into one of a few mutex-guarded HDR histograms picked by connection index,
//! so contention stays negligible on two cores. A read's latencies are recorded before
//! its deliveries are counted, so once the counter shows an event its sample is in.
//!
//! Latencies are kept apart by [`Group`]: receivers on the publisher's node and on the
//! other nodes of a cluster (a single server has only the first).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Notify;

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
    latency: [Vec<Mutex<Histogram<u64>>>; 2],
}

impl Stats {
    /// Fresh counters with the clock origin set to now.
    pub(crate) fn new() -> anyhow::Result<Stats> {
        let shards = || {
            (0..SHARDS)
                .map(|_| Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map(Mutex::new))
                .collect::<Result<Vec<_>, _>>()
        };
        let latency = [shards()?, shards()?];
        Ok(Stats {
            epoch: Instant::now(),
            delivered: AtomicU64::new(0),
            recording: AtomicBool::new(false),
            publisher_waiting: AtomicBool::new(false),
            progress: Notify::new(),
            latency,
        })
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
                lock(shard).reset();
            }
        }
        self.recording.store(on, Ordering::Relaxed);
    }

    /// Records latencies of deliveries stamped `stamps` and received at `now_us` by a
    /// receiver of `group`.
    pub(crate) fn record(&self, (group, shard): (Group, usize), now_us: u64, stamps: &[u64]) {
        let mut hist = lock(&self.latency[group as usize][shard % SHARDS]);
        for &stamp in stamps {
            hist.saturating_record(now_us.saturating_sub(stamp).clamp(1, MAX_LATENCY_US));
        }
    }

    /// All shards of every group merged.
    pub(crate) fn latency(&self) -> anyhow::Result<Histogram<u64>> {
        merged(self.latency.iter().flatten())
    }

    /// All shards of one group merged.
    pub(crate) fn latency_of(&self, group: Group) -> anyhow::Result<Histogram<u64>> {
        merged(self.latency[group as usize].iter())
    }
}

/// One histogram holding every sample of `shards`.
fn merged<'a>(
    shards: impl Iterator<Item = &'a Mutex<Histogram<u64>>>,
) -> anyhow::Result<Histogram<u64>> {
    let mut all = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?;
    for shard in shards {
        all.add(&*lock(shard))?;
    }
    Ok(all)
}

/// Locks a shard, ignoring poisoning (a histogram stays usable after a panic elsewhere).
fn lock(shard: &Mutex<Histogram<u64>>) -> std::sync::MutexGuard<'_, Histogram<u64>> {
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
