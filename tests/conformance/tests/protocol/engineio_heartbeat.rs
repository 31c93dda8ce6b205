//! Engine.IO heartbeat: the server pings every `pingInterval` and closes a session whose
//! client does not answer within `pingTimeout`.
//!
//! Official cases: "heartbeat" (4), in both suites. They rely on the fixture's 300 ms /
//! 200 ms timings, as the official suites do; nothing asserts how fast a step was.

use std::time::Duration;

use switchboard_conformance::eio::PollingSession;
use switchboard_conformance::ws::WsClient;
use switchboard_conformance::{Fixture, Mode, PING_INTERVAL_MS, PING_TIMEOUT_MS};

/// In `socketio` mode, connects the session to `/` over polling first.
///
/// Three ping rounds take about 900 ms, close to the fixture's 1000 ms connect timeout;
/// the official test races it (and Node.js wins by a few milliseconds). A connected
/// session tests the same heartbeat without the race.
async fn connect_polling_if_socketio(mode: Mode, session: &PollingSession<'_>) {
    if mode == Mode::SocketIo {
        assert_eq!(session.push("40").await.unwrap().status, 200);
        let connected = session.poll_packets(2).await;
        assert!(connected[0].starts_with("40{"), "{connected:?}");
    }
}

/// The WebSocket twin of [`connect_polling_if_socketio`].
async fn connect_ws_if_socketio(mode: Mode, ws: &mut WsClient) {
    if mode == Mode::SocketIo {
        ws.send_text("40").await.unwrap();
        assert!(ws.recv_text().await.starts_with("40{"), "CONNECT reply");
        assert!(ws.recv_text().await.starts_with("42"), "auth event");
    }
}

in_both_modes!(
    polling_ping_pong,
    polling_ping_timeout_closes_session,
    websocket_ping_pong,
    websocket_ping_timeout_closes_session,
);

/// "sends ping/pong packets" (HTTP long-polling): three rounds of ping, pong.
async fn polling_ping_pong(mode: Mode) {
    let fixture = Fixture::start(mode);
    let session = fixture.open_polling().await;
    connect_polling_if_socketio(mode, &session).await;
    for round in 0..3 {
        let polled = session.poll().await.unwrap();
        assert_eq!((polled.status, polled.text()), (200, "2"), "round {round}");
        let pushed = session.push("3").await.unwrap();
        assert_eq!(pushed.status, 200, "round {round}: {pushed:?}");
    }
}

/// "closes the session upon ping timeout" (HTTP long-polling).
async fn polling_ping_timeout_closes_session(mode: Mode) {
    let fixture = Fixture::start(mode);
    let session = fixture.open_polling().await;
    // The official test waits exactly interval + timeout; the margin keeps a loaded
    // machine from turning a timer race into a failure.
    let margin = 300;
    let wait = PING_INTERVAL_MS + PING_TIMEOUT_MS + margin;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let polled = session.poll().await.unwrap();
    assert_eq!(polled.status, 400, "{polled:?}");
}

/// "sends ping/pong packets" (WebSocket).
async fn websocket_ping_pong(mode: Mode) {
    let fixture = Fixture::start(mode);
    let (mut ws, _open) = fixture.open_ws().await;
    connect_ws_if_socketio(mode, &mut ws).await;
    for round in 0..3 {
        assert_eq!(ws.recv_text().await, "2", "round {round}");
        ws.send_text("3").await.unwrap();
    }
    ws.close().await;
}

/// "closes the session upon ping timeout" (WebSocket).
async fn websocket_ping_timeout_closes_session(mode: Mode) {
    let fixture = Fixture::start(mode);
    let (mut ws, _open) = fixture.open_ws().await;
    ws.expect_closed().await;
}
