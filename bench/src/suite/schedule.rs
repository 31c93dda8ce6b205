//! The steps a run takes: each scenario at each of its sizes (and cluster shapes), and
//! the order they run in, scenario by scenario, round after round (`--repeat`).

use crate::fleet::Transport;
use crate::peers::ServerKind;
use crate::scenarios::cluster::Shape;
use crate::scenarios::{Params, Scenario};

/// One unit of work against a fresh server process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Idle memory.
    Idle,
    /// Fan-out on one room size, with latency after it when asked.
    Fanout(usize, bool),
    /// Latency only (measures a peak first, not reported).
    Latency(usize),
    /// Many rooms.
    Rooms,
    /// Churn.
    Churn,
    /// Memory under load, one room of that many clients.
    Loaded(usize),
    /// A cluster scenario on one fresh cluster of that shape.
    Cluster(Shape, ClusterWork),
    /// Part of the SSE scenario, with receivers over that transport.
    Sse(Transport, SseWork),
}

/// What a step of the SSE scenario measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SseWork {
    /// Idle memory per receiver.
    Idle,
    /// Fan-out and fixed-rate latency on one room of that size.
    Fanout(usize),
}

/// What a cluster step measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClusterWork {
    /// Cross-node fan-out and/or (fixed-rate) latency on one room size: (size, fan-out
    /// wanted, latency wanted).
    Room(usize, bool, bool),
    /// Many rooms.
    Rooms,
    /// The recovery storm of that many clients (two nodes, streams adapter, recovery
    /// on, the second node SIGKILLed).
    Storm(usize),
}

/// The cluster the recovery storm runs on.
pub(crate) const STORM_SHAPE: Shape = Shape {
    adapter: crate::peers::Adapter::RedisStreams,
    nodes: 2,
};

impl Step {
    /// Name used in logs and failure lists.
    pub(crate) fn name(self) -> String {
        match self {
            Step::Idle => "idle".to_owned(),
            Step::Fanout(n, _) => format!("fanout-{n}"),
            Step::Latency(n) => format!("latency-{n}"),
            Step::Rooms => "rooms".to_owned(),
            Step::Churn => "churn".to_owned(),
            Step::Loaded(n) => format!("loaded-{n}"),
            Step::Cluster(shape, work) => {
                let what = match work {
                    ClusterWork::Room(n, true, _) => format!("fanout-{n}"),
                    ClusterWork::Room(n, false, _) => format!("latency-{n}"),
                    ClusterWork::Rooms => "rooms".to_owned(),
                    ClusterWork::Storm(n) => format!("storm-{n}"),
                };
                format!("cluster-{}-{}n-{what}", shape.adapter.name(), shape.nodes)
            }
            Step::Sse(transport, work) => {
                let side = match transport {
                    Transport::Sse => "sse",
                    Transport::WebSocket => "sse-ws",
                };
                match work {
                    SseWork::Idle => format!("{side}-idle"),
                    SseWork::Fanout(n) => format!("{side}-fanout-{n}"),
                }
            }
        }
    }

    /// Whether `server` takes this step (cluster steps: only with an adapter it has).
    pub(crate) fn runs_on(self, server: ServerKind) -> bool {
        match self {
            // Only Switchboard recovers a killed node's clients elsewhere.
            Step::Cluster(_, ClusterWork::Storm(_)) => server == ServerKind::Switchboard,
            Step::Cluster(shape, _) => server.cluster_adapters().contains(&shape.adapter),
            // SSE and the HTTP API are the shipped binary's.
            Step::Sse(..) => server == ServerKind::SwitchboardServe,
            _ => true,
        }
    }
}

/// Steps that running `scenarios` with `params` takes, in order.
pub(crate) fn steps(scenarios: &[Scenario], params: &Params) -> Vec<Step> {
    let has = |s| scenarios.contains(&s);
    let mut steps = Vec::new();
    if has(Scenario::Idle) {
        steps.push(Step::Idle);
    }
    for &size in &params.room_sizes {
        match (has(Scenario::Fanout), has(Scenario::Latency)) {
            (true, latency) => steps.push(Step::Fanout(size, latency)),
            (false, true) => steps.push(Step::Latency(size)),
            (false, false) => {}
        }
    }
    if has(Scenario::Rooms) {
        steps.push(Step::Rooms);
    }
    if has(Scenario::Churn) {
        steps.push(Step::Churn);
    }
    if has(Scenario::Loaded) {
        steps.push(Step::Loaded(params.loaded_clients));
    }
    if has(Scenario::Sse) {
        let both = [Transport::Sse, Transport::WebSocket];
        steps.extend(both.map(|t| Step::Sse(t, SseWork::Idle)));
        for &size in &params.sse_room_sizes {
            steps.extend(both.map(|t| Step::Sse(t, SseWork::Fanout(size))));
        }
    }
    let shapes: Vec<Shape> = params
        .cluster_adapters
        .iter()
        .flat_map(|&adapter| {
            params
                .cluster_nodes
                .iter()
                .map(move |&nodes| Shape { adapter, nodes })
        })
        .collect();
    let (fanout, latency) = (has(Scenario::ClusterFanout), has(Scenario::ClusterLatency));
    for &size in &params.cluster_room_sizes {
        if fanout || latency {
            let work = ClusterWork::Room(size, fanout, latency);
            steps.extend(shapes.iter().map(|&shape| Step::Cluster(shape, work)));
        }
    }
    if has(Scenario::ClusterRooms) {
        let work = ClusterWork::Rooms;
        steps.extend(shapes.iter().map(|&shape| Step::Cluster(shape, work)));
    }
    if has(Scenario::ClusterStorm) {
        let work = ClusterWork::Storm(params.storm_clients);
        steps.push(Step::Cluster(STORM_SHAPE, work));
    }
    steps
}

