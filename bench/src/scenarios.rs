//! The benchmark scenarios, their parameters and their results. Each scenario runs
//! against one freshly started server and returns plain numbers; the runner
//! (`suite`) compares servers.

pub(crate) mod churn;
pub(crate) mod cluster;
pub(crate) mod fanout;
pub(crate) mod idle;
pub(crate) mod loaded;
pub(crate) mod rooms;
pub(crate) mod sse;
pub(crate) mod storm;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::net::SourcePool;
use crate::peers::Adapter;
use crate::sio::Dialect;

/// Longest wait for every published event to reach every member before a phase starts
/// or a scenario ends. A safety net: it runs out only when the server lost events (or
/// stalled that long), which the result then shows as `undelivered`.
pub(crate) const DRAIN: Duration = Duration::from_secs(5);

/// One scenario of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
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
    /// Memory under load: RSS per connection of one room taking half the server's
    /// fan-out peak, beside its idle RSS per connection at the same count.
    Loaded,
    /// `switchboard serve` over Server-Sent Events and, side by side, over WebSocket:
    /// idle memory per listener, and fan-out to one room published through the HTTP API.
    Sse,
    /// One room spread over 1–3 nodes clustered over Redis, publisher on the first.
    ClusterFanout,
    /// Fixed publish rate on a room spread over the nodes; latency by receiver's node.
    ClusterLatency,
    /// Many small rooms spread over the nodes, targeted emits from the first.
    ClusterRooms,
    /// Two nodes with connection state recovery; the clients' node is SIGKILLed and
    /// they all recover their sessions on the other (Switchboard only).
    ClusterStorm,
}

impl Scenario {
    /// Every scenario, in run order.
    pub(crate) const ALL: [Scenario; 11] = [
        Scenario::Idle,
        Scenario::Fanout,
        Scenario::Latency,
        Scenario::Rooms,
        Scenario::Churn,
        Scenario::Loaded,
        Scenario::Sse,
        Scenario::ClusterFanout,
        Scenario::ClusterLatency,
        Scenario::ClusterRooms,
        Scenario::ClusterStorm,
    ];

    /// What the CI smoke runs: everything but the cluster many-rooms scenario (its
    /// cluster steps then take a few seconds per server, see [`Params::smoke`]; the
    /// storm of 50 clients about three; SSE's four steps about fifteen; memory under
    /// load of 50 clients about five per server).
    pub(crate) const SMOKE: [Scenario; 10] = [
        Scenario::Idle,
        Scenario::Fanout,
        Scenario::Latency,
        Scenario::Rooms,
        Scenario::Churn,
        Scenario::Loaded,
        Scenario::Sse,
        Scenario::ClusterFanout,
        Scenario::ClusterLatency,
        Scenario::ClusterStorm,
    ];

    /// The four cluster scenarios.
    pub(crate) const CLUSTER: [Scenario; 4] = [
        Scenario::ClusterFanout,
        Scenario::ClusterLatency,
        Scenario::ClusterRooms,
        Scenario::ClusterStorm,
    ];
}

