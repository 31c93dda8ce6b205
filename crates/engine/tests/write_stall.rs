//! A peer that stops reading, over real sockets: a write that makes no progress for
//! the heartbeat's whole cycle (`ping_interval + ping_timeout`) fails its connection,
//! which then gives back its place among `max_tcp_connections` and what was buffered
//! for it. Before, an SSE listener that stopped reading kept its connection (and what
//! hyper held for it) after its session had ended, for as long as its kernel answered.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use serde_json::json;
use switchboard_engine::{Io, SocketIoConfig, SseConfig, not_found, serve, shutdown};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server with SSE on, a heartbeat cycle of 1 s, and room for one TCP connection.
async fn start() -> (Io, String) {
    let (trigger, signal) = shutdown::channel();
    std::mem::forget(trigger);
    let mut config = SocketIoConfig::default();
    config.engine.ping_interval = Duration::from_millis(500);
    config.engine.ping_timeout = Duration::from_millis(500);
    config.engine.max_tcp_connections = 1;
    config.engine.sse = Some(SseConfig {
        heartbeat: Duration::from_millis(500),
        ..SseConfig::default()
    });
    let io = Io::new(config, signal.clone());
    io.of("/");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, io.engine().clone(), not_found, signal));
    (io, addr)
}

/// Whether a new connection is taken (not closed at once, as one past
/// `max_tcp_connections` is).
async fn a_connection_is_taken(addr: &str) -> bool {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut byte)).await;
    read.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_stops_reading_loses_its_connection_within_a_heartbeat_cycle() {
    let (io, addr) = start().await;
    // A listener with a small receive window that reads nothing after its request.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut listener = socket.connect(addr.parse().unwrap()).await.unwrap();
    listener
        .write_all(b"GET /sse?nsp=/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while io.of("/").socket_count() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 32 MiB for it: far more than the kernel's buffers, hyper's and its queue hold.
    let chunk = "x".repeat(64 * 1024);
    for _ in 0..512 {
        io.of("/").emit("big", json!(chunk));
        tokio::task::yield_now().await;
    }
    // Its session ends (a slow consumer, or its heartbeat); the connection must follow
    // without the listener reading a byte, and give its place back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !a_connection_is_taken(&addr).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled connection still holds the only place"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(io.of("/").socket_count(), 0);
    drop(listener);
}
