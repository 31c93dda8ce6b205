//! Connection state recovery on one node: a time-bounded buffer of broadcast packets
//! with offsets, and the sessions of sockets that dropped, so a client coming back
//! within `max_disconnection_duration` gets its id, rooms, data and every missed event.
//!
//! Wire behaviour is Socket.IO ≥ 4.6's: the CONNECT answer carries `pid`, every stored
//! event carries its offset as the last argument, and the client sends `pid` and its
//! last `offset` in the CONNECT payload. Two differences from Node, both closing gaps:
//!
//! - a client that saw no event yet reconnects without an `offset`; Node then refuses
//!   to recover it (so it silently misses what was emitted meanwhile). Here the session
//!   remembers the buffer position at connect time and replays from there;
//! - assigning an offset, storing the packet and delivering it locally happen under one
//!   lock, and so does a restore, so with many threads a packet is never both replayed
//!   and delivered live, nor neither;
//! - a client's `offset` is clamped to where its session began: an older (or forged)
//!   one never replays what was broadcast before the socket connected;
//! - a room counts for the packets stored while the socket was in it (its
//!   [`Memberships`]): an old offset never replays a room's events from before the
//!   socket joined it, and an event to a room it has left since is still replayed if
//!   it was sent while the socket was there. Node judges by the rooms of the moment.
//!
//! Everything kept is bounded by count and bytes, oldest dropped first: the packets,
//! and the sessions, which anyone can make by opening connections and resetting them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_protocol::Sid;

use crate::adapter::Room;
use crate::eio::Frame;
use crate::eio::session::now as now_instant;
use crate::metrics::Metrics;
use crate::sio::Socket;

mod memberships;

pub(crate) use memberships::{Listener, Memberships};

/// Node's default: a client may come back within two minutes.
pub const DEFAULT_MAX_DISCONNECTION_DURATION: Duration = Duration::from_secs(120);
/// Packets kept at most, whatever their age: bounds memory at high broadcast rates. A
/// packet holds its encoded size plus ~100 bytes (docs/memory.md): 100k events of a
/// 200-byte payload take ~33 MB. A client whose offset fell out of the buffer is told
/// it was not recovered.
pub const DEFAULT_MAX_BUFFERED_PACKETS: usize = 100_000;
/// Bytes of packets kept at most (their heap, as `packet_bytes` counts it): the
/// packet count alone lets a handler that relays client messages (up to `max_payload`
/// each) pin 100k × 1 MB. At typical sizes the count binds first (64 MiB is ~200k
/// events of a 200-byte payload).
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 64 << 20;
/// Sessions kept at most. Anyone can make one by connecting and resetting the TCP
/// connection: at the ~16k connections a second the benchmark measures, an unbounded
/// map would hold ~2M sessions per two-minute window. 100k covers a busy node whose
/// every client drops at once (a network blip), which is what recovery is for.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;
/// Bytes all kept sessions may take (rooms and data, as [`session_bytes`] counts them):
/// ~670 B a session at the count bound, so neither bound makes the other moot.
pub const DEFAULT_MAX_SESSIONS_BYTES: usize = 64 << 20;
/// Largest session kept: one socket with huge `data` or thousands of rooms must not
/// push out a thousand ordinary sessions. Its client is told it was not recovered.
pub const DEFAULT_MAX_BYTES_PER_SESSION: usize = 64 << 10;
/// Bytes the recovery buffers of every namespace may take together, packets and
/// sessions: the per-namespace bounds times the namespaces patterns may create
/// (`max_pattern_namespaces`) would be no bound at all. Twice what one namespace may
/// hold at its own bounds, so a server with one namespace never meets it.
pub const DEFAULT_MAX_TOTAL_BYTES: usize = 256 << 20;
/// Most bytes one client is replayed (see [`replay_bytes`]): twice the default
/// outbound queue. A live client that fell that far behind would have been
/// disconnected as a slow consumer; one that missed more is told it was not recovered
/// (as Centrifugo's recovery limit does), instead of having the whole buffer or a copy
/// of the log queued for it. Without it, a client that kept many sessions in a busy
/// room and resumed each from its start had up to the whole buffer queued per
/// connection (and, read from the log, its own copy of it).
pub const DEFAULT_MAX_REPLAY_BYTES: usize = 8 << 20;

/// Settings of connection state recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// How long a dropped socket's session and the packets it may miss are kept.
    pub max_disconnection_duration: Duration,
    /// Skip middleware when a socket is recovered (Node's `skipMiddlewares`).
    pub skip_middlewares: bool,
    /// Most packets kept in the buffer.
    pub max_buffered_packets: usize,
    /// Most bytes of packets kept in the buffer: their heap, the encoded frames and
    /// ~100 bytes of bookkeeping each.
    pub max_buffered_bytes: usize,
    /// Most sessions of dropped sockets kept; the oldest goes first.
    pub max_sessions: usize,
    /// Most bytes all kept sessions take together; the oldest goes first.
    pub max_sessions_bytes: usize,
    /// Largest session kept; a larger one is not kept at all.
    pub max_bytes_per_session: usize,
    /// Most bytes the buffers of every namespace take together (packets and sessions,
    /// as the bounds above count them). A namespace that would pass it drops its own
    /// oldest packets or sessions first; one that holds none keeps nothing more.
    pub max_total_bytes: usize,
    /// Most bytes one replay may queue ([`replay_bytes`]); a client that missed more
    /// is not recovered.
    pub max_replay_bytes: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            max_disconnection_duration: DEFAULT_MAX_DISCONNECTION_DURATION,
            skip_middlewares: true,
            max_buffered_packets: DEFAULT_MAX_BUFFERED_PACKETS,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_bytes: DEFAULT_MAX_SESSIONS_BYTES,
            max_bytes_per_session: DEFAULT_MAX_BYTES_PER_SESSION,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_replay_bytes: DEFAULT_MAX_REPLAY_BYTES,
        }
    }
}

/// What the recovery buffers of every namespace of a server hold together, in bytes
/// as their bounds count them, against `max_total_bytes`. Shared by the buffers; each
/// changes it with its own bytes, under its own lock.
#[derive(Debug)]
pub(crate) struct RecoveryBudget {
    limit: usize,
    used: Arc<AtomicUsize>,
}

impl RecoveryBudget {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Self::counting(limit, Arc::default())
    }

    /// A budget that keeps its count in `used` (the server's metrics).
    pub(crate) fn counting(limit: usize, used: Arc<AtomicUsize>) -> Arc<Self> {
        Arc::new(RecoveryBudget { limit, used })
    }

    fn add(&self, bytes: usize) {
        self.used.fetch_add(bytes, Relaxed);
    }

    fn sub(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Relaxed);
    }

    /// Whether `more` bytes on top of what is held would pass the limit.
    fn over(&self, more: usize) -> bool {
        self.used.load(Relaxed).saturating_add(more) > self.limit
    }
}

/// What a namespace's recovery buffer holds now, as its bounds count it
/// ([`crate::Namespace::recovery_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RecoveryUsage {
    /// Packets buffered for replay.
    pub packets: usize,
    /// What they are charged against `max_buffered_bytes`.
    pub packet_bytes: usize,
    /// Sessions of dropped sockets kept.
    pub sessions: usize,
    /// What they are charged against `max_sessions_bytes`.
    pub session_bytes: usize,
}

/// Socket.IO's disconnect reasons after which a session is kept for recovery.
pub(crate) fn is_recoverable(reason: crate::DisconnectReason) -> bool {
    use crate::DisconnectReason::*;
    matches!(
        reason,
        TransportError
            | TransportClose
            | ForcedClose
            | PingTimeout
            | ServerShuttingDown
            | SlowConsumer
            | ServerOverloaded
    )
}

/// Who a stored packet was for, as rooms (a socket id is the room of that socket).
#[derive(Debug, Clone, Default)]
pub(crate) struct Audience {
    pub(crate) rooms: Box<[Room]>,
    pub(crate) except: Box<[Room]>,
}

