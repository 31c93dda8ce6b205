//! Bad input at the packet level: malformed Engine.IO and Socket.IO packets, invalid
//! UTF-8, oversized WebSocket messages, deep JSON nesting and attachment mismatches. The
//! rule is the spec's: a receiver that cannot decode a packet closes the connection. Each
//! case ends by checking that the server still serves a fresh client.

use switchboard_conformance::eio::encode_payload;
use switchboard_conformance::ws::{Frame, WsClient};
use switchboard_conformance::{Fixture, MAX_PAYLOAD, Mode};

/// Asserts that a close carried `expected` if it carried a code at all (RFC 6455: 1007
/// for invalid UTF-8, 1009 for a message too big; Node.js's `ws` sends those).
fn assert_close_code(code: Option<u16>, expected: u16) {
    if let Some(code) = code {
        assert_eq!(code, expected, "close code");
    }
}

/// Posts each body on its own `engineio` session: the session must be closed. The POST
/// itself may answer 400 (the spec) or 200 (Node.js decodes after answering).
#[tokio::test]
async fn malformed_polling_payloads_close_session() {
    let mut fixture = Fixture::start(Mode::EngineIo);
    let bodies = ["7", "9x", "", "4a\x1e\x1e4b", "4a\x1eabc"];
    for body in bodies {
        eprintln!("body {body:?}");
        let session = fixture.open_polling().await;
        if let Ok(pushed) = session.push(body).await {
            assert!([200, 400].contains(&pushed.status), "{body:?}: {pushed:?}");
        }
        session.assert_closed().await;
    }
    fixture.assert_serves_fresh_client().await;
}

/// Unknown packet types and empty text frames close an `engineio` WebSocket.
#[tokio::test]
async fn malformed_websocket_packets_close_connection() {
    let mut fixture = Fixture::start(Mode::EngineIo);
    for packet in ["7", "9x", ""] {
        let (mut ws, _open) = fixture.open_ws().await;
        ws.send_text(packet).await.unwrap();
        ws.expect_closed().await;
    }
    fixture.assert_serves_fresh_client().await;
}

in_both_modes!(
    invalid_utf8_text_frame_closes_connection,
    oversized_websocket_text_closes_connection,
    oversized_websocket_binary_closes_connection,
);

/// A text frame that is not UTF-8 fails the WebSocket connection (RFC 6455 §8.1).
async fn invalid_utf8_text_frame_closes_connection(mode: Mode) {
    let mut fixture = Fixture::start(mode);
    let (mut ws, _open) = fixture.open_ws().await;
    ws.send_raw_text(&[b'4', 0xff, 0xfe, b'A']).await.unwrap();
    assert_close_code(ws.expect_closed().await, 1007);
    fixture.assert_serves_fresh_client().await;
}

/// A text message one byte over `maxPayload` closes the connection.
async fn oversized_websocket_text_closes_connection(mode: Mode) {
    let mut fixture = Fixture::start(mode);
    let (mut ws, _open) = fixture.open_ws().await;
    let _ = ws.send_text(&format!("4{}", "a".repeat(MAX_PAYLOAD))).await;
    assert_close_code(ws.expect_closed().await, 1009);
    fixture.assert_serves_fresh_client().await;
}

/// A binary message one byte over `maxPayload` closes the connection.
async fn oversized_websocket_binary_closes_connection(mode: Mode) {
    let mut fixture = Fixture::start(mode);
    let (mut ws, _open) = fixture.open_ws().await;
    let _ = ws.send_binary(&vec![7; MAX_PAYLOAD + 1]).await;
    assert_close_code(ws.expect_closed().await, 1009);
    fixture.assert_serves_fresh_client().await;
}

/// A WebSocket message of exactly `maxPayload` bytes is accepted and echoed.
#[tokio::test]
async fn websocket_message_of_max_payload_is_accepted() {
    let fixture = Fixture::start(Mode::EngineIo);
    let (mut ws, _open) = fixture.open_ws().await;
    let message = format!("4{}", "a".repeat(MAX_PAYLOAD - 1));
    ws.send_text(&message).await.unwrap();
    let echo = ws.recv_skipping_pings().await.text();
    assert!(echo == message, "echo of {} bytes differs", message.len());
}

