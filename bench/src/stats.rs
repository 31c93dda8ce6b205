//! Counters and latency histograms shared by the generator's connection tasks.
//!
//! Receivers add to the delivery counter once per read (not per message) and record
//! latencies into one of a few mutex-guarded HDR histograms picked by connection index,
//! so contention stays negligible on two cores. A read's latencies are recorded before
//! its deliveries are counted, so once the counter shows an event its sample is in.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Notify;

/// Histogram shards; more than worker threads, so two receivers rarely collide.
const SHARDS: usize = 16;
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
    /// Publish→deliver latencies in µs, sharded by connection.
    latency: Vec<Mutex<Histogram<u64>>>,
}

impl Stats {
    /// Fresh counters with the clock origin set to now.
    pub(crate) fn new() -> anyhow::Result<Stats> {
        let latency = (0..SHARDS)
            .map(|_| Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).map(Mutex::new))
            .collect::<Result<_, _>>()?;
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
            for shard in &self.latency {
                lock(shard).reset();
            }
        }
        self.recording.store(on, Ordering::Relaxed);
    }

    /// Records latencies of deliveries stamped `stamps` and received at `now_us`.
    pub(crate) fn record(&self, shard: usize, now_us: u64, stamps: &[u64]) {
        let mut hist = lock(&self.latency[shard % SHARDS]);
        for &stamp in stamps {
            hist.saturating_record(now_us.saturating_sub(stamp).clamp(1, MAX_LATENCY_US));
        }
    }

    /// All shards merged.
    pub(crate) fn latency(&self) -> anyhow::Result<Histogram<u64>> {
        let mut all = Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?;
        for shard in &self.latency {
            all.add(&*lock(shard))?;
        }
        Ok(all)
    }
}

/// Locks a shard, ignoring poisoning (a histogram stays usable after a panic elsewhere).
fn lock(shard: &Mutex<Histogram<u64>>) -> std::sync::MutexGuard<'_, Histogram<u64>> {
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
