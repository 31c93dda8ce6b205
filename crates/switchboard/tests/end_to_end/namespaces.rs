//! Which namespaces accept connections: `/` by default, exactly the configured list
//! otherwise; everything else is refused with "Invalid namespace".

use super::client::Polling;
use super::support::TestServer;

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
