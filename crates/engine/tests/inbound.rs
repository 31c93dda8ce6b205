//! Messages on their way in, over real sockets: unfinished WebSocket messages and
//! polling bodies being read share the node's `max_inbound_bytes`, and a WebSocket
//! message sent in fragments must be whole within `body_timeout`.
//!
//! The clients send what an attacker would: the first fragments of a large message,
//! then only pongs (or nothing more of a POST body), holding the server's buffers.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
#[path = "common/ws_client.rs"]
mod ws_client;
use switchboard_engine::{Io, SocketIoConfig, not_found, serve, shutdown};
use ws_client::{Ws, connected, evidence_of, next_text};

#[path = "common/http1.rs"]
mod http1;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// A server on loopback whose `/` echoes event `big` back as `got`.
async fn start(max_inbound_bytes: usize, body_timeout: Duration) -> (Io, String) {
    let (trigger, signal) = shutdown::channel();
    // The server lives for the test process.
    std::mem::forget(trigger);
    let mut config = SocketIoConfig::default();
    config.engine.max_inbound_bytes = max_inbound_bytes;
    config.engine.body_timeout = body_timeout;
    let io = Io::new(config, signal.clone());
    io.of("/").on("big", |ev| {
        let _ = ev.socket.emit("got", ev.payload.clone());
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, io.engine().clone(), not_found, signal));
    (io, addr)
}

