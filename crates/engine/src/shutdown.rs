//! The shutdown signal: one value created by the owner (e.g. `main`), cloned into every
//! accept loop and connection driver, each of which `select!`s on it.

use tokio::sync::watch;

/// Triggers shutdown. Dropping it also triggers shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Observes shutdown; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Creates a connected trigger and signal.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Signals every clone of the [`Shutdown`].
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// A signal that never fires, for embedders that manage lifetimes themselves.
    pub fn never() -> Self {
        let (tx, rx) = watch::channel(false);
        // Keep the sender alive forever so the receiver never sees a close.
        std::mem::forget(tx);
        Shutdown(rx)
    }

    /// Whether shutdown has been signalled.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is signalled (or the trigger is dropped).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        // An error means the trigger was dropped, which also means shutdown.
        let _ = rx.wait_for(|v| *v).await;
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

    #[tokio::test(start_paused = true)]
    async fn never_never_fires() {
        let signal = Shutdown::never();
        let waiting = tokio::time::timeout(Duration::from_secs(1), signal.wait()).await;
        assert!(waiting.is_err());
    }
}
