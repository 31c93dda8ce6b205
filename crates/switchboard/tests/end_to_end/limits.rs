//! Limits of the HTTP layer that a client controls: open TCP connections
//! (`engine.max_tcp_connections`) and the size of request headers (431).

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::Duration;

use super::client::{Pending, Polling, metric};
use super::support::{SAFETY_TIMEOUT, TestServer, eventually};

/// The TCP cap of the server under test: small, so the test opens few sockets.
const CAP: usize = 4;

/// Whether the server closed `stream` (end of file or reset) within `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> anyhow::Result<bool> {
    stream.set_read_timeout(Some(wait))?;
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => Ok(true),
        Ok(_) => anyhow::bail!("the server sent bytes unasked"),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(false),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Ok(true),
        Err(e) => Err(e.into()),
    }
}

#[test]
fn connections_beyond_the_tcp_cap_are_closed_at_once_and_counted() -> anyhow::Result<()> {
    let server = TestServer::builder()
        .env("SWITCHBOARD_ENGINE__MAX_TCP_CONNECTIONS", &CAP.to_string())
        .start()?;
    let addr = server.addr();
    // Silent sockets: each holds its place until the header read timeout (10 s).
    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(TcpStream::connect_timeout(&addr, SAFETY_TIMEOUT)?);
    }
    // Let the server accept them before the excess arrives.
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..3 {
        let mut extra = TcpStream::connect_timeout(&addr, SAFETY_TIMEOUT)?;
        assert!(
            closed_within(&mut extra, Duration::from_secs(5))?,
            "connection {} beyond the cap was left open",
            CAP + i + 1
        );
    }
    for stream in &mut held {
        assert!(
            !closed_within(stream, Duration::from_millis(50))?,
            "a connection within the cap was closed"
        );
    }
    drop(held);
    // Once they are gone, a normal client gets in (the first tries may still find
    // the places taken while the server notices the closes).
    let client = eventually("a handshake after the held connections closed", || {
        Ok(Polling::handshake(addr).ok())
    })?;
    client.send(&["40"])?;
    let refused = metric(addr, "switchboard_tcp_connections_refused_total")?;
    assert!(refused.is_some_and(|n| n >= 3.0), "{refused:?}");
    Ok(())
}

#[test]
fn oversized_request_headers_get_431_and_normal_ones_pass() -> anyhow::Result<()> {
    let server = TestServer::start()?;
    let addr = server.addr();
    let path = "/socket.io/?EIO=4&transport=polling";
    // 12 KiB of cookies, under the 16 KiB limit (Node's default): served.
    let cookie = format!("big={}", "c".repeat(12 * 1024));
    let res = Pending::send_with(addr, "GET", path, &[("Cookie", &cookie)], "")?.response()?;
    assert_eq!(res.status, 200, "{}", res.body);
    // 20 KiB: refused before it reaches the engine.
    let cookie = format!("big={}", "c".repeat(20 * 1024));
    let res = Pending::send_with(addr, "GET", path, &[("Cookie", &cookie)], "")?.response()?;
    assert_eq!(res.status, 431);
    // More than 100 headers: refused too.
    let names: Vec<String> = (0..120).map(|i| format!("X-Filler-{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    let res = Pending::send_with(addr, "GET", path, &many, "")?.response()?;
    assert_eq!(res.status, 431);
    // Only the accepted handshake made a session.
    assert_eq!(
        metric(addr, "switchboard_connections{transport=\"polling\"}")?,
        Some(1.0)
    );
    Ok(())
}
