//! Engine.IO helpers: the open packet, polling payload framing, and sessions opened over
//! long-polling or WebSocket.

use std::io;

use bytes::Bytes;
use serde_json::Value;
use tokio::time::Instant;

use crate::http::Response;
use crate::ws::{self, Frame, WsClient};
use crate::{Fixture, MAX_PAYLOAD, PING_INTERVAL_MS, PING_TIMEOUT_MS, SAFETY_TIMEOUT};

/// Separates packets in a long-polling payload.
pub const RECORD_SEPARATOR: char = '\x1e';

/// The query of a new long-polling session.
pub const POLLING: &str = "EIO=4&transport=polling";

/// The query of a new WebSocket-only session.
pub const WEBSOCKET: &str = "EIO=4&transport=websocket";

/// The handshake data of an Engine.IO `open` packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPacket {
    /// The session id.
    pub sid: String,
    /// Transports the session may upgrade to.
    pub upgrades: Vec<String>,
    /// Milliseconds between server pings.
    pub ping_interval: u64,
    /// Milliseconds the server waits for a pong.
    pub ping_timeout: u64,
    /// The largest payload the server accepts, in bytes.
    pub max_payload: u64,
}

impl OpenPacket {
    /// Parses `0{...}`, checking the exact key set and every type.
    ///
    /// # Panics
    ///
    /// When `text` is not an open packet with exactly the five documented keys.
    pub fn parse(text: &str) -> OpenPacket {
        let json = text
            .strip_prefix('0')
            .unwrap_or_else(|| panic!("expected an open packet, got {text:?}"));
        let value: Value = serde_json::from_str(json)
            .unwrap_or_else(|e| panic!("open packet is not JSON ({e}): {text:?}"));
        let object = value.as_object().expect("open packet data is an object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let expected = [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades",
        ];
        assert_eq!(keys, expected, "keys of {text}");
        OpenPacket {
            sid: value["sid"].as_str().expect("sid is a string").to_owned(),
            upgrades: value["upgrades"]
                .as_array()
                .expect("upgrades is an array")
                .iter()
                .map(|u| u.as_str().expect("upgrade is a string").to_owned())
                .collect(),
            ping_interval: value["pingInterval"].as_u64().expect("pingInterval"),
            ping_timeout: value["pingTimeout"].as_u64().expect("pingTimeout"),
            max_payload: value["maxPayload"].as_u64().expect("maxPayload"),
        }
    }

    /// Asserts the timings and limits of the `engineio` and `socketio` fixtures.
    pub fn assert_fixture_settings(&self, upgrades: &[&str]) {
        assert!(!self.sid.is_empty(), "empty sid");
        assert_eq!(self.upgrades, upgrades, "upgrades");
        assert_eq!(self.ping_interval, PING_INTERVAL_MS, "pingInterval");
        assert_eq!(self.ping_timeout, PING_TIMEOUT_MS, "pingTimeout");
        assert_eq!(self.max_payload, MAX_PAYLOAD as u64, "maxPayload");
    }
}

/// Joins packets into one long-polling payload.
pub fn encode_payload(packets: &[&str]) -> String {
    packets.join(&RECORD_SEPARATOR.to_string())
}

/// A session opened with a long-polling handshake.
#[derive(Debug)]
pub struct PollingSession<'a> {
    /// The server.
    fixture: &'a Fixture,
    /// The handshake data.
    pub open: OpenPacket,
}

