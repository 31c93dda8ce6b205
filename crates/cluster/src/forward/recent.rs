//! What the forwarder remembers of recent requests, bounded: cancels that overtook
//! their request, and the requests already run (so a replayed frame runs nothing).
//! Node questions (`crate::questions`) remember the questions they answered with the
//! same [`Seen`].

use std::collections::{HashMap, HashSet, VecDeque};

use super::frame::RequestId;

/// A request as other nodes name it: the sender's tag and its id.
pub(crate) type RequestKey = (String, RequestId);

/// Cancels remembered for requests not seen yet (a cancel can overtake its request:
/// they travel on different connections).
const EARLY_CANCELS: usize = 1024;

/// Requests remembered as run. Only frames signed with the cluster secret get here,
/// so this bounds what the cluster's own traffic costs: at 2 000 forwarded requests a
/// second, a window of 50 s. Past it the oldest are forgotten early, and from then on
/// their sender's frames sent no later than the last one forgotten are refused (see
/// [`Seen`]): a replay of a forgotten request never runs again.
const SEEN: usize = 100_000;

/// Cancels remembered for requests not seen yet, oldest forgotten first.
#[derive(Debug, Default)]
pub(super) struct EarlyCancels {
    set: HashSet<RequestKey>,
    order: VecDeque<RequestKey>,
}

impl EarlyCancels {
    pub(super) fn insert(&mut self, key: RequestKey) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
        }
        while self.order.len() > EARLY_CANCELS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    pub(super) fn remove(&mut self, key: &RequestKey) -> bool {
        self.set.remove(key)
    }
}

/// Requests already run, each kept until frames sent when it was are too old to be
/// accepted anyway, or, with [`SEEN`] kept, until a newer one needs its place.
///
/// A request forgotten that early could be replayed within its time window, so each
/// sender then gets a floor: the latest sending time among its requests forgotten
/// early, at or before which its frames are refused. A sender's frames arrive in the
/// order it sent them (one connection each way), so only a replay, or a genuine frame
/// overtaken by [`SEEN`] others, meets it. Floors go once frames that old are refused
/// by their age.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    set: HashSet<RequestKey>,
    /// `(sent_ms, key)`, in arrival order.
    order: VecDeque<(u64, RequestKey)>,
    /// Per sender, the latest `sent_ms` of its requests forgotten early.
    floors: HashMap<String, u64>,
}

impl Seen {
    /// Records `key`, sent at `sent_ms`; false when it was seen already (a replay).
    /// Forgets what was sent before `forget_before_ms`.
    pub(crate) fn first_time(
        &mut self,
        key: &RequestKey,
        sent_ms: u64,
        forget_before_ms: u64,
    ) -> bool {
        while let Some((sent, _)) = self.order.front() {
            let early = self.order.len() >= SEEN;
            if *sent >= forget_before_ms && !early {
                break;
            }
            if let Some((sent, old)) = self.order.pop_front() {
                self.set.remove(&old);
                if early && sent >= forget_before_ms {
                    let floor = self.floors.entry(old.0).or_default();
                    *floor = (*floor).max(sent);
                }
            }
        }
        if !self.floors.is_empty() {
            self.floors.retain(|_, floor| *floor >= forget_before_ms);
        }
        if self
            .floors
            .get(&key.0)
            .is_some_and(|floor| sent_ms <= *floor)
        {
            // Maybe one forgotten early: refused rather than perhaps run twice.
            return false;
        }
        if !self.set.insert(key.clone()) {
            return false;
        }
        self.order.push_back((sent_ms, key.clone()));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: RequestId) -> RequestKey {
        ("n".to_owned(), id)
    }

    #[test]
    fn early_cancels_are_bounded() {
        let mut early = EarlyCancels::default();
        for id in 0..(EARLY_CANCELS as u128 + 10) {
            early.insert(key(id));
        }
        assert!(!early.remove(&key(0)), "the oldest is forgotten");
        assert!(early.remove(&key(EARLY_CANCELS as u128 + 9)));
        assert!(!early.remove(&key(EARLY_CANCELS as u128 + 9)), "once");
    }

    #[test]
    fn a_request_is_seen_once_until_it_is_too_old_to_matter() {
        let mut seen = Seen::default();
        assert!(seen.first_time(&key(1), 1_000, 0));
        assert!(!seen.first_time(&key(1), 1_000, 0), "a replay");
        assert!(seen.first_time(&key(2), 2_000, 0));
        // Frames sent before 1 500 are refused by their age now: 1 is forgotten.
        assert!(seen.first_time(&key(3), 3_000, 1_500));
        assert!(seen.first_time(&key(1), 1_000, 1_500));
        assert!(!seen.first_time(&key(2), 2_000, 1_500));
    }

    #[test]
    fn seen_is_bounded() {
        let mut seen = Seen::default();
        for id in 0..(SEEN as u128 + 5) {
            seen.first_time(&key(id), 10, 0);
        }
        assert!(seen.order.len() <= SEEN);
        assert_eq!(seen.set.len(), seen.order.len());
    }

    #[test]
    fn a_request_forgotten_early_is_refused_not_run_again() {
        let mut seen = Seen::default();
        // One more than fits, all sent within the window (1 ms apart from 10 000).
        let sent = |id: u128| 10_000 + id as u64;
        for id in 0..=(SEEN as u128) {
            assert!(seen.first_time(&key(id), sent(id), 0));
        }
        // Request 0 was forgotten to make room: its replay is refused all the same.
        assert!(!seen.first_time(&key(0), sent(0), 0), "a replay");
        // The sender's newer requests still run, and another sender is not affected.
        let next = SEEN as u128 + 1;
        assert!(seen.first_time(&key(next), sent(next), 0));
        assert!(seen.first_time(&("m".to_owned(), 0), sent(0), 0));
        // Once frames that old are refused by their age, the floor goes.
        assert!(seen.first_time(&key(next + 1), sent(next + 1), sent(next)));
        assert!(seen.floors.is_empty(), "{:?}", seen.floors);
    }
}
