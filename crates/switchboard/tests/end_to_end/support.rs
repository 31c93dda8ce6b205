//! Running the binary: one-shot commands (`check-config`, a `serve` that must fail) and
//! a [`TestServer`] that serves on 127.0.0.1:0 until it is signalled or dropped.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::Context;

// The workspace's bound on any wait (only reached when something is broken; never a
// measurement), and its polling wait.
pub(crate) use switchboard_test_support::DEADLINE as SAFETY_TIMEOUT;
pub(crate) use switchboard_test_support::blocking::eventually;

/// A fixture under `testdata/`.
pub(crate) fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

/// The binary with none of the developer's `SWITCHBOARD_*` or `RUST_LOG` variables.
pub(crate) fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("SWITCHBOARD_") || text == "RUST_LOG" {
            cmd.env_remove(&name);
        }
    }
    cmd
}

/// What a finished command printed.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Exit code (`None` if killed by a signal).
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `cmd` to completion (killing it after [`SAFETY_TIMEOUT`]).
pub(crate) fn run(mut cmd: Command) -> anyhow::Result<Finished> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = read_all(child.stdout.take());
    let stderr = read_all(child.stderr.take());
    let status = wait_for_exit(&mut child)?;
    Ok(Finished {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Reads a pipe to its end (the child's exit) on a thread.
fn read_all(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `child` to exit; kills it after [`SAFETY_TIMEOUT`].
pub(crate) fn wait_for_exit(child: &mut Child) -> anyhow::Result<ExitStatus> {
    let pid = child.id();
    let exited = eventually(&format!("process {pid} to exit"), || Ok(child.try_wait()?));
    if exited.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    exited
}

type Captured = Arc<Mutex<Vec<u8>>>;

/// Copies a pipe into a buffer on a thread, so the child never blocks on a full pipe
/// and its output can be read while it runs.
fn drain(pipe: Option<impl Read + Send + 'static>) -> Captured {
    let captured = Captured::default();
    if let Some(mut pipe) = pipe {
        let sink = captured.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
    }
    captured
}

/// `switchboard serve` on 127.0.0.1:0; killed on drop if still running.
#[derive(Debug)]
pub(crate) struct TestServer {
    child: Child,
    addr: SocketAddr,
    /// The API's own listener, when `api.listen` was set.
    api_addr: Option<SocketAddr>,
    stderr: Captured,
}

/// Builds a [`TestServer`]: extra flags and environment on top of
/// `serve --listen 127.0.0.1:0`.
#[derive(Debug)]
pub(crate) struct Builder {
    cmd: Command,
}

impl TestServer {
    /// A server with the defaults.
    pub(crate) fn builder() -> Builder {
        let mut cmd = command();
        cmd.args(["serve", "--listen", "127.0.0.1:0"]);
        Builder { cmd }
    }

    /// A server with the defaults, started.
    pub(crate) fn start() -> anyhow::Result<Self> {
        Self::builder().start()
    }

    /// The address it listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API listener's address, when it has its own (`api listening on ADDR`).
    pub(crate) fn api_addr(&self) -> Option<SocketAddr> {
        self.api_addr
    }

    /// Its log output so far.
    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Sends `signal` (`TERM`, `INT`) to the process.
    pub(crate) fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill -s {signal} failed: {status}");
        Ok(())
    }

    /// Waits for the process to exit.
    pub(crate) fn wait(&mut self) -> anyhow::Result<ExitStatus> {
        wait_for_exit(&mut self.child)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Builder {
    /// Adds command-line arguments.
    pub(crate) fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.cmd.args(args);
        self
    }

    /// Sets an environment variable.
    pub(crate) fn env(mut self, name: &str, value: &str) -> Self {
        self.cmd.env(name, value);
        self
    }

    /// Spawns the binary and waits for its `listening on ADDR` line (after the
    /// `api listening on ADDR` line, if any).
    pub(crate) fn start(mut self) -> anyhow::Result<TestServer> {
        let mut child = self
            .cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = drain(child.stderr.take());
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("api listening on ") {
                    let _ = tx.send((true, addr.to_owned()));
                } else if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send((false, addr.to_owned()));
                }
            }
        });
        let mut server = TestServer {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            api_addr: None,
            stderr,
        };
        loop {
            let (api, addr) = rx.recv_timeout(SAFETY_TIMEOUT).map_err(|_| {
                anyhow::anyhow!("no `listening on` line; stderr:\n{}", server.stderr())
            })?;
            if !api {
                server.addr = addr.parse()?;
                return Ok(server);
            }
            server.api_addr = Some(addr.parse()?);
        }
    }
}