impl Audience {
    /// Node's `shouldIncludePacket`, asked of the rooms the listener was in when the
    /// packet at `offset` was stored: a room it joined later neither includes the
    /// packet (it was not for the socket then) nor, excepted, excludes it (it was, and
    /// may have been missed); a room it has left since still does both.
    pub(crate) fn includes(&self, listener: Listener<'_>, offset: u128) -> bool {
        let was_in = |rooms: &[Room]| rooms.iter().any(|r| listener.was_in(r, offset));
        (self.rooms.is_empty() || was_in(&self.rooms)) && !was_in(&self.except)
    }

    fn is_everyone(&self) -> bool {
        self.rooms.is_empty() && self.except.is_empty()
    }
}

/// One packet kept for replay, laid out for the buffer's size: 80 bytes beside its
/// frames' bytes when it was for everyone (see [`packet_bytes`]).
#[derive(Debug)]
struct Stored {
    offset: u128,
    at: Instant,
    /// Who it was for; `None` for everyone, which is most broadcasts and costs no
    /// allocation.
    audience: Option<Box<Audience>>,
    frames: Frames,
}

impl Stored {
    fn new(offset: u128, at: Instant, audience: Audience, frames: Vec<Frame>) -> Self {
        Stored {
            offset,
            at,
            audience: (!audience.is_everyone()).then(|| Box::new(audience)),
            frames: Frames::new(frames),
        }
    }

    fn includes(&self, listener: Listener<'_>) -> bool {
        self.audience
            .as_ref()
            .is_none_or(|a| a.includes(listener, self.offset))
    }

    /// Whether it may be for a listener ever in the rooms of `relevant` and no other:
    /// false only when it was for rooms, none of them among those.
    fn may_include(&self, relevant: &std::collections::HashSet<&str>) -> bool {
        self.audience.as_ref().is_none_or(|a| {
            a.rooms.is_empty() || a.rooms.iter().any(|room| relevant.contains(&**room))
        })
    }

    /// What it counts against `max_buffered_bytes`; the same figure every time it is
    /// asked, so the buffer's running sum stays exact.
    fn bytes(&self) -> usize {
        packet_bytes(self.audience.as_deref(), self.frames.as_slice())
    }
}

/// A stored packet's frames: nearly always one (a packet without binary attachments),
/// kept inline rather than in a vector of its own.
#[derive(Debug)]
enum Frames {
    One(Frame),
    Many(Box<[Frame]>),
}

impl Frames {
    /// Binary frames (attachments) are copied into buffers of their own: one read
    /// from a client may be a slice of a much larger read buffer, which it would keep
    /// whole for the buffer's window while charged for its own length. The text frame
    /// is freshly encoded, exactly its size.
    fn new(frames: Vec<Frame>) -> Self {
        let own = |frame| match frame {
            Frame::Binary(b) => Frame::Binary(bytes::Bytes::copy_from_slice(&b)),
            text => text,
        };
        match <[Frame; 1]>::try_from(frames) {
            Ok([one]) => Frames::One(own(one)),
            Err(frames) => Frames::Many(frames.into_iter().map(own).collect()),
        }
    }

    fn as_slice(&self) -> &[Frame] {
        match self {
            Frames::One(frame) => std::slice::from_ref(frame),
            Frames::Many(frames) => frames,
        }
    }
}

/// What the allocator sets aside per block beyond the bytes asked for, on average:
/// glibc's malloc keeps an 8-byte header and rounds sizes up to 16 bytes.
const MALLOC_BLOCK: usize = 16;
/// The header `bytes` allocates for a frame's buffer once the buffer is shared (a
/// broadcast clones each frame for every recipient).
const SHARED_BUFFER: usize = 24;

/// Bytes a stored packet holds on the heap: its slot in the buffer, each frame's bytes
/// with the header of its shared buffer, and the rooms of its audience. What
/// `max_buffered_bytes` bounds, so it counts what the heap really holds: the
/// `heap_budget` test measures both and keeps them within 64 bytes.
fn packet_bytes(audience: Option<&Audience>, frames: &[Frame]) -> usize {
    let frames_heap: usize = frames
        .iter()
        .map(|f| f.len() + MALLOC_BLOCK + SHARED_BUFFER + MALLOC_BLOCK)
        .sum();
    let frame_list = match frames.len() {
        1 => 0,
        n => n * std::mem::size_of::<Frame>() + MALLOC_BLOCK,
    };
    let audience_heap = audience.map_or(0, |a| {
        std::mem::size_of::<Audience>()
            + MALLOC_BLOCK
            + rooms_heap(&a.rooms)
            + rooms_heap(&a.except)
    });
    std::mem::size_of::<Stored>() + frames_heap + frame_list + audience_heap
}

/// The heap of a list of rooms: the list, and each name (an `Arc<str>`: two counts
/// and the bytes), counted as if no one else held it.
fn rooms_heap(rooms: &[Room]) -> usize {
    if rooms.is_empty() {
        return 0;
    }
    let names: usize = rooms.iter().map(room_name_heap).sum();
    std::mem::size_of_val(rooms) + MALLOC_BLOCK + names
}

/// The heap of a room's name (an `Arc<str>`: two counts and the bytes), counted as if
/// no one else held it.
fn room_name_heap(room: &Room) -> usize {
    2 * std::mem::size_of::<usize>() + room.len() + MALLOC_BLOCK
}

/// Per-session bookkeeping beside its rooms and data: its entry in the session map (a
/// hash map between half and 7/8 full: counted at 4/3 of the entry) and in the age
/// index (a B-tree, whose nodes end about half full: counted at twice the entry).
const SESSION_OVERHEAD: usize = std::mem::size_of::<(Sid, SavedSession)>() * 4 / 3
    + std::mem::size_of::<((Instant, u64), Sid)>() * 2;

/// Bytes a kept session is charged: its entry, its rooms, its memberships and its
/// data, estimated by walking the value (no allocation). An estimate of the heap it
/// holds, stable across runs, which is all a bound needs; `heap_budget` keeps it close
/// to the measured one.
pub(crate) fn session_bytes(rooms: &[Room], memberships: &Memberships, data: &Value) -> usize {
    SESSION_OVERHEAD + rooms_heap(rooms) + memberships.heap() + value_heap(data)
}

/// Bytes a session read from (or written to) a durable store is charged, as
/// [`session_bytes`] charges a kept one: what a node compares with
/// `max_bytes_per_session` before it resumes or saves one.
pub(crate) fn durable_bytes(
    buffer: &RecoveryBuffer,
    session: &crate::adapter::DurableSession,
) -> usize {
    durable_parts(buffer, session).2
}

/// A stored session's rooms and memberships as a kept session holds them, and the
/// bytes it is charged ([`durable_bytes`]).
pub(crate) fn durable_parts(
    buffer: &RecoveryBuffer,
    session: &crate::adapter::DurableSession,
) -> (Vec<Room>, Memberships, usize) {
    let rooms: Vec<Room> = session
        .rooms
        .iter()
        .map(|r| Room::from(r.as_str()))
        .collect();
    let memberships = Memberships::from_durable(buffer, &session.memberships, rooms.len());
    let bytes = session_bytes(&rooms, &memberships, &session.data);
    (rooms, memberships, bytes)
}

/// The heap a JSON value holds beyond its own inline size.
pub(crate) fn value_heap(v: &Value) -> usize {
    let inline = std::mem::size_of::<Value>();
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
        Value::String(s) => s.len() + MALLOC_BLOCK,
        Value::Array(a) => {
            a.len() * inline + MALLOC_BLOCK + a.iter().map(value_heap).sum::<usize>()
        }
        // An insertion-ordered map (`preserve_order`): a vector of entries (hash, key,
        // value) and an index table of one word per entry.
        Value::Object(o) => {
            let entry = std::mem::size_of::<(u64, String, Value)>() + std::mem::size_of::<usize>();
            2 * MALLOC_BLOCK
                + o.iter()
                    .map(|(k, v)| entry + k.len() + MALLOC_BLOCK + value_heap(v))
                    .sum::<usize>()
        }
    }
}

