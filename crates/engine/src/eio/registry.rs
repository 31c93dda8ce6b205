//! The registry of a node's live sessions, by id: looked up on every polling request
//! and upgrade, written on handshake and close, walked by the drain; the slots of
//! `max_connections` that sessions and pending WebSocket handshakes hold; and the
//! relayed upgrades still under way, which the drain waits for too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use switchboard_protocol::Sid;

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
}

/// A place among `max_connections`, taken before a session exists (a WebSocket
/// handshake between its upgrade request and its session's start). Registering the
/// session with [`Registry::insert`] hands the slot over to it; dropping the slot (the
/// handshake failed) frees it.
#[derive(Debug)]
pub(crate) struct Slot {
    registry: Arc<Registry>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut sessions = self.registry.lock();
        sessions.reserved = sessions.reserved.saturating_sub(1);
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

    /// Takes a slot unless the sessions and the slots already taken reach `max`.
    pub(crate) fn reserve(self: &Arc<Self>, max: usize) -> Option<Slot> {
        let mut sessions = self.lock();
        if sessions.map.len() + sessions.reserved >= max {
            return None;
        }
        sessions.reserved += 1;
        Some(Slot {
            registry: self.clone(),
        })
    }

    /// Registers `session` in the place `slot` held.
    pub(crate) fn insert(&self, session: Arc<Session>, slot: Slot) {
        self.lock().map.insert(session.sid(), session);
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
