//! Socket.IO events and acknowledgements in plain text, and the closing of a connection
//! that sends a malformed packet.
//!
//! Official cases: Socket.IO "message": plain text, plain text with ack, and the three
//! invalid-format cases.

use switchboard_conformance::{Fixture, Mode};

/// Sends `packet` on a connected `socketio` session and returns the next packet.
async fn exchange(packet: &str) -> String {
    let fixture = Fixture::start(Mode::SocketIo);
    let mut client = fixture.sio_connect().await;
    client.ws.send_text(packet).await.unwrap();
    client.ws.recv_skipping_pings().await.text()
}

/// Sends `packet` on a connected `socketio` session and expects the connection to close.
async fn assert_closes(packet: &str) {
    let mut fixture = Fixture::start(Mode::SocketIo);
    let mut client = fixture.sio_connect().await;
    client.ws.send_text(packet).await.unwrap();
    client.ws.expect_closed().await;
    fixture.assert_serves_fresh_client().await;
}

/// "should send a plain-text packet": arguments of every JSON type come back verbatim.
#[tokio::test]
async fn event_round_trip() {
    let reply = exchange(r#"42["message",1,"2",{"3":[true]}]"#).await;
    assert_eq!(reply, r#"42["message-back",1,"2",{"3":[true]}]"#);
}

/// "should send a plain-text packet with an ack".
#[tokio::test]
async fn event_with_ack_is_acknowledged() {
    let reply = exchange(r#"42456["message-with-ack",1,"2",{"3":[false]}]"#).await;
    assert_eq!(reply, r#"43456[1,"2",{"3":[false]}]"#);
}

/// "should close the connection upon invalid format (unknown packet type)".
#[tokio::test]
async fn unknown_packet_type_closes_connection() {
    assert_closes("4abc").await;
}

/// "should close the connection upon invalid format (invalid payload format)": an event
/// payload must be an array.
#[tokio::test]
async fn non_array_event_payload_closes_connection() {
    assert_closes("42{}").await;
}

/// "should close the connection upon invalid format (invalid ack id)".
#[tokio::test]
async fn invalid_ack_id_closes_connection() {
    assert_closes(r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#).await;
}
