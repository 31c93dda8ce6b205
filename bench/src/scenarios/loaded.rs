//! Memory under load: one room of `--loaded-clients` receivers (the fan-out scenario's
//! room, clients and publisher) takes a steady publish rate of half the server's own
//! fan-out peak while the server's RSS is sampled; reported beside the same server's idle
//! RSS per connection at the same count, measured in the same step just before the
//! publisher starts, with the deliveries the load achieved and any it lost.
//!
//! The peak is the fan-out step's of the same round and room size when the run has one
//! (`all`: room 10,000), so this server process never ran at the peak and its RSS is that
//! of the steady load alone; otherwise the step measures a short peak on its own room
//! first, and the RSS under load then includes whatever that peak left allocated (the
//! result says which, `peak_source`).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::procstat::{Usage, rss_bytes};
use crate::publish::Pace;
use crate::scenarios::fanout;
use crate::scenarios::idle::settled_rss;
use crate::scenarios::{Params, Target, secs};

/// The publish rate as a fraction of the peak: the latency target's "half of peak", a
/// load every server sustains.
pub(crate) const LOAD: f64 = 0.5;
/// RSS samples over the measured phase, evenly spaced (the last one at its end).
pub(crate) const RSS_SAMPLES: u32 = 10;

/// Where the peak the publish rate derives from was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum PeakSource {
    /// The fan-out step of the same round on a room of the same size (another process
    /// of the same server).
    FanoutStep,
    /// Measured by this step on its own room before the load (its RSS includes the
    /// peak's leftovers).
    Measured,
}

/// Memory of one server under a steady load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LoadedResult {
    /// Receivers in the room.
    pub(crate) clients: usize,
    /// The publish rate as a fraction of the peak.
    pub(crate) load: f64,
    /// The fan-out peak, in broadcasts per second.
    pub(crate) peak_rate: f64,
    /// Where the peak comes from.
    pub(crate) peak_source: PeakSource,
    /// The publish rate, broadcasts per second.
    pub(crate) rate: f64,
    /// Server RSS before any client, bytes.
    pub(crate) baseline_rss_bytes: u64,
    /// Server RSS with every receiver connected and in the room, before any publish
    /// (mean of a few samples after settling), bytes.
    pub(crate) idle_rss_bytes: u64,
    /// (idle RSS − RSS before any client) ÷ clients.
    pub(crate) idle_bytes_per_connection: f64,
    /// RSS samples over the measured phase, bytes, in order.
    pub(crate) rss_samples: Vec<u64>,
    /// Their mean: the RSS under load, bytes.
    pub(crate) loaded_rss_bytes: u64,
    /// The highest sample, bytes.
    pub(crate) max_rss_bytes: u64,
    /// (RSS under load − RSS before any client) ÷ clients.
    pub(crate) bytes_per_connection: f64,
    /// Measured seconds.
    pub(crate) seconds: f64,
    /// Events received during the measured phase.
    pub(crate) deliveries: u64,
    /// Deliveries per second achieved.
    pub(crate) deliveries_per_sec: f64,
    /// Deliveries per second the rate asks for.
    pub(crate) offered_deliveries_per_sec: f64,
    /// Server CPU use during the measured phase, in cores.
    pub(crate) server_cores: f64,
    /// Deliveries of the whole step (warm-up, a measured peak) that had not arrived when
    /// it ended. Exact.
    pub(crate) undelivered: u64,
    /// Broadcasts of the whole step never acknowledged. Exact.
    pub(crate) unacked: u64,
    /// Receivers whose connection the server closed.
    pub(crate) lost_connections: usize,
}

/// Runs the scenario; `peak` is the fan-out peak (broadcasts/s) of this server on a
/// room of `--loaded-clients` in this round, when one was measured.
pub(crate) async fn run(
    target: &Target,
    params: &Params,
    peak: Option<f64>,
) -> anyhow::Result<LoadedResult> {
    let clients = params.loaded_clients;
    let baseline = settled_rss(target.pid).await?;
    let mut room = fanout::open_room(target, clients).await?;
    tokio::time::sleep(secs(params.idle_settle_secs)).await;
    let idle_rss = settled_rss(target.pid).await?;
    let per = |rss: u64| rss.saturating_sub(baseline) as f64 / clients.max(1) as f64;
    let (peak_rate, peak_source) = match peak {
        Some(rate) => (rate, PeakSource::FanoutStep),
        None => {
            let (peak, _) = fanout::measure_peak(&mut room, target, params).await?;
            let rate = peak.broadcasts as f64 / peak.seconds.max(f64::MIN_POSITIVE);
            (rate, PeakSource::Measured)
        }
    };
    let rate = (peak_rate * LOAD).max(1.0);
    let pace = Pace::Rate(rate);
    room.publish(pace, params.warmup_secs, "loaded: warm-up")
        .await?;
    room.drain().await;
    let usage = Usage::of(target)?;
    let (delivered0, start) = (room.stats.delivered(), Instant::now());
    let label = format!("loaded: {clients} clients at {rate:.0}/s");
    let every = secs(params.loaded_secs / f64::from(RSS_SAMPLES));
    let (published, samples) = tokio::join!(
        room.publish(pace, params.loaded_secs, &label),
        sample_rss(target.pid, every, RSS_SAMPLES)
    );
    published?;
    let rss_samples = samples?;
    let deliveries = room.stats.delivered() - delivered0;
    let seconds = start.elapsed().as_secs_f64();
    let server_cores = usage.since()?.total() / seconds;
    let (undelivered, unacked, lost_connections) = room.finish().await?;
    let loaded = mean(&rss_samples);
    let result = LoadedResult {
        clients,
        load: LOAD,
        peak_rate,
        peak_source,
        rate,
        baseline_rss_bytes: baseline,
        idle_rss_bytes: idle_rss,
        idle_bytes_per_connection: per(idle_rss),
        max_rss_bytes: rss_samples.iter().copied().max().unwrap_or(0),
        rss_samples,
        loaded_rss_bytes: loaded,
        bytes_per_connection: per(loaded),
        seconds,
        deliveries,
        deliveries_per_sec: deliveries as f64 / seconds,
        offered_deliveries_per_sec: rate * clients as f64,
        server_cores,
        undelivered,
        unacked,
        lost_connections,
    };
    eprintln!(
        "    loaded {clients} at {rate:.0}/s: {:.2} KiB/conn idle, {:.2} under load \
         (max RSS {:.1} MiB), {:.0} deliveries/s",
        result.idle_bytes_per_connection / 1024.0,
        result.bytes_per_connection / 1024.0,
        result.max_rss_bytes as f64 / 1048576.0,
        result.deliveries_per_sec
    );
    Ok(result)
}

/// `count` RSS samples of `pid`, `every` apart, the first one `every` in.
async fn sample_rss(pid: u32, every: Duration, count: u32) -> anyhow::Result<Vec<u64>> {
    let mut samples = Vec::new();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    for _ in 0..count {
        ticks.tick().await;
        samples.push(rss_bytes(pid)?);
    }
    Ok(samples)
}

/// The mean of `samples` (0 for none).
fn mean(samples: &[u64]) -> u64 {
    let n = samples.len().max(1) as u64;
    samples.iter().sum::<u64>() / n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_under_load_is_the_mean_of_its_samples() {
        assert_eq!(mean(&[10, 20, 60]), 30);
        assert_eq!(mean(&[]), 0);
    }

    #[test]
    fn the_peak_source_reads_as_written() {
        let json = serde_json::to_string(&PeakSource::FanoutStep).unwrap_or_default();
        assert_eq!(json, "\"fanout-step\"");
    }
}
