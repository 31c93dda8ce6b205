//! Cluster scenarios: fan-out, latency and many rooms on 1, 2 or 3 nodes of one server
//! clustered over one Redis, receivers spread evenly over the nodes (receiver `i` on node
//! `i % nodes`), publishers on the first node. The workloads are the single-server ones
//! (`fanout`, `rooms`), run against every node at once; what this adds is the CPU of
//! every process (each node and Redis) per delivery, and latency split by where the
//! receiver is: on the publisher's node, or on another one.
//!
//! Every process shares the same two cores, so these numbers say what a delivery costs
//! in a cluster, not how far one scales out.

use serde::{Deserialize, Serialize};

use crate::peers::Adapter;
use crate::procstat::Spent;
use crate::scenarios::fanout::{self, FanoutResult, LatencyResult};
use crate::scenarios::rooms::{self, RoomsResult};
use crate::scenarios::{Params, Target, per_million};
use crate::stats::Group;

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
        }
    }
}

/// Cross-node fan-out: one room spread over the nodes, publisher as fast as it accepts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterFanout {
    /// The cluster.
    pub(crate) shape: Shape,
    /// The fan-out measures; `server_cpu_s_per_m` and `server_cores` are the whole
    /// cluster's (nodes and Redis).
    pub(crate) fanout: FanoutResult,
    /// The CPU per process.
    pub(crate) cpu: ClusterCpu,
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
    /// Median, µs.
    pub(crate) p50_us: u64,
    /// 99th percentile, µs.
    pub(crate) p99_us: u64,
    /// 99.9th percentile, µs.
    pub(crate) p999_us: u64,
    /// Maximum, µs.
    pub(crate) max_us: u64,
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
}

/// Receivers of a room of `size` on the publisher's node (the first of `nodes`).
fn on_first_node(size: usize, nodes: usize) -> usize {
    size.div_ceil(nodes.max(1))
}

/// The fixed publish rate of the latency phase on a room of `size`: the offered
/// deliveries per second the parameters ask for, at least one broadcast per second.
pub(crate) fn latency_rate(params: &Params, size: usize) -> f64 {
    (params.cluster_latency_deliveries / size.max(1) as f64).max(1.0)
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
        peak = Some((result, cpu));
    }
    let mut latency = None;
    if want.1 {
        let rate = latency_rate(params, size);
        let all = fanout::measure_latency(&mut room, target, (rate, None), params).await?;
        let broadcasts = all.expected / size.max(1) as u64;
        let group = |g: Group, receivers: usize| -> anyhow::Result<Percentiles> {
            let hist = room.stats.latency_of(g)?;
            Ok(Percentiles {
                receivers,
                samples: hist.len(),
                expected: broadcasts * receivers as u64,
                p50_us: hist.value_at_quantile(0.50),
                p99_us: hist.value_at_quantile(0.99),
                p999_us: hist.value_at_quantile(0.999),
                max_us: hist.max(),
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
            same_node.p99_us,
            other_nodes
                .as_ref()
                .map_or("-".to_owned(), |p| p.p99_us.to_string())
        );
        latency = Some(ClusterLatency {
            shape,
            latency: all,
            same_node,
            other_nodes,
        });
    }
    let mut fanout = peak.map(|(result, cpu)| ClusterFanout {
        shape,
        fanout: result,
        cpu,
    });
    if let Some(f) = &mut fanout {
        room.settle(&mut f.fanout).await?;
    }
    Ok((fanout, latency))
}

/// Many rooms on one fresh cluster.
pub(crate) async fn rooms(
    target: &Target,
    params: &Params,
    shape: Shape,
) -> anyhow::Result<ClusterRooms> {
    let (rooms, spent) = rooms::run_measured(target, params).await?;
    let deliveries = (rooms.deliveries_per_sec * rooms.seconds).round() as u64;
    eprintln!(
        "    {} × {}, rooms: {:.2} cluster CPU s per M",
        shape.nodes,
        shape.adapter.name(),
        rooms.server_cpu_s_per_m
    );
    Ok(ClusterRooms {
        shape,
        cpu: ClusterCpu::of(&spent, deliveries),
        rooms,
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
    fn cpu_splits_nodes_from_redis() {
        let spent = Spent {
            each: vec![1.0, 2.0, 0.5],
            generator: 9.0,
        };
        let cpu = ClusterCpu::of(&spent, 1_000_000);
        assert_eq!(cpu.nodes_s_per_m, [1.0, 2.0]);
        assert_eq!(cpu.redis_s_per_m, 0.5);
        assert_eq!(cpu.total_s_per_m, 3.5);
    }
}
