//! One Engine.IO session: its bounded outbound queue, transport, heartbeat and close
//! state. Shared (`Arc`) between the HTTP handlers of its polling requests and its
//! driver task.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use switchboard_protocol::Sid;
use switchboard_protocol::engineio::payload::{self, FrameRef};
use switchboard_protocol::engineio::{Heartbeat, Packet, TransportKind};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::breadcrumbs::{Crumb, Step, Trail};
use crate::config::QueueLimits;
use crate::diagnosis::{Ending, Facts};
use crate::metrics::Metrics;
use crate::reason::DisconnectReason;

use super::websocket::WsStream;

/// An encoded Engine.IO packet ready to be written, shared by every recipient of a
/// broadcast (cloning is a reference-count increment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text packet with its type digit, e.g. `42["ev",1]`.
    Text(Utf8Bytes),
    /// A binary message (no type prefix).
    Binary(Bytes),
}

impl Frame {
    /// A text frame from an encoded packet.
    pub fn text(s: impl Into<Utf8Bytes>) -> Self {
        Frame::Text(s.into())
    }

    /// Bytes this frame holds.
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(t) => t.len(),
            Frame::Binary(b) => b.len(),
        }
    }

    /// Whether the frame holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn as_ref(&self) -> FrameRef<'_> {
        match self {
            Frame::Text(t) => FrameRef::Text(t.as_bytes()),
            Frame::Binary(b) => FrameRef::Binary(b),
        }
    }
}

/// A message received from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Text (valid UTF-8).
    Text(Bytes),
    /// Binary.
    Binary(Bytes),
}

/// Bytes the `close` frame may take past the queue's byte bound: its one byte (`1`,
/// or the noop `6` that ends a polling session the client closed).
pub(crate) const CLOSE_FRAME_SLACK: usize = 1;

/// Most header bytes a session keeps from its handshake request, counted per header as
/// HTTP/2 counts a header list (name + value + 32 bytes of per-entry overhead, RFC 9113
/// §6.5.2). Every session keeps its headers for its whole life; 8 KiB holds the headers
/// of a browser with a fair amount of cookies, while 20,000 idle sessions cost at most
/// 160 MiB for them. What does not fit is dropped (see [`HandshakeInfo::headers`]).
pub const MAX_HANDSHAKE_HEADER_BYTES: usize = 8 * 1024;

/// Most bytes of its handshake's query a session keeps, counted per `&`-separated
/// pair as [`MAX_HANDSHAKE_HEADER_BYTES`] counts a header (its length + 32): the raw
/// query and its decoded pairs are kept for the session's whole life, and a request
/// line of 16 KiB of `a&a&…` decoded to 8,000 pairs, about 640 KB per session. 8 KiB
/// holds any query a client library sends (a token and a few parameters); what does
/// not fit is dropped from the end (see [`kept_query`]).
pub const MAX_HANDSHAKE_QUERY_BYTES: usize = 8 * 1024;

/// The part of a handshake's raw query a session keeps: its pairs from the first, as
/// long as they fit [`MAX_HANDSHAKE_QUERY_BYTES`] (an empty pair, `&&`, counts too).
pub fn kept_query(raw: &str) -> &str {
    let mut budget = MAX_HANDSHAKE_QUERY_BYTES;
    let mut end = 0;
    for (i, pair) in raw.split('&').enumerate() {
        let cost = pair.len() + 32;
        if cost > budget {
            break;
        }
        budget -= cost;
        // Past the pair, and the `&` before it for all but the first: a cut on an
        // ASCII byte, so always on a character boundary.
        end += pair.len() + usize::from(i > 0);
    }
    &raw[..end]
}

/// What the handshake request looked like, kept for the application (Socket.IO's
/// `socket.handshake`).
#[derive(Debug, Clone)]
pub struct HandshakeInfo {
    /// Request headers, at most [`MAX_HANDSHAKE_HEADER_BYTES`] of them: `Authorization`
    /// and `Cookie` (where credentials come from) first, then the others in the order
    /// they came, skipping any that no longer fit, and never the WebSocket handshake's
    /// own (`Sec-WebSocket-*`, `Connection`, `Upgrade`).
    pub headers: HeaderMap,
    /// Raw query string, as the request had it (Node's `handshake.url` shows it), up
    /// to [`MAX_HANDSHAKE_QUERY_BYTES`] ([`kept_query`]).
    pub query: String,
    /// The query's `name=value` pairs in order, decoded once at the handshake as Node's
    /// Engine.IO decodes them for `socket.handshake.query` (see [`decode_query`]).
    /// Repeated names stay repeated here; Node keeps the last value of each.
    pub query_params: Vec<(String, String)>,
    /// Peer address.
    pub address: SocketAddr,
    /// When the session was opened.
    pub issued: SystemTime,
    /// The transport of the handshake.
    pub transport: TransportKind,
}

