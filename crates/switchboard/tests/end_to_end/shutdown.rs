//! Graceful shutdown: SIGTERM or SIGINT closes every session with a `close` packet, the
//! process waits for them and exits with status 0.

use super::client::{Polling, packets};
use super::support::TestServer;

#[test]
fn sigterm_sends_close_to_a_waiting_poll_and_exits_zero() -> anyhow::Result<()> {
    let mut server = TestServer::start()?;
    let session = Polling::handshake(server.addr())?;
    session.send(&["40"])?;
    let connected = session.poll()?;
    assert!(
        connected.iter().any(|p| p.starts_with("40{")),
        "{connected:?}"
    );

    // A connected client always has a poll waiting; make sure the server holds it.
    let waiting = session.start_poll()?;
    waiting.wait_until_read()?;
    server.signal("TERM")?;

    let last = packets(waiting.response()?)?;
    assert_eq!(last.last().map(String::as_str), Some("1"), "{last:?}");
    let status = server.wait()?;
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; stderr:\n{}",
        server.stderr()
    );
    Ok(())
}

#[test]
fn sigint_drains_and_exits_zero() -> anyhow::Result<()> {
    let mut server = TestServer::start()?;
    server.signal("INT")?;
    let status = server.wait()?;
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; stderr:\n{}",
        server.stderr()
    );
    assert!(
        server.stderr().contains("shutting down"),
        "{}",
        server.stderr()
    );
    Ok(())
}

#[test]
fn sigterm_with_a_zero_deadline_still_exits_zero() -> anyhow::Result<()> {
    let mut server = TestServer::builder()
        .args(["--set", "shutdown.drain_deadline=0"])
        .start()?;
    let session = Polling::handshake(server.addr())?;
    session.send(&["40"])?;
    server.signal("TERM")?;
    let status = server.wait()?;
    assert_eq!(
        status.code(),
        Some(0),
        "{status}; stderr:\n{}",
        server.stderr()
    );
    Ok(())
}

/// A drain may last up to `shutdown.drain_deadline` (here an hour: a client holds an
/// HTTP connection open with a request head sent by half); the same signal again ends
/// it at once, with status 1. Another signal does not (a Ctrl-C under a process
/// manager sends SIGINT, then the manager SIGTERM). Before, a second signal was ignored
/// and only SIGKILL ended the process.
#[test]
fn a_second_signal_ends_the_drain_at_once() -> anyhow::Result<()> {
    let mut server = TestServer::builder()
        .args(["--set", "shutdown.drain_deadline=1h"])
        .start()?;
    let mut held = std::net::TcpStream::connect(server.addr())?;
    std::io::Write::write_all(&mut held, b"GET /health/live HTTP/1.1\r\nHost: x\r\n")?;
    server.signal("TERM")?;
    super::support::eventually("the drain to begin", || {
        Ok(server.stderr().contains("shutting down").then_some(()))
    })?;
    server.signal("INT")?;
    super::support::eventually("the other signal to be ignored", || {
        Ok(server
            .stderr()
            .contains("signal during the drain ignored")
            .then_some(()))
    })?;
    server.signal("TERM")?;
    let status = server.wait()?;
    assert_eq!(
        status.code(),
        Some(1),
        "{status}; stderr:\n{}",
        server.stderr()
    );
    assert!(
        server.stderr().contains("second signal"),
        "{}",
        server.stderr()
    );
    drop(held);
    Ok(())
}
