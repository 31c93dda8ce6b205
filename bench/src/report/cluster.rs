//! The cluster scenarios' tables and charts: CPU per delivery of every node and of Redis,
//! with ratios to the same server on one node and to Switchboard on the same cluster
//! shape, and latency on the publisher's node against the other nodes. Medians of the
//! rounds, with the spread of deliveries/s and CPU per delivery.

use std::fmt::Write as _;

use super::lost::{self, Losses, Lost};
use super::rounds::{Rounds, Spread, two};
use super::samples;
use super::tables::{ran, ratio, with_rows};
use crate::chart::{BarChart, Series, human};
use crate::peers::{Adapter, ServerKind};
use crate::scenarios::cluster::{
    AtRate, COST_HEADROOM, ClusterCpu, ClusterFanout, ClusterLatency, ClusterRooms, Percentiles,
    Shape,
};
use crate::suite::{ServerReport, SuiteReport};

/// What every cluster table says first: how to read it on a shared two-core machine.
const READING: &str = "Every node, Redis and the load generator share the same two \
cores, so deliveries/s do not show scale-out: read the CPU per delivery, which is what a \
delivery costs the whole cluster (every node and Redis; `each node` lists the nodes, the \
publisher's first). `× 1 node` is that cost ÷ the same server's with the same adapter \
on one node (what clustering adds); `× SB` is it ÷ Switchboard's (fixture) with the same \
adapter and node count, each at its own peak, so at different loads (the deliveries/s \
column; the cost phases compare servers at one load). `Redis cmds / read` is Redis' own count (`INFO stats`) of the \
commands it ran per read from a client's socket: how many commands each write of the nodes \
carried. Each read is a turn of Redis' event loop (an answer written, every subscriber \
written to), so the fewer per read, the more Redis spends per command.";

/// How many worker threads each node of a tokio server (Switchboard, socketioxide) ran
/// with, by node count (Node runs one thread per process).
fn threads_note(report: &SuiteReport) -> String {
    let p = &report.params;
    let Some(threads) = p.cluster_node_threads else {
        return "Each node of a tokio server (Switchboard, socketioxide) ran its runtime's \
                default worker threads, as many as the machine's cores."
            .to_owned();
    };
    let cores = report.machine.cores.max(1);
    let each: Vec<String> = p
        .cluster_nodes
        .iter()
        .filter_map(|&n| {
            let t = p.node_threads_on(n, cores)?;
            let plural = if n == 1 { "" } else { "s" };
            Some(format!("{t} on {n} node{plural}"))
        })
        .collect();
    let how = if threads == 0 {
        format!(
            "the cores ÷ nodes, at least one, so the nodes together run no more busy threads \
             than the {cores} cores, as nodes packed onto one machine would"
        )
    } else {
        "--cluster-node-threads".to_owned()
    };
    format!(
        "Worker threads of each node of a tokio server (Switchboard, socketioxide): {} \
         ({how}); Node runs one thread per process.",
        each.join(", ")
    )
}

/// The cluster tables, in order (nothing when no cluster scenario ran).
pub(super) fn tables(report: &SuiteReport) -> String {
    let mut md = String::new();
    for table in [
        targets(report),
        fanout(report),
        cost(report),
        latency(report),
        rooms(report),
    ] {
        md.push_str(&with_rows(table));
    }
    if !md.is_empty() {
        md.push_str(&missing_adapters(report));
    }
    md.push_str(&super::storm::table(report));
    md
}

/// Cluster shapes of the run's parameters, adapter by adapter.
fn shapes(report: &SuiteReport) -> Vec<Shape> {
    let p = &report.params;
    p.cluster_adapters
        .iter()
        .flat_map(|&adapter| {
            let nodes = p.cluster_nodes.iter();
            nodes.map(move |&nodes| Shape { adapter, nodes })
        })
        .collect()
}

/// `0.41 / 0.22 / 0.23`: each node's CPU s per M deliveries (medians of the rounds).
fn each_node(cpus: &[&ClusterCpu]) -> String {
    let nodes = cpus
        .iter()
        .map(|c| c.nodes_s_per_m.len())
        .max()
        .unwrap_or(0);
    let each: Vec<String> = (0..nodes)
        .map(|i| {
            let node = cpus.iter().filter_map(|c| c.nodes_s_per_m.get(i).copied());
            two(Spread::of(node).median)
        })
        .collect();
    each.join(" / ")
}

/// `s`'s fan-out on `shape` with rooms of `size`, every round.
fn fanout_of(s: &ServerReport, shape: Shape, size: usize) -> Option<Rounds<'_, ClusterFanout>> {
    Rounds::of(s, move |r| {
        let mut f = r.cluster_fanout.iter();
        f.find(|f| f.shape == shape && f.fanout.room_size == size)
    })
}

/// `s`'s latency on `shape` with rooms of `size`, every round.
fn latency_of(s: &ServerReport, shape: Shape, size: usize) -> Option<Rounds<'_, ClusterLatency>> {
    Rounds::of(s, move |r| {
        let mut l = r.cluster_latency.iter();
        l.find(|l| l.shape == shape && l.latency.room_size == size)
    })
}

/// `s`'s many-rooms run on `shape`, every round.
fn rooms_of(s: &ServerReport, shape: Shape) -> Option<Rounds<'_, ClusterRooms>> {
    Rounds::of(s, move |r| {
        r.cluster_rooms.iter().find(|r| r.shape == shape)
    })
}

