//! The shutdown signal: one value created by the owner (e.g. `main`), cloned into every
//! accept loop and connection driver, each of which `select!`s on it; and the plan of
//! the paced drain that precedes it ([`DrainPlan`], run by
//! [`EngineServer::drain`](crate::eio::EngineServer::drain)).
//!
//! A graceful stop has two steps. The drain closes the sessions in paced batches while
//! everything keeps serving (existing sessions' requests, forwarded ones, the API),
//! new handshakes being refused; then the [`ShutdownTrigger`] stops the accept loops
//! and closes whatever is left at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

/// Sessions closed per batch. Every closed client reconnects (to another node, in a
/// rolling restart) about a second later; 500 every 50 ms is 10,000 reconnections a
/// second, under what one node was measured to take (16,000 connect cycles a second,
/// BENCHMARKS.md), so even a single surviving node absorbs the wave.
pub const DEFAULT_DRAIN_BATCH: usize = 500;
/// Pause between batches (see [`DEFAULT_DRAIN_BATCH`]); with both defaults the
/// default `max_connections` (19,000) drains in under 2 s.
pub const DEFAULT_DRAIN_INTERVAL: Duration = Duration::from_millis(50);
/// How long the drain may take before it closes every remaining session at once:
/// inside Kubernetes' default 30 s grace period with room for the rest of shutdown.
pub const DEFAULT_DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// How to drain the sessions of a node that is going away: close `batch_size` of them,
/// wait `interval`, close the next batch, and so on; whatever is still open once
/// `deadline` has passed (counted from the start of the drain) is closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainPlan {
    /// Sessions closed per batch (0 counts as 1).
    pub batch_size: usize,
    /// Pause between two batches.
    pub interval: Duration,
    /// Longest the whole drain may take.
    pub deadline: Duration,
}

impl Default for DrainPlan {
    fn default() -> Self {
        DrainPlan {
            batch_size: DEFAULT_DRAIN_BATCH,
            interval: DEFAULT_DRAIN_INTERVAL,
            deadline: DEFAULT_DRAIN_DEADLINE,
        }
    }
}

/// How a drain went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DrainReport {
    /// Batches closed before the deadline.
    pub batches: usize,
    /// Sessions closed in those batches.
    pub paced: usize,
    /// Sessions still open at the deadline, closed then all at once.
    pub at_deadline: usize,
    /// Sessions closed but not yet finished (still flushing their last frames) when
    /// the drain returned.
    pub unfinished: usize,
    /// Upgrades this node relays whose client had not sent its `upgrade` packet yet
    /// when the drain returned: the shutdown that follows ends them mid-upgrade, and
    /// those clients wait for their ping timeout before they reconnect.
    pub relayed_upgrades_unfinished: usize,
}

impl DrainReport {
    /// Whether every session was closed in a batch and finished, and every relayed
    /// upgrade got past its client's `upgrade` packet, before the deadline.
    pub fn in_time(&self) -> bool {
        self.at_deadline == 0 && self.unfinished == 0 && self.relayed_upgrades_unfinished == 0
    }
}

/// Triggers shutdown. Dropping it also triggers shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger(Arc<Signal>);

/// Observes shutdown; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(Arc<Signal>);

/// What a trigger and its signals share: a flag, a [`Notify`] for the loops that wait
/// on it, and the listeners run at the trigger. Sessions' drivers do not wait on the
/// `Notify` (thousands of waiters on one list, re-linked at every step); the engine
/// registers one listener that wakes each of them ([`Shutdown::on_trigger`]).
#[derive(Default)]
struct Signal {
    triggered: AtomicBool,
    notify: Notify,
    listeners: Mutex<Vec<Listener>>,
}

/// A function run once when shutdown is triggered.
type Listener = Box<dyn FnOnce() + Send>;

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            .field("triggered", &self.triggered)
            .finish_non_exhaustive()
    }
}

fn lock(listeners: &Mutex<Vec<Listener>>) -> MutexGuard<'_, Vec<Listener>> {
    listeners
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Creates a connected trigger and signal.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let signal = Arc::new(Signal::default());
    (ShutdownTrigger(signal.clone()), Shutdown(signal))
}

impl ShutdownTrigger {
    /// Signals every clone of the [`Shutdown`].
    pub fn trigger(&self) {
        self.0.triggered.store(true, Ordering::Release);
        self.0.notify.notify_waiters();
        let listeners = std::mem::take(&mut *lock(&self.0.listeners));
        for listener in listeners {
            listener();
        }
    }
}

impl Drop for ShutdownTrigger {
    fn drop(&mut self) {
        self.trigger();
    }
}

impl Shutdown {
    /// A signal that never fires, for embedders that manage lifetimes themselves.
    pub fn never() -> Self {
        Shutdown(Arc::default())
    }

    /// Whether shutdown has been signalled.
    pub fn is_triggered(&self) -> bool {
        self.0.triggered.load(Ordering::Acquire)
    }

    /// Runs `listener` once when shutdown is triggered, on the triggering thread (at
    /// once if it was triggered already). For waking many waiters that each check
    /// [`Self::is_triggered`] rather than waiting on [`Self::wait`].
    pub fn on_trigger(&self, listener: impl FnOnce() + Send + 'static) {
        let mut listeners = lock(&self.0.listeners);
        if self.is_triggered() {
            drop(listeners);
            listener();
        } else {
            listeners.push(Box::new(listener));
        }
    }

    /// Resolves once shutdown is signalled (or the trigger is dropped).
    pub async fn wait(&self) {
        loop {
            // Created before the check: a trigger between the two still wakes it.
            let notified = self.0.notify.notified();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn waits_until_triggered() {
        let (trigger, signal) = channel();
        let waiting = tokio::time::timeout(Duration::from_secs(1), signal.wait()).await;
        assert!(waiting.is_err(), "must not resolve before the trigger");
        assert!(!signal.is_triggered());
        trigger.trigger();
        signal.wait().await;
        assert!(signal.is_triggered());
    }

    #[test]
    fn listeners_run_once_at_the_trigger_or_at_once_after_it() {
        use std::sync::atomic::AtomicUsize;
        let (trigger, signal) = channel();
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        signal.on_trigger(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 0);
        trigger.trigger();
        trigger.trigger();
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "once, however often triggered"
        );
        let counted = runs.clone();
        signal.on_trigger(move || {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(runs.load(Ordering::SeqCst), 2, "after the trigger: at once");
    }

    #[tokio::test(start_paused = true)]
    async fn never_never_fires() {
        let signal = Shutdown::never();
        let waiting = tokio::time::timeout(Duration::from_secs(1), signal.wait()).await;
        assert!(waiting.is_err());
    }
}
