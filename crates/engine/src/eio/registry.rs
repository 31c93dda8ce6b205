//! The registry of a node's live sessions, by id: looked up on every polling request
//! and upgrade, written on handshake and close, walked by the drain; the slots of
//! `max_connections` that sessions and pending WebSocket handshakes hold, counted per
//! client address too when `max_sessions_per_ip` is set; and the relayed upgrades
//! still under way, which the drain waits for too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use switchboard_protocol::Sid;

use super::client_ip::{ClientKey, PerAddress};
use super::session::Session;

/// The live sessions, by id. Lookups happen on every polling request and upgrade;
/// writes on handshake and close; a `std` mutex held for a map operation only.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sessions: Mutex<Sessions>,
    /// Wakes whoever waits for the last session and relayed upgrade to finish (the
    /// drain).
    emptied: tokio::sync::Notify,
}

/// The map and the slots reserved for sessions not in it yet, under one lock so that
/// checking the capacity and taking a slot are one step.
#[derive(Debug, Default)]
struct Sessions {
    map: HashMap<Sid, Arc<Session>>,
    /// Slots held by [`Slot`]s: WebSocket handshakes answered 101 whose session is
    /// not registered yet.
    reserved: usize,
    /// Upgrades this node relays whose client has not sent its `upgrade` packet yet
    /// (held by [`RelayedUpgrade`]s).
    relayed_upgrades: usize,
    /// Set when the drain starts: no session or relayed upgrade starts after it.
    draining: bool,
    /// Sessions and slots per client address, when they are counted.
    per_ip: PerAddress,
    /// The address each registered session counts under, when counted.
    ip_of: HashMap<Sid, ClientKey>,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// `max_connections` are open.
    Node,
    /// The client's address has `max_sessions_per_ip` open.
    Address,
}

/// A place among `max_connections`, taken before a session exists (a WebSocket
/// handshake between its upgrade request and its session's start). Registering the
/// session with [`Registry::insert`] hands the slot over to it; dropping the slot (the
/// handshake failed) frees it.
#[derive(Debug)]
pub(crate) struct Slot {
    registry: Arc<Registry>,
    /// The address it counts under, while it does (taken over by the session).
    ip: Option<ClientKey>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut sessions = self.registry.lock();
        sessions.reserved = sessions.reserved.saturating_sub(1);
        if let Some(key) = self.ip.take() {
            sessions.per_ip.give(key);
        }
    }
}

/// An upgrade this node relays to another node, from the moment it is accepted until
/// the client's `upgrade` packet has gone by (or the relay ended): the drain waits for
/// it, because ending the relay in between leaves the client paused (see the relay's
/// `watch` module). Dropping it tells the drain.
#[derive(Debug)]
pub(crate) struct RelayedUpgrade {
    registry: Arc<Registry>,
}

impl Drop for RelayedUpgrade {
    fn drop(&mut self) {
        let mut sessions = self.registry.lock();
        sessions.relayed_upgrades = sessions.relayed_upgrades.saturating_sub(1);
        drop(sessions);
        self.registry.emptied.notify_waiters();
    }
}

