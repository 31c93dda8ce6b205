//! When a socket was in the rooms whose events its replays judge by time: rooms it
//! joined after its session began, and rooms it left. Kept beside the live socket in
//! the namespace's recovery buffer, then with its kept (or stored) session, so that a
//! replay gives each event only if the socket was in one of its rooms when it was
//! stored: never a room's events from before the socket joined it (an old or forged
//! offset cannot read a room's history), and still an unread event to a room it has
//! left since.

use std::collections::HashMap;
use std::sync::MutexGuard;

use switchboard_protocol::Sid;

use super::{MALLOC_BLOCK, RecoveryBuffer, room_name_heap};
use crate::adapter::{DurableMemberships, Room};
use crate::sio::Socket;

/// Most rooms a socket's [`Memberships`] remember it left; the oldest is forgotten
/// first (a replay then judges that room by the rooms of now, as Node does).
pub(crate) const MAX_LEFT: usize = 16;

/// When a socket was in the rooms whose packets its replays judge by time, as buffer
/// positions (heads). Only what its session's start does not already say: rooms joined
/// before any packet was stored since the session began need no entry (the common
/// case: rooms joined in the connection handler), so most sockets have none at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Memberships {
    /// Rooms it is in, joined late: the head when it joined. A packet counts if stored
    /// after it.
    pub(crate) joined: Vec<(Room, u128)>,
    /// Rooms it left while packets were stored: the head when it joined (or its
    /// session's start) and when it left. A packet counts if stored in between (after
    /// the first, up to the second). At most [`MAX_LEFT`].
    pub(crate) left: Vec<(Room, u128, u128)>,
}

impl Memberships {
    pub(crate) fn is_empty(&self) -> bool {
        self.joined.is_empty() && self.left.is_empty()
    }

    /// Records that the socket joined `room` (which it was not in) when the buffer
    /// stood at `head`.
    pub(crate) fn joined_at(&mut self, room: Room, head: u128) {
        match self.joined.iter_mut().find(|(r, _)| *r == room) {
            Some((_, floor)) => *floor = head,
            None => self.joined.push((room, head)),
        }
    }

    /// As a durable store keeps them, offsets in `buffer`'s wire form.
    pub(crate) fn to_durable(&self, buffer: &RecoveryBuffer) -> DurableMemberships {
        let wire = |offset: u128| buffer.offset_string(offset);
        DurableMemberships {
            joined: self
                .joined
                .iter()
                .map(|(room, floor)| (room.to_string(), wire(*floor)))
                .collect(),
            left: self
                .left
                .iter()
                .map(|(room, from, until)| (room.to_string(), wire(*from), wire(*until)))
                .collect(),
        }
    }

    /// Read back from a durable store, for a session of `rooms` rooms, in `buffer`'s
    /// offsets. An offset this node cannot read (none it wrote) is left out, and its
    /// room judged by the rooms of now, as Node judges every room. What the store holds
    /// is bounded as a node writes it (a replay looks them up for every event): no more
    /// rooms joined late than the session has rooms, and the last [`MAX_LEFT`] rooms
    /// left.
    pub(crate) fn from_durable(
        buffer: &RecoveryBuffer,
        stored: &DurableMemberships,
        rooms: usize,
    ) -> Self {
        let at = |offset: &str| buffer.parse_offset(offset);
        let left = &stored.left[stored.left.len().saturating_sub(MAX_LEFT)..];
        let mut read = Memberships {
            joined: stored
                .joined
                .iter()
                .take(rooms)
                .filter_map(|(room, floor)| Some((Room::from(room.as_str()), at(floor)?)))
                .collect(),
            left: left
                .iter()
                .filter_map(|(room, from, until)| {
                    Some((Room::from(room.as_str()), at(from)?, at(until)?))
                })
                .collect(),
        };
        // Charged by capacity: a collect's doubling would charge up to twice the
        // entries (a session near its bound then not saved).
        read.shrink();
        read
    }

    /// The heap its lists hold, counted as if no one else held the names of the rooms
    /// it left (those it is in are the session's rooms, counted there).
    /// By capacity, not length: a list that rooms were taken out of keeps its
    /// allocation (a socket that joined a hundred rooms and left them all held four
    /// kilobytes its session was not charged).
    pub(super) fn heap(&self) -> usize {
        fn list<T>(v: &Vec<T>) -> usize {
            match v.capacity() * std::mem::size_of::<T>() {
                0 => 0,
                bytes => bytes + MALLOC_BLOCK,
            }
        }
        let left_names: usize = self.left.iter().map(|(r, _, _)| room_name_heap(r)).sum();
        list(&self.joined) + list(&self.left) + left_names
    }

