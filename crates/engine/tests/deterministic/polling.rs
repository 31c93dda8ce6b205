//! Long-polling rules: payload framing, one request of each kind at a time, limits.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use hyper::body::Frame;

use super::harness::{
    Client, PING_INTERVAL, PING_TIMEOUT, config, disconnects, request, send, server,
};

#[tokio::test(start_paused = true)]
async fn error_codes_match_engine_io() {
    let io = server(config());
    let cases = [
        (
            Method::GET,
            "EIO=4&transport=carrier-pigeon",
            400,
            r#"{"code":0,"message":"Transport unknown"}"#,
        ),
        (
            Method::GET,
            "EIO=4&transport=polling&sid=doesnotexist00000000",
            400,
            r#"{"code":1,"message":"Session ID unknown"}"#,
        ),
        (
            Method::POST,
            "EIO=4&transport=polling",
            400,
            r#"{"code":2,"message":"Bad handshake method"}"#,
        ),
        (
            Method::GET,
            "EIO=4&transport=websocket",
            400,
            r#"{"code":3,"message":"Bad request"}"#,
        ),
        (
            Method::GET,
            "EIO=3&transport=polling",
            400,
            r#"{"code":5,"message":"Unsupported protocol version"}"#,
        ),
    ];
    for (method, query, status, body) in cases {
        let (s, b) = request(&io, method, query, "").await;
        assert_eq!((s.as_u16(), b.as_str()), (status, body), "{query}");
    }
}

#[tokio::test(start_paused = true)]
async fn several_packets_in_one_post_and_one_get() {
    let io = server(config());
    io.of("/").on("echo", |ev| {
        let _ = ev.socket.emit("echo", ev.payload.clone());
    });
    let client = Client::connected(&io).await;
    client.post("42[\"echo\",1]\x1e42[\"echo\",2]").await;
    assert_eq!(client.get().await, "42[\"echo\",1]\x1e42[\"echo\",2]");
}

#[tokio::test(start_paused = true)]
async fn binary_arrives_as_base64_and_is_echoed_as_base64() {
    let io = server(config());
    io.of("/").on("echo", |ev| {
        let _ = ev.socket.emit("echo", ev.payload.clone());
    });
    let client = Client::connected(&io).await;
    client
        .post("451-[\"echo\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID")
        .await;
    assert_eq!(
        client.get().await,
        "451-[\"echo\",{\"_placeholder\":true,\"num\":0}]\x1ebAQID"
    );
}

#[tokio::test(start_paused = true)]
async fn a_second_concurrent_get_is_refused_and_closes_the_session() {
    let io = server(config());
    let client = Client::connected(&io).await;
    let first = {
        let io = io.clone();
        let sid = client.sid.clone();
        tokio::spawn(async move { Client { io, sid }.get_raw().await })
    };
    tokio::task::yield_now().await;
    let (status, body) = client.get_raw().await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The first GET is released with the close packet.
    let (status, body) = first.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
}