/// Decodes a query string as Node's Engine.IO does for `socket.handshake.query`
/// (`new URL(req.url).searchParams`, the WHATWG `application/x-www-form-urlencoded`
/// parser): pairs split on `&` (empty ones skipped), name and value split on the first
/// `=` (no `=`: an empty value), `+` read as a space, `%XX` as the byte `XX`, a `%` not
/// followed by two hex digits kept as it is, and bytes that are not UTF-8 replaced by
/// U+FFFD as `String::from_utf8_lossy` does (the maximal-subpart rule WHATWG uses too).
/// Never fails: whatever the client sent has a decoding.
pub fn decode_query(raw: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(name), form_decode(value))
        })
        .collect();
    // Kept for the session's whole life: no room for pairs that never come.
    pairs.shrink_to_fit();
    pairs
}

/// One name or value of [`decode_query`]: `+` first, so `%2B` stays a plus.
fn form_decode(text: &str) -> String {
    let text = text.replace('+', " ");
    percent_encoding::percent_decode_str(&text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Receives the events of one session. Implemented by the Socket.IO layer; callbacks
/// run on the session's read path and must not block.
pub trait SessionHandler: Send + Sync + 'static {
    /// A message arrived.
    fn on_message(&self, session: &Arc<Session>, message: Message);
    /// The session ended; called exactly once, from the session's driver task.
    fn on_close(&self, session: &Arc<Session>, reason: DisconnectReason);
    /// The deadline set with [`Session::set_app_deadline`] passed. Runs on the driver,
    /// so a per-session timer costs no task of its own.
    fn on_deadline(&self, _session: &Arc<Session>) {}
    /// The session upgraded to another transport (polling to WebSocket).
    fn on_upgrade(&self, _session: &Arc<Session>) {}
}

/// Creates the handler of each new session.
pub trait EngineHandler: Send + Sync + 'static {
    /// A session was opened (its `open` packet is already queued).
    fn on_open(&self, session: &Arc<Session>) -> Arc<dyn SessionHandler>;

    /// A handshake was refused (already counted in the metrics): report it if wanted.
    fn on_refused(&self, refusal: crate::diagnosis::Refusal) {
        let _ = refusal;
    }
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The session is closed.
    #[error("session closed")]
    Closed,
    /// The queue hit its bound; the session is now closed as a slow consumer.
    #[error("slow consumer: outbound queue full")]
    SlowConsumer,
}

/// Upgrade progress of a polling session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upgrade {
    /// No upgrade under way.
    None,
    /// A WebSocket was accepted for this session; its probe has not arrived yet.
    Started,
    /// A WebSocket answered the probe: a GET that was pending at that moment is owed
    /// a noop at once, so the client can pause polling.
    Probing {
        /// Whether a pending GET still has to receive its noop.
        noop_owed: bool,
    },
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) queue: VecDeque<Frame>,
    pub(crate) queued_bytes: usize,
    /// Room above the queue bounds still held by a recovered session's replay (packets,
    /// bytes): the replay enters the queue whole and is not a sign of a slow consumer,
    /// so live frames queued behind it get the normal bounds on top. Shrinks as frames
    /// are taken, to zero once the replay has gone out.
    pub(crate) replay_allowance: (usize, usize),
    /// What replays reserved on this connection and not queued yet cost against
    /// `recovery.max_replay_bytes` (queued, they count in `replay_allowance`).
    pub(crate) replay_reserved: usize,
    pub(crate) transport: TransportKind,
    pub(crate) closed: Option<DisconnectReason>,
    pub(crate) heartbeat: Heartbeat,
    pub(crate) get_active: bool,
    pub(crate) post_active: bool,
    pub(crate) upgrade: Upgrade,
    /// A WebSocket that completed the upgrade, waiting for the driver to adopt it.
    /// Boxed: the slot is used once per upgrade, and inline it would cost every
    /// session the size of a whole WebSocket.
    pub(crate) upgraded_ws: Option<Box<WsStream>>,
    /// A deadline of the application's (e.g. Socket.IO's connect timeout).
    pub(crate) app_deadline: Option<Instant>,
    /// How the transport ended, once closed (for the diagnosis).
    pub(crate) ending: Ending,
    /// The queue (packets, bytes) when the session was closed, before the `close`
    /// frame: what the diagnosis of a slow reader cites.
    pub(crate) queued_at_close: (usize, usize),
    /// The node's memory when the session was closed: its report shows the pressure
    /// (and the queue bounds it halved) that held then, not what was left once its
    /// queue, dropped at the close of a slow consumer or a shed session, was freed.
    memory_at_close: Option<Box<crate::diagnosis::Memory>>,
    /// Whether the queue reached half a bound since it was last empty (a high-water
    /// step was recorded).
    pub(crate) queue_high: bool,
    /// The connection's steps for its sockets' timelines (an upgrade, queue high-water
    /// marks); allocated on the first.
    pub(crate) trail: Option<Box<Trail>>,
    /// Closed because what it was opened for was refused (an SSE request whose
    /// CONNECT was refused): reported as a refusal, not counted as a disconnect.
    pub(crate) refused: bool,
    /// Ended on purpose by the server (an operator's disconnect with `close`): it
    /// closes as `forced close` whichever close comes first (the client's, answering
    /// its DISCONNECT, or a slow consumer's when that packet overflowed the queue), none
    /// of its sockets' sessions is kept for recovery, and none taken for a resume
    /// still under way is put back.
    pub(crate) kicked: bool,
    /// Why a message or body the client was sending was cut off, if one was.
    pub(crate) cutoff: Option<crate::diagnosis::Cutoff>,
}