/// What a dropped socket leaves behind.
#[derive(Debug, Clone)]
pub(crate) struct SavedSession {
    pub(crate) sid: Sid,
    pub(crate) pid: Sid,
    /// Rooms, its own id room included.
    pub(crate) rooms: Vec<Room>,
    /// When it was in the rooms it joined late or left.
    pub(crate) memberships: Memberships,
    pub(crate) data: Value,
    /// The buffer position when the socket connected: replay starts there without an
    /// offset, and never before it with one.
    pub(crate) connected_at_offset: u128,
    /// Which resume of the session this is ([`crate::DurableSession::epoch`]); 0
    /// in a node's own buffer.
    pub(crate) epoch: u64,
    disconnected_at: Instant,
    /// Tie-breaker of `disconnected_at` in [`State::by_age`].
    seq: u64,
    /// What this session counts against `max_sessions_bytes`.
    bytes: usize,
}

impl SavedSession {
    /// Its key in [`State::by_age`].
    fn age_key(&self) -> (Instant, u64) {
        (self.disconnected_at, self.seq)
    }

    /// Whom its replay is for.
    pub(crate) fn listener(&self) -> Listener<'_> {
        Listener {
            rooms: &self.rooms,
            memberships: &self.memberships,
        }
    }
}

/// A session brought back, with the frames of the events it missed.
#[derive(Debug)]
pub(crate) struct Restored {
    pub(crate) session: SavedSession,
    pub(crate) missed: Vec<Frame>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    packets: VecDeque<Stored>,
    /// Sum of the packets' `bytes`.
    packets_bytes: usize,
    /// Offset of the most recent packet (0: none yet).
    head: u128,
    /// Highest offset dropped from the buffer (or, with a log, where this node started
    /// reading it): the buffer holds every packet after it.
    dropped_up_to: u128,
    sessions: HashMap<Sid, SavedSession>,
    /// The kept sessions oldest first, so expiry and eviction pop from the front:
    /// O(log n) per session, never a scan of all of them under the lock broadcasts
    /// take. Holds exactly the keys of `sessions`.
    by_age: BTreeMap<(Instant, u64), Sid>,
    /// Sum of the sessions' `bytes`.
    sessions_bytes: usize,
    /// The next [`SavedSession::seq`].
    next_seq: u64,
    /// Connected sockets by `pid`, so a client that reconnects before its old
    /// connection was seen to drop can take that session over.
    live: HashMap<Sid, Weak<Socket>>,
}

/// How offsets are made and written.
#[derive(Debug)]
enum Scheme {
    /// Assigned here: `<epoch>-<counter in hex>`. The epoch is a random per-process
    /// prefix, so an offset from another process (or a restarted one) never matches.
    Local { epoch: String },
    /// Assigned by a durable log shared by the cluster (Redis stream ids
    /// `<ms>-<seq>`, kept here as `ms << 64 | seq`).
    Log,
}

/// The recovery buffer of one namespace.
#[derive(Debug)]
pub(crate) struct RecoveryBuffer {
    config: RecoveryConfig,
    scheme: Scheme,
    /// Held while a broadcast assigns an offset and delivers, and while a restore
    /// replays; never across `.await`.
    state: Mutex<State>,
    /// The process's metrics, bound by the first socket that connects (see
    /// [`RecoveryBuffer::bind_metrics`]); every kept session comes from such a socket.
    metrics: OnceLock<Arc<Metrics>>,
    /// What every namespace's buffer holds together (its own, unless shared with
    /// [`RecoveryBuffer::sharing`]).
    budget: Arc<RecoveryBudget>,
    /// The memberships of connected sockets (by `pid`) that joined or left a room
    /// after their session began; only those have an entry. A lock of its own, taken last (under
    /// `state` or alone): a socket's durable session is saved with it, which happens
    /// with `state` held as well as without.
    memberships: Mutex<HashMap<Sid, Memberships>>,
}

impl Drop for RecoveryBuffer {
    fn drop(&mut self) {
        let state = self.lock();
        let (kept, bytes) = (
            state.sessions.len(),
            state.packets_bytes + state.sessions_bytes,
        );
        drop(state);
        self.budget.sub(bytes);
        self.count(|m| m.recovery_sessions_changed(-(kept as i64)));
    }
}

impl RecoveryBuffer {
    pub(crate) fn new(config: RecoveryConfig) -> Self {
        let epoch = Sid::from_random(rand::random()).as_str()[..8].to_owned();
        RecoveryBuffer {
            config,
            scheme: Scheme::Local { epoch },
            state: Mutex::default(),
            metrics: OnceLock::new(),
            budget: RecoveryBudget::new(config.max_total_bytes),
            memberships: Mutex::default(),
        }
    }

    /// This (empty) buffer, counted in `budget` with every other buffer sharing it.
    pub(crate) fn sharing(mut self, budget: Arc<RecoveryBudget>) -> Self {
        self.budget = budget;
        self
    }

    /// A buffer whose offsets come from a durable log; it covers the log from the
    /// position given to [`RecoveryBuffer::start_at`].
    pub(crate) fn logged(config: RecoveryConfig) -> Self {
        RecoveryBuffer {
            config,
            scheme: Scheme::Log,
            state: Mutex::default(),
            metrics: OnceLock::new(),
            budget: RecoveryBudget::new(config.max_total_bytes),
            memberships: Mutex::default(),
        }
    }

    /// Counts this buffer's sessions in `metrics` from now on. The namespace (and its
    /// buffer) is built before the engine hands its metrics to anyone, so the connect
    /// path binds them; later calls are a no-op.
    pub(crate) fn bind_metrics(&self, metrics: &Arc<Metrics>) {
        if self.metrics.get().is_none() {
            let _ = self.metrics.set(metrics.clone());
        }
    }

    fn count(&self, f: impl FnOnce(&Metrics)) {
        if let Some(m) = self.metrics.get() {
            f(m);
        }
    }

    /// Whether offsets come from a durable log.
    pub(crate) fn is_logged(&self) -> bool {
        matches!(self.scheme, Scheme::Log)
    }

    /// With a log: this node reads it from just after `offset`.
    pub(crate) fn start_at(&self, offset: &str) {
        if let Some(key) = parse_log_offset(offset) {
            let mut state = self.lock();
            if state.head == 0 && state.packets.is_empty() {
                state.head = key;
                state.dropped_up_to = key;
            }
        }
    }

    /// With a log: this node's read of it missed entries just before `key`. Nothing
    /// buffered before them can be replayed without them, so those packets go, and
    /// the buffer holds everything after `key - 1` from now on: a replay from further
    /// back reads the log first (see [`Self::covered_from`]).
    pub(crate) fn gap_before(&self, key: u128) {
        let mut state = self.lock();
        let until = key.saturating_sub(1);
        if until <= state.dropped_up_to {
            return;
        }
        while let Some(front) = state.packets.front() {
            if front.offset > until {
                break;
            }
            let bytes = front.bytes();
            state.packets_bytes -= bytes;
            self.budget.sub(bytes);
            state.packets.pop_front();
        }
        state.dropped_up_to = until;
        state.head = state.head.max(until);
    }

    /// With a log: the position the buffer holds everything after (read it before
    /// fetching the older part of a replay from the log).
    pub(crate) fn covered_from(&self) -> u128 {
        self.lock().dropped_up_to
    }