impl PollingSession<'_> {
    /// The session id.
    pub fn sid(&self) -> &str {
        &self.open.sid
    }

    /// `EIO=4&transport=polling&sid=SID`.
    pub fn query(&self) -> String {
        format!("{POLLING}&sid={}", self.open.sid)
    }

    /// `EIO=4&transport=websocket&sid=SID`, to upgrade this session.
    pub fn upgrade_query(&self) -> String {
        format!("{WEBSOCKET}&sid={}", self.open.sid)
    }

    /// A `GET`: waits for packets.
    pub async fn poll(&self) -> io::Result<Response> {
        self.fixture.get(&self.query()).await
    }

    /// A `POST` carrying `body`.
    pub async fn push(&self, body: impl Into<Bytes>) -> io::Result<Response> {
        self.fixture.post(&self.query(), body).await
    }

    /// Polls until `count` packets other than pings have arrived, answering each ping with
    /// a pong as an official client does, and returns them.
    ///
    /// # Panics
    ///
    /// When a request fails or is not answered with 200, or when the packets do not all
    /// arrive within [`SAFETY_TIMEOUT`].
    pub async fn poll_packets(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + SAFETY_TIMEOUT;
        let mut packets = Vec::new();
        while packets.len() < count {
            assert!(
                Instant::now() < deadline,
                "only {packets:?} within {SAFETY_TIMEOUT:?}"
            );
            let polled = self.poll().await.expect("GET");
            assert_eq!(polled.status, 200, "GET: {polled:?}");
            for packet in polled.text().split(RECORD_SEPARATOR) {
                if packet == "2" {
                    let pong = self.push("3").await.expect("POST pong");
                    assert_eq!(pong.status, 200, "pong: {pong:?}");
                } else {
                    packets.push(packet.to_owned());
                }
            }
        }
        packets
    }

    /// Starts a `GET` on its own task, for requests that must overlap with others.
    pub fn spawn_poll(&self) -> tokio::task::JoinHandle<io::Result<Response>> {
        let addr = self.fixture.addr();
        let target = self.fixture.target(&self.query());
        tokio::spawn(async move {
            crate::http::send(addr, ::http::Method::GET, &target, &[], Bytes::new()).await
        })
    }

    /// Asserts that the server no longer knows this session: `400 {"code":1}`.
    ///
    /// The spec only demands 400 for an unknown sid; code 1 is what Node.js answers for a
    /// closed session, because it forgets it at once.
    pub async fn assert_closed(&self) {
        let response = self.poll().await.expect("GET on a closed session");
        response.assert_error(400, 1, "Session ID unknown");
    }
}

impl Fixture {
    /// Opens a session with a long-polling handshake.
    ///
    /// # Panics
    ///
    /// When the handshake fails.
    pub async fn open_polling(&self) -> PollingSession<'_> {
        let response = self.get(POLLING).await.expect("polling handshake");
        assert_eq!(response.status, 200, "polling handshake: {response:?}");
        PollingSession {
            fixture: self,
            open: OpenPacket::parse(response.text()),
        }
    }

    /// Opens a WebSocket-only session and reads its open packet.
    ///
    /// # Panics
    ///
    /// When the handshake fails.
    pub async fn open_ws(&self) -> (WsClient, OpenPacket) {
        let mut ws = self.ws(WEBSOCKET).await;
        let open = OpenPacket::parse(&ws.recv_text().await);
        (ws, open)
    }

    /// Opens a WebSocket connection with `query`.
    ///
    /// # Panics
    ///
    /// When the WebSocket handshake is refused.
    pub async fn ws(&self, query: &str) -> WsClient {
        match ws::connect(&self.ws_url(query)).await {
            Ok(ws) => ws,
            Err(refused) => panic!("WebSocket to {query} refused: {refused:?}"),
        }
    }

    /// Asserts that a WebSocket request with `query` yields no session: the upgrade is
    /// refused, or the connection closes before any Engine.IO packet.
    ///
    /// Both are accepted because Node.js refuses some requests only after the 101 (for
    /// example an unsupported `EIO`), which a client sees as a close.
    ///
    /// # Panics
    ///
    /// When the server sends anything on the connection.
    pub async fn assert_ws_refused(&self, query: &str) {
        if let Ok(mut ws) = ws::connect(&self.ws_url(query)).await {
            let frame = ws.recv().await;
            assert!(
                matches!(frame, Frame::Closed(_)),
                "WebSocket to {query} should be refused, got {frame:?}"
            );
        }
    }
}
