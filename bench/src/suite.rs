//! The runner: for each server, prepare it, then run each scenario against a fresh
//! process, stop it, and collect results; with `--repeat N`, each scenario N rounds, every
//! server in turn within a round. A server that cannot be prepared is recorded as
//! skipped; one that fails to start, exits during a step, or a scenario that fails is
//! recorded as a failure of that kind with its reason; the run carries on with the others.
//! What a run records is in `results`, the steps and their order in `schedule`.

mod results;
mod schedule;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use results::{Failure, FailureKind, Results, ServerReport, SuiteReport, Versions};
pub(crate) use schedule::{At, ClusterWork, SseWork, Step, schedule};

use crate::cluster::Cluster;
use crate::fleet::Transport;
use crate::net::SourcePool;
use crate::peers::{Launch, Paths, Server, ServerKind, tail};
use crate::prepare::prepare;
use crate::procstat::Machine;
use crate::scenarios::sse::TransportResult;
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

/// Runs the plan scenario by scenario, each scenario on every server in turn, so that
/// load from other work on the shared machine spreads over all servers instead of
/// landing on whichever one happens to run last; with `--repeat`, round after round
/// ([`schedule`]).
pub(crate) async fn run(
    plan: &Plan,
    paths: &Paths,
    started_at: String,
) -> anyhow::Result<SuiteReport> {
    std::fs::create_dir_all(plan.out_dir.join("raw"))?;
    let pool = Arc::new(SourcePool::default());
    let load_at_start = crate::procstat::load_average();
    let schedule = schedule(&plan.scenarios, &plan.params);
    let rounds = plan.params.repeat.max(1);
    let mut entries = Vec::new();
    // A server with no step in this plan (a cluster run of one that cannot cluster) is
    // not prepared and has no row.
    let servers = plan
        .servers
        .iter()
        .filter(|&&kind| schedule.iter().any(|(_, s)| s.runs_on(kind)));
    for &kind in servers {
        eprintln!("== preparing {}", kind.name());
        let prepared = prepare(kind, paths, plan).await;
        if let Err(reason) = &prepared {
            eprintln!("  skipped: {reason}");
        }
        let report = ServerReport::new(kind, prepared.as_ref().err().cloned(), rounds);
        entries.push((report, prepared.ok()));
    }
    for (round, step) in schedule {
        let at = At {
            step,
            round,
            rounds,
        };
        eprintln!("== {}", at.label());
        for (report, launch) in &mut entries {
            let Some(started) = launch else { continue };
            if !step.runs_on(report.server) {
                continue;
            }
            if !run_server_step(plan, started, &pool, report, at).await {
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
    at: At,
) -> bool {
    let step = at.step;
    eprintln!("  {}", report.server.name());
    let log = plan.out_dir.join("raw").join(at.log_stem(report.server));
    let failure = |kind, reason| Failure {
        step: step.name(),
        round: at.round + 1,
        kind,
        reason,
    };
    let mut running = match Running::start(plan, launch, step, &log).await {
        Ok(running) => running,
        Err(e) => {
            let reason = format!("{e:#}");
            eprintln!("  failed to start: {reason}");
            report.failures.push(failure(FailureKind::Start, reason));
            return false;
        }
    };
    let target = running.target(pool, report.server, plan.params.latency_arrival);
    let Some(results) = report.rounds.get_mut(at.round) else {
        running.stop().await;
        return true;
    };
    let outcome =
        tokio::time::timeout(STEP_TIMEOUT, run_step(step, &target, &plan.params, results)).await;
    let outcome =
        outcome.unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after {STEP_TIMEOUT:?}")));
    let exited = match outcome {
        Ok(()) => running.exited(),
        Err(_) => running.exited_within(EXIT_GRACE).await,
    };
    let failure_seen = match (outcome, exited) {
        (Ok(()), None) => None,
        (Ok(()), Some(exit)) => Some((FailureKind::Crash, format!("during the step, {exit}"))),
        (Err(e), Some(exit)) => Some((FailureKind::Crash, format!("{e:#}; {exit}"))),
        (Err(e), None) => Some((FailureKind::Scenario, format!("{e:#}"))),
    };
    if let Some((kind, reason)) = failure_seen {
        eprintln!("  {} {}: {reason}", at.label(), kind.label());
        report.failures.push(failure(kind, reason));
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
            // The storm's nodes keep their own default: after the kill one runs alone.
            let threads = if storm {
                None
            } else {
                plan.params.node_threads(shape.nodes)
            };
            let (adapter, nodes) = (shape.adapter, shape.nodes);
            let mut cluster =
                Cluster::start(&launch, adapter, nodes, threads, &plan.host, log).await?;
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
    fn target(&self, pool: &Arc<SourcePool>, kind: ServerKind, arrival: bool) -> Target {
        let (nodes, processes, redis) = match self {
            Running::One(server, _) => (vec![server.addr], vec![server.pid], None),
            Running::Cluster(cluster) => (
                cluster.addrs(),
                cluster.processes(),
                Some(cluster.redis_addr()),
            ),
        };
        Target {
            addr: nodes[0],
            pid: processes[0],
            nodes,
            processes,
            redis,
            pool: pool.clone(),
            dialect: kind.dialect(),
            arrival,
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

/// Runs one step and stores its result in its round's results.
async fn run_step(
    step: Step,
    target: &Target,
    params: &Params,
    report: &mut Results,
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
        Step::Loaded(size) => {
            // This round's fan-out peak on a room of the same size, when it ran.
            let peak = report.fanout.iter().find(|f| f.room_size == size);
            let peak = peak.map(|f| f.broadcasts as f64 / f.seconds.max(f64::MIN_POSITIVE));
            report.loaded = Some(scenarios::loaded::run(target, params, peak).await?);
        }
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
fn sse_entry(report: &mut Results, transport: Transport) -> &mut TransportResult {
    let at = match report.sse.iter().position(|t| t.transport == transport) {
        Some(at) => at,
        None => {
            report.sse.push(TransportResult::new(transport));
            report.sse.len() - 1
        }
    };
    &mut report.sse[at]
}
