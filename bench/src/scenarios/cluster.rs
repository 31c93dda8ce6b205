//! Cluster scenarios: fan-out, latency and many rooms on 1, 2 or 3 nodes of one server
//! clustered over one Redis, receivers spread evenly over the nodes (receiver `i` on node
//! `i % nodes`), publishers on the first node. The workloads are the single-server ones
//! (`fanout`, `rooms`), run against every node at once; what this adds is the CPU of
//! every process (each node and Redis) per delivery, and latency split by where the
//! receiver is: on the publisher's node, or on another one.
//!
//! Fan-out and many rooms measure twice: as fast as the cluster accepts, and then at
//! one fixed load for every server and node count (the cost phase). At its peak a node
//! falls behind, finds several events queued per socket and writes them with one
//! syscall, so a delivery at peak costs less the further behind a shape runs; the cost
//! phase compares clusters doing the same work.
//!
//! Every process shares the same two cores, so these numbers say what a delivery costs
//! in a cluster, not how far one scales out.

use serde::{Deserialize, Serialize};

use crate::chart::human;
use crate::peers::Adapter;
use crate::procstat::Spent;
use crate::scenarios::fanout::{self, FanoutResult, LatencyResult};
use crate::scenarios::rooms::{self, RoomsResult};
use crate::scenarios::{Params, Target, per_million};
use crate::stats::{End, Group, Quantiles};

/// Which cluster a result comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Shape {
    /// The adapter the nodes cluster with.
    pub(crate) adapter: Adapter,
    /// Number of nodes.
    pub(crate) nodes: usize,
}

/// CPU seconds per million deliveries of each process of a cluster in a measured phase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterCpu {
    /// Each node, in order (the first is the publisher's).
    pub(crate) nodes_s_per_m: Vec<f64>,
    /// The Redis server.
    pub(crate) redis_s_per_m: f64,
    /// Every node and Redis together: what a delivery costs the cluster.
    pub(crate) total_s_per_m: f64,
    /// Commands Redis took per read from its clients' sockets (`INFO stats`): how well
    /// the nodes pipeline. Each read is a turn of Redis' event loop, with an answer
    /// written and each subscriber written to, so fewer commands per read cost Redis
    /// more per command. `None` in runs written before this existed.
    #[serde(default)]
    pub(crate) redis_commands_per_read: Option<f64>,
}

impl ClusterCpu {
    /// From the CPU each process spent (the nodes, then Redis, as
    /// [`crate::cluster::Cluster::processes`] lists them) over `deliveries`.
    fn of(spent: &Spent, deliveries: u64) -> ClusterCpu {
        let per = |s: f64| per_million(s, deliveries);
        let (nodes, redis) = spent.each.split_at(spent.each.len().saturating_sub(1));
        ClusterCpu {
            nodes_s_per_m: nodes.iter().map(|&s| per(s)).collect(),
            redis_s_per_m: redis.iter().map(|&s| per(s)).sum(),
            total_s_per_m: per(spent.total()),
            redis_commands_per_read: spent.redis_commands_per_read,
        }
    }
}

/// A cost phase may offer at most this fraction of the cell's measured peak: closer to
/// it, the cluster would run as far behind as at its peak.
pub(crate) const COST_HEADROOM: f64 = 0.8;

/// The cost phase: what a delivery costs the cluster at one fixed load.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AtRate {
    /// Deliveries per second the fixed rate asks for.
    pub(crate) offered_deliveries_per_sec: f64,
    /// Deliveries per second received.
    pub(crate) deliveries_per_sec: f64,
    /// Measured seconds.
    pub(crate) seconds: f64,
    /// The CPU per process.
    pub(crate) cpu: ClusterCpu,
    /// The whole cluster's CPU use (nodes and Redis), in cores.
    pub(crate) cores: f64,
}

impl AtRate {
    /// From a phase of `seconds` offering `offered` deliveries/s that received
    /// `deliveries` while the processes spent `spent`.
    fn of(offered: f64, deliveries: u64, seconds: f64, spent: &Spent) -> AtRate {
        AtRate {
            offered_deliveries_per_sec: offered,
            deliveries_per_sec: deliveries as f64 / seconds,
            seconds,
            cpu: ClusterCpu::of(spent, deliveries),
            cores: spent.total() / seconds,
        }
    }
}

