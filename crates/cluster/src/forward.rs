//! Long-polling without sticky sessions: a [`Forwarder`] over Redis pub/sub.
//!
//! Every clustered node puts its tag (its `uid`) at the start of the Engine.IO session
//! ids it creates and listens on `<key_prefix>-fwd#<tag>`. A node that receives a
//! polling request for a session it does not hold publishes the request on the owner's
//! channel and waits for the answer on its own; the owner runs it through the very
//! code an HTTP request takes there
//! ([`EngineServer::handle_forwarded`]) and publishes the answer back.
//!
//! - **Unknown owner, fast:** `PUBLISH` says how many nodes listen on the owner's
//!   channel; none means no live node has that tag (it died, or the id is made up),
//!   and the client is told at once that its session is unknown, so it opens a new
//!   one (and resumes its Socket.IO state when recovery is on).
//! - **Waiting long enough:** a long-polling GET is answered only when the owner has
//!   frames for it, at most `pingInterval + pingTimeout` later; the forwarding node
//!   waits that long plus [`NETWORK_MARGIN`].
//! - **Cancellation:** when the client gives up on its request (the future is
//!   dropped), a cancel message ends the request on the owner too, as an aborted
//!   local poll would, so frames are not taken for a client no longer there. A cancel
//!   that overtakes its request is remembered so the request is never run.
//! - **What can be lost:** an answer in flight when Redis fails. For a GET that held
//!   frames this is a gap in the Engine.IO stream; the session then fails its next
//!   poll and, with connection state recovery, the client resumes and is replayed the
//!   missed events.
//!
//! Frames on the wire (Switchboard nodes only; Node.js servers never see them): one
//! kind byte, a 4-byte big-endian header length, a JSON header, then the raw body.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::future::BoxFuture;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};
use switchboard_engine::DisconnectReason;
use switchboard_engine::config::NodeTag;
use switchboard_engine::eio::forward::{
    ForwardError, ForwardedRequest, ForwardedResponse, Forwarder,
};
use switchboard_engine::eio::server::EngineServer;
use switchboard_engine::protocol::engineio::handshake::Query;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use crate::broker::{Broker, MessageHandler};

/// Added to the engine's longest poll before a forwarded request is given up: the
/// two pub/sub hops and the owner's scheduling.
pub(crate) const NETWORK_MARGIN: Duration = Duration::from_secs(5);

/// Cancels remembered for requests not seen yet (a cancel can overtake its request:
/// they travel on different connections).
const EARLY_CANCELS: usize = 1024;

/// The pub/sub channel of the node tagged `tag`.
pub(crate) fn channel(key_prefix: &str, tag: &str) -> String {
    format!("{key_prefix}-fwd#{tag}")
}

/// Requests sent, by id, waiting for their answer.
type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<ForwardedResponse>>>>;

/// Forwards polling requests to their owner over Redis and runs those other nodes
/// forward here.
pub(crate) struct RedisForwarder {
    broker: Arc<Broker>,
    key_prefix: String,
    /// This node's tag (the answers come back on its channel).
    own: String,
    /// How long to wait for an owner's answer.
    timeout: Duration,
    next_id: AtomicU64,
    /// Requests sent, waiting for their answer.
    waiting: Waiting,
    /// Requests other nodes sent here, running: `(from, id)`.
    running: Mutex<HashMap<(String, u64), AbortHandle>>,
    /// Cancels that arrived before their request.
    early_cancels: Mutex<EarlyCancels>,
    engine: Weak<EngineServer>,
}