/// Steps a connection keeps for its sockets' timelines (the socket keeps its own).
const SESSION_STEPS: usize = 8;

impl Inner {
    /// Records a step of the connection.
    pub(crate) fn step(&mut self, step: Step) {
        self.trail
            .get_or_insert_with(Box::default)
            .push(Crumb::now(step), SESSION_STEPS);
    }
}

/// How [`Session::push`] admits frames into the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Within the queue bounds, or the session closes as a slow consumer.
    Bounded,
    /// As `Bounded`, but dropped (successfully) when frames are already waiting.
    Volatile,
    /// A recovered session's replay, reserved first (`Session::reserve_replay`): past
    /// the bounds, which grew by its size until it has gone out
    /// (`Inner::replay_allowance`).
    Replay,
}

impl Admission {
    /// How live frames are admitted: `Volatile` or `Bounded`.
    fn live(volatile: bool) -> Self {
        if volatile {
            Admission::Volatile
        } else {
            Admission::Bounded
        }
    }
}

/// One Engine.IO session.
pub struct Session {
    sid: Sid,
    info: HandshakeInfo,
    limits: QueueLimits,
    pub(crate) metrics: Arc<Metrics>,
    /// Short critical sections only, never held across `.await`, so a `std` mutex.
    inner: Mutex<Inner>,
    /// Wakes the other tasks that write the queue out: a pending polling GET, an SSE
    /// response. (The WebSocket driver is woken through `wake`.)
    pub(crate) writer: Notify,
    /// Wakes the driver: frames queued for its WebSocket, a change of state, shutdown.
    pub(crate) wake: super::wake::Wake,
    handler: OnceLock<Arc<dyn SessionHandler>>,
}

/// A session is the waker of its WebSocket's read side: readiness raises the driver's
/// `READ` bit and wakes it (see `eio/wake.rs`). Borrowed as a waker (`waker_ref`), it
/// costs nothing to hand over at each poll.
impl futures_util::task::ArcWake for Session {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.wake.raise(super::wake::READ);
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session of its own for unit tests: `transport`, default limits, a heartbeat
    /// of one second each way.
    #[cfg(test)]
    pub(crate) fn for_test(transport: TransportKind) -> Arc<Self> {
        let info = HandshakeInfo {
            headers: HeaderMap::new(),
            query: String::new(),
            query_params: Vec::new(),
            address: ([127, 0, 0, 1], 9).into(),
            issued: SystemTime::now(),
            transport,
        };
        let second = std::time::Duration::from_secs(1);
        let heartbeat = Heartbeat::new(super::websocket::now(), second, second);
        let sid = Sid::from_random([7; 15]);
        Session::new(sid, info, Default::default(), Default::default(), heartbeat)
    }

