//! The servers under test: how each is found, prepared (npm ci, cargo build) and started,
//! and the guard that stops its whole process group, also when the runner is interrupted.
//!
//! Every server follows one contract: given `--host H --port P` (`switchboard serve`:
//! `--listen H:P`) it binds, prints exactly `listening on ADDR` on stdout, and exits on
//! SIGTERM.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::sio::Dialect;

/// Time a server gets to print its `listening on` line (Node needs about a second).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a server gets to exit after SIGTERM before its group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// One of the servers measured side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ServerKind {
    /// Switchboard's `protocol_fixture cluster`: the engine and in-memory adapter with
    /// the fixture's `join` and `broadcast` handlers (same profile as this binary).
    Switchboard,
    /// An older `protocol_fixture` binary (`--baseline-bin`), run exactly as
    /// [`ServerKind::Switchboard`] is, so one run compares HEAD with an older commit.
    /// Measured only when `--baseline-bin` is given; not a default of `--servers`.
    #[serde(rename = "switchboard-baseline")]
    SwitchboardBaseline,
    /// The shipped `switchboard serve` binary, namespace rules doing the same work (`join`
    /// and a `relay` event rule), in-memory adapter (same profile as this binary).
    #[serde(rename = "switchboard-serve")]
    SwitchboardServe,
    /// socketioxide, latest from crates.io, in `bench/peers/socketioxide`.
    Socketioxide,
    /// Node.js Socket.IO 4.8, default settings, in `bench/peers/node`.
    Node,
    /// The bare Rust WebSocket broadcaster: a reference point, not a limit of the hardware.
    Bare,
}

impl ServerKind {
    /// The servers of a run by default, in report order (`--servers`); the baseline
    /// joins them, after the fixture, when `--baseline-bin` is given.
    pub(crate) const ALL: [ServerKind; 5] = [
        ServerKind::Switchboard,
        ServerKind::SwitchboardServe,
        ServerKind::Socketioxide,
        ServerKind::Node,
        ServerKind::Bare,
    ];

    /// Name on the command line (`--servers`), in file names and in the smoke verdict.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ServerKind::Switchboard => "switchboard",
            ServerKind::SwitchboardBaseline => "switchboard-baseline",
            ServerKind::SwitchboardServe => "switchboard-serve",
            ServerKind::Socketioxide => "socketioxide",
            ServerKind::Node => "node",
            ServerKind::Bare => "bare",
        }
    }

    /// Name in the rows of tables and the legends of charts: says which Switchboard row
    /// is the fixture and which the shipped binary.
    pub(crate) fn label(self) -> &'static str {
        match self {
            ServerKind::Switchboard => "switchboard (fixture)",
            ServerKind::SwitchboardBaseline => "switchboard (baseline)",
            ServerKind::SwitchboardServe => "switchboard serve",
            other => other.name(),
        }
    }

    /// What runs behind a row of the report, in one line of markdown.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            ServerKind::Switchboard => {
                "`protocol_fixture cluster` (`crates/cluster/examples/protocol_fixture`): \
                 Switchboard's engine and in-memory adapter driven by a small Rust program \
                 whose `join` and `broadcast` (room, event, …args) handlers do the workload; \
                 the publisher is in no room. Not the shipped binary."
            }
            ServerKind::SwitchboardBaseline => {
                "an older build of `protocol_fixture cluster` (`--baseline-bin`), started with \
                 the same arguments and run through the same scenarios as the fixture row, \
                 so the two rows compare this commit with the older one, clustered too (a \
                 fixture older than its Redis adapters fails the cluster steps)."
            }
            ServerKind::SwitchboardServe => {
                "the shipped binary, `switchboard serve` with the config this run wrote \
                 (`switchboard-serve.toml` beside `results.json`): namespace rules do the \
                 same work, `join` (acked `{\"ok\": true}`) and a `relay` rule on `bench`, \
                 so the publisher joins each room it publishes to and emits `bench` (room, \
                 payload), which the room's other members receive unchanged; in-memory \
                 adapter, recovery off, no rate limit; Server-Sent Events on and one API \
                 key, for the SSE scenario."
            }
            ServerKind::Socketioxide => {
                "socketioxide (`bench/peers/socketioxide`), handlers like the fixture's."
            }
            ServerKind::Node => {
                "Node.js Socket.IO 4.8, default settings (`bench/peers/node`), handlers \
                 like the fixture's."
            }
            ServerKind::Bare => {
                "a bare Rust WebSocket broadcaster speaking just enough Engine.IO and \
                 Socket.IO (`bench/src/bare.rs`): a reference point, not a limit of the hardware."
            }
        }
    }

    /// How the server is asked to join and publish, and how it delivers.
    pub(crate) fn dialect(self) -> Dialect {
        match self {
            ServerKind::SwitchboardServe => Dialect::Rules,
            _ => Dialect::Handlers,
        }
    }
}

