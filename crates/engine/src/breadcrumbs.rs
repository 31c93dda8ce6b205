//! The trail of what happened to a socket before it left: its last lifecycle steps
//! with timestamps (transport opened and upgraded, namespace connected, recovery,
//! rooms joined and left, queue high-water marks, what the application marked, memory
//! pressure), kept in a small bounded ring so an operator can read a live socket's
//! timeline and a disconnect report carries the steps that led to it.
//!
//! The steps live in three places, each keeping only what it owns: the socket (its
//! namespace steps), its Engine.IO session (the transport's steps, shared by every
//! namespace of the client) and the node (pressure transitions, which concern every
//! socket and are not copied into each). [`merge`] puts them in one timeline.
//!
//! Pure but for [`Crumb::now`]: times are microseconds since the epoch (fine enough
//! that steps a moment apart keep their order), shown in milliseconds.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use switchboard_protocol::engineio::TransportKind;

use crate::adapter::Room;
use crate::scrub;

/// Steps a socket's timeline shows by default: the last ones (older steps are
/// dropped first and counted).
pub const DEFAULT_STEPS: usize = 32;

/// One step on a timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Crumb {
    /// When, in microseconds since the Unix epoch.
    pub at_us: u64,
    /// What.
    pub step: Step,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The Engine.IO connection opened (the handshake) on this transport.
    Opened(TransportKind),
    /// The connection upgraded to this transport.
    Upgraded(TransportKind),
    /// The socket joined its namespace (`recovered`: by resuming a session).
    Connected {
        /// Whether it resumed an earlier session.
        recovered: bool,
    },
    /// A resumed session's missed packets were replayed from `offset`.
    Recovered {
        /// The offset the client presented.
        offset: Box<str>,
        /// How many packets were replayed.
        replayed: u32,
    },
    /// The socket joined a room.
    Joined(Room),
    /// The socket left a room.
    Left(Room),
    /// The outbound queue reached half of a bound (packets, bytes) and has not been
    /// emptied since.
    QueueHigh {
        /// Packets queued then.
        packets: u32,
        /// Bytes queued then.
        bytes: u32,
    },
    /// The node's memory pressure changed to this tier.
    Pressure(&'static str),
    /// What the server or the application marked (a token refreshed, events refused
    /// by the rate limit), worded for an operator. Scrubbed when recorded.
    Marked(Box<str>),
}

/// Bytes of a client-given offset a step keeps.
const MAX_OFFSET: usize = 64;

/// Bytes of a room's name a step keeps. Room names from the API, the Admin UI or
/// another node have no bound of their own (a message read from Redis is up to
/// 16 MiB), and each socket's step is a copy of its own: before 2026-12-07 one join of
/// a 1 MB name to 400 sockets held 400 MB, kept by their reports after they left.
const MAX_ROOM: usize = 256;

impl Step {
    /// The socket joined `room` (its name cut to 256 bytes).
    pub fn joined(room: &str) -> Self {
        Step::Joined(Self::room(room))
    }

    /// The socket left `room` (its name cut to 256 bytes).
    pub fn left(room: &str) -> Self {
        Step::Left(Self::room(room))
    }

    /// Scrubbed (its first 16 KiB) before it is cut, when it must be cut: an address
    /// or a token cut first no longer looks like one, and its start was shown (a room
    /// of 240 bytes and `:ann.lee@example.com` showed `…:ann.lee@example…`).
    fn room(room: &str) -> crate::adapter::Room {
        if room.len() <= MAX_ROOM {
            return crate::adapter::Room::from(room);
        }
        let first = crate::untrusted::cut(room, 16 * 1024);
        let scrubbed = scrub::text(first);
        let cut = crate::untrusted::cut(&scrubbed, MAX_ROOM);
        crate::adapter::Room::from(format!("{cut}…"))
    }

    /// A replay of `replayed` packets from the client's `offset` (cut to 64 bytes:
    /// the client chose it).
    pub fn recovered(offset: &str, replayed: usize) -> Self {
        Step::Recovered {
            offset: crate::untrusted::cut(offset, MAX_OFFSET).into(),
            replayed: u32::try_from(replayed).unwrap_or(u32::MAX),
        }
    }

