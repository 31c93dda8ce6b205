//! Socket.IO helpers over a WebSocket session: namespace connection as the official suite
//! does it, and the parsing of the server's `CONNECT` reply.

use serde_json::Value;

use crate::Fixture;
use crate::eio::OpenPacket;
use crate::ws::WsClient;

/// A WebSocket session connected to the main namespace, its handshakes consumed.
#[derive(Debug)]
pub struct SioClient {
    /// The connection.
    pub ws: WsClient,
    /// The Engine.IO handshake.
    pub open: OpenPacket,
    /// The Socket.IO id the server gave the main-namespace socket.
    pub sid: String,
}

/// Parses the server's `CONNECT` reply for `nsp` (`40{..}` or `40/nsp,{..}`) and returns
/// the socket id, checking that `sid` is the only key, as the official suite does.
///
/// # Panics
///
/// When `text` is not such a packet.
pub fn parse_connect(text: &str, nsp: &str) -> String {
    let prefix = if nsp == "/" {
        "40".to_owned()
    } else {
        format!("40{nsp},")
    };
    let json = text
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("expected a CONNECT for {nsp}, got {text:?}"));
    let value: Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("CONNECT data is not JSON ({e}): {text:?}"));
    let object = value.as_object().expect("CONNECT data is an object");
    assert_eq!(object.len(), 1, "CONNECT data has only `sid`: {text}");
    object["sid"].as_str().expect("sid is a string").to_owned()
}

impl Fixture {
    /// Opens a WebSocket session and connects it to the main namespace without auth:
    /// the official suite's `initSocketIOConnection`.
    ///
    /// # Panics
    ///
    /// When any step fails or the fixture does not emit `auth` with `{}`.
    pub async fn sio_connect(&self) -> SioClient {
        let (mut ws, open) = self.open_ws().await;
        ws.send_text("40").await.expect("send CONNECT");
        let sid = parse_connect(&ws.recv_skipping_pings().await.text(), "/");
        let auth = ws.recv_skipping_pings().await.text();
        assert_eq!(
            auth, r#"42["auth",{}]"#,
            "the fixture emits `auth` on connection"
        );
        SioClient { ws, open, sid }
    }
}