impl Registry {
    fn lock(&self) -> MutexGuard<'_, Sessions> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a slot unless the sessions and the slots already taken reach `max`, or
    /// (with `per_ip`: the client's key and its bound) those of the client's address
    /// reach its bound.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        max: usize,
        per_ip: Option<(ClientKey, usize)>,
    ) -> Result<Slot, Full> {
        let mut sessions = self.lock();
        if sessions.map.len() + sessions.reserved >= max {
            return Err(Full::Node);
        }
        if let Some((key, bound)) = per_ip
            && !sessions.per_ip.take(key, bound)
        {
            return Err(Full::Address);
        }
        sessions.reserved += 1;
        Ok(Slot {
            registry: self.clone(),
            ip: per_ip.map(|(key, _)| key),
        })
    }

    /// Sessions and slots open for `key` (tests).
    #[cfg(test)]
    fn open_for(&self, key: ClientKey) -> usize {
        self.lock().per_ip.open(key)
    }

    /// Registers `session` in the place `slot` held.
    pub(crate) fn insert(&self, session: Arc<Session>, mut slot: Slot) {
        let mut sessions = self.lock();
        if let Some(key) = slot.ip.take() {
            // The session counts under the slot's address from now on.
            sessions.ip_of.insert(session.sid(), key);
        }
        sessions.map.insert(session.sid(), session);
        drop(sessions);
        // The session counts from now on, so the slot is given back (for a moment both
        // count: a handshake at the very limit may be refused, never one too many let in).
        drop(slot);
    }

    /// Marks the start of the drain: [`Self::relayed_upgrade`] refuses from now on.
    pub(crate) fn start_draining(&self) {
        self.lock().draining = true;
    }

    /// Whether the drain has started (new sessions and relays are refused).
    pub(crate) fn is_draining(&self) -> bool {
        self.lock().draining
    }

    /// Counts an upgrade relayed from now on, unless the drain has started (`None`).
    /// One lock with the drain's start: a relay either counts before the drain
    /// looks, or is refused.
    pub(crate) fn relayed_upgrade(self: &Arc<Self>) -> Option<RelayedUpgrade> {
        let mut sessions = self.lock();
        if sessions.draining {
            return None;
        }
        sessions.relayed_upgrades += 1;
        Some(RelayedUpgrade {
            registry: self.clone(),
        })
    }

    /// Relayed upgrades still under way (see [`RelayedUpgrade`]).
    pub(crate) fn relayed_upgrades(&self) -> usize {
        self.lock().relayed_upgrades
    }

    pub(crate) fn get(&self, sid: Sid) -> Option<Arc<Session>> {
        self.lock().map.get(&sid).cloned()
    }

    pub(crate) fn remove(&self, sid: Sid) {
        let mut sessions = self.lock();
        sessions.map.remove(&sid);
        if let Some(key) = sessions.ip_of.remove(&sid) {
            sessions.per_ip.give(key);
        }
        let empty = sessions.map.is_empty();
        drop(sessions);
        if empty {
            self.emptied.notify_waiters();
        }
    }

    /// Registered sessions (not counting reserved slots).
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// The sessions not closed yet.
    pub(crate) fn open_sessions(&self) -> Vec<Arc<Session>> {
        // Cloned out first: a session's own lock is never taken under the map's.
        let all: Vec<Arc<Session>> = self.lock().map.values().cloned().collect();
        all.into_iter().filter(|s| !s.is_closed()).collect()
    }

    /// No session left, no relayed upgrade under way.
    fn is_idle(&self) -> bool {
        let sessions = self.lock();
        sessions.map.is_empty() && sessions.relayed_upgrades == 0
    }

    /// Resolves once no session is left and no relayed upgrade is under way.
    pub(crate) async fn emptied(&self) {
        loop {
            // Created before the check: a `notify_waiters` after it still wakes us.
            let notified = self.emptied.notified();
            if self.is_idle() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_protocol::engineio::TransportKind;

    #[test]
    fn slots_per_address_are_bounded_and_given_back_by_slots_and_sessions() {
        let registry = Arc::new(Registry::default());
        let a = ClientKey::V4(1);
        let b = ClientKey::V4(2);
        let first = registry.reserve(10, Some((a, 2))).unwrap();
        let second = registry.reserve(10, Some((a, 2))).unwrap();
        assert_eq!(
            registry.reserve(10, Some((a, 2))).err(),
            Some(Full::Address)
        );
        assert!(
            registry.reserve(10, Some((b, 2))).is_ok(),
            "another address"
        );
        drop(first);
        assert_eq!(
            registry.open_for(a),
            1,
            "a dropped slot gives its place back"
        );
        // A session takes over its slot's place, and gives it back when removed.
        let session = Session::for_test(TransportKind::Polling);
        let sid = session.sid();
        registry.insert(session, second);
        assert_eq!(registry.open_for(a), 1);
        registry.remove(sid);
        assert_eq!(registry.open_for(a), 0);
        assert!(registry.lock().per_ip.is_empty(), "no entry left behind");
        // The node's bound comes first, and uncounted slots make no entries.
        let _held: Vec<Slot> = (0..3).map(|_| registry.reserve(3, None).unwrap()).collect();
        assert_eq!(registry.reserve(3, Some((a, 2))).err(), Some(Full::Node));
        assert!(registry.lock().per_ip.is_empty());
    }
}
