//! The in-memory adapter: rooms and their member sockets on this node; no network IO.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use switchboard_protocol::Sid;

use super::{Adapter, Room};
use crate::capacity::give_back;
use crate::sid_map::{SidMap, SidSet};

/// Capacity below which the index's maps are never shrunk.
const SHRINK_ABOVE: usize = 1024;

/// Both directions of the membership relation, under one lock so they never disagree.
#[derive(Debug, Default)]
struct Index {
    rooms: HashMap<Room, SidSet>,
    /// A socket's rooms share the `Arc<str>` of the `rooms` key: no per-socket copies.
    sockets: SidMap<Vec<Room>>,
}

/// Room index for a single node. A `std` `RwLock`: broadcasts read concurrently,
/// joins and leaves write briefly, and no `.await` ever happens under it.
#[derive(Debug, Default)]
pub struct MemoryAdapter {
    index: RwLock<Index>,
}

impl MemoryAdapter {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl Index {
    /// Gives back what a burst left: the maps keep the capacity of their largest
    /// size (100,000 rooms made and emptied held megabytes for the namespace's life).
    fn shrink(&mut self) {
        give_back(&mut self.rooms, SHRINK_ABOVE);
        give_back(&mut self.sockets, SHRINK_ABOVE);
    }

    /// Removes `sid` from `room`; true when that emptied the room.
    fn remove(&mut self, sid: Sid, room: &str) -> bool {
        let Some(members) = self.rooms.get_mut(room) else {
            return false;
        };
        if !members.remove(&sid) {
            return false;
        }
        if members.is_empty() {
            self.rooms.remove(room);
            return true;
        }
        // A big room that emptied to a few keeps no table of its peak size.
        give_back(members, SHRINK_ABOVE);
        false
    }
}

impl Adapter for MemoryAdapter {
    fn add_all(&self, sid: Sid, rooms: &[&str]) -> Vec<Room> {
        let mut index = self.write();
        let mut occupied = Vec::new();
        for name in rooms {
            let room = match index.rooms.get_key_value(*name) {
                Some((key, _)) => key.clone(),
                None => Room::from(*name),
            };
            let members = index.rooms.entry(room.clone()).or_default();
            let was_empty = members.is_empty();
            if members.insert(sid) {
                if was_empty {
                    occupied.push(room.clone());
                }
                index.sockets.entry(sid).or_default().push(room);
            }
        }
        occupied
    }

    fn del(&self, sid: Sid, room: &str) -> bool {
        let mut index = self.write();
        let vacated = index.remove(sid, room);
        if let Some(list) = index.sockets.get_mut(&sid) {
            list.retain(|r| &**r != room);
            if list.is_empty() {
                index.sockets.remove(&sid);
            }
        }
        vacated
    }

    fn del_all(&self, sid: Sid) -> Vec<Room> {
        let mut index = self.write();
        let mut vacated = Vec::new();
        if let Some(list) = index.sockets.remove(&sid) {
            for room in list {
                if index.remove(sid, &room) {
                    vacated.push(room);
                }
            }
        }
        index.shrink();
        vacated
    }

    fn socket_rooms(&self, sid: Sid) -> Vec<Room> {
        self.read().sockets.get(&sid).cloned().unwrap_or_default()
    }

    fn is_in(&self, sid: Sid, room: &str) -> bool {
        self.read()
            .rooms
            .get(room)
            .is_some_and(|members| members.contains(&sid))
    }

    fn socket_room_count(&self, sid: Sid) -> usize {
        self.read().sockets.get(&sid).map_or(0, Vec::len)
    }

    fn sockets_in(&self, rooms: &[Room], out: &mut Vec<Sid>) {
        let index = self.read();
        if let [room] = rooms {
            if let Some(members) = index.rooms.get(room) {
                out.extend(members.iter().copied());
            }
            return;
        }
        let mut seen = HashSet::new();
        for room in rooms {
            if let Some(members) = index.rooms.get(room) {
                out.extend(members.iter().copied().filter(|s| seen.insert(*s)));
            }
        }
    }

