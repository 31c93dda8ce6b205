//! The runner: for each server, prepare it, then run each scenario against a fresh
//! process, stop it, and collect results. A server that cannot be prepared is recorded as
//! skipped; one that fails to start, exits during a step, or a scenario that fails is
//! recorded as a failure of that kind with its reason; the run carries on with the others.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::net::SourcePool;
use crate::peers::{Launch, Paths, Server, ServerKind, tail};
use crate::prepare::prepare;
use crate::procstat::Machine;
use crate::scenarios::churn::ChurnResult;
use crate::scenarios::fanout::{FanoutResult, LatencyResult};
use crate::scenarios::idle::IdleResult;
use crate::scenarios::rooms::RoomsResult;
use crate::scenarios::{self, Params, Scenario, Target};

/// Longest a single scenario step may run before it is abandoned (opening 15k
/// connections to a slow server included).
const STEP_TIMEOUT: Duration = Duration::from_secs(600);

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
}

impl Step {
    /// Name used in logs and failure lists.
    pub(crate) fn name(self) -> String {
        match self {
            Step::Idle => "idle".to_owned(),
            Step::Fanout(n, _) => format!("fanout-{n}"),
            Step::Latency(n) => format!("latency-{n}"),
            Step::Rooms => "rooms".to_owned(),
            Step::Churn => "churn".to_owned(),
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
    let mut entries = Vec::new();
    for &kind in &plan.servers {
        eprintln!("== preparing {}", kind.name());
        let mut report = ServerReport {
            server: kind,
            skipped: None,
            idle: None,
            fanout: Vec::new(),
            latency: Vec::new(),
            rooms: None,
            churn: None,
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
    for step in steps(&plan.scenarios, &plan.params) {
        eprintln!("== {}", step.name());
        for (report, launch) in &mut entries {
            let Some(started) = launch else { continue };
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
        .join(format!("{name}-{}.log", step.name()));
    let mut server = match Server::start(launch, &plan.host, plan.port, &log).await {
        Ok(server) => server,
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
    let target = Target {
        addr: server.addr,
        pid: server.pid,
        pool: pool.clone(),
        dialect: report.server.dialect(),
    };
    let outcome =
        tokio::time::timeout(STEP_TIMEOUT, run_step(step, &target, &plan.params, report)).await;
    let outcome =
        outcome.unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after {STEP_TIMEOUT:?}")));
    let exited = server.exited();
    let failure = match (outcome, exited) {
        (Ok(()), None) => None,
        (Ok(()), Some(status)) => Some((
            FailureKind::Crash,
            format!(
                "server exited ({status}) during the step; stderr: {}",
                tail(&log)
            ),
        )),
        (Err(e), Some(status)) => Some((
            FailureKind::Crash,
            format!("{e:#}; server exited ({status}); stderr: {}", tail(&log)),
        )),
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
    server.stop().await;
    true
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
    }
    Ok(())
}
