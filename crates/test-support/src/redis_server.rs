//! A real `redis-server` per test: on a free port of 127.0.0.1 (plain or TLS) and on a
//! unix socket, in its own temporary directory; killed, restarted on the same port,
//! paused (`SIGSTOP`) and resumed (`SIGCONT`) by the test. Without a `redis-server`
//! the test fails and says how to install one: tests that need Redis never pass by
//! skipping.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use tempfile::TempDir;

use crate::blocking::eventually;

/// What a machine without `redis-server` is told.
const INSTALL_HINT: &str = "Tests that need Redis run a real one and fail without it: \
    run `scripts/test` (it installs redis-server), `apt-get install -y redis-server`, \
    or set REDIS_SERVER_BIN.";

/// Where the Debian package installs the server when `/usr/bin` is not on `PATH`.
const DEBIAN_REDIS_SERVER: &str = "/usr/bin/redis-server";

/// The unix socket's name in the server's directory: short, since a socket path may
/// not exceed about 100 bytes.
const SOCKET: &str = "redis.sock";

/// How many free ports a start tries: another process may bind the port between the
/// OS naming it and Redis binding it.
const START_ATTEMPTS: usize = 3;

/// How many times a restart tries its port, [`RESTART_PAUSE`] apart, while the killed
/// server's listener goes away.
const RESTART_ATTEMPTS: usize = 20;

/// See [`RESTART_ATTEMPTS`].
const RESTART_PAUSE: Duration = Duration::from_millis(100);

/// How long one readiness probe waits for an answer before counting it as none.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A `redis-server` process owned by one test; killed and its directory removed on
/// drop. The append-only file is on, so a restart keeps streams and sessions.
#[derive(Debug)]
pub struct RedisServer {
    /// How it is started, the same on every restart.
    launch: Launch,
    /// `None` once killed.
    child: Option<Child>,
    /// Its data, its socket and the test's files; removed on drop, after the process
    /// is killed (fields drop after [`Drop::drop`] ran).
    dir: TempDir,
}

/// How to start a [`RedisServer`]: TLS, extra arguments, files in its directory.
#[derive(Debug)]
pub struct RedisBuilder {
    dir: TempDir,
    tls: bool,
    args: Vec<OsString>,
}

/// What `redis-server` is started with.
#[derive(Debug, Clone)]
struct Launch {
    bin: PathBuf,
    port: u16,
    /// The port is `--tls-port` and there is no plain TCP listener.
    tls: bool,
    dir: PathBuf,
    /// The test's own, after the harness's (a later option wins in Redis).
    args: Vec<OsString>,
}

impl RedisServer {
    /// Starts a server on a free port and returns once it answers.
    pub async fn start() -> RedisServer {
        RedisServer::builder().start().await
    }

    /// [`RedisServer::start`] for a test without a runtime.
    pub fn start_blocking() -> RedisServer {
        RedisServer::builder().start_blocking()
    }

    /// A server to configure before it starts; its directory exists already.
    pub fn builder() -> RedisBuilder {
        let dir = tempfile::Builder::new()
            .prefix("switchboard-redis-")
            .tempdir()
            .expect("a temporary directory for redis-server");
        RedisBuilder {
            dir,
            tls: false,
            args: Vec::new(),
        }
    }

    /// `redis://127.0.0.1:<port>` (`rediss://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.launch.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.launch.port)
    }

    /// `redis+unix://<dir>/redis.sock`: the same server, no port involved.
    pub fn unix_url(&self) -> String {
        format!("redis+unix://{}", self.dir.path().join(SOCKET).display())
    }

    /// The TCP port (the TLS one with TLS).
    pub fn port(&self) -> u16 {
        self.launch.port
    }

    /// Its directory: data, socket, and whatever the test put there.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server at once (`SIGKILL`), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the killed server again on the same port, with the same data; retries
    /// while the old listener is still going away.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        let launch = self.launch.clone();
        self.child = Some(off_the_runtime(move || launch.again()).await);
    }

    /// [`RedisServer::restart`] for a test without a runtime.
    pub fn restart_blocking(&mut self) {
        assert!(self.child.is_none(), "redis-server is still running");
        self.child = Some(self.launch.again());
    }

    /// Freezes the server (`SIGSTOP`): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let child = self.child.as_ref().expect("redis-server is running");
        let status = Command::new("kill")
            .arg(which)
            .arg(child.id().to_string())
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill {which} failed");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A paused server would not die of anything but SIGKILL, which `kill`
            // sends; waking it first lets it go the same way either way.
            self.resume();
        }
        self.kill();
    }
}

