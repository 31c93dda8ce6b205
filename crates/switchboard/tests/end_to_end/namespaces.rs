//! Which namespaces accept connections: `/` by default, exactly the configured list
//! otherwise; everything else is refused with "Invalid namespace". Namespaces a
//! pattern creates live only as long as their sockets.

use anyhow::Context as _;

use super::client::{Polling, get, metric};
use super::support::{TestServer, eventually};

const INVALID_NAMESPACE: &str = r#"{"message":"Invalid namespace"}"#;

#[test]
fn the_main_namespace_accepts_connections_by_default() -> anyhow::Result<()> {
    let server = TestServer::start()?;
    let session = Polling::handshake(server.addr())?;
    session.send(&["40", "40/other,"])?;
    let mut packets = session.poll()?;
    if packets.len() < 2 {
        packets.extend(session.poll()?);
    }
    assert!(
        packets.iter().any(|p| p.starts_with("40{\"sid\":")),
        "{packets:?}"
    );
    assert!(
        packets.contains(&format!("44/other,{INVALID_NAMESPACE}")),
        "{packets:?}"
    );
    Ok(())
}

#[test]
fn only_configured_namespaces_accept_connections() -> anyhow::Result<()> {
    let server = TestServer::builder()
        .env("SWITCHBOARD_NAMESPACES", "/chat,/orders")
        .start()?;
    let session = Polling::handshake(server.addr())?;
    session.send(&["40/chat,", "40/orders,", "40"])?;
    let mut packets = Vec::new();
    while packets.len() < 3 {
        packets.extend(session.poll()?);
    }
    assert!(
        packets.iter().any(|p| p.starts_with("40/chat,{\"sid\":")),
        "{packets:?}"
    );
    assert!(
        packets.iter().any(|p| p.starts_with("40/orders,{\"sid\":")),
        "{packets:?}"
    );
    assert!(
        packets.contains(&format!("44{INVALID_NAMESPACE}")),
        "{packets:?}"
    );
    Ok(())
}

/// Connects `session` to every namespace of `names` and waits for every answer.
fn connect_all(session: &Polling, names: &[String]) -> anyhow::Result<()> {
    let packets: Vec<String> = names.iter().map(|n| format!("40{n},")).collect();
    let packets: Vec<&str> = packets.iter().map(String::as_str).collect();
    session.send(&packets)?;
    let mut answers = 0;
    while answers < names.len() {
        for packet in session.poll()? {
            anyhow::ensure!(!packet.starts_with("44"), "refused: {packet}");
            if packet.starts_with("40/tenant-") {
                answers += 1;
            }
        }
    }
    Ok(())
}

/// A churn of CONNECTs to namespaces a pattern creates (`/tenant-*`, random names)
/// leaves nothing behind once the clients are gone: the namespace count on /metrics
/// is back to the configured ones. The names clients choose never become series:
/// their sockets are counted under the pattern's text, one series however many
/// names rotate through it. Names a pattern may not create (globs, too long) are
/// refused and create nothing.
#[test]
fn namespaces_created_from_a_pattern_go_away_with_their_sockets() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("namespaces.toml");
    std::fs::write(&config, "[[namespaces]]\npattern = \"/tenant-*\"\n")?;
    let server = TestServer::builder()
        .args([std::ffi::OsStr::new("--config"), config.as_os_str()])
        .start()?;
    let addr = server.addr();
    let configured = metric(addr, "switchboard_namespaces")?.context("the count")?;

    const SESSIONS: usize = 6;
    const PER_SESSION: usize = 50;
    let mut round = 0;
    for i in 0..SESSIONS {
        let session = Polling::handshake(addr)?;
        let names: Vec<String> = (0..PER_SESSION)
            .map(|_| format!("/tenant-{:016x}", rand_u64(&mut round)))
            .collect();
        connect_all(&session, &names)?;
        assert_eq!(
            metric(addr, "switchboard_namespaces")?,
            Some(configured + PER_SESSION as f64)
        );
        assert_eq!(
            metric(addr, PATTERN_SOCKETS)?,
            Some(PER_SESSION as f64),
            "one series for the pattern"
        );
        let text = get(addr, "/metrics")?.body;
        assert_eq!(text.matches("namespace=\"/tenant-").count(), 1, "{text}");
        if i % 2 == 0 {
            // Leave each namespace...
            let leave: Vec<String> = names.iter().map(|n| format!("41{n},")).collect();
            session.send(&leave.iter().map(String::as_str).collect::<Vec<_>>())?;
        } else {
            // ...or close the whole connection.
            session.send(&["1"])?;
        }
        eventually("the session's namespaces to go away", || {
            Ok((metric(addr, "switchboard_namespaces")? == Some(configured)).then_some(()))
        })?;
    }
    let bad = Polling::handshake(addr)?;
    let long = format!("/tenant-{}", "x".repeat(200));
    bad.send(&["40/tenant-*,", "40/tenant-#x,", &format!("40{long},")])?;
    let mut refused = Vec::new();
    while refused.len() < 3 {
        refused.extend(bad.poll()?);
    }
    assert!(
        refused.iter().all(|p| p.ends_with(INVALID_NAMESPACE)),
        "{refused:?}"
    );

    eventually("the namespaces to go away", || {
        Ok((metric(addr, "switchboard_namespaces")? == Some(configured)).then_some(()))
    })?;
    let text = get(addr, "/metrics")?.body;
    assert_eq!(metric(addr, PATTERN_SOCKETS)?, Some(0.0), "{text}");
    assert_eq!(text.matches("/tenant-").count(), 1, "{text}");
    Ok(())
}

/// The series that counts the sockets of every namespace `/tenant-*` created.
const PATTERN_SOCKETS: &str = r#"switchboard_sockets{namespace="/tenant-*"}"#;

/// A pseudo-random number (splitmix64 over a counter): names that differ every run
/// without a dependency.
fn rand_u64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
