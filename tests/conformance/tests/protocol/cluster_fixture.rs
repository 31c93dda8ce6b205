//! The `cluster` fixture's commands (README of `protocol_fixture`): rooms, broadcasts
//! with and without the sender, acks both ways and server-side disconnect, on one node
//! with the memory adapter. Not an official suite; interop tests and benchmarks build on
//! these commands, so they are held to Node.js's behaviour here.
//!
//! Each test uses its own room names, so that tests running in parallel against one
//! external server do not hear each other's broadcasts.
//!
//! "Nothing arrives" is never asserted by waiting: a sentinel `message` is sent instead,
//! and its `message-back` must be the next packet. Anything wrongly delivered before it
//! would have been queued to that socket earlier, so it would come first.

use switchboard_conformance::eio::{OpenPacket, POLLING};
use switchboard_conformance::sio::SioClient;
use switchboard_conformance::{Fixture, Mode};

/// Sends `packet` and reads until `count` packets arrived, returning them sorted, for
/// replies whose relative order the contract does not fix (an ack and an event).
async fn send_and_collect(client: &mut SioClient, packet: &str, count: usize) -> Vec<String> {
    client.ws.send_text(packet).await.unwrap();
    let mut packets = Vec::new();
    for _ in 0..count {
        packets.push(client.ws.recv_skipping_pings().await.text());
    }
    packets.sort();
    packets
}

/// Sends `packet` and expects exactly `reply` as the next packet.
async fn assert_reply(client: &mut SioClient, packet: &str, reply: &str) {
    assert_eq!(
        send_and_collect(client, packet, 1).await,
        [reply],
        "reply to {packet}"
    );
}

/// Asserts that nothing was queued to `client`: its sentinel is answered first.
async fn assert_nothing_queued(client: &mut SioClient) {
    let sentinel = r#"42["message","sentinel"]"#;
    assert_reply(client, sentinel, r#"42["message-back","sentinel"]"#).await;
}

/// Connects a client and joins `room`.
async fn member(fixture: &Fixture, room: &str) -> SioClient {
    let mut client = fixture.sio_connect().await;
    assert_reply(
        &mut client,
        &format!(r#"421["join","{room}"]"#),
        "431[true]",
    )
    .await;
    client
}

/// The handshake advertises Switchboard's default timings, not the test suites' ones.
#[tokio::test]
async fn handshake_uses_default_timings() {
    let fixture = Fixture::start(Mode::Cluster);
    let response = fixture.get(POLLING).await.unwrap();
    let open = OpenPacket::parse(response.text());
    assert_eq!(open.upgrades, ["websocket"]);
    assert_eq!((open.ping_interval, open.ping_timeout), (25_000, 20_000));
}

/// `broadcast` reaches every member, the sender included, and no one else.
#[tokio::test]
async fn broadcast_reaches_room_members_including_sender() {
    let fixture = Fixture::start(Mode::Cluster);
    let mut sender = member(&fixture, "r-broadcast").await;
    let mut other = member(&fixture, "r-broadcast").await;
    let mut outsider = fixture.sio_connect().await;
    let news = r#"42["news",1,"x"]"#;
    let sent = send_and_collect(
        &mut sender,
        r#"422["broadcast","r-broadcast","news",1,"x"]"#,
        2,
    )
    .await;
    assert_eq!(sent, [news, "432[true]"]);
    assert_eq!(other.ws.recv_skipping_pings().await.text(), news);
    assert_nothing_queued(&mut outsider).await;
}

/// `broadcast-except-self` reaches the other members only.
#[tokio::test]
async fn broadcast_except_self_skips_sender() {
    let fixture = Fixture::start(Mode::Cluster);
    let mut sender = member(&fixture, "r-except").await;
    let mut other = member(&fixture, "r-except").await;
    let packet = r#"422["broadcast-except-self","r-except","news",{"a":[true]}]"#;
    assert_reply(&mut sender, packet, "432[true]").await;
    let received = other.ws.recv_skipping_pings().await.text();
    assert_eq!(received, r#"42["news",{"a":[true]}]"#);
    assert_nothing_queued(&mut sender).await;
}

/// After `leave`, room broadcasts no longer reach the socket.
#[tokio::test]
async fn leave_stops_room_broadcasts() {
    let fixture = Fixture::start(Mode::Cluster);
    let mut sender = member(&fixture, "r-leave").await;
    let mut leaver = member(&fixture, "r-leave").await;
    assert_reply(&mut leaver, r#"422["leave","r-leave"]"#, "432[true]").await;
    let packet = r#"423["broadcast-except-self","r-leave","news"]"#;
    assert_reply(&mut sender, packet, "433[true]").await;
    assert_nothing_queued(&mut leaver).await;
}

/// `rooms` lists the socket's own id and the rooms it joined.
#[tokio::test]
async fn rooms_lists_own_id_and_joined_rooms() {
    let fixture = Fixture::start(Mode::Cluster);
    let mut client = member(&fixture, "r-rooms").await;
    let ack = send_and_collect(&mut client, r#"422["rooms"]"#, 1).await;
    let json = ack[0].strip_prefix("432").expect("ack of id 2");
    let value: serde_json::Value = serde_json::from_str(json).unwrap();
    let mut rooms: Vec<&str> = value[0]
        .as_array()
        .expect("an array of rooms")
        .iter()
        .map(|room| room.as_str().expect("room names are strings"))
        .collect();
    rooms.sort_unstable();
    let mut expected = vec![client.sid.as_str(), "r-rooms"];
    expected.sort_unstable();
    assert_eq!(rooms, expected);
}

/// `message` and `message-with-ack` behave as in the `socketio` fixture.
#[tokio::test]
async fn message_and_message_with_ack_echo() {
    let fixture = Fixture::start(Mode::Cluster);
    let mut client = fixture.sio_connect().await;
    let echo = r#"42["message-back",1,{"b":null}]"#;
    assert_reply(&mut client, r#"42["message",1,{"b":null}]"#, echo).await;
    let with_ack = r#"427["message-with-ack","x",[2]]"#;
    assert_reply(&mut client, with_ack, r#"437["x",[2]]"#).await;
}

/// `request-ack`: the server emits with an ack id, the client acks, the server reports
/// the client's ack arguments.
#[tokio::test]
async fn request_ack_reports_client_ack() {
    let fixture = Fixture::start(Mode::Cluster);
    let mut client = fixture.sio_connect().await;
    let ws = &mut client.ws;
    ws.send_text(r#"42["request-ack","ping-me",1,"a"]"#)
        .await
        .unwrap();
    let request = ws.recv_skipping_pings().await.text();
    let rest = request.strip_prefix("42").expect("an EVENT");
    let split = rest.find('[').expect("a payload");
    let id: u64 = rest[..split].parse().expect("an ack id");
    assert_eq!(&rest[split..], r#"["ping-me",1,"a"]"#);
    ws.send_text(&format!(r#"43{id}["pong",2]"#)).await.unwrap();
    let result = ws.recv_skipping_pings().await.text();
    assert_eq!(result, r#"42["request-ack-result",["pong",2]]"#);
}

/// `disconnect-me`: the server sends `DISCONNECT` for the namespace.
#[tokio::test]
async fn disconnect_me_sends_disconnect() {
    let fixture = Fixture::start(Mode::Cluster);
    let mut client = fixture.sio_connect().await;
    client.ws.send_text(r#"42["disconnect-me"]"#).await.unwrap();
    assert_eq!(client.ws.recv_skipping_pings().await.text(), "41");
}