    /// The step's kind as a stable string (`joined`, `queue_high`).
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Opened(_) => "opened",
            Step::Upgraded(_) => "upgraded",
            Step::Connected { .. } => "connected",
            Step::Recovered { .. } => "recovered",
            Step::Joined(_) => "joined",
            Step::Left(_) => "left",
            Step::QueueHigh { .. } => "queue_high",
            Step::Pressure(_) => "pressure",
            Step::Marked(_) => "marked",
        }
    }
}

impl Crumb {
    /// A step now.
    pub fn now(step: Step) -> Self {
        Crumb {
            at_us: to_us(SystemTime::now()),
            step,
        }
    }

    /// The crumb as JSON: `{"at", "step", ...}` with the step's own fields, `at` in
    /// milliseconds since the Unix epoch (as the disconnect reports have it). Room names
    /// are scrubbed of e-mail addresses and tokens as they are shown.
    pub fn to_value(&self) -> Value {
        let mut v = json!({ "at": self.at_us / 1000, "step": self.step.kind() });
        let fields = match &self.step {
            Step::Opened(t) | Step::Upgraded(t) => json!({ "transport": t.as_str() }),
            Step::Connected { recovered } => json!({ "recovered": recovered }),
            Step::Recovered { offset, replayed } => {
                json!({ "offset": &**offset, "replayed": replayed })
            }
            Step::Joined(room) | Step::Left(room) => json!({ "room": scrub::text(room) }),
            Step::QueueHigh { packets, bytes } => json!({ "packets": packets, "bytes": bytes }),
            Step::Pressure(tier) => json!({ "tier": tier }),
            Step::Marked(text) => json!({ "detail": &**text }),
        };
        if let (Some(v), Value::Object(fields)) = (v.as_object_mut(), fields) {
            v.extend(fields);
        }
        v
    }
}

/// A bounded ring of steps, oldest dropped first. Allocates on the first step and
/// grows with the steps, up to its bound.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trail {
    ring: VecDeque<Crumb>,
    /// Steps dropped to keep the bound.
    dropped: u32,
}

impl Trail {
    /// Records a step, dropping the oldest beyond `max` (no step is kept when `max`
    /// is zero).
    pub fn push(&mut self, crumb: Crumb, max: usize) {
        if max == 0 {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        while self.ring.len() >= max {
            self.ring.pop_front();
            self.dropped = self.dropped.saturating_add(1);
        }
        self.ring.push_back(crumb);
    }

    /// The steps kept, oldest first.
    pub fn crumbs(&self) -> impl Iterator<Item = &Crumb> {
        self.ring.iter()
    }

    /// How many steps were dropped to keep the bound.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// Whether no step was ever recorded.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty() && self.dropped == 0
    }
}

/// One timeline from the socket's, its session's and the node's steps: those at or
/// after `since_ms` (the session's start), in time order (a socket's own steps first
/// on a tie), the last `max` of them, with how many earlier ones are not shown.
pub fn merge<'a>(
    sources: [&'a [&'a Crumb]; 3],
    since_us: u64,
    dropped: u32,
    max: usize,
) -> (Vec<Crumb>, u32) {
    let mut all: Vec<(u64, usize, &Crumb)> = sources
        .iter()
        .enumerate()
        .flat_map(|(rank, crumbs)| crumbs.iter().map(move |c| (c.at_us, rank, *c)))
        .filter(|(at, _, _)| *at >= since_us)
        .collect();
    all.sort_by_key(|(at, rank, _)| (*at, *rank));
    let skip = all.len().saturating_sub(max);
    let dropped = dropped.saturating_add(u32::try_from(skip).unwrap_or(u32::MAX));
    (
        all.into_iter()
            .skip(skip)
            .map(|(_, _, c)| c.clone())
            .collect(),
        dropped,
    )
}