    fn rooms(&self) -> Vec<Room> {
        self.read().rooms.keys().cloned().collect()
    }

    fn room_size(&self, room: &str) -> usize {
        self.read().rooms.get(room).map_or(0, HashSet::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(n: u8) -> Sid {
        Sid::from_random([n; 15])
    }

    #[test]
    fn join_leave_and_query() {
        let a = MemoryAdapter::default();
        a.add_all(sid(1), &["x", "y"]);
        a.add_all(sid(2), &["y"]);
        a.add_all(sid(2), &["y"]);
        assert_eq!(a.room_size("y"), 2);
        let mut out = Vec::new();
        a.sockets_in(&[Room::from("x"), Room::from("y")], &mut out);
        out.sort();
        let mut expected = vec![sid(1), sid(2)];
        expected.sort();
        assert_eq!(out, expected);
        assert!(a.is_in(sid(1), "x") && a.is_in(sid(2), "y") && !a.is_in(sid(2), "x"));
        assert!(!a.is_in(sid(3), "x") && !a.is_in(sid(1), "nowhere"));
        assert_eq!(
            (a.socket_room_count(sid(1)), a.socket_room_count(sid(3))),
            (2, 0)
        );
        a.del(sid(1), "y");
        assert_eq!(a.room_size("y"), 1);
        assert!(!a.is_in(sid(1), "y"));
        assert_eq!(a.socket_room_count(sid(1)), 1);
        a.del_all(sid(2));
        assert_eq!(a.room_size("y"), 0);
        assert_eq!(a.rooms(), vec![Room::from("x")]);
        a.del_all(sid(1));
        assert!(a.rooms().is_empty());
    }

    /// A burst of rooms and members gone again leaves no table of its peak size.
    #[test]
    fn the_index_gives_back_what_a_burst_left() {
        let a = MemoryAdapter::default();
        let rooms: Vec<String> = (0..20_000).map(|n| format!("r{n}")).collect();
        let names: Vec<&str> = rooms.iter().map(String::as_str).collect();
        for n in 0..=200_u8 {
            a.add_all(sid(n), &["lobby"]);
        }
        for chunk in names.chunks(100).take(200) {
            a.add_all(sid(0), chunk);
        }
        let peak = a.read().rooms.capacity();
        assert!(peak >= 20_000);
        for n in 1..=200_u8 {
            a.del_all(sid(n));
        }
        a.del_all(sid(0));
        a.add_all(sid(7), &["lobby"]);
        a.add_all(sid(8), &["lobby"]);
        a.del_all(sid(8));
        let index = a.read();
        assert!(
            index.rooms.capacity() < peak / 4,
            "{}",
            index.rooms.capacity()
        );
        assert!(index.sockets.capacity() <= SHRINK_ABOVE * 2);
    }

    #[test]
    fn reports_rooms_becoming_occupied_and_vacated() {
        let a = MemoryAdapter::default();
        assert_eq!(
            a.add_all(sid(1), &["x", "y"]),
            vec![Room::from("x"), Room::from("y")]
        );
        assert!(a.add_all(sid(2), &["x"]).is_empty());
        assert!(!a.del(sid(1), "x"));
        assert!(a.del(sid(2), "x"));
        assert_eq!(a.del_all(sid(1)), vec![Room::from("y")]);
        assert!(a.del_all(sid(1)).is_empty());
    }

    #[test]
    fn room_names_are_shared_not_copied() {
        let a = MemoryAdapter::default();
        a.add_all(sid(1), &["shared"]);
        a.add_all(sid(2), &["shared"]);
        let r1 = a.socket_rooms(sid(1));
        let r2 = a.socket_rooms(sid(2));
        assert!(Room::ptr_eq(&r1[0], &r2[0]));
    }
}