/// `s`'s fan-out cost phase on `shape` with rooms of `size`, every round that ran it.
fn fanout_cost_of(s: &ServerReport, shape: Shape, size: usize) -> Option<Rounds<'_, AtRate>> {
    let f = fanout_of(s, shape, size)?;
    Rounds::from(f.each().filter_map(|f| f.at_rate.as_ref()).collect())
}

/// `s`'s many-rooms cost phase on `shape`, every round that ran it.
fn rooms_cost_of(s: &ServerReport, shape: Shape) -> Option<Rounds<'_, AtRate>> {
    let r = rooms_of(s, shape)?;
    Rounds::from(r.each().filter_map(|r| r.at_rate.as_ref()).collect())
}

/// The CPU cells of a row: the whole cluster's (median and spread), its ratios to `one`
/// node and to Switchboard (`sb`), each node's, Redis', and the commands Redis took per
/// read (a dash for runs written before it was read).
fn cpu_cells(cpus: &[&ClusterCpu], one: Option<f64>, sb: Option<f64>) -> String {
    let total = Spread::of(cpus.iter().map(|c| c.total_s_per_m));
    let redis = Spread::of(cpus.iter().map(|c| c.redis_s_per_m));
    let per_read: Vec<f64> = cpus
        .iter()
        .filter_map(|c| c.redis_commands_per_read)
        .collect();
    let per_read = if per_read.is_empty() {
        "—".to_owned()
    } else {
        format!("{:.1}", Spread::of(per_read.into_iter()).median)
    };
    format!(
        "{} | {} | {} | {} | {:.2} | {per_read}",
        total.show(two),
        ratio(Some(total.median), one),
        ratio(Some(total.median), sb),
        each_node(cpus),
        redis.median
    )
}

/// The cost of `shape` for `server` per `find`, the same on one node, and Switchboard's.
fn bases(
    report: &SuiteReport,
    shape: Shape,
    server: ServerKind,
    find: &dyn Fn(&ServerReport, Shape) -> Option<f64>,
) -> (Option<f64>, Option<f64>) {
    let of = |kind: ServerKind, shape: Shape| {
        ran(report)
            .find(|s| s.server == kind)
            .and_then(|s| find(s, shape))
    };
    let one = of(server, Shape { nodes: 1, ..shape });
    (one, of(ServerKind::Switchboard, shape))
}

/// A peer the cluster is judged against: which, how the row names it, its target and
/// whether a ratio (theirs ÷ ours) meets it.
type Peer = (ServerKind, &'static str, &'static str, fn(f64) -> bool);

/// Most a cross-node delivery may cost, in CPU, against a same-node one.
const CROSS_NODE_GOAL: f64 = 1.25;
/// Least cluster fan-out advantage over Node's cluster (CPU per delivery).
const NODE_GOAL: f64 = 5.0;
/// Most the other nodes' p99 may exceed the publisher's node's, in ms.
const OTHER_NODE_P99_GOAL_MS: f64 = 2.0;