/// Sizes and durations of every scenario (defaults: the full run).
#[derive(Debug, Clone, Serialize, Deserialize, clap::Args)]
pub(crate) struct Params {
    /// Rounds of each scenario: in each round every server runs the scenario in turn
    /// (so machine noise spreads over all of them); reports show the median of the
    /// rounds and their spread (min–max).
    #[arg(
        long,
        default_value_t = 1,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)
    )]
    #[serde(default = "defaults::repeat")]
    pub(crate) repeat: usize,
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
    /// Every latency phase: end each sample when the event reached the receiver's socket
    /// (the kernel's receive stamp, `SO_TIMESTAMPNS`) rather than at the generator's read,
    /// and keep the read beside it. Off by default: it costs the generator about 8 % more
    /// CPU per delivery (measured), which on two shared cores raises the p99 about as much
    /// as the read's wait it removes. Runs before it existed read as off.
    #[arg(long)]
    #[serde(default)]
    pub(crate) latency_arrival: bool,
    /// Many-rooms scenario: number of rooms (also the number of clients).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) rooms: usize,
    /// Many-rooms scenario: members per room (rooms each client joins).
    #[arg(long, default_value_t = 5)]
    pub(crate) members: usize,
    /// Many-rooms scenario: publisher connections (16 of up to 64 emits in flight each:
    /// as many in flight as 4 of 256 were before 2026-12-07, each publisher's acks
    /// under socketioxide's 128-packet socket buffer).
    #[arg(long, default_value_t = 16)]
    pub(crate) publishers: usize,
    /// Many-rooms scenario: measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) rooms_secs: f64,
    /// Many-rooms scenario: a fixed rate of targeted emits per second, all publishers
    /// together, instead of as fast as acks come back. Compares the CPU a delivery costs
    /// at one load for every server or node count: at its peak a server falls behind,
    /// its sockets' drivers each find several events queued and write them with one
    /// syscall, and a delivery gets cheaper the further behind it is.
    #[arg(long)]
    pub(crate) rooms_rate: Option<f64>,
    /// Churn scenario: measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) churn_secs: f64,
    /// Churn scenario: concurrent connect/disconnect loops.
    #[arg(long, default_value_t = 32)]
    pub(crate) churn_workers: usize,
    /// Memory-under-load scenario: clients in its one room. When the fan-out scenario
    /// ran a room of this size in the same round (`all`: 10000), the publish rate is
    /// half of that peak; otherwise the step measures a peak first.
    #[arg(long, default_value_t = 10_000)]
    #[serde(default = "defaults::loaded_clients")]
    pub(crate) loaded_clients: usize,
    /// Memory-under-load scenario: measured seconds of steady load (RSS sampled ten
    /// times), after --warmup-secs.
    #[arg(long, default_value_t = 10.0)]
    #[serde(default = "defaults::loaded_secs")]
    pub(crate) loaded_secs: f64,
    /// Cluster scenarios: node counts, each a fresh cluster on a fresh redis-server.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    #[serde(default = "defaults::cluster_nodes")]
    pub(crate) cluster_nodes: Vec<usize>,
    /// Cluster scenarios: Redis adapters (each server runs those it has).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "redis,redis-streams"
    )]
    #[serde(default = "defaults::cluster_adapters")]
    pub(crate) cluster_adapters: Vec<Adapter>,
    /// Cluster fan-out and latency scenarios: room sizes (measured seconds as the
    /// single-server fan-out and latency: --fanout-secs, --latency-secs).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    #[serde(default = "defaults::cluster_room_sizes")]
    pub(crate) cluster_room_sizes: Vec<usize>,
    /// Cluster latency scenario: deliveries per second the fixed publish rate offers (the
    /// rate is this ÷ room size, at least one broadcast per second), the same for every
    /// server and node count.
    #[arg(long, default_value_t = 10_000.0)]
    #[serde(default = "defaults::cluster_latency_deliveries")]
    pub(crate) cluster_latency_deliveries: f64,
    /// Cluster latency scenario: the publish rate as a fraction of the cell's own fan-out
    /// peak, measured just before in the same step (the target's "10 % of peak"); a step
    /// that measured no peak (`cluster-latency` alone) publishes at the fixed rate of
    /// --cluster-latency-deliveries. 0: always the fixed rate (and runs written before
    /// this existed).
    #[arg(long, default_value_t = 0.1)]
    #[serde(default)]
    pub(crate) cluster_latency_load: f64,
    /// Cluster latency scenario: fewest broadcasts its measured phase publishes; it lasts
    /// --latency-secs or, where the rate is low (rooms of 10k get about 20/s), as long as
    /// these take, at most 120 s: a p99 over ten seconds of such a room rests on the
    /// slowest two broadcasts. 0: --latency-secs alone (and runs written before this
    /// existed).
    #[arg(long, default_value_t = 1000.0)]
    #[serde(default)]
    pub(crate) cluster_latency_broadcasts: f64,
    /// Cluster fan-out scenario: deliveries per second of its cost phase, after the
    /// phase as fast as the cluster accepts: one load for every server and node count,
    /// so `× 1 node` compares what a delivery costs at the same load (at its peak a node
    /// falls behind and writes several events per socket write, the further behind the
    /// cheaper). A cell whose peak is under this ÷ 0.8 skips the phase; 0: no cost phase.
    #[arg(long, default_value_t = 400_000.0)]
    #[serde(default)]
    pub(crate) cluster_cost_deliveries: f64,
    /// Cluster many-rooms scenario: targeted emits per second of its cost phase (all
    /// publishers together), after the phase as fast as acks come back; as
    /// --cluster-cost-deliveries, skipped where the peak is under this ÷ 0.8; 0: none.
    #[arg(long, default_value_t = 10_000.0)]
    #[serde(default)]
    pub(crate) cluster_rooms_rate: f64,
    /// Cluster fan-out, latency and many-rooms scenarios: worker threads of each node of
    /// a tokio server (Switchboard, socketioxide; `TOKIO_WORKER_THREADS`). 0: the
    /// machine's cores ÷ nodes, at least one, so the nodes together run no more busy
    /// threads than there are cores (three nodes of two threads each on two cores cost
    /// about a tenth more CPU per delivery than of one thread each, in the many-rooms
    /// scenario at 10k emits/s); N: N each. The recovery storm's
    /// nodes keep their default. Runs written before this existed: the default (every
    /// node as many threads as cores).
    #[arg(long, default_value = "0")]
    #[serde(default)]
    pub(crate) cluster_node_threads: Option<usize>,
    /// Recovery storm: clients on the node that is killed.
    #[arg(long, default_value_t = 5000)]
    #[serde(default = "defaults::storm_clients")]
    pub(crate) storm_clients: usize,
    /// Recovery storm: rooms the clients are spread over (client i in room i % rooms;
    /// 1: one room). Each event goes to one room, so a room of 50 at 200 events/s is
    /// 10k deliveries/s, which two shared cores sustain beside the storm.
    #[arg(long, default_value_t = 100)]
    #[serde(default = "defaults::storm_rooms")]
    pub(crate) storm_rooms: usize,
    /// Recovery storm: numbered events per second, the rooms in turn (publisher on the
    /// surviving node).
    #[arg(long, default_value_t = 200.0)]
    #[serde(default = "defaults::storm_rate")]
    pub(crate) storm_rate: f64,
    /// Recovery storm: each client waits a random 0..this many seconds before each
    /// reconnection attempt, like a real client's backoff.
    #[arg(long, default_value_t = 1.0)]
    #[serde(default = "defaults::storm_backoff_secs")]
    pub(crate) storm_backoff_secs: f64,
    /// SSE scenario: idle listener counts measured (SSE listeners, then as many
    /// WebSocket clients on a fresh server), each in one room, in increasing order.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    #[serde(default = "defaults::sse_idle_counts")]
    pub(crate) sse_idle_counts: Vec<usize>,
    /// SSE scenario: fan-out room sizes (SSE listeners, then WebSocket clients).
    #[arg(long, value_delimiter = ',', default_value = "1000")]
    #[serde(default = "defaults::sse_room_sizes")]
    pub(crate) sse_room_sizes: Vec<usize>,
    /// SSE scenario: the fixed publish rate (API emits per second, the same for both
    /// transports) of the latency phase, after the phase as fast as the server accepts.
    #[arg(long, default_value_t = 50.0)]
    #[serde(default = "defaults::sse_rate")]
    pub(crate) sse_rate: f64,
}

