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
/// HTTP connection open with a polling POST whose body it sent by half, until the
/// body timeout); the same signal again ends
/// it at once, with status 1. Another signal does not (a Ctrl-C under a process
/// manager sends SIGINT, then the manager SIGTERM). Before, a second signal was ignored
/// and only SIGKILL ended the process.
#[test]
fn a_second_signal_ends_the_drain_at_once() -> anyhow::Result<()> {
    let mut server = TestServer::builder()
        .args(["--set", "shutdown.drain_deadline=1h"])
        .start()?;
    let session = Polling::handshake(server.addr())?;
    let sid = session.open["sid"].as_str().unwrap_or_default().to_owned();
    let mut held = std::net::TcpStream::connect(server.addr())?;
    // `Expect: 100-continue`: the answer says the request reached the server (which
    // reads its body) before the signal, so the drain has it to wait for.
    let head = format!(
        "POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n\
         Content-Type: text/plain\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n"
    );
    std::io::Write::write_all(&mut held, head.as_bytes())?;
    let mut cont = [0_u8; 12];
    std::io::Read::read_exact(&mut held, &mut cont)?;
    assert_eq!(&cont, b"HTTP/1.1 100");
    std::io::Write::write_all(&mut held, b"40")?;
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

/// A connection that has not sent a request yet (a browser's preconnect, a
/// balancer's spare socket) is closed at shutdown: hyper's graceful shutdown closes
/// idle connections only once they served a request, so such a connection held every
/// drain to its deadline (here 3 s, shorter than the 10 s header read timeout) and
/// the node logged that it exited anyway.
#[test]
fn a_connection_that_sent_nothing_does_not_hold_the_drain() -> anyhow::Result<()> {
    let mut server = TestServer::builder()
        .args(["--set", "shutdown.drain_deadline=3s"])
        .start()?;
    let silent = std::net::TcpStream::connect(server.addr())?;
    let mut half = std::net::TcpStream::connect(server.addr())?;
    std::io::Write::write_all(&mut half, b"GET /health/live HTTP/1.1\r\n")?;
    // Both accepted before the signal.
    let session = Polling::handshake(server.addr())?;
    drop(session);
    server.signal("TERM")?;
    let status = server.wait()?;
    let stderr = server.stderr();
    assert_eq!(status.code(), Some(0), "{status}; stderr:\n{stderr}");
    assert!(stderr.contains("drained, exiting"), "{stderr}");
    assert!(!stderr.contains("exiting anyway"), "{stderr}");
    drop((silent, half));
    Ok(())
}
