//! The server under test: a `protocol_fixture` child process owned by one test, or an
//! external server named by an environment variable.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use crate::SAFETY_TIMEOUT;

/// Overrides the path of the fixture binary.
pub const FIXTURE_BIN_ENV: &str = "PROTOCOL_FIXTURE_BIN";

/// Set to anything to let the fixture's stderr (its logs) through to the terminal.
pub const FIXTURE_LOG_ENV: &str = "CONFORMANCE_FIXTURE_LOG";

/// The fixture behaviour a test needs; each maps to a `protocol_fixture` sub-command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Engine.IO only on `/engine.io/`, echoing every message.
    EngineIo,
    /// Socket.IO on `/socket.io/` as the official v5 suite expects.
    SocketIo,
    /// Socket.IO with rooms, broadcasts and default timings.
    Cluster,
}

impl Mode {
    /// The `protocol_fixture` sub-command.
    pub fn arg(self) -> &'static str {
        match self {
            Mode::EngineIo => "engineio",
            Mode::SocketIo => "socketio",
            Mode::Cluster => "cluster",
        }
    }

    /// The environment variable naming an external server for this mode.
    pub fn url_env(self) -> &'static str {
        match self {
            Mode::EngineIo => "CONFORMANCE_EIO_URL",
            Mode::SocketIo => "CONFORMANCE_SIO_URL",
            Mode::Cluster => "CONFORMANCE_CLUSTER_URL",
        }
    }

    /// The HTTP path the server answers on, with its trailing slash.
    pub fn path(self) -> &'static str {
        match self {
            Mode::EngineIo => "/engine.io/",
            Mode::SocketIo | Mode::Cluster => "/socket.io/",
        }
    }
}

/// A running server under test.
///
/// A spawned child is killed when the `Fixture` is dropped, so every test owns a fresh
/// server and a crash in one test cannot leak into another.
#[derive(Debug)]
pub struct Fixture {
    /// What the server does.
    mode: Mode,
    /// Where it listens.
    addr: SocketAddr,
    /// The child process, `None` when testing an external server.
    child: Option<Child>,
}

impl Fixture {
    /// Starts a server for `mode`, or uses the external one named by [`Mode::url_env`].
    ///
    /// # Panics
    ///
    /// When the binary is missing, does not start, or does not print `listening on ADDR`
    /// within [`SAFETY_TIMEOUT`]; when the external URL cannot be resolved.
    pub fn start(mode: Mode) -> Fixture {
        if let Ok(url) = std::env::var(mode.url_env()) {
            let addr = resolve_url(&url);
            return Fixture {
                mode,
                addr,
                child: None,
            };
        }
        let (child, addr) = spawn(mode);
        Fixture {
            mode,
            addr,
            child: Some(child),
        }
    }

    /// The mode this server was started in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Engine.IO path (`/engine.io/` or `/socket.io/`).
    pub fn path(&self) -> &'static str {
        self.mode.path()
    }

    /// `path?query`, the request target for an Engine.IO request.
    pub fn target(&self, query: &str) -> String {
        format!("{}?{query}", self.path())
    }

    /// `ws://ADDR/path?query`, the URL of an Engine.IO WebSocket request.
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}{}", self.addr, self.target(query))
    }

    /// Panics if a spawned server has exited, e.g. crashed on the previous input.
    pub fn assert_alive(&mut self) {
        if let Some(child) = self.child.as_mut() {
            match child.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) => panic!("protocol_fixture exited: {status}"),
                Err(e) => panic!("cannot query protocol_fixture: {e}"),
            }
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            // The child may already be gone; either way it must not outlive the test.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Resolves `http://HOST:PORT[/]` to a socket address.
fn resolve_url(url: &str) -> SocketAddr {
    let host_port = url
        .trim_start_matches("http://")
        .trim_start_matches("ws://")
        .trim_end_matches('/');
    host_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .unwrap_or_else(|| panic!("cannot resolve external server URL {url:?}"))
}

/// The fixture binary: `$PROTOCOL_FIXTURE_BIN`, else `<target>/debug/examples/protocol_fixture`.
pub fn fixture_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os(FIXTURE_BIN_ENV) {
        return PathBuf::from(bin);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        // A relative CARGO_TARGET_DIR is relative to where cargo ran: assume the root.
        Some(dir) => root.join(dir),
        None => root.join("target"),
    };
    target.join("debug/examples/protocol_fixture")
}

/// Spawns `protocol_fixture <mode> --port 0 --host 127.0.0.1` and reads its address.
fn spawn(mode: Mode) -> (Child, SocketAddr) {
    let bin = fixture_bin();
    assert!(
        bin.exists(),
        "{} does not exist: build it first: cargo build --workspace --examples",
        bin.display()
    );
    let stderr = if std::env::var_os(FIXTURE_LOG_ENV).is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let mut child = Command::new(&bin)
        .args([mode.arg(), "--port", "0", "--host", "127.0.0.1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let stdout = child.stdout.take().expect("stdout is piped");
    match read_listening_line(stdout) {
        Ok(addr) => (child, addr),
        Err(why) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} {}: {why}", bin.display(), mode.arg());
        }
    }
}

/// Reads the first stdout line, `listening on ADDR`, then keeps draining stdout on a thread
/// so that the child never blocks (or dies of SIGPIPE) writing to it.
fn read_listening_line(stdout: impl Read + Send + 'static) -> Result<SocketAddr, String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let first = reader.read_line(&mut line).map(|_| line);
        let _ = tx.send(first);
        let _ = std::io::copy(&mut reader, &mut std::io::sink());
    });
    let line = rx
        .recv_timeout(SAFETY_TIMEOUT)
        .map_err(|_| "did not print `listening on ADDR` in time".to_owned())?
        .map_err(|e| format!("cannot read stdout: {e}"))?;
    if line.is_empty() {
        return Err("exited without printing `listening on ADDR`".to_owned());
    }
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("unexpected first line {line:?}"))?;
    addr.parse()
        .map_err(|e| format!("bad address in {line:?}: {e}"))
}
