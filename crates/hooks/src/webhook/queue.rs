//! The bounded queue between [`deliver`](crate::HookSink::deliver) and the delivery
//! workers, with the overflow policy applied on push.
//!
//! A `std` mutex around a `VecDeque`: pushes come from synchronous code (the engine's
//! callbacks) and every critical section is a push or a pop, never held across an
//! `await`, so an async mutex would only add cost. `Notify` wakes an idle worker; its
//! stored permit means a push between a worker's empty pop and its wait is not lost.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::settings::OverflowPolicy;

/// One lifecycle event on its way to the backend.
#[derive(Debug)]
pub(crate) struct Job {
    /// The idempotency key, also in the body.
    pub(crate) id: String,
    /// The body's `type`.
    pub(crate) kind: &'static str,
    /// The exact body, the same bytes on every attempt.
    pub(crate) body: Bytes,
    /// When `deliver` was called, for the latency histogram.
    pub(crate) queued_at: Instant,
    /// Attempts made so far.
    pub(crate) attempts: u32,
    /// The last attempt's HTTP status, if it got one.
    pub(crate) last_status: Option<u16>,
    /// The last attempt's error, if it failed without a status.
    pub(crate) last_error: Option<String>,
    /// When the event was queued, for the dead-letter record.
    pub(crate) queued_wall: SystemTime,
    /// For a room job, the socket whose join or leave made it.
    pub(crate) source: Option<Box<str>>,
}

impl Job {
    pub(crate) fn new(id: String, kind: &'static str, body: Bytes) -> Self {
        Job {
            id,
            kind,
            body,
            queued_at: Instant::now(),
            attempts: 0,
            last_status: None,
            last_error: None,
            queued_wall: SystemTime::now(),
            source: None,
        }
    }

    /// The same job, made by the socket `source` (a room job's).
    pub(crate) fn made_by(mut self, source: Option<&str>) -> Self {
        self.source = source.map(Box::from);
        self
    }
}

/// The result of a push: queued, or one job lost to the overflow policy (the new one
/// under `drop_newest`, the evicted oldest under `drop_oldest`).
#[derive(Debug)]
pub(crate) enum Push {
    Queued,
    Overflow(Job),
    /// A room job of a socket that already has [`ROOM_JOBS_PER_SOCKET`] queued: one
    /// client churning rooms, whose events are counted but not dead-lettered (kept,
    /// they rotated the dead letters an operator replays out of the file and the list).
    Capped,
}

/// Whether a job is a room's (`room_occupied`, `room_vacated`): a client makes those
/// by joining and leaving rooms, as fast as its rate limit lets it (with none set, as
/// fast as it sends), so they may hold only [`ROOM_SHARE`] of the queue.
fn is_room(kind: &str) -> bool {
    matches!(kind, "room_occupied" | "room_vacated")
}

/// The part of the queue room jobs may hold (one half): a flood of joins and leaves
/// fills that part and loses the newest room events, while `connection` and
/// `disconnection` events still find room.
const ROOM_SHARE: usize = 2;

/// Most room jobs of one socket in the queue at once. A socket is in at most
/// `rooms.max_per_socket` rooms (100 by default), so an honest one whose rooms all
/// became occupied and then empty while the backend was slow has about this many; one
/// joining and leaving made-up rooms in a loop loses its own newest room events past
/// it, not the room share every other socket's events need.
pub(crate) const ROOM_JOBS_PER_SOCKET: usize = 256;

/// A bounded FIFO of jobs, room jobs within their share of it.
#[derive(Debug)]
pub(crate) struct Queue {
    jobs: Mutex<Jobs>,
    capacity: usize,
    policy: OverflowPolicy,
    ready: Notify,
}

impl Queue {
    pub(crate) fn new(capacity: usize, policy: OverflowPolicy) -> Self {
        Queue {
            // Grows on demand up to `capacity`; an idle sink holds no slots.
            jobs: Mutex::default(),
            capacity: capacity.max(1),
            policy,
            ready: Notify::new(),
        }
    }

    /// Queues `job`, applying the overflow policy when full. Never waits. A room job
    /// past its share is refused whatever the policy (and evicts nothing); one within
    /// it is queued, or evicts the oldest job under `drop_oldest`, like any other.
    pub(crate) fn push(&self, job: Job) -> Push {
        let outcome = {
            let mut jobs = self.lock();
            if is_room(job.kind) && jobs.of_source(&job) >= ROOM_JOBS_PER_SOCKET {
                return Push::Capped;
            }
            if is_room(job.kind) && jobs.rooms >= self.capacity.div_ceil(ROOM_SHARE) {
                return Push::Overflow(job);
            }
            if jobs.queue.len() < self.capacity {
                jobs.push_back(job);
                Push::Queued
            } else {
                match self.policy {
                    OverflowPolicy::DropNewest => return Push::Overflow(job),
                    OverflowPolicy::DropOldest => {
                        let evicted = jobs.pop_front();
                        jobs.push_back(job);
                        match evicted {
                            Some(old) => Push::Overflow(old),
                            None => Push::Queued,
                        }
                    }
                }
            }
        };
        self.ready.notify_one();
        outcome
    }

    /// The oldest job, if any. Wakes another worker when more are waiting, since one
    /// notification may stand for several pushes.
    pub(crate) fn pop(&self) -> Option<Job> {
        let (job, more) = {
            let mut jobs = self.lock();
            let job = jobs.pop_front();
            (job, !jobs.queue.is_empty())
        };
        if more {
            self.ready.notify_one();
        }
        job
    }

