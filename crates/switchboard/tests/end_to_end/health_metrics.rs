//! Health, readiness and metrics beside the engine on the one listener, and JSON 404s
//! for every other path.

use super::client::{Polling, get, metric};
use super::support::{TestServer, eventually};

#[test]
fn health_endpoints_answer_while_serving() -> anyhow::Result<()> {
    let server = TestServer::start()?;
    for path in ["/health/live", "/health/ready"] {
        let res = get(server.addr(), path)?;
        assert_eq!(res.status, 200, "{path}: {}", res.body);
        assert_eq!(res.body, r#"{"status":"ok"}"#);
        assert_eq!(res.header("content-type"), Some("application/json"));
    }
    Ok(())
}

#[test]
fn unknown_paths_get_a_json_404() -> anyhow::Result<()> {
    let server = TestServer::start()?;
    let res = get(server.addr(), "/no/such/thing")?;
    assert_eq!(res.status, 404);
    assert_eq!(res.header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&res.body)?;
    assert_eq!(body["code"], "not_found");
    assert!(body["message"].is_string());
    Ok(())
}

#[test]
fn metrics_follow_a_polling_session_from_connect_to_disconnect() -> anyhow::Result<()> {
    let server = TestServer::start()?;
    let addr = server.addr();
    let res = get(addr, "/metrics")?;
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(metric(addr, "switchboard_namespaces")?, Some(1.0));
    assert_eq!(
        metric(addr, r#"switchboard_sockets{namespace="/"}"#)?,
        Some(0.0)
    );

    let session = Polling::handshake(addr)?;
    session.send(&["40"])?;
    let packets = session.poll()?;
    assert!(
        packets.iter().any(|p| p.starts_with("40{\"sid\":")),
        "{packets:?}"
    );

    let polling = r#"switchboard_connections{transport="polling"}"#;
    assert_eq!(metric(addr, polling)?, Some(1.0));
    assert_eq!(
        metric(addr, r#"switchboard_connections{transport="websocket"}"#)?,
        Some(0.0)
    );
    assert_eq!(
        metric(addr, r#"switchboard_sockets{namespace="/"}"#)?,
        Some(1.0)
    );
    assert!(metric(addr, "switchboard_packets_received_total")? >= Some(1.0));
    assert!(metric(addr, "switchboard_packets_sent_total")? >= Some(1.0));
    assert!(metric(addr, "switchboard_received_bytes_total")? >= Some(1.0));
    assert!(metric(addr, "switchboard_sent_bytes_total")? >= Some(1.0));
    assert_eq!(
        metric(addr, "switchboard_volatile_dropped_total")?,
        Some(0.0)
    );
    assert_eq!(
        metric(addr, "switchboard_connections_refused_total")?,
        Some(0.0)
    );

    // The client closes the transport with a close packet: diagnosed `client`.
    session.send(&["1"])?;
    let closed = r#"switchboard_disconnects_total{category="client",reason="transport close"}"#;
    eventually("the disconnect to be counted", || {
        Ok((metric(addr, closed)? == Some(1.0)).then_some(()))
    })?;
    assert_eq!(metric(addr, polling)?, Some(0.0));
    assert_eq!(
        metric(addr, r#"switchboard_sockets{namespace="/"}"#)?,
        Some(0.0)
    );
    assert_eq!(metric(addr, "switchboard_ready")?, Some(1.0));
    Ok(())
}

#[test]
fn refused_connections_are_counted() -> anyhow::Result<()> {
    let server = TestServer::builder()
        .args(["--set", "engine.max_connections=1"])
        .start()?;
    let addr = server.addr();
    let _first = Polling::handshake(addr)?;
    let second = get(addr, "/socket.io/?EIO=4&transport=polling")?;
    assert_eq!(second.status, 503, "{}", second.body);
    assert_eq!(
        metric(addr, "switchboard_connections_refused_total")?,
        Some(1.0)
    );
    Ok(())
}
