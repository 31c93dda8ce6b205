//! The node's queue of ordered writes to Redis (stream entries, session saves and
//! deletions), bounded in count and bytes, with at most one save per session waiting.
//!
//! Every change of a socket's rooms or data saves its session, so a client joining
//! and leaving rooms in a loop makes one save per change. Queued one by one, those
//! saves would fill the queue (100,000 writes) whenever the writer falls behind or
//! Redis is away, and every later write would be dropped: other clients' broadcasts
//! among them. Here a save made while the same session's last save still waits
//! replaces that one's value in place: the queue holds one place for it (a
//! placeholder, filled from [`WriteQueue`]'s map when the writer takes it), and
//! Redis gets the latest state once. A deletion takes the waiting save out, so a
//! save made after it is queued after it.
//!
//! A deletion of a session whose socket has left ([`WriteQueue::forget_at_once`]) is
//! not queued: it goes to Redis at once, beside the queue, so that it does not wait
//! behind the node's stream entries (see `streams::deleter`). It still takes the
//! waiting save out, and counts among the unsent bytes until Redis has it, or is
//! queued after all when it could not be sent so ([`Direct::queue`]). A save of that
//! session the writer already took, in a batch it holds (Redis failing, or too few
//! replicas), is taken out of that batch before the writer sends it again
//! ([`Taker::strip`]): the deletion's fence in Redis lasts a minute, and a batch may
//! be sent again for longer.
//!
//! No IO: the writer task owns the receiving end and a [`Taker`], whose
//! [`Taker::fill`] it calls on each batch it takes and [`Taker::sent`] once Redis has
//! it. The taker holds no sender, so the queue closes (and the writer ends) when the
//! node drops its [`WriteQueue`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

use super::Write;

/// What a waiting save will write: the latest value saved for its key.
#[derive(Debug)]
struct Saved {
    value: String,
    ttl: Duration,
    epoch: u64,
    /// Kept for its client to resume (its socket left): a live save of the same
    /// epoch, read before the socket left, must not replace it.
    fence: bool,
    /// The number of its placeholder ([`Write::SaveWaiting`]): a placeholder whose
    /// save was forgotten must not take the value of a save queued after the
    /// deletion.
    seq: u64,
}

/// The sending half of the node's write queue.
#[derive(Debug)]
pub(super) struct WriteQueue {
    tx: mpsc::Sender<Write>,
    shared: Arc<Shared>,
}

/// The writer's half beside the receiver: fills the saves it takes and gives back
/// the bytes of what it sent.
#[derive(Debug)]
pub(super) struct Taker {
    shared: Arc<Shared>,
}

/// A deletion written to Redis beside the queue ([`WriteQueue::forget_at_once`]):
/// counted among the queue's unsent bytes while it lives.
#[derive(Debug)]
pub(super) struct Direct {
    key: String,
    epoch: u64,
    bytes: usize,
    /// For [`Direct::queue`]. Its sender keeps the queue open only as long as the one
    /// write to Redis this lives for.
    queue: WriteQueue,
}

impl Direct {
    /// The session's key.
    pub(super) fn key(&self) -> &str {
        &self.key
    }

    /// The epoch of the socket that left.
    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// It could not be written at once (Redis did not take it, or the deleter was a
    /// whole channel behind, failing, or gone): the deletion is queued after all
    /// (fenced, as it was meant), for the writer to send in order, retrying until
    /// Redis has it. False when the queue is full and it was dropped.
    pub(super) fn queue(mut self) -> bool {
        let key = std::mem::take(&mut self.key);
        self.queue.forget(key, self.epoch, true)
    }
}

impl Drop for Direct {
    /// Written, queued or dropped: no longer unsent here.
    fn drop(&mut self) {
        self.queue.release(self.bytes);
    }
}

#[derive(Debug)]
struct Shared {
    /// Bytes queued and not yet sent, the waiting saves' values included.
    queued_bytes: AtomicUsize,
    max_bytes: usize,
    /// The values of the saves waiting in the queue, by session key: at most one per
    /// key. Locked while a save or deletion is queued and while the writer fills a
    /// batch, so a placeholder and its value never disagree.
    saves: Mutex<HashMap<String, Saved>>,
    /// The number of the next placeholder.
    next_seq: AtomicU64,
    /// The saves of the batch the writer holds, and the deletions written at once
    /// since it took them. Locked after `saves` when both are.
    held: Mutex<Held>,
}