/// An adapter that clusters a server's nodes over Redis; every clustering server takes it
/// as `--adapter NAME --redis-url URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Adapter {
    /// Pub/sub, the wire format of Node's `@socket.io/redis-adapter`.
    Redis,
    /// A Redis stream, the wire format of Node's `@socket.io/redis-streams-adapter`.
    RedisStreams,
}

impl Adapter {
    /// Name on every server's command line, in step names and in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Adapter::Redis => "redis",
            Adapter::RedisStreams => "redis-streams",
        }
    }
}

impl ServerKind {
    /// The Redis adapters this server can cluster with (none: it runs no cluster step).
    /// socketioxide has a pub/sub adapter (`socketioxide-redis`, its own wire format) and
    /// no streams adapter; `switchboard serve` and the bare broadcaster are not measured
    /// clustered. The baseline clusters as the fixture does, so one run pairs a change to
    /// the adapters with the commit before it (a fixture older than clustering refuses
    /// `--adapter redis` and has no `--name`: its cluster steps fail, the run goes on).
    pub(crate) fn cluster_adapters(self) -> &'static [Adapter] {
        match self {
            ServerKind::Switchboard | ServerKind::SwitchboardBaseline | ServerKind::Node => {
                &[Adapter::Redis, Adapter::RedisStreams]
            }
            ServerKind::Socketioxide => &[Adapter::Redis],
            ServerKind::SwitchboardServe | ServerKind::Bare => &[],
        }
    }
}

/// Where the runner finds the workspace and its build outputs.
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    /// Workspace root.
    pub(crate) root: PathBuf,
    /// Directory of the running bench binary (`target/<profile>`).
    pub(crate) exe_dir: PathBuf,
}

impl Paths {
    /// Paths of this build.
    pub(crate) fn detect() -> anyhow::Result<Paths> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("bench has no parent")?;
        let exe = std::env::current_exe()?;
        let exe_dir = exe
            .parent()
            .context("binary has no directory")?
            .to_path_buf();
        Ok(Paths {
            root: root.to_path_buf(),
            exe_dir,
        })
    }

    /// `bench/peers/<name>`.
    pub(crate) fn peer_dir(&self, name: &str) -> PathBuf {
        self.root.join("bench").join("peers").join(name)
    }
}

/// A command that starts one server.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// Program to run.
    pub(crate) program: PathBuf,
    /// Arguments before the address flags.
    pub(crate) args: Vec<String>,
    /// How the address is passed.
    pub(crate) listen: Listen,
    /// Variables of this environment the server must not inherit (`SWITCHBOARD_*` would
    /// override `switchboard serve`'s generated config).
    pub(crate) env_remove: Vec<OsString>,
    /// Variables set for the server (a cluster node's worker threads).
    pub(crate) env: Vec<(OsString, OsString)>,
    /// Working directory.
    pub(crate) cwd: PathBuf,
}

