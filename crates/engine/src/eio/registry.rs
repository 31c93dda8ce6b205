//! The registry of a node's live sessions, by id: looked up on every polling request
//! and upgrade, written on handshake and close, walked by the drain.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use switchboard_protocol::Sid;

use super::session::Session;

/// The live sessions, by id. Lookups happen on every polling request and upgrade;
/// writes on handshake and close; a `std` mutex held for a map operation only.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sessions: Mutex<HashMap<Sid, Arc<Session>>>,
    /// Wakes whoever waits for the last session to finish (the drain).
    emptied: tokio::sync::Notify,
}

impl Registry {
    fn map(&self) -> MutexGuard<'_, HashMap<Sid, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn insert(&self, session: Arc<Session>) {
        self.map().insert(session.sid(), session);
    }

    pub(crate) fn get(&self, sid: Sid) -> Option<Arc<Session>> {
        self.map().get(&sid).cloned()
    }

    pub(crate) fn remove(&self, sid: Sid) {
        let mut map = self.map();
        map.remove(&sid);
        let empty = map.is_empty();
        drop(map);
        if empty {
            self.emptied.notify_waiters();
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// The sessions not closed yet.
    pub(crate) fn open_sessions(&self) -> Vec<Arc<Session>> {
        // Cloned out first: a session's own lock is never taken under the map's.
        let all: Vec<Arc<Session>> = self.map().values().cloned().collect();
        all.into_iter().filter(|s| !s.is_closed()).collect()
    }

    /// Resolves once no session is left.
    pub(crate) async fn emptied(&self) {
        loop {
            // Created before the check: a `notify_waiters` after it still wakes us.
            let notified = self.emptied.notified();
            if self.len() == 0 {
                return;
            }
            notified.await;
        }
    }
}
