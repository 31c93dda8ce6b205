//! The adapter seam: the room index of a namespace, and (in a cluster) the only part
//! that knows about other nodes. The in-memory adapter is the embedded default.

mod memory;

use std::sync::Arc;

use switchboard_protocol::Sid;

pub use memory::MemoryAdapter;

/// A room name, shared: each name is stored once per namespace no matter how many
/// sockets are in the room.
pub type Room = Arc<str>;

/// Room membership of one namespace's sockets.
///
/// Why a trait: the in-memory index serves one node; a cluster adapter keeps the same
/// local index and adds cross-node broadcast and membership requests on top, without
/// the engine changing. Every method is synchronous and cheap: the engine calls them on
/// hot paths (join, broadcast) while holding no lock.
pub trait Adapter: Send + Sync + std::fmt::Debug + 'static {
    /// Adds a socket to rooms (joining a room twice is a no-op). Returns the rooms
    /// that had no member before: they are now occupied (room lifecycle hooks).
    fn add_all(&self, sid: Sid, rooms: &[&str]) -> Vec<Room>;
    /// Removes a socket from one room; returns whether the room is now empty.
    fn del(&self, sid: Sid, room: &str) -> bool;
    /// Removes a socket from every room (it disconnected); returns the rooms it left
    /// empty.
    fn del_all(&self, sid: Sid) -> Vec<Room>;
    /// The rooms a socket is in (its own id room excluded).
    fn socket_rooms(&self, sid: Sid) -> Vec<Room>;
    /// Appends to `out` the sockets in any of `rooms`, each once.
    fn sockets_in(&self, rooms: &[Room], out: &mut Vec<Sid>);
    /// Every room with at least one socket.
    fn rooms(&self) -> Vec<Room>;
    /// Number of sockets in `room`.
    fn room_size(&self, room: &str) -> usize;
}

/// Creates the adapter of each namespace.
pub type AdapterFactory = Arc<dyn Fn(&str) -> Arc<dyn Adapter> + Send + Sync>;

/// The embedded default: one in-memory adapter per namespace.
pub fn memory_factory() -> AdapterFactory {
    Arc::new(|_| Arc::new(MemoryAdapter::default()))
}
