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
//!   and delivered live, nor neither.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_protocol::Sid;

use crate::adapter::Room;
use crate::eio::Frame;
use crate::eio::session::now as now_instant;
use crate::sio::Socket;

/// Node's default: a client may come back within two minutes.
pub const DEFAULT_MAX_DISCONNECTION_DURATION: Duration = Duration::from_secs(120);
/// Packets kept at most, whatever their age: bounds memory at high broadcast rates
/// (at ~200 B a packet, 100k packets is ~20 MB). A client whose offset fell out of the
/// buffer is told it was not recovered.
pub const DEFAULT_MAX_BUFFERED_PACKETS: usize = 100_000;

/// Settings of connection state recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// How long a dropped socket's session and the packets it may miss are kept.
    pub max_disconnection_duration: Duration,
    /// Skip middleware when a socket is recovered (Node's `skipMiddlewares`).
    pub skip_middlewares: bool,
    /// Most packets kept in the buffer.
    pub max_buffered_packets: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        RecoveryConfig {
            max_disconnection_duration: DEFAULT_MAX_DISCONNECTION_DURATION,
            skip_middlewares: true,
            max_buffered_packets: DEFAULT_MAX_BUFFERED_PACKETS,
        }
    }
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
    )
}

/// Who a stored packet was for, as rooms (a socket id is the room of that socket).
#[derive(Debug, Clone, Default)]
pub(crate) struct Audience {
    pub(crate) rooms: Vec<Room>,
    pub(crate) except: Vec<Room>,
}

impl Audience {
    /// Node's `shouldIncludePacket`.
    pub(crate) fn includes(&self, session_rooms: &[Room]) -> bool {
        let included =
            self.rooms.is_empty() || session_rooms.iter().any(|r| self.rooms.contains(r));
        included && !session_rooms.iter().any(|r| self.except.contains(r))
    }
}

#[derive(Debug)]
struct Stored {
    offset: u128,
    at: Instant,
    audience: Audience,
    frames: Vec<Frame>,
}

/// What a dropped socket leaves behind.
#[derive(Debug, Clone)]
pub(crate) struct SavedSession {
    pub(crate) sid: Sid,
    pub(crate) pid: Sid,
    /// Rooms, its own id room included.
    pub(crate) rooms: Vec<Room>,
    pub(crate) data: Value,
    /// The buffer position when the socket connected (replay start without offset).
    pub(crate) connected_at_offset: u128,
    disconnected_at: Instant,
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
    /// Offset of the most recent packet (0: none yet).
    head: u128,
    /// Highest offset dropped from the buffer (or, with a log, where this node started
    /// reading it): the buffer holds every packet after it.
    dropped_up_to: u128,
    sessions: HashMap<Sid, SavedSession>,
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
}

impl RecoveryBuffer {
    pub(crate) fn new(config: RecoveryConfig) -> Self {
        let epoch = Sid::from_random(rand::random()).as_str()[..8].to_owned();
        RecoveryBuffer {
            config,
            scheme: Scheme::Local { epoch },
            state: Mutex::default(),
        }
    }

