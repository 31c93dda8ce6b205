//! Churn: sustained connects and disconnects. Each worker loops: TCP connect, WebSocket
//! upgrade, Engine.IO open, Socket.IO connect to `/`, then a proper disconnect
//! (Socket.IO `41`, WebSocket close, wait for the server to close).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::client::Session;
use crate::procstat::{Usage, rss_bytes};
use crate::progress::Progress;
use crate::scenarios::{Params, Target, secs};

/// Longest one connect–disconnect cycle may take before it counts as failed.
const CYCLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Result of the churn scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChurnResult {
    /// Measured seconds.
    pub(crate) seconds: f64,
    /// Concurrent connect/disconnect loops.
    pub(crate) workers: usize,
    /// Completed connect+disconnect cycles.
    pub(crate) cycles: u64,
    /// Cycles per second.
    pub(crate) cycles_per_sec: f64,
    /// Failed cycles.
    pub(crate) failures: u64,
    /// First failure, if any.
    pub(crate) first_error: Option<String>,
    /// Server CPU seconds per thousand cycles.
    pub(crate) server_cpu_s_per_k: f64,
    /// Server RSS before, in bytes.
    pub(crate) rss_before_bytes: u64,
    /// Server RSS after, in bytes.
    pub(crate) rss_after_bytes: u64,
    /// Loopback source addresses used by the generator.
    pub(crate) source_addresses: u8,
}

/// Counters shared by the workers.
#[derive(Debug, Default)]
struct Tally {
    /// Completed cycles.
    cycles: AtomicU64,
    /// Failed cycles.
    failures: AtomicU64,
    /// First error text.
    first_error: std::sync::Mutex<Option<String>>,
}

/// One connect–disconnect cycle.
async fn cycle(target: &Target) -> anyhow::Result<()> {
    let session = Session::open(&target.pool, target.addr, target.dialect).await?;
    session.close().await
}

/// One worker: cycles until `until`.
async fn worker(target: Target, tally: Arc<Tally>, until: Instant) {
    while Instant::now() < until {
        let result = tokio::time::timeout(CYCLE_TIMEOUT, cycle(&target)).await;
        match result
            .map_err(|_| anyhow::anyhow!("cycle timed out"))
            .and_then(|r| r)
        {
            Ok(()) => {
                tally.cycles.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tally.failures.fetch_add(1, Ordering::Relaxed);
                let mut first = tally
                    .first_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                first.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
}

/// Runs the churn scenario.
pub(crate) async fn run(target: &Target, params: &Params) -> anyhow::Result<ChurnResult> {
    let rss_before = rss_bytes(target.pid)?;
    let tally = Arc::new(Tally::default());
    let usage = Usage::start(&[target.pid])?;
    let start = Instant::now();
    let until = start + secs(params.churn_secs);
    let _bar = Progress::timed("churn: connect/disconnect", secs(params.churn_secs));
    let mut workers = JoinSet::new();
    for _ in 0..params.churn_workers.max(1) {
        workers.spawn(worker(target.clone(), tally.clone(), until));
    }
    while workers.join_next().await.is_some() {}
    let seconds = start.elapsed().as_secs_f64();
    let server_cpu = usage.since()?.total();
    let cycles = tally.cycles.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first_error = tally
        .first_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    eprintln!("    churn: {:.0} cycles/s", cycles as f64 / seconds);
    Ok(ChurnResult {
        seconds,
        workers: params.churn_workers,
        cycles,
        cycles_per_sec: cycles as f64 / seconds,
        failures: tally.failures.load(Ordering::Relaxed),
        first_error,
        server_cpu_s_per_k: if cycles == 0 {
            0.0
        } else {
            server_cpu * 1000.0 / cycles as f64
        },
        rss_before_bytes: rss_before,
        rss_after_bytes: rss_bytes(target.pid)?,
        source_addresses: target.pool.used(),
    })
}