/// A polling body that is not UTF-8. The spec says payloads are UTF-8 but not what to do
/// otherwise. Node.js decodes it lossily (U+FFFD) and echoes the result; a server may
/// instead treat it as a malformed payload and close the session (answering the POST
/// 200 or 400, as for any malformed payload). It must never echo invalid UTF-8.
#[tokio::test]
async fn invalid_utf8_polling_body_is_replaced_or_refused() {
    let mut fixture = Fixture::start(Mode::EngineIo);
    let session = fixture.open_polling().await;
    let pushed = session.push(&b"4\xff\xfeA"[..]).await.unwrap();
    assert!([200, 400].contains(&pushed.status), "{pushed:?}");
    let polled = session.poll().await.unwrap();
    if polled.status == 200 {
        assert_eq!(polled.text(), "4\u{fffd}\u{fffd}A", "lossy echo");
    } else {
        polled.assert_error(400, 1, "Session ID unknown");
    }
    fixture.assert_serves_fresh_client().await;
}

/// Sends `frames` after connecting to `/` and expects the connection to close.
async fn assert_socketio_closes(frames: &[Frame]) {
    let mut fixture = Fixture::start(Mode::SocketIo);
    let mut client = fixture.sio_connect().await;
    for frame in frames {
        send(&mut client.ws, frame).await;
    }
    client.ws.expect_closed().await;
    fixture.assert_serves_fresh_client().await;
}

/// Sends one frame, ignoring a failure (the server may already have closed).
async fn send(ws: &mut WsClient, frame: &Frame) {
    let _ = match frame {
        Frame::Text(text) => ws.send_text(text).await,
        Frame::Binary(data) => ws.send_binary(data).await,
        Frame::Closed(_) => unreachable!("not a frame to send"),
    };
}

/// A text frame.
fn text(packet: &str) -> Frame {
    Frame::Text(packet.to_owned())
}