/// Switchboard (fixture) against the cluster targets: a cross-node delivery's CPU (`× 1
/// node` of fan-out and many rooms) at most ×1.25; cluster fan-out at least ×5 Node's and
/// ahead of socketioxide's (their `× SB`); p99 on the other nodes at most 2 ms above the
/// publisher's node's.
fn targets(report: &SuiteReport) -> String {
    let latency = if report.params.cluster_latency_load > 0.0 {
        format!(
            "Latency is the latency table's, at {:.0} % of each cell's own fan-out peak.",
            report.params.cluster_latency_load * 100.0
        )
    } else {
        "Latency is the latency table's, at its fixed rate (about 1 % of the fan-out peak; \
         the target names 10 %), where a room of 10,000 gets one broadcast per second, so \
         its p99 rests on few broadcasts."
            .to_owned()
    };
    let mut md = format!(
        "\n## Cluster against the targets\n\n\
         Switchboard (fixture) in every cluster shape that ran (one node is the base, so not a \
         row). CPU per delivery covers every node and Redis; on this shared two-core machine \
         a cell near its bound moves across runs. What a cross-node delivery adds (`× 1 \
         node`) is judged in the cost phase, where every node count gets the same load; at \
         its peak a node falls behind and writes several events per socket write, cheaper \
         the further behind it runs, so the peak's ratio (shown for reference) measures how \
         far behind each shape runs as much as what clustering costs. For the same \
         reason a peer is judged at one load where both it and Switchboard ran the cost \
         phase, its peak's ratio shown for reference beside; where it has no cost phase \
         (its peak was under the phase's rate ÷ {:.1}) it is judged at the two peaks, whose \
         rates the row names: the server running further behind has the cheaper delivery. \
         A latency cell that lost deliveries is not met (its percentiles are of what \
         arrived). {latency}\n\n\
         | what | adapter | room | nodes | value | target | verdict |\n\
         |---|---|---:|---:|---:|---|---|\n",
        COST_HEADROOM
    );
    let verdict = |met: bool| if met { "met" } else { "**not met**" };
    let one_load = |kind: &str, at: Option<f64>, unit: &str| match at {
        Some(x) => format!(
            "{kind}: CPU per delivery × 1 node, at {} {unit}/s",
            human(x)
        ),
        None => format!("{kind}: CPU per delivery × 1 node"),
    };
    let Some(sb) = ran(report).find(|s| s.server == ServerKind::Switchboard) else {
        return md;
    };
    let peer = |kind: ServerKind| ran(report).find(|s| s.server == kind);
    for &size in &report.params.cluster_room_sizes {
        let fanout_cpu = |s: &ServerReport, shape: Shape| {
            fanout_of(s, shape, size).map(|f| f.median(|f| f.cpu.total_s_per_m))
        };
        for shape in shapes(report).into_iter().filter(|s| s.nodes > 1) {
            let Some(own) = fanout_cpu(sb, shape) else {
                continue;
            };
            // `met`: `None` for a reference row, judged by no target.
            let mut row = |what: &str, value: f64, target: String, met: Option<bool>| {
                let _ = writeln!(
                    md,
                    "| {what} | {} | {size} | {} | ×{value:.2} | {target} | {} |",
                    shape.adapter.name(),
                    shape.nodes,
                    met.map_or("—", verdict)
                );
            };
            let at_rate = |shape: Shape| {
                fanout_cost_of(sb, shape, size).map(|a| a.median(|a| a.cpu.total_s_per_m))
            };
            let one_shape = Shape { nodes: 1, ..shape };
            if let (Some(own), Some(one)) = (at_rate(shape), at_rate(one_shape)) {
                let x = own / one;
                let offered = fanout_cost_of(sb, shape, size)
                    .map(|a| a.median(|a| a.offered_deliveries_per_sec));
                row(
                    &one_load("fan-out", offered, "deliveries"),
                    x,
                    format!("≤ ×{CROSS_NODE_GOAL}"),
                    Some(x <= CROSS_NODE_GOAL),
                );
            }
            if let Some(one) = fanout_cpu(sb, one_shape) {
                row(
                    "fan-out: CPU per delivery × 1 node, each at its peak",
                    own / one,
                    "(reference)".to_owned(),
                    None,
                );
            }
            let rate = |s: &ServerReport| {
                fanout_of(s, shape, size).map(|f| f.median(|f| f.fanout.deliveries_per_sec))
            };
            let cost = |s: &ServerReport| {
                fanout_cost_of(s, shape, size).map(|a| {
                    (
                        a.median(|a| a.cpu.total_s_per_m),
                        a.median(|a| a.offered_deliveries_per_sec),
                    )
                })
            };
            let peers: [Peer; 2] = [
                (ServerKind::Node, "Node's", "≥ ×5", |x| x >= NODE_GOAL),
                (ServerKind::Socketioxide, "socketioxide's", "> ×1", |x| {
                    x > 1.0
                }),
            ];
            for (kind, whose, target, meets) in peers {
                let Some(p) = peer(kind) else { continue };
                let Some(theirs) = fanout_cpu(p, shape) else {
                    continue;
                };
                let at_peaks = format!(
                    "each at its peak (ours {}, theirs {} deliveries/s)",
                    rate(sb).map_or("—".to_owned(), human),
                    rate(p).map_or("—".to_owned(), human)
                );
                let peak = theirs / own;
                match (cost(p), cost(sb)) {
                    (Some((theirs, _)), Some((ours, offered))) if ours > 0.0 => {
                        let x = theirs / ours;
                        row(
                            &format!(
                                "fan-out: {whose} CPU per delivery ÷ ours, at {} deliveries/s",
                                human(offered)
                            ),
                            x,
                            target.to_owned(),
                            Some(meets(x)),
                        );
                        row(
                            &format!("fan-out: {whose} CPU per delivery ÷ ours, {at_peaks}"),
                            peak,
                            "(reference)".to_owned(),
                            None,
                        );
                    }
                    _ => row(
                        &format!(
                            "fan-out: {whose} CPU per delivery ÷ ours, {at_peaks}; no phase at \
                             one load"
                        ),
                        peak,
                        target.to_owned(),
                        Some(meets(peak)),
                    ),
                }
            }
            if let Some(l) = latency_of(sb, shape, size)
                && let Some(other) =
                    Rounds::from(l.each().filter_map(|l| l.other_nodes.as_ref()).collect())
            {
                let (other, same) = (
                    other.median(|p| p.quantiles.p99_us as f64),
                    l.median(|l| l.same_node.quantiles.p99_us as f64),
                );
                let over = (other - same) / 1000.0;
                let all = Rounds::from(l.each().map(|l| &l.latency).collect());
                let judged = match all {
                    Some(all) if samples::short(&all) => format!(
                        "**not met**: {:.1} % of its deliveries arrived, and a p99 of those \
                         says nothing of the rest",
                        (samples::received(&all) * 10.0).floor() / 10.0
                    ),
                    Some(all) if !samples::Gate::of(&all).p99 => format!(
                        "— (fewer than {} broadcasts in a round: no p99)",
                        samples::P99_BROADCASTS
                    ),
                    _ => verdict(over <= OTHER_NODE_P99_GOAL_MS).to_owned(),
                };
                let _ = writeln!(
                    md,
                    "| latency: p99 other nodes − publisher's node | {} | {size} | {} | {over:+.2} ms | ≤ +{OTHER_NODE_P99_GOAL_MS} ms | {judged} |",
                    shape.adapter.name(),
                    shape.nodes,
                );
            }
        }
    }
    let rooms_cpu = |shape: Shape| rooms_of(sb, shape).map(|r| r.median(|r| r.cpu.total_s_per_m));
    let rooms_at_rate =
        |shape: Shape| rooms_cost_of(sb, shape).map(|a| a.median(|a| a.cpu.total_s_per_m));
    let members = report.params.members;
    for shape in shapes(report).into_iter().filter(|s| s.nodes > 1) {
        let one_shape = Shape { nodes: 1, ..shape };
        if let (Some(own), Some(one)) = (rooms_at_rate(shape), rooms_at_rate(one_shape)) {
            let x = own / one;
            let emits =
                rooms_cost_of(sb, shape).map(|a| a.median(|a| a.offered_deliveries_per_sec));
            let _ = writeln!(
                md,
                "| {} | {} | {members} | {} | ×{x:.2} | ≤ ×{CROSS_NODE_GOAL} | {} |",
                one_load(
                    "many rooms",
                    emits.map(|d| d / members.max(1) as f64),
                    "emits"
                ),
                shape.adapter.name(),
                shape.nodes,
                verdict(x <= CROSS_NODE_GOAL)
            );
        }
        if let (Some(own), Some(one)) = (rooms_cpu(shape), rooms_cpu(one_shape)) {
            let x = own / one;
            let _ = writeln!(
                md,
                "| many rooms: CPU per delivery × 1 node, each at its peak | {} | {members} | {} | ×{x:.2} | (reference) | — |",
                shape.adapter.name(),
                shape.nodes,
            );
        }
    }
    md
}

