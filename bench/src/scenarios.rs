//! The benchmark scenarios, their parameters and their results. Each scenario runs
//! against one freshly started server and returns plain numbers; the runner
//! (`suite`) compares servers.

pub(crate) mod churn;
pub(crate) mod fanout;
pub(crate) mod idle;
pub(crate) mod rooms;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::net::SourcePool;
use crate::sio::Dialect;

/// Longest wait for every published event to reach every member before a phase starts
/// or a scenario ends. A safety net: it runs out only when the server lost events (or
/// stalled that long), which the result then shows as `undelivered`.
pub(crate) const DRAIN: Duration = Duration::from_secs(5);

/// One scenario of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scenario {
    /// Server RSS per idle connection at several connection counts.
    Idle,
    /// One room, a publisher broadcasting as fast as the server accepts.
    Fanout,
    /// Fixed publish rate at half of the measured fan-out peak; latency percentiles.
    Latency,
    /// Many small rooms, targeted emits.
    Rooms,
    /// Sustained connects and disconnects.
    Churn,
}

impl Scenario {
    /// Every scenario, in run order.
    pub(crate) const ALL: [Scenario; 5] = [
        Scenario::Idle,
        Scenario::Fanout,
        Scenario::Latency,
        Scenario::Rooms,
        Scenario::Churn,
    ];
}

/// Sizes and durations of every scenario (defaults: the full run).
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub(crate) struct Params {
    /// Idle scenario: connection counts measured, in increasing order.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,15000")]
    pub(crate) idle_counts: Vec<usize>,
    /// Idle scenario: seconds to let the server settle before reading its RSS.
    #[arg(long, default_value_t = 3.0)]
    pub(crate) idle_settle_secs: f64,
    /// Fan-out and latency scenarios: room sizes.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    pub(crate) room_sizes: Vec<usize>,
    /// Seconds of unmeasured publishing before each measured phase.
    #[arg(long, default_value_t = 2.0)]
    pub(crate) warmup_secs: f64,
    /// Fan-out scenario: measured seconds per room size.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) fanout_secs: f64,
    /// Latency scenario: measured seconds per room size.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) latency_secs: f64,
    /// Latency scenario: publish rates as fractions of the peak broadcast rate measured
    /// by the fan-out phase just before (0.5 is the target's "half of peak").
    #[arg(long, value_delimiter = ',', default_value = "0.5,0.1,0.01")]
    pub(crate) latency_loads: Vec<f64>,
    /// Latency scenario: one fixed rate in broadcasts per second instead of the loads.
    #[arg(long)]
    pub(crate) latency_rate: Option<f64>,
    /// Many-rooms scenario: number of rooms (also the number of clients).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) rooms: usize,
    /// Many-rooms scenario: members per room (rooms each client joins).
    #[arg(long, default_value_t = 5)]
    pub(crate) members: usize,
    /// Many-rooms scenario: publisher connections.
    #[arg(long, default_value_t = 4)]
    pub(crate) publishers: usize,
    /// Many-rooms scenario: measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) rooms_secs: f64,
    /// Churn scenario: measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) churn_secs: f64,
    /// Churn scenario: concurrent connect/disconnect loops.
    #[arg(long, default_value_t = 32)]
    pub(crate) churn_workers: usize,
}

impl Params {
    /// Tiny sizes and durations for the CI smoke run.
    pub(crate) fn smoke() -> Params {
        Params {
            idle_counts: vec![20, 50],
            idle_settle_secs: 0.3,
            room_sizes: vec![10, 50],
            warmup_secs: 0.2,
            fanout_secs: 1.0,
            latency_secs: 1.0,
            latency_loads: vec![0.5, 0.1],
            latency_rate: None,
            rooms: 20,
            members: 5,
            publishers: 2,
            rooms_secs: 1.0,
            churn_secs: 1.0,
            churn_workers: 4,
        }
    }
}

/// What a scenario needs to reach and observe the server under test.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Server address.
    pub(crate) addr: SocketAddr,
    /// Server process id (for RSS and CPU).
    pub(crate) pid: u32,
    /// Source addresses of the generator's connections.
    pub(crate) pool: Arc<SourcePool>,
    /// How the server joins rooms, takes publishes and delivers.
    pub(crate) dialect: Dialect,
}

/// Seconds as a `Duration` (negative or NaN: zero).
pub(crate) fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

/// `x` per million `per`, or 0 when `per` is 0.
pub(crate) fn per_million(x: f64, per: u64) -> f64 {
    if per == 0 { 0.0 } else { x * 1e6 / per as f64 }
}