/// Defaults of parameters added after results.json files were written, for reading them.
mod defaults {
    use crate::peers::Adapter;

    /// `--repeat`: files written before it existed hold one round.
    pub(super) fn repeat() -> usize {
        1
    }

    /// `--loaded-clients`.
    pub(super) fn loaded_clients() -> usize {
        10_000
    }

    /// `--loaded-secs`.
    pub(super) fn loaded_secs() -> f64 {
        10.0
    }

    /// `--cluster-nodes`.
    pub(super) fn cluster_nodes() -> Vec<usize> {
        vec![1, 2, 3]
    }

    /// `--cluster-adapters`.
    pub(super) fn cluster_adapters() -> Vec<Adapter> {
        vec![Adapter::Redis, Adapter::RedisStreams]
    }

    /// `--cluster-room-sizes`.
    pub(super) fn cluster_room_sizes() -> Vec<usize> {
        vec![1000, 10_000]
    }

    /// `--cluster-latency-deliveries`.
    pub(super) fn cluster_latency_deliveries() -> f64 {
        10_000.0
    }

    /// `--storm-clients`.
    pub(super) fn storm_clients() -> usize {
        5000
    }

    /// `--storm-rooms`.
    pub(super) fn storm_rooms() -> usize {
        100
    }

    /// `--storm-rate`.
    pub(super) fn storm_rate() -> f64 {
        200.0
    }

    /// `--storm-backoff-secs`.
    pub(super) fn storm_backoff_secs() -> f64 {
        1.0
    }

    /// `--sse-idle-counts`.
    pub(super) fn sse_idle_counts() -> Vec<usize> {
        vec![1000, 5000]
    }