    pub(crate) fn new(
        sid: Sid,
        info: HandshakeInfo,
        limits: QueueLimits,
        metrics: Arc<Metrics>,
        heartbeat: Heartbeat,
    ) -> Arc<Self> {
        let transport = info.transport;
        Arc::new(Session {
            sid,
            info,
            limits,
            metrics,
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                queued_bytes: 0,
                replay_allowance: (0, 0),
                replay_reserved: 0,
                transport,
                closed: None,
                heartbeat,
                get_active: false,
                post_active: false,
                upgrade: Upgrade::None,
                upgraded_ws: None,
                app_deadline: None,
                ending: Ending::Unknown,
                queued_at_close: (0, 0),
                memory_at_close: None,
                queue_high: false,
                trail: None,
                refused: false,
                kicked: false,
                cutoff: None,
            }),
            writer: Notify::new(),
            wake: Default::default(),
            handler: OnceLock::new(),
        })
    }

    /// The session id.
    pub fn sid(&self) -> Sid {
        self.sid
    }

    /// The handshake request.
    pub fn handshake(&self) -> &HandshakeInfo {
        &self.info
    }

    /// The current transport.
    pub fn transport(&self) -> TransportKind {
        self.lock().transport
    }

    /// Whether an upgrade could start now: open, on polling, none under way or done.
    pub(crate) fn can_upgrade(&self) -> bool {
        let inner = self.lock();
        inner.transport == TransportKind::Polling && inner.upgrade == Upgrade::None
    }

    /// Marks an upgrade as started unless one is under way or done; returns whether
    /// this caller owns the upgrade.
    pub(crate) fn try_start_upgrade(&self) -> bool {
        let mut inner = self.lock();
        if inner.transport != TransportKind::Polling || inner.upgrade != Upgrade::None {
            return false;
        }
        inner.upgrade = Upgrade::Started;
        true
    }

    /// Closes the session with "ping timeout" if its pong is overdue at `now`, even
    /// if the driver's timer has not fired yet; returns whether it is closed.
    pub(crate) fn expire_if_overdue(&self, now: Instant) -> bool {
        let overdue = self.lock().heartbeat.is_overdue(now);
        if overdue {
            self.close(DisconnectReason::PingTimeout);
        }
        overdue || self.is_closed()
    }

    /// Forgets an upgrade that did not complete; the session stays on polling.
    pub(crate) fn abort_upgrade(&self) {
        self.lock().upgrade = Upgrade::None;
    }

    /// Sets (or clears) the application deadline: when it passes, the driver calls
    /// [`SessionHandler::on_deadline`] once.
    pub fn set_app_deadline(&self, deadline: Option<Instant>) {
        self.lock().app_deadline = deadline;
        self.wake_driver();
    }

    /// Sets the application deadline unless one is set already: a later event must
    /// not push an earlier deadline back.
    pub(crate) fn set_app_deadline_if_unset(&self, deadline: Instant) {
        let mut inner = self.lock();
        if inner.app_deadline.is_none() {
            inner.app_deadline = Some(deadline);
            drop(inner);
            self.wake_driver();
        }
    }

    /// What the session knows for the diagnosis of a disconnect for `reason`: its
    /// transport, how it ended, its heartbeat, its queue (at the close, once closed).
    pub fn facts(&self, reason: DisconnectReason) -> Facts {
        let connected_for = SystemTime::now()
            .duration_since(self.info.issued)
            .unwrap_or_default();
        let inner = self.lock();
        let queued = match inner.closed {
            Some(_) => inner.queued_at_close,
            None => (inner.queue.len(), inner.queued_bytes),
        };
        // Once closed, the node's memory then: the queue bounds and the pressure that
        // held at the close, not what is left once its queue was freed.
        let memory = match inner.memory_at_close.as_deref() {
            Some(then) => *then,
            None => crate::diagnosis::Memory::of(&self.metrics),
        };
        let shrunk = memory.tier >= crate::pressure::Tier::Critical;
        let shrink = if shrunk { 2 } else { 1 };
        Facts {
            reason,
            transport: inner.transport,
            ending: inner.ending,
            connected_for,
            silent_for: now().saturating_duration_since(inner.heartbeat.last_seen()),
            heartbeat: (inner.heartbeat.interval(), inner.heartbeat.timeout()),
            queued,
            queue_bounds: (
                self.limits.max_packets / shrink,
                self.limits.max_bytes / shrink,
            ),
            cutoff: inner.cutoff,
            memory: (shrunk || reason == DisconnectReason::ServerOverloaded).then_some(memory),
            noted: Vec::new(),
        }
    }

    /// Marks the session ended on purpose (see `Inner::kicked`), before its sockets
    /// are disconnected and it is closed.
    pub(crate) fn mark_kicked(&self) {
        self.lock().kicked = true;
    }

    /// Whether the session was ended on purpose ([`Session::mark_kicked`]).
    pub(crate) fn kicked(&self) -> bool {
        self.lock().kicked
    }

    /// Closes a session whose purpose was refused (its refusal is reported where it
    /// was decided): no disconnect is counted for it.
    pub(crate) fn close_refused(&self) {
        self.lock().refused = true;
        self.close(DisconnectReason::ForcedClose);
    }

    /// Closes the session for a message or body of `size` bytes (0: unknown) over
    /// `max` (`engine.max_payload`), keeping both for the diagnosis.
    pub(crate) fn close_too_large(&self, size: u64, max: usize) {
        self.close_cut_off(crate::diagnosis::Cutoff::TooLarge { size, max });
    }

    /// Closes the session for what it was sending, cut off for `why` (kept for the
    /// diagnosis), with the reason that goes with it.
    pub(crate) fn close_cut_off(&self, why: crate::diagnosis::Cutoff) {
        self.lock().cutoff = Some(why);
        self.close(why.reason());
    }

    /// Bytes waiting in the outbound queue now.
    pub fn queued_bytes(&self) -> usize {
        self.lock().queued_bytes
    }

    /// The connection's steps for a socket's timeline: its opening (the handshake)
    /// and what it kept since.
    pub(crate) fn crumbs(&self) -> (Crumb, Trail) {
        let opened = Crumb {
            at_us: crate::breadcrumbs::to_us(self.info.issued),
            step: Step::Opened(self.info.transport),
        };
        let trail = self.lock().trail.as_deref().cloned().unwrap_or_default();
        (opened, trail)
    }

    /// Why the session closed, if it did.
    pub fn closed_reason(&self) -> Option<DisconnectReason> {
        self.lock().closed
    }

    /// Whether the session has been closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_handler(&self, handler: Arc<dyn SessionHandler>) {
        let _ = self.handler.set(handler);
    }

    pub(crate) fn handler(&self) -> Option<&Arc<dyn SessionHandler>> {
        self.handler.get()
    }

    /// Queues frames that belong together (a packet and its attachments) atomically.
    ///
    /// A `volatile` send is dropped (successfully) when frames are already waiting:
    /// the client is not ready and the data may be lost, as Socket.IO documents. A
    /// send that would exceed the queue bounds closes the session as a slow consumer.
    pub fn send(&self, frames: &[Frame], volatile: bool) -> Result<(), SendError> {
        self.push_counted(frames, Admission::live(volatile))
    }

    /// [`Self::send`] for a broadcast, which counts what it queued as sent once for
    /// all its recipients: returns whether the frames were queued (`false`: a volatile
    /// send was dropped).
    pub(crate) fn send_uncounted(
        &self,
        frames: &[Frame],
        volatile: bool,
    ) -> Result<bool, SendError> {
        self.push(frames, Admission::live(volatile))
    }

    /// Reads (without writing) what a push touches first, the lock's word and the wake
    /// bits, so a broadcast can bring a chunk of recipients' sessions into the cache
    /// together before it pushes to each (see `Namespace::deliver`).
    pub(crate) fn touch(&self) {
        std::hint::black_box((self.inner.is_poisoned(), self.wake.is_raised()));
    }

    /// Makes room past the queue bounds for a recovered session's replay (the events
    /// it missed), if the replays this connection still holds and `frames` together
    /// stay within `max` bytes (`recovery.max_replay_bytes`, counted as
    /// [`crate::adapter::frame_bytes`] counts them); then send it with
    /// [`Self::send_replay`]. A client that was away long may have missed more than
    /// `max_packets` events: counted against the bounds, the replay would close it as
    /// a slow consumer right after telling it it recovered, and it would come back to
    /// the same replay. The bounds still apply to live frames queued after it (see
    /// `replay_allowance`). `false`: nothing reserved, the session is not to be
    /// resumed. A closed connection reserves nothing and says `true`: it gets no
    /// socket, and the session is kept again for the client's next try.
    pub(crate) fn reserve_replay(&self, frames: &[Frame], max: usize) -> bool {
        let cost = crate::adapter::frame_bytes(frames);
        let mut inner = self.lock();
        if inner.closed.is_some() {
            // Nothing will be queued; the socket will not be registered, and the
            // session is kept again for the client's next try.
            return true;
        }
        // What this connection's replays hold now: queued and not yet taken (as the
        // allowance counts them), and reserved but not queued yet.
        let (packets, bytes) = inner.replay_allowance;
        let held = bytes + packets * std::mem::size_of::<Frame>() + inner.replay_reserved;
        if held.saturating_add(cost) > max {
            return false;
        }
        inner.replay_reserved += cost;
        true
    }

    /// Queues a replay that [`Self::reserve_replay`] reserved, past the bounds: room
    /// is made for it in the same step (an earlier step would let a writer that
    /// empties the queue in between take the room back).
    pub(crate) fn send_replay(&self, frames: &[Frame]) -> Result<(), SendError> {
        self.push_counted(frames, Admission::Replay)
    }

    /// [`Self::push`], counting what was queued as sent.
    fn push_counted(&self, frames: &[Frame], admission: Admission) -> Result<(), SendError> {
        if self.push(frames, admission)? {
            self.metrics.sent(frames, 1);
        }
        Ok(())
    }

    /// Queues a control packet (ping, noop) within the queue bounds, as [`Self::send`].
    pub(crate) fn send_control(&self, packet: &Packet) -> Result<(), SendError> {
        // Control packets carry no data from the client, so they are valid UTF-8.
        match packet.encode_text().map(Utf8Bytes::try_from) {
            Some(Ok(text)) => self.send_control_frame(Frame::Text(text)),
            _ => Ok(()),
        }
    }

    /// Queues a frame of the engine's own (a control packet, the `open` packet) within
    /// the queue bounds: no client input may grow a queue past them, so a frame that
    /// does not fit closes the session as a slow consumer.
    pub(crate) fn send_control_frame(&self, frame: Frame) -> Result<(), SendError> {
        self.push(std::slice::from_ref(&frame), Admission::Bounded)
            .map(drop)
    }

    /// The one place frames enter the queue, and where its bounds are kept. Returns
    /// whether the frames were queued (`false`: a volatile send was dropped).
    fn push(&self, frames: &[Frame], admission: Admission) -> Result<bool, SendError> {
        let bytes: usize = frames.iter().map(Frame::len).sum();
        let transport = {
            let mut inner = self.lock();
            if inner.closed.is_some() {
                return Err(SendError::Closed);
            }
            // Under critical memory pressure volatile packets are dropped and the
            // bounds are halved.
            let shrunk = self.metrics.shrunk();
            if admission == Admission::Volatile && (shrunk || !inner.queue.is_empty()) {
                drop(inner);
                self.metrics
                    .volatile_dropped
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Ok(false);
            }
            if admission == Admission::Replay {
                // Room made for exactly these frames, above whatever the queue holds;
                // what was reserved for them is now counted there.
                inner.replay_allowance.0 += frames.len();
                inner.replay_allowance.1 += bytes;
                let cost = crate::adapter::frame_bytes(frames);
                inner.replay_reserved = inner.replay_reserved.saturating_sub(cost);
            }
            let (extra_packets, extra_bytes) = inner.replay_allowance;
            let shrink = if shrunk { 2 } else { 1 };
            let (max_packets, max_bytes) = (
                self.limits.max_packets / shrink,
                self.limits.max_bytes / shrink,
            );
            if inner.queue.len() + frames.len() > max_packets + extra_packets
                || inner.queued_bytes + bytes > max_bytes + extra_bytes
            {
                drop(inner);
                tracing::debug!(sid = %self.sid, "outbound queue full, closing slow consumer");
                self.close(DisconnectReason::SlowConsumer);
                return Err(SendError::SlowConsumer);
            }
            // One frame (every broadcast) skips `extend`'s generic path.
            match frames {
                [frame] => inner.queue.push_back(frame.clone()),
                _ => inner.queue.extend(frames.iter().cloned()),
            }
            inner.queued_bytes += bytes;
            if !inner.queue_high
                && (2 * inner.queue.len() >= max_packets + extra_packets
                    || 2 * inner.queued_bytes >= max_bytes + extra_bytes)
            {
                inner.queue_high = true;
                let step = Step::QueueHigh {
                    packets: u32::try_from(inner.queue.len()).unwrap_or(u32::MAX),
                    bytes: u32::try_from(inner.queued_bytes).unwrap_or(u32::MAX),
                };
                inner.step(step);
            }
            inner.transport
        };
        self.wake_writer(transport);
        Ok(true)
    }

    /// Wakes the driver to look at the session again (closed, upgraded, a deadline
    /// moved, the final frames taken).
    pub(crate) fn wake_driver(&self) {
        self.wake.raise(super::wake::STATE);
    }

    /// Wakes whoever writes the queue out on `transport`: the driver for a WebSocket,
    /// the pending GET or the SSE response otherwise.
    fn wake_writer(&self, transport: TransportKind) {
        if transport == TransportKind::Websocket {
            self.wake.raise(super::wake::WRITE);
        } else {
            self.writer.notify_one();
        }
    }

    /// Closes the session: queues a `close` packet for the client and wakes the driver,
    /// which removes the session and tells the handler. Idempotent; the first reason wins.
    ///
    /// The `close` frame is the one frame queued past the bounds, so that a session
    /// closed because its queue is full can still tell its client: a reserved slack of
    /// [`CLOSE_FRAME_SLACK`], used at most once per session (only the first close
    /// queues anything).
    pub fn close(&self, reason: DisconnectReason) {
        self.close_ended(reason, Ending::Unknown);
    }

    /// [`Self::close`], saying how the transport ended: whether the client said
    /// goodbye or went away without a word (see [`Ending`]).
    pub(crate) fn close_ended(&self, reason: DisconnectReason, ending: Ending) {
        {
            let mut inner = self.lock();
            if inner.closed.is_some() {
                return;
            }
            // A kicked session closes as the server closed it, whichever close comes
            // first: the client's own, answering the DISCONNECT it was sent, may
            // overtake the server's.
            let cause = reason;
            let reason = match inner.kicked {
                true => DisconnectReason::ForcedClose,
                false => reason,
            };
            inner.closed = Some(reason);
            inner.ending = ending;
            inner.queued_at_close = (inner.queue.len(), inner.queued_bytes);
            inner.memory_at_close = Some(Box::new(crate::diagnosis::Memory::of(&self.metrics)));

            // Inbound cut-offs close as `server overloaded` too; what was queued
            // outbound was not their cause.
            let for_what_it_held = cause == DisconnectReason::SlowConsumer
                || (cause == DisconnectReason::ServerOverloaded && inner.cutoff.is_none());
            if for_what_it_held {
                // Closed for what it held: what is queued goes now rather than being
                // flushed to a client that was not reading — freeing it is the point
                // of the close (a shed under memory pressure freed nothing until a
                // polling or SSE client took it all). A recovering client is sent those
                // events again from the recovery buffer; they follow its offset.
                Self::discard_queue(&mut inner);
            }
            // The client closed: a pending poll just returns (noop), as in Node, and a
            // WebSocket gets nothing more. Otherwise tell the client with `close`.
            let last = match (reason, inner.transport) {
                (
                    DisconnectReason::TransportClose,
                    TransportKind::Websocket | TransportKind::Sse,
                ) => None,
                (DisconnectReason::TransportClose, TransportKind::Polling) => Some("6"),
                _ => Some("1"),
            };
            if let Some(last) = last {
                inner.queue.push_back(Frame::text(last));
                inner.queued_bytes += last.len();
                let (extra_packets, extra_bytes) = inner.replay_allowance;
                debug_assert!(inner.queue.len() <= self.limits.max_packets + extra_packets + 1);
                debug_assert!(
                    inner.queued_bytes <= self.limits.max_bytes + extra_bytes + CLOSE_FRAME_SLACK
                );
            }
        }
        // Whatever the transport: a GET may still be pending while an upgrade ends.
        self.writer.notify_one();
        self.wake.raise(super::wake::WRITE | super::wake::STATE);
    }

    /// Moves queued frames, oldest first, to the end of `out` (the WebSocket driver's
    /// outbox): every one if they come to at most `max_bytes`, else as many as fit in
    /// it (at least one). What stays is still counted against the queue's bounds, so a
    /// client that does not read holds no more than them plus one outbox of frames.
    /// True if frames stay.
    ///
    /// Taking them all with `out` empty trades the two buffers: no copy, and no
    /// allocation once both exist (a busy connection allocates nothing per message).
    pub(crate) fn drain_into(
        inner: &mut Inner,
        out: &mut VecDeque<Frame>,
        max_bytes: usize,
    ) -> bool {
        if inner.queued_bytes > max_bytes {
            // The first frame always; then each while the total stays within the cap.
            let mut taken = 0;
            let fit = inner
                .queue
                .iter()
                .take_while(|frame| {
                    let fits = taken == 0 || taken + frame.len() <= max_bytes;
                    if fits {
                        taken += frame.len();
                    }
                    fits
                })
                .count();
            out.extend(inner.queue.drain(..fit));
            Self::taken_off_bounds(inner, fit, taken);
            if !inner.queue.is_empty() {
                return true;
            }
        }
        inner.queued_bytes = 0;
        inner.queue_high = false;
        inner.replay_allowance = (0, 0);
        if out.is_empty() {
            std::mem::swap(&mut inner.queue, out);
        } else {
            out.extend(inner.queue.drain(..));
        }
        false
    }

    /// Gives the queue's buffer back if nothing waits in it: an idle connection's,
    /// released at each heartbeat (see the driver's `Outbox::release_if_idle`).
    pub(crate) fn release_idle_queue(inner: &mut Inner) {
        if inner.queue.is_empty() {
            inner.queue = VecDeque::new();
        }
    }

    /// Takes at most `max` queued frames, oldest first. Taking them all takes the
    /// queue's buffer too: a polling session keeps none between its polls.
    pub(crate) fn take_up_to(inner: &mut Inner, max: usize) -> Vec<Frame> {
        let n = inner.queue.len().min(max);
        let frames: Vec<Frame> = if n == inner.queue.len() {
            Vec::from(std::mem::take(&mut inner.queue))
        } else {
            inner.queue.drain(..n).collect()
        };
        let taken: usize = frames.iter().map(Frame::len).sum();
        Self::taken_off_bounds(inner, n, taken);
        frames
    }

    /// Takes the first queued frame `wanted` picks, wherever it is in the queue.
    pub(crate) fn take_first(inner: &mut Inner, wanted: impl Fn(&Frame) -> bool) -> Option<Frame> {
        let at = inner.queue.iter().position(wanted)?;
        let frame = inner.queue.remove(at)?;
        Self::taken_off_bounds(inner, 1, frame.len());
        Some(frame)
    }

    /// Closes the session for `reason` knowing its client will not read what is
    /// queued (it has its answer elsewhere, or has moved on): the queue is dropped, so
    /// the session does not wait for a reader (see `eio::driver::lingers`).
    pub(crate) fn close_unread(&self, reason: DisconnectReason) {
        self.close(reason);
        self.drop_unread();
    }

    /// Drops what a closed session's client will not read, and tells the driver, which
    /// may be waiting for it to be taken.
    pub(crate) fn drop_unread(&self) {
        Self::discard_queue(&mut self.lock());
        self.wake_driver();
    }

    /// Drops every queued frame.
    pub(crate) fn discard_queue(inner: &mut Inner) {
        inner.queue = VecDeque::new();
        inner.queued_bytes = 0;
        inner.queue_high = false;
        inner.replay_allowance = (0, 0);
    }

    /// `n` frames of `bytes` in all were taken from the front of the queue: what the
    /// bounds count (and the room a replay made) goes down by as much.
    fn taken_off_bounds(inner: &mut Inner, n: usize, bytes: usize) {
        inner.queued_bytes = inner.queued_bytes.saturating_sub(bytes);
        let (packets, extra) = inner.replay_allowance;
        inner.replay_allowance = (packets.saturating_sub(n), extra.saturating_sub(bytes));
        if inner.queue.is_empty() {
            inner.queue_high = false;
        }
    }

    /// Encodes frames as a polling response body.
    pub(crate) fn encode_polling(frames: &[Frame]) -> Bytes {
        payload::encode(frames.iter().map(Frame::as_ref))
    }

    /// Handles one decoded packet from the client, on either transport.
    pub(crate) fn on_packet(self: &Arc<Self>, packet: Packet, now: Instant) {
        match packet {
            Packet::Message(text) => self.dispatch(Message::Text(text)),
            Packet::Binary(data) => self.dispatch(Message::Binary(data)),
            Packet::Pong(_) => {
                self.lock().heartbeat.on_pong(now);
                // The driver's timer points at the pong deadline; the next ping is due
                // `ping_interval` from now. (A polling pong arrives on a POST, away from
                // the driver; without this the next ping waited for the old deadline.)
                self.wake_driver();
            }
            // Engine.IO v4 heartbeats go server → client only (`2probe` is legal on an
            // upgrading WebSocket, and handled there). Node closes with "transport
            // error" ("invalid heartbeat direction"), and so does this: answering would
            // let a client queue a pong per ping without ever reading.
            Packet::Ping(_) => {
                tracing::debug!(sid = %self.sid, "client ping: invalid heartbeat direction");
                self.close(DisconnectReason::TransportError);
            }
            Packet::Close => self.close_ended(DisconnectReason::TransportClose, Ending::Said),
            Packet::Upgrade | Packet::Noop => {}
            Packet::Open(_) => self.close(DisconnectReason::ParseError),
        }
    }

    fn dispatch(self: &Arc<Self>, message: Message) {
        let len = match &message {
            Message::Text(b) | Message::Binary(b) => b.len(),
        };
        self.metrics.received(len);
        if let Some(handler) = self.handler.get() {
            handler.on_message(self, message);
        }
    }
}