    pub(crate) fn config(&self) -> &RecoveryConfig {
        &self.config
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The wire form of an offset.
    pub(crate) fn offset_string(&self, offset: u128) -> String {
        match &self.scheme {
            Scheme::Local { epoch } => format!("{epoch}-{offset:x}"),
            Scheme::Log => log_offset_string(offset),
        }
    }

    pub(crate) fn parse_offset(&self, s: &str) -> Option<u128> {
        match &self.scheme {
            Scheme::Local { epoch } => {
                // The epoch is base64url and may contain '-'; the counter never does.
                let (e, n) = s.rsplit_once('-')?;
                (e == epoch).then(|| u128::from_str_radix(n, 16).ok())?
            }
            Scheme::Log => parse_log_offset(s),
        }
    }

    /// The next offset, to be appended to a packet before it is encoded (local
    /// offsets only; a log assigns its own).
    pub(crate) fn next_offset(state: &State) -> u128 {
        state.head + 1
    }

    /// Stores an encoded packet under `offset`, which must be above the head (the
    /// one `next_offset` returned, or the log's).
    pub(crate) fn store(
        &self,
        state: &mut State,
        offset: u128,
        audience: Audience,
        frames: Vec<Frame>,
        now: Instant,
    ) {
        state.head = offset;
        let stored = Stored::new(offset, now, audience, frames);
        state.packets_bytes += stored.bytes();
        self.budget.add(stored.bytes());
        state.packets.push_back(stored);
        self.prune_packets(state, now);
    }

    /// With a log: records that the log moved to `offset` without a packet for this
    /// buffer (another namespace's entry, a volatile one).
    pub(crate) fn advance(state: &mut State, offset: u128) {
        if offset > state.head {
            state.head = offset;
            if state.packets.is_empty() {
                state.dropped_up_to = offset;
            }
        }
    }

    fn prune_packets(&self, state: &mut State, now: Instant) {
        let max_age = self.config.max_disconnection_duration;
        // Halved under critical memory pressure.
        let shrink = if self.metrics.get().is_some_and(|m| m.shrunk()) {
            2
        } else {
            1
        };
        let (max_packets, max_bytes) = (
            self.config.max_buffered_packets / shrink,
            self.config.max_buffered_bytes / shrink,
        );
        while let Some(front) = state.packets.front() {
            let too_old = now.saturating_duration_since(front.at) > max_age;
            let within = state.packets.len() <= max_packets
                && state.packets_bytes <= max_bytes
                && !self.budget.over(0);
            if !too_old && within {
                break;
            }
            state.dropped_up_to = front.offset;
            state.packets_bytes -= front.bytes();
            self.budget.sub(front.bytes());
            state.packets.pop_front();
        }
    }

    /// Drops what is over the bounds now (they shrink under memory pressure).
    pub(crate) fn prune_now(&self) {
        let mut state = self.lock();
        self.prune_packets(&mut state, now_instant());
    }

    /// Drops the sessions and packets past `max_disconnection_duration` at `now`, and
    /// gives back the capacity of maps a burst left mostly empty. Run on a timer for
    /// every namespace ([`super::Io`]'s expiry task): otherwise only a namespace's own
    /// traffic expired what it held, so a quiet one kept its dead sessions and packets,
    /// charged to every namespace's `recovery.max_total_bytes`, for ever.
    pub(crate) fn expire_now(&self, now: Instant) {
        let mut state = self.lock();
        self.expire_sessions(&mut state, now);
        self.prune_packets(&mut state, now);
        crate::capacity::give_back(&mut state.sessions, 64);
        crate::capacity::give_back(&mut state.packets, 64);
    }

    /// What the buffer holds now.
    pub(crate) fn usage(&self) -> RecoveryUsage {
        let state = self.lock();
        RecoveryUsage {
            packets: state.packets.len(),
            packet_bytes: state.packets_bytes,
            sessions: state.sessions.len(),
            session_bytes: state.sessions_bytes,
        }
    }

    /// The current head, recorded by a socket when it connects.
    pub(crate) fn head(&self) -> u128 {
        self.lock().head
    }

    /// The head of a locked state.
    pub(crate) fn head_of(state: &State) -> u128 {
        state.head
    }

    /// Records a connected socket under its `pid`.
    pub(crate) fn register_live(state: &mut State, pid: Sid, socket: Weak<Socket>) {
        state.live.insert(pid, socket);
    }

    /// Forgets `socket`, which disconnected, handing back its memberships for its
    /// kept session (their lists shrunk to their entries). Only if `pid` is still
    /// registered to it: a stale socket of a session resumed meanwhile (with
    /// `redis-streams`, on this node) must not take the new socket's entry away.
    pub(crate) fn unregister_live(&self, pid: Sid, socket: *const Socket) -> Memberships {
        let mut state = self.lock();
        if !memberships::is_live(&state, pid, socket) {
            return Memberships::default();
        }
        state.live.remove(&pid);
        let mut memberships = self.lock_memberships().remove(&pid).unwrap_or_default();
        memberships.shrink();
        memberships
    }

    /// The still-connected socket holding `pid`, if any.
    pub(crate) fn live_socket(&self, pid: &str) -> Option<std::sync::Arc<Socket>> {
        let pid: Sid = pid.parse().ok()?;
        self.lock().live.get(&pid).and_then(Weak::upgrade)
    }

    /// Whether a live (unexpired) session `pid` is kept.
    pub(crate) fn has_session(&self, pid: &str) -> bool {
        let Ok(pid) = pid.parse::<Sid>() else {
            return false;
        };
        let max_age = self.config.max_disconnection_duration;
        self.lock()
            .sessions
            .get(&pid)
            .is_some_and(|s| now_instant().saturating_duration_since(s.disconnected_at) <= max_age)
    }

    /// Keeps a dropped socket's session, dropping expired sessions and, to stay within
    /// `max_sessions` and `max_sessions_bytes`, the oldest ones. A session larger than
    /// `max_bytes_per_session` is not kept. O(log n) per session added or dropped.
    pub(crate) fn persist(&self, session: SavedSessionParts, now: Instant) {
        let bytes = session_bytes(&session.rooms, &session.memberships, &session.data);
        let c = &self.config;
        let mut state = self.lock();
        self.expire_sessions(&mut state, now);
        // A resumed socket dropping again replaces what it left the first time.
        if self.remove_session(&mut state, &session.pid).is_some() {
            self.count(|m| m.recovery_sessions_changed(-1));
        }
        let largest = c
            .max_bytes_per_session
            .min(c.max_sessions_bytes)
            .min(self.budget.limit);
        // Too large, or past the shared budget even with every session of this
        // namespace given up (other namespaces hold it): not kept, and the others
        // are not dropped for nothing.
        let hopeless =
            bytes > state.sessions_bytes && self.budget.over(bytes - state.sessions_bytes);
        if bytes > largest || c.max_sessions == 0 || hopeless {
            self.count(|m| {
                m.recovery_sessions_evicted.fetch_add(1, Relaxed);
            });
            return;
        }
        let mut evicted = 0;
        while state.sessions.len() >= c.max_sessions
            || state.sessions_bytes + bytes > c.max_sessions_bytes
            || self.budget.over(bytes)
        {
            let Some((_, pid)) = state.by_age.first_key_value() else {
                break;
            };
            let pid = *pid;
            self.remove_session(&mut state, &pid);
            evicted += 1;
        }
        if self.budget.over(bytes) {
            // Other namespaces hold the budget and this one has no session left to
            // give: this one is not kept.
            self.count(|m| {
                m.recovery_sessions_evicted.fetch_add(evicted + 1, Relaxed);
                m.recovery_sessions_changed(-(evicted as i64));
            });
            return;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        let saved = SavedSession {
            sid: session.sid,
            pid: session.pid,
            rooms: session.rooms,
            memberships: session.memberships,
            data: session.data,
            connected_at_offset: session.connected_at_offset,
            epoch: session.epoch,
            disconnected_at: now,
            seq,
            bytes,
        };
        state.by_age.insert(saved.age_key(), saved.pid);
        state.sessions_bytes += bytes;
        self.budget.add(bytes);
        state.sessions.insert(saved.pid, saved);
        self.count(|m| {
            m.recovery_sessions_evicted.fetch_add(evicted, Relaxed);
            m.recovery_sessions_changed(1 - evicted as i64);
        });
    }

    /// Drops the sessions kept longer than `max_disconnection_duration`, oldest first,
    /// stopping at the first one still valid: O(expired).
    fn expire_sessions(&self, state: &mut State, now: Instant) {
        let max_age = self.config.max_disconnection_duration;
        let mut expired = 0;
        while let Some(((at, _), pid)) = state.by_age.first_key_value() {
            if now.saturating_duration_since(*at) <= max_age {
                break;
            }
            let pid = *pid;
            self.remove_session(state, &pid);
            expired += 1;
        }
        if expired > 0 {
            self.count(|m| {
                m.recovery_sessions_expired.fetch_add(expired, Relaxed);
                m.recovery_sessions_changed(-(expired as i64));
            });
        }
    }

    /// Takes the session `pid` out of the map, the age index and the byte count.
    fn remove_session(&self, state: &mut State, pid: &Sid) -> Option<SavedSession> {
        let session = state.sessions.remove(pid)?;
        state.by_age.remove(&session.age_key());
        state.sessions_bytes -= session.bytes;
        self.budget.sub(session.bytes);
        Some(session)
    }

    /// Sessions kept now and the bytes they are charged (for tests and the gauge).
    #[cfg(test)]
    fn kept(&self) -> (usize, usize) {
        let state = self.lock();
        (state.sessions.len(), state.sessions_bytes)
    }

    /// Where a replay for a session that began at `start` (its socket's connect-time
    /// position) begins, given the `offset` its client claims: never before `start`,
    /// so an old or forged offset cannot replay what was broadcast before the socket
    /// connected (events of rooms it was never in, or already delivered). `None`:
    /// the offset is not one of this buffer's.
    pub(crate) fn resume_from(&self, claimed: Option<&str>, start: u128) -> Option<u128> {
        match claimed {
            Some(o) => Some(self.parse_offset(o)?.max(start)),
            None => Some(start),
        }
    }

    /// Takes the session `pid` back if it is still recoverable from `offset` (or, with
    /// no offset, from where it connected). Called with the state locked so the caller
    /// can register the socket before any later broadcast runs.
    ///
    /// `allowed` (the application's `on_resume` for this connection) is asked first: a
    /// session it refuses stays kept, for its owner (before 2026-12-07 it was taken and
    /// dropped, so another user's token with the first one's `pid` discarded it).
    pub(crate) fn restore(
        &self,
        state: &mut State,
        pid: &str,
        offset: Option<&str>,
        now: Instant,
        allowed: impl FnOnce(&SavedSession) -> bool,
    ) -> Option<Restored> {
        let pid: Sid = pid.parse().ok()?;
        self.expire_sessions(state, now);
        if !allowed(state.sessions.get(&pid)?) {
            tracing::debug!("session refused to this connection by the application; kept");
            return None;
        }
        let session = self.remove_session(state, &pid)?;
        self.count(|m| m.recovery_sessions_changed(-1));
        let from = self.resume_from(offset, session.connected_at_offset)?;
        let replay = Self::replay(
            state,
            session.listener(),
            ReplayStart::buffer(from),
            self.config.max_replay_bytes,
        );
        match replay {
            Ok(missed) => Some(Restored { session, missed }),
            Err(why) => {
                tracing::debug!(socket = %session.sid, ?why, "session not recovered");
                None
            }
        }
    }

    /// The frames `listener` missed after `from.offset`: `from.older` (already
    /// filtered, covering the log up to `from.older_until`) then the buffer's packets,
    /// at most `max_bytes` of them ([`replay_bytes`]).
    pub(crate) fn replay(
        state: &State,
        listener: Listener<'_>,
        from: ReplayStart,
        max_bytes: usize,
    ) -> Result<Vec<Frame>, Unreplayable> {
        if from.offset > state.head || from.older_until.max(from.offset) < state.dropped_up_to {
            return Err(Unreplayable::Gap);
        }
        let start = from.older_until.max(from.offset);
        let mut bytes = replay_bytes(&from.older);
        let mut missed = from.older;
        // From the first packet after `start`, found by halving (offsets only grow):
        // the buffer may hold 100,000 packets before it, each looked at under the lock
        // every broadcast of the namespace needs.
        let first = state.packets.partition_point(|p| p.offset <= start);
        // A listener in many rooms: the rooms it was ever in, hashed once, so that a
        // packet for other rooms (most of them, in a busy namespace) costs a look-up
        // per room it names, not a walk of the listener's rooms for each.
        let relevant: Option<std::collections::HashSet<&str>> =
            (listener.rooms.len() > 8).then(|| {
                listener
                    .rooms
                    .iter()
                    .chain(listener.memberships.left.iter().map(|(room, _, _)| room))
                    .map(|room| &**room)
                    .collect()
            });
        for p in state
            .packets
            .range(first..)
            .filter(|p| relevant.as_ref().is_none_or(|r| p.may_include(r)))
            .filter(|p| p.includes(listener))
        {
            let frames = p.frames.as_slice();
            bytes += replay_bytes(frames);
            if bytes > max_bytes {
                break;
            }
            missed.extend(frames.iter().cloned());
        }
        if bytes > max_bytes {
            return Err(Unreplayable::TooLarge);
        }
        Ok(missed)
    }
}

/// Where a replay starts: after `offset`, with `older` (read from the durable log,
/// already filtered) covering the log up to `older_until`, the buffer's packets after.
#[derive(Debug)]
pub(crate) struct ReplayStart {
    pub(crate) offset: u128,
    pub(crate) older: Vec<Frame>,
    pub(crate) older_until: u128,
}

impl ReplayStart {
    /// After `offset`, all of it from the buffer.
    pub(crate) fn buffer(offset: u128) -> Self {
        ReplayStart {
            offset,
            older: Vec::new(),
            older_until: offset,
        }
    }
}

/// Why a client's missed events cannot be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreplayable {
    /// Some of them are gone (dropped from the buffer, trimmed from the log), or the
    /// offset is ahead of this buffer.
    Gap,
    /// More than `max_replay_bytes` of them.
    TooLarge,
}

pub(crate) use crate::adapter::frame_bytes as replay_bytes;

/// The parts of a session the socket supplies when it drops.
#[derive(Debug)]
pub(crate) struct SavedSessionParts {
    pub(crate) sid: Sid,
    pub(crate) pid: Sid,
    pub(crate) rooms: Vec<Room>,
    pub(crate) memberships: Memberships,
    pub(crate) data: Value,
    pub(crate) connected_at_offset: u128,
    pub(crate) epoch: u64,
}

/// A session restored from a durable store, as the buffer keeps it.
pub(crate) fn saved_from_parts(parts: SavedSessionParts, now: Instant) -> SavedSession {
    SavedSession {
        sid: parts.sid,
        pid: parts.pid,
        rooms: parts.rooms,
        memberships: parts.memberships,
        data: parts.data,
        connected_at_offset: parts.connected_at_offset,
        epoch: parts.epoch,
        disconnected_at: now,
        seq: 0,
        bytes: 0,
    }
}

impl SavedSession {
    /// The inverse of [`saved_from_parts`]: the session's parts and when it was
    /// disconnected, to keep it again as it was.
    pub(crate) fn into_parts(self) -> (SavedSessionParts, Instant) {
        let parts = SavedSessionParts {
            sid: self.sid,
            pid: self.pid,
            rooms: self.rooms,
            memberships: self.memberships,
            data: self.data,
            connected_at_offset: self.connected_at_offset,
            epoch: self.epoch,
        };
        (parts, self.disconnected_at)
    }
}

/// `<ms>-<seq>` (a Redis stream id) as one ordered number.
pub(crate) fn parse_log_offset(s: &str) -> Option<u128> {
    let (ms, seq) = s.split_once('-')?;
    let digits = |t: &str| !t.is_empty() && t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(ms) || !digits(seq) {
        return None;
    }
    Some((u128::from(ms.parse::<u64>().ok()?) << 64) | u128::from(seq.parse::<u64>().ok()?))
}

/// The wire form of a log offset.
pub(crate) fn log_offset_string(key: u128) -> String {
    format!("{}-{}", key >> 64, key & u128::from(u64::MAX))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    pub(super) fn buffer(max: usize) -> RecoveryBuffer {
        RecoveryBuffer::new(RecoveryConfig {
            max_buffered_packets: max,
            ..RecoveryConfig::default()
        })
    }

    pub(super) fn sid(n: u8) -> Sid {
        Sid::from_random([n; 15])
    }

    fn frame(s: &str) -> Vec<Frame> {
        vec![Frame::text(s.to_owned())]
    }

    pub(super) fn to(rooms: &[&str]) -> Audience {
        Audience {
            rooms: rooms.iter().map(|r| Room::from(*r)).collect(),
            except: Box::default(),
        }
    }

    /// A listener in no room: every packet for everyone is its.
    fn everything() -> Listener<'static> {
        Listener::since_start(&[])
    }

