//! The servers under test: how each is found, prepared (npm ci, cargo build) and started,
//! and the guard that stops its whole process group, also when the runner is interrupted.
//!
//! Every server follows one contract: given `--host H --port P` it binds, prints exactly
//! `listening on ADDR` on stdout, and exits on SIGTERM.

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

/// Time a server gets to print its `listening on` line (Node needs about a second).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a server gets to exit after SIGTERM before its group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// One of the four servers measured side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ServerKind {
    /// Switchboard's `protocol_fixture cluster` (release build).
    Switchboard,
    /// socketioxide, latest from crates.io, in `bench/peers/socketioxide`.
    Socketioxide,
    /// Node.js Socket.IO 4.8, default settings, in `bench/peers/node`.
    Node,
    /// The bare Rust WebSocket broadcaster: the practical limit of the hardware.
    Bare,
}

impl ServerKind {
    /// All servers, in report order.
    pub(crate) const ALL: [ServerKind; 4] = [
        ServerKind::Switchboard,
        ServerKind::Socketioxide,
        ServerKind::Node,
        ServerKind::Bare,
    ];

    /// Name used in reports and file names.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ServerKind::Switchboard => "switchboard",
            ServerKind::Socketioxide => "socketioxide",
            ServerKind::Node => "node",
            ServerKind::Bare => "bare",
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
    /// Arguments before `--host`/`--port`.
    pub(crate) args: Vec<String>,
    /// Working directory.
    pub(crate) cwd: PathBuf,
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
        let stderr =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let mut child = Command::new(&launch.program)
            .args(&launch.args)
            .args(["--host", host, "--port", &port.to_string()])
            .current_dir(&launch.cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot run {}", launch.program.display()))?;
        let pid = child.id().context("server exited at once")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut server = Server {
            child,
            pid,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let mut lines = BufReader::new(stdout).lines();
        let waited = tokio::time::timeout(START_TIMEOUT, async {
            tokio::select! {
                line = wait_listening(&mut lines) => line,
                status = server.child.wait() => bail!("exited ({}) before listening", status?),
            }
        });
        server.addr = match waited.await {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => bail!("{e:#}; stderr: {}", tail(log)),
            Err(_) => bail!(
                "no `listening on` line within {START_TIMEOUT:?}; stderr: {}",
                tail(log)
            ),
        };
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(server)
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
        Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX))
    }
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