/// The current instant from tokio's clock, so paused-time tests control it.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[cfg(test)]
mod tests {
    use super::{MAX_HANDSHAKE_QUERY_BYTES, decode_query, kept_query};

    /// A query is kept whole up to its budget, then cut after its last pair that fits:
    /// never mid-pair, empty pairs counted.
    #[test]
    fn a_handshake_keeps_its_query_up_to_the_budget() {
        let usual = "EIO=4&transport=polling&t=PZq1x&token=abc.def.ghi";
        assert_eq!(kept_query(usual), usual);
        assert_eq!(kept_query(""), "");
        let flood = "a&".repeat(8_000);
        let kept = kept_query(&flood);
        let pairs = kept.split('&').count();
        let cost: usize = kept.split('&').map(|p| p.len() + 32).sum();
        assert!(cost <= MAX_HANDSHAKE_QUERY_BYTES, "{cost}");
        assert_eq!(pairs, MAX_HANDSHAKE_QUERY_BYTES / 33, "each `a` costs 33");
        assert!(kept.ends_with('a'), "cut after a pair, not inside one");
        assert_eq!(decode_query(kept).len(), pairs);
        let empties = "&".repeat(10_000);
        assert!(kept_query(&empties).len() <= MAX_HANDSHAKE_QUERY_BYTES / 32);
        let long = format!("first=1&big={}&after=2", "é".repeat(5_000));
        assert_eq!(
            kept_query(&long),
            "first=1",
            "a pair past the budget ends it"
        );
    }

