//! A real `redis-server` for the cluster tests: on a free port, in a temporary
//! directory, killable and restartable on the same port, stopped when dropped.
//!
//! The program is `REDIS_SERVER_BIN`, else `redis-server` from PATH, else
//! `/usr/bin/redis-server`. Without one the tests fail, saying how to get it:
//! `scripts/test` installs it (Debian's `redis-server` package).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use super::support::eventually;

/// A running (or killed, for now) redis-server.
#[derive(Debug)]
pub(crate) struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port.
    pub(crate) fn start() -> anyhow::Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!(
            "switchboard-e2e-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        let mut server = RedisServer {
            port,
            dir,
            child: None,
        };
        server.restart()?;
        Ok(server)
    }

    /// `redis://127.0.0.1:PORT`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL) and waits for it to exit.
    pub(crate) fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts it (again) on the same port; returns once it answers PING.
    pub(crate) fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        let program = program().context(
            "redis-server not found: install it with `apt-get install -y redis-server` \
             (scripts/test does), or set REDIS_SERVER_BIN",
        )?;
        let child = Command::new(&program)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (install redis-server: scripts/test does it)",
                    program.display()
                )
            })?;
        let port = self.port;
        let child = self.child.insert(child);
        eventually("redis-server to answer PING", || {
            // One that exits (its port taken meanwhile, a bad option) fails at once.
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("redis-server on port {port} exited: {status}");
            }
            Ok(ping(port).then_some(()))
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn program() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("REDIS_SERVER_BIN") {
        return Some(PathBuf::from(bin));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/bin/redis-server");
        debian.is_file().then_some(debian)
    })
}

/// Whether a redis-server on `port` answers `PING` with `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
    let mut answer = [0u8; 7];
    conn.write_all(b"PING\r\n").is_ok()
        && conn.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG\r\n"
}