/// Cluster fan-out table.
fn fanout(report: &SuiteReport) -> String {
    let mut md = format!(
        "\n## Cluster fan-out (one room spread over the nodes, publisher on the first)\n\n\
         {READING} {}\n\n\
         | server | adapter | room | nodes | deliveries/s | CPU s / M deliveries | × 1 node | × SB | \
         each node | Redis | Redis cmds / read | generator CPU s / M | {} |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        threads_note(report),
        lost::HEAD
    );
    let mut losses = Losses::new("broadcasts");
    for &size in &report.params.cluster_room_sizes {
        let find = move |s: &ServerReport, shape: Shape| {
            fanout_of(s, shape, size).map(|f| f.median(|f| f.cpu.total_s_per_m))
        };
        for shape in shapes(report) {
            for s in ran(report) {
                let Some(c) = fanout_of(s, shape, size) else {
                    continue;
                };
                let (one, sb) = bases(report, shape, s.server, &find);
                let cpus: Vec<&ClusterCpu> = c.each().map(|c| &c.cpu).collect();
                let lost = losses.cell(
                    format!(
                        "{}, {}, room {size}, {} node{}",
                        s.server.label(),
                        shape.adapter.name(),
                        shape.nodes,
                        if shape.nodes == 1 { "" } else { "s" }
                    ),
                    c.each().map(|c| Lost::of_fanout(&c.fanout)).collect(),
                );
                let _ = writeln!(
                    md,
                    "| {} | {} | {size} | {} | {} | {} | {:.2} | {lost} |",
                    s.server.label(),
                    shape.adapter.name(),
                    shape.nodes,
                    c.spread(|c| c.fanout.deliveries_per_sec).show(human),
                    cpu_cells(&cpus, one, sb),
                    c.median(|c| c.fanout.generator_cpu_s_per_m),
                );
            }
        }
    }
    md.push_str(&losses.note(
        "the whole scenario on that room (its peak, the cost phase and the latency phase \
         after it, warm-ups included)",
    ));
    md
}

/// The cost phases' table: fan-out and many rooms, each at one fixed load for every
/// server and node count.
fn cost(report: &SuiteReport) -> String {
    let p = &report.params;
    let mut md = format!(
        "\n## Cluster cost at one load (the cost phases)\n\n\
         After its peak, each fan-out cell publishes {} deliveries/s (as broadcasts to its \
         room) and each many-rooms cell {} targeted emits/s, for as long as the peak phase: \
         the same work for every server and node count, so `× 1 node` is what clustering \
         adds to a delivery at that load. A cell whose peak was too low for the rate to \
         stay within {:.0} % of it skips the phase (a row of dashes). {}\n\n\
         | scenario | server | adapter | nodes | offered deliveries/s | received/s | \
         CPU s / M deliveries | × 1 node | × SB | each node | Redis | Redis cmds / read | \
         cluster cores |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        human(p.cluster_cost_deliveries),
        human(p.cluster_rooms_rate),
        COST_HEADROOM * 100.0,
        threads_note(report),
    );
    let mut row = |what: &str,
                   s: &ServerReport,
                   shape: Shape,
                   at: Option<Rounds<'_, AtRate>>,
                   one: Option<f64>,
                   sb: Option<f64>| {
        let head = format!(
            "| {what} | {} | {} | {}",
            s.server.label(),
            shape.adapter.name(),
            shape.nodes
        );
        let Some(at) = at else {
            let _ = writeln!(md, "{head} | — | — | — | — | — | — | — | — | — |");
            return;
        };
        let cpus: Vec<&ClusterCpu> = at.each().map(|a| &a.cpu).collect();
        let _ = writeln!(
            md,
            "{head} | {} | {} | {} | {:.2} |",
            human(at.median(|a| a.offered_deliveries_per_sec)),
            at.spread(|a| a.deliveries_per_sec).show(human),
            cpu_cells(&cpus, one, sb),
            at.median(|a| a.cores)
        );
    };
    for &size in &p.cluster_room_sizes {
        let find = move |s: &ServerReport, shape: Shape| {
            fanout_cost_of(s, shape, size).map(|a| a.median(|a| a.cpu.total_s_per_m))
        };
        for shape in shapes(report) {
            for s in ran(report) {
                if fanout_of(s, shape, size).is_none() || p.cluster_cost_deliveries <= 0.0 {
                    continue;
                }
                let (one, sb) = bases(report, shape, s.server, &find);
                let what = format!("fan-out, room {size}");
                row(&what, s, shape, fanout_cost_of(s, shape, size), one, sb);
            }
        }
    }
    let find = |s: &ServerReport, shape: Shape| {
        rooms_cost_of(s, shape).map(|a| a.median(|a| a.cpu.total_s_per_m))
    };
    for shape in shapes(report) {
        for s in ran(report) {
            if rooms_of(s, shape).is_none() || p.cluster_rooms_rate <= 0.0 {
                continue;
            }
            let (one, sb) = bases(report, shape, s.server, &find);
            let what = format!("many rooms ({}×{})", p.rooms, p.members);
            row(&what, s, shape, rooms_cost_of(s, shape), one, sb);
        }
    }
    md
}

