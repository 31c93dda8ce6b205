//! The WebSocket transport: the HTTP 101 handshake, stream configuration, frame
//! conversion and the polling → WebSocket upgrade probe.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use switchboard_protocol::engineio::{Packet, TransportKind};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message as WsMessage, handshake::derive_accept_key};

use super::inbound::{InboundBudget, Watched};
use super::session::{Frame, Session, Upgrade};
use crate::config::EngineConfig;

/// A server-side WebSocket over an upgraded HTTP/1.1 connection, whose incoming
/// messages are bounded in bytes and time while they arrive ([`super::inbound`]).
pub(crate) type WsStream = WebSocketStream<Watched<TokioIo<Upgraded>>>;

/// Read buffer of each WebSocket, allocated up front by tungstenite for every
/// connection. Small, because idle connections must cost little (DESIGN §4) and
/// client → server messages are usually short; a larger message grows it on demand,
/// up to one piece of a cut frame (`reframe::PIECE`). tungstenite also asks for no
/// more than this per read; `reframe::Reframe` reads more from the socket at once.
const READ_BUFFER_SIZE: usize = 512;
/// Bytes buffered before tungstenite writes to the socket: a batch of queued frames is
/// fed and flushed together, so this only bounds one write call.
const WRITE_BUFFER_SIZE: usize = 16 * 1024;

/// Bytes a WebSocket frame header takes at most (2 + 8 for the length, server frames
/// are not masked), above its payload.
const FRAME_HEADER: usize = 10;

/// Stream settings: messages and frames *from the client* above `max_payload` close the
/// connection. What the server sends is bounded by the session's queue (`max_queued`
/// bytes: a larger frame never gets queued), not by `max_payload`, which is the
/// client's limit: the write buffer holds one batch (`WRITE_BUFFER_SIZE`) and then at
/// most one more frame, so its bound must take the largest frame the queue admits. A
/// bound below it (it was `4 × max_payload`) failed the write of a large API emit and
/// dropped the client as if its network had.
pub(crate) fn config(max_payload: usize, max_queued: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(WRITE_BUFFER_SIZE)
        .max_write_buffer_size(WRITE_BUFFER_SIZE + max_queued.max(max_payload) + FRAME_HEADER)
        .max_message_size(Some(max_payload))
        .max_frame_size(Some(max_payload))
}

/// Checks the WebSocket handshake headers; returns the `Sec-WebSocket-Accept` value.
pub(crate) fn accept_key(headers: &HeaderMap) -> Option<String> {
    let version_ok = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    version_ok.then(|| derive_accept_key(key.as_bytes()))
}

/// Whether the request asks for a WebSocket upgrade.
pub(crate) fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The `101 Switching Protocols` response.
pub(crate) fn switching_protocols<B: Default>(accept: &str) -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

/// Wraps an upgraded connection as a server WebSocket whose unfinished messages count
/// against `inbound` and must each be whole within `body_timeout`.
pub(crate) async fn stream(
    upgraded: Upgraded,
    config: &EngineConfig,
    inbound: &Arc<InboundBudget>,
) -> WsStream {
    WebSocketStream::from_raw_socket(
        Watched::new(TokioIo::new(upgraded), inbound.clone(), config.max_payload),
        Role::Server,
        Some(self::config(config.max_payload, config.queue.max_bytes)),
    )
    .await
}

/// Converts a queued frame to a WebSocket message without copying.
pub(crate) fn to_ws(frame: Frame) -> WsMessage {
    match frame {
        Frame::Text(t) => WsMessage::Text(t),
        Frame::Binary(b) => WsMessage::Binary(b),
    }
}

/// What a received WebSocket message means for the session.
pub(crate) enum Incoming {
    /// An Engine.IO packet.
    Packet(Packet),
    /// Not a packet (WebSocket ping/pong, raw frame): nothing to do.
    Ignore,
    /// The client closed the WebSocket.
    Closed,
    /// The text was not a valid Engine.IO packet.
    Malformed,
}