impl std::fmt::Debug for RedisForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisForwarder")
            .field("own", &self.own)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisForwarder {
    /// Sets the forwarder on `engine` and serves the requests forwarded to `tag`.
    pub(crate) fn attach(
        broker: &Arc<Broker>,
        key_prefix: &str,
        tag: NodeTag,
        engine: &Arc<EngineServer>,
    ) {
        let forwarder = Arc::new(RedisForwarder {
            broker: broker.clone(),
            key_prefix: key_prefix.to_owned(),
            own: tag.as_str().to_owned(),
            timeout: engine.config().longest_poll() + NETWORK_MARGIN,
            next_id: AtomicU64::new(0),
            waiting: Waiting::default(),
            running: Mutex::default(),
            early_cancels: Mutex::default(),
            engine: Arc::downgrade(engine),
        });
        let weak = Arc::downgrade(&forwarder);
        let handler: MessageHandler = Arc::new(move |_channel: &str, payload: Bytes| {
            if let Some(forwarder) = weak.upgrade() {
                forwarder.on_frame(&payload);
            }
        });
        broker.route(channel(key_prefix, tag.as_str()), handler);
        engine.set_forwarder(forwarder);
    }

    fn on_frame(self: &Arc<Self>, payload: &[u8]) {
        match Frame::decode(payload) {
            Ok(Frame::Request { from, id, request }) => self.run(from, id, request),
            Ok(Frame::Response { id, response }) => {
                let waiter = self.waiting.lock().ok().and_then(|mut w| w.remove(&id));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(response);
                }
            }
            Ok(Frame::Cancel { from, id }) => {
                let running = self
                    .running
                    .lock()
                    .ok()
                    .and_then(|mut r| r.remove(&(from.clone(), id)));
                match running {
                    Some(handle) => handle.abort(),
                    None => {
                        if let Ok(mut early) = self.early_cancels.lock() {
                            early.insert((from, id));
                        }
                    }
                }
            }
            Err(err) => tracing::warn!(error = %err, "bad forwarding frame ignored"),
        }
    }

    /// Runs a request another node forwarded here and publishes the answer back.
    fn run(self: &Arc<Self>, from: String, id: u64, request: ForwardedRequest) {
        let key = (from, id);
        if self
            .early_cancels
            .lock()
            .is_ok_and(|mut early| early.remove(&key))
        {
            return;
        }
        let Some(engine) = self.engine.upgrade() else {
            return;
        };
        let me = self.clone();
        let mut running = match self.running.lock() {
            Ok(running) => running,
            Err(_) => return,
        };
        let task_key = key.clone();
        let task = tokio::spawn(async move {
            let sid = Query::parse(&request.query).sid.map(str::to_owned);
            let response = engine.handle_forwarded(request).await;
            let done = me.running.lock().ok().and_then(|mut r| r.remove(&task_key));
            if done.is_none() {
                // Cancelled while the answer was being made.
                return;
            }
            let frame = Frame::Response { id, response }.encode();
            let to = channel(&me.key_prefix, &task_key.0);
            let delivered = match me.broker.publish_now(&to, &frame).await {
                Ok(receivers) => receivers > 0,
                Err(err) => {
                    tracing::warn!(error = %err, to, "forwarded answer not sent");
                    false
                }
            };
            if !delivered && let Some(sid) = sid {
                // The client will never see this answer (and the frames it held): it
                // must resume in a new session rather than poll on past a hole.
                tracing::info!(sid, to, "forwarded answer lost; closing the session");
                engine.close_session(&sid, DisconnectReason::TransportError);
            }
        });
        running.insert(key, task.abort_handle());
    }
}

impl Forwarder for RedisForwarder {
    fn forward(
        &self,
        owner: &str,
        request: ForwardedRequest,
    ) -> BoxFuture<'static, Result<ForwardedResponse, ForwardError>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(id, tx);
        }
        let frame = Frame::Request {
            from: self.own.clone(),
            id,
            request,
        }
        .encode();
        let owner = owner.to_owned();
        let timeout = self.timeout;
        let mut link = self.broker.link();
        link.borrow_and_update();
        let listening = self.broker.subscribed();
        // Removes the waiter (and tells the owner) however the future ends.
        let mut pending = Pending {
            broker: self.broker.clone(),
            waiting: self.waiting.clone(),
            to: channel(&self.key_prefix, &owner),
            from: self.own.clone(),
            id,
            settled: false,
        };
        Box::pin(async move {
            if !listening {
                // The answer could not reach this node.
                pending.settle();
                return Err(ForwardError::Transport(Box::new(LinkError::Down)));
            }
            let receivers = pending
                .broker
                .publish_now(&pending.to, &frame)
                .await
                .map_err(|e| ForwardError::Transport(Box::new(e)))?;
            if receivers == 0 {
                pending.settle();
                return Err(ForwardError::UnknownOwner(owner));
            }
            tokio::select! {
                answer = tokio::time::timeout(timeout, rx) => match answer {
                    Ok(Ok(response)) => {
                        pending.settle();
                        Ok(response)
                    }
                    // The forwarder is gone: the node is shutting down.
                    Ok(Err(_)) | Err(_) => Err(ForwardError::Timeout),
                },
                // The answer may have been published while this node was not listening;
                // the owner closes the session when it cannot deliver an answer.
                _ = link.changed() => Err(ForwardError::Transport(Box::new(LinkError::Changed))),
            }
        })
    }
}

