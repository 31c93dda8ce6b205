//! Command line: `all`, `smoke`, one subcommand per scenario, and `bare-server`; and
//! turning a subcommand into a run plan, a run, and its reports.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::peers::{Paths, ServerKind};
use crate::scenarios::{Params, Scenario};
use crate::suite::{Plan, SuiteReport};

/// Side-by-side benchmarks of Switchboard (protocol_fixture and the shipped `switchboard
/// serve`), Node.js Socket.IO, socketioxide and a bare Rust WebSocket broadcaster.
#[derive(Debug, Parser)]
#[command(version)]
pub(crate) struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Every scenario against every server; writes bench/results/<timestamp>/ and BENCHMARKS.md.
    All(RunArgs),
    /// A few seconds, tiny sizes, every server that can run here (what CI runs). Exits
    /// non-zero when Switchboard or the bare broadcaster fails in any way (start, crash,
    /// scenario error, lost connection, lost event, unacked broadcast, missing samples)
    /// or a peer crashes.
    Smoke(Common),
    /// Server RSS per idle connection.
    Idle(RunArgs),
    /// One room, publisher as fast as the server accepts: deliveries/s, CPU per delivery.
    Fanout(RunArgs),
    /// Publish→deliver latency at half of the fan-out peak (or --latency-rate).
    Latency(RunArgs),
    /// Many small rooms, targeted emits.
    Rooms(RunArgs),
    /// Sustained connects and disconnects.
    Churn(RunArgs),
    /// Memory under load: server RSS per connection of one room of --loaded-clients
    /// while it takes half the server's fan-out peak, beside its idle RSS per connection.
    Loaded(RunArgs),
    /// `switchboard serve` over Server-Sent Events and, side by side, over WebSocket:
    /// idle memory per listener, and fan-out to one room published through the HTTP
    /// API (as fast as it accepts, then a fixed rate with latency).
    Sse(RunArgs),
    /// Every cluster scenario: fan-out, latency, many rooms (1, 2, 3 nodes on one Redis
    /// the runner starts) and the recovery storm (2 nodes).
    Cluster(RunArgs),
    /// One room spread over the nodes of a cluster, publisher on the first node as fast
    /// as it accepts: deliveries/s, CPU per delivery of each node and of Redis.
    ClusterFanout(RunArgs),
    /// Fixed publish rate on a room spread over a cluster: latency on the publisher's
    /// node and on the others.
    ClusterLatency(RunArgs),
    /// Many small rooms spread over a cluster, targeted emits from the first node.
    ClusterRooms(RunArgs),
    /// Recovery storm: SIGKILL the node holding --storm-clients clients; time until all
    /// recover their sessions on the other node, events lost or duplicated, peak CPU and
    /// RSS of the survivor and Redis (Switchboard only).
    ClusterStorm(RunArgs),
    /// Rewrite results.md and the charts of a run from its results.json (and, with
    /// --benchmarks-md, BENCHMARKS.md), e.g. after the report format changed.
    Report {
        /// A run's results.json.
        results: PathBuf,
        /// Also rewrite BENCHMARKS.md at the workspace root from this run.
        #[arg(long)]
        benchmarks_md: bool,
        /// With --benchmarks-md: a hand-written markdown file placed after the targets
        /// (what the figures mean against an issue's targets, measured explanations).
        #[arg(long, requires = "benchmarks_md")]
        notes: Option<PathBuf>,
        /// With --benchmarks-md: an earlier run's results.json whose sections this run
        /// lacks (SSE, the cluster scenarios) are carried, named by their run
        /// (repeatable; the first that has a section gives it).
        #[arg(long, requires = "benchmarks_md")]
        earlier: Vec<PathBuf>,
        /// With --benchmarks-md: a hand-written markdown file placed after every table
        /// (one-off comparisons from separate runs, each naming its runs).
        #[arg(long, requires = "benchmarks_md")]
        appendix: Option<PathBuf>,
    },
    /// Run the bare broadcaster (started by the runner; prints `listening on ADDR`).
    BareServer {
        /// Address to bind.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port to bind (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

/// Options shared by every run.
#[derive(Debug, Clone, Args)]
pub(crate) struct Common {
    /// Servers to measure (comma-separated). `switchboard-baseline` needs
    /// --baseline-bin, which adds it by itself.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = ServerKind::ALL)]
    pub(crate) servers: Vec<ServerKind>,
    /// Address every server binds.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Port every server binds (0: a free port each time).
    #[arg(long, default_value_t = 0)]
    pub(crate) port: u16,
    /// Do not build the Rust servers (protocol_fixture, switchboard, socketioxide): use
    /// the binaries there are, and skip those that are missing.
    #[arg(long)]
    pub(crate) no_build: bool,
    /// protocol_fixture binary to measure as `switchboard` (default: build and use the one
    /// of this workspace, in the same profile as this binary). `switchboard-serve` is
    /// always this workspace's binary.
    #[arg(long)]
    pub(crate) switchboard_bin: Option<PathBuf>,
    /// An older protocol_fixture binary to measure beside this workspace's, as the row
    /// `switchboard (baseline)` (server `switchboard-baseline`): started with the same
    /// arguments and run through the same scenarios as `switchboard`, cluster steps
    /// included, so one run compares HEAD with an older commit. Its path is written into
    /// the results.
    #[arg(long, value_name = "PATH")]
    pub(crate) baseline_bin: Option<PathBuf>,
    /// What the --baseline-bin binary was built from (a commit, a tag: any label),
    /// written into the results beside its path.
    #[arg(long, value_name = "REV", requires = "baseline_bin")]
    pub(crate) baseline_rev: Option<String>,
    /// A setting for `switchboard-serve` on top of the benchmark's config, as
    /// `switchboard serve --set KEY=VALUE` takes it (repeatable; written into the run's
    /// results), e.g. `--serve-set diagnosis.breadcrumbs=0`. `SWITCHBOARD_*` variables
    /// of this environment never reach the server.
    #[arg(long = "serve-set", value_name = "KEY=VALUE")]
    pub(crate) serve_set: Vec<String>,
    /// Output directory (default: bench/results/<timestamp>/, or target/bench-smoke/ for smoke).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

/// Options of a full or single-scenario run.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    /// Shared options.
    #[command(flatten)]
    pub(crate) common: Common,
    /// Sizes and durations.
    #[command(flatten)]
    pub(crate) params: Params,
    /// Do not rewrite BENCHMARKS.md (only `all` writes it).
    #[arg(long)]
    pub(crate) no_benchmarks_md: bool,
    /// `all` only: run just these scenarios, in the suite's order (comma-separated, e.g.
    /// `idle,fanout,latency,rooms,churn,loaded`). BENCHMARKS.md is then not rewritten:
    /// it would lose the sections of the scenarios left out.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub(crate) scenarios: Vec<Scenario>,
}

/// Builds the plan of a subcommand, runs it, writes the reports, picks the exit code.
pub(crate) async fn execute(command: Command) -> anyhow::Result<ExitCode> {
    let paths = Paths::detect()?;
    let (stamp, started_at) = crate::versions::utc_now();
    let (mode, scenarios, args, params) = match command {
        Command::All(a) => {
            let scenarios = if a.scenarios.is_empty() {
                Scenario::ALL.to_vec()
            } else {
                Scenario::ALL
                    .into_iter()
                    .filter(|s| a.scenarios.contains(s))
                    .collect()
            };
            ("full", scenarios, a.common.clone(), Some(a))
        }
        Command::Smoke(c) => ("smoke", Scenario::SMOKE.to_vec(), c, None),
        Command::Idle(a) => ("idle", vec![Scenario::Idle], a.common.clone(), Some(a)),
        Command::Fanout(a) => ("fanout", vec![Scenario::Fanout], a.common.clone(), Some(a)),
        Command::Latency(a) => (
            "latency",
            vec![Scenario::Latency],
            a.common.clone(),
            Some(a),
        ),
        Command::Rooms(a) => ("rooms", vec![Scenario::Rooms], a.common.clone(), Some(a)),
        Command::Churn(a) => ("churn", vec![Scenario::Churn], a.common.clone(), Some(a)),
        Command::Loaded(a) => ("loaded", vec![Scenario::Loaded], a.common.clone(), Some(a)),
        Command::Sse(a) => ("sse", vec![Scenario::Sse], a.common.clone(), Some(a)),
        Command::Cluster(a) => (
            "cluster",
            Scenario::CLUSTER.to_vec(),
            a.common.clone(),
            Some(a),
        ),
        Command::ClusterFanout(a) => (
            "cluster-fanout",
            vec![Scenario::ClusterFanout],
            a.common.clone(),
            Some(a),
        ),
        Command::ClusterLatency(a) => (
            "cluster-latency",
            vec![Scenario::ClusterLatency],
            a.common.clone(),
            Some(a),
        ),
        Command::ClusterRooms(a) => (
            "cluster-rooms",
            vec![Scenario::ClusterRooms],
            a.common.clone(),
            Some(a),
        ),
        Command::ClusterStorm(a) => (
            "cluster-storm",
            vec![Scenario::ClusterStorm],
            a.common.clone(),
            Some(a),
        ),
        Command::Report {
            results,
            benchmarks_md,
            notes,
            earlier,
            appendix,
        } => {
            let extras = benchmarks_md
                .then(|| extras(&paths, notes.as_deref(), &earlier, appendix.as_deref()))
                .transpose()?;
            return rewrite(&paths, &results, extras.as_ref());
        }
        Command::BareServer { .. } => anyhow::bail!("bare-server is not a benchmark run"),
    };
    let out_dir = args.out.clone().unwrap_or_else(|| match mode {
        "smoke" => paths
            .exe_dir
            .parent()
            .unwrap_or(&paths.exe_dir)
            .join("bench-smoke")
            .join(&stamp),
        "full" => paths.root.join("bench/results").join(&stamp),
        one => paths
            .root
            .join("bench/results")
            .join(format!("{stamp}-{one}")),
    });
    let write_md = mode == "full"
        && !params
            .as_ref()
            .is_some_and(|a| a.no_benchmarks_md || !a.scenarios.is_empty());
    let plan = Plan {
        servers: with_baseline(&args.servers, args.baseline_bin.is_some()),
        scenarios,
        params: params.map_or_else(Params::smoke, |a| a.params),
        host: args.host.clone(),
        build_fixture: !args.no_build && args.switchboard_bin.is_none(),
        switchboard_bin: args.switchboard_bin.clone(),
        baseline_bin: args.baseline_bin.clone(),
        baseline_rev: args.baseline_rev.clone(),
        serve_set: args.serve_set.clone(),
        build_serve: !args.no_build,
        build_socketioxide: !args.no_build,
        port: args.port,
        out_dir: out_dir.clone(),
        mode: mode.to_owned(),
    };
    let plan = if mode == "smoke" {
        smoke_plan(plan)
    } else {
        plan
    };
    let report = crate::suite::run(&plan, &paths, started_at).await?;
    let md = crate::report::write(&report, &out_dir)?;
    println!("{md}");
    eprintln!("results written to {}", out_dir.display());
    if write_md {
        let extras = crate::report::Extras::default();
        crate::report::write_benchmarks_md(&report, &paths.root, &out_dir, &extras)?;
        eprintln!("BENCHMARKS.md updated");
    }
    Ok(if mode == "smoke" {
        crate::verdict::judge(&report, &plan.scenarios).print()
    } else {
        ExitCode::SUCCESS
    })
}

/// The servers to run: `servers`, with the baseline right after the fixture (else
/// first) when a baseline binary is given and the list lacks it, so the two rows sit
/// side by side in every table.
fn with_baseline(servers: &[ServerKind], baseline: bool) -> Vec<ServerKind> {
    let mut servers = servers.to_vec();
    if baseline && !servers.contains(&ServerKind::SwitchboardBaseline) {
        let at = servers
            .iter()
            .position(|&s| s == ServerKind::Switchboard)
            .map_or(0, |i| i + 1);
        servers.insert(at, ServerKind::SwitchboardBaseline);
    }
    servers
}

/// Reads `report --notes`, `--earlier` and `--appendix`.
fn extras(
    paths: &Paths,
    notes: Option<&std::path::Path>,
    earlier: &[PathBuf],
    appendix: Option<&std::path::Path>,
) -> anyhow::Result<crate::report::Extras> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))
    };
    let notes = notes.map(read).transpose()?;
    let appendix = appendix.map(read).transpose()?;
    let mut runs = Vec::new();
    for path in earlier {
        let report = read_report(path)?;
        let dir = std::path::absolute(path.parent().unwrap_or(std::path::Path::new(".")))?;
        let rel = dir.strip_prefix(&paths.root).unwrap_or(&dir);
        runs.push((rel.to_string_lossy().into_owned(), report));
    }
    Ok(crate::report::Extras {
        notes,
        earlier: runs,
        appendix,
    })
}

