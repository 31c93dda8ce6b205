//! Counters, gauges and latency histograms of a webhook sink, read as a
//! [`HookMetrics`] snapshot by the binary's `/metrics`.
//!
//! Plain relaxed atomics: each value is independent and a scrape only needs each one
//! to be eventually right, so no lock is taken on the delivery path.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the latency histogram buckets, in seconds (Prometheus `le`). From
/// a fast local backend (5 ms) to the retry horizon of a lifecycle event (a minute and
/// more); `+Inf` is implied by `count`.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// A point-in-time copy of the sink's metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookMetrics {
    /// Lifecycle events accepted by the backend (2xx).
    pub delivered: u64,
    /// Lifecycle delivery attempts that failed (network error, timeout, non-2xx),
    /// whether or not they were retried.
    pub failed_attempts: u64,
    /// Retries scheduled (attempts after the first).
    pub retried: u64,
    /// Lifecycle events the backend refused for good (4xx other than 408/429).
    pub rejected: u64,
    /// Lifecycle events put in the dead-letter store, for any reason (including
    /// overflow and shutdown).
    pub dead_lettered: u64,
    /// Lifecycle events lost to a full queue (also counted in `dead_lettered`).
    pub dropped_overflow: u64,
    /// Dead letters that could not be written to the file (write error, or the file
    /// writer's own bounded queue was full); they are still in memory.
    pub dead_letter_file_errors: u64,
    /// Forwarded events answered with a valid reply.
    pub forward_ok: u64,
    /// Forwarded events that timed out.
    pub forward_timeout: u64,
    /// Forwarded events answered with a non-2xx status.
    pub forward_rejected: u64,
    /// Forwarded events answered 2xx with an invalid body.
    pub forward_invalid_reply: u64,
    /// Forwarded events that reached no backend (network or TLS error).
    pub forward_unavailable: u64,
    /// Lifecycle events waiting in the queue now.
    pub queue_depth: u64,
    /// The queue's capacity, to alert on `queue_depth / queue_capacity`.
    pub queue_capacity: u64,
    /// Lifecycle events being delivered now (attempting or waiting to retry).
    pub in_flight: u64,
    /// From `deliver` to the backend's 2xx, for delivered lifecycle events (queueing
    /// and retries included).
    pub delivery_latency: HistogramSnapshot,
    /// From `forward` to a usable reply, for forwarded events answered 2xx.
    pub forward_latency: HistogramSnapshot,
}

/// A latency histogram: cumulative counts per [`LATENCY_BUCKETS`] bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistogramSnapshot {
    /// Upper bounds in seconds, ascending ([`LATENCY_BUCKETS`]).
    pub bounds: &'static [f64],
    /// Observations `<=` each bound (cumulative, as Prometheus wants).
    pub cumulative: Vec<u64>,
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// Sum of all observations, in seconds.
    pub sum_seconds: f64,
}

/// Live metrics, shared by the sink's tasks.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) delivered: AtomicU64,
    pub(crate) failed_attempts: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) dead_lettered: AtomicU64,
    pub(crate) dropped_overflow: AtomicU64,
    pub(crate) dead_letter_file_errors: AtomicU64,
    pub(crate) forward_ok: AtomicU64,
    pub(crate) forward_timeout: AtomicU64,
    pub(crate) forward_rejected: AtomicU64,
    pub(crate) forward_invalid_reply: AtomicU64,
    pub(crate) forward_unavailable: AtomicU64,
    pub(crate) in_flight: AtomicU64,
    pub(crate) delivery_latency: Histogram,
    pub(crate) forward_latency: Histogram,
}

/// Adds one to a counter.
pub(crate) fn incr(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

impl Metrics {
    /// A snapshot, with the queue's gauges supplied by the caller (the queue owns them).
    pub(crate) fn snapshot(&self, queue_depth: usize, queue_capacity: usize) -> HookMetrics {
        HookMetrics {
            delivered: self.delivered.load(Relaxed),
            failed_attempts: self.failed_attempts.load(Relaxed),
            retried: self.retried.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            dead_lettered: self.dead_lettered.load(Relaxed),
            dropped_overflow: self.dropped_overflow.load(Relaxed),
            dead_letter_file_errors: self.dead_letter_file_errors.load(Relaxed),
            forward_ok: self.forward_ok.load(Relaxed),
            forward_timeout: self.forward_timeout.load(Relaxed),
            forward_rejected: self.forward_rejected.load(Relaxed),
            forward_invalid_reply: self.forward_invalid_reply.load(Relaxed),
            forward_unavailable: self.forward_unavailable.load(Relaxed),
            queue_depth: u64::try_from(queue_depth).unwrap_or(u64::MAX),
            queue_capacity: u64::try_from(queue_capacity).unwrap_or(u64::MAX),
            in_flight: self.in_flight.load(Relaxed),
            delivery_latency: self.delivery_latency.snapshot(),
            forward_latency: self.forward_latency.snapshot(),
        }
    }
}

/// A fixed-bucket histogram of durations.
#[derive(Debug)]
pub(crate) struct Histogram {
    /// Per-bucket (non-cumulative) counts, one per [`LATENCY_BUCKETS`] bound.
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    /// Records one observation.
    pub(crate) fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Relaxed);
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                running += b.load(Relaxed);
                running
            })
            .collect();
        HistogramSnapshot {
            bounds: LATENCY_BUCKETS,
            cumulative,
            count: self.count.load(Relaxed),
            sum_seconds: Duration::from_micros(self.sum_micros.load(Relaxed)).as_secs_f64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_cumulatively() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_millis(40));
        h.observe(Duration::from_secs(500));
        let s = h.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], 1); // <= 5 ms
        assert_eq!(s.cumulative[3], 2); // <= 50 ms
        assert_eq!(s.cumulative.last().copied(), Some(2)); // 500 s is only in +Inf
        assert!((s.sum_seconds - 500.043).abs() < 1e-6);
    }
}