/// The batch the writer took and has not yet seen Redis take, as far as deletions
/// written at once care: at most one entry per save in it (a batch is at most 256
/// writes), so bounded however long Redis keeps failing.
#[derive(Debug, Default)]
struct Held {
    /// The key and epoch of each save in the batch.
    saves: HashMap<String, u64>,
    /// The latest epoch deleted at once, since the batch was taken, of each key in
    /// `saves`: its saves of that epoch or older are not to be sent again.
    deleted: HashMap<String, u64>,
}

impl Held {
    /// A new batch, or none: nothing is held.
    fn clear(&mut self) {
        self.saves.clear();
        self.deleted.clear();
    }
}

impl Shared {
    fn lock_saves(&self) -> MutexGuard<'_, HashMap<String, Saved>> {
        self.saves.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `bytes` of the byte budget; false when they do not fit.
    fn reserve(&self, bytes: usize) -> bool {
        self.queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                queued
                    .checked_add(bytes)
                    .filter(|total| *total <= self.max_bytes)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        self.queued_bytes.fetch_sub(bytes, Ordering::AcqRel);
    }
}

impl WriteQueue {
    /// A queue of at most `max_writes` writes and `max_bytes` bytes, with the writer's
    /// taker and receiver.
    pub(super) fn new(max_writes: usize, max_bytes: usize) -> (Self, Taker, mpsc::Receiver<Write>) {
        let (tx, rx) = mpsc::channel(max_writes);
        let shared = Arc::new(Shared {
            queued_bytes: AtomicUsize::new(0),
            max_bytes,
            saves: Mutex::default(),
            next_seq: AtomicU64::new(0),
            held: Mutex::default(),
        });
        let taker = Taker {
            shared: shared.clone(),
        };
        (WriteQueue { tx, shared }, taker, rx)
    }