impl Launch {
    /// The same server as node `name` of a cluster on `redis_url` with `adapter`, with
    /// `threads` worker threads when given (`TOKIO_WORKER_THREADS`, which the tokio
    /// servers' runtimes read; Node runs one thread whatever it says).
    pub(crate) fn clustered(
        &self,
        adapter: Adapter,
        redis_url: &str,
        name: &str,
        threads: Option<usize>,
    ) -> Launch {
        let mut launch = self.clone();
        if let Some(threads) = threads {
            launch
                .env
                .push(("TOKIO_WORKER_THREADS".into(), threads.to_string().into()));
        }
        for arg in [
            "--adapter",
            adapter.name(),
            "--redis-url",
            redis_url,
            "--name",
            name,
        ] {
            launch.args.push(arg.to_owned());
        }
        launch
    }
}

/// How a server is told where to listen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listen {
    /// `--host H --port P`: protocol_fixture, the peers, the bare broadcaster.
    HostPort,
    /// `--listen H:P` (`[H]:P` for IPv6): `switchboard serve`.
    Addr,
}

impl Listen {
    /// The flags that bind `host:port`.
    pub(crate) fn args(self, host: &str, port: u16) -> Vec<String> {
        match self {
            Listen::HostPort => vec![
                "--host".to_owned(),
                host.to_owned(),
                "--port".to_owned(),
                port.to_string(),
            ],
            Listen::Addr if host.contains(':') => {
                vec!["--listen".to_owned(), format!("[{host}]:{port}")]
            }
            Listen::Addr => vec!["--listen".to_owned(), format!("{host}:{port}")],
        }
    }
}

/// A running server; dropping it kills its process group.
#[derive(Debug)]
pub(crate) struct Server {
    /// Its process (also its process group id).
    child: Child,
    /// Process id, kept after the child is reaped.
    pub(crate) pid: u32,
    /// Address it listens on.
    pub(crate) addr: SocketAddr,
}

impl Server {
    /// Starts `launch` on `host:port` (0: any free port), logging stderr to `log`.
    pub(crate) async fn start(
        launch: &Launch,
        host: &str,
        port: u16,
        log: &Path,
    ) -> anyhow::Result<Server> {
        if port != 0 {
            std::net::TcpListener::bind((host, port))
                .with_context(|| format!("port {port} on {host} is in use"))?;
        }
        let mut command = Command::new(&launch.program);
        for name in &launch.env_remove {
            command.env_remove(name);
        }
        command.envs(launch.env.iter().map(|(k, v)| (k, v)));
        command
            .args(&launch.args)
            .args(launch.listen.args(host, port))
            .current_dir(&launch.cwd)
            .stdout(Stdio::piped());
        let mut server = Server::spawn(command, log)
            .with_context(|| format!("cannot run {}", launch.program.display()))?;
        let stdout = server.child.stdout.take().context("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        server.addr = server
            .ready("a `listening on` line", wait_listening(&mut lines), log)
            .await?;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(server)
    }

    /// Spawns `command` (its stdout as the caller set it) in its own process group, stdin
    /// closed, stderr to `log`; its address is unknown until the caller learns it.
    pub(crate) fn spawn(mut command: Command, log: &Path) -> anyhow::Result<Server> {
        let stderr =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().context("server exited at once")?;
        Ok(Server {
            child,
            pid,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        })
    }

    /// Waits for `ready` (`what` names it in errors), at most [`START_TIMEOUT`]; fails
    /// with the end of `log` when the process exits first or the time runs out.
    pub(crate) async fn ready<T>(
        &mut self,
        what: &str,
        ready: impl std::future::Future<Output = anyhow::Result<T>>,
        log: &Path,
    ) -> anyhow::Result<T> {
        let waited = tokio::time::timeout(START_TIMEOUT, async {
            tokio::select! {
                value = ready => value,
                status = self.child.wait() => bail!("exited ({}) before {what}", status?),
            }
        });
        match waited.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => bail!("{e:#}; stderr: {}", tail(log)),
            Err(_) => bail!("no {what} within {START_TIMEOUT:?}; stderr: {}", tail(log)),
        }
    }

