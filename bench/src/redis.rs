//! The throwaway `redis-server` of a cluster step: started by the runner on a free port
//! with persistence off (`--save '' --appendonly no`), stopped with its process group.

use std::net::SocketAddr;
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

/// Redis' own count of the commands it ran and of its reads from client sockets
/// (`INFO stats`: `total_commands_processed`, `total_reads_processed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IoCount {
    /// Commands run.
    pub(crate) commands: u64,
    /// Reads from client sockets.
    pub(crate) reads: u64,
}

impl IoCount {
    /// Commands per read between `self` and a later count (`None`: no read between).
    /// What a phase's clients sent in one write Redis takes in one read, so this is how
    /// well the nodes pipeline their commands: each read is a turn of Redis' event loop,
    /// with an answer written and every subscriber written to once.
    pub(crate) fn per_read_until(self, later: IoCount) -> Option<f64> {
        let reads = later.reads.checked_sub(self.reads).filter(|&r| r > 0)?;
        let commands = later.commands.saturating_sub(self.commands);
        Some(commands as f64 / reads as f64)
    }

    /// From the text of `INFO stats`.
    fn parse(info: &str) -> Option<IoCount> {
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse().ok())
        };
        Some(IoCount {
            commands: field("total_commands_processed")?,
            reads: field("total_reads_processed")?,
        })
    }
}

/// Redis' [`IoCount`] now, over a connection of its own (the `INFO` counts itself: one
/// command, one read). Blocking, at most a second: read at a phase's ends only.
pub(crate) fn io_count(addr: SocketAddr) -> anyhow::Result<IoCount> {
    use std::io::{Read, Write};
    let within = Duration::from_secs(1);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, within)?;
    stream.set_read_timeout(Some(within))?;
    stream.write_all(b"INFO stats\r\n")?;
    // A bulk string: `$<len>\r\n<text>\r\n`.
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        anyhow::ensure!(n > 0, "redis closed before answering INFO");
        got.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n") {
            let len: usize = head
                .strip_prefix('$')
                .and_then(|l| l.parse().ok())
                .with_context(|| format!("not an answer to INFO: {head}"))?;
            if body.len() >= len {
                return IoCount::parse(&body[..len]).context("INFO stats without the counters");
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_per_read_come_from_two_counts_of_info_stats() {
        let at = |commands, reads| {
            let info = format!(
                "# Stats\r\ntotal_connections_received:3\r\ntotal_commands_processed:{commands}\r\n\
                 instantaneous_ops_per_sec:0\r\ntotal_reads_processed:{reads}\r\n"
            );
            IoCount::parse(&info).expect("parsed")
        };
        assert_eq!(
            at(10, 4),
            IoCount {
                commands: 10,
                reads: 4
            }
        );
        assert_eq!(at(10, 4).per_read_until(at(110, 24)), Some(5.0));
        assert_eq!(at(10, 4).per_read_until(at(12, 4)), None, "no read between");
        assert_eq!(IoCount::parse("total_commands_processed:1\r\n"), None);
    }
}