/// A run's results.json.
fn read_report(path: &std::path::Path) -> anyhow::Result<SuiteReport> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
}

/// Rewrites the reports of an earlier run from its results.json (and BENCHMARKS.md
/// from it, with `extras`, when given).
fn rewrite(
    paths: &Paths,
    results: &std::path::Path,
    extras: Option<&crate::report::Extras>,
) -> anyhow::Result<ExitCode> {
    let report = read_report(results)?;
    // `results.json` alone has the parent "", which `absolute` refuses.
    let dir = results
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let dir = std::path::absolute(dir)?;
    crate::report::write_reports(&report, &dir)?;
    if let Some(extras) = extras {
        crate::report::write_benchmarks_md(&report, &paths.root, &dir, extras)?;
    }
    eprintln!("reports rewritten in {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

/// Smoke never builds the socketioxide peer (CI does not build it): it is reported as
/// skipped when its binary is missing. protocol_fixture and the `switchboard` binary are
/// part of the workspace.
fn smoke_plan(mut plan: Plan) -> Plan {
    plan.params = Params::smoke();
    plan.build_socketioxide = false;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `report` on a committed run written before `rooms_rate` existed: results.md is
    /// written again, and results.json (the record of the run) stays byte for byte.
    #[test]
    fn report_rewrites_the_markdown_and_leaves_results_json_as_it_was() {
        let paths = Paths::detect().unwrap();
        let committed = paths
            .root
            .join("bench/results/20261205-cluster-repeat/results.json");
        let text = std::fs::read_to_string(&committed).unwrap();
        assert!(
            !text.contains("rooms_rate"),
            "the fixture predates the field"
        );
        let dir = std::env::temp_dir().join(format!("sb-rewrite-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("results.json");
        std::fs::write(&json, &text).unwrap();
        rewrite(&paths, &json, None).unwrap();
        let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
        assert!(md.contains("## Cluster many rooms"));
        assert_eq!(std::fs::read_to_string(&json).unwrap(), text);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_baseline_binary_adds_its_row_after_the_fixture() {
        let servers = with_baseline(&ServerKind::ALL, true);
        assert_eq!(
            servers[..2],
            [ServerKind::Switchboard, ServerKind::SwitchboardBaseline]
        );
        assert_eq!(servers.len(), ServerKind::ALL.len() + 1);
        assert_eq!(with_baseline(&ServerKind::ALL, false), ServerKind::ALL);
        let some = [ServerKind::Node, ServerKind::Bare];
        assert_eq!(
            with_baseline(&some, true)[0],
            ServerKind::SwitchboardBaseline
        );
        let listed = [ServerKind::SwitchboardBaseline, ServerKind::Switchboard];
        assert_eq!(with_baseline(&listed, true), listed);
    }

    #[test]
    fn baseline_options_parse() {
        let cli = Cli::try_parse_from([
            "bench",
            "fanout",
            "--baseline-bin",
            "/old/protocol_fixture",
            "--baseline-rev",
            "a480d54",
        ]);
        let Ok(Cli {
            command: Command::Fanout(args),
        }) = cli
        else {
            panic!("did not parse: {cli:?}");
        };
        assert_eq!(
            args.common.baseline_bin,
            Some(PathBuf::from("/old/protocol_fixture"))
        );
        assert_eq!(args.common.baseline_rev.as_deref(), Some("a480d54"));
        // A label without a binary is a mistake.
        assert!(Cli::try_parse_from(["bench", "fanout", "--baseline-rev", "x"]).is_err());
    }
}