    /// Takes every queued job (shutdown).
    pub(crate) fn take_all(&self) -> Vec<Job> {
        let mut jobs = self.lock();
        jobs.rooms = 0;
        jobs.by_source.clear();
        jobs.queue.drain(..).collect()
    }

    /// Resolves after a push (or at once if a push happened since the last wait).
    pub(crate) async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Jobs waiting now.
    pub(crate) fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// A poisoned lock only means another thread panicked between two plain
    /// `VecDeque` operations; the deque itself is still consistent.
    fn lock(&self) -> MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The jobs, how many of them are room jobs, and how many each socket made (only
/// sockets with a room job queued have an entry).
#[derive(Debug, Default)]
struct Jobs {
    queue: VecDeque<Job>,
    rooms: usize,
    by_source: HashMap<Box<str>, usize>,
}

impl Jobs {
    /// How many room jobs the socket that made `job` has queued.
    fn of_source(&self, job: &Job) -> usize {
        job.source
            .as_deref()
            .and_then(|s| self.by_source.get(s))
            .copied()
            .unwrap_or(0)
    }

    fn push_back(&mut self, job: Job) {
        if is_room(job.kind) {
            self.rooms += 1;
            if let Some(source) = &job.source {
                *self.by_source.entry(source.clone()).or_default() += 1;
            }
        }
        self.queue.push_back(job);
    }

    fn pop_front(&mut self) -> Option<Job> {
        let job = self.queue.pop_front()?;
        if is_room(job.kind) {
            self.rooms -= 1;
            if let Some(source) = job.source.as_deref()
                && let Some(n) = self.by_source.get_mut(source)
            {
                *n -= 1;
                if *n == 0 {
                    self.by_source.remove(source);
                }
            }
        }
        Some(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u32) -> Job {
        Job::new(format!("evt_{n}"), "connection", Bytes::new())
    }

    fn ids(jobs: Vec<Job>) -> Vec<String> {
        jobs.into_iter().map(|j| j.id).collect()
    }

    #[test]
    fn drop_newest_refuses_the_new_job() {
        let q = Queue::new(2, OverflowPolicy::DropNewest);
        assert!(matches!(q.push(job(1)), Push::Queued));
        assert!(matches!(q.push(job(2)), Push::Queued));
        assert!(matches!(q.push(job(3)), Push::Overflow(j) if j.id == "evt_3"));
        assert_eq!(ids(q.take_all()), vec!["evt_1", "evt_2"]);
    }

    /// Room events may fill half the queue: past that the newest room event is lost,
    /// under either policy, and a connection event still finds room (and, under
    /// `drop_oldest`, evicts the oldest job, a room event here).
    #[test]
    fn room_events_hold_half_the_queue_at_most() {
        for policy in [OverflowPolicy::DropNewest, OverflowPolicy::DropOldest] {
            let q = Queue::new(4, policy);
            let room = |n: u32| Job::new(format!("room_{n}"), "room_occupied", Bytes::new());
            assert!(matches!(q.push(room(1)), Push::Queued));
            assert!(matches!(q.push(room(2)), Push::Queued));
            assert!(
                matches!(q.push(room(3)), Push::Overflow(j) if j.id == "room_3"),
                "{policy:?}"
            );
            assert!(matches!(q.push(job(1)), Push::Queued));
            assert!(matches!(q.push(job(2)), Push::Queued));
            assert_eq!(q.pop().map(|j| j.id), Some("room_1".to_owned()));
            assert!(
                matches!(q.push(room(4)), Push::Queued),
                "room again once one left"
            );
            assert_eq!(
                ids(q.take_all()),
                vec!["room_2", "evt_1", "evt_2", "room_4"]
            );
            assert!(
                matches!(q.push(room(5)), Push::Queued),
                "{policy:?}: counts reset"
            );
        }
    }

    /// One socket's room jobs stop at [`ROOM_JOBS_PER_SOCKET`] while another
    /// socket's still find room in the share, under either policy; its count falls as
    /// its jobs leave the queue, and its entry goes with its last one.
    #[test]
    fn one_sockets_room_events_hold_their_own_share_at_most() {
        for policy in [OverflowPolicy::DropNewest, OverflowPolicy::DropOldest] {
            let q = Queue::new(4 * ROOM_JOBS_PER_SOCKET, policy);
            let room = |by: &str, n: usize| {
                Job::new(format!("{by}_{n}"), "room_vacated", Bytes::new()).made_by(Some(by))
            };
            for n in 0..ROOM_JOBS_PER_SOCKET {
                assert!(matches!(q.push(room("a", n)), Push::Queued));
            }
            assert!(matches!(q.push(room("a", 999)), Push::Capped), "{policy:?}");
            assert!(matches!(q.push(room("b", 0)), Push::Queued), "{policy:?}");
            assert_eq!(q.pop().map(|j| j.id), Some("a_0".to_owned()));
            assert!(matches!(q.push(room("a", 1000)), Push::Queued), "one left");
            assert_eq!(q.take_all().len(), ROOM_JOBS_PER_SOCKET + 1);
            assert!(q.lock().by_source.is_empty());
            q.push(room("c", 0));
            assert_eq!(q.pop().map(|j| j.id), Some("c_0".to_owned()));
            assert!(
                q.lock().by_source.is_empty(),
                "{policy:?}: the entry goes with the job"
            );
        }
    }

    #[test]
    fn drop_oldest_evicts_the_head() {
        let q = Queue::new(2, OverflowPolicy::DropOldest);
        q.push(job(1));
        q.push(job(2));
        assert!(matches!(q.push(job(3)), Push::Overflow(j) if j.id == "evt_1"));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop().map(|j| j.id), Some("evt_2".to_owned()));
        assert_eq!(ids(q.take_all()), vec!["evt_3"]);
    }
}