/// `p50 · p99 · p99.9` in ms (medians of the rounds that recorded a sample), or `—`;
/// each of p99 and p99.9 `—` where `gate` leaves it out.
fn percentiles(p: Option<Rounds<'_, Percentiles>>, gate: samples::Gate) -> String {
    let ms = |us: f64| format!("{:.2}", us / 1000.0);
    let p = p.and_then(|p| Rounds::from(p.each().filter(|p| p.samples > 0).collect()));
    p.map_or("—".to_owned(), |p| {
        let cell = |ok: bool, pick: fn(&Percentiles) -> u64| {
            if ok {
                ms(p.median(|p| pick(p) as f64))
            } else {
                "—".to_owned()
            }
        };
        format!(
            "{} · {} · {}",
            cell(true, |p| p.quantiles.p50_us),
            cell(gate.p99, |p| p.quantiles.p99_us),
            cell(gate.p999, |p| p.quantiles.p999_us)
        )
    })
}

/// What a cluster latency cell's percentiles rest on (its broadcasts, every round).
fn gate(c: &Rounds<'_, ClusterLatency>) -> samples::Gate {
    Rounds::from(c.each().map(|c| &c.latency).collect()).map_or(
        samples::Gate {
            p99: false,
            p999: false,
        },
        |l| samples::Gate::of(&l),
    )
}

/// The p99 a latency row is compared on: the other nodes', or the publisher's node's on
/// one node.
fn worst_p99(l: &crate::scenarios::cluster::ClusterLatency) -> u64 {
    l.other_nodes
        .as_ref()
        .unwrap_or(&l.same_node)
        .quantiles
        .p99_us
}

/// The latency table's publish rate, as its heading says it.
fn latency_rate_note(p: &crate::scenarios::Params) -> String {
    let fixed = human(p.cluster_latency_deliveries);
    let rate = if p.cluster_latency_load > 0.0 {
        format!(
            "publish rate: {:.0} % of the cell's own fan-out peak; {fixed} deliveries/s where \
             the step measured no peak",
            p.cluster_latency_load * 100.0
        )
    } else {
        format!("fixed publish rate: {fixed} deliveries/s offered, at least one broadcast/s")
    };
    if p.cluster_latency_broadcasts > 0.0 {
        format!(
            "{rate}; each phase {} s or at least {:.0} broadcasts, at most {} s",
            p.latency_secs,
            p.cluster_latency_broadcasts,
            crate::scenarios::cluster::MAX_LATENCY_SECS
        )
    } else {
        rate
    }
}

/// Cluster latency table.
fn latency(report: &SuiteReport) -> String {
    let stamped = super::tables::arrival_stamped(report);
    let (read_head, read_sep) = if stamped {
        (" p99 at read: same · other ms |", "---:|")
    } else {
        ("", "")
    };
    let mut md = format!(
        "\n## Cluster latency ({})\n\n\
         Receivers on the publisher's node against receivers on the other nodes (their events \
         went through Redis). `p99 × SB` compares the other nodes' p99 (on one node: the \
         publisher's node's) with Switchboard's (fixture) on the same adapter and node count. \
         {} {}\n\n\
         | server | adapter | room | nodes | broadcasts/s | broadcasts / round | \
         deliveries / round | same node p50 · p99 · p99.9 ms | other nodes p50 · p99 · p99.9 \
         ms | max ms | p99 × SB | received | cluster cores | generator cores |{read_head}\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{read_sep}\n",
        latency_rate_note(&report.params),
        super::tables::latency_end_note(report),
        threads_note(report)
    );
    let (mut dashed, mut lossy) = (false, false);
    for &size in &report.params.cluster_room_sizes {
        // The p99 compared: of the rounds that recorded a sample, where it rests on
        // enough broadcasts.
        let compared = |c: &Rounds<'_, ClusterLatency>| {
            let m = Rounds::from(c.each().filter(|c| c.latency.samples > 0).collect())?;
            gate(c).p99.then(|| m.median(|c| worst_p99(c) as f64))
        };
        let find = move |s: &ServerReport, shape: Shape| {
            latency_of(s, shape, size).and_then(|c| compared(&c))
        };
        for shape in shapes(report) {
            for s in ran(report) {
                let Some(c) = latency_of(s, shape, size) else {
                    continue;
                };
                let (_, sb) = bases(report, shape, s.server, &find);
                let l = Rounds::from(c.each().map(|c| &c.latency).collect());
                let Some(l) = l else { continue };
                let gated = gate(&c);
                dashed |= !gated.p999;
                lossy |= samples::short(&l);
                let same = Rounds::from(c.each().map(|c| &c.same_node).collect());
                let other = c.each().filter_map(|c| c.other_nodes.as_ref()).collect();
                let [sent, got] = samples::count_cells(&l);
                let max = samples::measured(&l).map_or("—".to_owned(), |m| {
                    format!("{:.2}", m.median(|l| l.quantiles.max_us as f64) / 1000.0)
                });
                let _ = write!(
                    md,
                    "| {} | {} | {size} | {} | {:.0} | {sent} | {got} | {} | {} | {max} | {} | {} | {:.2} | {:.2} |",
                    s.server.label(),
                    shape.adapter.name(),
                    shape.nodes,
                    l.median(|l| l.rate),
                    percentiles(same, gated),
                    percentiles(Rounds::from(other), gated),
                    ratio(compared(&c), sb),
                    samples::received_cell(&l),
                    l.median(|l| l.server_cores),
                    l.median(|l| l.generator_cores)
                );
                if stamped && !gated.p99 {
                    md.push_str(" — · — |");
                } else if stamped {
                    let read = |group: fn(&ClusterLatency) -> Option<&Percentiles>| {
                        let at_read = c.each().filter_map(|c| group(c)?.at_read.as_ref());
                        super::tables::read_p99(Rounds::from(at_read.collect()))
                    };
                    let same = read(|c| Some(&c.same_node));
                    let other = read(|c| c.other_nodes.as_ref());
                    let _ = write!(md, " {same} · {other} |");
                }
                md.push('\n');
            }
        }
    }
    md.push_str(&samples::note(dashed, lossy));
    md
}

