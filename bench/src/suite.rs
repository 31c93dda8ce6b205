//! The runner: for each server, prepare it, then run each scenario against a fresh
//! process, stop it, and collect results. A server that cannot be prepared is recorded as
//! skipped; one that fails to start, exits during a step, or a scenario that fails is
//! recorded as a failure of that kind with its reason; the run carries on with the others.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::Cluster;
use crate::fleet::Transport;
use crate::net::SourcePool;
use crate::peers::{Launch, Paths, Server, ServerKind, tail};
use crate::prepare::prepare;
use crate::procstat::Machine;
use crate::scenarios::churn::ChurnResult;
use crate::scenarios::cluster::{ClusterFanout, ClusterLatency, ClusterRooms, Shape};
use crate::scenarios::fanout::{FanoutResult, LatencyResult};
use crate::scenarios::idle::IdleResult;
use crate::scenarios::rooms::RoomsResult;
use crate::scenarios::sse::TransportResult;
use crate::scenarios::storm::StormResult;
use crate::scenarios::{self, Params, Scenario, Target};

/// Longest a single scenario step may run before it is abandoned (opening 15k
/// connections to a slow server included).
const STEP_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a step that failed waits to see its server exit before calling the failure
/// the scenario's: a server dying mid-step resets the generator's connections as it
/// goes, a moment before its exit can be collected, and that is a crash (which fails a
/// peer's smoke too), not a scenario error. Only failed steps wait, and a server that
/// is still running costs this once.
const EXIT_GRACE: Duration = Duration::from_secs(1);
/// Polling interval while waiting out [`EXIT_GRACE`].
const EXIT_POLL: Duration = Duration::from_millis(20);

/// What to run and where to write.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Servers, in order.
    pub(crate) servers: Vec<ServerKind>,
    /// Scenarios, in order.
    pub(crate) scenarios: Vec<Scenario>,
    /// Sizes and durations.
    pub(crate) params: Params,
    /// Host every server binds.
    pub(crate) host: String,
    /// Port every server binds (0: any free port).
    pub(crate) port: u16,
    /// Build protocol_fixture first.
    pub(crate) build_fixture: bool,
    /// A protocol_fixture binary to use instead of the workspace's.
    pub(crate) switchboard_bin: Option<PathBuf>,
    /// An older protocol_fixture binary, measured as `switchboard-baseline`.
    pub(crate) baseline_bin: Option<PathBuf>,
    /// What the baseline binary was built from, as given (`--baseline-rev`).
    pub(crate) baseline_rev: Option<String>,
    /// `--set KEY=VALUE` settings for `switchboard serve`, on top of its config.
    pub(crate) serve_set: Vec<String>,
    /// Build the `switchboard` binary first (for `switchboard serve`).
    pub(crate) build_serve: bool,
    /// Build a missing socketioxide peer first.
    pub(crate) build_socketioxide: bool,
    /// Output directory of this run.
    pub(crate) out_dir: PathBuf,
    /// `full`, `smoke` or the single scenario's name.
    pub(crate) mode: String,
}

/// One step that did not go as it should.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Failure {
    /// Step name (`idle`, `fanout-1000`, ...).
    pub(crate) step: String,
    /// What went wrong (results.json written before kinds existed read as `scenario`).
    #[serde(default)]
    pub(crate) kind: FailureKind,
    /// Why.
    pub(crate) reason: String,
}

/// What kind of failure a step had.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FailureKind {
    /// The server was prepared but did not get to `listening on` (could not be spawned,
    /// exited, or stayed silent); its later steps are not tried.
    Start,
    /// The server process exited while the step ran: the step may have a result or an
    /// error as well, the server is broken either way.
    Crash,
    /// The scenario returned an error or timed out while the server kept running.
    #[default]
    Scenario,
}

impl FailureKind {
    /// How reports and the smoke verdict say it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            FailureKind::Start => "failed to start",
            FailureKind::Crash => "crashed",
            FailureKind::Scenario => "failed",
        }
    }
}

