//! Upgrade from long-polling to WebSocket: probe, `noop` to the polling side, `upgrade`;
//! afterwards the session lives on the WebSocket only.
//!
//! Official cases: "upgrade" (3), in both suites. The Engine.IO suite also checks the
//! `noop` and an echo over the upgraded transport; the Socket.IO fixture has no echo, so
//! there a namespace `CONNECT` is the round trip.

use switchboard_conformance::eio::PollingSession;
use switchboard_conformance::sio::parse_connect;
use switchboard_conformance::ws::WsClient;
use switchboard_conformance::{Fixture, Mode};

in_both_modes!(
    upgrades_polling_to_websocket,
    refuses_polling_after_upgrade,
    refuses_second_websocket_after_upgrade,
);

/// Opens the WebSocket of `session` and completes the probe, without `upgrade` yet.
async fn probe(fixture: &Fixture, session: &PollingSession<'_>) -> WsClient {
    let mut ws = fixture.ws(&session.upgrade_query()).await;
    ws.send_text("2probe").await.unwrap();
    assert_eq!(ws.recv_text().await, "3probe", "probe answer");
    ws
}

/// Proves the upgraded transport carries the session: an echo in `engineio` mode; in
/// `socketio` mode a main-namespace `CONNECT` the first time (`first`), then an event.
async fn assert_round_trip(mode: Mode, ws: &mut WsClient, first: bool) {
    if mode == Mode::EngineIo {
        ws.send_text("4hello").await.unwrap();
        assert_eq!(ws.recv_skipping_pings().await.text(), "4hello");
        return;
    }
    if first {
        ws.send_text("40").await.unwrap();
        parse_connect(&ws.recv_skipping_pings().await.text(), "/");
        assert_eq!(ws.recv_skipping_pings().await.text(), r#"42["auth",{}]"#);
    }
    ws.send_text(r#"42["message","hello"]"#).await.unwrap();
    let echo = ws.recv_skipping_pings().await.text();
    assert_eq!(echo, r#"42["message-back","hello"]"#);
}

/// "successfully upgrades from HTTP long-polling to WebSocket".
async fn upgrades_polling_to_websocket(mode: Mode) {
    let fixture = Fixture::start(mode);
    let session = fixture.open_polling().await;
    let mut ws = probe(&fixture, &session).await;
    // The paused polling transport is released with a `noop`.
    let polled = session.poll().await.unwrap();
    assert_eq!(
        (polled.status, polled.text()),
        (200, "6"),
        "noop to polling"
    );
    ws.send_text("5").await.unwrap();
    assert_round_trip(mode, &mut ws, true).await;
    ws.close().await;
}

/// "ignores HTTP requests with same sid after upgrade".
async fn refuses_polling_after_upgrade(mode: Mode) {
    let fixture = Fixture::start(mode);
    let session = fixture.open_polling().await;
    let mut ws = probe(&fixture, &session).await;
    ws.send_text("5").await.unwrap();
    // A round trip first, so the server has surely taken the `upgrade` packet (the
    // official test races the GET against it).
    assert_round_trip(mode, &mut ws, true).await;
    let polled = session.poll().await.unwrap();
    assert_eq!(polled.status, 400, "GET after upgrade: {polled:?}");
    assert_round_trip(mode, &mut ws, false).await;
    ws.close().await;
}

/// "ignores WebSocket connection with same sid after upgrade".
async fn refuses_second_websocket_after_upgrade(mode: Mode) {
    let fixture = Fixture::start(mode);
    let session = fixture.open_polling().await;
    let mut ws = probe(&fixture, &session).await;
    ws.send_text("5").await.unwrap();
    assert_round_trip(mode, &mut ws, true).await;
    fixture.assert_ws_refused(&session.upgrade_query()).await;
    assert_round_trip(mode, &mut ws, false).await;
    ws.close().await;
}
