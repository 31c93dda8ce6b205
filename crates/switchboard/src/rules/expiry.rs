//! Token expiry: one task holds the deadline of every authenticated socket and closes
//! each socket whose token expired (DESIGN §4: no per-socket task where a timer will
//! do). A refresh moves a socket's deadline; a disconnect removes it.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchboard_engine::Shutdown;
use tokio::sync::Notify;
use tokio::time::Instant;

/// The instant a token with this `exp` (seconds since the Unix epoch) expires, seen
/// from `now` on both clocks; `None` when it is too far away to schedule.
pub(crate) fn deadline(exp: u64, now_unix: SystemTime, now: Instant) -> Option<Instant> {
    let expires = UNIX_EPOCH.checked_add(Duration::from_secs(exp))?;
    let left = expires.duration_since(now_unix).unwrap_or(Duration::ZERO);
    now.checked_add(left)
}

/// Deadlines by key, ordered by time. Pure data; [`Timers`] drives it.
#[derive(Debug)]
pub(crate) struct Schedule<K, V> {
    by_time: BTreeMap<(Instant, K), V>,
    by_key: HashMap<K, Instant>,
}

impl<K: Ord + Hash + Copy, V> Default for Schedule<K, V> {
    fn default() -> Self {
        Schedule {
            by_time: BTreeMap::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<K: Ord + Hash + Copy, V> Schedule<K, V> {
    /// Sets `key`'s deadline, replacing any earlier one.
    pub(crate) fn insert(&mut self, key: K, at: Instant, value: V) {
        self.remove(key);
        self.by_key.insert(key, at);
        self.by_time.insert((at, key), value);
    }

    /// Forgets `key` if its value passes `owned`.
    pub(crate) fn remove_if(&mut self, key: K, owned: impl FnOnce(&V) -> bool) {
        let Some(at) = self.by_key.get(&key).copied() else {
            return;
        };
        if self.by_time.get(&(at, key)).is_some_and(owned) {
            self.remove(key);
        }
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: K) {
        if let Some(at) = self.by_key.remove(&key) {
            self.by_time.remove(&(at, key));
        }
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.by_time.keys().next().map(|(at, _)| *at)
    }

    /// Removes and returns every entry due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Vec<V> {
        let mut due = Vec::new();
        while let Some(entry) = self.by_time.first_entry() {
            let (at, key) = *entry.key();
            if at > now {
                break;
            }
            due.push(entry.remove());
            self.by_key.remove(&key);
        }
        due
    }

    /// Entries scheduled.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_key.len()
    }
}

type Action<V> = Box<dyn Fn(V) + Send + Sync>;

/// A [`Schedule`] and the one task that runs `action` on each entry when it is due.
pub(crate) struct Timers<K, V> {
    /// `std` mutex: held for one schedule operation, never across `.await`.
    schedule: Mutex<Schedule<K, V>>,
    /// Wakes the task when an earlier deadline was inserted.
    wake: Notify,
    action: Action<V>,
}

impl<K, V> std::fmt::Debug for Timers<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timers").finish_non_exhaustive()
    }
}

impl<K, V> Timers<K, V>
where
    K: Ord + Hash + Copy + Send + 'static,
    V: Send + 'static,
{
    /// Starts the task, which ends when `shutdown` fires.
    pub(crate) fn start(
        shutdown: Shutdown,
        action: impl Fn(V) + Send + Sync + 'static,
    ) -> Arc<Self> {
        let timers = Arc::new(Timers {
            schedule: Mutex::default(),
            wake: Notify::new(),
            action: Box::new(action),
        });
        tokio::spawn(timers.clone().run(shutdown));
        timers
    }

    fn lock(&self) -> MutexGuard<'_, Schedule<K, V>> {
        self.schedule.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `action(value)` at `at`, replacing `key`'s previous deadline.
    pub(crate) fn schedule(&self, key: K, at: Instant, value: V) {
        let earliest = {
            let mut schedule = self.lock();
            schedule.insert(key, at, value);
            schedule.next() == Some(at)
        };
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Forgets `key`'s deadline if its value passes `owned` (the deadline is this
    /// socket's, not another's armed since under the same key). The task may wake
    /// once for nothing; cheaper than waking it on every removal.
    pub(crate) fn cancel_if(&self, key: K, owned: impl FnOnce(&V) -> bool) {
        self.lock().remove_if(key, owned);
    }

    /// Entries scheduled.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    async fn run(self: Arc<Self>, shutdown: Shutdown) {
        loop {
            let next = self.lock().next();
            let due = async {
                match next {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.wait() => return,
                () = self.wake.notified() => {}
                () = due => {
                    let due = self.lock().pop_due(Instant::now());
                    due.into_iter().for_each(|value| (self.action)(value));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use switchboard_engine::shutdown;

    use super::*;

    #[test]
    fn deadlines_follow_exp() {
        let now_unix = UNIX_EPOCH + Duration::from_secs(1_000);
        let now = Instant::now();
        assert_eq!(
            deadline(1_060, now_unix, now),
            Some(now + Duration::from_secs(60))
        );
        assert_eq!(deadline(900, now_unix, now), Some(now));
        assert_eq!(deadline(u64::MAX, now_unix, now), None);
    }

    #[test]
    fn the_schedule_pops_due_entries_in_order() {
        let now = Instant::now();
        let mut s = Schedule::default();
        s.insert(1, now + Duration::from_secs(3), "c");
        s.insert(2, now + Duration::from_secs(1), "a");
        s.insert(3, now + Duration::from_secs(2), "b");
        s.insert(2, now + Duration::from_secs(5), "moved");
        s.remove(3);
        assert_eq!(s.next(), Some(now + Duration::from_secs(3)));
        assert_eq!(s.pop_due(now + Duration::from_secs(4)), ["c"]);
        assert_eq!(s.len(), 1);
        assert_eq!(s.pop_due(now + Duration::from_secs(5)), ["moved"]);
        assert_eq!(s.next(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_task_fires_each_deadline_once_and_honours_moves() {
        let (_trigger, signal) = shutdown::channel();
        let (tx, rx) = mpsc::channel();
        let timers = Timers::start(signal, move |v: &'static str| {
            let _ = tx.send((v, Instant::now()));
        });
        let start = Instant::now();
        timers.schedule(1u32, start + Duration::from_secs(10), "late");
        timers.schedule(2u32, start + Duration::from_secs(5), "early");
        timers.schedule(3u32, start + Duration::from_secs(7), "cancelled");
        timers.schedule(4u32, start + Duration::from_secs(8), "another's");
        // Only the value's owner cancels it.
        timers.cancel_if(3, |v| *v == "cancelled");
        timers.cancel_if(4, |v| *v == "not this one");
        timers.schedule(1u32, start + Duration::from_secs(20), "refreshed");
        tokio::time::sleep(Duration::from_secs(30)).await;
        let fired: Vec<(&str, Duration)> = rx.try_iter().map(|(v, at)| (v, at - start)).collect();
        assert_eq!(
            fired,
            [
                ("early", Duration::from_secs(5)),
                ("another's", Duration::from_secs(8)),
                ("refreshed", Duration::from_secs(20))
            ]
        );
        assert_eq!(timers.len(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_task_ends_at_shutdown() {
        let (trigger, signal) = shutdown::channel();
        let timers: Arc<Timers<u32, ()>> = Timers::start(signal, |()| {});
        trigger.trigger();
        tokio::time::sleep(Duration::from_millis(1)).await;
        // Only the test's handle is left once the task returned.
        assert_eq!(Arc::strong_count(&timers), 1);
    }
}
