//! The smoke run's verdict: which problems of a run fail the CI smoke, which are only
//! printed, and the lines that say so.
//!
//! Switchboard (protocol_fixture and `switchboard serve`) and the bare broadcaster must run
//! every step of the plan cleanly: for them everything below fails the run. A Switchboard
//! problem is what the smoke exists to catch, and a bare-broadcaster problem means the
//! load generator itself is broken.
//!
//! - the server could not be prepared (binary missing, build failed), failed to start,
//!   or exited during a step;
//! - a scenario returned an error, or a step the plan asks for has no result;
//! - in the recovery storm (Switchboard's fixture only), a client not recovered, an
//!   acked event lost or duplicated, an event the survivor did not ack;
//! - a connection of the generator was lost (in any phase of the scenario), an event
//!   never arrived (`undelivered`, an exact count taken after the scenario waited for
//!   every event), a broadcast was never acked (`unacked`, exact, counted after the
//!   publisher waited for every ack; a refused broadcast is a scenario error), a latency
//!   phase recorded fewer or more samples than broadcasts × room size, an idle count has
//!   no measurement, a churn cycle failed or none completed, memory under load has
//!   fewer or more RSS samples than it takes or delivered nothing; in the SSE scenario
//!   (`switchboard serve` only), the server's `/metrics` counting other than the idle
//!   receivers the generator holds.
//!
//! The other peers (Node Socket.IO, socketioxide) measure someone else's server, and the
//! baseline (`--baseline-bin`, never in CI) an older build of ours, whose problems are
//! a finding of the comparison, not a defect of this commit; all three are judged alike:
//!
//! - a peer that cannot be prepared on this machine (socketioxide not built, no node or
//!   npm) is **skipped**;
//! - a peer that was prepared and then failed to start or exited during a step **fails**
//!   the run: it is reported as a crash, distinct from skipped. Its peer code lives in
//!   `bench/peers/`, CI has Node, and a crashing peer would silently drop out of every
//!   later full run;
//! - its scenario errors and the counters above are **warnings**: how a third-party
//!   server copes with the workload is a finding for the report, not a defect here (a
//!   broken generator shows on the bare broadcaster).
//!
//! Nothing here looks at a rate or a time. The one time-based counter, `written_off` (the
//! publisher's guess that events were lost after a 1 s stall), is only a warning when every
//! event then arrived: a loaded machine can stall a server that long without losing anything.

use std::fmt;
use std::process::ExitCode;

use crate::fleet::Transport;
use crate::peers::ServerKind;
use crate::scenarios::Scenario;
use crate::scenarios::cluster::{Percentiles, Shape};
use crate::scenarios::fanout::LatencyResult;
use crate::scenarios::loaded::RSS_SAMPLES;
use crate::scenarios::sse::TransportResult;
use crate::suite::{
    At, ClusterWork, Failure, FailureKind, Results, ServerReport, SseWork, Step, SuiteReport,
    schedule,
};

/// What a round the runner never reached holds.
static NO_RESULTS: Results = Results::NONE;

/// How much one finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    /// Fails the smoke.
    Fail,
    /// Printed; the smoke still passes.
    Warn,
    /// A peer that cannot run on this machine.
    Skip,
}

/// One thing the verdict has to say about one server.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    /// How much it weighs.
    pub(crate) severity: Severity,
    /// Which server.
    pub(crate) server: ServerKind,
    /// Step (`idle`, `fanout-10`, ...), or `-` for the server as a whole.
    pub(crate) step: String,
    /// What went wrong.
    pub(crate) why: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.severity {
            Severity::Fail => "FAIL",
            Severity::Warn => "WARN",
            Severity::Skip => "SKIP",
        };
        write!(
            f,
            "{tag} {} {}: {}",
            self.server.name(),
            self.step,
            self.why
        )
    }
}

/// The verdict on a whole smoke run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verdict {
    /// Steps that ran with a result and nothing to say about them.
    pub(crate) passed: usize,
    /// Everything worth saying, in server and step order.
    pub(crate) findings: Vec<Finding>,
}

impl Verdict {
    /// Whether any finding fails the smoke.
    pub(crate) fn failed(&self) -> bool {
        self.count(Severity::Fail) > 0
    }