/// Why a forwarded request's answer cannot arrive.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    /// This node does not hear its channel.
    #[error("this node's Redis subscription is down")]
    Down,
    /// This node's subscription dropped (and maybe came back) while waiting.
    #[error("this node's Redis subscription dropped while waiting; the answer may be lost")]
    Changed,
}

/// A forwarded request waiting for its answer. Dropped unanswered (the client left,
/// or the owner took too long), it tells the owner to stop.
struct Pending {
    broker: Arc<Broker>,
    waiting: Waiting,
    /// The owner's channel.
    to: String,
    /// This node's tag.
    from: String,
    id: u64,
    /// Answered, or never reached an owner: nothing to cancel.
    settled: bool,
}

impl Pending {
    /// Nothing left to cancel.
    fn settle(&mut self) {
        self.settled = true;
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(&self.id);
        }
        if !self.settled {
            let cancel = Frame::Cancel {
                from: std::mem::take(&mut self.from),
                id: self.id,
            };
            self.broker
                .publish(std::mem::take(&mut self.to), cancel.encode());
        }
    }
}

/// Cancels remembered for requests not seen yet, oldest forgotten first.
#[derive(Debug, Default)]
struct EarlyCancels {
    set: HashSet<(String, u64)>,
    order: VecDeque<(String, u64)>,
}

impl EarlyCancels {
    fn insert(&mut self, key: (String, u64)) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
        }
        while self.order.len() > EARLY_CANCELS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    fn remove(&mut self, key: &(String, u64)) -> bool {
        self.set.remove(key)
    }
}

/// What crosses the forwarding channels.
#[derive(Debug, Clone, PartialEq)]
enum Frame {
    /// A client's polling request, for the owner of its session.
    Request {
        /// The tag of the node that waits for the answer.
        from: String,
        id: u64,
        request: ForwardedRequest,
    },
    /// The owner's answer.
    Response {
        id: u64,
        response: ForwardedResponse,
    },
    /// The client gave up on request `id` of node `from`.
    Cancel { from: String, id: u64 },
}

const KIND_REQUEST: u8 = 1;
const KIND_RESPONSE: u8 = 2;
const KIND_CANCEL: u8 = 3;

/// The JSON header of a frame (the body follows it raw).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Header {
    id: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    from: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    method: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    remote: Option<SocketAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<(String, String)>,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("frame too short")]
    Short,
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("bad frame header: {0}")]
    Header(#[from] serde_json::Error),
    #[error("bad {0} in frame")]
    Field(&'static str),
}

impl Frame {
    fn encode(&self) -> Bytes {
        let (kind, header, body) = match self {
            Frame::Request { from, id, request } => (
                KIND_REQUEST,
                Header {
                    id: *id,
                    from: from.clone(),
                    method: request.method.as_str().to_owned(),
                    query: request.query.clone(),
                    remote: Some(request.remote),
                    headers: header_pairs(&request.headers),
                    ..Header::default()
                },
                request.body.clone(),
            ),
            Frame::Response { id, response } => (
                KIND_RESPONSE,
                Header {
                    id: *id,
                    status: Some(response.status.as_u16()),
                    headers: header_pairs(&response.headers),
                    ..Header::default()
                },
                response.body.clone(),
            ),
            Frame::Cancel { from, id } => (
                KIND_CANCEL,
                Header {
                    id: *id,
                    from: from.clone(),
                    ..Header::default()
                },
                Bytes::new(),
            ),
        };
        // Serializing plain strings and numbers cannot fail.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let mut out = BytesMut::with_capacity(5 + header.len() + body.len());
        out.put_u8(kind);
        out.put_u32(u32::try_from(header.len()).unwrap_or(u32::MAX));
        out.put_slice(&header);
        out.put_slice(&body);
        out.freeze()
    }

    fn decode(frame: &[u8]) -> Result<Frame, FrameError> {
        let (&kind, rest) = frame.split_first().ok_or(FrameError::Short)?;
        let (len, rest) = rest.split_first_chunk::<4>().ok_or(FrameError::Short)?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(FrameError::Short);
        }
        let (header, body) = rest.split_at(len);
        let header: Header = serde_json::from_slice(header)?;
        let body = Bytes::copy_from_slice(body);
        match kind {
            KIND_REQUEST => Ok(Frame::Request {
                from: header.from,
                id: header.id,
                request: ForwardedRequest {
                    method: Method::from_bytes(header.method.as_bytes())
                        .map_err(|_| FrameError::Field("method"))?,
                    query: header.query,
                    headers: header_map(header.headers)?,
                    body,
                    remote: header.remote.ok_or(FrameError::Field("remote"))?,
                },
            }),
            KIND_RESPONSE => Ok(Frame::Response {
                id: header.id,
                response: ForwardedResponse {
                    status: header
                        .status
                        .and_then(|s| StatusCode::from_u16(s).ok())
                        .ok_or(FrameError::Field("status"))?,
                    headers: header_map(header.headers)?,
                    body,
                },
            }),
            KIND_CANCEL => Ok(Frame::Cancel {
                from: header.from,
                id: header.id,
            }),
            other => Err(FrameError::Kind(other)),
        }
    }
}