    fn store(b: &RecoveryBuffer, f: &str, now: Instant) {
        let mut st = b.lock();
        let next = RecoveryBuffer::next_offset(&st);
        b.store(&mut st, next, to(&[]), frame(f), now);
    }

    fn persist(b: &RecoveryBuffer, rooms: &[&str], at_offset: u128, now: Instant) {
        b.persist(
            SavedSessionParts {
                sid: sid(1),
                pid: sid(2),
                rooms: rooms.iter().map(|r| Room::from(*r)).collect(),
                memberships: Memberships::default(),
                data: Value::Null,
                connected_at_offset: at_offset,
                epoch: 0,
            },
            now,
        );
    }

    #[test]
    fn replays_only_what_came_after_the_offset_for_the_sessions_rooms() {
        let b = buffer(100);
        let now = Instant::now();
        let mut st = b.lock();
        for (rooms, f) in [
            (&[][..], "a"),
            (&["x"][..], "b"),
            (&["y"], "c"),
            (&["x"], "d"),
        ] {
            let next = RecoveryBuffer::next_offset(&st);
            b.store(&mut st, next, to(rooms), frame(f), now);
        }
        drop(st);
        persist(&b, &["x"], 0, now);
        let offset = b.offset_string(1);
        let restored = b
            .restore(&mut b.lock(), sid(2).as_str(), Some(&offset), now, |_| true)
            .unwrap();
        assert_eq!(restored.missed, [frame("b"), frame("d")].concat());
        assert!(
            b.restore(&mut b.lock(), sid(2).as_str(), Some(&offset), now, |_| true)
                .is_none(),
            "once"
        );
    }