    /// Gives back what its lists hold beyond their entries: for a session to be kept.
    pub(super) fn shrink(&mut self) {
        self.joined.shrink_to_fit();
        self.left.shrink_to_fit();
    }
}

/// Whom a replay is for: a session's rooms (its own id room included) and when it was
/// in those it joined late or left.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listener<'a> {
    pub(crate) rooms: &'a [Room],
    pub(crate) memberships: &'a Memberships,
}

/// No memberships: an SSE listener's, whose rooms are given at connect.
static NO_MEMBERSHIPS: Memberships = Memberships {
    joined: Vec::new(),
    left: Vec::new(),
};

impl<'a> Listener<'a> {
    /// A listener in `rooms` since its session began (an SSE listener).
    pub(crate) fn since_start(rooms: &'a [Room]) -> Self {
        Listener {
            rooms,
            memberships: &NO_MEMBERSHIPS,
        }
    }

    /// Whether it was in `room` when the packet at `offset` was stored.
    pub(super) fn was_in(&self, room: &Room, offset: u128) -> bool {
        let m = self.memberships;
        let in_now = self.rooms.contains(room)
            && m.joined
                .iter()
                .find(|(r, _)| r == room)
                .is_none_or(|(_, floor)| offset > *floor);
        in_now
            || m.left
                .iter()
                .any(|(r, from, until)| r == room && offset > *from && offset <= *until)
    }
}

/// Whether `socket` is the one registered under `pid`: not one whose close took its
/// entry out (a note then would make an entry nothing removes), nor a stale socket
/// of a session resumed meanwhile under the same `pid` (whose notes would land in the
/// new socket's record).
pub(super) fn is_live(state: &super::State, pid: Sid, socket: *const Socket) -> bool {
    state
        .live
        .get(&pid)
        .is_some_and(|live| std::ptr::eq(live.as_ptr(), socket))
}

impl RecoveryBuffer {
    pub(super) fn lock_memberships(&self) -> MutexGuard<'_, HashMap<Sid, Memberships>> {
        self.memberships.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that the connected socket `pid`, whose session began at `start`, is
    /// joining `rooms`: where the buffer stands now is where the packets of each room
    /// it is not in yet (`is_in` says) begin to count for its replays. Nothing is
    /// recorded while the buffer has not moved since the session began (the common
    /// case: rooms joined in the connection handler). A packet stored between this and
    /// the join itself may be replayed without having been delivered: it was sent as
    /// the socket joined. No lock is held while `is_in` reads the room index.
    pub(crate) fn note_joins(
        &self,
        pid: Sid,
        socket: *const Socket,
        start: u128,
        rooms: &[&str],
        is_in: impl Fn(&str) -> bool,
    ) {
        // The common case first, without a look at the room index: rooms joined
        // before anything was stored (in the connection handler).
        if self.lock().head <= start {
            return;
        }
        let new: Vec<&str> = rooms.iter().copied().filter(|r| !is_in(r)).collect();
        if new.is_empty() {
            return;
        }
        // Under the state lock, and only for a socket still registered: one whose
        // close took its entry out meanwhile (`unregister_live`) would otherwise get a
        // new one that nothing ever removes.
        let state = self.lock();
        let head = state.head;
        if head <= start || !is_live(&state, pid, socket) {
            return;
        }
        let mut all = self.lock_memberships();
        let m = all.entry(pid).or_default();
        for room in new {
            m.joined_at(Room::from(room), head);
        }
    }

    /// Records that the connected socket `pid`, whose session began at `start`, has
    /// left `room` (it was in it): the packets stored while it was there still count
    /// for its replays, unless none was. Call it after the leave, so that a packet
    /// delivered to the room just before is among them.
    pub(crate) fn note_leave(&self, pid: Sid, socket: *const Socket, start: u128, room: &str) {
        // As in `note_joins`: only for the socket registered under `pid`.
        let state = self.lock();
        let head = state.head;
        if !is_live(&state, pid, socket) {
            return;
        }
        let mut all = self.lock_memberships();
        let m = all.entry(pid).or_default();
        let from = match m.joined.iter().position(|(r, _)| **r == *room) {
            Some(i) => m.joined.swap_remove(i).1,
            None => start,
        };
        if head > from {
            if m.left.len() >= MAX_LEFT {
                m.left.remove(0);
            }
            m.left.push((Room::from(room), from, head));
        }
        if m.is_empty() {
            all.remove(&pid);
        }
    }

