//! Idle memory: server RSS per connection at increasing numbers of idle connections
//! (connected to `/`, answering pings, sending nothing else).

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fleet::{Fleet, RoomsOf};
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
async fn settled_rss(pid: u32) -> anyhow::Result<u64> {
    let mut total = 0;
    for _ in 0..SAMPLES {
        tokio::time::sleep(SAMPLE_GAP).await;
        total += rss_bytes(pid)?;
    }
    Ok(total / u64::from(SAMPLES))
}

/// Runs the idle scenario.
pub(crate) async fn run(target: &Target, params: &Params) -> anyhow::Result<IdleResult> {
    let baseline = settled_rss(target.pid).await?;
    let mut fleet = Fleet::new(target, Arc::new(Stats::new()?));
    let no_rooms: RoomsOf = Arc::new(|_| Vec::new());
    let mut points = Vec::new();
    for &count in &params.idle_counts {
        let more = count.saturating_sub(fleet.len());
        fleet
            .grow(more, no_rooms.clone(), &format!("idle: opening {count}"))
            .await?;
        tokio::time::sleep(secs(params.idle_settle_secs)).await;
        let rss = settled_rss(target.pid).await?;
        let per = rss.saturating_sub(baseline) as f64 / count.max(1) as f64;
        eprintln!(
            "    {count} idle: RSS {:.1} MiB, {:.2} KiB/conn",
            rss as f64 / 1048576.0,
            per / 1024.0
        );
        points.push(IdlePoint {
            connections: count,
            rss_bytes: rss,
            bytes_per_connection: per,
        });
    }
    Ok(IdleResult {
        baseline_rss_bytes: baseline,
        points,
        lost_connections: fleet.lost(),
    })
}