    /// A listener in many rooms (hashed once for the replay) gets what one in few
    /// would: packets for its rooms and for rooms it left while it was there, those
    /// for everyone, not those for other rooms or excepting its own.
    #[test]
    fn a_replay_for_a_listener_in_many_rooms_keeps_its_own_packets() {
        let b = buffer(100);
        let now = Instant::now();
        let mut st = b.lock();
        let excepting = Audience {
            rooms: Box::default(),
            except: [Room::from("r3")].into(),
        };
        for (audience, f) in [
            (to(&["r1"]), "a"),
            (to(&["other"]), "b"),
            (to(&[]), "c"),
            (to(&["gone", "other"]), "d"),
            (excepting, "e"),
            (to(&["other", "r11"]), "f"),
        ] {
            let next = RecoveryBuffer::next_offset(&st);
            b.store(&mut st, next, audience, frame(f), now);
        }
        let rooms: Vec<Room> = (0..12).map(|n| Room::from(format!("r{n}"))).collect();
        let memberships = Memberships {
            joined: Vec::new(),
            left: vec![(Room::from("gone"), 0, 100)],
        };
        let listener = Listener {
            rooms: &rooms,
            memberships: &memberships,
        };
        let missed =
            RecoveryBuffer::replay(&st, listener, ReplayStart::buffer(0), usize::MAX).unwrap();
        assert_eq!(
            missed,
            [frame("a"), frame("c"), frame("d"), frame("f")].concat()
        );
    }

    #[test]
    fn a_replay_past_max_replay_bytes_is_refused_whole() {
        let b = RecoveryBuffer::new(RecoveryConfig {
            max_replay_bytes: 3 * replay_bytes(&frame("xxxx")),
            ..RecoveryConfig::default()
        });
        let now = Instant::now();
        for _ in 0..4 {
            store(&b, "xxxx", now);
        }
        let replay = |from| {
            RecoveryBuffer::replay(
                &b.lock(),
                everything(),
                ReplayStart::buffer(from),
                b.config().max_replay_bytes,
            )
        };
        // Three packets fit exactly; four do not, and none of them is handed over.
        assert_eq!(replay(1).map(|m| m.len()), Ok(3));
        assert_eq!(replay(0), Err(Unreplayable::TooLarge));
        // What was read from the log counts too.
        let older = ReplayStart {
            offset: 2,
            older: frame("xxxx"),
            older_until: 2,
        };
        let max = b.config().max_replay_bytes;
        assert_eq!(
            RecoveryBuffer::replay(&b.lock(), everything(), older, max).map(|m| m.len()),
            Ok(3)
        );
        let older = ReplayStart {
            offset: 1,
            older: [frame("xxxx"), frame("xxxx")].concat(),
            older_until: 1,
        };
        assert_eq!(
            RecoveryBuffer::replay(&b.lock(), everything(), older, max),
            Err(Unreplayable::TooLarge)
        );
        // A session resumed from too far back is not recovered (and not kept).
        persist(&b, &[], 0, now);
        assert!(
            b.restore(&mut b.lock(), sid(2).as_str(), None, now, |_| true)
                .is_none()
        );
        assert_eq!(b.usage().sessions, 0);
    }

    #[test]
    fn a_gap_in_the_log_drops_what_came_before_it_and_replays_from_there_only() {
        let b = RecoveryBuffer::logged(RecoveryConfig::default());
        b.start_at("10-0");
        let now = Instant::now();
        let key = |s: &str| parse_log_offset(s).unwrap();
        for offset in ["11-0", "12-0"] {
            let mut st = b.lock();
            b.store(&mut st, key(offset), to(&[]), frame(offset), now);
        }
        // The node read 12-0, then the log was trimmed past it: next comes 20-0.
        b.gap_before(key("20-0"));
        assert_eq!(b.usage().packets, 0, "what came before the gap is dropped");
        assert_eq!(b.covered_from(), key("20-0") - 1);
        let replay = |from: u128| {
            RecoveryBuffer::replay(
                &b.lock(),
                everything(),
                ReplayStart::buffer(from),
                usize::MAX,
            )
        };
        // Anything before 20-0 may be missing, however close.
        assert_eq!(
            replay(key("11-0")),
            Err(Unreplayable::Gap),
            "from before the gap"
        );
        assert_eq!(replay(key("19-5")), Err(Unreplayable::Gap));
        {
            let mut st = b.lock();
            b.store(&mut st, key("20-0"), to(&[]), frame("20-0"), now);
        }
        assert_eq!(
            replay(key("20-0") - 1),
            Ok(frame("20-0")),
            "from where it holds all"
        );
        // The same gap found again changes nothing.
        b.gap_before(key("20-0"));
        assert_eq!(b.usage().packets, 1);
    }

    #[test]
    fn without_offset_replays_from_connect_time() {
        let b = buffer(100);
        let now = Instant::now();
        store(&b, "before", now);
        let at = b.head();
        store(&b, "missed", now);
        persist(&b, &[], at, now);
        let restored = b
            .restore(&mut b.lock(), sid(2).as_str(), None, now, |_| true)
            .unwrap();
        assert_eq!(restored.missed, frame("missed"));
    }

    #[test]
    fn refuses_expired_sessions_foreign_and_dropped_offsets() {
        let b = buffer(2);
        let now = Instant::now();
        for s in ["a", "b", "c"] {
            store(&b, s, now);
        }
        persist(&b, &[], 0, now);
        // Offset 0 fell out of the two-packet buffer: not recoverable, never a gap.
        assert!(
            b.restore(
                &mut b.lock(),
                sid(2).as_str(),
                Some(&b.offset_string(0)),
                now,
                |_| true
            )
            .is_none()
        );
        persist(&b, &[], 0, now);
        assert!(
            b.restore(&mut b.lock(), sid(2).as_str(), Some("other-1"), now, |_| {
                true
            })
            .is_none()
        );
        persist(&b, &[], 0, now);
        let later = now + DEFAULT_MAX_DISCONNECTION_DURATION + Duration::from_secs(1);
        assert!(
            b.restore(
                &mut b.lock(),
                sid(2).as_str(),
                Some(&b.offset_string(2)),
                later,
                |_| true
            )
            .is_none()
        );
    }

