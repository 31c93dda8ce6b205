//! Socket.IO binary events and acks: a header packet with placeholders followed by one
//! frame per attachment, over WebSocket and (base64) over long-polling.
//!
//! Official cases: Socket.IO "message": binary attachments, binary attachments with ack.

use switchboard_conformance::eio::encode_payload;
use switchboard_conformance::sio::parse_connect;
use switchboard_conformance::ws::Frame;
use switchboard_conformance::{Fixture, Mode};

/// Two placeholders, for attachments 0 and 1.
const PLACEHOLDERS: &str = r#"{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}"#;

/// Sends `header` and two attachments on a connected session and returns the next three
/// packets, ignoring pings.
async fn exchange_binary(header: &str) -> Vec<Frame> {
    let fixture = Fixture::start(Mode::SocketIo);
    let mut client = fixture.sio_connect().await;
    let ws = &mut client.ws;
    ws.send_text(header).await.unwrap();
    ws.send_binary(&[1, 2, 3]).await.unwrap();
    ws.send_binary(&[4, 5, 6]).await.unwrap();
    let mut frames = Vec::new();
    for _ in 0..3 {
        frames.push(ws.recv_skipping_pings().await);
    }
    frames
}

/// "should send a packet with binary attachments".
#[tokio::test]
async fn binary_event_round_trip() {
    let frames = exchange_binary(&format!(r#"452-["message",{PLACEHOLDERS}]"#)).await;
    let header = format!(r#"452-["message-back",{PLACEHOLDERS}]"#);
    assert_eq!(frames[0], Frame::Text(header));
    assert_eq!(frames[1], Frame::Binary(vec![1, 2, 3]));
    assert_eq!(frames[2], Frame::Binary(vec![4, 5, 6]));
}

/// "should send a packet with binary attachments and an ack": the ack is a `BINARY_ACK`.
#[tokio::test]
async fn binary_event_with_ack_is_acknowledged_in_binary() {
    let header = format!(r#"452-789["message-with-ack",{PLACEHOLDERS}]"#);
    let frames = exchange_binary(&header).await;
    assert_eq!(frames[0], Frame::Text(format!("462-789[{PLACEHOLDERS}]")));
    assert_eq!(frames[1], Frame::Binary(vec![1, 2, 3]));
    assert_eq!(frames[2], Frame::Binary(vec![4, 5, 6]));
}

/// Not an official case: the same binary event over long-polling, where attachments
/// travel as base64 `b` packets in the payload, in order after their header.
#[tokio::test]
async fn binary_event_round_trip_over_polling() {
    let fixture = Fixture::start(Mode::SocketIo);
    let session = fixture.open_polling().await;
    assert_eq!(session.push("40").await.unwrap().status, 200);
    let connected = session.poll_packets(2).await;
    parse_connect(&connected[0], "/");
    assert_eq!(connected[1], r#"42["auth",{}]"#);
    let header = format!(r#"452-["message",{PLACEHOLDERS}]"#);
    let pushed = session
        .push(encode_payload(&[&header, "bAQID", "bBAUG"]))
        .await;
    assert_eq!(pushed.unwrap().text(), "ok");
    let echo = format!(r#"452-["message-back",{PLACEHOLDERS}]"#);
    let packets = session.poll_packets(3).await;
    assert_eq!(packets, [echo, "bAQID".into(), "bBAUG".into()]);
}
