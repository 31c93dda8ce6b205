//! Helpers for tests that talk to a server on loopback: a WebSocket client connected
//! to `/` (reading text messages while answering pings), and disconnect reports.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// A client's WebSocket.
pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A WebSocket client of the server at `addr`, connected to `/`.
pub(crate) async fn connected(addr: &str) -> Ws {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert!(next_text(&mut ws).await.unwrap().starts_with("0{"));
    ws.send(Message::text("40")).await.unwrap();
    assert!(next_text(&mut ws).await.unwrap().starts_with("40{"));
    ws
}

/// The next text message, answering pings; `None` once the server closed.
pub(crate) async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("the server said nothing for 30 s");
        match msg {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                ws.send(Message::text("3")).await.ok()?;
            }
            Some(Ok(Message::Text(t))) => return Some(t.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => {}
        }
    }
}

/// The evidence of the first disconnect report of `io` with `reason`, once there is
/// one (the report is made as the session's driver ends, which may be after the
/// client saw its connection close).
pub(crate) async fn evidence_of(io: &switchboard_engine::Io, reason: &str) -> Vec<String> {
    for _ in 0..1000 {
        let reports = io.disconnect_reports();
        if let Some(report) = reports.iter().find(|r| r.reason.as_str() == reason) {
            return report.diagnosis.get().evidence.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no disconnect report with reason {reason:?}");
}