/// Cluster many-rooms table.
fn rooms(report: &SuiteReport) -> String {
    let p = &report.params;
    let mut md = format!(
        "\n## Cluster many rooms ({} rooms × {} members spread over the nodes, targeted emits \
         from the first)\n\n\
         {READING} {}\n\n\
         | server | adapter | nodes | emits/s | deliveries/s | CPU s / M deliveries | × 1 node | \
         × SB | each node | Redis | Redis cmds / read | generator CPU s / M | {} |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        p.rooms,
        p.members,
        threads_note(report),
        lost::HEAD
    );
    let mut losses = Losses::new("emits");
    let find = |s: &ServerReport, shape: Shape| {
        rooms_of(s, shape).map(|r| r.median(|r| r.cpu.total_s_per_m))
    };
    for shape in shapes(report) {
        for s in ran(report) {
            let Some(c) = rooms_of(s, shape) else {
                continue;
            };
            let (one, sb) = bases(report, shape, s.server, &find);
            let cpus: Vec<&ClusterCpu> = c.each().map(|c| &c.cpu).collect();
            let lost = losses.cell(
                format!(
                    "{}, {}, {} node{}",
                    s.server.label(),
                    shape.adapter.name(),
                    shape.nodes,
                    if shape.nodes == 1 { "" } else { "s" }
                ),
                c.each().map(|c| Lost::of_rooms(&c.rooms)).collect(),
            );
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {:.2} | {lost} |",
                s.server.label(),
                shape.adapter.name(),
                shape.nodes,
                c.spread(|c| c.rooms.emits_per_sec).show(human),
                c.spread(|c| c.rooms.deliveries_per_sec).show(human),
                cpu_cells(&cpus, one, sb),
                c.median(|c| c.rooms.generator_cpu_s_per_m),
            );
        }
    }
    md.push_str(
        &losses
            .note("the whole scenario (its peak and the cost phase after it, warm-ups included)"),
    );
    md
}

/// The cluster charts, with their file names: one bar per server that ran, grouped by
/// (room, adapter, nodes).
pub(super) fn charts(report: &SuiteReport) -> Vec<(&'static str, BarChart)> {
    let sizes = &report.params.cluster_room_sizes;
    let shapes = shapes(report);
    let label = |shape: Shape| {
        let plural = if shape.nodes == 1 { "" } else { "s" };
        format!("{}, {} node{plural}", shape.adapter.name(), shape.nodes)
    };
    let room_points: Vec<(usize, Shape)> = sizes
        .iter()
        .flat_map(|&n| shapes.iter().map(move |&s| (n, s)))
        .collect();
    let room_labels: Vec<String> = room_points
        .iter()
        .map(|&(n, s)| format!("room {n}, {}", label(s)))
        .collect();
    let fanout = BarChart {
        title: "Cluster fan-out: CPU s per M deliveries, every node + Redis (lower is better)"
            .into(),
        unit: "CPU s / M deliveries".into(),
        categories: room_labels.clone(),
        series: series(report, &|s| {
            room_points
                .iter()
                .map(|&(n, shape)| {
                    fanout_of(s, shape, n).map(|f| f.median(|f| f.cpu.total_s_per_m))
                })
                .collect()
        }),
    };
    let latency = BarChart {
        title: "Cluster latency p99, receivers on other nodes (lower is better)".into(),
        unit: "milliseconds".into(),
        categories: room_labels,
        series: series(report, &|s| {
            room_points
                .iter()
                .map(|&(n, shape)| {
                    let c = latency_of(s, shape, n)?;
                    let m = Rounds::from(c.each().filter(|c| c.latency.samples > 0).collect())?;
                    gate(&c)
                        .p99
                        .then(|| m.median(|l| worst_p99(l) as f64) / 1000.0)
                })
                .collect()
        }),
    };
    let rooms = BarChart {
        title: "Cluster many rooms: CPU s per M deliveries, every node + Redis (lower is better)"
            .into(),
        unit: "CPU s / M deliveries".into(),
        categories: shapes.iter().map(|&s| label(s)).collect(),
        series: series(report, &|s| {
            shapes
                .iter()
                .map(|&shape| rooms_of(s, shape).map(|r| r.median(|r| r.cpu.total_s_per_m)))
                .collect()
        }),
    };
    vec![
        ("cluster_fanout_cpu.svg", fanout),
        ("cluster_latency_p99.svg", latency),
        ("cluster_rooms_cpu.svg", rooms),
    ]
}

/// One series per server that ran a cluster scenario, valued by `f`.
fn series(report: &SuiteReport, f: &dyn Fn(&ServerReport) -> Vec<Option<f64>>) -> Vec<Series> {
    ran(report)
        .filter(|s| !s.server.cluster_adapters().is_empty())
        .map(|s| Series {
            name: s.server.label().to_owned(),
            values: f(s),
        })
        .collect()
}

