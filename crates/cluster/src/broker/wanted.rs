//! What the node's subscriber connection must be subscribed to, shared by the broker
//! (which changes it on every [`super::Broker::subscribe`] and
//! [`super::Broker::unsubscribe`]) and the subscriber task (which applies it to Redis).
//!
//! Changes are not queued one by one: the broker counts each subscription's holders
//! and marks the subscriptions whose held-or-not state differs from what it was at the
//! subscriber's last look as *dirty*; the subscriber takes them and tells Redis only
//! where it differs from what its connection has. A subscription that flips back to
//! its state at the last look is no longer dirty. So the changes Redis has not taken
//! yet are at most the channels held now plus those held at the last look, however
//! many changes were made: rooms joined and left in a loop (the sharded adapter's
//! dynamic channels, a client's choice, fresh names included) while Redis is slow,
//! frozen or away cost nothing more than the channels that exist. A join and leave
//! made between two looks of the subscriber leaves nothing to send.
//!
//! No IO: the subscriber awaits [`Wanted::changed`] and does the talking.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::{Change, Health, Sub};

/// Every subscription with a holder, counted. Counted rather than a set so that one
/// holder giving a subscription back cannot take it from another that happens to
/// need the same channel (a namespace declared with a name that spells another's
/// node-specific channel); Redis itself only knows subscribed or not.
#[derive(Debug, Default)]
pub(super) struct Subscriptions {
    held: BTreeMap<Sub, usize>,
}

impl Subscriptions {
    /// Records `change` of `sub`; returns whether its held-or-not state flipped: the
    /// first holder subscribes, the last one to give it back unsubscribes. Giving back
    /// what is not held changes nothing.
    pub(super) fn record(&mut self, change: Change, sub: &Sub) -> bool {
        match change {
            Change::Subscribe => {
                let holders = self.held.entry(sub.clone()).or_default();
                *holders += 1;
                *holders == 1
            }
            Change::Unsubscribe => match self.held.get_mut(sub) {
                Some(holders) if *holders > 1 => {
                    *holders -= 1;
                    false
                }
                Some(_) => {
                    self.held.remove(sub);
                    true
                }
                None => false,
            },
        }
    }

    /// Every subscription with a holder: what a new connection subscribes to.
    pub(super) fn held(&self) -> impl Iterator<Item = &Sub> {
        self.held.keys()
    }

    /// Whether `sub` has a holder.
    pub(super) fn holds(&self, sub: &Sub) -> bool {
        self.held.contains_key(sub)
    }
}

#[derive(Debug, Default)]
struct State {
    held: Subscriptions,
    /// Subscriptions whose held-or-not state differs from the one at the subscriber's
    /// last look, with that state (what its connection has); each counts once in
    /// [`Health`]'s pending subscriptions until taken.
    dirty: BTreeMap<Sub, bool>,
}

/// The subscriptions wanted and the ones changed since the subscriber last looked.
#[derive(Debug)]
pub(super) struct Wanted {
    state: Mutex<State>,
    notify: Notify,
    /// The broker is gone: the subscriber ends.
    closed: AtomicBool,
    health: Arc<Health>,
}