impl RedisBuilder {
    /// Its directory, to put files in before the start (certificates, say); the
    /// server runs in it, so relative paths in arguments point there.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Serves TLS only on its port (`--tls-port`, `--port 0`); the test passes the
    /// certificate options with [`RedisBuilder::args`].
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Adds `redis-server` options, after the harness's own.
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Starts the server and returns once it answers.
    pub async fn start(self) -> RedisServer {
        off_the_runtime(move || self.start_blocking()).await
    }

    /// [`RedisBuilder::start`] for a test without a runtime.
    pub fn start_blocking(self) -> RedisServer {
        let mut launch = Launch {
            bin: redis_server_bin(),
            port: 0,
            tls: self.tls,
            dir: self.dir.path().to_owned(),
            args: self.args,
        };
        let mut attempt = 1;
        loop {
            launch.port = free_port();
            match launch.once() {
                Ok(child) => {
                    return RedisServer {
                        launch,
                        child: Some(child),
                        dir: self.dir,
                    };
                }
                Err(why) if attempt < START_ATTEMPTS => {
                    eprintln!("redis-server did not start ({why:#}); retrying");
                    attempt += 1;
                }
                Err(why) => panic!("redis-server did not start: {why:#}"),
            }
        }
    }
}

/// Runs the blocking `work` on tokio's blocking threads, so the runtime's own go on
/// while a server starts; a panic in `work` is the caller's.
async fn off_the_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(out) => out,
        Err(err) => match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(err) => panic!("starting redis-server: {err}"),
        },
    }
}

impl Launch {
    /// Spawns the server and waits until it answers on its socket. Redis binds every
    /// listener before it serves any, so an answer there means the port is its own.
    fn once(&self) -> anyhow::Result<Child> {
        let port = self.port.to_string();
        let socket = self.dir.join(SOCKET);
        let mut command = Command::new(&self.bin);
        if self.tls {
            command.args(["--port", "0", "--tls-port", &port]);
        } else {
            command.args(["--port", &port]);
        }
        command
            .args(["--bind", "127.0.0.1", "--protected-mode", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", "", "--appendonly", "yes"])
            .args(["--daemonize", "no", "--loglevel", "warning"])
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let mut child = command
            .spawn()
            .with_context(|| format!("spawning {}. {INSTALL_HINT}", self.bin.display()))?;
        let ready = eventually("redis-server to answer on its socket", || {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("exited at start with {status}");
            }
            Ok(answers(&socket).then_some(()))
        });
        match ready {
            Ok(()) => Ok(child),
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(why)
            }
        }
    }

    /// [`Launch::once`] until it works on this port, or fails the test.
    fn again(&self) -> Child {
        let mut last = None;
        for _ in 0..RESTART_ATTEMPTS {
            match self.once() {
                Ok(child) => return child,
                Err(why) => last = Some(why),
            }
            std::thread::sleep(RESTART_PAUSE);
        }
        let last = last.map(|why| format!("{why:#}")).unwrap_or_default();
        panic!("redis-server did not restart on port {}: {last}", self.port);
    }
}

/// Whether a Redis answers `PING` on `socket`: `+PONG`, or `-NOAUTH` when it wants a
/// password first (not `-LOADING`: it is still reading its data).
fn answers(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        if stream.read_exact(&mut byte).is_err() {
            return false;
        }
        reply.push(byte[0]);
    }
    reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH")
}

/// A port that was free a moment ago (the OS picks it; a race with another process
/// binding it in between is retried by [`RedisBuilder::start`]).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port on 127.0.0.1")
}

/// Finds `redis-server`: `$REDIS_SERVER_BIN`, then `PATH`, then the Debian location.
/// Fails the test when there is none: skipping would let a machine without Redis pass
/// tests without running them.
pub fn redis_server_bin() -> PathBuf {
    find_redis_server(
        std::env::var_os("REDIS_SERVER_BIN"),
        std::env::var_os("PATH"),
        Path::new(DEBIAN_REDIS_SERVER),
    )
}

/// [`redis_server_bin`] over the given environment and Debian location.
fn find_redis_server(bin: Option<OsString>, path: Option<OsString>, debian: &Path) -> PathBuf {
    if let Some(bin) = bin {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "REDIS_SERVER_BIN={} is not a file. {INSTALL_HINT}",
            bin.display()
        );
        return bin;
    }
    let on_path = path.and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("redis-server"))
            .find(|candidate| candidate.is_file())
    });
    if let Some(bin) = on_path {
        return bin;
    }
    assert!(
        debian.is_file(),
        "redis-server not found (REDIS_SERVER_BIN, PATH, {}). {INSTALL_HINT}",
        debian.display()
    );
    debian.to_path_buf()
}

#[cfg(test)]
mod tests;