/// Everything measured for one server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerReport {
    /// Which server.
    pub(crate) server: ServerKind,
    /// Why it could not be prepared (not built, no node, build failed), if it could not;
    /// then it ran nothing.
    pub(crate) skipped: Option<String>,
    /// Idle memory.
    pub(crate) idle: Option<IdleResult>,
    /// Fan-out, one per room size.
    pub(crate) fanout: Vec<FanoutResult>,
    /// Latency, one per room size.
    pub(crate) latency: Vec<LatencyResult>,
    /// Many rooms.
    pub(crate) rooms: Option<RoomsResult>,
    /// Churn.
    pub(crate) churn: Option<ChurnResult>,
    /// Cluster fan-out, one per (adapter, nodes, room size).
    #[serde(default)]
    pub(crate) cluster_fanout: Vec<ClusterFanout>,
    /// Cluster latency, one per (adapter, nodes, room size).
    #[serde(default)]
    pub(crate) cluster_latency: Vec<ClusterLatency>,
    /// Cluster many rooms, one per (adapter, nodes).
    #[serde(default)]
    pub(crate) cluster_rooms: Vec<ClusterRooms>,
    /// The recovery storm (Switchboard's fixture only).
    #[serde(default)]
    pub(crate) cluster_storm: Option<StormResult>,
    /// Server-Sent Events and, side by side, WebSocket (`switchboard serve` only): one
    /// entry per transport that ran a step.
    #[serde(default)]
    pub(crate) sse: Vec<TransportResult>,
    /// Steps that failed.
    pub(crate) failures: Vec<Failure>,
}

/// Versions of what was measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub(crate) struct Versions {
    /// `rustc --version`.
    pub(crate) rustc: String,
    /// `node --version`.
    pub(crate) node: String,
    /// Installed socket.io package.
    pub(crate) socket_io: String,
    /// socketioxide in the peer's Cargo.lock.
    pub(crate) socketioxide: String,
    /// Switchboard commit.
    pub(crate) switchboard: String,
    /// protocol_fixture binary measured, when given with `--switchboard-bin`.
    pub(crate) switchboard_binary: Option<String>,
    /// The baseline protocol_fixture binary measured (`--baseline-bin`), if any.
    #[serde(default)]
    pub(crate) baseline_binary: Option<String>,
    /// What the baseline binary was built from, as given with `--baseline-rev`.
    #[serde(default)]
    pub(crate) baseline_rev: Option<String>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SuiteReport {
    /// `full`, `smoke` or a scenario name.
    pub(crate) mode: String,
    /// UTC start time, `YYYY-MM-DD HH:MM:SS`.
    pub(crate) started_at: String,
    /// The machine.
    pub(crate) machine: Machine,
    /// Versions.
    pub(crate) versions: Versions,
    /// Parameters.
    pub(crate) params: Params,
    /// Per-server results.
    pub(crate) servers: Vec<ServerReport>,
}

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

/// Runs the plan scenario by scenario, each scenario on every server in turn, so that
/// load from other work on the shared machine spreads over all servers instead of
/// landing on whichever one happens to run last.
pub(crate) async fn run(
    plan: &Plan,
    paths: &Paths,
    started_at: String,
) -> anyhow::Result<SuiteReport> {
    std::fs::create_dir_all(plan.out_dir.join("raw"))?;
    let pool = Arc::new(SourcePool::default());
    let load_at_start = crate::procstat::load_average();
    let steps = steps(&plan.scenarios, &plan.params);
    let mut entries = Vec::new();
    // A server with no step in this plan (a cluster run of one that cannot cluster) is
    // not prepared and has no row.
    let servers = plan
        .servers
        .iter()
        .filter(|&&kind| steps.iter().any(|s| s.runs_on(kind)));
    for &kind in servers {
        eprintln!("== preparing {}", kind.name());
        let mut report = ServerReport {
            server: kind,
            skipped: None,
            idle: None,
            fanout: Vec::new(),
            latency: Vec::new(),
            rooms: None,
            churn: None,
            cluster_fanout: Vec::new(),
            cluster_latency: Vec::new(),
            cluster_rooms: Vec::new(),
            cluster_storm: None,
            sse: Vec::new(),
            failures: Vec::new(),
        };
        let launch = prepare(kind, paths, plan)
            .await
            .inspect_err(|reason| {
                eprintln!("  skipped: {reason}");
                report.skipped = Some(reason.clone());
            })
            .ok();
        entries.push((report, launch));
    }
    for step in steps {
        eprintln!("== {}", step.name());
        for (report, launch) in &mut entries {
            let Some(started) = launch else { continue };
            if !step.runs_on(report.server) {
                continue;
            }
            if !run_server_step(plan, started, &pool, report, step).await {
                *launch = None;
            }
        }
    }
    Ok(SuiteReport {
        mode: plan.mode.clone(),
        started_at,
        machine: Machine::describe(load_at_start),
        versions: crate::versions::Versions {
            switchboard_binary: plan
                .switchboard_bin
                .as_ref()
                .map(|p| p.display().to_string()),
            baseline_binary: plan.baseline_bin.as_ref().map(|p| p.display().to_string()),
            baseline_rev: plan.baseline_rev.clone(),
            ..crate::versions::collect(paths).await
        },
        params: plan.params.clone(),
        servers: entries.into_iter().map(|(report, _)| report).collect(),
    })
}

