//! Maps and sets keyed by this node's socket ids, hashed with `foldhash` instead of
//! the standard library's SipHash.
//!
//! A broadcast looks up every recipient's id (in its room's member set, then in the
//! namespace's sockets), so the hash runs once per delivery; SipHash over an id's 20
//! bytes was ~2 % of the server's CPU in a room of 1,000. The keys of these maps are
//! the ids of this node's own sockets, drawn from a random number generator by the
//! servers of the cluster (a recovered socket keeps the id its first node drew); no
//! client or peer chooses them, so the flooding attack SipHash defends against (keys
//! crafted to collide) has no way in, and each map's hasher is seeded at random
//! besides. Maps whose keys a client or a peer writes (room names, ids other nodes
//! report) keep the standard hasher.

use std::collections::{HashMap, HashSet};

use switchboard_protocol::Sid;

/// The hasher of [`SidMap`] and [`SidSet`]: seeded per map.
pub type SidHasher = foldhash::fast::RandomState;

/// A map keyed by this node's socket ids.
pub type SidMap<V> = HashMap<Sid, V, SidHasher>;

/// A set of this node's socket ids.
pub type SidSet = HashSet<Sid, SidHasher>;