    #[test]
    fn offsets_round_trip_whatever_the_epoch_contains() {
        let mut b = buffer(10);
        for epoch in ["a-b-c-d-", "--------", "abcdefgh"] {
            b.scheme = Scheme::Local {
                epoch: epoch.to_owned(),
            };
            assert_eq!(b.parse_offset(&b.offset_string(0x2a)), Some(0x2a));
        }
        assert_eq!(b.parse_offset("zzzzzzzz-2a"), None, "foreign epoch");
    }

    /// A buffer with `config`, counting into fresh metrics.
    fn bounded(config: RecoveryConfig) -> (RecoveryBuffer, Arc<Metrics>) {
        let b = RecoveryBuffer::new(config);
        let metrics = Arc::new(Metrics::default());
        b.bind_metrics(&metrics);
        (b, metrics)
    }

    fn pid(n: u16) -> Sid {
        let mut bytes = [7; 15];
        bytes[..2].copy_from_slice(&n.to_be_bytes());
        Sid::from_random(bytes)
    }

    fn drop_socket(b: &RecoveryBuffer, n: u16, data: Value, now: Instant) {
        b.persist(
            SavedSessionParts {
                sid: pid(n),
                pid: pid(n),
                rooms: vec![Room::from(pid(n).as_str())],
                memberships: Memberships::default(),
                data,
                connected_at_offset: b.head(),
                epoch: 0,
            },
            now,
        );
    }

    fn resumes(b: &RecoveryBuffer, n: u16, now: Instant) -> bool {
        b.restore(&mut b.lock(), pid(n).as_str(), None, now, |_| true)
            .is_some()
    }

    /// Two namespaces' buffers sharing one `max_total_bytes` budget of 4½ sessions.
    fn sharing(one: usize) -> (RecoveryBuffer, RecoveryBuffer, Arc<RecoveryBudget>) {
        let config = RecoveryConfig {
            max_total_bytes: one * 4 + one / 2,
            ..RecoveryConfig::default()
        };
        let budget = RecoveryBudget::new(config.max_total_bytes);
        let a = RecoveryBuffer::new(config).sharing(budget.clone());
        let b = RecoveryBuffer::new(config).sharing(budget.clone());
        (a, b, budget)
    }

    #[test]
    fn namespaces_keep_sessions_within_their_shared_budget_the_adding_one_paying() {
        let data = json!({"blob": "x".repeat(1000)});
        let one = session_bytes(
            &[Room::from(pid(0).as_str())],
            &Memberships::default(),
            &data,
        );
        let (a, b, budget) = sharing(one);
        let now = Instant::now();
        for n in 0..3 {
            drop_socket(&a, n, data.clone(), now);
        }
        // B may take what A left (one), then pays with its own oldest.
        for n in 10..13 {
            drop_socket(&b, n, data.clone(), now);
        }
        assert_eq!((a.kept(), b.kept()), ((3, one * 3), (1, one)));
        assert!(resumes(&b, 12, now), "B kept its newest");
        assert_eq!(budget.used.load(Relaxed), one * 3);
        // With nothing of its own left to give, B keeps nothing more while A holds
        // the rest.
        drop_socket(&b, 13, data.clone(), now);
        drop_socket(&b, 14, data.clone(), now);
        assert_eq!(b.kept().0, 1);
        assert_eq!(budget.used.load(Relaxed), one * 4);
        // What a buffer holds is given back when its namespace goes.
        drop(a);
        assert_eq!(budget.used.load(Relaxed), one);
        for n in 20..24 {
            drop_socket(&b, n, data.clone(), now);
        }
        assert_eq!(b.kept(), (4, one * 4));
        assert!(budget.used.load(Relaxed) <= one * 4 + one / 2);
    }

    /// A session that would pass the shared budget even with every session of its
    /// own namespace given up is not kept, and they are not given up for it: before,
    /// the namespace dropped them all, then refused it anyway.
    #[test]
    fn a_session_the_budget_cannot_take_drops_no_other() {
        let data = json!({"blob": "x".repeat(1000)});
        let one = session_bytes(
            &[Room::from(pid(0).as_str())],
            &Memberships::default(),
            &data,
        );
        let (a, b, _) = sharing(one);
        let now = Instant::now();
        drop_socket(&b, 10, json!({}), now);
        for n in 0..4 {
            drop_socket(&a, n, data.clone(), now);
        }
        assert_eq!(b.kept().0, 1);
        drop_socket(&b, 11, data.clone(), now);
        assert_eq!(b.kept().0, 1, "the small session is still kept");
        assert!(resumes(&b, 10, now));
    }

    #[test]
    fn buffered_packets_stay_within_the_shared_budget_the_adding_one_paying() {
        let (a, _, budget) = sharing(0);
        let now = Instant::now();
        let one = {
            let probe = RecoveryBuffer::new(RecoveryConfig::default());
            store(&probe, "p", now);
            probe.usage().packet_bytes
        };
        let budget_limit = budget.limit;
        assert!(
            budget_limit < one,
            "a budget smaller than one packet keeps none"
        );
        store(&a, "p", now);
        assert_eq!(a.usage().packets, 0);
        assert_eq!(budget.used.load(Relaxed), 0);

        let config = RecoveryConfig {
            max_total_bytes: one * 3,
            ..RecoveryConfig::default()
        };
        let budget = RecoveryBudget::new(config.max_total_bytes);
        let a = RecoveryBuffer::new(config).sharing(budget.clone());
        let b = RecoveryBuffer::new(config).sharing(budget.clone());
        for _ in 0..2 {
            store(&a, "p", now);
        }
        for _ in 0..3 {
            store(&b, "p", now);
        }
        assert_eq!((a.usage().packets, b.usage().packets), (2, 1));
        assert_eq!(budget.used.load(Relaxed), one * 3);
        // A client of B that missed the packets B dropped is told it was not
        // recovered, never handed a gap.
        assert!(
            RecoveryBuffer::replay(&b.lock(), everything(), ReplayStart::buffer(1), usize::MAX)
                == Err(Unreplayable::Gap)
        );
        assert!(
            RecoveryBuffer::replay(&b.lock(), everything(), ReplayStart::buffer(2), usize::MAX)
                .is_ok()
        );
        drop(b);
        assert_eq!(budget.used.load(Relaxed), one * 2);
    }

    #[test]
    fn churn_beyond_max_sessions_drops_the_oldest_and_counts_them() {
        let (b, metrics) = bounded(RecoveryConfig {
            max_sessions: 10,
            ..RecoveryConfig::default()
        });
        let t0 = Instant::now();
        for n in 0..13 {
            drop_socket(&b, n, Value::Null, t0 + Duration::from_millis(u64::from(n)));
        }
        assert_eq!(b.kept().0, 10);
        let m = metrics.snapshot();
        assert_eq!((m.recovery_sessions, m.recovery_sessions_evicted), (10, 3));
        let now = t0 + Duration::from_secs(1);
        for n in 0..3 {
            assert!(!resumes(&b, n, now), "the oldest three are gone: {n}");
        }
        for n in 3..13 {
            assert!(resumes(&b, n, now), "kept: {n}");
        }
        assert_eq!(metrics.snapshot().recovery_sessions, 0);
        assert_eq!(b.kept(), (0, 0), "bytes are given back");
    }

