//! The Engine.IO handshake: request classification, the `open` packet and the HTTP
//! error codes 0–5 that Node's engine.io answers with.

use std::fmt;
use std::time::Duration;

use crate::sid::Sid;

/// The two transports of Engine.IO v4 that Switchboard serves, and Server-Sent
/// Events, a one-way transport of Switchboard's own (never named in an Engine.IO
/// request: [`TransportKind::parse`] does not read it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    Websocket,
    /// Server-Sent Events (`text/event-stream`): server to client only.
    Sse,
}

impl TransportKind {
    /// The name used in the `transport` query parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            TransportKind::Polling => "polling",
            TransportKind::Websocket => "websocket",
            TransportKind::Sse => "sse",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "polling" => Some(TransportKind::Polling),
            "websocket" => Some(TransportKind::Websocket),
            _ => None,
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error codes of an Engine.IO HTTP error body `{"code":N,"message":"…"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EngineErrorCode {
    /// 0: the `transport` parameter is missing, unknown or disabled.
    #[error("Transport unknown")]
    UnknownTransport = 0,
    /// 1: the `sid` does not name a live session.
    #[error("Session ID unknown")]
    UnknownSid = 1,
    /// 2: a handshake that is not a GET.
    #[error("Bad handshake method")]
    BadHandshakeMethod = 2,
    /// 3: any other malformed request (transport mismatch, overlap, bad method…).
    #[error("Bad request")]
    BadRequest = 3,
    /// 4: refused by policy (origin not allowed, connection limit).
    #[error("Forbidden")]
    Forbidden = 4,
    /// 5: `EIO` is not `4`.
    #[error("Unsupported protocol version")]
    UnsupportedProtocolVersion = 5,
}

impl EngineErrorCode {
    /// HTTP status for this error: 403 for [`EngineErrorCode::Forbidden`], else 400.
    pub fn http_status(self) -> u16 {
        match self {
            EngineErrorCode::Forbidden => 403,
            _ => 400,
        }
    }

    /// The JSON body `{"code":N,"message":"…"}`.
    pub fn json_body(self) -> String {
        format!(r#"{{"code":{},"message":"{}"}}"#, self as u8, self)
    }
}

/// The query parameters Engine.IO cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query<'a> {
    /// `EIO`: the protocol version.
    pub eio: Option<&'a str>,
    /// `transport`.
    pub transport: Option<&'a str>,
    /// `sid`: present on every request after the handshake.
    pub sid: Option<&'a str>,
}

impl<'a> Query<'a> {
    /// Parses a raw query string. Values are used verbatim: the three parameters never
    /// need percent-decoding (sids are base64url, the rest are ASCII words).
    pub fn parse(raw: &'a str) -> Self {
        let mut q = Query::default();
        for pair in raw.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "EIO" => q.eio = Some(v),
                "transport" => q.transport = Some(v),
                "sid" => q.sid = Some(v),
                _ => {}
            }
        }
        q
    }
}

/// What an Engine.IO HTTP request asks for, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Open a new session on this transport.
    Handshake(TransportKind),
    /// A long-polling GET (read) or POST (write) on an existing session.
    Polling {
        /// The session.
        sid: Sid,
        /// `true` for GET, `false` for POST.
        read: bool,
    },
    /// A WebSocket upgrade of an existing polling session.
    Upgrade(Sid),
}

/// The HTTP method, reduced to what classification needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// Anything else.
    Other,
}

/// Classifies a request the way Node's engine.io `verify` does, in the same order, so
/// that clients see the same error codes. `is_websocket` is true when the request
/// carries `Upgrade: websocket`; `enabled` says which transports the server accepts.
/// Whether a named session exists is the caller's business (it owns the sessions).
pub fn classify(
    method: Method,
    query: &Query<'_>,
    is_websocket: bool,
    enabled: &[TransportKind],
) -> Result<RequestKind, EngineErrorCode> {
    let transport = query
        .transport
        .and_then(TransportKind::parse)
        .filter(|t| enabled.contains(t))
        .ok_or(EngineErrorCode::UnknownTransport)?;
    if let Some(sid) = query.sid {
        let sid: Sid = sid.parse().map_err(|_| EngineErrorCode::UnknownSid)?;
        return match (transport, is_websocket, method) {
            (TransportKind::Websocket, true, Method::Get) => Ok(RequestKind::Upgrade(sid)),
            (TransportKind::Polling, false, Method::Get) => {
                Ok(RequestKind::Polling { sid, read: true })
            }
            (TransportKind::Polling, false, Method::Post) => {
                Ok(RequestKind::Polling { sid, read: false })
            }
            _ => Err(EngineErrorCode::BadRequest),
        };
    }
    if method != Method::Get {
        return Err(EngineErrorCode::BadHandshakeMethod);
    }
    if transport == TransportKind::Websocket && !is_websocket {
        return Err(EngineErrorCode::BadRequest);
    }
    if query.eio != Some("4") {
        return Err(EngineErrorCode::UnsupportedProtocolVersion);
    }
    Ok(RequestKind::Handshake(transport))
}

/// The data of the `open` packet, serialized with exactly the keys official clients read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPacket {
    /// The new session id.
    pub sid: Sid,
    /// Transports the client may upgrade to.
    pub upgrades: Vec<TransportKind>,
    /// Interval between server pings.
    pub ping_interval: Duration,
    /// How long the server waits for a pong.
    pub ping_timeout: Duration,
    /// Largest payload the server accepts, in bytes.
    pub max_payload: usize,
}

impl OpenPacket {
    /// The JSON object, keys in the order Node sends them.
    pub fn to_json(&self) -> String {
        let upgrades: Vec<String> = self
            .upgrades
            .iter()
            .map(|t| format!("\"{}\"", t.as_str()))
            .collect();
        format!(
            r#"{{"sid":"{}","upgrades":[{}],"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
            self.sid,
            upgrades.join(","),
            self.ping_interval.as_millis(),
            self.ping_timeout.as_millis(),
            self.max_payload
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: &[TransportKind] = &[TransportKind::Polling, TransportKind::Websocket];
    const SID: &str = "AAAAAAAAAAAAAAAAAAAA";

    fn classify_q(method: Method, raw: &str, ws: bool) -> Result<RequestKind, EngineErrorCode> {
        classify(method, &Query::parse(raw), ws, BOTH)
    }

    #[test]
    fn handshakes() {
        assert_eq!(
            classify_q(Method::Get, "EIO=4&transport=polling", false),
            Ok(RequestKind::Handshake(TransportKind::Polling))
        );
        assert_eq!(
            classify_q(Method::Get, "EIO=4&transport=websocket", true),
            Ok(RequestKind::Handshake(TransportKind::Websocket))
        );
    }

    #[test]
    fn error_codes_follow_node_order() {
        use EngineErrorCode::*;
        assert_eq!(
            classify_q(Method::Get, "EIO=4&transport=abc", false),
            Err(UnknownTransport)
        );
        assert_eq!(
            classify_q(Method::Post, "EIO=4", false),
            Err(UnknownTransport)
        );
        assert_eq!(
            classify_q(Method::Get, "EIO=4&transport=polling&sid=x", false),
            Err(UnknownSid)
        );
        assert_eq!(
            classify_q(Method::Post, "EIO=4&transport=polling", false),
            Err(BadHandshakeMethod)
        );
        assert_eq!(
            classify_q(Method::Get, "EIO=4&transport=websocket", false),
            Err(BadRequest)
        );
        assert_eq!(
            classify_q(Method::Get, "EIO=3&transport=polling", false),
            Err(UnsupportedProtocolVersion)
        );
        assert_eq!(
            classify_q(Method::Get, "transport=polling", false),
            Err(UnsupportedProtocolVersion)
        );
        let mismatch = format!("EIO=4&transport=websocket&sid={SID}");
        assert_eq!(classify_q(Method::Get, &mismatch, false), Err(BadRequest));
    }

    #[test]
    fn session_requests() {
        let sid: Sid = SID.parse().unwrap();
        let poll = format!("EIO=4&transport=polling&sid={SID}");
        assert_eq!(
            classify_q(Method::Get, &poll, false),
            Ok(RequestKind::Polling { sid, read: true })
        );
        assert_eq!(
            classify_q(Method::Post, &poll, false),
            Ok(RequestKind::Polling { sid, read: false })
        );
        let up = format!("EIO=4&transport=websocket&sid={SID}");
        assert_eq!(
            classify_q(Method::Get, &up, true),
            Ok(RequestKind::Upgrade(sid))
        );
    }

    #[test]
    fn error_body_and_status() {
        assert_eq!(
            EngineErrorCode::UnknownSid.json_body(),
            r#"{"code":1,"message":"Session ID unknown"}"#
        );
        assert_eq!(EngineErrorCode::Forbidden.http_status(), 403);
        assert_eq!(EngineErrorCode::BadRequest.http_status(), 400);
    }

    #[test]
    fn open_packet_json_has_exact_keys() {
        let open = OpenPacket {
            sid: SID.parse().unwrap(),
            upgrades: vec![TransportKind::Websocket],
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            max_payload: 1_000_000,
        };
        assert_eq!(
            open.to_json(),
            r#"{"sid":"AAAAAAAAAAAAAAAAAAAA","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#
        );
    }
}