impl Wanted {
    /// Counts its pending changes in `health` (readiness waits for them at start-up).
    pub(super) fn new(health: Arc<Health>) -> Self {
        Wanted {
            state: Mutex::default(),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            health,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records `change` of `sub` and wakes the subscriber if that flipped whether
    /// `sub` is held.
    pub(super) fn change(&self, change: Change, sub: Sub) {
        let mut state = self.lock();
        let was = state.held.holds(&sub);
        if !state.held.record(change, &sub) {
            return;
        }
        match state.dirty.get(&sub) {
            // Back to what the connection has: nothing to send.
            Some(&at_look) if at_look != was => {
                state.dirty.remove(&sub);
                drop(state);
                self.health.subscriptions_done(1);
            }
            Some(_) => {}
            None => {
                // Counted before the lock is let go: once it is, the subscriber may
                // take the entry and count it done.
                self.health
                    .pending_subscriptions
                    .fetch_add(1, Ordering::AcqRel);
                state.dirty.insert(sub, was);
                drop(state);
                self.notify.notify_one();
            }
        }
    }

    /// Ends the subscriber (the broker is dropped).
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether the broker is gone.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once something changed since the last call (or was closed).
    pub(super) async fn changed(&self) {
        self.notify.notified().await;
    }

    /// For a new connection: every subscription held now. What was dirty is covered.
    pub(super) fn snapshot(&self) -> Vec<Sub> {
        let mut state = self.lock();
        let covered = std::mem::take(&mut state.dirty).len();
        let held = state.held.held().cloned().collect();
        drop(state);
        self.health.subscriptions_done(covered);
        held
    }

    /// At most `max` of the subscriptions that changed since the last look, each with
    /// whether it is held now; the others stay for the next look, which is woken at
    /// once (so a subscriber that tells Redis one change at a time delivers messages
    /// between batches). Call [`Wanted::done`] with their number once Redis was told.
    pub(super) fn take(&self, max: usize) -> Vec<(Sub, bool)> {
        let mut state = self.lock();
        let mut taken = Vec::with_capacity(state.dirty.len().min(max));
        while taken.len() < max {
            let Some((sub, _)) = state.dirty.pop_first() else {
                break;
            };
            let held = state.held.holds(&sub);
            taken.push((sub, held));
        }
        if !state.dirty.is_empty() {
            self.notify.notify_one();
        }
        taken
    }

    /// Subscriptions waiting to be taken.
    #[cfg(test)]
    fn dirty(&self) -> usize {
        self.lock().dirty.len()
    }

    /// `n` changes taken with [`Wanted::take`] were sent (or will be, by the next
    /// connection's [`Wanted::snapshot`]).
    pub(super) fn done(&self, n: usize) {
        self.health.subscriptions_done(n);
    }

    /// Whether `sub` is held now.
    #[cfg(test)]
    fn holds(&self, sub: &Sub) -> bool {
        self.lock().held.holds(sub)
    }
}

/// What one subscriber connection is subscribed to, so that only differences from
/// [`Wanted`] are sent; which of those Redis has not confirmed yet (a subscription
/// that failed, to be tried again: the others keep working meanwhile); and the shard
/// channels it gave back whose confirmation has not come yet (with RESP3 the
/// connection passes its own `SUNSUBSCRIBE`'s confirmation on as a push, which looks
/// just like Redis taking the channel back because its slot moved).
#[derive(Debug, Default)]
pub(super) struct Applied {
    subs: BTreeSet<Sub>,
    missing: BTreeSet<Sub>,
    given_back: BTreeMap<String, u32>,
}

/// What a pushed `sunsubscribe` of a shard channel means to the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ShardDropped {
    /// The confirmation of its own `SUNSUBSCRIBE`.
    Confirmed,
    /// Redis took back a channel the connection holds (its slot moved): to be
    /// subscribed again, where it lives now.
    Moved,
    /// A channel the connection does not hold.
    Unknown,
}

impl Applied {
    /// A connection that subscribed to every one of `held`.
    pub(super) fn all(held: &[Sub]) -> Self {
        Applied {
            subs: held.iter().cloned().collect(),
            ..Applied::default()
        }
    }

    /// The command to send for `sub`, now `held` or not, if the connection differs;
    /// the connection is then taken to have it. A subscription given back before
    /// Redis confirmed it needs no command.
    pub(super) fn command(&mut self, sub: &Sub, held: bool) -> Option<Change> {
        if held {
            return self.subs.insert(sub.clone()).then_some(Change::Subscribe);
        }
        if !self.subs.remove(sub) {
            return None;
        }
        // One still missing is given back all the same: a subscribe that timed out may
        // have reached Redis (it answers a give-back of what it does not hold).
        self.missing.remove(sub);
        if let Sub::Shard(channel) = sub {
            *self.given_back.entry(channel.clone()).or_default() += 1;
        }
        Some(Change::Unsubscribe)
    }