#[tokio::test(start_paused = true)]
async fn a_body_over_max_payload_gets_413() {
    let mut cfg = config();
    cfg.engine.max_payload = 100;
    let io = server(cfg);
    let client = Client::connected(&io).await;
    let (status, _) = client.post_raw(&format!("4{}", "x".repeat(200))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    client.assert_closed().await;
}

#[tokio::test(start_paused = true)]
async fn malformed_packets_close_the_connection_and_others_keep_working() {
    let io = server(config());
    io.of("/").on("echo", |ev| {
        let _ = ev.socket.emit("echo", ev.payload.clone());
    });
    let healthy = Client::connected(&io).await;
    for bad in [
        "4",
        "49",
        "42{\"not\":\"array\"}",
        "42[\"disconnect\"]",
        "bNOT-BASE64!",
        "7",
        "42/unjoined,[\"x\"]",
        "451-[\"x\"]\x1e42[\"y\"]",
    ] {
        let client = Client::connected(&io).await;
        let _ = client.post_raw(bad).await;
        client.assert_closed().await;
    }
    // Nothing of the closed clients is left behind.
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    assert_eq!(io.engine().session_count(), 1);
    assert_eq!(io.of("/").socket_count(), 1);
    healthy.post("42[\"echo\",\"still here\"]").await;
    let body = healthy.get().await;
    assert!(body.ends_with("42[\"echo\",\"still here\"]"), "{body}");
}

#[tokio::test(start_paused = true)]
async fn a_burst_is_split_into_polls_of_at_most_sixteen_packets() {
    let io = server(config());
    let client = Client::connected(&io).await;
    let ns = io.of("/");
    for i in 0..40 {
        ns.emit("n", serde_json::json!(i));
    }
    let mut seen = Vec::new();
    while seen.len() < 40 {
        let body = client.get().await;
        let packets: Vec<&str> = body.split('\x1e').collect();
        assert!(packets.len() <= 16, "{} packets in one poll", packets.len());
        seen.extend(packets.iter().map(|p| p.to_string()));
    }
    let expected: Vec<String> = (0..40).map(|i| format!("42[\"n\",{i}]")).collect();
    assert_eq!(seen, expected, "order is kept across polls");
}

/// A GET of `client` sent now, answered later.
fn waiting_get(client: &Client) -> tokio::task::JoinHandle<(StatusCode, String)> {
    let client = Client {
        io: client.io.clone(),
        sid: client.sid.clone(),
    };
    tokio::spawn(async move { client.get_raw().await })
}

#[tokio::test(start_paused = true)]
async fn a_client_ping_closes_the_session_as_node_does() {
    let io = server(config());
    let client = Client::connected(&io).await;
    let waiting = waiting_get(&client);
    tokio::task::yield_now().await;
    client.post("2").await;
    // No pong: Engine.IO v4 heartbeats go server → client, and Node closes with
    // "transport error" ("invalid heartbeat direction").
    let (status, body) = waiting.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1"));
    assert_eq!(disconnects(&io, "transport error"), 1);
    client.assert_closed().await;
}

/// A body of which only the first bytes ever arrive.
struct Stalled {
    first: Option<Bytes>,
}

impl hyper::body::Body for Stalled {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.first.take() {
            Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            None => Poll::Pending,
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_post_body_that_stalls_is_cut_off_after_the_deadline() {
    let mut cfg = config();
    // Shorter than a heartbeat round: the client cannot pong while its POST is open.
    let deadline = Duration::from_millis(200);
    cfg.engine.body_timeout = deadline;
    let io = server(cfg);
    let client = Client::connected(&io).await;
    let waiting = waiting_get(&client);
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/socket.io/?{}", client.query()))
        .body(Stalled {
            first: Some(Bytes::from_static(b"42[\"slow")),
        })
        .unwrap();
    let started = tokio::time::Instant::now();
    let (status, _) = tokio::time::timeout(Duration::from_secs(30), send(&io, req))
        .await
        .expect("the stalled POST is answered");
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    assert_eq!(started.elapsed(), deadline, "answered at the deadline");
    let (status, body) = waiting.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "1"), "closed");
    assert_eq!(disconnects(&io, "transport error"), 1);
    client.assert_closed().await;
}

/// A binary packet is one message however its parts arrive: its attachments together
/// (here two, in two POSTs each within `engine.max_payload`) pass the bound, and the
/// sender is closed with `payload too large`, as a polling body holding it all would
/// be; the event is not handled. Before, each attachment had the bound alone, so one
/// event of ten attachments could reach every receiver at ten times `max_payload`,
/// past their queues' byte bound. Within the bound, the same event is handled.
#[tokio::test(start_paused = true)]
async fn a_binary_packet_is_bounded_whole_by_max_payload() {
    use base64::Engine as _;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let mut cfg = config();
    cfg.engine.max_payload = 2000;
    let io = server(cfg);
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    io.of("/").on("up", move |_| {
        seen.fetch_add(1, SeqCst);
    });
    let header = "452-[\"up\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]";
    let attachment = |n: usize| {
        format!(
            "b{}",
            base64::engine::general_purpose::STANDARD.encode(vec![7u8; n])
        )
    };

    let fits = Client::connected(&io).await;
    fits.post(header).await;
    fits.post(&attachment(800)).await;
    fits.post(&attachment(800)).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(handled.load(SeqCst), 1, "within the bound, handled");

    let over = Client::connected(&io).await;
    over.post(header).await;
    over.post(&attachment(1400)).await;
    let _ = over.post_raw(&attachment(1400)).await;
    over.assert_closed().await;
    // The session's driver counts the close.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(disconnects(&io, "payload too large"), 1);
    assert_eq!(
        handled.load(SeqCst),
        1,
        "the event over the bound is not handled"
    );
}

/// A kick (`disconnect_sockets(true)`) between two polls: the client's next GET gets
/// the DISCONNECT, the one after the `close`, as Node's polling transport sends its
/// close on the next poll; the application saw the disconnect at once. It got 400
/// before, and the client reconnected as after a network error.
#[tokio::test(start_paused = true)]
async fn a_kick_between_polls_reaches_the_client() {
    let io = server(config());
    let seen = super::harness::disconnects_seen(&io.of("/"));
    let client = Client::connected(&io).await;
    io.of("/").all().disconnect_sockets(true);
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(seen.lock().unwrap().len(), 1, "the handlers ran at once");
    let (status, body) = client.get_raw().await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "41"));
    client.assert_closed().await;
}