/// Sends the first fragment of the event `big` whose argument is `len` bytes of `x`:
/// everything but the closing `"]`.
async fn first_fragment(ws: &mut Ws, len: usize) {
    let text = format!(r#"42["big","{}"#, "x".repeat(len));
    let frame = Frame::message(text, OpCode::Data(Data::Text), false);
    ws.send(Message::Frame(frame)).await.unwrap();
}

/// Sends the final fragment of that event.
async fn last_fragment(ws: &mut Ws) {
    let frame = Frame::message(r#""]"#, OpCode::Data(Data::Continue), true);
    ws.send(Message::Frame(frame)).await.unwrap();
}

/// Waits until the node holds `bytes` on their way in (at most 10 s).
async fn held(io: &Io, bytes: impl Fn(usize) -> bool) -> usize {
    for _ in 0..1000 {
        let now = io.engine().metrics().snapshot().inbound_bytes;
        if bytes(now) {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "inbound bytes stayed at {}",
        io.engine().metrics().snapshot().inbound_bytes
    );
}

/// What a client leaves unfinished: a message's first fragment, or a binary packet's
/// first attachment.
#[derive(Clone, Copy)]
enum Unfinished {
    Fragment,
    Attachment,
}

impl Unfinished {
    async fn send(self, ws: &mut Ws, len: usize) {
        match self {
            Unfinished::Fragment => first_fragment(ws, len).await,
            Unfinished::Attachment => first_attachment(ws, len).await,
        }
    }
}

/// On a server with a budget of 64 KiB: a client leaves 40 kB `unfinished`, which the
/// node holds; a second client doing the same would pass the budget, so its session is
/// closed as `server overloaded`. Returns the first client and what the node holds.
async fn the_second_past_the_budget_is_closed(
    io: &Io,
    addr: &str,
    unfinished: Unfinished,
) -> (Ws, usize) {
    let mut holder = connected(addr).await;
    unfinished.send(&mut holder, 40_000).await;
    let holding = held(io, |n| n >= 40_000).await;
    assert!(holding < 41_000, "{holding} bytes for 40 kB");

    let mut second = connected(addr).await;
    unfinished.send(&mut second, 40_000).await;
    assert_eq!(next_text(&mut second).await.as_deref(), Some("1"), "closed");
    assert_eq!(next_text(&mut second).await, None);
    let evidence = evidence_of(io, "server overloaded").await;
    assert!(
        evidence[0].contains("engine.max_inbound_bytes (64.0 KiB)"),
        "{evidence:?}"
    );
    held(io, |n| n == holding).await;
    (holder, holding)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_websocket_messages_share_the_node_budget_and_the_one_past_it_is_closed() {
    let (io, addr) = start(64 * 1024, Duration::from_secs(60)).await;
    let (mut holder, _) =
        the_second_past_the_budget_is_closed(&io, &addr, Unfinished::Fragment).await;

    // The first finishes its message: it arrives whole, and its bytes are given back.
    last_fragment(&mut holder).await;
    let got = next_text(&mut holder).await.unwrap();
    assert_eq!(got.len(), r#"42["got",""]"#.len() + 40_000);
    held(&io, |n| n == 0).await;

    // With the budget free, another client's large message goes through.
    let mut third = connected(&addr).await;
    first_fragment(&mut third, 40_000).await;
    last_fragment(&mut third).await;
    let got = next_text(&mut third).await.unwrap();
    assert!(got.starts_with(r#"42["got","xxx"#));
    // Small messages never hold any of it: many in a row leave nothing held.
    for _ in 0..100 {
        third
            .send(Message::text(r#"42["big","small"]"#))
            .await
            .unwrap();
    }
    for _ in 0..100 {
        assert_eq!(next_text(&mut third).await.unwrap(), r#"42["got","small"]"#);
    }
    assert_eq!(io.engine().metrics().snapshot().inbound_bytes, 0);
}

/// A budget the size of `max_payload` takes one message of nearly that size whole:
/// what the budget counts is the client's bytes, not the headers of the pieces the
/// server cuts a long frame into before its WebSocket library reads it (before that
/// was fixed, the pieces' headers took a 999,900-byte message past a 1,000,000-byte
/// budget and the session was closed `server overloaded`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_of_max_payload_takes_one_message_of_nearly_that_size() {
    let (_io, addr) = start(1_000_000, Duration::from_secs(10)).await;
    let mut ws = connected(&addr).await;
    let filler = "x".repeat(999_900 - r#"42["big",""]"#.len());
    ws.send(Message::text(format!(r#"42["big","{filler}"]"#)))
        .await
        .unwrap();
    let got = next_text(&mut ws).await.expect("the session stays open");
    assert!(
        got.starts_with(r#"42["got","xxx"#),
        "{}",
        &got[..40.min(got.len())]
    );
    assert_eq!(got.len(), 999_900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_message_in_fragments_must_be_whole_within_the_body_timeout() {
    let timeout = Duration::from_millis(500);
    let (io, addr) = start(1 << 20, timeout).await;
    let mut slow = connected(&addr).await;
    first_fragment(&mut slow, 1_000).await;
    // The client keeps talking (WebSocket pings), so only the deadline can end it.
    let mut closed = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if slow.send(Message::Ping(vec![1].into())).await.is_err() {
            closed = true;
            break;
        }
        if let Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) =
            tokio::time::timeout(Duration::from_millis(1), slow.next()).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "still open 5 s after a 500 ms body timeout");
    assert_eq!(
        evidence_of(&io, "transport error").await[0],
        "a websocket message did not arrive whole within engine.body_timeout (500 ms)"
    );
    held(&io, |n| n == 0).await;

    // A message in fragments that finishes in time is served.
    let mut fine = connected(&addr).await;
    first_fragment(&mut fine, 1_000).await;
    last_fragment(&mut fine).await;
    assert!(
        next_text(&mut fine)
            .await
            .unwrap()
            .starts_with(r#"42["got","#)
    );
}

/// A polling session: its sid, joined to `/`.
async fn polling_session(addr: &str) -> String {
    let client = http1::get(addr, "/socket.io/?EIO=4&transport=polling").await;
    let open: serde_json::Value = serde_json::from_str(client.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap().to_owned();
    let query = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    assert_eq!(http1::post(addr, &query, "40").await.0, 200);
    assert!(http1::get(addr, &query).await.starts_with("40{"));
    sid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_bodies_being_read_share_the_budget_and_the_one_past_it_gets_503() {
    let (io, addr) = start(64 * 1024, Duration::from_secs(60)).await;
    let first = polling_session(&addr).await;
    let second = polling_session(&addr).await;
    // The first POST announces 41 kB and sends 40 kB of it.
    let body = format!(r#"42["big","{}"]"#, "x".repeat(40_000));
    let mut holder = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /socket.io/?EIO=4&transport=polling&sid={first} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    holder.write_all(head.as_bytes()).await.unwrap();
    holder.write_all(&body.as_bytes()[..40_000]).await.unwrap();
    held(&io, |n| n >= 40_000).await;

    // The second's 40 kB body would pass 64 KiB: 503, and its session is closed.
    let query = format!("/socket.io/?EIO=4&transport=polling&sid={second}");
    let (status, answer) = http1::post(&addr, &query, &body).await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("max_inbound_bytes"), "{answer}");
    let evidence = evidence_of(&io, "server overloaded").await;
    assert!(
        evidence[0].contains("this polling body would have passed it"),
        "{evidence:?}"
    );

    // The first body finishes: it is served and gives its bytes back.
    holder.write_all(&body.as_bytes()[40_000..]).await.unwrap();
    let mut answer = vec![0; 1024];
    let n = holder.read(&mut answer).await.unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    held(&io, |n| n == 0).await;
    let query = format!("/socket.io/?EIO=4&transport=polling&sid={first}");
    assert!(
        http1::get(&addr, &query)
            .await
            .starts_with(r#"42["got","xxx"#)
    );
}

/// Sends the text part of event `big` with two binary arguments, then the first of
/// them: `len` bytes. The packet now waits for its second attachment.
async fn first_attachment(ws: &mut Ws, len: usize) {
    let text = r#"452-["big",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#;
    ws.send(Message::text(text)).await.unwrap();
    ws.send(Message::binary(vec![7; len])).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_waiting_for_its_binary_attachments_holds_the_budget_until_it_is_whole() {
    // Each attachment is a whole WebSocket message, but the packet is not whole until
    // the last: what the server holds meanwhile is bytes on their way in.
    let (io, addr) = start(64 * 1024, Duration::from_secs(60)).await;
    let (mut holder, _) =
        the_second_past_the_budget_is_closed(&io, &addr, Unfinished::Attachment).await;

    // The last attachment: the event is served, and the bytes are given back.
    holder.send(Message::binary(vec![8; 10])).await.unwrap();
    let got = next_text(&mut holder).await.unwrap();
    assert!(got.starts_with(r#"452-["got","#), "{got}");
    held(&io, |n| n == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_whose_binary_attachments_stop_coming_is_cut_off_at_the_body_timeout() {
    let timeout = Duration::from_millis(500);
    let (io, addr) = start(1 << 20, timeout).await;
    let mut slow = connected(&addr).await;
    first_attachment(&mut slow, 1_000).await;
    held(&io, |n| n >= 1_000).await;
    // The client answers pings but never sends the second attachment.
    let closing = tokio::time::timeout(Duration::from_secs(10), next_text(&mut slow))
        .await
        .expect("not cut off 10 s after a 500 ms body timeout");
    assert_eq!(closing.as_deref(), Some("1"), "closed");
    assert_eq!(
        evidence_of(&io, "transport error").await[0],
        "a websocket message did not arrive whole within engine.body_timeout (500 ms)"
    );
    held(&io, |n| n == 0).await;

    // One whose attachments all arrive in time is served.
    let mut fine = connected(&addr).await;
    first_attachment(&mut fine, 1_000).await;
    fine.send(Message::binary(vec![8; 10])).await.unwrap();
    assert!(
        next_text(&mut fine)
            .await
            .unwrap()
            .starts_with(r#"452-["got","#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_binary_packet_gives_way_to_a_newer_message_once_the_budget_is_full() {
    // A body timeout of 10 s: a message on its way in for over 1 s may give way.
    let (io, addr) = start(64 * 1024, Duration::from_secs(10)).await;
    let mut stalled = connected(&addr).await;
    first_attachment(&mut stalled, 40_000).await;
    held(&io, |n| n >= 40_000).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    // A real client's large message, in fragments, needs the room: it gets it.
    let mut newer = connected(&addr).await;
    first_fragment(&mut newer, 40_000).await;
    assert_eq!(
        next_text(&mut stalled).await.as_deref(),
        Some("1"),
        "gave way"
    );
    let evidence = evidence_of(&io, "server overloaded").await;
    assert!(
        evidence[0].contains("the longest of them, gave way to a newer one"),
        "{evidence:?}"
    );
    last_fragment(&mut newer).await;
    assert!(
        next_text(&mut newer)
            .await
            .unwrap()
            .starts_with(r#"42["got","xxx"#)
    );
    held(&io, |n| n == 0).await;
}
