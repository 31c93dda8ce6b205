//! `engine.max_sessions_per_ip` and `engine.handshakes_per_ip_per_second` over real
//! sockets: one address cannot take the node's whole `max_connections`, nor open
//! sessions faster than its rate; `X-Forwarded-For` names the client only when a
//! trusted proxy sent it.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};

use switchboard_engine::config::{Cidr, HandshakeRate};
use switchboard_engine::{Io, SocketIoConfig, not_found, serve, shutdown};

#[path = "common/http1.rs"]
mod http1;

const PER_IP: usize = 3;

/// A server on loopback with `max_sessions_per_ip = 3`, trusting `trusted`; and the
/// evidence of every refusal it reports.
async fn start(trusted: &[&str]) -> (Io, String, Arc<Mutex<Vec<String>>>) {
    let mut config = SocketIoConfig::default();
    config.engine.max_sessions_per_ip = PER_IP;
    start_with(config, trusted).await
}

/// A server on loopback with `config`, trusting `trusted`; and the evidence of every
/// refusal it reports.
async fn start_with(
    mut config: SocketIoConfig,
    trusted: &[&str],
) -> (Io, String, Arc<Mutex<Vec<String>>>) {
    let (trigger, signal) = shutdown::channel();
    std::mem::forget(trigger);
    config.engine.trusted_proxies = trusted.iter().map(|t| Cidr::parse(t).unwrap()).collect();
    let io = Io::new(config, signal.clone());
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let seen = refusals.clone();
    io.on_refusal(move |report| {
        seen.lock()
            .unwrap()
            .extend(report.diagnosis.get().evidence.clone());
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, io.engine().clone(), not_found, signal));
    (io, addr, refusals)
}

/// A polling handshake, as the client `forwarded_for` (no header when `None`): the
/// status and the body.
async fn handshake(addr: &str, forwarded_for: Option<&str>) -> (u16, String) {
    let header = forwarded_for.map_or(String::new(), |f| format!("X-Forwarded-For: {f}\r\n"));
    http1::raw(
        addr,
        format!(
            "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n{header}Connection: close\r\n\r\n"
        ),
    )
    .await
}

/// A WebSocket handshake from the same address: the status line's code.
async fn websocket_handshake(addr: &str) -> u16 {
    http1::raw(
        addr,
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
         Connection: Upgrade, close\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
            .to_owned(),
    )
    .await
    .0
}