    /// A buffer whose offsets come from a durable log; it covers the log from the
    /// position given to [`RecoveryBuffer::start_at`].
    pub(crate) fn logged(config: RecoveryConfig) -> Self {
        RecoveryBuffer {
            config,
            scheme: Scheme::Log,
            state: Mutex::default(),
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
        state.packets.push_back(Stored {
            offset,
            at: now,
            audience,
            frames,
        });
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
        while let Some(front) = state.packets.front() {
            let too_old = now.saturating_duration_since(front.at) > max_age;
            if !too_old && state.packets.len() <= self.config.max_buffered_packets {
                break;
            }
            state.dropped_up_to = front.offset;
            state.packets.pop_front();
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

    /// Forgets a socket that disconnected.
    pub(crate) fn unregister_live(&self, pid: Sid) {
        self.lock().live.remove(&pid);
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

    /// Keeps a dropped socket's session.
    pub(crate) fn persist(&self, session: SavedSessionParts, now: Instant) {
        let mut state = self.lock();
        let max_age = self.config.max_disconnection_duration;
        state
            .sessions
            .retain(|_, s| now.saturating_duration_since(s.disconnected_at) <= max_age);
        let saved = SavedSession {
            sid: session.sid,
            pid: session.pid,
            rooms: session.rooms,
            data: session.data,
            connected_at_offset: session.connected_at_offset,
            disconnected_at: now,
        };
        state.sessions.insert(saved.pid, saved);
    }

    /// Takes the session `pid` back if it is still recoverable from `offset` (or, with
    /// no offset, from where it connected). Called with the state locked so the caller
    /// can register the socket before any later broadcast runs.
    pub(crate) fn restore(
        &self,
        state: &mut State,
        pid: &str,
        offset: Option<&str>,
        now: Instant,
    ) -> Option<Restored> {
        let pid: Sid = pid.parse().ok()?;
        let session = state.sessions.remove(&pid)?;
        if now.saturating_duration_since(session.disconnected_at)
            > self.config.max_disconnection_duration
        {
            return None;
        }
        let from = match offset {
            Some(o) => self.parse_offset(o)?,
            None => session.connected_at_offset,
        };
        let missed = Self::replay(state, &session.rooms, from, Vec::new(), from)?;
        Some(Restored { session, missed })
    }

    /// The frames a session with `rooms` missed after `from`: `older` (already
    /// filtered, covering the log up to `older_until`) then the buffer's packets.
    /// `None` when that would leave a gap or `from` is ahead of this buffer.
    pub(crate) fn replay(
        state: &State,
        rooms: &[Room],
        from: u128,
        older: Vec<Frame>,
        older_until: u128,
    ) -> Option<Vec<Frame>> {
        if from > state.head || older_until.max(from) < state.dropped_up_to {
            return None;
        }
        let start = older_until.max(from);
        let mut missed = older;
        missed.extend(
            state
                .packets
                .iter()
                .filter(|p| p.offset > start && p.audience.includes(rooms))
                .flat_map(|p| p.frames.iter().cloned()),
        );
        Some(missed)
    }
}

/// The parts of a session the socket supplies when it drops.
#[derive(Debug)]
pub(crate) struct SavedSessionParts {
    pub(crate) sid: Sid,
    pub(crate) pid: Sid,
    pub(crate) rooms: Vec<Room>,
    pub(crate) data: Value,
    pub(crate) connected_at_offset: u128,
}

/// A session restored from a durable store, as the buffer keeps it.
pub(crate) fn saved_from_parts(parts: SavedSessionParts, now: Instant) -> SavedSession {
    SavedSession {
        sid: parts.sid,
        pid: parts.pid,
        rooms: parts.rooms,
        data: parts.data,
        connected_at_offset: parts.connected_at_offset,
        disconnected_at: now,
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
    use super::*;

    fn buffer(max: usize) -> RecoveryBuffer {
        RecoveryBuffer::new(RecoveryConfig {
            max_buffered_packets: max,
            ..RecoveryConfig::default()
        })
    }

    fn sid(n: u8) -> Sid {
        Sid::from_random([n; 15])
    }

    fn frame(s: &str) -> Vec<Frame> {
        vec![Frame::text(s.to_owned())]
    }

    fn to(rooms: &[&str]) -> Audience {
        Audience {
            rooms: rooms.iter().map(|r| Room::from(*r)).collect(),
            except: vec![],
        }
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
                data: Value::Null,
                connected_at_offset: at_offset,
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
            .restore(&mut b.lock(), sid(2).as_str(), Some(&offset), now)
            .unwrap();
        assert_eq!(restored.missed, [frame("b"), frame("d")].concat());
        assert!(
            b.restore(&mut b.lock(), sid(2).as_str(), Some(&offset), now)
                .is_none(),
            "once"
        );
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
            .restore(&mut b.lock(), sid(2).as_str(), None, now)
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
                now
            )
            .is_none()
        );
        persist(&b, &[], 0, now);
        assert!(
            b.restore(&mut b.lock(), sid(2).as_str(), Some("other-1"), now)
                .is_none()
        );
        persist(&b, &[], 0, now);
        let later = now + DEFAULT_MAX_DISCONNECTION_DURATION + Duration::from_secs(1);
        assert!(
            b.restore(
                &mut b.lock(),
                sid(2).as_str(),
                Some(&b.offset_string(2)),
                later
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

    #[test]
    fn except_rooms_are_honoured() {
        let a = Audience {
            rooms: vec![],
            except: vec![Room::from("muted")],
        };
        assert!(a.includes(&[Room::from("x")]));
        assert!(!a.includes(&[Room::from("x"), Room::from("muted")]));
    }
}