    #[test]
    fn kept_sessions_stay_within_max_sessions_bytes() {
        let data = json!({"blob": "x".repeat(1000)});
        let one = session_bytes(
            &[Room::from(pid(0).as_str())],
            &Memberships::default(),
            &data,
        );
        let (b, metrics) = bounded(RecoveryConfig {
            max_sessions_bytes: one * 4 + one / 2,
            ..RecoveryConfig::default()
        });
        let now = Instant::now();
        for n in 0..6 {
            drop_socket(&b, n, data.clone(), now);
        }
        assert_eq!(b.kept(), (4, one * 4));
        assert_eq!(metrics.snapshot().recovery_sessions_evicted, 2);
        assert!(!resumes(&b, 0, now) && !resumes(&b, 1, now));
        assert!((2..6).all(|n| resumes(&b, n, now)));
    }

    #[test]
    fn a_session_larger_than_max_bytes_per_session_is_not_kept() {
        let (b, metrics) = bounded(RecoveryConfig {
            max_bytes_per_session: 4096,
            ..RecoveryConfig::default()
        });
        let now = Instant::now();
        drop_socket(&b, 1, Value::Null, now);
        drop_socket(&b, 2, json!({"blob": "x".repeat(5000)}), now);
        assert_eq!(
            b.kept().0,
            1,
            "the small one stays, the big one evicts nothing"
        );
        assert_eq!(metrics.snapshot().recovery_sessions_evicted, 1);
        assert!(!resumes(&b, 2, now));
        assert!(resumes(&b, 1, now));
    }

    #[test]
    fn expired_sessions_are_dropped_and_counted_by_the_next_operation() {
        let (b, metrics) = bounded(RecoveryConfig::default());
        let t0 = Instant::now();
        for n in 0..5 {
            drop_socket(&b, n, Value::Null, t0);
        }
        let later = t0 + DEFAULT_MAX_DISCONNECTION_DURATION + Duration::from_secs(1);
        drop_socket(&b, 99, Value::Null, later);
        assert_eq!(b.kept().0, 1);
        let m = metrics.snapshot();
        assert_eq!(
            (
                m.recovery_sessions,
                m.recovery_sessions_expired,
                m.recovery_sessions_evicted
            ),
            (1, 5, 0)
        );
        assert!(resumes(&b, 99, later));
    }

    #[test]
    fn a_session_dropped_twice_is_kept_once() {
        let (b, metrics) = bounded(RecoveryConfig::default());
        let now = Instant::now();
        drop_socket(&b, 1, Value::Null, now);
        drop_socket(&b, 1, json!("again"), now + Duration::from_secs(1));
        assert_eq!(b.kept().0, 1);
        assert_eq!(metrics.snapshot().recovery_sessions, 1);
        let restored = b
            .restore(&mut b.lock(), pid(1).as_str(), None, now, |_| true)
            .unwrap();
        assert_eq!(restored.session.data, json!("again"));
    }

    #[test]
    fn an_offset_older_than_the_session_replays_nothing_from_before_it() {
        let b = buffer(100);
        let now = Instant::now();
        store(&b, "before connect 1", now);
        store(&b, "before connect 2", now);
        let connected_at = b.head();
        store(&b, "missed", now);
        persist(&b, &[], connected_at, now);
        // The client claims the oldest buffered packet as its last one (or forges it).
        let restored = restore_from(&b, 1, now);
        assert_eq!(restored.missed, frame("missed"));
        persist(&b, &[], connected_at, now);
        let restored = restore_from(&b, 0, now);
        assert_eq!(restored.missed, frame("missed"), "offset 0 as well");
    }

    #[test]
    fn the_packet_buffer_is_bounded_by_bytes_too() {
        let one = packet_bytes(None, &frame(&"x".repeat(1000)));
        let b = RecoveryBuffer::new(RecoveryConfig {
            max_buffered_bytes: one * 3,
            ..RecoveryConfig::default()
        });
        let now = Instant::now();
        for _ in 0..5 {
            store(&b, &"x".repeat(1000), now);
        }
        let st = b.lock();
        assert_eq!((st.packets.len(), st.packets_bytes), (3, one * 3));
        assert_eq!(
            st.dropped_up_to, 2,
            "a client that missed packet 2 is not recovered"
        );
    }

    #[test]
    fn a_stored_attachment_keeps_nothing_of_the_buffer_it_was_cut_from() {
        let b = buffer(10);
        let read_buffer = bytes::Bytes::from(vec![7u8; 4096]);
        let attachment = read_buffer.slice(100..110);
        let frames = vec![Frame::text("451-[\"ev\"]"), Frame::Binary(attachment)];
        let mut st = b.lock();
        let next = RecoveryBuffer::next_offset(&st);
        b.store(&mut st, next, to(&[]), frames.clone(), Instant::now());
        let replayed =
            RecoveryBuffer::replay(&st, everything(), ReplayStart::buffer(0), usize::MAX).unwrap();
        assert_eq!(replayed, frames, "the same bytes");
        let Frame::Binary(kept) = &replayed[1] else {
            panic!("an attachment")
        };
        let cut_from = read_buffer.as_ptr_range();
        assert!(
            !cut_from.contains(&kept.as_ptr()),
            "a copy of its own, not a slice of the 4 KiB buffer"
        );
    }

    #[test]
    fn except_rooms_are_honoured() {
        let a = Audience {
            rooms: Box::default(),
            except: Box::new([Room::from("muted")]),
        };
        assert!(a.includes(Listener::since_start(&[Room::from("x")]), 1));
        assert!(!a.includes(
            Listener::since_start(&[Room::from("x"), Room::from("muted")]),
            1
        ));
    }

    /// The session of pid 2 restored, its client claiming offset `claimed`.
    fn restore_from(b: &RecoveryBuffer, claimed: u128, now: Instant) -> Restored {
        let offset = b.offset_string(claimed);
        b.restore(&mut b.lock(), sid(2).as_str(), Some(&offset), now, |_| true)
            .expect("restored")
    }

    /// Registers a connected socket under `pid` (a stand-in: no socket behind it).
    pub(super) fn live(b: &RecoveryBuffer, pid: Sid) {
        RecoveryBuffer::register_live(&mut b.lock(), pid, Weak::new());
    }

    /// The socket [`live`] registers: a stand-in pointer.
    pub(super) fn me() -> *const Socket {
        Weak::<Socket>::new().as_ptr()
    }

    /// The socket [`live`] registered under `pid` disconnects: its memberships.
    pub(super) fn gone(b: &RecoveryBuffer, pid: Sid) -> Memberships {
        b.unregister_live(pid, me())
    }

    /// Stores a packet for `rooms` and returns its offset.
    pub(super) fn store_to(b: &RecoveryBuffer, rooms: &[&str], f: &str, now: Instant) -> u128 {
        let mut st = b.lock();
        let next = RecoveryBuffer::next_offset(&st);
        b.store(&mut st, next, to(rooms), frame(f), now);
        next
    }

    #[test]
    fn a_room_joined_late_replays_only_from_where_it_was_joined() {
        let b = buffer(100);
        let now = Instant::now();
        let connected_at = b.head();
        store_to(&b, &["late"], "before the join", now);
        store_to(&b, &["early"], "early 1", now);
        let outside = |_: &str| false;
        live(&b, sid(2));
        b.note_joins(sid(2), me(), connected_at, &["late"], outside);
        store_to(&b, &["late"], "after the join", now);
        store_to(&b, &["early"], "early 2", now);
        store_to(&b, &[], "everyone", now);
        let memberships = gone(&b, sid(2));
        assert_eq!(
            memberships.joined.len(),
            1,
            "only the room joined after packets were stored"
        );
        b.persist(
            SavedSessionParts {
                sid: sid(1),
                pid: sid(2),
                rooms: vec![Room::from("early"), Room::from("late")],
                memberships,
                data: Value::Null,
                connected_at_offset: connected_at,
                epoch: 0,
            },
            now,
        );
        // The client claims an offset older than its join (or forges one).
        let restored = restore_from(&b, 0, now);
        assert_eq!(
            restored.missed,
            [
                frame("early 1"),
                frame("after the join"),
                frame("early 2"),
                frame("everyone")
            ]
            .concat()
        );
    }
}