/// The headers as text pairs; a value that is not visible ASCII cannot be one the
/// engine reads or writes, and is left out.
fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect()
}

fn header_map(pairs: Vec<(String, String)>) -> Result<HeaderMap, FrameError> {
    let mut map = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| FrameError::Field("header"))?;
        let value = HeaderValue::from_str(&value).map_err(|_| FrameError::Field("header"))?;
        map.append(name, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> ForwardedRequest {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("7"));
        ForwardedRequest {
            method: Method::POST,
            query: "EIO=4&transport=polling&sid=AbCdEf123".to_owned(),
            headers,
            body: Bytes::from_static(b"42[\"x\"]"),
            remote: SocketAddr::from(([10, 0, 0, 7], 50_123)),
        }
    }

    #[test]
    fn every_frame_survives_the_round_trip() {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=UTF-8"),
        );
        let frames = [
            Frame::Request {
                from: "node01".to_owned(),
                id: 7,
                request: request(),
            },
            Frame::Response {
                id: 7,
                response: ForwardedResponse {
                    status: StatusCode::OK,
                    headers,
                    // Binary bodies cross untouched.
                    body: Bytes::from_static(&[0, 255, 1, 2]),
                },
            },
            Frame::Cancel {
                from: "node01".to_owned(),
                id: 7,
            },
        ];
        for frame in frames {
            let decoded = Frame::decode(&frame.encode());
            assert_eq!(decoded.ok(), Some(frame));
        }
    }

    #[test]
    fn bad_frames_are_errors() {
        assert!(matches!(Frame::decode(&[]), Err(FrameError::Short)));
        assert!(matches!(
            Frame::decode(&[1, 0, 0, 0, 9, b'{']),
            Err(FrameError::Short)
        ));
        let mut bad_kind = Frame::Cancel {
            from: "a".into(),
            id: 1,
        }
        .encode()
        .to_vec();
        bad_kind[0] = 9;
        assert!(matches!(Frame::decode(&bad_kind), Err(FrameError::Kind(9))));
        let header = br#"{"id":1,"method":"GET","query":"","status":null}"#;
        let mut no_remote = vec![KIND_REQUEST];
        no_remote.extend_from_slice(&(header.len() as u32).to_be_bytes());
        no_remote.extend_from_slice(header);
        assert!(matches!(
            Frame::decode(&no_remote),
            Err(FrameError::Field("remote"))
        ));
    }

    #[test]
    fn early_cancels_are_bounded() {
        let mut early = EarlyCancels::default();
        for id in 0..(EARLY_CANCELS as u64 + 10) {
            early.insert(("n".to_owned(), id));
        }
        assert!(
            !early.remove(&("n".to_owned(), 0)),
            "the oldest is forgotten"
        );
        assert!(early.remove(&("n".to_owned(), EARLY_CANCELS as u64 + 9)));
        assert!(
            !early.remove(&("n".to_owned(), EARLY_CANCELS as u64 + 9)),
            "once"
        );
    }
}