/// Decodes one WebSocket message.
pub(crate) fn decode(msg: WsMessage) -> Incoming {
    match msg {
        WsMessage::Text(t) => match Packet::decode_text(exact(Bytes::from(t))) {
            Ok(p) => Incoming::Packet(p),
            Err(_) => Incoming::Malformed,
        },
        WsMessage::Binary(b) => Incoming::Packet(Packet::Binary(exact(b))),
        WsMessage::Close(_) => Incoming::Closed,
        WsMessage::Ping(_) | WsMessage::Pong(_) | WsMessage::Frame(_) => Incoming::Ignore,
    }
}

/// A message longer than a piece (`reframe::PIECE`) was gathered from its pieces in
/// a buffer that doubled as it grew, up to twice the message's length: copied into
/// one of its own length, so that what keeps it (a packet waiting for its binary
/// attachments, a relayed attachment in a queue) holds the bytes it is charged for.
/// Shorter messages are slices of the read buffer, as tungstenite made them.
fn exact(bytes: Bytes) -> Bytes {
    match bytes.len() as u64 > super::reframe::PIECE {
        true => Bytes::copy_from_slice(&bytes),
        false => bytes,
    }
}

/// Runs the upgrade of a polling session onto `ws`: answers `2probe` with `3probe`,
/// makes pending polling requests return a noop, waits for `5`, then hands the
/// WebSocket to the session's driver. Gives up after `timeout` (the session stays on
/// polling, as in Node).
pub(crate) async fn upgrade(session: Arc<Session>, mut ws: WsStream, timeout: std::time::Duration) {
    let outcome = tokio::time::timeout(timeout, probe(&session, &mut ws)).await;
    match outcome {
        Ok(Ok(())) => {
            let mut inner = session.lock();
            if inner.closed.is_some() {
                return;
            }
            inner.upgrade = Upgrade::None;
            inner.transport = TransportKind::Websocket;
            inner.upgraded_ws = Some(Box::new(ws));
            inner.step(crate::breadcrumbs::Step::Upgraded(TransportKind::Websocket));
            drop(inner);
            session.metrics.connection_upgraded();
            tracing::debug!(sid = %session.sid(), "upgraded to websocket");
            if let Some(handler) = session.handler() {
                handler.on_upgrade(&session);
            }
            // The driver adopts the WebSocket and writes what was queued meanwhile.
            session.wake.raise(super::wake::STATE | super::wake::WRITE);
            // A GET still waiting must learn that polling is over.
            session.writer.notify_one();
        }
        _ => {
            session.abort_upgrade();
            tracing::debug!(sid = %session.sid(), "upgrade abandoned");
            let close = ws.close(None);
            let _ = tokio::time::timeout(super::driver::CLOSE_FLUSH_TIMEOUT, close).await;
        }
    }
}

async fn probe(session: &Arc<Session>, ws: &mut WsStream) -> Result<(), ()> {
    // `2probe` → `3probe`.
    match next_packet(ws).await? {
        Packet::Ping(data) if &data[..] == b"probe" => {}
        _ => return Err(()),
    }
    ws.send(WsMessage::text("3probe")).await.map_err(|_| ())?;
    {
        let mut inner = session.lock();
        let noop_owed = inner.get_active;
        inner.upgrade = Upgrade::Probing { noop_owed };
    }
    // A pending long-poll must return so the client can pause polling.
    session.writer.notify_one();
    loop {
        match next_packet(ws).await? {
            Packet::Upgrade => return Ok(()),
            Packet::Ping(data) if &data[..] == b"probe" => {
                ws.send(WsMessage::text("3probe")).await.map_err(|_| ())?;
            }
            Packet::Noop => {}
            _ => return Err(()),
        }
    }
}

async fn next_packet(ws: &mut WsStream) -> Result<Packet, ()> {
    loop {
        match ws.next().await {
            Some(Ok(msg)) => match decode(msg) {
                Incoming::Packet(p) => return Ok(p),
                Incoming::Ignore => continue,
                Incoming::Closed | Incoming::Malformed => return Err(()),
            },
            _ => return Err(()),
        }
    }
}

pub(crate) use super::session::now;