    /// `change` of `sub` was not sent (Redis answered with an error, or not in time):
    /// a subscription waits to be tried again; no confirmation of a give-back comes.
    pub(super) fn failed(&mut self, change: Change, sub: &Sub) {
        match (change, sub) {
            (Change::Subscribe, _) => {
                if self.subs.contains(sub) {
                    self.missing.insert(sub.clone());
                }
            }
            (Change::Unsubscribe, Sub::Shard(channel)) => self.confirmed(channel),
            (Change::Unsubscribe, _) => {}
        }
    }

    /// Subscriptions Redis has not confirmed.
    pub(super) fn missing(&self) -> Vec<Sub> {
        self.missing.iter().cloned().collect()
    }

    /// Whether Redis confirmed every subscription the connection holds.
    pub(super) fn complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// `sub`, tried again, is now subscribed; false when it was given back meanwhile
    /// (it is subscribed in Redis all the same).
    pub(super) fn subscribed(&mut self, sub: &Sub) -> bool {
        self.missing.remove(sub);
        self.subs.contains(sub)
    }

    /// A pushed `sunsubscribe` of `channel`: see [`ShardDropped`]. A moved channel
    /// the connection holds waits to be subscribed again.
    pub(super) fn shard_dropped(&mut self, channel: &str) -> ShardDropped {
        if self.given_back.contains_key(channel) {
            self.confirmed(channel);
            return ShardDropped::Confirmed;
        }
        let sub = Sub::Shard(channel.to_owned());
        match self.subs.contains(&sub) {
            true => {
                self.missing.insert(sub);
                ShardDropped::Moved
            }
            false => ShardDropped::Unknown,
        }
    }