    fn lock_saves(&self) -> MutexGuard<'_, HashMap<String, Saved>> {
        self.shared.lock_saves()
    }

    /// Bytes of writes queued or being sent, not yet taken by Redis (0: everything
    /// queued so far is written).
    pub(super) fn unsent_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Acquire)
    }

    fn reserve(&self, bytes: usize) -> bool {
        self.shared.reserve(bytes)
    }

    fn release(&self, bytes: usize) {
        self.shared.release(bytes);
    }

    /// Queues `write`, counting `bytes` for it; false when the queue is full (in count
    /// or bytes) and nothing was queued.
    fn queue(&self, write: Write, bytes: usize) -> bool {
        if !self.reserve(bytes) {
            return false;
        }
        if self.tx.try_send(write).is_err() {
            self.release(bytes);
            return false;
        }
        true
    }

    /// Queues a stream entry (or any write that is not a save); false when it was
    /// dropped.
    pub(super) fn push(&self, write: Write) -> bool {
        let bytes = write.bytes();
        self.queue(write, bytes)
    }

    /// Queues a save of `value` under `key`, or, when a save of `key` still waits,
    /// replaces what that one will write. False when it was dropped (the queue full,
    /// or a larger value not fitting the byte budget; the waiting save then writes
    /// its older value).
    pub(super) fn save(
        &self,
        key: String,
        value: String,
        ttl: Duration,
        epoch: u64,
        fence: bool,
    ) -> bool {
        let mut saves = self.lock_saves();
        if let Some(waiting) = saves.get_mut(&key) {
            if waiting.epoch > epoch || (waiting.fence && !fence && waiting.epoch == epoch) {
                // Redis would refuse it after the waiting one ([`super::SAVE_SESSION`]).
                return true;
            }
            let (old, new) = (waiting.value.len(), value.len());
            if new > old && !self.reserve(new - old) {
                return false;
            }
            self.release(old.saturating_sub(new));
            waiting.value = value;
            waiting.ttl = ttl;
            waiting.epoch = epoch;
            waiting.fence = fence;
            return true;
        }
        let bytes = key.len() + value.len();
        let seq = self.shared.next_seq.fetch_add(1, Ordering::Relaxed);
        let placeholder = Write::SaveWaiting {
            key: key.clone(),
            seq,
        };
        if !self.queue(placeholder, bytes) {
            return false;
        }
        let saved = Saved {
            value,
            ttl,
            epoch,
            fence,
            seq,
        };
        saves.insert(key, saved);
        true
    }

    /// Queues the deletion of the session under `key`; a save of it still waiting
    /// writes nothing (its placeholder is dropped when the writer takes it). False
    /// when the deletion was dropped (the waiting save is gone all the same).
    pub(super) fn forget(&self, key: String, epoch: u64, fence: bool) -> bool {
        let mut saves = self.lock_saves();
        self.withdraw(&mut saves, &key, epoch);
        let write = Write::Forget { key, epoch, fence };
        let bytes = write.bytes();
        self.queue(write, bytes)
    }

    /// Takes out the waiting save of the session under `key` (as [`WriteQueue::forget`]
    /// does) for a deletion its caller writes to Redis itself, at once: the deletion
    /// counts among the unsent bytes (a drain waits for it) until the [`Direct`] is
    /// dropped, or queued with [`Direct::queue`] when it could not be written so.
    ///
    /// A save of the session in the batch the writer holds is not sent again
    /// ([`Taker::strip`]).
    ///
    /// Only for a deletion that fences (its socket left): nothing then depends on its
    /// order with this queue's writes of the same session ([`super::FORGET_SESSION`]).
    pub(super) fn forget_at_once(&self, key: String, epoch: u64) -> Direct {
        {
            // Under the lock the writer fills a batch under: the save is either still
            // waiting (taken out here) or in the batch the writer holds (marked here).
            let mut saves = self.lock_saves();
            self.withdraw(&mut saves, &key, epoch);
            let mut held = self.shared.lock_held();
            if held.saves.contains_key(&key) {
                let deleted = held.deleted.entry(key.clone()).or_default();
                *deleted = (*deleted).max(epoch);
            }
        }
        let bytes = key.len();
        // Not held to the budget: the deletion is in flight, not kept here, and a full
        // queue must not keep a client's deletion from Redis.
        self.shared.queued_bytes.fetch_add(bytes, Ordering::AcqRel);
        Direct {
            key,
            epoch,
            bytes,
            queue: WriteQueue {
                tx: self.tx.clone(),
                shared: self.shared.clone(),
            },
        }
    }

    /// Takes the waiting save of `key` out of the queue, unless it is of a later epoch
    /// than `epoch`: Redis would ignore a deletion of `epoch` after it
    /// ([`super::FORGET_SESSION`]).
    fn withdraw(&self, saves: &mut HashMap<String, Saved>, key: &str, epoch: u64) {
        if saves.get(key).is_some_and(|waiting| waiting.epoch <= epoch)
            && let Some(waiting) = saves.remove(key)
        {
            self.release(waiting.value.len());
        }
    }

    /// Bytes queued and not yet sent.
    #[cfg(test)]
    fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes.load(Ordering::Acquire)
    }
}

impl Taker {
    /// Turns each save placeholder of `batch`, just taken from the receiver, into the
    /// save of its latest value, and drops those whose session was forgotten since
    /// (releasing their bytes).
    pub(super) fn fill(&self, batch: &mut Vec<Write>) {
        let mut saves = self.shared.lock_saves();
        batch.retain_mut(|write| {
            let Write::SaveWaiting { key, seq } = write else {
                return true;
            };
            match saves.remove_entry(key.as_str()) {
                Some((key, saved)) if saved.seq == *seq => {
                    *write = Write::SaveSession {
                        key,
                        value: saved.value,
                        ttl: saved.ttl,
                        epoch: saved.epoch,
                        fence: saved.fence,
                    };
                    true
                }
                other => {
                    // Forgotten since; a save queued after the deletion has a later
                    // placeholder of its own.
                    if let Some((key, saved)) = other {
                        saves.insert(key, saved);
                    }
                    self.shared.release(key.len());
                    false
                }
            }
        });
        // A backlog (Redis slow or away) grew the map to up to 100,000 waiting saves:
        // its table is given back once they went.
        switchboard_engine::capacity::give_back(&mut *saves, 1024);
        // Still under the saves lock: a deletion written at once from now on finds
        // its session's save here, not in the map.
        let mut held = self.shared.lock_held();
        held.clear();
        for write in batch.iter() {
            if let Write::SaveSession { key, epoch, .. } = write {
                let held_epoch = held.saves.entry(key.clone()).or_default();
                *held_epoch = (*held_epoch).max(*epoch);
            }
        }
    }