/// Runs one step against a fresh process of one server; `false` when the server could
/// not be started (its later steps are not tried). A server that exited by the end of the
/// step is recorded as crashed, whether or not the step produced a result.
async fn run_server_step(
    plan: &Plan,
    launch: &Launch,
    pool: &Arc<SourcePool>,
    report: &mut ServerReport,
    step: Step,
) -> bool {
    let name = report.server.name();
    eprintln!("  {name}");
    let log = plan
        .out_dir
        .join("raw")
        .join(format!("{name}-{}", step.name()));
    let mut running = match Running::start(plan, launch, step, &log).await {
        Ok(running) => running,
        Err(e) => {
            let reason = format!("{e:#}");
            eprintln!("  failed to start: {reason}");
            report.failures.push(Failure {
                step: step.name(),
                kind: FailureKind::Start,
                reason,
            });
            return false;
        }
    };
    let target = running.target(pool, report.server);
    let outcome =
        tokio::time::timeout(STEP_TIMEOUT, run_step(step, &target, &plan.params, report)).await;
    let outcome =
        outcome.unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after {STEP_TIMEOUT:?}")));
    let exited = match outcome {
        Ok(()) => running.exited(),
        Err(_) => running.exited_within(EXIT_GRACE).await,
    };
    let failure = match (outcome, exited) {
        (Ok(()), None) => None,
        (Ok(()), Some(exit)) => Some((FailureKind::Crash, format!("during the step, {exit}"))),
        (Err(e), Some(exit)) => Some((FailureKind::Crash, format!("{e:#}; {exit}"))),
        (Err(e), None) => Some((FailureKind::Scenario, format!("{e:#}"))),
    };
    if let Some((kind, reason)) = failure {
        eprintln!("  {} {}: {reason}", step.name(), kind.label());
        report.failures.push(Failure {
            step: step.name(),
            kind,
            reason,
        });
    }
    running.stop().await;
    true
}

/// What one step runs against: one server process, or a cluster of them on a Redis.
enum Running {
    /// A single server, with its log file.
    One(Server, PathBuf),
    /// A cluster.
    Cluster(Cluster),
}

impl Running {
    /// Starts what `step` needs; logs go to `<log>.log` (a cluster: `<log>-<process>.log`).
    async fn start(
        plan: &Plan,
        launch: &Launch,
        step: Step,
        log: &std::path::Path,
    ) -> anyhow::Result<Running> {
        if let Step::Cluster(shape, work) = step {
            let storm = matches!(work, ClusterWork::Storm(_));
            let mut launch = launch.clone();
            if storm {
                // Connection state recovery (the fixture's flag), 120 s window.
                launch.args.push("--recovery".to_owned());
            }
            let mut cluster =
                Cluster::start(&launch, shape.adapter, shape.nodes, &plan.host, log).await?;
            if storm {
                // The storm SIGKILLs the second node, where its clients are.
                cluster.expect_kill(1);
            }
            return Ok(Running::Cluster(cluster));
        }
        let log = log.with_extension("log");
        let server = Server::start(launch, &plan.host, plan.port, &log).await?;
        Ok(Running::One(server, log))
    }

