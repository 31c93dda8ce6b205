//! Engine.IO over WebSocket: one packet per frame, text as text and binary as is; a bad
//! packet or a `close` packet ends the session.
//!
//! Official cases: Engine.IO "message / WebSocket" (3) and "close / WebSocket" (also in
//! the Socket.IO suite).

use switchboard_conformance::ws::Frame;
use switchboard_conformance::{Fixture, Mode};

/// "sends and receives a plain text packet".
#[tokio::test]
async fn text_packet_round_trip() {
    let fixture = Fixture::start(Mode::EngineIo);
    let (mut ws, _open) = fixture.open_ws().await;
    ws.send_text("4hello").await.unwrap();
    assert_eq!(ws.recv_skipping_pings().await, Frame::Text("4hello".into()));
    ws.close().await;
}

/// "sends and receives a binary packet": a binary frame carries the bytes alone, with no
/// packet type and no base64.
#[tokio::test]
async fn binary_packet_round_trip() {
    let fixture = Fixture::start(Mode::EngineIo);
    let (mut ws, _open) = fixture.open_ws().await;
    ws.send_binary(&[1, 2, 3, 4]).await.unwrap();
    assert_eq!(
        ws.recv_skipping_pings().await,
        Frame::Binary(vec![1, 2, 3, 4])
    );
    ws.close().await;
}

/// "closes the session upon invalid packet format".
#[tokio::test]
async fn invalid_packet_closes_session() {
    let fixture = Fixture::start(Mode::EngineIo);
    let (mut ws, _open) = fixture.open_ws().await;
    ws.send_text("abc").await.unwrap();
    ws.expect_closed().await;
}

in_both_modes!(close_packet_closes_session);

/// "forcefully closes the session" (WebSocket).
///
/// Pings are deliberately left unanswered, as in the official test: Node.js ignores a
/// `close` packet on a WebSocket and the session ends by ping timeout instead. Either
/// way the client sees the connection close.
async fn close_packet_closes_session(mode: Mode) {
    let fixture = Fixture::start(mode);
    let (mut ws, _open) = fixture.open_ws().await;
    ws.send_text("1").await.unwrap();
    ws.expect_closed().await;
}