    /// Takes out of `batch`, the batch the writer holds, each save of a session
    /// deleted at once since it was filled ([`WriteQueue::forget_at_once`]) for the
    /// socket of the save's epoch or a later one; its bytes leave the budget. The
    /// save keeps its place as a [`Write::Withdrawn`] (the entries' run numbers).
    ///
    /// Why: that deletion fences the socket's later saves for a minute
    /// ([`super::FORGET_FENCE`]), while a batch Redis keeps failing (too few replicas
    /// acknowledge it, or Redis is away) is sent again for as long as that lasts; once
    /// the fence expired, the next try saved the session again with its whole life,
    /// and a client that had ended it was resumed by another node.
    pub(super) fn strip(&self, batch: &mut [Write]) {
        let held = self.shared.lock_held();
        if held.deleted.is_empty() {
            return;
        }
        for write in batch.iter_mut() {
            let Write::SaveSession {
                key, value, epoch, ..
            } = write
            else {
                continue;
            };
            if held
                .deleted
                .get(key)
                .is_some_and(|deleted| *epoch <= *deleted)
            {
                let value_bytes = value.len();
                let key = std::mem::take(key);
                *write = Write::Withdrawn { key };
                // What the batch still counts for it is its key's.
                self.shared.release(value_bytes);
            }
        }
    }

