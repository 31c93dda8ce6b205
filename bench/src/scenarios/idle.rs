//! Idle memory: server RSS per connection at increasing numbers of idle connections
//! (connected to `/`, answering pings, sending nothing else).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fleet::{Fleet, RoomsOf, Transport};
use crate::procstat::rss_bytes;
use crate::scenarios::{Params, Target, secs};
use crate::stats::Stats;

/// RSS samples averaged per measurement (Node's heap moves with its GC).
const SAMPLES: u32 = 3;
/// Gap between samples.
const SAMPLE_GAP: Duration = Duration::from_millis(500);

/// Server memory at one connection count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdlePoint {
    /// Idle connections held.
    pub(crate) connections: usize,
    /// Server RSS in bytes.
    pub(crate) rss_bytes: u64,
    /// (RSS − RSS with no connections) / connections.
    pub(crate) bytes_per_connection: f64,
}

/// Result of the idle scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct IdleResult {
    /// Server RSS before any connection, in bytes.
    pub(crate) baseline_rss_bytes: u64,
    /// One point per connection count.
    pub(crate) points: Vec<IdlePoint>,
    /// Connections the server closed during the scenario.
    pub(crate) lost_connections: usize,
}

/// Mean RSS over a few samples.
pub(crate) async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let mut total = 0;
    for _ in 0..SAMPLES {
        tokio::time::sleep(SAMPLE_GAP).await;
        total += rss_bytes(pid)?;
    }
    Ok(total / u64::from(SAMPLES))
}

/// Runs the idle scenario: Socket.IO clients in no room.
pub(crate) async fn run(target: &Target, params: &Params) -> anyhow::Result<IdleResult> {
    let no_rooms: RoomsOf = Arc::new(|_| Vec::new());
    let (idle, _fleet) = measure(
        target,
        Transport::WebSocket,
        no_rooms,
        &params.idle_counts,
        params.idle_settle_secs,
    )
    .await?;
    Ok(idle)
}

/// Server RSS before any connection, then at each of `counts` idle receivers over
/// `transport` in `rooms_of` their index, each read `settle_secs` after the last one
/// opened; returns the fleet too, still open.
pub(crate) async fn measure(
    target: &Target,
    transport: Transport,
    rooms_of: RoomsOf,
    counts: &[usize],
    settle_secs: f64,
) -> anyhow::Result<(IdleResult, Fleet)> {
    let baseline = settled_rss(target.pid).await?;
    let mut fleet = Fleet::new(target, Arc::new(Stats::new(false)?)).over(transport);
    let mut points = Vec::new();
    let what = match transport {
        Transport::WebSocket => "idle",
        Transport::Sse => "idle SSE",
    };
    for &count in counts {
        let more = count.saturating_sub(fleet.len());
        fleet
            .grow(more, rooms_of.clone(), &format!("{what}: opening {count}"))
            .await?;
        tokio::time::sleep(secs(settle_secs)).await;
        let rss = settled_rss(target.pid).await?;
        let per = rss.saturating_sub(baseline) as f64 / count.max(1) as f64;
        eprintln!(
            "    {count} {what}: RSS {:.1} MiB, {:.2} KiB/conn",
            rss as f64 / 1048576.0,
            per / 1024.0
        );
        points.push(IdlePoint {
            connections: count,
            rss_bytes: rss,
            bytes_per_connection: per,
        });
    }
    let idle = IdleResult {
        baseline_rss_bytes: baseline,
        points,
        lost_connections: fleet.lost(),
    };
    Ok((idle, fleet))
}