    /// How scenarios reach and observe it.
    fn target(&self, pool: &Arc<SourcePool>, kind: ServerKind) -> Target {
        let (nodes, processes) = match self {
            Running::One(server, _) => (vec![server.addr], vec![server.pid]),
            Running::Cluster(cluster) => (cluster.addrs(), cluster.processes()),
        };
        Target {
            addr: nodes[0],
            pid: processes[0],
            nodes,
            processes,
            pool: pool.clone(),
            dialect: kind.dialect(),
        }
    }

    /// What exited (with its status and the end of its log); `None` while all runs.
    fn exited(&mut self) -> Option<String> {
        match self {
            Running::One(server, log) => server
                .exited()
                .map(|status| format!("server exited ({status}); stderr: {}", tail(log))),
            Running::Cluster(cluster) => cluster.exited(),
        }
    }

    /// [`Running::exited`], waiting up to `grace` for something to exit.
    async fn exited_within(&mut self, grace: Duration) -> Option<String> {
        let until = tokio::time::Instant::now() + grace;
        loop {
            let exited = self.exited();
            if exited.is_some() || tokio::time::Instant::now() >= until {
                return exited;
            }
            tokio::time::sleep(EXIT_POLL).await;
        }
    }

    /// Stops every process.
    async fn stop(self) {
        match self {
            Running::One(server, _) => server.stop().await,
            Running::Cluster(cluster) => cluster.stop().await,
        }
    }
}

/// Runs one step and stores its result.
async fn run_step(
    step: Step,
    target: &Target,
    params: &Params,
    report: &mut ServerReport,
) -> anyhow::Result<()> {
    match step {
        Step::Idle => report.idle = Some(scenarios::idle::run(target, params).await?),
        Step::Fanout(size, latency) => {
            let (fanout, latency) = scenarios::fanout::run(target, params, size, latency).await?;
            report.fanout.push(fanout);
            report.latency.extend(latency);
        }
        Step::Latency(size) => {
            let (_, latency) = scenarios::fanout::run(target, params, size, true).await?;
            report.latency.extend(latency);
        }
        Step::Rooms => report.rooms = Some(scenarios::rooms::run(target, params).await?),
        Step::Churn => report.churn = Some(scenarios::churn::run(target, params).await?),
        Step::Cluster(shape, ClusterWork::Room(size, fanout, latency)) => {
            let cluster = &scenarios::cluster::fanout;
            let (f, l) = cluster(target, params, shape, size, (fanout, latency)).await?;
            report.cluster_fanout.extend(f);
            report.cluster_latency.extend(l);
        }
        Step::Cluster(shape, ClusterWork::Rooms) => {
            let rooms = scenarios::cluster::rooms(target, params, shape).await?;
            report.cluster_rooms.push(rooms);
        }
        Step::Cluster(_, ClusterWork::Storm(_)) => {
            report.cluster_storm = Some(scenarios::storm::run(target, params).await?);
        }
        Step::Sse(transport, SseWork::Idle) => {
            let (idle, counted) = scenarios::sse::idle(target, params, transport).await?;
            let entry = sse_entry(report, transport);
            entry.idle = Some(idle);
            entry.server_connections = Some(counted);
        }
        Step::Sse(transport, SseWork::Fanout(size)) => {
            let (f, l) = scenarios::sse::fanout(target, params, transport, size).await?;
            let entry = sse_entry(report, transport);
            entry.fanout.push(f);
            entry.latency.push(l);
        }
    }
    Ok(())
}

/// The SSE scenario's entry of `transport` in `report`, added when missing.
fn sse_entry(report: &mut ServerReport, transport: Transport) -> &mut TransportResult {
    let at = match report.sse.iter().position(|t| t.transport == transport) {
        Some(at) => at,
        None => {
            report.sse.push(TransportResult::new(transport));
            report.sse.len() - 1
        }
    };
    &mut report.sse[at]
}