fn sid(body: &str) -> String {
    let open: serde_json::Value = serde_json::from_str(body.strip_prefix('0').unwrap()).unwrap();
    open["sid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_max_sessions_per_ip_and_a_closed_session_makes_room() {
    let (io, addr, refusals) = start(&[]).await;
    let mut sids = Vec::new();
    for _ in 0..PER_IP {
        let (status, body) = handshake(&addr, None).await;
        assert_eq!(status, 200, "{body}");
        sids.push(sid(&body));
    }
    let (status, body) = handshake(&addr, None).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("engine.max_sessions_per_ip"), "{body}");
    assert_eq!(
        websocket_handshake(&addr).await,
        429,
        "WebSocket handshakes count too"
    );
    // Without a trusted proxy, X-Forwarded-For is the client's own word: ignored.
    assert_eq!(handshake(&addr, Some("203.0.113.9")).await.0, 429);
    assert!(
        refusals
            .lock()
            .unwrap()
            .iter()
            .any(|e| e == "the client's address holds engine.max_sessions_per_ip (3) sessions"),
        "{:?}",
        refusals.lock().unwrap()
    );

    // The client closes one session: its place is free again.
    let query = format!("/socket.io/?EIO=4&transport=polling&sid={}", sids[0]);
    assert_eq!(http1::post(&addr, &query, "1").await.0, 200);
    let mut opened = false;
    for _ in 0..200 {
        if handshake(&addr, None).await.0 == 200 {
            opened = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(opened, "no place freed by the closed session");
    assert_eq!(
        io.engine().metrics().snapshot().connections_polling,
        PER_IP as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_counts_on_its_own() {
    let (_io, addr, _) = start(&["127.0.0.0/8"]).await;
    for client in ["198.51.100.1", "198.51.100.2"] {
        for _ in 0..PER_IP {
            assert_eq!(handshake(&addr, Some(client)).await.0, 200, "{client}");
        }
        assert_eq!(handshake(&addr, Some(client)).await.0, 429, "{client}");
    }
    // What a client writes left of the proxy's entry does not change who it is.
    assert_eq!(
        handshake(&addr, Some("192.0.2.77, 198.51.100.1")).await.0,
        429
    );
    // IPv6 clients count by their /64.
    for i in 0..PER_IP {
        let client = format!("2001:db8:1:2::{}", i + 1);
        assert_eq!(handshake(&addr, Some(&client)).await.0, 200);
    }
    assert_eq!(handshake(&addr, Some("2001:db8:1:2:ffff::1")).await.0, 429);
    assert_eq!(handshake(&addr, Some("2001:db8:1:3::1")).await.0, 200);
}

/// Idle TCP connections from `addr`'s loopback: how many of `n` the server closed at
/// once (a read ends within a moment instead of waiting for the header timeout).
async fn closed_at_once(addr: &str, n: usize) -> usize {
    use tokio::io::AsyncReadExt;
    let mut open = Vec::new();
    for _ in 0..n {
        open.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let reads = open.iter_mut().map(|stream| async move {
        let mut byte = [0u8; 1];
        let wait = std::time::Duration::from_millis(300);
        let read = tokio::time::timeout(wait, stream.read(&mut byte)).await;
        matches!(read, Ok(Ok(0) | Err(_)))
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .filter(|closed| *closed)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_at_most_twice_max_sessions_per_ip_plus_8_tcp_connections() {
    // 3 sessions per address: 14 connections.
    let (io, addr, _) = start(&[]).await;
    assert_eq!(closed_at_once(&addr, 20).await, 6);
    assert_eq!(io.engine().metrics().snapshot().tcp_connections_refused, 6);
    // A trusted proxy's connections are not counted: it carries many clients.
    let (io, addr, _) = start(&["127.0.0.1"]).await;
    assert_eq!(closed_at_once(&addr, 20).await, 0);
    assert_eq!(io.engine().metrics().snapshot().tcp_connections_refused, 0);
}

/// The status of the answer to `request` on a new connection, read without waiting
/// for the rest (a WebSocket or an event stream, when one opens, stays open).
async fn status_of(addr: &str, request: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

const WEBSOCKET_HANDSHAKE: &str = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n\
    Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

const SSE_REQUEST: &str = "GET /sse?nsp=/ HTTP/1.1\r\nHost: x\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_opens_sessions_no_faster_than_its_handshake_rate_on_any_transport() {
    let mut config = SocketIoConfig::default();
    config.engine.handshake_rate_per_ip = HandshakeRate {
        per_second: 1,
        burst: 3,
    };
    config.engine.sse = Some(Default::default());
    let (io, addr, refusals) = start_with(config, &["127.0.0.0/8"]).await;
    // Three at once, one per transport; then three more at once find the bucket
    // empty (each batch made at once, so that no token comes back in between).
    let ((status, body), websocket, sse) = tokio::join!(
        handshake(&addr, None),
        status_of(&addr, WEBSOCKET_HANDSHAKE),
        status_of(&addr, SSE_REQUEST)
    );
    assert_eq!((status, websocket, sse), (200, 101, 200), "{body}");
    let head =
        "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (refused, websocket, sse) = tokio::join!(
        http1::response(&addr, head.to_owned(), ""),
        status_of(&addr, WEBSOCKET_HANDSHAKE),
        status_of(&addr, SSE_REQUEST)
    );
    assert_eq!((websocket, sse), (429, 429));
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(
        refused
            .to_ascii_lowercase()
            .contains("\r\nretry-after: 1\r\n"),
        "{refused}"
    );
    assert!(
        refused.contains("engine.handshakes_per_ip_per_second"),
        "{refused}"
    );
    assert!(
        refusals.lock().unwrap().iter().any(|e| e
            == "the client's address opened sessions faster than \
                engine.handshakes_per_ip_per_second (1, bursts of 3)"),
        "{:?}",
        refusals.lock().unwrap()
    );
    assert!(io.engine().metrics().snapshot().connections_refused >= 3);

    // Closing a session gives no token back: the bound is on turnover, not on what is
    // held.
    let query = format!("/socket.io/?EIO=4&transport=polling&sid={}", sid(&body));
    assert_eq!(http1::post(&addr, &query, "1").await.0, 200);
    assert_eq!(handshake(&addr, None).await.0, 429);

    // Clients a trusted proxy names have buckets of their own, by address (IPv6: by
    // /64), whatever was written left of the proxy's entry.
    for client in ["198.51.100.1", "2001:db8:1:2::1"] {
        for _ in 0..3 {
            assert_eq!(handshake(&addr, Some(client)).await.0, 200, "{client}");
        }
        assert_eq!(handshake(&addr, Some(client)).await.0, 429, "{client}");
    }
    assert_eq!(
        handshake(&addr, Some("192.0.2.77, 198.51.100.1")).await.0,
        429
    );
    assert_eq!(handshake(&addr, Some("2001:db8:1:2:ffff::9")).await.0, 429);
    assert_eq!(handshake(&addr, Some("2001:db8:1:3::1")).await.0, 200);

    // A token comes back at the rate: the address may open one more a second on.
    let mut opened = false;
    for _ in 0..300 {
        if handshake(&addr, None).await.0 == 200 {
            opened = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(opened, "no token came back");
    assert_eq!(handshake(&addr, None).await.0, 429);
}

/// Only new sessions take a token: the upgrade of a polling session to WebSocket does
/// not, and neither does a handshake refused for capacity (`max_sessions_per_ip`), so a
/// client retrying against a full node keeps its bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_and_handshakes_refused_for_capacity_take_no_token() {
    let mut config = SocketIoConfig::default();
    config.engine.handshake_rate_per_ip = HandshakeRate {
        per_second: 1,
        burst: 1,
    };
    config.engine.max_sessions_per_ip = 1;
    let (_io, addr, _) = start_with(config, &[]).await;
    // The one token: the bucket is empty from here on (for a second).
    let (status, body) = handshake(&addr, None).await;
    assert_eq!(status, 200, "{body}");
    let upgrade = WEBSOCKET_HANDSHAKE.replace(
        "transport=websocket",
        &format!("transport=websocket&sid={}", sid(&body)),
    );
    assert_eq!(status_of(&addr, &upgrade).await, 101, "the upgrade");
    // The address holds its one session: refused for capacity, whatever its bucket.
    for _ in 0..5 {
        let (status, body) = handshake(&addr, None).await;
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("engine.max_sessions_per_ip"), "{body}");
    }
}
