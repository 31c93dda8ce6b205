//! Sockets per user (`[namespaces.auth] max_sockets_per_user`): the sockets each
//! verified `sub` has connected in an entry's namespaces on this node, so that one
//! account cannot take a node's connections from as many addresses as it has (what
//! `engine.max_sessions_per_ip` cannot see).
//!
//! The auth middleware refuses a socket whose user is full ([`PerUser::has_room`]),
//! which is what a client normally meets. The count itself is taken by the connection
//! handler ([`PerUser::admit`]), of the socket the engine registered (with recovery
//! on, not the one the middleware saw: the engine makes the registered one after the
//! middleware, with the resumed identity when there is one), and it closes a socket
//! that finds its user full there: one that raced another of its user's past the
//! middleware, or a resumed session that skipped the middleware. The disconnect
//! handler gives the place back. Places are held weakly: one whose socket the engine
//! let go without its disconnect handler is swept by the next socket of that user
//! that finds the count full, and by the sweep of the whole table that runs each time
//! the number of users doubles. A user with no socket has no entry once swept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use switchboard_engine::Socket;

/// The counted sockets of every user with one (sockets of the engine, or anything
/// held by an `Arc` in the tests).
#[derive(Debug)]
pub(crate) struct PerUser<T = Socket> {
    max: usize,
    users: Mutex<Users<T>>,
}

#[derive(Debug)]
struct Users<T> {
    sockets: HashMap<String, Vec<Weak<T>>>,
    /// The number of users at which the next sweep runs.
    sweep_at: usize,
}

/// The table is swept when it has this many users, or twice what the last sweep left.
const MIN_SWEEP: usize = 1024;

impl<T> PerUser<T> {
    /// The count of an entry with `max_sockets_per_user = max`; `None` when 0 (off).
    pub(crate) fn new(max: usize) -> Option<Self> {
        (max > 0).then(|| PerUser {
            max,
            users: Mutex::new(Users {
                sockets: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        })
    }

    /// Whether `sub` has fewer than `max` sockets (counting none that was let go).
    pub(crate) fn has_room(&self, sub: &str) -> bool {
        let mut users = self.lock();
        let Some(held) = users.sockets.get_mut(sub) else {
            return true;
        };
        if held.len() >= self.max {
            held.retain(|s| s.strong_count() > 0);
        }
        held.len() < self.max
    }

    /// Counts `socket` for `sub`, unless `sub` has `max` sockets already (false). A
    /// socket counted already is admitted again without counting twice.
    pub(crate) fn admit(&self, sub: &str, socket: &Arc<T>) -> bool {
        let mut users = self.lock();
        if users.sockets.len() >= users.sweep_at && !users.sockets.contains_key(sub) {
            users.sockets.retain(|_, held| {
                held.retain(|s| s.strong_count() > 0);
                !held.is_empty()
            });
            users.sweep_at = MIN_SWEEP.max(users.sockets.len().saturating_mul(2));
        }
        let held = users.sockets.entry(sub.to_owned()).or_default();
        if held.iter().any(|s| is(s, socket)) {
            return true;
        }
        if held.len() >= self.max {
            held.retain(|s| s.strong_count() > 0);
        }
        if held.len() >= self.max {
            return false;
        }
        held.push(Arc::downgrade(socket));
        true
    }

    /// Gives back `socket`'s place under `sub` (nothing when it has none: a resumed
    /// session that skipped the middleware).
    pub(crate) fn release(&self, sub: &str, socket: &Arc<T>) {
        let mut users = self.lock();
        let Some(held) = users.sockets.get_mut(sub) else {
            return;
        };
        held.retain(|s| s.strong_count() > 0 && !is(s, socket));
        if held.is_empty() {
            users.sockets.remove(sub);
        }
    }

    /// How many sockets `sub` has counted, the ones let go included until swept.
    #[cfg(test)]
    pub(crate) fn held(&self, sub: &str) -> usize {
        self.lock().sockets.get(sub).map_or(0, Vec::len)
    }

    /// How many users have an entry.
    #[cfg(test)]
    pub(crate) fn users(&self) -> usize {
        self.lock().sockets.len()
    }

    fn lock(&self) -> MutexGuard<'_, Users<T>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whether `held` is `socket`.
fn is<T>(held: &Weak<T>, socket: &Arc<T>) -> bool {
    std::ptr::eq(held.as_ptr(), Arc::as_ptr(socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_max_places_and_a_release_gives_one_back() {
        let users = PerUser::new(2).expect("on");
        let (a, b, c) = (Arc::new(1), Arc::new(2), Arc::new(3));
        assert!(users.has_room("alice"));
        assert!(users.admit("alice", &a));
        assert!(users.admit("alice", &b));
        assert!(!users.has_room("alice"));
        assert!(!users.admit("alice", &c), "full");
        assert!(users.admit("alice", &a), "counted already: admitted again");
        assert_eq!(users.held("alice"), 2, "not counted twice");
        assert!(users.admit("bob", &c), "another user");
        users.release("alice", &a);
        assert!(users.admit("alice", &c));
        users.release("alice", &b);
        users.release("alice", &c);
        users.release("bob", &c);
        users.release("nobody", &c);
        assert_eq!(users.users(), 0, "no entry for a user with no socket");
    }

    #[test]
    fn a_place_whose_socket_was_let_go_unreleased_is_swept_when_the_user_is_full() {
        let users = PerUser::new(2).expect("on");
        let kept = Arc::new(1);
        assert!(users.admit("alice", &kept));
        {
            // Counted, then dropped without a release (refused by a later middleware).
            let lost = Arc::new(2);
            assert!(users.admit("alice", &lost));
        }
        assert_eq!(users.held("alice"), 2);
        assert!(
            users.admit("alice", &Arc::new(3)),
            "the lost place is swept"
        );
        assert_eq!(users.held("alice"), 2);
    }

    #[test]
    fn users_whose_sockets_were_all_let_go_unreleased_are_swept_as_the_table_grows() {
        let users = PerUser::new(1).expect("on");
        for n in 0..MIN_SWEEP {
            assert!(users.admit(&format!("user-{n}"), &Arc::new(n)));
        }
        assert_eq!(users.users(), MIN_SWEEP);
        let live = Arc::new(0);
        assert!(users.admit("one more", &live));
        assert_eq!(users.users(), 1, "only the live user is left");
        assert!(PerUser::<()>::new(0).is_none(), "0 is off");
    }
}