    /// Findings of one severity.
    fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }

    /// Prints every finding and the closing line; the smoke's exit code.
    pub(crate) fn print(&self) -> ExitCode {
        for finding in &self.findings {
            println!("{finding}");
        }
        println!(
            "smoke: {} steps passed, {} failures, {} warnings, {} servers skipped",
            self.passed,
            self.count(Severity::Fail),
            self.count(Severity::Warn),
            self.count(Severity::Skip)
        );
        if self.failed() {
            println!("smoke FAILED (see the FAIL lines above)");
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Judges a run of `scenarios` (with the report's own parameters).
pub(crate) fn judge(report: &SuiteReport, scenarios: &[Scenario]) -> Verdict {
    let mut verdict = Verdict::default();
    for server in &report.servers {
        let mut judging = Judging {
            server,
            report,
            round: 0,
            verdict: &mut verdict,
        };
        judging.server_as_a_whole(scenarios);
    }
    verdict
}

/// Judging one server's entry of a report.
struct Judging<'a> {
    /// The entry.
    server: &'a ServerReport,
    /// The whole run (for its parameters).
    report: &'a SuiteReport,
    /// The round being judged, from 0.
    round: usize,
    /// Where findings go.
    verdict: &'a mut Verdict,
}

impl<'a> Judging<'a> {
    /// What the round being judged measured.
    fn results(&self) -> &'a Results {
        self.server.rounds.get(self.round).unwrap_or(&NO_RESULTS)
    }

    /// Switchboard (either form) and the bare broadcaster must pass everything; peers
    /// (and the baseline, an older build) only must not crash.
    fn required(&self) -> bool {
        matches!(
            self.server.server,
            ServerKind::Switchboard | ServerKind::SwitchboardServe | ServerKind::Bare
        )
    }

    /// Records a finding on `step`.
    fn add(&mut self, severity: Severity, step: &str, why: String) {
        self.verdict.findings.push(Finding {
            severity,
            server: self.server.server,
            step: step.to_owned(),
            why,
        });
    }

    /// Records a problem with a result: fails a required server, warns on a peer.
    fn problem(&mut self, step: &str, why: String) {
        let severity = if self.required() {
            Severity::Fail
        } else {
            Severity::Warn
        };
        self.add(severity, step, why);
    }

    /// Every step of every round of the plan, in run order, until the one the server
    /// failed to start on (the runner tries no later step of it).
    fn server_as_a_whole(&mut self, scenarios: &[Scenario]) {
        if let Some(reason) = &self.server.skipped {
            let severity = if self.required() {
                Severity::Fail
            } else {
                Severity::Skip
            };
            self.add(severity, "-", format!("could not be prepared: {reason}"));
            return;
        }
        let server = self.server.server;
        let rounds = self.report.params.repeat.max(1);
        for (round, step) in schedule(scenarios, &self.report.params) {
            if !step.runs_on(server) {
                continue;
            }
            self.round = round;
            let step_name = step.name();
            let name = At {
                step,
                round,
                rounds,
            }
            .label();
            let found_before = self.verdict.findings.len();
            let failures: Vec<&Failure> = self
                .server
                .failures
                .iter()
                .filter(|f| f.step == step_name && f.round == round + 1)
                .collect();
            for f in &failures {
                let severity = match f.kind {
                    FailureKind::Start | FailureKind::Crash => Severity::Fail,
                    FailureKind::Scenario if self.required() => Severity::Fail,
                    FailureKind::Scenario => Severity::Warn,
                };
                self.add(severity, &name, format!("{}: {}", f.kind.label(), f.reason));
            }
            if failures.iter().any(|f| f.kind == FailureKind::Start) {
                return;
            }
            // A step that errored has no result to judge; one whose server exited after
            // it finished does.
            let crashed_after =
                failures.iter().all(|f| f.kind == FailureKind::Crash) && self.has_result(step);
            if failures.is_empty() || crashed_after {
                self.step(step, &name);
            }
            if self.verdict.findings.len() == found_before {
                self.verdict.passed += 1;
            }
        }
    }

    /// Whether `step` left a result (a crashed step may have one).
    fn has_result(&self, step: Step) -> bool {
        let s = self.results();
        match step {
            Step::Idle => s.idle.is_some(),
            Step::Fanout(n, _) => s.fanout.iter().any(|f| f.room_size == n),
            Step::Latency(n) => s.latency.iter().any(|l| l.room_size == n),
            Step::Rooms => s.rooms.is_some(),
            Step::Churn => s.churn.is_some(),
            Step::Loaded(_) => s.loaded.is_some(),
            Step::Cluster(shape, ClusterWork::Room(n, fanout, _)) if fanout => s
                .cluster_fanout
                .iter()
                .any(|f| f.shape == shape && f.fanout.room_size == n),
            Step::Cluster(shape, ClusterWork::Room(n, ..)) => s
                .cluster_latency
                .iter()
                .any(|l| l.shape == shape && l.latency.room_size == n),
            Step::Cluster(shape, ClusterWork::Rooms) => {
                s.cluster_rooms.iter().any(|r| r.shape == shape)
            }
            Step::Cluster(_, ClusterWork::Storm(_)) => s.cluster_storm.is_some(),
            Step::Sse(transport, work) => self.sse_of(transport).is_some_and(|t| match work {
                SseWork::Idle => t.idle.is_some(),
                SseWork::Fanout(n) => t.fanout.iter().any(|f| f.room_size == n),
            }),
        }
    }

    /// The SSE scenario's results over `transport`.
    fn sse_of(&self, transport: Transport) -> Option<&TransportResult> {
        self.results().sse.iter().find(|t| t.transport == transport)
    }

    /// The results of one step that ran without a recorded error; findings say `name`.
    fn step(&mut self, step: Step, name: &str) {
        let name = name.to_owned();
        match step {
            Step::Idle => self.idle(&name),
            Step::Fanout(n, latency) => {
                self.fanout(&name, n);
                if latency {
                    self.latency(&name, n);
                }
            }
            Step::Latency(n) => self.latency(&name, n),
            Step::Rooms => self.rooms(&name),
            Step::Churn => self.churn(&name),
            Step::Loaded(_) => self.loaded(&name),
            Step::Cluster(shape, ClusterWork::Room(n, fanout, latency)) => {
                if fanout {
                    self.cluster_fanout(&name, shape, n);
                }
                if latency {
                    self.cluster_latency(&name, shape, n);
                }
            }
            Step::Cluster(shape, ClusterWork::Rooms) => self.cluster_rooms(&name, shape),
            Step::Cluster(_, ClusterWork::Storm(_)) => self.cluster_storm(&name),
            Step::Sse(transport, SseWork::Idle) => self.sse_idle(&name, transport),
            Step::Sse(transport, SseWork::Fanout(n)) => self.sse_fanout(&name, transport, n),
        }
    }

    /// SSE scenario, idle: a point per count, no receiver lost, and the server counting
    /// as many connections of the transport as the generator holds.
    fn sse_idle(&mut self, step: &str, transport: Transport) {
        let Some(t) = self.sse_of(transport) else {
            return self.problem(step, "no result".to_owned());
        };
        let (idle, counted) = (t.idle.clone(), t.server_connections);
        let Some(idle) = idle else {
            return self.problem(step, "no idle result".to_owned());
        };
        let counts = &self.report.params.sse_idle_counts;
        for &n in counts {
            if !idle.points.iter().any(|p| p.connections == n) {
                self.problem(step, format!("no measurement at {n} receivers"));
            }
        }
        self.lost(step, idle.lost_connections);
        let held = counts.last().copied().unwrap_or(0) as u64;
        if counted != Some(held) {
            let counted = counted.map_or("nothing".to_owned(), |c| c.to_string());
            let why = format!(
                "/metrics counts {counted} {} connections, the generator holds {held}",
                transport.label()
            );
            self.problem(step, why);
        }
    }

    /// SSE scenario, fan-out: no receiver lost, every event delivered, and one latency
    /// sample per delivery the fixed rate asked for.
    fn sse_fanout(&mut self, step: &str, transport: Transport, size: usize) {
        let Some(t) = self.sse_of(transport) else {
            return self.problem(step, "no result".to_owned());
        };
        let fanout = t.fanout.iter().find(|f| f.room_size == size).cloned();
        let latency = t.latency.iter().find(|l| l.room_size == size).cloned();
        match fanout {
            None => self.problem(step, "no fan-out result".to_owned()),
            Some(f) => {
                self.lost(step, f.lost_connections);
                self.delivered(step, f.undelivered, f.written_off);
                self.acked(step, f.unacked);
            }
        }
        match latency {
            None => self.problem(step, "no latency result at the fixed rate".to_owned()),
            Some(l) => self.samples(step, "the fixed rate", &l),
        }
    }

    /// Recovery storm: every client recovered, every acked event once, all acked.
    fn cluster_storm(&mut self, step: &str) {
        let Some(r) = &self.results().cluster_storm else {
            return self.problem(step, "no recovery storm result".to_owned());
        };
        if r.recovered != r.clients {
            let why = format!(
                "{} of {} clients recovered ({} not recovered, {} gave up, {} lost before \
                 the kill); first: {}",
                r.recovered,
                r.clients,
                r.not_recovered,
                r.gave_up,
                r.lost_before_kill,
                r.first_error.as_deref().unwrap_or("?")
            );
            self.problem(step, why);
        }
        if r.lost > 0 || r.duplicated > 0 {
            let why = format!(
                "{} acked events lost, {} duplicated across the kill",
                r.lost, r.duplicated
            );
            self.problem(step, why);
        }
        if r.unacked > 0 {
            let why = format!(
                "{} of {} events not acked by the survivor",
                r.unacked, r.published
            );
            self.problem(step, why);
        }
    }

    /// Cluster fan-out: no connection lost, every event delivered on every node.
    fn cluster_fanout(&mut self, step: &str, shape: Shape, size: usize) {
        let found = self
            .results()
            .cluster_fanout
            .iter()
            .find(|f| f.shape == shape && f.fanout.room_size == size);
        let Some(f) = found else {
            return self.problem(step, "no cluster fan-out result".to_owned());
        };
        self.lost(step, f.fanout.lost_connections);
        self.delivered(step, f.fanout.undelivered, f.fanout.written_off);
        self.acked(step, f.fanout.unacked);
    }

    /// Cluster latency: exactly one sample per delivery owed, on the publisher's node and
    /// on the others alike.
    fn cluster_latency(&mut self, step: &str, shape: Shape, size: usize) {
        let found = self
            .results()
            .cluster_latency
            .iter()
            .find(|l| l.shape == shape && l.latency.room_size == size);
        let Some(l) = found else {
            return self.problem(step, "no cluster latency result".to_owned());
        };
        self.samples(step, "the fixed rate", &l.latency);
        let groups = [
            ("same node", Some(&l.same_node)),
            ("other nodes", l.other_nodes.as_ref()),
        ];
        for (group, p) in groups {
            if let Some(p) = p.filter(|p: &&Percentiles| p.samples != p.expected) {
                let why = format!(
                    "latency, receivers on {group}: {} samples, expected {} (broadcasts × {} receivers)",
                    p.samples, p.expected, p.receivers
                );
                self.problem(step, why);
            }
        }
    }

    /// Cluster many rooms: no connection lost, every event delivered.
    fn cluster_rooms(&mut self, step: &str, shape: Shape) {
        let Some(r) = self
            .results()
            .cluster_rooms
            .iter()
            .find(|r| r.shape == shape)
        else {
            return self.problem(step, "no cluster many-rooms result".to_owned());
        };
        self.lost(step, r.rooms.lost_connections);
        self.delivered(step, r.rooms.undelivered, r.rooms.written_off);
        self.acked(step, r.rooms.unacked);
    }

    /// Idle: a point per connection count, no connection lost.
    fn idle(&mut self, step: &str) {
        let Some(idle) = &self.results().idle else {
            return self.problem(step, "no result".to_owned());
        };
        for &n in &self.report.params.idle_counts {
            if !idle.points.iter().any(|p| p.connections == n) {
                self.problem(step, format!("no measurement at {n} connections"));
            }
        }
        self.lost(step, idle.lost_connections);
    }

    /// Fan-out: no connection lost, every event delivered.
    fn fanout(&mut self, step: &str, size: usize) {
        let Some(f) = self.results().fanout.iter().find(|f| f.room_size == size) else {
            return self.problem(step, "no fan-out result".to_owned());
        };
        self.lost(step, f.lost_connections);
        self.delivered(step, f.undelivered, f.written_off);
        self.acked(step, f.unacked);
    }

    /// Latency: one result per load the plan asks for, each with exactly one sample per
    /// delivery its broadcasts asked for.
    fn latency(&mut self, step: &str, size: usize) {
        let params = &self.report.params;
        let loads: Vec<Option<f64>> = match params.latency_rate {
            Some(_) => vec![None],
            None => params.latency_loads.iter().map(|&l| Some(l)).collect(),
        };
        for load in loads {
            let at = load.map_or("the fixed rate".to_owned(), |l| {
                format!("{:.0}% of peak", l * 100.0)
            });
            let found = self
                .results()
                .latency
                .iter()
                .find(|l| l.room_size == size && l.load == load);
            match found {
                None => self.problem(step, format!("no latency result at {at}")),
                Some(l) => self.samples(step, &at, l),
            }
        }
    }

    /// A latency phase recorded exactly the deliveries its broadcasts asked for.
    fn samples(&mut self, step: &str, at: &str, l: &LatencyResult) {
        if l.expected == 0 {
            self.problem(step, format!("latency at {at}: no broadcast sent"));
        } else if l.samples != l.expected {
            self.problem(
                step,
                format!(
                    "latency at {at}: {} samples, expected {} (broadcasts × room size)",
                    l.samples, l.expected
                ),
            );
        }
    }

    /// Many rooms: no connection lost, every event delivered.
    fn rooms(&mut self, step: &str) {
        let Some(r) = &self.results().rooms else {
            return self.problem(step, "no result".to_owned());
        };
        self.lost(step, r.lost_connections);
        self.delivered(step, r.undelivered, r.written_off);
        self.acked(step, r.unacked);
    }

    /// Churn: cycles completed, none failed.
    fn churn(&mut self, step: &str) {
        let Some(c) = &self.results().churn else {
            return self.problem(step, "no result".to_owned());
        };
        if c.failures > 0 {
            let first = c.first_error.as_deref().unwrap_or("?");
            let why = format!(
                "{} of {} cycles failed; first: {first}",
                c.failures,
                c.cycles + c.failures
            );
            self.problem(step, why);
        }
        if c.cycles == 0 {
            self.problem(step, "no connect/disconnect cycle completed".to_owned());
        }
    }

    /// Memory under load: every RSS sample taken, events delivered under the load, none
    /// lost, every broadcast acked, no connection lost.
    fn loaded(&mut self, step: &str) {
        let Some(l) = &self.results().loaded else {
            return self.problem(step, "no result".to_owned());
        };
        let taken = l.rss_samples.len();
        if taken != RSS_SAMPLES as usize {
            let why = format!("{taken} RSS samples under load, expected {RSS_SAMPLES}");
            self.problem(step, why);
        }
        if l.deliveries == 0 {
            self.problem(step, "no deliveries under load".to_owned());
        }
        self.lost(step, l.lost_connections);
        self.delivered(step, l.undelivered, 0);
        self.acked(step, l.unacked);
    }

    /// Connections the server closed.
    fn lost(&mut self, step: &str, lost: usize) {
        if lost > 0 {
            self.problem(step, format!("{lost} connections lost"));
        }
    }

    /// Broadcasts the server never acknowledged (it accepted them silently or dropped
    /// them: either way the publisher's closed loop stalled on them).
    fn acked(&mut self, step: &str, unacked: u64) {
        if unacked > 0 {
            self.problem(step, format!("{unacked} broadcasts never acked"));
        }
    }

    /// Events that never arrived; a write-off that then arrived is only a warning.
    fn delivered(&mut self, step: &str, undelivered: u64, written_off: u64) {
        if undelivered > 0 {
            self.problem(step, format!("{undelivered} deliveries never arrived"));
        } else if written_off > 0 {
            let why = format!(
                "{written_off} deliveries written off after a 1 s stall, \
                 but every event arrived later (a loaded machine?)"
            );
            self.add(Severity::Warn, step, why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procstat::Peak;
    use crate::scenarios::Params;
    use crate::scenarios::churn::ChurnResult;
    use crate::scenarios::cluster::{ClusterCpu, ClusterFanout, ClusterLatency, ClusterRooms};
    use crate::scenarios::fanout::FanoutResult;
    use crate::scenarios::idle::{IdlePoint, IdleResult};
    use crate::scenarios::loaded::{LoadedResult, PeakSource};
    use crate::scenarios::rooms::RoomsResult;
    use crate::scenarios::sse::TransportResult;
    use crate::scenarios::storm::StormResult;
    use crate::stats::Quantiles;

    /// Every result a clean smoke step leaves for `server`.
    fn clean(server: ServerKind, params: &Params) -> ServerReport {
        let points = params
            .idle_counts
            .iter()
            .map(|&connections| IdlePoint {
                connections,
                rss_bytes: 10 << 20,
                bytes_per_connection: 4096.0,
            })
            .collect();
        let fanout = |room_size: usize| FanoutResult {
            room_size,
            seconds: 1.0,
            broadcasts: 100,
            deliveries: 100 * room_size as u64,
            deliveries_per_sec: 100.0 * room_size as f64,
            server_cpu_s_per_m: 1.0,
            server_cores: 0.5,
            generator_cpu_s_per_m: 1.0,
            written_off: 0,
            undelivered: 0,
            unacked: 0,
            lost_connections: 0,
        };
        let latency = |room_size: usize, load: f64| LatencyResult {
            room_size,
            load: Some(load),
            rate: 50.0,
            server_cores: 0.2,
            generator_cores: 0.2,
            offered_deliveries_per_sec: 50.0 * room_size as f64,
            samples: 50 * room_size as u64,
            expected: 50 * room_size as u64,
            quantiles: Quantiles {
                p50_us: 100,
                p99_us: 1000,
                p999_us: 2000,
                max_us: 3000,
            },
            at_read: None,
            unstamped: 0,
        };
        let rooms = RoomsResult {
            rooms: params.rooms,
            members: params.members,
            connections: params.rooms,
            seconds: 1.0,
            emits_per_sec: 100.0,
            deliveries_per_sec: 500.0,
            server_cpu_s_per_m: 1.0,
            generator_cpu_s_per_m: 1.0,
            written_off: 0,
            undelivered: 0,
            unacked: 0,
            lost_connections: 0,
        };
        let shapes: Vec<Shape> = params
            .cluster_adapters
            .iter()
            .filter(|a| server.cluster_adapters().contains(a))
            .flat_map(|&adapter| {
                let nodes = params.cluster_nodes.iter();
                nodes.map(move |&nodes| Shape { adapter, nodes })
            })
            .collect();
        let cpu = ClusterCpu {
            nodes_s_per_m: vec![1.0],
            redis_s_per_m: 0.5,
            total_s_per_m: 1.5,
            redis_commands_per_read: Some(3.0),
        };
        let percentiles = |receivers: usize| Percentiles {
            receivers,
            samples: 50 * receivers as u64,
            expected: 50 * receivers as u64,
            quantiles: Quantiles {
                p50_us: 100,
                p99_us: 1000,
                p999_us: 2000,
                max_us: 3000,
            },
            at_read: None,
        };
        let sizes = &params.cluster_room_sizes;
        let each_shape_and_size = || {
            shapes
                .iter()
                .flat_map(|&shape| sizes.iter().map(move |&n| (shape, n)))
        };
        let cluster_fanout = each_shape_and_size()
            .map(|(shape, n)| ClusterFanout {
                shape,
                fanout: fanout(n),
                cpu: cpu.clone(),
                at_rate: None,
            })
            .collect();
        let cluster_latency = each_shape_and_size()
            .map(|(shape, n)| {
                let same = n.div_ceil(shape.nodes);
                ClusterLatency {
                    shape,
                    latency: LatencyResult {
                        load: None,
                        ..latency(n, 0.5)
                    },
                    same_node: percentiles(same),
                    other_nodes: (shape.nodes > 1).then(|| percentiles(n - same)),
                }
            })
            .collect();
        let cluster_rooms = shapes
            .iter()
            .map(|&shape| ClusterRooms {
                shape,
                rooms: rooms.clone(),
                cpu: cpu.clone(),
                at_rate: None,
            })
            .collect();
        let results = Results {
            idle: Some(IdleResult {
                baseline_rss_bytes: 5 << 20,
                points,
                lost_connections: 0,
            }),
            fanout: params.room_sizes.iter().map(|&n| fanout(n)).collect(),
            latency: params
                .room_sizes
                .iter()
                .flat_map(|&n| params.latency_loads.iter().map(move |&l| latency(n, l)))
                .collect(),
            rooms: Some(rooms),
            churn: Some(ChurnResult {
                seconds: 1.0,
                workers: params.churn_workers,
                cycles: 100,
                cycles_per_sec: 100.0,
                failures: 0,
                first_error: None,
                server_cpu_s_per_k: 1.0,
                rss_before_bytes: 5 << 20,
                rss_after_bytes: 5 << 20,
                source_addresses: 1,
            }),
            loaded: Some(LoadedResult {
                clients: params.loaded_clients,
                load: 0.5,
                peak_rate: 100.0,
                peak_source: PeakSource::FanoutStep,
                rate: 50.0,
                baseline_rss_bytes: 5 << 20,
                idle_rss_bytes: 6 << 20,
                idle_bytes_per_connection: 4096.0,
                rss_samples: vec![7 << 20; RSS_SAMPLES as usize],
                loaded_rss_bytes: 7 << 20,
                max_rss_bytes: 7 << 20,
                bytes_per_connection: 8192.0,
                seconds: 1.0,
                deliveries: 50 * params.loaded_clients as u64,
                deliveries_per_sec: 50.0 * params.loaded_clients as f64,
                offered_deliveries_per_sec: 50.0 * params.loaded_clients as f64,
                server_cores: 0.3,
                undelivered: 0,
                unacked: 0,
                lost_connections: 0,
            }),
            cluster_fanout,
            cluster_latency,
            cluster_rooms,
            cluster_storm: (server == ServerKind::Switchboard).then(|| storm(params)),
            sse: if server == ServerKind::SwitchboardServe {
                sse(params)
            } else {
                Vec::new()
            },
        };
        ServerReport {
            server,
            skipped: None,
            rounds: vec![results],
            failures: Vec::new(),
        }
    }

    /// A clean SSE scenario, both transports.
    fn sse(params: &Params) -> Vec<TransportResult> {
        let points = params
            .sse_idle_counts
            .iter()
            .map(|&connections| IdlePoint {
                connections,
                rss_bytes: 10 << 20,
                bytes_per_connection: 4096.0,
            })
            .collect::<Vec<_>>();
        [Transport::Sse, Transport::WebSocket]
            .map(|transport| TransportResult {
                transport,
                idle: Some(IdleResult {
                    baseline_rss_bytes: 5 << 20,
                    points: points.clone(),
                    lost_connections: 0,
                }),
                server_connections: params.sse_idle_counts.last().map(|&n| n as u64),
                fanout: params
                    .sse_room_sizes
                    .iter()
                    .map(|&room_size| FanoutResult {
                        room_size,
                        seconds: 1.0,
                        broadcasts: 100,
                        deliveries: 100 * room_size as u64,
                        deliveries_per_sec: 100.0 * room_size as f64,
                        server_cpu_s_per_m: 1.0,
                        server_cores: 0.5,
                        generator_cpu_s_per_m: 1.0,
                        written_off: 0,
                        undelivered: 0,
                        unacked: 0,
                        lost_connections: 0,
                    })
                    .collect(),
                latency: params
                    .sse_room_sizes
                    .iter()
                    .map(|&room_size| LatencyResult {
                        room_size,
                        load: None,
                        rate: params.sse_rate,
                        server_cores: 0.1,
                        generator_cores: 0.1,
                        offered_deliveries_per_sec: params.sse_rate * room_size as f64,
                        samples: 50 * room_size as u64,
                        expected: 50 * room_size as u64,
                        quantiles: Quantiles {
                            p50_us: 100,
                            p99_us: 1000,
                            p999_us: 2000,
                            max_us: 3000,
                        },
                        at_read: None,
                        unstamped: 0,
                    })
                    .collect(),
            })
            .to_vec()
    }

    /// A clean recovery storm.
    fn storm(params: &Params) -> StormResult {
        let peak = Peak {
            peak_cores: 0.8,
            cpu_seconds: 1.0,
            peak_rss_bytes: 20 << 20,
        };
        StormResult {
            clients: params.storm_clients,
            rooms: params.storm_rooms,
            rate: params.storm_rate,
            backoff_secs: params.storm_backoff_secs,
            recovered: params.storm_clients,
            not_recovered: 0,
            gave_up: 0,
            lost_before_kill: 0,
            failed_attempts: 0,
            all_recovered_secs: Some(0.5),
            recovered_p50_ms: 250.0,
            recovered_p99_ms: 500.0,
            connect_p50_ms: 3.0,
            connect_p99_ms: 20.0,
            connect_max_ms: 20.0,
            published: 300,
            published_after_kill: 200,
            acked: 300,
            unacked: 0,
            lost: 0,
            duplicated: 0,
            survivor: peak,
            survivor_rss_before_bytes: 18 << 20,
            redis: peak,
            redis_rss_before_bytes: 12 << 20,
            generator_cpu_seconds: 0.2,
            storm_secs: 1.5,
            first_error: None,
        }
    }

    /// A clean smoke run, with socketioxide skipped as in CI (not built).
    fn smoke_report() -> SuiteReport {
        let params = Params::smoke();
        let servers = ServerKind::ALL
            .iter()
            .map(|&kind| match kind {
                ServerKind::Socketioxide => ServerReport {
                    skipped: Some("socketioxide peer not built".to_owned()),
                    rounds: Vec::new(),
                    ..clean(kind, &params)
                },
                _ => clean(kind, &params),
            })
            .collect();
        SuiteReport::for_test("smoke", params, servers)
    }

    /// The entry of `kind`.
    fn entry(report: &mut SuiteReport, kind: ServerKind) -> &mut ServerReport {
        report
            .servers
            .iter_mut()
            .find(|s| s.server == kind)
            .expect("every server is in the report")
    }

    /// The one round of `kind`'s entry.
    fn round(report: &mut SuiteReport, kind: ServerKind) -> &mut Results {
        let rounds = &mut entry(report, kind).rounds;
        rounds.first_mut().expect("a clean entry has one round")
    }

    /// The verdict on `report` for the smoke's scenarios.
    fn verdict(report: &SuiteReport) -> Verdict {
        judge(report, &Scenario::SMOKE)
    }

    /// The one failing finding of `report`, as printed.
    fn only_failure(report: &SuiteReport) -> String {
        let verdict = verdict(report);
        let fails: Vec<String> = verdict
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Fail)
            .map(ToString::to_string)
            .collect();
        assert_eq!(fails.len(), 1, "{:#?}", verdict.findings);
        assert!(verdict.failed());
        fails.into_iter().next().unwrap_or_default()
    }

    /// A failure entry.
    fn failure(step: &str, kind: FailureKind, reason: &str) -> Failure {
        Failure {
            step: step.to_owned(),
            round: 1,
            kind,
            reason: reason.to_owned(),
        }
    }

    #[test]
    fn a_clean_run_with_socketioxide_skipped_passes() {
        let verdict = verdict(&smoke_report());
        assert!(!verdict.failed(), "{:#?}", verdict.findings);
        let skipped: Vec<String> = verdict.findings.iter().map(ToString::to_string).collect();
        assert_eq!(
            skipped,
            ["SKIP socketioxide -: could not be prepared: socketioxide peer not built"]
        );
        // idle, fanout-10, fanout-50, rooms, churn, loaded-50 on switchboard,
        // switchboard-serve, node and bare; cluster-redis-2n-fanout-10,
        // cluster-redis-streams-2n-fanout-10 on switchboard and node; the storm on
        // switchboard; sse-idle, sse-ws-idle, sse-fanout-10, sse-ws-fanout-10 on
        // switchboard-serve.
        assert_eq!(verdict.passed, 33);
    }

    #[test]
    fn sse_receivers_lost_miscounted_or_short_of_samples_fail() {
        let mut report = smoke_report();
        let serve = entry(&mut report, ServerKind::SwitchboardServe);
        serve.rounds[0].sse[0].server_connections = Some(19);
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard-serve sse-idle: /metrics counts 19 SSE connections, \
             the generator holds 20"
        );
        let mut report = smoke_report();
        let serve = entry(&mut report, ServerKind::SwitchboardServe);
        serve.rounds[0].sse[1].fanout[0].lost_connections = 2;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard-serve sse-ws-fanout-10: 2 connections lost"
        );
        let mut report = smoke_report();
        let serve = entry(&mut report, ServerKind::SwitchboardServe);
        serve.rounds[0].sse[0].latency[0].samples -= 1;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard-serve sse-fanout-10: latency at the fixed rate: 499 samples, \
             expected 500 (broadcasts × room size)"
        );
        let mut report = smoke_report();
        round(&mut report, ServerKind::SwitchboardServe)
            .sse
            .remove(0);
        let verdict = verdict(&report);
        let fails: Vec<String> = verdict.findings.iter().map(ToString::to_string).collect();
        assert!(
            fails.contains(&"FAIL switchboard-serve sse-idle: no result".to_owned()),
            "{fails:?}"
        );
    }

    #[test]
    fn a_problem_in_a_later_round_names_its_round() {
        let mut report = smoke_report();
        report.params.repeat = 2;
        for s in report.servers.iter_mut().filter(|s| s.skipped.is_none()) {
            let again = s.rounds[0].clone();
            s.rounds.push(again);
        }
        let clean = verdict(&report);
        assert!(!clean.failed(), "{:#?}", clean.findings);
        assert_eq!(clean.passed, 2 * 33);
        entry(&mut report, ServerKind::Switchboard).rounds[1].fanout[0].undelivered = 3;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard fanout-10 round 2: 3 deliveries never arrived"
        );
        let sb = entry(&mut report, ServerKind::Switchboard);
        sb.rounds[1].fanout[0].undelivered = 0;
        sb.rounds[1].churn = None;
        sb.failures.push(Failure {
            round: 2,
            ..failure("churn", FailureKind::Scenario, "timed out")
        });
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard churn round 2: failed: timed out"
        );
        // A round the runner never reached has no results.
        entry(&mut report, ServerKind::Switchboard).rounds.pop();
        let verdict = verdict(&report);
        let fails: Vec<String> = verdict.findings.iter().map(ToString::to_string).collect();
        assert!(
            fails.contains(&"FAIL switchboard idle round 2: no result".to_owned()),
            "{fails:?}"
        );
    }

    #[test]
    fn memory_under_load_missing_samples_lost_events_or_connections_fail() {
        fn loaded(report: &mut SuiteReport, kind: ServerKind) -> &mut LoadedResult {
            let loaded = round(report, kind).loaded.as_mut();
            loaded.expect("a clean entry has memory under load")
        }
        let mut report = smoke_report();
        loaded(&mut report, ServerKind::Switchboard)
            .rss_samples
            .pop();
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard loaded-50: 9 RSS samples under load, expected 10"
        );
        let mut report = smoke_report();
        loaded(&mut report, ServerKind::SwitchboardServe).lost_connections = 1;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard-serve loaded-50: 1 connections lost"
        );
        let mut report = smoke_report();
        loaded(&mut report, ServerKind::Switchboard).undelivered = 7;
        loaded(&mut report, ServerKind::Node).undelivered = 3;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard loaded-50: 7 deliveries never arrived"
        );
        let mut report = smoke_report();
        loaded(&mut report, ServerKind::Bare).deliveries = 0;
        assert_eq!(
            only_failure(&report),
            "FAIL bare loaded-50: no deliveries under load"
        );
        let mut report = smoke_report();
        round(&mut report, ServerKind::Switchboard).loaded = None;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard loaded-50: no result"
        );
    }

    #[test]
    fn switchboard_that_fails_to_start_fails() {
        let mut report = smoke_report();
        let sb = entry(&mut report, ServerKind::Switchboard);
        sb.rounds = vec![Results::default()];
        sb.failures = vec![failure(
            "idle",
            FailureKind::Start,
            "exited (exit status: 1)",
        )];
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard idle: failed to start: exited (exit status: 1)"
        );
    }

    #[test]
    fn switchboard_that_cannot_be_prepared_fails() {
        let mut report = smoke_report();
        entry(&mut report, ServerKind::Switchboard).skipped =
            Some("build of protocol_fixture failed".to_owned());
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard -: could not be prepared: build of protocol_fixture failed"
        );
    }

    #[test]
    fn switchboard_scenario_error_fails() {
        let mut report = smoke_report();
        let sb = entry(&mut report, ServerKind::Switchboard);
        sb.rounds[0].churn = None;
        sb.failures
            .push(failure("churn", FailureKind::Scenario, "timed out"));
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard churn: failed: timed out"
        );
    }

    #[test]
    fn switchboard_that_exits_after_a_clean_step_fails() {
        let mut report = smoke_report();
        entry(&mut report, ServerKind::Switchboard)
            .failures
            .push(failure(
                "rooms",
                FailureKind::Crash,
                "server exited (signal: 11)",
            ));
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard rooms: crashed: server exited (signal: 11)"
        );
    }

    #[test]
    fn switchboard_lost_connection_fails() {
        let mut report = smoke_report();
        round(&mut report, ServerKind::Switchboard).fanout[1].lost_connections = 2;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard fanout-50: 2 connections lost"
        );
    }

    #[test]
    fn switchboard_short_sample_count_fails() {
        let mut report = smoke_report();
        round(&mut report, ServerKind::Switchboard).latency[0].samples -= 1;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard fanout-10: latency at 50% of peak: 499 samples, \
             expected 500 (broadcasts × room size)"
        );
    }

    #[test]
    fn switchboard_missing_latency_result_fails() {
        let mut report = smoke_report();
        round(&mut report, ServerKind::Switchboard).latency.pop();
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard fanout-50: no latency result at 10% of peak"
        );
    }

    #[test]
    fn switchboard_undelivered_events_fail() {
        let mut report = smoke_report();
        let rooms = round(&mut report, ServerKind::Switchboard).rooms.as_mut();
        if let Some(r) = rooms {
            (r.undelivered, r.written_off) = (5, 5);
        }
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard rooms: 5 deliveries never arrived"
        );
    }

    #[test]
    fn switchboard_churn_failures_fail() {
        let mut report = smoke_report();
        if let Some(c) = round(&mut report, ServerKind::Switchboard).churn.as_mut() {
            (c.failures, c.first_error) = (1, Some("cycle timed out".to_owned()));
        }
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard churn: 1 of 101 cycles failed; first: cycle timed out"
        );
    }

    #[test]
    fn switchboard_idle_lost_connection_fails() {
        let mut report = smoke_report();
        if let Some(i) = round(&mut report, ServerKind::Switchboard).idle.as_mut() {
            i.lost_connections = 1;
        }
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard idle: 1 connections lost"
        );
    }

    #[test]
    fn switchboard_serve_that_cannot_be_prepared_fails() {
        let mut report = smoke_report();
        entry(&mut report, ServerKind::SwitchboardServe).skipped =
            Some("build of switchboard failed".to_owned());
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard-serve -: could not be prepared: build of switchboard failed"
        );
    }

    #[test]
    fn switchboard_serve_scenario_error_and_counters_fail() {
        let mut report = smoke_report();
        let serve = entry(&mut report, ServerKind::SwitchboardServe);
        serve.rounds[0].fanout.remove(0);
        serve.failures.push(failure(
            "fanout-10",
            FailureKind::Scenario,
            "join \"fanout\" refused: ack [{\"error\":\"too many rooms\"}]",
        ));
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard-serve fanout-10: failed: join \"fanout\" refused: \
             ack [{\"error\":\"too many rooms\"}]"
        );
        let mut report = smoke_report();
        let serve = entry(&mut report, ServerKind::SwitchboardServe);
        serve.rounds[0].latency[0].samples = 0;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard-serve fanout-10: latency at 50% of peak: 0 samples, \
             expected 500 (broadcasts × room size)"
        );
    }

    #[test]
    fn switchboard_unacked_broadcasts_fail_and_node_ones_warn() {
        let mut report = smoke_report();
        round(&mut report, ServerKind::Switchboard).fanout[0].unacked = 16;
        round(&mut report, ServerKind::Node).fanout[0].unacked = 4;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard fanout-10: 16 broadcasts never acked"
        );
        let warnings: Vec<String> = verdict(&report)
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Warn)
            .map(ToString::to_string)
            .collect();
        assert_eq!(warnings, ["WARN node fanout-10: 4 broadcasts never acked"]);
        let mut report = smoke_report();
        let serve = entry(&mut report, ServerKind::SwitchboardServe);
        if let Some(r) = serve.rounds[0].rooms.as_mut() {
            r.unacked = 1;
        }
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard-serve rooms: 1 broadcasts never acked"
        );
        let mut report = smoke_report();
        let serve = entry(&mut report, ServerKind::SwitchboardServe);
        serve.rounds[0].sse[0].fanout[0].unacked = 2;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard-serve sse-fanout-10: 2 broadcasts never acked"
        );
    }

    #[test]
    fn switchboard_serve_that_exits_during_a_step_fails() {
        let mut report = smoke_report();
        let serve = entry(&mut report, ServerKind::SwitchboardServe);
        serve.rounds[0].fanout.remove(1);
        serve.rounds[0].latency.retain(|l| l.room_size != 50);
        serve.failures.push(failure(
            "fanout-50",
            FailureKind::Crash,
            "server closed the session; server exited (signal: 9 (SIGKILL))",
        ));
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard-serve fanout-50: crashed: server closed the session; \
             server exited (signal: 9 (SIGKILL))"
        );
    }

    #[test]
    fn a_peer_that_cannot_run_here_is_skipped_and_the_run_passes() {
        let mut report = smoke_report();
        // What `prepare` reports without node on PATH; the runner then runs none of its
        // steps.
        entry(&mut report, ServerKind::Node).skipped =
            Some("node not usable: No such file or directory".to_owned());
        let verdict = verdict(&report);
        assert!(!verdict.failed(), "{:#?}", verdict.findings);
        let said: Vec<String> = verdict.findings.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "SKIP socketioxide -: could not be prepared: socketioxide peer not built",
                "SKIP node -: could not be prepared: node not usable: No such file or directory"
            ]
        );
    }

    #[test]
    fn bare_lost_connection_fails() {
        let mut report = smoke_report();
        round(&mut report, ServerKind::Bare).fanout[0].lost_connections = 1;
        assert_eq!(
            only_failure(&report),
            "FAIL bare fanout-10: 1 connections lost"
        );
    }

    #[test]
    fn a_write_off_whose_events_all_arrived_only_warns() {
        let mut report = smoke_report();
        round(&mut report, ServerKind::Switchboard).fanout[0].written_off = 30;
        let verdict = verdict(&report);
        assert!(!verdict.failed(), "{:#?}", verdict.findings);
        assert!(
            verdict
                .findings
                .iter()
                .any(|f| f.severity == Severity::Warn && f.step == "fanout-10")
        );
    }

    #[test]
    fn node_that_crashes_fails() {
        let mut report = smoke_report();
        let node = entry(&mut report, ServerKind::Node);
        node.rounds[0].rooms = None;
        node.failures.push(failure(
            "rooms",
            FailureKind::Crash,
            "server closed the session; server exited (exit status: 1)",
        ));
        assert_eq!(
            only_failure(&report),
            "FAIL node rooms: crashed: server closed the session; server exited (exit status: 1)"
        );
    }

    #[test]
    fn node_that_fails_to_start_after_being_prepared_fails() {
        let mut report = smoke_report();
        let node = entry(&mut report, ServerKind::Node);
        node.rounds[0].churn = None;
        node.failures.push(failure(
            "churn",
            FailureKind::Start,
            "stdout closed before a `listening on` line",
        ));
        assert!(verdict(&report).failed());
    }

    #[test]
    fn node_scenario_error_and_lost_connection_only_warn() {
        let mut report = smoke_report();
        let node = entry(&mut report, ServerKind::Node);
        node.rounds[0].fanout[0].lost_connections = 3;
        node.rounds[0].churn = None;
        node.failures
            .push(failure("churn", FailureKind::Scenario, "timed out"));
        let verdict = verdict(&report);
        assert!(!verdict.failed(), "{:#?}", verdict.findings);
        let warnings: Vec<String> = verdict
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Warn)
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            warnings,
            [
                "WARN node fanout-10: 3 connections lost",
                "WARN node churn: failed: timed out"
            ]
        );
    }

    #[test]
    fn switchboard_cluster_missing_samples_on_other_nodes_fail() {
        let mut report = smoke_report();
        let sb = entry(&mut report, ServerKind::Switchboard);
        if let Some(other) = sb.rounds[0].cluster_latency[1].other_nodes.as_mut() {
            other.samples -= 1;
        }
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard cluster-redis-streams-2n-fanout-10: latency, receivers on \
             other nodes: 249 samples, expected 250 (broadcasts × 5 receivers)"
        );
    }

    #[test]
    fn switchboard_cluster_undelivered_events_fail_and_node_ones_warn() {
        let mut report = smoke_report();
        round(&mut report, ServerKind::Switchboard).cluster_fanout[0]
            .fanout
            .undelivered = 7;
        round(&mut report, ServerKind::Node).cluster_fanout[0]
            .fanout
            .undelivered = 3;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard cluster-redis-2n-fanout-10: 7 deliveries never arrived"
        );
        let warnings: Vec<String> = verdict(&report)
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Warn)
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            warnings,
            ["WARN node cluster-redis-2n-fanout-10: 3 deliveries never arrived"]
        );
    }

    #[test]
    fn switchboard_storm_clients_not_recovered_or_events_lost_fail() {
        let mut report = smoke_report();
        let storm = round(&mut report, ServerKind::Switchboard)
            .cluster_storm
            .as_mut()
            .expect("a storm result");
        storm.recovered -= 1;
        storm.not_recovered = 1;
        storm.first_error = Some("answered with a new sid".to_owned());
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard cluster-redis-streams-2n-storm-50: 49 of 50 clients recovered \
             (1 not recovered, 0 gave up, 0 lost before the kill); first: answered with a new sid"
        );
        let mut report = smoke_report();
        let storm = round(&mut report, ServerKind::Switchboard)
            .cluster_storm
            .as_mut()
            .expect("a storm result");
        storm.duplicated = 2;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard cluster-redis-streams-2n-storm-50: 0 acked events lost, 2 \
             duplicated across the kill"
        );
    }

    #[test]
    fn a_missing_storm_result_fails() {
        let mut report = smoke_report();
        round(&mut report, ServerKind::Switchboard).cluster_storm = None;
        assert_eq!(
            only_failure(&report),
            "FAIL switchboard cluster-redis-streams-2n-storm-50: no recovery storm result"
        );
    }
}
