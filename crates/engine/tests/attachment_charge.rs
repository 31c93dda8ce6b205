//! A binary packet's attachments are charged their place in the packet as well as
//! their bytes, toward `engine.max_payload` (and the node's inbound budget): charged
//! their length only, empty or 1-byte attachments cost far more memory than they
//! counted (one polling session held ~90 MB for 1 MB charged). Many tiny attachments
//! now reach the bound; a few are served as before.

#![allow(clippy::unwrap_used, missing_docs)]

use futures_util::SinkExt;
#[path = "common/ws_client.rs"]
mod ws_client;
use switchboard_engine::{Io, SocketIoConfig, not_found, serve, shutdown};
use tokio_tungstenite::tungstenite::Message;
use ws_client::{Ws, connected, evidence_of, next_text};

/// The bound on a packet, attachments included.
const MAX_PAYLOAD: usize = 8 * 1024;

/// A server on loopback taking up to 1,000 attachments a packet, whose `/` answers
/// event `up` with `got`.
async fn start() -> (Io, String) {
    let (trigger, signal) = shutdown::channel();
    // The server lives for the test process.
    std::mem::forget(trigger);
    let mut config = SocketIoConfig {
        max_attachments: 1000,
        ..SocketIoConfig::default()
    };
    config.engine.max_payload = MAX_PAYLOAD;
    let io = Io::new(config, signal.clone());
    io.of("/").on("up", |ev| {
        let _ = ev.socket.emit("got", serde_json::json!("ok"));
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, io.engine().clone(), not_found, signal));
    (io, addr)
}

/// Sends event `up` with `count` binary arguments of `len` bytes each.
async fn send_event(ws: &mut Ws, count: usize, len: usize) {
    let placeholders: Vec<String> = (0..count)
        .map(|i| format!(r#"{{"_placeholder":true,"num":{i}}}"#))
        .collect();
    let header = format!(r#"45{count}-["up",{}]"#, placeholders.join(","));
    ws.send(Message::text(header)).await.unwrap();
    for _ in 0..count {
        ws.send(Message::binary(vec![7u8; len])).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tiny_attachments_reach_the_payload_bound() {
    let (io, addr) = start().await;
    // A few empty or 1-byte attachments: served.
    for len in [0, 1] {
        let mut fine = connected(&addr).await;
        send_event(&mut fine, 10, len).await;
        assert_eq!(
            next_text(&mut fine).await.as_deref(),
            Some(r#"42["got","ok"]"#)
        );
    }
    // 200 empty attachments: a header of about 6 KB and no attachment bytes, under
    // the 8 KiB bound if they cost nothing; they each cost their place in the packet.
    let mut tiny = connected(&addr).await;
    send_event(&mut tiny, 200, 0).await;
    assert_eq!(next_text(&mut tiny).await.as_deref(), Some("1"), "cut off");
    let evidence = evidence_of(&io, "payload too large").await;
    assert!(
        evidence[0].contains(&format!("over engine.max_payload ({MAX_PAYLOAD} B)")),
        "{evidence:?}"
    );
}