/// Whether a cost phase offering `offered` deliveries/s runs on a cell whose peak was
/// `peak`: a positive rate, within [`COST_HEADROOM`] of the peak.
fn cost_phase_fits(offered: f64, peak: f64) -> bool {
    offered > 0.0 && offered <= COST_HEADROOM * peak
}

/// Cross-node fan-out: one room spread over the nodes, publisher as fast as it accepts,
/// then at the cost phase's fixed rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterFanout {
    /// The cluster.
    pub(crate) shape: Shape,
    /// The fan-out measures; `server_cpu_s_per_m` and `server_cores` are the whole
    /// cluster's (nodes and Redis).
    pub(crate) fanout: FanoutResult,
    /// The CPU per process.
    pub(crate) cpu: ClusterCpu,
    /// The cost phase (`None`: not run, or the peak was too low for its rate).
    #[serde(default)]
    pub(crate) at_rate: Option<AtRate>,
}

/// Publish→deliver percentiles of one group of receivers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Percentiles {
    /// Receivers in the group.
    pub(crate) receivers: usize,
    /// Deliveries recorded.
    pub(crate) samples: u64,
    /// Deliveries expected (broadcasts × receivers).
    pub(crate) expected: u64,
    /// Publish→deliver percentiles: to the event's arrival at the socket in a run with
    /// arrival stamps, to the generator's read otherwise. Serialized inline, as the four
    /// fields of this struct that results written before had.
    #[serde(flatten)]
    pub(crate) quantiles: Quantiles,
    /// The same samples ended at the generator's read (`None`: a run before arrival
    /// stamps, whose percentiles above are already at the read).
    #[serde(default)]
    pub(crate) at_read: Option<Quantiles>,
}

/// Cross-node latency at a fixed publish rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterLatency {
    /// The cluster.
    pub(crate) shape: Shape,
    /// Every receiver together (`load` is `None`: a fixed rate; CPU is the cluster's).
    pub(crate) latency: LatencyResult,
    /// Receivers on the publisher's node.
    pub(crate) same_node: Percentiles,
    /// Receivers on the other nodes (`None` with one node).
    pub(crate) other_nodes: Option<Percentiles>,
}

/// Many rooms spread over the nodes, targeted emits from the first node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterRooms {
    /// The cluster.
    pub(crate) shape: Shape,
    /// The many-rooms measures; `server_cpu_s_per_m` is the whole cluster's.
    pub(crate) rooms: RoomsResult,
    /// The CPU per process.
    pub(crate) cpu: ClusterCpu,
    /// The cost phase (`None`: not run, or the peak was too low for its rate).
    #[serde(default)]
    pub(crate) at_rate: Option<AtRate>,
}

/// Receivers of a room of `size` on the publisher's node (the first of `nodes`).
fn on_first_node(size: usize, nodes: usize) -> usize {
    size.div_ceil(nodes.max(1))
}

/// The fixed publish rate of the latency phase on a room of `size` (a step without a
/// fan-out peak to take a fraction of): the offered deliveries per second the
/// parameters ask for, at least one broadcast per second.
pub(crate) fn latency_rate(params: &Params, size: usize) -> f64 {
    (params.cluster_latency_deliveries / size.max(1) as f64).max(1.0)
}

/// The latency phase's rate in broadcasts/s on a room of `size`, and the fraction of
/// the cell's `peak` it is: --cluster-latency-load of that peak when the step measured
/// one, else the fixed rate ([`latency_rate`], fraction `None`).
fn latency_pace(params: &Params, size: usize, peak: Option<&FanoutResult>) -> (f64, Option<f64>) {
    match peak {
        Some(peak) if params.cluster_latency_load > 0.0 && peak.seconds > 0.0 => {
            let load = params.cluster_latency_load;
            let peak_rate = peak.broadcasts as f64 / peak.seconds;
            ((peak_rate * load).max(1.0), Some(load))
        }
        _ => (latency_rate(params, size), None),
    }
}

/// Longest measured latency phase --cluster-latency-broadcasts may ask for.
pub(crate) const MAX_LATENCY_SECS: f64 = 120.0;

/// Seconds of the latency phase at `rate` broadcasts/s: --latency-secs, or long enough
/// for --cluster-latency-broadcasts, at most [`MAX_LATENCY_SECS`].
fn latency_secs(params: &Params, rate: f64) -> f64 {
    let wanted = params.cluster_latency_broadcasts / rate.max(1.0);
    params.latency_secs.max(wanted.min(MAX_LATENCY_SECS))
}