    /// `--sse-room-sizes`.
    pub(super) fn sse_room_sizes() -> Vec<usize> {
        vec![1000]
    }

    /// `--sse-rate`.
    pub(super) fn sse_rate() -> f64 {
        50.0
    }
}

impl Params {
    /// Worker threads of each of `nodes` cluster nodes ([`Params::cluster_node_threads`]);
    /// `None`: the runtime's default.
    pub(crate) fn node_threads(&self, nodes: usize) -> Option<usize> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.node_threads_on(nodes, cores)
    }

    /// [`Params::node_threads`] on a machine of `cores` (a run's report reads the
    /// machine it ran on).
    pub(crate) fn node_threads_on(&self, nodes: usize, cores: usize) -> Option<usize> {
        match self.cluster_node_threads? {
            0 => Some((cores / nodes.max(1)).max(1)),
            n => Some(n),
        }
    }

    /// Tiny sizes and durations for the CI smoke run.
    pub(crate) fn smoke() -> Params {
        Params {
            repeat: 1,
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
            rooms_rate: None,
            churn_secs: 1.0,
            churn_workers: 4,
            // The smoke's larger fan-out room, whose peak the step then reuses.
            loaded_clients: 50,
            loaded_secs: 1.0,
            // Two nodes only: the cross-node path is what the smoke is for, and one step
            // per adapter and server keeps the cluster part to a few seconds each.
            cluster_nodes: vec![2],
            cluster_adapters: vec![Adapter::Redis, Adapter::RedisStreams],
            cluster_room_sizes: vec![10],
            cluster_latency_deliveries: 1000.0,
            cluster_latency_load: 0.1,
            cluster_latency_broadcasts: 0.0,
            // So CI runs the stamped read path, which full runs leave off.
            latency_arrival: true,
            cluster_cost_deliveries: 1000.0,
            cluster_node_threads: Some(0),
            cluster_rooms_rate: 50.0,
            storm_clients: 50,
            storm_rooms: 5,
            storm_rate: 200.0,
            storm_backoff_secs: 0.5,
            sse_idle_counts: vec![20],
            sse_room_sizes: vec![10],
            sse_rate: 50.0,
        }
    }
}

/// What a scenario needs to reach and observe the server under test: one server, or the
/// nodes of a cluster (then `addr` and `pid` are its first node's, where publishers go).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Server address (a cluster's first node: the publishers' node).
    pub(crate) addr: SocketAddr,
    /// Server process id (for RSS and CPU; a cluster's first node).
    pub(crate) pid: u32,
    /// Every node's address, `addr` first (one entry for a single server): receiver `i`
    /// of a fleet connects to node `i % nodes.len()`.
    pub(crate) nodes: Vec<SocketAddr>,
    /// Processes whose CPU a phase measures: the nodes in order, then Redis when
    /// clustered (a single server: its one process).
    pub(crate) processes: Vec<u32>,
    /// A cluster's Redis, whose own counters a phase reads beside the CPU
    /// ([`crate::redis::io_count`]); `None` for a single server.
    pub(crate) redis: Option<SocketAddr>,
    /// Source addresses of the generator's connections.
    pub(crate) pool: Arc<SourcePool>,
    /// How the server joins rooms, takes publishes and delivers.
    pub(crate) dialect: Dialect,
    /// Whether latency samples end at the socket (--latency-arrival).
    pub(crate) arrival: bool,
}

/// Seconds as a `Duration` (negative or NaN: zero).
pub(crate) fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or_default()
}

/// `x` per million `per`, or 0 when `per` is 0.
pub(crate) fn per_million(x: f64, per: u64) -> f64 {
    if per == 0 { 0.0 } else { x * 1e6 / per as f64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_nodes_share_the_cores_unless_told_otherwise() {
        let mut params = Params::smoke();
        params.cluster_node_threads = Some(0);
        let on_two: Vec<_> = (1..=3).map(|n| params.node_threads_on(n, 2)).collect();
        assert_eq!(on_two, [Some(2), Some(1), Some(1)]);
        assert_eq!(params.node_threads_on(3, 8), Some(2));
        params.cluster_node_threads = Some(3);
        assert_eq!(params.node_threads_on(1, 2), Some(3));
        params.cluster_node_threads = None;
        assert_eq!(params.node_threads_on(3, 2), None, "the runtime's default");
    }
}
