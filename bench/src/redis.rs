//! The throwaway `redis-server` of a cluster step: started by the runner on a free port
//! with persistence off (`--save '' --appendonly no`), stopped with its process group.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::peers::Server;

/// The program, found on `PATH` (Debian's `redis-server` package installs it in
/// `/usr/bin`, as `scripts/test` does for CI).
const REDIS_SERVER: &str = "redis-server";
/// Pause between two readiness probes while Redis starts (it starts in milliseconds).
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// A running `redis-server`; dropping it kills its process group (see [`Server`]).
#[derive(Debug)]
pub(crate) struct Redis {
    /// The process, with its address once it answers `PING`.
    pub(crate) server: Server,
    /// `redis://HOST:PORT`, as every adapter takes it.
    pub(crate) url: String,
}

impl Redis {
    /// Starts `redis-server` on a free port of `host`, logging to `log`; resolves once it
    /// answers `PING`.
    pub(crate) async fn start(host: &str, log: &Path) -> anyhow::Result<Redis> {
        let port = free_port(host)?;
        let mut command = Command::new(REDIS_SERVER);
        command
            .args(["--port", &port.to_string(), "--bind", host])
            .args(["--save", "", "--appendonly", "no"])
            // Other engineers' servers share the machine: no background saving, no
            // protected-mode surprises on loopback, no `daemonize`.
            .args(["--protected-mode", "no", "--daemonize", "no"])
            .arg("--logfile")
            .arg(log)
            .stdout(Stdio::null());
        // Redis writes its log itself; its stderr (empty unless it dies before logging
        // starts) goes beside it.
        let mut server =
            Server::spawn(command, &log.with_extension("stderr")).with_context(|| {
                format!("cannot run {REDIS_SERVER} (install the redis-server package)")
            })?;
        let addr = format!("{host}:{port}");
        server
            .ready("an answer to PING", answers_ping(&addr), log)
            .await?;
        server.addr = addr.parse()?;
        Ok(Redis {
            server,
            url: format!("redis://{addr}"),
        })
    }
}

/// A port of `host` nobody listens on right now (the kernel's pick; Redis cannot be asked
/// for port 0 and tell which it got).
fn free_port(host: &str) -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind((host, 0))
        .with_context(|| format!("no free port on {host}"))?;
    Ok(listener.local_addr()?.port())
}

/// Probes `addr` until Redis answers `PING` with `+PONG`.
async fn answers_ping(addr: &str) -> anyhow::Result<()> {
    loop {
        if ping(addr).await.unwrap_or(false) {
            return Ok(());
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// One `PING` on a fresh connection.
async fn ping(addr: &str) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(b"PING\r\n").await?;
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).await?;
    Ok(&reply == b"+PONG\r\n")
}
