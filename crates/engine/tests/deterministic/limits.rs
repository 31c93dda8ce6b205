//! Bounded outbound queues: slow consumers are cut with their own reason, volatile
//! packets are dropped instead of queued, and other clients are unaffected.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::json;
use switchboard_engine::QueueLimits;
use switchboard_engine::eio::session::MAX_HANDSHAKE_HEADER_BYTES;

use super::harness::{Client, PING_INTERVAL, config, disconnects, request, send, server};

#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_read_is_disconnected_as_slow_consumer() {
    let mut cfg = config();
    cfg.engine.queue = QueueLimits {
        max_packets: 8,
        max_bytes: 1 << 20,
    };
    let io = server(cfg);
    let slow = Client::connected(&io).await;
    let fast = Client::connected(&io).await;
    let ns = io.of("/");
    let mut reached = Vec::new();
    for i in 0..20 {
        reached.push(ns.emit("tick", json!(i)));
        if i % 4 == 0 {
            let _ = fast.get().await;
        }
    }
    tokio::task::yield_now().await;
    assert_eq!(disconnects(&io, "slow consumer"), 1);
    assert_eq!(*reached.last().unwrap(), 1, "only the fast client remains");
    assert!(fast.get().await.contains("tick"));
    slow.assert_closed().await;
}

#[tokio::test(start_paused = true)]
async fn the_byte_bound_applies_too() {
    let mut cfg = config();
    cfg.engine.queue = QueueLimits {
        max_packets: 1000,
        max_bytes: 1000,
    };
    let io = server(cfg);
    let _slow = Client::connected(&io).await;
    let ns = io.of("/");
    for _ in 0..5 {
        ns.emit("big", json!("x".repeat(300)));
    }
    tokio::task::yield_now().await;
    assert_eq!(disconnects(&io, "slow consumer"), 1);
}