/// `CONNECT` data must be an object.
#[tokio::test]
async fn connect_with_non_object_auth_closes_connection() {
    assert_socketio_closes(&[text(r#"40"token""#)]).await;
}

/// A second `CONNECT` to a namespace already joined (Node.js closes the connection).
#[tokio::test]
async fn duplicate_connect_closes_connection() {
    assert_socketio_closes(&[text("40")]).await;
}

/// An event payload must be a non-empty array (spec: "MUST close the connection").
#[tokio::test]
async fn empty_event_array_closes_connection() {
    assert_socketio_closes(&[text("42[]")]).await;
}

/// An ack payload must be an array.
#[tokio::test]
async fn non_array_ack_payload_closes_connection() {
    assert_socketio_closes(&[text("4399{}")]).await;
}

/// Socket.IO packet types stop at 6.
#[tokio::test]
async fn unknown_socketio_packet_type_closes_connection() {
    assert_socketio_closes(&[text(r#"47["message"]"#)]).await;
}

/// `CONNECT_ERROR` is server-to-client only.
#[tokio::test]
async fn connect_error_from_client_closes_connection() {
    assert_socketio_closes(&[text(r#"44{"message":"nope"}"#)]).await;
}

/// An event for a namespace the client never joined (Node.js closes the connection).
#[tokio::test]
async fn event_to_unjoined_namespace_closes_connection() {
    assert_socketio_closes(&[text(r#"42/custom,["message",1]"#)]).await;
}

/// The attachment count must be a number followed by `-`.
#[tokio::test]
async fn malformed_attachment_count_closes_connection() {
    assert_socketio_closes(&[text(r#"45abc-["message"]"#)]).await;
}

/// A binary frame with no `BINARY_EVENT` header announcing it.
#[tokio::test]
async fn unannounced_binary_frame_closes_connection() {
    assert_socketio_closes(&[Frame::Binary(vec![1, 2, 3])]).await;
}

/// More attachments than the header announced: the extra one is unannounced. The first
/// packet is complete and valid, so its echo may come before the close.
#[tokio::test]
async fn more_attachments_than_announced_closes_connection() {
    let mut fixture = Fixture::start(Mode::SocketIo);
    let mut client = fixture.sio_connect().await;
    let header = r#"451-["message",{"_placeholder":true,"num":0}]"#;
    client.ws.send_text(header).await.unwrap();
    let _ = client.ws.send_binary(&[1]).await;
    let _ = client.ws.send_binary(&[2]).await;
    let echo = r#"451-["message-back",{"_placeholder":true,"num":0}]"#;
    match client.ws.recv_skipping_pings().await {
        Frame::Closed(_) => {}
        Frame::Text(text) if text == echo => {
            assert_eq!(
                client.ws.recv().await,
                Frame::Binary(vec![1]),
                "echoed attachment"
            );
            client.ws.expect_closed().await;
        }
        Frame::Text(text) if text == "1" => {
            client.ws.expect_closed().await;
        }
        other => panic!("expected the echo or a close, got {other:?}"),
    }
    fixture.assert_serves_fresh_client().await;
}

/// A placeholder that points past the attachments received.
#[tokio::test]
async fn placeholder_out_of_range_closes_connection() {
    let header = text(r#"451-["message",{"_placeholder":true,"num":3}]"#);
    assert_socketio_closes(&[header, Frame::Binary(vec![1])]).await;
}

/// 100,000 unclosed `[`: invalid JSON, and a parser that recursed on it would overflow.
#[tokio::test]
async fn deeply_nested_unbalanced_json_closes_connection() {
    let packet = format!(r#"42["message",{}"#, "[".repeat(100_000));
    assert_socketio_closes(&[Frame::Text(packet)]).await;
}

/// 100,000 nested arrays, balanced: valid JSON. The server may echo it or close the
/// connection as over a depth limit, but it must survive and keep serving.
///
/// The Node.js reference (socket.io 4.8.x) dies on this input: an expected difference,
/// listed in `tests/conformance/node-reference/expected-differences.txt`.
#[tokio::test]
async fn deeply_nested_balanced_json_is_survived() {
    let mut fixture = Fixture::start(Mode::SocketIo);
    let depth = 100_000;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let mut client = fixture.sio_connect().await;
    let ws = &mut client.ws;
    ws.send_text(&format!(r#"42["message",{nested}]"#))
        .await
        .unwrap();
    match ws.recv_skipping_pings().await {
        // A close packet: the server refused the depth.
        Frame::Text(close) if close == "1" => {
            ws.expect_closed().await;
        }
        Frame::Text(echo) => {
            let expected = format!(r#"42["message-back",{nested}]"#);
            let head: String = echo.chars().take(80).collect();
            let tail: String = echo.chars().rev().take(40).collect();
            assert!(
                echo == expected,
                "echo differs: {} bytes (expected {}), starts {head:?}, ends (reversed) {tail:?}",
                echo.len(),
                expected.len()
            );
        }
        Frame::Closed(_) => {}
        Frame::Binary(data) => panic!("unexpected binary frame of {} bytes", data.len()),
    }
    fixture.assert_serves_fresh_client().await;
}

/// A malformed Socket.IO packet over long-polling closes the Engine.IO session.
#[tokio::test]
async fn malformed_socketio_packet_over_polling_closes_session() {
    let mut fixture = Fixture::start(Mode::SocketIo);
    let session = fixture.open_polling().await;
    let pushed = session.push(encode_payload(&["40", "42{}"])).await.unwrap();
    assert!([200, 400].contains(&pushed.status), "{pushed:?}");
    // The session closes asynchronously: a GET may first receive what was already
    // queued (the CONNECT reply, the `auth` event) and then the `close` packet.
    loop {
        let polled = session.poll().await.unwrap();
        if polled.status == 400 || polled.text().split('\x1e').any(|p| p == "1") {
            break;
        }
        assert_eq!(polled.status, 200, "{polled:?}");
    }
    session.assert_closed().await;
    fixture.assert_serves_fresh_client().await;
}
