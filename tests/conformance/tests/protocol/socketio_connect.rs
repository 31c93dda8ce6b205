//! Socket.IO namespaces: `CONNECT` with and without auth to `/` and `/custom`, refusal of
//! unknown namespaces and of sessions that never connect, and `DISCONNECT`.
//!
//! Official cases: Socket.IO "connect" (7) and "disconnect" (2).

use switchboard_conformance::sio::parse_connect;
use switchboard_conformance::ws::WsClient;
use switchboard_conformance::{Fixture, Mode};

/// Opens a `socketio` WebSocket session, sends `connect` and returns the reply and the
/// next packet (the fixture's `auth` event on success).
async fn connect(fixture: &Fixture, connect: &str) -> (WsClient, String, String) {
    let (mut ws, _open) = fixture.open_ws().await;
    ws.send_text(connect).await.unwrap();
    let reply = ws.recv_skipping_pings().await.text();
    let next = if reply.starts_with("44") {
        String::new()
    } else {
        ws.recv_skipping_pings().await.text()
    };
    (ws, reply, next)
}

/// "should allow connection to the main namespace".
#[tokio::test]
async fn connects_to_main_namespace() {
    let fixture = Fixture::start(Mode::SocketIo);
    let (_ws, reply, auth) = connect(&fixture, "40").await;
    parse_connect(&reply, "/");
    assert_eq!(auth, r#"42["auth",{}]"#);
}

/// "should allow connection to the main namespace with a payload".
#[tokio::test]
async fn connects_to_main_namespace_with_auth() {
    let fixture = Fixture::start(Mode::SocketIo);
    let (_ws, reply, auth) = connect(&fixture, r#"40{"token":"123"}"#).await;
    parse_connect(&reply, "/");
    assert_eq!(auth, r#"42["auth",{"token":"123"}]"#);
}

/// "should allow connection to a custom namespace".
#[tokio::test]
async fn connects_to_custom_namespace() {
    let fixture = Fixture::start(Mode::SocketIo);
    let (_ws, reply, auth) = connect(&fixture, "40/custom,").await;
    parse_connect(&reply, "/custom");
    assert_eq!(auth, r#"42/custom,["auth",{}]"#);
}

/// "should allow connection to a custom namespace with a payload".
#[tokio::test]
async fn connects_to_custom_namespace_with_auth() {
    let fixture = Fixture::start(Mode::SocketIo);
    let (_ws, reply, auth) = connect(&fixture, r#"40/custom,{"token":"abc"}"#).await;
    parse_connect(&reply, "/custom");
    assert_eq!(auth, r#"42/custom,["auth",{"token":"abc"}]"#);
}

/// "should disallow connection to an unknown namespace": `CONNECT_ERROR`, and the reply
/// names the namespace with its comma although the request had none.
#[tokio::test]
async fn refuses_unknown_namespace() {
    let fixture = Fixture::start(Mode::SocketIo);
    let (_ws, reply, _) = connect(&fixture, "40/random").await;
    assert_eq!(reply, r#"44/random,{"message":"Invalid namespace"}"#);
}

/// "should disallow connection with an invalid handshake": the first packet is not a
/// valid `CONNECT`.
#[tokio::test]
async fn invalid_handshake_closes_connection() {
    let fixture = Fixture::start(Mode::SocketIo);
    let (mut ws, _open) = fixture.open_ws().await;
    ws.send_text("4abc").await.unwrap();
    ws.expect_closed().await;
}

/// "should close the connection if no handshake is received".
///
/// As in the official test pings go unanswered, so with the fixture's timings Node.js
/// closes by ping timeout (500 ms) before its connect timeout (1000 ms).
#[tokio::test]
async fn no_handshake_closes_connection() {
    let fixture = Fixture::start(Mode::SocketIo);
    let (mut ws, _open) = fixture.open_ws().await;
    ws.expect_closed().await;
}

/// The connect timeout on its own: a client that answers every ping but never sends
/// `CONNECT` is still closed (after `connectTimeout`, 1000 ms in the fixture).
#[tokio::test]
async fn no_handshake_closes_connection_despite_heartbeat() {
    let fixture = Fixture::start(Mode::SocketIo);
    let (mut ws, _open) = fixture.open_ws().await;
    ws.expect_closed_answering_pings().await;
}

/// "should disconnect from the main namespace": the server answers nothing and keeps the
/// Engine.IO session, so the next frame is a ping.
#[tokio::test]
async fn disconnects_from_main_namespace() {
    let fixture = Fixture::start(Mode::SocketIo);
    let mut client = fixture.sio_connect().await;
    client.ws.send_text("41").await.unwrap();
    assert_eq!(client.ws.recv_text().await, "2");
}

/// "should connect then disconnect from a custom namespace": leaving `/custom` keeps the
/// main namespace working on the same connection.
#[tokio::test]
async fn disconnects_from_custom_namespace_keeping_main() {
    let fixture = Fixture::start(Mode::SocketIo);
    let mut client = fixture.sio_connect().await;
    let ws = &mut client.ws;
    assert_eq!(ws.recv_text().await, "2", "ping");
    ws.send_text("3").await.unwrap();
    // No trailing comma: the namespace ends at the end of the packet.
    ws.send_text("40/custom").await.unwrap();
    parse_connect(&ws.recv_skipping_pings().await.text(), "/custom");
    let auth = ws.recv_skipping_pings().await.text();
    assert_eq!(auth, r#"42/custom,["auth",{}]"#);
    ws.send_text("41/custom").await.unwrap();
    ws.send_text(r#"42["message","message to main namespace"]"#)
        .await
        .unwrap();
    let echo = ws.recv_skipping_pings().await.text();
    assert_eq!(echo, r#"42["message-back","message to main namespace"]"#);
}