/// Fan-out on one room of `size` (when `want.0`), then latency at the fixed rate (when
/// `want.1`), on one fresh cluster.
pub(crate) async fn fanout(
    target: &Target,
    params: &Params,
    shape: Shape,
    size: usize,
    want: (bool, bool),
) -> anyhow::Result<(Option<ClusterFanout>, Option<ClusterLatency>)> {
    let mut room = fanout::open_room(target, size).await?;
    let mut peak = None;
    if want.0 {
        let (result, spent) = fanout::measure_peak(&mut room, target, params).await?;
        eprintln!(
            "    {} × {}, fanout {size}: {:.0} deliveries/s, {:.2} cluster CPU s per M",
            shape.nodes,
            shape.adapter.name(),
            result.deliveries_per_sec,
            result.server_cpu_s_per_m
        );
        let cpu = ClusterCpu::of(&spent, result.deliveries);
        let offered = params.cluster_cost_deliveries;
        let at_rate = if cost_phase_fits(offered, result.deliveries_per_sec) {
            Some(cost_of_fanout(&mut room, target, params, shape).await?)
        } else {
            None
        };
        peak = Some((result, cpu, at_rate));
    }
    let mut latency = None;
    if want.1 {
        let (rate, load) = latency_pace(params, size, peak.as_ref().map(|p| &p.0));
        let secs = latency_secs(params, rate);
        let all = fanout::measure_latency(&mut room, target, (rate, load), secs, params).await?;
        let broadcasts = all.expected / size.max(1) as u64;
        let group = |g: Group, receivers: usize| -> anyhow::Result<Percentiles> {
            let hist = room.stats.latency_of(g, End::Arrival)?;
            Ok(Percentiles {
                receivers,
                samples: hist.len(),
                expected: broadcasts * receivers as u64,
                quantiles: Quantiles::of(&hist),
                at_read: room.stats.quantiles_at_read(Some(g))?,
            })
        };
        let same = on_first_node(size, shape.nodes);
        let same_node = group(Group::SameNode, same)?;
        let other_nodes = (shape.nodes > 1)
            .then(|| group(Group::OtherNode, size - same))
            .transpose()?;
        eprintln!(
            "    {} × {}, latency {size} at {rate:.0}/s: p99 {} µs same node, {} µs other nodes",
            shape.nodes,
            shape.adapter.name(),
            same_node.quantiles.p99_us,
            other_nodes
                .as_ref()
                .map_or("-".to_owned(), |p| p.quantiles.p99_us.to_string())
        );
        latency = Some(ClusterLatency {
            shape,
            latency: all,
            same_node,
            other_nodes,
        });
    }
    let mut fanout = peak.map(|(result, cpu, at_rate)| ClusterFanout {
        shape,
        fanout: result,
        cpu,
        at_rate,
    });
    if let Some(f) = &mut fanout {
        room.settle(&mut f.fanout).await?;
    }
    Ok((fanout, latency))
}

/// The fan-out cost phase on an open room: --cluster-cost-deliveries per second (as
/// broadcasts, at least one a second) for --fanout-secs after a warm-up.
async fn cost_of_fanout(
    room: &mut fanout::Room,
    target: &Target,
    params: &Params,
    shape: Shape,
) -> anyhow::Result<AtRate> {
    let rate = (params.cluster_cost_deliveries / room.size.max(1) as f64).max(1.0);
    let offered = rate * room.size as f64;
    let secs = params.fanout_secs;
    let phase = fanout::at_rate(room, target, rate, secs, params, "cost", false).await?;
    let at = AtRate::of(offered, phase.delivered, phase.seconds, &phase.spent);
    eprintln!(
        "    {} × {}, fanout {} at {}/s: {:.2} cluster CPU s per M",
        shape.nodes,
        shape.adapter.name(),
        room.size,
        human(offered),
        at.cpu.total_s_per_m
    );
    Ok(at)
}