/// A line per server that cannot cluster with an adapter of the run (why it has no rows).
fn missing_adapters(report: &SuiteReport) -> String {
    let mut md = String::new();
    for s in ran(report) {
        let has = s.server.cluster_adapters();
        if has.is_empty() {
            continue;
        }
        let missing: Vec<&str> = report
            .params
            .cluster_adapters
            .iter()
            .filter(|a| !has.contains(a))
            .map(|a: &Adapter| a.name())
            .collect();
        if !missing.is_empty() {
            let _ = writeln!(
                md,
                "\n- {} has no {} adapter: no rows.",
                s.server.label(),
                missing.join(", ")
            );
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Quantiles;

    /// The committed repeated cluster run (written before the cost phases existed).
    fn repeat_run() -> SuiteReport {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results/20261205-cluster-repeat/results.json");
        let text = std::fs::read_to_string(&path).expect("a committed results.json");
        serde_json::from_str(&text).expect("it parses")
    }

    /// A cost phase costing `total` CPU s per M deliveries.
    fn at(total: f64) -> AtRate {
        AtRate {
            offered_deliveries_per_sec: 400_000.0,
            deliveries_per_sec: 399_000.0,
            seconds: 10.0,
            cpu: ClusterCpu {
                nodes_s_per_m: vec![total],
                redis_s_per_m: 0.0,
                total_s_per_m: total,
                redis_commands_per_read: None,
            },
            cores: 1.0,
        }
    }

    /// The target rows of `md` whose first cell starts with `what`, with their adapter
    /// and node count: (adapter, nodes, value, verdict).
    fn rows<'a>(md: &'a str, what: &str) -> Vec<(&'a str, &'a str, &'a str, &'a str)> {
        md.lines()
            .filter(|l| l.starts_with(&format!("| {what}")))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (cells[2], cells[4], cells[5], cells[7])
            })
            .collect()
    }

    #[test]
    fn a_stamped_run_says_its_latency_ends_at_the_socket_and_shows_the_read_beside() {
        let unstamped = latency(&repeat_run());
        assert!(unstamped.contains("Latency ends when the generator read the event."));
        assert!(!unstamped.contains("p99 at read"));
        let mut report = repeat_run();
        let read = Quantiles {
            p50_us: 7_000,
            p99_us: 21_000,
            p999_us: 30_000,
            max_us: 40_000,
        };
        for round in report.servers.iter_mut().flat_map(|s| &mut s.rounds) {
            for c in &mut round.cluster_latency {
                // Enough broadcasts for a p99 (the run's phases published 99).
                let owed = 1000 * c.latency.room_size as u64;
                (c.latency.expected, c.latency.samples) = (owed, owed);
                c.latency.at_read = Some(read);
                c.latency.unstamped = 2;
                c.same_node.at_read = Some(read);
                if let Some(other) = &mut c.other_nodes {
                    other.at_read = Some(Quantiles {
                        p99_us: 23_000,
                        ..read
                    });
                }
            }
        }
        let md = latency(&report);
        assert!(md.contains("the kernel's receive stamp"), "{md}");
        assert!(md.contains("samples came in reads the kernel did not stamp"));
        let header = md.lines().find(|l| l.starts_with("| server |")).unwrap();
        assert!(
            header.ends_with(" p99 at read: same · other ms |"),
            "{header}"
        );
        let two_nodes = md
            .lines()
            .find(|l| l.contains("| redis | 1000 | 2 |"))
            .expect("a 2-node row");
        assert!(two_nodes.ends_with(" 21.00 · 23.00 |"), "{two_nodes}");
        let one_node = md
            .lines()
            .find(|l| l.contains("| redis | 1000 | 1 |"))
            .unwrap();
        assert!(one_node.ends_with(" 21.00 · — |"), "{one_node}");
    }

    #[test]
    fn the_tables_say_how_many_threads_each_node_ran() {
        let mut report = repeat_run();
        assert!(threads_note(&report).contains("runtime's default"));
        report.params.cluster_node_threads = Some(0);
        report.machine.cores = 2;
        let note = threads_note(&report);
        assert!(
            note.contains("(Switchboard, socketioxide): 2 on 1 node, 1 on 2 nodes, 1 on 3 nodes ("),
            "{note}"
        );
        assert!(fanout(&report).contains(&note) && rooms(&report).contains(&note));
    }

    #[test]
    fn the_cross_node_target_is_judged_at_one_load_and_the_peak_is_a_reference() {
        let mut report = repeat_run();
        // A run before the cost phases: the peak's ratio is shown, and judged by nothing.
        let md = targets(&report);
        let peak = rows(
            &md,
            "many rooms: CPU per delivery × 1 node, each at its peak",
        );
        assert_eq!(peak.len(), 4, "{md}");
        assert!(peak.iter().all(|r| r.3 == "—"), "{md}");
        assert!(rows(&md, "many rooms: CPU per delivery × 1 node, at").is_empty());
        assert!(with_rows(cost(&report)).is_empty(), "no cost phase ran");

        // Give Switchboard cost phases: one node 2.0, two nodes 2.2, three nodes 2.6.
        report.params.cluster_rooms_rate = 80_000.0;
        let sb = report
            .servers
            .iter_mut()
            .find(|s| s.server == ServerKind::Switchboard)
            .expect("switchboard ran");
        for round in &mut sb.rounds {
            for r in &mut round.cluster_rooms {
                r.at_rate = Some(at([2.0, 2.2, 2.6][r.shape.nodes - 1]));
            }
        }
        let md = targets(&report);
        let judged = rows(&md, "many rooms: CPU per delivery × 1 node, at 80k emits/s");
        let expect = [
            ("redis", "2", "×1.10", "met"),
            ("redis", "3", "×1.30", "**not met**"),
            ("redis-streams", "2", "×1.10", "met"),
            ("redis-streams", "3", "×1.30", "**not met**"),
        ];
        assert_eq!(judged, expect, "{md}");
        let cost = cost(&report);
        assert!(cost.contains("| many rooms (10000×5) | switchboard (fixture) | redis | 3 |"));
        assert!(
            cost.contains("| many rooms (10000×5) | socketioxide | redis | 3 | — | — |"),
            "a server without the phase gets dashes: {cost}"
        );
    }

    /// `kind`'s entry in `report`.
    fn server(report: &mut SuiteReport, kind: ServerKind) -> &mut ServerReport {
        let found = report.servers.iter_mut().find(|s| s.server == kind);
        found.expect("the server ran")
    }

    #[test]
    fn a_cluster_cell_that_lost_events_or_acks_shows_it() {
        let mut report = repeat_run();
        let sio = server(&mut report, ServerKind::Socketioxide);
        for (round, (undelivered, unacked)) in
            sio.rounds.iter_mut().zip([(652, 446), (0, 895), (0, 0)])
        {
            for r in round
                .cluster_rooms
                .iter_mut()
                .filter(|r| r.shape.nodes == 3)
            {
                (r.rooms.undelivered, r.rooms.unacked) = (undelivered, unacked);
            }
            for f in round
                .cluster_fanout
                .iter_mut()
                .filter(|f| f.shape.nodes == 2)
            {
                f.fanout.unacked = 3;
            }
        }
        let md = rooms(&report);
        let row = md
            .lines()
            .find(|l| l.starts_with("| socketioxide | redis | 3 |"))
            .expect("a row");
        assert!(row.ends_with("| **0 · 652 · 1341 · 0** |"), "{row}");
        assert!(
            md.contains(
                "socketioxide, redis, 3 nodes: 652 events undelivered (652 · 0 · 0 by round), \
                 1341 emits unacked (446 · 895 · 0 by round)."
            ),
            "{md}"
        );
        let md = fanout(&report);
        assert!(
            md.contains("socketioxide, redis, room 1000, 2 nodes: 9 broadcasts unacked"),
            "{md}"
        );
        let clean = md
            .lines()
            .find(|l| l.starts_with("| switchboard (fixture) | redis | 1000 | 2 |"))
            .expect("a row");
        assert!(clean.ends_with("| 0 · 0 · 0 · 0 |"), "{clean}");
    }

    #[test]
    fn a_cluster_latency_cell_that_lost_deliveries_is_not_met() {
        let mut report = repeat_run();
        for round in &mut server(&mut report, ServerKind::Switchboard).rounds {
            for c in &mut round.cluster_latency {
                // Enough broadcasts for a p99 (the run's phases published 99).
                let owed = 1000 * c.latency.room_size as u64;
                (c.latency.expected, c.latency.samples) = (owed, owed);
            }
        }
        let judged = |report: &SuiteReport| {
            let md = targets(report);
            let found = rows(&md, "latency: p99 other nodes − publisher's node");
            let row = found.iter().find(|r| r.0 == "redis" && r.1 == "2");
            row.expect("a latency row").3.to_owned()
        };
        assert!(!judged(&report).contains("not met:"), "{}", judged(&report));
        let first = &mut server(&mut report, ServerKind::Switchboard).rounds[0];
        let cell = first.cluster_latency.iter_mut().find(|c| {
            c.shape.adapter == Adapter::Redis && c.shape.nodes == 2 && c.latency.room_size == 1000
        });
        cell.expect("the cell").latency.samples -= 10;
        assert!(
            judged(&report).starts_with("**not met**: 99.9 % of its deliveries arrived"),
            "{}",
            judged(&report)
        );
        let md = latency(&report);
        let row = md
            .lines()
            .find(|l| l.starts_with("| switchboard (fixture) | redis | 1000 | 2 |"))
            .expect("a row");
        assert!(row.contains("| **99.9%** |"), "{row}");
    }

    #[test]
    fn a_peer_is_judged_at_one_load_where_both_ran_the_cost_phase() {
        let mut report = repeat_run();
        let md = targets(&report);
        let peak = rows(
            &md,
            "fan-out: socketioxide's CPU per delivery ÷ ours, each at its peak (ours ",
        );
        assert!(
            !peak.is_empty() && peak.iter().all(|r| r.3 != "—"),
            "no cost phase: judged at the peaks, {md}"
        );
        assert!(md.contains("deliveries/s); no phase at one load |"), "{md}");
        for (kind, cost) in [
            (ServerKind::Switchboard, 2.0),
            (ServerKind::Socketioxide, 2.5),
        ] {
            for round in &mut server(&mut report, kind).rounds {
                for f in &mut round.cluster_fanout {
                    f.at_rate = Some(at(cost));
                }
            }
        }
        let md = targets(&report);
        let judged = rows(
            &md,
            "fan-out: socketioxide's CPU per delivery ÷ ours, at 400k deliveries/s",
        );
        assert!(
            !judged.is_empty() && judged.iter().all(|r| r.2 == "×1.25" && r.3 == "met"),
            "{md}"
        );
        let peak = rows(
            &md,
            "fan-out: socketioxide's CPU per delivery ÷ ours, each at its peak (ours ",
        );
        assert_eq!(peak.len(), judged.len(), "{md}");
        assert!(
            peak.iter().all(|r| r.3 == "—"),
            "the peaks are a reference: {md}"
        );
    }
}