#[tokio::test(start_paused = true)]
async fn volatile_packets_are_dropped_while_the_client_is_not_ready() {
    let io = server(config());
    let client = Client::connected(&io).await;
    let ns = io.of("/");
    ns.emit("first", json!(1));
    for _ in 0..5 {
        ns.to("nobody-room").emit("ignored", json!(0));
        switchboard_engine::sio::BroadcastOperator::clone(&ns.except("nobody-room"))
            .volatile()
            .emit("volatile", json!(2));
    }
    let body = client.get().await;
    assert_eq!(body, "42[\"first\",1]");
    assert_eq!(io.engine().metrics().snapshot().volatile_dropped, 5);
    assert_eq!(disconnects(&io, "slow consumer"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_client_pings_queues_nothing_but_the_close_packet() {
    let mut cfg = config();
    cfg.engine.queue = QueueLimits {
        max_packets: 8,
        max_bytes: 1 << 20,
    };
    let io = server(cfg);
    let client = Client::connected(&io).await;
    // A GET waiting when the session closes receives what was queued.
    let waiting = tokio::spawn({
        let client = Client {
            io: io.clone(),
            sid: client.sid.clone(),
        };
        async move { client.get().await }
    });
    tokio::task::yield_now().await;
    // Each ping used to queue a pong outside the bounds: 1000 of them in one POST.
    let flood = vec!["2"; 1000].join("\x1e");
    client.post(&flood).await;
    let body = waiting.await.unwrap();
    assert_eq!(body, "1", "no pong, only the close packet");
    assert_eq!(disconnects(&io, "transport error"), 1);
    assert_eq!(disconnects(&io, "slow consumer"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_server_ping_that_does_not_fit_closes_a_full_queue_as_slow_consumer() {
    let mut cfg = config();
    cfg.engine.queue = QueueLimits {
        max_packets: 2,
        max_bytes: 1 << 20,
    };
    let io = server(cfg);
    let client = Client::connected(&io).await;
    let ns = io.of("/");
    ns.emit("tick", json!(0));
    ns.emit("tick", json!(1));
    // The queue is full when the heartbeat's ping is due: it does not go past the bound.
    tokio::time::sleep(PING_INTERVAL + Duration::from_millis(10)).await;
    assert_eq!(disconnects(&io, "slow consumer"), 1);
    client.assert_closed().await;
}

#[tokio::test(start_paused = true)]
async fn a_session_keeps_a_bounded_copy_of_its_handshake_headers() {
    let io = server(config());
    let seen: Arc<Mutex<Option<HeaderMap>>> = Arc::default();
    io.of("/").on_connection({
        let seen = seen.clone();
        move |socket| *seen.lock().unwrap() = Some(socket.handshake().headers.clone())
    });
    let mut req = Request::builder()
        .method(Method::GET)
        .uri("/socket.io/?EIO=4&transport=polling");
    for i in 0..90 {
        req = req.header(format!("x-filler-{i}"), "f".repeat(150));
    }
    // Sent last, after far more than the budget: credentials are kept first.
    req = req
        .header("cookie", "session=abc")
        .header("authorization", "Bearer xyz");
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let (status, body) = send(&io, req).await;
    let client = Client::opened(&io, status, &body);
    client.post("40").await;
    let _ = client.get().await;
    let kept = seen.lock().unwrap().take().expect("connected");
    let cost: usize = kept
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum();
    assert_eq!(MAX_HANDSHAKE_HEADER_BYTES, 8 * 1024);
    assert!(cost <= 8 * 1024, "{cost} bytes kept");
    assert!(
        kept.len() > 10,
        "headers up to the budget are kept: {}",
        kept.len()
    );
    assert_eq!(kept["cookie"], "session=abc");
    assert_eq!(kept["authorization"], "Bearer xyz");
}

#[tokio::test(start_paused = true)]
async fn a_websocket_handshake_holds_its_slot_before_it_completes() {
    let mut cfg = config();
    cfg.engine.max_connections = 1;
    let io = server(cfg);
    let upgrade = Request::builder()
        .method(Method::GET)
        .uri("/socket.io/?EIO=4&transport=websocket")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (status, _) = send(&io, upgrade).await;
    assert_eq!(status, StatusCode::SWITCHING_PROTOCOLS);
    // The WebSocket is not up yet (its task has not run), but its slot is taken.
    let (status, body) = request(&io, Method::GET, "EIO=4&transport=polling", "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(io.engine().session_count(), 0);
    // This request carries no connection to upgrade, so the handshake fails: its
    // slot is given back.
    for _ in 0..4 {
        tokio::task::yield_now().await;
    }
    Client::handshake(&io).await;
    assert_eq!(io.engine().metrics().snapshot().connections_refused, 1);
}

/// The same for its query: a request line of 12 KB of `a&a&…` (under the 16 KiB head
/// bound) leaves the session its first pairs within 8 KiB, counted as headers are,
/// decoded pairs included; the Engine.IO parameters in front are kept.
#[tokio::test(start_paused = true)]
async fn a_session_keeps_a_bounded_copy_of_its_handshake_query() {
    use switchboard_engine::eio::session::MAX_HANDSHAKE_QUERY_BYTES;
    let io = server(config());
    let seen: Arc<Mutex<Option<(String, usize)>>> = Arc::default();
    io.of("/").on_connection({
        let seen = seen.clone();
        move |socket| {
            let h = socket.handshake();
            *seen.lock().unwrap() = Some((h.query.clone(), h.query_params.len()));
        }
    });
    let flood = "a&".repeat(6_000);
    let (status, body) = request(
        &io,
        Method::GET,
        &format!("EIO=4&transport=polling&{flood}"),
        "",
    )
    .await;
    let client = Client::opened(&io, status, &body);
    client.post("40").await;
    let _ = client.get().await;
    let (query, pairs) = seen.lock().unwrap().take().expect("connected");
    let cost: usize = query.split('&').map(|p| p.len() + 32).sum();
    assert!(cost <= MAX_HANDSHAKE_QUERY_BYTES, "{cost}");
    assert!(
        query.starts_with("EIO=4&transport=polling&a&"),
        "{query:.40}"
    );
    assert_eq!(pairs, query.split('&').count());
    assert!(pairs < 300, "{pairs} pairs kept");
}