/// Microseconds since the Unix epoch (0 before it, saturated far after it).
pub fn to_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, step: Step) -> Crumb {
        Crumb {
            at_us: ms * 1000,
            step,
        }
    }

    /// A long room name is scrubbed before it is cut: an address at the cut was shown
    /// by its start (`…:ann.lee@example…`), no longer one to scrub.
    #[test]
    fn a_long_room_name_is_scrubbed_before_it_is_cut() {
        let room = format!("{}:ann.lee@example.com", "x".repeat(240));
        let Step::Joined(kept) = Step::joined(&room) else {
            panic!("a join");
        };
        assert!(!kept.contains("ann.lee"), "{kept}");
        assert!(kept.ends_with('…'), "{kept}");
        let short = "user:ann@example.com";
        let Step::Joined(kept) = Step::joined(short) else {
            panic!("a join");
        };
        assert_eq!(
            &*kept, short,
            "a short name is kept as is (scrubbed when shown)"
        );
    }

    #[test]
    fn a_trail_keeps_the_last_steps_and_counts_the_rest() {
        let mut t = Trail::default();
        assert!(t.is_empty());
        for n in 0..40 {
            t.push(at(n, Step::Joined(Room::from(n.to_string()))), 32);
        }
        assert_eq!(t.crumbs().count(), 32);
        assert_eq!(t.crumbs().next().map(|c| c.at_us), Some(8000));
        assert_eq!(t.dropped(), 8);
        let mut none = Trail::default();
        none.push(at(1, Step::Connected { recovered: false }), 0);
        assert_eq!((none.crumbs().count(), none.dropped()), (0, 1));
    }

    #[test]
    fn merge_orders_by_time_keeps_the_last_and_skips_what_came_before() {
        let socket = [
            at(10, Step::Connected { recovered: false }),
            at(30, Step::Joined("a".into())),
        ];
        let session = [
            at(5, Step::Opened(TransportKind::Polling)),
            at(20, Step::Upgraded(TransportKind::Websocket)),
        ];
        let node = [
            at(1, Step::Pressure("elevated")),
            at(30, Step::Pressure("normal")),
        ];
        fn refs(s: &[Crumb]) -> Vec<&Crumb> {
            s.iter().collect()
        }
        let (s, e, n) = (refs(&socket), refs(&session), refs(&node));
        let (all, dropped) = merge([&s, &e, &n], 5000, 0, 32);
        let kinds: Vec<_> = all.iter().map(|c| c.step.kind()).collect();
        assert_eq!(
            kinds,
            ["opened", "connected", "upgraded", "joined", "pressure"]
        );
        assert_eq!(dropped, 0);
        let (last, dropped) = merge([&s, &e, &n], 5000, 3, 2);
        assert_eq!(last.len(), 2);
        assert_eq!(last[0].step, Step::Joined("a".into()));
        assert_eq!(dropped, 6);
    }

    #[test]
    fn crumbs_as_json_carry_their_fields_and_scrub_room_names() {
        let v = at(
            1_796_396_401_250,
            Step::Joined("user:ann@example.com".into()),
        )
        .to_value();
        assert_eq!(v["at"], 1_796_396_401_250_u64);
        assert_eq!(v["step"], "joined");
        assert_eq!(v["room"], "user:[email]");
        let v = at(
            0,
            Step::Recovered {
                offset: "42".into(),
                replayed: 7,
            },
        )
        .to_value();
        assert_eq!(
            (v["offset"].as_str(), v["replayed"].as_u64()),
            (Some("42"), Some(7))
        );
    }

    /// A room's name a step keeps is cut to 256 bytes, at a character boundary: each
    /// socket's step is its own copy, and names from the API or another node have no
    /// bound of their own.
    #[test]
    fn a_step_keeps_at_most_256_bytes_of_a_room_name() {
        let long = "é".repeat(1000);
        for step in [Step::joined(&long), Step::left(&long)] {
            let (Step::Joined(room) | Step::Left(room)) = step else {
                unreachable!()
            };
            assert!(room.len() <= MAX_ROOM + "…".len(), "{}", room.len());
            assert!(room.ends_with('…'));
        }
        assert_eq!(Step::joined("lobby"), Step::Joined("lobby".into()));
    }
}