    fn expect(raw: &str, want: &[(&str, &str)]) {
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(decode_query(raw), want, "{raw}");
    }

    // Every expected value below is what Node 20 gives for the same query with
    // `new URL("/socket.io/?" + raw, "https://socket.io").searchParams` (before
    // `Object.fromEntries` keeps the last of repeated names).

    #[test]
    fn percent_encoded_utf8_and_plus_are_decoded() {
        expect(
            "EIO=4&transport=polling&name=J%C3%BCrgen&q=a%20b%26c&p=a+b",
            &[
                ("EIO", "4"),
                ("transport", "polling"),
                ("name", "Jürgen"),
                ("q", "a b&c"),
                ("p", "a b"),
            ],
        );
        // `%2B` is a plus, not a space: `+` is replaced before percent-decoding.
        expect("w=%2B+%20", &[("w", "+  ")]);
        expect("k%3Dk=1&a%26b=2", &[("k=k", "1"), ("a&b", "2")]);
        expect("lower=%c3%a9", &[("lower", "é")]);
    }

    #[test]
    fn malformed_percent_sequences_are_kept_as_they_are() {
        expect(
            "x=%&y=%4&z=%41%4g&c=%zz&s=%+1",
            &[
                ("x", "%"),
                ("y", "%4"),
                ("z", "A%4g"),
                ("c", "%zz"),
                ("s", "% 1"),
            ],
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_become_replacement_characters() {
        expect(
            "d=%E2%82&u=%ED%A0%80&v=%C0%AF&w=%FF",
            &[
                ("d", "\u{FFFD}"),
                ("u", "\u{FFFD}\u{FFFD}\u{FFFD}"),
                ("v", "\u{FFFD}\u{FFFD}"),
                ("w", "\u{FFFD}"),
            ],
        );
    }

    #[test]
    fn empty_pairs_names_and_values() {
        expect(
            "&&e&=f&g==h&x=&",
            &[("e", ""), ("", "f"), ("g", "=h"), ("x", "")],
        );
        expect("", &[]);
    }

    #[test]
    fn repeated_names_are_all_kept_in_order() {
        expect("x=1&x=&x=3", &[("x", "1"), ("x", ""), ("x", "3")]);
    }

    /// The WebSocket driver takes at most a cap of bytes at once; what stays is still
    /// counted against the queue's bounds (so a client that does not read holds no
    /// more than them plus one cap), and comes out next, in order.
    #[test]
    fn the_driver_takes_at_most_its_cap_and_what_stays_still_counts() {
        use super::{Frame, Session, TransportKind};
        use std::collections::VecDeque;
        let session = Session::for_test(TransportKind::Websocket);
        let frames: Vec<Frame> = (0..10)
            .map(|i| Frame::text(format!("{i}{}", "x".repeat(99))))
            .collect();
        for frame in &frames {
            session.send(std::slice::from_ref(frame), false).unwrap();
        }
        let mut out = VecDeque::new();
        let mut inner = session.lock();
        assert!(
            Session::drain_into(&mut inner, &mut out, 350),
            "frames stay"
        );
        assert_eq!(out.len(), 3, "as many as fit in 350 bytes");
        assert_eq!(
            (inner.queue.len(), inner.queued_bytes),
            (7, 700),
            "the rest still counts"
        );
        assert!(
            Session::drain_into(&mut inner, &mut out, 50),
            "at least one frame"
        );
        assert_eq!(out.len(), 4);
        assert!(
            !Session::drain_into(&mut inner, &mut out, 600),
            "all that is left fits"
        );
        assert_eq!((inner.queue.len(), inner.queued_bytes), (0, 0));
        assert_eq!(Vec::from(out), frames, "in order");
    }
}