    /// `batch`, filled, is in Redis: its bytes leave the budget.
    pub(super) fn sent(&self, batch: &[Write]) {
        self.shared.lock_held().clear();
        self.shared.release(batch.iter().map(Write::bytes).sum());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taken((taker, rx): &mut (Taker, mpsc::Receiver<Write>)) -> Vec<Write> {
        let mut batch = Vec::new();
        while let Ok(write) = rx.try_recv() {
            batch.push(write);
        }
        taker.fill(&mut batch);
        batch
    }

    /// `batch` is in Redis: every byte the queue counted is given back.
    fn all_sent(w: &(Taker, mpsc::Receiver<Write>), queue: &WriteQueue, batch: &[Write]) {
        w.0.sent(batch);
        assert_eq!(queue.queued_bytes(), 0, "every byte counted is given back");
    }

    fn queue(max_writes: usize, max_bytes: usize) -> (WriteQueue, (Taker, mpsc::Receiver<Write>)) {
        let (queue, taker, rx) = WriteQueue::new(max_writes, max_bytes);
        (queue, (taker, rx))
    }

    fn saved(write: &Write) -> Option<(&str, &str, u64)> {
        match write {
            Write::SaveSession {
                key, value, epoch, ..
            } => Some((key, value, *epoch)),
            _ => None,
        }
    }

    fn entry(n: u32) -> Write {
        Write::Entry(vec![("n", n.to_string())], None)
    }

    const TTL: Duration = Duration::from_secs(60);

    /// A socket changing rooms 10,000 times while the writer is behind takes one place
    /// in the queue, whose capacity (here 4) the changes never reach; Redis gets the
    /// last state once, and entries queued meanwhile keep their order and places.
    #[test]
    fn saves_of_one_session_wait_as_one_write_of_the_latest_value() {
        let (queue, mut w) = queue(4, 1 << 20);
        assert!(queue.push(entry(1)));
        for i in 0..10_000 {
            assert!(
                queue.save("s:a".into(), format!("v{i}"), TTL, 7, false),
                "save {i}"
            );
        }
        assert!(queue.save("s:b".into(), "b".into(), TTL, 1, false));
        assert!(queue.push(entry(2)));
        let batch = taken(&mut w);
        assert_eq!(batch.len(), 4);
        assert_eq!(saved(&batch[1]), Some(("s:a", "v9999", 7)));
        assert_eq!(saved(&batch[2]), Some(("s:b", "b", 1)));
        assert!(matches!(&batch[3], Write::Entry(fields, _) if fields[0].1 == "2"));
        all_sent(&w, &queue, &batch);

        // Taken by the writer: the next save is a new write, queued after.
        assert!(queue.save("s:a".into(), "later".into(), TTL, 7, false));
        let batch = taken(&mut w);
        assert_eq!(batch.len(), 1);
        assert_eq!(saved(&batch[0]), Some(("s:a", "later", 7)));
        all_sent(&w, &queue, &batch);
    }

    /// A deletion wins over the save waiting before it, and a save after the deletion
    /// is written after it: the order of the calls is the order in Redis.
    #[test]
    fn a_forget_takes_the_waiting_save_out_and_a_later_save_follows_it() {
        let (queue, mut w) = queue(16, 1 << 20);
        assert!(queue.save("s:a".into(), "before".into(), TTL, 1, false));
        assert!(queue.forget("s:a".into(), 1, true));
        let batch = taken(&mut w);
        assert_eq!(batch.len(), 1, "the save's placeholder is dropped");
        assert!(matches!(&batch[0], Write::Forget { key, .. } if key == "s:a"));
        all_sent(&w, &queue, &batch);

        assert!(queue.save("s:a".into(), "one".into(), TTL, 1, false));
        assert!(queue.forget("s:a".into(), 1, true));
        assert!(queue.save("s:a".into(), "two".into(), TTL, 2, false));
        let batch = taken(&mut w);
        assert_eq!(batch.len(), 2);
        assert!(matches!(&batch[0], Write::Forget { .. }));
        assert_eq!(saved(&batch[1]), Some(("s:a", "two", 2)));
        all_sent(&w, &queue, &batch);
    }

    /// A deletion written at once takes the waiting save out as a queued one does (a
    /// save of a later epoch stays), is counted as unsent until it is done with, and
    /// when Redis did not take it is queued after what was queued meanwhile.
    #[test]
    fn a_deletion_written_at_once_takes_the_waiting_save_out_and_is_counted_until_done() {
        let (queue, mut w) = queue(16, 1 << 20);
        assert!(queue.save("s:a".into(), "live".into(), TTL, 1, false));
        assert!(queue.save("s:b".into(), "taken since".into(), TTL, 5, false));
        let a = queue.forget_at_once("s:a".into(), 1);
        let b = queue.forget_at_once("s:b".into(), 4);
        // s:a's placeholder (its key, until the writer takes it), s:b's save, and both
        // deletions in flight.
        let waiting = 3 + (3 + "taken since".len());
        assert_eq!(queue.queued_bytes(), waiting + 3 + 3);
        drop(a);
        assert_eq!(queue.queued_bytes(), waiting + 3, "a is in Redis");
        assert!(queue.push(entry(1)));
        let entry_bytes = entry(1).bytes();
        assert!(b.queue(), "queued after all");
        assert_eq!(
            queue.queued_bytes(),
            waiting + entry_bytes + 3,
            "b's bytes are the queued deletion's now"
        );
        let batch = taken(&mut w);
        assert_eq!(batch.len(), 3, "s:a's save is gone: {batch:?}");
        assert_eq!(saved(&batch[0]), Some(("s:b", "taken since", 5)));
        assert!(matches!(&batch[1], Write::Entry(..)));
        assert!(matches!(
            &batch[2],
            Write::Forget { key, epoch: 4, fence: true } if key == "s:b"
        ));
        all_sent(&w, &queue, &batch);
    }

    /// A save the writer holds in a batch it sends again (Redis failing, too few
    /// replicas) is taken out of it once its session is deleted at once for the
    /// socket of its epoch or a later one: its place stays (so the entries around it
    /// keep their run numbers), its value's bytes leave the budget; other sessions'
    /// saves, and a save of a later epoch (the session taken since), stay. Once the
    /// batch is in Redis nothing is held, and a deletion marks no later batch.
    #[test]
    fn a_save_in_the_batch_the_writer_holds_is_taken_out_when_its_session_is_deleted_at_once() {
        let runs = |batch: &[Write]| {
            super::super::WriteTarget::new(&crate::ClusterConfig::default(), "n")
                .pipeline(batch, 0, false)
                .1
        };
        let (queue, mut w) = queue(16, 1 << 20);
        assert!(queue.push(entry(1)));
        assert!(queue.save("s:a".into(), "live".into(), TTL, 1, false));
        assert!(queue.save("s:b".into(), "other".into(), TTL, 1, false));
        assert!(queue.save("s:c".into(), "taken since".into(), TTL, 5, false));
        assert!(queue.push(entry(2)));
        let mut batch = taken(&mut w);
        w.0.strip(&mut batch);
        assert_eq!(
            saved(&batch[1]),
            Some(("s:a", "live", 1)),
            "nothing deleted yet"
        );
        assert_eq!(runs(&batch), 2);
        let before = queue.queued_bytes();
        // Both written to Redis at once (dropped: done).
        drop(queue.forget_at_once("s:a".into(), 1));
        drop(queue.forget_at_once("s:c".into(), 4));
        assert_eq!(queue.queued_bytes(), before, "nothing taken out yet");
        w.0.strip(&mut batch);
        assert!(matches!(&batch[1], Write::Withdrawn { key } if key == "s:a"));
        assert_eq!(saved(&batch[2]), Some(("s:b", "other", 1)));
        assert_eq!(saved(&batch[3]), Some(("s:c", "taken since", 5)));
        assert_eq!(queue.queued_bytes(), before - "live".len());
        assert_eq!(runs(&batch), 2, "the entries' runs are as they were");
        all_sent(&w, &queue, &batch);

        // Nothing held: the next batch's save of s:b stays, though s:b was deleted
        // (at once) while no batch held it.
        drop(queue.forget_at_once("s:b".into(), 1));
        assert!(queue.save("s:b".into(), "resumed".into(), TTL, 3, false));
        let mut batch = taken(&mut w);
        w.0.strip(&mut batch);
        assert_eq!(saved(&batch[0]), Some(("s:b", "resumed", 3)));
        all_sent(&w, &queue, &batch);
    }

    /// Epochs keep Redis' order (a later take of the session wins): a save or deletion
    /// of an older epoch leaves a waiting save of a newer one as it is.
    #[test]
    fn an_older_epoch_never_replaces_or_removes_a_newer_save() {
        let (queue, mut w) = queue(16, 1 << 20);
        assert!(queue.save("s:a".into(), "new".into(), TTL, 2, false));
        assert!(queue.save("s:a".into(), "old".into(), TTL, 1, false));
        assert!(queue.forget("s:a".into(), 1, true));
        let batch = taken(&mut w);
        assert_eq!(saved(&batch[0]), Some(("s:a", "new", 2)));
        assert!(matches!(&batch[1], Write::Forget { epoch: 1, .. }));
        all_sent(&w, &queue, &batch);
    }

    /// A waiting save of a socket that left (kept for its client to resume) is not
    /// replaced by a live save of the same epoch queued after it (the refresh, which
    /// read the socket before it left); a live save it follows is replaced by it.
    #[test]
    fn a_live_save_never_replaces_a_waiting_save_of_its_socket_that_left() {
        let (queue, mut w) = queue(16, 1 << 20);
        assert!(queue.save("s:a".into(), "live".into(), TTL, 3, false));
        assert!(queue.save("s:a".into(), "kept".into(), TTL, 3, true));
        assert!(queue.save("s:a".into(), "stale refresh".into(), TTL, 3, false));
        let batch = taken(&mut w);
        assert_eq!(saved(&batch[0]), Some(("s:a", "kept", 3)));
        assert!(matches!(&batch[0], Write::SaveSession { fence: true, .. }));
        all_sent(&w, &queue, &batch);
    }

    /// The byte budget counts a waiting save's current value: a larger value that does
    /// not fit is dropped (the waiting one stays), a smaller one gives bytes back.
    #[test]
    fn a_waiting_save_is_counted_at_its_current_size() {
        let (queue, mut w) = queue(16, 100);
        assert!(queue.save("k".into(), "x".repeat(50), TTL, 1, false));
        assert_eq!(queue.queued_bytes(), 51);
        assert!(
            !queue.save("k".into(), "y".repeat(200), TTL, 1, false),
            "over the budget"
        );
        assert_eq!(queue.queued_bytes(), 51);
        assert!(queue.save("k".into(), "z".repeat(10), TTL, 1, false));
        assert_eq!(queue.queued_bytes(), 11);
        assert!(!queue.push(Write::Entry(vec![("d", "e".repeat(95))], None)));
        let batch = taken(&mut w);
        assert_eq!(saved(&batch[0]), Some(("k", "zzzzzzzzzz", 1)));
        all_sent(&w, &queue, &batch);
    }
}