/// What was queued before the server closed a polling session reaches the client; a
/// client that does not come back for it holds the session for a bounded time.
#[tokio::test(start_paused = true)]
async fn frames_queued_before_a_server_close_reach_the_client() {
    let io = server(config());
    let ns = io.of("/");
    let client = Client::connected(&io).await;
    ns.emit("last", vec![serde_json::json!(1)]);
    let sid = client.sid.clone();
    assert!(
        io.engine()
            .close_session(&sid, switchboard_engine::DisconnectReason::ForcedClose)
    );
    let (status, body) = client.get_raw().await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"42["last",1]"#));
    client.assert_closed().await;

    let gone = Client::connected(&io).await;
    ns.emit("unread", vec![serde_json::json!(2)]);
    io.engine()
        .close_session(&gone.sid, switchboard_engine::DisconnectReason::ForcedClose);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(io.engine().session_count(), 0);
    assert_eq!(gone.get_raw().await.0, StatusCode::BAD_REQUEST);
}

/// One POST of many tiny events lets other tasks run while it is handled: handled in
/// one poll, a `max_payload` body of them held a worker thread for tens of ms.
#[tokio::test(start_paused = true)]
async fn a_post_of_many_events_lets_other_tasks_run() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let io = server(config());
    let ns = io.of("/");
    let other_ran = Arc::new(AtomicBool::new(false));
    let seen_after_other = Arc::new(AtomicUsize::new(0));
    ns.on("e", {
        let (other_ran, seen_after_other) = (other_ran.clone(), seen_after_other.clone());
        move |_| {
            if other_ran.load(Ordering::Relaxed) {
                seen_after_other.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let client = Client::connected(&io).await;
    let body = vec![r#"42["e"]"#; 10_000].join("\u{1e}");
    tokio::spawn({
        let other_ran = other_ran.clone();
        async move { other_ran.store(true, Ordering::Relaxed) }
    });
    client.post(&body).await;
    assert!(
        seen_after_other.load(Ordering::Relaxed) > 0,
        "the other task ran only after every event was handled"
    );
}

/// A closed session that lingers for its last polls ends at once when its client
/// closes instead of polling; it cannot be upgraded; and one closed because its
/// client is gone (no pong) is refused, not served, as in Node.
#[tokio::test(start_paused = true)]
async fn a_lingering_session_serves_its_last_polls_only() {
    let io = server(config());
    let client = Client::connected(&io).await;
    io.of("/").all().disconnect_sockets(true);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let upgrade = Request::builder()
        .method(Method::GET)
        .uri(format!(
            "/socket.io/?EIO=4&transport=websocket&sid={}",
            client.sid
        ))
        .header("upgrade", "websocket")
        .header("connection", "Upgrade")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&io, upgrade).await.0, StatusCode::BAD_REQUEST);
    let (status, body) = client.get_raw().await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "41"));
    client.post("1").await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        io.engine().session_count(),
        0,
        "ended by the client's close"
    );

    // No pong: the client is gone, a late GET is refused.
    let ns = io.of("/");
    let silent = Client::connected(&io).await;
    tokio::time::sleep(PING_INTERVAL + Duration::from_millis(10)).await;
    ns.emit("late", vec![serde_json::json!(1)]);
    tokio::time::advance(PING_TIMEOUT).await;
    assert_eq!(silent.get_raw().await.0, StatusCode::BAD_REQUEST);
}