    /// The exit status if the process has exited, `None` while it runs.
    pub(crate) fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGTERM to the group, then SIGKILL if it is still there after a grace period.
    pub(crate) async fn stop(mut self) {
        let _ = killpg(self.group(), Signal::SIGTERM);
        if tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            let _ = killpg(self.group(), Signal::SIGKILL);
            let _ = self.child.wait().await;
        }
        let _ = killpg(self.group(), Signal::SIGKILL);
    }

    /// The server's process group.
    fn group(&self) -> Pid {
        group_of(self.pid)
    }
}

/// The process group of a server started by [`Server::spawn`] (its own, led by it).
fn group_of(pid: u32) -> Pid {
    Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX))
}

/// SIGKILLs the process group of the server whose process is `pid` (a crash, for the
/// recovery storm); its [`Server`] guard still reaps it.
pub(crate) fn sigkill(pid: u32) -> anyhow::Result<()> {
    killpg(group_of(pid), Signal::SIGKILL).with_context(|| format!("SIGKILL to group {pid}"))
}

impl Drop for Server {
    fn drop(&mut self) {
        // Safety net for errors, panics and Ctrl-C: nothing outlives the runner.
        let _ = killpg(self.group(), Signal::SIGKILL);
    }
}

/// Reads stdout lines until `listening on ADDR`.
async fn wait_listening<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
) -> anyhow::Result<SocketAddr> {
    while let Some(line) = lines.next_line().await? {
        if let Some(addr) = line.trim().strip_prefix("listening on ") {
            return addr
                .parse()
                .with_context(|| format!("bad address in {line:?}"));
        }
    }
    bail!("stdout closed before a `listening on` line")
}

/// Last lines of a log file, on one line, for error messages.
pub(crate) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(4)..].join(" | ");
    if tail.is_empty() {
        "(empty)".to_owned()
    } else {
        tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_flags_follow_each_servers_command_line() {
        assert_eq!(
            Listen::HostPort.args("127.0.0.1", 0),
            ["--host", "127.0.0.1", "--port", "0"]
        );
        assert_eq!(
            Listen::Addr.args("127.0.0.1", 80),
            ["--listen", "127.0.0.1:80"]
        );
        assert_eq!(Listen::Addr.args("::1", 0), ["--listen", "[::1]:0"]);
    }

    #[test]
    fn only_switchboard_serve_speaks_the_rules_dialect() {
        for kind in ServerKind::ALL {
            let rules = kind == ServerKind::SwitchboardServe;
            assert_eq!(kind.dialect() == Dialect::Rules, rules, "{}", kind.name());
        }
        // Its command-line name and its name in results.json are the same.
        let json = serde_json::to_string(&ServerKind::SwitchboardServe).unwrap_or_default();
        assert_eq!(json, "\"switchboard-serve\"");
        let parsed = <ServerKind as clap::ValueEnum>::from_str("switchboard-serve", false);
        assert_eq!(parsed, Ok(ServerKind::SwitchboardServe));
    }

    #[test]
    fn the_baseline_is_named_alike_everywhere_and_not_a_default() {
        let kind = ServerKind::SwitchboardBaseline;
        let json = serde_json::to_string(&kind).unwrap_or_default();
        assert_eq!(json, format!("\"{}\"", kind.name()));
        let parsed = <ServerKind as clap::ValueEnum>::from_str(kind.name(), false);
        assert_eq!(parsed, Ok(kind));
        assert!(!ServerKind::ALL.contains(&kind));
        assert_eq!(kind.dialect(), Dialect::Handlers);
        assert_eq!(
            kind.cluster_adapters(),
            ServerKind::Switchboard.cluster_adapters(),
            "clustered as the fixture is"
        );
    }
}