    fn confirmed(&mut self, channel: &str) {
        if let Some(n) = self.given_back.get_mut(channel) {
            *n -= 1;
            if *n == 0 {
                self.given_back.remove(channel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str) -> Sub {
        Sub::Channel(name.to_owned())
    }

    fn held(subs: &Subscriptions) -> Vec<Sub> {
        subs.held().cloned().collect()
    }

    fn pending(health: &Health) -> usize {
        health.pending_subscriptions.load(Ordering::Acquire)
    }

    #[test]
    fn a_subscription_given_back_is_not_resubscribed() {
        let mut subs = Subscriptions::default();
        let pattern = Sub::Pattern("socket.io#/tenant-x#*".to_owned());
        assert!(subs.record(Change::Subscribe, &pattern));
        assert!(subs.record(Change::Subscribe, &channel("a")));
        assert!(subs.record(Change::Unsubscribe, &pattern));
        assert_eq!(held(&subs), [channel("a")]);
    }

    #[test]
    fn an_unsubscribe_then_a_subscribe_ends_subscribed() {
        let mut subs = Subscriptions::default();
        assert!(subs.record(Change::Subscribe, &channel("a")));
        assert!(subs.record(Change::Unsubscribe, &channel("a")));
        assert!(subs.record(Change::Subscribe, &channel("a")));
        assert_eq!(held(&subs), [channel("a")]);
    }

    #[test]
    fn the_last_holder_unsubscribes() {
        let mut subs = Subscriptions::default();
        assert!(subs.record(Change::Subscribe, &channel("a")));
        assert!(
            !subs.record(Change::Subscribe, &channel("a")),
            "already subscribed"
        );
        assert!(
            !subs.record(Change::Unsubscribe, &channel("a")),
            "still held"
        );
        assert_eq!(held(&subs), [channel("a")]);
        assert!(subs.record(Change::Unsubscribe, &channel("a")));
        assert!(held(&subs).is_empty());
    }

    #[test]
    fn giving_back_what_is_not_held_changes_nothing() {
        let mut subs = Subscriptions::default();
        assert!(!subs.record(Change::Unsubscribe, &channel("a")));
        assert!(subs.record(Change::Subscribe, &channel("a")));
        assert_eq!(held(&subs), [channel("a")]);
    }

    /// While the subscriber does not look (Redis away), rooms joined and left leave
    /// nothing, a room joined stays, and a channel given back goes: the subscriber then
    /// sends only what its connection lacks or has too much of.
    #[test]
    fn changes_redis_has_not_taken_are_what_differs_from_the_connection() {
        let health = Arc::new(Health::default());
        let wanted = Wanted::new(health.clone());
        wanted.change(Change::Subscribe, channel("kept"));
        let mut applied = Applied::all(&wanted.snapshot());
        assert_eq!(pending(&health), 0);
        for i in 0..1000u32 {
            let room = channel(&format!("room-{i}"));
            wanted.change(Change::Subscribe, room.clone());
            wanted.change(Change::Unsubscribe, room);
        }
        wanted.change(Change::Subscribe, channel("new"));
        wanted.change(Change::Unsubscribe, channel("kept"));
        let taken = wanted.take(usize::MAX);
        assert_eq!(taken.len(), 2, "{taken:?}");
        assert_eq!(pending(&health), 2);
        let sent: Vec<(Sub, Change)> = taken
            .iter()
            .filter_map(|(sub, held)| Some((sub.clone(), applied.command(sub, *held)?)))
            .collect();
        wanted.done(taken.len());
        assert_eq!(pending(&health), 0);
        assert_eq!(
            sent,
            [
                (channel("kept"), Change::Unsubscribe),
                (channel("new"), Change::Subscribe),
            ]
        );
        assert!(wanted.take(usize::MAX).is_empty());
    }

    /// Joins and leaves of a million fresh names while the subscriber does not look
    /// leave nothing waiting: each name flipped back to its state at the last look.
    #[test]
    fn fresh_names_joined_and_left_leave_nothing_waiting() {
        let health = Arc::new(Health::default());
        let wanted = Wanted::new(health.clone());
        for i in 0..1_000_000u32 {
            let room = channel(&format!("room-{i}"));
            wanted.change(Change::Subscribe, room.clone());
            wanted.change(Change::Unsubscribe, room);
        }
        assert_eq!(wanted.dirty(), 0);
        assert_eq!(pending(&health), 0);
        assert!(wanted.take(usize::MAX).is_empty());
    }

    /// Changes made while the subscriber takes and applies others, on another thread:
    /// once everything is taken and done, nothing is pending (readiness at start-up
    /// waits for zero). Counting an entry after letting the lock go lost this: the
    /// subscriber could count it done first, and the count stayed one above.
    #[test]
    fn pending_counts_reach_zero_with_changes_racing_the_subscriber() {
        let health = Arc::new(Health::default());
        let wanted = Arc::new(Wanted::new(health.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let taker = {
            let (wanted, stop) = (wanted.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    let n = wanted.take(64).len();
                    wanted.done(n);
                }
            })
        };
        let makers: Vec<_> = (0..2)
            .map(|t| {
                let wanted = wanted.clone();
                std::thread::spawn(move || {
                    for i in 0..200_000u32 {
                        let room = channel(&format!("t{t}-{}", i % 64));
                        wanted.change(Change::Subscribe, room.clone());
                        wanted.change(Change::Unsubscribe, room);
                    }
                })
            })
            .collect();
        for maker in makers {
            maker.join().expect("maker");
        }
        stop.store(true, Ordering::Release);
        taker.join().expect("taker");
        let n = wanted.take(usize::MAX).len();
        wanted.done(n);
        assert_eq!(pending(&health), 0);
    }

    /// Taken at most `max` at a time; the rest stay, and the next look is woken.
    #[test]
    fn changes_are_taken_in_batches() {
        let health = Arc::new(Health::default());
        let wanted = Wanted::new(health.clone());
        for i in 0..10 {
            wanted.change(Change::Subscribe, channel(&format!("c{i}")));
        }
        assert_eq!(wanted.take(4).len(), 4);
        assert_eq!(wanted.dirty(), 6);
        wanted.done(4);
        assert_eq!(pending(&health), 6);
        assert_eq!(wanted.take(usize::MAX).len(), 6);
    }

    /// A new connection subscribes to what is held now; the changes before it are
    /// covered, and the ones after it are taken against it.
    #[test]
    fn a_new_connection_covers_what_was_dirty() {
        let health = Arc::new(Health::default());
        let wanted = Wanted::new(health.clone());
        wanted.change(Change::Subscribe, channel("a"));
        wanted.change(Change::Subscribe, channel("b"));
        wanted.change(Change::Unsubscribe, channel("a"));
        assert_eq!(pending(&health), 1, "`a` is back to what no connection had");
        let held = wanted.snapshot();
        assert_eq!(held, [channel("b")]);
        assert_eq!(pending(&health), 0, "covered by the new connection");
        let mut applied = Applied::all(&held);
        wanted.change(Change::Subscribe, channel("b"));
        assert!(
            wanted.take(usize::MAX).is_empty(),
            "a second holder flips nothing"
        );
        wanted.change(Change::Unsubscribe, channel("b"));
        wanted.change(Change::Unsubscribe, channel("b"));
        let taken = wanted.take(usize::MAX);
        assert_eq!(taken, [(channel("b"), false)]);
        assert_eq!(
            applied.command(&channel("b"), false),
            Some(Change::Unsubscribe)
        );
        assert_eq!(applied.command(&channel("b"), false), None);
        wanted.done(1);
        assert!(!wanted.holds(&channel("b")));
    }

    fn shard(name: &str) -> Sub {
        Sub::Shard(name.to_owned())
    }

    /// A room left and joined again at once: the push confirming the give-back comes
    /// after the new subscribe was sent, and must not be taken for Redis moving the
    /// channel (which made the whole subscriber reconnect).
    #[test]
    fn the_confirmation_of_a_give_back_is_not_a_moved_channel() {
        let mut applied = Applied::all(&[shard("r")]);
        assert_eq!(
            applied.command(&shard("r"), false),
            Some(Change::Unsubscribe)
        );
        assert_eq!(applied.command(&shard("r"), true), Some(Change::Subscribe));
        assert_eq!(applied.shard_dropped("r"), ShardDropped::Confirmed);
        assert!(applied.complete());
        // The next one, unasked for, is Redis'.
        assert_eq!(applied.shard_dropped("r"), ShardDropped::Moved);
        assert_eq!(applied.missing(), [shard("r")]);
        assert_eq!(applied.shard_dropped("other"), ShardDropped::Unknown);
    }

    /// Two give-backs unconfirmed, one of which failed: one confirmation to come.
    #[test]
    fn a_give_back_that_failed_expects_no_confirmation() {
        let mut applied = Applied::all(&[shard("r")]);
        assert_eq!(
            applied.command(&shard("r"), false),
            Some(Change::Unsubscribe)
        );
        assert_eq!(applied.command(&shard("r"), true), Some(Change::Subscribe));
        assert_eq!(
            applied.command(&shard("r"), false),
            Some(Change::Unsubscribe)
        );
        applied.failed(Change::Unsubscribe, &shard("r"));
        assert_eq!(applied.command(&shard("r"), true), Some(Change::Subscribe));
        assert_eq!(applied.shard_dropped("r"), ShardDropped::Confirmed);
        assert_eq!(applied.shard_dropped("r"), ShardDropped::Moved);
    }

    /// A failed subscription waits to be tried again; given back meanwhile, it is no
    /// longer missing, and the give-back is sent all the same.
    #[test]
    fn a_failed_subscription_is_missing_until_subscribed_or_given_back() {
        let mut applied = Applied::all(&[channel("a"), channel("b")]);
        applied.failed(Change::Subscribe, &channel("a"));
        applied.failed(Change::Subscribe, &channel("b"));
        assert!(!applied.complete());
        assert!(applied.subscribed(&channel("a")));
        assert_eq!(applied.missing(), [channel("b")]);
        // Given back all the same: the failed subscribe may have reached Redis.
        assert_eq!(
            applied.command(&channel("b"), false),
            Some(Change::Unsubscribe)
        );
        assert!(applied.complete());
        assert_eq!(applied.command(&channel("b"), false), None);
    }
}
