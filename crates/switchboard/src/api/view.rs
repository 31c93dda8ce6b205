//! The JSON shape of a socket as the API shows it, with secrets left out: no cookies,
//! credentials or token-like headers and query parameters, no `auth` payload.

use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;

use http::HeaderMap;
use serde::Serialize;
use serde_json::Value;
use switchboard_engine::Socket;
use switchboard_engine::adapter::SocketInfo;
use switchboard_engine::eio::HandshakeInfo;

/// Header and query parameter names are left out when they contain any of these
/// (compared in lower case): they carry credentials or session identifiers, which a
/// listing must not spread further than the connection that sent them.
const SECRET_NAME_PARTS: &[&str] = &[
    "cookie",
    "authorization",
    "token",
    "secret",
    "password",
    "api-key",
    "apikey",
    "api_key",
    "session",
    "auth",
];

/// One socket.
#[derive(Debug, Serialize)]
pub(crate) struct SocketView {
    /// Socket id.
    id: String,
    /// Namespace name.
    namespace: String,
    /// Its rooms, its own id first (every socket is in the room named by its id).
    rooms: Vec<String>,
    /// Application data (`socket.data`), `null` if never set.
    data: Value,
    /// The request that opened the connection.
    handshake: HandshakeView,
}

/// The opening request, secrets left out.
#[derive(Debug, Serialize)]
pub(crate) struct HandshakeView {
    /// Peer address (`ip:port`) as this server saw it.
    address: String,
    /// Request headers (lower-case names; repeated headers joined with `, `).
    headers: BTreeMap<String, String>,
    /// Query parameters (the last value of a repeated name).
    query: BTreeMap<String, String>,
    /// When the connection opened, in milliseconds since the Unix epoch.
    issued: u64,
    /// The transport of the opening request: `polling`, `websocket` or `sse`.
    transport: &'static str,
}

impl SocketView {
    /// `socket` by its id and rooms only (no `data`, an empty handshake): what counts,
    /// room sizes and an action's selection read, for the cost of its rooms, where
    /// [`SocketView::of`] copies up to 8 KiB of headers and the whole `data`.
    pub(crate) fn brief(socket: &Socket) -> Self {
        SocketView {
            id: socket.id().to_string(),
            namespace: socket.namespace().to_owned(),
            rooms: socket.rooms(),
            data: Value::Null,
            handshake: HandshakeView {
                address: String::new(),
                headers: BTreeMap::new(),
                query: BTreeMap::new(),
                issued: 0,
                transport: socket.handshake().transport.as_str(),
            },
        }
    }

    /// The view of `socket`.
    pub(crate) fn of(socket: &Socket) -> Self {
        SocketView {
            id: socket.id().to_string(),
            namespace: socket.namespace().to_owned(),
            rooms: socket.rooms(),
            data: socket.data(),
            handshake: HandshakeView::of(socket.handshake()),
        }
    }
}

impl SocketView {
    /// The view of a socket another node holds, from what it answered to a fetch
    /// (Node's handshake shape; `address` has no port, the transport is the opening
    /// request's `transport` query parameter).
    pub(crate) fn of_remote(namespace: &str, info: SocketInfo) -> Self {
        let h = &info.handshake;
        let strings = |v: &Value| -> BTreeMap<String, String> {
            v.as_object()
                .into_iter()
                .flatten()
                .filter(|(name, _)| !is_secret(name))
                .filter_map(|(name, value)| Some((name.clone(), value.as_str()?.to_owned())))
                .collect()
        };
        let query = strings(&h["query"]);
        let transport = match query.get("transport").map(String::as_str) {
            Some("websocket") => "websocket",
            Some("sse") => "sse",
            _ => "polling",
        };
        SocketView {
            id: info.id,
            namespace: namespace.to_owned(),
            rooms: info.rooms,
            data: info.data,
            handshake: HandshakeView {
                address: h["address"].as_str().unwrap_or_default().to_owned(),
                headers: strings(&h["headers"]),
                query,
                issued: h["issued"].as_u64().unwrap_or(0),
                transport,
            },
        }
    }

    /// The socket's id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Its rooms, its own id room included.
    pub(crate) fn rooms(&self) -> &[String] {
        &self.rooms
    }
}

impl HandshakeView {
    fn of(h: &HandshakeInfo) -> Self {
        HandshakeView {
            address: h.address.to_string(),
            headers: headers(&h.headers),
            query: query(&h.query_params),
            issued: h
                .issued
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            transport: h.transport.as_str(),
        }
    }
}

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAME_PARTS.iter().any(|part| name.contains(part))
}

fn headers(map: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in map {
        if is_secret(name.as_str()) {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

/// The handshake query as Node shows it (decoded once by the engine; the last value of a
/// repeated name), without secret-looking names.
fn query(params: &[(String, String)]) -> BTreeMap<String, String> {
    params
        .iter()
        .filter(|(name, _)| !is_secret(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn credentials_are_left_out_of_headers() {
        let mut map = HeaderMap::new();
        for (name, value) in [
            ("cookie", "sid=1"),
            ("authorization", "Bearer x"),
            ("x-auth-token", "t"),
            ("x-api-key", "k"),
            ("user-agent", "test"),
            ("accept", "a"),
        ] {
            map.append(name, HeaderValue::from_static(value));
        }
        map.append("accept", HeaderValue::from_static("b"));
        let shown = headers(&map);
        let names: Vec<&str> = shown.keys().map(String::as_str).collect();
        assert_eq!(names, ["accept", "user-agent"]);
        assert_eq!(shown["accept"], "a, b");
    }

    #[test]
    fn token_like_query_parameters_are_left_out() {
        let params = switchboard_engine::eio::decode_query(
            "EIO=4&transport=polling&token=abc&room=x%20y&sessionId=1&bad=%zz&room=z",
        );
        let shown = query(&params);
        let pairs: Vec<(&str, &str)> = shown
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            // A malformed `%` does not hide the rest; the last `room` wins, as in Node.
            [
                ("EIO", "4"),
                ("bad", "%zz"),
                ("room", "z"),
                ("transport", "polling")
            ]
        );
    }
}