    /// The memberships of the connected socket `pid`.
    pub(crate) fn memberships_of(&self, pid: Sid) -> Memberships {
        self.lock_memberships()
            .get(&pid)
            .cloned()
            .unwrap_or_default()
    }

    /// Sets the memberships of a socket resuming its session.
    pub(crate) fn set_memberships(&self, pid: Sid, memberships: Memberships) {
        let mut all = self.lock_memberships();
        if memberships.is_empty() {
            all.remove(&pid);
        } else {
            all.insert(pid, memberships);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::Audience;
    use super::super::tests::{buffer, gone, live, me, sid, store_to, to};
    use super::*;

    /// `joined` alone.
    fn joined(entries: &[(&str, u128)]) -> Memberships {
        Memberships {
            joined: entries.iter().map(|(r, f)| (Room::from(*r), *f)).collect(),
            left: Vec::new(),
        }
    }

    /// Rooms left: each with the positions at its join and at its leave.
    fn left(entries: &[(&str, u128, u128)]) -> Memberships {
        Memberships {
            joined: Vec::new(),
            left: entries
                .iter()
                .map(|(r, from, to)| (Room::from(*r), *from, *to))
                .collect(),
        }
    }

    #[test]
    fn memberships_note_a_join_once_and_a_leave_with_its_span() {
        let b = buffer(100);
        let now = Instant::now();
        let start = b.head();
        live(&b, sid(2));
        live(&b, sid(3));
        b.note_joins(sid(2), me(), start, &["a"], |_| false);
        assert!(
            b.memberships_of(sid(2)).is_empty(),
            "nothing stored since the start"
        );
        let first = store_to(&b, &["a"], "1", now);
        b.note_joins(sid(2), me(), start, &["b"], |_| false);
        // Joining a room it is in already keeps its floor.
        let second = store_to(&b, &["b"], "2", now);
        b.note_joins(sid(2), me(), start, &["b"], |r| r == "b");
        assert_eq!(b.memberships_of(sid(2)), joined(&[("b", first)]));
        // Left: what was stored while it was there still counts.
        b.note_leave(sid(2), me(), start, "b");
        // `a`, joined at the start, was there for everything so far.
        b.note_leave(sid(2), me(), start, "a");
        let left = vec![
            (Room::from("b"), first, second),
            (Room::from("a"), start, second),
        ];
        assert_eq!(b.memberships_of(sid(2)).left, left);
        assert!(b.memberships_of(sid(2)).joined.is_empty());
        // Joined again: from where it stands now, the earlier span kept.
        let third = store_to(&b, &["b"], "3", now);
        b.note_joins(sid(2), me(), start, &["b"], |_| false);
        let m = gone(&b, sid(2));
        assert_eq!((m.joined, m.left), (vec![(Room::from("b"), third)], left));
        assert!(b.memberships_of(sid(2)).is_empty(), "taken with the socket");
        // Joined and left with nothing stored in between: nothing to remember.
        b.note_joins(sid(3), me(), start, &["c"], |_| false);
        b.note_leave(sid(3), me(), start, "c");
        assert!(b.memberships_of(sid(3)).is_empty());
    }

    #[test]
    fn at_most_max_left_rooms_left_are_remembered_the_oldest_forgotten() {
        let b = buffer(100);
        let start = b.head();
        live(&b, sid(2));
        store_to(&b, &[], "x", Instant::now());
        for n in 0..=MAX_LEFT {
            b.note_leave(sid(2), me(), start, &format!("r{n}"));
        }
        let left = b.memberships_of(sid(2)).left;
        assert_eq!(left.len(), MAX_LEFT);
        assert_eq!(&*left[0].0, "r1");
    }

    /// A join or leave noted after its socket's close took its entry (the two race
    /// on different threads) leaves nothing behind: before, it made a new entry that
    /// nothing ever removed.
    #[test]
    fn a_join_or_leave_noted_after_the_close_leaves_nothing() {
        let b = buffer(100);
        let start = b.head();
        store_to(&b, &[], "x", Instant::now());
        live(&b, sid(2));
        b.note_joins(sid(2), me(), start, &["a"], |_| false);
        let _ = gone(&b, sid(2));
        b.note_joins(sid(2), me(), start, &["b"], |_| false);
        b.note_leave(sid(2), me(), start, "a");
        assert!(b.lock_memberships().is_empty());
    }

    /// Memberships handed to a kept session hold no more than their entries, and are
    /// charged what they hold: a socket that joined a hundred rooms late and left them
    /// all kept a list of capacity 128 charged as empty.
    #[test]
    fn kept_memberships_are_shrunk_and_charged_by_capacity() {
        let b = buffer(1000);
        let start = b.head();
        store_to(&b, &[], "x", Instant::now());
        live(&b, sid(2));
        let rooms: Vec<String> = (0..100).map(|n| format!("r{n}")).collect();
        let names: Vec<&str> = rooms.iter().map(String::as_str).collect();
        b.note_joins(sid(2), me(), start, &names, |_| false);
        store_to(&b, &[], "y", Instant::now());
        for room in &names {
            b.note_leave(sid(2), me(), start, room);
        }
        let m = gone(&b, sid(2));
        assert!(m.joined.is_empty());
        assert_eq!(m.joined.capacity(), 0, "shrunk");
        let mut unshrunk = m.clone();
        unshrunk.joined.reserve(128);
        assert!(unshrunk.heap() >= m.heap() + 128 * std::mem::size_of::<(Room, u128)>());
    }

    #[test]
    fn a_listener_hears_a_room_while_it_was_in_it() {
        let a = to(&["x"]);
        let rooms = [Room::from("x")];
        assert!(a.includes(Listener::since_start(&rooms), 1));
        let m = joined(&[("x", 5)]);
        let late = Listener {
            rooms: &rooms,
            memberships: &m,
        };
        assert!(!a.includes(late, 5), "stored when it joined: not its");
        assert!(a.includes(late, 6));
        assert!(
            to(&[]).includes(late, 1),
            "a packet for everyone needs no room"
        );
        // Left after 8, no longer among its rooms.
        let m = left(&[("x", 5, 8)]);
        let gone = Listener {
            rooms: &[],
            memberships: &m,
        };
        assert_eq!(
            [5, 6, 8, 9].map(|offset| a.includes(gone, offset)),
            [false, true, true, false]
        );
    }

    #[test]
    fn an_excepted_room_excludes_only_what_was_stored_while_the_socket_was_in_it() {
        let all_but_muted = Audience {
            rooms: Box::default(),
            except: Box::new([Room::from("muted")]),
        };
        let rooms = [Room::from("muted")];
        let m = joined(&[("muted", 5)]);
        let late = Listener {
            rooms: &rooms,
            memberships: &m,
        };
        // Sent to it before it joined `muted` (and perhaps never read): replayed.
        assert!(all_but_muted.includes(late, 5));
        assert!(!all_but_muted.includes(late, 6), "in `muted` by then");
        assert!(!all_but_muted.includes(Listener::since_start(&rooms), 1));
        // In `muted` from the start until 8, then left.
        let m = left(&[("muted", 0, 8)]);
        let gone = Listener {
            rooms: &[],
            memberships: &m,
        };
        assert!(!all_but_muted.includes(gone, 8));
        assert!(all_but_muted.includes(gone, 9));
    }

    #[test]
    fn memberships_read_from_a_store_are_bounded_as_this_node_writes_them() {
        let buffer = RecoveryBuffer::logged(super::super::RecoveryConfig::default());
        let at = |n: u32| format!("{n}-0");
        let rooms = 3;
        let stored = DurableMemberships {
            joined: (0..100).map(|n| (format!("r{n}"), at(n))).collect(),
            left: (0..100)
                .map(|n| (format!("l{n}"), at(n), at(n + 1)))
                .collect(),
        };
        let m = Memberships::from_durable(&buffer, &stored, rooms);
        assert_eq!(m.joined.len(), 3, "no more than the session's rooms");
        assert_eq!(m.left.len(), MAX_LEFT);
        assert_eq!(&*m.left[0].0, "l84", "the last ones, as written");
        let unreadable = DurableMemberships {
            joined: vec![("a".into(), "not an offset".into())],
            left: Vec::new(),
        };
        assert!(Memberships::from_durable(&buffer, &unreadable, rooms).is_empty());
    }
}