/// Many rooms on one fresh cluster: as fast as acks come back (or at --rooms-rate), then
/// the cost phase at --cluster-rooms-rate emits per second (where the first phase's rate
/// leaves room for it).
pub(crate) async fn rooms(
    target: &Target,
    params: &Params,
    shape: Shape,
) -> anyhow::Result<ClusterRooms> {
    let mut open = rooms::Rooms::open(target, params).await?;
    let pace = open.pace(params);
    let peak = open
        .measure(target, params, pace, "rooms: targeted emits")
        .await?;
    let mut result = open.result(&peak);
    eprintln!(
        "    {} × {}, rooms: {:.2} cluster CPU s per M",
        shape.nodes,
        shape.adapter.name(),
        result.server_cpu_s_per_m
    );
    let members = result.members as f64;
    let offered = params.cluster_rooms_rate * members;
    let mut at_rate = None;
    if cost_phase_fits(offered, result.deliveries_per_sec) {
        let pace = open.rate(params.cluster_rooms_rate);
        let label = format!(
            "cost: {}/s targeted emits",
            human(params.cluster_rooms_rate)
        );
        let phase = open.measure(target, params, pace, &label).await?;
        let at = AtRate::of(offered, phase.deliveries, phase.seconds, &phase.spent);
        eprintln!(
            "    {} × {}, rooms at {}/s: {:.2} cluster CPU s per M",
            shape.nodes,
            shape.adapter.name(),
            human(params.cluster_rooms_rate),
            at.cpu.total_s_per_m
        );
        at_rate = Some(at);
    }
    open.settle(&mut result).await?;
    Ok(ClusterRooms {
        shape,
        cpu: ClusterCpu::of(&peak.spent, peak.deliveries),
        rooms: result,
        at_rate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_node_gets_its_share_rounded_up() {
        assert_eq!(on_first_node(10, 1), 10);
        assert_eq!(on_first_node(10, 3), 4);
        assert_eq!(on_first_node(9, 3), 3);
        assert_eq!(on_first_node(1, 3), 1);
    }

    #[test]
    fn a_cost_phase_runs_only_well_below_the_peak() {
        assert!(cost_phase_fits(400_000.0, 500_000.0));
        assert!(!cost_phase_fits(400_000.0, 499_999.0));
        assert!(!cost_phase_fits(0.0, 1e6), "0 turns the phase off");
    }

    #[test]
    fn latency_runs_at_a_tenth_of_the_cells_own_peak_or_at_the_fixed_rate() {
        let mut params = Params::smoke();
        params.cluster_latency_deliveries = 10_000.0;
        let peak = FanoutResult {
            room_size: 1000,
            seconds: 10.0,
            broadcasts: 15_000,
            deliveries: 15_000_000,
            deliveries_per_sec: 1.5e6,
            server_cpu_s_per_m: 1.0,
            server_cores: 1.0,
            generator_cpu_s_per_m: 1.0,
            written_off: 0,
            undelivered: 0,
            unacked: 0,
            lost_connections: 0,
        };
        assert_eq!(latency_pace(&params, 1000, Some(&peak)), (150.0, Some(0.1)));
        assert_eq!(latency_pace(&params, 1000, None), (10.0, None));
        params.cluster_latency_load = 0.0;
        assert_eq!(latency_pace(&params, 1000, Some(&peak)), (10.0, None));
        // At least one broadcast a second.
        assert_eq!(latency_pace(&params, 100_000, None), (1.0, None));
    }

    #[test]
    fn a_slow_latency_phase_lasts_until_enough_broadcasts_at_most_two_minutes() {
        let mut params = Params::smoke();
        params.latency_secs = 10.0;
        params.cluster_latency_broadcasts = 1000.0;
        assert_eq!(
            latency_secs(&params, 200.0),
            10.0,
            "1000 take 5 s: the 10 s stand"
        );
        assert_eq!(latency_secs(&params, 20.0), 50.0);
        assert_eq!(latency_secs(&params, 1.0), MAX_LATENCY_SECS);
        params.cluster_latency_broadcasts = 0.0;
        assert_eq!(latency_secs(&params, 1.0), 10.0, "0: --latency-secs alone");
    }

    #[test]
    fn cpu_splits_nodes_from_redis() {
        let spent = Spent {
            each: vec![1.0, 2.0, 0.5],
            generator: 9.0,
            redis_commands_per_read: Some(4.5),
        };
        let cpu = ClusterCpu::of(&spent, 1_000_000);
        assert_eq!(cpu.nodes_s_per_m, [1.0, 2.0]);
        assert_eq!(cpu.redis_s_per_m, 0.5);
        assert_eq!(cpu.redis_commands_per_read, Some(4.5));
        assert_eq!(cpu.total_s_per_m, 3.5);
    }
}