impl Step {
    /// The scenario a step is part of: the steps of one scenario run as a block, which
    /// `--repeat` runs round after round.
    fn scenario(self) -> Scenario {
        match self {
            Step::Idle => Scenario::Idle,
            // Fan-out and latency share their steps.
            Step::Fanout(..) | Step::Latency(_) => Scenario::Fanout,
            Step::Rooms => Scenario::Rooms,
            Step::Churn => Scenario::Churn,
            Step::Loaded(_) => Scenario::Loaded,
            Step::Sse(..) => Scenario::Sse,
            Step::Cluster(_, ClusterWork::Room(..)) => Scenario::ClusterFanout,
            Step::Cluster(_, ClusterWork::Rooms) => Scenario::ClusterRooms,
            Step::Cluster(_, ClusterWork::Storm(_)) => Scenario::ClusterStorm,
        }
    }
}

/// Every (round from 0, step) of running `scenarios` with `params`, in run order: the
/// steps of one scenario form a block, run `params.repeat` times in a row (round 1 of
/// every size on every server, then round 2, …), so each round of a scenario meets the
/// machine at a different moment while every server within a round meets it alike.
pub(crate) fn schedule(scenarios: &[Scenario], params: &Params) -> Vec<(usize, Step)> {
    let steps = steps(scenarios, params);
    let mut schedule = Vec::new();
    let mut rest = &steps[..];
    while let Some(first) = rest.first() {
        let len = rest
            .iter()
            .take_while(|s| s.scenario() == first.scenario())
            .count();
        let (block, after) = rest.split_at(len);
        for round in 0..params.repeat.max(1) {
            schedule.extend(block.iter().map(|&step| (round, step)));
        }
        rest = after;
    }
    schedule
}

/// One step of one round, as the runner and the smoke verdict name it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    /// The step.
    pub(crate) step: Step,
    /// Its round, from 0.
    pub(crate) round: usize,
    /// Rounds in the run.
    pub(crate) rounds: usize,
}

impl At {
    /// `fanout-1000`, or `fanout-1000 round 2` when the run has more than one.
    pub(crate) fn label(self) -> String {
        if self.rounds > 1 {
            format!("{} round {}", self.step.name(), self.round + 1)
        } else {
            self.step.name()
        }
    }

    /// Log file stem of `server` at this step: `switchboard-fanout-1000`, with `-r2` in
    /// a run of more than one round.
    pub(crate) fn log_stem(self, server: ServerKind) -> String {
        let round = if self.rounds > 1 {
            format!("-r{}", self.round + 1)
        } else {
            String::new()
        };
        format!("{}-{}{round}", server.name(), self.step.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scenario_runs_its_rounds_as_a_block() {
        let params = Params {
            repeat: 2,
            ..Params::smoke()
        };
        let scenarios = [Scenario::Idle, Scenario::Fanout, Scenario::Latency];
        let schedule = schedule(&scenarios, &params);
        let named: Vec<(usize, String)> = schedule.iter().map(|(r, s)| (*r, s.name())).collect();
        let expected = [
            (0, "idle"),
            (1, "idle"),
            (0, "fanout-10"),
            (0, "fanout-50"),
            (1, "fanout-10"),
            (1, "fanout-50"),
        ];
        let expected: Vec<(usize, String)> = expected
            .iter()
            .map(|(r, s)| (*r, (*s).to_owned()))
            .collect();
        assert_eq!(named, expected);
        // One round: the steps as they are.
        let once = super::schedule(&scenarios, &Params::smoke());
        let steps: Vec<Step> = once.iter().map(|&(_, s)| s).collect();
        assert_eq!(steps, super::steps(&scenarios, &Params::smoke()));
        assert!(once.iter().all(|&(r, _)| r == 0));
    }
}
