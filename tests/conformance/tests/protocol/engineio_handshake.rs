//! Engine.IO handshake: a session opens over long-polling or WebSocket with the fixture's
//! settings; a handshake with a bad `EIO`, `transport` or method opens nothing.
//!
//! Official cases: Engine.IO "handshake" (7) and the same 7 in the Socket.IO suite.

use http::Method;
use switchboard_conformance::eio::{OpenPacket, POLLING, WEBSOCKET};
use switchboard_conformance::{Fixture, Mode};

in_both_modes!(
    polling_opens_session,
    polling_refuses_invalid_eio,
    polling_refuses_invalid_transport,
    polling_refuses_invalid_method,
    websocket_opens_session,
    websocket_refuses_invalid_eio,
    websocket_refuses_invalid_transport,
);

/// "successfully opens a session" (HTTP long-polling).
async fn polling_opens_session(mode: Mode) {
    let fixture = Fixture::start(mode);
    let response = fixture.get(POLLING).await.unwrap();
    assert_eq!(response.status, 200, "{response:?}");
    let open = OpenPacket::parse(response.text());
    open.assert_fixture_settings(&["websocket"]);
}

/// "fails with an invalid 'EIO' query parameter" (HTTP long-polling).
async fn polling_refuses_invalid_eio(mode: Mode) {
    let fixture = Fixture::start(mode);
    for query in ["transport=polling", "EIO=abc&transport=polling"] {
        let response = fixture.get(query).await.unwrap();
        assert_eq!(response.status, 400, "{query}: {response:?}");
    }
}

/// "fails with an invalid 'transport' query parameter" (HTTP long-polling).
async fn polling_refuses_invalid_transport(mode: Mode) {
    let fixture = Fixture::start(mode);
    for query in ["EIO=4", "EIO=4&transport=abc"] {
        let response = fixture.get(query).await.unwrap();
        assert_eq!(response.status, 400, "{query}: {response:?}");
    }
}

/// "fails with an invalid request method": a handshake is a GET.
async fn polling_refuses_invalid_method(mode: Mode) {
    let fixture = Fixture::start(mode);
    for method in [Method::POST, Method::PUT] {
        let response = fixture.request(method.clone(), POLLING, &[], "");
        let response = response.await.unwrap();
        assert_eq!(response.status, 400, "{method}: {response:?}");
    }
}

/// "successfully opens a session" (WebSocket): no upgrades are offered.
async fn websocket_opens_session(mode: Mode) {
    let fixture = Fixture::start(mode);
    let mut ws = fixture.ws(WEBSOCKET).await;
    let open = OpenPacket::parse(&ws.recv_text().await);
    open.assert_fixture_settings(&[]);
    ws.close().await;
}

/// "fails with an invalid 'EIO' query parameter" (WebSocket).
async fn websocket_refuses_invalid_eio(mode: Mode) {
    let fixture = Fixture::start(mode);
    for query in ["transport=websocket", "EIO=abc&transport=websocket"] {
        fixture.assert_ws_refused(query).await;
    }
}

/// "fails with an invalid 'transport' query parameter" (WebSocket).
async fn websocket_refuses_invalid_transport(mode: Mode) {
    let fixture = Fixture::start(mode);
    for query in ["EIO=4", "EIO=4&transport=abc"] {
        fixture.assert_ws_refused(query).await;
    }
}
