//! The session driver's wake-up: a few bits saying what happened (frames were queued,
//! the session's state changed, the node is shutting down) and the one waker of the
//! driver's task.
//!
//! Why not a `tokio::sync::Notify` per reason: a `Notified` future is created, linked
//! into the notifier's waiter list and unlinked again at every step, and every poll of
//! one still waiting takes the notifier's mutex. A broadcast to a room wakes every
//! member's driver once per delivery, so those costs were paid per delivery; for the
//! node-wide shutdown signal, whose waiter list every driver joined at each step, the
//! mutex was also shared by every session on every worker thread. Here raising a bit
//! is one atomic `or` (and a wake only when a bit is newly set); the driver registers
//! its waker, which is a comparison when it has not changed, and takes the bits.
//!
//! The socket's read side is handed a waker of its own, which raises [`READ`]: the
//! driver polls the read side again only when that bit is up (or when its last poll
//! returned a message), not at every wake-up for a write.
//!
//! Only the driver's task waits on it ([`AtomicWaker`] holds one waker). A polling GET
//! or an SSE response, which are other tasks, wait on the session's `writer` notifier.

use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Waker;

use futures_util::task::AtomicWaker;

/// Frames were queued for a WebSocket: the driver writes them.
pub(crate) const WRITE: u8 = 1;
/// The session's state changed (closed, upgraded, a deadline moved, the final frames
/// were taken): the driver re-evaluates it.
pub(crate) const STATE: u8 = 2;
/// The node is shutting down: the driver closes the session.
pub(crate) const SHUTDOWN: u8 = 4;
/// The WebSocket may have something to read: raised by the waker the driver hands to
/// the socket's read side (the session itself, see `Session`'s `ArcWake`), so
/// that a wake-up for a write does not also poll the read side, which has nothing new.
pub(crate) const READ: u8 = 8;

/// Bits raised for the driver, and its waker.
#[derive(Debug, Default)]
pub(crate) struct Wake {
    bits: AtomicU8,
    waker: AtomicWaker,
}

impl Wake {
    /// Raises `bits` and wakes the driver if any of them was not raised yet (if all
    /// were, the driver was woken already and has not taken them).
    pub(crate) fn raise(&self, bits: u8) {
        // Raised already (a broadcast pushing to a driver that has not woken yet): a
        // read of the word, where a read-modify-write would take its cache line from
        // the driver's core. The driver takes the bits before it looks at the queue.
        if self.bits.load(Ordering::Acquire) & bits == bits {
            return;
        }
        let before = self.bits.fetch_or(bits, Ordering::AcqRel);
        if before & bits != bits {
            self.waker.wake();
        }
    }

    /// Raises `bits` without waking anyone: for the driver itself, which looks at the
    /// bits again before it sleeps ([`Self::register`]).
    pub(crate) fn leave(&self, bits: u8) {
        self.bits.fetch_or(bits, Ordering::AcqRel);
    }

    /// Whether any bit is raised (a plain read).
    pub(crate) fn is_raised(&self) -> bool {
        self.bits.load(Ordering::Relaxed) != 0
    }

    /// Takes (lowers) the raised bits among `mask` and returns them.
    pub(crate) fn take(&self, mask: u8) -> u8 {
        if self.bits.load(Ordering::Acquire) & mask == 0 {
            return 0;
        }
        self.bits.fetch_and(!mask, Ordering::AcqRel) & mask
    }

    /// Registers the driver's waker for the next [`Self::raise`], and returns whether
    /// any bit among `mask` is raised already (then the driver must look again before
    /// it sleeps: the bit may have been raised before the waker was registered).
    pub(crate) fn register(&self, waker: &Waker, mask: u8) -> bool {
        self.waker.register(waker);
        self.bits.load(Ordering::Acquire) & mask != 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake as StdWake;

    use super::*;

    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl StdWake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_raise_wakes_the_registered_waker_once_until_taken() {
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        let wake = Wake::default();
        assert!(!wake.register(&waker, WRITE | STATE));
        wake.raise(WRITE);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        // Raised already: no second wake-up for the same bit.
        assert!(!wake.register(&waker, 0));
        wake.raise(WRITE);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        // A new bit wakes again.
        wake.raise(STATE);
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
        assert_eq!(wake.take(WRITE | STATE | SHUTDOWN), WRITE | STATE);
        assert_eq!(wake.take(WRITE | STATE | SHUTDOWN), 0);
    }

    #[test]
    fn take_leaves_the_bits_outside_its_mask() {
        let wake = Wake::default();
        wake.raise(WRITE | SHUTDOWN);
        assert_eq!(wake.take(STATE | SHUTDOWN), SHUTDOWN);
        assert_eq!(wake.take(WRITE), WRITE);
    }

    #[test]
    fn a_raise_before_registering_is_seen_by_register() {
        let counter = Arc::new(Counter::default());
        let waker = Waker::from(counter.clone());
        let wake = Wake::default();
        wake.raise(STATE);
        assert!(wake.register(&waker, STATE), "the driver must look again");
        assert!(!wake.register(&waker, WRITE));
    }
}
